/* Test harness for the routing layer: recording actors and synchronous control calls. */
#ifndef RELAY_TEST_ROUTING_HARNESS_H
#define RELAY_TEST_ROUTING_HARNESS_H

#include <stdatomic.h>

#include "core/clock.h"
#include "routing/dispatcher.h"
#include "test_util.h"

#define H_MAX_PRODUCERS 8

/* h_actor checks that each producer's messages arrive exactly once and in order. */
typedef struct h_actor {
    rly_actor_slot slot;
    int64_t next[H_MAX_PRODUCERS];
    _Atomic uint64_t received;
    _Atomic uint64_t order_errors;
    _Atomic uint64_t shutdowns;
    _Atomic uint64_t detached;
    _Atomic uint32_t attaches;
} h_actor;

static void h_deliver(rly_actor_slot *slot, rly_msg *m)
{
    h_actor *a = slot->actor;
    if (m->proto == RLY_SHUTDOWN) {
        atomic_fetch_add(&a->shutdowns, 1);
    } else {
        uint32_t p = m->u32 % H_MAX_PRODUCERS;
        if (m->arg != a->next[p])
            atomic_fetch_add(&a->order_errors, 1);
        a->next[p] = m->arg + 1;
        atomic_fetch_add_explicit(&a->received, 1, memory_order_relaxed);
    }
    if (m->reply)
        rly_reply_complete(m->reply, RELAY_OK, m->arg, NULL, NULL);
    m->reply = NULL;
    if (m->payload_free)
        m->payload_free(m->payload);
}

static void h_attach(rly_actor_slot *slot, rly_router *r)
{
    h_actor *a = slot->actor;
    atomic_fetch_add(&a->attaches, 1);
}

static void h_detach(rly_actor_slot *slot)
{
    h_actor *a = slot->actor;
    atomic_fetch_add(&a->detached, 1);
}

static const rly_actor_ops h_ops = {.deliver = h_deliver, .attach = h_attach, .detach = h_detach};

static inline void h_actor_init(h_actor *a, relay_id id)
{
    memset(a, 0, sizeof *a);
    a->slot.id = id;
    a->slot.actor = a;
    a->slot.ops = &h_ops;
    a->slot.active_idx = -1;
}

/* h_ctl sends a control message and waits for its reply; returns the reply status. */
static inline relay_err h_ctl(rly_dispatcher *d, uint8_t kind, relay_id actor, uint32_t u32,
                              void *payload, void **out_ptr)
{
    rly_msg m = {.actor = actor, .kind = kind, .u32 = u32, .payload = payload};
    m.reply = rly_reply_new();
    relay_err e = rly_dispatcher_control(d, &m);
    if (e) {
        rly_reply_release(m.reply);
        rly_reply_release(m.reply);
        return e;
    }
    e = rly_reply_wait(m.reply, 30 * RLY_NS_PER_S, NULL, out_ptr);
    rly_reply_release(m.reply);
    return e;
}

/* h_send sends one sequenced data message (producer p, sequence seq). */
static inline relay_err h_send(rly_dispatcher *d, relay_id actor, uint32_t p, int64_t seq)
{
    rly_msg m = rly_msg_data(actor, RLY_FLAG_LAST_INFERENCE, seq, NULL, NULL, NULL);
    m.u32 = p;
    return rly_dispatcher_send(d, &m);
}

/* h_wait_received waits until a has received want messages, or 20 s. */
static inline bool h_wait_received(h_actor *a, uint64_t want)
{
    int64_t deadline = rly_now_ns() + 20 * RLY_NS_PER_S;
    while (atomic_load(&a->received) < want) {
        if (rly_now_ns() > deadline)
            return false;
        rly_sleep_ns(RLY_NS_PER_MS);
    }
    return true;
}

#endif
