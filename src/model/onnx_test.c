/* ONNX import: PyTorch/onnx-made fixtures must match their recorded outputs; bad models fail. */
#include <math.h>
#include <string.h>

#include "model/model_int.h"
#include "relay/log.h"
#include "relay/model.h"
#include "test_util.h"

static char g_dir[1024];
static char g_log[4096];

static void capture(relay_log_level level, const char *module, const char *text, void *user)
{
    (void)level;
    (void)module;
    (void)user;
    size_t n = strlen(g_log);
    snprintf(g_log + n, sizeof g_log - n, "%s\n", text);
}

static void fixture_path(char *buf, size_t cap, const char *name, const char *ext)
{
    snprintf(buf, cap, "%s/%s%s", g_dir, name, ext);
}

typedef struct io {
    int batch, in_dim, out_dim;
    float *x, *y;
} io;

static void io_load(const char *name, io *o)
{
    char p[1400];
    fixture_path(p, sizeof p, name, ".io.txt");
    FILE *f = fopen(p, "r");
    if (!f)
        fail_msg("cannot open %s", p);
    assert_int_equal(fscanf(f, "%d %d %d", &o->batch, &o->in_dim, &o->out_dim), 3);
    o->x = malloc(sizeof(float) * o->batch * o->in_dim);
    o->y = malloc(sizeof(float) * o->batch * o->out_dim);
    for (int i = 0; i < o->batch * o->in_dim; i++)
        assert_int_equal(fscanf(f, "%f", &o->x[i]), 1);
    for (int i = 0; i < o->batch * o->out_dim; i++)
        assert_int_equal(fscanf(f, "%f", &o->y[i]), 1);
    fclose(f);
}

static void check_close(const char *name, const float *got, const float *want, int n)
{
    for (int i = 0; i < n; i++) {
        float tol = 1e-5f * (fabsf(want[i]) > 1.0f ? fabsf(want[i]) : 1.0f);
        if (!(fabsf(got[i] - want[i]) <= tol))
            fail_msg("%s: output %d = %.9g, want %.9g", name, i, got[i], want[i]);
    }
}

static void run_fixture(const char *name, relay_kernel k)
{
    char p[1400];
    fixture_path(p, sizeof p, name, ".onnx");
    relay_model *m;
    assert_ok(relay_model_load_onnx(p, &m));
    relay_err ke = relay_model_set_kernel(m, k);
    if (ke == RELAY_EUNSUPPORTED) {
        relay_model_free(m);
        return;
    }
    assert_ok(ke);
    io o;
    io_load(name, &o);
    assert_int_equal(relay_model_in_dim(m), o.in_dim);
    assert_int_equal(relay_model_out_dim(m), o.out_dim);
    float *out = calloc((size_t)o.batch * o.out_dim, sizeof(float));
    assert_ok(relay_model_forward(m, o.x, o.batch, out));
    check_close(name, out, o.y, o.batch * o.out_dim);
    /* Row by row (the single-row kernel path) must agree too. */
    for (int r = 0; r < o.batch; r++) {
        memset(out, 0, sizeof(float) * o.out_dim);
        assert_ok(relay_model_forward(m, o.x + (size_t)r * o.in_dim, 1, out));
        check_close(name, out, o.y + (size_t)r * o.out_dim, o.out_dim);
    }
    free(out);
    free(o.x);
    free(o.y);
    relay_model_free(m);
}

static void for_each_fixture(relay_kernel k)
{
    char p[1400];
    fixture_path(p, sizeof p, "fixtures", ".txt");
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char name[256];
    int count = 0;
    while (fscanf(f, "%255s", name) == 1) {
        run_fixture(name, k);
        count++;
    }
    fclose(f);
    assert_true(count >= 8);
}

static void test_fixtures_auto(void **state)
{
    (void)state;
    for_each_fixture(RELAY_KERNEL_AUTO);
}

static void test_fixtures_generic(void **state)
{
    (void)state;
    for_each_fixture(RELAY_KERNEL_GENERIC);
}

static void test_fixtures_avx2(void **state)
{
    (void)state;
    for_each_fixture(RELAY_KERNEL_AVX2);
}

static void test_fusion(void **state)
{
    (void)state;
    char p[1400];
    /* Gemm+Tanh x2 + Gemm compile to three fused dense ops. */
    fixture_path(p, sizeof p, "mlp_4_64_64_2_tanh_op17", ".onnx");
    relay_model *m;
    assert_ok(relay_model_load_onnx(p, &m));
    assert_int_equal(m->n_ops, 3);
    assert_int_equal(m->ops[0].kind, RLY_OP_DENSE);
    assert_int_equal(m->ops[0].act, RELAY_ACT_TANH);
    assert_int_equal(m->ops[2].act, RELAY_ACT_NONE);
    assert_int_equal(m->ops[2].dst, RLY_BUF_OUT);
    assert_int_equal(m->ops[0].src, RLY_BUF_IN);
    assert_true(m->n_slots <= 2);
    assert_false(relay_model_output_is_softmax(m));
    relay_model_free(m);
    /* MatMul + Add + Relu (+ Flatten, Identity) fuse the same way. */
    fixture_path(p, sizeof p, "matmul_add_5_20_3_relu_op17", ".onnx");
    assert_ok(relay_model_load_onnx(p, &m));
    assert_int_equal(m->n_ops, 2);
    assert_int_equal(m->ops[0].act, RELAY_ACT_RELU);
    relay_model_free(m);
    fixture_path(p, sizeof p, "mlp_8_32_16_4_relu_softmax_op13", ".onnx");
    assert_ok(relay_model_load_onnx(p, &m));
    assert_true(relay_model_output_is_softmax(m));
    relay_model_free(m);
    fixture_path(p, sizeof p, "mlp_2x3_flatten_24_6_op12", ".onnx");
    assert_ok(relay_model_load_onnx(p, &m));
    int64_t shape[4];
    assert_int_equal(relay_model_input_shape(m, shape, 4), 2);
    assert_int_equal(shape[0], 2);
    assert_int_equal(shape[1], 3);
    relay_model_free(m);
}

