/* Seeded learning smoke tests: PPO and REINFORCE must actually improve CartPole returns. */
#include "test_util.h"

#include <string.h>

#include "relay/env.h"
#include "relay/learn.h"

typedef struct watch {
    float threshold;
    float best20;
    float first20;
} watch;

static bool on_update(const relay_train_stats *s, void *user)
{
    watch *w = user;
    if (w->first20 < 0 && s->episodes >= 20)
        w->first20 = s->mean_return_20;
    if (s->episodes >= 20 && s->mean_return_20 > w->best20)
        w->best20 = s->mean_return_20;
    return !(s->episodes >= 20 && s->mean_return_20 >= w->threshold);
}

static void ppo_learns_cartpole(void **state)
{
    bool norm_reward = *state != NULL;
    const relay_env_def *def = relay_env_find("CartPole-v1");
    assert_non_null(def);
    relay_ppo_config cfg;
    assert_ok(relay_ppo_config_zoo(&cfg, "CartPole-v1"));
    cfg.seed = 3;
    cfg.normalize_reward = norm_reward; /* VecNormalize-style rewards (reported returns stay raw) */
    /* Sanitizer builds run ~10-30x slower: a smaller budget and a lower bar. */
    bool san = test_sanitized();
    cfg.total_timesteps = san ? 8000 : 40000;
    watch w = {.threshold = san ? 60.0f : 150.0f, .best20 = 0, .first20 = -1};
    relay_train_stats st;
    relay_policy *pol = NULL;
    assert_ok(relay_ppo_train(def, &cfg, on_update, &w, &st, &pol));
    assert_non_null(pol);
    print_message("ppo%s: %llu steps, %llu episodes, first avg20 %.1f, best avg20 %.1f, %.2f s\n",
                  norm_reward ? " (norm reward)" : "", (unsigned long long)st.timesteps,
                  (unsigned long long)st.episodes, w.first20, w.best20, st.seconds);
    assert_true(w.best20 >= w.threshold);
    assert_true(w.best20 > w.first20 + 15);
    /* The returned policy balances the pole greedily far longer than a random one (~22). */
    relay_vecenv *v;
    assert_ok(relay_vecenv_new(def, 1, 99, &v));
    float obs[4], rew;
    bool term = false, trunc = false;
    relay_vecenv_reset(v, obs);
    int steps = 0;
    while (!term && !trunc && steps < 500) {
        int32_t a;
        assert_ok(relay_policy_act(pol, obs, 1, NULL, true, &a, NULL, NULL, NULL));
        relay_vecenv_step(v, &a, obs, &rew, &term, &trunc, NULL);
        steps++;
    }
    assert_true(steps > (san ? 30 : 100));
    relay_vecenv_free(v);
    relay_policy_free(pol);
}

static void reinforce_improves_cartpole(void **state)
{
    const relay_env_def *def = relay_env_find("CartPole-v1");
    relay_ppo_config cfg;
    relay_ppo_config_default(&cfg);
    cfg.algo = RELAY_ALGO_REINFORCE;
    cfg.n_envs = 8;
    cfg.n_steps = 64;
    cfg.gamma = 0.99f;
    cfg.gae_lambda = 1.0f;
    cfg.learning_rate = 3e-3f;
    cfg.max_grad_norm = 1.0f;
    cfg.seed = 5;
    bool san = test_sanitized();
    cfg.total_timesteps = san ? 10000 : 60000;
    watch w = {.threshold = san ? 35.0f : 80.0f, .best20 = 0, .first20 = -1};
    relay_train_stats st;
    assert_ok(relay_ppo_train(def, &cfg, on_update, &w, &st, NULL));
    print_message("reinforce: %llu steps, first avg20 %.1f, best avg20 %.1f, %.2f s\n",
                  (unsigned long long)st.timesteps, w.first20, w.best20, st.seconds);
    assert_true(w.best20 >= w.threshold);
}

static void train_rejects_bad_input(void **state)
{
    relay_ppo_config cfg;
    relay_ppo_config_default(&cfg);
    assert_err(relay_ppo_train(NULL, &cfg, NULL, NULL, NULL, NULL), RELAY_EINVAL);
    const relay_env_def *def = relay_env_find("CartPole-v1");
    cfg.policy.obs_dim = 3; /* CartPole has 4 */
    assert_err(relay_ppo_train(def, &cfg, NULL, NULL, NULL, NULL), RELAY_ESHAPE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(ppo_learns_cartpole, NULL),
        cmocka_unit_test_prestate(ppo_learns_cartpole, (void *)"norm_reward"),
        cmocka_unit_test(reinforce_improves_cartpole),
        cmocka_unit_test(train_rejects_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
