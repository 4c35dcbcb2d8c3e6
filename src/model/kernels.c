/*
 * Dense, activation and softmax kernels: a portable C version and an AVX2/FMA version chosen at
 * run time. The dense kernels read weights packed in panels of 16 output columns ([k][16] per
 * panel), so one panel row is two ymm loads; the AVX2 kernel keeps a 4-row x 16-column tile of
 * accumulators in eight ymm registers and applies the bias and activation before storing. Layers
 * with at most RLY_NARROW_MAX outputs use dot products over transposed weights (op->wt) instead.
 */
#include <math.h>
#include <string.h>

#include "model/model_int.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define RLY_HAVE_X86 1
#else
#define RLY_HAVE_X86 0
#endif

static inline float act_scalar(relay_activation act, float v)
{
    switch (act) {
    case RELAY_ACT_RELU:
        return v > 0.0f ? v : 0.0f;
    case RELAY_ACT_TANH:
        return tanhf(v);
    case RELAY_ACT_SIGMOID:
        return 1.0f / (1.0f + expf(-v));
    default:
        return v;
    }
}

static void dense_generic(const rly_op *op, const float *x, int n, float *y)
{
    const uint32_t k_n = op->k, m_n = op->m;
    const relay_activation act = op->act == RELAY_ACT_SOFTMAX ? RELAY_ACT_NONE : op->act;
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * k_n;
        float *yr = y + (size_t)r * m_n;
        for (uint32_t p = 0; p < op->panels; p++) {
            const float *wp = op->w + (size_t)p * k_n * RLY_PANEL;
            float acc[RLY_PANEL];
            memcpy(acc, op->b + (size_t)p * RLY_PANEL, sizeof acc);
            for (uint32_t k = 0; k < k_n; k++) {
                const float xv = xr[k];
                const float *wk = wp + (size_t)k * RLY_PANEL;
                for (int j = 0; j < RLY_PANEL; j++)
                    acc[j] += xv * wk[j];
            }
            uint32_t cols = m_n - p * RLY_PANEL;
            if (cols > RLY_PANEL)
                cols = RLY_PANEL;
            for (uint32_t j = 0; j < cols; j++)
                yr[p * RLY_PANEL + j] = act_scalar(act, acc[j]);
        }
    }
}

static void act_generic(relay_activation act, float *y, size_t count)
{
    if (act == RELAY_ACT_NONE || act == RELAY_ACT_SOFTMAX)
        return;
    for (size_t i = 0; i < count; i++)
        y[i] = act_scalar(act, y[i]);
}

static void softmax_generic(float *y, int n, uint32_t m)
{
    for (int r = 0; r < n; r++) {
        float *row = y + (size_t)r * m;
        float mx = row[0];
        for (uint32_t j = 1; j < m; j++)
            mx = row[j] > mx ? row[j] : mx;
        float sum = 0.0f;
        for (uint32_t j = 0; j < m; j++) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        const float inv = 1.0f / sum;
        for (uint32_t j = 0; j < m; j++)
            row[j] *= inv;
    }
}

static const rly_kernels kernels_generic = {RELAY_KERNEL_GENERIC, dense_generic, act_generic,
                                            softmax_generic};

#if RLY_HAVE_X86
#define RLY_AVX2 __attribute__((target("avx2,fma")))

