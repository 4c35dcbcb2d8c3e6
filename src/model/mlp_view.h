/*
 * Reading a compiled model back as a plain MLP (dense layers with activations), for warm starts
 * (`relay train --init-model`). Pure function of an immutable model; any thread.
 */
#ifndef RLY_MODEL_MLP_VIEW_H
#define RLY_MODEL_MLP_VIEW_H

#include <stdint.h>

#include "relay/model.h"

/* rly_mlp_view is a model's dense chain: weights [in x out] row-major (y = x W + b). */
typedef struct rly_mlp_view {
    uint32_t n_layers;
    uint32_t sizes[RELAY_MODEL_MAX_LAYERS + 1];
    relay_activation acts[RELAY_MODEL_MAX_LAYERS];
    float *w[RELAY_MODEL_MAX_LAYERS]; /* malloc'd, [sizes[i] x sizes[i+1]] */
    float *b[RELAY_MODEL_MAX_LAYERS]; /* malloc'd, [sizes[i+1]] */
} rly_mlp_view;

/* rly_mlp_view_of unpacks m when it is a chain of dense layers (RELAY_EUNSUPPORTED otherwise). */
relay_err rly_mlp_view_of(const relay_model *m, rly_mlp_view *out);

/* rly_mlp_view_fini frees the arrays of v. */
void rly_mlp_view_fini(rly_mlp_view *v);

#endif
