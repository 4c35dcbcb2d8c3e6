/* Kernels and MLP export/import: both kernel sets must match a naive double-precision reference. */
#include <math.h>
#include <string.h>

#include "model/model_int.h"
#include "relay/model.h"
#include "test_util.h"

static uint32_t g_seed = 7;
/* Float rounding of a dot product grows with the weights' scale: tolerances scale with it. */
static double g_tol_scale = 1.0;

static float frand(void)
{
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)((g_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

typedef struct mlp {
    uint32_t n_layers;
    uint32_t sizes[8];
    relay_activation acts[8];
    float *w[8], *b[8];
    const float *wc[8], *bc[8];
} mlp;

static void mlp_random(mlp *p, uint32_t n_layers, const uint32_t *sizes,
                       const relay_activation *acts, float scale)
{
    memset(p, 0, sizeof *p);
    p->n_layers = n_layers;
    for (uint32_t i = 0; i <= n_layers; i++)
        p->sizes[i] = sizes[i];
    for (uint32_t i = 0; i < n_layers; i++) {
        p->acts[i] = acts[i];
        p->w[i] = malloc(sizeof(float) * sizes[i] * sizes[i + 1]);
        p->b[i] = malloc(sizeof(float) * sizes[i + 1]);
        for (uint32_t j = 0; j < sizes[i] * sizes[i + 1]; j++)
            p->w[i][j] = frand() * scale;
        for (uint32_t j = 0; j < sizes[i + 1]; j++)
            p->b[i][j] = frand() * 0.5f;
        p->wc[i] = p->w[i];
        p->bc[i] = p->b[i];
    }
}

static void mlp_free(mlp *p)
{
    for (uint32_t i = 0; i < p->n_layers; i++) {
        free(p->w[i]);
        free(p->b[i]);
    }
}

static relay_mlp_desc mlp_desc(const mlp *p)
{
    relay_mlp_desc d = {p->n_layers, p->sizes, p->acts, p->wc, p->bc};
    return d;
}

/* reference computes the MLP in double precision, row by row. */
static void reference(const mlp *p, const float *x, int batch, double *y)
{
    double h[2][1024];
    for (int r = 0; r < batch; r++) {
        for (uint32_t j = 0; j < p->sizes[0]; j++)
            h[0][j] = x[(size_t)r * p->sizes[0] + j];
        int cur = 0;
        for (uint32_t l = 0; l < p->n_layers; l++) {
            const uint32_t in = p->sizes[l], out = p->sizes[l + 1];
            double *o = h[cur ^ 1];
            for (uint32_t j = 0; j < out; j++) {
                double s = p->b[l][j];
                for (uint32_t k = 0; k < in; k++)
                    s += (double)p->w[l][(size_t)j * in + k] * h[cur][k];
                switch (p->acts[l]) {
                case RELAY_ACT_RELU:
                    s = s > 0 ? s : 0;
                    break;
                case RELAY_ACT_TANH:
                    s = tanh(s);
                    break;
                case RELAY_ACT_SIGMOID:
                    s = 1.0 / (1.0 + exp(-s));
                    break;
                default:
                    break;
                }
                o[j] = s;
            }
            if (p->acts[l] == RELAY_ACT_SOFTMAX) {
                double mx = o[0], sum = 0;
                for (uint32_t j = 1; j < out; j++)
                    mx = o[j] > mx ? o[j] : mx;
                for (uint32_t j = 0; j < out; j++)
                    sum += (o[j] = exp(o[j] - mx));
                for (uint32_t j = 0; j < out; j++)
                    o[j] /= sum;
            }
            cur ^= 1;
        }
        for (uint32_t j = 0; j < p->sizes[p->n_layers]; j++)
            y[(size_t)r * p->sizes[p->n_layers] + j] = h[cur][j];
    }
}

static void check_model(const mlp *p, relay_kernel k, int batch)
{
    relay_mlp_desc d = mlp_desc(p);
    relay_model *m;
    assert_ok(relay_model_from_mlp(&d, &m));
    if (relay_model_set_kernel(m, k) == RELAY_EUNSUPPORTED) {
        relay_model_free(m);
        return;
    }
    const uint32_t in = p->sizes[0], out = p->sizes[p->n_layers];
    float *x = malloc(sizeof(float) * batch * in), *y = malloc(sizeof(float) * batch * out);
    double *want = malloc(sizeof(double) * batch * out);
    for (int i = 0; i < batch * (int)in; i++)
        x[i] = frand() * 3.0f;
    reference(p, x, batch, want);
    assert_ok(relay_model_forward(m, x, batch, y));
    for (int i = 0; i < batch * (int)out; i++) {
        double tol = 2e-5 * g_tol_scale * (fabs(want[i]) > 1 ? fabs(want[i]) : 1);
        if (!(fabs(y[i] - want[i]) <= tol))
            fail_msg("kernel %d sizes %u-%u-... batch %d: out[%d] = %.9g, want %.9g", (int)k,
                     p->sizes[0], p->sizes[1], batch, i, y[i], want[i]);
    }
    free(x);
    free(y);
    free(want);
    relay_model_free(m);
}

static void test_shapes_and_activations(void **state)
{
    (void)state;
    /* Includes narrow output layers (1-4 outputs, the transposed dot-product path) with inputs
       that are and are not multiples of 8. */
    static const uint32_t shapes[][4] = {{4, 64, 64, 2},  {1, 1, 1, 1},     {3, 17, 31, 5},
                                         {8, 16, 15, 33}, {33, 7, 50, 1},   {5, 100, 20, 10},
                                         {6, 40, 13, 3},  {13, 40, 300, 4}, {7, 9, 16, 4}};
    static const relay_activation actsets[][3] = {
        {RELAY_ACT_TANH, RELAY_ACT_TANH, RELAY_ACT_NONE},
        {RELAY_ACT_RELU, RELAY_ACT_SIGMOID, RELAY_ACT_SOFTMAX},
        {RELAY_ACT_SIGMOID, RELAY_ACT_NONE, RELAY_ACT_TANH},
        {RELAY_ACT_SOFTMAX, RELAY_ACT_RELU, RELAY_ACT_RELU}};
    static const int batches[] = {1, 2, 3, 4, 5, 8, 9, 33};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (size_t a = 0; a < sizeof actsets / sizeof actsets[0]; a++) {
            mlp p;
            mlp_random(&p, 3, shapes[s], actsets[a], 0.6f);
            for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
                check_model(&p, RELAY_KERNEL_GENERIC, batches[b]);
                check_model(&p, RELAY_KERNEL_AVX2, batches[b]);
            }
            mlp_free(&p);
        }
    }
}

