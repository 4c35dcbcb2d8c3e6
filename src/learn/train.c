/* relay_ppo_train: a single-thread collect/update loop over relay_vecenv. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "learn/learn_internal.h"

#define RET_WINDOW 100

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct train_bufs {
    float *obs, *next_obs, *final_obs, *gather, *env_act, *logp, *val, *rew, *final_val, *ep_ret;
    void *act;
    bool *term, *trunc;
    uint32_t *gather_idx;
} train_bufs;

static void bufs_free(train_bufs *b)
{
    free(b->obs);
    free(b->next_obs);
    free(b->final_obs);
    free(b->gather);
    free(b->env_act);
    free(b->logp);
    free(b->val);
    free(b->rew);
    free(b->final_val);
    free(b->ep_ret);
    free(b->act);
    free(b->term);
    free(b->trunc);
    free(b->gather_idx);
}

static relay_err bufs_alloc(train_bufs *b, uint32_t n, uint32_t d, uint32_t ad, bool discrete)
{
    memset(b, 0, sizeof *b);
    b->obs = calloc((size_t)n * d, sizeof(float));
    b->next_obs = calloc((size_t)n * d, sizeof(float));
    b->final_obs = calloc((size_t)n * d, sizeof(float));
    b->gather = calloc((size_t)n * d, sizeof(float));
    b->env_act = calloc((size_t)n * ad, sizeof(float));
    b->act = discrete ? calloc(n, sizeof(int32_t)) : calloc((size_t)n * ad, sizeof(float));
    b->logp = calloc(n, sizeof(float));
    b->val = calloc(n, sizeof(float));
    b->rew = calloc(n, sizeof(float));
    b->final_val = calloc(n, sizeof(float));
    b->ep_ret = calloc(n, sizeof(float));
    b->term = calloc(n, sizeof(bool));
    b->trunc = calloc(n, sizeof(bool));
    b->gather_idx = calloc(n, sizeof(uint32_t));
    if (!b->obs || !b->next_obs || !b->final_obs || !b->gather || !b->env_act || !b->act ||
        !b->logp || !b->val || !b->rew || !b->final_val || !b->ep_ret || !b->term || !b->trunc ||
        !b->gather_idx) {
        bufs_free(b);
        return RELAY_ENOMEM;
    }
    return RELAY_OK;
}

/* Fill only the space-derived fields of s, keeping the architecture chosen by the caller. */
static relay_err spec_set_spaces(relay_policy_spec *s, const relay_space *obs,
                                 const relay_space *act)
{
    relay_policy_spec t;
    relay_err e = relay_policy_spec_from_spaces(&t, obs, act);
    if (e)
        return e;
    s->obs_dim = t.obs_dim;
    s->discrete = t.discrete;
    s->n_actions = t.n_actions;
    s->act_dim = t.act_dim;
    memcpy(s->act_low, t.act_low, sizeof s->act_low);
    memcpy(s->act_high, t.act_high, sizeof s->act_high);
    return RELAY_OK;
}

