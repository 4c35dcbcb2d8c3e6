/*
 * ONNX graph -> Relay plan.
 *
 * Steps: check the opset; index every value (graph input, initializers, node outputs); order the
 * nodes topologically (Kahn); resolve Identity/Flatten to aliases; count the consumers of each
 * value; then lower the nodes in order into ops, fusing Gemm/MatMul with a following bias Add and
 * activation when the intermediate value has no other consumer; finally assign workspace slots by
 * liveness. Every rejection logs what was wrong and returns RELAY_EUNSUPPORTED (valid ONNX that
 * Relay does not run), RELAY_EFORMAT (invalid ONNX) or RELAY_ETOOBIG (limits).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/model_int.h"
#include "onnx_subset.pb-c.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ONNX raw_data is little-endian; this file assumes a little-endian host"
#endif

#define LOG RLY_MODEL_LOG

enum { V_UNDEF = 0, V_INPUT, V_INIT, V_NODE };

typedef enum op_type {
    T_GEMM,
    T_MATMUL,
    T_ADD,
    T_RELU,
    T_TANH,
    T_SIGMOID,
    T_SOFTMAX,
    T_IDENTITY,
    T_FLATTEN,
    T_COUNT_
} op_type;

static const char *const op_names[T_COUNT_] = {"Gemm",    "MatMul",  "Add",      "Relu",   "Tanh",
                                               "Sigmoid", "Softmax", "Identity", "Flatten"};

typedef struct val {
    const char *name;
    int kind;
    const Onnx__TensorProto *init;
    int canon;       /* canonical value (aliases resolved) */
    uint32_t width;  /* per-sample feature count (activations) */
    uint32_t rank;   /* activation rank including the batch dim */
    int consumers;   /* ops reading the canonical value */
    bool is_output;  /* canonical value is the graph output */
    int producer_op; /* index in the op list, -1 if none */
    int last_use;    /* last op index reading it */
    int buf;
} val;

typedef struct ctx {
    relay_model *m;
    const Onnx__GraphProto *g;
    int64_t opset;
    val *vals;
    size_t n_vals;
    int *node_val_out; /* value index of each node's output */
    op_type *node_type;
    rly_op *ops;
    uint32_t n_ops, ops_cap;
} ctx;

static int find_val(const ctx *c, const char *name)
{
    for (size_t i = 0; i < c->n_vals; i++)
        if (strcmp(c->vals[i].name, name) == 0)
            return (int)i;
    return -1;
}

static int canon(const ctx *c, int v)
{
    return c->vals[v].canon;
}

static relay_err init_floats(const Onnx__TensorProto *t, float **out, int64_t *numel)
{
    *out = NULL;
    const char *name = t->name ? t->name : "?";
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        rly_error(LOG, "initializer '%s': external data is not supported", name);
        return RELAY_EUNSUPPORTED;
    }
    if (!t->has_data_type || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        rly_error(LOG, "initializer '%s': data type %d is not supported (float32 only)", name,
                  t->has_data_type ? t->data_type : 0);
        return RELAY_EUNSUPPORTED;
    }
    if (t->n_dims > RELAY_MAX_RANK) {
        rly_error(LOG, "initializer '%s': rank %zu exceeds %d", name, t->n_dims, RELAY_MAX_RANK);
        return RELAY_EUNSUPPORTED;
    }
    int64_t n = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || (t->dims[i] > 0 && n > ((int64_t)1 << 40) / t->dims[i])) {
            rly_error(LOG, "initializer '%s': bad dimension %lld", name, (long long)t->dims[i]);
            return RELAY_EFORMAT;
        }
        n *= t->dims[i];
    }
    if (n > (int64_t)(RELAY_MODEL_MAX_ONNX_BYTES / 4)) {
        rly_error(LOG, "initializer '%s': %lld elements exceed the limit", name, (long long)n);
        return RELAY_ETOOBIG;
    }
    float *d = malloc((size_t)(n ? n : 1) * sizeof(float));
    if (!d)
        return RELAY_ENOMEM;
    if (t->has_raw_data && t->raw_data.len > 0) {
        if (t->raw_data.len != (size_t)n * sizeof(float) || t->n_float_data) {
            rly_error(LOG, "initializer '%s': raw_data has %zu bytes, want %lld", name,
                      t->raw_data.len, (long long)n * 4);
            free(d);
            return RELAY_EFORMAT;
        }
        memcpy(d, t->raw_data.data, (size_t)n * sizeof(float));
    } else if (t->n_float_data == (size_t)n) {
        memcpy(d, t->float_data, (size_t)n * sizeof(float));
    } else {
        rly_error(LOG, "initializer '%s': has %zu float_data values, want %lld", name,
                  t->n_float_data, (long long)n);
        free(d);
        return RELAY_EFORMAT;
    }
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(d[i])) {
            rly_warn(LOG, "initializer '%s' holds a non-finite value at %lld", name, (long long)i);
            break;
        }
    }
    *out = d;
    *numel = n;
    return RELAY_OK;
}

