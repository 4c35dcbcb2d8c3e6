/* Number formatting for the CSV sink: exact round-trip floats and integers without printf. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sink/sink_internal.h"

/* P10[k] is 10^k rounded to the nearest double (exact for k <= 22). */
static const double P10[61] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31,
    1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39, 1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47,
    1e48, 1e49, 1e50, 1e51, 1e52, 1e53, 1e54, 1e55, 1e56, 1e57, 1e58, 1e59, 1e60};

/* N10[k] is 10^-k rounded to the nearest double. */
static const double N10[61] = {
    1e-0,  1e-1,  1e-2,  1e-3,  1e-4,  1e-5,  1e-6,  1e-7,  1e-8,  1e-9,  1e-10, 1e-11, 1e-12,
    1e-13, 1e-14, 1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20, 1e-21, 1e-22, 1e-23, 1e-24, 1e-25,
    1e-26, 1e-27, 1e-28, 1e-29, 1e-30, 1e-31, 1e-32, 1e-33, 1e-34, 1e-35, 1e-36, 1e-37, 1e-38,
    1e-39, 1e-40, 1e-41, 1e-42, 1e-43, 1e-44, 1e-45, 1e-46, 1e-47, 1e-48, 1e-49, 1e-50, 1e-51,
    1e-52, 1e-53, 1e-54, 1e-55, 1e-56, 1e-57, 1e-58, 1e-59, 1e-60};

/* pow10i returns 10^k for -60 <= k <= 60 (correctly rounded literals). */
static double pow10i(int k)
{
    return k >= 0 ? P10[k] : N10[-k];
}

static const uint64_t U10[20] = {1ull,
                                 10ull,
                                 100ull,
                                 1000ull,
                                 10000ull,
                                 100000ull,
                                 1000000ull,
                                 10000000ull,
                                 100000000ull,
                                 1000000000ull,
                                 10000000000ull,
                                 100000000000ull,
                                 1000000000000ull,
                                 10000000000000ull,
                                 100000000000000ull,
                                 1000000000000000ull,
                                 10000000000000000ull,
                                 100000000000000000ull,
                                 1000000000000000000ull,
                                 10000000000000000000ull};

