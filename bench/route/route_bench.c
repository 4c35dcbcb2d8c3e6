/*
 * bench_route: routing throughput and latency.
 *   one-way: a producer thread sends sequenced messages (batches of 64) -> dispatcher -> router ->
 *            actor, for (actors, routers) = (4, 1), (64, 4), (1024, 16); messages/s until the
 *            last one is delivered.
 *   request/reply: ModelVersion-style requests whose reply the actor completes, with 1 and 64
 *            outstanding; round trips/s and p50/p99/p99.9 latency.
 * The one-way cases run twice: with the fast path (senders push straight to the owning router
 * once an actor is settled; the default) and with every message through the dispatcher thread.
 * Request/reply runs with 1, 4, 16 and 256 routers (routers are tasks on the default worker pool,
 * one thread per CPU), then again while one busy-looping process per CPU competes (--busy).
 * The request/reply caller runs the routers its requests wait on while it waits (caller runs,
 * core/pool.h), as relay_agent's request path does; --no-caller-runs leaves them to the workers.
 * Usage: bench_route [messages_millions=20] [round_trips_thousands=500] [--rr-only] [--no-busy]
 *                    [--busy-only] [--one-way-only] [--no-caller-runs] [--routers R] [--outstanding
 * K]
 * --routers and --outstanding pick one request/reply case (e.g. for perf record).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coord/coordinator.h"
#include "core/clock.h"
#include "core/pool.h"

static bool caller_runs = true;
static uint32_t only_routers;     /* --routers R: request/reply with R routers only */
static uint32_t only_actors;      /* --actors A: one-way with A actors only */
static int only_fast = -1;        /* --direct / --via: one-way on that path only */
static size_t queue_cap;          /* --queue-cap N: router intake capacity (0: default) */
static uint32_t only_outstanding; /* --outstanding K: request/reply with K outstanding only */

typedef struct {
    rly_actor_slot slot;
    int64_t next;
    uint64_t errors;
    _Alignas(64) _Atomic uint64_t delivered; /* written by the owning router only */
} bactor;

static void b_deliver(rly_actor_slot *slot, rly_msg *m)
{
    bactor *a = slot->actor;
    if (m->proto == RLY_SHUTDOWN)
        return;
    if (m->reply) {
        rly_reply_complete(m->reply, RELAY_OK, m->arg, NULL, NULL);
        return;
    }
    if (m->arg != a->next)
        a->errors++;
    a->next = m->arg + 1;
    atomic_store_explicit(&a->delivered, (uint64_t)a->next, memory_order_release);
}

static const rly_actor_ops b_ops = {.deliver = b_deliver};

static rly_coord *setup(uint32_t routers, uint32_t n_actors, bactor **out, bool fast)
{
    rly_coord_config cfg;
    rly_coord_config_default(&cfg);
    cfg.routers = routers;
    if (queue_cap)
        cfg.router_queue_capacity = queue_cap;
    cfg.dispatcher.no_fast_path = !fast;
    rly_coord *c = NULL;
    if (rly_coord_new(&cfg, &c) != RELAY_OK) {
        fprintf(stderr, "cannot start the runtime\n");
        exit(1);
    }
    bactor *a = aligned_alloc(64, n_actors * sizeof *a);
    memset(a, 0, n_actors * sizeof *a);
    for (uint32_t i = 0; i < n_actors; i++) {
        a[i].slot.id = relay_id_from_seed(1, i);
        a[i].slot.actor = &a[i];
        a[i].slot.ops = &b_ops;
        if (rly_coord_add_actor(c, &a[i].slot) != RELAY_OK) {
            fprintf(stderr, "cannot add actor\n");
            exit(1);
        }
    }
    *out = a;
    return c;
}

/* cpu_ns returns the CPU time all of this process's threads used so far. */
static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* threads_cpu_ns sums the CPU time (10 ms ticks) of this process's threads named prefix*. */
static int64_t threads_cpu_ns(const char *prefix)
{
    DIR *dir = opendir("/proc/self/task");
    if (!dir)
        return 0;
    int64_t sum = 0;
    long hz = sysconf(_SC_CLK_TCK);
    struct dirent *de;
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        char *open = strchr(buf, '('), *close = strrchr(buf, ')');
        if (!open || !close || strncmp(open + 1, prefix, strlen(prefix)) != 0)
            continue;
        unsigned long ut = 0, st = 0;
        /* fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt
           cmajflt utime stime */
        if (sscanf(close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2)
            sum += (int64_t)(ut + st) * (1000000000 / hz);
    }
    closedir(dir);
    return sum;
}

/* CPU nanoseconds per operation of the last measured case: on this shared machine the wall-clock
   rate mostly measures how much CPU the other users leave us, this does not. */
static double last_cpu_per_op, last_disp_per_op, last_workers_per_op;

static uint64_t delivered_total(bactor *a, uint32_t n)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < n; i++)
        sum += atomic_load_explicit(&a[i].delivered, memory_order_acquire);
    return sum;
}

