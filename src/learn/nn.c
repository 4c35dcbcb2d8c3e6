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

/*
 * One 4 x 16 block of C over the whole K. The 8 accumulators are named variables so the
 * compiler keeps them in registers; rows past mr read a clamped row of A and are not stored.
 */
__attribute__((target("avx2,fma"), always_inline)) static inline void
blk_4x16(uint32_t mr, uint32_t K, const float *const a[MR], size_t sak, const float *B, size_t ldb,
         float *C, size_t ldc, const float *bias, bool accumulate)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31;
    if (accumulate) {
        const float *c1 = C + (mr > 1 ? ldc : 0), *c2 = C + (mr > 2 ? 2 * ldc : 0);
        const float *c3 = C + (mr > 3 ? 3 * ldc : 0);
        c00 = _mm256_loadu_ps(C), c01 = _mm256_loadu_ps(C + 8);
        c10 = _mm256_loadu_ps(c1), c11 = _mm256_loadu_ps(c1 + 8);
        c20 = _mm256_loadu_ps(c2), c21 = _mm256_loadu_ps(c2 + 8);
        c30 = _mm256_loadu_ps(c3), c31 = _mm256_loadu_ps(c3 + 8);
    } else {
        c00 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
        c01 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
        c10 = c20 = c30 = c00;
        c11 = c21 = c31 = c01;
    }
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    for (uint32_t k = 0; k < K; k++, B += ldb, a0 += sak, a1 += sak, a2 += sak, a3 += sak) {
        __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);
        __m256 av = _mm256_broadcast_ss(a0);
        c00 = _mm256_fmadd_ps(av, b0, c00);
        c01 = _mm256_fmadd_ps(av, b1, c01);
        av = _mm256_broadcast_ss(a1);
        c10 = _mm256_fmadd_ps(av, b0, c10);
        c11 = _mm256_fmadd_ps(av, b1, c11);
        av = _mm256_broadcast_ss(a2);
        c20 = _mm256_fmadd_ps(av, b0, c20);
        c21 = _mm256_fmadd_ps(av, b1, c21);
        av = _mm256_broadcast_ss(a3);
        c30 = _mm256_fmadd_ps(av, b0, c30);
        c31 = _mm256_fmadd_ps(av, b1, c31);
    }
    _mm256_storeu_ps(C, c00);
    _mm256_storeu_ps(C + 8, c01);
    if (mr > 1) {
        _mm256_storeu_ps(C + ldc, c10);
        _mm256_storeu_ps(C + ldc + 8, c11);
    }
    if (mr > 2) {
        _mm256_storeu_ps(C + 2 * ldc, c20);
        _mm256_storeu_ps(C + 2 * ldc + 8, c21);
    }
    if (mr > 3) {
        _mm256_storeu_ps(C + 3 * ldc, c30);
        _mm256_storeu_ps(C + 3 * ldc + 8, c31);
    }
}

/* One 4 x (up to 8) block of C: columns selected by mask (masked loads/stores for narrow N). */
__attribute__((target("avx2,fma"), always_inline)) static inline void
blk_4x8(uint32_t mr, uint32_t K, const float *const a[MR], size_t sak, const float *B, size_t ldb,
        float *C, size_t ldc, const float *bias, bool accumulate, __m256i mask)
{
    __m256 c0, c1, c2, c3;
    if (accumulate) {
        const float *r1 = C + (mr > 1 ? ldc : 0), *r2 = C + (mr > 2 ? 2 * ldc : 0);
        const float *r3 = C + (mr > 3 ? 3 * ldc : 0);
        c0 = _mm256_maskload_ps(C, mask);
        c1 = _mm256_maskload_ps(r1, mask);
        c2 = _mm256_maskload_ps(r2, mask);
        c3 = _mm256_maskload_ps(r3, mask);
    } else {
        c0 = bias ? _mm256_maskload_ps(bias, mask) : _mm256_setzero_ps();
        c1 = c2 = c3 = c0;
    }
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3];
    for (uint32_t k = 0; k < K; k++, B += ldb, a0 += sak, a1 += sak, a2 += sak, a3 += sak) {
        __m256 b0 = _mm256_maskload_ps(B, mask);
        c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a0), b0, c0);
        c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a1), b0, c1);
        c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a2), b0, c2);
        c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a3), b0, c3);
    }
    _mm256_maskstore_ps(C, mask, c0);
    if (mr > 1)
        _mm256_maskstore_ps(C + ldc, mask, c1);
    if (mr > 2)
        _mm256_maskstore_ps(C + 2 * ldc, mask, c2);
    if (mr > 3)
        _mm256_maskstore_ps(C + 3 * ldc, mask, c3);
}

