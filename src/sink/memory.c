/*
 * Memory sink: the last N trajectories of each actor, older ones dropped and counted.
 *
 * write_batch clones the borrowed trajectories outside the lock, inserts the clones into the
 * actor's ring under the mutex, and frees evicted trajectories after unlocking. Drain hands the
 * stored pointers to the caller. The mutex is never held while cloning or freeing.
 */
#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"
#include "core/log.h"
#include "core/thread.h"
#include "sink/sink_internal.h"

#define CHUNK 64

typedef struct ring {
    relay_traj **items;
    uint32_t head, count, cap; /* cap grows up to the per-actor limit */
} ring;

typedef struct memsink {
    rly_mutex mu;
    rly_idmap map; /* actor -> ring */
    uint32_t limit;
    size_t total;
    rly_sink_counters c;
} memsink;

static relay_err mem_open(const relay_sink_config *cfg, void **state)
{
    memsink *m = calloc(1, sizeof *m);
    if (!m)
        return RELAY_ENOMEM;
    m->limit = cfg->memory_per_actor ? cfg->memory_per_actor : 1000;
    relay_err e = rly_idmap_init(&m->map, 16);
    if (e != RELAY_OK) {
        free(m);
        return e;
    }
    rly_mutex_init(&m->mu);
    *state = m;
    return RELAY_OK;
}

/* insert stores t in its actor's ring; an evicted trajectory is returned through *evicted. */
static relay_err insert(memsink *m, relay_traj *t, relay_traj **evicted)
{
    *evicted = NULL;
    ring *r = rly_idmap_get(&m->map, t->actor);
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r)
            return RELAY_ENOMEM;
        relay_err e = rly_idmap_put(&m->map, t->actor, r);
        if (e != RELAY_OK) {
            free(r);
            return e;
        }
    }
    if (r->count == r->cap && r->cap < m->limit) {
        uint32_t ncap = r->cap ? r->cap * 2 : 8;
        if (ncap > m->limit)
            ncap = m->limit;
        relay_traj **items = malloc(sizeof *items * ncap);
        if (!items)
            return RELAY_ENOMEM;
        for (uint32_t i = 0; i < r->count; i++)
            items[i] = r->items[(r->head + i) % r->cap];
        free(r->items);
        r->items = items;
        r->head = 0;
        r->cap = ncap;
    }
    if (r->count == r->cap) {
        *evicted = r->items[r->head];
        r->items[r->head] = t;
        r->head = (r->head + 1) % r->cap;
        return RELAY_OK;
    }
    r->items[(r->head + r->count) % r->cap] = t;
    r->count++;
    m->total++;
    return RELAY_OK;
}

static relay_err mem_write(void *state, relay_traj *const *trajs, size_t n)
{
    memsink *m = state;
    relay_traj *clones[CHUNK], *evicted[CHUNK];
    for (size_t base = 0; base < n; base += CHUNK) {
        size_t k = n - base < CHUNK ? n - base : CHUNK;
        for (size_t i = 0; i < k; i++) {
            clones[i] = relay_traj_clone(trajs[base + i]);
            if (!clones[i]) {
                for (size_t j = 0; j < i; j++)
                    relay_traj_free(clones[j]);
                rly_error(RLY_SINK_LOG, "memory sink: out of memory copying a trajectory");
                return RELAY_ENOMEM;
            }
        }
        size_t ne = 0, stored = 0, rows = 0;
        relay_err e = RELAY_OK;
        rly_mutex_lock(&m->mu);
        for (; stored < k; stored++) {
            relay_traj *ev;
            e = insert(m, clones[stored], &ev);
            if (e != RELAY_OK)
                break;
            rows += clones[stored]->len;
            if (ev)
                evicted[ne++] = ev;
        }
        rly_mutex_unlock(&m->mu);
        rly_counters_add(&m->c.trajs, stored);
        rly_counters_add(&m->c.rows, rows);
        rly_counters_add(&m->c.dropped, ne);
        for (size_t i = 0; i < ne; i++)
            relay_traj_free(evicted[i]);
        if (e != RELAY_OK) {
            for (size_t i = stored; i < k; i++)
                relay_traj_free(clones[i]);
            rly_error(RLY_SINK_LOG, "memory sink: cannot store a trajectory: %s",
                      relay_strerror(e));
            return e;
        }
    }
    return RELAY_OK;
}

static size_t take(ring *r, relay_traj **out, size_t cap)
{
    size_t k = 0;
    while (r->count > 0 && k < cap) {
        out[k++] = r->items[r->head];
        r->head = (r->head + 1) % r->cap;
        r->count--;
    }
    return k;
}

relay_err rly_memory_sink_drain(void *state, const relay_id *filter, relay_traj **out, size_t cap,
                                size_t *n)
{
    memsink *m = state;
    size_t k = 0;
    rly_mutex_lock(&m->mu);
    if (filter) {
        ring *r = rly_idmap_get(&m->map, *filter);
        if (r)
            k = take(r, out, cap);
    } else {
        size_t pos = 0;
        rly_idmap_slot *sl;
        while (k < cap && (sl = rly_idmap_next(&m->map, &pos)) != NULL)
            k += take(sl->val, out + k, cap - k);
    }
    m->total -= k;
    rly_mutex_unlock(&m->mu);
    *n = k;
    return RELAY_OK;
}

size_t rly_memory_sink_count(void *state)
{
    memsink *m = state;
    rly_mutex_lock(&m->mu);
    size_t t = m->total;
    rly_mutex_unlock(&m->mu);
    return t;
}

static relay_err mem_close(void *state)
{
    memsink *m = state;
    size_t pos = 0;
    rly_idmap_slot *sl;
    while ((sl = rly_idmap_next(&m->map, &pos)) != NULL) {
        ring *r = sl->val;
        while (r->count > 0) {
            relay_traj_free(r->items[r->head]);
            r->head = (r->head + 1) % r->cap;
            r->count--;
        }
        free(r->items);
        free(r);
    }
    rly_idmap_fini(&m->map);
    rly_mutex_fini(&m->mu);
    free(m);
    return RELAY_OK;
}

static void mem_stats(void *state, relay_sink_stats *out)
{
    rly_counters_read(&((memsink *)state)->c, out);
}

const relay_sink_vtable rly_memory_sink_vt = {
    .name = "memory",
    .open = mem_open,
    .write_batch = mem_write,
    .flush = NULL,
    .close = mem_close,
    .stats = mem_stats,
};
