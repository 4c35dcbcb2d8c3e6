/* relay_policy: MLP actor/critic networks, observation normalisation, acting and parameters. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "learn/dist.h"
#include "learn/learn_internal.h"

relay_err relay_policy_spec_from_spaces(relay_policy_spec *s, const relay_space *obs,
                                        const relay_space *act)
{
    if (!s || !obs || !act) {
        rly_error("learn", "policy_spec_from_spaces: NULL argument");
        return RELAY_EINVAL;
    }
    if (obs->discrete || obs->dim == 0 || obs->dim > RELAY_LEARN_MAX_WIDTH) {
        rly_error("learn", "observation space must be a Box of 1..%d floats",
                  RELAY_LEARN_MAX_WIDTH);
        return RELAY_EUNSUPPORTED;
    }
    memset(s, 0, sizeof *s);
    s->obs_dim = obs->dim;
    s->discrete = act->discrete;
    if (act->discrete) {
        if (act->n < 1 || act->n > RELAY_LEARN_MAX_WIDTH) {
            rly_error("learn", "discrete action space of %d actions", act->n);
            return RELAY_EUNSUPPORTED;
        }
        s->n_actions = (uint32_t)act->n;
        s->act_dim = 1;
    } else {
        if (act->dim == 0 || act->dim > RELAY_ENV_MAX_DIM) {
            rly_error("learn", "continuous action space of %u dims", act->dim);
            return RELAY_EUNSUPPORTED;
        }
        s->act_dim = act->dim;
        memcpy(s->act_low, act->low, act->dim * sizeof(float));
        memcpy(s->act_high, act->high, act->dim * sizeof(float));
    }
    s->n_hidden = 2;
    s->hidden[0] = s->hidden[1] = 64;
    s->activation = RELAY_HIDDEN_TANH;
    s->clip_obs = 10.0f;
    return RELAY_OK;
}

static relay_err spec_check(const relay_policy_spec *s)
{
    if (s->obs_dim == 0 || s->obs_dim > RELAY_LEARN_MAX_WIDTH) {
        rly_error("learn", "policy: obs_dim %u out of range 1..%d", s->obs_dim,
                  RELAY_LEARN_MAX_WIDTH);
        return RELAY_EINVAL;
    }
    if (s->discrete ? (s->n_actions < 1 || s->n_actions > RELAY_LEARN_MAX_WIDTH)
                    : (s->act_dim < 1 || s->act_dim > RELAY_ENV_MAX_DIM)) {
        rly_error("learn", "policy: bad action space (discrete %d, n %u, dim %u)", s->discrete,
                  s->n_actions, s->act_dim);
        return RELAY_EINVAL;
    }
    if (s->n_hidden > RELAY_LEARN_MAX_HIDDEN || (s->shared && s->n_hidden == 0)) {
        rly_error("learn", "policy: %u hidden layers (max %d; shared nets need >= 1)", s->n_hidden,
                  RELAY_LEARN_MAX_HIDDEN);
        return RELAY_EINVAL;
    }
    for (uint32_t i = 0; i < s->n_hidden; i++)
        if (s->hidden[i] == 0 || s->hidden[i] > RELAY_LEARN_MAX_WIDTH) {
            rly_error("learn", "policy: hidden width %u out of range", s->hidden[i]);
            return RELAY_EINVAL;
        }
    if (s->activation != RELAY_HIDDEN_TANH && s->activation != RELAY_HIDDEN_RELU) {
        rly_error("learn", "policy: unknown activation %d", (int)s->activation);
        return RELAY_EINVAL;
    }
    if (s->normalize_obs && !(s->clip_obs > 0)) {
        rly_error("learn", "policy: clip_obs must be > 0 with normalize_obs");
        return RELAY_EINVAL;
    }
    return RELAY_OK;
}

void relay_policy_free(relay_policy *p)
{
    if (!p)
        return;
    rly_mlp_fini(&p->trunk);
    rly_mlp_fini(&p->pi);
    rly_mlp_fini(&p->vf);
    free(p->params);
    free(p->grads);
    free(p->dh);
    free(p->xbuf);
    free(p->lpbuf);
    free(p->rms_mean);
    free(p->rms_var);
    free(p->norm_mean);
    free(p->norm_inv_std);
    free(p);
}

void rly_policy_refresh_norm(relay_policy *p)
{
    for (uint32_t i = 0; i < p->spec.obs_dim; i++) {
        p->norm_mean[i] = (float)p->rms_mean[i];
        p->norm_inv_std[i] = (float)(1.0 / sqrt(p->rms_var[i] + 1e-8));
    }
}

relay_err rly_policy_create(const relay_policy_spec *spec, uint32_t max_batch, uint64_t seed,
                            bool trainable, relay_policy **out)
{
    if (!spec || !out) {
        rly_error("learn", "policy_new: NULL argument");
        return RELAY_EINVAL;
    }
    *out = NULL;
    relay_err e = spec_check(spec);
    if (e)
        return e;
    if (max_batch == 0 || max_batch > (1u << 24)) {
        rly_error("learn", "policy_new: max_batch %u out of range", max_batch);
        return RELAY_EINVAL;
    }
    relay_policy *p = calloc(1, sizeof *p);
    if (!p)
        return RELAY_ENOMEM;
    p->spec = *spec;
    p->max_batch = max_batch;
    p->trainable = trainable;
    p->n_out = spec->discrete ? spec->n_actions : spec->act_dim;
    rly_rng_seed(&p->rng, seed);

    uint32_t sz[RLY_MLP_MAX_LAYERS + 1];
    uint32_t nh = spec->n_hidden;
    sz[0] = spec->obs_dim;
    for (uint32_t i = 0; i < nh; i++)
        sz[i + 1] = spec->hidden[i];
    if (spec->shared) {
        uint32_t h = spec->hidden[nh - 1];
        e = rly_mlp_init(&p->trunk, sz, nh, spec->activation, true, max_batch, trainable);
        if (!e)
            e = rly_mlp_init(&p->pi, (uint32_t[]){h, p->n_out}, 1, spec->activation, false,
                             max_batch, trainable);
        if (!e)
            e = rly_mlp_init(&p->vf, (uint32_t[]){h, 1}, 1, spec->activation, false, max_batch,
                             trainable);
    } else {
        sz[nh + 1] = p->n_out;
        e = rly_mlp_init(&p->pi, sz, nh + 1, spec->activation, false, max_batch, trainable);
        sz[nh + 1] = 1;
        if (!e)
            e = rly_mlp_init(&p->vf, sz, nh + 1, spec->activation, false, max_batch, trainable);
    }
    if (e)
        goto fail;
    p->trunk_off = 0;
    p->pi_off = spec->shared ? p->trunk.n_params : 0;
    p->vf_off = p->pi_off + p->pi.n_params;
    p->log_std_off = p->vf_off + p->vf.n_params;
    p->n_params = p->log_std_off + (spec->discrete ? 0 : spec->act_dim);
    e = RELAY_ENOMEM;
    p->params = calloc(p->n_params, sizeof(float));
    p->xbuf = calloc((size_t)max_batch * spec->obs_dim, sizeof(float));
    p->lpbuf = calloc(p->n_out, sizeof(float));
    p->rms_mean = calloc(spec->obs_dim, sizeof(double));
    p->rms_var = calloc(spec->obs_dim, sizeof(double));
    p->norm_mean = calloc(spec->obs_dim, sizeof(float));
    p->norm_inv_std = calloc(spec->obs_dim, sizeof(float));
    if (!p->params || !p->xbuf || !p->lpbuf || !p->rms_mean || !p->rms_var || !p->norm_mean ||
        !p->norm_inv_std)
        goto fail;
    if (trainable) {
        p->grads = calloc(p->n_params, sizeof(float));
        if (!p->grads)
            goto fail;
        if (spec->shared) {
            p->dh = calloc((size_t)max_batch * spec->hidden[nh - 1], sizeof(float));
            if (!p->dh)
                goto fail;
        }
    }
    for (uint32_t i = 0; i < spec->obs_dim; i++)
        p->rms_var[i] = 1.0;
    p->rms_count = 1e-4;
    rly_policy_refresh_norm(p);
    float *g = p->grads;
    if (spec->shared)
        rly_mlp_bind(&p->trunk, p->params, g);
    rly_mlp_bind(&p->pi, p->params + p->pi_off, g ? g + p->pi_off : NULL);
    rly_mlp_bind(&p->vf, p->params + p->vf_off, g ? g + p->vf_off : NULL);
    /* SB3 orthogonal init: sqrt(2) hidden, 0.01 policy head, 1 value head. */
    const float s2 = 1.41421356f;
    if (spec->shared)
        rly_mlp_orthogonal_init(&p->trunk, &p->rng, s2, s2);
    rly_mlp_orthogonal_init(&p->pi, &p->rng, s2, 0.01f);
    rly_mlp_orthogonal_init(&p->vf, &p->rng, s2, 1.0f);
    for (uint32_t i = 0; !spec->discrete && i < spec->act_dim; i++)
        p->params[p->log_std_off + i] = spec->log_std_init;
    *out = p;
    return RELAY_OK;
