/*
 * rly_coord: the coordinator of one agent's routing runtime. It owns the dispatcher, the worker
 * pool, the routers (tasks on that pool: scaling routers never adds threads) and the state
 * manager, and exposes the control operations the agent API needs:
 *   - actors: add (placed on the least-loaded router), remove (the actor flushes and its slot is
 *     handed back), rename (set_actor_id);
 *   - scale manager (scale.c): scale out/in with deterministic rebalancing;
 *   - lifecycle (lifecycle.c): ordered, bounded, idempotent shutdown.
 * Control operations are serialised by one mutex (control plane only); messages go straight to
 * the dispatcher without it.
 */
#ifndef RLY_COORD_COORDINATOR_H
#define RLY_COORD_COORDINATOR_H

#include <stdint.h>

#include "coord/state.h"
#include "routing/dispatcher.h"

/* RLY_MAX_ROUTERS bounds the routers of one coordinator (relay.h: RELAY_MAX_ROUTERS). */
#define RLY_MAX_ROUTERS 4096u

typedef struct rly_coord_config {
    rly_dispatcher_config dispatcher;
    uint32_t routers;             /* initial router count (default 1) */
    uint32_t workers;             /* pool threads the routers run on (0 = CPUs available) */
    size_t router_queue_capacity; /* per-router intake (default 16384; shrunk down to 1024 when
                                     many routers would need over 16 MiB together) */
    int64_t control_timeout_ns;   /* wait for the dispatcher's ack (default 30 s) */
    int64_t shutdown_timeout_ns;  /* bound on shutdown (default 30 s) */
    /* router_started runs (control thread) before a new router takes actors, e.g. to give it a
       trajectory buffer with rly_router_set_user; router_stopped runs after it was joined. */
    relay_err (*router_started)(void *ctx, rly_router *r);
    void (*router_stopped)(void *ctx, rly_router *r);
    void *hook_ctx;
} rly_coord_config;

typedef struct rly_coord {
    rly_coord_config cfg;
    rly_mutex lock; /* serialises control operations */
    rly_dispatcher *disp;
    rly_pool *pool; /* the worker threads every router runs on */
    rly_state state;
    rly_router **routers; /* sorted by id */
    uint32_t n_routers, cap_routers;
    uint32_t next_router_id;
    int lifecycle; /* 0 running, 1 shutting down, 2 shut down */
    relay_err shutdown_result;
} rly_coord;

/* rly_coord_config_default fills cfg with defaults. */
void rly_coord_config_default(rly_coord_config *cfg);

/* rly_coord_new starts a dispatcher and cfg->routers routers; cfg may be NULL for defaults. */
relay_err rly_coord_new(const rly_coord_config *cfg, rly_coord **out);

/* rly_coord_free shuts down (if needed) and frees c; actor slots are not freed. */
void rly_coord_free(rly_coord *c);

/* rly_coord_send sends one actor message; ownership as rly_dispatcher_send. */
relay_err rly_coord_send(rly_coord *c, rly_msg *m);

/* rly_coord_send_batch sends msgs in order; returns how many were taken
 * (rly_dispatcher_send_batch).
 */
size_t rly_coord_send_batch(rly_coord *c, rly_msg *msgs, size_t n, relay_err *err);

/* rly_coord_get_stats copies the dispatcher's counters. */
void rly_coord_get_stats(rly_coord *c, rly_dispatcher_stats *out);

/* rly_coord_add_actor registers slot and places it on the least-loaded router (lowest id on ties).
 */
relay_err rly_coord_add_actor(rly_coord *c, rly_actor_slot *slot);

/*
 * rly_coord_remove_actor removes id after everything sent to it before has been delivered; its
 * detach() runs on its router (flushing partial data) and the slot is returned in *out.
 */
relay_err rly_coord_remove_actor(rly_coord *c, relay_id id, rly_actor_slot **out);

/* rly_coord_rename_actor moves actor cur to id next (removed, renamed, added back). */
relay_err rly_coord_rename_actor(rly_coord *c, relay_id cur, relay_id next);

/* rly_coord_num_workers returns the number of pool threads the routers share. */
uint32_t rly_coord_num_workers(rly_coord *c);

/* rly_coord_num_routers returns the current router count. */
uint32_t rly_coord_num_routers(rly_coord *c);

/*
 * rly_coord_router_stats copies the counters of up to cap routers (sorted by id) into out and
 * returns how many; 0 when a control operation holds the routers for more than ~100 ms.
 */
uint32_t rly_coord_router_stats(rly_coord *c, rly_router_stats *out, uint32_t cap);

/* rly_coord_scale_out adds n routers and rebalances the actors deterministically. */
relay_err rly_coord_scale_out(rly_coord *c, uint32_t n);

/* rly_coord_scale_in removes n routers (never the last one: RELAY_EINVAL), moving their actors. */
relay_err rly_coord_scale_in(rly_coord *c, uint32_t n);

/*
 * rly_coord_shutdown stops everything in this order: stop intake; deliver or fail (RELAY_ESHUTDOWN)
 * everything pending; deliver Shutdown to every actor; stop routers and the dispatcher; join every
 * thread. Bounded by the shutdown timeout (RELAY_ETIMEDOUT), idempotent.
 */
relay_err rly_coord_shutdown(rly_coord *c);

/* rly_coord_control sends a control message and waits for its reply value (internal helper). */
relay_err rly_coord_control(rly_coord *c, uint8_t kind, relay_id actor, uint32_t u32, void *payload,
                            void **out_ptr);

#endif
