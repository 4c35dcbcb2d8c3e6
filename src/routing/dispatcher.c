/* RouterDispatcher: forwarding, the per-actor pending FIFO with backoff and TTL, migration. */
#include "routing/dispatcher.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/idmap.h"
#include "core/log.h"

#define BATCH 256
#define STAGE_MIN 512
#define POOL_CHUNK 1024
/* A router whose queue took nothing for this long no longer holds back the intake. */
#define STUCK_NS (200 * RLY_NS_PER_US)

/* Route states, readable by senders without locks. */
enum { RS_UNKNOWN = 0, RS_ASSIGNED, RS_MIGRATING, RS_REMOVING, RS_REMOVED };

typedef struct pnode {
    rly_msg msg;
    int64_t t_queued;
    struct pnode *next;
} pnode;

typedef struct rtent {
    rly_router *router;
    uint32_t id;
    uint32_t n_actors; /* adopted or being adopted, and not yet handed back */
    uint32_t incoming; /* migrations heading here */
    bool removing;
    rly_reply *remove_reply;
    rly_msg *stage; /* messages staged for one push_batch */
    size_t n_stage, cap_stage;
    int64_t stuck_since; /* when its queue last took nothing from a non-empty stage; 0 = moving */
    bool dirty;          /* in the dispatcher's list of routers with staged messages */
} rtent;

typedef struct route {
    relay_id id;
    _Atomic uint32_t state;
    /* Fast path: a sender may push straight into the owning router's queue while `fast` is set
       and every message it sent through the dispatcher (`sent`) has been forwarded (`fwd`). */
    _Atomic uint32_t fast;
    _Atomic uint32_t direct_active; /* senders between their check and their push */
    _Atomic(rly_router *) fast_router;
    _Atomic uint64_t direct; /* messages senders pushed straight to the router (stats) */
    _Atomic uint64_t sent;   /* messages senders put on the intake for this actor */
    _Alignas(RLY_CACHELINE) _Atomic uint64_t fwd; /* of those, forwarded or ended (dispatcher) */
    uint64_t fwd_local;                           /* dispatcher's running count */
    bool in_touched;
    struct route *tnext;
    rtent *rt;     /* current router when ASSIGNED/REMOVING; source when MIGRATING */
    rtent *target; /* destination when MIGRATING */
    pnode *head, *tail;
    uint32_t npend;
    int64_t first_queued_ns; /* when the FIFO last became non-empty (retry schedule) */
    int64_t next_retry_ns;
    uint32_t retries;
    bool in_plist, in_ready;
    struct route *pprev, *pnext; /* routes with pending messages */
    struct route *rnext;         /* routes ready to flush */
    rly_reply *remove_reply;     /* removal requested during a migration */
    uint32_t remove_keep;        /* that removal's RLY_REMOVE_KEEP flag */
} route;

struct rly_dispatcher {
    rly_dispatcher_config cfg;
    rly_mpsc intake;
    rly_event wake;
    rly_thread thread;
    bool started;
    _Atomic bool closed;
    _Atomic int64_t pending_total; /* held + reserved; shared with senders */

    /* Dispatcher-thread state. */
    rly_cidmap routes; /* relay_id -> route*, read lock-free; inserts under routes_lock */
    rly_mutex routes_lock;
    route **all_routes;
    size_t n_routes, cap_routes;
    route *touched;    /* routes whose fwd count or fast flag must be published */
    route *last_route; /* the route of the previous data message (route_msg) */
    rtent **rts;
    size_t n_rts, cap_rts;
    rtent **dirty; /* routers with staged messages (so a loop costs O(busy routers), not O(R)) */
    size_t n_dirty;
    size_t n_removing; /* routers asked to go and not stopped yet */
    route *plist;      /* routes with pending messages */
    route *ready;      /* assigned routes with pending messages to flush */
    pnode *free_nodes; /* node pool */
    pnode **chunks;
    size_t n_chunks;
    uint32_t migrating;
    bool shutting;
    rly_reply *shutdown_reply;
    int64_t next_tick;
    size_t held;  /* pending messages of assigned actors waiting for router room */
    size_t moved; /* messages pushed to routers this loop iteration */
    rly_dispatcher_stats local;

    /* Router -> dispatcher events. */
    rly_mutex ret_lock;
    rly_msg *ret_q;
    size_t n_ret, cap_ret;
    _Atomic size_t ret_pending;

    /* Published counters. */
    _Atomic uint64_t s_dispatched, s_queued, s_retried, s_expired, s_rejected, s_requeued, s_failed;
};

void rly_dispatcher_config_default(rly_dispatcher_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->intake_capacity = 65536;
    cfg->pending_capacity = 65536;
    cfg->tick_ns = 50 * RLY_NS_PER_MS;
    cfg->retry_initial_ns = 100 * RLY_NS_PER_MS;
    cfg->retry_max_ns = 800 * RLY_NS_PER_MS;
    cfg->send_timeout_ns = 5 * RLY_NS_PER_S;
}

relay_err rly_dispatcher_new(const rly_dispatcher_config *cfg, rly_dispatcher **out)
{
    rly_dispatcher *d = calloc(1, sizeof *d);
    if (!d)
        return RELAY_ENOMEM;
    rly_dispatcher_config_default(&d->cfg);
    if (cfg) {
        if (cfg->intake_capacity)
            d->cfg.intake_capacity = cfg->intake_capacity;
        if (cfg->pending_capacity)
            d->cfg.pending_capacity = cfg->pending_capacity;
        for (int p = 0; p < RLY_PROTO_COUNT; p++)
            d->cfg.ttl_ns[p] = cfg->ttl_ns[p];
        if (cfg->tick_ns > 0)
            d->cfg.tick_ns = cfg->tick_ns;
        if (cfg->retry_initial_ns > 0)
            d->cfg.retry_initial_ns = cfg->retry_initial_ns;
        if (cfg->retry_max_ns > 0)
            d->cfg.retry_max_ns = cfg->retry_max_ns;
        if (cfg->send_timeout_ns > 0)
            d->cfg.send_timeout_ns = cfg->send_timeout_ns;
        d->cfg.no_fast_path = cfg->no_fast_path;
    }
    for (int p = 0; p < RLY_PROTO_COUNT; p++)
        if (d->cfg.ttl_ns[p] <= 0)
            d->cfg.ttl_ns[p] = rly_proto_default_ttl_ns(p);
    relay_err e = rly_mpsc_init(&d->intake, d->cfg.intake_capacity, sizeof(rly_msg));
    if (e)
        goto fail;
    e = rly_cidmap_init(&d->routes, 1024);
    if (e)
        goto fail;
    rly_event_init(&d->wake);
    rly_mutex_init(&d->ret_lock);
    rly_mutex_init(&d->routes_lock);
    *out = d;
    return RELAY_OK;
fail:
    rly_mpsc_fini(&d->intake);
    free(d);
    return e;
}

