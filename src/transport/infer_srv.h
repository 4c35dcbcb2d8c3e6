/*
 * rly_isrv: the transport-independent half of serving central inference: it checks requests,
 * gathers them into a batch, calls the server's rly_tp_infer_fn once per batch and lays out the
 * replies. Each implementation's inference thread owns one rly_isrv and is its only user; the
 * counters are also read (relaxed) by rly_tp_infer_stats_get from any thread.
 *
 * Memory: items, offsets and the reply area are allocated at init for max_batch requests; the
 * reply area grows (rarely: only for a request wider than any before) and never shrinks, so a
 * steady stream of requests allocates nothing here.
 */
#ifndef RLY_TRANSPORT_INFER_SRV_H
#define RLY_TRANSPORT_INFER_SRV_H

#include <stdatomic.h>

#include "transport/transport.h"

typedef struct rly_isrv {
    rly_tp_infer_opts o;
    rly_tp_infer_fn fn;
    void *ctx;
    rly_tp_infer_item *items;
    size_t n, cap;
    uint32_t rows;
    uint8_t *rep; /* replies, one 16-aligned slot per item */
    size_t rep_cap, rep_used;
    size_t *rep_off, *rep_len;
    uint8_t err[RLY_IW_HDR + RLY_IW_TEXT_MAX]; /* the last rejected request's reply */
    /* clients (rly_isrv_note_peer): open-addressed table of (key, last batch asked in) */
    uint64_t *peer_key, *peer_last, *peer_tmp;
    size_t peer_used;
    uint64_t batch_no;
    uint32_t expect;   /* clients of the previous batch, plus newcomers in this one */
    uint32_t in_batch; /* distinct clients with a request in this batch */
    uint32_t prev;     /* distinct clients of the previous batch */
    size_t noted;      /* requests of this batch whose client is known */
    int64_t first_ns;  /* when this batch's first request came */
    _Atomic uint64_t requests, rows_total, batches, rejected, failed, max_rows;
    _Atomic uint64_t closed_early, gather_ns, serve_ns;
    _Atomic uint64_t hist[RLY_TP_INFER_BUCKETS];
} rly_isrv;

/* rly_isrv_init prepares s for batches bounded by o (defaults filled in). */
relay_err rly_isrv_init(rly_isrv *s, const rly_tp_infer_opts *o, rly_tp_infer_fn fn, void *ctx);

/* rly_isrv_fini frees s's buffers. */
void rly_isrv_fini(rly_isrv *s);

/*
 * rly_isrv_add checks one request (borrowed: its bytes must stay valid until rly_isrv_clear) and
 * adds it as item s->n - 1. Otherwise it counts a reject, logs the first few, and leaves an error
 * reply in s->err (*err_len bytes) for the caller to send back.
 */
relay_err rly_isrv_add(rly_isrv *s, const void *data, size_t len, size_t *err_len);

/* rly_isrv_full reports whether the batch reached max_batch rows (or its item capacity). */
bool rly_isrv_full(const rly_isrv *s);

/* rly_isrv_note_peer says which client sent the request just added (a nonzero key, e.g. a hash
   of its ZeroMQ routing id); transports that cannot tell clients apart never call it. */
void rly_isrv_note_peer(rly_isrv *s, uint64_t key);

/* rly_isrv_complete reports whether every expected client has a request in the batch (all its
   requests noted), so waiting longer cannot add any; false with opts.wait_always. */
bool rly_isrv_complete(const rly_isrv *s);

/* rly_isrv_run serves the batch: calls fn, then finishes every reply. */
void rly_isrv_run(rly_isrv *s);

/* rly_isrv_reply returns item i's reply bytes (after rly_isrv_run). */
const uint8_t *rly_isrv_reply(const rly_isrv *s, size_t i, size_t *len);

/* rly_isrv_clear empties the batch. */
void rly_isrv_clear(rly_isrv *s);

/* rly_isrv_stats copies the counters. */
void rly_isrv_stats(rly_isrv *s, rly_tp_infer_stats *out);

/* rly_isrv_wait_ns returns the batch wait (o.max_wait_ns after defaults). */
int64_t rly_isrv_wait_ns(const rly_isrv *s);

#endif
