/*
 * bench_agent_actor_loop: the actor loop through the public agent API -- CartPole-v1 envs, a
 * 4-64-64-2 tanh policy, categorical sampling and trajectory recording (max_traj_length 200),
 * all run by relay_agent_run_env on the router threads.
 *
 * Cases:
 *   a) 1 actor x 1 env, 1 router      run_env(..., wait = true), timed around the call
 *   b) 1 actor x 16 envs, 1 router    same
 *   c) 64 actors x 16 envs, 2 routers every run_env started without wait; env_steps counted by
 *                                     relay_agent_get_stats over a fixed wall interval
 * each with the trajectory sinks off (memory sink disabled, no file sink) and with the Arrow sink
 * on (files in DIR). The two agents of a case live side by side and their runs alternate
 * (off, arrow, off, arrow, ...) so the slowdown is a ratio of neighbouring runs on a noisy machine.
 *
 * Usage: bench_agent_actor_loop [SECONDS_PER_RUN=1.0 [RUNS=5 [DIR=/tmp/relay-bench-agent]]]
 * Prints per case: median env steps/s, min..max, process CPU ns per step (and, for the interval
 * case, how much of it the sink worker threads took), and the median of the per-pair ratios
 * arrow/off. BENCH_ARROW_BATCH_ROWS overrides sinks.arrow.batch_rows; BENCH_ONLY=off|arrow runs
 * only that side (for profiling).
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#define MAX_RUNS 64
#define MAX_ACTORS 64

typedef struct bench_case {
    const char *name;
    uint32_t actors, envs, routers;
    bool interval; /* true: no-wait runs measured by get_stats over a wall interval */
} bench_case;

typedef struct side {
    relay_agent *agent;
    char path[1024]; /* the Arrow file, "" for the sinks-off side */
    relay_id ids[MAX_ACTORS];
    double rate[MAX_RUNS], cpu_ns[MAX_RUNS], sink_ns[MAX_RUNS];
} side;

/* sink_thread_cpu returns the CPU seconds of this process's sink worker threads ("relay-sink"),
   from /proc/self/task/TID/schedstat (0 where /proc is not available). */
