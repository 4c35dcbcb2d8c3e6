/* Categorical (masked) and Gaussian action selection, and the actor RNG. */
#include "actor/select.h"

#include <math.h>

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void rly_rng_seed(rly_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rly_rng_next(rly_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float rly_rng_uniform(rly_rng *r)
{
    return (float)(rly_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

float rly_rng_normal(rly_rng *r)
{
    double u1 = ((double)(rly_rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (double)(rly_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

relay_err rly_select_categorical(const float *logits, const uint8_t *mask, uint32_t n,
                                 bool deterministic, rly_rng *rng, int32_t *action, float *logp)
{
    float max = -INFINITY;
    int32_t best = -1;
    for (uint32_t i = 0; i < n; i++) {
        if (mask && !mask[i])
            continue;
        if (best < 0 || logits[i] > max) {
            max = logits[i];
            best = (int32_t)i;
        }
    }
    if (best < 0)
        return RELAY_EINVAL;
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++)
        if (!mask || mask[i])
            sum += exp((double)(logits[i] - max));
    double log_z = (double)max + log(sum);
    int32_t pick = best;
    if (!deterministic) {
        double u = (double)rly_rng_uniform(rng) * sum, acc = 0.0;
        pick = -1;
        for (uint32_t i = 0; i < n; i++) {
            if (mask && !mask[i])
                continue;
            acc += exp((double)(logits[i] - max));
            pick = (int32_t)i;
            if (u < acc)
                break;
        }
    }
    *action = pick;
    if (logp)
        *logp = (float)((double)logits[pick] - log_z);
    return RELAY_OK;
}

void rly_select_gaussian(const float *mean, const float *log_std, uint32_t dim, bool deterministic,
                         rly_rng *rng, const float *low, const float *high, float *action,
                         float *env_action, float *logp)
{
    const double half_log_2pi = 0.91893853320467274178;
    double lp = 0.0;
    for (uint32_t i = 0; i < dim; i++) {
        float ls = log_std ? log_std[i] : 0.0f;
        float eps = deterministic ? 0.0f : rly_rng_normal(rng);
        float a = mean[i] + expf(ls) * eps;
        action[i] = a;
        lp += -0.5 * (double)eps * (double)eps - (double)ls - half_log_2pi;
        if (env_action) {
            float c = a;
            if (low && c < low[i])
                c = low[i];
            if (high && c > high[i])
                c = high[i];
            env_action[i] = c;
        }
    }
    if (logp)
        *logp = (float)lp;
}
