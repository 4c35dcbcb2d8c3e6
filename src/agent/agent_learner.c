/*
 * relay_agent_attach_learner: the in-process learner (src/learn/learner.h) behind a user's own
 * environment loop. The agent's trajectory consumer hands every trajectory to the attached
 * learner; the learner's new models go to every actor through rly_agent_publish.
 */
#include "agent/agent_internal.h"
#include "learn/learner.h"
#include "relay/learner.h"

#include <stdio.h>

struct relay_learner {
    relay_agent *agent;
    rly_learner *l;
    relay_learner_update_fn on_update;
    void *user;
    uint32_t n_steps;
};

static void to_public(const rly_learner_stats *s, relay_learner_stats *o)
{
    memset(o, 0, sizeof *o);
    o->steps = s->steps_consumed;
    o->steps_received = s->steps_received;
    o->steps_stale = s->steps_stale;
    o->episodes = s->episodes;
    o->updates = s->updates;
    o->version = s->version;
    o->mean_return_100 = s->mean_return_100;
    o->last_return = s->last_return;
    o->seconds = s->wall_s;
    o->steps_per_second = s->sps;
    o->done = s->done;
    o->error = s->error;
    o->last = s->last;
}

static relay_err on_publish(void *ctx, int64_t version, relay_model *pi, relay_model *vf,
                            const float *log_std, uint32_t n_log_std)
{
    relay_learner *pl = ctx;
    bool running = false;
    /* never wait for a stopping agent: it may be waiting for this thread (through the sink
       worker blocked on this learner's full queue) */
    if (rly_agent_lock_unless_stopping(pl->agent)) {
        running = pl->agent->state == ST_RUNNING;
        rly_mutex_unlock(&pl->agent->lock);
    }
    if (!running) { /* an update finished after the shutdown: nobody left to act with it */
        relay_model_free(pi);
        relay_model_free(vf);
        return RELAY_OK;
    }
    return rly_agent_publish(pl->agent, version, pi, vf, log_std, n_log_std);
}

static void on_update(void *ctx, const rly_learner_stats *st)
{
    relay_learner *pl = ctx;
    if (pl->on_update) {
        relay_learner_stats o;
        to_public(st, &o);
        pl->on_update(&o, pl->user);
    }
}

void rly_agent_consume(void *ctx, relay_traj *t)
{
    relay_agent *a = ctx;
    relay_learner *pl = atomic_load_explicit(&a->learner, memory_order_acquire);
    if (!pl || rly_learner_push(pl->l, t) != RELAY_OK)
        relay_traj_free(t);
}

void rly_agent_learner_free(relay_agent *a)
{
    relay_learner *pl = atomic_exchange(&a->learner, NULL);
    if (!pl)
        return;
    rly_learner_free(pl->l);
    free(pl);
}

/* spaces_desc fills the actors' policy description from the user's spaces. */
static relay_err spaces_desc(rly_policy_desc *d, const relay_space *obs, const relay_space *act)
{
    if (obs->discrete || rly_policy_desc_from_spaces(d, obs, act) != RELAY_OK) {
        rly_error(MOD,
                  "attach_learner: unsupported spaces (obs Box of 1..%d, actions Discrete or "
                  "Box of 1..%d)",
                  RELAY_ENV_MAX_DIM, RELAY_ENV_MAX_DIM);
        return RELAY_ECONFIG;
    }
    return RELAY_OK;
}

