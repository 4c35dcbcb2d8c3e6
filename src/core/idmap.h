/*
 * Hash tables keyed by relay_id.
 *
 * rly_idmap: owned by one thread (a router's actor table, the dispatcher's pending
 * table); open addressing with linear probing and backward-shift deletion.
 *
 * rly_cidmap: one writer thread, any number of lock-free readers; insert-only (values
 * are stable pointers whose contents carry their own atomic state). Growth publishes a
 * new slot array; retired arrays are kept until fini, so a reader never touches freed
 * memory and needs no lock, epoch or registration.
 */
#ifndef RLY_CORE_IDMAP_H
#define RLY_CORE_IDMAP_H

#include <stdatomic.h>
#include <stddef.h>

#include "core/id.h"
#include "relay/err.h"

typedef struct rly_idmap_slot {
    relay_id key;
    void *val; /* NULL marks an empty slot */
} rly_idmap_slot;

typedef struct rly_idmap {
    rly_idmap_slot *slots;
    size_t mask;
    size_t count;
} rly_idmap;

/* rly_idmap_init creates an empty map sized for about capacity entries. */
relay_err rly_idmap_init(rly_idmap *m, size_t capacity);
/* rly_idmap_fini frees the table (not the values). */
void rly_idmap_fini(rly_idmap *m);
/* rly_idmap_get returns the value for key, or NULL. */
void *rly_idmap_get(const rly_idmap *m, relay_id key);
/* rly_idmap_put sets key to val (non-NULL), replacing any previous value. */
relay_err rly_idmap_put(rly_idmap *m, relay_id key, void *val);
/* rly_idmap_del removes key and returns its value, or NULL if absent. */
void *rly_idmap_del(rly_idmap *m, relay_id key);
/* rly_idmap_count returns the number of entries. */
static inline size_t rly_idmap_count(const rly_idmap *m)
{
    return m->count;
}
/* rly_idmap_next iterates: start with *pos = 0; returns the next slot or NULL at the end. */
rly_idmap_slot *rly_idmap_next(const rly_idmap *m, size_t *pos);

typedef struct rly_cidmap_slot {
    _Atomic(void *) val; /* published last; NULL = empty */
    relay_id key;
} rly_cidmap_slot;

typedef struct rly_cidmap_table {
    size_t mask;
    struct rly_cidmap_table *retired; /* older tables, freed at fini */
    rly_cidmap_slot slots[];
} rly_cidmap_table;

typedef struct rly_cidmap {
    _Atomic(rly_cidmap_table *) table;
    size_t count; /* writer-owned */
} rly_cidmap;

/* rly_cidmap_init creates an empty map sized for about capacity entries. */
relay_err rly_cidmap_init(rly_cidmap *m, size_t capacity);
/* rly_cidmap_fini frees every table (not the values); no reader may be active. */
void rly_cidmap_fini(rly_cidmap *m);
/* rly_cidmap_get returns the value for key or NULL; safe from any thread, lock-free. */
void *rly_cidmap_get(rly_cidmap *m, relay_id key);
/* rly_cidmap_insert adds key -> val (writer thread only); RELAY_EEXIST if key is present. */
relay_err rly_cidmap_insert(rly_cidmap *m, relay_id key, void *val);

#endif
