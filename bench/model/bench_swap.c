/*
 * Hot-swap latency: time from relay_model_handle_publish() starting to every reader thread
 * running a forward pass with the new version. Readers loop like actors: refresh their pinned
 * version (one atomic load when unchanged), then run one batch-1 forward pass.
 *
 *   bench_model_swap [--readers N (default 4)] [--swaps N (default 2000)]
 * Prints p50 / p99 / max latency in microseconds.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/thread.h"
#include "relay/model.h"

#define MAX_READERS 16

typedef struct reader {
    _Alignas(64) _Atomic int64_t seen_version;
    _Atomic int64_t seen_ns;
    relay_model_handle *h;
    _Atomic int *stop;
} reader;

static relay_model *make_model(int64_t v)
{
    static const uint32_t sizes[] = {4, 64, 64, 2};
    static float w0[4 * 64], w1[64 * 64], w2[64 * 2];
    for (int i = 0; i < 4 * 64; i++)
        w0[i] = (float)((i + v) % 7) * 0.01f;
    const float *ws[] = {w0, w1, w2};
    static const relay_activation acts[] = {RELAY_ACT_TANH, RELAY_ACT_TANH, RELAY_ACT_NONE};
    relay_mlp_desc d = {3, sizes, acts, ws, NULL};
    relay_model *m = NULL;
    relay_model_from_mlp(&d, &m);
    return m;
}

static void *reader_main(void *p)
{
    reader *r = p;
    relay_model_ws *ws = relay_model_ws_new();
    relay_model_ref ref = {0};
    float x[4] = {0.1f, 0.2f, 0.3f, 0.4f}, y[2];
    while (relay_model_handle_acquire(r->h, &ref) != RELAY_OK)
        rly_cpu_relax();
    relay_model_ws_reserve(ws, ref.model, 1);
    while (!atomic_load_explicit(r->stop, memory_order_relaxed)) {
        if (relay_model_handle_refresh(r->h, &ref)) {
            relay_model_forward_ws(ref.model, ws, x, 1, y);
            atomic_store_explicit(&r->seen_ns, rly_now_ns(), memory_order_relaxed);
            atomic_store_explicit(&r->seen_version, ref.version, memory_order_release);
        } else {
            relay_model_forward_ws(ref.model, ws, x, 1, y);
        }
    }
    relay_model_handle_release(r->h, &ref);
    relay_model_ws_free(ws);
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int n_readers = 4, swaps = 2000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--readers"))
            n_readers = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--swaps"))
            swaps = atoi(argv[i + 1]);
    }
    if (n_readers < 1 || n_readers > MAX_READERS || swaps < 1)
        return 2;
    relay_model_handle *h;
    if (relay_model_handle_new(&h) || relay_model_handle_publish(h, make_model(0), 0))
        return 1;
    relay_model **models = malloc(sizeof(relay_model *) * swaps);
    for (int i = 0; i < swaps; i++)
        models[i] = make_model(i + 1);
    _Atomic int stop = 0;
    static reader rs[MAX_READERS];
    rly_thread th[MAX_READERS];
    for (int i = 0; i < n_readers; i++) {
        atomic_init(&rs[i].seen_version, -1);
        atomic_init(&rs[i].seen_ns, 0);
        rs[i].h = h;
        rs[i].stop = &stop;
        rly_thread_start(&th[i], reader_main, &rs[i], "swap-reader");
    }
    rly_sleep_ns(20 * RLY_NS_PER_MS);
    int64_t *lat = malloc(sizeof(int64_t) * swaps);
    for (int i = 0; i < swaps; i++) {
        const int64_t v = i + 1;
        const int64_t t0 = rly_now_ns();
        relay_model_handle_publish(h, models[i], v);
        int64_t worst = 0;
        for (int r = 0; r < n_readers; r++) {
            while (atomic_load_explicit(&rs[r].seen_version, memory_order_acquire) < v)
                rly_cpu_relax();
            int64_t d = atomic_load_explicit(&rs[r].seen_ns, memory_order_relaxed) - t0;
            worst = d > worst ? d : worst;
        }
        lat[i] = worst;
        rly_sleep_ns(200 * RLY_NS_PER_US);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < n_readers; i++)
        rly_thread_join(th[i]);
    qsort(lat, (size_t)swaps, sizeof(int64_t), cmp_i64);
    printf("readers=%d swaps=%d p50_us=%.2f p99_us=%.2f max_us=%.2f\n", n_readers, swaps,
           lat[swaps / 2] / 1e3, lat[(int)(swaps * 0.99)] / 1e3, lat[swaps - 1] / 1e3);
    free(lat);
    free(models);
    relay_model_handle_free(h);
    return 0;
}
