/*
 * CartPole-v1 steps per second on one core: a single env stepped through its definition (with the
 * time limit and reset done by the loop), relay_vecenv with 1..1024 envs (the structure-of-arrays
 * fast path), and the generic per-env path a plug-in takes. Actions are random bits from
 * xorshift64.
 *
 * Usage: bench_env_cartpole [seconds_per_run=0.5] [runs=5]
 * Prints medians by wall time and by thread CPU time (steadier on a shared machine).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relay/env.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* cpu_now is this thread's CPU time: unlike wall time it excludes time spent descheduled. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One measurement: steps per wall second and per CPU second. */
typedef struct rate {
    double wall, cpu;
} rate;

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static volatile float sink;

/* One env through def->step; the loop applies the 500-step limit and resets like a wrapper. */
static rate run_single(const relay_env_def *def, double seconds)
{
    _Alignas(16) unsigned char state[256];
    memset(state, 0, sizeof state);
    float obs[4], rew, acc = 0;
    bool term;
    uint64_t rng = 88172645463325252ull, bits = 0, seed = 1;
    int remaining = 0, steps_in_ep = 0;
    def->reset(state, seed++, obs);
    uint64_t steps = 0;
    double t0 = now(), c0 = cpu_now(), t1;
    do {
        for (int k = 0; k < 65536; k++) {
            if (remaining == 0) {
                bits = xorshift(&rng);
                remaining = 64;
            }
            int32_t a = (int32_t)(bits & 1);
            bits >>= 1;
            remaining--;
            def->step(state, &a, obs, &rew, &term);
            acc += rew;
            if (term || ++steps_in_ep >= def->max_episode_steps) {
                def->reset(state, seed++, obs);
                steps_in_ep = 0;
            }
        }
        steps += 65536;
        t1 = now();
    } while (t1 - t0 < seconds);
    double c1 = cpu_now();
    sink = acc + obs[0];
    return (rate){(double)steps / (t1 - t0), (double)steps / (c1 - c0)};
}

static rate run_vec(const relay_env_def *def, uint32_t n, double seconds)
{
    relay_vecenv *v;
    if (relay_vecenv_new(def, n, 1, &v) != RELAY_OK) {
        fprintf(stderr, "relay_vecenv_new failed\n");
        exit(1);
    }
    float *obs = malloc(sizeof(float) * 4 * n), *fin = malloc(sizeof(float) * 4 * n);
    float *rew = malloc(sizeof(float) * n);
    bool *term = malloc(n), *trunc = malloc(n);
    int32_t *act = malloc(sizeof(int32_t) * n);
    if (!obs || !fin || !rew || !term || !trunc || !act) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    uint64_t rng = 88172645463325252ull;
    relay_vecenv_reset(v, obs);
    uint32_t iters = n >= 4096 ? 16 : 65536 / n;
    uint64_t steps = 0;
    float acc = 0;
    double t0 = now(), c0 = cpu_now(), t1;
    do {
        for (uint32_t k = 0; k < iters; k++) {
            for (uint32_t i = 0; i < n; i += 64) {
                uint64_t bits = xorshift(&rng);
                uint32_t m = n - i < 64 ? n - i : 64;
                for (uint32_t j = 0; j < m; j++)
                    act[i + j] = (int32_t)((bits >> j) & 1);
            }
            relay_vecenv_step(v, act, obs, rew, term, trunc, fin);
            acc += rew[0];
        }
        steps += (uint64_t)iters * n;
        t1 = now();
    } while (t1 - t0 < seconds);
    double c1 = cpu_now();
    sink = acc + obs[0];
    free(obs);
    free(fin);
    free(rew);
    free(term);
    free(trunc);
    free(act);
    relay_vecenv_free(v);
    return (rate){(double)steps / (t1 - t0), (double)steps / (c1 - c0)};
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (seconds <= 0 || runs <= 0 || runs > 101) {
        fprintf(stderr, "usage: %s [seconds_per_run>0] [runs 1..101]\n", argv[0]);
        return 2;
    }
    const relay_env_def *cp = relay_env_find("CartPole-v1");
    relay_env_def generic = *cp; /* same env, different pointer: the per-env plug-in path */
    struct {
        const char *label;
        const relay_env_def *def;
        uint32_t n; /* 0 = single env through def->step */
    } cases[] = {
        {"single env (def->step loop)", cp, 0},
        {"vecenv n=1", cp, 1},
        {"vecenv n=64", cp, 64},
        {"vecenv n=256", cp, 256},
        {"vecenv n=1024", cp, 1024},
        {"vecenv n=256, generic path", &generic, 256},
    };
    double wall[101], cpu[101];
    printf("CartPole-v1, %d runs of %.2f s; median (min..max) M steps/s by wall time, and median "
           "by thread CPU time\n",
           runs, seconds);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int r = 0; r < runs; r++) {
            rate x = cases[c].n == 0 ? run_single(cases[c].def, seconds)
                                     : run_vec(cases[c].def, cases[c].n, seconds);
            wall[r] = x.wall;
            cpu[r] = x.cpu;
        }
        qsort(wall, (size_t)runs, sizeof wall[0], cmp_double);
        qsort(cpu, (size_t)runs, sizeof cpu[0], cmp_double);
        printf("%-30s wall %8.2f (%.2f .. %.2f)   cpu %8.2f\n", cases[c].label,
               wall[runs / 2] / 1e6, wall[0] / 1e6, wall[runs - 1] / 1e6, cpu[runs / 2] / 1e6);
    }
    return 0;
}
