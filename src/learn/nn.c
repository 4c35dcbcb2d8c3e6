/*
 * Matrix multiply, activations, MLP forward/backward, orthogonal init, Adam, gradient clipping.
 *
 * The multiply is register-blocked: 4 rows of A times 16 columns of B held in 8 accumulators,
 * streaming over K. The AVX2/FMA kernel is compiled with a function target attribute and chosen
 * at run time; the portable kernel has the same blocking and is auto-vectorised for the
 * baseline ISA.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("O3")
#define RLY_OPT(...) __attribute__((optimize(__VA_ARGS__)))
#else
#define RLY_OPT(...)
#endif
#include "learn/nn.h"

#include <immintrin.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define MR 4
#define NR 16

static _Atomic int force_portable;

void rly_gemm_set_portable(bool portable)
{
    atomic_store_explicit(&force_portable, portable ? 1 : 0, memory_order_relaxed);
}

bool rly_gemm_uses_avx2(void)
{
    if (atomic_load_explicit(&force_portable, memory_order_relaxed))
        return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Scalar tail: columns [n0, N) of rows [m0, m0+mr). */
static inline void gemm_tail(uint32_t m0, uint32_t mr, uint32_t n0, uint32_t N, uint32_t K,
                             const float *A, size_t sam, size_t sak, const float *B, size_t ldb,
                             float *C, size_t ldc, const float *bias, bool accumulate)
{
    for (uint32_t r = 0; r < mr; r++) {
        const float *a = A + (size_t)(m0 + r) * sam;
        float *c = C + (size_t)(m0 + r) * ldc;
        for (uint32_t j = n0; j < N; j++) {
            float s = accumulate ? c[j] : (bias ? bias[j] : 0.0f);
            for (uint32_t k = 0; k < K; k++)
                s += a[k * sak] * B[(size_t)k * ldb + j];
            c[j] = s;
        }
    }
}

__attribute__((target("avx2,fma"))) static void
gemm_avx2(uint32_t M, uint32_t N, uint32_t K, const float *A, size_t sam, size_t sak,
          const float *B, size_t ldb, float *C, size_t ldc, const float *bias, bool accumulate)
{
    for (uint32_t m0 = 0; m0 < M; m0 += MR) {
        uint32_t mr = M - m0 < MR ? M - m0 : MR;
        const float *a[MR];
        for (uint32_t r = 0; r < MR; r++)
            a[r] = A + (size_t)(m0 + (r < mr ? r : mr - 1)) * sam;
        uint32_t n0 = 0;
        for (; n0 + NR <= N; n0 += NR) {
            __m256 c0[MR], c1[MR];
            for (uint32_t r = 0; r < MR; r++) {
                if (accumulate && r < mr) {
                    c0[r] = _mm256_loadu_ps(C + (size_t)(m0 + r) * ldc + n0);
                    c1[r] = _mm256_loadu_ps(C + (size_t)(m0 + r) * ldc + n0 + 8);
                } else if (bias && !accumulate) {
                    c0[r] = _mm256_loadu_ps(bias + n0);
                    c1[r] = _mm256_loadu_ps(bias + n0 + 8);
                } else {
                    c0[r] = _mm256_setzero_ps();
                    c1[r] = _mm256_setzero_ps();
                }
            }
            const float *b = B + n0;
            for (uint32_t k = 0; k < K; k++, b += ldb) {
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
                size_t ko = (size_t)k * sak;
                for (uint32_t r = 0; r < MR; r++) {
                    __m256 av = _mm256_broadcast_ss(a[r] + ko);
                    c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
                    c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
                }
            }
            for (uint32_t r = 0; r < mr; r++) {
                _mm256_storeu_ps(C + (size_t)(m0 + r) * ldc + n0, c0[r]);
                _mm256_storeu_ps(C + (size_t)(m0 + r) * ldc + n0 + 8, c1[r]);
            }
        }
        for (; n0 + 8 <= N; n0 += 8) {
            __m256 c0[MR];
            for (uint32_t r = 0; r < MR; r++) {
                if (accumulate && r < mr)
                    c0[r] = _mm256_loadu_ps(C + (size_t)(m0 + r) * ldc + n0);
                else if (bias && !accumulate)
                    c0[r] = _mm256_loadu_ps(bias + n0);
                else
                    c0[r] = _mm256_setzero_ps();
            }
            const float *b = B + n0;
            for (uint32_t k = 0; k < K; k++, b += ldb) {
                __m256 b0 = _mm256_loadu_ps(b);
                size_t ko = (size_t)k * sak;
                for (uint32_t r = 0; r < MR; r++)
                    c0[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(a[r] + ko), b0, c0[r]);
            }
            for (uint32_t r = 0; r < mr; r++)
                _mm256_storeu_ps(C + (size_t)(m0 + r) * ldc + n0, c0[r]);
        }
        if (n0 < N)
            gemm_tail(m0, mr, n0, N, K, A, sam, sak, B, ldb, C, ldc, bias, accumulate);
    }
}

