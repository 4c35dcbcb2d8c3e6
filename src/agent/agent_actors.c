/* Agent actor management: create, remove and rename actors, list ids. */
#include "agent/agent_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "coord/coordinator.h"
#include "core/clock.h"
#include "core/idmap.h"
#include "core/log.h"

/* ---- actors -------------------------------------------------------------------------------- */

/* shared_fits_locked checks that the shared models already published fit a new actor's desc. */
static relay_err shared_fits_locked(relay_agent *a, const rly_policy_desc *d)
{
    relay_err e = RELAY_OK;
    relay_model_ref pi = {0}, vf = {0};
    if (relay_model_handle_acquire(a->shared_pi, &pi) == RELAY_OK)
        e = rly_policy_check_model(d, pi.model, NULL, "new_actor (shared model)");
    if (!e && relay_model_handle_acquire(a->shared_vf, &vf) == RELAY_OK)
        e = rly_policy_check_model(d, NULL, vf.model, "new_actor (shared value model)");
    relay_model_handle_release(a->shared_pi, &pi);
    relay_model_handle_release(a->shared_vf, &vf);
    return e;
}

/*
 * add_actor_locked creates an actor and registers it. Called with a->lock held and the runtime
 * pinned (rly_agent_enter); the lock is dropped during the coordinator's round trip, so
 * request_action and the other calls never wait behind it. The table entry is inserted first,
 * marked busy (removal and renaming refuse it with RELAY_EBUSY until the add is done).
 */
static relay_err add_actor_locked(relay_agent *a, const rly_actor_config *ac,
                                  const relay_env_def *env, relay_model *pi, relay_model *vf,
                                  int64_t version, relay_id *id)
{
    if (rly_idmap_count(&a->actors) >= RELAY_MAX_ACTORS) {
        rly_error(MOD, "new_actor: the agent already holds %u actors (RELAY_MAX_ACTORS)",
                  RELAY_MAX_ACTORS);
        relay_model_free(pi);
        relay_model_free(vf);
        return RELAY_ETOOBIG;
    }
    rly_actor *act = NULL;
    relay_err e = rly_actor_new(ac, &act);
    if (e) {
        relay_model_free(pi);
        relay_model_free(vf);
        return e;
    }
    if (pi) {
        e = rly_actor_install(act, pi, vf, version, NULL, 0); /* on error neither is taken */
        if (e) {
            relay_model_free(pi);
            relay_model_free(vf);
        }
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
        aa->busy = true;
        e = rly_idmap_put(&a->actors, ac->id, aa);
    }
    if (!e) {
        rly_mutex_unlock(&a->lock);
        e = rly_coord_add_actor(a->coord, rly_actor_slot_of(act));
        rly_mutex_lock(&a->lock);
        aa->busy = false;
        /* A concurrent rename may have taken this id meanwhile: only remove our own entry. */
        if (e && rly_idmap_get(&a->actors, ac->id) == aa)
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
                !rly_policy_desc_same(&ed, &ac.policy)) {
                rly_error(MOD,
                          "new_actor: the model's spaces (obs %u, %s %u) do not fit "
                          "environment %s (obs %u, %s %u)",
                          ac.policy.obs_dim, ac.policy.discrete ? "actions" : "action dims",
                          ac.policy.discrete ? ac.policy.n_actions : ac.policy.act_dim, env->name,
                          ed.obs_dim, ed.discrete ? "actions" : "action dims",
                          ed.discrete ? ed.n_actions : ed.act_dim);
                e = RELAY_ESHAPE;
            }
            if (!e)
                e = rly_policy_check_model(&ac.policy, relay_bundle_model(model), NULL,
                                           "new_actor");
        }
    } else if (env) {
        e = rly_policy_desc_from_env(&ac.policy, env);
    } else {
        rly_error(MOD, "new_actor: needs a model or an environment to know its spaces");
        e = RELAY_EINVAL;
    }
    /* the critic: an explicit value model, else the bundle's */
    const relay_model *critic = opt->value_model ? opt->value_model : relay_bundle_value(model);
    if (!e && opt->value_model && !model) {
        rly_error(MOD, "new_actor: value_model needs a policy model (opt->model or model_path)");
        e = RELAY_EINVAL;
    }
    if (!e && critic)
        e = rly_policy_check_model(&ac.policy, NULL, critic, "new_actor (value model)");
    if (e)
        return e;
    if ((e = rly_agent_enter(a)) != RELAY_OK)
        return e;
    rly_mutex_lock(&a->lock);
    e = rly_agent_running_locked(a);
    if (!e) {
        ac.seed = opt->seed ? opt->seed : a->cfg.seed * 1000003ULL + a->actor_count + 1;
        relay_model *pi = NULL, *vf = NULL;
        int64_t version = 0;
        if (a->cfg.shared_model) {
            ac.shared_pi = a->shared_pi;
            ac.shared_vf = a->shared_vf;
            e = shared_fits_locked(a, &ac.policy);
            if (opt->model || opt->value_model) {
                rly_warn(MOD, "new_actor: shared model mode ignores a per-actor model; use "
                              "update_model");
            }
        } else if (model) {
            size_t len;
            const uint8_t *onnx = relay_model_onnx(relay_bundle_model(model), &len);
            e = relay_model_from_onnx(onnx, len, &pi);
            version = relay_bundle_meta(model)->version;
            if (!e && critic) {
                onnx = relay_model_onnx(critic, &len);
                if ((e = relay_model_from_onnx(onnx, len, &vf))) {
                    relay_model_free(pi);
                    pi = NULL;
                }
            }
        }
        if (!e)
            e = add_actor_locked(a, &ac, env, pi, vf, version, id);
    }
    rly_mutex_unlock(&a->lock);
    rly_agent_leave(a);
    return e;
}

