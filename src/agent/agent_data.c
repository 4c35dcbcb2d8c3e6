/* Agent data path: run_env stepping, trajectory drain and consumers, flush, stats. */
#include "agent/agent_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "coord/coordinator.h"
#include "core/clock.h"
#include "core/idmap.h"
#include "core/log.h"

/* ---- environments and data ----------------------------------------------------------------- */

static relay_err run_env(relay_agent *a, relay_id id, const relay_env_def *env, uint32_t n_envs,
                         uint64_t seed, uint64_t steps, uint32_t per_version, bool wait,
                         const rly_run_snap *snap)
{
    rly_run_env *spec = calloc(1, sizeof *spec);
    if (!spec)
        return RELAY_ENOMEM;
    *spec = (rly_run_env){.env = env,
                          .n_envs = n_envs ? n_envs : 1,
                          .seed = seed,
                          .steps = steps,
                          .steps_per_version = per_version};
    if (snap) {
        spec->on_pause = snap->on_pause;
        spec->pause_ctx = snap->pause_ctx;
        if (snap->restore_len) {
            if (!(spec->restore = malloc(snap->restore_len))) {
                free(spec);
                return RELAY_ENOMEM;
            }
            memcpy(spec->restore, snap->restore, snap->restore_len);
            spec->restore_len = snap->restore_len;
        }
    }
    rly_reply *r = rly_reply_new();
    if (!r) {
        rly_run_env_free(spec);
        return RELAY_ENOMEM;
    }
    rly_msg m = rly_msg_data(id, RLY_RUN_ENV, 0, spec, rly_run_env_free, r);
    /* The send may wait for intake room: the runtime is pinned, the agent lock is not held. */
    relay_err e = rly_agent_enter(a);
    if (!e) {
        e = rly_coord_send(a->coord, &m);
        rly_agent_leave(a);
    }
    if (e) {
        rly_run_env_free(spec);
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
    return run_env(a, id, env, n_envs, seed, steps, 0, wait, NULL);
}

relay_err rly_agent_run_env_quota(relay_agent *a, relay_id id, const relay_env_def *env,
                                  uint32_t n_envs, uint64_t seed, uint32_t steps_per_version,
                                  const rly_run_snap *snap)
{
    if (!a || !env)
        return RELAY_EINVAL;
    return run_env(a, id, env, n_envs, seed, 0, steps_per_version, false, snap);
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
    relay_id *ids = rly_agent_all_ids(a, &n);
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
    if (!out)
        return;
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
    out->sink_errors = a->sink_open_failures + a->retired_sink_errors;
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
        rly_coord_get_stats(a->coord, &ds);
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