/* attr_allowed checks every attribute of node against the op's list and reads known ones. */
typedef struct attrs {
    float alpha, beta;
    int64_t trans_a, trans_b, axis;
    bool has_axis;
} attrs;

static relay_err read_attrs(const ctx *c, const Onnx__NodeProto *n, op_type t, attrs *a)
{
    a->alpha = 1.0f;
    a->beta = 1.0f;
    a->trans_a = 0;
    a->trans_b = 0;
    a->axis = 0;
    a->has_axis = false;
    for (size_t i = 0; i < n->n_attribute; i++) {
        const Onnx__AttributeProto *at = n->attribute[i];
        const char *an = at->name ? at->name : "";
        bool ok = false;
        if (t == T_GEMM && (!strcmp(an, "alpha") || !strcmp(an, "beta"))) {
            if (at->has_type && at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT)
                goto bad_type;
            if (an[0] == 'a')
                a->alpha = at->f;
            else
                a->beta = at->f;
            ok = true;
        } else if (t == T_GEMM && (!strcmp(an, "transA") || !strcmp(an, "transB"))) {
            if (at->has_type && at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
                goto bad_type;
            if (an[5] == 'A')
                a->trans_a = at->i;
            else
                a->trans_b = at->i;
            ok = true;
        } else if ((t == T_SOFTMAX || t == T_FLATTEN) && !strcmp(an, "axis")) {
            if (at->has_type && at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
                goto bad_type;
            a->axis = at->i;
            a->has_axis = true;
            ok = true;
        }
        if (!ok) {
            rly_error(LOG, "node '%s' (%s): attribute '%s' is not supported",
                      n->name ? n->name : "", op_names[t], an);
            return RELAY_EUNSUPPORTED;
        }
        continue;
    bad_type:
        rly_error(LOG, "node '%s' (%s): attribute '%s' has the wrong type %d",
                  n->name ? n->name : "", op_names[t], an, (int)at->type);
        return RELAY_EFORMAT;
    }
    (void)c;
    return RELAY_OK;
}

static relay_err new_op(ctx *c, rly_op **out)
{
    if (c->n_ops >= c->ops_cap)
        return RELAY_EINTERNAL;
    rly_op *op = &c->ops[c->n_ops++];
    memset(op, 0, sizeof *op);
    op->src2 = -1;
    *out = op;
    return RELAY_OK;
}

/* bias_ok reports whether an initializer of numel n and the given dims broadcasts as a row of m. */
static bool bias_shape_ok(const Onnx__TensorProto *t, uint32_t m)
{
    int64_t numel = 1;
    for (size_t i = 0; i < t->n_dims; i++)
        numel *= t->dims[i];
    if (numel == 1 && t->n_dims <= 2)
        return true;
    if (t->n_dims == 1 && t->dims[0] == m)
        return true;
    if (t->n_dims == 2 && t->dims[0] == 1 && t->dims[1] == m)
        return true;
    return false;
}

/* add_bias adds scale * (initializer broadcast to m) into b[0..m). */
static relay_err add_bias(const Onnx__TensorProto *t, float scale, float *b, uint32_t m)
{
    float *d;
    int64_t n;
    relay_err e = init_floats(t, &d, &n);
    if (e)
        return e;
    for (uint32_t j = 0; j < m; j++)
        b[j] += scale * (n == 1 ? d[0] : d[j]);
    free(d);
    return RELAY_OK;
}

/* lower_dense builds a dense op from Gemm or MatMul node n. */
static relay_err lower_dense(ctx *c, const Onnx__NodeProto *n, op_type t, const attrs *a, int out_v)
{
    const char *nn = n->name ? n->name : "";
    if ((t == T_GEMM && (n->n_input < 2 || n->n_input > 3)) || (t == T_MATMUL && n->n_input != 2)) {
        rly_error(LOG, "node '%s' (%s): wrong number of inputs %zu", nn, op_names[t], n->n_input);
        return RELAY_EFORMAT;
    }
    int xa = find_val(c, n->input[0]), wb = find_val(c, n->input[1]);
    if (c->vals[xa].kind == V_INIT || c->vals[wb].kind != V_INIT) {
        rly_error(LOG, "node '%s' (%s): only activation x constant-weight products are supported",
                  nn, op_names[t]);
        return RELAY_EUNSUPPORTED;
    }
    xa = canon(c, xa);
    if (a->trans_a) {
        rly_error(LOG, "node '%s' (Gemm): attribute 'transA'=1 is not supported", nn);
        return RELAY_EUNSUPPORTED;
    }
    if (c->vals[xa].rank != 2) {
        rly_error(LOG, "node '%s' (%s): input must be rank 2 [batch, k], got rank %u", nn,
                  op_names[t], c->vals[xa].rank);
        return RELAY_EUNSUPPORTED;
    }
    const Onnx__TensorProto *wt = c->vals[wb].init;
    if (wt->n_dims != 2) {
        rly_error(LOG, "node '%s' (%s): weight '%s' must be rank 2", nn, op_names[t], n->input[1]);
        return RELAY_EUNSUPPORTED;
    }
    const uint32_t k = c->vals[xa].width;
    int64_t wk = a->trans_b ? wt->dims[1] : wt->dims[0];
    int64_t wm = a->trans_b ? wt->dims[0] : wt->dims[1];
    if (wk != (int64_t)k || wm <= 0) {
        rly_error(LOG, "node '%s' (%s): weight shape [%lld, %lld] does not fit input width %u", nn,
                  op_names[t], (long long)wt->dims[0], (long long)wt->dims[1], k);
        return RELAY_ESHAPE;
    }
    if (wm > RELAY_MODEL_MAX_WIDTH) {
        rly_error(LOG, "node '%s': output width %lld exceeds %d", nn, (long long)wm,
                  RELAY_MODEL_MAX_WIDTH);
        return RELAY_ETOOBIG;
    }
    const uint32_t m = (uint32_t)wm;
    float *w;
    int64_t numel;
    relay_err e = init_floats(wt, &w, &numel);
    if (e)
        return e;
    rly_op *op;
    if ((e = new_op(c, &op))) {
        free(w);
        return e;
    }
    op->kind = RLY_OP_DENSE;
    op->act = RELAY_ACT_NONE;
    op->src = xa;
    op->dst = out_v;
    op->k = k;
    op->m = m;
    op->panels = (m + RLY_PANEL - 1) / RLY_PANEL;
    op->w = rly_aligned_floats((size_t)op->panels * k * RLY_PANEL);
    op->b = rly_aligned_floats((size_t)op->panels * RLY_PANEL);
    if (!op->w || !op->b) {
        free(w);
        return RELAY_ENOMEM;
    }
    for (uint32_t p = 0; p < op->panels; p++) {
        float *wp = op->w + (size_t)p * k * RLY_PANEL;
        for (uint32_t kk = 0; kk < k; kk++) {
            for (uint32_t j = 0; j < RLY_PANEL && p * RLY_PANEL + j < m; j++) {
                uint32_t col = p * RLY_PANEL + j;
                float v = a->trans_b ? w[(size_t)col * k + kk] : w[(size_t)kk * m + col];
                wp[(size_t)kk * RLY_PANEL + j] = a->alpha * v;
            }
        }
    }
    free(w);
    if (t == T_GEMM && n->n_input == 3 && n->input[2][0] != '\0') {
        int cv = find_val(c, n->input[2]);
        if (c->vals[cv].kind != V_INIT || !bias_shape_ok(c->vals[cv].init, m)) {
            rly_error(LOG, "node '%s' (Gemm): C must be a constant broadcastable to [1, %u]", nn,
                      m);
            return RELAY_EUNSUPPORTED;
        }
        if ((e = add_bias(c->vals[cv].init, a->beta, op->b, m)))
            return e;
    }
    c->vals[out_v].width = m;
    c->vals[out_v].rank = 2;
    c->vals[out_v].producer_op = (int)(op - c->ops);
    return RELAY_OK;
}

/* fusable returns the dense op producing canonical value v if v may be folded into a successor. */
static rly_op *fusable(ctx *c, int v)
{
    const val *vv = &c->vals[v];
    if (vv->producer_op < 0 || vv->consumers != 1 || vv->is_output)
        return NULL;
    rly_op *op = &c->ops[vv->producer_op];
    if (op->kind != RLY_OP_DENSE || op->act != RELAY_ACT_NONE || op->dst != v)
        return NULL;
    return op;
}

static relay_err lower_add(ctx *c, const Onnx__NodeProto *n, int out_v)
{
    const char *nn = n->name ? n->name : "";
    if (n->n_input != 2) {
        rly_error(LOG, "node '%s' (Add): wrong number of inputs %zu", nn, n->n_input);
        return RELAY_EFORMAT;
    }
    int a = find_val(c, n->input[0]), b = find_val(c, n->input[1]);
    if (c->vals[a].kind == V_INIT) {
        int t = a;
        a = b;
        b = t;
    }
    if (c->vals[a].kind == V_INIT) {
        rly_error(LOG, "node '%s' (Add): adding two constants is not supported", nn);
        return RELAY_EUNSUPPORTED;
    }
    a = canon(c, a);
    const uint32_t m = c->vals[a].width;
    relay_err e;
    rly_op *op;
    if (c->vals[b].kind == V_INIT) {
        const Onnx__TensorProto *bt = c->vals[b].init;
        if (c->vals[a].rank != 2 || !bias_shape_ok(bt, m)) {
            rly_error(LOG, "node '%s' (Add): constant '%s' does not broadcast as a row of %u", nn,
                      n->input[1], m);
            return RELAY_EUNSUPPORTED;
        }
        rly_op *d = fusable(c, a);
        if (d) {
            if ((e = add_bias(bt, 1.0f, d->b, m)))
                return e;
            d->dst = out_v;
        } else {
            if ((e = new_op(c, &op)))
                return e;
            op->kind = RLY_OP_BIAS;
            op->src = a;
            op->dst = out_v;
            op->m = m;
            op->b = rly_aligned_floats(m);
            if (!op->b)
                return RELAY_ENOMEM;
            if ((e = add_bias(bt, 1.0f, op->b, m)))
                return e;
            d = op;
        }
        c->vals[out_v].producer_op = (int)(d - c->ops);
    } else {
        b = canon(c, b);
        if (c->vals[b].width != m || c->vals[b].rank != c->vals[a].rank) {
            rly_error(LOG, "node '%s' (Add): operand widths %u and %u differ", nn, m,
                      c->vals[b].width);
            return RELAY_EUNSUPPORTED;
        }
        if ((e = new_op(c, &op)))
            return e;
        op->kind = RLY_OP_ADD;
        op->src = a;
        op->src2 = b;
        op->dst = out_v;
        op->m = m;
        c->vals[out_v].producer_op = (int)(op - c->ops);
    }
    c->vals[out_v].width = m;
    c->vals[out_v].rank = c->vals[a].rank;
    return RELAY_OK;
}

static relay_err lower_act(ctx *c, const Onnx__NodeProto *n, op_type t, const attrs *at, int out_v)
{
    const char *nn = n->name ? n->name : "";
    if (n->n_input != 1) {
        rly_error(LOG, "node '%s' (%s): wrong number of inputs %zu", nn, op_names[t], n->n_input);
        return RELAY_EFORMAT;
    }
    int a = find_val(c, n->input[0]);
    if (c->vals[a].kind == V_INIT) {
        rly_error(LOG, "node '%s' (%s): constant input is not supported", nn, op_names[t]);
        return RELAY_EUNSUPPORTED;
    }
    a = canon(c, a);
    relay_activation act = t == T_RELU      ? RELAY_ACT_RELU
                           : t == T_TANH    ? RELAY_ACT_TANH
                           : t == T_SIGMOID ? RELAY_ACT_SIGMOID
                                            : RELAY_ACT_SOFTMAX;
    const uint32_t rank = c->vals[a].rank;
    if (t == T_SOFTMAX) {
        int64_t axis = at->has_axis ? at->axis : (c->opset < 13 ? 1 : -1);
        if (axis < 0)
            axis += rank;
        /* Before opset 13 softmax flattens from axis on: axis 1 covers all features of a sample. */
        bool ok = c->opset < 13 ? axis == 1 : (axis == (int64_t)rank - 1 && rank == 2);
        if (!ok) {
            rly_error(LOG,
                      "node '%s' (Softmax): attribute 'axis'=%lld on a rank-%u value is not "
                      "supported (only the feature axis of [batch, n])",
                      nn, (long long)at->axis, rank);
            return RELAY_EUNSUPPORTED;
        }
    }
    rly_op *d = fusable(c, a);
    if (d) {
        d->act = act;
        d->dst = out_v;
    } else {
        rly_op *op;
        relay_err e = new_op(c, &op);
        if (e)
            return e;
        op->kind = RLY_OP_ACT;
        op->act = act;
        op->src = a;
        op->dst = out_v;
        op->m = c->vals[a].width;
        d = op;
    }
    c->vals[out_v].width = c->vals[a].width;
    c->vals[out_v].rank = t == T_SOFTMAX ? 2 : rank;
    c->vals[out_v].producer_op = (int)(d - c->ops);
    return RELAY_OK;
}

static relay_err check_opset(ctx *c, const Onnx__ModelProto *mp)
{
    c->opset = -1;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        const char *d = o->domain ? o->domain : "";
        if (d[0] == '\0' || !strcmp(d, "ai.onnx"))
            c->opset = o->has_version ? o->version : -1;
    }
    if (c->opset < 0) {
        rly_error(LOG, "model imports no version of the default ONNX operator set");
        return RELAY_EFORMAT;
    }
    if (c->opset < 11 || c->opset > 17) {
        rly_error(LOG, "ONNX opset %lld is not supported (11 to 17)", (long long)c->opset);
        return RELAY_EUNSUPPORTED;
    }
    return RELAY_OK;
}

static relay_err add_val(ctx *c, const char *name, int kind, size_t cap)
{
    if (!name || !name[0])
        return RELAY_OK;
    int prev = find_val(c, name);
    if (prev >= 0) {
        /* Old exporters list initializers among the graph inputs: the initializer wins. */
        if (kind == V_INPUT && c->vals[prev].kind == V_INIT)
            return RELAY_OK;
        if (kind == V_INIT && c->vals[prev].kind == V_INPUT) {
            c->vals[prev].kind = V_INIT;
            return RELAY_OK;
        }
        rly_error(LOG, "value '%s' is defined twice", name);
        return RELAY_EFORMAT;
    }
    if (c->n_vals >= cap)
        return RELAY_ETOOBIG;
    val *v = &c->vals[c->n_vals];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->kind = kind;
    v->canon = (int)c->n_vals;
    v->producer_op = -1;
    v->last_use = -1;
    v->buf = -3;
    c->n_vals++;
    return RELAY_OK;
}

static relay_err op_type_of(const Onnx__NodeProto *n, op_type *t)
{
    const char *d = n->domain ? n->domain : "";
    const char *ot = n->op_type ? n->op_type : "";
    if (d[0] == '\0' || !strcmp(d, "ai.onnx")) {
        for (int i = 0; i < T_COUNT_; i++) {
            if (!strcmp(ot, op_names[i])) {
                *t = (op_type)i;
                return RELAY_OK;
            }
        }
    }
    rly_error(LOG, "node '%s': op '%s%s%s' is not supported", n->name ? n->name : "", d,
              d[0] ? "." : "", ot);
    return RELAY_EUNSUPPORTED;
}

/* topo_order fills order[] with node indices such that producers come before consumers. */
static relay_err topo_order(ctx *c, int *order)
{
    const Onnx__GraphProto *g = c->g;
    const size_t nn = g->n_node;
    int *indeg = calloc(nn ? nn : 1, sizeof(int));
    int *producer = malloc((c->n_vals ? c->n_vals : 1) * sizeof(int));
    relay_err e = RELAY_OK;
    if (!indeg || !producer) {
        e = RELAY_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < c->n_vals; i++)
        producer[i] = -1;
    for (size_t i = 0; i < nn; i++)
        producer[c->node_val_out[i]] = (int)i;
    for (size_t i = 0; i < nn; i++) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t j = 0; j < n->n_input; j++) {
            if (!n->input[j][0])
                continue;
            int v = find_val(c, n->input[j]);
            if (v < 0) {
                rly_error(LOG, "node '%s': input '%s' is not defined", n->name ? n->name : "",
                          n->input[j]);
                e = RELAY_EFORMAT;
                goto out;
            }
            if (producer[v] >= 0)
                indeg[i]++;
        }
    }
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < nn; i++)
        if (indeg[i] == 0)
            order[tail++] = (int)i;
    while (head < tail) {
        int i = order[head++];
        int v = c->node_val_out[i];
        for (size_t j = 0; j < nn; j++) {
            const Onnx__NodeProto *n = g->node[j];
            for (size_t k = 0; k < n->n_input; k++) {
                if (n->input[k][0] && !strcmp(n->input[k], c->vals[v].name)) {
                    if (--indeg[j] == 0)
                        order[tail++] = (int)j;
                }
            }
        }
    }
    if (tail != nn) {
        rly_error(LOG, "graph has a cycle");
        e = RELAY_EFORMAT;
    }
