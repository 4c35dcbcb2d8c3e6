/* Router task: ordered delivery to owned actors and fair stepping, in slices on a worker pool. */
#include "routing/router.h"

#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/log.h"

#define BATCH 128
/* A slice drains at most this many batches before the worker moves on to other routers. */
#define SLICE_BATCHES 8

struct rly_router {
    rly_mpsc intake;
    rly_task task; /* scheduling on the pool */
    uint32_t id;
    bool started;
    rly_reply *stopped; /* completed by the worker that handles STOP, as its last touch of r */
    rly_router_return_fn ret;
    void *ret_ctx;
    rly_idmap actors; /* id -> rly_actor_slot*, router thread only */
    rly_actor_slot **active;
    uint32_t n_active, cap_active;
    rly_actor_slot **step_slots; /* step_many: a snapshot of active [cap_active] */
    bool *keep;                  /* step_many: results [cap_active] */
    uint32_t step_cursor;
    _Atomic uint64_t delivered, misrouted, steps;
    _Atomic uint32_t n_actors;
    void *user;
    rly_actor_slot *run_slots[BATCH];
};

relay_err rly_router_new(uint32_t id, size_t queue_cap, rly_router_return_fn ret, void *ret_ctx,
                         rly_router **out)
{
    rly_router *r = calloc(1, sizeof *r);
    if (!r)
        return RELAY_ENOMEM;
    relay_err e = rly_mpsc_init(&r->intake, queue_cap, sizeof(rly_msg));
    if (e)
        goto fail;
    e = rly_idmap_init(&r->actors, 64);
    if (e)
        goto fail;
    r->id = id;
    r->ret = ret;
    r->ret_ctx = ret_ctx;
    *out = r;
    return RELAY_OK;
fail:
    rly_mpsc_fini(&r->intake);
    free(r);
    return e;
}

uint32_t rly_router_id(const rly_router *r)
{
    return r->id;
}

void rly_router_set_user(rly_router *r, void *user)
{
    r->user = user;
}

void *rly_router_user(const rly_router *r)
{
    return r->user;
}

bool rly_router_on_thread(const rly_router *r)
{
    return r->started && rly_task_current() == &r->task;
}

relay_err rly_router_push_batch(rly_router *r, const rly_msg *msgs, size_t n)
{
    relay_err e = rly_mpsc_push_batch(&r->intake, msgs, n);
    if (e == RELAY_OK && r->started)
        rly_task_notify(&r->task);
    return e;
}

size_t rly_router_free_space(rly_router *r)
{
    size_t used = rly_mpsc_size_approx(&r->intake);
    size_t cap = rly_mpsc_capacity(&r->intake);
    return used >= cap ? 0 : cap - used;
}

void rly_router_set_active(rly_actor_slot *s, bool active)
{
    rly_router *r = s->router;
    if (!r)
        return;
    if (active && s->active_idx < 0) {
        if (r->n_active == r->cap_active) {
            uint32_t cap = r->cap_active ? r->cap_active * 2 : 16;
            rly_actor_slot **a = realloc(r->active, cap * sizeof *a);
            if (a)
                r->active = a;
            rly_actor_slot **ss = a ? realloc(r->step_slots, cap * sizeof *ss) : NULL;
            if (ss)
                r->step_slots = ss;
            bool *kp = ss ? realloc(r->keep, cap * sizeof *kp) : NULL;
            if (kp)
                r->keep = kp;
            if (!kp) {
                rly_error("router", "router %u: cannot grow the active list", r->id);
                return;
            }
            r->cap_active = cap;
        }
        s->active_idx = (int32_t)r->n_active;
        r->active[r->n_active++] = s;
    } else if (!active && s->active_idx >= 0) {
        uint32_t i = (uint32_t)s->active_idx;
        rly_actor_slot *last = r->active[--r->n_active];
        r->active[i] = last;
        last->active_idx = (int32_t)i;
        s->active_idx = -1;
    }
}

