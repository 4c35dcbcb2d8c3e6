/* Agent request path: request_action, flag_last_action, model versions and updates, scaling. */
#include "agent/agent_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "coord/coordinator.h"
#include "core/clock.h"
#include "core/idmap.h"
#include "core/log.h"
#include "core/pool.h"

/* dims are the widths request_action needs of one actor. */
typedef struct dims {
    uint32_t obs, act, n_actions;
    bool discrete;
    bool known; /* false: no such actor (the other fields are 0) */
} dims;

/* dims_many looks up n actors under one lock; returns the index of the first unknown one, or n. */
static size_t dims_many(relay_agent *a, const relay_id *ids, size_t n, dims *out)
{
    size_t first = n;
    rly_mutex_lock(&a->lock);
    for (size_t i = 0; i < n; i++) {
        agent_actor *aa = rly_idmap_get(&a->actors, ids[i]);
        if (!aa) {
            out[i] = (dims){0};
            if (first == n)
                first = i;
            continue;
        }
        const rly_policy_desc *d = rly_actor_desc(aa->actor);
        out[i] = (dims){d->obs_dim, d->act_dim, d->n_actions, d->discrete, true};
    }
    rly_mutex_unlock(&a->lock);
    return first;
}

/* log_unknown logs an unknown actor id, at most once a second (with the count suppressed). */
static void log_unknown(const char *what, relay_id id)
{
    static _Atomic int64_t last_ns;
    static _Atomic uint64_t suppressed;
    int64_t now = rly_now_ns(), prev = atomic_load_explicit(&last_ns, memory_order_relaxed);
    if (now - prev < RLY_NS_PER_S ||
        !atomic_compare_exchange_strong_explicit(&last_ns, &prev, now, memory_order_relaxed,
                                                 memory_order_relaxed)) {
        atomic_fetch_add_explicit(&suppressed, 1, memory_order_relaxed);
        return;
    }
    char text[RELAY_ID_STRLEN + 1];
    uint64_t more = atomic_exchange_explicit(&suppressed, 0, memory_order_relaxed);
    if (more)
        rly_error(MOD,
                  "%s: unknown actor %s (%llu more unknown-actor errors in the last second "
                  "not logged)",
                  what, relay_id_format(id, text), (unsigned long long)more);
    else
        rly_error(MOD, "%s: unknown actor %s", what, relay_id_format(id, text));
}

uint32_t relay_agent_obs_dim(relay_agent *a, relay_id id)
{
    dims d;
    return a && dims_many(a, &id, 1, &d) == 1 ? d.obs : 0;
}

uint32_t relay_agent_act_dim(relay_agent *a, relay_id id)
{
    dims d;
    return a && dims_many(a, &id, 1, &d) == 1 ? d.act : 0;
}

/* ---- messages ------------------------------------------------------------------------------ */

/*
 * Per-thread scratch of the request path, grown on demand and kept, so a steady request loop
 * allocates nothing: the caller-side arrays, and a latch whose storage holds the requests
 * themselves (rly_infer_req). The requests live as long as the latch, which every reply
 * references, so a call that times out simply lets go: actors still answering write into memory
 * that stays valid until the last reply is freed, and the next call takes a fresh latch.
 */
typedef struct req_scratch {
    rly_msg *msgs;
    rly_reply **replies;
    dims *descs;
    size_t *obs_off, *act_off, *mask_off, *req_off, *at;
    size_t cap;
    rly_latch *latch;
} req_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    req_scratch *s = p;
    free(s->msgs);
    free(s->replies);
    free(s->descs);
    free(s->obs_off);
    free(s->act_off);
    free(s->mask_off);
    free(s->req_off);
    free(s->at);
    rly_latch_release(s->latch);
    free(s);
}

