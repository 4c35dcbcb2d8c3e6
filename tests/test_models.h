/*
 * Small policy bundles for tests: a single linear layer with zero weights, so the logits are the
 * biases whatever the observation (the preferred action is known in advance). The caller owns
 * the bundle (relay_bundle_free). Any thread; no shared state.
 */
#ifndef RELAY_TEST_MODELS_H
#define RELAY_TEST_MODELS_H

#include <stdint.h>
#include <stdlib.h>

#include "relay/model.h"

/* TEST_BIAS_MAX bounds in * out and out for test_bias_bundle. */
#define TEST_BIAS_MAX 64

/*
 * test_bias_bundle makes an `in` -> `out` linear policy with zero weights and the given biases
 * (NULL: zeros), declaring observations [in] and n_actions discrete actions.
 */
static inline relay_err test_bias_bundle(uint32_t in, uint32_t out, uint32_t n_actions,
                                         const float *bias, relay_bundle **bundle)
{
    if ((uint64_t)in * out > TEST_BIAS_MAX || out > TEST_BIAS_MAX)
        return RELAY_EINVAL;
    uint32_t sizes[2] = {in, out};
    float w[TEST_BIAS_MAX] = {0}, b[TEST_BIAS_MAX] = {0};
    for (uint32_t i = 0; bias && i < out; i++)
        b[i] = bias[i];
    const float *ws[1] = {w};
    const float *bs[1] = {b};
    relay_activation act[1] = {RELAY_ACT_NONE};
    relay_mlp_desc d = {
        .n_layers = 1, .sizes = sizes, .activations = act, .weights = ws, .biases = bs};
    uint8_t *onnx = NULL;
    size_t len = 0;
    relay_err e = relay_mlp_to_onnx(&d, &onnx, &len);
    if (e != RELAY_OK)
        return e;
    relay_model_meta meta = {0};
    meta.obs.dtype = RELAY_F32;
    meta.obs.rank = 1;
    meta.obs.shape[0] = in;
    meta.act.discrete = true;
    meta.act.n = n_actions;
    meta.act.dtype = RELAY_I32;
    e = relay_bundle_new(onnx, len, &meta, bundle);
    free(onnx);
    return e;
}

#endif
