/* Router-side trajectory buffers (bounded, block or drop-oldest) and the sink worker. */
#include "sink/buffer.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

#define MOD "buffer"

/*
 * Wake-ups. A consumer (the learner) wants trajectories soon: a push wakes the worker once
 * WAKE_BATCH are queued and the worker polls every WORKER_POLL_NS. Sinks alone want few wake-ups
 * (each one costs the routers a context switch on a small machine): a push wakes the worker only
 * at a quarter of the buffer and the worker polls every WORKER_POLL_SINK_NS. Every buffer also
 * wakes it at half full, and shutdown, retire and flush wake it at once.
 */
#define WAKE_BATCH 16
#define WORKER_POLL_NS (200 * RLY_NS_PER_US)
#define WORKER_POLL_SINK_NS (2 * RLY_NS_PER_MS)
#define WORKER_IDLE_NS (10 * RLY_NS_PER_MS)
/* Most emptied trajectories a buffer keeps for reuse beyond its capacity (one worker batch). */
#define SPARE_MAX 4096

struct rly_tbuf {
    rly_traj_out out; /* first: actors see only this */
    rly_sinkworker *w;
    rly_mutex lock;
    rly_cond not_full;
    relay_traj **ring;
    uint32_t cap, head, count;
    uint32_t wake_at;        /* queued trajectories that wake a worker without a consumer */
    _Atomic uint32_t queued; /* count, stored under lock, read without it to skip empty buffers */
    rly_backpressure policy;
    bool retiring;
    relay_traj **spare; /* emptied trajectories handed back by the worker for reuse */
    uint32_t n_spare, cap_spare;
    rly_tbuf_stats st;
    rly_tbuf *next, *prev; /* worker's list of all buffers (w->lock) */
    _Atomic bool listed;   /* on the worker's ready stack (or being put there) */
    rly_tbuf *rnext;       /* ready stack link, written by whoever set `listed` */
    rly_tbuf *tnext;       /* worker's retire list (w->lock) */
};

struct rly_sinkworker {
    rly_mutex lock; /* protects the buffer list, retired totals and stop */
    rly_cond changed;
    rly_tbuf *bufs;        /* every attached buffer, doubly linked */
    rly_tbuf *retire_list; /* buffers asked to retire and not reaped yet */
    /* Buffers that received trajectories since the worker last drained them (a lock-free stack
       that the worker takes whole): a poll costs O(busy buffers), not O(routers). */
    _Atomic(rly_tbuf *) ready;
    rly_tbuf_stats retired;
    bool stop;
    rly_event wake;
    rly_thread thread;
    bool started;
    _Atomic bool halted;       /* the worker thread has exited: nobody drains any more */
    _Atomic uint32_t retiring; /* buffers asked to retire and not reaped yet */
    relay_sink **sinks;
    size_t n_sinks;
    uint32_t batch;
    _Atomic(rly_sink_consumer) consumer; /* may be set once while running */
    void *_Atomic consumer_ctx;
    _Atomic uint64_t written;
    _Atomic uint64_t ns_write, ns_consume; /* worker thread only writes them */
    relay_traj **scratch;
};