static void scratch_key_init(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

#define GROW(field, n)                                                                             \
    do {                                                                                           \
        void *p_ = realloc(s->field, (n) * sizeof *s->field);                                      \
        if (!p_)                                                                                   \
            return NULL;                                                                           \
        s->field = p_;                                                                             \
    } while (0)

/* scratch_get returns this thread's scratch with room for n actors and a latch armed for n. */
static req_scratch *scratch_get(size_t n)
{
    pthread_once(&scratch_once, scratch_key_init);
    req_scratch *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        if (pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (n > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < n)
            cap *= 2;
        GROW(msgs, cap);
        GROW(replies, cap);
        GROW(descs, cap);
        GROW(obs_off, cap);
        GROW(act_off, cap);
        GROW(mask_off, cap);
        GROW(req_off, cap);
        GROW(at, cap);
        s->cap = cap;
    }
    if (s->latch && !rly_latch_reuse(s->latch, (int64_t)n)) {
        /* Replies of a call that timed out still hold it: it frees itself after them. */
        rly_latch_release(s->latch);
        s->latch = NULL;
    }
    if (!s->latch && !(s->latch = rly_latch_new((int64_t)n)))
        return NULL;
    return s;
}
#undef GROW

/* send_and_wait sends msgs (each with a reply counted by latch) and waits for all replies. */
static relay_err send_and_wait(relay_agent *a, rly_msg *msgs, size_t n, rly_latch *latch,
                               int64_t timeout_ns)
{
    relay_err e = RELAY_OK;
    /* Caller runs (core/pool.h): the routers these requests go to are run by this thread while
       it waits, unless a worker takes them first; no hand-off, no wake-up per request. */
    rly_pool_caller_runs(true);
    size_t sent = rly_coord_send_batch(a->coord, msgs, n, &e);
    /* Messages not taken stay ours: fail their replies, free their payloads, wake the latch. */
    for (size_t i = sent; i < n; i++)
        rly_msg_discard(&msgs[i], e ? e : RELAY_EDISPATCH);
    relay_err we = rly_latch_wait(latch, timeout_ns);
    rly_pool_caller_runs(false);
    if (we && !e)
        e = we;
    return e;
}

/* prepare gives n messages replies counted by latch; false on allocation failure. */
static bool prepare(size_t n, rly_msg *msgs, rly_reply **replies, rly_latch *latch)
{
    for (size_t i = 0; i < n; i++) {
        replies[i] = rly_reply_new_in(latch);
        if (!replies[i]) {
            for (size_t k = 0; k < i; k++) {
                rly_reply_release(replies[k]);
                rly_reply_release(replies[k]);
            }
            return false;
        }
        msgs[i].reply = replies[i];
    }
    return true;
}

relay_err relay_agent_request_action(relay_agent *a, const relay_id *ids, size_t n,
                                     const float *obs, const uint8_t *masks, const float *rewards,
                                     float *actions, relay_err *errs)
{
    if (!a || (n && (!ids || !obs || !actions)))
        return RELAY_EINVAL;
    if (n == 0)
        return RELAY_OK;
    relay_err e = rly_agent_enter(a);
    if (e)
        return e;
    req_scratch *s = scratch_get(n);
    if (!s) {
        rly_agent_leave(a);
        return RELAY_ENOMEM;
    }
    dims *descs = s->descs;
    /* Actors may differ in widths: rows are packed one after another in each array. An unknown
       id's row is taken to be as wide as the others' when every known actor has one width (then
       the known ids are still served); with mixed widths nothing can be located and nothing is
       sent. Either way errs[i] says RELAY_ENOTFOUND for each unknown id. */
    size_t unknown = dims_many(a, ids, n, descs);
    if (unknown < n) {
        log_unknown("request_action", ids[unknown]);
        const dims *ref = NULL;
        bool uniform = true;
        for (size_t i = 0; i < n; i++) {
            if (!descs[i].known)
                continue;
            if (!ref)
                ref = &descs[i];
            else if (descs[i].obs != ref->obs || descs[i].act != ref->act ||
                     descs[i].n_actions != ref->n_actions || descs[i].discrete != ref->discrete)
                uniform = false;
        }
        for (size_t i = 0; i < n; i++) {
            if (errs)
                errs[i] = descs[i].known ? RELAY_ECANCELED : RELAY_ENOTFOUND;
            if (!descs[i].known && ref && uniform) {
                descs[i] = *ref;
                descs[i].known = false;
            }
        }
        if (!ref || !uniform) {
            rly_agent_leave(a);
            return RELAY_ENOTFOUND;
        }
    }
    /* Known ids get a request each, laid out in the latch's storage; msgs[k] goes to
       ids[at[k]]. */
    size_t o = 0, ac = 0, mk = 0, rq = 0, m = 0;
    size_t *at = s->at;
    for (size_t i = 0; i < n; i++) {
        s->obs_off[i] = o;
        s->act_off[i] = ac;
        s->mask_off[i] = mk;
        s->req_off[i] = rq;
        o += descs[i].obs;
        ac += descs[i].act;
        mk += descs[i].discrete ? descs[i].n_actions : 0;
        if (descs[i].known) {
            rly_policy_desc pd = {.obs_dim = descs[i].obs,
                                  .act_dim = descs[i].act,
                                  .n_actions = descs[i].n_actions,
                                  .discrete = descs[i].discrete};
            rq += rly_infer_req_size(&pd, masks && descs[i].discrete);
            at[m++] = i;
        }
    }
    unsigned char *mem = rly_latch_storage(s->latch, rq);
    if (!mem) {
        rly_agent_leave(a);
        return RELAY_ENOMEM;
    }
    rly_msg *msgs = s->msgs;
    for (size_t k = 0; k < m; k++) {
        size_t i = at[k];
        bool with_mask = masks && descs[i].discrete;
        rly_policy_desc pd = {.obs_dim = descs[i].obs,
                              .act_dim = descs[i].act,
                              .n_actions = descs[i].n_actions,
                              .discrete = descs[i].discrete};
        rly_infer_req *q = rly_infer_req_init(mem + s->req_off[i], &pd, with_mask);
        memcpy(q->obs, obs + s->obs_off[i], descs[i].obs * sizeof(float));
        if (with_mask)
            memcpy(q->mask, masks + s->mask_off[i], descs[i].n_actions);
        q->reward = rewards ? rewards[i] : 0.0f;
        /* payload_free NULL: the request lives in the latch's storage, nobody frees it. */
        msgs[k] = rly_msg_data(ids[i], RLY_REQUEST_INFERENCE, 0, q, NULL, NULL);
    }
    if (!rly_latch_reuse(s->latch, (int64_t)m) || !prepare(m, msgs, s->replies, s->latch)) {
        rly_agent_leave(a);
        return RELAY_ENOMEM;
    }
    if (m)
        e = send_and_wait(a, msgs, m, s->latch, (int64_t)a->cfg.request_timeout_ms * RLY_NS_PER_MS);
    for (size_t k = 0; k < m; k++) {
        size_t i = at[k];
        void *p = NULL;
        relay_err re = rly_reply_wait(s->replies[k], 0, NULL, &p);
        const rly_infer_req *q = p;
        if (re == RELAY_OK && q)
            memcpy(actions + s->act_off[i], q->action, descs[i].act * sizeof(float));
        if (errs)
            errs[i] = re;
        if (re && !e)
            e = re;
        rly_reply_release(s->replies[k]);
    }
    /* The first error in id order: an unknown id before any actor's own failure. */
    if (unknown < n) {
        e = RELAY_ENOTFOUND;
        for (size_t i = 0; i < unknown && errs; i++)
            if (errs[i]) {
                e = errs[i];
                break;
            }
    }
    rly_agent_leave(a);
    return e;
}

/* known_prefix returns the index of the first id the agent does not hold, or n. */
static size_t known_prefix(relay_agent *a, const relay_id *ids, size_t n)
{
    size_t i = 0;
    rly_mutex_lock(&a->lock);
    while (i < n && rly_idmap_get(&a->actors, ids[i]))
        i++;
    rly_mutex_unlock(&a->lock);
    return i;
}

/* broadcast sends one message per id (built by make) and waits for every reply. */
static relay_err broadcast(relay_agent *a, const relay_id *ids, size_t n, int64_t *values,
                           relay_err (*make)(relay_agent *a, size_t i, rly_msg *m, void *ctx),
                           void *ctx, int64_t timeout_ns)
{
    relay_err e = rly_agent_enter(a);
    if (e)
        return e;
    if (n == 0) {
        rly_agent_leave(a);
        return RELAY_OK;
    }
    /* An unknown or removed id fails the call at once (nothing is sent), like request_action. */
    size_t known = known_prefix(a, ids, n);
    if (known < n) {
        log_unknown("request", ids[known]);
        rly_agent_leave(a);
        return RELAY_ENOTFOUND;
    }
    req_scratch *s = scratch_get(n);
    if (!s) {
        rly_agent_leave(a);
        return RELAY_ENOMEM;
    }
    rly_msg *msgs = s->msgs;
    size_t built = 0;
    for (; built < n; built++) {
        msgs[built] = (rly_msg){.actor = ids[built]};
        if ((e = make(a, built, &msgs[built], ctx)) != RELAY_OK)
            break;
    }
    if (!e && !prepare(n, msgs, s->replies, s->latch))
        e = RELAY_ENOMEM;
    if (e) {
        for (size_t i = 0; i < built; i++)
            if (msgs[i].payload_free)
                msgs[i].payload_free(msgs[i].payload);
        rly_agent_leave(a);
        return e;
    }
    e = send_and_wait(a, msgs, n, s->latch, timeout_ns);
    for (size_t i = 0; i < n; i++) {
        int64_t v = -1;
        relay_err re = rly_reply_wait(s->replies[i], 0, &v, NULL);
        if (values)
            values[i] = re == RELAY_OK ? v : -1;
        if (re && !e)
            e = re;
        rly_reply_release(s->replies[i]);
    }
    rly_agent_leave(a);
    return e;
}

static relay_err make_flag(relay_agent *a, size_t i, rly_msg *m, void *ctx)
{
    const float *rewards = ctx;
    float r = rewards ? rewards[i] : 0.0f;
    int32_t bits;
    memcpy(&bits, &r, sizeof bits);
    *m = rly_msg_data(m->actor, RLY_FLAG_LAST_INFERENCE, bits, NULL, NULL, NULL);
    return RELAY_OK;
}

relay_err relay_agent_flag_last_action(relay_agent *a, const relay_id *ids, size_t n,
                                       const float *rewards)
{
    if (!a || (n && !ids))
        return RELAY_EINVAL;
    return broadcast(a, ids, n, NULL, make_flag, (void *)rewards,
                     (int64_t)a->cfg.request_timeout_ms * RLY_NS_PER_MS);
}

typedef struct end_ctx {
    const float *rewards;
    const bool *truncated;
    const float *final_obs; /* [n x obs_dim] */
} end_ctx;

static relay_err make_end(relay_agent *a, size_t i, rly_msg *m, void *ctx)
{
    end_ctx *c = ctx;
    relay_err e = make_flag(a, i, m, (void *)c->rewards);
    if (e || !c->truncated || !c->truncated[i])
        return e;
    uint32_t d = c->final_obs ? relay_agent_obs_dim(a, m->actor) : 0;
    rly_episode_end *end = malloc(sizeof *end + (size_t)d * sizeof(float));
    if (!end)
        return RELAY_ENOMEM;
    end->truncated = true;
    end->has_obs = d > 0;
    if (d) /* final_obs is [n x obs_dim]: the actors of one call share their observation width */
        memcpy(end->obs, c->final_obs + i * (size_t)d, (size_t)d * sizeof(float));
    m->payload = end;
    m->payload_free = free;
    return RELAY_OK;
}

relay_err relay_agent_end_episodes(relay_agent *a, const relay_id *ids, size_t n,
                                   const float *rewards, const bool *truncated,
                                   const float *final_obs)
{
    if (!a || (n && !ids))
        return RELAY_EINVAL;
    end_ctx c = {rewards, truncated, final_obs};
    return broadcast(a, ids, n, NULL, make_end, &c,
                     (int64_t)a->cfg.request_timeout_ms * RLY_NS_PER_MS);
}

static relay_err make_version(relay_agent *a, size_t i, rly_msg *m, void *ctx)
{
    *m = rly_msg_data(m->actor, RLY_MODEL_VERSION, 0, NULL, NULL, NULL);
    return RELAY_OK;
}

relay_err relay_agent_get_model_version(relay_agent *a, const relay_id *ids, size_t n,
                                        int64_t *versions)
{
    if (!a || (n && (!ids || !versions)))
        return RELAY_EINVAL;
    return broadcast(a, ids, n, versions, make_version, NULL,
                     (int64_t)a->cfg.request_timeout_ms * RLY_NS_PER_MS);
}

typedef struct update_ctx {
    const relay_bundle *b;
    int64_t version; /* -1: each actor increments its own */
    const float *log_std;
    uint32_t n_log_std;
} update_ctx;

static relay_err make_update(relay_agent *a, size_t i, rly_msg *m, void *ctx)
{
    update_ctx *uc = ctx;
    rly_model_update *u = calloc(1, sizeof *u);
    if (!u)
        return RELAY_ENOMEM;
    u->version = uc->version;
    if (uc->log_std && uc->n_log_std) {
        u->n_log_std = uc->n_log_std < RELAY_ENV_MAX_DIM ? uc->n_log_std : RELAY_ENV_MAX_DIM;
        memcpy(u->log_std, uc->log_std, u->n_log_std * sizeof(float));
    }
    if (uc->b) {
        size_t len;
        const uint8_t *onnx = relay_model_onnx(relay_bundle_model(uc->b), &len);
        relay_err e = relay_model_from_onnx(onnx, len, &u->pi);
        if (!e && relay_bundle_value(uc->b)) { /* the bundle's critic replaces the actor's */
            onnx = relay_model_onnx(relay_bundle_value(uc->b), &len);
            e = relay_model_from_onnx(onnx, len, &u->vf);
        }
        if (e) {
            rly_model_update_free(u);
            return e;
        }
    }
    *m = rly_msg_data(m->actor, RLY_MODEL_UPDATE, u->version, u, rly_model_update_free, NULL);
    return RELAY_OK;
}

relay_err relay_agent_update_model(relay_agent *a, const relay_bundle *b, const relay_id *ids,
                                   size_t n)
{
    if (!a || !b || (n && !ids))
        return RELAY_EINVAL;
    relay_id *owned = NULL;
    if (n == 0 || a->cfg.shared_model) {
        owned = rly_agent_all_ids(a, &n);
        if (!owned)
            return RELAY_ENOMEM;
        ids = owned;
    }
    relay_err e = RELAY_OK;
    update_ctx uc = {.b = b, .version = -1};
    if (a->cfg.shared_model) {
        /* One compile, one check against every actor, one publish; every actor then switches
           at its next message or step. */
        relay_model *m = NULL, *vf = NULL;
        size_t len;
        const uint8_t *onnx = relay_model_onnx(relay_bundle_model(b), &len);
        e = relay_model_from_onnx(onnx, len, &m);
        if (!e && relay_bundle_value(b)) {
            onnx = relay_model_onnx(relay_bundle_value(b), &len);
            e = relay_model_from_onnx(onnx, len, &vf);
        }
        if (!e) {
            rly_mutex_lock(&a->lock);
            e = rly_agent_check_model_locked(a, NULL, 0, m, vf, "update_model");
            int64_t v = e ? -1 : ++a->shared_version;
            if (!e && vf && (e = relay_model_handle_publish(a->shared_vf, vf, v)) == RELAY_OK)
                vf = NULL; /* owned by the handle */
            if (!e)
                e = relay_model_handle_publish(a->shared_pi, m, v);
            rly_mutex_unlock(&a->lock);
            relay_model_free(vf);
            if (e)
                relay_model_free(m);
            uc.b = NULL;
            uc.version = v;
        }
    } else {
        /* Independent mode: refuse before sending anything (each actor checks again). */
        e = rly_agent_check_model(a, ids, n, relay_bundle_model(b), NULL, "update_model");
    }
    if (!e)
        e = broadcast(a, ids, n, NULL, make_update, &uc,
                      (int64_t)a->cfg.request_timeout_ms * RLY_NS_PER_MS);
    free(owned);
    return e;
}

relay_err rly_agent_publish(relay_agent *a, int64_t version, relay_model *pi, relay_model *vf,
                            const float *log_std, uint32_t n_log_std)
{
    if (!a || !pi || !a->cfg.shared_model) {
        relay_model_free(pi);
        relay_model_free(vf);
        return RELAY_EINVAL;
    }
    /* the learner's thread and relay actors' network thread publish: a stopping agent may be
       waiting for them, so they give up instead of waiting for it */
    if (!rly_agent_lock_unless_stopping(a)) {
        relay_model_free(pi);
        relay_model_free(vf);
        return RELAY_ESHUTDOWN;
    }
    relay_err e = rly_agent_check_model_locked(a, NULL, 0, pi, vf, "publish");
    if (e) {
        rly_mutex_unlock(&a->lock);
        relay_model_free(pi);
        relay_model_free(vf);
        return e;
    }
    if (vf && (e = relay_model_handle_publish(a->shared_vf, vf, version)) != RELAY_OK) {
        rly_mutex_unlock(&a->lock);
        relay_model_free(pi);
        relay_model_free(vf);
        return e;
    }
    e = relay_model_handle_publish(a->shared_pi, pi, version);
    if (e) {
        rly_mutex_unlock(&a->lock);
        relay_model_free(pi); /* vf (if any) is already owned by its handle */
        return e;
    }
    a->shared_version = version;
    size_t n = 0;
    relay_id *ids = rly_agent_ids_locked(a, &n);
    rly_mutex_unlock(&a->lock);
    if (!ids)
        return RELAY_ENOMEM;
    update_ctx uc = {.version = version, .log_std = log_std, .n_log_std = n_log_std};
    /* Fire and forget: the learner does not wait for acknowledgements, only for fresh data. */
    rly_msg *msgs = calloc(n ? n : 1, sizeof *msgs);
    if (!msgs) {
        free(ids);
        return RELAY_ENOMEM;
    }
    size_t built = 0;
    for (; built < n; built++) {
        msgs[built].actor = ids[built];
        if ((e = make_update(a, built, &msgs[built], &uc)) != RELAY_OK)
            break;
    }
    size_t sent = 0;
    if (!e && (e = rly_agent_enter_unless_stopping(a)) == RELAY_OK) {
        sent = rly_coord_send_batch(a->coord, msgs, built, &e);
        rly_agent_leave(a);
    }
    for (size_t i = sent; i < built; i++)
        rly_msg_discard(&msgs[i], e ? e : RELAY_ESHUTDOWN);
    free(msgs);
    free(ids);
    return e;
}

relay_err relay_agent_scale_throughput(relay_agent *a, int32_t delta)
{
    if (!a)
        return RELAY_EINVAL;
    if (delta == 0) {
        rly_error(MOD, "scale_throughput(0) changes nothing");
        return RELAY_EINVAL;
    }
    relay_err e = rly_agent_enter(a);
    if (e)
        return e;
    e = delta > 0 ? rly_coord_scale_out(a->coord, (uint32_t)delta)
                  : rly_coord_scale_in(a->coord, (uint32_t)(-(int64_t)delta));
    rly_agent_leave(a);
    return e;
}

uint32_t relay_agent_num_routers(relay_agent *a)
{
    if (!a)
        return 0;
    rly_mutex_lock(&a->lock);
    uint32_t n = a->coord ? rly_coord_num_routers(a->coord) : 0;
    rly_mutex_unlock(&a->lock);
    return n;
}