/* bump adds n to a counter only this router's thread writes: a plain load and store, no RMW. */
static inline void bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static void return_event(rly_router *r, rly_msg *ev)
{
    r->ret(r->ret_ctx, ev);
}

/* handle runs one intake message; returns false on STOP. */
static bool handle(rly_router *r, rly_msg *m)
{
    switch (m->kind) {
    case RLY_KIND_DATA: {
        rly_actor_slot *s = rly_idmap_get(&r->actors, m->actor);
        if (!s) {
            bump(&r->misrouted, 1);
            m->flags |= RLY_MSG_REQUEUED;
            return_event(r, m);
            return true;
        }
        s->ops->deliver(s, m);
        bump(&r->delivered, 1);
        return true;
    }
    case RLY_KIND_ADOPT: {
        rly_actor_slot *s = m->payload;
        s->router = r;
        s->active_idx = -1;
        if (rly_idmap_put(&r->actors, s->id, s) != RELAY_OK) {
            /* Cannot own it: give it back so nothing is lost. */
            rly_error("router", "router %u: out of memory adopting an actor", r->id);
            s->router = NULL;
            rly_msg ev = {.actor = s->id, .kind = RLY_KIND_EV_HANDOVER, .payload = s};
            return_event(r, &ev);
            return true;
        }
        atomic_fetch_add_explicit(&r->n_actors, 1, memory_order_relaxed);
        if (s->ops->attach)
            s->ops->attach(s, r);
        return true;
    }
    case RLY_KIND_MIGRATE_OUT:
    case RLY_KIND_DETACH: {
        rly_actor_slot *s = rly_idmap_del(&r->actors, m->actor);
        if (s) {
            rly_router_set_active(s, false);
            atomic_fetch_sub_explicit(&r->n_actors, 1, memory_order_relaxed);
            if (m->kind == RLY_KIND_DETACH && !(m->u32 & RLY_REMOVE_KEEP) && s->ops->detach)
                s->ops->detach(s);
            s->router = NULL;
        }
        rly_msg ev = {.actor = m->actor,
                      .kind =
                          m->kind == RLY_KIND_DETACH ? RLY_KIND_EV_REMOVED : RLY_KIND_EV_HANDOVER,
                      .payload = s,
                      .reply = m->reply};
        return_event(r, &ev);
        return true;
    }
    case RLY_KIND_STOP:
        return false;
    default:
        rly_error("router", "router %u: unexpected message kind %u", r->id, m->kind);
        rly_msg_discard(m, RELAY_EINTERNAL);
        return true;
    }
}

/* inference_run counts the RequestInference messages at the head of msgs that go to owned actors
   whose ops can take them together, filling r->run_slots; 0 or 1 means "deliver one by one". */
static size_t inference_run(rly_router *r, const rly_msg *msgs, size_t n)
{
    size_t k = 0;
    const rly_actor_ops *ops = NULL;
    while (k < n && msgs[k].kind == RLY_KIND_DATA && msgs[k].proto == RLY_REQUEST_INFERENCE) {
        rly_actor_slot *s = rly_idmap_get(&r->actors, msgs[k].actor);
        if (!s || !s->ops->deliver_many || (ops && s->ops != ops))
            break;
        ops = s->ops;
        r->run_slots[k++] = s;
    }
    return k;
}

/* step_active gives each active actor one step, starting where the last round stopped. */
static bool step_active(rly_router *r)
{
    uint32_t n = r->n_active;
    if (n == 0)
        return false;
    const rly_actor_ops *ops = r->active[0]->ops;
    if (n > 1 && ops->step_many) {
        /* one step of every active actor at once (they share the ops) */
        uint32_t m = 0;
        for (uint32_t k = 0; k < n; k++)
            if (r->active[k]->ops == ops)
                r->step_slots[m++] = r->active[k];
        if (m > 1) {
            ops->step_many(r->step_slots, m, r->keep);
            bump(&r->steps, m);
            for (uint32_t k = 0; k < m; k++)
                if (!r->keep[k])
                    rly_router_set_active(r->step_slots[k], false);
            return r->n_active > 0;
        }
    }
    for (uint32_t k = 0; k < n && r->n_active; k++) {
        uint32_t i = r->step_cursor++ % r->n_active;
        rly_actor_slot *s = r->active[i];
        bump(&r->steps, 1);
        if (!s->ops->step || !s->ops->step(s))
            rly_router_set_active(s, false);
    }
    return r->n_active > 0;
}