static void gemm_portable(uint32_t M, uint32_t N, uint32_t K, const float *A, size_t sam,
                          size_t sak, const float *B, size_t ldb, float *C, size_t ldc,
                          const float *bias, bool accumulate)
{
    for (uint32_t m0 = 0; m0 < M; m0 += MR) {
        uint32_t mr = M - m0 < MR ? M - m0 : MR;
        const float *a[MR];
        for (uint32_t r = 0; r < MR; r++)
            a[r] = A + (size_t)(m0 + (r < mr ? r : mr - 1)) * sam;
        uint32_t n0 = 0;
        for (; n0 + NR <= N; n0 += NR) {
            float acc[MR][NR];
            for (uint32_t r = 0; r < MR; r++)
                for (uint32_t j = 0; j < NR; j++)
                    acc[r][j] = (accumulate && r < mr)  ? C[(size_t)(m0 + r) * ldc + n0 + j]
                                : (bias && !accumulate) ? bias[n0 + j]
                                                        : 0.0f;
            const float *b = B + n0;
            for (uint32_t k = 0; k < K; k++, b += ldb) {
                size_t ko = (size_t)k * sak;
                for (uint32_t r = 0; r < MR; r++) {
                    float av = a[r][ko];
                    for (uint32_t j = 0; j < NR; j++)
                        acc[r][j] += av * b[j];
                }
            }
            for (uint32_t r = 0; r < mr; r++)
                memcpy(C + (size_t)(m0 + r) * ldc + n0, acc[r], sizeof acc[r]);
        }
        if (n0 < N)
            gemm_tail(m0, mr, n0, N, K, A, sam, sak, B, ldb, C, ldc, bias, accumulate);
    }
}

void rly_gemm(uint32_t M, uint32_t N, uint32_t K, const float *A, size_t sam, size_t sak,
              const float *B, size_t ldb, float *C, size_t ldc, const float *bias, bool accumulate)
{
    if (M == 0 || N == 0)
        return;
    if (rly_gemm_uses_avx2())
        gemm_avx2(M, N, K, A, sam, sak, B, ldb, C, ldc, bias, accumulate);
    else
        gemm_portable(M, N, K, A, sam, sak, B, ldb, C, ldc, bias, accumulate);
}

/*
 * tanh: odd Taylor series below |x| = 0.25 (truncation error < 1e-9 relative), otherwise
 * (1 - t) / (1 + t) with t = exp(-2|x|) from a range-reduced degree-7 polynomial. Branch-free
 * so the loop vectorises.
 */