/* exp for 8 floats: 2^n * p(r) with x = n ln2 + r, |r| <= ln2/2; relative error ~1e-7. */
RLY_AVX2 static inline __m256 exp8(__m256 x)
{
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447505531f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* recip8 returns 1/d to ~1 ulp-level accuracy: rcpps estimate plus one Newton-Raphson step. */
RLY_AVX2 static inline __m256 recip8(__m256 d)
{
    __m256 r = _mm256_rcp_ps(d);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}

/*
 * tanh for 8 floats as (e - 1) / (e + 1) with e = exp(2x), x clamped to [-9, 9] (tanh(9) rounds to
 * 1 in float). exp is inlined without exp8's range clamps (2x is already in range) and rounds
 * 2x / ln2 to an integer by adding 1.5 * 2^23, whose low mantissa bits then hold the exponent.
 * Absolute error stays below ~3e-7 and tanh(0) is exactly 0 (e is exactly 1 there).
 */
RLY_AVX2 static inline __m256 tanh8(__m256 x)
{
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-9.0f)), _mm256_set1_ps(9.0f));
    const __m256 x2 = _mm256_add_ps(x, x);
    const __m256 t = _mm256_fmadd_ps(x2, _mm256_set1_ps(1.44269504088896341f), magic);
    const __m256 n = _mm256_sub_ps(t, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x2);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    /* exp(r) ~ 1 + r + r^2 q(r), q cubic: a least-squares fit near minimax on |r| <= ln2/2,
     * relative error ~1.1e-7 (tanh needs less than exp8's 7th degree). */
    __m256 p = _mm256_set1_ps(8.3125801757e-3f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1890166700e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6667114198e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.9999231100e-1f));
    const __m256 one = _mm256_set1_ps(1.0f);
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, one));
    /* t's bits are 0x4B400000 + n; shifting left by 23 keeps the low 9 bits: n + 127. */
    const __m256i eb =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127)), 23);
    const __m256 e = _mm256_mul_ps(p, _mm256_castsi256_ps(eb));
    return _mm256_mul_ps(_mm256_sub_ps(e, one), recip8(_mm256_add_ps(e, one)));
}

RLY_AVX2 static inline __m256 sigmoid8(__m256 x)
{
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return recip8(_mm256_add_ps(e, _mm256_set1_ps(1.0f)));
}

RLY_AVX2 static inline __m256 act8(relay_activation act, __m256 v)
{
    switch (act) {
    case RELAY_ACT_RELU:
        return _mm256_max_ps(v, _mm256_setzero_ps());
    case RELAY_ACT_TANH:
        return tanh8(v);
    case RELAY_ACT_SIGMOID:
        return sigmoid8(v);
    default:
        return v;
    }
}

/* store16 writes cols (1..16) floats of the pair (a, b) to y. */
RLY_AVX2 static inline void store16(float *y, __m256 a, __m256 b, uint32_t cols)
{
    if (cols == RLY_PANEL) {
        _mm256_storeu_ps(y, a);
        _mm256_storeu_ps(y + 8, b);
        return;
    }
    float tmp[RLY_PANEL] __attribute__((aligned(32)));
    _mm256_store_ps(tmp, a);
    _mm256_store_ps(tmp + 8, b);
    memcpy(y, tmp, cols * sizeof(float));
}

