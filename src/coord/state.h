/*
 * rly_state: the state manager. The actor registry (id -> actor slot) and the actor -> router
 * assignment table, as the coordinator decided them.
 *
 * This is control-plane state: it is read and written by API calls (add/remove actor, scaling,
 * get_actor_ids) under one mutex that is never held while calling out. The message path never
 * touches it: the dispatcher keeps the effective route of each actor in its own table, read by
 * senders without locks (see routing/dispatcher.h), and the coordinator keeps the two in step by
 * sending the dispatcher each change.
 */
#ifndef RLY_COORD_STATE_H
#define RLY_COORD_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/idmap.h"
#include "core/thread.h"
#include "routing/router.h"

typedef struct rly_state_entry {
    rly_actor_slot *slot;
    uint32_t router; /* assigned router id */
} rly_state_entry;

typedef struct rly_state {
    rly_mutex lock;
    rly_idmap actors; /* relay_id -> rly_state_entry* */
} rly_state;

/* rly_state_init creates an empty registry. */
relay_err rly_state_init(rly_state *s);
/* rly_state_fini frees the registry entries (not the slots). */
void rly_state_fini(rly_state *s);
/* rly_state_add records slot on router; RELAY_EEXIST if its id is taken. */
relay_err rly_state_add(rly_state *s, rly_actor_slot *slot, uint32_t router);
/* rly_state_remove forgets id and returns its slot in *out; RELAY_ENOTFOUND if unknown. */
relay_err rly_state_remove(rly_state *s, relay_id id, rly_actor_slot **out);
/* rly_state_get returns id's slot and router; RELAY_ENOTFOUND if unknown. */
relay_err rly_state_get(rly_state *s, relay_id id, rly_actor_slot **slot, uint32_t *router);
/* rly_state_set_router records a new assignment for id. */
relay_err rly_state_set_router(rly_state *s, relay_id id, uint32_t router);
/* rly_state_count returns the number of registered actors. */
size_t rly_state_count(rly_state *s);
/*
 * rly_state_list copies up to max (id, router) pairs sorted by id (the order of their text form)
 * into ids/routers (routers may be NULL) and returns the total number of actors.
 */
size_t rly_state_list(rly_state *s, relay_id *ids, uint32_t *routers, size_t max);
/* rly_state_load counts actors on router (for placement). */
size_t rly_state_load(rly_state *s, uint32_t router);
/* rly_state_loads counts the actors of n routers in one pass: ids ascending, loads[i] for ids[i].
 */
void rly_state_loads(rly_state *s, const uint32_t *ids, size_t n, size_t *loads);

#endif
