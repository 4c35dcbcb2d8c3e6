/*
 * The agent: validates API calls and turns them into routed messages. It owns the coordinator
 * (dispatcher + routers), the sinks, one trajectory buffer per router and the sink worker.
 *
 * Shutdown order: (1) the coordinator stops intake, delivers or fails pending messages and
 * delivers Shutdown to every actor, which flushes its partial trajectories into its router's
 * buffer; (2) routers and the dispatcher are joined; (3) each router's buffer is drained into
 * the sinks; (4) the sink worker stops; (5) sinks are closed, so files get valid footers.
 */
#include "agent/agent.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "coord/coordinator.h"
#include "core/clock.h"
#include "core/idmap.h"
#include "core/log.h"

#define MOD "agent"
#define MAX_SINKS 4

typedef struct agent_actor {
    rly_actor *actor;
    const relay_env_def *env;
} agent_actor;

enum { ST_NEW = 0, ST_RUNNING, ST_DOWN };

struct relay_agent {
    relay_config cfg;
    /* life: held for reading by calls that use the runtime outside `lock` (sending messages,
       scaling), for writing by start/shutdown/restart, so the runtime is never torn down under
       a call in flight. Order: life before lock. */
    pthread_rwlock_t life;
    rly_mutex lock; /* actors table and lifecycle state */
    int state;
    rly_coord *coord;
    rly_sinkworker *worker;
    relay_sink *sinks[MAX_SINKS];
    size_t n_sinks;
    relay_sink *memory;
    uint64_t sink_open_failures;
    rly_idmap actors;          /* id -> agent_actor* */
    uint64_t actor_count;      /* actors ever created, for seeds */
    uint64_t retired_trajs;    /* trajectories emitted by actors since removed */
    uint64_t retired_episodes; /* and their episodes, steps and inferences */
    uint64_t retired_steps, retired_inferences;
    relay_model_handle *shared_pi, *shared_vf;
    int64_t shared_version;
    relay_bundle *default_model;
    rly_sink_consumer consumer;
    void *consumer_ctx;
    relay_err shutdown_err;
};

/* ---- lifecycle ---------------------------------------------------------------------------- */

relay_err relay_agent_new(const relay_config *cfg, relay_agent **out)
{
    if (!out)
        return RELAY_EINVAL;
    relay_agent *a = calloc(1, sizeof *a);
    if (!a)
        return RELAY_ENOMEM;
    if (cfg)
        a->cfg = *cfg;
    else
        relay_config_default(&a->cfg);
    relay_err e = rly_config_validate(&a->cfg);
    if (!e)
        e = rly_idmap_init(&a->actors, 64);
    if (e) {
        free(a);
        return e;
    }
    rly_mutex_init(&a->lock);
    pthread_rwlock_init(&a->life, NULL);
    relay_log_set_level((relay_log_level)relay_log_level_parse(a->cfg.log_level));
    if (a->cfg.model_path[0]) {
        e = relay_bundle_load(a->cfg.model_path, &a->default_model);
        if (e) {
            rly_error(MOD, "cannot load model_path %s: %s", a->cfg.model_path, relay_strerror(e));
            relay_agent_free(a);
            return e;
        }
    }
    if (a->cfg.shared_model) {
        e = relay_model_handle_new(&a->shared_pi);
        if (!e)
            e = relay_model_handle_new(&a->shared_vf);
        if (!e && a->default_model) {
            relay_model *m = NULL;
            size_t len;
            const uint8_t *onnx = relay_model_onnx(relay_bundle_model(a->default_model), &len);
            e = relay_model_from_onnx(onnx, len, &m);
            if (!e) {
                a->shared_version = relay_bundle_meta(a->default_model)->version;
                e = relay_model_handle_publish(a->shared_pi, m, a->shared_version);
                if (e)
                    relay_model_free(m);
            }
        }
        if (e) {
            relay_agent_free(a);
            return e;
        }
    }
    *out = a;
    return RELAY_OK;
}

static relay_err router_started(void *ctx, rly_router *r)
{
    relay_agent *a = ctx;
    rly_tbuf *b = NULL;
    relay_err e = rly_tbuf_new(a->worker, a->cfg.buffer_capacity,
                               a->cfg.drop_oldest ? RLY_BP_DROP_OLDEST : RLY_BP_BLOCK, &b);
    if (e)
        return e;
    rly_router_set_user(r, rly_tbuf_out(b));
    return RELAY_OK;
}

static void router_stopped(void *ctx, rly_router *r)
{
    (void)ctx;
    rly_traj_out *o = rly_router_user(r);
    if (o)
        rly_tbuf_retire((rly_tbuf *)o); /* the out interface is the buffer's first member */
    rly_router_set_user(r, NULL);
}

