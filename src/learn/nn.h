/*
 * Hand-written fp32 neural-network pieces: a blocked matrix multiply (AVX2/FMA chosen at run
 * time, portable fallback), fast tanh, batched MLPs with forward/backward over workspaces
 * allocated once, orthogonal initialisation, Adam and global gradient-norm clipping.
 *
 * Weights are row-major [in x out] (y = x W + b), followed by the bias [out].
 */
#ifndef RLY_LEARN_NN_H
#define RLY_LEARN_NN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "relay/err.h"
#include "relay/learn.h"

/* RLY_MLP_MAX_LAYERS bounds the linear layers of one MLP. */
#define RLY_MLP_MAX_LAYERS (RELAY_LEARN_MAX_HIDDEN + 1)

/*
 * rly_gemm computes C[M x N] = base + A[M x K] * B[K x N], where A(m, k) = A[m*sam + k*sak],
 * B and C are row-major with leading dimensions ldb and ldc, and base is C itself when
 * accumulate, else bias broadcast over rows (bias [N], NULL = zero).
 */
void rly_gemm(uint32_t M, uint32_t N, uint32_t K, const float *A, size_t sam, size_t sak,
              const float *B, size_t ldb, float *C, size_t ldc, const float *bias, bool accumulate);

/* rly_gemm_set_portable forces (true) or releases (false) the portable kernel; for tests. */
void rly_gemm_set_portable(bool portable);

/* rly_gemm_uses_avx2 reports whether rly_gemm currently runs the AVX2/FMA kernel. */
bool rly_gemm_uses_avx2(void);

/* rly_tanh_inplace replaces x[0..n) by tanh(x) (max relative error ~3e-7). */
void rly_tanh_inplace(float *x, size_t n);

/* rly_mlp is a stack of linear layers with an activation between them (and optionally after). */
typedef struct rly_mlp {
    uint32_t n_layers;
    uint32_t sizes[RLY_MLP_MAX_LAYERS + 1];
    relay_hidden_act act;
    bool act_last; /* activation after the last layer too (shared trunks) */
    uint32_t max_batch;
    size_t n_params;
    size_t w_off[RLY_MLP_MAX_LAYERS], b_off[RLY_MLP_MAX_LAYERS];
    float *params; /* bound, not owned */
    float *grads;  /* bound, not owned; may be NULL for inference-only nets */
    float *wt;     /* owned: transposed weights [out x in] per layer, for input gradients */
    size_t wt_off[RLY_MLP_MAX_LAYERS];
    float *out[RLY_MLP_MAX_LAYERS]; /* owned: output of each layer [max_batch x width] */
    float *dbuf[2];                 /* owned: gradient ping-pong [max_batch x max width] */
    const float *last_in;           /* input of the last forward (kept by the caller) */
    float *block;                   /* the one owned allocation */
} rly_mlp;

/*
 * rly_mlp_init sets up an MLP with n_layers linear layers of widths sizes[0..n_layers] and
 * allocates its workspaces for batches of up to max_batch; parameters are bound separately.
 */
relay_err rly_mlp_init(rly_mlp *m, const uint32_t *sizes, uint32_t n_layers, relay_hidden_act act,
                       bool act_last, uint32_t max_batch, bool trainable);

/* rly_mlp_fini frees m's workspaces; a zeroed m is fine. */
void rly_mlp_fini(rly_mlp *m);

/* rly_mlp_bind points m at its parameters and gradients (n_params floats each). */
void rly_mlp_bind(rly_mlp *m, float *params, float *grads);

/* rly_mlp_orthogonal_init draws orthogonal weights (hidden gain, last-layer gain) and zero biases.
 */
void rly_mlp_orthogonal_init(rly_mlp *m, rly_rng *rng, float gain_hidden, float gain_last);

/* rly_orthogonal fills w [in x out] with a gain-scaled (semi-)orthogonal matrix (Gram-Schmidt). */
void rly_orthogonal(float *w, uint32_t in, uint32_t out, float gain, rly_rng *rng);

/* rly_mlp_forward runs x [n x sizes[0]] (n <= max_batch) and returns the output [n x last]. */
const float *rly_mlp_forward(rly_mlp *m, const float *x, uint32_t n);

/*
 * rly_mlp_backward takes dout [n x last] (gradient of the loss w.r.t. the last forward's
 * output; it is overwritten), writes parameter gradients (overwriting m->grads) and, if dx is
 * not NULL, the input gradient [n x sizes[0]] (added to dx when accumulate_dx).
 */
void rly_mlp_backward(rly_mlp *m, float *dout, uint32_t n, float *dx, bool accumulate_dx);

/* rly_adam holds Adam moments for n parameters (PyTorch semantics with bias correction). */
typedef struct rly_adam {
    size_t n;
    float *m, *v;
    float beta1, beta2, eps;
    uint64_t t;
} rly_adam;

/* rly_adam_init allocates zeroed moments for n parameters. */
relay_err rly_adam_init(rly_adam *a, size_t n, float beta1, float beta2, float eps);

/* rly_adam_fini frees the moments; a zeroed a is fine. */
void rly_adam_fini(rly_adam *a);

/* rly_adam_step applies one Adam step with learning rate lr to params given grads. */
void rly_adam_step(rly_adam *a, float *params, const float *grads, float lr);

/* rly_clip_grad_norm scales g so its L2 norm is at most max_norm; returns the norm before. */
float rly_clip_grad_norm(float *g, size_t n, float max_norm);

#endif
