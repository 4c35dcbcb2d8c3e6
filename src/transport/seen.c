/* rly_seen: batches taken in, for exactly-once learning across resends and restarts. */
#include "transport/seen.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define MOD "seen"

static uint64_t hash(relay_id p, uint64_t batch)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ batch;
    for (int i = 0; i < 16; i++)
        h = (h ^ p.bytes[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    return h * 0xbf58476d1ce4e5b9ull;
}

static relay_err alloc(rly_seen *s, size_t cap)
{
    rly_seen_entry *t = calloc(cap, sizeof *t);
    if (!t)
        return RELAY_ENOMEM;
    free(s->tab);
    s->tab = t;
    s->cap = cap;
    s->n = 0;
    return RELAY_OK;
}

relay_err rly_seen_init(rly_seen *s, size_t max)
{
    memset(s, 0, sizeof *s);
    s->max = max ? max : (1u << 20);
    return alloc(s, 1024);
}

void rly_seen_fini(rly_seen *s)
{
    free(s->tab);
    memset(s, 0, sizeof *s);
}

static rly_seen_entry *slot(rly_seen *s, relay_id p, uint64_t batch)
{
    size_t mask = s->cap - 1, i = (size_t)hash(p, batch) & mask;
    for (;;) {
        rly_seen_entry *e = &s->tab[i];
        if (!e->stream_seq || (e->batch == batch && relay_id_eq(e->producer, p)))
            return e;
        i = (i + 1) & mask;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* rehash moves every entry with stream_seq >= keep_from into a table of cap slots. */
static relay_err rehash(rly_seen *s, size_t cap, uint64_t keep_from)
{
    rly_seen_entry *old = s->tab;
    size_t oc = s->cap;
    s->tab = NULL;
    relay_err e = alloc(s, cap);
    if (e) {
        s->tab = old;
        s->cap = oc;
        return e;
    }
    for (size_t i = 0; i < oc; i++) {
        if (!old[i].stream_seq)
            continue;
        if (old[i].stream_seq < keep_from) {
            s->evicted++;
            continue;
        }
        *slot(s, old[i].producer, old[i].batch) = old[i];
        s->n++;
    }
    free(old);
    return RELAY_OK;
}

/* evict_oldest_half keeps the newest half of the entries (by stream position). */
static void evict_oldest_half(rly_seen *s)
{
    uint64_t *seqs = malloc(s->n * sizeof *seqs);
    if (!seqs)
        return;
    size_t k = 0;
    for (size_t i = 0; i < s->cap; i++)
        if (s->tab[i].stream_seq)
            seqs[k++] = s->tab[i].stream_seq;
    qsort(seqs, k, sizeof *seqs, cmp_u64);
    uint64_t median = k ? seqs[k / 2] : 0;
    free(seqs);
    rly_warn(MOD, "remembering more than %zu batches: forgetting those before stream position %llu",
             s->max, (unsigned long long)median);
    rehash(s, s->cap, median);
}

rly_seen_verdict rly_seen_check(rly_seen *s, relay_id producer, uint64_t batch, uint64_t stream_seq)
{
    rly_seen_entry *e = slot(s, producer, batch);
    if (e->stream_seq)
        return e->stream_seq == stream_seq ? RLY_SEEN_REPLAY : RLY_SEEN_DUPLICATE;
    if (s->n + 1 > s->max) {
        evict_oldest_half(s);
        e = slot(s, producer, batch);
    } else if (2 * (s->n + 1) > s->cap) {
        if (rehash(s, 2 * s->cap, 0) == RELAY_OK)
            e = slot(s, producer, batch);
    }
    if (2 * (s->n + 1) > s->cap) /* could not grow: make room instead */
    {
        evict_oldest_half(s);
        e = slot(s, producer, batch);
    }
    e->producer = producer;
    e->batch = batch;
    e->stream_seq = stream_seq;
    s->n++;
    return RLY_SEEN_NEW;
}

bool rly_seen_find_seq(const rly_seen *s, uint64_t stream_seq, rly_seen_entry *out)
{
    for (size_t i = 0; i < s->cap; i++)
        if (s->tab[i].stream_seq && s->tab[i].stream_seq == stream_seq) {
            *out = s->tab[i];
            return true;
        }
    return false;
}

relay_err rly_seen_forget_from(rly_seen *s, uint64_t from)
{
    rly_seen_entry *old = s->tab;
    size_t oc = s->cap;
    s->tab = NULL;
    relay_err e = alloc(s, oc);
    if (e) {
        s->tab = old;
        s->cap = oc;
        return e;
    }
    for (size_t i = 0; i < oc; i++) {
        if (!old[i].stream_seq || old[i].stream_seq >= from)
            continue;
        *slot(s, old[i].producer, old[i].batch) = old[i];
        s->n++;
    }
    free(old);
    return RELAY_OK;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

relay_err rly_seen_save(const rly_seen *s, relay_codec_buf *out)
{
    size_t need = out->len + 8 + s->n * 32;
    relay_err e = relay_codec_buf_reserve(out, need);
    if (e)
        return e;
    uint8_t *p = out->data + out->len;
    put64(p, s->n);
    p += 8;
    for (size_t i = 0; i < s->cap; i++) {
        const rly_seen_entry *x = &s->tab[i];
        if (!x->stream_seq)
            continue;
        memcpy(p, x->producer.bytes, 16);
        put64(p + 16, x->batch);
        put64(p + 24, x->stream_seq);
        p += 32;
    }
    out->len = need;
    return RELAY_OK;
}

relay_err rly_seen_load(rly_seen *s, const uint8_t *data, size_t len, size_t *used)
{
    if (len < 8)
        return RELAY_ETRUNCATED;
    uint64_t n = get64(data);
    if (n > s->max || n > (len - 8) / 32) {
        rly_error(MOD, "saved table holds %llu entries: more than the bytes or the limit %zu",
                  (unsigned long long)n, s->max);
        return n > s->max ? RELAY_ETOOBIG : RELAY_ETRUNCATED;
    }
    size_t cap = 1024;
    while (cap < 2 * (n + 1))
        cap *= 2;
    relay_err e = alloc(s, cap);
    if (e)
        return e;
    const uint8_t *p = data + 8;
    for (uint64_t i = 0; i < n; i++, p += 32) {
        relay_id id;
        memcpy(id.bytes, p, 16);
        uint64_t b = get64(p + 16), q = get64(p + 24);
        if (!q)
            return RELAY_EFORMAT;
        rly_seen_entry *x = slot(s, id, b);
        if (!x->stream_seq)
            s->n++;
        *x = (rly_seen_entry){id, b, q};
    }
    *used = 8 + (size_t)n * 32;
    return RELAY_OK;
}