static relay_err open_sink(relay_agent *a, relay_sink_kind kind)
{
    relay_sink_config sc = {.kind = kind,
                            .dir = a->cfg.sink_dir,
                            .run_name = a->cfg.run_name[0] ? a->cfg.run_name : NULL,
                            .batch_rows = a->cfg.arrow_batch_rows,
                            .rotate_bytes = a->cfg.rotate_bytes,
                            .memory_per_actor = a->cfg.memory_per_actor};
    relay_sink *s = NULL;
    relay_err e = relay_sink_open(&sc, &s);
    if (e) {
        rly_error(MOD, "cannot open the %s sink in %s: %s",
                  kind == RELAY_SINK_ARROW ? "arrow"
                  : kind == RELAY_SINK_CSV ? "csv"
                                           : "binary",
                  a->cfg.sink_dir, relay_strerror(e));
        a->sink_open_failures++;
        return e;
    }
    a->sinks[a->n_sinks++] = s;
    if (kind == RELAY_SINK_MEMORY)
        a->memory = s;
    return RELAY_OK;
}

static void close_sinks(relay_agent *a)
{
    for (size_t i = 0; i < a->n_sinks; i++) {
        relay_err e = relay_sink_close(a->sinks[i]);
        if (e)
            rly_error(MOD, "closing a sink: %s", relay_strerror(e));
    }
    a->n_sinks = 0;
    a->memory = NULL;
}

/* start_runtime opens sinks, the worker and the coordinator, then places every known actor. */
static relay_err start_runtime(relay_agent *a)
{
    relay_err e = RELAY_OK;
    if (a->cfg.sink_memory)
        e = open_sink(a, RELAY_SINK_MEMORY);
    /* A file sink that cannot open is reported; the agent runs on with the other sinks. */
    if (!e && a->cfg.sink_arrow)
        open_sink(a, RELAY_SINK_ARROW);
    if (!e && a->cfg.sink_csv)
        open_sink(a, RELAY_SINK_CSV);
    if (!e && a->cfg.sink_binary)
        open_sink(a, RELAY_SINK_BINARY);
    if (!e)
        e = rly_sinkworker_new(a->sinks, a->n_sinks, 256, a->consumer, a->consumer_ctx, &a->worker);
    if (!e) {
        rly_coord_config cc;
        rly_coord_config_default(&cc);
        cc.routers = a->cfg.routers;
        cc.router_queue_capacity = a->cfg.router_queue_capacity;
        cc.dispatcher.intake_capacity = a->cfg.intake_capacity;
        cc.dispatcher.pending_capacity = a->cfg.pending_capacity;
        cc.dispatcher.tick_ns = (int64_t)a->cfg.tick_ms * RLY_NS_PER_MS;
        cc.dispatcher.retry_initial_ns = (int64_t)a->cfg.retry_initial_ms * RLY_NS_PER_MS;
        cc.dispatcher.retry_max_ns = (int64_t)a->cfg.retry_max_ms * RLY_NS_PER_MS;
        for (int p = 0; p < RLY_PROTO_COUNT && p < 8; p++)
            cc.dispatcher.ttl_ns[p] = (int64_t)a->cfg.ttl_ms[p] * RLY_NS_PER_MS;
        cc.shutdown_timeout_ns = (int64_t)a->cfg.shutdown_timeout_ms * RLY_NS_PER_MS;
        cc.router_started = router_started;
        cc.router_stopped = router_stopped;
        cc.hook_ctx = a;
        e = rly_coord_new(&cc, &a->coord);
    }
    /* Actors that survived a restart go back on routers. */
    size_t pos = 0;
    rly_idmap_slot *it;
    while (!e && (it = rly_idmap_next(&a->actors, &pos)))
        e = rly_coord_add_actor(a->coord, rly_actor_slot_of(((agent_actor *)it->val)->actor));
    return e;
}

/* stop_runtime is the documented shutdown order; safe on a partly started runtime. */
static relay_err stop_runtime(relay_agent *a)
{
    relay_err e = RELAY_OK;
    if (a->coord) {
        e = rly_coord_shutdown(a->coord);
        rly_coord_free(a->coord); /* joins routers; retires (drains) their buffers */
        a->coord = NULL;
    }
    if (a->worker) {
        rly_sinkworker_free(a->worker);
        a->worker = NULL;
    }
    close_sinks(a);
    return e;
}

/* lifecycle_lock excludes every other call while the runtime starts or stops. */
static void lifecycle_lock(relay_agent *a)
{
    pthread_rwlock_wrlock(&a->life);
    rly_mutex_lock(&a->lock);
}

static void lifecycle_unlock(relay_agent *a)
{
    rly_mutex_unlock(&a->lock);
    pthread_rwlock_unlock(&a->life);
}

