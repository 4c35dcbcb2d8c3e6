/* relay_rollout: per-stream step storage and GAE advantages. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "learn/learn_internal.h"

void rly_gae(uint32_t T, uint32_t N, const float *reward, const float *value, const uint8_t *term,
             const uint8_t *trunc, const float *final_value, const float *last_value, float gamma,
             float lambda, float *adv, float *ret)
{
    for (uint32_t e = 0; e < N; e++) {
        float next_adv = 0, next_value = last_value ? last_value[e] : 0.0f;
        for (uint32_t t = T; t-- > 0;) {
            size_t i = (size_t)t * N + e;
            float boot = next_value, carry = next_adv;
            if (term[i]) {
                boot = 0;
                carry = 0;
            } else if (trunc[i]) {
                boot = final_value[i];
                carry = 0;
            }
            float delta = reward[i] + gamma * boot - value[i];
            adv[i] = delta + gamma * lambda * carry;
            ret[i] = adv[i] + value[i];
            next_adv = adv[i];
            next_value = value[i];
        }
    }
}

void relay_rollout_free(relay_rollout *r)
{
    if (!r)
        return;
    free(r->count);
    free(r->obs);
    free(r->act_i);
    free(r->act_f);
    free(r->mask);
    free(r->logp);
    free(r->value);
    free(r->reward);
    free(r->final_value);
    free(r->adv);
    free(r->ret);
    free(r->term);
    free(r->trunc);
    free(r);
}

relay_err relay_rollout_new(const relay_policy_spec *spec, uint32_t n_envs, uint32_t n_steps,
                            relay_rollout **out)
{
    if (!spec || !out || n_envs == 0 || n_steps == 0) {
        rly_error("learn", "rollout_new: NULL spec/out or zero size (%u envs x %u steps)", n_envs,
                  n_steps);
        return RELAY_EINVAL;
    }
    *out = NULL;
    size_t S = (size_t)n_envs * n_steps;
    if (S > (1u << 26) || spec->obs_dim == 0 || spec->obs_dim > RELAY_LEARN_MAX_WIDTH) {
        rly_error("learn", "rollout_new: %zu steps of %u floats is out of range", S, spec->obs_dim);
        return RELAY_ETOOBIG;
    }
    relay_rollout *r = calloc(1, sizeof *r);
    if (!r)
        return RELAY_ENOMEM;
    r->obs_dim = spec->obs_dim;
    r->discrete = spec->discrete;
    r->n_actions = spec->discrete ? spec->n_actions : 0;
    r->act_dim = spec->discrete ? 1 : spec->act_dim;
    r->n_envs = n_envs;
    r->n_steps = n_steps;
    r->count = calloc(n_envs, sizeof *r->count);
    r->obs = malloc(S * r->obs_dim * sizeof(float));
    if (r->discrete) {
        r->act_i = malloc(S * sizeof(int32_t));
        r->mask = malloc(S * r->n_actions);
    } else {
        r->act_f = malloc(S * r->act_dim * sizeof(float));
    }
    r->logp = malloc(S * sizeof(float));
    r->value = malloc(S * sizeof(float));
    r->reward = malloc(S * sizeof(float));
    r->final_value = malloc(S * sizeof(float));
    r->adv = malloc(S * sizeof(float));
    r->ret = malloc(S * sizeof(float));
    r->term = malloc(S);
    r->trunc = malloc(S);
    if (!r->count || !r->obs || (r->discrete ? !r->act_i || !r->mask : !r->act_f) || !r->logp ||
        !r->value || !r->reward || !r->final_value || !r->adv || !r->ret || !r->term || !r->trunc) {
        relay_rollout_free(r);
        return RELAY_ENOMEM;
    }
    *out = r;
    return RELAY_OK;
}

void relay_rollout_clear(relay_rollout *r)
{
    if (!r)
        return;
    memset(r->count, 0, r->n_envs * sizeof *r->count);
    r->has_mask = false;
    r->finished = false;
}

bool relay_rollout_full(const relay_rollout *r)
{
    if (!r)
        return false;
    for (uint32_t e = 0; e < r->n_envs; e++)
        if (r->count[e] < r->n_steps)
            return false;
    return true;
}

relay_err relay_rollout_add_env(relay_rollout *r, uint32_t env, const float *obs,
                                const void *action, const uint8_t *mask, float logp, float value,
                                float reward, bool terminated, bool truncated, float final_value)
{
    if (!r || !obs || !action || env >= r->n_envs) {
        rly_error("learn", "rollout_add_env: NULL argument or env %u >= %u", env,
                  r ? r->n_envs : 0);
        return RELAY_EINVAL;
    }
    if (r->count[env] >= r->n_steps)
        return RELAY_EFULL;
    size_t i = (size_t)r->count[env] * r->n_envs + env;
    memcpy(r->obs + i * r->obs_dim, obs, r->obs_dim * sizeof(float));
    if (r->discrete) {
        int32_t a = *(const int32_t *)action;
        if (a < 0 || (uint32_t)a >= r->n_actions) {
            rly_error("learn", "rollout_add_env: action %d out of range 0..%u", a,
                      r->n_actions - 1);
            return RELAY_EINVAL;
        }
        uint8_t *m = r->mask + i * r->n_actions;
        if (mask) {
            for (uint32_t k = 0; k < r->n_actions; k++)
                m[k] = mask[k] != 0;
            if (!m[a]) {
                rly_error("learn", "rollout_add_env: action %d is masked out", a);
                return RELAY_EINVAL;
            }
            r->has_mask = true;
        } else {
            memset(m, 1, r->n_actions);
        }
        r->act_i[i] = a;
    } else {
        memcpy(r->act_f + i * r->act_dim, action, r->act_dim * sizeof(float));
    }
    r->logp[i] = logp;
    r->value[i] = value;
    r->reward[i] = reward;
    r->term[i] = terminated;
    r->trunc[i] = truncated && !terminated;
    r->final_value[i] = truncated && !terminated ? final_value : 0.0f;
    r->count[env]++;
    r->finished = false;
    return RELAY_OK;
}

relay_err relay_rollout_add(relay_rollout *r, const float *obs, const void *actions,
                            const uint8_t *masks, const float *logp, const float *values,
                            const float *rewards, const bool *terminated, const bool *truncated,
                            const float *final_values)
{
    if (!r || !obs || !actions || !logp || !values || !rewards || !terminated || !truncated) {
        rly_error("learn", "rollout_add: NULL argument");
        return RELAY_EINVAL;
    }
    for (uint32_t e = 0; e < r->n_envs; e++) {
        const void *a = r->discrete
                            ? (const void *)((const int32_t *)actions + e)
                            : (const void *)((const float *)actions + (size_t)e * r->act_dim);
        relay_err err = relay_rollout_add_env(r, e, obs + (size_t)e * r->obs_dim, a,
                                              masks ? masks + (size_t)e * r->n_actions : NULL,
                                              logp[e], values[e], rewards[e], terminated[e],
                                              truncated[e], final_values ? final_values[e] : 0.0f);
        if (err)
            return err;
    }
    return RELAY_OK;
}

relay_err relay_rollout_finish(relay_rollout *r, const float *last_values, float gamma,
                               float gae_lambda)
{
    if (!r || !last_values) {
        rly_error("learn", "rollout_finish: NULL argument");
        return RELAY_EINVAL;
    }
    if (!relay_rollout_full(r)) {
        rly_error("learn", "rollout_finish: rollout is not full");
        return RELAY_ESTATE;
    }
    if (!(gamma >= 0 && gamma <= 1) || !(gae_lambda >= 0 && gae_lambda <= 1)) {
        rly_error("learn", "rollout_finish: gamma %g / lambda %g outside [0, 1]", gamma,
                  gae_lambda);
        return RELAY_EINVAL;
    }
    rly_gae(r->n_steps, r->n_envs, r->reward, r->value, r->term, r->trunc, r->final_value,
            last_values, gamma, gae_lambda, r->adv, r->ret);
    r->finished = true;
    return RELAY_OK;
}

const float *relay_rollout_advantages(const relay_rollout *r)
{
    return r ? r->adv : NULL;
}

const float *relay_rollout_returns(const relay_rollout *r)
{
    return r ? r->ret : NULL;
}
