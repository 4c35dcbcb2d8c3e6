/*
 * Loads the LineWalk-v0 example plug-in by path, steps it through relay_vecenv, and checks the
 * loader's error paths: missing file, not a library, missing symbol, wrong ABI, bad definition.
 */
#include "test_util.h"

#include <string.h>

#include "relay/env.h"
#include "relay/log.h"

static char last_log[1024];

static void capture(relay_log_level level, const char *module, const char *text, void *user)
{
    snprintf(last_log, sizeof last_log, "%s", text);
}

static void loads_and_steps_line_walk(void **unused)
{
    const relay_env_def *def = NULL, *again = NULL;
    assert_ok(relay_env_load(LINEWALK_PATH, &def));
    assert_non_null(def);
    assert_string_equal(def->name, "LineWalk-v0");
    assert_int_equal(def->max_episode_steps, 50);
    assert_ok(relay_env_resolve(LINEWALK_PATH, &again)); /* a path goes through the loader */
    assert_ptr_equal(def, again);

    relay_vecenv *v;
    assert_ok(relay_vecenv_new(def, 3, 40, &v));
    float obs[3], fin[3], rew[3];
    bool term[3], trunc[3];
    relay_vecenv_reset(v, obs);
    int32_t pos[3];
    for (int i = 0; i < 3; i++) {
        pos[i] = (int32_t)(obs[i] * 5.0f + (obs[i] < 0 ? -0.5f : 0.5f));
        assert_true(pos[i] >= -2 && pos[i] <= 2);
        assert_float_equal(obs[i], pos[i] / 5.0, 1e-7);
    }
    /* Env 0 walks right, env 1 left, env 2 alternates (never ends: truncated at 50). */
    for (int t = 1; t <= 50; t++) {
        int32_t a[3] = {1, 0, t % 2};
        relay_vecenv_step(v, a, obs, rew, term, trunc, fin);
        for (int i = 0; i < 2; i++) {
            pos[i] += i == 0 ? 1 : -1;
            bool end = pos[i] == (i == 0 ? 5 : -5);
            assert_int_equal(term[i], end);
            assert_float_equal(rew[i], end ? (i == 0 ? 1.0 : -1.0) : -0.01, 1e-7);
            if (end) {
                assert_float_equal(fin[i], i == 0 ? 1.0 : -1.0, 0.0); /* terminal observation */
                pos[i] = (int32_t)(obs[i] * 5.0f + (obs[i] < 0 ? -0.5f : 0.5f));
                assert_true(pos[i] >= -2 && pos[i] <= 2); /* next episode's first cell */
            } else {
                assert_float_equal(obs[i], pos[i] / 5.0, 1e-7);
            }
        }
        assert_false(term[2]);
        assert_int_equal(trunc[2], t == 50);
        assert_false(trunc[0] || trunc[1]);
    }
    relay_vecenv_free(v);
}

/* Loads path, expects err, and checks the logged message names the path and the problem. */
static void expect_load_error(const char *path, relay_err want, const char *problem)
{
    const relay_env_def *def = (const relay_env_def *)&def;
    last_log[0] = '\0';
    assert_err(relay_env_load(path, &def), want);
    assert_null(def);
    if (strstr(last_log, path) == NULL || strstr(last_log, problem) == NULL)
        fail_msg("log '%s' should name '%s' and '%s'", last_log, path, problem);
}

static void load_errors_are_clear(void **unused)
{
    relay_log_set_sink(capture, NULL);
    expect_load_error("/nonexistent/dir/missing_env.so", RELAY_EDLOPEN, "No such file");
    expect_load_error(NOT_A_LIBRARY_PATH, RELAY_EDLOPEN, "cannot load");
    expect_load_error(NO_SYMBOL_PATH, RELAY_EDLOPEN, "does not export relay_env_plugin");
    expect_load_error(BAD_ABI_PATH, RELAY_EVERSION, "ABI version 42");
    expect_load_error(BAD_DEF_PATH, RELAY_EINVAL, "step function");
    const relay_env_def *def;
    assert_err(relay_env_resolve(BAD_ABI_PATH, &def), RELAY_EVERSION);
    relay_log_set_sink(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(loads_and_steps_line_walk),
        cmocka_unit_test(load_errors_are_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
