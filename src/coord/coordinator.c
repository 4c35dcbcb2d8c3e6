/* Coordinator: owns the routing runtime; actor registration and removal. */
#include "coord/coordinator.h"

#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"

void rly_coord_config_default(rly_coord_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    rly_dispatcher_config_default(&cfg->dispatcher);
    cfg->routers = 1;
    cfg->router_queue_capacity = 16384;
    cfg->control_timeout_ns = 30 * RLY_NS_PER_S;
    cfg->shutdown_timeout_ns = 30 * RLY_NS_PER_S;
}

relay_err rly_coord_control(rly_coord *c, uint8_t kind, relay_id actor, uint32_t u32, void *payload,
                            void **out_ptr)
{
    rly_msg m = {.actor = actor, .kind = kind, .u32 = u32, .payload = payload};
    m.reply = rly_reply_new();
    if (!m.reply)
        return RELAY_ENOMEM;
    relay_err e = rly_dispatcher_control(c->disp, &m);
    if (e) {
        rly_reply_release(m.reply); /* the completer's reference, never handed over */
        rly_reply_release(m.reply);
        return e;
    }
    e = rly_reply_wait(m.reply, c->cfg.control_timeout_ns, NULL, out_ptr);
    rly_reply_release(m.reply);
    return e;
}

relay_err rly_coord_new(const rly_coord_config *cfg, rly_coord **out)
{
    if (!out)
        return RELAY_EINVAL;
    rly_coord *c = calloc(1, sizeof *c);
    if (!c)
        return RELAY_ENOMEM;
    rly_coord_config_default(&c->cfg);
    if (cfg) {
        c->cfg.dispatcher = cfg->dispatcher;
        c->cfg.routers = cfg->routers;
        c->cfg.workers = cfg->workers;
        if (cfg->router_queue_capacity)
            c->cfg.router_queue_capacity = cfg->router_queue_capacity;
        if (cfg->control_timeout_ns > 0)
            c->cfg.control_timeout_ns = cfg->control_timeout_ns;
        if (cfg->shutdown_timeout_ns > 0)
            c->cfg.shutdown_timeout_ns = cfg->shutdown_timeout_ns;
        c->cfg.router_started = cfg->router_started;
        c->cfg.router_stopped = cfg->router_stopped;
        c->cfg.hook_ctx = cfg->hook_ctx;
    }
    if (c->cfg.routers == 0) {
        rly_error("coord", "at least one router is required");
        free(c);
        return RELAY_EINVAL;
    }
    if (c->cfg.routers > RLY_MAX_ROUTERS) {
        rly_error("coord", "%u routers requested; the limit is %u", c->cfg.routers,
                  RLY_MAX_ROUTERS);
        free(c);
        return RELAY_ETOOBIG;
    }
    rly_mutex_init(&c->lock);
    relay_err e = rly_state_init(&c->state);
    if (e) {
        rly_mutex_fini(&c->lock);
        free(c);
        return e;
    }
    c->next_router_id = 1;
    e = rly_pool_new(c->cfg.workers, &c->pool);
    if (e) {
        rly_error("coord", "cannot start %u worker thread(s): %s", c->cfg.workers,
                  relay_strerror(e));
        rly_state_fini(&c->state);
        rly_mutex_fini(&c->lock);
        free(c);
        return e;
    }
    e = rly_dispatcher_new(&c->cfg.dispatcher, &c->disp);
    if (!e)
        e = rly_dispatcher_start(c->disp);
    if (!e)
        e = rly_coord_scale_out(c, c->cfg.routers);
    if (e) {
        rly_coord_free(c);
        return e;
    }
    *out = c;
    return RELAY_OK;
}

relay_err rly_coord_send(rly_coord *c, rly_msg *m)
{
    return rly_dispatcher_send(c->disp, m);
}

size_t rly_coord_send_batch(rly_coord *c, rly_msg *msgs, size_t n, relay_err *err)
{
    return rly_dispatcher_send_batch(c->disp, msgs, n, err);
}

