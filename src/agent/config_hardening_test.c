/* Regression tests (issue 15, items 4 and 7): 64-bit integers round-trip exactly through the
 * configuration JSON, trailing garbage is refused, and NULL arguments are errors. */
#include <string.h>

#include "agent/config.h"
#include "relay/relay.h"
#include "test_util.h"

static void test_seed_round_trip(void **state)
{
    (void)state;
    const uint64_t seeds[] = {0,
                              1,
                              9007199254740991ull,
                              9007199254740992ull,
                              9007199254740993ull,
                              18446744073709551615ull};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        relay_config c, back;
        relay_config_default(&c);
        c.seed = seeds[i];
        char *json = NULL;
        assert_ok(relay_config_to_json(&c, &json));
        relay_config_default(&back);
        assert_ok(relay_config_parse_json(&back, json));
        if (back.seed != seeds[i])
            fail_msg("seed %llu came back as %llu from %s", (unsigned long long)seeds[i],
                     (unsigned long long)back.seed, json);
        free(json);
    }
}

static void test_seed_forms(void **state)
{
    (void)state;
    relay_config c;
    relay_config_default(&c);
    relay_log_set_level(RELAY_LOG_OFF);
    assert_ok(relay_config_parse_json(&c, "{\"seed\": \"18446744073709551615\"}"));
    assert_true(c.seed == UINT64_MAX);
    assert_ok(relay_config_parse_json(&c, "{\"seed\": 9007199254740991}"));
    assert_true(c.seed == 9007199254740991ull);
    /* Numbers at or above 2^53 may already be rounded by JSON: refused, not silently changed. */
    assert_err(relay_config_parse_json(&c, "{\"seed\": 9007199254740993}"), RELAY_ECONFIG);
    assert_err(relay_config_parse_json(&c, "{\"seed\": 18446744073709551615}"), RELAY_ECONFIG);
    assert_true(c.seed == 9007199254740991ull); /* unchanged on error */
    assert_err(relay_config_parse_json(&c, "{\"seed\": \"18446744073709551616\"}"), RELAY_ECONFIG);
    assert_err(relay_config_parse_json(&c, "{\"seed\": \"-1\"}"), RELAY_ECONFIG);
    assert_err(relay_config_parse_json(&c, "{\"seed\": \"1e3\"}"), RELAY_ECONFIG);
    assert_err(relay_config_parse_json(&c, "{\"seed\": \"\"}"), RELAY_ECONFIG);
    assert_err(relay_config_parse_json(&c, "{\"seed\": -1}"), RELAY_ECONFIG);
    assert_err(relay_config_parse_json(&c, "{\"seed\": 1.5}"), RELAY_ECONFIG);
    /* U32 keys stay numbers only. */
    assert_err(relay_config_parse_json(&c, "{\"routers\": \"2\"}"), RELAY_ECONFIG);
}

static void test_trailing_garbage(void **state)
{
    (void)state;
    relay_config c;
    relay_config_default(&c);
    relay_log_set_level(RELAY_LOG_OFF);
    assert_ok(relay_config_parse_json(&c, "{\"routers\": 3}  \n\t"));
    assert_int_equal(c.routers, 3);
    assert_err(relay_config_parse_json(&c, "{\"routers\": 4} x"), RELAY_EFORMAT);
    assert_err(relay_config_parse_json(&c, "{\"routers\": 4}{\"routers\": 5}"), RELAY_EFORMAT);
    assert_err(relay_config_parse_json(&c, "{\"routers\": 4},"), RELAY_EFORMAT);
    assert_int_equal(c.routers, 3);
}

/* Ranges hold for a configuration filled in C, not only for JSON (absurd sizes refused). */
static void test_ranges_in_c(void **state)
{
    (void)state;
    relay_log_set_level(RELAY_LOG_OFF);
    relay_config c;
    relay_agent *a = NULL;
    relay_config_default(&c);
    c.intake_capacity = 1u << 30;
    assert_err(relay_agent_new(&c, &a), RELAY_ECONFIG);
    relay_config_default(&c);
    c.router_queue_capacity = 1;
    assert_err(relay_agent_new(&c, &a), RELAY_ECONFIG);
    relay_config_default(&c);
    c.tick_ms = 0;
    assert_err(relay_agent_new(&c, &a), RELAY_ECONFIG);
    relay_config_default(&c);
    c.arrow_batch_rows = (1u << 24) + 1;
    assert_err(relay_agent_new(&c, &a), RELAY_ECONFIG);
    assert_null(a);
    relay_config_default(&c);
    assert_ok(relay_agent_new(&c, &a));
    relay_agent_free(a);
    assert_err(relay_config_parse_json(&c, "{\"dispatcher\": {\"intake_capacity\": 4194305}}"),
               RELAY_ECONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_round_trip),
        cmocka_unit_test(test_seed_forms),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_ranges_in_c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
