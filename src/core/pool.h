/*
 * rly_pool: a fixed set of worker threads that run cooperative tasks (routers, for the routing
 * layer), so any number of tasks share a few threads and adding tasks never adds threads.
 *
 * A task is a unit of ownership that is run by at most one worker at a time: its `run` function
 * does one bounded slice of work and says whether more is left. A producer that hands a task
 * work (e.g. pushes into its queue) calls rly_task_notify() afterwards; the task is then queued
 * on the pool's run queue unless it already is, or is running (then it runs again afterwards).
 * Tasks with work left go to the back of the run queue, so tasks share the workers round-robin.
 *
 * Ownership and threads: the pool owns its workers; tasks are owned by their creator, who must
 * not free one until its run function returned RLY_TASK_DONE (the task's last act may be to
 * signal that, e.g. by completing a reply; the worker never touches it afterwards). Any thread
 * may notify. Idle workers: at most one spins briefly (with sched_yield, so callers keep their
 * cores), the others park on a futex and are woken only when work is queued and nobody spins.
 */
#ifndef RLY_CORE_POOL_H
#define RLY_CORE_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "relay/err.h"

typedef struct rly_pool rly_pool;
typedef struct rly_task rly_task;

/* What a task's run function reports after one slice. */
typedef enum rly_task_status {
    RLY_TASK_IDLE = 0, /* nothing left: run again only after the next notify */
    RLY_TASK_MORE = 1, /* work left: queue again behind the other tasks */
    RLY_TASK_DONE = 2  /* finished for good: the pool never touches the task again */
} rly_task_status;

/* rly_task_fn runs one bounded slice of t's work on a pool worker. */
typedef rly_task_status (*rly_task_fn)(rly_task *t);

/* rly_task is embedded in its owner's object; initialise it with rly_task_init. */
struct rly_task {
    _Atomic uint32_t state; /* scheduling bits (pool.c) */
    rly_task_fn run;
    rly_pool *pool;
};

/* rly_pool_new starts n worker threads (0: one per CPU this process may use). */
relay_err rly_pool_new(uint32_t n, rly_pool **out);

/* rly_pool_free stops and joins the workers; every task must be done or never notified. */
void rly_pool_free(rly_pool *p);

/* rly_pool_workers returns the number of worker threads. */
uint32_t rly_pool_workers(const rly_pool *p);

/* rly_pool_default_workers returns the number of CPUs this process may run on (>= 1). */
uint32_t rly_pool_default_workers(void);

/* rly_task_init prepares t to run fn on p's workers (not scheduled until notified). */
void rly_task_init(rly_task *t, rly_pool *p, rly_task_fn fn);

/* rly_task_notify schedules t to run; call after making its new work visible. */
void rly_task_notify(rly_task *t);

/* rly_task_current returns the task the calling thread is running, or NULL. */
rly_task *rly_task_current(void);

/*
 * Caller runs. A thread that queues work for tasks and then waits for its results (a request
 * waiting for replies) may run those tasks itself instead of handing them to a worker: no
 * cross-thread hand-off, no wake-up, and no starvation when other processes hold the cores.
 *
 * rly_pool_caller_runs(true) opens such a scope on the calling (non-worker) thread: tasks it
 * notifies are queued without waking a worker, and the thread promises to call rly_pool_help
 * (or a reply/latch wait, which does) until its results are in; rly_pool_caller_runs(false)
 * closes the scope and wakes a worker for anything it left queued (rly_pool_settle). Scopes
 * nest. A helping caller takes tasks from the run queue like a worker, so each task is still
 * run by one thread at a time, in order; it must hold no lock that a task's run may take.
 */
void rly_pool_caller_runs(bool on);

/* rly_pool_help runs one queued task (slices until idle, done(arg) or others queued); false if
   none was queued or the thread is outside a caller-runs scope. done may be NULL. */
bool rly_pool_help(bool (*done)(void *), void *arg);

/* rly_pool_settle wakes a worker for tasks this thread queued without a wake-up (before it
   parks or stops helping). */
void rly_pool_settle(void);

#endif
