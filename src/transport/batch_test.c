/* Trajectory batch format: round trip, and every malformed shape refused with its own error. */
#include <string.h>

#include "relay/id.h"
#include "test_util.h"
#include "transport/batch.h"

static relay_id producer(void)
{
    return relay_id_from_seed(7, 1);
}

static void make_batch(relay_codec_buf *b, uint32_t n)
{
    assert_ok(rly_batch_begin(b, producer(), 42));
    for (uint32_t i = 0; i < n; i++) {
        uint8_t env[10];
        memset(env, (int)i, sizeof env);
        assert_ok(rly_batch_add(b, env, 3 + i));
    }
}

static void round_trip(void **state)
{
    (void)state;
    relay_codec_buf b = {0};
    make_batch(&b, 5);
    assert_int_equal(rly_batch_count(&b), 5);
    rly_batch_hdr h;
    assert_ok(rly_batch_parse(b.data, b.len, 1024, &h));
    assert_true(relay_id_eq(h.producer, producer()));
    assert_int_equal(h.seq, 42);
    assert_int_equal(h.count, 5);
    size_t off = 0;
    const uint8_t *env;
    size_t len;
    for (uint32_t i = 0; i < 5; i++) {
        assert_ok(rly_batch_next(b.data, b.len, &off, &env, &len));
        assert_int_equal(len, 3 + i);
        assert_int_equal(env[0], i);
    }
    assert_err(rly_batch_next(b.data, b.len, &off, &env, &len), RELAY_EEMPTY);
    char id[64];
    rly_batch_msg_id(h.producer, h.seq, id, sizeof id);
    assert_int_equal(strlen(id), 32 + 1 + 2);
    assert_string_equal(id + 33, "42");
    relay_codec_buf_fini(&b);
}

static void malformed_refused(void **state)
{
    (void)state;
    relay_codec_buf b = {0};
    make_batch(&b, 3);
    /* truncated anywhere */
    for (size_t cut = 0; cut < b.len; cut++) {
        relay_err e = rly_batch_parse(b.data, cut, 1024, NULL);
        assert_true(e == RELAY_ETRUNCATED || e == RELAY_EFORMAT);
    }
    /* trailing byte */
    assert_ok(relay_codec_buf_reserve(&b, b.len + 1));
    b.data[b.len] = 0;
    assert_err(rly_batch_parse(b.data, b.len + 1, 1024, NULL), RELAY_EFORMAT);
    /* frame above the limit */
    assert_err(rly_batch_parse(b.data, b.len, 4, NULL), RELAY_ETOOBIG);
    /* bad magic, version, reserved, count */
    b.data[0] = 'X';
    assert_err(rly_batch_parse(b.data, b.len, 1024, NULL), RELAY_EFORMAT);
    b.data[0] = 'R';
    b.data[4] = 2;
    assert_err(rly_batch_parse(b.data, b.len, 1024, NULL), RELAY_EVERSION);
    b.data[4] = 1;
    b.data[6] = 1;
    assert_err(rly_batch_parse(b.data, b.len, 1024, NULL), RELAY_EFORMAT);
    b.data[6] = 0;
    b.data[35] = 0x7f;
    assert_err(rly_batch_parse(b.data, b.len, 1024, NULL), RELAY_ETOOBIG);
    b.data[35] = 0;
    b.data[32] = 4; /* claims one more frame than present */
    assert_err(rly_batch_parse(b.data, b.len, 1024, NULL), RELAY_ETRUNCATED);
    relay_codec_buf_fini(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(malformed_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
