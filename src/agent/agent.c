/*
 * The agent: validates API calls and turns them into routed messages. It owns the coordinator
 * (dispatcher + routers), the sinks, one trajectory buffer per router and the sink worker.
 *
 * Shutdown order: (1) the coordinator stops intake, delivers or fails pending messages and
 * delivers Shutdown to every actor, which flushes its partial trajectories into its router's
 * buffer; (2) routers and the dispatcher are joined; (3) each router's buffer is drained into
 * the sinks; (4) the sink worker stops; (5) sinks are closed, so files get valid footers.
 */
#include "agent/agent_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/config.h"
#include "coord/coordinator.h"
#include "core/clock.h"
#include "core/idmap.h"
#include "core/log.h"
#include "obs/obs.h"

_Static_assert(RELAY_MAX_ROUTERS == RLY_MAX_ROUTERS, "one router limit");

/* ---- lifecycle ---------------------------------------------------------------------------- */

/*
 * load_model_path loads "model_path": a bundle directory as saved, or a plain ONNX file (e.g. a
 * policy.onnx written by `relay train`) whose spaces come from the configured env, since an ONNX
 * file alone cannot say whether its outputs are discrete logits or continuous means.
 */
static relay_err load_model_path(const relay_config *cfg, relay_bundle **out)
{
    struct stat sb;
    const relay_env_def *env = NULL;
    relay_space *sp = NULL;
    if (stat(cfg->model_path, &sb) != 0 || S_ISDIR(sb.st_mode) || !cfg->env[0] ||
        relay_env_resolve(cfg->env, &env) != RELAY_OK || !(sp = calloc(2, sizeof *sp)))
        return relay_bundle_load(cfg->model_path, out);
    relay_model *m = NULL;
    relay_err e = relay_model_load_onnx(cfg->model_path, &m);
    if (e) {
        free(sp);
        return e;
    }
    env->spaces(&sp[0], &sp[1]);
    float low[RELAY_ENV_MAX_DIM], high[RELAY_ENV_MAX_DIM];
    relay_model_meta meta = {0};
    meta.obs.dtype = RELAY_F32;
    meta.obs.rank = 1;
    meta.obs.shape[0] = sp[0].dim;
    meta.act.discrete = sp[1].discrete;
    if (sp[1].discrete) {
        meta.act.n = sp[1].n;
        meta.act.dtype = RELAY_I32;
    } else {
        meta.act.dtype = RELAY_F32;
        meta.act.rank = 1;
        meta.act.shape[0] = sp[1].dim;
        meta.act.n_bounds = sp[1].dim;
        memcpy(low, sp[1].low, sp[1].dim * sizeof(float));
        memcpy(high, sp[1].high, sp[1].dim * sizeof(float));
        meta.act.low = low;
        meta.act.high = high;
    }
    free(sp);
    size_t len;
    const uint8_t *onnx = relay_model_onnx(m, &len);
    e = relay_bundle_new(onnx, len, &meta, out);
    relay_model_free(m);
    return e;
}

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
    e = rly_agent_obs_start(a);
    if (e) {
        relay_agent_free(a);
        return e;
    }
    if (a->cfg.model_path[0]) {
        e = load_model_path(&a->cfg, &a->default_model);
        if (e) {
            rly_error(MOD, "cannot load model_path %s: %s", a->cfg.model_path, relay_strerror(e));
            relay_agent_free(a);
            return e;
        }
        /* With a configured env the model must fit it now, not at the first new_actor. */
        const relay_env_def *env = NULL;
        rly_policy_desc ed;
        if (a->cfg.env[0] && relay_env_resolve(a->cfg.env, &env) == RELAY_OK &&
            rly_policy_desc_from_env(&ed, env) == RELAY_OK)
            e = rly_policy_check_model(&ed, relay_bundle_model(a->default_model), NULL,
                                       "model_path");
        if (e) {
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
            const relay_model *critic = relay_bundle_value(a->default_model);
            if (!e && critic) { /* the bundle's critic serves every actor too */
                relay_model *v = NULL;
                onnx = relay_model_onnx(critic, &len);
                if (!(e = relay_model_from_onnx(onnx, len, &v)) &&
                    (e = relay_model_handle_publish(a->shared_vf, v, a->shared_version)))
                    relay_model_free(v);
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
        relay_sink_stats ss;
        relay_sink_stats_get(a->sinks[i], &ss);
        char path[RELAY_PATH_MAX + 64] = "";
        relay_sink_path(a->sinks[i], path, sizeof path);
        relay_err e = relay_sink_close(a->sinks[i]);
        /* Errors stay counted after the sink is gone, so a caller sees lost output. */
        a->retired_sink_errors += ss.errors + (e ? 1 : 0);
        if (e)
            rly_error(MOD, "closing the sink %s: %s", path[0] ? path : "(memory)",
                      relay_strerror(e));
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
        e = rly_sinkworker_new(a->sinks, a->n_sinks, 256,
                               a->consumer                ? a->consumer
                               : atomic_load(&a->learner) ? rly_agent_consume
                                                          : NULL,
                               a->consumer ? a->consumer_ctx : a, &a->worker);
    if (!e) {
        rly_coord_config cc;
        rly_coord_config_default(&cc);
        cc.routers = a->cfg.routers;
        cc.workers = a->cfg.workers;
        cc.router_queue_capacity = a->cfg.router_queue_capacity;
        cc.dispatcher.intake_capacity = a->cfg.intake_capacity;
        cc.dispatcher.pending_capacity = a->cfg.pending_capacity;
        cc.dispatcher.tick_ns = (int64_t)a->cfg.tick_ms * RLY_NS_PER_MS;
        cc.dispatcher.retry_initial_ns = (int64_t)a->cfg.retry_initial_ms * RLY_NS_PER_MS;
        cc.dispatcher.retry_max_ns = (int64_t)a->cfg.retry_max_ms * RLY_NS_PER_MS;
        for (int p = 0; p < RLY_PROTO_COUNT && p < 8; p++)
            cc.dispatcher.ttl_ns[p] = (int64_t)a->cfg.ttl_ms[p] * RLY_NS_PER_MS;
        cc.shutdown_timeout_ns = (int64_t)a->cfg.shutdown_timeout_ms * RLY_NS_PER_MS;
        cc.dispatcher.send_timeout_ns = (int64_t)a->cfg.send_timeout_ms * RLY_NS_PER_MS;
        cc.router_started = router_started;
        cc.router_stopped = router_stopped;
        cc.hook_ctx = a;
        e = rly_coord_new(&cc, &a->coord);
    }
    if (!e)
        a->started_ns = rly_now_ns();
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
    rly_agent_times_retire(a);
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
    /* before `life`: the stop below waits for the sink worker, which may wait for the attached
       learner, whose publish must then give up rather than wait for this thread */
    atomic_store(&a->stopping, true);
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
    atomic_store(&a->stopping, true); /* as in shutdown */
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
        atomic_store(&a->stopping, false);
    }
    lifecycle_unlock(a);
    return e;
}

void relay_agent_free(relay_agent *a)
{
    if (!a)
        return;
    rly_obs_server_free(a->obs); /* no scrape may run while the agent goes away */
    a->obs = NULL;
    relay_agent_shutdown(a);
    rly_agent_learner_free(a); /* after the last trajectories, before the model handles */
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

/* ---- call gate ---------------------------------------------------------------------------- */

/* running_locked checks the agent can take actor calls; lock held. */
relay_err rly_agent_running_locked(relay_agent *a)
{
    if (a->state == ST_RUNNING)
        return RELAY_OK;
    rly_error(MOD, "the agent is %s", a->state == ST_NEW ? "not started" : "shut down");
    return RELAY_ESTATE;
}

/* entered checks the runtime pinned by `life` is running, or releases `life`. With `life`
   pinned, start/shutdown/restart cannot hold `lock`: only brief calls do. */
static relay_err entered(relay_agent *a)
{
    rly_mutex_lock(&a->lock);
    relay_err e = rly_agent_running_locked(a);
    rly_mutex_unlock(&a->lock);
    if (e)
        pthread_rwlock_unlock(&a->life);
    return e;
}

/* enter pins the runtime for a call that sends messages; pair with leave() when it returns OK. */
relay_err rly_agent_enter(relay_agent *a)
{
    pthread_rwlock_rdlock(&a->life);
    return entered(a);
}

void rly_agent_leave(relay_agent *a)
{
    pthread_rwlock_unlock(&a->life);
}

bool rly_agent_lock_unless_stopping(relay_agent *a)
{
    for (unsigned spins = 0; !rly_mutex_trylock(&a->lock); spins++) {
        if (atomic_load(&a->stopping))
            return false;
        if (spins < 64)
            rly_cpu_relax();
        else
            rly_sleep_ns(50 * 1000); /* held for a while: by a call, or by a stop just begun */
    }
    return true;
}

relay_err rly_agent_enter_unless_stopping(relay_agent *a)
{
    for (unsigned spins = 0; pthread_rwlock_tryrdlock(&a->life) != 0; spins++) {
        if (atomic_load(&a->stopping))
            return RELAY_ESHUTDOWN;
        if (spins < 64)
            rly_cpu_relax();
        else
            rly_sleep_ns(50 * 1000);
    }
    return entered(a);
}
