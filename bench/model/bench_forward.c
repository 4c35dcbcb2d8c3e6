/*
 * Forward-pass benchmark: ns/sample of relay_model_forward for MLPs at several batch sizes.
 *
 *   bench_model_forward                       the default matrix (4-64-64-2 and 8-256-256-4 tanh,
 *                                             batch 1, 32, 1024, generic and AVX2 kernels)
 *   bench_model_forward --onnx F --batch B    one model file (used by torch_compare.py)
 *   options: --kernel auto|generic|avx2  --runs N (median of N, default 5)  --sizes 4,64,64,2
 * Each run times repeated calls for about 0.2 s of this thread's CPU time after a warm-up
 * (CLOCK_THREAD_CPUTIME_ID, so time the shared machine spends on other work is not counted);
 * prints the median of the runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "relay/model.h"

static uint32_t g_seed = 1;

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * RLY_NS_PER_S + ts.tv_nsec;
}

static float frand(void)
{
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)((g_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static relay_model *mlp_model(const uint32_t *sizes, uint32_t n_layers)
{
    const float *ws[16], *bs[16];
    relay_activation acts[16];
    for (uint32_t i = 0; i < n_layers; i++) {
        float *w = malloc(sizeof(float) * sizes[i] * sizes[i + 1]);
        float *b = malloc(sizeof(float) * sizes[i + 1]);
        for (uint32_t j = 0; j < sizes[i] * sizes[i + 1]; j++)
            w[j] = frand() * 0.3f;
        for (uint32_t j = 0; j < sizes[i + 1]; j++)
            b[j] = frand() * 0.1f;
        ws[i] = w;
        bs[i] = b;
        acts[i] = i + 1 < n_layers ? RELAY_ACT_TANH : RELAY_ACT_NONE;
    }
    relay_mlp_desc d = {n_layers, sizes, acts, ws, bs};
    relay_model *m = NULL;
    relay_err e = relay_model_from_mlp(&d, &m);
    for (uint32_t i = 0; i < n_layers; i++) {
        free((void *)ws[i]);
        free((void *)bs[i]);
    }
    if (e)
        fprintf(stderr, "model: %s\n", relay_strerror(e));
    return m;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* measure returns the median over runs of the mean ns/sample at batch. */
static double measure(relay_model *m, int batch, int runs)
{
    const uint32_t in = relay_model_in_dim(m), out = relay_model_out_dim(m);
    float *x = malloc(sizeof(float) * batch * in), *y = malloc(sizeof(float) * batch * out);
    for (uint32_t i = 0; i < batch * in; i++)
        x[i] = frand();
    relay_model_reserve(m, batch);
    double res[64];
    if (runs > 64)
        runs = 64;
    long iters = 1;
    for (int64_t t0 = cpu_ns(); cpu_ns() - t0 < 50 * RLY_NS_PER_MS; iters *= 2)
        for (long i = 0; i < iters; i++)
            relay_model_forward(m, x, batch, y);
    for (int r = 0; r < runs; r++) {
        long n = 0;
        int64_t t0 = cpu_ns(), t1;
        do {
            for (int i = 0; i < 16; i++)
                relay_model_forward(m, x, batch, y);
            n += 16;
            t1 = cpu_ns();
        } while (t1 - t0 < 200 * RLY_NS_PER_MS);
        res[r] = (double)(t1 - t0) / ((double)n * batch);
    }
    qsort(res, (size_t)runs, sizeof(double), cmp_double);
    free(x);
    free(y);
    return res[runs / 2];
}

static relay_kernel parse_kernel(const char *s)
{
    if (!strcmp(s, "generic"))
        return RELAY_KERNEL_GENERIC;
    if (!strcmp(s, "avx2"))
        return RELAY_KERNEL_AVX2;
    return RELAY_KERNEL_AUTO;
}

static const char *kname(relay_kernel k)
{
    return k == RELAY_KERNEL_AVX2 ? "avx2" : k == RELAY_KERNEL_GENERIC ? "generic" : "auto";
}

int main(int argc, char **argv)
{
    const char *onnx = NULL, *sizes_arg = NULL;
    int batch = 0, runs = 5;
    relay_kernel kern = RELAY_KERNEL_AUTO;
    bool kern_set = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--onnx"))
            onnx = argv[i + 1];
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--sizes"))
            sizes_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--kernel")) {
            kern = parse_kernel(argv[i + 1]);
            kern_set = true;
        } else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (runs < 1)
        runs = 1;
    if (onnx || sizes_arg) {
        relay_model *m = NULL;
        if (onnx) {
            relay_err e = relay_model_load_onnx(onnx, &m);
            if (e) {
                fprintf(stderr, "%s: %s\n", onnx, relay_strerror(e));
                return 1;
            }
        } else {
            uint32_t sizes[17];
            uint32_t n = 0;
            for (const char *p = sizes_arg; *p && n < 17;) {
                sizes[n++] = (uint32_t)strtoul(p, (char **)&p, 10);
                if (*p == ',')
                    p++;
            }
            if (n < 2 || !(m = mlp_model(sizes, n - 1)))
                return 1;
        }
        if (relay_model_set_kernel(m, kern) != RELAY_OK)
            return 1;
        int b = batch > 0 ? batch : 1;
        printf("model=%s kernel=%s batch=%d ns_per_sample=%.1f\n", onnx ? onnx : sizes_arg,
               kname(relay_model_kernel(m)), b, measure(m, b, runs));
        relay_model_free(m);
        return 0;
    }
    static const uint32_t small[] = {4, 64, 64, 2}, large[] = {8, 256, 256, 4};
    static const int batches[] = {1, 32, 1024};
    const relay_kernel kerns[] = {RELAY_KERNEL_GENERIC, RELAY_KERNEL_AVX2};
    printf("%-14s %-8s %6s %14s\n", "model", "kernel", "batch", "ns/sample");
    for (int s = 0; s < 2; s++) {
        relay_model *m = mlp_model(s ? large : small, 3);
        if (!m)
            return 1;
        for (int k = 0; k < 2; k++) {
            if (kern_set && kerns[k] != kern)
                continue;
            if (relay_model_set_kernel(m, kerns[k]) != RELAY_OK)
                continue;
            for (int b = 0; b < 3; b++)
                printf("%-14s %-8s %6d %14.1f\n", s ? "8-256-256-4" : "4-64-64-2", kname(kerns[k]),
                       batches[b], measure(m, batches[b], runs));
            fflush(stdout);
        }
        relay_model_free(m);
    }
    return 0;
}
