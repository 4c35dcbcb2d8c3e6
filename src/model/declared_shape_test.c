/* Regression (issue 15, item 1): a model whose declared output shape disagrees with its weights
 * is refused at load, so consumers that size buffers from the declaration never overflow. */
#include <string.h>

#include "onnx_subset.pb-c.h"
#include "relay/model.h"
#include "test_util.h"

/* mlp_onnx encodes a 4 -> out dense layer with the exporter. */
static void mlp_onnx(uint32_t out, uint8_t **bytes, size_t *len)
{
    uint32_t sizes[2] = {4, out};
    float w[4 * 8] = {0}, b[8] = {0};
    const float *ws[1] = {w};
    const float *bs[1] = {b};
    relay_activation act[1] = {RELAY_ACT_NONE};
    relay_mlp_desc d = {
        .n_layers = 1, .sizes = sizes, .activations = act, .weights = ws, .biases = bs};
    assert_ok(relay_mlp_to_onnx(&d, bytes, len));
}

/* redeclare rewrites the declared output width of an encoded model (NULL dims: rank 1). */
static void redeclare(const uint8_t *in, size_t in_len, int64_t width, bool rank1, uint8_t **out,
                      size_t *out_len)
{
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, in_len, in);
    assert_non_null(mp);
    Onnx__TensorShapeProto *sh = mp->graph->output[0]->type->tensor_type->shape;
    assert_non_null(sh);
    assert_int_equal(sh->n_dim, 2);
    if (rank1)
        sh->n_dim = 1;
    else
        sh->dim[1]->dim_value = width;
    *out_len = onnx__model_proto__get_packed_size(mp);
    *out = malloc(*out_len);
    onnx__model_proto__pack(mp, *out);
    if (rank1)
        sh->n_dim = 2; /* so free_unpacked frees both dims */
    onnx__model_proto__free_unpacked(mp, NULL);
}

static void test_declared_output_must_match_weights(void **state)
{
    (void)state;
    uint8_t *good = NULL, *bad = NULL;
    size_t good_len = 0, bad_len = 0;
    mlp_onnx(3, &good, &good_len);
    relay_model *m = NULL;
    assert_ok(relay_model_from_onnx(good, good_len, &m));
    assert_int_equal(relay_model_out_dim(m), 3);
    relay_model_free(m);

    /* Weights compute 3 values, the graph claims 2 (and 4): refused, nothing returned. */
    redeclare(good, good_len, 2, false, &bad, &bad_len);
    m = (relay_model *)0x1;
    assert_err(relay_model_from_onnx(bad, bad_len, &m), RELAY_ESHAPE);
    free(bad);
    redeclare(good, good_len, 4, false, &bad, &bad_len);
    assert_err(relay_model_from_onnx(bad, bad_len, &m), RELAY_ESHAPE);
    free(bad);
    /* A non-positive declared dimension is refused too. */
    redeclare(good, good_len, 0, false, &bad, &bad_len);
    assert_err(relay_model_from_onnx(bad, bad_len, &m), RELAY_ESHAPE);
    free(bad);
    /* Rank 1 ([batch]) declares one value per row: wrong for 3 outputs. */
    redeclare(good, good_len, 0, true, &bad, &bad_len);
    assert_err(relay_model_from_onnx(bad, bad_len, &m), RELAY_ESHAPE);
    free(bad);
    /* ... and right for a one-output value model. */
    free(good);
    mlp_onnx(1, &good, &good_len);
    redeclare(good, good_len, 0, true, &bad, &bad_len);
    assert_ok(relay_model_from_onnx(bad, bad_len, &m));
    assert_int_equal(relay_model_out_dim(m), 1);
    relay_model_free(m);
    free(bad);
    free(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_declared_output_must_match_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