#define TANH_BODY                                                                                  \
    for (size_t i = 0; i < n; i++) {                                                               \
        float v = x[i];                                                                            \
        float ax = fabsf(v);                                                                       \
        float y = -2.0f * (ax < 40.0f ? ax : 40.0f);                                               \
        float kf = (y * 1.44269504f + 12582912.0f) - 12582912.0f;                                  \
        float r = (y - kf * 0.693145752f) - kf * 1.42860677e-06f;                                  \
        float p = 1.0f / 5040.0f;                                                                  \
        p = p * r + 1.0f / 720.0f;                                                                 \
        p = p * r + 1.0f / 120.0f;                                                                 \
        p = p * r + 1.0f / 24.0f;                                                                  \
        p = p * r + 1.0f / 6.0f;                                                                   \
        p = p * r + 0.5f;                                                                          \
        p = p * r + 1.0f;                                                                          \
        p = p * r + 1.0f;                                                                          \
        int32_t bits = ((int32_t)kf + 127) << 23;                                                  \
        float scale;                                                                               \
        memcpy(&scale, &bits, sizeof scale);                                                       \
        float t = p * scale;                                                                       \
        float big = (1.0f - t) / (1.0f + t);                                                       \
        float x2 = v * v;                                                                          \
        float q = -1382.0f / 155925.0f;                                                            \
        q = q * x2 + 62.0f / 2835.0f;                                                              \
        q = q * x2 - 17.0f / 315.0f;                                                               \
        q = q * x2 + 2.0f / 15.0f;                                                                 \
        q = q * x2 - 1.0f / 3.0f;                                                                  \
        float small = v + v * x2 * q;                                                              \
        float signed_big = v < 0.0f ? -big : big;                                                  \
        x[i] = ax < 0.25f ? small : signed_big;                                                    \
    }

__attribute__((target("avx2,fma")))
RLY_OPT("no-trapping-math", "no-math-errno") static void tanh_avx2(float *x, size_t n){TANH_BODY}

RLY_OPT("no-trapping-math", "no-math-errno") static void tanh_portable(float *x, size_t n)
{
    TANH_BODY
}

void rly_tanh_inplace(float *x, size_t n)
{
    if (rly_gemm_uses_avx2())
        tanh_avx2(x, n);
    else
        tanh_portable(x, n);
}

/* ---- MLP ---- */

relay_err rly_mlp_init(rly_mlp *m, const uint32_t *sizes, uint32_t n_layers, relay_hidden_act act,
                       bool act_last, uint32_t max_batch, bool trainable)
{
    memset(m, 0, sizeof *m);
    if (n_layers == 0 || n_layers > RLY_MLP_MAX_LAYERS || max_batch == 0) {
        rly_error("learn", "mlp: %u layers (1..%d), max_batch %u", n_layers, RLY_MLP_MAX_LAYERS,
                  max_batch);
        return RELAY_EINVAL;
    }
    if (act != RELAY_HIDDEN_TANH && act != RELAY_HIDDEN_RELU) {
        rly_error("learn", "mlp: unknown activation %d", (int)act);
        return RELAY_EINVAL;
    }
    uint32_t widest = 0;
    for (uint32_t i = 0; i <= n_layers; i++) {
        if (sizes[i] == 0 || sizes[i] > RELAY_LEARN_MAX_WIDTH) {
            rly_error("learn", "mlp: layer width %u out of range 1..%d", sizes[i],
                      RELAY_LEARN_MAX_WIDTH);
            return RELAY_EINVAL;
        }
        m->sizes[i] = sizes[i];
        widest = sizes[i] > widest ? sizes[i] : widest;
    }
    m->n_layers = n_layers;
    m->act = act;
    m->act_last = act_last;
    m->max_batch = max_batch;
    size_t off = 0, wt = 0, ws = 0;
    for (uint32_t l = 0; l < n_layers; l++) {
        m->w_off[l] = off;
        off += (size_t)sizes[l] * sizes[l + 1];
        m->b_off[l] = off;
        off += sizes[l + 1];
        m->wt_off[l] = wt;
        wt += (size_t)sizes[l] * sizes[l + 1];
        ws += (size_t)max_batch * sizes[l + 1];
    }
    m->n_params = off;
    size_t dws = trainable ? 2 * (size_t)max_batch * widest : 0;
    size_t total = ws + dws + (trainable ? wt : 0);
    m->block = aligned_alloc(64, ((total * sizeof(float)) + 63) & ~(size_t)63);
    if (!m->block)
        return RELAY_ENOMEM;
    memset(m->block, 0, total * sizeof(float));
    float *p = m->block;
    for (uint32_t l = 0; l < n_layers; l++) {
        m->out[l] = p;
        p += (size_t)max_batch * sizes[l + 1];
    }
    if (trainable) {
        m->dbuf[0] = p;
        m->dbuf[1] = p + (size_t)max_batch * widest;
        m->wt = p + dws;
    }
    return RELAY_OK;
}

