/*
 * rly_router: a unit of ownership (a set of actors, their queue, their trajectory buffer), run as
 * a task on a worker pool (core/pool.h), so any number of routers share the pool's threads.
 *
 * The router's intake is a bounded MPSC queue fed by the dispatcher and the fast path. Pushing
 * schedules the router on the pool; one worker at a time runs it for a slice: it drains the
 * intake in batches, hands each actor message to the owning actor's deliver(), in order, then
 * gives every actor with pending work (run_env) one step(), so actors and routers share the
 * workers fairly (a router with work left goes to the back of the pool's run queue). Actors
 * never need a thread each; routers never need one either. "The router's thread" below means
 * whichever worker runs it at the moment; successive slices are ordered (happens-before).
 *
 * A message for an actor this router does not own (misrouted) is returned to the dispatcher to
 * be routed again; it never stops the loop. Control messages (ADOPT, MIGRATE_OUT, DETACH, STOP)
 * arrive on the same queue, so they are ordered with the actor's messages.
 */
#ifndef RLY_ROUTING_ROUTER_H
#define RLY_ROUTING_ROUTER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/idmap.h"
#include "core/pool.h"
#include "core/queue.h"
#include "core/thread.h"
#include "routing/message.h"

typedef struct rly_router rly_router;
typedef struct rly_actor_slot rly_actor_slot;

/* rly_actor_ops is what the routing layer needs from an actor; every call runs on its router. */
typedef struct rly_actor_ops {
    /* deliver hands msg to the actor, which then owns its payload and reply. */
    void (*deliver)(rly_actor_slot *slot, rly_msg *msg);
    /* deliver_many (optional) hands a run of RequestInference messages, each to its slot's actor
       (all with these ops), so inference can be batched; same ownership as deliver. */
    void (*deliver_many)(rly_actor_slot **slots, rly_msg *msgs, size_t n);
    /* step runs one unit of background work (e.g. one vector env step); false when none is left. */
    bool (*step)(rly_actor_slot *slot);
    /* step_many (optional) runs one step of each of n active actors (all with these ops) at once,
       so they can share work such as one central inference request; keep[i] = step's result. */
    void (*step_many)(rly_actor_slot **slots, size_t n, bool *keep);
    /* attach tells the actor it now lives on router r (e.g. to switch trajectory buffers). */
    void (*attach)(rly_actor_slot *slot, rly_router *r);
    /* detach tells the actor it is being removed (flush partial data); not called on migration. */
    void (*detach)(rly_actor_slot *slot);
} rly_actor_ops;

/* rly_actor_slot is the routing layer's handle on an actor; its owner creates and frees it. */
struct rly_actor_slot {
    relay_id id;
    void *actor;
    const rly_actor_ops *ops;
    rly_router *router; /* current router (written by that router's thread) */
    int32_t active_idx; /* index in the router's active list, -1 when idle */
};

/* rly_router_return_fn passes an event (misroute, handover, removal) back to the dispatcher. */
typedef void (*rly_router_return_fn)(void *ctx, rly_msg *ev);

typedef struct rly_router_stats {
    uint64_t delivered;
    uint64_t misrouted;
    uint64_t steps;
    uint64_t queued; /* messages in the intake now (racy) */
    uint32_t actors;
    uint32_t id;
} rly_router_stats;

/* rly_router_new creates a stopped router with an intake of queue_cap messages. */
relay_err rly_router_new(uint32_t id, size_t queue_cap, rly_router_return_fn ret, void *ret_ctx,
                         rly_router **out);

/* rly_router_start lets r run on pool's workers (it then runs whenever messages arrive). */
relay_err rly_router_start(rly_router *r, rly_pool *pool);

/* rly_router_join waits until r has handled STOP and no worker touches it any more. */
void rly_router_join(rly_router *r);

/* rly_router_free frees r (joined or never started); slots it still holds are not freed. */
void rly_router_free(rly_router *r);

/* rly_router_id returns the router's id. */
uint32_t rly_router_id(const rly_router *r);

/* rly_router_push_batch enqueues n messages in order; RELAY_EFULL leaves them with the caller. */
relay_err rly_router_push_batch(rly_router *r, const rly_msg *msgs, size_t n);

/* rly_router_free_space returns a racy lower bound of free intake slots. */
size_t rly_router_free_space(rly_router *r);

/* rly_router_set_active marks slot as having step() work (router thread only, e.g. in deliver). */
void rly_router_set_active(rly_actor_slot *slot, bool active);

/* rly_router_get_stats copies racy counters of r. */
void rly_router_get_stats(rly_router *r, rly_router_stats *out);

/* rly_router_set_user attaches an upper layer's per-router object (e.g. its trajectory buffer). */
void rly_router_set_user(rly_router *r, void *user);

/* rly_router_user returns the object set with rly_router_set_user (NULL if none). */
void *rly_router_user(const rly_router *r);

/* rly_router_on_thread reports whether the caller is the worker running r right now. */
bool rly_router_on_thread(const rly_router *r);

#endif