out:
    free(indeg);
    free(producer);
    return e;
}

static relay_err setup_input(ctx *c, int *in_v)
{
    const Onnx__GraphProto *g = c->g;
    *in_v = -1;
    for (size_t i = 0; i < g->n_input; i++) {
        int v = find_val(c, g->input[i]->name ? g->input[i]->name : "");
        if (v < 0 || c->vals[v].kind != V_INPUT)
            continue;
        if (*in_v >= 0) {
            rly_error(LOG, "graph has more than one non-constant input; only one is supported");
            return RELAY_EUNSUPPORTED;
        }
        *in_v = v;
        const Onnx__TypeProto *tp = g->input[i]->type;
        if (!tp || !tp->tensor_type) {
            rly_error(LOG, "graph input '%s' is not a tensor", c->vals[v].name);
            return RELAY_EUNSUPPORTED;
        }
        if (tp->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
            rly_error(LOG, "graph input '%s' has element type %d (float32 only)", c->vals[v].name,
                      tp->tensor_type->elem_type);
            return RELAY_EUNSUPPORTED;
        }
        const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
        if (!sh || sh->n_dim < 2 || sh->n_dim > RELAY_MAX_RANK + 1) {
            rly_error(LOG, "graph input '%s' must have a known shape [batch, d...] (rank 2..%d)",
                      c->vals[v].name, RELAY_MAX_RANK + 1);
            return RELAY_EUNSUPPORTED;
        }
        uint64_t width = 1;
        for (size_t d = 1; d < sh->n_dim; d++) {
            const Onnx__TensorShapeProto__Dimension *dim = sh->dim[d];
            if (dim->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
                dim->dim_value <= 0) {
                rly_error(LOG, "graph input '%s': dimension %zu must be a fixed positive size",
                          c->vals[v].name, d);
                return RELAY_EUNSUPPORTED;
            }
            width *= (uint64_t)dim->dim_value;
            if (width > RELAY_MODEL_MAX_WIDTH) {
                rly_error(LOG, "graph input '%s' is wider than %d", c->vals[v].name,
                          RELAY_MODEL_MAX_WIDTH);
                return RELAY_ETOOBIG;
            }
            c->m->in_shape[d - 1] = dim->dim_value;
        }
        c->m->in_rank = (uint32_t)sh->n_dim - 1;
        c->m->in_dim = (uint32_t)width;
        c->vals[v].width = (uint32_t)width;
        c->vals[v].rank = (uint32_t)sh->n_dim;
    }
    if (*in_v < 0) {
        rly_error(LOG, "graph has no non-constant input");
        return RELAY_EFORMAT;
    }
    return RELAY_OK;
}

