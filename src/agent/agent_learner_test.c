/* relay_agent_attach_learner and relay_agent_end_episodes: critics, truncation, checkpoints. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "actor/actor.h"
#include "relay/learner.h"
#include "relay/relay.h"

static relay_agent *shared_agent(void)
{
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.shared_model = true;
    relay_agent *a = NULL;
    assert_ok(relay_agent_new(&cfg, &a));
    assert_ok(relay_agent_start(a));
    return a;
}

static float aux(const relay_traj *t, uint32_t row, int col)
{
    return t->aux[(size_t)row * t->spec.n_aux + (size_t)col];
}

static void endings_carry_truncation_and_bootstrap(void **state)
{
    (void)state;
    relay_agent *a = shared_agent();
    relay_learner_options o = {.env = "CartPole-v1", .n_actors = 2, .seed = 4};
    relay_id ids[2];
    relay_learner *l = NULL;
    assert_ok(relay_agent_attach_learner(a, &o, ids, &l));
    assert_int_equal(relay_learner_n_steps(l), 32);
    float obs[8] = {0.01f, 0.2f, -0.03f, 0.1f, -0.02f, 0.1f, 0.04f, -0.3f}, act[2];
    float fin[8] = {0.5f, 1.0f, -0.2f, 0.7f, 0, 0, 0, 0};
    assert_ok(relay_agent_request_action(a, ids, 2, obs, NULL, NULL, act, NULL));
    bool trunc[2] = {true, false};
    float rew[2] = {1.0f, 2.0f};
    assert_ok(relay_agent_end_episodes(a, ids, 2, rew, trunc, fin));
    /* nothing left to close */
    assert_err(relay_agent_end_episodes(a, ids, 1, NULL, NULL, NULL), RELAY_ESTATE);
    /* a second step of actor 0 from the final observation records V(final obs) as its value */
    assert_ok(relay_agent_request_action(a, ids, 1, fin, NULL, NULL, act, NULL));
    assert_ok(relay_agent_end_episodes(a, ids, 1, NULL, NULL, NULL));
    assert_ok(relay_agent_flush(a));
    relay_traj *t[8];
    size_t n = 0;
    assert_ok(relay_agent_drain_trajectories(a, t, 8, &n));
    assert_int_equal(n, 3);
    const relay_traj *t0 = NULL, *t1 = NULL, *t0b = NULL;
    for (size_t i = 0; i < n; i++) {
        if (relay_id_eq(t[i]->actor, ids[1]))
            t1 = t[i];
        else if (t[i]->episode == 0)
            t0 = t[i];
        else
            t0b = t[i];
    }
    assert_non_null(t0);
    assert_non_null(t1);
    assert_non_null(t0b);
    /* actor 0: truncated (time limit), not terminated, not a cut, bootstrapped with V(fin) */
    assert_int_equal(t0->len, 1);
    assert_int_equal(t0->truncated[0], 1);
    assert_int_equal(t0->terminated[0], 0);
    assert_float_equal(aux(t0, 0, RLY_AUX_CUT), 0.0f, 0);
    assert_float_equal(t0->reward[0], 1.0f, 0);
    assert_true(aux(t0, 0, RLY_AUX_VALUE) != 0.0f); /* the actor has a critic */
    assert_float_equal(aux(t0, 0, RLY_AUX_BOOTSTRAP), aux(t0b, 0, RLY_AUX_VALUE), 1e-6);
    assert_int_equal(t0b->terminated[0], 1);
    /* actor 1: terminated */
    assert_int_equal(t1->terminated[0], 1);
    assert_int_equal(t1->truncated[0], 0);
    assert_float_equal(t1->reward[0], 2.0f, 0);
    for (size_t i = 0; i < n; i++)
        relay_traj_free(t[i]);

    /* the learner saw the 3 episodes; checkpoint and policy files are written */
    relay_learner_stats st;
    for (int i = 0; i < 1000; i++) {
        relay_learner_get_stats(l, &st);
        if (st.steps_received == 3)
            break;
        usleep(1000);
    }
    assert_int_equal(st.steps_received, 3);
    char path[128];
    snprintf(path, sizeof path, "/tmp/relay-attach-%ld.ckpt", (long)getpid());
    assert_ok(relay_learner_save_checkpoint(l, path));
    assert_int_equal(access(path, R_OK), 0);
    unlink(path);
    snprintf(path, sizeof path, "/tmp/relay-attach-%ld.onnx", (long)getpid());
    assert_ok(relay_learner_export_onnx(l, path));
    relay_bundle *b = NULL;
    assert_ok(relay_bundle_load(path, &b));
    relay_bundle_free(b);
    unlink(path);
    /* a second learner is refused */
    relay_id more[1];
    relay_learner *l2 = NULL;
    o.n_actors = 1;
    assert_err(relay_agent_attach_learner(a, &o, more, &l2), RELAY_ECONFIG);
    relay_agent_free(a); /* frees the learner too */
}

static void attach_is_validated(void **state)
{
    (void)state;
    relay_config cfg;
    relay_config_default(&cfg);
    relay_agent *a = NULL;
    assert_ok(relay_agent_new(&cfg, &a));
    assert_ok(relay_agent_start(a));
    relay_id ids[1];
    relay_learner *l = NULL;
    relay_learner_options o = {.env = "CartPole-v1"};
    assert_err(relay_agent_attach_learner(a, &o, ids, &l), RELAY_ECONFIG); /* not shared */
    relay_agent_free(a);
    a = shared_agent();
    o.env = "NoSuchEnv-v0";
    assert_err(relay_agent_attach_learner(a, &o, ids, &l), RELAY_ECONFIG);
    o.env = NULL;
    assert_err(relay_agent_attach_learner(a, &o, ids, &l), RELAY_ECONFIG); /* no spaces */
    o.resume_path = "/nonexistent/ckpt";
    o.env = "CartPole-v1";
    assert_err(relay_agent_attach_learner(a, &o, ids, &l), RELAY_ENOTFOUND);
    assert_int_equal(relay_agent_actor_ids(a, NULL, 0), 0); /* its actors were removed */
    /* the user's own spaces with a custom network */
    relay_space os = {.dim = 3}, as = {.dim = 1, .low = {-2}, .high = {2}};
    relay_ppo_config ppo;
    relay_ppo_config_default(&ppo);
    ppo.n_steps = 16;
    ppo.policy.n_hidden = 1;
    ppo.policy.hidden[0] = 8;
    relay_learner_options u = {.obs_space = &os, .act_space = &as, .ppo = &ppo};
    assert_ok(relay_agent_attach_learner(a, &u, ids, &l));
    assert_int_equal(relay_learner_n_steps(l), 16);
    float obs[3] = {0.1f, 0.2f, 0.3f}, act[1];
    assert_ok(relay_agent_request_action(a, ids, 1, obs, NULL, NULL, act, NULL));
    assert_true(act[0] >= -2 && act[0] <= 2);
    relay_agent_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(endings_carry_truncation_and_bootstrap),
        cmocka_unit_test(attach_is_validated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
