/*
 * Helpers shared by the agent benchmarks: clocks, medians, the 4-64-64-2 tanh CartPole policy.
 * Header-only (static functions) so each benchmark stays one program.
 */
#ifndef RELAY_BENCH_AGENT_COMMON_H
#define RELAY_BENCH_AGENT_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "relay/relay.h"

#define BENCH_CHECK(call)                                                                          \
    do {                                                                                           \
        relay_err e_ = (call);                                                                     \
        if (e_ != RELAY_OK) {                                                                      \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,                   \
                    relay_strerror(e_));                                                           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* bench_now returns the monotonic wall clock in seconds. */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* bench_cpu returns the CPU time (user + system) of the whole process in seconds. */
static inline double bench_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* bench_median sorts v[n] in place and returns its median. */
static inline double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* bench_quantile returns the q-quantile of sorted v[n] (nearest rank). */
static inline double bench_quantile(const double *v, size_t n, double q)
{
    size_t k = (size_t)(q * (double)n);
    return v[k >= n ? n - 1 : k];
}

/* bench_policy builds the 4-64-64-2 tanh CartPole policy (logits out) as a model bundle. */
static inline relay_bundle *bench_policy(void)
{
    enum { IN = 4, H = 64, OUT = 2 };
    uint32_t sizes[4] = {IN, H, H, OUT};
    static float w0[H * IN], b0[H], w1[H * H], b1[H], w2[OUT * H], b2[OUT];
    uint64_t s = 0x9E3779B97F4A7C15ull;
    float *ws_all[3] = {w0, w1, w2};
    size_t counts[3] = {H * IN, H * H, OUT * H};
    for (int l = 0; l < 3; l++)
        for (size_t i = 0; i < counts[l]; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            ws_all[l][i] = ((float)(s >> 40) / (float)(1u << 24) - 0.5f) * 0.4f;
        }
    memset(b0, 0, sizeof b0);
    memset(b1, 0, sizeof b1);
    memset(b2, 0, sizeof b2);
    const float *ws[3] = {w0, w1, w2}, *bs[3] = {b0, b1, b2};
    relay_activation acts[3] = {RELAY_ACT_TANH, RELAY_ACT_TANH, RELAY_ACT_NONE};
    relay_mlp_desc d = {3, sizes, acts, ws, bs};
    uint8_t *onnx;
    size_t len;
    BENCH_CHECK(relay_mlp_to_onnx(&d, &onnx, &len));
    relay_model_meta meta = {0};
    meta.obs.dtype = RELAY_F32;
    meta.obs.rank = 1;
    meta.obs.shape[0] = IN;
    meta.act.discrete = true;
    meta.act.n = OUT;
    meta.act.dtype = RELAY_I32;
    relay_bundle *b;
    BENCH_CHECK(relay_bundle_new(onnx, len, &meta, &b));
    free(onnx);
    return b;
}

/* bench_print_loadavg prints the first three fields of /proc/loadavg. */
static inline void bench_print_loadavg(const char *when)
{
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f))
            snprintf(buf, sizeof buf, "?\n");
        fclose(f);
    }
    printf("loadavg %s: %s", when, buf);
}

#endif