/* assign_buffers gives each op's output a buffer: the caller's output, or a slot by liveness. */
static relay_err assign_buffers(ctx *c, int in_v, int out_v)
{
    relay_model *m = c->m;
    if (out_v == in_v) {
        rly_op *op;
        relay_err e = new_op(c, &op);
        if (e)
            return e;
        op->kind = RLY_OP_COPY;
        op->src = in_v;
        op->dst = -10; /* replaced below */
        op->m = c->vals[in_v].width;
    }
    for (uint32_t i = 0; i < c->n_ops; i++) {
        rly_op *op = &c->ops[i];
        c->vals[op->src].last_use = (int)i;
        if (op->src2 >= 0)
            c->vals[op->src2].last_use = (int)i;
    }
    int *free_slots = malloc((c->n_ops + 1) * sizeof(int));
    if (!free_slots)
        return RELAY_ENOMEM;
    int n_free = 0, n_slots = 0;
    uint32_t max_w = 1;
    c->vals[in_v].buf = RLY_BUF_IN;
    for (uint32_t i = 0; i < c->n_ops; i++) {
        rly_op *op = &c->ops[i];
        int src = op->src, src2 = op->src2;
        op->src = c->vals[src].buf;
        if (src2 >= 0)
            op->src2 = c->vals[src2].buf;
        if (op->dst == -10 || op->dst == out_v) {
            if (op->dst == out_v)
                c->vals[out_v].buf = RLY_BUF_OUT;
            op->dst = RLY_BUF_OUT;
        } else {
            val *dv = &c->vals[op->dst];
            dv->buf = n_free ? free_slots[--n_free] : n_slots++;
            if (dv->width > max_w)
                max_w = dv->width;
            op->dst = dv->buf;
            if (dv->last_use < (int)i)
                free_slots[n_free++] = dv->buf; /* never read */
        }
        if (c->vals[src].last_use == (int)i && c->vals[src].buf >= 0)
            free_slots[n_free++] = c->vals[src].buf;
        if (src2 >= 0 && src2 != src && c->vals[src2].last_use == (int)i && c->vals[src2].buf >= 0)
            free_slots[n_free++] = c->vals[src2].buf;
    }
    free(free_slots);
    m->n_slots = (uint32_t)n_slots;
    m->max_width = max_w;
    return RELAY_OK;
}

