/* Gathering, checking and answering central inference requests (infer_srv.h). */
#include "transport/infer_srv.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define MOD "infer"
#define WARN_FIRST 5 /* rejects logged one by one; then only counted */

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
    if (!s->items || !s->rep_off || !s->rep_len || !s->rep) {
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
    s->items = NULL;
    s->rep_off = s->rep_len = NULL;
    s->rep = NULL;
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
    for (int i = 0; i < RLY_TP_INFER_BUCKETS; i++)
        out->hist[i] = atomic_load_explicit(&s->hist[i], memory_order_relaxed);
}
