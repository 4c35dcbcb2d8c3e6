/* Tests for the dispatcher and routers: forwarding, pending FIFO, TTL, bounds, migration, shutdown.
 */
#include <string.h>

#include "routing_harness.h"

typedef struct fixture {
    rly_pool *pool;
    rly_dispatcher *d;
    rly_router *routers[4];
    int n_routers;
} fixture;

static void fx_start(fixture *f, const rly_dispatcher_config *cfg, int n_routers)
{
    memset(f, 0, sizeof *f);
    assert_ok(rly_pool_new(2, &f->pool));
    assert_ok(rly_dispatcher_new(cfg, &f->d));
    assert_ok(rly_dispatcher_start(f->d));
    for (int i = 0; i < n_routers; i++) {
        assert_ok(rly_router_new((uint32_t)i + 1, 1024, rly_dispatcher_router_return, f->d,
                                 &f->routers[i]));
        assert_ok(rly_router_start(f->routers[i], f->pool));
        assert_ok(h_ctl(f->d, RLY_KIND_CTL_ROUTER_ADD, (relay_id){0}, 0, f->routers[i], NULL));
    }
    f->n_routers = n_routers;
}

static void fx_stop(fixture *f)
{
    rly_dispatcher_close(f->d);
    assert_ok(h_ctl(f->d, RLY_KIND_CTL_SHUTDOWN, (relay_id){0}, 0, NULL, NULL));
    rly_dispatcher_join(f->d);
    for (int i = 0; i < f->n_routers; i++) {
        rly_router_join(f->routers[i]);
        rly_router_free(f->routers[i]);
    }
    rly_dispatcher_free(f->d);
    rly_pool_free(f->pool);
}

static void forwards_in_order_to_owner(void **state)
{
    fixture f;
    fx_start(&f, NULL, 2);
    h_actor a[4];
    for (int i = 0; i < 4; i++) {
        h_actor_init(&a[i], relay_id_from_seed(1, (uint64_t)i));
        assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a[i].slot.id, (uint32_t)(i % 2) + 1,
                        &a[i].slot, NULL));
    }
    for (int64_t s = 0; s < 20000; s++)
        for (int i = 0; i < 4; i++)
            assert_ok(h_send(f.d, a[i].slot.id, 0, s));
    for (int i = 0; i < 4; i++) {
        assert_true(h_wait_received(&a[i], 20000));
        assert_int_equal(atomic_load(&a[i].order_errors), 0);
        assert_int_equal(atomic_load(&a[i].attaches), 1);
    }
    rly_dispatcher_stats st;
    rly_dispatcher_get_stats(f.d, &st);
    assert_int_equal(st.queued, 0);
    fx_stop(&f);
    for (int i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&a[i].shutdowns), 1);
}

/* The seed keeps one pending message per actor; Relay must deliver the whole burst, in order. */
static void late_assignment_delivers_all_in_order(void **state)
{
    fixture f;
    fx_start(&f, NULL, 1);
    h_actor a;
    h_actor_init(&a, relay_id_from_seed(2, 0));
    for (int64_t s = 0; s < 1000; s++)
        assert_ok(h_send(f.d, a.slot.id, 0, s));
    /* Wait for the first retry (due 100 ms after queueing; a loaded machine may take longer). */
    rly_dispatcher_stats st;
    int64_t deadline = rly_now_ns() + 10 * RLY_NS_PER_S;
    do {
        rly_sleep_ns(20 * RLY_NS_PER_MS);
        rly_dispatcher_get_stats(f.d, &st);
    } while (st.retried == 0 && rly_now_ns() < deadline);
    assert_int_equal(st.pending, 1000);
    assert_int_equal(st.queued, 1000);
    assert_true(st.retried >= 1);
    assert_int_equal(atomic_load(&a.received), 0);
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a.slot.id, 1, &a.slot, NULL));
    /* New traffic after assignment must queue behind the held messages. */
    for (int64_t s = 1000; s < 1100; s++)
        assert_ok(h_send(f.d, a.slot.id, 0, s));
    assert_true(h_wait_received(&a, 1100));
    assert_int_equal(atomic_load(&a.order_errors), 0);
    rly_dispatcher_get_stats(f.d, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.expired, 0);
    fx_stop(&f);
}