fail:
    relay_policy_free(p);
    return e;
}

relay_err relay_policy_new(const relay_policy_spec *spec, uint32_t max_batch, uint64_t seed,
                           relay_policy **out)
{
    return rly_policy_create(spec, max_batch, seed, false, out);
}

const relay_policy_spec *relay_policy_get_spec(const relay_policy *p)
{
    return p ? &p->spec : NULL;
}

const float *rly_policy_normalize(relay_policy *p, const float *obs, uint32_t n, float *dst)
{
    if (!p->spec.normalize_obs)
        return obs;
    uint32_t d = p->spec.obs_dim;
    float c = p->spec.clip_obs;
    for (uint32_t b = 0; b < n; b++)
        for (uint32_t i = 0; i < d; i++) {
            float v = (obs[(size_t)b * d + i] - p->norm_mean[i]) * p->norm_inv_std[i];
            dst[(size_t)b * d + i] = v < -c ? -c : v > c ? c : v;
        }
    return dst;
}

void rly_policy_forward(relay_policy *p, const float *x, uint32_t n, const float **pi_out,
                        const float **v_out)
{
    if (p->spec.shared)
        x = rly_mlp_forward(&p->trunk, x, n);
    if (pi_out)
        *pi_out = rly_mlp_forward(&p->pi, x, n);
    if (v_out)
        *v_out = rly_mlp_forward(&p->vf, x, n);
}

