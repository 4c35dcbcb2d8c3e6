/* Worker pool: a bounded MPMC run queue of tasks, one spinning worker at most, futex parking. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "core/pool.h"

#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/thread.h"

/* Task state bits: SCHED while queued or running, NOTIFIED when work arrived since the run began.
 */
#define SCHED 1u
#define NOTIFIED 2u

/* Each task is in the run queue at most once (SCHED), so this bounds the live tasks of a pool. */
#define RUNQ_CAP (1u << 14)
#define MAX_WORKERS 1024u

typedef struct cell {
    _Atomic size_t seq;
    rly_task *task;
} cell;

struct rly_pool {
    _Alignas(RLY_CACHELINE) _Atomic size_t tail; /* next enqueue position */
    _Alignas(RLY_CACHELINE) _Atomic size_t head; /* next dequeue position */
    _Alignas(RLY_CACHELINE) _Atomic uint32_t n_spinning;
    _Atomic uint32_t n_sleeping;
    _Atomic uint32_t wake_word; /* futex: bumped to wake a parked worker */
    _Atomic bool stop;
    _Alignas(RLY_CACHELINE) cell *cells;
    uint32_t n_workers;
    rly_thread *threads;
};

static _Thread_local rly_task *tls_task;
static _Thread_local bool tls_worker;      /* this thread is one of a pool's workers */
static _Thread_local rly_pool *tls_pool;   /* pool an off-pool thread last queued a task on */
static _Thread_local uint32_t tls_callers; /* rly_pool_caller_runs depth */
static _Thread_local bool tls_owed;        /* a wake-up was skipped for the caller to help */
/* Tasks a caller-runs thread scheduled and will run itself (FIFO, all on tls_pool): they skip the
   shared run queue, so a round trip costs no atomic read-modify-write on its lines. They are
   moved to the run queue (and a worker woken) by rly_pool_settle. */
#define LOCAL_CAP 64u
static _Thread_local rly_task *tls_local[LOCAL_CAP];
static _Thread_local uint32_t tls_lhead, tls_ltail;

/* ---- run queue (Vyukov's bounded MPMC queue of task pointers) ------------------------------ */

static bool runq_push(rly_pool *p, rly_task *t)
{
    size_t pos = atomic_load_explicit(&p->tail, memory_order_relaxed);
    for (;;) {
        cell *c = &p->cells[pos & (RUNQ_CAP - 1)];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)pos;
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&p->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                c->task = t;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return true;
            }
        } else if (diff < 0) {
            return false;
        } else {
            pos = atomic_load_explicit(&p->tail, memory_order_relaxed);
        }
    }
}

static rly_task *runq_pop(rly_pool *p)
{
    size_t pos = atomic_load_explicit(&p->head, memory_order_relaxed);
    for (;;) {
        cell *c = &p->cells[pos & (RUNQ_CAP - 1)];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)(pos + 1);
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(&p->head, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                rly_task *t = c->task;
                atomic_store_explicit(&c->seq, pos + RUNQ_CAP, memory_order_release);
                return t;
            }
        } else if (diff < 0) {
            return NULL;
        } else {
            pos = atomic_load_explicit(&p->head, memory_order_relaxed);
        }
    }
}

/* runq_busy reports (racily) whether tasks are waiting in the run queue. */
static bool runq_busy(rly_pool *p)
{
    return atomic_load_explicit(&p->tail, memory_order_seq_cst) !=
           atomic_load_explicit(&p->head, memory_order_seq_cst);
}

/* ---- parking ------------------------------------------------------------------------------- */

static void futex_wait(_Atomic uint32_t *word, uint32_t expect, int64_t timeout_ns)
{
    struct timespec ts = {.tv_sec = timeout_ns / RLY_NS_PER_S,
                          .tv_nsec = timeout_ns % RLY_NS_PER_S};
    syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expect, &ts, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *word, int n)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

/* wake_one wakes a parked worker when work is queued and no worker is spinning for it. */
static void wake_one(rly_pool *p)
{
    rly_full_fence(&p->n_sleeping);
    if (atomic_load_explicit(&p->n_spinning, memory_order_seq_cst) == 0 &&
        atomic_load_explicit(&p->n_sleeping, memory_order_seq_cst) > 0) {
        atomic_fetch_add_explicit(&p->wake_word, 1, memory_order_seq_cst);
        futex_wake(&p->wake_word, 1);
    }
}

static void enqueue(rly_pool *p, rly_task *t)
{
    while (!runq_push(p, t))
        sched_yield(); /* more than RUNQ_CAP live tasks: a bug, but never lose one */
    wake_one(p);
}

/*
 * idle_wait finds the next task for an idle worker. One worker at a time spins for RLY_SPIN_NS
 * (pause, then sched_yield, so a caller on this core is not starved); the others park at once.
 * Returns NULL on stop or after a parked wait (the caller looks again).
 */
