/* Tests for the configuration: defaults, JSON loading, key-naming errors, the effective config. */
#include <stdio.h>
#include <string.h>

#include "agent/config.h"
#include "test_util.h"

static char last_log[512];
static int warnings;
static void capture(relay_log_level lvl, const char *module, const char *text, void *user)
{
    if (lvl == RELAY_LOG_WARN)
        warnings++;
    snprintf(last_log, sizeof last_log, "%s", text);
}

static void defaults_are_documented_values(void **state)
{
    relay_config c;
    relay_config_default(&c);
    assert_int_equal(c.routers, 1);
    assert_int_equal(c.max_traj_length, 1000);
    assert_int_equal(c.tick_ms, 50);
    assert_int_equal(c.retry_initial_ms, 100);
    assert_int_equal(c.retry_max_ms, 800);
    assert_int_equal(c.ttl_ms[0], 10000);
    assert_int_equal(c.ttl_ms[5], 60000);
    assert_true(c.sink_memory);
    assert_false(c.sink_arrow);
    assert_string_equal(c.log_level, "warn");
    assert_int_equal(c.send_timeout_ms, 5000);
}

static void loads_nested_keys_and_warns_on_unknown(void **state)
{
    relay_log_set_sink(capture, NULL);
    warnings = 0;
    relay_config c;
    relay_config_default(&c);
    assert_ok(relay_config_parse_json(
        &c, "{\"routers\": 4, \"model_mode\": \"shared\", \"dispatcher\": {\"tick_ms\": 20, "
            "\"ttl_ms\": {\"RequestInference\": 500}}, \"sinks\": {\"arrow\": {\"enabled\": "
            "true}, \"dir\": \"/tmp/x\"}, \"trajectory\": {\"backpressure\": \"drop_oldest\"}, "
            "\"colour\": \"blue\"}"));
    assert_int_equal(c.routers, 4);
    assert_true(c.shared_model);
    assert_int_equal(c.tick_ms, 20);
    assert_int_equal(c.ttl_ms[0], 500);
    assert_true(c.sink_arrow);
    assert_true(c.drop_oldest);
    assert_string_equal(c.sink_dir, "/tmp/x");
    assert_int_equal(warnings, 1);
    assert_ok(relay_config_parse_json(
        &c,
        "{\"dispatcher\": {\"send_timeout_ms\": 250, \"ttl_ms\": {\"FlagLastInference\": 700}}}"));
    assert_int_equal(c.send_timeout_ms, 250);
    assert_int_equal(c.ttl_ms[2], 700);
    assert_non_null(strstr(last_log, "colour"));
    relay_log_set_sink(NULL, NULL);
}

static void invalid_values_fail_naming_the_key(void **state)
{
    relay_log_set_sink(capture, NULL);
    relay_config c;
    relay_config_default(&c);
    assert_err(relay_config_parse_json(&c, "{\"routers\": 0}"), RELAY_ECONFIG);
    assert_non_null(strstr(last_log, "routers"));
    assert_err(relay_config_parse_json(&c, "{\"routers\": \"two\"}"), RELAY_ECONFIG);
    assert_err(relay_config_parse_json(&c, "{\"dispatcher\": {\"tick_ms\": -5}}"), RELAY_ECONFIG);
    assert_non_null(strstr(last_log, "dispatcher.tick_ms"));
    assert_err(relay_config_parse_json(&c, "{\"model_mode\": \"both\"}"), RELAY_ECONFIG);
    assert_non_null(strstr(last_log, "model_mode"));
    assert_err(relay_config_parse_json(&c, "{\"log_level\": \"loud\"}"), RELAY_ECONFIG);
    assert_err(relay_config_parse_json(&c, "{\"routers\": 1.5}"), RELAY_ECONFIG);
    /* Absurd sizes are refused naming the limit. */
    assert_err(relay_config_parse_json(&c, "{\"routers\": 100000}"), RELAY_ECONFIG);
    assert_non_null(strstr(last_log, "4096"));
    assert_err(relay_config_parse_json(&c, "{\"routers\": 2"), RELAY_EFORMAT);
    assert_err(relay_config_parse_json(&c, "[1,2]"), RELAY_ECONFIG);
    assert_err(relay_config_parse_json(
                   &c, "{\"dispatcher\": {\"retry_initial_ms\": 900, \"retry_max_ms\": 800}}"),
               RELAY_ECONFIG);
    /* A rejected file changes nothing. */
    assert_int_equal(c.routers, 1);
    assert_int_equal(c.retry_initial_ms, 100);
    assert_err(relay_config_load_json(&c, "/nonexistent/relay.json"), RELAY_EIO);
    relay_log_set_sink(NULL, NULL);
}

static void effective_config_round_trips(void **state)
{
    relay_config c, d;
    relay_config_default(&c);
    c.routers = 3;
    c.seed = 77;
    c.shared_model = true;
    snprintf(c.env, sizeof c.env, "CartPole-v1");
    char *json = NULL;
    assert_ok(relay_config_to_json(&c, &json));
    assert_non_null(strstr(json, "\"ttl_ms\""));
    relay_config_default(&d);
    warnings = 0;
    relay_log_set_sink(capture, NULL);
    assert_ok(relay_config_parse_json(&d, json));
    relay_log_set_sink(NULL, NULL);
    assert_int_equal(warnings, 0); /* the writer emits only known keys */
    assert_memory_equal(&c, &d, sizeof c);
    char path[] = "/tmp/relay_cfg_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(json, f);
    fclose(f);
    relay_config_default(&d);
    assert_ok(relay_config_load_json(&d, path));
    assert_int_equal(d.routers, 3);
    remove(path);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_documented_values),
        cmocka_unit_test(loads_nested_keys_and_warns_on_unknown),
        cmocka_unit_test(invalid_values_fail_naming_the_key),
        cmocka_unit_test(effective_config_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