static double sink_thread_cpu(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return 0;
    double sum = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (!fgets(comm, sizeof comm, f))
            comm[0] = 0;
        fclose(f);
        if (strncmp(comm, "relay-sink", 10) != 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        f = fopen(path, "r");
        unsigned long long ns = 0;
        if (f && fscanf(f, "%llu", &ns) == 1)
            sum += (double)ns * 1e-9;
        if (f)
            fclose(f);
    }
    closedir(d);
    return sum;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static uint64_t env_steps(relay_agent *a)
{
    relay_agent_stats st;
    relay_agent_get_stats(a, &st);
    return st.env_steps;
}

static void side_open(side *s, const bench_case *c, bool arrow, const char *dir,
                      const relay_bundle *model)
{
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.routers = c->routers;
    cfg.max_traj_length = 200;
    cfg.sink_memory = false;
    cfg.sink_arrow = arrow;
    const char *rows = getenv("BENCH_ARROW_BATCH_ROWS");
    if (rows && atoi(rows) > 0)
        cfg.arrow_batch_rows = (uint32_t)atoi(rows);
    snprintf(cfg.env, sizeof cfg.env, "CartPole-v1");
    snprintf(cfg.sink_dir, sizeof cfg.sink_dir, "%s", dir);
    snprintf(cfg.run_name, sizeof cfg.run_name, "actor_loop_%s_%ld", c->name, (long)getpid());
    snprintf(s->path, sizeof s->path, "%s/%s.arrow", dir, cfg.run_name);
    if (!arrow)
        s->path[0] = 0;
    BENCH_CHECK(relay_agent_new(&cfg, &s->agent));
    BENCH_CHECK(relay_agent_start(s->agent));
    struct stat sb;
    if (arrow && stat(s->path, &sb) != 0) {
        /* The agent runs on when a file sink cannot open; a benchmark must not. */
        fprintf(stderr, "the Arrow sink did not create %s\n", s->path);
        exit(1);
    }
    relay_actor_options opt = {.model = model};
    BENCH_CHECK(relay_agent_new_actors(s->agent, c->actors, &opt, s->ids));
}

/*
 * one_run runs every actor of s for steps vector steps and returns env steps per wall second;
 * *cpu_ns receives process CPU ns per env step. Interval mode measures a window of `window`
 * seconds after `warm` seconds, then waits for the runs to finish.
 */
static double one_run(side *s, const bench_case *c, uint64_t steps, double warm, double window,
                      double *cpu_ns, double *sink_ns)
{
    *sink_ns = 0;
    if (!c->interval) {
        double c0 = bench_cpu(), t0 = bench_now();
        BENCH_CHECK(relay_agent_run_env(s->agent, s->ids[0], NULL, c->envs, steps, true));
        double t1 = bench_now(), c1 = bench_cpu();
        double total = (double)steps * c->envs;
        *cpu_ns = (c1 - c0) * 1e9 / total;
        return total / (t1 - t0);
    }
    uint64_t base = env_steps(s->agent);
    for (uint32_t i = 0; i < c->actors; i++)
        BENCH_CHECK(relay_agent_run_env(s->agent, s->ids[i], NULL, c->envs, steps, false));
    sleep_s(warm);
    uint64_t n0 = env_steps(s->agent);
    double k0 = sink_thread_cpu(), c0 = bench_cpu(), t0 = bench_now();
    sleep_s(window);
    uint64_t n1 = env_steps(s->agent);
    double t1 = bench_now(), c1 = bench_cpu(), k1 = sink_thread_cpu();
    uint64_t target = base + steps * c->envs * c->actors;
    while (env_steps(s->agent) < target)
        sleep_s(0.002);
    double t2 = bench_now();
    if (n1 >= target || n1 == n0) {
        /* Finished inside the window: report the whole run's rate (negative = "too short"). */
        *cpu_ns = 0;
        return -(double)(target - base) / (t2 - t0 + warm);
    }
    *cpu_ns = (c1 - c0) * 1e9 / (double)(n1 - n0);
    *sink_ns = (k1 - k0) * 1e9 / (double)(n1 - n0);
    return (double)(n1 - n0) / (t1 - t0);
}

static void run_case(const bench_case *c, double seconds, int runs, const char *dir,
                     const relay_bundle *model)
{
    side sides[2];
    memset(sides, 0, sizeof sides);
    side_open(&sides[0], c, false, dir, model);
    side_open(&sides[1], c, true, dir, model);
    double warm = c->interval ? 0.3 : 0.0;
    /* Calibrate on the sinks-off agent: a short run, then steps for `seconds` (+ warm-up). */
    double cpu, sk;
    uint64_t calib = c->interval ? 1500 : 200000 / c->envs;
    double r0 = one_run(&sides[0], c, calib, 0.1, 0.2, &cpu, &sk);
    if (r0 < 0)
        r0 = -r0;
    uint64_t steps = (uint64_t)(r0 * (seconds + warm) * (c->interval ? 2.5 : 1.0) /
                                ((double)c->envs * c->actors));
    if (steps < 10)
        steps = 10;
    (void)one_run(&sides[1], c, calib, 0.1, 0.2, &cpu, &sk); /* warm the Arrow side too */
    double ratio[MAX_RUNS], cpu_ratio[MAX_RUNS];
    /* BENCH_ONLY=off or =arrow runs one side only (to profile it alone; the ratio is then 1). */
    const char *only = getenv("BENCH_ONLY");
    int skip = only && strcmp(only, "off") == 0 ? 1 : only && strcmp(only, "arrow") == 0 ? 0 : -1;
    for (int r = 0; r < runs; r++) {
        for (int k = 0; k < 2; k++) {
            double rate;
            if (k == skip) {
                sides[k].rate[r] = sides[k].cpu_ns[r] = sides[k].sink_ns[r] = 1;
                continue;
            }
            while ((rate = one_run(&sides[k], c, steps, warm, seconds, &sides[k].cpu_ns[r],
                                   &sides[k].sink_ns[r])) < 0) {
                steps *= 2; /* the run ended inside the window: longer runs from now on */
                fprintf(stderr, "%s: run too short, now %llu vector steps per actor\n", c->name,
                        (unsigned long long)steps);
            }
            sides[k].rate[r] = rate;
        }
        ratio[r] = sides[1].rate[r] / sides[0].rate[r];
        cpu_ratio[r] = sides[1].cpu_ns[r] / sides[0].cpu_ns[r];
    }
    for (int k = 0; k < 2; k++) {
        side *s = &sides[k];
        double lo = s->rate[0], hi = s->rate[0];
        for (int r = 0; r < runs; r++) {
            lo = s->rate[r] < lo ? s->rate[r] : lo;
            hi = s->rate[r] > hi ? s->rate[r] : hi;
        }
        double med = bench_median(s->rate, (size_t)runs);
        double cpu_med = bench_median(s->cpu_ns, (size_t)runs);
        double sink_med = bench_median(s->sink_ns, (size_t)runs);
        printf("%-22s sinks=%-5s routers=%u  %8.3f M steps/s  (min %.3f max %.3f)  cpu %6.1f "
               "ns/step (sink thread %.1f)\n",
               c->name, k ? "arrow" : "off", c->routers, med / 1e6, lo / 1e6, hi / 1e6, cpu_med,
               sink_med);
    }
    printf("%-22s arrow/off ratio (median of %d neighbouring pairs): %.3f  (slowdown %.1f%%)\n",
           c->name, runs, bench_median(ratio, (size_t)runs),
           (1.0 - bench_median(ratio, (size_t)runs)) * 100.0);
    if (c->interval) {
        double cr = bench_median(cpu_ratio, (size_t)runs);
        printf("%-22s arrow/off CPU per step (median of %d neighbouring pairs): %.3f  (+%.1f%%)\n",
               c->name, runs, cr, (cr - 1.0) * 100.0);
    }
    double t0 = bench_now();
    uint64_t arrow_steps = 1;
    for (int k = 0; k < 2; k++) {
        relay_agent_stats st;
        relay_agent_get_stats(sides[k].agent, &st);
        if (k) {
            arrow_steps = st.env_steps;
            printf("%-22s arrow side: %llu trajectories (%.1f steps each), %llu blocked, %llu "
                   "dropped\n",
                   c->name, (unsigned long long)st.trajectories,
                   st.trajectories ? (double)st.env_steps / (double)st.trajectories : 0.0,
                   (unsigned long long)st.buffered_blocked,
                   (unsigned long long)st.buffered_dropped);
        }
        BENCH_CHECK(relay_agent_shutdown(sides[k].agent));
        relay_agent_free(sides[k].agent);
    }
    printf("%-22s shutdown of both agents (drains into Arrow): %.3f s\n", c->name,
           bench_now() - t0);
    /* The Arrow sink writes a steps file and its trajectory table (<run>.traj.arrow). */
    char traj_path[1100];
    size_t plen = strlen(sides[1].path);
    snprintf(traj_path, sizeof traj_path, "%.*s.traj.arrow", plen > 6 ? (int)(plen - 6) : (int)plen,
             sides[1].path);
    struct stat sb, tb;
    if (stat(sides[1].path, &sb) == 0) {
        double total = (double)sb.st_size + (stat(traj_path, &tb) == 0 ? (double)tb.st_size : 0.0);
        printf("%-22s Arrow files: %.1f MB, %.1f bytes per env step\n", c->name, total / 1e6,
               total / (double)arrow_steps);
        unlink(sides[1].path);
        unlink(traj_path);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    const char *dir = argc > 3 ? argv[3] : "/tmp/relay-bench-agent";
    if (seconds <= 0 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_agent_actor_loop [SECONDS>0 [RUNS 1..%d [DIR]]]\n", MAX_RUNS);
        return 2;
    }
    mkdir(dir, 0755);
    relay_bundle *model = bench_policy();
    static const bench_case cases[] = {
        {"a_1actor_x1env", 1, 1, 1, false},
        {"b_1actor_x16env", 1, 16, 1, false},
        {"c_64actors_x16env", 64, 16, 2, true},
    };
    const char *only = getenv("BENCH_CASE"); /* optional: run only the case starting with this */
    bench_print_loadavg("start");
    printf("seconds/run %.2f, runs %d, arrow dir %s\n", seconds, runs, dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!only || strncmp(cases[i].name, only, strlen(only)) == 0)
            run_case(&cases[i], seconds, runs, dir, model);
    bench_print_loadavg("end");
    relay_bundle_free(model);
    return 0;
}