/*
 * check_declared_output refuses a graph whose declared output shape [batch, d...] disagrees with
 * the width its weights compute: consumers size their buffers from the declared shape, so a
 * mismatch would make them read or write past the end. Symbolic or absent dims are not checked.
 */
static relay_err check_declared_output(const Onnx__ValueInfoProto *o, uint32_t width)
{
    const Onnx__TypeProto *tp = o->type;
    if (!tp || !tp->tensor_type || !tp->tensor_type->shape)
        return RELAY_OK;
    const Onnx__TensorShapeProto *sh = tp->tensor_type->shape;
    if (sh->n_dim == 0)
        return RELAY_OK;
    uint64_t declared = 1;
    for (size_t d = 1; d < sh->n_dim; d++) {
        const Onnx__TensorShapeProto__Dimension *dim = sh->dim[d];
        if (dim->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
            return RELAY_OK;
        if (dim->dim_value <= 0 || (uint64_t)dim->dim_value > RELAY_MODEL_MAX_WIDTH) {
            rly_error(LOG, "graph output '%s': declared dimension %zu is %lld",
                      o->name ? o->name : "", d, (long long)dim->dim_value);
            return RELAY_ESHAPE;
        }
        declared *= (uint64_t)dim->dim_value;
        if (declared > RELAY_MODEL_MAX_WIDTH)
            break;
    }
    if (declared != width) { /* rank 1 ([batch]) declares one value per row */
        rly_error(LOG,
                  "graph output '%s' is declared with %llu values per row but its weights "
                  "compute %u",
                  o->name ? o->name : "", (unsigned long long)declared, width);
        return RELAY_ESHAPE;
    }
    return RELAY_OK;
}

relay_err rly_model_compile(relay_model *m, const Onnx__ModelProto *mp)
{
    ctx c = {.m = m};
    relay_err e = check_opset(&c, mp);
    if (e)
        return e;
    const Onnx__GraphProto *g = mp->graph;
    if (!g) {
        rly_error(LOG, "model has no graph");
        return RELAY_EFORMAT;
    }
    c.g = g;
    if (g->n_node > RELAY_MODEL_MAX_NODES) {
        rly_error(LOG, "graph has %zu nodes (limit %d)", g->n_node, RELAY_MODEL_MAX_NODES);
        return RELAY_ETOOBIG;
    }
    if (g->n_output != 1) {
        rly_error(LOG, "graph has %zu outputs; exactly one is supported", g->n_output);
        return g->n_output == 0 ? RELAY_EFORMAT : RELAY_EUNSUPPORTED;
    }
    if (g->n_initializer > 4 * RELAY_MODEL_MAX_NODES || g->n_input > 4 * RELAY_MODEL_MAX_NODES)
        return RELAY_ETOOBIG;
    size_t cap = g->n_input + g->n_initializer + g->n_node + 1;
    c.vals = calloc(cap, sizeof(val));
    c.node_val_out = calloc(g->n_node + 1, sizeof(int));
    c.node_type = calloc(g->n_node + 1, sizeof(op_type));
    int *order = calloc(g->n_node + 1, sizeof(int));
    c.ops_cap = (uint32_t)g->n_node + 2;
    c.ops = calloc(c.ops_cap, sizeof(rly_op));
    if (!c.vals || !c.node_val_out || !c.node_type || !order || !c.ops) {
        e = RELAY_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < g->n_initializer && !e; i++) {
        const char *name = g->initializer[i]->name;
        if (!name || !name[0]) {
            rly_error(LOG, "initializer %zu has no name", i);
            e = RELAY_EFORMAT;
            break;
        }
        e = add_val(&c, name, V_INIT, cap);
    }
    for (size_t i = 0; i < g->n_initializer && !e; i++)
        c.vals[find_val(&c, g->initializer[i]->name)].init = g->initializer[i];
    for (size_t i = 0; i < g->n_input && !e; i++)
        e = add_val(&c, g->input[i]->name, V_INPUT, cap);
    for (size_t i = 0; i < g->n_node && !e; i++) {
        const Onnx__NodeProto *n = g->node[i];
        if ((e = op_type_of(n, &c.node_type[i])))
            break;
        if (n->n_output != 1 || !n->output[0][0]) {
            rly_error(LOG, "node '%s' (%s): exactly one output is supported",
                      n->name ? n->name : "", n->op_type);
            e = RELAY_EUNSUPPORTED;
            break;
        }
        if ((e = add_val(&c, n->output[0], V_NODE, cap)))
            break;
        c.node_val_out[i] = find_val(&c, n->output[0]);
    }
    if (e)
        goto out;
    if ((e = topo_order(&c, order)))
        goto out;
    /* Aliases and consumer counts on canonical values. */
    for (size_t oi = 0; oi < g->n_node; oi++) {
        int i = order[oi];
        const Onnx__NodeProto *n = g->node[i];
        if ((c.node_type[i] == T_IDENTITY || c.node_type[i] == T_FLATTEN) && n->n_input == 1 &&
            n->input[0][0])
            c.vals[c.node_val_out[i]].canon = canon(&c, find_val(&c, n->input[0]));
    }
    for (size_t oi = 0; oi < g->n_node; oi++) {
        int i = order[oi];
        const Onnx__NodeProto *n = g->node[i];
        if (c.node_type[i] == T_IDENTITY || c.node_type[i] == T_FLATTEN)
            continue;
        for (size_t j = 0; j < n->n_input; j++)
            if (n->input[j][0])
                c.vals[canon(&c, find_val(&c, n->input[j]))].consumers++;
    }
    int out_v = find_val(&c, g->output[0]->name ? g->output[0]->name : "");
    if (out_v < 0 || c.vals[out_v].kind == V_INIT) {
        rly_error(LOG, "graph output '%s' is not computed by the graph",
                  g->output[0]->name ? g->output[0]->name : "");
        e = out_v < 0 ? RELAY_EFORMAT : RELAY_EUNSUPPORTED;
        goto out;
    }
    out_v = canon(&c, out_v);
    c.vals[out_v].is_output = true;
    int in_v;
    if ((e = setup_input(&c, &in_v)))
        goto out;
    for (size_t oi = 0; oi < g->n_node && !e; oi++) {
        int i = order[oi];
        const Onnx__NodeProto *n = g->node[i];
        const op_type t = c.node_type[i];
        const int ov = c.node_val_out[i];
        attrs a;
        if ((e = read_attrs(&c, n, t, &a)))
            break;
        for (size_t j = 0; j < n->n_input && !e; j++) {
            if (!n->input[j][0] && !(t == T_GEMM && j == 2)) {
                rly_error(LOG, "node '%s' (%s): input %zu is empty", n->name ? n->name : "",
                          op_names[t], j);
                e = RELAY_EFORMAT;
            }
        }
        if (e)
            break;
        switch (t) {
        case T_GEMM:
        case T_MATMUL:
            e = lower_dense(&c, n, t, &a, ov);
            break;
        case T_ADD:
            e = lower_add(&c, n, ov);
            break;
        case T_RELU:
        case T_TANH:
        case T_SIGMOID:
        case T_SOFTMAX:
            e = lower_act(&c, n, t, &a, ov);
            break;
        case T_IDENTITY:
        case T_FLATTEN: {
            if (n->n_input != 1) {
                rly_error(LOG, "node '%s' (%s): wrong number of inputs", n->name ? n->name : "",
                          op_names[t]);
                e = RELAY_EFORMAT;
                break;
            }
            int src = find_val(&c, n->input[0]);
            if (c.vals[src].kind == V_INIT) {
                rly_error(LOG, "node '%s' (%s): constant input is not supported",
                          n->name ? n->name : "", op_names[t]);
                e = RELAY_EUNSUPPORTED;
                break;
            }
            const val *sv = &c.vals[canon(&c, src)];
            uint32_t rank = sv->rank;
            if (t == T_FLATTEN) {
                int64_t axis = a.has_axis ? a.axis : 1;
                if (axis < 0)
                    axis += rank;
                if (axis != 1) {
                    rly_error(LOG,
                              "node '%s' (Flatten): attribute 'axis'=%lld is not supported (only "
                              "1: keep the batch dimension)",
                              n->name ? n->name : "", (long long)a.axis);
                    e = RELAY_EUNSUPPORTED;
                    break;
                }
                rank = 2;
            }
            /* The alias shares the canonical buffer; record its view (rank) on the canonical
               value only when nothing else reads the wider view. */
            if (t == T_FLATTEN)
                c.vals[canon(&c, src)].rank = rank;
            break;
        }
        default:
            e = RELAY_EINTERNAL;
        }
    }
    if (e)
        goto out;
    if (c.vals[out_v].producer_op < 0 && out_v != in_v) {
        rly_error(LOG, "graph output is not computed");
        e = RELAY_EFORMAT;
        goto out;
    }
    m->out_dim = c.vals[out_v].width;
    if ((e = check_declared_output(g->output[0], m->out_dim)))
        goto out;
    if (c.vals[out_v].producer_op >= 0) {
        const rly_op *po = &c.ops[c.vals[out_v].producer_op];
        m->out_softmax = po->act == RELAY_ACT_SOFTMAX;
    }
    if ((e = assign_buffers(&c, in_v, out_v)))
        goto out;
    m->ops = c.ops;
    m->n_ops = c.n_ops;
    c.ops = NULL;
out:
    if (c.ops) {
        for (uint32_t i = 0; i < c.n_ops; i++) {
            free(c.ops[i].w);
            free(c.ops[i].b);
        }
        free(c.ops);
    }
    free(order);
    free(c.node_type);
    free(c.node_val_out);
    free(c.vals);
    return e;
}