static const char DIGITS2[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static size_t count_digits(uint64_t v)
{
    size_t n = 1;
    while (n < 20 && v >= U10[n])
        n++;
    return n;
}

size_t rly_fmt_u64(char *p, uint64_t v)
{
    size_t n = count_digits(v);
    char *q = p + n;
    while (v >= 100) {
        uint64_t r = v % 100;
        v /= 100;
        q -= 2;
        q[0] = DIGITS2[2 * r];
        q[1] = DIGITS2[2 * r + 1];
    }
    if (v >= 10) {
        q[-2] = DIGITS2[2 * v];
        q[-1] = DIGITS2[2 * v + 1];
    } else {
        q[-1] = (char)('0' + v);
    }
    return n;
}

size_t rly_fmt_i64(char *p, int64_t v)
{
    if (v < 0) {
        p[0] = '-';
        return 1 + rly_fmt_u64(p + 1, (uint64_t)0 - (uint64_t)v);
    }
    return rly_fmt_u64(p, (uint64_t)v);
}

size_t rly_fmt_f64(char *p, double v)
{
    int n = snprintf(p, 32, "%.17g", v);
    return n > 0 ? (size_t)n : 0;
}

static inline char *copy_digits(char *s, const char *d, int n)
{
    for (int i = 0; i < n; i++)
        s[i] = d[i];
    return s + n;
}

size_t rly_fmt_f32(char *p, float v)
{
    char *s = p;
    if (isnan(v)) {
        memcpy(s, "nan", 3);
        return 3;
    }
    if (signbit(v))
        *s++ = '-';
    float a = fabsf(v);
    if (isinf(a)) {
        memcpy(s, "inf", 3);
        return (size_t)(s - p) + 3;
    }
    if (a == 0.0f) {
        *s++ = '0';
        return (size_t)(s - p);
    }
    double x = a;
    uint32_t bits;
    memcpy(&bits, &a, 4);
    int ef = (int)(bits >> 23); /* biased exponent; 0 for subnormals */
    uint32_t mant = bits & 0x7fffff;
    /* floor(log10(x)) estimate from the binary exponent, corrected by the loop below. */
    int e2 = ef ? ef - 127 : (31 - __builtin_clz(mant)) - 149;
    int e10 = (e2 * 78913) >> 18;
    /* Nine significant digits: m in [1e8, 1e9), value ~ m * 10^(e10 - 8). */
    uint64_t m = 0;
    double sc = 0;
    for (int tries = 0; tries < 4; tries++) {
        sc = x * pow10i(8 - e10);
        m = (uint64_t)(sc + 0.5);
        if (m >= 1000000000ull)
            e10++;
        else if (m < 100000000ull)
            e10--;
        else
            break;
    }
    /*
     * Gaps to the neighbouring floats: one ulp, or half of it below a power of two. A decimal
     * inside 0.49 of the gap on either side is guaranteed to parse back to this float; the
     * scaling errs by ~1e-16 relative, far below the remaining 0.01-gap margin.
     */
    int ue = ef ? ef - 150 : -149;
    uint64_t ubits = (uint64_t)(ue + 1023) << 52;
    double ulp;
    memcpy(&ulp, &ubits, 8);
    double gdn = (mant == 0 && ef > 1) ? ulp * 0.5 : ulp;
    double scale = pow10i(8 - e10);
    double lo = (x - 0.49 * gdn) * scale, hi = (x + 0.49 * ulp) * scale;
    /* Drop digits while the rounded shorter decimal stays inside the interval. */
    uint32_t m9 = (uint32_t)m, best = m9;
    int j = 0;
    /* Unrolled so every division is by a constant (a multiply). */
#define TRY_DIGITS(k, pk)                                                                          \
    do {                                                                                           \
        uint32_t c = (m9 + (pk) / 2) / (pk);                                                       \
        double cv = (double)c * (double)(pk);                                                      \
        if (!(cv > lo && cv < hi))                                                                 \
            goto shortened;                                                                        \
        best = c;                                                                                  \
        j = (k);                                                                                   \
    } while (0)
    TRY_DIGITS(1, 10u);
    TRY_DIGITS(2, 100u);
    TRY_DIGITS(3, 1000u);
    TRY_DIGITS(4, 10000u);
    TRY_DIGITS(5, 100000u);
    TRY_DIGITS(6, 1000000u);
    TRY_DIGITS(7, 10000000u);
    TRY_DIGITS(8, 100000000u);
#undef TRY_DIGITS
shortened:
    m = best;
    int q = e10 - 8 + j; /* exponent of the last digit */
    while (m % 10 == 0) {
        m /= 10;
        q++;
    }
    int nd;
    char dg[20];
    nd = (int)rly_fmt_u64(dg, m);
    int X = q + nd - 1; /* decimal exponent of the first digit */
    if (X >= -5 && X <= 8) {
        if (X >= 0) {
            if (nd <= X + 1) {
                s = copy_digits(s, dg, nd);
                for (int i = nd; i <= X; i++)
                    *s++ = '0';
            } else {
                s = copy_digits(s, dg, X + 1);
                *s++ = '.';
                s = copy_digits(s, dg + X + 1, nd - X - 1);
            }
        } else {
            *s++ = '0';
            *s++ = '.';
            for (int i = 0; i < -X - 1; i++)
                *s++ = '0';
            s = copy_digits(s, dg, nd);
        }
    } else {
        *s++ = dg[0];
        if (nd > 1) {
            *s++ = '.';
            s = copy_digits(s, dg + 1, nd - 1);
        }
        *s++ = 'e';
        int ex = X;
        if (ex < 0) {
            *s++ = '-';
            ex = -ex;
        } else {
            *s++ = '+';
        }
        if (ex < 10)
            *s++ = '0';
        s += rly_fmt_u64(s, (uint64_t)ex);
    }
    return (size_t)(s - p);
}
