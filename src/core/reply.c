/* One-shot replies with shared ownership, and latches that wake once per batch. */
#include "core/reply.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/pool.h"

static void latch_ref(rly_latch *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
}

rly_latch *rly_latch_new(int64_t count)
{
    rly_latch *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    atomic_init(&l->refs, 1);
    atomic_init(&l->remaining, count);
    rly_event_init(&l->ev);
    return l;
}

void rly_latch_release(rly_latch *l)
{
    if (l && atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) == 1) {
        free(l->storage);
        free(l);
    }
}

bool rly_latch_reuse(rly_latch *l, int64_t count)
{
    if (atomic_load_explicit(&l->refs, memory_order_acquire) != 1)
        return false;
    atomic_store_explicit(&l->remaining, count, memory_order_relaxed);
    rly_event_init(&l->ev);
    return true;
}

void *rly_latch_storage(rly_latch *l, size_t bytes)
{
    if (bytes > l->storage_cap) {
        size_t cap = l->storage_cap ? l->storage_cap : 4096;
        while (cap < bytes)
            cap *= 2;
        void *p = realloc(l->storage, cap);
        if (!p)
            return NULL;
        l->storage = p;
        l->storage_cap = cap;
    }
    return l->storage;
}

void rly_latch_count_down(rly_latch *l)
{
    latch_ref(l); /* keep l alive across the wake even if the waiter returns at once */
    if (atomic_fetch_sub_explicit(&l->remaining, 1, memory_order_acq_rel) == 1)
        rly_event_notify(&l->ev);
    rly_latch_release(l);
}

/* wait_until spins, then parks on ev, until done() holds or the deadline passes. */
static bool wait_until(rly_event *ev, bool (*done)(void *), void *arg, int64_t timeout_ns)
{
    rly_backoff b = {0};
    int64_t spin = timeout_ns >= 0 && timeout_ns < RLY_SPIN_NS ? timeout_ns : RLY_SPIN_NS;
    int64_t deadline = -1;
    do {
        if (done(arg)) {
            rly_pool_settle();
            return true;
        }
        /* Caller runs: in a caller-runs scope, run queued router tasks here (core/pool.h);
           while there is such work the spin window restarts, but the deadline still holds. */
        if (rly_pool_help(done, arg)) {
            int64_t now = rly_now_ns();
            if (deadline < 0 && timeout_ns >= 0)
                deadline = now + timeout_ns;
            if (deadline >= 0 && now >= deadline)
                break;
            rly_backoff_reset(&b);
        }
    } while (!rly_backoff_idle(&b, spin));
    rly_pool_settle(); /* about to park: whatever is still queued needs a worker */
    if (deadline < 0 && timeout_ns >= 0)
        deadline = rly_now_ns() + timeout_ns;
    for (;;) {
        rly_event_prepare(ev);
        if (done(arg)) {
            rly_event_cancel(ev);
            return true;
        }
        int64_t left = -1;
        if (deadline >= 0) {
            left = deadline - rly_now_ns();
            if (left <= 0) {
                rly_event_cancel(ev);
                return done(arg);
            }
        }
        rly_event_park(ev, left);
    }
}

static bool latch_done(void *arg)
{
    rly_latch *l = arg;
    return atomic_load_explicit(&l->remaining, memory_order_acquire) <= 0;
}

relay_err rly_latch_wait(rly_latch *l, int64_t timeout_ns)
{
    return wait_until(&l->ev, latch_done, l, timeout_ns) ? RELAY_OK : RELAY_ETIMEDOUT;
}

/*
 * Replies are recycled through a small per-thread cache: a reply goes back to the cache of the
 * thread that drops its last reference and is reused only by that thread, so request/reply loops
 * do not pay malloc/free per round trip. The cache is freed when its thread exits.
 */
#define REPLY_CACHE_MAX 256

typedef struct reply_cache {
    rly_reply *head;
    unsigned n;
} reply_cache;

static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void cache_free(void *p)
{
    reply_cache *c = p;
    while (c->head) {
        rly_reply *r = c->head;
        c->head = r->next_free;
        free(r);
    }
    free(c);
}

static void cache_key_init(void)
{
    pthread_key_create(&cache_key, cache_free);
}

static reply_cache *cache_get(void)
{
    pthread_once(&cache_once, cache_key_init);
    reply_cache *c = pthread_getspecific(cache_key);
    if (!c) {
        c = calloc(1, sizeof *c);
        if (c && pthread_setspecific(cache_key, c) != 0) {
            free(c);
            c = NULL;
        }
    }
    return c;
}

rly_reply *rly_reply_new_in(rly_latch *latch)
{
    reply_cache *c = cache_get();
    rly_reply *r;
    if (c && c->head) {
        r = c->head;
        c->head = r->next_free;
        c->n--;
        memset(r, 0, sizeof *r);
    } else {
        r = calloc(1, sizeof *r);
        if (!r)
            return NULL;
    }
    atomic_init(&r->refs, 2);
    atomic_init(&r->done, 0);
    rly_event_init(&r->ev);
    if (latch) {
        latch_ref(latch);
        r->latch = latch;
    }
    return r;
}

rly_reply *rly_reply_new(void)
{
    return rly_reply_new_in(NULL);
}

static void reply_unref(rly_reply *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (r->ptr && r->ptr_free)
        r->ptr_free(r->ptr);
    rly_latch_release(r->latch);
    reply_cache *c = cache_get();
    if (c && c->n < REPLY_CACHE_MAX) {
        r->next_free = c->head;
        c->head = r;
        c->n++;
    } else {
        free(r);
    }
}

relay_err rly_reply_complete(rly_reply *r, relay_err status, int64_t value, void *ptr,
                             void (*ptr_free)(void *))
{
    uint32_t expect = 0;
    if (!atomic_compare_exchange_strong_explicit(&r->done, &expect, 1, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        if (ptr && ptr_free)
            ptr_free(ptr);
        return RELAY_ESTATE;
    }
    r->status = status;
    r->value = value;
    r->ptr = ptr;
    r->ptr_free = ptr_free;
    rly_latch *latch = r->latch;
    if (latch)
        latch_ref(latch);
    atomic_store_explicit(&r->done, 2, memory_order_release);
    rly_event_notify(&r->ev);
    if (latch) {
        rly_latch_count_down(latch);
        rly_latch_release(latch);
    }
    reply_unref(r);
    return RELAY_OK;
}

static bool reply_done(void *arg)
{
    rly_reply *r = arg;
    return atomic_load_explicit(&r->done, memory_order_acquire) == 2;
}

bool rly_reply_is_done(rly_reply *r)
{
    return reply_done(r);
}

relay_err rly_reply_wait(rly_reply *r, int64_t timeout_ns, int64_t *value, void **ptr)
{
    if (!wait_until(&r->ev, reply_done, r, timeout_ns))
        return RELAY_ETIMEDOUT;
    if (value)
        *value = r->value;
    if (ptr) {
        *ptr = r->ptr;
        r->ptr = NULL;
    }
    return r->status;
}

void rly_reply_release(rly_reply *r)
{
    if (r)
        reply_unref(r);
}
