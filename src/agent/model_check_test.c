/*
 * Regression tests (issue 15, item 1): every path that installs a model on actors checks it
 * against the actors' spaces. Before the fix, a 4 -> 3 model pushed with update_model to 32
 * CartPole actors on a shared model returned RELAY_OK, and run_env then read past the model's
 * output buffer (ASan: heap-buffer-overflow in the narrow dense kernel and categorical selection).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/agent_internal.h"
#include "relay/relay.h"
#include "test_models.h"
#include "test_util.h"

/* mlp makes an in -> out linear model. */
static relay_model *mlp(uint32_t in, uint32_t out)
{
    uint32_t sizes[2] = {in, out};
    float w[64] = {0}, b[16] = {0};
    const float *ws[1] = {w};
    const float *bs[1] = {b};
    relay_activation act[1] = {RELAY_ACT_NONE};
    relay_mlp_desc d = {
        .n_layers = 1, .sizes = sizes, .activations = act, .weights = ws, .biases = bs};
    relay_model *m = NULL;
    assert_ok(relay_model_from_mlp(&d, &m));
    return m;
}

/* bundle makes an in -> out policy bundle that declares obs [in] and n discrete actions. */
static relay_bundle *bundle(uint32_t in, uint32_t out, uint32_t n)
{
    relay_bundle *bd = NULL;
    return test_bias_bundle(in, out, n, NULL, &bd) == RELAY_OK ? bd : NULL;
}

static relay_agent *start(bool shared, uint32_t n, relay_id *ids)
{
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.routers = 2;
    cfg.shared_model = shared;
    snprintf(cfg.env, sizeof cfg.env, "CartPole-v1");
    relay_agent *a = NULL;
    assert_ok(relay_agent_new(&cfg, &a));
    assert_ok(relay_agent_start(a));
    assert_ok(relay_agent_new_actors(a, n, NULL, ids));
    return a;
}

/* The repro: 32 CartPole actors, shared model, 4 -> 3 update, then run_env on each. */
static void test_shared_update_wrong_width(void **state)
{
    (void)state;
    enum { N = 32 };
    relay_id ids[N];
    relay_agent *a = start(true, N, ids);
    relay_bundle *good = bundle(4, 2, 2);
    assert_ok(relay_agent_update_model(a, good, NULL, 0));
    /* A bundle whose metadata says 3 actions and whose model gives 3 outputs: valid as a
       bundle, wrong for CartPole (2 actions). */
    relay_bundle *three = bundle(4, 3, 3);
    assert_non_null(three);
    assert_err(relay_agent_update_model(a, three, NULL, 0), RELAY_ESHAPE);
    assert_err(relay_agent_update_model(a, three, ids, 1), RELAY_ESHAPE);
    relay_bundle *narrow_in = bundle(3, 2, 2);
    assert_err(relay_agent_update_model(a, narrow_in, NULL, 0), RELAY_ESHAPE);
    /* The refused models were not published: every actor still has the first version. */
    int64_t v[N];
    assert_ok(relay_agent_get_model_version(a, ids, N, v));
    for (int i = 0; i < N; i++)
        assert_int_equal(v[i], v[0]);
    assert_ok(relay_agent_update_model(a, good, NULL, 0));
    int64_t w[N];
    assert_ok(relay_agent_get_model_version(a, ids, N, w));
    for (int i = 0; i < N; i++)
        assert_int_equal(w[i], v[0] + 1);
    for (int i = 0; i < N; i++)
        assert_ok(relay_agent_run_env(a, ids[i], "CartPole-v1", 2, 50, true));
    for (int i = 0; i < N; i++)
        assert_ok(relay_agent_run_env(a, ids[i], NULL, 1, 20, true));
    relay_agent_stats st;
    relay_agent_get_stats(a, &st);
    assert_true(st.env_steps >= N * 20);
    relay_bundle_free(good);
    relay_bundle_free(three);
    relay_bundle_free(narrow_in);
    relay_agent_free(a);
}