void rly_policy_backward(relay_policy *p, float *dpi, float *dv, uint32_t n)
{
    if (p->spec.shared) {
        rly_mlp_backward(&p->pi, dpi, n, p->dh, false);
        rly_mlp_backward(&p->vf, dv, n, p->dh, true);
        rly_mlp_backward(&p->trunk, p->dh, n, NULL, false);
    } else {
        rly_mlp_backward(&p->pi, dpi, n, NULL, false);
        rly_mlp_backward(&p->vf, dv, n, NULL, false);
    }
}

void rly_policy_update_obs_stats(relay_policy *p, const float *obs, size_t n)
{
    if (!p->spec.normalize_obs || n == 0)
        return;
    uint32_t d = p->spec.obs_dim;
    for (uint32_t i = 0; i < d; i++) {
        double mean = 0, m2 = 0;
        for (size_t b = 0; b < n; b++)
            mean += obs[b * d + i];
        mean /= (double)n;
        for (size_t b = 0; b < n; b++) {
            double dd = obs[b * d + i] - mean;
            m2 += dd * dd;
        }
        double var = m2 / (double)n;
        /* Chan et al. parallel merge, as in SB3's RunningMeanStd. */
        double delta = mean - p->rms_mean[i], tot = p->rms_count + (double)n;
        double nm = p->rms_mean[i] + delta * (double)n / tot;
        double m_a = p->rms_var[i] * p->rms_count, m_b = var * (double)n;
        double M2 = m_a + m_b + delta * delta * p->rms_count * (double)n / tot;
        p->rms_mean[i] = nm;
        p->rms_var[i] = M2 / tot;
    }
    p->rms_count += (double)n;
    rly_policy_refresh_norm(p);
}