/* ---- node pool ---------------------------------------------------------------------------- */

static pnode *node_get(rly_dispatcher *d)
{
    if (!d->free_nodes) {
        pnode *chunk = malloc(POOL_CHUNK * sizeof *chunk);
        pnode **chunks = realloc(d->chunks, (d->n_chunks + 1) * sizeof *chunks);
        if (!chunk || !chunks) {
            free(chunk);
            if (chunks)
                d->chunks = chunks;
            return NULL;
        }
        d->chunks = chunks;
        d->chunks[d->n_chunks++] = chunk;
        for (size_t i = 0; i < POOL_CHUNK; i++) {
            chunk[i].next = d->free_nodes;
            d->free_nodes = &chunk[i];
        }
    }
    pnode *n = d->free_nodes;
    d->free_nodes = n->next;
    n->next = NULL;
    return n;
}

static void node_put(rly_dispatcher *d, pnode *n)
{
    n->next = d->free_nodes;
    d->free_nodes = n;
}

/* ---- routers and staging ------------------------------------------------------------------ */

/* rt_lower returns the index of the first router whose id is >= id (d->rts is sorted by id, so
   finding a router costs O(log R): adding thousands of routers is not quadratic). */
static size_t rt_lower(const rly_dispatcher *d, uint32_t id)
{
    size_t lo = 0, hi = d->n_rts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d->rts[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static rtent *rt_find(rly_dispatcher *d, uint32_t id)
{
    size_t i = rt_lower(d, id);
    return i < d->n_rts && d->rts[i]->id == id ? d->rts[i] : NULL;
}

/* stage_room reports whether data messages may still be staged for rt this round. */
static bool stage_room(const rtent *rt)
{
    return rt->n_stage < rt->cap_stage;
}

/* stage_force appends m for rt, growing the stage (control messages are never refused). */
static relay_err stage_force(rtent *rt, const rly_msg *m)
{
    if (rt->n_stage == rt->cap_stage) {
        size_t cap = rt->cap_stage * 2;
        rly_msg *s = realloc(rt->stage, cap * sizeof *s);
        if (!s)
            return RELAY_ENOMEM;
        rt->stage = s;
        rt->cap_stage = cap;
    }
    rt->stage[rt->n_stage++] = *m;
    return RELAY_OK;
}

/* stage_flush pushes as much of rt's stage as the router's queue takes; true when empty. */
static bool stage_flush(rly_dispatcher *d, rtent *rt)
{
    size_t done = 0;
    while (done < rt->n_stage) {
        size_t n = rt->n_stage - done;
        if (rly_router_push_batch(rt->router, rt->stage + done, n) == RELAY_OK) {
            done += n;
            continue;
        }
        size_t room = rly_router_free_space(rt->router);
        if (room == 0)
            break;
        if (room < n)
            n = room;
        if (rly_router_push_batch(rt->router, rt->stage + done, n) != RELAY_OK)
            break;
        done += n;
    }
    if (done && done < rt->n_stage)
        memmove(rt->stage, rt->stage + done, (rt->n_stage - done) * sizeof *rt->stage);
    rt->n_stage -= done;
    d->moved += done;
    if (done || rt->n_stage == 0)
        rt->stuck_since = 0;
    else if (rt->stuck_since == 0)
        rt->stuck_since = rly_now_ns();
    return rt->n_stage == 0;
}

/* mark_dirty records that rt has staged messages (the list has room for every router). */
static void mark_dirty(rly_dispatcher *d, rtent *rt)
{
    if (!rt->dirty) {
        rt->dirty = true;
        d->dirty[d->n_dirty++] = rt;
    }
}

/* flush_all pushes every staged router's stage; true when all stages are empty. */
static bool flush_all(rly_dispatcher *d)
{
    size_t keep = 0;
    for (size_t i = 0; i < d->n_dirty; i++) {
        rtent *rt = d->dirty[i];
        if (rt->n_stage && !stage_flush(d, rt))
            d->dirty[keep++] = rt;
        else
            rt->dirty = false;
    }
    d->n_dirty = keep;
    return keep == 0;
}

/* stage_control stages a control message for rt, retrying until memory allows. */
static void stage_control(rly_dispatcher *d, rtent *rt, const rly_msg *m)
{
    while (stage_force(rt, m) != RELAY_OK) {
        /* Out of memory: push what is staged to make room, then try again. */
        stage_flush(d, rt);
        sched_yield();
    }
    mark_dirty(d, rt);
}

/* ---- routes and the pending table ---------------------------------------------------------- */

static route *route_get(rly_dispatcher *d, relay_id id)
{
    return rly_cidmap_get(&d->routes, id);
}

/* route_get_or_create finds or makes id's route; any thread (inserts are serialised). */
static route *route_get_or_create(rly_dispatcher *d, relay_id id)
{
    route *r = route_get(d, id);
    if (r)
        return r;
    rly_mutex_lock(&d->routes_lock);
    r = route_get(d, id);
    if (r)
        goto out;
    if (d->n_routes == d->cap_routes) {
        size_t cap = d->cap_routes ? d->cap_routes * 2 : 256;
        route **a = realloc(d->all_routes, cap * sizeof *a);
        if (!a)
            goto out;
        d->all_routes = a;
        d->cap_routes = cap;
    }
    r = aligned_alloc(RLY_CACHELINE, sizeof *r);
    if (!r)
        goto out;
    memset(r, 0, sizeof *r);
    r->id = id;
    atomic_init(&r->state, RS_UNKNOWN);
    atomic_init(&r->fast, 0);
    atomic_init(&r->direct_active, 0);
    atomic_init(&r->fast_router, NULL);
    atomic_init(&r->direct, 0);
    atomic_init(&r->sent, 0);
    atomic_init(&r->fwd, 0);
    if (rly_cidmap_insert(&d->routes, id, r) != RELAY_OK) {
        free(r);
        r = NULL;
        goto out;
    }
    d->all_routes[d->n_routes++] = r;
out:
    rly_mutex_unlock(&d->routes_lock);
    return r;
}

/* touch records that r forwarded or ended a message this round (published after the push). */
static void touch(rly_dispatcher *d, route *r)
{
    if (!r->in_touched) {
        r->in_touched = true;
        r->tnext = d->touched;
        d->touched = r;
    }
}

/* count_fwd accounts one intake message of r as forwarded or ended. */
static void count_fwd(rly_dispatcher *d, route *r, const rly_msg *m)
{
    if (m->flags & RLY_MSG_REQUEUED)
        return; /* already counted when it first passed */
    r->fwd_local++;
    touch(d, r);
}

/* publish_touched runs once every stage is pushed: forwarded counts become visible and routes
   that are settled on a router reopen the fast path. */
static void publish_touched(rly_dispatcher *d)
{
    route *r = d->touched;
    d->touched = NULL;
    while (r) {
        route *next = r->tnext;
        r->in_touched = false;
        atomic_store_explicit(&r->fwd, r->fwd_local, memory_order_release);
        if (!d->cfg.no_fast_path &&
            atomic_load_explicit(&r->state, memory_order_relaxed) == RS_ASSIGNED && r->npend == 0 &&
            !atomic_load_explicit(&r->fast, memory_order_relaxed)) {
            atomic_store_explicit(&r->fast_router, r->rt->router, memory_order_relaxed);
            atomic_store_explicit(&r->fast, 1, memory_order_release);
        }
        r = next;
    }
}

/* close_fast stops direct sends to r and waits for senders already past their check. */
static void close_fast(route *r)
{
    atomic_store_explicit(&r->fast, 0, memory_order_seq_cst);
    while (atomic_load_explicit(&r->direct_active, memory_order_seq_cst) != 0)
        sched_yield();
}

static uint32_t route_state(const route *r)
{
    return atomic_load_explicit(&r->state, memory_order_relaxed);
}

static void route_set_state(route *r, uint32_t s)
{
    atomic_store_explicit(&r->state, s, memory_order_release);
}

static void plist_link(rly_dispatcher *d, route *r, int64_t now)
{
    if (r->in_plist)
        return;
    r->in_plist = true;
    r->retries = 0;
    r->first_queued_ns = now;
    r->next_retry_ns = now + d->cfg.retry_initial_ns;
    r->pprev = NULL;
    r->pnext = d->plist;
    if (d->plist)
        d->plist->pprev = r;
    d->plist = r;
}

static void plist_unlink(rly_dispatcher *d, route *r)
{
    if (!r->in_plist)
        return;
    if (r->pprev)
        r->pprev->pnext = r->pnext;
    else
        d->plist = r->pnext;
    if (r->pnext)
        r->pnext->pprev = r->pprev;
    r->in_plist = false;
    r->pprev = r->pnext = NULL;
}

static void mark_ready(rly_dispatcher *d, route *r)
{
    if (r->in_ready || r->npend == 0)
        return;
    r->in_ready = true;
    r->rnext = d->ready;
    d->ready = r;
}

static void release_reservation(rly_dispatcher *d)
{
    atomic_fetch_sub_explicit(&d->pending_total, 1, memory_order_relaxed);
}

/* unhold ends the "waiting for router room" accounting of a message leaving a FIFO. */
static void unhold(rly_dispatcher *d, rly_msg *m)
{
    if (m->flags & RLY_MSG_HELD) {
        m->flags &= (uint16_t)~RLY_MSG_HELD;
        d->held--;
    }
}

/* pend appends m to r's FIFO; the message is discarded with RELAY_ENOMEM only if memory fails. */
static void pend(rly_dispatcher *d, route *r, rly_msg *m, int64_t now)
{
    pnode *n = node_get(d);
    if (!n) {
        rly_error("dispatcher", "out of memory holding a %s message; failing it",
                  rly_proto_name(m->proto));
        count_fwd(d, r, m);
        if (m->flags & RLY_MSG_RESERVED)
            release_reservation(d);
        rly_msg_discard(m, RELAY_ENOMEM);
        d->local.failed++;
        return;
    }
    if (!(m->flags & RLY_MSG_RESERVED)) {
        /* Raced with a state change after the sender looked: count it now. */
        atomic_fetch_add_explicit(&d->pending_total, 1, memory_order_relaxed);
        m->flags |= RLY_MSG_RESERVED;
    }
    if (route_state(r) == RS_ASSIGNED) {
        /* Its router is backed up: held here so traffic to other routers keeps flowing. */
        m->flags |= RLY_MSG_HELD;
        d->held++;
    }
    n->msg = *m;
    n->t_queued = now;
    if (r->tail)
        r->tail->next = n;
    else
        r->head = n;
    r->tail = n;
    r->npend++;
    if (!(m->flags & RLY_MSG_HELD))
        d->local.queued++;
    plist_link(d, r, now);
}

/* flush_route moves r's pending messages to its router's stage while there is room. */
static void flush_route(rly_dispatcher *d, route *r)
{
    rtent *rt = r->rt;
    while (r->head && stage_room(rt)) {
        pnode *n = r->head;
        r->head = n->next;
        if (!r->head)
            r->tail = NULL;
        r->npend--;
        n->msg.flags &= (uint16_t)~RLY_MSG_RESERVED;
        unhold(d, &n->msg);
        rt->stage[rt->n_stage++] = n->msg;
        mark_dirty(d, rt);
        count_fwd(d, r, &n->msg);
        release_reservation(d);
        d->local.dispatched++;
        node_put(d, n);
    }
    if (!r->head)
        plist_unlink(d, r);
}

/* route_msg forwards a data message or holds it in the actor's pending FIFO. */
static void route_msg(rly_dispatcher *d, rly_msg *m, int64_t now)
{
    /* Messages come in runs for one actor (a sender's batch): look its route up once per run.
       Routes live until the dispatcher is freed, so the cached pointer stays valid. */
    route *r = d->last_route;
    if (!r || !rly_id_same(&r->id, &m->actor)) {
        r = route_get_or_create(d, m->actor);
        d->last_route = r;
    }
    if (!r) {
        rly_error("dispatcher", "out of memory creating a route; failing a %s message",
                  rly_proto_name(m->proto));
        if (m->flags & RLY_MSG_RESERVED)
            release_reservation(d);
        rly_msg_discard(m, RELAY_ENOMEM);
        d->local.failed++;
        return;
    }
    if (route_state(r) == RS_REMOVED) {
        /* The actor was removed: its sender learns at once instead of after a TTL. */
        count_fwd(d, r, m);
        if (m->flags & RLY_MSG_RESERVED)
            release_reservation(d);
        atomic_store_explicit(&d->s_failed, ++d->local.failed, memory_order_relaxed);
        rly_msg_discard(m, RELAY_ENOTFOUND);
        return;
    }
    if (route_state(r) == RS_ASSIGNED && r->npend == 0 && stage_room(r->rt)) {
        if (m->flags & RLY_MSG_RESERVED) {
            release_reservation(d);
            m->flags &= (uint16_t)~RLY_MSG_RESERVED;
        }
        r->rt->stage[r->rt->n_stage++] = *m;
        mark_dirty(d, r->rt);
        count_fwd(d, r, m);
        d->local.dispatched++;
        return;
    }
    pend(d, r, m, now);
    if (route_state(r) == RS_ASSIGNED)
        mark_ready(d, r);
}

/* flush_ready stages pending messages of assigned routes; keeps those that did not fit. */
static void flush_ready(rly_dispatcher *d)
{
    route *list = d->ready;
    d->ready = NULL;
    while (list) {
        route *r = list;
        list = r->rnext;
        r->in_ready = false;
        if (route_state(r) != RS_ASSIGNED)
            continue;
        flush_route(d, r);
        if (r->npend)
            mark_ready(d, r);
    }
}

/* expire_route completes messages older than their TTL with RELAY_ETIMEDOUT. */
static void expire_route(rly_dispatcher *d, route *r, int64_t now)
{
    pnode **pp = &r->head, *prev = NULL;
    uint32_t expired = 0;
    while (*pp) {
        pnode *n = *pp;
        if (now - n->t_queued > d->cfg.ttl_ns[n->msg.proto < RLY_PROTO_COUNT ? n->msg.proto : 0]) {
            *pp = n->next;
            release_reservation(d);
            unhold(d, &n->msg);
            /* Counted before the reply completes, so a woken waiter sees the count. */
            atomic_store_explicit(&d->s_expired, ++d->local.expired, memory_order_relaxed);
            count_fwd(d, r, &n->msg);
            rly_msg_discard(&n->msg, RELAY_ETIMEDOUT);
            node_put(d, n);
            r->npend--;
            expired++;
            continue;
        }
        prev = n;
        pp = &n->next;
    }
    r->tail = prev;
    if (expired) {
        char text[RELAY_ID_STRLEN + 1];
        rly_warn("dispatcher", "%u message(s) for actor %s expired unassigned", expired,
                 relay_id_format(r->id, text));
    }
}

int64_t rly_dispatcher_retry_offset_ns(const rly_dispatcher_config *cfg, uint32_t n)
{
    /* The seed's schedule: min(initial * 2^n, max) * (n + 1) after the first queueing. */
    int64_t step = cfg->retry_initial_ns << (n < 16 ? n : 16);
    if (step > cfg->retry_max_ns || step <= 0)
        step = cfg->retry_max_ns;
    return step * (int64_t)(n + 1);
}

/* tick runs the retry timer: TTL expiry and backoff retries of unassigned actors. */
static void tick(rly_dispatcher *d, int64_t now)
{
    route *r = d->plist;
    while (r) {
        route *next = r->pnext;
        expire_route(d, r, now);
        if (r->npend == 0) {
            plist_unlink(d, r);
        } else if (now >= r->next_retry_ns) {
            r->retries++;
            d->local.retried++;
            uint32_t state = route_state(r);
            if (state == RS_ASSIGNED) {
                mark_ready(d, r);
            } else if (!d->shutting) {
                r->next_retry_ns =
                    r->first_queued_ns + rly_dispatcher_retry_offset_ns(&d->cfg, r->retries);
                if (r->retries == 1) {
                    char text[RELAY_ID_STRLEN + 1];
                    rly_debug("dispatcher", "actor %s not assigned to any router; %u queued",
                              relay_id_format(r->id, text), r->npend);
                }
            }
        }
        r = next;
    }
}

/* ---- control ------------------------------------------------------------------------------ */

static void reply_ok(rly_msg *m, int64_t value, void *ptr)
{
    if (m->reply) {
        rly_reply_complete(m->reply, RELAY_OK, value, ptr, NULL);
        m->reply = NULL;
    }
}

static void reply_err(rly_msg *m, relay_err e)
{
    if (m->reply) {
        rly_reply_fail(m->reply, e);
        m->reply = NULL;
    }
}

static void adopt(rly_dispatcher *d, route *r, rtent *rt, rly_actor_slot *slot)
{
    rly_msg ad = {.actor = r->id, .kind = RLY_KIND_ADOPT, .payload = slot};
    stage_control(d, rt, &ad);
    rt->n_actors++;
    r->rt = rt;
    r->target = NULL;
    route_set_state(r, RS_ASSIGNED);
    mark_ready(d, r);
    touch(d, r);
}

static void ctl_router_add(rly_dispatcher *d, rly_msg *m)
{
    rly_router *router = m->payload;
    if (rt_find(d, rly_router_id(router))) {
        reply_err(m, RELAY_EEXIST);
        return;
    }
    rtent *rt = calloc(1, sizeof *rt);
    rly_msg *stage = malloc(STAGE_MIN * sizeof *stage);
    if (d->n_rts == d->cap_rts && rt && stage) {
        size_t cap = d->cap_rts ? d->cap_rts * 2 : 16;
        rtent **a = realloc(d->rts, cap * sizeof *a);
        if (a)
            d->rts = a;
        rtent **dl = a ? realloc(d->dirty, cap * sizeof *dl) : NULL;
        if (dl) {
            d->dirty = dl;
            d->cap_rts = cap;
        }
    }
    if (!rt || !stage || d->n_rts == d->cap_rts) {
        free(rt);
        free(stage);
        reply_err(m, RELAY_ENOMEM);
        return;
    }
    rt->router = router;
    rt->id = rly_router_id(router);
    rt->stage = stage;
    rt->cap_stage = STAGE_MIN;
    size_t at = rt_lower(d, rt->id); /* keep d->rts sorted by id (usually the end) */
    memmove(d->rts + at + 1, d->rts + at, (d->n_rts - at) * sizeof *d->rts);
    d->rts[at] = rt;
    d->n_rts++;
    reply_ok(m, 0, NULL);
}

static void ctl_actor_add(rly_dispatcher *d, rly_msg *m)
{
    rly_actor_slot *slot = m->payload;
    rtent *rt = rt_find(d, m->u32);
    if (!rt || rt->removing) {
        reply_err(m, RELAY_EROUTER_NOT_FOUND);
        return;
    }
    route *r = route_get_or_create(d, slot->id);
    if (!r) {
        reply_err(m, RELAY_ENOMEM);
        return;
    }
    uint32_t st = route_state(r);
    if (st != RS_UNKNOWN && st != RS_REMOVED) {
        reply_err(m, RELAY_EEXIST);
        return;
    }
    adopt(d, r, rt, slot);
    reply_ok(m, 0, NULL);
}

static void ctl_actor_move(rly_dispatcher *d, rly_msg *m)
{
    rtent *target = rt_find(d, m->u32);
    if (!target || target->removing) {
        reply_err(m, RELAY_EROUTER_NOT_FOUND);
        return;
    }
    route *r = route_get(d, m->actor);
    uint32_t st = r ? route_state(r) : RS_UNKNOWN;
    if (st == RS_ASSIGNED) {
        if (r->rt != target) {
            close_fast(r);
            rly_msg out = {.actor = r->id, .kind = RLY_KIND_MIGRATE_OUT};
            stage_control(d, r->rt, &out);
            r->target = target;
            target->incoming++;
            d->migrating++;
            route_set_state(r, RS_MIGRATING);
        }
        reply_ok(m, 0, NULL);
    } else if (st == RS_MIGRATING) {
        r->target->incoming--;
        r->target = target;
        target->incoming++;
        reply_ok(m, 0, NULL);
    } else {
        reply_err(m, RELAY_ENOT_ASSIGNED);
    }
}

static void ctl_actor_remove(rly_dispatcher *d, rly_msg *m)
{
    route *r = route_get(d, m->actor);
    uint32_t st = r ? route_state(r) : RS_UNKNOWN;
    if (st == RS_ASSIGNED) {
        close_fast(r);
        rly_msg det = {.actor = r->id, .kind = RLY_KIND_DETACH, .u32 = m->u32, .reply = m->reply};
        m->reply = NULL;
        stage_control(d, r->rt, &det);
        route_set_state(r, RS_REMOVING);
    } else if (st == RS_MIGRATING && !r->remove_reply) {
        r->remove_keep = m->u32;
        r->remove_reply = m->reply;
        m->reply = NULL;
    } else {
        reply_err(m, st == RS_UNKNOWN || st == RS_REMOVED ? RELAY_ENOTFOUND : RELAY_EBUSY);
    }
}

static void ctl_router_remove(rly_dispatcher *d, rly_msg *m)
{
    rtent *rt = rt_find(d, m->u32);
    if (!rt || rt->removing) {
        reply_err(m, RELAY_EROUTER_NOT_FOUND);
        return;
    }
    rt->removing = true;
    d->n_removing++;
    rt->remove_reply = m->reply;
    m->reply = NULL;
}

/* finish_router_removals stops routers that were asked to go and own no actors any more. */
static void finish_router_removals(rly_dispatcher *d)
{
    for (size_t i = 0; i < d->n_rts && d->n_removing;) {
        rtent *rt = d->rts[i];
        if (!rt->removing || rt->n_actors || rt->incoming) {
            i++;
            continue;
        }
        rly_msg stop = {.kind = RLY_KIND_STOP};
        stage_control(d, rt, &stop);
        while (!stage_flush(d, rt))
            sched_yield(); /* the router drains without waiting on us */
        for (size_t k = 0; k < d->n_dirty; k++)
            if (d->dirty[k] == rt) {
                d->dirty[k] = d->dirty[--d->n_dirty];
                break;
            }
        d->n_removing--;
        memmove(d->rts + i, d->rts + i + 1, (d->n_rts - i - 1) * sizeof *d->rts);
        d->n_rts--;
        if (rt->remove_reply)
            rly_reply_complete(rt->remove_reply, RELAY_OK, 0, rt->router, NULL);
        free(rt->stage);
        free(rt);
    }
}

static void ev_handover(rly_dispatcher *d, rly_msg *ev)
{
    route *r = route_get(d, ev->actor);
    rly_actor_slot *slot = ev->payload;
    if (!r || route_state(r) != RS_MIGRATING || !slot) {
        rly_error("dispatcher", "unexpected handover (state %u)", r ? route_state(r) : 0);
        return;
    }
    r->rt->n_actors--;
    d->migrating--;
    rtent *target = r->target;
    target->incoming--;
    adopt(d, r, target, slot);
    if (r->remove_reply) {
        rly_msg det = {.actor = r->id,
                       .kind = RLY_KIND_DETACH,
                       .u32 = r->remove_keep,
                       .reply = r->remove_reply};
        r->remove_reply = NULL;
        stage_control(d, target, &det);
        route_set_state(r, RS_REMOVING);
    }
}

/* fail_pending ends every message in r's FIFO with err (shutdown, removal). */
static void fail_pending(rly_dispatcher *d, route *r, relay_err err)
{
    while (r->head) {
        pnode *n = r->head;
        r->head = n->next;
        release_reservation(d);
        unhold(d, &n->msg);
        count_fwd(d, r, &n->msg);
        atomic_store_explicit(&d->s_failed, ++d->local.failed, memory_order_relaxed);
        rly_msg_discard(&n->msg, err);
        node_put(d, n);
    }
    r->tail = NULL;
    r->npend = 0;
    plist_unlink(d, r);
}

static void ev_removed(rly_dispatcher *d, rly_msg *ev)
{
    route *r = route_get(d, ev->actor);
    if (r && route_state(r) == RS_REMOVING) {
        r->rt->n_actors--;
        r->rt = NULL;
        route_set_state(r, RS_REMOVED);
        /* Sent while it was being removed: it is gone, so they end now, not at their TTL. */
        fail_pending(d, r, RELAY_ENOTFOUND);
    }
    if (ev->reply)
        rly_reply_complete(ev->reply, ev->payload ? RELAY_OK : RELAY_ENOTFOUND, 0, ev->payload,
                           NULL);
}

/* finish_shutdown delivers Shutdown to every actor, fails what cannot be delivered, stops routers.
 */
static void finish_shutdown(rly_dispatcher *d)
{
    rly_mutex_lock(&d->routes_lock);
    size_t n_routes = d->n_routes;
    rly_mutex_unlock(&d->routes_lock);
    for (size_t i = 0; i < n_routes; i++)
        close_fast(d->all_routes[i]);
    for (size_t i = 0; i < n_routes; i++) {
        route *r = d->all_routes[i];
        if (route_state(r) == RS_ASSIGNED) {
            while (r->head) {
                unhold(d, &r->head->msg);
                stage_control(d, r->rt, &r->head->msg);
                count_fwd(d, r, &r->head->msg);
                pnode *n = r->head;
                r->head = n->next;
                release_reservation(d);
                node_put(d, n);
                d->local.dispatched++;
            }
            r->tail = NULL;
            r->npend = 0;
            rly_msg sd = rly_msg_data(r->id, RLY_SHUTDOWN, 0, NULL, NULL, NULL);
            stage_control(d, r->rt, &sd);
        } else {
            fail_pending(d, r, RELAY_ESHUTDOWN);
        }
        plist_unlink(d, r);
    }
    for (size_t i = 0; i < d->n_rts; i++) {
        rly_msg stop = {.kind = RLY_KIND_STOP};
        stage_control(d, d->rts[i], &stop);
    }
    while (!flush_all(d))
        sched_yield();
}

/* handle_intake processes one message from the global queue. */
static void handle_intake(rly_dispatcher *d, rly_msg *m, int64_t now)
{
    switch (m->kind) {
    case RLY_KIND_DATA:
        route_msg(d, m, now);
        break;
    case RLY_KIND_CTL_ROUTER_ADD:
        ctl_router_add(d, m);
        break;
    case RLY_KIND_CTL_ROUTER_REMOVE:
        ctl_router_remove(d, m);
        break;
    case RLY_KIND_CTL_ACTOR_ADD:
        ctl_actor_add(d, m);
        break;
    case RLY_KIND_CTL_ACTOR_MOVE:
        ctl_actor_move(d, m);
        break;
    case RLY_KIND_CTL_ACTOR_REMOVE:
        ctl_actor_remove(d, m);
        break;
    case RLY_KIND_CTL_SHUTDOWN:
        if (d->shutting) {
            reply_err(m, RELAY_ESTATE);
        } else {
            d->shutting = true;
            d->shutdown_reply = m->reply;
            m->reply = NULL;
        }
        break;
    case RLY_KIND_CTL_BARRIER:
        reply_ok(m, 0, NULL);
        break;
    default:
        rly_error("dispatcher", "unexpected message kind %u", m->kind);
        rly_msg_discard(m, RELAY_EINVAL);
    }
}

/* handle_returns processes router events: handovers, removals and misrouted messages. */
static bool handle_returns(rly_dispatcher *d, int64_t now)
{
    if (atomic_load_explicit(&d->ret_pending, memory_order_acquire) == 0)
        return false;
    rly_mutex_lock(&d->ret_lock);
    rly_msg *q = d->ret_q;
    size_t n = d->n_ret, cap = d->cap_ret;
    d->ret_q = NULL;
    d->n_ret = d->cap_ret = 0;
    atomic_store_explicit(&d->ret_pending, 0, memory_order_relaxed);
    rly_mutex_unlock(&d->ret_lock);
    for (size_t i = 0; i < n; i++) {
        rly_msg *ev = &q[i];
        if (ev->kind == RLY_KIND_EV_HANDOVER) {
            ev_handover(d, ev);
        } else if (ev->kind == RLY_KIND_EV_REMOVED) {
            ev_removed(d, ev);
        } else {
            d->local.requeued++;
            route_msg(d, ev, now);
        }
    }
    /* Reuse the larger buffer next time. */
    rly_mutex_lock(&d->ret_lock);
    if (!d->ret_q && cap) {
        d->ret_q = q;
        d->cap_ret = cap;
        q = NULL;
    }
    rly_mutex_unlock(&d->ret_lock);
    free(q);
    return n > 0;
}

void rly_dispatcher_router_return(void *ctx, rly_msg *ev)
{
    rly_dispatcher *d = ctx;
    rly_mutex_lock(&d->ret_lock);
    while (d->n_ret == d->cap_ret) {
        size_t cap = d->cap_ret ? d->cap_ret * 2 : 64;
        rly_msg *q = realloc(d->ret_q, cap * sizeof *q);
        if (q) {
            d->ret_q = q;
            d->cap_ret = cap;
            break;
        }
        /* Out of memory: wait for the dispatcher to take the current list. */
        rly_mutex_unlock(&d->ret_lock);
        rly_sleep_ns(RLY_NS_PER_MS);
        rly_mutex_lock(&d->ret_lock);
    }
    d->ret_q[d->n_ret++] = *ev;
    atomic_store_explicit(&d->ret_pending, d->n_ret, memory_order_release);
    rly_mutex_unlock(&d->ret_lock);
    rly_event_notify(&d->wake);
}

static void publish_stats(rly_dispatcher *d)
{
#define PUB(field) atomic_store_explicit(&d->s_##field, d->local.field, memory_order_relaxed)
    PUB(dispatched);
    PUB(queued);
    PUB(retried);
    PUB(expired);
    PUB(requeued);
    PUB(failed);
#undef PUB
}

/*
 * may_take reports whether the dispatcher takes another intake batch. While routers drain, it
 * waits until every router's stage has room for a batch (backpressure stays in the intake, the
 * cheapest place). A router whose queue took nothing for STUCK_NS (e.g. its actor is blocked)
 * stops counting: its messages then wait in their actors' FIFOs while traffic to every other
 * router flows. Only when pending_capacity messages wait for full routers does the dispatcher
 * stop reading, so the memory held for a stuck router stays bounded.
 */
static bool may_take(rly_dispatcher *d, int64_t now)
{
    if (d->held >= d->cfg.pending_capacity)
        return false;
    for (size_t i = 0; i < d->n_dirty; i++) {
        rtent *rt = d->dirty[i]; /* a router with nothing staged has room */
        if (rt->n_stage + BATCH > rt->cap_stage &&
            !(rt->stuck_since && now - rt->stuck_since >= STUCK_NS))
            return false;
    }
    return true;
}

static void *dispatcher_main(void *arg)
{
    rly_dispatcher *d = arg;
    rly_msg buf[BATCH];
    rly_backoff idle = {0};
    d->next_tick = rly_now_ns() + d->cfg.tick_ns;
    for (;;) {
        int64_t now = rly_now_ns();
        bool busy = handle_returns(d, now);
        size_t n = 0;
        d->moved = 0;
        if (may_take(d, now)) {
            n = rly_mpsc_pop_batch(&d->intake, buf, BATCH);
            for (size_t i = 0; i < n; i++)
                handle_intake(d, &buf[i], now);
        }
        if (d->ready)
            flush_ready(d);
        bool flushed = flush_all(d);
        if (flushed && d->touched)
            publish_touched(d);
        finish_router_removals(d);
        if (now >= d->next_tick) {
            tick(d, now);
            /* Missed ticks are skipped, not replayed. */
            d->next_tick += d->cfg.tick_ns;
            if (d->next_tick <= now)
                d->next_tick = now + d->cfg.tick_ns;
        }
        publish_stats(d);
        if (d->shutting && d->migrating == 0 && n == 0 && !busy && flushed &&
            rly_mpsc_size_approx(&d->intake) == 0) {
            finish_shutdown(d);
            publish_stats(d);
            rly_reply *rep = d->shutdown_reply;
            d->shutdown_reply = NULL;
            if (rep)
                rly_reply_complete(rep, RELAY_OK, 0, NULL, NULL);
            return NULL;
        }
        if (n || busy || d->moved) {
            rly_backoff_reset(&idle);
            continue;
        }
        /* Nothing moved. Routers that are full do not call back when they drain, so while
           messages wait for them the dispatcher polls every millisecond instead of spinning. */
        bool stalled = !flushed || d->ready;
        if (!rly_backoff_idle(&idle, RLY_SPIN_NS))
            continue;
        rly_event_prepare(&d->wake);
        if ((rly_mpsc_size_approx(&d->intake) == 0 || !may_take(d, rly_now_ns())) &&
            atomic_load_explicit(&d->ret_pending, memory_order_acquire) == 0 && !d->shutting) {
            int64_t wait = d->plist || d->n_rts ? d->next_tick - rly_now_ns() : 100 * RLY_NS_PER_MS;
            if (stalled && wait > RLY_NS_PER_MS)
                wait = RLY_NS_PER_MS;
            if (wait > 0)
                rly_event_park(&d->wake, wait);
            else
                rly_event_cancel(&d->wake);
        } else {
            rly_event_cancel(&d->wake);
        }
    }
}

relay_err rly_dispatcher_start(rly_dispatcher *d)
{
    relay_err e = rly_thread_start(&d->thread, dispatcher_main, d, "relay-disp");
    if (e == RELAY_OK)
        d->started = true;
    return e;
}

void rly_dispatcher_join(rly_dispatcher *d)
{
    if (d->started) {
        rly_thread_join(d->thread);
        d->started = false;
    }
}

void rly_dispatcher_free(rly_dispatcher *d)
{
    if (!d)
        return;
    rly_dispatcher_join(d);
    rly_msg buf[BATCH];
    size_t n;
    while ((n = rly_mpsc_pop_batch(&d->intake, buf, BATCH)) > 0)
        for (size_t i = 0; i < n; i++)
            rly_msg_discard(&buf[i], RELAY_ESHUTDOWN);
    for (size_t i = 0; i < d->n_ret; i++)
        if (d->ret_q[i].kind == RLY_KIND_DATA)
            rly_msg_discard(&d->ret_q[i], RELAY_ESHUTDOWN);
    for (size_t i = 0; i < d->n_routes; i++) {
        route *r = d->all_routes[i];
        for (pnode *p = r->head; p; p = p->next)
            rly_msg_discard(&p->msg, RELAY_ESHUTDOWN);
        if (r->remove_reply)
            rly_reply_fail(r->remove_reply, RELAY_ESHUTDOWN);
        free(r);
    }
    for (size_t i = 0; i < d->n_rts; i++) {
        for (size_t k = 0; k < d->rts[i]->n_stage; k++)
            if (d->rts[i]->stage[k].kind == RLY_KIND_DATA)
                rly_msg_discard(&d->rts[i]->stage[k], RELAY_ESHUTDOWN);
        if (d->rts[i]->remove_reply)
            rly_reply_fail(d->rts[i]->remove_reply, RELAY_ESHUTDOWN);
        free(d->rts[i]->stage);
        free(d->rts[i]);
    }
    if (d->shutdown_reply)
        rly_reply_fail(d->shutdown_reply, RELAY_ESHUTDOWN);
    for (size_t i = 0; i < d->n_chunks; i++)
        free(d->chunks[i]);
    free(d->chunks);
    free(d->all_routes);
    free(d->rts);
    free(d->dirty);
    free(d->ret_q);
    rly_cidmap_fini(&d->routes);
    rly_mutex_fini(&d->routes_lock);
    rly_mutex_fini(&d->ret_lock);
    rly_mpsc_fini(&d->intake);
    free(d);
}

/* ---- senders ------------------------------------------------------------------------------ */

/* try_direct pushes msgs (all for r's actor) straight to its router when the route is settled. */
static bool try_direct(route *r, const rly_msg *msgs, size_t n)
{
    if (!atomic_load_explicit(&r->fast, memory_order_acquire))
        return false;
    atomic_fetch_add_explicit(&r->direct_active, 1, memory_order_seq_cst);
    bool ok = false;
    if (atomic_load_explicit(&r->fast, memory_order_seq_cst) &&
        atomic_load_explicit(&r->sent, memory_order_acquire) ==
            atomic_load_explicit(&r->fwd, memory_order_acquire)) {
        rly_router *rt = atomic_load_explicit(&r->fast_router, memory_order_relaxed);
        ok = rly_router_push_batch(rt, msgs, n) == RELAY_OK;
        if (ok)
            atomic_fetch_add_explicit(&r->direct, n, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&r->direct_active, 1, memory_order_release);
    return ok;
}

/* reserve takes pending-table room for messages to actors that are not on a router. */
static relay_err reserve(rly_dispatcher *d, route *r, rly_msg *m)
{
    uint32_t st = atomic_load_explicit(&r->state, memory_order_acquire);
    if (st == RS_ASSIGNED || st == RS_MIGRATING || st == RS_REMOVING)
        return RELAY_OK;
    if (st == RS_REMOVED)
        return RELAY_ENOTFOUND; /* removed: not held for a TTL (re-adding the id reopens it) */
    int64_t prev = atomic_fetch_add_explicit(&d->pending_total, 1, memory_order_relaxed);
    if (prev >= (int64_t)d->cfg.pending_capacity) {
        atomic_fetch_sub_explicit(&d->pending_total, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&d->s_rejected, 1, memory_order_relaxed);
        return RELAY_EFULL;
    }
    m->flags |= RLY_MSG_RESERVED;
    return RELAY_OK;
}

static void unreserve(rly_dispatcher *d, rly_msg *m)
{
    if (m->flags & RLY_MSG_RESERVED) {
        m->flags &= (uint16_t)~RLY_MSG_RESERVED;
        release_reservation(d);
    }
}

/* push_wait pushes n messages, waiting up to the send timeout for room. */
static relay_err push_wait(rly_dispatcher *d, const rly_msg *msgs, size_t n)
{
    relay_err e = rly_mpsc_push_batch(&d->intake, msgs, n);
    if (e == RELAY_OK)
        return RELAY_OK;
    int64_t deadline = rly_now_ns() + d->cfg.send_timeout_ns;
    for (unsigned spin = 0;; spin++) {
        if (spin < 64)
            rly_cpu_relax();
        else if (spin < 256)
            sched_yield();
        else
            rly_sleep_ns(50 * RLY_NS_PER_US);
        e = rly_mpsc_push_batch(&d->intake, msgs, n);
        if (e == RELAY_OK)
            return RELAY_OK;
        if (atomic_load_explicit(&d->closed, memory_order_acquire))
            return RELAY_ESHUTDOWN;
        if ((spin & 63) == 0 && rly_now_ns() > deadline)
            return RELAY_EFULL;
    }
}

/* send_run sends n messages for one actor: directly when settled, else through the intake. */
static relay_err send_run(rly_dispatcher *d, rly_msg *msgs, size_t n, size_t *taken)
{
    *taken = 0;
    route *r = route_get_or_create(d, msgs[0].actor);
    if (!r)
        return RELAY_ENOMEM;
    for (size_t i = 0; i < n; i++)
        msgs[i].flags &= (uint16_t) ~(RLY_MSG_RESERVED | RLY_MSG_REQUEUED);
    if (try_direct(r, msgs, n)) {
        *taken = n;
        return RELAY_OK;
    }
    size_t k = 0;
    relay_err e = RELAY_OK;
    while (k < n && (e = reserve(d, r, &msgs[k])) == RELAY_OK)
        k++;
    if (k == 0)
        return e;
    /* Count before pushing so no direct send can overtake these. */
    atomic_fetch_add_explicit(&r->sent, k, memory_order_seq_cst);
    relay_err pe = push_wait(d, msgs, k);
    if (pe) {
        atomic_fetch_sub_explicit(&r->sent, k, memory_order_seq_cst);
        for (size_t i = 0; i < k; i++)
            unreserve(d, &msgs[i]);
        return pe;
    }
    rly_event_notify(&d->wake);
    *taken = k;
    return e;
}

static bool valid_data(const rly_msg *m)
{
    return m->kind == RLY_KIND_DATA && m->proto < RLY_PROTO_COUNT;
}

relay_err rly_dispatcher_send(rly_dispatcher *d, rly_msg *m)
{
    if (!d || !m || !valid_data(m))
        return RELAY_EINVAL;
    if (atomic_load_explicit(&d->closed, memory_order_acquire))
        return RELAY_ESHUTDOWN;
    size_t taken;
    return send_run(d, m, 1, &taken);
}

size_t rly_dispatcher_send_batch(rly_dispatcher *d, rly_msg *msgs, size_t n, relay_err *err)
{
    relay_err e = RELAY_OK;
    size_t sent = 0;
    if (!d || (n && !msgs)) {
        e = RELAY_EINVAL;
        goto out;
    }
    if (atomic_load_explicit(&d->closed, memory_order_acquire)) {
        e = RELAY_ESHUTDOWN;
        goto out;
    }
    while (sent < n) {
        /* A run of consecutive messages for the same actor travels together. */
        size_t run = 0;
        while (sent + run < n && run < BATCH && valid_data(&msgs[sent + run]) &&
               rly_id_same(&msgs[sent + run].actor, &msgs[sent].actor))
            run++;
        if (run == 0) {
            e = RELAY_EINVAL;
            break;
        }
        size_t taken;
        e = send_run(d, msgs + sent, run, &taken);
        sent += taken;
        if (e)
            break;
    }
out:
    if (err)
        *err = e;
    return sent;
}

relay_err rly_dispatcher_control(rly_dispatcher *d, rly_msg *m)
{
    if (!d || !m || m->kind < RLY_KIND_CTL_ROUTER_ADD || m->kind > RLY_KIND_CTL_BARRIER)
        return RELAY_EINVAL;
    if (m->kind != RLY_KIND_CTL_SHUTDOWN && atomic_load_explicit(&d->closed, memory_order_acquire))
        return RELAY_ESHUTDOWN;
    m->flags = 0;
    relay_err e = push_wait(d, m, 1);
    if (e == RELAY_OK)
        rly_event_notify(&d->wake);
    return e;
}

void rly_dispatcher_close(rly_dispatcher *d)
{
    atomic_store_explicit(&d->closed, true, memory_order_release);
}

bool rly_dispatcher_is_assigned(rly_dispatcher *d, relay_id id)
{
    route *r = route_get(d, id);
    return r && atomic_load_explicit(&r->state, memory_order_acquire) == RS_ASSIGNED;
}

void rly_dispatcher_get_stats(rly_dispatcher *d, rly_dispatcher_stats *out)
{
    /* Fast-path sends are counted per route (no shared counter on the message path). */
    uint64_t direct = 0;
    rly_mutex_lock(&d->routes_lock);
    for (size_t i = 0; i < d->n_routes; i++)
        direct += atomic_load_explicit(&d->all_routes[i]->direct, memory_order_relaxed);
    rly_mutex_unlock(&d->routes_lock);
    out->direct = direct;
    out->dispatched = atomic_load_explicit(&d->s_dispatched, memory_order_relaxed) + direct;
    out->queued = atomic_load_explicit(&d->s_queued, memory_order_relaxed);
    out->retried = atomic_load_explicit(&d->s_retried, memory_order_relaxed);
    out->expired = atomic_load_explicit(&d->s_expired, memory_order_relaxed);
    out->rejected = atomic_load_explicit(&d->s_rejected, memory_order_relaxed);
    out->requeued = atomic_load_explicit(&d->s_requeued, memory_order_relaxed);
    out->failed = atomic_load_explicit(&d->s_failed, memory_order_relaxed);
    int64_t p = atomic_load_explicit(&d->pending_total, memory_order_relaxed);
    out->pending = p > 0 ? (uint64_t)p : 0;
}
