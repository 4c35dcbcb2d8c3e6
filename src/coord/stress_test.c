/*
 * Seeded stress test: 4 producer threads, 1,024 actors, random scale out/in every few
 * milliseconds, >= 1 M messages carrying per-(actor, producer) sequence numbers. Proves every
 * message is delivered exactly once and each producer's order per actor holds. Two shapes, both
 * on a pool of 2 worker threads: 16 routers (scaled within 2..24) and 256 routers (192..320),
 * so routers far outnumber the threads that run them. Two of the producers also run routers
 * themselves while they wait for replies (caller runs, core/pool.h), racing the workers.
 */
#include <string.h>

#include "coord/coordinator.h"
#include "routing_harness.h"

#define ACTORS 1024
#define PRODUCERS 4

typedef struct {
    rly_coord *c;
    h_actor *actors;
    uint32_t id;
    uint64_t seed;
    int64_t count;
    int64_t *sent_to; /* [ACTORS] messages this producer sent to each actor */
} producer_arg;

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static _Atomic bool producers_done;
static _Atomic int scale_ops;
static int min_scale_ops;

/* send_wait sends one sequenced message with a reply and waits for it: in a caller-runs scope
   the wait runs queued routers on this thread (core/pool.h), alongside the pool's workers. */
static relay_err send_wait(rly_dispatcher *d, relay_id actor, uint32_t p, int64_t seq)
{
    rly_msg m = rly_msg_data(actor, RLY_FLAG_LAST_INFERENCE, seq, NULL, NULL, rly_reply_new());
    m.u32 = p;
    relay_err e = rly_dispatcher_send(d, &m);
    if (e) {
        rly_reply_release(m.reply);
        rly_reply_release(m.reply);
        return e;
    }
    int64_t v = -1;
    e = rly_reply_wait(m.reply, 20 * RLY_NS_PER_S, &v, NULL);
    rly_reply_release(m.reply);
    assert_int_equal(e, RELAY_OK);
    assert_int_equal(v, seq);
    return e;
}

static void *producer(void *p)
{
    producer_arg *a = p;
    uint64_t rng = a->seed;
    /* Odd producers are callers that run routers themselves (caller runs): every 16th message
       waits for its reply, and a full queue is met by helping rather than sleeping. */
    bool caller = a->id % 2;
    if (caller)
        rly_pool_caller_runs(true);
    /* Keep sending until both the count and the minimum number of scale operations are reached. */
    for (int64_t i = 0; i < a->count || atomic_load(&scale_ops) < min_scale_ops; i++) {
        uint32_t k = (uint32_t)(xorshift(&rng) % ACTORS);
        int64_t seq = a->sent_to[k];
        relay_err e;
        if (caller && i % 16 == 0)
            e = send_wait(a->c->disp, a->actors[k].slot.id, a->id, seq);
        else
            while ((e = h_send(a->c->disp, a->actors[k].slot.id, a->id, seq)) == RELAY_EFULL)
                if (!caller || !rly_pool_help(NULL, NULL))
                    rly_sleep_ns(10 * RLY_NS_PER_US);
        assert_int_equal(e, RELAY_OK);
        a->sent_to[k] = seq + 1;
        if (i >= a->count)
            rly_sleep_ns(50 * RLY_NS_PER_US); /* only waiting for the scaler now */
    }
    if (caller)
        rly_pool_caller_runs(false);
    return NULL;
}

typedef struct {
    rly_coord *c;
    uint64_t seed;
    int ops;
    uint32_t lo, hi; /* keep the router count within [lo, hi] */
} scaler_arg;

