/* Tests for GAE bootstrapping, action masks, Gaussian formulas, rollouts and configs. */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "learn/dist.h"
#include "learn/learn_internal.h"

/* Hand-worked GAE, gamma = lambda = 0.5 (see comments for each step). */
static void gae_bootstraps_truncation_not_termination(void **state)
{
    enum { T = 3, N = 2 };
    /* [t][env]: env 0 terminates at t=1; env 1 is truncated at t=0 with V(final obs) = 10. */
    const float reward[T * N] = {1, 0, 1, 2, 1, 0};
    const float value[T * N] = {1, 0.5f, 2, 1, 3, 2};
    uint8_t term[T * N] = {0, 0, 1, 0, 0, 0};
    uint8_t trunc[T * N] = {0, 1, 0, 0, 0, 0};
    const float finalv[T * N] = {0, 10, 0, 0, 0, 0};
    const float last[N] = {4, 0};
    float adv[T * N], ret[T * N];
    rly_gae(T, N, reward, value, term, trunc, finalv, last, 0.5f, 0.5f, adv, ret);
    /* env 0: t2: 1 + .5*4 - 3 = 0; t1 (terminal): 1 - 2 = -1; t0: 1 + .5*2 - 1 + .25*(-1) */
    const float want0[T] = {0.75f, -1.0f, 0.0f};
    /* env 1: t2: 0 + 0 - 2 = -2; t1: 2 + .5*2 - 1 + .25*(-2) = 1.5; t0 (truncated): .5*10 - .5 */
    const float want1[T] = {4.5f, 1.5f, -2.0f};
    for (int t = 0; t < T; t++) {
        assert_float_equal(adv[t * N], want0[t], 1e-6);
        assert_float_equal(adv[t * N + 1], want1[t], 1e-6);
        assert_float_equal(ret[t * N], want0[t] + value[t * N], 1e-6);
    }
    /* Termination instead of truncation: no bootstrap from the final observation. */
    term[1] = 1;
    trunc[1] = 0;
    rly_gae(T, N, reward, value, term, trunc, finalv, last, 0.5f, 0.5f, adv, ret);
    assert_float_equal(adv[1], -0.5f, 1e-6);

    /* The public rollout API gives the same numbers. */
    relay_policy_spec s = {.obs_dim = 1, .discrete = true, .n_actions = 2, .act_dim = 1};
    relay_rollout *r;
    assert_ok(relay_rollout_new(&s, N, T, &r));
    trunc[1] = 1;
    term[1] = 0;
    float obs = 0;
    int32_t a = 1;
    for (int t = 0; t < T; t++)
        for (int e = 0; e < N; e++)
            assert_ok(relay_rollout_add_env(r, (uint32_t)e, &obs, &a, NULL, -0.7f, value[t * N + e],
                                            reward[t * N + e], term[t * N + e], trunc[t * N + e],
                                            finalv[t * N + e]));
    assert_true(relay_rollout_full(r));
    assert_err(relay_rollout_add_env(r, 0, &obs, &a, NULL, 0, 0, 0, false, false, 0), RELAY_EFULL);
    assert_err(relay_rollout_finish(r, last, 1.5f, 0.5f), RELAY_EINVAL);
    assert_ok(relay_rollout_finish(r, last, 0.5f, 0.5f));
    const float *ra = relay_rollout_advantages(r);
    for (int t = 0; t < T; t++) {
        assert_float_equal(ra[t * N], want0[t], 1e-6);
        assert_float_equal(ra[t * N + 1], want1[t], 1e-6);
    }
    relay_rollout_clear(r);
    assert_false(relay_rollout_full(r));
    assert_err(relay_rollout_finish(r, last, 0.5f, 0.5f), RELAY_ESTATE);
    a = 5;
    assert_err(relay_rollout_add_env(r, 0, &obs, &a, NULL, 0, 0, 0, false, false, 0), RELAY_EINVAL);
    a = 1;
    const uint8_t m[2] = {1, 0};
    assert_err(relay_rollout_add_env(r, 0, &obs, &a, m, 0, 0, 0, false, false, 0), RELAY_EINVAL);
    assert_err(relay_rollout_add_env(r, 7, &obs, &a, NULL, 0, 0, 0, false, false, 0), RELAY_EINVAL);
    relay_rollout_free(r);
    relay_rollout_free(NULL);
}

