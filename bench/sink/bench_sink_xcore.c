/*
 * bench_sink_xcore: the Arrow sink's CPU per step when, as in the actor loop, every trajectory it
 * writes was just filled on another core. A producer thread (pinned to CPU 0) refills
 * trajectories of 24 CartPole-shaped steps (obs f32[4], act i32, reward, aux logp/value,
 * timestamps) and hands them over in batches of 64 through a bounded ring; the sink thread
 * (pinned to CPU 1) writes them to an Arrow sink in DIR (or /dev/null). Prints the sink thread's
 * CPU ns per step (median of RUNS runs of SECONDS each); waiting for the producer is not counted.
 *
 * Usage: bench_sink_xcore [SECONDS=1 [RUNS=5 [DIR|/dev/null=/dev/null]]]
 * BENCH_XCORE_POOL sets the batches of 64 trajectories in the pool (default 16, at most 512);
 * BENCH_ARROW_BATCH_ROWS the sink's rows per record batch.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay/sink.h"
#include "sink_bench.h"

#define STEPS 24
#define BATCH 64
#define SLOTS 8      /* batches in flight */
#define POOL_MAX 512 /* batches of trajectories: the producer refills one the sink let go */
#define CAP 200      /* room per trajectory, as max_traj_length 200 gives the actor loop's */

static int POOL = 16; /* BENCH_XCORE_POOL: batches; a large pool leaves the caches cold */

typedef struct ring {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int head, tail; /* batches [tail, head) are full; the producer may fill POOL - (head - tail) */
    bool stop;
    relay_traj *trajs[POOL_MAX][BATCH];
    uint64_t seq;
} ring;

static double thread_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *producer(void *arg)
{
    ring *r = arg;
    pin(0);
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (!r->stop && r->head - r->tail >= SLOTS)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            return NULL;
        }
        int slot = r->head % POOL;
        pthread_mutex_unlock(&r->mu);
        for (int i = 0; i < BATCH; i++)
            sink_bench_fill(r->trajs[slot][i], r->seq++, STEPS);
        pthread_mutex_lock(&r->mu);
        r->head++;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
}

/* one_run writes for `seconds` and returns the sink thread's CPU ns per step. */
static double one_run(ring *r, const char *dir, double seconds)
{
    char name[64];
    static int seq;
    snprintf(name, sizeof name, "xcore-%d-%d", (int)getpid(), seq++);
    bool devnull = strcmp(dir, "/dev/null") == 0;
    relay_sink_config cfg = {.kind = RELAY_SINK_ARROW,
                             .dir = devnull ? NULL : dir,
                             .run_name = name,
                             .overwrite = true,
                             .path = devnull ? "/dev/null" : NULL};
    const char *rows = getenv("BENCH_ARROW_BATCH_ROWS");
    if (rows && atoi(rows) > 0)
        cfg.batch_rows = (uint32_t)atoi(rows);
    relay_sink *s;
    if (relay_sink_open(&cfg, &s) != RELAY_OK) {
        fprintf(stderr, "cannot open the Arrow sink in %s\n", dir);
        exit(1);
    }
    uint64_t steps = 0;
    double cpu = 0, end = sink_bench_now() + seconds;
    while (sink_bench_now() < end) {
        pthread_mutex_lock(&r->mu);
        while (r->head == r->tail)
            pthread_cond_wait(&r->cv, &r->mu);
        int slot = r->tail % POOL;
        pthread_mutex_unlock(&r->mu);
        double c0 = thread_cpu();
        if (relay_sink_write_batch(s, r->trajs[slot], BATCH) != RELAY_OK) {
            fprintf(stderr, "write failed\n");
            exit(1);
        }
        cpu += thread_cpu() - c0;
        steps += (uint64_t)BATCH * STEPS;
        pthread_mutex_lock(&r->mu);
        r->tail++;
        pthread_cond_broadcast(&r->cv);
        pthread_mutex_unlock(&r->mu);
    }
    char path[4200] = "";
    relay_sink_path(s, path, sizeof path);
    double c0 = thread_cpu();
    if (relay_sink_close(s) != RELAY_OK) {
        fprintf(stderr, "close failed\n");
        exit(1);
    }
    cpu += thread_cpu() - c0;
    if (!devnull && path[0]) {
        unlink(path);
        size_t len = strlen(path);
        char traj[4300];
        snprintf(traj, sizeof traj, "%.*s.traj.arrow", (int)(len - 6), path);
        unlink(traj);
    }
    return cpu * 1e9 / (double)steps;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    const char *dir = argc > 3 ? argv[3] : "/dev/null";
    if (seconds <= 0 || seconds > 60 || runs < 1 || runs > 99) {
        fprintf(stderr, "usage: bench_sink_xcore [SECONDS (0..60] [RUNS 1..99 [DIR]]]\n");
        return 2;
    }
    relay_step_spec spec;
    sink_bench_spec(&spec);
    const char *pool_env = getenv("BENCH_XCORE_POOL");
    if (pool_env && atoi(pool_env) > SLOTS && atoi(pool_env) <= POOL_MAX)
        POOL = atoi(pool_env);
    static ring r;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    for (int b = 0; b < POOL; b++)
        for (int i = 0; i < BATCH; i++) {
            relay_traj *t = relay_traj_new(&spec, CAP, 0);
            if (!t)
                return 1;
            t->actor = relay_id_from_seed(7, (uint64_t)i % 8);
            t->env_id = i % 16;
            snprintf(t->env_label, sizeof t->env_label, "CartPole-v1");
            r.trajs[b][i] = t;
        }
    pin(1);
    pthread_t th;
    pthread_create(&th, NULL, producer, &r);
    double ns[99];
    for (int k = 0; k < runs; k++)
        ns[k] = one_run(&r, dir, seconds);
    pthread_mutex_lock(&r.mu);
    r.stop = true;
    pthread_cond_broadcast(&r.cv);
    pthread_mutex_unlock(&r.mu);
    pthread_join(th, NULL);
    qsort(ns, (size_t)runs, sizeof ns[0], cmp);
    printf("arrow sink, trajectories filled on another core, %d steps each, into %s: sink thread "
           "%.1f ns/step median (min %.1f max %.1f, %d runs; %d trajectories in the pool)\n",
           STEPS, dir, ns[runs / 2], ns[0], ns[runs - 1], runs, POOL * BATCH);
    for (int b = 0; b < POOL; b++)
        for (int i = 0; i < BATCH; i++)
            relay_traj_free(r.trajs[b][i]);
    return 0;
}