relay_err relay_policy_act(relay_policy *p, const float *obs, uint32_t n, const uint8_t *mask,
                           bool deterministic, void *actions, float *env_actions, float *logp,
                           float *values)
{
    if (!p || !obs || !actions) {
        rly_error("learn", "policy_act: NULL argument");
        return RELAY_EINVAL;
    }
    if (n == 0 || n > p->max_batch) {
        rly_error("learn", "policy_act: batch %u out of range 1..%u", n, p->max_batch);
        return RELAY_ETOOBIG;
    }
    uint32_t k = p->n_out;
    if (mask && p->spec.discrete) {
        for (uint32_t b = 0; b < n; b++) {
            uint32_t allowed = 0;
            for (uint32_t i = 0; i < k; i++)
                allowed += mask[(size_t)b * k + i] != 0;
            if (!allowed) {
                rly_error("learn", "policy_act: mask row %u forbids every action", b);
                return RELAY_EINVAL;
            }
        }
    }
    const float *x = rly_policy_normalize(p, obs, n, p->xbuf);
    const float *out, *v;
    rly_policy_forward(p, x, n, &out, values ? &v : NULL);
    if (p->spec.discrete) {
        int32_t *act = actions;
        for (uint32_t b = 0; b < n; b++) {
            const uint8_t *mrow = mask ? mask + (size_t)b * k : NULL;
            rly_cat_logprobs(out + (size_t)b * k, mrow, k, p->lpbuf);
            uint32_t a = deterministic
                             ? rly_cat_argmax(p->lpbuf, mrow, k)
                             : rly_cat_sample(p->lpbuf, mrow, k, rly_rng_uniform(&p->rng));
            act[b] = (int32_t)a;
            if (logp)
                logp[b] = p->lpbuf[a];
        }
    } else {
        float *act = actions;
        const float *ls = p->params + p->log_std_off;
        for (uint32_t b = 0; b < n; b++) {
            float *a = act + (size_t)b * k;
            const float *mu = out + (size_t)b * k;
            for (uint32_t i = 0; i < k; i++)
                a[i] = deterministic ? mu[i] : mu[i] + expf(ls[i]) * (float)rly_rng_normal(&p->rng);
            if (logp)
                logp[b] = rly_gauss_logp(a, mu, ls, k);
            if (env_actions)
                for (uint32_t i = 0; i < k; i++) {
                    float lo = p->spec.act_low[i], hi = p->spec.act_high[i], c = a[i];
                    env_actions[(size_t)b * k + i] = c < lo ? lo : c > hi ? hi : c;
                }
        }
    }
    if (values)
        memcpy(values, v, n * sizeof(float));
    return RELAY_OK;
}

relay_err relay_policy_value(relay_policy *p, const float *obs, uint32_t n, float *values)
{
    if (!p || !obs || !values) {
        rly_error("learn", "policy_value: NULL argument");
        return RELAY_EINVAL;
    }
    if (n == 0 || n > p->max_batch) {
        rly_error("learn", "policy_value: batch %u out of range 1..%u", n, p->max_batch);
        return RELAY_ETOOBIG;
    }
    const float *v;
    rly_policy_forward(p, rly_policy_normalize(p, obs, n, p->xbuf), n, NULL, &v);
    memcpy(values, v, n * sizeof(float));
    return RELAY_OK;
}

size_t relay_policy_num_params(const relay_policy *p)
{
    return p ? p->n_params : 0;
}