relay_err relay_agent_start(relay_agent *a)
{
    if (!a)
        return RELAY_EINVAL;
    lifecycle_lock(a);
    relay_err e = a->state == ST_NEW ? RELAY_OK : RELAY_ESTATE;
    if (!e) {
        e = start_runtime(a);
        if (e)
            stop_runtime(a);
        else
            a->state = ST_RUNNING;
    }
    lifecycle_unlock(a);
    return e;
}

relay_err relay_agent_shutdown(relay_agent *a)
{
    if (!a)
        return RELAY_EINVAL;
    lifecycle_lock(a);
    if (a->state == ST_RUNNING) {
        a->shutdown_err = stop_runtime(a);
        a->state = ST_DOWN;
    } else if (a->state == ST_NEW) {
        a->state = ST_DOWN;
    }
    relay_err e = a->shutdown_err;
    lifecycle_unlock(a);
    return e;
}

relay_err relay_agent_restart(relay_agent *a)
{
    if (!a)
        return RELAY_EINVAL;
    lifecycle_lock(a);
    if (a->state == ST_RUNNING)
        stop_runtime(a);
    relay_err e = start_runtime(a);
    if (e) {
        stop_runtime(a);
        a->state = ST_DOWN;
    } else {
        a->state = ST_RUNNING;
        a->shutdown_err = RELAY_OK;
    }
    lifecycle_unlock(a);
    return e;
}

void relay_agent_free(relay_agent *a)
{
    if (!a)
        return;
    relay_agent_shutdown(a);
    size_t pos = 0;
    rly_idmap_slot *it;
    while ((it = rly_idmap_next(&a->actors, &pos))) {
        agent_actor *aa = it->val;
        rly_actor_free(aa->actor);
        free(aa);
    }
    rly_idmap_fini(&a->actors);
    relay_bundle_free(a->default_model);
    relay_model_handle_free(a->shared_pi);
    relay_model_handle_free(a->shared_vf);
    rly_mutex_fini(&a->lock);
    pthread_rwlock_destroy(&a->life);
    free(a);
}

/* ---- actors -------------------------------------------------------------------------------- */

/* running_locked checks the agent can take actor calls; lock held. */
static relay_err running_locked(relay_agent *a)
{
    if (a->state == ST_RUNNING)
        return RELAY_OK;
    rly_error(MOD, "the agent is %s", a->state == ST_NEW ? "not started" : "shut down");
    return RELAY_ESTATE;
}

/* enter pins the runtime for a call that sends messages; pair with leave() when it returns OK. */
static relay_err enter(relay_agent *a)
{
    pthread_rwlock_rdlock(&a->life);
    rly_mutex_lock(&a->lock);
    relay_err e = running_locked(a);
    rly_mutex_unlock(&a->lock);
    if (e)
        pthread_rwlock_unlock(&a->life);
    return e;
}

static void leave(relay_agent *a)
{
    pthread_rwlock_unlock(&a->life);
}

static relay_err add_actor_locked(relay_agent *a, const rly_actor_config *ac,
                                  const relay_env_def *env, relay_model *pi, int64_t version,
                                  relay_id *id)
{
    rly_actor *act = NULL;
    relay_err e = rly_actor_new(ac, &act);
    if (e) {
        relay_model_free(pi);
        return e;
    }
    if (pi) {
        e = rly_actor_install(act, pi, NULL, version, NULL, 0);
        if (e)
            relay_model_free(pi);
    } else if (ac->shared_pi) {
        e = rly_actor_install(act, NULL, NULL, 0, NULL, 0);
    }
    agent_actor *aa = e ? NULL : calloc(1, sizeof *aa);
    if (!e && !aa)
        e = RELAY_ENOMEM;
    if (!e && rly_idmap_get(&a->actors, ac->id))
        e = RELAY_EEXIST;
    if (!e) {
        aa->actor = act;
        aa->env = env;
        e = rly_idmap_put(&a->actors, ac->id, aa);
    }
    if (!e) {
        e = rly_coord_add_actor(a->coord, rly_actor_slot_of(act));
        if (e)
            rly_idmap_del(&a->actors, ac->id);
    }
    if (e) {
        free(aa);
        rly_actor_free(act);
        return e;
    }
    a->actor_count++;
    if (id)
        *id = ac->id;
    return RELAY_OK;
}

