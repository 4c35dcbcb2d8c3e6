/* State manager: actor registry and assignment table (control plane, one mutex). */
#include "coord/state.h"

#include <stdlib.h>

relay_err rly_state_init(rly_state *s)
{
    rly_mutex_init(&s->lock);
    relay_err e = rly_idmap_init(&s->actors, 256);
    if (e)
        rly_mutex_fini(&s->lock);
    return e;
}

void rly_state_fini(rly_state *s)
{
    size_t pos = 0;
    rly_idmap_slot *it;
    while ((it = rly_idmap_next(&s->actors, &pos)))
        free(it->val);
    rly_idmap_fini(&s->actors);
    rly_mutex_fini(&s->lock);
}

relay_err rly_state_add(rly_state *s, rly_actor_slot *slot, uint32_t router)
{
    rly_state_entry *e = malloc(sizeof *e);
    if (!e)
        return RELAY_ENOMEM;
    e->slot = slot;
    e->router = router;
    relay_err err = RELAY_OK;
    rly_mutex_lock(&s->lock);
    if (rly_idmap_get(&s->actors, slot->id))
        err = RELAY_EEXIST;
    else
        err = rly_idmap_put(&s->actors, slot->id, e);
    rly_mutex_unlock(&s->lock);
    if (err)
        free(e);
    return err;
}

relay_err rly_state_remove(rly_state *s, relay_id id, rly_actor_slot **out)
{
    rly_mutex_lock(&s->lock);
    rly_state_entry *e = rly_idmap_del(&s->actors, id);
    rly_mutex_unlock(&s->lock);
    if (!e)
        return RELAY_ENOTFOUND;
    if (out)
        *out = e->slot;
    free(e);
    return RELAY_OK;
}

relay_err rly_state_get(rly_state *s, relay_id id, rly_actor_slot **slot, uint32_t *router)
{
    relay_err err = RELAY_ENOTFOUND;
    rly_mutex_lock(&s->lock);
    rly_state_entry *e = rly_idmap_get(&s->actors, id);
    if (e) {
        if (slot)
            *slot = e->slot;
        if (router)
            *router = e->router;
        err = RELAY_OK;
    }
    rly_mutex_unlock(&s->lock);
    return err;
}

relay_err rly_state_set_router(rly_state *s, relay_id id, uint32_t router)
{
    relay_err err = RELAY_ENOTFOUND;
    rly_mutex_lock(&s->lock);
    rly_state_entry *e = rly_idmap_get(&s->actors, id);
    if (e) {
        e->router = router;
        err = RELAY_OK;
    }
    rly_mutex_unlock(&s->lock);
    return err;
}

size_t rly_state_count(rly_state *s)
{
    rly_mutex_lock(&s->lock);
    size_t n = rly_idmap_count(&s->actors);
    rly_mutex_unlock(&s->lock);
    return n;
}

typedef struct {
    relay_id id;
    uint32_t router;
} pair;

static int pair_cmp(const void *a, const void *b)
{
    return relay_id_cmp(((const pair *)a)->id, ((const pair *)b)->id);
}

size_t rly_state_list(rly_state *s, relay_id *ids, uint32_t *routers, size_t max)
{
    rly_mutex_lock(&s->lock);
    size_t total = rly_idmap_count(&s->actors);
    pair *all = malloc((total ? total : 1) * sizeof *all);
    size_t n = 0, pos = 0;
    rly_idmap_slot *it;
    if (all)
        while ((it = rly_idmap_next(&s->actors, &pos))) {
            all[n].id = it->key;
            all[n].router = ((rly_state_entry *)it->val)->router;
            n++;
        }
    rly_mutex_unlock(&s->lock);
    if (!all)
        return 0;
    qsort(all, n, sizeof *all, pair_cmp);
    for (size_t i = 0; i < n && i < max; i++) {
        if (ids)
            ids[i] = all[i].id;
        if (routers)
            routers[i] = all[i].router;
    }
    free(all);
    return total;
}

size_t rly_state_load(rly_state *s, uint32_t router)
{
    size_t n = 0, pos = 0;
    rly_idmap_slot *it;
    rly_mutex_lock(&s->lock);
    while ((it = rly_idmap_next(&s->actors, &pos)))
        if (((rly_state_entry *)it->val)->router == router)
            n++;
    rly_mutex_unlock(&s->lock);
    return n;
}

/* find_sorted returns the index of id in the ascending ids[0..n), or n. */
static size_t find_sorted(const uint32_t *ids, size_t n, uint32_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo] == id ? lo : n;
}

void rly_state_loads(rly_state *s, const uint32_t *ids, size_t n, size_t *loads)
{
    for (size_t i = 0; i < n; i++)
        loads[i] = 0;
    size_t pos = 0;
    rly_idmap_slot *it;
    rly_mutex_lock(&s->lock);
    while ((it = rly_idmap_next(&s->actors, &pos))) {
        size_t k = find_sorted(ids, n, ((rly_state_entry *)it->val)->router);
        if (k < n)
            loads[k]++;
    }
    rly_mutex_unlock(&s->lock);
}
