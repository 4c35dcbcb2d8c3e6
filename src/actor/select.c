/* Categorical (masked) and Gaussian action selection. */
#include "actor/select.h"

#include <math.h>

relay_err rly_select_categorical(const float *logits, const uint8_t *mask, uint32_t n,
                                 bool deterministic, rly_rng *rng, int32_t *action, float *logp)
{
    bool any = false;
    for (uint32_t i = 0; i < n && !any; i++)
        any = !mask || mask[i];
    if (!any)
        return RELAY_EINVAL; /* no draw: the RNG stream is left as it was */
    double u = deterministic ? 0.0 : rly_rng_uniform(rng);
    return rly_select_categorical_u(logits, mask, n, deterministic, u, action, logp);
}

relay_err rly_select_categorical_u(const float *logits, const uint8_t *mask, uint32_t n,
                                   bool deterministic, double uniform, int32_t *action, float *logp)
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
        double u = uniform * sum, acc = 0.0;
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
    double eps[RLY_SELECT_MAX_DIM];
    uint32_t d = dim < RLY_SELECT_MAX_DIM ? dim : RLY_SELECT_MAX_DIM;
    for (uint32_t i = 0; i < d && !deterministic; i++)
        eps[i] = rly_rng_normal(rng);
    rly_select_gaussian_eps(mean, log_std, d, deterministic ? NULL : eps, low, high, action,
                            env_action, logp);
}

void rly_select_gaussian_eps(const float *mean, const float *log_std, uint32_t dim,
                             const double *normals, const float *low, const float *high,
                             float *action, float *env_action, float *logp)
{
    const double half_log_2pi = 0.91893853320467274178;
    double lp = 0.0;
    for (uint32_t i = 0; i < dim; i++) {
        float ls = log_std ? log_std[i] : 0.0f;
        float eps = normals ? (float)normals[i] : 0.0f;
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