static void tbuf_push(rly_traj_out *o, relay_traj *t)
{
    rly_tbuf *b = (rly_tbuf *)o;
    relay_traj *evicted = NULL;
    rly_mutex_lock(&b->lock);
    if (b->count == b->cap) {
        if (b->policy == RLY_BP_DROP_OLDEST) {
            evicted = b->ring[b->head];
            b->head = (b->head + 1) % b->cap;
            b->count--;
            b->st.dropped++;
        } else {
            b->st.blocked++;
            while (b->count == b->cap) {
                if (atomic_load_explicit(&b->w->halted, memory_order_acquire)) {
                    /* Nobody will drain: make room rather than wait forever (counted). */
                    evicted = b->ring[b->head];
                    b->head = (b->head + 1) % b->cap;
                    b->count--;
                    b->st.dropped++;
                    break;
                }
                rly_cond_wait_until(&b->not_full, &b->lock, rly_now_ns() + 10 * RLY_NS_PER_MS);
            }
        }
    }
    b->ring[(b->head + b->count) % b->cap] = t;
    b->count++;
    b->st.accepted++;
    uint32_t queued = b->count;
    atomic_store_explicit(&b->queued, queued, memory_order_relaxed);
    rly_mutex_unlock(&b->lock);
    if (evicted) {
        rly_warn(MOD, "trajectory buffer full: dropped the oldest trajectory (%u steps)",
                 evicted->len);
        relay_traj_free(evicted);
    }
    /* Tell the worker this buffer has work, once until it drains it (it clears `listed` before
       draining, so a trajectory pushed after its drain lists the buffer again). */
    if (!atomic_load_explicit(&b->listed, memory_order_seq_cst) &&
        !atomic_exchange_explicit(&b->listed, true, memory_order_seq_cst)) {
        rly_sinkworker *w = b->w;
        rly_tbuf *h = atomic_load_explicit(&w->ready, memory_order_relaxed);
        do
            b->rnext = h;
        while (!atomic_compare_exchange_weak_explicit(&w->ready, &h, b, memory_order_release,
                                                      memory_order_relaxed));
    }
    /* Wake the worker for a batch, not for every trajectory: it also polls (see WAKE_BATCH). */
    if (queued >= b->wake_at || queued * 2 >= b->cap ||
        (queued >= WAKE_BATCH && atomic_load_explicit(&b->w->consumer, memory_order_relaxed)))
        rly_event_notify(&b->w->wake);
}

/* tbuf_destroy frees an empty, detached buffer and its spare trajectories. */
static void tbuf_destroy(rly_tbuf *b)
{
    for (uint32_t i = 0; i < b->n_spare; i++)
        relay_traj_free(b->spare[i]);
    free(b->spare);
    rly_cond_fini(&b->not_full);
    rly_mutex_fini(&b->lock);
    free(b->ring);
    free(b);
}

static relay_traj *tbuf_take(rly_traj_out *o, const relay_step_spec *spec, uint32_t max_len)
{
    rly_tbuf *b = (rly_tbuf *)o;
    relay_traj *t = NULL;
    rly_mutex_lock(&b->lock);
    for (uint32_t i = b->n_spare; i-- > 0;) {
        relay_traj *c = b->spare[i];
        if (c->max_len == max_len && relay_step_spec_eq(&c->spec, spec)) {
            b->spare[i] = b->spare[--b->n_spare];
            t = c;
            break;
        }
    }
    rly_mutex_unlock(&b->lock);
    if (t) {
        relay_traj_clear(t);
        t->env_label[0] = '\0';
        t->env_id = -1;
        t->episode = 0;
        t->policy_version = 0;
    }
    return t;
}

/* recycle keeps up to cap_spare emptied trajectories of b for its actors; frees the rest. */
static void recycle(rly_tbuf *b, relay_traj **t, uint32_t n)
{
    uint32_t k = 0;
    rly_mutex_lock(&b->lock);
    while (k < n && b->n_spare < b->cap_spare)
        b->spare[b->n_spare++] = t[k++];
    rly_mutex_unlock(&b->lock);
    for (; k < n; k++)
        relay_traj_free(t[k]);
}

/* drain_one moves up to max trajectories out of b; returns how many. */
static uint32_t drain_one(rly_tbuf *b, relay_traj **out, uint32_t max)
{
    /* Most buffers are empty at any poll (thousands of routers): no lock for those. A push that
       this misses wakes the worker or is found at the next poll. */
    if (atomic_load_explicit(&b->queued, memory_order_relaxed) == 0)
        return 0;
    rly_mutex_lock(&b->lock);
    uint32_t n = b->count < max ? b->count : max;
    for (uint32_t i = 0; i < n; i++) {
        out[i] = b->ring[b->head];
        b->head = (b->head + 1) % b->cap;
    }
    b->count -= n;
    atomic_store_explicit(&b->queued, b->count, memory_order_relaxed);
    b->st.drained += n;
    if (n)
        rly_cond_broadcast(&b->not_full);
    rly_mutex_unlock(&b->lock);
    return n;
}

