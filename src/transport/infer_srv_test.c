/*
 * rly_isrv's batch closing: a batch is complete once every client of the previous batch, and
 * every newcomer, has a request in it; unknown clients, wait_always and a client that vanished
 * keep it open (the transport then closes it at max_wait).
 */
#include <string.h>

#include "test_util.h"
#include "transport/infer_srv.h"

static void serve(void *ctx, rly_tp_infer_item *items, size_t n, uint32_t rows)
{
    (void)ctx;
    (void)rows;
    for (size_t i = 0; i < n; i++) {
        items[i].status = RELAY_OK;
        items[i].version = 1;
        for (uint32_t r = 0; r < items[i].req.rows; r++) {
            ((int32_t *)items[i].actions)[r] = 0;
            items[i].logp[r] = items[i].value[r] = 0.0f;
        }
    }
}

/* add_req adds a 2-row CartPole-shaped request from client key (0: unknown client). */
static void add_req(rly_isrv *s, uint64_t key)
{
    static uint8_t buf[4096];
    static uint64_t id;
    float obs[8] = {0};
    size_t len = 0, elen = 0;
    assert_ok(rly_iw_req_encode(buf, sizeof buf, &len, ++id, 2, 4, 2, 1, true, NULL, obs, NULL));
    assert_ok(rly_isrv_add(s, buf, len, &elen));
    if (key)
        rly_isrv_note_peer(s, key);
}

static void finish(rly_isrv *s)
{
    rly_isrv_run(s);
    rly_isrv_clear(s);
}

static void closes_when_every_client_is_in(void **state)
{
    (void)state;
    rly_isrv s;
    rly_tp_infer_opts o = {.max_batch = 64, .max_wait_ns = 100000};
    assert_ok(rly_isrv_init(&s, &o, serve, NULL));
    /* first batch: clients 1 and 2 are newcomers, each complete on its own */
    add_req(&s, 1);
    assert_true(rly_isrv_complete(&s));
    add_req(&s, 2);
    assert_true(rly_isrv_complete(&s));
    finish(&s);
    /* second batch: both are expected */
    add_req(&s, 2);
    assert_false(rly_isrv_complete(&s));
    add_req(&s, 1);
    assert_true(rly_isrv_complete(&s));
    finish(&s);
    /* client 2 vanished: the batch stays open (closed by max_wait), then 2 is no longer expected */
    add_req(&s, 1);
    assert_false(rly_isrv_complete(&s));
    finish(&s);
    add_req(&s, 1);
    assert_true(rly_isrv_complete(&s));
    /* it comes back: a newcomer again */
    add_req(&s, 2);
    assert_true(rly_isrv_complete(&s));
    finish(&s);
    /* a request from an unknown client keeps the batch open */
    add_req(&s, 1);
    add_req(&s, 2);
    add_req(&s, 0);
    assert_false(rly_isrv_complete(&s));
    finish(&s);
    rly_tp_infer_stats st;
    rly_isrv_stats(&s, &st);
    assert_int_equal(st.batches, 5);
    assert_int_equal(st.requests, 10);
    assert_int_equal(st.closed_early, 3);
    rly_isrv_fini(&s);
    /* wait_always: never complete */
    o.wait_always = true;
    assert_ok(rly_isrv_init(&s, &o, serve, NULL));
    add_req(&s, 1);
    assert_false(rly_isrv_complete(&s));
    finish(&s);
    rly_isrv_fini(&s);
}

/* many clients: the table is compacted (clients of the last two batches kept) and stays exact */
static void many_clients(void **state)
{
    (void)state;
    rly_isrv s;
    rly_tp_infer_opts o = {.max_batch = 4096, .max_wait_ns = 100000};
    assert_ok(rly_isrv_init(&s, &o, serve, NULL));
    for (uint64_t round = 0; round < 6; round++) {
        /* 1500 other clients each round (the 4096-slot table passes half full): the previous
           round's clients never come back, so only the very first batch is ever complete */
        for (uint64_t k = 1; k <= 1500; k++) {
            add_req(&s, round * 10000 + k);
            assert_true(rly_isrv_complete(&s) == (round == 0));
        }
        finish(&s);
    }
    /* the last round's 1500 again: expected, complete only with the last of them */
    for (uint64_t k = 1; k <= 1500; k++) {
        add_req(&s, 50000 + k);
        assert_true(rly_isrv_complete(&s) == (k == 1500));
    }
    finish(&s);
    rly_isrv_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(closes_when_every_client_is_in),
        cmocka_unit_test(many_clients),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