static void expired_message_completes_reply_with_timeout(void **state)
{
    rly_dispatcher_config cfg;
    rly_dispatcher_config_default(&cfg);
    cfg.ttl_ns[RLY_REQUEST_INFERENCE] = 120 * RLY_NS_PER_MS;
    cfg.tick_ns = 10 * RLY_NS_PER_MS;
    fixture f;
    fx_start(&f, &cfg, 1);
    relay_id ghost = relay_id_from_seed(3, 0);
    rly_reply *r = rly_reply_new();
    char *payload = strdup("observation");
    rly_msg m = rly_msg_data(ghost, RLY_REQUEST_INFERENCE, 0, payload, free, r);
    assert_ok(rly_dispatcher_send(f.d, &m));
    /* A longer-lived protocol to the same actor stays pending. */
    assert_ok(h_send(f.d, ghost, 0, 0));
    int64_t t0 = rly_now_ns();
    assert_err(rly_reply_wait(r, 5 * RLY_NS_PER_S, NULL, NULL), RELAY_ETIMEDOUT);
    int64_t waited = rly_now_ns() - t0;
    assert_true(waited >= 100 * RLY_NS_PER_MS);
    assert_true(rly_reply_is_done(r)); /* completed by the dispatcher, not our wait timing out */
    rly_reply_release(r);
    rly_dispatcher_stats st;
    rly_dispatcher_get_stats(f.d, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.pending, 1);
    fx_stop(&f); /* the FlagLastInference still pending fails with a shutdown error */
}

static void pending_memory_is_bounded(void **state)
{
    rly_dispatcher_config cfg;
    rly_dispatcher_config_default(&cfg);
    cfg.pending_capacity = 100;
    fixture f;
    fx_start(&f, &cfg, 1);
    relay_id ghost = relay_id_from_seed(4, 0);
    for (int64_t s = 0; s < 100; s++)
        assert_ok(h_send(f.d, ghost, 0, s));
    rly_reply *r = rly_reply_new();
    rly_msg m = rly_msg_data(ghost, RLY_MODEL_VERSION, 100, NULL, NULL, r);
    assert_err(rly_dispatcher_send(f.d, &m), RELAY_EFULL);
    /* The caller still owns the refused message. */
    assert_false(rly_reply_is_done(r));
    rly_reply_release(r);
    rly_reply_release(r);
    rly_dispatcher_stats st;
    rly_dispatcher_get_stats(f.d, &st);
    assert_int_equal(st.rejected, 1);
    /* Assigning the actor drains the table and makes room again. */
    h_actor a;
    h_actor_init(&a, ghost);
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, ghost, 1, &a.slot, NULL));
    assert_true(h_wait_received(&a, 100));
    assert_ok(h_send(f.d, ghost, 0, 100));
    assert_true(h_wait_received(&a, 101));
    assert_int_equal(atomic_load(&a.order_errors), 0);
    fx_stop(&f);
}

typedef struct {
    rly_dispatcher *d;
    relay_id id;
    int64_t count;
    uint32_t producer;
} sender_arg;

static void *sender(void *p)
{
    sender_arg *s = p;
    for (int64_t i = 0; i < s->count; i++)
        while (h_send(s->d, s->id, s->producer, i) != RELAY_OK)
            rly_sleep_ns(RLY_NS_PER_US);
    return NULL;
}

static void migration_keeps_order(void **state)
{
    fixture f;
    fx_start(&f, NULL, 3);
    h_actor a;
    h_actor_init(&a, relay_id_from_seed(5, 0));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a.slot.id, 1, &a.slot, NULL));
    int64_t per = test_sanitized() ? 20000 : 200000;
    sender_arg args[2] = {{f.d, a.slot.id, per, 0}, {f.d, a.slot.id, per, 1}};
    rly_thread t[2];
    for (int i = 0; i < 2; i++)
        assert_ok(rly_thread_start(&t[i], sender, &args[i], "sender"));
    for (int k = 0; k < 60; k++) {
        assert_ok(
            h_ctl(f.d, RLY_KIND_CTL_ACTOR_MOVE, a.slot.id, (uint32_t)(k % 3) + 1, NULL, NULL));
        rly_sleep_ns(200 * RLY_NS_PER_US);
    }
    for (int i = 0; i < 2; i++)
        rly_thread_join(t[i]);
    assert_true(h_wait_received(&a, (uint64_t)per * 2));
    assert_int_equal(atomic_load(&a.order_errors), 0);
    assert_true(atomic_load(&a.attaches) > 1);
    assert_int_equal(atomic_load(&a.detached), 0);
    fx_stop(&f);
}