void rly_coord_get_stats(rly_coord *c, rly_dispatcher_stats *out)
{
    rly_dispatcher_get_stats(c->disp, out);
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

/* least_loaded returns the router with the fewest actors (first in c->routers, i.e. lowest id,
   on ties); lock held. One pass over the actors for all routers (O(A log R), not O(A R)). */
static uint32_t least_loaded(rly_coord *c)
{
    uint32_t best = 0;
    size_t best_load = SIZE_MAX;
    uint32_t n = c->n_routers;
    uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    size_t *loads = malloc((n ? n : 1) * sizeof *loads);
    if (ids && loads) {
        for (uint32_t i = 0; i < n; i++)
            ids[i] = rly_router_id(c->routers[i]);
        qsort(ids, n, sizeof *ids, cmp_u32);
        rly_state_loads(&c->state, ids, n, loads);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = rly_router_id(c->routers[i]);
        size_t load;
        if (ids && loads) {
            uint32_t *at = bsearch(&id, ids, n, sizeof *ids, cmp_u32);
            load = loads[at - ids];
        } else {
            load = rly_state_load(&c->state, id); /* out of memory: the slow way */
        }
        if (load < best_load) {
            best = id;
            best_load = load;
        }
    }
    free(ids);
    free(loads);
    return best;
}

relay_err rly_coord_add_actor(rly_coord *c, rly_actor_slot *slot)
{
    if (!c || !slot || !slot->ops || !slot->ops->deliver)
        return RELAY_EINVAL;
    rly_mutex_lock(&c->lock);
    relay_err e = c->lifecycle ? RELAY_ESHUTDOWN : RELAY_OK;
    if (!e) {
        uint32_t router = least_loaded(c);
        e = rly_state_add(&c->state, slot, router);
        if (!e) {
            e = rly_coord_control(c, RLY_KIND_CTL_ACTOR_ADD, slot->id, router, slot, NULL);
            if (e)
                rly_state_remove(&c->state, slot->id, NULL);
        }
    }
    rly_mutex_unlock(&c->lock);
    return e;
}

relay_err rly_coord_remove_actor(rly_coord *c, relay_id id, rly_actor_slot **out)
{
    if (!c)
        return RELAY_EINVAL;
    rly_mutex_lock(&c->lock);
    relay_err e = c->lifecycle ? RELAY_ESHUTDOWN : RELAY_OK;
    if (!e)
        e = rly_state_get(&c->state, id, NULL, NULL);
    void *slot = NULL;
    if (!e)
        e = rly_coord_control(c, RLY_KIND_CTL_ACTOR_REMOVE, id, 0, NULL, &slot);
    if (!e) {
        rly_state_remove(&c->state, id, NULL);
        if (out)
            *out = slot;
    }
    rly_mutex_unlock(&c->lock);
    return e;
}

relay_err rly_coord_rename_actor(rly_coord *c, relay_id cur, relay_id next)
{
    if (!c)
        return RELAY_EINVAL;
    if (relay_id_eq(cur, next))
        return RELAY_OK;
    rly_mutex_lock(&c->lock);
    relay_err e = c->lifecycle ? RELAY_ESHUTDOWN : RELAY_OK;
    uint32_t router = 0;
    if (!e)
        e = rly_state_get(&c->state, cur, NULL, &router);
    if (!e && rly_state_get(&c->state, next, NULL, NULL) == RELAY_OK)
        e = RELAY_EEXIST;
    void *p = NULL;
    /* Take the actor off its router without detach(): its partial data moves with it. */
    if (!e)
        e = rly_coord_control(c, RLY_KIND_CTL_ACTOR_REMOVE, cur, RLY_REMOVE_KEEP, NULL, &p);
    if (!e) {
        rly_actor_slot *slot = p;
        rly_state_remove(&c->state, cur, NULL);
        slot->id = next;
        e = rly_state_add(&c->state, slot, router);
        if (!e)
            e = rly_coord_control(c, RLY_KIND_CTL_ACTOR_ADD, next, router, slot, NULL);
    }
    rly_mutex_unlock(&c->lock);
    return e;
}

uint32_t rly_coord_num_workers(rly_coord *c)
{
    return rly_pool_workers(c->pool);
}

uint32_t rly_coord_num_routers(rly_coord *c)
{
    rly_mutex_lock(&c->lock);
    uint32_t n = c->n_routers;
    rly_mutex_unlock(&c->lock);
    return n;
}

uint32_t rly_coord_router_stats(rly_coord *c, rly_router_stats *out, uint32_t cap)
{
    /* A control operation can hold the lock while it waits for acks: give up after ~100 ms so a
       metrics scrape never stalls behind a rebalance. */
    for (int tries = 0; pthread_mutex_trylock(&c->lock) != 0; tries++) {
        if (tries >= 100)
            return 0;
        rly_sleep_ns(RLY_NS_PER_MS);
    }
    uint32_t n = c->n_routers < cap ? c->n_routers : cap;
    for (uint32_t i = 0; i < n; i++)
        rly_router_get_stats(c->routers[i], &out[i]);
    rly_mutex_unlock(&c->lock);
    return n;
}

void rly_coord_free(rly_coord *c)
{
    if (!c)
        return;
    if (c->disp)
        rly_coord_shutdown(c);
    for (uint32_t i = 0; i < c->n_routers; i++) {
        rly_router_join(c->routers[i]);
        if (c->cfg.router_stopped)
            c->cfg.router_stopped(c->cfg.hook_ctx, c->routers[i]);
        rly_router_free(c->routers[i]);
    }
    free(c->routers);
    rly_pool_free(c->pool); /* every router is joined: no task is left on it */
    rly_dispatcher_free(c->disp);
    rly_state_fini(&c->state);
    rly_mutex_fini(&c->lock);
    free(c);
}