relay_err relay_agent_new_actor(relay_agent *a, const relay_actor_options *opt, relay_id *id)
{
    if (!a)
        return RELAY_EINVAL;
    relay_actor_options none = {0};
    if (!opt)
        opt = &none;
    const relay_bundle *model = opt->model ? opt->model : a->default_model;
    const char *env_name = opt->env ? opt->env : (a->cfg.env[0] ? a->cfg.env : NULL);
    const relay_env_def *env = NULL;
    relay_err e = RELAY_OK;
    if (env_name && (e = relay_env_resolve(env_name, &env)) != RELAY_OK) {
        rly_error(MOD, "new_actor: unknown environment \"%s\"", env_name);
        return e;
    }
    rly_actor_config ac = {0};
    ac.id = opt->id ? *opt->id : relay_id_new();
    ac.max_traj_len = opt->max_traj_length ? opt->max_traj_length : a->cfg.max_traj_length;
    ac.deterministic = opt->deterministic;
    ac.record = true;
    if (model) {
        e = rly_policy_desc_from_meta(&ac.policy, relay_bundle_meta(model));
        if (!e && env) {
            rly_policy_desc ed;
            if (rly_policy_desc_from_env(&ed, env) == RELAY_OK &&
                (ed.obs_dim != ac.policy.obs_dim || ed.discrete != ac.policy.discrete)) {
                rly_error(MOD, "new_actor: the model does not fit environment %s", env->name);
                e = RELAY_ESHAPE;
            }
        }
    } else if (env) {
        e = rly_policy_desc_from_env(&ac.policy, env);
    } else {
        rly_error(MOD, "new_actor: needs a model or an environment to know its spaces");
        e = RELAY_EINVAL;
    }
    if (e)
        return e;
    rly_mutex_lock(&a->lock);
    e = running_locked(a);
    if (!e) {
        ac.seed = opt->seed ? opt->seed : a->cfg.seed * 1000003ULL + a->actor_count + 1;
        relay_model *pi = NULL;
        int64_t version = 0;
        if (a->cfg.shared_model) {
            ac.shared_pi = a->shared_pi;
            ac.shared_vf = a->shared_vf;
            if (opt->model) {
                rly_warn(MOD, "new_actor: shared model mode ignores a per-actor model; use "
                              "update_model");
            }
        } else if (model) {
            size_t len;
            const uint8_t *onnx = relay_model_onnx(relay_bundle_model(model), &len);
            e = relay_model_from_onnx(onnx, len, &pi);
            version = relay_bundle_meta(model)->version;
        }
        if (!e)
            e = add_actor_locked(a, &ac, env, pi, version, id);
    }
    rly_mutex_unlock(&a->lock);
    return e;
}

relay_err relay_agent_new_actors(relay_agent *a, uint32_t count, const relay_actor_options *opt,
                                 relay_id *ids)
{
    if (!a || (count && !ids))
        return RELAY_EINVAL;
    if (opt && opt->id && count > 1)
        return RELAY_EINVAL;
    for (uint32_t i = 0; i < count; i++) {
        relay_err e = relay_agent_new_actor(a, opt, &ids[i]);
        if (e)
            return e;
    }
    return RELAY_OK;
}

relay_err rly_agent_new_actor_desc(relay_agent *a, const rly_policy_desc *desc, uint64_t seed,
                                   uint32_t max_len, relay_id *id)
{
    if (!a || !desc || !a->cfg.shared_model)
        return RELAY_EINVAL;
    rly_actor_config ac = {.id = relay_id_from_seed(seed, 0xac70),
                           .seed = seed,
                           .max_traj_len = max_len,
                           .record = true,
                           .policy = *desc};
    rly_mutex_lock(&a->lock);
    relay_err e = running_locked(a);
    if (!e) {
        ac.shared_pi = a->shared_pi;
        ac.shared_vf = a->shared_vf;
        e = add_actor_locked(a, &ac, NULL, NULL, 0, id);
    }
    rly_mutex_unlock(&a->lock);
    return e;
}

relay_err relay_agent_remove_actor(relay_agent *a, relay_id id)
{
    if (!a)
        return RELAY_EINVAL;
    rly_mutex_lock(&a->lock);
    relay_err e = running_locked(a);
    agent_actor *aa = e ? NULL : rly_idmap_get(&a->actors, id);
    if (!e && !aa)
        e = RELAY_ENOTFOUND;
    if (!e)
        e = rly_coord_remove_actor(a->coord, id, NULL);
    if (!e) {
        rly_actor_stats *s = rly_actor_stats_of(aa->actor);
        a->retired_trajs += atomic_load(&s->trajectories);
        a->retired_episodes += atomic_load(&s->episodes);
        a->retired_steps += atomic_load(&s->env_steps);
        a->retired_inferences += atomic_load(&s->inferences);
        rly_idmap_del(&a->actors, id);
        rly_actor_free(aa->actor);
        free(aa);
    }
    rly_mutex_unlock(&a->lock);
    return e;
}

relay_err relay_agent_remove_actors(relay_agent *a, const relay_id *ids, size_t n)
{
    relay_err first = RELAY_OK;
    for (size_t i = 0; i < n; i++) {
        relay_err e = relay_agent_remove_actor(a, ids[i]);
        if (e && !first)
            first = e;
    }
    return first;
}