relay_err relay_agent_attach_learner(relay_agent *a, const relay_learner_options *o, relay_id *ids,
                                     relay_learner **out)
{
    if (!a || !o || !ids || !out) {
        rly_error(MOD, "attach_learner: NULL argument");
        return RELAY_EINVAL;
    }
    *out = NULL;
    if (!a->cfg.shared_model) {
        rly_error(MOD, "attach_learner: the agent needs \"model_mode\": \"shared\" "
                       "(relay_config.shared_model = true)");
        return RELAY_ECONFIG;
    }
    if (a->consumer) {
        rly_error(MOD, "attach_learner: the agent already feeds another trajectory consumer");
        return RELAY_ECONFIG;
    }
    if (atomic_load(&a->learner)) {
        rly_error(MOD, "attach_learner: the agent already has a learner");
        return RELAY_ECONFIG;
    }
    uint32_t n = o->n_actors ? o->n_actors : 1;
    if (n > 4096) {
        rly_error(MOD, "attach_learner: n_actors %u over the limit of 4096", n);
        return RELAY_ECONFIG;
    }
    const relay_env_def *env = NULL;
    rly_policy_desc desc;
    relay_policy_spec spec;
    memset(&spec, 0, sizeof spec);
    relay_err e;
    if (o->env) {
        if ((e = relay_env_resolve(o->env, &env))) {
            rly_error(MOD, "attach_learner: unknown environment \"%s\"", o->env);
            return RELAY_ECONFIG;
        }
        if ((e = rly_policy_desc_from_env(&desc, env))) {
            rly_error(MOD, "attach_learner: environment %s has unsupported spaces", o->env);
            return RELAY_ECONFIG;
        }
    } else if (o->obs_space && o->act_space) {
        if ((e = spaces_desc(&desc, o->obs_space, o->act_space)) ||
            (e = relay_policy_spec_from_spaces(&spec, o->obs_space, o->act_space)))
            return RELAY_ECONFIG;
    } else {
        rly_error(MOD, "attach_learner: give env or obs_space and act_space");
        return RELAY_ECONFIG;
    }
    rly_learner_config lc;
    if ((e = rly_learner_config_init(&lc, env, n)))
        return e;
    if (o->ppo) {
        lc.ppo = *o->ppo;
        lc.n_steps = o->ppo->n_steps;
    }
    if (!env && lc.ppo.policy.obs_dim == 0) {
        /* keep the architecture of ppo.policy, take the spaces from the user's */
        relay_policy_spec arch = lc.ppo.policy;
        lc.ppo.policy = spec;
        if (arch.n_hidden) {
            lc.ppo.policy.n_hidden = arch.n_hidden;
            memcpy(lc.ppo.policy.hidden, arch.hidden, sizeof arch.hidden);
        }
        lc.ppo.policy.activation = arch.activation;
        lc.ppo.policy.shared = arch.shared;
        lc.ppo.policy.log_std_init = arch.log_std_init;
        lc.ppo.policy.normalize_obs = arch.normalize_obs;
        if (arch.clip_obs > 0)
            lc.ppo.policy.clip_obs = arch.clip_obs;
    }
    lc.ppo.seed = o->seed;
    lc.policy_lag = o->policy_lag;
    lc.resume_path = o->resume_path;
    uint32_t n_steps = lc.n_steps ? lc.n_steps : lc.ppo.n_steps;
    relay_learner *pl = calloc(1, sizeof *pl);
    if (!pl)
        return RELAY_ENOMEM;
    pl->agent = a;
    pl->on_update = o->on_update;
    pl->user = o->user;
    pl->n_steps = n_steps;
    for (uint32_t i = 0; i < n; i++) {
        if ((e = rly_agent_new_actor_desc(a, &desc, o->seed * 1000003ULL + i + 1, n_steps,
                                          &ids[i]))) {
            rly_error(MOD, "attach_learner: creating actor %u: %s", i, relay_strerror(e));
            relay_agent_remove_actors(a, ids, i);
            free(pl);
            return e;
        }
    }
    lc.stream_actors = ids;
    lc.n_stream_actors = n;
    lc.envs_per_actor = 1;
    lc.publish = on_publish;
    lc.publish_ctx = pl;
    lc.on_update = on_update;
    lc.on_update_ctx = pl;
    if ((e = rly_learner_new(&lc, &pl->l))) {
        relay_agent_remove_actors(a, ids, n);
        free(pl);
        return e;
    }
    relay_learner *expect = NULL;
    rly_mutex_lock(&a->lock);
    if (!atomic_compare_exchange_strong(&a->learner, &expect, pl))
        e = RELAY_ECONFIG;
    else if (a->worker && (e = rly_sinkworker_set_consumer(a->worker, rly_agent_consume, a)))
        atomic_store(&a->learner, NULL);
    rly_mutex_unlock(&a->lock);
    if (e) {
        rly_error(MOD, "attach_learner: another learner or consumer was attached concurrently");
        rly_learner_free(pl->l);
        relay_agent_remove_actors(a, ids, n);
        free(pl);
        return RELAY_ECONFIG;
    }
    /* the actors can act once the first (or resumed) version is out */
    if ((e = rly_learner_wait_version(pl->l, 0, 30 * RLY_NS_PER_S)))
        rly_error(MOD, "attach_learner: no initial model: %s", relay_strerror(e));
    *out = pl;
    return e;
}

void relay_learner_get_stats(relay_learner *l, relay_learner_stats *out)
{
    if (!l || !out)
        return;
    rly_learner_stats s;
    rly_learner_stats_get(l->l, &s);
    to_public(&s, out);
}

relay_err relay_learner_wait_version(relay_learner *l, int64_t v, uint32_t timeout_ms)
{
    if (!l)
        return RELAY_EINVAL;
    return rly_learner_wait_version(l->l, v, (int64_t)timeout_ms * RLY_NS_PER_MS);
}

uint32_t relay_learner_n_steps(relay_learner *l)
{
    return l ? l->n_steps : 0;
}

relay_err relay_learner_save_checkpoint(relay_learner *l, const char *path)
{
    if (!l || !path)
        return RELAY_EINVAL;
    return rly_learner_checkpoint_save(l->l, path, NULL, 0);
}

relay_err relay_learner_export_onnx(relay_learner *l, const char *path)
{
    if (!l || !path)
        return RELAY_EINVAL;
    uint8_t *bytes = NULL;
    size_t len = 0;
    relay_err e = rly_learner_export_onnx(l->l, &bytes, &len);
    if (e)
        return e;
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(bytes, 1, len, f) == len;
    if (f)
        ok = fclose(f) == 0 && ok;
    free(bytes);
    if (!ok) {
        rly_error(MOD, "export_onnx: cannot write %s", path);
        return RELAY_EIO;
    }
    return RELAY_OK;
}

void relay_learner_stop(relay_learner *l)
{
    if (l)
        rly_learner_stop(l->l);
}
