/*
 * rly_dispatcher: the RouterDispatcher. One thread that reads the global intake (fed by the
 * coordinator and, later, network receivers), looks up the router that owns each message's actor
 * and forwards it there, and holds messages for actors that are not (yet) on a router.
 *
 * Semantics kept from the seed: forward to the owning router; queue messages for unassigned
 * actors and retry on the seed's schedule (100, 400, 1200, 3200, 4000 ms ... after first queued,
 * see rly_dispatcher_retry_offset_ns, on a 50 ms tick whose missed ticks are skipped) until a
 * per-protocol time-to-live (10/15/20/30/30/ 60/60 s); three error kinds (RELAY_EDISPATCH,
 * RELAY_EROUTER_NOT_FOUND, RELAY_ENOT_ASSIGNED).
 *
 * Fixed relative to the seed:
 *  - pending messages form a per-actor FIFO (nothing is overwritten), delivered in order;
 *  - a message for an actor that has pending messages queues behind them, and order holds across
 *    migration: the old router hands the actor back only after delivering everything queued
 *    before the move, and the dispatcher re-delivers the actor and then its pending messages;
 *  - pending memory is bounded: a send that would exceed it fails at once with RELAY_EFULL
 *    (counted as rejected), the caller keeping the message;
 *  - an expired message completes its reply with RELAY_ETIMEDOUT (counted); nothing is dropped
 *    without its reply being completed and its payload freed;
 *  - the route table (actor -> router) is owned by this thread; senders read it without locks.
 *
 * Threads: the dispatcher's state is touched only by its own thread. Senders may call
 * rly_dispatcher_send* from any thread. Routers report back through a short locked list.
 */
#ifndef RLY_ROUTING_DISPATCHER_H
#define RLY_ROUTING_DISPATCHER_H

#include <stdint.h>

#include "routing/message.h"
#include "routing/router.h"

typedef struct rly_dispatcher rly_dispatcher;

typedef struct rly_dispatcher_config {
    size_t intake_capacity;          /* global queue, messages (default 65536) */
    size_t pending_capacity;         /* max messages held for unassigned actors or stuck routers
                                        (default 65536) */
    int64_t ttl_ns[RLY_PROTO_COUNT]; /* 0 = the seed's default for that protocol */
    int64_t tick_ns;                 /* retry timer period (default 50 ms) */
    int64_t retry_initial_ns;        /* first retry delay (default 100 ms) */
    int64_t retry_max_ns;            /* backoff cap (default 800 ms) */
    int64_t send_timeout_ns; /* how long a send waits for intake room, then RELAY_EFULL (5 s) */
    bool no_fast_path;       /* route every message through the dispatcher thread */
} rly_dispatcher_config;

typedef struct rly_dispatcher_stats {
    uint64_t dispatched; /* forwarded to a router, by the dispatcher or on the fast path */
    uint64_t direct;     /* of those, pushed by senders straight to the router (fast path) */
    uint64_t queued;     /* entered the pending table */
    uint64_t retried;    /* retry attempts of pending actors */
    uint64_t expired;    /* completed with RELAY_ETIMEDOUT after their TTL */
    uint64_t rejected;   /* refused at send time because pending memory was full */
    uint64_t requeued;   /* misrouted messages routed again */
    uint64_t failed;     /* completed with an error at shutdown */
    uint64_t pending;    /* currently held */
} rly_dispatcher_stats;

/*
 * rly_dispatcher_retry_offset_ns returns when retry n (0-based) of a pending actor is due,
 * counted from when its FIFO became non-empty: min(retry_initial * 2^n, retry_max) * (n + 1),
 * the seed's schedule (100, 400, 1200, 3200, 4000, 4800 ... ms with the defaults).
 */
int64_t rly_dispatcher_retry_offset_ns(const rly_dispatcher_config *cfg, uint32_t n);

/* rly_dispatcher_config_default fills cfg with the defaults above. */
void rly_dispatcher_config_default(rly_dispatcher_config *cfg);

/* rly_dispatcher_new creates a dispatcher (not started); cfg may be NULL for defaults. */
relay_err rly_dispatcher_new(const rly_dispatcher_config *cfg, rly_dispatcher **out);

/* rly_dispatcher_start starts the dispatcher thread. */
relay_err rly_dispatcher_start(rly_dispatcher *d);

/* rly_dispatcher_join waits for the thread to exit (after a shutdown completed). */
void rly_dispatcher_join(rly_dispatcher *d);

/* rly_dispatcher_free frees d; messages still queued are failed with RELAY_ESHUTDOWN. */
void rly_dispatcher_free(rly_dispatcher *d);

/* rly_dispatcher_router_return is the rly_router_return_fn to give routers (ctx = d). */
void rly_dispatcher_router_return(void *ctx, rly_msg *ev);

/*
 * rly_dispatcher_send queues one actor message. On RELAY_OK the dispatcher owns it. On error the
 * caller still owns it: RELAY_ESHUTDOWN (closed), RELAY_EFULL (pending memory full for an
 * unassigned actor, or no intake room within the send timeout), RELAY_ENOTFOUND (the actor was
 * removed; a message that reaches the dispatcher after the removal ends with it), RELAY_EINVAL.
 */
relay_err rly_dispatcher_send(rly_dispatcher *d, rly_msg *m);

/*
 * rly_dispatcher_send_batch queues msgs[0..n) in order and returns how many were taken (a prefix);
 * *err receives the reason the rest was not. The caller owns the messages not taken.
 */
size_t rly_dispatcher_send_batch(rly_dispatcher *d, rly_msg *msgs, size_t n, relay_err *err);

/*
 * rly_dispatcher_control queues a control message (kinds RLY_KIND_CTL_*) whose reply reports the
 * outcome; it bypasses the closed check only for RLY_KIND_CTL_SHUTDOWN.
 */
relay_err rly_dispatcher_control(rly_dispatcher *d, rly_msg *m);

/* rly_dispatcher_close makes further sends fail with RELAY_ESHUTDOWN (stop intake). */
void rly_dispatcher_close(rly_dispatcher *d);

/* rly_dispatcher_is_assigned reports whether id is currently on a router (lock-free). */
bool rly_dispatcher_is_assigned(rly_dispatcher *d, relay_id id);

/* rly_dispatcher_get_stats copies the counters (published once per dispatcher loop). */
void rly_dispatcher_get_stats(rly_dispatcher *d, rly_dispatcher_stats *out);

#endif