relay_err relay_ppo_train(const relay_env_def *def, const relay_ppo_config *cfg_in,
                          relay_train_cb cb, void *user, relay_train_stats *final,
                          relay_policy **policy_out)
{
    if (!def || !cfg_in || !def->spaces) {
        rly_error("learn", "ppo_train: NULL env or config");
        return RELAY_EINVAL;
    }
    if (policy_out)
        *policy_out = NULL;
    relay_ppo_config cfg = *cfg_in;
    relay_space obs_sp, act_sp;
    memset(&obs_sp, 0, sizeof obs_sp);
    memset(&act_sp, 0, sizeof act_sp);
    def->spaces(&obs_sp, &act_sp);
    relay_err e = RELAY_OK;
    if (cfg.policy.obs_dim == 0)
        e = spec_set_spaces(&cfg.policy, &obs_sp, &act_sp);
    else if (cfg.policy.obs_dim != obs_sp.dim || cfg.policy.discrete != act_sp.discrete) {
        rly_error("learn", "ppo_train: policy spec does not match env %s", def->name);
        e = RELAY_ESHAPE;
    }
    if (e)
        return e;
    relay_ppo *ppo = NULL;
    relay_rollout *ro = NULL;
    relay_vecenv *venv = NULL;
    train_bufs b = {0};
    float rets[RET_WINDOW] = {0};
    uint32_t n = cfg.n_envs, d = cfg.policy.obs_dim;
    uint32_t ad = cfg.policy.discrete ? 1 : cfg.policy.act_dim;
    bool discrete = cfg.policy.discrete;
    if ((e = relay_ppo_new(&cfg, &ppo)) ||
        (e = relay_rollout_new(&cfg.policy, n, cfg.n_steps, &ro)) ||
        (e = relay_vecenv_new(def, n, cfg.seed, &venv)) || (e = bufs_alloc(&b, n, d, ad, discrete)))
        goto out;
    relay_policy *pol = relay_ppo_policy(ppo);
    relay_train_stats st;
    memset(&st, 0, sizeof st);
    double t0 = now_s();
    relay_vecenv_reset(venv, b.obs);
    while (st.timesteps < cfg.total_timesteps) {
        relay_rollout_clear(ro);
        for (uint32_t t = 0; t < cfg.n_steps; t++) {
            if ((e = relay_policy_act(pol, b.obs, n, NULL, false, b.act, b.env_act, b.logp, b.val)))
                goto out;
            relay_vecenv_step(venv, discrete ? b.act : (void *)b.env_act, b.next_obs, b.rew, b.term,
                              b.trunc, b.final_obs);
            uint32_t ng = 0;
            for (uint32_t i = 0; i < n; i++) {
                b.final_val[i] = 0;
                if (b.trunc[i] && !b.term[i]) {
                    memcpy(b.gather + (size_t)ng * d, b.final_obs + (size_t)i * d,
                           d * sizeof(float));
                    b.gather_idx[ng++] = i;
                }
            }
            if (ng) {
                if ((e = relay_policy_value(pol, b.gather, ng, b.final_val)))
                    goto out;
                for (uint32_t j = ng; j-- > 0;) {
                    float v = b.final_val[j];
                    b.final_val[j] = 0;
                    b.final_val[b.gather_idx[j]] = v;
                }
            }
            if ((e = relay_rollout_add(ro, b.obs, b.act, NULL, b.logp, b.val, b.rew, b.term,
                                       b.trunc, b.final_val)))
                goto out;
            for (uint32_t i = 0; i < n; i++) {
                b.ep_ret[i] += b.rew[i];
                if (b.term[i] || b.trunc[i]) {
                    rets[st.episodes % RET_WINDOW] = b.ep_ret[i];
                    st.last_return = b.ep_ret[i];
                    st.episodes++;
                    b.ep_ret[i] = 0;
                }
            }
            float *tmp = b.obs;
            b.obs = b.next_obs;
            b.next_obs = tmp;
        }
        st.timesteps += (uint64_t)n * cfg.n_steps;
        if ((e = relay_policy_value(pol, b.obs, n, b.val)) ||
            (e = relay_ppo_normalize_rewards(ppo, ro)) ||
            (e = relay_rollout_finish(ro, b.val, cfg.gamma, cfg.gae_lambda)) ||
            (e = relay_ppo_update(ppo, ro, &st.update)))
            goto out;
        st.updates++;
        uint64_t have = st.episodes < RET_WINDOW ? st.episodes : RET_WINDOW;
        double s100 = 0, s20 = 0;
        for (uint64_t j = 0; j < have; j++) {
            float r = rets[(st.episodes - 1 - j) % RET_WINDOW];
            s100 += r;
            if (j < 20)
                s20 += r;
        }
        st.mean_return_100 = have ? (float)(s100 / (double)have) : 0.0f;
        st.mean_return_20 = have ? (float)(s20 / (double)(have < 20 ? have : 20)) : 0.0f;
        st.seconds = now_s() - t0;
        if (cb && !cb(&st, user))
            break;
    }
    if (final)
        *final = st;
    if (policy_out) {
        *policy_out = ppo->pol;
        ppo->pol = NULL;
    }
out:
    bufs_free(&b);
    relay_vecenv_free(venv);
    relay_rollout_free(ro);
    relay_ppo_free(ppo);
    return e;
}
