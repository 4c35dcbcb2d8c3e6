/* PPO (clipped surrogate) and REINFORCE-with-baseline updates, configs and the learner object. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "learn/dist.h"
#include "learn/learn_internal.h"

void relay_ppo_config_default(relay_ppo_config *c)
{
    if (!c)
        return;
    memset(c, 0, sizeof *c);
    c->algo = RELAY_ALGO_PPO;
    c->n_envs = 1;
    c->n_steps = 2048;
    c->batch_size = 64;
    c->n_epochs = 10;
    c->gamma = 0.99f;
    c->gae_lambda = 0.95f;
    c->learning_rate = 3e-4f;
    c->clip_range = 0.2f;
    c->ent_coef = 0.0f;
    c->vf_coef = 0.5f;
    c->max_grad_norm = 0.5f;
    c->normalize_advantage = true;
    c->adam_eps = 1e-5f;
    c->clip_reward = 10.0f;
    c->total_timesteps = 1000000;
    c->seed = 0;
    c->policy.n_hidden = 2;
    c->policy.hidden[0] = c->policy.hidden[1] = 64;
    c->policy.activation = RELAY_HIDDEN_TANH;
    c->policy.clip_obs = 10.0f;
}

relay_err relay_ppo_config_zoo(relay_ppo_config *c, const char *env_name)
{
    if (!c)
        return RELAY_EINVAL;
    relay_ppo_config_default(c);
    if (!env_name)
        return RELAY_EINVAL;
    if (!strcmp(env_name, "CartPole-v1")) {
        c->n_envs = 8;
        c->n_steps = 32;
        c->batch_size = 256;
        c->gae_lambda = 0.8f;
        c->gamma = 0.98f;
        c->n_epochs = 20;
        c->learning_rate = 1e-3f;
        c->lr_linear = true;
        c->clip_range = 0.2f;
        c->clip_linear = true;
        c->total_timesteps = 100000;
    } else if (!strcmp(env_name, "Acrobot-v1")) {
        c->n_envs = 16;
        c->n_steps = 256;
        c->gae_lambda = 0.94f;
        c->gamma = 0.99f;
        c->n_epochs = 4;
        c->total_timesteps = 1000000;
        c->policy.normalize_obs = true;
    } else if (!strcmp(env_name, "MountainCar-v0")) {
        c->n_envs = 16;
        c->n_steps = 16;
        c->gae_lambda = 0.98f;
        c->gamma = 0.99f;
        c->n_epochs = 4;
        c->total_timesteps = 1000000;
        c->policy.normalize_obs = true;
    } else if (!strcmp(env_name, "Pendulum-v1")) {
        /* The zoo uses gSDE here; this is the same schedule with a plain Gaussian policy. */
        c->n_envs = 4;
        c->n_steps = 1024;
        c->gae_lambda = 0.95f;
        c->gamma = 0.9f;
        c->n_epochs = 10;
        c->learning_rate = 1e-3f;
        c->clip_range = 0.2f;
        c->total_timesteps = 100000;
    } else {
        return RELAY_ENOTFOUND;
    }
    return RELAY_OK;
}

static relay_err config_check(const relay_ppo_config *c)
{
#define BAD(...)                                                                                   \
    do {                                                                                           \
        rly_error("learn", __VA_ARGS__);                                                           \
        return RELAY_ECONFIG;                                                                      \
    } while (0)
    if (c->algo != RELAY_ALGO_PPO && c->algo != RELAY_ALGO_REINFORCE)
        BAD("ppo: unknown algo %d", (int)c->algo);
    if (c->n_envs == 0 || c->n_steps == 0 || (uint64_t)c->n_envs * c->n_steps > (1u << 24))
        BAD("ppo: n_envs %u x n_steps %u out of range", c->n_envs, c->n_steps);
    if (c->algo == RELAY_ALGO_PPO && (c->batch_size == 0 || c->n_epochs == 0))
        BAD("ppo: batch_size and n_epochs must be > 0");
    if (!(c->gamma >= 0 && c->gamma <= 1) || !(c->gae_lambda >= 0 && c->gae_lambda <= 1))
        BAD("ppo: gamma %g and gae_lambda %g must be in [0, 1]", c->gamma, c->gae_lambda);
    if (!(c->learning_rate > 0) || !(c->adam_eps > 0))
        BAD("ppo: learning_rate and adam_eps must be > 0");
    if (c->algo == RELAY_ALGO_PPO && !(c->clip_range > 0))
        BAD("ppo: clip_range must be > 0");
    if (!(c->ent_coef >= 0) || !(c->vf_coef >= 0))
        BAD("ppo: ent_coef and vf_coef must be >= 0");
    if (c->total_timesteps == 0)
        BAD("ppo: total_timesteps must be > 0");
    if (!isfinite(c->clip_reward) || c->clip_reward < 0)
        BAD("ppo: clip_reward %g must be finite and >= 0 (0: no clipping)", c->clip_reward);
#undef BAD
    return RELAY_OK;
}