static void remove_actor_detaches_and_returns_slot(void **state)
{
    fixture f;
    fx_start(&f, NULL, 1);
    h_actor a;
    h_actor_init(&a, relay_id_from_seed(6, 0));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a.slot.id, 1, &a.slot, NULL));
    assert_err(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a.slot.id, 1, &a.slot, NULL), RELAY_EEXIST);
    for (int64_t s = 0; s < 50; s++)
        assert_ok(h_send(f.d, a.slot.id, 0, s));
    void *slot = NULL;
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_REMOVE, a.slot.id, 0, NULL, &slot));
    assert_ptr_equal(slot, &a.slot);
    /* Everything sent before the removal was delivered before the detach. */
    assert_int_equal(atomic_load(&a.received), 50);
    assert_int_equal(atomic_load(&a.detached), 1);
    assert_err(h_ctl(f.d, RLY_KIND_CTL_ACTOR_REMOVE, a.slot.id, 0, NULL, NULL), RELAY_ENOTFOUND);
    assert_false(rly_dispatcher_is_assigned(f.d, a.slot.id));
    /* Re-adding the same id works and resumes delivery. */
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a.slot.id, 1, &a.slot, NULL));
    assert_ok(h_send(f.d, a.slot.id, 0, 50));
    assert_true(h_wait_received(&a, 51));
    fx_stop(&f);
}

static void unknown_router_and_unassigned_errors(void **state)
{
    fixture f;
    fx_start(&f, NULL, 1);
    h_actor a;
    h_actor_init(&a, relay_id_from_seed(7, 0));
    assert_err(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a.slot.id, 99, &a.slot, NULL),
               RELAY_EROUTER_NOT_FOUND);
    assert_err(h_ctl(f.d, RLY_KIND_CTL_ACTOR_MOVE, a.slot.id, 1, NULL, NULL), RELAY_ENOT_ASSIGNED);
    assert_err(h_ctl(f.d, RLY_KIND_CTL_ROUTER_REMOVE, (relay_id){0}, 42, NULL, NULL),
               RELAY_EROUTER_NOT_FOUND);
    rly_msg bad = rly_msg_data(a.slot.id, RLY_PROTO_COUNT, 0, NULL, NULL, NULL);
    assert_err(rly_dispatcher_send(f.d, &bad), RELAY_EINVAL);
    fx_stop(&f);
}

static void router_removal_moves_nothing_lost(void **state)
{
    fixture f;
    fx_start(&f, NULL, 2);
    h_actor a;
    h_actor_init(&a, relay_id_from_seed(8, 0));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a.slot.id, 2, &a.slot, NULL));
    for (int64_t s = 0; s < 5000; s++)
        assert_ok(h_send(f.d, a.slot.id, 0, s));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_MOVE, a.slot.id, 1, NULL, NULL));
    void *gone = NULL;
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ROUTER_REMOVE, (relay_id){0}, 2, NULL, &gone));
    assert_ptr_equal(gone, f.routers[1]);
    rly_router_join(f.routers[1]);
    rly_router_free(f.routers[1]);
    f.n_routers = 1;
    for (int64_t s = 5000; s < 6000; s++)
        assert_ok(h_send(f.d, a.slot.id, 0, s));
    assert_true(h_wait_received(&a, 6000));
    assert_int_equal(atomic_load(&a.order_errors), 0);
    fx_stop(&f);
}

/* router_of sends a's next message (sequence seq) with a reply and, once it is answered, returns
   the router a lives on (the reply orders the router's write of slot.router before the read). */
static rly_router *router_of(rly_dispatcher *d, h_actor *a, int64_t seq)
{
    rly_reply *r = rly_reply_new();
    rly_msg m = rly_msg_data(a->slot.id, RLY_MODEL_VERSION, seq, NULL, NULL, r);
    assert_ok(rly_dispatcher_send(d, &m));
    assert_ok(rly_reply_wait(r, 20 * RLY_NS_PER_S, NULL, NULL));
    rly_reply_release(r);
    return a->slot.router;
}

/* The dispatcher keeps its routers sorted by id for lookup: ids added out of order, a duplicate,
   and a removal in the middle all resolve to the right router. */