relay_err relay_agent_new_actors(relay_agent *a, uint32_t count, const relay_actor_options *opt,
                                 relay_id *ids)
{
    if (!a || (count && !ids))
        return RELAY_EINVAL;
    if (opt && opt->id && count > 1)
        return RELAY_EINVAL;
    if (count > RELAY_MAX_ACTORS) {
        rly_error(MOD, "new_actors: %u actors requested; the limit is %u (RELAY_MAX_ACTORS)", count,
                  RELAY_MAX_ACTORS);
        return RELAY_ETOOBIG;
    }
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
    return rly_agent_new_actor_remote(a, desc, seed, max_len, NULL, id);
}

relay_err rly_agent_new_actor_remote(relay_agent *a, const rly_policy_desc *desc, uint64_t seed,
                                     uint32_t max_len, const rly_remote_infer *remote, relay_id *id)
{
    if (!a || !desc || !a->cfg.shared_model)
        return RELAY_EINVAL;
    rly_actor_config ac = {.id = relay_id_from_seed(seed, 0xac70),
                           .seed = seed,
                           .max_traj_len = max_len,
                           .record = true,
                           .policy = *desc,
                           .remote = remote};
    relay_err e = rly_agent_enter(a);
    if (e)
        return e;
    rly_mutex_lock(&a->lock);
    e = rly_agent_running_locked(a);
    if (!e) {
        ac.shared_pi = a->shared_pi;
        ac.shared_vf = a->shared_vf;
        e = shared_fits_locked(a, &ac.policy);
        if (!e)
            e = add_actor_locked(a, &ac, NULL, NULL, NULL, 0, id);
    }
    rly_mutex_unlock(&a->lock);
    rly_agent_leave(a);
    return e;
}

relay_err relay_agent_remove_actor(relay_agent *a, relay_id id)
{
    if (!a)
        return RELAY_EINVAL;
    relay_err e = rly_agent_enter(a);
    if (e)
        return e;
    rly_mutex_lock(&a->lock);
    agent_actor *aa = rly_idmap_get(&a->actors, id);
    if (!aa)
        e = RELAY_ENOTFOUND;
    else if (aa->busy)
        e = RELAY_EBUSY; /* being added, removed or renamed by another call */
    else
        aa->busy = true;
    rly_mutex_unlock(&a->lock);
    if (e) {
        rly_agent_leave(a);
        return e;
    }
    /* The round trip (the actor flushes on its router) runs without the agent lock. */
    e = rly_coord_remove_actor(a->coord, id, NULL);
    rly_mutex_lock(&a->lock);
    aa->busy = false;
    if (!e) {
        rly_agent_retire_stats(a, rly_actor_stats_of(aa->actor));
        rly_idmap_del(&a->actors, id);
        rly_actor_free(aa->actor);
        free(aa);
    }
    rly_mutex_unlock(&a->lock);
    rly_agent_leave(a);
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
    relay_err e = rly_agent_enter(a);
    if (e)
        return e;
    rly_mutex_lock(&a->lock);
    agent_actor *aa = rly_idmap_get(&a->actors, cur);
    if (!aa)
        e = RELAY_ENOTFOUND;
    else if (aa->busy)
        e = RELAY_EBUSY;
    else if (!relay_id_eq(cur, next) && rly_idmap_get(&a->actors, next))
        e = RELAY_EEXIST;
    else
        aa->busy = true;
    rly_mutex_unlock(&a->lock);
    if (e) {
        rly_agent_leave(a);
        return e;
    }
    /* The coordinator is the authority on ids: a concurrent add of `next` loses there. */
    e = rly_coord_rename_actor(a->coord, cur, next);
    rly_mutex_lock(&a->lock);
    aa->busy = false;
    if (!e && !relay_id_eq(cur, next)) {
        rly_idmap_del(&a->actors, cur);
        e = rly_idmap_put(&a->actors, next, aa);
    }
    rly_mutex_unlock(&a->lock);
    rly_agent_leave(a);
    return e;
}

