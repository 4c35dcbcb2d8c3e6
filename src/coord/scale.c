/*
 * Scale manager: adds and removes routers while traffic flows, and rebalances actors
 * deterministically (actors sorted by id, dealt round-robin over routers sorted by id; the seed
 * used DashMap iteration order, which is not reproducible). Every move goes through the
 * dispatcher, which keeps each actor's messages in order across the move (routing/dispatcher.h).
 */
#include <stdlib.h>

#include "coord/coordinator.h"
#include "core/log.h"

/* rebalance assigns actor i (by id order) to router i % R (by id order); lock held. */
static relay_err rebalance(rly_coord *c)
{
    if (c->n_routers == 0)
        return RELAY_EINVAL;
    size_t n = rly_state_list(&c->state, NULL, NULL, 0);
    if (n == 0)
        return RELAY_OK;
    relay_id *ids = malloc(n * sizeof *ids);
    uint32_t *cur = malloc(n * sizeof *cur);
    relay_err e = RELAY_OK;
    if (!ids || !cur) {
        e = RELAY_ENOMEM;
        goto out;
    }
    n = rly_state_list(&c->state, ids, cur, n);
    /* Send every move, then wait once: moves are acknowledged in order by the dispatcher. */
    rly_reply **replies = calloc(n, sizeof *replies);
    if (!replies) {
        e = RELAY_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n && !e; i++) {
        uint32_t want = rly_router_id(c->routers[i % c->n_routers]);
        if (cur[i] == want)
            continue;
        rly_reply *rep = rly_reply_new();
        if (!rep) {
            e = RELAY_ENOMEM;
            break;
        }
        rly_msg m = {.actor = ids[i], .kind = RLY_KIND_CTL_ACTOR_MOVE, .u32 = want, .reply = rep};
        e = rly_dispatcher_control(c->disp, &m);
        if (e) {
            rly_reply_release(rep);
            rly_reply_release(rep);
            break;
        }
        replies[i] = rep;
        cur[i] = want;
    }
    for (size_t i = 0; i < n; i++) {
        if (!replies[i])
            continue;
        relay_err re = rly_reply_wait(replies[i], c->cfg.control_timeout_ns, NULL, NULL);
        if (re == RELAY_OK)
            rly_state_set_router(&c->state, ids[i], cur[i]);
        else if (!e)
            e = re;
        rly_reply_release(replies[i]);
    }
    free(replies);
out:
    free(ids);
    free(cur);
    return e;
}

/* Router queues of all routers together stay within this (a queue cell is 64 bytes), unless
   there are so many routers that QUEUE_MIN_CAP each is more. Small rings also keep a lightly
   loaded router's queue in cache: a message lands in the cell after the previous one, so with
   hundreds of routers and big rings every message touched a line last used a lap ago. */
#define QUEUE_BUDGET_BYTES (16u << 20)
#define QUEUE_MIN_CAP 1024u

/* queue_cap returns the intake capacity for a new router when total routers will exist: the
   configured capacity, shrunk (not below 1024) so thousands of routers do not take gigabytes. */
static size_t queue_cap(const rly_coord *c, uint32_t total)
{
    size_t cap = c->cfg.router_queue_capacity;
    size_t fair = QUEUE_BUDGET_BYTES / 64 / (total ? total : 1);
    if (cap > fair) {
        size_t p = QUEUE_MIN_CAP;
        while (p * 2 <= fair)
            p *= 2;
        cap = p;
    }
    return cap;
}

