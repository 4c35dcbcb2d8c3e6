/* xoshiro256** (Blackman & Vigna) seeded by splitmix64, with uniform and normal helpers. */
#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void rly_rng_seed(rly_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t rly_rng_next(rly_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double rly_rng_uniform(rly_rng *r)
{
    return (double)(rly_rng_next(r) >> 11) * 0x1.0p-53;
}

uint32_t rly_rng_below(rly_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift; the bias for n < 2^32 is below 2^-32 and irrelevant here. */
    return (uint32_t)(((rly_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

double rly_rng_normal(rly_rng *r)
{
    double u1 = rly_rng_uniform(r), u2 = rly_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
