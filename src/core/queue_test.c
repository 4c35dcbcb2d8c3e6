/* Tests for the bounded MPSC and SPSC queues: capacity, order, batches, and concurrency. */
#include "test_util.h"

#include <stdlib.h>
#include <string.h>

#include "core/queue.h"

typedef struct {
    uint32_t producer;
    uint32_t seq;
    uint64_t pad[3];
} item;

static void mpsc_capacity_and_order(void **state)
{
    rly_mpsc q;
    assert_ok(rly_mpsc_init(&q, 5, sizeof(item)));
    assert_int_equal(rly_mpsc_capacity(&q), 8);
    for (uint32_t i = 0; i < 8; i++)
        assert_ok(rly_mpsc_push(&q, &(item){.seq = i}));
    assert_err(rly_mpsc_push(&q, &(item){.seq = 99}), RELAY_EFULL);
    item out[16];
    assert_int_equal(rly_mpsc_pop_batch(&q, out, 3), 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(out[i].seq, i);
    item batch[3] = {{.seq = 8}, {.seq = 9}, {.seq = 10}};
    assert_ok(rly_mpsc_push_batch(&q, batch, 3));
    assert_err(rly_mpsc_push_batch(&q, batch, 1), RELAY_EFULL);
    assert_int_equal(rly_mpsc_pop_batch(&q, out, 16), 8);
    for (uint32_t i = 0; i < 8; i++)
        assert_int_equal(out[i].seq, i + 3);
    assert_int_equal(rly_mpsc_pop_batch(&q, out, 16), 0);
    assert_err(rly_mpsc_push_batch(&q, out, 9), RELAY_EFULL);
    rly_mpsc_fini(&q);
}

static void mpsc_rejects_bad_init(void **state)
{
    rly_mpsc q;
    assert_err(rly_mpsc_init(&q, 0, 8), RELAY_EINVAL);
    assert_err(rly_mpsc_init(&q, 8, 0), RELAY_EINVAL);
}

/* Rings of 64 KiB and more are mapped; past the populate budget (32 MiB of rings in the process)
   they start untouched. Either way a fresh ring is valid (zeroed cells mean "empty") and keeps
   order over several laps, alone and after others were freed. */
static void mpsc_large_rings_lap_in_order(void **state)
{
    enum { RINGS = 300, CAP = 4096 }; /* 4096 x 32-byte cells = 128 KiB each, 37.5 MiB in all */
    rly_mpsc *q = calloc(RINGS, sizeof *q);
    assert_non_null(q);
    for (int r = 0; r < RINGS; r++)
        assert_ok(rly_mpsc_init(&q[r], CAP, sizeof(item)));
    item out[64];
    for (int r = 0; r < RINGS; r += 37) { /* populated and lazy rings alike */
        uint32_t next = 0, sent = 0;
        while (sent < 3 * CAP + 17) {
            item b[48];
            uint32_t k = 0;
            for (; k < 48; k++)
                b[k] = (item){.producer = (uint32_t)r, .seq = sent + k};
            assert_ok(rly_mpsc_push_batch(&q[r], b, 48));
            sent += 48;
            size_t n;
            while ((n = rly_mpsc_pop_batch(&q[r], out, 64 - (sent % 5))) > 0)
                for (size_t i = 0; i < n; i++) {
                    assert_int_equal(out[i].producer, (uint32_t)r);
                    assert_int_equal(out[i].seq, next++);
                }
        }
        assert_int_equal(next, sent);
        assert_int_equal(rly_mpsc_size_approx(&q[r]), 0);
    }
    /* Fill one ring to capacity: exactly CAP fit, then it is full, then it drains in order. */
    rly_mpsc *f = &q[RINGS - 1];
    for (uint32_t i = 0; i < CAP; i++)
        assert_ok(rly_mpsc_push(f, &(item){.seq = i}));
    assert_err(rly_mpsc_push(f, &(item){.seq = 0}), RELAY_EFULL);
    uint32_t next = 0;
    size_t n;
    while ((n = rly_mpsc_pop_batch(f, out, 64)) > 0)
        for (size_t i = 0; i < n; i++)
            assert_int_equal(out[i].seq, next++);
    assert_int_equal(next, CAP);
    for (int r = 0; r < RINGS; r++)
        rly_mpsc_fini(&q[r]);
    /* After the frees the budget is back: new rings are populated again and work. */
    assert_ok(rly_mpsc_init(&q[0], CAP, sizeof(item)));
    assert_ok(rly_mpsc_push(&q[0], &(item){.seq = 7}));
    assert_int_equal(rly_mpsc_pop_batch(&q[0], out, 64), 1);
    assert_int_equal(out[0].seq, 7);
    rly_mpsc_fini(&q[0]);
    free(q);
}

#define PRODUCERS 4
typedef struct {
    rly_mpsc *q;
    uint32_t id;
    uint32_t count;
} prod_arg;

static void *producer(void *p)
{
    prod_arg *a = p;
    uint32_t seq = 0;
    while (seq < a->count) {
        if (seq % 3 == 0 && seq + 4 <= a->count) {
            item b[4];
            for (int i = 0; i < 4; i++)
                b[i] = (item){.producer = a->id, .seq = seq + (uint32_t)i};
            if (rly_mpsc_push_batch(a->q, b, 4) == RELAY_OK)
                seq += 4;
        } else if (rly_mpsc_push(a->q, &(item){.producer = a->id, .seq = seq}) == RELAY_OK) {
            seq++;
        }
    }
    return NULL;
}

static void mpsc_concurrent_fifo_per_producer(void **state)
{
    uint32_t per = test_sanitized() ? 20000 : 200000;
    rly_mpsc q;
    assert_ok(rly_mpsc_init(&q, 64, sizeof(item)));
    rly_thread t[PRODUCERS];
    prod_arg args[PRODUCERS];
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        args[i] = (prod_arg){&q, i, per};
        assert_ok(rly_thread_start(&t[i], producer, &args[i], "prod"));
    }
    uint32_t next[PRODUCERS] = {0};
    uint64_t total = 0;
    item buf[32];
    while (total < (uint64_t)per * PRODUCERS) {
        size_t n = rly_mpsc_pop_batch(&q, buf, 32);
        for (size_t i = 0; i < n; i++) {
            assert_true(buf[i].producer < PRODUCERS);
            assert_int_equal(buf[i].seq, next[buf[i].producer]);
            next[buf[i].producer]++;
        }
        total += n;
    }
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        rly_thread_join(t[i]);
        assert_int_equal(next[i], per);
    }
    assert_int_equal(rly_mpsc_pop_batch(&q, buf, 32), 0);
    rly_mpsc_fini(&q);
}