static double one_way(uint32_t n_actors, uint32_t routers, uint64_t total, bool fast)
{
    bactor *a;
    rly_coord *c = setup(routers, n_actors, &a, fast);
    int64_t *seq = calloc(n_actors, sizeof *seq);
    enum { B = 64 };
    rly_msg batch[B];
    uint64_t sent = 0;
    uint32_t k = 0;
    int64_t d0 = threads_cpu_ns("relay-disp"), w0 = threads_cpu_ns("relay-w");
    int64_t c0 = cpu_ns();
    int64_t t0 = rly_now_ns();
    while (sent < total) {
        for (int i = 0; i < B; i++) {
            /* Runs of 8 messages per actor, round-robin over actors. */
            if ((sent + (uint64_t)i) % 8 == 0)
                k = (k + 1) % n_actors;
            batch[i] =
                rly_msg_data(a[k].slot.id, RLY_FLAG_LAST_INFERENCE, seq[k]++, NULL, NULL, NULL);
        }
        size_t off = 0;
        while (off < B) {
            relay_err e;
            off += rly_dispatcher_send_batch(c->disp, batch + off, B - off, &e);
            if (off < B && e != RELAY_EFULL) {
                fprintf(stderr, "send failed: %s\n", relay_strerror(e));
                exit(1);
            }
        }
        sent += B;
    }
    while (delivered_total(a, n_actors) < total)
        rly_sleep_ns(20 * RLY_NS_PER_US);
    int64_t t1 = rly_now_ns();
    last_cpu_per_op = (double)(cpu_ns() - c0) / (double)total;
    last_disp_per_op = (double)(threads_cpu_ns("relay-disp") - d0) / (double)total;
    last_workers_per_op = (double)(threads_cpu_ns("relay-w") - w0) / (double)total;
    rly_coord_shutdown(c);
    uint64_t errors = 0;
    for (uint32_t i = 0; i < n_actors; i++)
        errors += a[i].errors;
    if (errors)
        fprintf(stderr, "ORDER ERRORS: %llu\n", (unsigned long long)errors);
    rly_coord_free(c);
    free(a);
    free(seq);
    return (double)total / ((double)(t1 - t0) / 1e9);
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

static void round_trips(uint32_t routers, uint32_t outstanding, uint64_t total, double *rate,
                        int64_t *p50, int64_t *p99, int64_t *p999)
{
    bactor *a;
    rly_coord *c = setup(routers, 64, &a, true);
    int64_t *lat = malloc(total * sizeof *lat);
    rly_reply **win = calloc(outstanding, sizeof *win);
    int64_t *start = calloc(outstanding, sizeof *start);
    uint64_t issued = 0, done = 0;
    /* The caller runs the routers its requests wait on (core/pool.h), as relay_agent's
       request path does, unless --no-caller-runs (every router run by a pool worker). */
    if (caller_runs)
        rly_pool_caller_runs(true);
    int64_t c0 = cpu_ns();
    int64_t t0 = rly_now_ns();
    while (done < total) {
        uint64_t before = done;
        for (uint32_t w = 0; w < outstanding; w++) {
            if (win[w] && rly_reply_is_done(win[w])) {
                lat[done++] = rly_now_ns() - start[w];
                rly_reply_release(win[w]);
                win[w] = NULL;
            }
            if (!win[w] && issued < total) {
                rly_reply *r = rly_reply_new();
                rly_msg m =
                    rly_msg_data(a[issued % 64].slot.id, RLY_MODEL_VERSION, 0, NULL, NULL, r);
                start[w] = rly_now_ns();
                if (rly_dispatcher_send(c->disp, &m) != RELAY_OK) {
                    fprintf(stderr, "send failed\n");
                    exit(1);
                }
                win[w] = r;
                issued++;
            }
        }
        /* Nothing completed in this scan: run queued routers (up to one per outstanding request,
           as a latch wait over a batch would) before scanning the window again, so a scan costs
           O(outstanding) per batch of replies, not per reply, when each router has one. */
        if (done == before && caller_runs)
            for (uint32_t h = 0; h < outstanding && rly_pool_help(NULL, NULL); h++)
                ;
    }
    int64_t t1 = rly_now_ns();
    last_cpu_per_op = (double)(cpu_ns() - c0) / (double)total;
    if (caller_runs)
        rly_pool_caller_runs(false);
    qsort(lat, total, sizeof *lat, cmp_i64);
    *rate = (double)total / ((double)(t1 - t0) / 1e9);
    *p50 = lat[total / 2];
    *p99 = lat[total * 99 / 100];
    *p999 = lat[total * 999 / 1000];
    rly_coord_shutdown(c);
    rly_coord_free(c);
    free(a);
    free(lat);
    free(win);
    free(start);
}

/* create_routers times starting a runtime with n routers and 64 actors, then stopping it. */
static void create_routers(uint32_t n)
{
    int64_t t0 = rly_now_ns();
    bactor *a;
    rly_coord *c = setup(n, 64, &a, true);
    int64_t t1 = rly_now_ns();
    rly_coord_shutdown(c);
    rly_coord_free(c);
    int64_t t2 = rly_now_ns();
    free(a);
    printf("create routers=%u actors=64 start=%.3f s stop=%.3f s\n", n, (t1 - t0) / 1e9,
           (t2 - t1) / 1e9);
    fflush(stdout);
}

/* start_busy forks n processes that spin until killed (the competing load of --busy). */
static void start_busy(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            volatile uint64_t x = 0;
            for (;;)
                x++;
        }
    }
}

