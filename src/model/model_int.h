/* Internal structure of a compiled model: a topologically ordered list of fused ops over buffers.
 */
#ifndef RLY_MODEL_INT_H
#define RLY_MODEL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/model.h"

#define RLY_MODEL_LOG "model"
/* Output columns computed together by the dense kernels (two ymm registers). */
#define RLY_PANEL 16
/* Dense layers with at most this many outputs also keep transposed weights for dot products. */
#define RLY_NARROW_MAX 4
/* Buffer ids of ops: the caller's input and output arrays, else a workspace slot index. */
#define RLY_BUF_IN (-1)
#define RLY_BUF_OUT (-2)

typedef enum rly_op_kind {
    RLY_OP_DENSE = 0, /* y = act(x W + b), W packed in panels of 16 columns */
    RLY_OP_BIAS = 1,  /* y = x + b (b broadcast over rows) */
    RLY_OP_ADD = 2,   /* y = x + x2 (same shape) */
    RLY_OP_ACT = 3,   /* y = act(x) */
    RLY_OP_COPY = 4   /* y = x */
} rly_op_kind;

typedef struct rly_op {
    rly_op_kind kind;
    relay_activation act;
    int src, src2, dst; /* buffer ids */
    uint32_t k;         /* dense: input width */
    uint32_t m;         /* output width */
    uint32_t panels;    /* dense: ceil(m / 16) */
    float *w;           /* dense: [panels][k][16], zero-padded, 32-byte aligned */
    float *b;           /* dense: [panels * 16] zero-padded; bias: [m] */
    float *wt;     /* dense with m <= RLY_NARROW_MAX: [RLY_NARROW_MAX][kpad] columns, else NULL */
    uint32_t kpad; /* dense narrow: k rounded up to a multiple of 8 (row length of wt) */
} rly_op;

/* rly_dense_fn computes op's dense layer (bias and element-wise activation included) for n rows. */
typedef void (*rly_dense_fn)(const rly_op *op, const float *x, int n, float *y);
/* rly_act_fn applies an element-wise activation in place to count floats. */
typedef void (*rly_act_fn)(relay_activation act, float *y, size_t count);
/* rly_softmax_fn applies a softmax to each of n rows of width m in place. */
typedef void (*rly_softmax_fn)(float *y, int n, uint32_t m);

typedef struct rly_kernels {
    relay_kernel id;
    rly_dense_fn dense;
    rly_act_fn act;
    rly_softmax_fn softmax;
} rly_kernels;

struct relay_model_ws {
    float *buf;
    size_t cap; /* floats */
};

struct relay_model {
    uint8_t *onnx;
    size_t onnx_len;
    uint32_t in_dim, out_dim;
    uint32_t in_rank; /* non-batch input dims */
    int64_t in_shape[RELAY_MAX_RANK];
    bool out_softmax;
    uint32_t n_ops;
    rly_op *ops;
    uint32_t n_slots;   /* workspace buffers needed at once */
    uint32_t max_width; /* widest intermediate value */
    rly_kernels kern;
    relay_model_ws ws; /* used by relay_model_forward only */
};

/* rly_kernels_get returns the kernel table for k (AUTO: best the CPU supports); NULL if
 * unavailable. */
const rly_kernels *rly_kernels_get(relay_kernel k);

/* rly_model_compile builds the plan of m from an unpacked ONNX model (m->onnx already set). */
struct Onnx__ModelProto;
relay_err rly_model_compile(relay_model *m, const struct Onnx__ModelProto *mp);

/* rly_model_prepare_narrow adds transposed weights to the narrow dense ops of m's plan. */
relay_err rly_model_prepare_narrow(relay_model *m);

/* rly_model_free_plan frees the ops and their parameters. */
void rly_model_free_plan(relay_model *m);

/* rly_aligned_floats allocates n zeroed floats aligned to 64 bytes (NULL on failure). */
float *rly_aligned_floats(size_t n);

/* rly_read_file reads a whole file into a malloc'd buffer (at most max bytes). */
relay_err rly_read_file(const char *path, size_t max, uint8_t **data, size_t *len);

#endif
