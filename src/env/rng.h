/* Small seeded generator for the built-in environments (splitmix64) and seed derivation. */
#ifndef RLY_ENV_RNG_H
#define RLY_ENV_RNG_H

#include <stdint.h>

/* rly_splitmix64 advances *s by the golden-ratio increment and returns the mixed output. */
static inline uint64_t rly_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* rly_uniform returns a double uniform in [low, high) built from the top 53 bits of one draw. */
static inline double rly_uniform(uint64_t *s, double low, double high)
{
    double u = (double)(rly_splitmix64(s) >> 11) * 0x1.0p-53;
    return low + (high - low) * u;
}

#endif
