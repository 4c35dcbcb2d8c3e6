/* Seeded pseudo-random numbers (actors and learning): xoshiro256** state, uniform and Gaussian
 * draws. */
#ifndef RLY_CORE_RNG_H
#define RLY_CORE_RNG_H

#include <stdint.h>

/* rly_rng is a 256-bit xoshiro256** generator; one per thread. */
typedef struct rly_rng {
    uint64_t s[4];
} rly_rng;

/* rly_rng_seed expands seed into a full state with splitmix64. */
void rly_rng_seed(rly_rng *r, uint64_t seed);

/* rly_rng_next returns the next 64 random bits. */
uint64_t rly_rng_next(rly_rng *r);

/* rly_rng_uniform returns a double uniformly distributed in [0, 1). */
double rly_rng_uniform(rly_rng *r);

/* rly_rng_below returns an integer uniformly distributed in [0, n), n > 0. */
uint32_t rly_rng_below(rly_rng *r, uint32_t n);

/* rly_rng_normal returns a standard normal draw (Box-Muller). */
double rly_rng_normal(rly_rng *r);

#endif