void relay_ppo_free(relay_ppo *p)
{
    if (!p)
        return;
    relay_policy_free(p->pol);
    rly_adam_fini(&p->adam);
    free(p->perm);
    free(p->mb_obs);
    free(p->mb_act_f);
    free(p->mb_act_i);
    free(p->mb_mask);
    free(p->mb_logp);
    free(p->mb_adv);
    free(p->mb_ret);
    free(p->mb_val);
    free(p->dpi);
    free(p->dv);
    free(p->lp);
    free(p->disc_ret);
    free(p);
}

relay_err relay_ppo_new(const relay_ppo_config *cfg, relay_ppo **out)
{
    if (!cfg || !out) {
        rly_error("learn", "ppo_new: NULL argument");
        return RELAY_EINVAL;
    }
    *out = NULL;
    relay_err e = config_check(cfg);
    if (e)
        return e;
    relay_ppo *p = calloc(1, sizeof *p);
    if (!p)
        return RELAY_ENOMEM;
    p->cfg = *cfg;
    p->buf_size = cfg->n_envs * cfg->n_steps;
    p->mb_cap = cfg->algo == RELAY_ALGO_REINFORCE ? p->buf_size
                : cfg->batch_size < p->buf_size   ? cfg->batch_size
                                                  : p->buf_size;
    uint32_t maxb = p->mb_cap > cfg->n_envs ? p->mb_cap : cfg->n_envs;
    e = rly_policy_create(&cfg->policy, maxb, cfg->seed, true, &p->pol);
    if (e)
        goto fail;
    e = rly_adam_init(&p->adam, p->pol->n_params, 0.9f, 0.999f, cfg->adam_eps);
    if (e)
        goto fail;
    rly_rng_seed(&p->rng, cfg->seed ^ 0x5eed5eed5eedULL);
    p->ret_mean = 0;
    p->ret_var = 1;
    p->ret_count = 1e-4;
    const relay_policy_spec *s = &cfg->policy;
    size_t mb = p->mb_cap, k = p->pol->n_out;
    e = RELAY_ENOMEM;
    p->perm = malloc(p->buf_size * sizeof *p->perm);
    p->mb_obs = malloc(mb * s->obs_dim * sizeof(float));
    if (s->discrete) {
        p->mb_act_i = malloc(mb * sizeof(int32_t));
        p->mb_mask = malloc(mb * k);
        p->lp = malloc(mb * k * sizeof(float));
    } else {
        p->mb_act_f = malloc(mb * k * sizeof(float));
    }
    p->mb_logp = malloc(mb * sizeof(float));
    p->mb_adv = malloc(mb * sizeof(float));
    p->mb_ret = malloc(mb * sizeof(float));
    p->mb_val = malloc(mb * sizeof(float));
    p->dpi = malloc(mb * k * sizeof(float));
    p->dv = malloc(mb * sizeof(float));
    p->disc_ret = calloc(cfg->n_envs, sizeof *p->disc_ret);
    if (!p->disc_ret || !p->perm || !p->mb_obs ||
        (s->discrete ? !p->mb_act_i || !p->mb_mask || !p->lp : !p->mb_act_f) || !p->mb_logp ||
        !p->mb_adv || !p->mb_ret || !p->mb_val || !p->dpi || !p->dv)
        goto fail;
    *out = p;
    return RELAY_OK;
fail:
    relay_ppo_free(p);
    return e;
}

relay_policy *relay_ppo_policy(relay_ppo *p)
{
    return p ? p->pol : NULL;
}

