/* Tests for the coordinator: placement, removal, rename, scaling rules and the shutdown order. */
#include <dirent.h>
#include <string.h>

#include "coord/coordinator.h"
#include "routing_harness.h"

static rly_coord *coord_new(uint32_t routers)
{
    rly_coord_config cfg;
    rly_coord_config_default(&cfg);
    cfg.routers = routers;
    rly_coord *c = NULL;
    assert_ok(rly_coord_new(&cfg, &c));
    return c;
}

static void places_on_least_loaded_router(void **state)
{
    rly_coord *c = coord_new(3);
    h_actor a[6];
    for (int i = 0; i < 6; i++) {
        h_actor_init(&a[i], relay_id_from_seed(20, (uint64_t)i));
        assert_ok(rly_coord_add_actor(c, &a[i].slot));
    }
    for (uint32_t r = 1; r <= 3; r++)
        assert_int_equal(rly_state_load(&c->state, r), 2);
    assert_err(rly_coord_add_actor(c, &a[0].slot), RELAY_EEXIST);
    relay_id ids[6];
    assert_int_equal(rly_state_list(&c->state, ids, NULL, 6), 6);
    for (int i = 1; i < 6; i++)
        assert_true(relay_id_cmp(ids[i - 1], ids[i]) < 0);
    assert_ok(rly_coord_shutdown(c));
    rly_coord_free(c);
    for (int i = 0; i < 6; i++)
        assert_int_equal(atomic_load(&a[i].shutdowns), 1);
}

static void remove_flushes_and_forgets(void **state)
{
    rly_coord *c = coord_new(1);
    h_actor a;
    h_actor_init(&a, relay_id_from_seed(21, 0));
    assert_ok(rly_coord_add_actor(c, &a.slot));
    for (int64_t s = 0; s < 100; s++)
        assert_ok(h_send(c->disp, a.slot.id, 0, s));
    rly_actor_slot *slot = NULL;
    assert_ok(rly_coord_remove_actor(c, a.slot.id, &slot));
    assert_ptr_equal(slot, &a.slot);
    assert_int_equal(atomic_load(&a.received), 100);
    assert_int_equal(atomic_load(&a.detached), 1);
    assert_err(rly_coord_remove_actor(c, a.slot.id, NULL), RELAY_ENOTFOUND);
    assert_int_equal(rly_state_count(&c->state), 0);
    rly_coord_free(c);
    assert_int_equal(atomic_load(&a.shutdowns), 0);
}

static void rename_moves_actor_without_flush(void **state)
{
    rly_coord *c = coord_new(2);
    h_actor a, b;
    h_actor_init(&a, relay_id_from_seed(22, 0));
    h_actor_init(&b, relay_id_from_seed(22, 1));
    assert_ok(rly_coord_add_actor(c, &a.slot));
    assert_ok(rly_coord_add_actor(c, &b.slot));
    relay_id next = relay_id_from_seed(22, 2);
    assert_err(rly_coord_rename_actor(c, a.slot.id, b.slot.id), RELAY_EEXIST);
    assert_err(rly_coord_rename_actor(c, next, a.slot.id), RELAY_ENOTFOUND);
    relay_id old = a.slot.id;
    assert_ok(rly_coord_rename_actor(c, old, next));
    assert_true(relay_id_eq(a.slot.id, next));
    assert_int_equal(atomic_load(&a.detached), 0);
    assert_ok(h_send(c->disp, next, 0, 0));
    assert_true(h_wait_received(&a, 1));
    assert_err(rly_state_get(&c->state, old, NULL, NULL), RELAY_ENOTFOUND);
    /* Shutdown after a rename must not hang (RelayRL's does). */
    assert_ok(rly_coord_shutdown(c));
    assert_int_equal(atomic_load(&a.shutdowns), 1);
    rly_coord_free(c);
}