static void masked_actions_are_never_sampled(void **state)
{
    const float logits[4] = {0.3f, 5.0f, -1.0f, 2.0f};
    const uint8_t mask[4] = {1, 0, 1, 0};
    float lp[4];
    assert_true(rly_cat_logprobs(logits, mask, 4, lp));
    assert_float_equal(expf(lp[1]), 0.0f, 0);
    assert_float_equal(expf(lp[3]), 0.0f, 0);
    double z = exp(0.3) + exp(-1.0);
    assert_float_equal(lp[0], 0.3 - log(z), 1e-6);
    assert_float_equal(lp[2], -1.0 - log(z), 1e-6);
    float h = rly_cat_entropy(lp, mask, 4);
    double p0 = exp(0.3) / z, p2 = exp(-1.0) / z;
    assert_float_equal(h, -(p0 * log(p0) + p2 * log(p2)), 1e-6);
    const uint8_t none[4] = {0};
    assert_false(rly_cat_logprobs(logits, none, 4, lp));

    relay_policy_spec s;
    relay_space os = {.dim = 3}, as = {.discrete = true, .n = 4, .dim = 1};
    assert_ok(relay_policy_spec_from_spaces(&s, &os, &as));
    relay_policy *p;
    assert_ok(relay_policy_new(&s, 64, 9, &p));
    /* Make the policy prefer the forbidden actions strongly: set the pi head bias. */
    relay_param_info info[16];
    uint32_t nt = relay_policy_param_info(p, info, 16);
    size_t np = relay_policy_num_params(p);
    float *w = malloc(np * sizeof(float));
    assert_ok(relay_policy_get_params(p, w, np));
    for (uint32_t i = 0; i < nt; i++)
        if (!strcmp(info[i].name, "pi.2.bias")) {
            w[info[i].offset + 1] = 8;
            w[info[i].offset + 3] = 8;
        }
    assert_ok(relay_policy_set_params(p, w, np));
    free(w);
    float obs[64 * 3];
    uint8_t masks[64 * 4];
    for (int i = 0; i < 64 * 3; i++)
        obs[i] = (float)(i % 11) * 0.1f;
    for (int i = 0; i < 64; i++)
        memcpy(masks + i * 4, mask, 4);
    int counts[4] = {0};
    int32_t acts[64];
    float logp[64];
    for (int rep = 0; rep < 50; rep++) {
        assert_ok(relay_policy_act(p, obs, 64, masks, false, acts, NULL, logp, NULL));
        for (int i = 0; i < 64; i++) {
            counts[acts[i]]++;
            assert_true(logp[i] <= 0 && logp[i] > -30);
        }
    }
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[3], 0);
    assert_true(counts[0] > 0 && counts[2] > 0);
    /* Without the mask the preferred actions dominate: the mask is what kept them out. */
    assert_ok(relay_policy_act(p, obs, 64, NULL, false, acts, NULL, logp, NULL));
    int preferred = 0;
    for (int i = 0; i < 64; i++)
        preferred += acts[i] == 1 || acts[i] == 3;
    assert_true(preferred > 56);
    masks[5 * 4 + 0] = masks[5 * 4 + 2] = 0;
    assert_err(relay_policy_act(p, obs, 64, masks, false, acts, NULL, logp, NULL), RELAY_EINVAL);
    relay_policy_free(p);
}

static void gaussian_logprob_and_entropy(void **state)
{
    const float a[2] = {0.5f, -1.0f}, mu[2] = {0.1f, 0.2f}, ls[2] = {-0.3f, 0.4f};
    double want = 0, went = 0;
    for (int i = 0; i < 2; i++) {
        double sd = exp(ls[i]);
        want += -((a[i] - mu[i]) * (a[i] - mu[i])) / (2 * sd * sd) - log(sd * sqrt(2 * M_PI));
        went += 0.5 * log(2 * M_PI * M_E * sd * sd);
    }
    assert_float_equal(rly_gauss_logp(a, mu, ls, 2), want, 1e-5);
    assert_float_equal(rly_gauss_entropy(ls, 2), went, 1e-5);

    /* Acting: samples have the configured std; env actions are clipped, logp is of the raw. */
    relay_policy_spec s;
    relay_space os = {.dim = 2}, as = {.dim = 1};
    as.low[0] = -0.2f;
    as.high[0] = 0.2f;
    assert_ok(relay_policy_spec_from_spaces(&s, &os, &as));
    s.log_std_init = logf(0.5f);
    relay_policy *p;
    assert_ok(relay_policy_new(&s, 256, 4, &p));
    float obs[512] = {0}, act[256], env[256], logp[256], mode[256];
    assert_ok(relay_policy_act(p, obs, 256, NULL, true, mode, NULL, NULL, NULL));
    double sum = 0, sq = 0;
    int clipped = 0;
    for (int rep = 0; rep < 20; rep++) {
        assert_ok(relay_policy_act(p, obs, 256, NULL, false, act, env, logp, NULL));
        for (int i = 0; i < 256; i++) {
            double d = act[i] - mode[i];
            sum += d;
            sq += d * d;
            assert_true(env[i] >= -0.2f && env[i] <= 0.2f);
            clipped += env[i] != act[i];
            assert_float_equal(logp[i], rly_gauss_logp(&act[i], &mode[i], &s.log_std_init, 1),
                               1e-5);
        }
    }
    double n = 20 * 256, mean = sum / n, sd = sqrt(sq / n - mean * mean);
    assert_true(fabs(mean) < 0.03);
    assert_true(fabs(sd - 0.5) < 0.03);
    assert_true(clipped > 2000);
    relay_policy_free(p);
}