static void routers_found_by_id_in_any_order(void **state)
{
    fixture f;
    fx_start(&f, NULL, 0);
    static const uint32_t ids[4] = {40, 7, 23, 11};
    for (int i = 0; i < 4; i++) {
        assert_ok(rly_router_new(ids[i], 1024, rly_dispatcher_router_return, f.d, &f.routers[i]));
        assert_ok(rly_router_start(f.routers[i], f.pool));
        assert_ok(h_ctl(f.d, RLY_KIND_CTL_ROUTER_ADD, (relay_id){0}, 0, f.routers[i], NULL));
    }
    f.n_routers = 4;
    rly_router *dup;
    assert_ok(rly_router_new(23, 64, rly_dispatcher_router_return, f.d, &dup));
    assert_err(h_ctl(f.d, RLY_KIND_CTL_ROUTER_ADD, (relay_id){0}, 0, dup, NULL), RELAY_EEXIST);
    rly_router_free(dup);
    h_actor a[4];
    for (int i = 0; i < 4; i++) {
        h_actor_init(&a[i], relay_id_from_seed(30, (uint64_t)i));
        assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a[i].slot.id, ids[i], &a[i].slot, NULL));
        assert_ok(h_send(f.d, a[i].slot.id, 0, 0));
    }
    for (int i = 0; i < 4; i++)
        assert_ptr_equal(router_of(f.d, &a[i], 1), f.routers[i]);
    /* Remove router 23 (its actor moves to 11 first); 40 and 7 are still found. */
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_MOVE, a[2].slot.id, 11, NULL, NULL));
    void *gone = NULL;
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ROUTER_REMOVE, (relay_id){0}, 23, NULL, &gone));
    assert_ptr_equal(gone, f.routers[2]);
    rly_router_join(f.routers[2]);
    rly_router_free(f.routers[2]);
    f.routers[2] = f.routers[3];
    f.n_routers = 3;
    h_actor b;
    h_actor_init(&b, relay_id_from_seed(31, 0));
    assert_err(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, b.slot.id, 23, &b.slot, NULL),
               RELAY_EROUTER_NOT_FOUND);
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_MOVE, a[0].slot.id, 7, NULL, NULL));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_MOVE, a[1].slot.id, 40, NULL, NULL));
    for (int i = 0; i < 4; i++)
        assert_ok(h_send(f.d, a[i].slot.id, 0, 2));
    assert_ptr_equal(router_of(f.d, &a[0], 3), f.routers[1]); /* 7 */
    assert_ptr_equal(router_of(f.d, &a[1], 3), f.routers[0]); /* 40 */
    assert_ptr_equal(router_of(f.d, &a[2], 3), f.routers[2]); /* 11 */
    assert_ptr_equal(router_of(f.d, &a[3], 3), f.routers[2]); /* 11 */
    for (int i = 0; i < 4; i++) {
        assert_true(h_wait_received(&a[i], 4));
        assert_int_equal(atomic_load(&a[i].order_errors), 0);
    }
    fx_stop(&f);
}

static void misrouted_message_is_routed_again(void **state)
{
    fixture f;
    fx_start(&f, NULL, 2);
    h_actor a;
    h_actor_init(&a, relay_id_from_seed(9, 0));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a.slot.id, 1, &a.slot, NULL));
    /* Push straight into the wrong router: it must hand the message back, not die. */
    rly_msg m = rly_msg_data(a.slot.id, RLY_FLAG_LAST_INFERENCE, 0, NULL, NULL, NULL);
    assert_ok(rly_router_push_batch(f.routers[1], &m, 1));
    assert_true(h_wait_received(&a, 1));
    assert_ok(h_send(f.d, a.slot.id, 0, 1));
    assert_true(h_wait_received(&a, 2));
    rly_router_stats rs;
    rly_router_get_stats(f.routers[1], &rs);
    assert_int_equal(rs.misrouted, 1);
    rly_dispatcher_stats st;
    rly_dispatcher_get_stats(f.d, &st);
    assert_int_equal(st.requeued, 1);
    fx_stop(&f);
}

static void shutdown_fails_undeliverable_and_closes_intake(void **state)
{
    fixture f;
    fx_start(&f, NULL, 1);
    rly_reply *r = rly_reply_new();
    rly_msg m = rly_msg_data(relay_id_from_seed(10, 0), RLY_MODEL_VERSION, 0, NULL, NULL, r);
    assert_ok(rly_dispatcher_send(f.d, &m));
    fx_stop(&f);
    assert_err(rly_reply_wait(r, 0, NULL, NULL), RELAY_ESHUTDOWN);
    rly_reply_release(r);
}