void rly_ppo_loss_grad(relay_ppo *p, uint32_t n, const float *x, const void *act,
                       const uint8_t *mask, const float *logp_old, float *adv, const float *ret,
                       const float *val_old, float clip, rly_loss_out *out)
{
    const relay_ppo_config *c = &p->cfg;
    relay_policy *pol = p->pol;
    uint32_t k = pol->n_out;
    float inv_n = 1.0f / (float)n;
    if (c->normalize_advantage && n > 1) {
        double mean = 0, var = 0;
        for (uint32_t b = 0; b < n; b++)
            mean += adv[b];
        mean /= n;
        for (uint32_t b = 0; b < n; b++)
            var += (adv[b] - mean) * (adv[b] - mean);
        float sd = (float)sqrt(var / (n - 1));
        for (uint32_t b = 0; b < n; b++)
            adv[b] = (float)((adv[b] - mean) / (sd + 1e-8f));
    }
    const float *out_pi, *v;
    rly_policy_forward(pol, x, n, &out_pi, &v);
    const float *ls = pol->params + pol->log_std_off;
    float dls[RELAY_ENV_MAX_DIM];
    if (!pol->spec.discrete)
        memset(dls, 0, k * sizeof(float));
    double pg = 0, vl = 0, ent = 0, kl = 0, cf = 0;
    float gH = -c->ent_coef * inv_n;
    float cvf = c->clip_range_vf;
    for (uint32_t b = 0; b < n; b++) {
        float logp, H;
        const uint8_t *mrow = mask ? mask + (size_t)b * k : NULL;
        float *lp = NULL;
        if (pol->spec.discrete) {
            lp = p->lp + (size_t)b * k;
            rly_cat_logprobs(out_pi + (size_t)b * k, mrow, k, lp);
            logp = lp[((const int32_t *)act)[b]];
            H = rly_cat_entropy(lp, mrow, k);
        } else {
            logp =
                rly_gauss_logp((const float *)act + (size_t)b * k, out_pi + (size_t)b * k, ls, k);
            H = rly_gauss_entropy(ls, k);
        }
        float A = adv[b], glogp;
        if (clip > 0) {
            float lr = logp - logp_old[b];
            float ratio = expf(lr);
            float rc = ratio < 1 - clip ? 1 - clip : ratio > 1 + clip ? 1 + clip : ratio;
            float s1 = A * ratio, s2 = A * rc;
            pg -= s1 < s2 ? s1 : s2;
            glogp = s1 <= s2 ? -A * ratio * inv_n : 0.0f;
            kl += (ratio - 1) - lr;
            cf += fabsf(ratio - 1) > clip;
        } else {
            pg -= A * logp;
            glogp = -A * inv_n;
        }
        ent += H;
        float vp = v[b], vact = 1;
        if (cvf > 0) {
            float d = vp - val_old[b];
            float dc = d < -cvf ? -cvf : d > cvf ? cvf : d;
            vact = (d >= -cvf && d <= cvf) ? 1.0f : 0.0f;
            vp = val_old[b] + dc;
        }
        vl += (double)(ret[b] - vp) * (ret[b] - vp);
        p->dv[b] = c->vf_coef * 2.0f * inv_n * (vp - ret[b]) * vact;
        float *dz = p->dpi + (size_t)b * k;
        if (pol->spec.discrete) {
            int32_t a = ((const int32_t *)act)[b];
            for (uint32_t i = 0; i < k; i++) {
                if (mrow && !mrow[i]) {
                    dz[i] = 0;
                    continue;
                }
                float pi = expf(lp[i]);
                dz[i] = glogp * ((int32_t)i == a ? 1.0f - pi : -pi) - gH * pi * (lp[i] + H);
            }
        } else {
            const float *a = (const float *)act + (size_t)b * k;
            const float *mu = out_pi + (size_t)b * k;
            for (uint32_t i = 0; i < k; i++) {
                float istd = expf(-ls[i]);
                float z = (a[i] - mu[i]) * istd;
                dz[i] = glogp * z * istd;
                dls[i] += glogp * (z * z - 1.0f) + gH;
            }
        }
    }
    rly_policy_backward(pol, p->dpi, p->dv, n);
    if (!pol->spec.discrete)
        memcpy(pol->grads + pol->log_std_off, dls, k * sizeof(float));
    out->policy_loss = (float)(pg * inv_n);
    out->value_loss = (float)(vl * inv_n);
    out->entropy = (float)(ent * inv_n);
    out->approx_kl = (float)(kl * inv_n);
    out->clip_fraction = (float)(cf * inv_n);
    out->loss = out->policy_loss - c->ent_coef * out->entropy + c->vf_coef * out->value_loss;
}

static float explained_variance(const float *pred, const float *y, size_t n)
{
    double my = 0, md = 0;
    for (size_t i = 0; i < n; i++) {
        my += y[i];
        md += y[i] - pred[i];
    }
    my /= (double)n;
    md /= (double)n;
    double vy = 0, vd = 0;
    for (size_t i = 0; i < n; i++) {
        vy += (y[i] - my) * (y[i] - my);
        double d = y[i] - pred[i] - md;
        vd += d * d;
    }
    return vy == 0 ? NAN : (float)(1.0 - vd / vy);
}