static void *scaler(void *p)
{
    scaler_arg *a = p;
    uint64_t rng = a->seed;
    while (!atomic_load(&producers_done)) {
        uint32_t r = rly_coord_num_routers(a->c);
        uint32_t k = (uint32_t)(xorshift(&rng) % 2) + 1;
        bool out = r <= a->lo || (r < a->hi && xorshift(&rng) % 2);
        if (out)
            assert_ok(rly_coord_scale_out(a->c, k));
        else
            assert_ok(rly_coord_scale_in(a->c, k < r ? k : r - 1));
        a->ops++;
        atomic_fetch_add(&scale_ops, 1);
        rly_sleep_ns((int64_t)(xorshift(&rng) % 4 + 1) * RLY_NS_PER_MS);
    }
    return NULL;
}

static void run_stress(uint32_t routers, uint32_t lo, uint32_t hi)
{
    int64_t per = test_sanitized() ? 25000 : 262144; /* 4 x 262,144 = 1,048,576 messages */
    rly_coord_config cfg;
    rly_coord_config_default(&cfg);
    cfg.routers = routers;
    cfg.workers = 2;
    cfg.router_queue_capacity = routers > 64 ? 1024 : 0;
    rly_coord *c = NULL;
    assert_ok(rly_coord_new(&cfg, &c));
    h_actor *actors = calloc(ACTORS, sizeof *actors);
    assert_non_null(actors);
    for (int i = 0; i < ACTORS; i++) {
        h_actor_init(&actors[i], relay_id_from_seed(99, (uint64_t)i));
        assert_ok(rly_coord_add_actor(c, &actors[i].slot));
    }
    producer_arg pa[PRODUCERS];
    rly_thread pt[PRODUCERS], st;
    atomic_store(&producers_done, false);
    atomic_store(&scale_ops, 0);
    min_scale_ops = test_sanitized() ? 10 : 40;
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        pa[p] = (producer_arg){
            c, actors, p, 0x9e3779b97f4a7c15ULL * (p + 1), per, calloc(ACTORS, sizeof(int64_t))};
        assert_ok(rly_thread_start(&pt[p], producer, &pa[p], "producer"));
    }
    scaler_arg sa = {c, 12345, 0, lo, hi};
    assert_ok(rly_thread_start(&st, scaler, &sa, "scaler"));
    for (uint32_t p = 0; p < PRODUCERS; p++)
        rly_thread_join(pt[p]);
    atomic_store(&producers_done, true);
    rly_thread_join(st);
    assert_true(sa.ops >= min_scale_ops);

    for (int i = 0; i < ACTORS; i++) {
        int64_t want = 0;
        for (uint32_t p = 0; p < PRODUCERS; p++)
            want += pa[p].sent_to[i];
        assert_true(h_wait_received(&actors[i], (uint64_t)want));
    }
    assert_ok(rly_coord_shutdown(c));
    uint64_t total = 0;
    for (int i = 0; i < ACTORS; i++) {
        int64_t want = 0;
        for (uint32_t p = 0; p < PRODUCERS; p++) {
            want += pa[p].sent_to[i];
            /* Each producer's next expected sequence equals what it sent: nothing lost or doubled.
             */
            assert_int_equal(actors[i].next[p], pa[p].sent_to[i]);
        }
        assert_int_equal(atomic_load(&actors[i].received), (uint64_t)want);
        assert_int_equal(atomic_load(&actors[i].order_errors), 0);
        assert_int_equal(atomic_load(&actors[i].shutdowns), 1);
        total += (uint64_t)want;
    }
    assert_true(total >= (uint64_t)per * PRODUCERS);
    print_message("%u routers on 2 workers: delivered %llu messages exactly once across %d scale "
                  "operations\n",
                  routers, (unsigned long long)total, sa.ops);
    rly_coord_free(c);
    for (uint32_t p = 0; p < PRODUCERS; p++)
        free(pa[p].sent_to);
    free(actors);
}

static void exactly_once_in_order_under_scaling(void **state)
{
    run_stress(16, 2, 24);
}

static void exactly_once_with_routers_far_above_workers(void **state)
{
    run_stress(256, 192, 320);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exactly_once_in_order_under_scaling),
        cmocka_unit_test(exactly_once_with_routers_far_above_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
