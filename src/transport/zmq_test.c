/*
 * The ZeroMQ transport in one process: header frames (round trip, every malformed shape refused),
 * the seen table's restart helpers, and a server + client over ipc:// exchanging a control
 * request, a model, trajectory batches with acknowledgements, and a status envelope.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "test_util.h"
#include "transport/seen.h"
#include "transport/transport.h"
#include "transport/zmq_wire.h"

static void header_round_trip(void **state)
{
    (void)state;
    uint8_t h[RLY_ZW_HEADER];
    rly_zw_hdr p;
    rly_zw_header(h, RLY_ZW_ACK, RLY_ZW_REFUSED, UINT64_C(0x0102030405060708));
    assert_ok(rly_zw_parse(h, sizeof h, &p));
    assert_int_equal(p.kind, RLY_ZW_ACK);
    assert_int_equal(p.status, RLY_ZW_REFUSED);
    assert_true(p.corr == UINT64_C(0x0102030405060708));
    assert_err(rly_zw_parse(h, sizeof h - 1, &p), RELAY_ETRUNCATED);
    uint8_t big[RLY_ZW_HEADER + 1] = {0};
    memcpy(big, h, sizeof h);
    assert_err(rly_zw_parse(big, sizeof big, &p), RELAY_EFORMAT);
    h[0] = 'X';
    assert_err(rly_zw_parse(h, sizeof h, &p), RELAY_EFORMAT);
    h[0] = 'R';
    h[2] = 2;
    assert_err(rly_zw_parse(h, sizeof h, &p), RELAY_EVERSION);
    h[2] = RLY_ZW_VERSION;
    h[3] = 0;
    assert_err(rly_zw_parse(h, sizeof h, &p), RELAY_EFORMAT);
    h[3] = RLY_ZW_MODEL_REP + 1;
    assert_err(rly_zw_parse(h, sizeof h, &p), RELAY_EFORMAT);
    h[3] = RLY_ZW_TRAJ;
    h[6] = 1; /* reserved bytes must be zero */
    assert_err(rly_zw_parse(h, sizeof h, &p), RELAY_EFORMAT);
}

static void seen_restart(void **state)
{
    (void)state;
    rly_seen s;
    assert_ok(rly_seen_init(&s, 0));
    relay_id a = relay_id_from_seed(1, 1);
    for (uint64_t i = 1; i <= 10; i++)
        assert_int_equal(rly_seen_check(&s, a, i, 100 + i), RLY_SEEN_NEW);
    rly_seen_entry e;
    assert_true(rly_seen_find_seq(&s, 105, &e));
    assert_true(e.batch == 5 && relay_id_eq(e.producer, a));
    assert_false(rly_seen_find_seq(&s, 99, &e));
    assert_ok(rly_seen_forget_from(&s, 105)); /* 105..110 come again, elsewhere */
    assert_int_equal(rly_seen_check(&s, a, 4, 200), RLY_SEEN_DUPLICATE);
    assert_int_equal(rly_seen_check(&s, a, 5, 201), RLY_SEEN_NEW);
    assert_int_equal(rly_seen_check(&s, a, 10, 202), RLY_SEEN_NEW);
    rly_seen_fini(&s);
}

typedef struct got {
    atomic_int acks, acks_ok, models, statuses;
    atomic_llong last_version;
} got;

static void on_ack(void *ctx, uint64_t seq, relay_err r)
{
    (void)seq;
    got *g = ctx;
    atomic_fetch_add(&g->acks, 1);
    if (!r)
        atomic_fetch_add(&g->acks_ok, 1);
}

static void on_model(void *ctx, int64_t version, const void *data, size_t len)
{
    got *g = ctx;
    if (version < 0) {
        assert_true(len == 3 && !memcmp(data, "bye", 3));
        atomic_fetch_add(&g->statuses, 1);
        return;
    }
    assert_true(len == 5 && !memcmp(data, "model", 5));
    atomic_store(&g->last_version, version);
    atomic_fetch_add(&g->models, 1);
}

static relay_err serve(void *ctx, const void *req, size_t len, relay_codec_buf *reply)
{
    (void)ctx;
    relay_err e = relay_codec_buf_reserve(reply, len + 1);
    if (e)
        return e;
    memcpy(reply->data, req, len);
    reply->data[len] = '!';
    reply->len = len + 1;
    return RELAY_OK;
}

static bool wait_int(atomic_int *v, int want)
{
    for (int i = 0; i < 500 && atomic_load(v) < want; i++)
        rly_sleep_ns(10 * RLY_NS_PER_MS);
    return atomic_load(v) >= want;
}