void rly_mlp_fini(rly_mlp *m)
{
    free(m->block);
    memset(m, 0, sizeof *m);
}

void rly_mlp_bind(rly_mlp *m, float *params, float *grads)
{
    m->params = params;
    m->grads = grads;
}

void rly_orthogonal(float *w, uint32_t in, uint32_t out, float gain, rly_rng *rng)
{
    /* Conceptually W is [out x in] (PyTorch); orthonormalise its rows when out <= in, else its
       columns, then store transposed as [in x out]. */
    uint32_t nvec = out <= in ? out : in, len = out <= in ? in : out;
    double vec[RELAY_LEARN_MAX_WIDTH];
    for (uint32_t v = 0; v < nvec; v++) {
        for (;;) {
            for (uint32_t i = 0; i < len; i++)
                vec[i] = rly_rng_normal(rng);
            /* Modified Gram-Schmidt against the accepted vectors (twice, for stability). */
            for (int pass = 0; pass < 2; pass++) {
                for (uint32_t u = 0; u < v; u++) {
                    double d = 0;
                    for (uint32_t i = 0; i < len; i++) {
                        float e = out <= in ? w[(size_t)i * out + u] : w[(size_t)u * out + i];
                        d += vec[i] * (double)e / gain;
                    }
                    for (uint32_t i = 0; i < len; i++) {
                        float e = out <= in ? w[(size_t)i * out + u] : w[(size_t)u * out + i];
                        vec[i] -= d * (double)e / gain;
                    }
                }
            }
            double nrm = 0;
            for (uint32_t i = 0; i < len; i++)
                nrm += vec[i] * vec[i];
            nrm = sqrt(nrm);
            if (nrm < 1e-6)
                continue; /* practically impossible; draw again */
            for (uint32_t i = 0; i < len; i++) {
                float e = (float)(vec[i] / nrm * gain);
                if (out <= in)
                    w[(size_t)i * out + v] = e; /* row v of W = column v of W^T */
                else
                    w[(size_t)v * out + i] = e; /* column v of W = row v of W^T */
            }
            break;
        }
    }
}

void rly_mlp_orthogonal_init(rly_mlp *m, rly_rng *rng, float gain_hidden, float gain_last)
{
    for (uint32_t l = 0; l < m->n_layers; l++) {
        float gain = l + 1 == m->n_layers ? gain_last : gain_hidden;
        rly_orthogonal(m->params + m->w_off[l], m->sizes[l], m->sizes[l + 1], gain, rng);
        memset(m->params + m->b_off[l], 0, m->sizes[l + 1] * sizeof(float));
    }
}