relay_err relay_agent_set_actor_id(relay_agent *a, relay_id cur, relay_id next)
{
    if (!a)
        return RELAY_EINVAL;
    rly_mutex_lock(&a->lock);
    relay_err e = running_locked(a);
    agent_actor *aa = e ? NULL : rly_idmap_get(&a->actors, cur);
    if (!e && !aa)
        e = RELAY_ENOTFOUND;
    if (!e && rly_idmap_get(&a->actors, next))
        e = RELAY_EEXIST;
    if (!e)
        e = rly_coord_rename_actor(a->coord, cur, next);
    if (!e) {
        rly_idmap_del(&a->actors, cur);
        e = rly_idmap_put(&a->actors, next, aa);
    }
    rly_mutex_unlock(&a->lock);
    return e;
}

static int id_cmp(const void *x, const void *y)
{
    return relay_id_cmp(*(const relay_id *)x, *(const relay_id *)y);
}

size_t relay_agent_actor_ids(relay_agent *a, relay_id *ids, size_t max)
{
    if (!a)
        return 0;
    rly_mutex_lock(&a->lock);
    size_t total = rly_idmap_count(&a->actors), n = 0, pos = 0;
    relay_id *all = malloc((total ? total : 1) * sizeof *all);
    rly_idmap_slot *it;
    while (all && (it = rly_idmap_next(&a->actors, &pos)))
        all[n++] = it->key;
    rly_mutex_unlock(&a->lock);
    if (all) {
        qsort(all, n, sizeof *all, id_cmp);
        for (size_t i = 0; i < n && i < max && ids; i++)
            ids[i] = all[i];
        free(all);
    }
    return total;
}

/* dims are the widths request_action needs of one actor. */
typedef struct dims {
    uint32_t obs, act, n_actions;
    bool discrete;
} dims;

/* dims_many looks up n actors under one lock; returns the index of the first unknown one, or n. */
static size_t dims_many(relay_agent *a, const relay_id *ids, size_t n, dims *out)
{
    size_t i = 0;
    rly_mutex_lock(&a->lock);
    for (; i < n; i++) {
        agent_actor *aa = rly_idmap_get(&a->actors, ids[i]);
        if (!aa)
            break;
        const rly_policy_desc *d = rly_actor_desc(aa->actor);
        out[i] = (dims){d->obs_dim, d->act_dim, d->n_actions, d->discrete};
    }
    rly_mutex_unlock(&a->lock);
    return i;
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

/* send_and_wait sends msgs (each with a reply counted by latch) and waits for all replies. */
static relay_err send_and_wait(relay_agent *a, rly_msg *msgs, size_t n, rly_latch *latch,
                               int64_t timeout_ns)
{
    relay_err e = RELAY_OK;
    size_t sent = rly_dispatcher_send_batch(a->coord->disp, msgs, n, &e);
    /* Messages not taken stay ours: fail their replies, free their payloads, wake the latch. */
    for (size_t i = sent; i < n; i++)
        rly_msg_discard(&msgs[i], e ? e : RELAY_EDISPATCH);
    relay_err we = rly_latch_wait(latch, timeout_ns);
    if (we && !e)
        e = we;
    return e;
}

/* prepare makes n messages with replies counted by one latch; NULL on allocation failure. */
static rly_latch *prepare(size_t n, rly_msg *msgs, rly_reply **replies)
{
    rly_latch *latch = rly_latch_new((int64_t)n);
    if (!latch)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        replies[i] = rly_reply_new_in(latch);
        if (!replies[i]) {
            for (size_t k = 0; k < i; k++) {
                rly_reply_release(replies[k]);
                rly_reply_release(replies[k]);
            }
            rly_latch_release(latch);
            return NULL;
        }
        msgs[i].reply = replies[i];
    }
    return latch;
}