static void add_ns(_Atomic uint64_t *c, int64_t ns)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)ns,
                          memory_order_relaxed);
}

static void deliver(rly_sinkworker *w, rly_tbuf *b, relay_traj **t, uint32_t n)
{
    int64_t t0 = rly_now_ns();
    for (size_t s = 0; s < w->n_sinks; s++) {
        relay_err e = relay_sink_write_batch(w->sinks[s], t, n);
        if (e)
            rly_debug(MOD, "sink %s: %s", relay_sink_name(w->sinks[s]), relay_strerror(e));
    }
    int64_t t1 = rly_now_ns();
    add_ns(&w->ns_write, t1 - t0);
    rly_sink_consumer fn = atomic_load_explicit(&w->consumer, memory_order_acquire);
    if (fn) {
        void *ctx = atomic_load_explicit(&w->consumer_ctx, memory_order_relaxed);
        for (uint32_t i = 0; i < n; i++)
            fn(ctx, t[i]);
        add_ns(&w->ns_consume, rly_now_ns() - t1);
    } else {
        recycle(b, t, n);
    }
    atomic_fetch_add_explicit(&w->written, n, memory_order_relaxed);
}

/* drain_all passes on everything queued in the buffers on the ready stack; returns whether
   anything was found. */
static bool drain_all(rly_sinkworker *w)
{
    bool any = false;
    rly_tbuf *b = atomic_exchange_explicit(&w->ready, NULL, memory_order_acquire);
    while (b) {
        rly_tbuf *next = b->rnext;
        /* Clear before draining: a push that the drain misses lists b again. */
        atomic_store_explicit(&b->listed, false, memory_order_seq_cst);
        uint32_t n;
        while ((n = drain_one(b, w->scratch, w->batch)) > 0) {
            deliver(w, b, w->scratch, n);
            any = true;
        }
        b = next;
    }
    return any;
}

/* reap frees retiring buffers that are empty and wakes their retire() callers. */
static void reap(rly_sinkworker *w)
{
    /* Nothing asked to retire: nothing to do (and no walk over thousands of buffers). */
    if (atomic_load_explicit(&w->retiring, memory_order_seq_cst) == 0)
        return;
    rly_mutex_lock(&w->lock);
    rly_tbuf **pp = &w->retire_list;
    bool changed = false;
    while (*pp) {
        rly_tbuf *b = *pp;
        rly_mutex_lock(&b->lock);
        bool done = b->count == 0 && !atomic_load_explicit(&b->listed, memory_order_seq_cst);
        rly_mutex_unlock(&b->lock);
        if (done) {
            *pp = b->tnext;
            b->tnext = NULL;
            if (b->prev)
                b->prev->next = b->next;
            else
                w->bufs = b->next;
            if (b->next)
                b->next->prev = b->prev;
            b->next = b->prev = NULL;
            w->retired.accepted += b->st.accepted;
            w->retired.dropped += b->st.dropped;
            w->retired.blocked += b->st.blocked;
            w->retired.drained += b->st.drained;
            b->w = NULL; /* tells retire() it may free b */
            atomic_fetch_sub_explicit(&w->retiring, 1, memory_order_relaxed);
            changed = true;
        } else {
            pp = &b->tnext;
        }
    }
    if (changed)
        rly_cond_broadcast(&w->changed);
    rly_mutex_unlock(&w->lock);
}

