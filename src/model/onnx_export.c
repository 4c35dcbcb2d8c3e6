/*
 * Relay MLP -> ONNX bytes: one Gemm (transB=1, weights [out, in] as PyTorch stores them) plus an
 * optional activation node per layer, opset 17, IR version 8, float32 initializers in raw_data,
 * input "input" and output "output" of shape ["batch", n].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/model_int.h"
#include "onnx_subset.pb-c.h"

#define LOG RLY_MODEL_LOG
#define NAME_LEN 32

static relay_err check_desc(const relay_mlp_desc *d)
{
    if (!d || !d->sizes || !d->weights)
        return RELAY_EINVAL;
    if (d->n_layers < 1 || d->n_layers > RELAY_MODEL_MAX_LAYERS) {
        rly_error(LOG, "MLP has %u layers (1..%d)", d->n_layers, RELAY_MODEL_MAX_LAYERS);
        return RELAY_EINVAL;
    }
    for (uint32_t i = 0; i <= d->n_layers; i++) {
        if (d->sizes[i] < 1 || d->sizes[i] > RELAY_MODEL_MAX_WIDTH) {
            rly_error(LOG, "MLP size %u of layer boundary %u outside 1..%d", d->sizes[i], i,
                      RELAY_MODEL_MAX_WIDTH);
            return RELAY_EINVAL;
        }
    }
    for (uint32_t i = 0; i < d->n_layers; i++) {
        if (!d->weights[i]) {
            rly_error(LOG, "MLP layer %u has no weights", i);
            return RELAY_EINVAL;
        }
        if (d->activations &&
            (d->activations[i] < RELAY_ACT_NONE || d->activations[i] > RELAY_ACT_SOFTMAX)) {
            rly_error(LOG, "MLP layer %u has an unknown activation %d", i, (int)d->activations[i]);
            return RELAY_EINVAL;
        }
        if ((uint64_t)d->sizes[i] * d->sizes[i + 1] > RELAY_MODEL_MAX_ONNX_BYTES / 8) {
            rly_error(LOG, "MLP layer %u is too large", i);
            return RELAY_ETOOBIG;
        }
    }
    return RELAY_OK;
}

/* Everything one export allocates, freed together. */
typedef struct exp_arena {
    Onnx__NodeProto *nodes;
    Onnx__NodeProto **node_ptrs;
    Onnx__TensorProto *inits;
    Onnx__TensorProto **init_ptrs;
    int64_t *dims;
    char (*names)[NAME_LEN];
    char **strs; /* node input/output string arrays */
    Onnx__AttributeProto *attrs;
    Onnx__AttributeProto **attr_ptrs;
    float *zero_bias;
} exp_arena;

static void arena_free(exp_arena *a)
{
    free(a->nodes);
    free(a->node_ptrs);
    free(a->inits);
    free(a->init_ptrs);
    free(a->dims);
    free(a->names);
    free(a->strs);
    free(a->attrs);
    free(a->attr_ptrs);
    free(a->zero_bias);
}

static void value_info(Onnx__ValueInfoProto *vi, Onnx__TypeProto *tp, Onnx__TypeProto__Tensor *tt,
                       Onnx__TensorShapeProto *sh, Onnx__TensorShapeProto__Dimension *dims,
                       Onnx__TensorShapeProto__Dimension **dim_ptrs, const char *name, uint32_t n)
{
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    onnx__tensor_shape_proto__dimension__init(&dims[0]);
    onnx__tensor_shape_proto__dimension__init(&dims[1]);
    dims[0].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    dims[0].dim_param = (char *)"batch";
    dims[1].value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    dims[1].dim_value = n;
    dim_ptrs[0] = &dims[0];
    dim_ptrs[1] = &dims[1];
    sh->n_dim = 2;
    sh->dim = dim_ptrs;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->tensor_type = tt;
    vi->name = (char *)name;
    vi->type = tp;
}

static const char *act_op(relay_activation a)
{
    switch (a) {
    case RELAY_ACT_RELU:
        return "Relu";
    case RELAY_ACT_TANH:
        return "Tanh";
    case RELAY_ACT_SIGMOID:
        return "Sigmoid";
    case RELAY_ACT_SOFTMAX:
        return "Softmax";
    default:
        return NULL;
    }
}