relay_err relay_agent_request_action(relay_agent *a, const relay_id *ids, size_t n,
                                     const float *obs, const uint8_t *masks, const float *rewards,
                                     float *actions, relay_err *errs)
{
    if (!a || (n && (!ids || !obs || !actions)))
        return RELAY_EINVAL;
    if (n == 0)
        return RELAY_OK;
    relay_err e = enter(a);
    if (e)
        return e;
    rly_msg *msgs = calloc(n, sizeof *msgs);
    rly_reply **replies = calloc(n, sizeof *replies);
    dims *descs = calloc(n, sizeof *descs);
    size_t *obs_off = calloc(n, sizeof *obs_off), *act_off = calloc(n, sizeof *act_off),
           *mask_off = calloc(n, sizeof *mask_off);
    if (!msgs || !replies || !descs || !obs_off || !act_off || !mask_off) {
        e = RELAY_ENOMEM;
        goto out;
    }
    /* Actors may differ in widths: rows are packed one after another in each array. */
    size_t o = 0, ac = 0, mk = 0;
    size_t unknown = dims_many(a, ids, n, descs);
    if (unknown < n) {
        char text[RELAY_ID_STRLEN + 1];
        rly_error(MOD, "request_action: unknown actor %s", relay_id_format(ids[unknown], text));
        e = RELAY_ENOTFOUND;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        obs_off[i] = o;
        act_off[i] = ac;
        mask_off[i] = mk;
        o += descs[i].obs;
        ac += descs[i].act;
        mk += descs[i].discrete ? descs[i].n_actions : 0;
    }
    for (size_t i = 0; i < n; i++) {
        bool with_mask = masks && descs[i].discrete;
        rly_policy_desc pd = {.obs_dim = descs[i].obs,
                              .act_dim = descs[i].act,
                              .n_actions = descs[i].n_actions,
                              .discrete = descs[i].discrete};
        rly_infer_req *q = rly_infer_req_new(&pd, with_mask);
        if (!q) {
            for (size_t k = 0; k < i; k++)
                free(msgs[k].payload);
            e = RELAY_ENOMEM;
            goto out;
        }
        memcpy(q->obs, obs + obs_off[i], descs[i].obs * sizeof(float));
        if (with_mask)
            memcpy(q->mask, masks + mask_off[i], descs[i].n_actions);
        q->reward = rewards ? rewards[i] : 0.0f;
        msgs[i] = rly_msg_data(ids[i], RLY_REQUEST_INFERENCE, 0, q, free, NULL);
    }
    rly_latch *latch = prepare(n, msgs, replies);
    if (!latch) {
        for (size_t i = 0; i < n; i++)
            free(msgs[i].payload);
        e = RELAY_ENOMEM;
        goto out;
    }
    e = send_and_wait(a, msgs, n, latch, (int64_t)a->cfg.request_timeout_ms * RLY_NS_PER_MS);
    for (size_t i = 0; i < n; i++) {
        void *p = NULL;
        relay_err re = rly_reply_wait(replies[i], 0, NULL, &p);
        rly_infer_req *q = p;
        if (re == RELAY_OK && q)
            memcpy(actions + act_off[i], q->action, descs[i].act * sizeof(float));
        free(q);
        if (errs)
            errs[i] = re;
        if (re && !e)
            e = re;
        rly_reply_release(replies[i]);
    }
    rly_latch_release(latch);
out:
    free(msgs);
    free(replies);
    free(descs);
    free(obs_off);
    free(act_off);
    free(mask_off);
    leave(a);
    return e;
}

/* broadcast sends one message per id (built by make) and waits for every reply. */
static relay_err broadcast(relay_agent *a, const relay_id *ids, size_t n, int64_t *values,
                           relay_err (*make)(relay_agent *a, size_t i, rly_msg *m, void *ctx),
                           void *ctx, int64_t timeout_ns)
{
    relay_err e = enter(a);
    if (e)
        return e;
    if (n == 0) {
        leave(a);
        return RELAY_OK;
    }
    rly_msg *msgs = calloc(n, sizeof *msgs);
    rly_reply **replies = calloc(n, sizeof *replies);
    rly_latch *latch = NULL;
    size_t built = 0;
    if (!msgs || !replies) {
        e = RELAY_ENOMEM;
        goto out;
    }
    for (; built < n; built++) {
        msgs[built].actor = ids[built];
        if ((e = make(a, built, &msgs[built], ctx)) != RELAY_OK)
            break;
    }
    if (e) {
        for (size_t i = 0; i < built; i++)
            if (msgs[i].payload_free)
                msgs[i].payload_free(msgs[i].payload);
        goto out;
    }
    latch = prepare(n, msgs, replies);
    if (!latch) {
        for (size_t i = 0; i < n; i++)
            if (msgs[i].payload_free)
                msgs[i].payload_free(msgs[i].payload);
        e = RELAY_ENOMEM;
        goto out;
    }
    e = send_and_wait(a, msgs, n, latch, timeout_ns);
    for (size_t i = 0; i < n; i++) {
        int64_t v = -1;
        relay_err re = rly_reply_wait(replies[i], 0, &v, NULL);
        if (values)
            values[i] = re == RELAY_OK ? v : -1;
        if (re && !e)
            e = re;
        rly_reply_release(replies[i]);
    }
    rly_latch_release(latch);
out:
    free(msgs);
    free(replies);
    leave(a);
    return e;
}

static relay_err make_flag(relay_agent *a, size_t i, rly_msg *m, void *ctx)
{
    const float *rewards = ctx;
    float r = rewards ? rewards[i] : 0.0f;
    int32_t bits;
    memcpy(&bits, &r, sizeof bits);
    *m = rly_msg_data(m->actor, RLY_FLAG_LAST_ACTION, bits, NULL, NULL, NULL);
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
        if (e) {
            free(u);
            return e;
        }
    }
    *m = rly_msg_data(m->actor, RLY_MODEL_UPDATE, u->version, u, rly_model_update_free, NULL);
    return RELAY_OK;
}

