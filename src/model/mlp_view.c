/* A compiled model read back as a dense chain (see mlp_view.h). */
#include "model/mlp_view.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/model_int.h"

#define LOG "model"

void rly_mlp_view_fini(rly_mlp_view *v)
{
    for (uint32_t i = 0; i < RELAY_MODEL_MAX_LAYERS; i++) {
        free(v->w[i]);
        free(v->b[i]);
    }
    memset(v, 0, sizeof *v);
}

relay_err rly_mlp_view_of(const relay_model *m, rly_mlp_view *v)
{
    memset(v, 0, sizeof *v);
    if (!m)
        return RELAY_EINVAL;
    if (m->out_softmax) {
        rly_error(LOG, "mlp view: the model ends in a softmax (probabilities, not logits)");
        return RELAY_EUNSUPPORTED;
    }
    int prev = RLY_BUF_IN;
    for (uint32_t i = 0; i < m->n_ops; i++) {
        const rly_op *op = &m->ops[i];
        if (op->src != prev) {
            rly_error(LOG, "mlp view: op %u does not continue the chain", i);
            goto unsupported;
        }
        if (op->kind == RLY_OP_DENSE) {
            uint32_t L = v->n_layers;
            if (L == RELAY_MODEL_MAX_LAYERS || (L && v->sizes[L] != op->k))
                goto unsupported;
            v->sizes[L] = op->k;
            v->sizes[L + 1] = op->m;
            v->acts[L] = op->act;
            v->w[L] = malloc((size_t)op->k * op->m * sizeof(float));
            v->b[L] = malloc((size_t)op->m * sizeof(float));
            if (!v->w[L] || !v->b[L]) {
                rly_mlp_view_fini(v);
                return RELAY_ENOMEM;
            }
            for (uint32_t k = 0; k < op->k; k++)
                for (uint32_t c = 0; c < op->m; c++)
                    v->w[L][(size_t)k * op->m + c] =
                        op->w[((size_t)(c / RLY_PANEL) * op->k + k) * RLY_PANEL + c % RLY_PANEL];
            memcpy(v->b[L], op->b, op->m * sizeof(float));
            v->n_layers++;
        } else if (op->kind == RLY_OP_BIAS && v->n_layers && op->m == v->sizes[v->n_layers] &&
                   v->acts[v->n_layers - 1] == RELAY_ACT_NONE) {
            for (uint32_t c = 0; c < op->m; c++)
                v->b[v->n_layers - 1][c] += op->b[c];
        } else if (op->kind == RLY_OP_ACT && v->n_layers &&
                   v->acts[v->n_layers - 1] == RELAY_ACT_NONE) {
            v->acts[v->n_layers - 1] = op->act;
        } else if (op->kind != RLY_OP_COPY) {
            rly_error(LOG, "mlp view: op %u (kind %d) is not part of a dense chain", i,
                      (int)op->kind);
            goto unsupported;
        }
        prev = op->dst;
    }
    if (v->n_layers == 0 || prev != RLY_BUF_OUT)
        goto unsupported;
    return RELAY_OK;
unsupported:
    rly_mlp_view_fini(v);
    return RELAY_EUNSUPPORTED;
}
