/*
 * Regression test (issue 15, item 5): a PPO update can be cancelled between minibatches, so a stop
 * request or `relay train --max-seconds` is honoured within one minibatch (a 16384-stream update
 * used to hold a 3 s limit for over 100 s while rly_learner_stop waited for it).
 */
#include <stdatomic.h>
#include <string.h>

#include "learn/learn_internal.h"
#include "test_util.h"

static void fill(relay_rollout *r, uint32_t n_envs, uint32_t n_steps)
{
    float obs[4] = {0.1f, -0.2f, 0.3f, 0.0f};
    for (uint32_t t = 0; t < n_steps; t++)
        for (uint32_t e = 0; e < n_envs; e++) {
            int32_t a = (int32_t)((t + e) % 2);
            assert_ok(relay_rollout_add_env(r, e, obs, &a, NULL, -0.69f, 0.5f, 1.0f, t % 7 == 6,
                                            false, 0.0f));
        }
    float last[8] = {0};
    assert_ok(relay_rollout_finish(r, last, 0.99f, 0.95f));
}

static void test_update_cancels_between_minibatches(void **state)
{
    (void)state;
    relay_ppo_config c;
    relay_ppo_config_default(&c);
    c.n_envs = 8;
    c.n_steps = 32;
    c.batch_size = 16;
    c.n_epochs = 10;
    c.total_timesteps = 1000000;
    c.policy = (relay_policy_spec){.obs_dim = 4, .discrete = true, .n_actions = 2, .act_dim = 1};
    relay_ppo *p = NULL;
    assert_ok(relay_ppo_new(&c, &p));
    relay_rollout *r = NULL;
    assert_ok(relay_rollout_new(&c.policy, c.n_envs, c.n_steps, &r));
    fill(r, c.n_envs, c.n_steps);

    _Atomic bool cancel = true;
    p->cancel = &cancel;
    size_t np = relay_policy_num_params(relay_ppo_policy(p));
    float *before = malloc(np * sizeof(float)), *after = malloc(np * sizeof(float));
    assert_ok(relay_policy_get_params(relay_ppo_policy(p), before, np));
    assert_err(relay_ppo_update(p, r, NULL), RELAY_ECANCELED);
    assert_ok(relay_policy_get_params(relay_ppo_policy(p), after, np));
    assert_memory_equal(before, after, np * sizeof(float)); /* cancelled before any step */
    assert_int_equal(p->updates, 0);

    atomic_store(&cancel, false);
    relay_ppo_metrics m;
    assert_ok(relay_ppo_update(p, r, &m));
    assert_int_equal(p->updates, 1);
    assert_ok(relay_policy_get_params(relay_ppo_policy(p), after, np));
    assert_true(memcmp(before, after, np * sizeof(float)) != 0);
    free(before);
    free(after);
    relay_rollout_free(r);
    relay_ppo_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update_cancels_between_minibatches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