static void configs_are_validated(void **state)
{
    relay_ppo_config c;
    assert_ok(relay_ppo_config_zoo(&c, "CartPole-v1"));
    assert_int_equal(c.n_envs, 8);
    assert_int_equal(c.n_steps, 32);
    assert_int_equal(c.batch_size, 256);
    assert_int_equal(c.n_epochs, 20);
    assert_float_equal(c.gamma, 0.98f, 0);
    assert_float_equal(c.gae_lambda, 0.8f, 0);
    assert_true(c.lr_linear && c.clip_linear);
    assert_err(relay_ppo_config_zoo(&c, "NoSuchEnv-v0"), RELAY_ENOTFOUND);
    assert_ok(relay_ppo_config_zoo(&c, "Acrobot-v1"));
    assert_true(c.policy.normalize_obs);
    relay_ppo *p;
    relay_ppo_config_default(&c);
    c.policy.obs_dim = 4;
    c.policy.discrete = true;
    c.policy.n_actions = 2;
    c.batch_size = 0;
    assert_err(relay_ppo_new(&c, &p), RELAY_ECONFIG);
    c.batch_size = 64;
    c.gamma = 1.5f;
    assert_err(relay_ppo_new(&c, &p), RELAY_ECONFIG);
    c.gamma = 0.99f;
    c.policy.n_actions = 0;
    assert_err(relay_ppo_new(&c, &p), RELAY_EINVAL);
    c.policy.n_actions = 2;
    assert_ok(relay_ppo_new(&c, &p));
    relay_rollout *r;
    relay_policy_spec other = c.policy;
    other.obs_dim = 5;
    assert_ok(relay_rollout_new(&other, 1, 4, &r));
    assert_err(relay_ppo_update(p, r, NULL), RELAY_ESHAPE);
    relay_rollout_free(r);
    relay_ppo_free(p);
    relay_ppo_free(NULL);
}

static void obs_normalisation_tracks_mean_and_var(void **state)
{
    relay_policy_spec s;
    relay_space os = {.dim = 2}, as = {.discrete = true, .n = 2, .dim = 1};
    assert_ok(relay_policy_spec_from_spaces(&s, &os, &as));
    s.normalize_obs = true;
    relay_policy *p;
    assert_ok(rly_policy_create(&s, 8, 1, false, &p));
    rly_rng rng;
    rly_rng_seed(&rng, 2);
    float obs[1000 * 2];
    for (int rep = 0; rep < 4; rep++) {
        for (int i = 0; i < 1000; i++) {
            obs[2 * i] = 5.0f + 2.0f * (float)rly_rng_normal(&rng);
            obs[2 * i + 1] = -3.0f + 0.5f * (float)rly_rng_normal(&rng);
        }
        rly_policy_update_obs_stats(p, obs, 1000);
    }
    float mean[2], var[2];
    relay_policy_get_obs_norm(p, mean, var);
    assert_float_equal(mean[0], 5.0f, 0.1f);
    assert_float_equal(mean[1], -3.0f, 0.05f);
    assert_float_equal(var[0], 4.0f, 0.3f);
    assert_float_equal(var[1], 0.25f, 0.03f);
    float x[4] = {5.0f, -3.0f, 1000.0f, -3.5f}, y[4];
    rly_policy_normalize(p, x, 2, y);
    assert_float_equal(y[0], 0.0f, 0.1f);
    assert_float_equal(y[2], 10.0f, 0); /* clipped at clip_obs */
    assert_float_equal(y[3], -1.0f, 0.15f);
    relay_policy_free(p);
}

/* fill_rewards writes one 2-stream x 3-row rollout with the given rewards and end flags. */
static void fill_rewards(relay_rollout *r, const float rew[3][2], const bool term[3][2],
                         const bool trunc[3][2])
{
    relay_rollout_clear(r);
    float obs[4] = {0.5f, -0.5f, 0.25f, 1}, logp[2] = {-0.7f, -0.7f}, val[2] = {0, 0},
          fv[2] = {0, 0};
    int32_t act[2] = {0, 1};
    for (int t = 0; t < 3; t++)
        assert_ok(relay_rollout_add(r, obs, act, NULL, logp, val, rew[t], term[t], trunc[t], fv));
}