static void test_independent_update_wrong_width(void **state)
{
    (void)state;
    relay_id ids[4];
    relay_agent *a = start(false, 4, ids);
    relay_bundle *three = bundle(4, 3, 3);
    assert_err(relay_agent_update_model(a, three, NULL, 0), RELAY_ESHAPE);
    assert_err(relay_agent_update_model(a, three, ids + 1, 2), RELAY_ESHAPE);
    int64_t v[4];
    assert_ok(relay_agent_get_model_version(a, ids, 4, v));
    for (int i = 0; i < 4; i++)
        assert_int_equal(v[i], -1);
    relay_bundle_free(three);
    relay_agent_free(a);
}

/* The learner's path (rly_agent_publish) and the network path (rly_agent_check_model). */
static void test_publish_and_check(void **state)
{
    (void)state;
    relay_id ids[8];
    relay_agent *a = start(true, 8, ids);
    assert_err(rly_agent_publish(a, 1, mlp(4, 3), NULL, NULL, 0), RELAY_ESHAPE);
    assert_err(rly_agent_publish(a, 1, mlp(4, 2), mlp(4, 2), NULL, 0), RELAY_ESHAPE);
    assert_err(rly_agent_publish(a, 1, mlp(5, 2), NULL, NULL, 0), RELAY_ESHAPE);
    int64_t v[8];
    assert_ok(relay_agent_get_model_version(a, ids, 8, v));
    for (int i = 0; i < 8; i++)
        assert_int_equal(v[i], -1);
    assert_ok(rly_agent_publish(a, 1, mlp(4, 2), mlp(4, 1), NULL, 0));
    relay_model *m3 = mlp(4, 3), *m2 = mlp(4, 2);
    assert_err(rly_agent_check_model(a, NULL, 0, m3, NULL, "test"), RELAY_ESHAPE);
    assert_err(rly_agent_check_model(a, ids, 1, m3, NULL, "test"), RELAY_ESHAPE);
    assert_ok(rly_agent_check_model(a, ids, 8, m2, NULL, "test"));
    assert_err(rly_agent_check_model(NULL, NULL, 0, m2, NULL, "test"), RELAY_EINVAL);
    relay_model_free(m2);
    relay_model_free(m3);
    for (int i = 0; i < 8; i++)
        assert_ok(relay_agent_run_env(a, ids[i], "CartPole-v1", 4, 30, true));
    relay_agent_free(a);
}

/* A model that bypassed every check (published straight into the shared handle) is never used
   by the actors: requests fail with RELAY_ENOMODEL instead of overflowing. */
static void test_actor_refuses_unchecked_shared_model(void **state)
{
    (void)state;
    relay_id ids[4];
    relay_agent *a = start(true, 4, ids);
    relay_model *bad = mlp(4, 3);
    assert_ok(relay_model_handle_publish(a->shared_pi, bad, 7));
    float obs[16] = {0}, actions[4];
    relay_err errs[4];
    assert_err(relay_agent_request_action(a, ids, 4, obs, NULL, NULL, actions, errs),
               RELAY_ENOMODEL);
    for (int i = 0; i < 4; i++)
        assert_err(errs[i], RELAY_ENOMODEL);
    assert_err(relay_agent_run_env(a, ids[0], "CartPole-v1", 2, 10, true), RELAY_ENOMODEL);
    /* A model that fits is taken up at the next request. */
    assert_ok(relay_model_handle_publish(a->shared_pi, mlp(4, 2), 8));
    assert_ok(relay_agent_request_action(a, ids, 4, obs, NULL, NULL, actions, errs));
    relay_agent_free(a);
}

/* model_path: refused at relay_agent_new when it does not fit the configured env; a new actor
   in shared mode must fit the published model. */
