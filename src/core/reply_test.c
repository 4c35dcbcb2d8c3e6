/* Tests for replies and latches: exactly-once completion, timeouts, no leaks without a waiter. */
#include "test_util.h"

#include <string.h>

#include "core/clock.h"
#include "core/reply.h"

static int freed;
static void count_free(void *p)
{
    freed++;
    free(p);
}

static void completes_once(void **state)
{
    rly_reply *r = rly_reply_new();
    assert_false(rly_reply_is_done(r));
    assert_ok(rly_reply_complete(r, RELAY_OK, 42, NULL, NULL));
    freed = 0;
    assert_err(rly_reply_complete(r, RELAY_EIO, 7, malloc(4), count_free), RELAY_ESTATE);
    assert_int_equal(freed, 1); /* a late value is destroyed, not leaked */
    int64_t v = 0;
    assert_ok(rly_reply_wait(r, 0, &v, NULL));
    assert_int_equal(v, 42);
    rly_reply_release(r);
}

static void error_status_is_returned(void **state)
{
    rly_reply *r = rly_reply_new();
    rly_reply_fail(r, RELAY_ETIMEDOUT);
    assert_err(rly_reply_wait(r, -1, NULL, NULL), RELAY_ETIMEDOUT);
    rly_reply_release(r);
}

static void wait_times_out(void **state)
{
    rly_reply *r = rly_reply_new();
    int64_t t0 = rly_now_ns();
    assert_err(rly_reply_wait(r, 20 * RLY_NS_PER_MS, NULL, NULL), RELAY_ETIMEDOUT);
    assert_true(rly_now_ns() - t0 >= 20 * RLY_NS_PER_MS);
    /* The waiter walks away; completing afterwards frees everything (checked by ASan/LSan). */
    rly_reply_release(r);
    freed = 0;
    assert_ok(rly_reply_complete(r, RELAY_OK, 0, malloc(16), count_free));
    assert_int_equal(freed, 1);
}

static void pointer_value_ownership_moves_to_waiter(void **state)
{
    rly_reply *r = rly_reply_new();
    char *p = strdup("action");
    assert_ok(rly_reply_complete(r, RELAY_OK, 0, p, free));
    void *got = NULL;
    assert_ok(rly_reply_wait(r, -1, NULL, &got));
    assert_ptr_equal(got, p);
    rly_reply_release(r);
    free(got);
}

static void *completer(void *arg)
{
    rly_reply **rs = arg;
    for (int i = 0; i < 64; i++) {
        rly_sleep_ns(100 * RLY_NS_PER_US);
        rly_reply_complete(rs[i], RELAY_OK, i, NULL, NULL);
    }
    return NULL;
}

static void latch_wakes_after_last(void **state)
{
    rly_latch *l = rly_latch_new(64);
    rly_reply *rs[64];
    for (int i = 0; i < 64; i++)
        rs[i] = rly_reply_new_in(l);
    rly_thread t;
    assert_ok(rly_thread_start(&t, completer, rs, "completer"));
    assert_ok(rly_latch_wait(l, 10 * RLY_NS_PER_S));
    for (int i = 0; i < 64; i++) {
        int64_t v;
        assert_ok(rly_reply_wait(rs[i], 0, &v, NULL));
        assert_int_equal(v, i);
        rly_reply_release(rs[i]);
    }
    rly_thread_join(t);
    rly_latch_release(l);
}

static void latch_times_out(void **state)
{
    rly_latch *l = rly_latch_new(1);
    assert_err(rly_latch_wait(l, RLY_NS_PER_MS), RELAY_ETIMEDOUT);
    rly_reply *r = rly_reply_new_in(l);
    rly_latch_release(l); /* the reply keeps the latch alive */
    rly_reply_fail(r, RELAY_ESHUTDOWN);
    rly_reply_release(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(completes_once),
        cmocka_unit_test(error_status_is_returned),
        cmocka_unit_test(wait_times_out),
        cmocka_unit_test(pointer_value_ownership_moves_to_waiter),
        cmocka_unit_test(latch_wakes_after_last),
        cmocka_unit_test(latch_times_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
