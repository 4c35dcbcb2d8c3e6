/* Open-addressing id tables: a single-owner map and a single-writer lock-free-read map. */
#include "core/idmap.h"

#include <stdlib.h>

static size_t table_size_for(size_t capacity)
{
    size_t n = 16;
    while (n < capacity * 2)
        n <<= 1;
    return n;
}

relay_err rly_idmap_init(rly_idmap *m, size_t capacity)
{
    size_t n = table_size_for(capacity);
    m->slots = calloc(n, sizeof *m->slots);
    if (!m->slots)
        return RELAY_ENOMEM;
    m->mask = n - 1;
    m->count = 0;
    return RELAY_OK;
}

void rly_idmap_fini(rly_idmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->count = 0;
}

void *rly_idmap_get(const rly_idmap *m, relay_id key)
{
    size_t i = rly_id_hash(key) & m->mask;
    for (;;) {
        rly_idmap_slot *s = &m->slots[i];
        if (!s->val)
            return NULL;
        if (rly_id_same(&s->key, &key))
            return s->val;
        i = (i + 1) & m->mask;
    }
}

static relay_err idmap_grow(rly_idmap *m)
{
    rly_idmap old = *m;
    size_t n = (old.mask + 1) * 2;
    m->slots = calloc(n, sizeof *m->slots);
    if (!m->slots) {
        *m = old;
        return RELAY_ENOMEM;
    }
    m->mask = n - 1;
    m->count = 0;
    for (size_t i = 0; i <= old.mask; i++)
        if (old.slots[i].val)
            rly_idmap_put(m, old.slots[i].key, old.slots[i].val);
    free(old.slots);
    return RELAY_OK;
}

relay_err rly_idmap_put(rly_idmap *m, relay_id key, void *val)
{
    if (!val)
        return RELAY_EINVAL;
    if ((m->count + 1) * 4 > (m->mask + 1) * 3) {
        relay_err e = idmap_grow(m);
        if (e)
            return e;
    }
    size_t i = rly_id_hash(key) & m->mask;
    for (;;) {
        rly_idmap_slot *s = &m->slots[i];
        if (!s->val) {
            s->key = key;
            s->val = val;
            m->count++;
            return RELAY_OK;
        }
        if (rly_id_same(&s->key, &key)) {
            s->val = val;
            return RELAY_OK;
        }
        i = (i + 1) & m->mask;
    }
}

void *rly_idmap_del(rly_idmap *m, relay_id key)
{
    size_t i = rly_id_hash(key) & m->mask;
    for (;;) {
        rly_idmap_slot *s = &m->slots[i];
        if (!s->val)
            return NULL;
        if (rly_id_same(&s->key, &key))
            break;
        i = (i + 1) & m->mask;
    }
    void *val = m->slots[i].val;
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    size_t hole = i;
    size_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        rly_idmap_slot *s = &m->slots[j];
        if (!s->val)
            break;
        size_t home = rly_id_hash(s->key) & m->mask;
        /* Move s into the hole if its home is not cyclically within (hole, j]. */
        int in_range = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_range) {
            m->slots[hole] = *s;
            hole = j;
        }
    }
    m->slots[hole].val = NULL;
    m->count--;
    return val;
}

rly_idmap_slot *rly_idmap_next(const rly_idmap *m, size_t *pos)
{
    while (*pos <= m->mask) {
        rly_idmap_slot *s = &m->slots[(*pos)++];
        if (s->val)
            return s;
    }
    return NULL;
}

static rly_cidmap_table *ctable_new(size_t n)
{
    rly_cidmap_table *t = calloc(1, sizeof *t + n * sizeof(rly_cidmap_slot));
    if (!t)
        return NULL;
    t->mask = n - 1;
    for (size_t i = 0; i < n; i++)
        atomic_init(&t->slots[i].val, NULL);
    return t;
}

relay_err rly_cidmap_init(rly_cidmap *m, size_t capacity)
{
    rly_cidmap_table *t = ctable_new(table_size_for(capacity));
    if (!t)
        return RELAY_ENOMEM;
    atomic_init(&m->table, t);
    m->count = 0;
    return RELAY_OK;
}

void rly_cidmap_fini(rly_cidmap *m)
{
    rly_cidmap_table *t = atomic_load(&m->table);
    while (t) {
        rly_cidmap_table *next = t->retired;
        free(t);
        t = next;
    }
    atomic_store(&m->table, NULL);
}

static void *ctable_get(rly_cidmap_table *t, relay_id key)
{
    size_t i = rly_id_hash(key) & t->mask;
    for (;;) {
        rly_cidmap_slot *s = &t->slots[i];
        void *v = atomic_load_explicit(&s->val, memory_order_acquire);
        if (!v)
            return NULL;
        if (rly_id_same(&s->key, &key))
            return v;
        i = (i + 1) & t->mask;
    }
}

void *rly_cidmap_get(rly_cidmap *m, relay_id key)
{
    return ctable_get(atomic_load_explicit(&m->table, memory_order_acquire), key);
}

static void ctable_put(rly_cidmap_table *t, relay_id key, void *val)
{
    size_t i = rly_id_hash(key) & t->mask;
    while (atomic_load_explicit(&t->slots[i].val, memory_order_relaxed))
        i = (i + 1) & t->mask;
    t->slots[i].key = key;
    atomic_store_explicit(&t->slots[i].val, val, memory_order_release);
}

relay_err rly_cidmap_insert(rly_cidmap *m, relay_id key, void *val)
{
    if (!val)
        return RELAY_EINVAL;
    rly_cidmap_table *t = atomic_load_explicit(&m->table, memory_order_relaxed);
    if (ctable_get(t, key))
        return RELAY_EEXIST;
    if ((m->count + 1) * 2 > t->mask + 1) {
        rly_cidmap_table *nt = ctable_new((t->mask + 1) * 2);
        if (!nt)
            return RELAY_ENOMEM;
        for (size_t i = 0; i <= t->mask; i++) {
            void *v = atomic_load_explicit(&t->slots[i].val, memory_order_relaxed);
            if (v)
                ctable_put(nt, t->slots[i].key, v);
        }
        nt->retired = t;
        atomic_store_explicit(&m->table, nt, memory_order_release);
        t = nt;
    }
    ctable_put(t, key, val);
    m->count++;
    return RELAY_OK;
}