relay_err rly_coord_scale_out(rly_coord *c, uint32_t n)
{
    if (!c || n == 0)
        return RELAY_EINVAL;
    rly_mutex_lock(&c->lock);
    relay_err e = c->lifecycle ? RELAY_ESHUTDOWN : RELAY_OK;
    if (!e && (n > RLY_MAX_ROUTERS || c->n_routers + n > RLY_MAX_ROUTERS)) {
        rly_error("scale", "cannot scale out by %u: %u router(s) exist and the limit is %u", n,
                  c->n_routers, RLY_MAX_ROUTERS);
        rly_mutex_unlock(&c->lock);
        return RELAY_ETOOBIG;
    }
    if (!e && c->n_routers + n > c->cap_routers) {
        uint32_t cap = c->cap_routers ? c->cap_routers : 8;
        while (cap < c->n_routers + n)
            cap *= 2;
        rly_router **a = realloc(c->routers, cap * sizeof *a);
        if (!a)
            e = RELAY_ENOMEM;
        else {
            c->routers = a;
            c->cap_routers = cap;
        }
    }
    /* Create and start every new router, then tell the dispatcher about all of them and wait
       once: one control round trip per scale-out, not one per router (4,096 routers used to
       take seconds on a loaded machine, a dispatcher wake-up each). */
    rly_router **fresh = e ? NULL : calloc(n, sizeof *fresh);
    rly_reply **reps = e ? NULL : calloc(n, sizeof *reps);
    if (!e && (!fresh || !reps))
        e = RELAY_ENOMEM;
    uint32_t made = 0;
    size_t cap = queue_cap(c, c->n_routers + n);
    for (uint32_t k = 0; k < n && !e; k++) {
        rly_router *r = NULL;
        e = rly_router_new(c->next_router_id + k, cap, rly_dispatcher_router_return, c->disp, &r);
        if (e)
            break;
        if (c->cfg.router_started && (e = c->cfg.router_started(c->cfg.hook_ctx, r)) != RELAY_OK) {
            rly_router_free(r);
            break;
        }
        e = rly_router_start(r, c->pool);
        if (e) {
            if (c->cfg.router_stopped)
                c->cfg.router_stopped(c->cfg.hook_ctx, r);
            rly_router_free(r);
            break;
        }
        fresh[made++] = r;
    }
    for (uint32_t k = 0; k < made && !e; k++) {
        rly_msg m = {.kind = RLY_KIND_CTL_ROUTER_ADD, .payload = fresh[k]};
        if (!(m.reply = rly_reply_new())) {
            e = RELAY_ENOMEM;
            break;
        }
        if ((e = rly_dispatcher_control(c->disp, &m)) != RELAY_OK) {
            rly_reply_release(m.reply); /* the completer's reference, never handed over */
            rly_reply_release(m.reply);
            break;
        }
        reps[k] = m.reply;
    }
    for (uint32_t k = 0; k < made; k++) {
        rly_router *r = fresh[k];
        relay_err re = RELAY_ECANCELED;
        if (reps[k]) {
            re = rly_reply_wait(reps[k], c->cfg.control_timeout_ns, NULL, NULL);
            rly_reply_release(reps[k]);
        }
        if (re == RELAY_OK) {
            c->routers[c->n_routers++] = r; /* in id order, as rebalance wants */
            continue;
        }
        if (!e)
            e = re;
        /* Running but unknown to the dispatcher: stop it ourselves. */
        rly_msg stop = {.kind = RLY_KIND_STOP};
        while (rly_router_push_batch(r, &stop, 1) != RELAY_OK)
            rly_cpu_relax();
        rly_router_join(r);
        if (c->cfg.router_stopped)
            c->cfg.router_stopped(c->cfg.hook_ctx, r);
        rly_router_free(r);
    }
    c->next_router_id += made;
    free(fresh);
    free(reps);
    if (!e)
        e = rebalance(c);
    rly_mutex_unlock(&c->lock);
    if (e)
        rly_error("scale", "scale out by %u failed: %s", n, relay_strerror(e));
    return e;
}

relay_err rly_coord_scale_in(rly_coord *c, uint32_t n)
{
    if (!c || n == 0)
        return RELAY_EINVAL;
    rly_mutex_lock(&c->lock);
    relay_err e = c->lifecycle ? RELAY_ESHUTDOWN : RELAY_OK;
    if (!e && n >= c->n_routers) {
        rly_error("scale", "cannot scale in by %u: %u router(s) exist and at least one must remain",
                  n, c->n_routers);
        e = RELAY_EINVAL;
    }
    if (e) {
        rly_mutex_unlock(&c->lock);
        return e;
    }
    /* The newest routers go (deterministic); their actors move first, in order. */
    rly_router **gone = malloc(n * sizeof *gone);
    if (!gone) {
        rly_mutex_unlock(&c->lock);
        return RELAY_ENOMEM;
    }
    for (uint32_t k = 0; k < n; k++)
        gone[k] = c->routers[c->n_routers - n + k];
    c->n_routers -= n;
    e = rebalance(c);
    for (uint32_t k = 0; k < n && !e; k++) {
        e = rly_coord_control(c, RLY_KIND_CTL_ROUTER_REMOVE, (relay_id){0}, rly_router_id(gone[k]),
                              NULL, NULL);
        if (!e) {
            rly_router_join(gone[k]);
            if (c->cfg.router_stopped)
                c->cfg.router_stopped(c->cfg.hook_ctx, gone[k]);
            rly_router_free(gone[k]);
            gone[k] = NULL;
        }
    }
    if (e) {
        /* Keep whatever could not be removed so shutdown still stops it. */
        for (uint32_t k = 0; k < n; k++)
            if (gone[k])
                c->routers[c->n_routers++] = gone[k];
        rly_error("scale", "scale in by %u failed: %s", n, relay_strerror(e));
    }
    free(gone);
    rly_mutex_unlock(&c->lock);
    return e;
}
