/* Categorical (masked) and Gaussian action selection. */
#include "actor/select.h"

#include <math.h>

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
        double u = rly_rng_uniform(rng) * sum, acc = 0.0;
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
        float eps = deterministic ? 0.0f : (float)rly_rng_normal(rng);
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