/* all_ids snapshots every actor id (caller frees). */
static relay_id *all_ids(relay_agent *a, size_t *n)
{
    size_t total = relay_agent_actor_ids(a, NULL, 0);
    relay_id *ids = malloc((total ? total : 1) * sizeof *ids);
    *n = ids ? relay_agent_actor_ids(a, ids, total) : 0;
    if (*n > total)
        *n = total;
    return ids;
}

relay_err relay_agent_update_model(relay_agent *a, const relay_bundle *b, const relay_id *ids,
                                   size_t n)
{
    if (!a || !b || (n && !ids))
        return RELAY_EINVAL;
    relay_id *owned = NULL;
    if (n == 0 || a->cfg.shared_model) {
        owned = all_ids(a, &n);
        if (!owned)
            return RELAY_ENOMEM;
        ids = owned;
    }
    relay_err e = RELAY_OK;
    update_ctx uc = {.b = b, .version = -1};
    if (a->cfg.shared_model) {
        /* One compile, one publish; every actor then switches at its next message or step. */
        relay_model *m = NULL;
        size_t len;
        const uint8_t *onnx = relay_model_onnx(relay_bundle_model(b), &len);
        e = relay_model_from_onnx(onnx, len, &m);
        if (!e) {
            rly_mutex_lock(&a->lock);
            int64_t v = ++a->shared_version;
            rly_mutex_unlock(&a->lock);
            e = relay_model_handle_publish(a->shared_pi, m, v);
            if (e)
                relay_model_free(m);
            uc.b = NULL;
            uc.version = v;
        }
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
    relay_err e = RELAY_OK;
    if (vf && (e = relay_model_handle_publish(a->shared_vf, vf, version)) != RELAY_OK) {
        relay_model_free(pi);
        relay_model_free(vf);
        return e;
    }
    e = relay_model_handle_publish(a->shared_pi, pi, version);
    if (e) {
        relay_model_free(pi); /* vf (if any) is already owned by its handle */
        return e;
    }
    rly_mutex_lock(&a->lock);
    a->shared_version = version;
    rly_mutex_unlock(&a->lock);
    size_t n;
    relay_id *ids = all_ids(a, &n);
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
    if (!e && (e = enter(a)) == RELAY_OK) {
        sent = rly_dispatcher_send_batch(a->coord->disp, msgs, built, &e);
        leave(a);
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
    relay_err e = enter(a);
    if (e)
        return e;
    e = delta > 0 ? rly_coord_scale_out(a->coord, (uint32_t)delta)
                  : rly_coord_scale_in(a->coord, (uint32_t)(-(int64_t)delta));
    leave(a);
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

static relay_err run_env(relay_agent *a, relay_id id, const relay_env_def *env, uint32_t n_envs,
                         uint64_t seed, uint64_t steps, uint32_t per_version, bool wait)
{
    rly_run_env *spec = calloc(1, sizeof *spec);
    if (!spec)
        return RELAY_ENOMEM;
    *spec = (rly_run_env){.env = env,
                          .n_envs = n_envs ? n_envs : 1,
                          .seed = seed,
                          .steps = steps,
                          .steps_per_version = per_version};
    rly_reply *r = rly_reply_new();
    if (!r) {
        free(spec);
        return RELAY_ENOMEM;
    }
    rly_msg m = rly_msg_data(id, RLY_RUN_ENV, 0, spec, free, r);
    rly_mutex_lock(&a->lock);
    relay_err e = running_locked(a);
    if (!e)
        e = rly_coord_send(a->coord, &m);
    rly_mutex_unlock(&a->lock);
    if (e) {
        free(spec);
        rly_reply_release(r);
        rly_reply_release(r);
        return e;
    }
    if (wait)
        e = rly_reply_wait(r, -1, NULL, NULL);
    rly_reply_release(r);
    return e;
}

relay_err relay_agent_run_env(relay_agent *a, relay_id id, const char *env_name, uint32_t n_envs,
                              uint64_t steps, bool wait)
{
    if (!a)
        return RELAY_EINVAL;
    rly_mutex_lock(&a->lock);
    agent_actor *aa = rly_idmap_get(&a->actors, id);
    const relay_env_def *env = aa ? aa->env : NULL;
    uint64_t seed = a->cfg.seed;
    rly_mutex_unlock(&a->lock);
    if (!aa)
        return RELAY_ENOTFOUND;
    if (env_name) {
        relay_err e = relay_env_resolve(env_name, &env);
        if (e) {
            rly_error(MOD, "run_env: unknown environment \"%s\"", env_name);
            return e;
        }
    }
    if (!env) {
        rly_error(MOD, "run_env: the actor has no environment; pass one");
        return RELAY_EINVAL;
    }
    return run_env(a, id, env, n_envs, seed, steps, 0, wait);
}

relay_err rly_agent_run_env_quota(relay_agent *a, relay_id id, const relay_env_def *env,
                                  uint32_t n_envs, uint64_t seed, uint32_t steps_per_version)
{
    if (!a || !env)
        return RELAY_EINVAL;
    return run_env(a, id, env, n_envs, seed, 0, steps_per_version, false);
}

relay_err relay_agent_drain_trajectories(relay_agent *a, relay_traj **out, size_t max, size_t *n)
{
    if (!a || !n || (max && !out))
        return RELAY_EINVAL;
    *n = 0;
    rly_mutex_lock(&a->lock);
    relay_sink *mem = a->memory;
    relay_err e = mem ? RELAY_OK : RELAY_ESTATE;
    if (e)
        rly_error(MOD, "drain_trajectories: the memory sink is %s",
                  a->cfg.sink_memory ? "not open (agent not running)" : "disabled");
    else
        e = relay_sink_memory_drain(mem, out, max, n);
    rly_mutex_unlock(&a->lock);
    return e;
}

relay_err rly_agent_set_consumer(relay_agent *a, rly_sink_consumer fn, void *ctx)
{
    if (!a)
        return RELAY_EINVAL;
    rly_mutex_lock(&a->lock);
    relay_err e = a->state == ST_NEW ? RELAY_OK : RELAY_ESTATE;
    if (!e) {
        a->consumer = fn;
        a->consumer_ctx = ctx;
    }
    rly_mutex_unlock(&a->lock);
    return e;
}

relay_err relay_agent_flush(relay_agent *a)
{
    if (!a)
        return RELAY_EINVAL;
    /* A round trip to every actor: whatever it emitted before is then in its router's buffer. */
    size_t n;
    relay_id *ids = all_ids(a, &n);
    if (!ids)
        return RELAY_ENOMEM;
    int64_t *v = calloc(n ? n : 1, sizeof *v);
    relay_err e = v ? relay_agent_get_model_version(a, ids, n, v) : RELAY_ENOMEM;
    free(v);
    free(ids);
    if (e)
        return e;
    int64_t deadline = rly_now_ns() + (int64_t)a->cfg.shutdown_timeout_ms * RLY_NS_PER_MS;
    for (;;) {
        relay_agent_stats st;
        relay_agent_get_stats(a, &st);
        rly_mutex_lock(&a->lock);
        uint64_t passed = a->worker ? rly_sinkworker_written(a->worker) : st.trajectories;
        rly_mutex_unlock(&a->lock);
        if (passed + st.buffered_dropped >= st.trajectories)
            return RELAY_OK;
        rly_mutex_lock(&a->lock);
        rly_sinkworker_kick(a->worker);
        rly_mutex_unlock(&a->lock);
        if (rly_now_ns() > deadline)
            return RELAY_ETIMEDOUT;
        rly_sleep_ns(RLY_NS_PER_MS);
    }
}

void relay_agent_get_stats(relay_agent *a, relay_agent_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!a)
        return;
    rly_mutex_lock(&a->lock);
    size_t pos = 0;
    rly_idmap_slot *it;
    while ((it = rly_idmap_next(&a->actors, &pos))) {
        rly_actor_stats *s = rly_actor_stats_of(((agent_actor *)it->val)->actor);
        out->env_steps += atomic_load_explicit(&s->env_steps, memory_order_relaxed);
        out->inferences += atomic_load_explicit(&s->inferences, memory_order_relaxed);
        out->batched_inferences += atomic_load_explicit(&s->batched, memory_order_relaxed);
        out->episodes += atomic_load_explicit(&s->episodes, memory_order_relaxed);
        out->trajectories += atomic_load_explicit(&s->trajectories, memory_order_relaxed);
    }
    out->sinks_open = (uint32_t)a->n_sinks;
    out->sink_errors = a->sink_open_failures;
    for (size_t i = 0; i < a->n_sinks; i++) {
        relay_sink_stats ss;
        relay_sink_stats_get(a->sinks[i], &ss);
        out->sink_errors += ss.errors;
    }
    out->trajectories += a->retired_trajs;
    out->episodes += a->retired_episodes;
    out->env_steps += a->retired_steps;
    out->inferences += a->retired_inferences;
    out->actors = (uint32_t)rly_idmap_count(&a->actors);
    if (a->coord) {
        rly_dispatcher_stats ds;
        rly_dispatcher_get_stats(a->coord->disp, &ds);
        out->dispatched = ds.dispatched;
        out->pending = ds.pending;
        out->expired = ds.expired;
        out->rejected = ds.rejected;
        out->routers = rly_coord_num_routers(a->coord);
    }
    if (a->worker) {
        rly_tbuf_stats ts;
        rly_sinkworker_totals(a->worker, &ts);
        out->buffered_dropped = ts.dropped;
        out->buffered_blocked = ts.blocked;
    }
    rly_mutex_unlock(&a->lock);
}