static void *worker_main(void *arg)
{
    rly_sinkworker *w = arg;
    int64_t last_work = rly_now_ns();
    for (;;) {
        bool any = drain_all(w);
        reap(w);
        rly_mutex_lock(&w->lock);
        bool stop = w->stop;
        rly_mutex_unlock(&w->lock);
        if (stop && !any) {
            drain_all(w);
            reap(w);
            break;
        }
        int64_t now = rly_now_ns();
        if (any) {
            last_work = now;
            continue;
        }
        rly_event_prepare(&w->wake);
        /* A retire waits for us: look again instead of sleeping through its wake-up. */
        if (atomic_load_explicit(&w->retiring, memory_order_seq_cst)) {
            rly_event_cancel(&w->wake);
            continue;
        }
        int64_t poll = atomic_load_explicit(&w->consumer, memory_order_relaxed)
                           ? WORKER_POLL_NS
                           : WORKER_POLL_SINK_NS;
        rly_event_park(&w->wake, now - last_work < 100 * RLY_NS_PER_MS ? poll : WORKER_IDLE_NS);
    }
    for (size_t s = 0; s < w->n_sinks; s++)
        relay_sink_flush(w->sinks[s]);
    atomic_store_explicit(&w->halted, true, memory_order_release);
    rly_mutex_lock(&w->lock);
    rly_cond_broadcast(&w->changed);
    rly_mutex_unlock(&w->lock);
    return NULL;
}

relay_err rly_sinkworker_set_consumer(rly_sinkworker *w, rly_sink_consumer consumer, void *ctx)
{
    if (!w || !consumer)
        return RELAY_EINVAL;
    rly_sink_consumer none = NULL;
    if (atomic_load(&w->consumer) != NULL)
        return RELAY_EEXIST;
    atomic_store_explicit(&w->consumer_ctx, ctx, memory_order_relaxed);
    return atomic_compare_exchange_strong_explicit(&w->consumer, &none, consumer,
                                                   memory_order_release, memory_order_relaxed)
               ? RELAY_OK
               : RELAY_EEXIST;
}

relay_err rly_sinkworker_new(relay_sink *const *sinks, size_t n_sinks, uint32_t batch,
                             rly_sink_consumer consumer, void *consumer_ctx, rly_sinkworker **out)
{
    rly_sinkworker *w = calloc(1, sizeof *w);
    if (!w)
        return RELAY_ENOMEM;
    w->batch = batch ? batch : 256;
    w->scratch = malloc(w->batch * sizeof *w->scratch);
    w->sinks = n_sinks ? malloc(n_sinks * sizeof *w->sinks) : NULL;
    if (!w->scratch || (n_sinks && !w->sinks)) {
        free(w->scratch);
        free(w->sinks);
        free(w);
        return RELAY_ENOMEM;
    }
    if (n_sinks)
        memcpy(w->sinks, sinks, n_sinks * sizeof *sinks);
    w->n_sinks = n_sinks;
    atomic_init(&w->consumer_ctx, consumer_ctx);
    atomic_init(&w->consumer, consumer);
    rly_mutex_init(&w->lock);
    rly_cond_init(&w->changed);
    rly_event_init(&w->wake);
    relay_err e = rly_thread_start(&w->thread, worker_main, w, "relay-sink");
    if (e) {
        rly_cond_fini(&w->changed);
        rly_mutex_fini(&w->lock);
        free(w->scratch);
        free(w->sinks);
        free(w);
        return e;
    }
    w->started = true;
    *out = w;
    return RELAY_OK;
}

void rly_sinkworker_stop(rly_sinkworker *w)
{
    if (!w || !w->started)
        return;
    rly_mutex_lock(&w->lock);
    w->stop = true;
    rly_mutex_unlock(&w->lock);
    rly_event_wake_slow(&w->wake);
    rly_thread_join(w->thread);
    w->started = false;
}

void rly_sinkworker_free(rly_sinkworker *w)
{
    if (!w)
        return;
    rly_sinkworker_stop(w);
    /* Buffers still attached (never retired): whatever is left was drained at stop. */
    rly_tbuf *b = w->bufs;
    while (b) {
        rly_tbuf *next = b->next;
        for (uint32_t i = 0; i < b->count; i++)
            relay_traj_free(b->ring[(b->head + i) % b->cap]);
        tbuf_destroy(b);
        b = next;
    }
    rly_cond_fini(&w->changed);
    rly_mutex_fini(&w->lock);
    free(w->scratch);
    free(w->sinks);
    free(w);
}