/*
 * One 6 x 16 block of C over the whole K: 12 accumulators in registers hide the FMA latency
 * better than 4 x 16; rows past mr read a clamped row of A (and of C) and are not stored.
 */
__attribute__((target("avx2,fma"), always_inline)) static inline void
blk_6x16(uint32_t mr, uint32_t K, const float *const a[6], size_t sak, const float *B, size_t ldb,
         float *C, size_t ldc, const float *bias, bool accumulate)
{
    __m256 c[6][2];
    if (accumulate) {
        for (uint32_t r = 0; r < 6; r++) {
            const float *cr = C + (size_t)(r < mr ? r : mr - 1) * ldc;
            c[r][0] = _mm256_loadu_ps(cr);
            c[r][1] = _mm256_loadu_ps(cr + 8);
        }
    } else {
        __m256 z0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
        __m256 z1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
        for (uint32_t r = 0; r < 6; r++) {
            c[r][0] = z0;
            c[r][1] = z1;
        }
    }
    const float *a0 = a[0], *a1 = a[1], *a2 = a[2], *a3 = a[3], *a4 = a[4], *a5 = a[5];
    for (uint32_t k = 0; k < K; k++, B += ldb) {
        size_t ko = (size_t)k * sak;
        __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);
#define RLY_ROW(r, ap)                                                                             \
    do {                                                                                           \
        __m256 av = _mm256_broadcast_ss(ap + ko);                                                  \
        c[r][0] = _mm256_fmadd_ps(av, b0, c[r][0]);                                                \
        c[r][1] = _mm256_fmadd_ps(av, b1, c[r][1]);                                                \
    } while (0)
        RLY_ROW(0, a0);
        RLY_ROW(1, a1);
        RLY_ROW(2, a2);
        RLY_ROW(3, a3);
        RLY_ROW(4, a4);
        RLY_ROW(5, a5);
#undef RLY_ROW
    }
    for (uint32_t r = 0; r < 6; r++)
        if (r < mr) {
            _mm256_storeu_ps(C + (size_t)r * ldc, c[r][0]);
            _mm256_storeu_ps(C + (size_t)r * ldc + 8, c[r][1]);
        }
}

