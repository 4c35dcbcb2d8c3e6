/*
 * Hot-reload handle.
 *
 * The handle holds an atomic pointer to the current version (a reference-counted, immutable
 * model). Loading that pointer and then incrementing the version's count is a race with a
 * writer that replaces and frees the version in between, so readers first pin the handle in
 * one of two epoch counters:
 *
 *   reader: e = epoch; pins[e & 1]++; if epoch != e { pins[e & 1]--; retry }
 *           v = cur; v->refs++; pins[e & 1]--
 *   writer: old = exchange(cur, new); e = epoch++; wait until pins[e & 1] == 0; unref(old)
 *
 * A reader that pinned in epoch e may have loaded old; the writer waits for exactly those
 * (a few instructions each). A reader pinning after the epoch moved sees the new pointer, since
 * the exchange precedes the epoch increment (all sequentially consistent). Readers therefore
 * never wait for a writer, and never touch a freed version; a version is freed by whichever of
 * the writer or its last reader drops the last reference. Writers are serialised by a mutex.
 */
#include <sched.h>
#include <stdlib.h>

#include "core/log.h"
#include "core/thread.h"
#include "model/model_int.h"

typedef struct rly_model_ver {
    _Atomic int64_t refs;
    relay_model *model;
    int64_t version;
} rly_model_ver;

struct relay_model_handle {
    _Alignas(RLY_CACHELINE) _Atomic(rly_model_ver *) cur;
    _Atomic int64_t cur_version;
    _Alignas(RLY_CACHELINE) _Atomic uint64_t epoch;
    _Alignas(RLY_CACHELINE) _Atomic int64_t pins0;
    _Alignas(RLY_CACHELINE) _Atomic int64_t pins1;
    _Alignas(RLY_CACHELINE) rly_mutex wlock;
};

static _Atomic int64_t *pins(relay_model_handle *h, uint64_t e)
{
    return (e & 1) ? &h->pins1 : &h->pins0;
}

static void ver_unref(rly_model_ver *v)
{
    if (v && atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) == 1) {
        relay_model_free(v->model);
        free(v);
    }
}

relay_err relay_model_handle_new(relay_model_handle **out)
{
    if (!out)
        return RELAY_EINVAL;
    relay_model_handle *h = aligned_alloc(RLY_CACHELINE, sizeof *h);
    if (!h)
        return RELAY_ENOMEM;
    atomic_init(&h->cur, NULL);
    atomic_init(&h->cur_version, -1);
    atomic_init(&h->epoch, 0);
    atomic_init(&h->pins0, 0);
    atomic_init(&h->pins1, 0);
    rly_mutex_init(&h->wlock);
    *out = h;
    return RELAY_OK;
}

void relay_model_handle_free(relay_model_handle *h)
{
    if (!h)
        return;
    ver_unref(atomic_exchange(&h->cur, NULL));
    rly_mutex_fini(&h->wlock);
    free(h);
}

relay_err relay_model_handle_publish(relay_model_handle *h, relay_model *m, int64_t version)
{
    if (!h || !m)
        return RELAY_EINVAL;
    rly_model_ver *v = malloc(sizeof *v);
    if (!v)
        return RELAY_ENOMEM;
    atomic_init(&v->refs, 1); /* the handle's reference */
    v->model = m;
    v->version = version;
    rly_mutex_lock(&h->wlock);
    rly_model_ver *old = atomic_exchange(&h->cur, v);
    atomic_store(&h->cur_version, version);
    const uint64_t e = atomic_fetch_add(&h->epoch, 1);
    _Atomic int64_t *p = pins(h, e);
    for (unsigned spins = 0; atomic_load(p) != 0; spins++) {
        if (spins < 64)
            rly_cpu_relax();
        else
            sched_yield();
    }
    rly_mutex_unlock(&h->wlock);
    ver_unref(old);
    return RELAY_OK;
}

relay_err relay_model_handle_acquire(relay_model_handle *h, relay_model_ref *ref)
{
    if (!h || !ref)
        return RELAY_EINVAL;
    ref->model = NULL;
    ref->version = -1;
    ref->priv_ = NULL;
    rly_model_ver *v;
    for (;;) {
        const uint64_t e = atomic_load(&h->epoch);
        _Atomic int64_t *p = pins(h, e);
        atomic_fetch_add(p, 1);
        if (atomic_load(&h->epoch) != e) {
            atomic_fetch_sub(p, 1);
            continue;
        }
        v = atomic_load(&h->cur);
        if (v)
            atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
        atomic_fetch_sub_explicit(p, 1, memory_order_release);
        break;
    }
    if (!v)
        return RELAY_ENOMODEL;
    ref->model = v->model;
    ref->version = v->version;
    ref->priv_ = v;
    return RELAY_OK;
}

void relay_model_handle_release(relay_model_handle *h, relay_model_ref *ref)
{
    (void)h;
    if (!ref)
        return;
    ver_unref(ref->priv_);
    ref->model = NULL;
    ref->version = -1;
    ref->priv_ = NULL;
}

bool relay_model_handle_refresh(relay_model_handle *h, relay_model_ref *ref)
{
    if (!h || !ref)
        return false;
    if (atomic_load_explicit(&h->cur, memory_order_acquire) == ref->priv_)
        return false;
    relay_model_ref fresh;
    if (relay_model_handle_acquire(h, &fresh) != RELAY_OK)
        return false;
    relay_model_handle_release(h, ref);
    *ref = fresh;
    return true;
}

int64_t relay_model_handle_version(relay_model_handle *h)
{
    return h ? atomic_load_explicit(&h->cur_version, memory_order_acquire) : -1;
}