static void test_activation_ranges(void **state)
{
    (void)state;
    /* Large weights drive pre-activations far into the saturated ranges of tanh/sigmoid/exp. */
    static const uint32_t sizes[] = {6, 40, 24};
    static const relay_activation acts[][2] = {{RELAY_ACT_TANH, RELAY_ACT_SIGMOID},
                                               {RELAY_ACT_SIGMOID, RELAY_ACT_SOFTMAX},
                                               {RELAY_ACT_RELU, RELAY_ACT_TANH}};
    g_seed = 11; /* this test's data does not depend on how many values earlier tests drew */
    for (size_t a = 0; a < 3; a++) {
        for (float scale = 0.01f; scale < 100.0f; scale *= 4.0f) {
            mlp p;
            mlp_random(&p, 2, sizes, acts[a], scale);
            /* Pre-activations reach ~scale x 40: float accumulation error grows with them. */
            g_tol_scale = scale > 1.0f ? scale : 1.0;
            check_model(&p, RELAY_KERNEL_GENERIC, 13);
            check_model(&p, RELAY_KERNEL_AVX2, 13);
            g_tol_scale = 1.0;
            mlp_free(&p);
        }
    }
}

static void test_export_bytes(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {4, 8, 2};
    static const relay_activation acts[] = {RELAY_ACT_TANH, RELAY_ACT_NONE};
    mlp p;
    mlp_random(&p, 2, sizes, acts, 1.0f);
    relay_mlp_desc d = mlp_desc(&p);
    uint8_t *bytes;
    size_t len;
    assert_ok(relay_mlp_to_onnx(&d, &bytes, &len));
    assert_true(len > (4 * 8 + 8 * 2) * sizeof(float));
    /* The weights travel verbatim in raw_data. */
    const uint8_t *hit = memmem(bytes, len, p.w[0], 4 * 8 * sizeof(float));
    assert_non_null(hit);
    relay_model *m;
    assert_ok(relay_model_from_onnx(bytes, len, &m));
    size_t olen;
    const uint8_t *ob = relay_model_onnx(m, &olen);
    assert_int_equal(olen, len);
    assert_memory_equal(ob, bytes, len);
    assert_int_equal(m->n_ops, 2);
    free(bytes);
    relay_model_free(m);
    /* NULL biases mean zero. */
    d.biases = NULL;
    assert_ok(relay_model_from_mlp(&d, &m));
    float x[4] = {0, 0, 0, 0}, y[2] = {1, 1};
    assert_ok(relay_model_forward(m, x, 1, y));
    assert_true(y[0] == 0.0f && y[1] == 0.0f);
    relay_model_free(m);
    /* Invalid descriptions. */
    relay_mlp_desc bad = mlp_desc(&p);
    bad.n_layers = 0;
    assert_err(relay_mlp_to_onnx(&bad, &bytes, &len), RELAY_EINVAL);
    bad = mlp_desc(&p);
    uint32_t zs[] = {4, 0, 2};
    bad.sizes = zs;
    assert_err(relay_mlp_to_onnx(&bad, &bytes, &len), RELAY_EINVAL);
    bad = mlp_desc(&p);
    relay_activation ba[] = {(relay_activation)9, RELAY_ACT_NONE};
    bad.activations = ba;
    assert_err(relay_model_from_mlp(&bad, &m), RELAY_EINVAL);
    assert_null(m);
    mlp_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_and_activations),
        cmocka_unit_test(test_activation_ranges),
        cmocka_unit_test(test_export_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