/*
 * Reward normalisation against a hand-worked sequence (gamma 0.9, SB3 RunningMeanStd with mean 0,
 * var 1, count 1e-4; the expected values were worked out in float64 with numpy):
 *   rollout 1 rewards [1,-2] [0.5,3] [2,1]; stream 1 terminates at row 0, stream 0 is truncated
 *   at row 1 -> returns [1,-2] [0.9+0.5, 0+3] [0+2, 2.7+1]; rollout 2 rewards all 1, no ends,
 *   continuing the returns 2 and 3.7 carried over.
 */
static void reward_normalisation_hand_worked(void **state)
{
    (void)state;
    relay_ppo_config c;
    relay_ppo_config_default(&c);
    c.n_envs = 2;
    c.n_steps = 3;
    c.batch_size = 6;
    c.gamma = 0.9f;
    c.normalize_reward = true;
    relay_space os = {.discrete = false, .dim = 2}, as = {.discrete = true, .n = 2};
    assert_ok(relay_policy_spec_from_spaces(&c.policy, &os, &as));
    relay_ppo *p = NULL;
    assert_ok(relay_ppo_new(&c, &p));
    assert_float_equal(c.clip_reward, 10.0f, 0); /* SB3's default */
    relay_rollout *r = NULL;
    assert_ok(relay_rollout_new(&c.policy, 2, 3, &r));
    const float rew1[3][2] = {{1, -2}, {0.5f, 3}, {2, 1}};
    const bool term1[3][2] = {{0, 1}, {0, 0}, {0, 0}}, trunc1[3][2] = {{0, 0}, {1, 0}, {0, 0}};
    const float want1[6] = {0.666674078f, -1.33334816f, 0.27660802f,
                            1.65964818f,  1.09962249f,  0.549811244f};
    fill_rewards(r, rew1, term1, trunc1);
    assert_ok(relay_ppo_normalize_rewards(p, r));
    for (int i = 0; i < 6; i++)
        assert_float_equal(r->reward[i], want1[i], 2e-6);
    double m, v, n;
    relay_ppo_reward_stats(p, &m, &v, &n);
    assert_float_equal(m, 1.5166413893101784, 1e-6);
    assert_float_equal(v, 3.3080554252891421, 1e-6);
    assert_float_equal(n, 6.0001, 1e-12);
    assert_float_equal(p->disc_ret[0], 2.0, 1e-6);
    assert_float_equal(p->disc_ret[1], 3.7, 1e-6);
    /* a normalised rollout is not normalised twice */
    assert_ok(relay_rollout_finish(r, (const float[]){0, 0}, c.gamma, c.gae_lambda));
    assert_err(relay_ppo_normalize_rewards(p, r), RELAY_EINVAL);
    const float ones[3][2] = {{1, 1}, {1, 1}, {1, 1}};
    const bool none[3][2] = {{0, 0}, {0, 0}, {0, 0}};
    const float want2[3] = {0.541208506f, 0.528053522f, 0.512851954f};
    fill_rewards(r, ones, none, none);
    assert_ok(relay_ppo_normalize_rewards(p, r));
    for (int t = 0; t < 3; t++)
        for (int e = 0; e < 2; e++)
            assert_float_equal(r->reward[t * 2 + e], want2[t], 2e-6);
    relay_ppo_reward_stats(p, &m, &v, &n);
    assert_float_equal(m, 2.8518345680452666, 1e-6);
    assert_float_equal(v, 3.8020339957154095, 1e-6);
    relay_ppo_free(p);

    /* clipping: the same first rollout with clip_reward 1 */
    c.clip_reward = 1.0f;
    assert_ok(relay_ppo_new(&c, &p));
    fill_rewards(r, rew1, term1, trunc1);
    assert_ok(relay_ppo_normalize_rewards(p, r));
    const float want_clip[6] = {0.666674078f, -1, 0.27660802f, 1, 1, 0.549811244f};
    for (int i = 0; i < 6; i++)
        assert_float_equal(r->reward[i], want_clip[i], 2e-6);
    relay_ppo_free(p);

    /* off: rewards untouched; a negative clip is refused */
    c.normalize_reward = false;
    assert_ok(relay_ppo_new(&c, &p));
    fill_rewards(r, rew1, term1, trunc1);
    assert_ok(relay_ppo_normalize_rewards(p, r));
    for (int i = 0; i < 6; i++)
        assert_float_equal(r->reward[i], rew1[i / 2][i % 2], 0);
    relay_ppo_free(p);
    c.clip_reward = -1;
    assert_err(relay_ppo_new(&c, &p), RELAY_ECONFIG);
    relay_rollout_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gae_bootstraps_truncation_not_termination),
        cmocka_unit_test(masked_actions_are_never_sampled),
        cmocka_unit_test(gaussian_logprob_and_entropy),
        cmocka_unit_test(configs_are_validated),
        cmocka_unit_test(obs_normalisation_tracks_mean_and_var),
        cmocka_unit_test(reward_normalisation_hand_worked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
