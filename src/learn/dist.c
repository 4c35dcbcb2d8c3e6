/* Masked categorical and diagonal Gaussian distributions. */
#include "learn/dist.h"

#include <math.h>

#define HALF_LOG_2PI 0.91893853320467274178f

bool rly_cat_logprobs(const float *logits, const uint8_t *mask, uint32_t k, float *logp)
{
    float mx = -INFINITY;
    for (uint32_t i = 0; i < k; i++)
        if ((!mask || mask[i]) && logits[i] > mx)
            mx = logits[i];
    if (mx == -INFINITY)
        return false;
    double s = 0;
    for (uint32_t i = 0; i < k; i++)
        if (!mask || mask[i])
            s += exp((double)logits[i] - mx);
    float lse = mx + (float)log(s);
    for (uint32_t i = 0; i < k; i++)
        logp[i] = (!mask || mask[i]) ? logits[i] - lse : RLY_MASKED_LOGIT - lse;
    return true;
}

float rly_cat_entropy(const float *logp, const uint8_t *mask, uint32_t k)
{
    float h = 0;
    for (uint32_t i = 0; i < k; i++)
        if (!mask || mask[i])
            h -= expf(logp[i]) * logp[i];
    return h;
}

uint32_t rly_cat_sample(const float *logp, const uint8_t *mask, uint32_t k, double u)
{
    double c = 0;
    uint32_t last = 0;
    for (uint32_t i = 0; i < k; i++) {
        if (mask && !mask[i])
            continue;
        last = i;
        c += exp((double)logp[i]);
        if (u < c)
            return i;
    }
    return last; /* rounding left u just above the total: the last allowed action */
}

uint32_t rly_cat_argmax(const float *logp, const uint8_t *mask, uint32_t k)
{
    uint32_t best = k;
    for (uint32_t i = 0; i < k; i++)
        if ((!mask || mask[i]) && (best == k || logp[i] > logp[best]))
            best = i;
    return best == k ? 0 : best;
}

float rly_gauss_logp(const float *a, const float *mu, const float *log_std, uint32_t d)
{
    float s = 0;
    for (uint32_t i = 0; i < d; i++) {
        float z = (a[i] - mu[i]) * expf(-log_std[i]);
        s += -0.5f * z * z - log_std[i] - HALF_LOG_2PI;
    }
    return s;
}

float rly_gauss_entropy(const float *log_std, uint32_t d)
{
    float s = 0;
    for (uint32_t i = 0; i < d; i++)
        s += 0.5f + HALF_LOG_2PI + log_std[i];
    return s;
}
