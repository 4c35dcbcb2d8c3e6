/* Threads, locks and a spin-then-park event: thin wrappers that abort only on programming errors.
 */
#ifndef RLY_CORE_THREAD_H
#define RLY_CORE_THREAD_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "relay/err.h"

#define RLY_CACHELINE 64

#if defined(__SANITIZE_THREAD__)
#define RLY_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RLY_TSAN 1
#endif
#endif

/*
 * rly_full_fence orders earlier stores before later loads. TSan does not model fences, so under
 * TSan a seq_cst read-modify-write on the given word stands in for it (a full barrier as well).
 */
static inline void rly_full_fence(_Atomic uint32_t *word)
{
#ifdef RLY_TSAN
    atomic_fetch_add_explicit(word, 0, memory_order_seq_cst);
#else
    (void)word;
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* rly_cpu_relax tells the CPU the caller is spinning. */
static inline void rly_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef pthread_t rly_thread;

/* rly_thread_start starts fn(arg) on a new thread named name (<= 15 chars shown). */
relay_err rly_thread_start(rly_thread *t, void *(*fn)(void *), void *arg, const char *name);

/* rly_thread_join waits for t to finish. */
void rly_thread_join(rly_thread t);

typedef pthread_mutex_t rly_mutex;
typedef pthread_cond_t rly_cond;

/* rly_mutex_init initialises a non-recursive mutex. */
void rly_mutex_init(rly_mutex *m);
/* rly_mutex_fini destroys m. */
void rly_mutex_fini(rly_mutex *m);
/* rly_mutex_lock locks m. */
void rly_mutex_lock(rly_mutex *m);
/* rly_mutex_unlock unlocks m. */
void rly_mutex_unlock(rly_mutex *m);
/* rly_mutex_trylock locks m if it is free and reports whether it did. */
bool rly_mutex_trylock(rly_mutex *m);
/* rly_cond_init initialises a condition variable on the monotonic clock. */
void rly_cond_init(rly_cond *c);
/* rly_cond_fini destroys c. */
void rly_cond_fini(rly_cond *c);
/* rly_cond_wait_until waits on c until signalled or the monotonic deadline; false on timeout. */
bool rly_cond_wait_until(rly_cond *c, rly_mutex *m, int64_t deadline_ns);
/* rly_cond_wait waits on c until signalled. */
void rly_cond_wait(rly_cond *c, rly_mutex *m);
/* rly_cond_broadcast wakes every waiter of c. */
void rly_cond_broadcast(rly_cond *c);

/*
 * rly_event is a one-waiter wake-up flag for an owner thread that spins, then parks.
 * Protocol (no lost wake-ups): the waiter calls rly_event_prepare(), re-checks its
 * queues, then rly_event_park() or rly_event_cancel(); a producer makes its item
 * visible and then calls rly_event_notify(), which costs one fence and one load
 * unless the waiter is parked.
 */
typedef struct rly_event {
    _Atomic uint32_t state; /* 0 idle, 1 notified, 2 parked */
} rly_event;

/* rly_event_init sets e idle. */
static inline void rly_event_init(rly_event *e)
{
    atomic_init(&e->state, 0);
}

/* rly_event_prepare announces that the owner is about to park. */
static inline void rly_event_prepare(rly_event *e)
{
    atomic_store_explicit(&e->state, 2, memory_order_seq_cst);
    rly_full_fence(&e->state);
}

/* rly_event_cancel withdraws a prepare because work was found. */
static inline void rly_event_cancel(rly_event *e)
{
    atomic_store_explicit(&e->state, 0, memory_order_relaxed);
}

/* rly_event_park sleeps until notified or timeout_ns elapses (< 0: no timeout). */
void rly_event_park(rly_event *e, int64_t timeout_ns);

/* rly_event_wake_slow wakes a parked owner; called by rly_event_notify. */
void rly_event_wake_slow(rly_event *e);

/*
 * rly_backoff paces an idle owner thread: a few pause rounds, then sched_yield() (which hands the
 * core to any runnable thread, so waiting does not starve workers on a small machine) until
 * spin_ns have passed, then it tells the caller to park. Parking costs a futex wake-up (tens of
 * microseconds in a VM), so the spin window covers the gaps of a busy request/reply loop.
 */
typedef struct rly_backoff {
    uint32_t rounds;
    int64_t since_ns;
} rly_backoff;

/* RLY_SPIN_NS is the default spin window of idle routing threads and reply waiters. */
#define RLY_SPIN_NS 50000

/* rly_backoff_reset starts a new idle period (call whenever work was found). */
static inline void rly_backoff_reset(rly_backoff *b)
{
    b->rounds = 0;
}

/* rly_backoff_wait_ns returns the monotonic clock (clock.h is not needed by every includer). */
int64_t rly_backoff_now(void);

/* rly_backoff_idle waits a little and returns true once the caller should park. */
static inline bool rly_backoff_idle(rly_backoff *b, int64_t spin_ns)
{
    if (b->rounds < 64) {
        b->rounds++;
        rly_cpu_relax();
        return false;
    }
    int64_t now = rly_backoff_now();
    if (b->rounds++ == 64)
        b->since_ns = now;
    if (now - b->since_ns < spin_ns) {
        sched_yield();
        return false;
    }
    b->rounds = 0;
    return true;
}

/* rly_event_notify wakes the owner if it is parked; call after publishing work. */
static inline void rly_event_notify(rly_event *e)
{
    rly_full_fence(&e->state);
    if (atomic_load_explicit(&e->state, memory_order_relaxed) == 2)
        rly_event_wake_slow(e);
}

#endif