static bool take_spin(rly_pool *p)
{
    uint32_t zero = 0;
    return atomic_compare_exchange_strong_explicit(&p->n_spinning, &zero, 1, memory_order_seq_cst,
                                                   memory_order_relaxed);
}

static void drop_spin(rly_pool *p, bool *spinner)
{
    if (*spinner) {
        atomic_fetch_sub_explicit(&p->n_spinning, 1, memory_order_seq_cst);
        *spinner = false;
    }
}

static rly_task *idle_wait(rly_pool *p, bool *spinner)
{
    if (*spinner || take_spin(p)) {
        *spinner = false; /* the role is given back on every way out below */
        rly_backoff b = {0};
        for (;;) {
            rly_task *t = runq_pop(p);
            if (t || atomic_load_explicit(&p->stop, memory_order_acquire)) {
                atomic_fetch_sub_explicit(&p->n_spinning, 1, memory_order_seq_cst);
                return t;
            }
            if (rly_backoff_idle(&b, RLY_SPIN_NS))
                break;
        }
        atomic_fetch_sub_explicit(&p->n_spinning, 1, memory_order_seq_cst);
    }
    /* Announce, read the word, look once more, then sleep: a producer that pushed before the
       announcement is seen by the look; one that pushed after it bumps the word. */
    atomic_fetch_add_explicit(&p->n_sleeping, 1, memory_order_seq_cst);
    uint32_t w = atomic_load_explicit(&p->wake_word, memory_order_seq_cst);
    rly_task *t = runq_pop(p);
    if (!t && !atomic_load_explicit(&p->stop, memory_order_acquire))
        futex_wait(&p->wake_word, w, 100 * RLY_NS_PER_MS);
    atomic_fetch_sub_explicit(&p->n_sleeping, 1, memory_order_seq_cst);
    return t;
}

/*
 * run_task runs t until it is idle, done, or must yield the worker to other queued tasks. When t
 * goes idle the worker takes the spinner role (if free) before letting t go, so a producer that
 * notifies t right after finds a spinner and does not wake a parked worker (a request/reply
 * ping-pong then stays on one worker without a futex call per round trip).
 */
static void run_task(rly_pool *p, rly_task *t, bool *spinner)
{
    for (;;) {
        /* Clear NOTIFIED before looking for work: a notify from now on makes it run again. */
        atomic_exchange_explicit(&t->state, SCHED, memory_order_seq_cst);
        tls_task = t;
        rly_task_status st = t->run(t);
        tls_task = NULL;
        if (st == RLY_TASK_DONE)
            return; /* t may be freed already */
        if (st == RLY_TASK_IDLE) {
            if (!*spinner)
                *spinner = take_spin(p);
            uint32_t expect = SCHED;
            if (atomic_compare_exchange_strong_explicit(&t->state, &expect, 0, memory_order_seq_cst,
                                                        memory_order_seq_cst))
                return; /* the caller looks for work next, spinner role and all */
            /* Notified while running: it has work again. */
            drop_spin(p, spinner);
        }
        if (runq_busy(p)) {
            /* Others are waiting: to the back of the queue. No wake-up: this worker takes the
               next task at once, and it woke a helper when it found the queue busy. */
            while (!runq_push(p, t))
                sched_yield();
            return;
        }
    }
}

static void *worker_main(void *arg)
{
    rly_pool *p = arg;
    tls_worker = true;
    bool spinner = false; /* this worker holds the pool's one spinner role */
    for (;;) {
        rly_task *t = runq_pop(p);
        if (t) {
            drop_spin(p, &spinner);
        } else {
            if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
                drop_spin(p, &spinner);
                break;
            }
            if (!(t = idle_wait(p, &spinner)))
                continue;
        }
        if (runq_busy(p))
            wake_one(p); /* more queued than this worker takes: keep the others busy */
        run_task(p, t, &spinner);
    }
    return NULL;
}

uint32_t rly_pool_default_workers(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return (uint32_t)n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (uint32_t)n : 1;
}

relay_err rly_pool_new(uint32_t n, rly_pool **out)
{
    if (!out)
        return RELAY_EINVAL;
    if (n == 0)
        n = rly_pool_default_workers();
    if (n > MAX_WORKERS)
        return RELAY_ETOOBIG;
    rly_pool *p = aligned_alloc(RLY_CACHELINE, sizeof *p);
    if (!p)
        return RELAY_ENOMEM;
    memset(p, 0, sizeof *p);
    p->cells = calloc(RUNQ_CAP, sizeof *p->cells);
    p->threads = calloc(n, sizeof *p->threads);
    if (!p->cells || !p->threads) {
        free(p->cells);
        free(p->threads);
        free(p);
        return RELAY_ENOMEM;
    }
    for (size_t i = 0; i < RUNQ_CAP; i++)
        atomic_init(&p->cells[i].seq, i);
    atomic_init(&p->tail, 0);
    atomic_init(&p->head, 0);
    atomic_init(&p->n_spinning, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->wake_word, 0);
    atomic_init(&p->stop, false);
    relay_err e = RELAY_OK;
    for (uint32_t i = 0; i < n && !e; i++) {
        char name[16];
        snprintf(name, sizeof name, "relay-w%u", i);
        e = rly_thread_start(&p->threads[i], worker_main, p, name);
        if (!e)
            p->n_workers++;
    }
    if (e) {
        rly_pool_free(p);
        return e;
    }
    *out = p;
    return RELAY_OK;
}