static void spsc_wraps_and_batches(void **state)
{
    rly_spsc q;
    assert_ok(rly_spsc_init(&q, 4, sizeof(uint64_t)));
    uint64_t in[6] = {1, 2, 3, 4, 5, 6}, out[6];
    assert_int_equal(rly_spsc_push_batch(&q, in, 6), 4);
    assert_int_equal(rly_spsc_pop_batch(&q, out, 3), 3);
    assert_int_equal(out[2], 3);
    assert_int_equal(rly_spsc_push_batch(&q, in + 4, 2), 2);
    assert_int_equal(rly_spsc_pop_batch(&q, out, 6), 3);
    assert_int_equal(out[0], 4);
    assert_int_equal(out[1], 5);
    assert_int_equal(out[2], 6);
    rly_spsc_fini(&q);
}

typedef struct {
    rly_spsc *q;
    uint64_t count;
} spsc_arg;

static void *spsc_producer(void *p)
{
    spsc_arg *a = p;
    uint64_t next = 0, buf[16];
    while (next < a->count) {
        size_t n = 0;
        while (n < 16 && next + n < a->count) {
            buf[n] = next + n;
            n++;
        }
        next += rly_spsc_push_batch(a->q, buf, n);
    }
    return NULL;
}

static void spsc_concurrent_order(void **state)
{
    uint64_t count = test_sanitized() ? 100000 : 2000000;
    rly_spsc q;
    assert_ok(rly_spsc_init(&q, 256, sizeof(uint64_t)));
    spsc_arg a = {&q, count};
    rly_thread t;
    assert_ok(rly_thread_start(&t, spsc_producer, &a, "spsc"));
    uint64_t expect = 0, buf[64];
    while (expect < count) {
        size_t n = rly_spsc_pop_batch(&q, buf, 64);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(buf[i], expect++);
    }
    rly_thread_join(t);
    rly_spsc_fini(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mpsc_capacity_and_order),
        cmocka_unit_test(mpsc_rejects_bad_init),
        cmocka_unit_test(mpsc_large_rings_lap_in_order),
        cmocka_unit_test(mpsc_concurrent_fifo_per_producer),
        cmocka_unit_test(spsc_wraps_and_batches),
        cmocka_unit_test(spsc_concurrent_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
