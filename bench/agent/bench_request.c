/*
 * bench_agent_request: relay_agent_request_action round trips for 64 actors sharing one
 * 4-64-64-2 tanh policy (model_mode shared, the model published once by relay_agent_update_model).
 *
 * Measures, per configuration, calls of (i) all 64 actors in one batch call and (ii) one actor
 * per call (cycling over the 64): actions/s and p50/p99/max latency per call. Observations are
 * fixed CartPole-like vectors, rewards 1.0; the actors record trajectories (max_traj_length 200).
 * Configurations: routers 1 and 2, sinks off (memory sink disabled) and the default memory sink.
 *
 * Usage: bench_agent_request [SECONDS_PER_RUN=1.0 [RUNS=5]]
 * Each run lasts SECONDS; the printed numbers are medians over RUNS runs (latency quantiles are
 * computed per run, then their median is taken).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define N_ACTORS 64
#define MAX_RUNS 64
#define MAX_CALLS (1u << 22)

static double lat[MAX_CALLS];

typedef struct result {
    double rate, p50, p99, max;
} result;

/* run_calls calls request_action for `seconds` with `batch` actors per call. */
static result run_calls(relay_agent *a, const relay_id *ids, size_t batch, double seconds,
                        const float *obs, const float *rewards, float *actions)
{
    size_t calls = 0, next = 0;
    double start = bench_now(), end = start + seconds, t = start;
    while (t < end && calls < MAX_CALLS) {
        const relay_id *who = batch == N_ACTORS ? ids : &ids[next];
        double t0 = bench_now();
        BENCH_CHECK(relay_agent_request_action(a, who, batch, obs, NULL, rewards, actions, NULL));
        t = bench_now();
        lat[calls++] = t - t0;
        next = (next + 1) % N_ACTORS;
    }
    result r;
    r.rate = (double)(calls * batch) / (t - start);
    qsort(lat, calls, sizeof lat[0], bench_cmp_double);
    r.p50 = bench_quantile(lat, calls, 0.50) * 1e6;
    r.p99 = bench_quantile(lat, calls, 0.99) * 1e6;
    r.max = lat[calls - 1] * 1e6;
    return r;
}

static void bench_config(uint32_t routers, bool memory_sink, double seconds, int runs,
                         const relay_bundle *model)
{
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.routers = routers;
    cfg.shared_model = true;
    cfg.max_traj_length = 200;
    cfg.sink_memory = memory_sink;
    snprintf(cfg.env, sizeof cfg.env, "CartPole-v1");
    relay_agent *a;
    BENCH_CHECK(relay_agent_new(&cfg, &a));
    BENCH_CHECK(relay_agent_start(a));
    relay_id ids[N_ACTORS];
    relay_actor_options opt = {0};
    BENCH_CHECK(relay_agent_new_actors(a, N_ACTORS, &opt, ids));
    BENCH_CHECK(relay_agent_update_model(a, model, NULL, 0));

    static float obs[N_ACTORS * 4], rewards[N_ACTORS], actions[N_ACTORS];
    for (int i = 0; i < N_ACTORS; i++) {
        for (int k = 0; k < 4; k++)
            obs[i * 4 + k] = 0.01f * (float)((i * 7 + k * 3) % 11 - 5);
        rewards[i] = 1.0f;
    }
    static const size_t batches[2] = {N_ACTORS, 1};
    for (int b = 0; b < 2; b++) {
        size_t batch = batches[b];
        (void)run_calls(a, ids, batch, 0.2, obs, rewards, actions); /* warm-up */
        double rate[MAX_RUNS], p50[MAX_RUNS], p99[MAX_RUNS], mx[MAX_RUNS];
        for (int r = 0; r < runs; r++) {
            result res = run_calls(a, ids, batch, seconds, obs, rewards, actions);
            rate[r] = res.rate;
            p50[r] = res.p50;
            p99[r] = res.p99;
            mx[r] = res.max;
        }
        printf(
            "routers=%u sink=%-6s batch=%2zu  %8.3f M actions/s  %8.3f K calls/s  p50 %7.1f "
            "us  p99 %7.1f us  max %8.1f us\n",
            routers, memory_sink ? "memory" : "off", batch, bench_median(rate, (size_t)runs) / 1e6,
            bench_median(rate, (size_t)runs) / (double)batch / 1e3, bench_median(p50, (size_t)runs),
            bench_median(p99, (size_t)runs), bench_median(mx, (size_t)runs));
        fflush(stdout);
    }
    relay_agent_stats st;
    relay_agent_get_stats(a, &st);
    if (st.inferences == 0) {
        fprintf(stderr, "no inference was counted\n");
        exit(1);
    }
    BENCH_CHECK(relay_agent_shutdown(a));
    relay_agent_free(a);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (seconds <= 0 || runs < 1 || runs > MAX_RUNS) {
        fprintf(stderr, "usage: bench_agent_request [SECONDS>0 [RUNS 1..%d]]\n", MAX_RUNS);
        return 2;
    }
    relay_bundle *model = bench_policy();
    bench_print_loadavg("start");
    printf("64 actors, shared model, seconds/run %.2f, runs %d\n", seconds, runs);
    bench_config(1, false, seconds, runs, model);
    bench_config(2, false, seconds, runs, model);
    bench_config(2, true, seconds, runs, model);
    bench_print_loadavg("end");
    relay_bundle_free(model);
    return 0;
}