/* Runs the 6 x 16 kernel over rows [0, M) of the 16-column panel at n0. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
panel_16(uint32_t M, uint32_t n0, uint32_t K, const float *A, size_t sam, size_t sak,
         const float *B, size_t ldb, float *C, size_t ldc, const float *bias, bool accumulate)
{
    for (uint32_t m0 = 0; m0 < M; m0 += 6) {
        uint32_t mr = M - m0 < 6 ? M - m0 : 6;
        const float *a[6];
        for (uint32_t r = 0; r < 6; r++)
            a[r] = A + (size_t)(m0 + (r < mr ? r : mr - 1)) * sam;
        blk_6x16(mr, K, a, sak, B + n0, ldb, C + (size_t)m0 * ldc + n0, ldc,
                 bias ? bias + n0 : NULL, accumulate);
    }
}

__attribute__((target("avx2,fma"))) static void
gemm_avx2(uint32_t M, uint32_t N, uint32_t K, const float *A, size_t sam, size_t sak,
          const float *B, size_t ldb, float *C, size_t ldc, const float *bias, bool accumulate)
{
    __m256i full = _mm256_set1_epi32(-1);
    uint32_t nt = N % 8;
    __m256i tail =
        _mm256_cmpgt_epi32(_mm256_set1_epi32((int)nt), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (sak != 1) {
        /* Transposed A (weight gradients, K = batch): keep each K x 16 panel of B in L1 and
           sweep all row blocks over it, instead of streaming all of B once per row block. */
        uint32_t n0 = 0;
        for (; n0 + NR <= N; n0 += NR)
            panel_16(M, n0, K, A, sam, sak, B, ldb, C, ldc, bias, accumulate);
        for (; n0 < N; n0 += 8) {
            __m256i mask = n0 + 8 <= N ? full : tail;
            for (uint32_t m0 = 0; m0 < M; m0 += MR) {
                uint32_t mr = M - m0 < MR ? M - m0 : MR;
                const float *a[MR];
                for (uint32_t r = 0; r < MR; r++)
                    a[r] = A + (size_t)(m0 + (r < mr ? r : mr - 1)) * sam;
                blk_4x8(mr, K, a, sak, B + n0, ldb, C + (size_t)m0 * ldc + n0, ldc,
                        bias ? bias + n0 : NULL, accumulate, mask);
            }
        }
        return;
    }
    uint32_t n16 = N / NR * NR;
    if (n16) {
        /* Row blocks outer: a 6-row slice of A stays in L1 across the column panels. */
        for (uint32_t m0 = 0; m0 < M; m0 += 6) {
            uint32_t mr = M - m0 < 6 ? M - m0 : 6;
            const float *a[6];
            for (uint32_t r = 0; r < 6; r++)
                a[r] = A + (size_t)(m0 + (r < mr ? r : mr - 1)) * sam;
            for (uint32_t n0 = 0; n0 < n16; n0 += NR)
                blk_6x16(mr, K, a, sak, B + n0, ldb, C + (size_t)m0 * ldc + n0, ldc,
                         bias ? bias + n0 : NULL, accumulate);
        }
    }
    if (n16 == N)
        return;
    for (uint32_t m0 = 0; m0 < M; m0 += MR) {
        uint32_t mr = M - m0 < MR ? M - m0 : MR;
        const float *a[MR];
        for (uint32_t r = 0; r < MR; r++)
            a[r] = A + (size_t)(m0 + (r < mr ? r : mr - 1)) * sam;
        float *c = C + (size_t)m0 * ldc;
        uint32_t n0 = n16;
        for (; n0 + 8 <= N; n0 += 8)
            blk_4x8(mr, K, a, sak, B + n0, ldb, c + n0, ldc, bias ? bias + n0 : NULL, accumulate,
                    full);
        if (n0 < N)
            blk_4x8(mr, K, a, sak, B + n0, ldb, c + n0, ldc, bias ? bias + n0 : NULL, accumulate,
                    tail);
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
RLY_OPT("no-trapping-math", "no-math-errno",
        "fp-contract=fast") static void tanh_avx2(float *x, size_t n){TANH_BODY}

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

/* AVX2 tanh derivative d *= 1 - y*y (same operation order as act_backward, so identical). */
__attribute__((target("avx2,fma"))) static void tanh_backward_avx2(float *d, const float *y,
                                                                   size_t n)
{
    __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 yv = _mm256_loadu_ps(y + i);
        __m256 g = _mm256_sub_ps(one, _mm256_mul_ps(yv, yv));
        _mm256_storeu_ps(d + i, _mm256_mul_ps(_mm256_loadu_ps(d + i), g));
    }
    for (; i < n; i++)
        d[i] *= 1.0f - y[i] * y[i];
}

/* Bias gradient db[j] = sum over rows of d[b][j], rows added in order (as the scalar loop). */
__attribute__((target("avx2,fma"))) static void colsum_avx2(const float *d, uint32_t n, uint32_t no,
                                                            float *db)
{
    uint32_t j = 0;
    for (; j + 16 <= no; j += 16) {
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        for (uint32_t b = 0; b < n; b++) {
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(d + (size_t)b * no + j));
            s1 = _mm256_add_ps(s1, _mm256_loadu_ps(d + (size_t)b * no + j + 8));
        }
        _mm256_storeu_ps(db + j, s0);
        _mm256_storeu_ps(db + j + 8, s1);
    }
    for (; j + 8 <= no; j += 8) {
        __m256 s0 = _mm256_setzero_ps();
        for (uint32_t b = 0; b < n; b++)
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(d + (size_t)b * no + j));
        _mm256_storeu_ps(db + j, s0);
    }
    for (; j < no; j++) {
        float s = 0.0f;
        for (uint32_t b = 0; b < n; b++)
            s += d[(size_t)b * no + j];
        db[j] = s;
    }
}