void rly_pool_free(rly_pool *p)
{
    if (!p)
        return;
    atomic_store_explicit(&p->stop, true, memory_order_seq_cst);
    atomic_fetch_add_explicit(&p->wake_word, 1, memory_order_seq_cst);
    futex_wake(&p->wake_word, INT_MAX);
    for (uint32_t i = 0; i < p->n_workers; i++)
        rly_thread_join(p->threads[i]);
    free(p->threads);
    free(p->cells);
    free(p);
}

uint32_t rly_pool_workers(const rly_pool *p)
{
    return p->n_workers;
}

void rly_task_init(rly_task *t, rly_pool *p, rly_task_fn fn)
{
    atomic_init(&t->state, 0);
    t->run = fn;
    t->pool = p;
}

void rly_task_notify(rly_task *t)
{
    /* Order the caller's new work before reading the state (the worker clears NOTIFIED with a
       full barrier before it looks for work, so one of the two sides sees the other). */
    rly_full_fence(&t->state);
    if (atomic_load_explicit(&t->state, memory_order_relaxed) & NOTIFIED)
        return; /* already told, and it has not started looking yet */
    uint32_t prev = atomic_fetch_or_explicit(&t->state, SCHED | NOTIFIED, memory_order_seq_cst);
    if (prev & SCHED)
        return;
    rly_pool *p = t->pool;
    if (tls_worker || tls_task) {
        enqueue(p, t);
        return;
    }
    /* Off the pool: remember the pool so this thread can help while it waits, and in a
       caller-runs scope leave the wake-up to rly_pool_settle (the caller runs t itself). */
    if (tls_owed && tls_pool != p)
        rly_pool_settle(); /* the wake-up skipped on another pool is due now */
    tls_pool = p;
    if (!tls_callers) {
        enqueue(p, t);
        return;
    }
    tls_owed = true;
    if (tls_ltail - tls_lhead < LOCAL_CAP) {
        tls_local[tls_ltail++ % LOCAL_CAP] = t; /* SCHED is set: nobody else queues it */
        return;
    }
    while (!runq_push(p, t))
        sched_yield();
}

void rly_pool_caller_runs(bool on)
{
    if (on) {
        tls_callers++;
        return;
    }
    if (tls_callers && --tls_callers == 0)
        rly_pool_settle();
}

void rly_pool_settle(void)
{
    if (!tls_owed)
        return;
    tls_owed = false;
    rly_pool *p = tls_pool;
    /* Tasks kept for this thread go to the run queue, in order, for the workers. */
    while (tls_lhead != tls_ltail) {
        rly_task *t = tls_local[tls_lhead++ % LOCAL_CAP];
        while (!runq_push(p, t))
            sched_yield();
    }
    if (p && runq_busy(p))
        wake_one(p);
}

bool rly_pool_help(bool (*done)(void *), void *arg)
{
    rly_pool *p = tls_pool;
    if (!p || !tls_callers || tls_worker || tls_task)
        return false;
    rly_task *t = tls_lhead != tls_ltail ? tls_local[tls_lhead++ % LOCAL_CAP] : runq_pop(p);
    if (!t)
        return false;
    /* Same protocol as a worker (run_task): t was popped, so nobody else runs it now. */
    for (;;) {
        atomic_exchange_explicit(&t->state, SCHED, memory_order_seq_cst);
        tls_task = t;
        rly_task_status st = t->run(t);
        tls_task = NULL;
        if (st == RLY_TASK_DONE)
            return true;
        if (st == RLY_TASK_IDLE) {
            uint32_t expect = SCHED;
            if (atomic_compare_exchange_strong_explicit(&t->state, &expect, 0, memory_order_seq_cst,
                                                        memory_order_seq_cst))
                return true;
        }
        /* Work left: go on only while the caller still waits and no other task is queued;
           otherwise hand t to the workers (woken, since the caller may stop helping now), or
           behind this thread's own queued tasks while it still waits. */
        bool waited = done && done(arg);
        if (!waited && tls_lhead != tls_ltail && tls_ltail - tls_lhead < LOCAL_CAP) {
            tls_local[tls_ltail++ % LOCAL_CAP] = t;
            return true;
        }
        if (waited || tls_lhead != tls_ltail || runq_busy(p)) {
            enqueue(p, t);
            return true;
        }
    }
}

rly_task *rly_task_current(void)
{
    return tls_task;
}
