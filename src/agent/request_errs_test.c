/*
 * Regression tests (issue 15, item 7): request_action with an unknown id fills errs[] per actor
 * and still serves the valid ids; the unknown-actor log line is rate-limited.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "relay/relay.h"
#include "test_models.h"
#include "test_util.h"

static _Atomic int unknown_lines;

static void count_lines(relay_log_level level, const char *module, const char *text, void *user)
{
    (void)level;
    (void)module;
    (void)user;
    if (strstr(text, "unknown actor"))
        atomic_fetch_add(&unknown_lines, 1);
}

static relay_bundle *cartpole_bundle(void)
{
    const float b[2] = {0, 30.0f}; /* always action 1 */
    relay_bundle *bd = NULL;
    assert_ok(test_bias_bundle(4, 2, 2, b, &bd));
    return bd;
}

static void test_unknown_id_fills_errs_and_serves_others(void **state)
{
    (void)state;
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.routers = 2;
    snprintf(cfg.env, sizeof cfg.env, "CartPole-v1");
    relay_agent *a = NULL;
    assert_ok(relay_agent_new(&cfg, &a));
    assert_ok(relay_agent_start(a));
    relay_id ids[4];
    assert_ok(relay_agent_new_actors(a, 3, NULL, ids));
    relay_bundle *b = cartpole_bundle();
    assert_ok(relay_agent_update_model(a, b, NULL, 0));
    relay_log_set_sink(count_lines, NULL);
    /* ids: valid, unknown, valid, valid (the unknown one in the middle). */
    relay_id req[4] = {ids[0], relay_id_new(), ids[1], ids[2]};
    float obs[16] = {0}, actions[4] = {-1, -1, -1, -1};
    relay_err errs[4];
    assert_err(relay_agent_request_action(a, req, 4, obs, NULL, NULL, actions, errs),
               RELAY_ENOTFOUND);
    assert_ok(errs[0]);
    assert_err(errs[1], RELAY_ENOTFOUND);
    assert_ok(errs[2]);
    assert_ok(errs[3]);
    assert_float_equal(actions[0], 1.0f, 0);
    assert_float_equal(actions[1], -1.0f, 0); /* untouched */
    assert_float_equal(actions[2], 1.0f, 0);
    assert_float_equal(actions[3], 1.0f, 0);

    /* Only unknown ids: nothing sent, every errs[] entry says so. */
    relay_id ghosts[2] = {relay_id_new(), relay_id_new()};
    assert_err(relay_agent_request_action(a, ghosts, 2, obs, NULL, NULL, actions, errs),
               RELAY_ENOTFOUND);
    assert_err(errs[0], RELAY_ENOTFOUND);
    assert_err(errs[1], RELAY_ENOTFOUND);

    /* Thousands of unknown-id requests log a handful of lines, not one each. */
    atomic_store(&unknown_lines, 0);
    for (int i = 0; i < 5000; i++)
        assert_err(relay_agent_request_action(a, ghosts, 1, obs, NULL, NULL, actions, NULL),
                   RELAY_ENOTFOUND);
    assert_true(atomic_load(&unknown_lines) <= 3);
    relay_log_set_sink(NULL, NULL);
    relay_bundle_free(b);
    relay_agent_free(a);
}

/* With actors of different widths an unknown id's row cannot be located: nothing is sent. */
static void test_unknown_id_with_mixed_widths(void **state)
{
    (void)state;
    relay_config cfg;
    relay_config_default(&cfg);
    relay_agent *a = NULL;
    assert_ok(relay_agent_new(&cfg, &a));
    assert_ok(relay_agent_start(a));
    relay_id cp, ac;
    relay_actor_options o1 = {.env = "CartPole-v1"}, o2 = {.env = "Acrobot-v1"};
    assert_ok(relay_agent_new_actor(a, &o1, &cp));
    assert_ok(relay_agent_new_actor(a, &o2, &ac));
    relay_id req[3] = {cp, relay_id_new(), ac};
    float obs[16] = {0}, actions[3];
    relay_err errs[3];
    relay_log_set_level(RELAY_LOG_OFF);
    assert_err(relay_agent_request_action(a, req, 3, obs, NULL, NULL, actions, errs),
               RELAY_ENOTFOUND);
    assert_err(errs[0], RELAY_ECANCELED);
    assert_err(errs[1], RELAY_ENOTFOUND);
    assert_err(errs[2], RELAY_ECANCELED);
    relay_agent_free(a);
}

/* relay_config_* with NULL arguments return RELAY_EINVAL instead of crashing. */
static void test_config_null(void **state)
{
    (void)state;
    relay_config cfg;
    relay_config_default(NULL);
    assert_err(relay_config_parse_json(NULL, "{}"), RELAY_EINVAL);
    relay_config_default(&cfg);
    assert_err(relay_config_parse_json(&cfg, NULL), RELAY_EINVAL);
    assert_err(relay_config_load_json(NULL, "x"), RELAY_EINVAL);
    assert_err(relay_config_to_json(NULL, NULL), RELAY_EINVAL);
    relay_agent_get_stats(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_id_fills_errs_and_serves_others),
        cmocka_unit_test(test_unknown_id_with_mixed_widths),
        cmocka_unit_test(test_config_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