static int id_cmp(const void *x, const void *y)
{
    return relay_id_cmp(*(const relay_id *)x, *(const relay_id *)y);
}

relay_id *rly_agent_ids_locked(relay_agent *a, size_t *n)
{
    size_t total = rly_idmap_count(&a->actors), k = 0, pos = 0;
    relay_id *all = malloc((total ? total : 1) * sizeof *all);
    rly_idmap_slot *it;
    while (all && (it = rly_idmap_next(&a->actors, &pos)))
        all[k++] = it->key;
    if (all)
        qsort(all, k, sizeof *all, id_cmp);
    *n = k;
    return all;
}

size_t relay_agent_actor_ids(relay_agent *a, relay_id *ids, size_t max)
{
    if (!a)
        return 0;
    rly_mutex_lock(&a->lock);
    size_t total = rly_idmap_count(&a->actors), n = 0;
    relay_id *all = rly_agent_ids_locked(a, &n);
    rly_mutex_unlock(&a->lock);
    if (all) {
        for (size_t i = 0; i < n && i < max && ids; i++)
            ids[i] = all[i];
        free(all);
    }
    return total;
}

/* all_ids snapshots every actor id (caller frees). */
relay_id *rly_agent_all_ids(relay_agent *a, size_t *n)
{
    size_t total = relay_agent_actor_ids(a, NULL, 0);
    relay_id *ids = malloc((total ? total : 1) * sizeof *ids);
    *n = ids ? relay_agent_actor_ids(a, ids, total) : 0;
    if (*n > total)
        *n = total;
    return ids;
}

/* ---- model checks --------------------------------------------------------------------------- */

relay_err rly_agent_check_model_locked(relay_agent *a, const relay_id *ids, size_t n,
                                       const relay_model *pi, const relay_model *vf,
                                       const char *what)
{
    if (!pi && !vf)
        return RELAY_OK;
    if (!ids || a->cfg.shared_model) {
        size_t pos = 0;
        rly_idmap_slot *it;
        while ((it = rly_idmap_next(&a->actors, &pos)) != NULL) {
            const agent_actor *aa = it->val;
            relay_err e = rly_policy_check_model(rly_actor_desc(aa->actor), pi, vf, what);
            if (e)
                return e;
        }
        return RELAY_OK;
    }
    for (size_t i = 0; i < n; i++) {
        const agent_actor *aa = rly_idmap_get(&a->actors, ids[i]);
        if (!aa)
            continue; /* the caller reports unknown ids per actor */
        relay_err e = rly_policy_check_model(rly_actor_desc(aa->actor), pi, vf, what);
        if (e)
            return e;
    }
    return RELAY_OK;
}

relay_err rly_agent_check_model(relay_agent *a, const relay_id *ids, size_t n,
                                const relay_model *pi, const relay_model *vf, const char *what)
{
    if (!a)
        return RELAY_EINVAL;
    rly_mutex_lock(&a->lock);
    relay_err e = rly_agent_check_model_locked(a, ids, n, pi, vf, what);
    rly_mutex_unlock(&a->lock);
    return e;
}

relay_err rly_agent_run_error(relay_agent *a)
{
    if (!a)
        return RELAY_EINVAL;
    relay_err e = RELAY_OK;
    rly_mutex_lock(&a->lock);
    size_t pos = 0;
    rly_idmap_slot *it;
    while (!e && (it = rly_idmap_next(&a->actors, &pos)) != NULL)
        e = (relay_err)atomic_load(&rly_actor_stats_of(((agent_actor *)it->val)->actor)->run_error);
    rly_mutex_unlock(&a->lock);
    return e;
}