static void stop_busy(pid_t *pids, int n)
{
    for (int i = 0; i < n; i++)
        if (pids[i] > 0) {
            kill(pids[i], SIGKILL);
            waitpid(pids[i], NULL, 0);
        }
}

static void rr_all(uint64_t rts, const char *tag)
{
    static const uint32_t outs[2] = {1, 64};
    static const uint32_t rt_routers[4] = {1, 4, 16, 256};
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 2; i++) {
            if ((only_routers && rt_routers[k] != only_routers) ||
                (only_outstanding && outs[i] != only_outstanding))
                continue;
            double rate;
            int64_t p50, p99, p999;
            round_trips(rt_routers[k], outs[i], rts, &rate, &p50, &p99, &p999);
            printf("request-reply%s actors=64 routers=%u outstanding=%u n=%llu rate=%.2f M rt/s "
                   "p50=%.2f us p99=%.2f us p99.9=%.2f us cpu=%.0f ns/rt\n",
                   tag, rt_routers[k], outs[i], (unsigned long long)rts, rate / 1e6, p50 / 1e3,
                   p99 / 1e3, p999 / 1e3, last_cpu_per_op);
            fflush(stdout);
        }
}

int main(int argc, char **argv)
{
    uint64_t msgs = (uint64_t)((argc > 1 ? atof(argv[1]) : 20.0) * 1e6);
    uint64_t rts = (uint64_t)((argc > 2 ? atof(argv[2]) : 500.0) * 1e3);
    bool rr_only = false, busy = true, busy_only = false, ow_only = false;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--rr-only") == 0)
            rr_only = true;
        else if (strcmp(argv[i], "--no-busy") == 0)
            busy = false;
        else if (strcmp(argv[i], "--no-caller-runs") == 0)
            caller_runs = false;
        else if (strcmp(argv[i], "--actors") == 0 && i + 1 < argc)
            only_actors = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--direct") == 0)
            only_fast = 1;
        else if (strcmp(argv[i], "--via") == 0)
            only_fast = 0;
        else if (strcmp(argv[i], "--one-way-only") == 0)
            ow_only = true;
        else if (strcmp(argv[i], "--busy-only") == 0)
            rr_only = busy_only = true;
        else if (strcmp(argv[i], "--routers") == 0 && i + 1 < argc)
            only_routers = (uint32_t)atoi(argv[++i]);
        else if (strcmp(argv[i], "--create") == 0 && i + 1 < argc) {
            create_routers((uint32_t)atoi(argv[++i]));
            return 0;
        } else if (strcmp(argv[i], "--queue-cap") == 0 && i + 1 < argc)
            queue_cap = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--outstanding") == 0 && i + 1 < argc)
            only_outstanding = (uint32_t)atoi(argv[++i]);
        else {
            fprintf(stderr, "bench_route: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    static const uint32_t shapes[3][2] = {{4, 1}, {64, 4}, {1024, 16}};
    for (int fast = 1; fast >= 0 && !rr_only; fast--)
        for (int i = 0; i < 3; i++) {
            if ((only_actors && shapes[i][0] != only_actors) ||
                (only_fast >= 0 && only_fast != fast))
                continue;
            double r = one_way(shapes[i][0], shapes[i][1], msgs, fast);
            printf("one-way %s actors=%u routers=%u msgs=%llu rate=%.2f M msgs/s cpu=%.0f ns/msg "
                   "(dispatcher %.0f, workers %.0f)\n",
                   fast ? "direct " : "via-dispatcher", shapes[i][0], shapes[i][1],
                   (unsigned long long)msgs, r / 1e6, last_cpu_per_op, last_disp_per_op,
                   last_workers_per_op);
            fflush(stdout);
        }
    if (!busy_only && !ow_only)
        rr_all(rts, "");
    if (busy && !ow_only) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int n = ncpu > 0 && ncpu < 256 ? (int)ncpu : 2;
        pid_t pids[256] = {0};
        start_busy(pids, n);
        /* As many round trips as without the load: a run must span many scheduler time slices
           (a few ms) or the competitors barely get to run during it. */
        rr_all(rts, "(busy)");
        stop_busy(pids, n);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS %.1f MiB\n", ru.ru_maxrss / 1024.0);
    return 0;
}
