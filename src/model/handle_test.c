/* Hot-reload handle: readers see whole versions only, while a writer keeps swapping. */
#include <stdatomic.h>
#include <string.h>

#include "core/clock.h"
#include "core/thread.h"
#include "relay/model.h"
#include "test_util.h"

/* version_model builds 4-3-2 whose weights and biases derive from v: out = 16 v for ones (exact).
 */
static relay_model *version_model(int64_t v)
{
    static const uint32_t sizes[] = {4, 3, 2};
    float w0[12], b0[3], w1[6], b1[2];
    for (int i = 0; i < 12; i++)
        w0[i] = (float)v;
    for (int i = 0; i < 3; i++)
        b0[i] = (float)v;
    for (int i = 0; i < 6; i++)
        w1[i] = 1.0f;
    for (int i = 0; i < 2; i++)
        b1[i] = (float)v;
    const float *ws[] = {w0, w1}, *bs[] = {b0, b1};
    relay_mlp_desc d = {2, sizes, NULL, ws, bs};
    relay_model *m = NULL;
    if (relay_model_from_mlp(&d, &m) != RELAY_OK)
        return NULL;
    return m;
}

static float expected(int64_t v)
{
    return (float)(16 * v);
}

typedef struct reader_arg {
    relay_model_handle *h;
    _Atomic int *stop;
    long reads, bad, refreshes;
    int use_refresh;
} reader_arg;

static void *reader(void *p)
{
    reader_arg *a = p;
    relay_model_ws *ws = relay_model_ws_new();
    const float x[4] = {1, 1, 1, 1};
    float y[2];
    int64_t last = -1;
    relay_model_ref ref = {0};
    while (!atomic_load_explicit(a->stop, memory_order_relaxed)) {
        if (a->use_refresh) {
            if (!ref.model) {
                if (relay_model_handle_acquire(a->h, &ref) != RELAY_OK)
                    continue;
            } else if (relay_model_handle_refresh(a->h, &ref)) {
                a->refreshes++;
            }
        } else if (relay_model_handle_acquire(a->h, &ref) != RELAY_OK) {
            continue;
        }
        if (relay_model_forward_ws(ref.model, ws, x, 1, y) != RELAY_OK ||
            y[0] != expected(ref.version) || y[1] != expected(ref.version) || ref.version < last)
            a->bad++;
        last = ref.version;
        a->reads++;
        if (!a->use_refresh)
            relay_model_handle_release(a->h, &ref);
    }
    relay_model_handle_release(a->h, &ref);
    relay_model_ws_free(ws);
    return NULL;
}

static void test_stress(void **state)
{
    (void)state;
    relay_model_handle *h;
    assert_ok(relay_model_handle_new(&h));
    _Atomic int stop = 0;
    enum { READERS = 4 };
    reader_arg args[READERS];
    rly_thread th[READERS];
    for (int i = 0; i < READERS; i++) {
        args[i] = (reader_arg){h, &stop, 0, 0, 0, i % 2};
        assert_ok(rly_thread_start(&th[i], reader, &args[i], "model-reader"));
    }
    const int versions = test_sanitized() ? 150 : 3000;
    for (int v = 1; v <= versions; v++) {
        relay_model *m = version_model(v);
        assert_non_null(m);
        assert_ok(relay_model_handle_publish(h, m, v));
        assert_int_equal(relay_model_handle_version(h), v);
        if (v % 64 == 0)
            rly_sleep_ns(100 * 1000);
    }
    rly_sleep_ns(2 * 1000 * 1000);
    atomic_store(&stop, 1);
    long reads = 0, refreshes = 0;
    for (int i = 0; i < READERS; i++) {
        rly_thread_join(th[i]);
        assert_int_equal(args[i].bad, 0);
        reads += args[i].reads;
        refreshes += args[i].refreshes;
    }
    assert_true(reads > READERS);
    assert_true(refreshes > 0);
    relay_model_handle_free(h);
}

static void test_basics(void **state)
{
    (void)state;
    relay_model_handle *h;
    assert_ok(relay_model_handle_new(&h));
    relay_model_ref ref;
    assert_err(relay_model_handle_acquire(h, &ref), RELAY_ENOMODEL);
    assert_null(ref.model);
    assert_int_equal(relay_model_handle_version(h), -1);
    assert_false(relay_model_handle_refresh(h, &ref));
    assert_err(relay_model_handle_publish(h, NULL, 1), RELAY_EINVAL);
    assert_ok(relay_model_handle_publish(h, version_model(3), 3));
    assert_ok(relay_model_handle_acquire(h, &ref));
    assert_int_equal(ref.version, 3);
    /* An old version stays usable while pinned, across later publishes. */
    for (int v = 4; v < 10; v++)
        assert_ok(relay_model_handle_publish(h, version_model(v), v));
    float x[4] = {1, 1, 1, 1}, y[2];
    relay_model_ws *ws = relay_model_ws_new();
    assert_ok(relay_model_forward_ws(ref.model, ws, x, 1, y));
    assert_true(y[0] == expected(3));
    assert_true(relay_model_handle_refresh(h, &ref));
    assert_int_equal(ref.version, 9);
    assert_false(relay_model_handle_refresh(h, &ref));
    assert_ok(relay_model_forward_ws(ref.model, ws, x, 1, y));
    assert_true(y[1] == expected(9));
    relay_model_handle_release(h, &ref);
    relay_model_handle_release(h, &ref); /* second release is a no-op */
    assert_null(ref.model);
    relay_model_ws_free(ws);
    relay_model_handle_free(h);
    relay_model_handle_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