static void relu_inplace(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

const float *rly_mlp_forward(rly_mlp *m, const float *x, uint32_t n)
{
    const float *in = x;
    m->last_in = x;
    for (uint32_t l = 0; l < m->n_layers; l++) {
        uint32_t ni = m->sizes[l], no = m->sizes[l + 1];
        float *y = m->out[l];
        rly_gemm(n, no, ni, in, ni, 1, m->params + m->w_off[l], no, y, no, m->params + m->b_off[l],
                 false);
        if (l + 1 < m->n_layers || m->act_last) {
            if (m->act == RELAY_HIDDEN_TANH)
                rly_tanh_inplace(y, (size_t)n * no);
            else
                relu_inplace(y, (size_t)n * no);
        }
        in = y;
    }
    return m->out[m->n_layers - 1];
}

/* Multiply d by the activation derivative, expressed through the activation's output y. */
static void act_backward(relay_hidden_act act, float *d, const float *y, size_t n)
{
    if (act == RELAY_HIDDEN_TANH) {
        for (size_t i = 0; i < n; i++)
            d[i] *= 1.0f - y[i] * y[i];
    } else {
        for (size_t i = 0; i < n; i++)
            d[i] = y[i] > 0.0f ? d[i] : 0.0f;
    }
}

static void transpose(const float *src, uint32_t rows, uint32_t cols, float *dst)
{
    for (uint32_t r = 0; r < rows; r++)
        for (uint32_t c = 0; c < cols; c++)
            dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

void rly_mlp_backward(rly_mlp *m, float *dout, uint32_t n, float *dx, bool accumulate_dx)
{
    float *d = dout;
    for (uint32_t l = m->n_layers; l-- > 0;) {
        uint32_t ni = m->sizes[l], no = m->sizes[l + 1];
        if (l + 1 < m->n_layers || m->act_last)
            act_backward(m->act, d, m->out[l], (size_t)n * no);
        const float *in = l ? m->out[l - 1] : m->last_in;
        /* dW [ni x no] = in^T [ni x n] * d [n x no] */
        rly_gemm(ni, no, n, in, 1, ni, d, no, m->grads + m->w_off[l], no, NULL, false);
        float *db = m->grads + m->b_off[l];
        memset(db, 0, no * sizeof(float));
        for (uint32_t b = 0; b < n; b++) {
            const float *row = d + (size_t)b * no;
            for (uint32_t j = 0; j < no; j++)
                db[j] += row[j];
        }
        if (l == 0 && !dx)
            break;
        float *wt = m->wt + m->wt_off[l];
        transpose(m->params + m->w_off[l], ni, no, wt);
        float *dn = l == 0 ? dx : (d == m->dbuf[0] ? m->dbuf[1] : m->dbuf[0]);
        /* d_in [n x ni] = d [n x no] * W^T [no x ni] */
        rly_gemm(n, ni, no, d, no, 1, wt, ni, dn, ni, NULL, l == 0 && accumulate_dx);
        d = dn;
    }
}

/* ---- Adam and clipping ---- */

relay_err rly_adam_init(rly_adam *a, size_t n, float beta1, float beta2, float eps)
{
    memset(a, 0, sizeof *a);
    a->m = calloc(n ? n : 1, sizeof(float));
    a->v = calloc(n ? n : 1, sizeof(float));
    if (!a->m || !a->v) {
        rly_adam_fini(a);
        return RELAY_ENOMEM;
    }
    a->n = n;
    a->beta1 = beta1;
    a->beta2 = beta2;
    a->eps = eps;
    return RELAY_OK;
}

void rly_adam_fini(rly_adam *a)
{
    free(a->m);
    free(a->v);
    memset(a, 0, sizeof *a);
}

RLY_OPT("no-math-errno")
void rly_adam_step(rly_adam *a, float *params, const float *grads, float lr)
{
    a->t++;
    float b1 = a->beta1, b2 = a->beta2;
    float bc1 = (float)(1.0 - pow(b1, (double)a->t));
    float bc2 = (float)(1.0 - pow(b2, (double)a->t));
    float step = lr / bc1;
    float bc2s = sqrtf(bc2);
    float *m = a->m, *v = a->v;
    for (size_t i = 0; i < a->n; i++) {
        float g = grads[i];
        m[i] = m[i] * b1 + (1.0f - b1) * g;
        v[i] = v[i] * b2 + (1.0f - b2) * g * g;
        float denom = sqrtf(v[i]) / bc2s + a->eps;
        params[i] -= step * (m[i] / denom);
    }
}

float rly_clip_grad_norm(float *g, size_t n, float max_norm)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    float norm = (float)sqrt(s);
    if (max_norm > 0) {
        float coef = max_norm / (norm + 1e-6f);
        if (coef < 1.0f)
            for (size_t i = 0; i < n; i++)
                g[i] *= coef;
    }
    return norm;
}
