/*
 * Reward normalisation (SB3 VecNormalize's norm_reward): each stream keeps a discounted return
 * R = gamma R + r; after every lockstep row the row's returns are folded into a running mean and
 * variance (RunningMeanStd: parallel-variance merge of the batch, initial mean 0, var 1, count
 * 1e-4) and that row's rewards are divided by sqrt(var + 1e-8), then clipped. R restarts at 0
 * after a terminated or truncated row. Only the rollout's training rewards change; episode
 * returns reported elsewhere come from the raw rewards.
 */
#include <math.h>

#include "core/log.h"
#include "learn/learn_internal.h"

#define RET_EPS 1e-8

relay_err relay_ppo_normalize_rewards(relay_ppo *p, relay_rollout *r)
{
    if (!p || !r) {
        rly_error("learn", "normalize_rewards: NULL argument");
        return RELAY_EINVAL;
    }
    if (!p->cfg.normalize_reward)
        return RELAY_OK;
    if (r->n_envs != p->cfg.n_envs || !relay_rollout_full(r) || r->finished) {
        rly_error("learn",
                  "normalize_rewards: needs a full, not yet finished rollout of %u streams (got %u "
                  "streams%s)",
                  p->cfg.n_envs, r->n_envs, r->finished ? ", already finished" : "");
        return RELAY_EINVAL;
    }
    const uint32_t N = r->n_envs;
    const double gamma = p->cfg.gamma, clip = p->cfg.clip_reward;
    for (uint32_t t = 0; t < r->n_steps; t++) {
        float *rew = r->reward + (size_t)t * N;
        const uint8_t *term = r->term + (size_t)t * N, *trunc = r->trunc + (size_t)t * N;
        double bm = 0, bv = 0;
        for (uint32_t e = 0; e < N; e++) {
            p->disc_ret[e] = p->disc_ret[e] * gamma + (double)rew[e];
            bm += p->disc_ret[e];
        }
        bm /= N;
        for (uint32_t e = 0; e < N; e++)
            bv += (p->disc_ret[e] - bm) * (p->disc_ret[e] - bm);
        bv /= N;
        double tot = p->ret_count + N, delta = bm - p->ret_mean;
        double m2 = p->ret_var * p->ret_count + bv * N + delta * delta * p->ret_count * N / tot;
        p->ret_mean += delta * N / tot;
        p->ret_var = m2 / tot;
        p->ret_count = tot;
        double inv = 1.0 / sqrt(p->ret_var + RET_EPS);
        for (uint32_t e = 0; e < N; e++) {
            double v = rew[e] * inv;
            if (clip > 0)
                v = v < -clip ? -clip : v > clip ? clip : v;
            rew[e] = (float)v;
            if (term[e] || trunc[e])
                p->disc_ret[e] = 0;
        }
    }
    return RELAY_OK;
}

void relay_ppo_reward_stats(const relay_ppo *p, double *mean, double *var, double *count)
{
    if (mean)
        *mean = p ? p->ret_mean : 0;
    if (var)
        *var = p ? p->ret_var : 1;
    if (count)
        *count = p ? p->ret_count : 0;
}