static uint32_t mlp_info(const rly_mlp *m, const char *prefix, size_t base, relay_param_info *info,
                         uint32_t cap, uint32_t k)
{
    for (uint32_t l = 0; l < m->n_layers; l++) {
        if (k < cap) {
            relay_param_info *w = &info[k];
            snprintf(w->name, sizeof w->name, "%s.%u.weight", prefix, l);
            w->offset = base + m->w_off[l];
            w->rows = m->sizes[l];
            w->cols = m->sizes[l + 1];
        }
        k++;
        if (k < cap) {
            relay_param_info *b = &info[k];
            snprintf(b->name, sizeof b->name, "%s.%u.bias", prefix, l);
            b->offset = base + m->b_off[l];
            b->rows = 1;
            b->cols = m->sizes[l + 1];
        }
        k++;
    }
    return k;
}

uint32_t relay_policy_param_info(const relay_policy *p, relay_param_info *info, uint32_t cap)
{
    uint32_t k = 0;
    if (!p)
        return 0;
    if (!info)
        cap = 0;
    if (p->spec.shared)
        k = mlp_info(&p->trunk, "trunk", p->trunk_off, info, cap, k);
    k = mlp_info(&p->pi, "pi", p->pi_off, info, cap, k);
    k = mlp_info(&p->vf, "vf", p->vf_off, info, cap, k);
    if (!p->spec.discrete) {
        if (k < cap) {
            snprintf(info[k].name, sizeof info[k].name, "log_std");
            info[k].offset = p->log_std_off;
            info[k].rows = 1;
            info[k].cols = p->spec.act_dim;
        }
        k++;
    }
    return k;
}

relay_err relay_policy_get_params(const relay_policy *p, float *out, size_t n)
{
    if (!p || !out || n != p->n_params) {
        rly_error("learn", "policy_get_params: need %zu floats, got %zu", p ? p->n_params : 0, n);
        return p && out ? RELAY_ESHAPE : RELAY_EINVAL;
    }
    memcpy(out, p->params, n * sizeof(float));
    return RELAY_OK;
}

relay_err relay_policy_set_params(relay_policy *p, const float *in, size_t n)
{
    if (!p || !in || n != p->n_params) {
        rly_error("learn", "policy_set_params: need %zu floats, got %zu", p ? p->n_params : 0, n);
        return p && in ? RELAY_ESHAPE : RELAY_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(in[i])) {
            rly_error("learn", "policy_set_params: parameter %zu is not finite", i);
            return RELAY_EINVAL;
        }
    memcpy(p->params, in, n * sizeof(float));
    return RELAY_OK;
}

void relay_policy_get_obs_norm(const relay_policy *p, float *mean, float *var)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->spec.obs_dim; i++) {
        if (mean)
            mean[i] = (float)p->rms_mean[i];
        if (var)
            var[i] = (float)p->rms_var[i];
    }
}

void relay_policy_set_obs_norm(relay_policy *p, const float *mean, const float *var, double count)
{
    if (!p)
        return;
    for (uint32_t i = 0; i < p->spec.obs_dim; i++) {
        p->rms_mean[i] = mean ? mean[i] : 0.0;
        p->rms_var[i] = var && var[i] >= 0 ? var[i] : 1.0;
    }
    p->rms_count = count > 0 ? count : 1e-4;
    rly_policy_refresh_norm(p);
}

relay_err relay_policy_copy_weights(relay_policy *dst, const relay_policy *src)
{
    if (!dst || !src || dst->n_params != src->n_params || dst->spec.obs_dim != src->spec.obs_dim) {
        rly_error("learn", "policy_copy_weights: policies of different shapes");
        return dst && src ? RELAY_ESHAPE : RELAY_EINVAL;
    }
    memcpy(dst->params, src->params, src->n_params * sizeof(float));
    memcpy(dst->rms_mean, src->rms_mean, src->spec.obs_dim * sizeof(double));
    memcpy(dst->rms_var, src->rms_var, src->spec.obs_dim * sizeof(double));
    dst->rms_count = src->rms_count;
    rly_policy_refresh_norm(dst);
    return RELAY_OK;
}
