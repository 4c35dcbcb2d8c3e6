/* Tests for errors, ids, id tables and logging. */
#include "test_util.h"

#include <string.h>

#include "core/idmap.h"
#include "core/log.h"
#include "relay/id.h"

static void strerror_covers_every_code(void **state)
{
    for (int e = 0; e < RELAY_ERR_COUNT_; e++) {
        assert_non_null(relay_strerror((relay_err)e));
        assert_string_not_equal(relay_strerror((relay_err)e), "unknown error");
    }
    assert_string_equal(relay_strerror(RELAY_OK), "success");
    assert_string_equal(relay_errname(RELAY_ETIMEDOUT), "RELAY_ETIMEDOUT");
    assert_string_equal(relay_strerror((relay_err)9999), "unknown error");
}

static void id_roundtrip_and_version(void **state)
{
    relay_id a = relay_id_new(), b = relay_id_new();
    assert_false(relay_id_eq(a, b));
    assert_int_equal(a.bytes[6] >> 4, 4);
    assert_int_equal(a.bytes[8] >> 6, 2);
    char text[RELAY_ID_STRLEN + 1];
    relay_id_format(a, text);
    assert_int_equal(strlen(text), 36);
    assert_int_equal(text[8], '-');
    assert_int_equal(text[14], '4');
    relay_id c;
    assert_ok(relay_id_parse(text, &c));
    assert_true(relay_id_eq(a, c));
    assert_err(relay_id_parse("not-a-uuid", &c), RELAY_EFORMAT);
    assert_err(relay_id_parse("0123456789abcdef0123456789abcdef0123", &c), RELAY_EFORMAT);
    assert_ok(relay_id_parse("6F9619FF-8B86-D011-B42D-00C04FC964FF", &c));
    assert_true(relay_id_eq(relay_id_from_seed(1, 2), relay_id_from_seed(1, 2)));
    assert_false(relay_id_eq(relay_id_from_seed(1, 2), relay_id_from_seed(1, 3)));
    assert_true(relay_id_is_nil((relay_id){0}));
}

static void idmap_put_get_del(void **state)
{
    rly_idmap m;
    assert_ok(rly_idmap_init(&m, 4));
    enum { N = 5000 };
    static relay_id ids[N];
    for (uintptr_t i = 0; i < N; i++) {
        ids[i] = relay_id_from_seed(7, i);
        assert_ok(rly_idmap_put(&m, ids[i], (void *)(i + 1)));
    }
    assert_int_equal(rly_idmap_count(&m), N);
    for (uintptr_t i = 0; i < N; i += 2)
        assert_ptr_equal(rly_idmap_del(&m, ids[i]), (void *)(i + 1));
    for (uintptr_t i = 0; i < N; i++)
        assert_ptr_equal(rly_idmap_get(&m, ids[i]), i % 2 ? (void *)(i + 1) : NULL);
    assert_null(rly_idmap_del(&m, ids[0]));
    size_t pos = 0, seen = 0;
    while (rly_idmap_next(&m, &pos))
        seen++;
    assert_int_equal(seen, N / 2);
    rly_idmap_fini(&m);
}

static void cidmap_insert_only(void **state)
{
    rly_cidmap m;
    assert_ok(rly_cidmap_init(&m, 2));
    for (uintptr_t i = 0; i < 1000; i++)
        assert_ok(rly_cidmap_insert(&m, relay_id_from_seed(3, i), (void *)(i + 1)));
    assert_err(rly_cidmap_insert(&m, relay_id_from_seed(3, 5), (void *)1), RELAY_EEXIST);
    for (uintptr_t i = 0; i < 1000; i++)
        assert_ptr_equal(rly_cidmap_get(&m, relay_id_from_seed(3, i)), (void *)(i + 1));
    assert_null(rly_cidmap_get(&m, relay_id_from_seed(4, 0)));
    rly_cidmap_fini(&m);
}

static int records;
static char last[256];
static void capture(relay_log_level lvl, const char *module, const char *text, void *user)
{
    records++;
    snprintf(last, sizeof last, "%s:%s", module, text);
}

static void log_filters_by_level(void **state)
{
    relay_log_set_sink(capture, NULL);
    relay_log_set_level(RELAY_LOG_WARN);
    records = 0;
    rly_info("test", "hidden %d", 1);
    rly_warn("test", "shown %d", 2);
    assert_int_equal(records, 1);
    assert_string_equal(last, "test:shown 2");
    assert_int_equal(relay_log_level_parse("INFO"), RELAY_LOG_INFO);
    assert_int_equal(relay_log_level_parse("loud"), -1);
    relay_log_set_sink(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(strerror_covers_every_code), cmocka_unit_test(id_roundtrip_and_version),
        cmocka_unit_test(idmap_put_get_del),          cmocka_unit_test(cidmap_insert_only),
        cmocka_unit_test(log_filters_by_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