/* hsum4 returns the horizontal sums of a, b, c, d as the four lanes of one xmm register. */
RLY_AVX2 static inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d)
{
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/*
 * dense_narrow_avx2 handles layers with m <= RLY_NARROW_MAX outputs (e.g. a policy head): per row,
 * dot products of x with the transposed weight columns in op->wt, instead of a 16-wide panel in
 * which at most 4 of 16 lanes carry outputs. Two accumulators per column hide FMA latency.
 */
RLY_AVX2 static void dense_narrow_avx2(const rly_op *op, const float *x, int n, float *y)
{
    const uint32_t k_n = op->k, m_n = op->m, kp = op->kpad;
    const relay_activation act = op->act == RELAY_ACT_SOFTMAX ? RELAY_ACT_NONE : op->act;
    const float *w0 = op->wt, *w1 = w0 + kp, *w2 = w1 + kp, *w3 = w2 + kp;
    const uint32_t k8 = k_n & ~7u;
    /* Lanes [0, k_n - k8) of the tail load are real inputs; the rest read as zero. */
    const __m256i tail = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(k_n - k8)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m128 bias = _mm_load_ps(op->b);
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * k_n;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        __m256 c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        uint32_t k = 0;
        if (m_n <= 2) {
            for (; k + 16 <= k8; k += 16) {
                const __m256 u = _mm256_loadu_ps(xr + k), v = _mm256_loadu_ps(xr + k + 8);
                a0 = _mm256_fmadd_ps(u, _mm256_load_ps(w0 + k), a0);
                a1 = _mm256_fmadd_ps(u, _mm256_load_ps(w1 + k), a1);
                c0 = _mm256_fmadd_ps(v, _mm256_load_ps(w0 + k + 8), c0);
                c1 = _mm256_fmadd_ps(v, _mm256_load_ps(w1 + k + 8), c1);
            }
        } else {
            for (; k + 16 <= k8; k += 16) {
                const __m256 u = _mm256_loadu_ps(xr + k), v = _mm256_loadu_ps(xr + k + 8);
                a0 = _mm256_fmadd_ps(u, _mm256_load_ps(w0 + k), a0);
                a1 = _mm256_fmadd_ps(u, _mm256_load_ps(w1 + k), a1);
                a2 = _mm256_fmadd_ps(u, _mm256_load_ps(w2 + k), a2);
                a3 = _mm256_fmadd_ps(u, _mm256_load_ps(w3 + k), a3);
                c0 = _mm256_fmadd_ps(v, _mm256_load_ps(w0 + k + 8), c0);
                c1 = _mm256_fmadd_ps(v, _mm256_load_ps(w1 + k + 8), c1);
                c2 = _mm256_fmadd_ps(v, _mm256_load_ps(w2 + k + 8), c2);
                c3 = _mm256_fmadd_ps(v, _mm256_load_ps(w3 + k + 8), c3);
            }
        }
        for (; k < kp; k += 8) {
            /* At most one full chunk of 8 and one partial chunk remain; wt is zero past k_n. */
            const __m256 u = k < k8 ? _mm256_loadu_ps(xr + k) : _mm256_maskload_ps(xr + k, tail);
            a0 = _mm256_fmadd_ps(u, _mm256_load_ps(w0 + k), a0);
            a1 = _mm256_fmadd_ps(u, _mm256_load_ps(w1 + k), a1);
            a2 = _mm256_fmadd_ps(u, _mm256_load_ps(w2 + k), a2);
            a3 = _mm256_fmadd_ps(u, _mm256_load_ps(w3 + k), a3);
        }
        __m128 s = _mm_add_ps(hsum4(_mm256_add_ps(a0, c0), _mm256_add_ps(a1, c1),
                                    _mm256_add_ps(a2, c2), _mm256_add_ps(a3, c3)),
                              bias);
        s = _mm256_castps256_ps128(act8(act, _mm256_zextps128_ps256(s)));
        float *yr = y + (size_t)r * m_n;
        if (m_n == 4) {
            _mm_storeu_ps(yr, s);
        } else {
            float tmp[4] __attribute__((aligned(16)));
            _mm_store_ps(tmp, s);
            memcpy(yr, tmp, m_n * sizeof(float));
        }
    }
}

/*
 * dense_panels_avx2 is the panel kernel for one activation; it is always inlined with a constant
 * act so that each activation gets its own copy with the epilogue scheduled without branches.
 */
