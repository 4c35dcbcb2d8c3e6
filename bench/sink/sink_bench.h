/*
 * Shared by the sink benchmarks: the CartPole-shaped step spec (obs f32[4], act i32 scalar, aux
 * logp and value) and a deterministic fill of a trajectory with such steps, plus the clocks.
 * Header-only (static functions) so each benchmark stays one program; single-threaded use per
 * trajectory.
 */
#ifndef RELAY_BENCH_SINK_BENCH_H
#define RELAY_BENCH_SINK_BENCH_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "relay/data.h"

/* sink_bench_now returns CLOCK_MONOTONIC seconds. */
static inline double sink_bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* sink_bench_spec fills the CartPole-shaped step spec. */
static inline void sink_bench_spec(relay_step_spec *spec)
{
    memset(spec, 0, sizeof *spec);
    spec->obs_dtype = RELAY_F32;
    spec->obs_rank = 1;
    spec->obs_shape[0] = 4;
    spec->act_dtype = RELAY_I32;
    spec->act_rank = 0;
    spec->n_aux = 2;
    strcpy(spec->aux_names[0], "logp");
    strcpy(spec->aux_names[1], "value");
}

/* sink_bench_fill clears t and records `steps` pseudo-random steps derived from seed (the last
   one terminated), with timestamps and start/end set. */
static inline void sink_bench_fill(relay_traj *t, uint64_t seed, int steps)
{
    relay_traj_clear(t);
    t->episode = (int64_t)seed;
    uint64_t s = seed * 2654435761u + 1;
    for (int i = 0; i < steps; i++) {
        float obs[4], aux[2];
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            obs[k] = (float)((int64_t)(s >> 33) % 200000) / 100000.0f - 1.0f;
        }
        int32_t act = (int32_t)(s >> 62) & 1;
        aux[0] = -0.6931472f + obs[0] * 0.01f;
        aux[1] = 10.0f + obs[1];
        relay_traj_push(t, obs, &act, NULL, 1.0f, i == steps - 1, false, aux,
                        1700000000000000000ll + (int64_t)seed * 1000000 + i * 1000);
    }
    t->start_ns = t->ts[0];
    t->end_ns = t->ts[steps - 1];
}

#endif
