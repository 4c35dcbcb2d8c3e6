/*
 * bench_sink: trajectories per second into each sink for 200-step CartPole-shaped trajectories
 * (obs f32[4], act i32 scalar, reward, aux logp/value, timestamps: 7.2 KB of step data).
 *
 * Usage: bench_sink [DIR [RUNS]]   (DIR default /tmp/relay-bench-sink, RUNS default 5)
 * Each run writes N trajectories in write_batch calls of 64 and closes the sink (the close, with
 * the Arrow footer or the final buffer flush, is timed); the median of RUNS runs is printed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "relay/sink.h"
#include "sink_bench.h"

#define STEPS 200
#define POOL 64

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static relay_traj *make(const relay_step_spec *spec, uint64_t seed)
{
    relay_traj *t = relay_traj_new(spec, STEPS, 0);
    if (!t)
        return NULL;
    t->actor = relay_id_from_seed(7, seed % 8);
    t->env_id = (int64_t)(seed % 4);
    snprintf(t->env_label, sizeof t->env_label, "CartPole-v1");
    t->policy_version = 3;
    sink_bench_fill(t, seed, STEPS);
    return t;
}

static double run(relay_sink_kind kind, const char *dir, bool devnull, int n, relay_traj **pool,
                  uint64_t *bytes)
{
    char name[64];
    static int seq;
    snprintf(name, sizeof name, "bench-%d-%d", (int)getpid(), seq++);
    relay_sink_config cfg = {.kind = kind,
                             .dir = dir,
                             .run_name = name,
                             .overwrite = true,
                             .memory_per_actor = 1000,
                             .path = devnull ? "/dev/null" : NULL};
    relay_sink *s;
    if (relay_sink_open(&cfg, &s) != RELAY_OK) {
        fprintf(stderr, "cannot open sink\n");
        exit(1);
    }
    double t0 = sink_bench_now();
    for (int i = 0; i < n; i += POOL) {
        int k = n - i < POOL ? n - i : POOL;
        if (relay_sink_write_batch(s, pool, (size_t)k) != RELAY_OK) {
            fprintf(stderr, "write failed\n");
            exit(1);
        }
    }
    relay_sink_stats st;
    relay_sink_stats_get(s, &st);
    char path[4200] = "";
    relay_sink_path(s, path, sizeof path);
    if (relay_sink_close(s) != RELAY_OK) {
        fprintf(stderr, "close failed\n");
        exit(1);
    }
    double dt = sink_bench_now() - t0;
    *bytes = st.bytes;
    if (path[0] && !devnull) {
        unlink(path);
        size_t len = strlen(path);
        if (len > 6 && strcmp(path + len - 6, ".arrow") == 0) {
            char traj[4300];
            snprintf(traj, sizeof traj, "%.*s.traj.arrow", (int)(len - 6), path);
            unlink(traj); /* the Arrow sink's trajectory table */
        }
    }
    return (double)n / dt;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp/relay-bench-sink";
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (runs < 1 || runs > 100)
        runs = 5;
    relay_step_spec spec;
    sink_bench_spec(&spec);
    relay_traj *pool[POOL];
    for (int i = 0; i < POOL; i++)
        if (!(pool[i] = make(&spec, (uint64_t)i)))
            return 1;
    struct {
        const char *name;
        relay_sink_kind kind;
        bool devnull;
        int n;
    } cases[] = {{"memory", RELAY_SINK_MEMORY, false, 20000},
                 {"arrow", RELAY_SINK_ARROW, false, 40000},
                 {"arrow>/dev/null", RELAY_SINK_ARROW, true, 40000},
                 {"csv", RELAY_SINK_CSV, false, 4000},
                 {"csv>/dev/null", RELAY_SINK_CSV, true, 4000},
                 {"binary", RELAY_SINK_BINARY, false, 40000},
                 {"binary>/dev/null", RELAY_SINK_BINARY, true, 40000}};
    printf("%-17s %9s %14s %12s %12s %16s\n", "sink", "trajs/run", "median traj/s", "min traj/s",
           "max traj/s", "file bytes/traj");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double r[100];
        uint64_t bytes = 0;
        for (int i = 0; i < runs; i++)
            r[i] = run(cases[c].kind, dir, cases[c].devnull, cases[c].n, pool, &bytes);
        qsort(r, (size_t)runs, sizeof r[0], cmp);
        printf("%-17s %9d %14.0f %12.0f %12.0f %16.0f\n", cases[c].name, cases[c].n, r[runs / 2],
               r[0], r[runs - 1], (double)bytes / cases[c].n);
    }
    for (int i = 0; i < POOL; i++)
        relay_traj_free(pool[i]);
    return 0;
}
