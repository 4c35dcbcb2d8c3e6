/* Gathering, checking and answering central inference requests (infer_srv.h). */
#include "transport/infer_srv.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

#define MOD "infer"
#define WARN_FIRST 5 /* rejects logged one by one; then only counted */
/* client table (power of two), compacted when half full: the clients of two batches of up to
   RLY_IW_MAX_ROWS requests each always fit */
#define PEER_SLOTS 16384u

static size_t slot_bytes(uint32_t rows, uint32_t width)
{
    size_t ok = rly_iw_rep_size(rows, width), er = RLY_IW_HDR + RLY_IW_TEXT_MAX;
    return ((ok > er ? ok : er) + 15) & ~(size_t)15;
}

static void add_relaxed(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

relay_err rly_isrv_init(rly_isrv *s, const rly_tp_infer_opts *o, rly_tp_infer_fn fn, void *ctx)
{
    memset(s, 0, sizeof *s);
    if (o)
        s->o = *o;
    else
        s->o.max_wait_ns = -1;
    if (s->o.max_batch == 0)
        s->o.max_batch = 1024;
    if (s->o.max_batch > RLY_IW_MAX_ROWS) {
        rly_error(MOD, "inference batch of %u rows exceeds the limit of %u", s->o.max_batch,
                  RLY_IW_MAX_ROWS);
        return RELAY_ETOOBIG;
    }
    if (s->o.max_wait_ns < 0)
        s->o.max_wait_ns = 100000;
    s->fn = fn;
    s->ctx = ctx;
    s->cap = s->o.max_batch;
    s->items = calloc(s->cap, sizeof *s->items);
    s->rep_off = calloc(s->cap, sizeof *s->rep_off);
    s->rep_len = calloc(s->cap, sizeof *s->rep_len);
    s->rep_cap = slot_bytes(s->o.max_batch, 1) + s->cap * slot_bytes(1, 1);
    s->rep = aligned_alloc(16, s->rep_cap);
    s->peer_key = calloc(PEER_SLOTS, sizeof *s->peer_key);
    s->peer_last = calloc(PEER_SLOTS, sizeof *s->peer_last);
    s->peer_tmp = calloc(2 * PEER_SLOTS, sizeof *s->peer_tmp);
    s->batch_no = 2; /* peer_last 0 = never */
    if (!s->items || !s->rep_off || !s->rep_len || !s->rep || !s->peer_key || !s->peer_last ||
        !s->peer_tmp) {
        rly_isrv_fini(s);
        return RELAY_ENOMEM;
    }
    return RELAY_OK;
}

void rly_isrv_fini(rly_isrv *s)
{
    free(s->items);
    free(s->rep_off);
    free(s->rep_len);
    free(s->rep);
    free(s->peer_key);
    free(s->peer_last);
    free(s->peer_tmp);
    s->items = NULL;
    s->rep_off = s->rep_len = NULL;
    s->rep = NULL;
    s->peer_key = s->peer_last = s->peer_tmp = NULL;
}

/* peer_slot finds key's slot, or the empty one to insert it at. */
static size_t peer_slot(const rly_isrv *s, uint64_t key)
{
    size_t i = (size_t)(key * UINT64_C(0x9E3779B97F4A7C15) >> 52) & (PEER_SLOTS - 1);
    while (s->peer_key[i] && s->peer_key[i] != key)
        i = (i + 1) & (PEER_SLOTS - 1);
    return i;
}

/* peer_compact keeps only clients of the last two batches (no allocation: peer_tmp). */
static void peer_compact(rly_isrv *s)
{
    size_t n = 0;
    for (size_t i = 0; i < PEER_SLOTS; i++)
        if (s->peer_key[i] && s->peer_last[i] + 1 >= s->batch_no) {
            s->peer_tmp[2 * n] = s->peer_key[i];
            s->peer_tmp[2 * n + 1] = s->peer_last[i];
            n++;
        }
    memset(s->peer_key, 0, PEER_SLOTS * sizeof *s->peer_key);
    for (size_t k = 0; k < n; k++) {
        size_t i = peer_slot(s, s->peer_tmp[2 * k]);
        s->peer_key[i] = s->peer_tmp[2 * k];
        s->peer_last[i] = s->peer_tmp[2 * k + 1];
    }
    s->peer_used = n;
}

void rly_isrv_note_peer(rly_isrv *s, uint64_t key)
{
    if (!s->peer_key)
        return;
    key = key ? key : 1;
    if (s->peer_used >= PEER_SLOTS / 2) {
        peer_compact(s);
        if (s->peer_used >= PEER_SLOTS / 2)
            return; /* more clients than the table follows: this batch waits its time */
    }
    size_t i = peer_slot(s, key);
    if (!s->peer_key[i]) {
        s->peer_key[i] = key;
        s->peer_last[i] = 0;
        s->peer_used++;
    }
    uint64_t last = s->peer_last[i];
    if (last != s->batch_no) {
        s->in_batch++;
        if (last + 1 != s->batch_no && s->expect != UINT32_MAX)
            s->expect++; /* a newcomer: the previous batch's count does not include it */
        s->peer_last[i] = s->batch_no;
    }
    s->noted++;
}

bool rly_isrv_complete(const rly_isrv *s)
{
    return !s->o.wait_always && s->n > 0 && s->noted == s->n && s->in_batch >= s->expect;
}

int64_t rly_isrv_wait_ns(const rly_isrv *s)
{
    return s->o.max_wait_ns;
}

relay_err rly_isrv_add(rly_isrv *s, const void *data, size_t len, size_t *err_len)
{
    rly_tp_infer_item *it = &s->items[s->n];
    char why[RLY_IW_TEXT_MAX + 1];
    relay_err e =
        s->n < s->cap ? rly_iw_req_decode(data, len, &it->req, why, sizeof why) : RELAY_EFULL;
    if (e == RELAY_EFULL)
        snprintf(why, sizeof why, "inference batch is full (%zu requests)", s->cap);
    size_t need = 0;
    if (!e) {
        uint32_t width = it->req.n_actions ? 1 : it->req.act_dim;
        need = slot_bytes(it->req.rows, width);
        if (s->rep_used + need > s->rep_cap) {
            /* a request wider than any so far: grow once (rows and widths are bounded) */
            size_t cap = s->rep_cap * 2 > s->rep_used + need ? s->rep_cap * 2 : s->rep_used + need;
            cap = (cap + 15) & ~(size_t)15;
            uint8_t *nb = aligned_alloc(16, cap);
            if (!nb) {
                e = RELAY_ENOMEM;
                snprintf(why, sizeof why, "inference server out of memory");
            } else {
                memcpy(nb, s->rep, s->rep_used);
                free(s->rep);
                s->rep = nb;
                s->rep_cap = cap;
            }
        }
        it->width = width;
    }
    if (e) {
        uint64_t n = atomic_load_explicit(&s->rejected, memory_order_relaxed);
        add_relaxed(&s->rejected, 1);
        if (n < WARN_FIRST)
            rly_warn(MOD, "refused an inference request: %s%s", why,
                     n + 1 == WARN_FIRST ? " (further refusals are only counted)" : "");
        uint64_t id = 0;
        if (len >= 16)
            memcpy(&id, (const uint8_t *)data + 8, 8);
        *err_len = rly_iw_rep_error(s->err, id, -1, e, why);
        return e;
    }
    if (s->n == 0) {
        s->first_ns = rly_now_ns();
        s->expect = s->prev;
    }
    s->rep_off[s->n] = s->rep_used;
    s->rep_used += need;
    s->rows += it->req.rows;
    s->n++;
    return RELAY_OK;
}

bool rly_isrv_full(const rly_isrv *s)
{
    return s->rows >= s->o.max_batch || s->n >= s->cap;
}

void rly_isrv_run(rly_isrv *s)
{
    if (s->n == 0)
        return;
    int64_t t0 = rly_now_ns();
    if (rly_isrv_complete(s))
        add_relaxed(&s->closed_early, 1);
    add_relaxed(&s->gather_ns, (uint64_t)(t0 - s->first_ns));
    for (size_t i = 0; i < s->n; i++) {
        rly_tp_infer_item *it = &s->items[i];
        it->status = RELAY_EINTERNAL;
        it->why[0] = 0;
        it->version = -1;
        rly_iw_rep_layout(s->rep + s->rep_off[i], it->req.id, -1, it->req.rows, it->width,
                          &it->actions, &it->logp, &it->value);
    }
    s->fn(s->ctx, s->items, s->n, s->rows);
    uint64_t failed = 0;
    for (size_t i = 0; i < s->n; i++) {
        rly_tp_infer_item *it = &s->items[i];
        uint8_t *r = s->rep + s->rep_off[i];
        if (it->status == RELAY_OK) {
            memcpy(r + 16, &it->version, 8);
            s->rep_len[i] = rly_iw_rep_size(it->req.rows, it->width);
        } else {
            failed++;
            s->rep_len[i] = rly_iw_rep_error(r, it->req.id, it->version, it->status,
                                             it->why[0] ? it->why : relay_strerror(it->status));
        }
    }
    uint32_t b = s->rows <= 1 ? 0 : 32u - (uint32_t)__builtin_clz(s->rows - 1);
    add_relaxed(&s->hist[b < RLY_TP_INFER_BUCKETS ? b : RLY_TP_INFER_BUCKETS - 1], 1);
    add_relaxed(&s->requests, s->n);
    add_relaxed(&s->rows_total, s->rows);
    add_relaxed(&s->batches, 1);
    add_relaxed(&s->failed, failed);
    add_relaxed(&s->serve_ns, (uint64_t)(rly_now_ns() - t0));
    if (s->rows > atomic_load_explicit(&s->max_rows, memory_order_relaxed))
        atomic_store_explicit(&s->max_rows, s->rows, memory_order_relaxed);
}

const uint8_t *rly_isrv_reply(const rly_isrv *s, size_t i, size_t *len)
{
    *len = s->rep_len[i];
    return s->rep + s->rep_off[i];
}

void rly_isrv_clear(rly_isrv *s)
{
    if (s->n) { /* a batch ends: its clients are the next one's expected (when all known) */
        s->prev = s->noted == s->n ? s->in_batch : UINT32_MAX;
        s->batch_no++;
    }
    s->in_batch = 0;
    s->expect = 0;
    s->noted = 0;
    s->n = 0;
    s->rows = 0;
    s->rep_used = 0;
}

void rly_isrv_stats(rly_isrv *s, rly_tp_infer_stats *out)
{
    memset(out, 0, sizeof *out);
    out->requests = atomic_load_explicit(&s->requests, memory_order_relaxed);
    out->rows = atomic_load_explicit(&s->rows_total, memory_order_relaxed);
    out->batches = atomic_load_explicit(&s->batches, memory_order_relaxed);
    out->rejected = atomic_load_explicit(&s->rejected, memory_order_relaxed);
    out->failed = atomic_load_explicit(&s->failed, memory_order_relaxed);
    out->max_rows = (uint32_t)atomic_load_explicit(&s->max_rows, memory_order_relaxed);
    out->closed_early = atomic_load_explicit(&s->closed_early, memory_order_relaxed);
    out->gather_ns = atomic_load_explicit(&s->gather_ns, memory_order_relaxed);
    out->serve_ns = atomic_load_explicit(&s->serve_ns, memory_order_relaxed);
    for (int i = 0; i < RLY_TP_INFER_BUCKETS; i++)
        out->hist[i] = atomic_load_explicit(&s->hist[i], memory_order_relaxed);
}