static void test_model_path_and_new_actor(void **state)
{
    (void)state;
    char dir[] = "/tmp/relay_modelcheck_XXXXXX";
    assert_non_null(mkdtemp(dir));
    relay_bundle *three = bundle(4, 3, 3);
    assert_ok(relay_bundle_save(three, dir));
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.shared_model = true;
    snprintf(cfg.env, sizeof cfg.env, "CartPole-v1");
    snprintf(cfg.model_path, sizeof cfg.model_path, "%s", dir);
    relay_agent *a = NULL;
    assert_err(relay_agent_new(&cfg, &a), RELAY_ESHAPE);
    assert_null(a);
    cfg.shared_model = false;
    assert_err(relay_agent_new(&cfg, &a), RELAY_ESHAPE);
    /* Without an env, the model defines the actors; an Acrobot actor (6 -> 3) cannot join a
       shared 4 -> 3 model. */
    cfg.env[0] = '\0';
    cfg.shared_model = true;
    assert_ok(relay_agent_new(&cfg, &a));
    assert_ok(relay_agent_start(a));
    relay_id id;
    relay_actor_options opt = {.env = "Acrobot-v1"};
    assert_err(relay_agent_new_actor(a, &opt, &id), RELAY_ESHAPE);
    rly_policy_desc cartpole;
    const relay_env_def *env = NULL;
    assert_ok(relay_env_resolve("CartPole-v1", &env));
    assert_ok(rly_policy_desc_from_env(&cartpole, env));
    assert_err(rly_agent_new_actor_desc(a, &cartpole, 1, 0, &id), RELAY_ESHAPE);
    assert_int_equal(relay_agent_actor_ids(a, NULL, 0), 0);
    relay_agent_free(a);
    relay_bundle_free(three);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A plain ONNX file (like the policy.onnx `relay train` writes) is a valid model_path for its env:
   the env gives the action space the file cannot state. */
static void test_model_path_plain_onnx(void **state)
{
    (void)state;
    char path[] = "/tmp/relay_policyonnx_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    uint32_t sizes[2] = {4, 2};
    float w[8] = {0}, b[2] = {0, 30.0f};
    const float *ws[1] = {w};
    const float *bs[1] = {b};
    relay_activation act[1] = {RELAY_ACT_NONE};
    relay_mlp_desc d = {
        .n_layers = 1, .sizes = sizes, .activations = act, .weights = ws, .biases = bs};
    uint8_t *onnx = NULL;
    size_t len = 0;
    assert_ok(relay_mlp_to_onnx(&d, &onnx, &len));
    assert_int_equal(write(fd, onnx, len), (ssize_t)len);
    close(fd);
    free(onnx);
    for (int shared = 0; shared < 2; shared++) {
        relay_config cfg;
        relay_config_default(&cfg);
        cfg.shared_model = shared;
        snprintf(cfg.env, sizeof cfg.env, "CartPole-v1");
        snprintf(cfg.model_path, sizeof cfg.model_path, "%s", path);
        relay_agent *a = NULL;
        assert_ok(relay_agent_new(&cfg, &a));
        assert_ok(relay_agent_start(a));
        relay_id id;
        assert_ok(relay_agent_new_actor(a, NULL, &id));
        float obs[4] = {0}, action = -1;
        assert_ok(relay_agent_request_action(a, &id, 1, obs, NULL, NULL, &action, NULL));
        assert_float_equal(action, 1.0f, 0);
        relay_agent_free(a);
        /* The same file for an env with other spaces is refused at relay_agent_new. */
        snprintf(cfg.env, sizeof cfg.env, "Acrobot-v1");
        assert_err(relay_agent_new(&cfg, &a), RELAY_ESHAPE);
    }
    unlink(path);
}

int main(void)
{
    relay_log_set_level(RELAY_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_update_wrong_width),
        cmocka_unit_test(test_independent_update_wrong_width),
        cmocka_unit_test(test_publish_and_check),
        cmocka_unit_test(test_actor_refuses_unchecked_shared_model),
        cmocka_unit_test(test_model_path_and_new_actor),
        cmocka_unit_test(test_model_path_plain_onnx),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