static void send_after_close_is_refused(void **state)
{
    fixture f;
    fx_start(&f, NULL, 1);
    rly_dispatcher_close(f.d);
    rly_reply *r = rly_reply_new();
    rly_msg m = rly_msg_data(relay_id_from_seed(11, 0), RLY_MODEL_VERSION, 0, NULL, NULL, r);
    assert_err(rly_dispatcher_send(f.d, &m), RELAY_ESHUTDOWN);
    rly_reply_release(r);
    rly_reply_release(r);
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_SHUTDOWN, (relay_id){0}, 0, NULL, NULL));
    rly_dispatcher_join(f.d);
    rly_router_join(f.routers[0]);
    rly_router_free(f.routers[0]);
    rly_dispatcher_free(f.d);
    rly_pool_free(f.pool);
}

/* stats.dispatched counts every forwarded message, including the fast path's. */
static void dispatched_counts_fast_path(void **state)
{
    fixture f;
    fx_start(&f, NULL, 1);
    h_actor a;
    h_actor_init(&a, relay_id_from_seed(12, 0));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a.slot.id, 1, &a.slot, NULL));
    /* Once the first message is delivered and the dispatcher has looped, the route is settled,
       so the next send takes the fast path (later ones may or may not, depending on timing). */
    assert_ok(h_send(f.d, a.slot.id, 0, 0));
    assert_true(h_wait_received(&a, 1));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_BARRIER, (relay_id){0}, 0, NULL, NULL));
    for (int64_t s = 1; s < 5000; s++)
        assert_ok(h_send(f.d, a.slot.id, 0, s));
    assert_true(h_wait_received(&a, 5000));
    /* Two barriers: the second is handled after the loop that published the first's counts. */
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_BARRIER, (relay_id){0}, 0, NULL, NULL));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_BARRIER, (relay_id){0}, 0, NULL, NULL));
    rly_dispatcher_stats st;
    rly_dispatcher_get_stats(f.d, &st);
    assert_int_equal(st.dispatched, 5000);
    assert_true(st.direct > 0); /* the settled actor took the fast path */
    fx_stop(&f);
}

/* A message to a removed actor ends at once with RELAY_ENOTFOUND instead of waiting a TTL. */
static void removed_actor_is_not_found_at_once(void **state)
{
    fixture f;
    fx_start(&f, NULL, 1);
    h_actor a;
    h_actor_init(&a, relay_id_from_seed(13, 0));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_ADD, a.slot.id, 1, &a.slot, NULL));
    assert_ok(h_ctl(f.d, RLY_KIND_CTL_ACTOR_REMOVE, a.slot.id, 0, NULL, NULL));
    rly_reply *r = rly_reply_new();
    rly_msg m = rly_msg_data(a.slot.id, RLY_MODEL_VERSION, 0, NULL, NULL, r);
    assert_err(rly_dispatcher_send(f.d, &m), RELAY_ENOTFOUND);
    assert_false(rly_reply_is_done(r)); /* refused: the caller still owns it */
    rly_reply_release(r);
    rly_reply_release(r);
    rly_dispatcher_stats st;
    rly_dispatcher_get_stats(f.d, &st);
    assert_int_equal(st.pending, 0);
    fx_stop(&f);
}

/* The retry schedule is the seed's: 100, 400, 1200, 3200, 4000, 4800 ms after first queued. */
static void retry_schedule_matches_seed(void **state)
{
    rly_dispatcher_config cfg;
    rly_dispatcher_config_default(&cfg);
    static const int64_t want_ms[] = {100, 400, 1200, 3200, 4000, 4800, 5600};
    for (uint32_t n = 0; n < sizeof want_ms / sizeof want_ms[0]; n++)
        assert_int_equal(rly_dispatcher_retry_offset_ns(&cfg, n), want_ms[n] * RLY_NS_PER_MS);
    assert_int_equal(rly_dispatcher_retry_offset_ns(&cfg, 1000), 800 * 1001 * RLY_NS_PER_MS);
}

/* A sender waits for intake room only as long as the configured give-up time. */
static void send_timeout_is_configurable(void **state)
{
    rly_dispatcher_config cfg;
    rly_dispatcher_config_default(&cfg);
    cfg.intake_capacity = 2;
    cfg.send_timeout_ns = 20 * RLY_NS_PER_MS;
    rly_dispatcher *d;
    assert_ok(rly_dispatcher_new(&cfg, &d)); /* not started: nobody drains the intake */
    relay_id ghost = relay_id_from_seed(14, 0);
    assert_ok(h_send(d, ghost, 0, 0));
    assert_ok(h_send(d, ghost, 0, 1));
    assert_err(h_send(d, ghost, 0, 2), RELAY_EFULL);
    rly_dispatcher_free(d);
}