static void test_bad_models(void **state)
{
    (void)state;
    char p[1400];
    fixture_path(p, sizeof p, "bad_fixtures", ".txt");
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    char name[256], want[64];
    int count = 0;
    relay_log_set_sink(capture, NULL);
    while (fscanf(f, "%255s %63s", name, want) == 2) {
        g_log[0] = 0;
        fixture_path(p, sizeof p, name, ".onnx");
        relay_model *m = (relay_model *)1;
        relay_err e = relay_model_load_onnx(p, &m);
        if (strcmp(relay_errname(e), want) != 0)
            fail_msg("%s: got %s, want %s", name, relay_errname(e), want);
        assert_null(m);
        assert_true(strlen(g_log) > 0);
        if (!strcmp(name, "bad_op_conv"))
            assert_non_null(strstr(g_log, "LeakyRelu"));
        if (!strcmp(name, "bad_attr_softmax"))
            assert_non_null(strstr(g_log, "'foo'"));
        if (!strcmp(name, "bad_opset_9"))
            assert_non_null(strstr(g_log, "opset 9"));
        count++;
    }
    relay_log_set_sink(NULL, NULL);
    fclose(f);
    assert_true(count >= 4);
}

static void test_malformed_bytes(void **state)
{
    (void)state;
    char p[1400];
    fixture_path(p, sizeof p, "mlp_4_64_64_2_tanh_op17", ".onnx");
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 1000);
    relay_model *m;
    relay_log_set_level(RELAY_LOG_OFF);
    /* Truncations inside a length-delimited field fail to decode. */
    for (size_t cut = 1; cut < n; cut += n / 37) {
        relay_err e = relay_model_from_onnx(buf, cut, &m);
        assert_true(e != RELAY_OK);
        assert_null(m);
    }
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99};
    assert_err(relay_model_from_onnx(junk, sizeof junk, &m), RELAY_EFORMAT);
    assert_err(relay_model_from_onnx(junk, 0, &m), RELAY_EFORMAT);
    assert_err(relay_model_from_onnx(NULL, 10, &m), RELAY_EINVAL);
    assert_err(relay_model_from_onnx(junk, (size_t)RELAY_MODEL_MAX_ONNX_BYTES + 1, &m),
               RELAY_ETOOBIG);
    /* Flipping bytes must never crash; whatever loads must run. */
    uint32_t seed = 12345;
    for (int it = 0; it < 300; it++) {
        static uint8_t mut[1 << 16];
        memcpy(mut, buf, n);
        for (int j = 0; j < 4; j++) {
            seed = seed * 1103515245u + 12345u;
            mut[(seed >> 8) % n] ^= (uint8_t)(seed >> 3);
        }
        if (relay_model_from_onnx(mut, n, &m) == RELAY_OK) {
            float x[4] = {1, 2, 3, 4}, y[64];
            assert_true(relay_model_out_dim(m) <= 64);
            assert_ok(relay_model_forward(m, x, 1, y));
            relay_model_free(m);
        }
    }
    relay_log_set_level(RELAY_LOG_WARN);
    assert_err(relay_model_load_onnx("/nonexistent/x.onnx", &m), RELAY_ENOTFOUND);
}

static void test_workspace_growth(void **state)
{
    (void)state;
    char p[1400];
    fixture_path(p, sizeof p, "mlp_4_64_64_2_tanh_op17", ".onnx");
    relay_model *m;
    assert_ok(relay_model_load_onnx(p, &m));
    assert_ok(relay_model_reserve(m, 64));
    const float *buf = m->ws.buf;
    const size_t cap = m->ws.cap;
    float *x = calloc(65 * 4, sizeof(float)), *y = calloc(65 * 2, sizeof(float));
    assert_ok(relay_model_forward(m, x, 7, y));
    assert_ok(relay_model_forward(m, x, 64, y));
    assert_ptr_equal(m->ws.buf, buf);
    assert_int_equal(m->ws.cap, cap);
    assert_ok(relay_model_forward(m, x, 65, y));
    assert_true(m->ws.cap > cap);
    assert_err(relay_model_forward(m, x, 0, y), RELAY_EINVAL);
    assert_err(relay_model_forward(m, NULL, 1, y), RELAY_EINVAL);
    /* A caller-provided workspace gives the same result. */
    relay_model_ws *ws = relay_model_ws_new();
    float *y2 = calloc(65 * 2, sizeof(float));
    for (int i = 0; i < 65 * 4; i++)
        x[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
    assert_ok(relay_model_ws_reserve(ws, m, 65));
    assert_ok(relay_model_forward_ws(m, ws, x, 65, y2));
    assert_ok(relay_model_forward(m, x, 65, y));
    assert_memory_equal(y, y2, 65 * 2 * sizeof(float));
    relay_model_ws_free(ws);
    free(x);
    free(y);
    free(y2);
    relay_model_free(m);
}

int main(void)
{
    const char *src = getenv("RELAY_SOURCE_DIR");
    snprintf(g_dir, sizeof g_dir, "%s/tests/data/model", src ? src : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_auto),    cmocka_unit_test(test_fixtures_generic),
        cmocka_unit_test(test_fixtures_avx2),    cmocka_unit_test(test_fusion),
        cmocka_unit_test(test_bad_models),       cmocka_unit_test(test_malformed_bytes),
        cmocka_unit_test(test_workspace_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