static void colsum(const float *d, uint32_t n, uint32_t no, float *db)
{
    memset(db, 0, no * sizeof(float));
    for (uint32_t b = 0; b < n; b++) {
        const float *row = d + (size_t)b * no;
        for (uint32_t j = 0; j < no; j++)
            db[j] += row[j];
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
    bool avx2 = rly_gemm_uses_avx2();
    for (uint32_t l = m->n_layers; l-- > 0;) {
        uint32_t ni = m->sizes[l], no = m->sizes[l + 1];
        if (l + 1 < m->n_layers || m->act_last) {
            if (avx2 && m->act == RELAY_HIDDEN_TANH)
                tanh_backward_avx2(d, m->out[l], (size_t)n * no);
            else
                act_backward(m->act, d, m->out[l], (size_t)n * no);
        }
        const float *in = l ? m->out[l - 1] : m->last_in;
        /* dW [ni x no] = in^T [ni x n] * d [n x no] */
        rly_gemm(ni, no, n, in, 1, ni, d, no, m->grads + m->w_off[l], no, NULL, false);
        if (avx2)
            colsum_avx2(d, n, no, m->grads + m->b_off[l]);
        else
            colsum(d, n, no, m->grads + m->b_off[l]);
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

/*
 * Adam update of elements [i0, n) (scalar); the AVX2 path below does the same operations in the
 * same order (separate multiply and add, exact sqrt and division), so results are identical.
 */
RLY_OPT("no-math-errno")
static void adam_scalar(size_t i0, size_t n, float *m, float *v, float *params, const float *grads,
                        float b1, float b2, float step, float bc2s, float eps)
{
    for (size_t i = i0; i < n; i++) {
        float g = grads[i];
        m[i] = m[i] * b1 + (1.0f - b1) * g;
        v[i] = v[i] * b2 + (1.0f - b2) * g * g;
        float denom = sqrtf(v[i]) / bc2s + eps;
        params[i] -= step * (m[i] / denom);
    }
}

__attribute__((target("avx2,fma"))) static size_t adam_avx2(size_t n, float *m, float *v,
                                                            float *params, const float *grads,
                                                            float b1, float b2, float step,
                                                            float bc2s, float eps)
{
    __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2);
    __m256 vc1 = _mm256_set1_ps(1.0f - b1), vc2 = _mm256_set1_ps(1.0f - b2);
    __m256 vstep = _mm256_set1_ps(step), vbc = _mm256_set1_ps(bc2s), veps = _mm256_set1_ps(eps);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(grads + i);
        __m256 mi =
            _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(m + i), vb1), _mm256_mul_ps(vc1, g));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), vb2),
                                  _mm256_mul_ps(_mm256_mul_ps(vc2, g), g));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), vbc), veps);
        __m256 upd = _mm256_mul_ps(vstep, _mm256_div_ps(mi, denom));
        _mm256_storeu_ps(params + i, _mm256_sub_ps(_mm256_loadu_ps(params + i), upd));
    }
    return i;
}

void rly_adam_step(rly_adam *a, float *params, const float *grads, float lr)
{
    a->t++;
    float b1 = a->beta1, b2 = a->beta2;
    float bc1 = (float)(1.0 - pow(b1, (double)a->t));
    float bc2 = (float)(1.0 - pow(b2, (double)a->t));
    float step = lr / bc1;
    float bc2s = sqrtf(bc2);
    size_t i0 = 0;
    if (rly_gemm_uses_avx2())
        i0 = adam_avx2(a->n, a->m, a->v, params, grads, b1, b2, step, bc2s, a->eps);
    adam_scalar(i0, a->n, a->m, a->v, params, grads, b1, b2, step, bc2s, a->eps);
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