/* One blocked actor fills its router; messages to another router's actor still flow. */
static _Atomic int gate_open;

static void gated_deliver(rly_actor_slot *slot, rly_msg *m)
{
    while (m->proto != RLY_SHUTDOWN && !atomic_load(&gate_open))
        rly_sleep_ns(100 * RLY_NS_PER_US);
    h_deliver(slot, m);
}

static const rly_actor_ops gated_ops = {.deliver = gated_deliver};

static void full_router_does_not_block_others(void **state)
{
    rly_dispatcher *d;
    rly_pool *pool;
    assert_ok(rly_pool_new(2, &pool)); /* the blocked actor holds one worker */
    assert_ok(rly_dispatcher_new(NULL, &d));
    assert_ok(rly_dispatcher_start(d));
    rly_router *rt[2];
    for (int i = 0; i < 2; i++) {
        assert_ok(rly_router_new((uint32_t)i + 1, 64, rly_dispatcher_router_return, d, &rt[i]));
        assert_ok(rly_router_start(rt[i], pool));
        assert_ok(h_ctl(d, RLY_KIND_CTL_ROUTER_ADD, (relay_id){0}, 0, rt[i], NULL));
    }
    atomic_store(&gate_open, 0);
    h_actor slow, fast;
    h_actor_init(&slow, relay_id_from_seed(15, 0));
    h_actor_init(&fast, relay_id_from_seed(15, 1));
    slow.slot.ops = &gated_ops;
    assert_ok(h_ctl(d, RLY_KIND_CTL_ACTOR_ADD, slow.slot.id, 1, &slow.slot, NULL));
    assert_ok(h_ctl(d, RLY_KIND_CTL_ACTOR_ADD, fast.slot.id, 2, &fast.slot, NULL));
    /* Far more than the blocked router's queue (64) and the dispatcher's stage (512) hold. */
    enum { SLOW = 5000, FAST = 20000 };
    for (int64_t s = 0; s < SLOW; s++)
        assert_ok(h_send(d, slow.slot.id, 0, s));
    for (int64_t s = 0; s < FAST; s++)
        assert_ok(h_send(d, fast.slot.id, 0, s));
    assert_true(h_wait_received(&fast, FAST));
    assert_int_equal(atomic_load(&slow.received), 0);
    atomic_store(&gate_open, 1);
    assert_true(h_wait_received(&slow, SLOW));
    assert_int_equal(atomic_load(&slow.order_errors), 0);
    assert_int_equal(atomic_load(&fast.order_errors), 0);
    rly_dispatcher_close(d);
    assert_ok(h_ctl(d, RLY_KIND_CTL_SHUTDOWN, (relay_id){0}, 0, NULL, NULL));
    rly_dispatcher_join(d);
    for (int i = 0; i < 2; i++) {
        rly_router_join(rt[i]);
        rly_router_free(rt[i]);
    }
    rly_dispatcher_free(d);
    rly_pool_free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forwards_in_order_to_owner),
        cmocka_unit_test(late_assignment_delivers_all_in_order),
        cmocka_unit_test(expired_message_completes_reply_with_timeout),
        cmocka_unit_test(pending_memory_is_bounded),
        cmocka_unit_test(migration_keeps_order),
        cmocka_unit_test(remove_actor_detaches_and_returns_slot),
        cmocka_unit_test(unknown_router_and_unassigned_errors),
        cmocka_unit_test(router_removal_moves_nothing_lost),
        cmocka_unit_test(routers_found_by_id_in_any_order),
        cmocka_unit_test(misrouted_message_is_routed_again),
        cmocka_unit_test(shutdown_fails_undeliverable_and_closes_intake),
        cmocka_unit_test(send_after_close_is_refused),
        cmocka_unit_test(dispatched_counts_fast_path),
        cmocka_unit_test(removed_actor_is_not_found_at_once),
        cmocka_unit_test(retry_schedule_matches_seed),
        cmocka_unit_test(send_timeout_is_configurable),
        cmocka_unit_test(full_router_does_not_block_others),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