/* finish ends the router after STOP: what followed is routed again, then the joiner is told. */
static rly_task_status finish(rly_router *r, rly_msg *rest, size_t n)
{
    /* STOP is the last message the dispatcher sends; anything after it is a bug, but it is
       still routed again rather than lost. */
    for (size_t i = 0; i < n; i++) {
        rly_error("router", "router %u: message after STOP, routing it again", r->id);
        rest[i].flags |= RLY_MSG_REQUEUED;
        return_event(r, &rest[i]);
    }
    rly_reply *stopped = r->stopped;
    rly_reply_complete(stopped, RELAY_OK, 0, NULL, NULL); /* r may be freed from here on */
    return RLY_TASK_DONE;
}

/* router_run is one slice on a pool worker: drain up to SLICE_BATCHES batches in order, then
   give each active actor one step; the worker queues it again while work is left. */
static rly_task_status router_run(rly_task *t)
{
    rly_router *r = (rly_router *)((char *)t - offsetof(rly_router, task));
    rly_msg buf[BATCH];
    size_t n = 0;
    for (int b = 0; b < SLICE_BATCHES; b++) {
        n = rly_mpsc_pop_batch(&r->intake, buf, BATCH);
        size_t i = 0;
        while (i < n) {
            size_t run = inference_run(r, buf + i, n - i);
            if (run > 1) {
                r->run_slots[0]->ops->deliver_many(r->run_slots, buf + i, run);
                bump(&r->delivered, run);
                i += run;
                continue;
            }
            if (!handle(r, &buf[i++]))
                return finish(r, buf + i, n - i);
        }
        if (n < BATCH)
            break;
    }
    bool work = step_active(r);
    return work || n == BATCH || rly_mpsc_size_approx(&r->intake) ? RLY_TASK_MORE : RLY_TASK_IDLE;
}

relay_err rly_router_start(rly_router *r, rly_pool *pool)
{
    if (!r || !pool || r->started)
        return RELAY_EINVAL;
    r->stopped = rly_reply_new();
    if (!r->stopped)
        return RELAY_ENOMEM;
    rly_task_init(&r->task, pool, router_run);
    r->started = true;
    rly_task_notify(&r->task); /* in case messages were queued before the start */
    return RELAY_OK;
}

void rly_router_join(rly_router *r)
{
    if (r->started) {
        rly_reply_wait(r->stopped, -1, NULL, NULL);
        rly_reply_release(r->stopped);
        r->stopped = NULL;
        r->started = false;
    }
}

void rly_router_free(rly_router *r)
{
    if (!r)
        return;
    rly_router_join(r);
    rly_msg buf[BATCH];
    size_t n;
    while ((n = rly_mpsc_pop_batch(&r->intake, buf, BATCH)) > 0)
        for (size_t i = 0; i < n; i++)
            if (buf[i].kind == RLY_KIND_DATA)
                rly_msg_discard(&buf[i], RELAY_ESHUTDOWN);
    rly_mpsc_fini(&r->intake);
    rly_idmap_fini(&r->actors);
    free(r->active);
    free(r->step_slots);
    free(r->keep);
    free(r);
}

void rly_router_get_stats(rly_router *r, rly_router_stats *out)
{
    out->delivered = atomic_load_explicit(&r->delivered, memory_order_relaxed);
    out->misrouted = atomic_load_explicit(&r->misrouted, memory_order_relaxed);
    out->steps = atomic_load_explicit(&r->steps, memory_order_relaxed);
    out->actors = atomic_load_explicit(&r->n_actors, memory_order_relaxed);
    out->queued = rly_mpsc_size_approx(&r->intake);
    out->id = r->id;
}