RLY_AVX2 static inline __attribute__((always_inline)) void
dense_panels_avx2(const rly_op *op, const float *x, int n, float *y, const relay_activation act)
{
    const uint32_t k_n = op->k, m_n = op->m;
    int r = 0;
    for (; r + 4 <= n; r += 4) {
        const float *x0 = x + (size_t)r * k_n, *x1 = x0 + k_n, *x2 = x1 + k_n, *x3 = x2 + k_n;
        float *y0 = y + (size_t)r * m_n;
        for (uint32_t p = 0; p < op->panels; p++) {
            const float *wp = op->w + (size_t)p * k_n * RLY_PANEL;
            const __m256 b0 = _mm256_load_ps(op->b + p * RLY_PANEL);
            const __m256 b1 = _mm256_load_ps(op->b + p * RLY_PANEL + 8);
            __m256 a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1, a30 = b0, a31 = b1;
            if (m_n - p * RLY_PANEL <= 8) {
                /* Narrow last panel: only the first 8 columns carry outputs. */
                for (uint32_t k = 0; k < k_n; k++) {
                    const __m256 w0 = _mm256_load_ps(wp + (size_t)k * RLY_PANEL);
                    a00 = _mm256_fmadd_ps(_mm256_broadcast_ss(x0 + k), w0, a00);
                    a10 = _mm256_fmadd_ps(_mm256_broadcast_ss(x1 + k), w0, a10);
                    a20 = _mm256_fmadd_ps(_mm256_broadcast_ss(x2 + k), w0, a20);
                    a30 = _mm256_fmadd_ps(_mm256_broadcast_ss(x3 + k), w0, a30);
                }
            } else {
                for (uint32_t k = 0; k < k_n; k++) {
                    const __m256 w0 = _mm256_load_ps(wp + (size_t)k * RLY_PANEL);
                    const __m256 w1 = _mm256_load_ps(wp + (size_t)k * RLY_PANEL + 8);
                    __m256 v = _mm256_broadcast_ss(x0 + k);
                    a00 = _mm256_fmadd_ps(v, w0, a00);
                    a01 = _mm256_fmadd_ps(v, w1, a01);
                    v = _mm256_broadcast_ss(x1 + k);
                    a10 = _mm256_fmadd_ps(v, w0, a10);
                    a11 = _mm256_fmadd_ps(v, w1, a11);
                    v = _mm256_broadcast_ss(x2 + k);
                    a20 = _mm256_fmadd_ps(v, w0, a20);
                    a21 = _mm256_fmadd_ps(v, w1, a21);
                    v = _mm256_broadcast_ss(x3 + k);
                    a30 = _mm256_fmadd_ps(v, w0, a30);
                    a31 = _mm256_fmadd_ps(v, w1, a31);
                }
            }
            uint32_t cols = m_n - p * RLY_PANEL;
            if (cols > RLY_PANEL)
                cols = RLY_PANEL;
            float *yp = y0 + p * RLY_PANEL;
            store16(yp, act8(act, a00), act8(act, a01), cols);
            store16(yp + m_n, act8(act, a10), act8(act, a11), cols);
            store16(yp + 2 * (size_t)m_n, act8(act, a20), act8(act, a21), cols);
            store16(yp + 3 * (size_t)m_n, act8(act, a30), act8(act, a31), cols);
        }
    }
    for (; r < n; r++) {
        const float *x0 = x + (size_t)r * k_n;
        float *y0 = y + (size_t)r * m_n;
        for (uint32_t p = 0; p < op->panels; p++) {
            const float *wp = op->w + (size_t)p * k_n * RLY_PANEL;
            __m256 a0 = _mm256_load_ps(op->b + p * RLY_PANEL);
            __m256 a1 = _mm256_load_ps(op->b + p * RLY_PANEL + 8);
            __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
            uint32_t k = 0;
            for (; k + 2 <= k_n; k += 2) {
                __m256 v = _mm256_broadcast_ss(x0 + k);
                a0 = _mm256_fmadd_ps(v, _mm256_load_ps(wp + (size_t)k * RLY_PANEL), a0);
                a1 = _mm256_fmadd_ps(v, _mm256_load_ps(wp + (size_t)k * RLY_PANEL + 8), a1);
                v = _mm256_broadcast_ss(x0 + k + 1);
                c0 = _mm256_fmadd_ps(v, _mm256_load_ps(wp + (size_t)(k + 1) * RLY_PANEL), c0);
                c1 = _mm256_fmadd_ps(v, _mm256_load_ps(wp + (size_t)(k + 1) * RLY_PANEL + 8), c1);
            }
            if (k < k_n) {
                __m256 v = _mm256_broadcast_ss(x0 + k);
                a0 = _mm256_fmadd_ps(v, _mm256_load_ps(wp + (size_t)k * RLY_PANEL), a0);
                a1 = _mm256_fmadd_ps(v, _mm256_load_ps(wp + (size_t)k * RLY_PANEL + 8), a1);
            }
            uint32_t cols = m_n - p * RLY_PANEL;
            if (cols > RLY_PANEL)
                cols = RLY_PANEL;
            store16(y0 + p * RLY_PANEL, act8(act, _mm256_add_ps(a0, c0)),
                    act8(act, _mm256_add_ps(a1, c1)), cols);
        }
    }
}

