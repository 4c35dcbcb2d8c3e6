/*
 * Branch-free float sine and cosine that compilers vectorise (no libm call): Cody-Waite reduction
 * by pi/2 and minimax polynomials on [-pi/4, pi/4]. Error is about 1 ulp for |x| <= 8192; callers
 * with larger arguments must use sinf/cosf (rly_sincosf_ok tells).
 */
#ifndef RLY_ENV_FASTMATH_H
#define RLY_ENV_FASTMATH_H

#include <stdbool.h>
#include <stdint.h>

/* RLY_SINCOS_MAX_ARG bounds |x| for which rly_sincosf is accurate. */
#define RLY_SINCOS_MAX_ARG 8192.0f

/* rly_sincosf_ok reports whether x is in the accurate range of rly_sincosf. */
static inline bool rly_sincosf_ok(float x)
{
    return x >= -RLY_SINCOS_MAX_ARG && x <= RLY_SINCOS_MAX_ARG;
}

/* rly_sincosf writes sin(x) and cos(x) for |x| <= RLY_SINCOS_MAX_ARG. */
static inline void rly_sincosf(float x, float *s, float *c)
{
    /* Nearest quadrant index: adding and removing 1.5 * 2^23 rounds to the nearest integer. */
    const float shifter = 12582912.0f;
    float q = (x * 0.63661977236758134f + shifter) - shifter;
    int32_t k = (int32_t)q;
    /* pi/2 split into three floats so that q * part is exact for the first two. */
    float r = x - q * 1.5703125f;
    r = r - q * 4.837512969970703125e-4f;
    r = r - q * 7.54978995489188216e-8f;
    float r2 = r * r;
    float ps = r + r * r2 * (-1.6666654611e-1f + r2 * (8.3321608736e-3f + r2 * -1.9515295891e-4f));
    float pc =
        1.0f - 0.5f * r2 +
        r2 * r2 *
            (4.166664568298827e-2f + r2 * (-1.388731625493765e-3f + r2 * 2.443315711809948e-5f));
    bool swap = (k & 1) != 0;
    float sv = swap ? pc : ps;
    float cv = swap ? ps : pc;
    /* sin is negative in quadrants 2 and 3; cos in quadrants 1 and 2. */
    *s = ((k & 2) != 0) ? -sv : sv;
    *c = (((k + 1) & 2) != 0) ? -cv : cv;
}

#endif