void rly_sinkworker_kick(rly_sinkworker *w)
{
    if (w)
        rly_event_wake_slow(&w->wake);
}

uint64_t rly_sinkworker_written(rly_sinkworker *w)
{
    return atomic_load_explicit(&w->written, memory_order_relaxed);
}

relay_err rly_tbuf_new(rly_sinkworker *w, uint32_t capacity, rly_backpressure policy,
                       rly_tbuf **out)
{
    if (!w || capacity == 0)
        return RELAY_EINVAL;
    rly_tbuf *b = calloc(1, sizeof *b);
    if (!b)
        return RELAY_ENOMEM;
    b->ring = malloc(capacity * sizeof *b->ring);
    if (!b->ring) {
        free(b);
        return RELAY_ENOMEM;
    }
    /* Room for every trajectory that is neither recorded nor queued (up to a worker batch more
       than the buffer holds), so recycling never frees one a router then allocates again. */
    b->cap_spare = capacity + w->batch;
    if (b->cap_spare > SPARE_MAX)
        b->cap_spare = SPARE_MAX;
    b->wake_at = capacity / 4 > WAKE_BATCH ? capacity / 4 : WAKE_BATCH;
    b->spare = malloc(b->cap_spare * sizeof *b->spare);
    if (!b->spare) {
        free(b->ring);
        free(b);
        return RELAY_ENOMEM;
    }
    b->out.push = tbuf_push;
    b->out.take = tbuf_take;
    b->w = w;
    b->cap = capacity;
    b->policy = policy;
    rly_mutex_init(&b->lock);
    rly_cond_init(&b->not_full);
    rly_mutex_lock(&w->lock);
    b->next = w->bufs;
    if (w->bufs)
        w->bufs->prev = b;
    w->bufs = b;
    rly_mutex_unlock(&w->lock);
    *out = b;
    return RELAY_OK;
}

rly_traj_out *rly_tbuf_out(rly_tbuf *b)
{
    return &b->out;
}

void rly_tbuf_retire(rly_tbuf *b)
{
    if (!b)
        return;
    rly_sinkworker *w = b->w;
    rly_mutex_lock(&b->lock);
    b->retiring = true;
    rly_mutex_unlock(&b->lock);
    rly_mutex_lock(&w->lock);
    b->tnext = w->retire_list;
    w->retire_list = b;
    rly_mutex_unlock(&w->lock);
    atomic_fetch_add_explicit(&w->retiring, 1, memory_order_seq_cst);
    rly_event_notify(&w->wake);
    rly_mutex_lock(&w->lock);
    while (b->w && !atomic_load_explicit(&w->halted, memory_order_acquire))
        rly_cond_wait_until(&w->changed, &w->lock, rly_now_ns() + 10 * RLY_NS_PER_MS);
    bool reaped = b->w == NULL;
    rly_mutex_unlock(&w->lock);
    if (!reaped)
        return; /* worker already stopped: rly_sinkworker_free releases it */
    tbuf_destroy(b);
}

void rly_tbuf_get_stats(rly_tbuf *b, rly_tbuf_stats *out)
{
    rly_mutex_lock(&b->lock);
    *out = b->st;
    rly_mutex_unlock(&b->lock);
}

void rly_sinkworker_times(rly_sinkworker *w, double *write_s, double *consume_s)
{
    *write_s = (double)atomic_load_explicit(&w->ns_write, memory_order_relaxed) * 1e-9;
    *consume_s = (double)atomic_load_explicit(&w->ns_consume, memory_order_relaxed) * 1e-9;
}

void rly_sinkworker_totals(rly_sinkworker *w, rly_tbuf_stats *out)
{
    rly_mutex_lock(&w->lock);
    *out = w->retired;
    for (rly_tbuf *b = w->bufs; b; b = b->next) {
        rly_tbuf_stats s;
        rly_tbuf_get_stats(b, &s);
        out->accepted += s.accepted;
        out->dropped += s.dropped;
        out->blocked += s.blocked;
        out->drained += s.drained;
    }
    rly_mutex_unlock(&w->lock);
}