relay_err relay_ppo_update(relay_ppo *p, relay_rollout *r, relay_ppo_metrics *m)
{
    if (!p || !r) {
        rly_error("learn", "ppo_update: NULL argument");
        return RELAY_EINVAL;
    }
    const relay_ppo_config *c = &p->cfg;
    relay_policy *pol = p->pol;
    const relay_policy_spec *s = &pol->spec;
    if (r->n_envs * r->n_steps != p->buf_size || r->obs_dim != s->obs_dim ||
        r->discrete != s->discrete ||
        (s->discrete ? r->n_actions != s->n_actions : r->act_dim != s->act_dim)) {
        rly_error("learn", "ppo_update: rollout shape does not match the learner");
        return RELAY_ESHAPE;
    }
    if (!r->finished) {
        rly_error("learn", "ppo_update: rollout not finished (call relay_rollout_finish)");
        return RELAY_ESTATE;
    }
    uint32_t S = p->buf_size, k = pol->n_out, d = s->obs_dim;
    p->timesteps += S;
    double progress = 1.0 - (double)p->timesteps / (double)c->total_timesteps;
    if (progress < 0)
        progress = 0;
    float lr = c->learning_rate * (c->lr_linear ? (float)progress : 1.0f);
    float clip = c->clip_range * (c->clip_linear ? (float)progress : 1.0f);
    bool ppo = c->algo == RELAY_ALGO_PPO;
    uint32_t epochs = ppo ? c->n_epochs : 1, mb = p->mb_cap;
    for (uint32_t i = 0; i < S; i++)
        p->perm[i] = i;
    double sum_pg = 0, sum_vl = 0, sum_ent = 0, sum_kl = 0, sum_cf = 0, gnorm = 0;
    uint32_t steps = 0, batches = 0, ep = 0;
    bool stop = false, canceled = false;
    for (ep = 0; ep < epochs && !stop; ep++) {
        if (ppo)
            for (uint32_t i = S - 1; i > 0; i--) {
                uint32_t j = rly_rng_below(&p->rng, i + 1), t = p->perm[i];
                p->perm[i] = p->perm[j];
                p->perm[j] = t;
            }
        for (uint32_t start = 0; start < S; start += mb) {
            if (p->cancel && atomic_load_explicit(p->cancel, memory_order_relaxed)) {
                canceled = stop = true;
                break;
            }
            uint32_t n = S - start < mb ? S - start : mb;
            for (uint32_t j = 0; j < n; j++) {
                uint32_t i = p->perm[start + j];
                memcpy(p->mb_obs + (size_t)j * d, r->obs + (size_t)i * d, d * sizeof(float));
                if (s->discrete) {
                    p->mb_act_i[j] = r->act_i[i];
                    memcpy(p->mb_mask + (size_t)j * k, r->mask + (size_t)i * k, k);
                } else {
                    memcpy(p->mb_act_f + (size_t)j * k, r->act_f + (size_t)i * k,
                           k * sizeof(float));
                }
                p->mb_logp[j] = r->logp[i];
                p->mb_adv[j] = r->adv[i];
                p->mb_ret[j] = r->ret[i];
                p->mb_val[j] = r->value[i];
            }
            const float *x = rly_policy_normalize(pol, p->mb_obs, n, p->mb_obs);
            rly_loss_out lo;
            rly_ppo_loss_grad(p, n, x,
                              s->discrete ? (const void *)p->mb_act_i : (const void *)p->mb_act_f,
                              s->discrete && r->has_mask ? p->mb_mask : NULL, p->mb_logp, p->mb_adv,
                              p->mb_ret, p->mb_val, ppo ? clip : 0.0f, &lo);
            sum_pg += lo.policy_loss;
            sum_vl += lo.value_loss;
            sum_ent += lo.entropy;
            sum_kl += lo.approx_kl;
            sum_cf += lo.clip_fraction;
            batches++;
            if (ppo && c->target_kl > 0 && lo.approx_kl > 1.5f * c->target_kl) {
                stop = true;
                break;
            }
            gnorm = rly_clip_grad_norm(pol->grads, pol->n_params, c->max_grad_norm);
            rly_adam_step(&p->adam, pol->params, pol->grads, lr);
            steps++;
        }
    }
    if (canceled)
        return RELAY_ECANCELED; /* parameters hold the minibatches done so far */
    p->updates++;
    if (m) {
        memset(m, 0, sizeof *m);
        float ib = batches ? 1.0f / (float)batches : 0.0f;
        m->policy_loss = (float)sum_pg * ib;
        m->value_loss = (float)sum_vl * ib;
        m->entropy = (float)sum_ent * ib;
        m->approx_kl = (float)sum_kl * ib;
        m->clip_fraction = (float)sum_cf * ib;
        m->explained_variance = explained_variance(r->value, r->ret, S);
        m->learning_rate = lr;
        m->clip_range = clip;
        m->grad_norm = (float)gnorm;
        m->epochs_run = ep;
        m->gradient_steps = steps;
    }
    rly_policy_update_obs_stats(pol, r->obs, S);
    return RELAY_OK;
}
