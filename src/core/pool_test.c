/* Tests for the worker pool's caller-runs path: tasks a waiting caller keeps for itself, overflow
   to the shared run queue, hand-over to the workers when it stops helping, one runner at a time. */
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "core/clock.h"
#include "core/pool.h"

typedef struct ttask {
    rly_task task; /* first: the run function casts back */
    _Atomic int running;
    _Atomic int overlaps;
    _Atomic uint32_t runs;   /* slices run */
    _Atomic uint32_t slices; /* slices left of the current job (MORE until 0) */
} ttask;

static rly_task_status t_run(rly_task *t)
{
    ttask *x = (ttask *)t;
    if (atomic_exchange(&x->running, 1) != 0)
        atomic_fetch_add(&x->overlaps, 1);
    atomic_fetch_add(&x->runs, 1);
    uint32_t left = atomic_load(&x->slices);
    if (left > 0)
        atomic_store(&x->slices, left - 1);
    atomic_store(&x->running, 0);
    return left > 1 ? RLY_TASK_MORE : RLY_TASK_IDLE;
}

enum { N = 200 }; /* more than a caller keeps for itself: some go to the shared run queue */

static ttask *make_tasks(rly_pool *p)
{
    ttask *ts = calloc(N, sizeof *ts);
    assert_non_null(ts);
    for (int i = 0; i < N; i++)
        rly_task_init(&ts[i].task, p, t_run);
    return ts;
}

static bool wait_runs(ttask *ts, uint32_t want)
{
    int64_t deadline = rly_now_ns() + 20 * RLY_NS_PER_S;
    for (;;) {
        bool all = true;
        for (int i = 0; i < N && all; i++)
            all = atomic_load(&ts[i].runs) >= want && atomic_load(&ts[i].slices) == 0;
        if (all)
            return true;
        if (rly_now_ns() > deadline)
            return false;
        rly_sleep_ns(RLY_NS_PER_MS);
    }
}

/* The caller runs what it notified while it helps; what it leaves when it stops helping is run by
   the workers; every notify leads to a run. */
static void caller_runs_then_hands_over(void **state)
{
    rly_pool *p;
    assert_ok(rly_pool_new(2, &p));
    ttask *ts = make_tasks(p);
    rly_pool_caller_runs(true);
    for (int i = 0; i < N; i++) {
        atomic_store(&ts[i].slices, 1);
        rly_task_notify(&ts[i].task);
    }
    while (rly_pool_help(NULL, NULL))
        ;
    rly_pool_caller_runs(false);
    assert_true(wait_runs(ts, 1)); /* workers may have taken some from the shared queue */
    /* Notify again and stop helping at once: the workers must run every one of them. */
    rly_pool_caller_runs(true);
    for (int i = 0; i < N; i++) {
        atomic_store(&ts[i].slices, 1);
        rly_task_notify(&ts[i].task);
    }
    rly_pool_caller_runs(false);
    assert_true(wait_runs(ts, 2));
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&ts[i].overlaps), 0);
    rly_pool_free(p);
    free(ts);
}

typedef struct {
    ttask *ts;
    _Atomic bool stop;
} notifier;

static void *notify_loop(void *arg)
{
    notifier *n = arg;
    uint64_t x = 88172645463325252ull;
    while (!atomic_load(&n->stop)) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ttask *t = &n->ts[x % N];
        rly_task_notify(&t->task);
        if ((x & 63) == 0)
            rly_sleep_ns(10 * RLY_NS_PER_US);
    }
    return NULL;
}

/* Tasks with several slices each, run by a helping caller and the workers while another thread
   keeps notifying them: each runs until its work is done, never on two threads at once. */
static void slices_never_overlap(void **state)
{
    rly_pool *p;
    assert_ok(rly_pool_new(2, &p));
    ttask *ts = make_tasks(p);
    notifier n = {.ts = ts};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, notify_loop, &n), 0);
    int rounds = test_sanitized() ? 5 : 50;
    for (int r = 0; r < rounds; r++) {
        rly_pool_caller_runs(true);
        for (int i = 0; i < N; i++) {
            atomic_store(&ts[i].slices, (uint32_t)(1 + (i + r) % 5));
            rly_task_notify(&ts[i].task);
        }
        for (int k = 0; k < N / 2 && rly_pool_help(NULL, NULL); k++)
            ;
        rly_pool_caller_runs(false); /* the rest goes to the workers */
        assert_true(wait_runs(ts, (uint32_t)r + 1));
    }
    atomic_store(&n.stop, true);
    pthread_join(th, NULL);
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&ts[i].overlaps), 0);
    /* Let notifications still in flight finish before the tasks go. */
    rly_sleep_ns(20 * RLY_NS_PER_MS);
    rly_pool_free(p);
    free(ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(caller_runs_then_hands_over),
        cmocka_unit_test(slices_never_overlap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
