/* Deterministic evaluation episodes for `relay train --eval-every`. */
#include "cli/train_eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define MOD "train"
#define EVAL_MAX_STEPS 100000u /* safety bound for environments without a time limit */

struct rly_train_evaluator {
    const relay_env_def *env;
    uint32_t n, obs_dim, act_w;
    bool discrete;
    float *obs, *next, *rew, *act_f, *env_act;
    int32_t *act_i;
    bool *term, *trunc, *done;
    double *ret;
};

void rly_train_evaluator_free(rly_train_evaluator *e)
{
    if (!e)
        return;
    free(e->obs);
    free(e->next);
    free(e->rew);
    free(e->act_f);
    free(e->env_act);
    free(e->act_i);
    free(e->term);
    free(e->trunc);
    free(e->done);
    free(e->ret);
    free(e);
}

relay_err rly_train_evaluator_new(const relay_env_def *env, uint32_t episodes,
                                  rly_train_evaluator **out)
{
    if (!env || !out || episodes == 0 || episodes > RLY_EVAL_MAX_EPISODES) {
        rly_error(MOD, "evaluator: %u episodes (1..%u)", episodes, RLY_EVAL_MAX_EPISODES);
        return RELAY_EINVAL;
    }
    *out = NULL;
    relay_space os, as;
    memset(&os, 0, sizeof os);
    memset(&as, 0, sizeof as);
    env->spaces(&os, &as);
    rly_train_evaluator *e = calloc(1, sizeof *e);
    if (!e)
        return RELAY_ENOMEM;
    e->env = env;
    e->n = episodes;
    e->obs_dim = os.dim;
    e->discrete = as.discrete;
    e->act_w = as.discrete ? 1 : as.dim;
    size_t n = episodes, d = os.dim, k = e->act_w;
    e->obs = malloc(n * d * sizeof(float));
    e->next = malloc(n * d * sizeof(float));
    e->rew = malloc(n * sizeof(float));
    e->act_f = malloc(n * k * sizeof(float));
    e->env_act = malloc(n * k * sizeof(float));
    e->act_i = malloc(n * sizeof(int32_t));
    e->term = malloc(n * sizeof(bool));
    e->trunc = malloc(n * sizeof(bool));
    e->done = malloc(n * sizeof(bool));
    e->ret = malloc(n * sizeof(double));
    if (!e->obs || !e->next || !e->rew || !e->act_f || !e->env_act || !e->act_i || !e->term ||
        !e->trunc || !e->done || !e->ret) {
        rly_train_evaluator_free(e);
        return RELAY_ENOMEM;
    }
    *out = e;
    return RELAY_OK;
}

/* act runs p on rows [0, n) in chunks the policy's batch limit accepts. */
static relay_err act(rly_train_evaluator *e, relay_policy *p)
{
    uint32_t chunk = e->n;
    for (uint32_t at = 0; at < e->n;) {
        uint32_t c = e->n - at < chunk ? e->n - at : chunk;
        const float *o = e->obs + (size_t)at * e->obs_dim;
        relay_err err =
            e->discrete ? relay_policy_act(p, o, c, NULL, true, e->act_i + at, NULL, NULL, NULL)
                        : relay_policy_act(p, o, c, NULL, true, e->act_f + (size_t)at * e->act_w,
                                           e->env_act + (size_t)at * e->act_w, NULL, NULL);
        if (err == RELAY_ETOOBIG && chunk > 1) {
            chunk = (chunk + 1) / 2;
            continue;
        }
        if (err)
            return err;
        at += c;
    }
    return RELAY_OK;
}

relay_err rly_train_evaluate(rly_train_evaluator *e, relay_policy *p, uint64_t seed, double *mean,
                             double *std)
{
    if (!e || !p || !mean || !std)
        return RELAY_EINVAL;
    relay_vecenv *v = NULL;
    relay_err err = relay_vecenv_new(e->env, e->n, seed, &v);
    if (err)
        return err;
    relay_vecenv_reset(v, e->obs);
    memset(e->done, 0, e->n * sizeof(bool));
    for (uint32_t i = 0; i < e->n; i++)
        e->ret[i] = 0;
    uint32_t left = e->n;
    uint32_t limit =
        e->env->max_episode_steps > 0 ? (uint32_t)e->env->max_episode_steps + 1 : EVAL_MAX_STEPS;
    for (uint32_t t = 0; left && t < limit && !err; t++) {
        if ((err = act(e, p)))
            break;
        relay_vecenv_step(v, e->discrete ? (const void *)e->act_i : (const void *)e->env_act,
                          e->next, e->rew, e->term, e->trunc, NULL);
        for (uint32_t i = 0; i < e->n; i++) {
            if (e->done[i])
                continue;
            e->ret[i] += e->rew[i];
            if (e->term[i] || e->trunc[i]) {
                e->done[i] = true;
                left--;
            }
        }
        float *tmp = e->obs;
        e->obs = e->next;
        e->next = tmp;
    }
    relay_vecenv_free(v);
    if (err)
        return err;
    double s = 0, s2 = 0;
    for (uint32_t i = 0; i < e->n; i++)
        s += e->ret[i];
    *mean = s / e->n;
    for (uint32_t i = 0; i < e->n; i++)
        s2 += (e->ret[i] - *mean) * (e->ret[i] - *mean);
    *std = sqrt(s2 / e->n);
    return RELAY_OK;
}