static void server_and_client(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "ipc:///tmp/relay-zmq-test-%d", (int)getpid());
    rly_tp_config c;
    rly_tp_config_init(&c);
    c.url = url;
    c.bind = true;
    rly_tp *srv = NULL, *cli = NULL;
    assert_ok(rly_tp_open(&c, &srv));
    assert_false(rly_tp_durable(srv));
    assert_ok(rly_tp_traj_consume(srv, 7));
    assert_ok(rly_tp_control_serve(srv, serve, NULL));
    c.bind = false;
    assert_ok(rly_tp_open(&c, &cli));
    got g = {0};
    assert_ok(rly_tp_set_callbacks(cli, on_ack, NULL, &g));
    relay_codec_buf rep = {0};
    relay_err e = RELAY_ENOTFOUND;
    for (int i = 0; i < 100 && e; i++) /* the serve command reaches the server's thread */
        e = rly_tp_control_request(cli, "hi", 2, &rep, RLY_NS_PER_S);
    assert_ok(e);
    assert_true(rep.len == 3 && !memcmp(rep.data, "hi!", 3));
    int64_t v = 0;
    assert_err(rly_tp_model_latest(cli, &rep, &v), RELAY_ENOMODEL);
    assert_ok(rly_tp_model_publish(srv, 3, "model", 5));
    assert_ok(rly_tp_model_latest(cli, &rep, &v));
    assert_true(v == 3 && rep.len == 5);
    assert_ok(rly_tp_model_watch(cli, on_model, &g));
    assert_true(wait_int(&g.models, 1));
    assert_ok(rly_tp_model_publish(srv, 4, "model", 5));
    for (int i = 0; i < 300 && atomic_load(&g.last_version) < 4; i++)
        rly_sleep_ns(10 * RLY_NS_PER_MS);
    assert_true(atomic_load(&g.last_version) == 4);
    /* three batches: positions 7, 8, 9 in arrival order; acked, one of them refused */
    for (uint64_t b = 1; b <= 3; b++)
        assert_ok(rly_tp_traj_publish(cli, "id", b, "batch", 5, RLY_NS_PER_S));
    rly_tp_delivery d[4];
    size_t n = 0, total = 0;
    uint64_t expect = 7;
    for (int i = 0; i < 50 && total < 3; i++) {
        assert_ok(rly_tp_traj_fetch(srv, d, 4, &n, 100 * RLY_NS_PER_MS));
        for (size_t k = 0; k < n; k++) {
            assert_true(d[k].seq == expect++);
            assert_true(d[k].len == 5 && !memcmp(d[k].data, "batch", 5));
            if (total + k == 2)
                rly_tp_traj_release(srv, &d[k]); /* not acknowledged: times out at the client */
            else
                assert_ok(rly_tp_traj_ack(srv, &d[k], total + k == 0));
        }
        total += n;
    }
    assert_int_equal(total, 3);
    assert_true(wait_int(&g.acks_ok, 2)); /* a refused batch is acknowledged too */
    assert_ok(rly_tp_status_publish(srv, "bye", 3));
    assert_true(wait_int(&g.statuses, 1));
    relay_codec_buf_fini(&rep);
    rly_tp_close(cli);
    rly_tp_close(srv);
    /* nobody listening: the client gives up with RELAY_ECLOSED */
    c.connect_timeout_ns = 300 * RLY_NS_PER_MS;
    assert_err(rly_tp_open(&c, &cli), RELAY_ECLOSED);
    c.url = "tcp://127.0.0.1:notaport";
    assert_err(rly_tp_open(&c, &cli), RELAY_ECONFIG);
    unlink(url + 6);
    char pub[160];
    snprintf(pub, sizeof pub, "%s.pub", url + 6);
    unlink(pub);
}

/* A server with a cap of 1 connection per port: the first client connects, the second is refused
   by name (RELAY_EBUSY) and the first still works; above the documented maximum: ECONFIG. */
static void connection_cap(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "ipc:///tmp/relay-zmq-cap-%d", (int)getpid());
    rly_tp_config c;
    rly_tp_config_init(&c);
    c.url = url;
    c.bind = true;
    c.max_connections = RLY_TP_MAX_CONNECTIONS_MAX + 1;
    rly_tp *srv = NULL, *a = NULL, *b = NULL;
    assert_err(rly_tp_open(&c, &srv), RELAY_ECONFIG);
    c.max_connections = 1;
    assert_ok(rly_tp_open(&c, &srv));
    assert_ok(rly_tp_traj_consume(srv, 1));
    assert_ok(rly_tp_control_serve(srv, serve, NULL));
    c.bind = false;
    c.connect_timeout_ns = 2 * RLY_NS_PER_S;
    assert_ok(rly_tp_open(&c, &a));
    assert_err(rly_tp_open(&c, &b), RELAY_EBUSY);
    relay_codec_buf rep = {0};
    relay_err e = RELAY_ENOTFOUND;
    for (int i = 0; i < 100 && e; i++)
        e = rly_tp_control_request(a, "hi", 2, &rep, RLY_NS_PER_S);
    assert_ok(e);
    assert_true(rep.len == 3 && !memcmp(rep.data, "hi!", 3));
    /* once the first leaves, a newcomer is admitted */
    rly_tp_close(a);
    e = RELAY_EBUSY;
    for (int i = 0; i < 20 && e == RELAY_EBUSY; i++)
        e = rly_tp_open(&c, &b);
    assert_ok(e);
    rly_tp_close(b);
    relay_codec_buf_fini(&rep);
    rly_tp_close(srv);
    unlink(url + 6);
    char pub[160];
    snprintf(pub, sizeof pub, "%s.pub", url + 6);
    unlink(pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_round_trip),
        cmocka_unit_test(seen_restart),
        cmocka_unit_test(server_and_client),
        cmocka_unit_test(connection_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