RLY_AVX2 static void dense_avx2(const rly_op *op, const float *x, int n, float *y)
{
    if (op->wt && op->m <= RLY_NARROW_MAX) {
        dense_narrow_avx2(op, x, n, y);
        return;
    }
    switch (op->act) {
    case RELAY_ACT_TANH:
        dense_panels_avx2(op, x, n, y, RELAY_ACT_TANH);
        break;
    case RELAY_ACT_RELU:
        dense_panels_avx2(op, x, n, y, RELAY_ACT_RELU);
        break;
    case RELAY_ACT_SIGMOID:
        dense_panels_avx2(op, x, n, y, RELAY_ACT_SIGMOID);
        break;
    default: /* none, or softmax applied by the caller afterwards */
        dense_panels_avx2(op, x, n, y, RELAY_ACT_NONE);
        break;
    }
}

RLY_AVX2 static void act_avx2(relay_activation act, float *y, size_t count)
{
    if (act == RELAY_ACT_NONE || act == RELAY_ACT_SOFTMAX)
        return;
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        _mm256_storeu_ps(y + i, act8(act, _mm256_loadu_ps(y + i)));
    if (i < count) {
        float tmp[8] __attribute__((aligned(32))) = {0};
        memcpy(tmp, y + i, (count - i) * sizeof(float));
        _mm256_store_ps(tmp, act8(act, _mm256_load_ps(tmp)));
        memcpy(y + i, tmp, (count - i) * sizeof(float));
    }
}

RLY_AVX2 static void softmax_avx2(float *y, int n, uint32_t m)
{
    for (int r = 0; r < n; r++) {
        float *row = y + (size_t)r * m;
        float mx = row[0];
        for (uint32_t j = 1; j < m; j++)
            mx = row[j] > mx ? row[j] : mx;
        const __m256 vmx = _mm256_set1_ps(mx);
        __m256 vsum = _mm256_setzero_ps();
        uint32_t j = 0;
        for (; j + 8 <= m; j += 8) {
            __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), vmx));
            _mm256_storeu_ps(row + j, e);
            vsum = _mm256_add_ps(vsum, e);
        }
        float lanes[8] __attribute__((aligned(32)));
        _mm256_store_ps(lanes, vsum);
        float sum = 0.0f;
        for (int l = 0; l < 8; l++)
            sum += lanes[l];
        if (j < m) {
            float tmp[8] __attribute__((aligned(32)));
            for (int l = 0; l < 8; l++)
                tmp[l] = j + (uint32_t)l < m ? row[j + l] - mx : -100.0f;
            _mm256_store_ps(tmp, exp8(_mm256_load_ps(tmp)));
            for (uint32_t l = 0; j + l < m; l++) {
                row[j + l] = tmp[l];
                sum += tmp[l];
            }
        }
        const __m256 inv = _mm256_set1_ps(1.0f / sum);
        j = 0;
        for (; j + 8 <= m; j += 8)
            _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), inv));
        for (; j < m; j++)
            row[j] *= 1.0f / sum;
    }
}

static const rly_kernels kernels_avx2 = {RELAY_KERNEL_AVX2, dense_avx2, act_avx2, softmax_avx2};

static bool cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

const rly_kernels *rly_kernels_get(relay_kernel k)
{
    switch (k) {
    case RELAY_KERNEL_GENERIC:
        return &kernels_generic;
    case RELAY_KERNEL_AVX2:
#if RLY_HAVE_X86
        return cpu_has_avx2() ? &kernels_avx2 : NULL;
#else
        return NULL;
#endif
    case RELAY_KERNEL_AUTO:
#if RLY_HAVE_X86
        if (cpu_has_avx2())
            return &kernels_avx2;
#endif
        return &kernels_generic;
    }
    return NULL;
}