relay_err relay_mlp_to_onnx(const relay_mlp_desc *d, uint8_t **bytes, size_t *len)
{
    if (!bytes || !len)
        return RELAY_EINVAL;
    *bytes = NULL;
    *len = 0;
    relay_err e = check_desc(d);
    if (e)
        return e;
    const uint32_t L = d->n_layers;
    exp_arena a = {0};
    uint32_t max_out = 1;
    for (uint32_t i = 0; i < L; i++)
        max_out = d->sizes[i + 1] > max_out ? d->sizes[i + 1] : max_out;
    a.nodes = calloc(2 * L, sizeof *a.nodes);
    a.node_ptrs = calloc(2 * L, sizeof *a.node_ptrs);
    a.inits = calloc(2 * L, sizeof *a.inits);
    a.init_ptrs = calloc(2 * L, sizeof *a.init_ptrs);
    a.dims = calloc(3 * L, sizeof *a.dims);
    a.names = calloc(4 * L + 2, sizeof *a.names);
    a.strs = calloc(6 * L, sizeof *a.strs);
    a.attrs = calloc(2 * L, sizeof *a.attrs);
    a.attr_ptrs = calloc(2 * L, sizeof *a.attr_ptrs);
    a.zero_bias = calloc(max_out, sizeof(float));
    if (!a.nodes || !a.node_ptrs || !a.inits || !a.init_ptrs || !a.dims || !a.names || !a.strs ||
        !a.attrs || !a.attr_ptrs || !a.zero_bias) {
        arena_free(&a);
        return RELAY_ENOMEM;
    }
    size_t n_nodes = 0, n_names = 0, n_strs = 0;
    const char *cur = "input";
    for (uint32_t i = 0; i < L; i++) {
        const uint32_t in = d->sizes[i], out = d->sizes[i + 1];
        const relay_activation act = d->activations ? d->activations[i] : RELAY_ACT_NONE;
        const bool last = i + 1 == L;
        /* Initializers W_i [out, in] and B_i [out]. */
        Onnx__TensorProto *w = &a.inits[2 * i], *b = &a.inits[2 * i + 1];
        onnx__tensor_proto__init(w);
        onnx__tensor_proto__init(b);
        char *wn = a.names[n_names++], *bn = a.names[n_names++];
        snprintf(wn, NAME_LEN, "layer%u.weight", i);
        snprintf(bn, NAME_LEN, "layer%u.bias", i);
        a.dims[3 * i] = out;
        a.dims[3 * i + 1] = in;
        a.dims[3 * i + 2] = out;
        w->name = wn;
        w->n_dims = 2;
        w->dims = &a.dims[3 * i];
        w->has_data_type = 1;
        w->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        w->has_raw_data = 1;
        w->raw_data.len = (size_t)in * out * sizeof(float);
        w->raw_data.data = (uint8_t *)d->weights[i];
        b->name = bn;
        b->n_dims = 1;
        b->dims = &a.dims[3 * i + 2];
        b->has_data_type = 1;
        b->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
        b->has_raw_data = 1;
        b->raw_data.len = (size_t)out * sizeof(float);
        const float *bias = d->biases && d->biases[i] ? d->biases[i] : a.zero_bias;
        b->raw_data.data = (uint8_t *)bias;
        a.init_ptrs[2 * i] = w;
        a.init_ptrs[2 * i + 1] = b;
        /* Gemm node. */
        const char *aop = act_op(act);
        char *gout = a.names[n_names++];
        if (last && !aop)
            snprintf(gout, NAME_LEN, "output");
        else
            snprintf(gout, NAME_LEN, "gemm%u", i);
        Onnx__NodeProto *g = &a.nodes[n_nodes];
        onnx__node_proto__init(g);
        char **gin = &a.strs[n_strs];
        gin[0] = (char *)cur;
        gin[1] = wn;
        gin[2] = bn;
        gin[3] = gout;
        n_strs += 4;
        g->n_input = 3;
        g->input = gin;
        g->n_output = 1;
        g->output = &gin[3];
        g->op_type = (char *)"Gemm";
        g->name = a.names[n_names++];
        snprintf(g->name, NAME_LEN, "Gemm_%u", i);
        Onnx__AttributeProto *tb = &a.attrs[2 * i];
        onnx__attribute_proto__init(tb);
        tb->name = (char *)"transB";
        tb->has_type = 1;
        tb->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        tb->has_i = 1;
        tb->i = 1;
        a.attr_ptrs[2 * i] = tb;
        g->n_attribute = 1;
        g->attribute = &a.attr_ptrs[2 * i];
        a.node_ptrs[n_nodes] = g;
        n_nodes++;
        cur = gout;
        if (!aop)
            continue;
        Onnx__NodeProto *an = &a.nodes[n_nodes];
        onnx__node_proto__init(an);
        char **aio = &a.strs[n_strs];
        n_strs += 2;
        aio[0] = (char *)cur;
        if (last) {
            aio[1] = (char *)"output";
        } else {
            aio[1] = a.names[n_names++];
            snprintf(aio[1], NAME_LEN, "act%u", i);
        }
        an->n_input = 1;
        an->input = aio;
        an->n_output = 1;
        an->output = &aio[1];
        an->op_type = (char *)aop;
        if (act == RELAY_ACT_SOFTMAX) {
            Onnx__AttributeProto *ax = &a.attrs[2 * i + 1];
            onnx__attribute_proto__init(ax);
            ax->name = (char *)"axis";
            ax->has_type = 1;
            ax->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
            ax->has_i = 1;
            ax->i = -1;
            a.attr_ptrs[2 * i + 1] = ax;
            an->n_attribute = 1;
            an->attribute = &a.attr_ptrs[2 * i + 1];
        }
        a.node_ptrs[n_nodes] = an;
        n_nodes++;
        cur = aio[1];
    }

    Onnx__ValueInfoProto vin, vout, *vin_p = &vin, *vout_p = &vout;
    Onnx__TypeProto tin, tout;
    Onnx__TypeProto__Tensor ttin, ttout;
    Onnx__TensorShapeProto shin, shout;
    Onnx__TensorShapeProto__Dimension din[2], dout[2], *din_p[2], *dout_p[2];
    value_info(&vin, &tin, &ttin, &shin, din, din_p, "input", d->sizes[0]);
    value_info(&vout, &tout, &ttout, &shout, dout, dout_p, "output", d->sizes[L]);

    Onnx__GraphProto graph;
    onnx__graph_proto__init(&graph);
    graph.name = (char *)"relay_mlp";
    graph.n_node = n_nodes;
    graph.node = a.node_ptrs;
    graph.n_initializer = 2 * L;
    graph.initializer = a.init_ptrs;
    graph.n_input = 1;
    graph.input = &vin_p;
    graph.n_output = 1;
    graph.output = &vout_p;

    Onnx__OperatorSetIdProto opset, *opset_p = &opset;
    onnx__operator_set_id_proto__init(&opset);
    opset.domain = (char *)"";
    opset.has_version = 1;
    opset.version = 17;

    Onnx__ModelProto model;
    onnx__model_proto__init(&model);
    model.has_ir_version = 1;
    model.ir_version = 8;
    model.n_opset_import = 1;
    model.opset_import = &opset_p;
    model.producer_name = (char *)"relay";
    model.producer_version = (char *)"0.1.0";
    model.graph = &graph;

    size_t sz = onnx__model_proto__get_packed_size(&model);
    uint8_t *buf = malloc(sz ? sz : 1);
    if (!buf) {
        arena_free(&a);
        return RELAY_ENOMEM;
    }
    size_t wrote = onnx__model_proto__pack(&model, buf);
    arena_free(&a);
    if (wrote != sz) {
        free(buf);
        return RELAY_EINTERNAL;
    }
    *bytes = buf;
    *len = sz;
    return RELAY_OK;
}

relay_err relay_model_from_mlp(const relay_mlp_desc *d, relay_model **out)
{
    if (!out)
        return RELAY_EINVAL;
    *out = NULL;
    uint8_t *bytes;
    size_t len;
    relay_err e = relay_mlp_to_onnx(d, &bytes, &len);
    if (e)
        return e;
    e = relay_model_from_onnx(bytes, len, out);
    free(bytes);
    return e;
}
