/* pthread wrappers, the futex-based event, and sleeping. */
#include "core/thread.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/clock.h"

static void check(int rc, const char *what)
{
    if (rc != 0) {
        /* A failing lock/condvar call is a programming error, never a user error. */
        fprintf(stderr, "relay: fatal: %s failed: %s\n", what, strerror(rc));
        abort();
    }
}

relay_err rly_thread_start(rly_thread *t, void *(*fn)(void *), void *arg, const char *name)
{
    int rc = pthread_create(t, NULL, fn, arg);
    if (rc == EAGAIN)
        return RELAY_EAGAIN;
    if (rc != 0)
        return RELAY_ENOMEM;
    if (name) {
        char short_name[16];
        snprintf(short_name, sizeof short_name, "%s", name);
        pthread_setname_np(*t, short_name);
    }
    return RELAY_OK;
}

void rly_thread_join(rly_thread t)
{
    check(pthread_join(t, NULL), "pthread_join");
}

void rly_mutex_init(rly_mutex *m)
{
    check(pthread_mutex_init(m, NULL), "pthread_mutex_init");
}

void rly_mutex_fini(rly_mutex *m)
{
    check(pthread_mutex_destroy(m), "pthread_mutex_destroy");
}

void rly_mutex_lock(rly_mutex *m)
{
    check(pthread_mutex_lock(m), "pthread_mutex_lock");
}

void rly_mutex_unlock(rly_mutex *m)
{
    check(pthread_mutex_unlock(m), "pthread_mutex_unlock");
}

bool rly_mutex_trylock(rly_mutex *m)
{
    int r = pthread_mutex_trylock(m);
    if (r != EBUSY)
        check(r, "pthread_mutex_trylock");
    return r == 0;
}

void rly_cond_init(rly_cond *c)
{
    pthread_condattr_t a;
    check(pthread_condattr_init(&a), "pthread_condattr_init");
    check(pthread_condattr_setclock(&a, CLOCK_MONOTONIC), "pthread_condattr_setclock");
    check(pthread_cond_init(c, &a), "pthread_cond_init");
    pthread_condattr_destroy(&a);
}

void rly_cond_fini(rly_cond *c)
{
    check(pthread_cond_destroy(c), "pthread_cond_destroy");
}

bool rly_cond_wait_until(rly_cond *c, rly_mutex *m, int64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = deadline_ns / RLY_NS_PER_S,
                          .tv_nsec = deadline_ns % RLY_NS_PER_S};
    int rc = pthread_cond_timedwait(c, m, &ts);
    if (rc == ETIMEDOUT)
        return false;
    check(rc, "pthread_cond_timedwait");
    return true;
}

void rly_cond_wait(rly_cond *c, rly_mutex *m)
{
    check(pthread_cond_wait(c, m), "pthread_cond_wait");
}

void rly_cond_broadcast(rly_cond *c)
{
    check(pthread_cond_broadcast(c), "pthread_cond_broadcast");
}

void rly_event_park(rly_event *e, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / RLY_NS_PER_S;
        ts.tv_nsec = timeout_ns % RLY_NS_PER_S;
        tsp = &ts;
    }
    if (atomic_load_explicit(&e->state, memory_order_acquire) == 2)
        syscall(SYS_futex, &e->state, FUTEX_WAIT_PRIVATE, 2, tsp, NULL, 0);
    atomic_store_explicit(&e->state, 0, memory_order_seq_cst);
}

void rly_event_wake_slow(rly_event *e)
{
    if (atomic_exchange_explicit(&e->state, 1, memory_order_seq_cst) == 2)
        syscall(SYS_futex, &e->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int64_t rly_backoff_now(void)
{
    return rly_now_ns();
}

void rly_sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {.tv_sec = ns / RLY_NS_PER_S, .tv_nsec = ns % RLY_NS_PER_S};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}