static void scaling_rules_and_rebalance(void **state)
{
    rly_coord *c = coord_new(1);
    h_actor a[8];
    for (int i = 0; i < 8; i++) {
        h_actor_init(&a[i], relay_id_from_seed(23, (uint64_t)i));
        assert_ok(rly_coord_add_actor(c, &a[i].slot));
    }
    assert_err(rly_coord_scale_in(c, 1), RELAY_EINVAL); /* never to zero routers */
    assert_err(rly_coord_scale_out(c, 0), RELAY_EINVAL);
    assert_err(rly_coord_scale_out(c, RLY_MAX_ROUTERS), RELAY_ETOOBIG); /* 1 + 4096 > limit */
    assert_err(rly_coord_scale_out(c, 100000), RELAY_ETOOBIG);
    assert_ok(rly_coord_scale_out(c, 3));
    assert_int_equal(rly_coord_num_routers(c), 4);
    relay_id ids[8];
    uint32_t routers[8];
    rly_state_list(&c->state, ids, routers, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(routers[i], (uint32_t)(i % 4) + 1); /* deterministic round-robin */
    for (int64_t s = 0; s < 1000; s++)
        for (int i = 0; i < 8; i++)
            assert_ok(h_send(c->disp, a[i].slot.id, 0, s));
    assert_ok(rly_coord_scale_in(c, 3));
    assert_int_equal(rly_coord_num_routers(c), 1);
    for (int i = 0; i < 8; i++) {
        assert_true(h_wait_received(&a[i], 1000));
        assert_int_equal(atomic_load(&a[i].order_errors), 0);
    }
    rly_state_list(&c->state, ids, routers, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(routers[i], 1);
    rly_coord_free(c);
}

static void shutdown_is_idempotent_and_closes(void **state)
{
    rly_coord *c = coord_new(2);
    h_actor a;
    h_actor_init(&a, relay_id_from_seed(24, 0));
    assert_ok(rly_coord_add_actor(c, &a.slot));
    for (int64_t s = 0; s < 5000; s++)
        assert_ok(h_send(c->disp, a.slot.id, 0, s));
    assert_ok(rly_coord_shutdown(c));
    /* Everything accepted before shutdown was delivered, then Shutdown itself. */
    assert_int_equal(atomic_load(&a.received), 5000);
    assert_int_equal(atomic_load(&a.shutdowns), 1);
    assert_ok(rly_coord_shutdown(c));
    assert_err(h_send(c->disp, a.slot.id, 0, 5000), RELAY_ESHUTDOWN);
    assert_err(rly_coord_add_actor(c, &a.slot), RELAY_ESHUTDOWN);
    assert_err(rly_coord_scale_out(c, 1), RELAY_ESHUTDOWN);
    rly_coord_free(c);
}

static void zero_routers_refused_at_creation(void **state)
{
    rly_coord_config cfg;
    rly_coord_config_default(&cfg);
    cfg.routers = 0;
    rly_coord *c = NULL;
    assert_err(rly_coord_new(&cfg, &c), RELAY_EINVAL);
    assert_null(c);
    cfg.routers = 100000; /* absurd: refused with the limit named */
    assert_err(rly_coord_new(&cfg, &c), RELAY_ETOOBIG);
    assert_null(c);
}

static int count_threads(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Routers are tasks on the worker pool: scaling out to many routers adds no thread. */
static void scale_out_adds_no_threads(void **state)
{
    rly_coord_config cfg;
    rly_coord_config_default(&cfg);
    cfg.routers = 1;
    cfg.workers = 2;
    rly_coord *c = NULL;
    assert_ok(rly_coord_new(&cfg, &c));
    assert_int_equal(rly_coord_num_workers(c), 2);
    h_actor a[64];
    for (int i = 0; i < 64; i++) {
        h_actor_init(&a[i], relay_id_from_seed(31, (uint64_t)i));
        assert_ok(rly_coord_add_actor(c, &a[i].slot));
    }
    int before = count_threads();
    assert_ok(rly_coord_scale_out(c, 511));
    assert_int_equal(rly_coord_num_routers(c), 512);
    for (int64_t s = 0; s < 100; s++)
        for (int i = 0; i < 64; i++)
            assert_ok(h_send(c->disp, a[i].slot.id, 0, s));
    for (int i = 0; i < 64; i++)
        assert_true(h_wait_received(&a[i], 100));
    assert_int_equal(count_threads(), before);
    assert_ok(rly_coord_scale_in(c, 500));
    assert_int_equal(count_threads(), before);
    for (int i = 0; i < 64; i++)
        assert_int_equal(atomic_load(&a[i].order_errors), 0);
    rly_coord_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(places_on_least_loaded_router),
        cmocka_unit_test(remove_flushes_and_forgets),
        cmocka_unit_test(rename_moves_actor_without_flush),
        cmocka_unit_test(scaling_rules_and_rebalance),
        cmocka_unit_test(shutdown_is_idempotent_and_closes),
        cmocka_unit_test(zero_routers_refused_at_creation),
        cmocka_unit_test(scale_out_adds_no_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
