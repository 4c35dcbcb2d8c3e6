/* Actor: inference, action selection, trajectory recording and run_env stepping. */
#include "actor/actor.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "env/env_internal.h"

#define MOD "actor"

static const char *const aux_names[RLY_N_AUX] = {"logp", "value", "bootstrap", "cut"};

/* A run in progress: a vectorised env and its per-env trajectories. */
typedef struct env_run {
    relay_vecenv *venv;
    uint32_t n;
    uint64_t steps_left; /* UINT64_MAX = until stopped */
    uint64_t steps_done;
    uint32_t per_version;   /* quota of vector steps per policy version (0 = none) */
    uint32_t version_steps; /* steps taken under the current version */
    bool paused;            /* quota reached: waiting for a model update */
    rly_reply *reply;       /* completed when the run ends */
    float *obs, *next_obs, *final_obs, *out, *values, *rewards, *logp, *env_act, *acts_f;
    int32_t *acts_i;
    double *rand; /* central inference: the draws of one vector step */
    bool *term, *trunc;
    relay_traj **traj;
    int64_t *episode;
    rly_run_pause_fn on_pause; /* snapshot at each pause (exact resume) */
    void *pause_ctx;
    uint8_t *snap; /* [snap_len] reusable snapshot buffer */
    size_t snap_len;
} env_run;

struct rly_actor {
    rly_actor_slot slot;
    rly_actor_config cfg;
    rly_policy_desc desc;
    relay_model_handle *pi_h, *vf_h;
    bool own_handles;
    relay_model_ref pi_ref, vf_ref;
    relay_model_ws *ws;
    rly_rng rng;
    int64_t version;          /* -1: no model */
    int64_t rejected_version; /* last shared version refused by refresh (INT64_MIN: none) */
    int64_t rejected_vf_version;
    float log_std[RELAY_ENV_MAX_DIM];
    relay_step_spec spec, spec_masked;
    relay_traj *traj;      /* request_action path */
    bool traj_cut_pending; /* a model update arrived: cut traj at the next request or ending */
    int64_t episode;
    env_run run;
    bool running;
    rly_traj_out *out_fallback;
    rly_actor_stats stats;
    float scratch[2 * RELAY_ENV_MAX_DIM + 2];
};

/* ---- descriptions ------------------------------------------------------------------------- */

relay_err rly_policy_desc_from_spaces(rly_policy_desc *d, const relay_space *obs,
                                      const relay_space *act)
{
    if (!d || !obs || !act)
        return RELAY_EINVAL;
    memset(d, 0, sizeof *d);
    d->obs_dim = obs->dim;
    d->discrete = act->discrete;
    d->n_actions = act->discrete ? (uint32_t)act->n : 0;
    d->act_dim = act->discrete ? 1 : act->dim;
    if (!act->discrete) {
        d->bounded = true;
        for (uint32_t i = 0; i < act->dim && i < RELAY_ENV_MAX_DIM; i++) {
            d->low[i] = act->low[i];
            d->high[i] = act->high[i];
        }
    }
    if (d->obs_dim == 0 || d->obs_dim > RELAY_ENV_MAX_DIM || d->act_dim == 0 ||
        d->act_dim > RELAY_ENV_MAX_DIM || (d->discrete && d->n_actions == 0))
        return RELAY_EINVAL;
    return RELAY_OK;
}

relay_err rly_policy_desc_from_env(rly_policy_desc *d, const relay_env_def *env)
{
    if (!d || !env || !env->spaces)
        return RELAY_EINVAL;
    relay_space *obs = calloc(2, sizeof *obs);
    if (!obs)
        return RELAY_ENOMEM;
    env->spaces(obs, obs + 1);
    relay_err e = rly_policy_desc_from_spaces(d, obs, obs + 1);
    free(obs);
    return e;
}

static int64_t numel_of(const relay_space_desc *s)
{
    int64_t n = 1;
    for (uint32_t i = 0; i < s->rank; i++)
        n *= s->shape[i];
    return n;
}

relay_err rly_policy_desc_from_meta(rly_policy_desc *d, const relay_model_meta *meta)
{
    if (!d || !meta)
        return RELAY_EINVAL;
    memset(d, 0, sizeof *d);
    int64_t od = numel_of(&meta->obs);
    if (od <= 0 || od > RELAY_ENV_MAX_DIM) {
        rly_error(MOD, "observation size %lld is not supported (1..%d)", (long long)od,
                  RELAY_ENV_MAX_DIM);
        return RELAY_ESHAPE;
    }
    d->obs_dim = (uint32_t)od;
    d->discrete = meta->act.discrete;
    if (d->discrete) {
        if (meta->act.n <= 0 || meta->act.n > RELAY_ENV_MAX_DIM)
            return RELAY_ESHAPE;
        d->n_actions = (uint32_t)meta->act.n;
        d->act_dim = 1;
    } else {
        int64_t ad = numel_of(&meta->act);
        if (ad <= 0 || ad > RELAY_ENV_MAX_DIM)
            return RELAY_ESHAPE;
        d->act_dim = (uint32_t)ad;
        if (meta->act.n_bounds) {
            d->bounded = true;
            for (uint32_t i = 0; i < d->act_dim; i++) {
                uint32_t k = meta->act.n_bounds == 1 ? 0 : i;
                d->low[i] = meta->act.low[k];
                d->high[i] = meta->act.high[k];
            }
        }
    }
    return RELAY_OK;
}

static void make_spec(const rly_policy_desc *d, bool masked, relay_step_spec *s)
{
    memset(s, 0, sizeof *s);
    s->obs_dtype = RELAY_F32;
    s->obs_rank = 1;
    s->obs_shape[0] = d->obs_dim;
    s->act_dtype = d->discrete ? RELAY_I32 : RELAY_F32;
    s->act_rank = 1;
    s->act_shape[0] = d->discrete ? 1 : d->act_dim;
    if (masked) {
        s->mask_dtype = RELAY_U8;
        s->mask_rank = 1;
        s->mask_shape[0] = d->n_actions;
    }
    s->n_aux = RLY_N_AUX;
    for (int i = 0; i < RLY_N_AUX; i++)
        snprintf(s->aux_names[i], RELAY_AUX_NAME_MAX, "%s", aux_names[i]);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static const rly_actor_ops actor_ops, actor_ops_remote;

relay_err rly_actor_new(const rly_actor_config *cfg, rly_actor **out)
{
    if (!cfg || !out)
        return RELAY_EINVAL;
    const rly_policy_desc *d = &cfg->policy;
    if (d->obs_dim == 0 || d->obs_dim > RELAY_ENV_MAX_DIM || d->act_dim == 0 ||
        d->act_dim > RELAY_ENV_MAX_DIM ||
        (d->discrete && (d->n_actions == 0 || d->n_actions > RELAY_ENV_MAX_DIM))) {
        rly_error(MOD, "invalid policy description (obs %u, act %u, actions %u)", d->obs_dim,
                  d->act_dim, d->n_actions);
        return RELAY_EINVAL;
    }
    rly_actor *a = calloc(1, sizeof *a);
    if (!a)
        return RELAY_ENOMEM;
    a->cfg = *cfg;
    a->desc = *d;
    a->slot.id = cfg->id;
    a->slot.actor = a;
    a->slot.ops = cfg->remote ? &actor_ops_remote : &actor_ops;
    a->slot.active_idx = -1;
    a->version = -1;
    atomic_init(&a->stats.version, -1);
    a->rejected_version = a->rejected_vf_version = INT64_MIN;
    rly_rng_seed(&a->rng, cfg->seed);
    make_spec(d, false, &a->spec);
    make_spec(d, true, &a->spec_masked);
    relay_err e = RELAY_OK;
    a->ws = relay_model_ws_new();
    if (!a->ws)
        e = RELAY_ENOMEM;
    if (!e && cfg->shared_pi) {
        a->pi_h = cfg->shared_pi;
        a->vf_h = cfg->shared_vf;
    } else if (!e) {
        a->own_handles = true;
        e = relay_model_handle_new(&a->pi_h);
        if (!e)
            e = relay_model_handle_new(&a->vf_h);
    }
    if (e) {
        rly_actor_free(a);
        return e;
    }
    *out = a;
    return RELAY_OK;
}

static void run_free(env_run *r)
{
    relay_vecenv_free(r->venv);
    free(r->obs);
    free(r->next_obs);
    free(r->final_obs);
    free(r->out);
    free(r->values);
    free(r->rewards);
    free(r->logp);
    free(r->env_act);
    free(r->acts_f);
    free(r->acts_i);
    free(r->rand);
    free(r->term);
    free(r->trunc);
    if (r->traj)
        for (uint32_t i = 0; i < r->n; i++)
            relay_traj_free(r->traj[i]);
    free(r->traj);
    free(r->episode);
    free(r->snap);
    if (r->reply)
        rly_reply_fail(r->reply, RELAY_ECANCELED);
    memset(r, 0, sizeof *r);
}

void rly_actor_free(rly_actor *a)
{
    if (!a)
        return;
    run_free(&a->run);
    relay_traj_free(a->traj);
    if (a->pi_h)
        relay_model_handle_release(a->pi_h, &a->pi_ref);
    if (a->vf_h)
        relay_model_handle_release(a->vf_h, &a->vf_ref);
    if (a->own_handles) {
        relay_model_handle_free(a->pi_h);
        relay_model_handle_free(a->vf_h);
    }
    relay_model_ws_free(a->ws);
    free(a);
}

rly_actor_slot *rly_actor_slot_of(rly_actor *a)
{
    return &a->slot;
}

rly_actor *rly_actor_of(rly_actor_slot *slot)
{
    return slot->actor;
}

rly_actor_stats *rly_actor_stats_of(rly_actor *a)
{
    return &a->stats;
}

const rly_policy_desc *rly_actor_desc(const rly_actor *a)
{
    return &a->desc;
}

void rly_actor_set_out(rly_actor *a, rly_traj_out *out)
{
    a->out_fallback = out;
}

/* ---- models ------------------------------------------------------------------------------- */

relay_err rly_policy_check_model(const rly_policy_desc *d, const relay_model *pi,
                                 const relay_model *vf, const char *what)
{
    if (!d)
        return RELAY_EINVAL;
    const char *w = what ? what : "model";
    uint32_t want_out = d->discrete ? d->n_actions : d->act_dim;
    if (pi) {
        uint32_t in = relay_model_in_dim(pi), out = relay_model_out_dim(pi);
        if (in != d->obs_dim || (out != want_out && !(!d->discrete && out == 2 * want_out))) {
            rly_error(MOD, "%s: policy model maps %u -> %u, the actors need %u -> %u%s", w, in, out,
                      d->obs_dim, want_out, d->discrete ? "" : " (or 2x for log std)");
            return RELAY_ESHAPE;
        }
    }
    if (vf && (relay_model_in_dim(vf) != d->obs_dim || relay_model_out_dim(vf) != 1)) {
        rly_error(MOD, "%s: value model maps %u -> %u, the actors need %u -> 1", w,
                  relay_model_in_dim(vf), relay_model_out_dim(vf), d->obs_dim);
        return RELAY_ESHAPE;
    }
    return RELAY_OK;
}

bool rly_policy_desc_same(const rly_policy_desc *a, const rly_policy_desc *b)
{
    return a->obs_dim == b->obs_dim && a->discrete == b->discrete && a->n_actions == b->n_actions &&
           a->act_dim == b->act_dim;
}

static relay_err check_model(const rly_actor *a, const relay_model *pi, const relay_model *vf)
{
    return rly_policy_check_model(&a->desc, pi, vf, "actor");
}

/* fits is check_model without the log, for the per-step refresh of shared handles. */
static bool fits(const rly_actor *a, const relay_model *m, bool value)
{
    if (!m)
        return true;
    uint32_t in = relay_model_in_dim(m), out = relay_model_out_dim(m);
    if (in != a->desc.obs_dim)
        return false;
    if (value)
        return out == 1;
    uint32_t want = a->desc.discrete ? a->desc.n_actions : a->desc.act_dim;
    return out == want || (!a->desc.discrete && out == 2 * want);
}

/*
 * refresh re-pins the newest published models (one atomic load each when unchanged). A
 * published version that does not fit the actor (only possible if an installing path skipped
 * rly_policy_check_model) is never used: the actor drops to "no model" (requests fail with
 * RELAY_ENOMODEL), logs once per version and waits for one that fits.
 */
static void refresh(rly_actor *a)
{
    if (!a->pi_ref.model) {
        if (relay_model_handle_version(a->pi_h) != a->rejected_version &&
            relay_model_handle_acquire(a->pi_h, &a->pi_ref) == RELAY_OK) {
            a->version = a->pi_ref.version;
            if (!fits(a, a->pi_ref.model, false))
                goto reject;
        }
    } else if (relay_model_handle_refresh(a->pi_h, &a->pi_ref)) {
        a->version = a->pi_ref.version;
        if (!fits(a, a->pi_ref.model, false))
            goto reject;
    }
    if (a->version != atomic_load_explicit(&a->stats.version, memory_order_relaxed))
        atomic_store_explicit(&a->stats.version, a->version, memory_order_relaxed);
    if (a->vf_h) {
        bool changed = false;
        if (!a->vf_ref.model)
            changed = relay_model_handle_version(a->vf_h) != a->rejected_vf_version &&
                      relay_model_handle_acquire(a->vf_h, &a->vf_ref) == RELAY_OK;
        else
            changed = relay_model_handle_refresh(a->vf_h, &a->vf_ref);
        if (changed && !fits(a, a->vf_ref.model, true)) {
            rly_error(MOD, "value model version %lld does not fit the actor; not used",
                      (long long)a->vf_ref.version);
            a->rejected_vf_version = a->vf_ref.version;
            relay_model_handle_release(a->vf_h, &a->vf_ref);
        }
    }
    return;
reject:
    rly_error(MOD,
              "policy model version %lld maps %u -> %u but the actor needs %u inputs and %u "
              "outputs; not used",
              (long long)a->pi_ref.version, relay_model_in_dim(a->pi_ref.model),
              relay_model_out_dim(a->pi_ref.model), a->desc.obs_dim,
              a->desc.discrete ? a->desc.n_actions : a->desc.act_dim);
    a->rejected_version = a->pi_ref.version;
    relay_model_handle_release(a->pi_h, &a->pi_ref);
    a->version = -1;
}

/* publish makes pi (and vf) current in the own handles; taken_pi/taken_vf tell what they now own.
 */
static relay_err publish(rly_actor *a, relay_model *pi, relay_model *vf, int64_t version,
                         bool *taken_pi, bool *taken_vf)
{
    *taken_pi = *taken_vf = false;
    relay_err e = check_model(a, pi, vf);
    if (e)
        return e;
    e = relay_model_handle_publish(a->pi_h, pi, version);
    if (e)
        return e;
    *taken_pi = true;
    if (vf) {
        e = relay_model_handle_publish(a->vf_h, vf, version);
        *taken_vf = e == RELAY_OK;
    }
    refresh(a);
    return e;
}

relay_err rly_actor_install(rly_actor *a, relay_model *pi, relay_model *vf, int64_t version,
                            const float *log_std, uint32_t n_log_std)
{
    if (!a || (!pi && a->own_handles))
        return RELAY_EINVAL;
    if (log_std)
        for (uint32_t i = 0; i < n_log_std && i < RELAY_ENV_MAX_DIM; i++)
            a->log_std[i] = log_std[i];
    if (!pi) {
        refresh(a);
        return RELAY_OK;
    }
    bool tp, tv;
    relay_err e = publish(a, pi, vf, version, &tp, &tv);
    if (tp && !tv)
        relay_model_free(vf); /* pi is in; a value model that failed is dropped with a log */
    if (tp && !tv && vf)
        rly_warn(MOD, "value model not installed: %s", relay_strerror(e));
    return tp ? RELAY_OK : e;
}

void rly_model_update_free(void *p)
{
    rly_model_update *u = p;
    if (!u)
        return;
    relay_model_free(u->pi);
    relay_model_free(u->vf);
    free(u);
}

/* ---- acting ------------------------------------------------------------------------------- */

size_t rly_infer_req_size(const rly_policy_desc *d, bool with_mask)
{
    size_t floats = d->obs_dim + d->act_dim;
    size_t bytes = sizeof(rly_infer_req) + floats * sizeof(float) + (with_mask ? d->n_actions : 0);
    return (bytes + 15) & ~(size_t)15;
}

rly_infer_req *rly_infer_req_new(const rly_policy_desc *d, bool with_mask)
{
    void *mem = calloc(1, rly_infer_req_size(d, with_mask));
    return mem ? rly_infer_req_init(mem, d, with_mask) : NULL;
}

rly_infer_req *rly_infer_req_init(void *mem, const rly_policy_desc *d, bool with_mask)
{
    size_t floats = d->obs_dim + d->act_dim;
    rly_infer_req *r = mem;
    memset(r, 0, sizeof *r);
    r->obs = r->data;
    r->action = r->data + d->obs_dim;
    r->mask = with_mask ? (uint8_t *)(r->data + floats) : NULL;
    r->has_mask = with_mask;
    r->version = -1;
    return r;
}

/*
 * policy_forward runs the policy (and value) model on n observations and selects actions.
 * out/values are [n x out_dim] / [n] scratch; actions go to acts_i (discrete) or acts_f and
 * env_act (continuous), log-probabilities to logp.
 */
/* stat_add adds v to a counter this thread alone writes (no locked instruction needed). */
static inline void stat_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

/* forward_models runs the policy model (out) and the value model (values, 0 without one). */
static relay_err forward_models(rly_actor *a, const float *obs, uint32_t n, float *out,
                                float *values)
{
    if (!a->pi_ref.model)
        return RELAY_ENOMODEL;
    uint32_t b = n <= 1 ? 0 : 32u - (uint32_t)__builtin_clz(n - 1); /* ceil(log2 n) */
    stat_add(&a->stats.batch_hist[b < RLY_ACTOR_BATCH_BUCKETS ? b : RLY_ACTOR_BATCH_BUCKETS - 1],
             1);
    stat_add(&a->stats.batch_rows, n);
    relay_err e = relay_model_forward_ws(a->pi_ref.model, a->ws, obs, (int)n, out);
    if (e)
        return e;
    if (a->vf_ref.model)
        return relay_model_forward_ws(a->vf_ref.model, a->ws, obs, (int)n, values);
    memset(values, 0, n * sizeof *values);
    return RELAY_OK;
}

/* select_rows picks actions for n rows of policy outputs with a's RNG. */
static relay_err select_rows(rly_actor *a, const float *out, uint32_t n, const uint8_t *masks,
                             int32_t *acts_i, float *acts_f, float *env_act, float *logp)
{
    const rly_policy_desc *d = &a->desc;
    uint32_t od = relay_model_out_dim(a->pi_ref.model);
    for (uint32_t i = 0; i < n; i++) {
        if (d->discrete) {
            relay_err e = rly_select_categorical(
                out + (size_t)i * od, masks ? masks + (size_t)i * d->n_actions : NULL, d->n_actions,
                a->cfg.deterministic, &a->rng, &acts_i[i], &logp[i]);
            if (e) {
                rly_warn(MOD, "the action mask forbids every action");
                return e;
            }
        } else {
            const float *mean = out + (size_t)i * od;
            const float *ls = od == 2 * d->act_dim ? mean + d->act_dim : a->log_std;
            rly_select_gaussian(mean, ls, d->act_dim, a->cfg.deterministic, &a->rng,
                                d->bounded ? d->low : NULL, d->bounded ? d->high : NULL,
                                acts_f + (size_t)i * d->act_dim, env_act + (size_t)i * d->act_dim,
                                &logp[i]);
        }
    }
    return RELAY_OK;
}

/*
 * policy_forward runs the models on n observations and selects actions: out/values are
 * [n x out_dim] / [n] scratch; actions go to acts_i (discrete) or acts_f and env_act
 * (continuous), log-probabilities to logp.
 */
/*
 * remote_forward asks the central inference server for n rows: the draws come from a's RNG in
 * the order select_rows would take them; env_act gets the continuous actions clipped.
 */
static relay_err remote_forward(rly_actor *a, const float *obs, uint32_t n, const uint8_t *masks,
                                double *rand, float *values, int32_t *acts_i, float *acts_f,
                                float *env_act, float *logp, int64_t *version)
{
    const rly_policy_desc *d = &a->desc;
    bool det = a->cfg.deterministic;
    uint32_t draws = det ? 0 : (d->discrete ? 1 : d->act_dim);
    for (uint32_t i = 0; i < n * draws; i++)
        rand[i] = d->discrete ? rly_rng_uniform(&a->rng) : rly_rng_normal(&a->rng);
    rly_remote_rows rr = {.n = n,
                          .deterministic = det,
                          .obs = obs,
                          .masks = masks,
                          .rand = rand,
                          .acts_i = acts_i,
                          .acts_f = acts_f,
                          .logp = logp,
                          .values = values,
                          .version = -1};
    uint32_t b = n <= 1 ? 0 : 32u - (uint32_t)__builtin_clz(n - 1);
    stat_add(&a->stats.batch_hist[b < RLY_ACTOR_BATCH_BUCKETS ? b : RLY_ACTOR_BATCH_BUCKETS - 1],
             1);
    stat_add(&a->stats.batch_rows, n);
    relay_err e = a->cfg.remote->forward(a->cfg.remote->ctx, d, &rr);
    if (e)
        return e;
    if (!d->discrete && env_act)
        for (uint32_t i = 0; i < n; i++)
            for (uint32_t k = 0; k < d->act_dim; k++) {
                float c = acts_f[(size_t)i * d->act_dim + k];
                if (d->bounded && c < d->low[k])
                    c = d->low[k];
                if (d->bounded && c > d->high[k])
                    c = d->high[k];
                env_act[(size_t)i * d->act_dim + k] = c;
            }
    *version = rr.version;
    atomic_store_explicit(&a->stats.version, rr.version, memory_order_relaxed);
    return RELAY_OK;
}

static relay_err policy_forward(rly_actor *a, const float *obs, uint32_t n, const uint8_t *masks,
                                float *out, float *values, int32_t *acts_i, float *acts_f,
                                float *env_act, float *logp)
{
    relay_err e = forward_models(a, obs, n, out, values);
    return e ? e : select_rows(a, out, n, masks, acts_i, acts_f, env_act, logp);
}

/* value_of returns V(obs) for one observation (0 without a value model). */
static float value_of(rly_actor *a, const float *obs)
{
    float v = 0.0f;
    if (a->vf_ref.model && relay_model_forward_ws(a->vf_ref.model, a->ws, obs, 1, &v) != RELAY_OK)
        v = 0.0f;
    return v;
}

/* ---- trajectories ------------------------------------------------------------------------- */

static rly_traj_out *out_of(rly_actor *a)
{
    if (a->slot.router) {
        rly_traj_out *o = rly_router_user(a->slot.router);
        if (o)
            return o;
    }
    return a->out_fallback;
}

/* emit hands t on (ownership moves) and counts it. */
static void emit(rly_actor *a, relay_traj *t)
{
    if (!t)
        return;
    if (t->len == 0) {
        relay_traj_free(t);
        return;
    }
    t->actor = a->slot.id; /* stamped at emission: set_actor_id renames the data too */
    rly_traj_out *o = out_of(a);
    atomic_fetch_add_explicit(&a->stats.trajectories, 1, memory_order_relaxed);
    if (!o) {
        rly_warn(MOD, "no trajectory destination; dropping a %u-step trajectory", t->len);
        relay_traj_free(t);
        return;
    }
    o->push(o, t);
}

static relay_traj *traj_start(rly_actor *a, bool masked, int64_t env_id, int64_t episode)
{
    const relay_step_spec *spec = masked ? &a->spec_masked : &a->spec;
    rly_traj_out *o = out_of(a);
    relay_traj *t = o && o->take ? o->take(o, spec, a->cfg.max_traj_len) : NULL;
    if (!t)
        t = relay_traj_new(spec, a->cfg.max_traj_len ? a->cfg.max_traj_len : 64,
                           a->cfg.max_traj_len);
    if (!t)
        return NULL;
    t->actor = a->slot.id;
    t->env_id = env_id;
    t->episode = episode;
    t->policy_version = a->version;
    return t;
}

/* close_truncated marks t's last row as the end of a truncated piece bootstrapped from v. */
static void close_truncated(relay_traj *t, float bootstrap, bool cut)
{
    if (!t || t->len == 0)
        return;
    uint32_t last = t->len - 1;
    t->truncated[last] = 1;
    t->aux[(size_t)last * RLY_N_AUX + RLY_AUX_BOOTSTRAP] = bootstrap;
    t->aux[(size_t)last * RLY_N_AUX + RLY_AUX_CUT] = cut ? 1.0f : 0.0f;
}

static void flush_run(rly_actor *a);

/* flush_all emits every partial trajectory as a cut chunk (model update, removal, shutdown). */
static void flush_all(rly_actor *a)
{
    a->traj_cut_pending = false;
    if (a->traj && a->traj->len) {
        close_truncated(a->traj, 0.0f, true);
        emit(a, a->traj);
        a->traj = NULL;
    }
    flush_run(a);
}

/* flush_run emits the env-run trajectories as cut chunks bootstrapped with V(next obs). */
static void flush_run(rly_actor *a)
{
    env_run *r = &a->run;
    if (a->running && r->traj) {
        for (uint32_t i = 0; i < r->n; i++) {
            relay_traj *t = r->traj[i];
            if (!t || t->len == 0)
                continue;
            close_truncated(t, value_of(a, r->obs + (size_t)i * a->desc.obs_dim), true);
            emit(a, t);
            r->traj[i] = traj_start(a, false, (int64_t)i, r->episode[i]);
        }
    }
}

/* ---- message handlers --------------------------------------------------------------------- */

/* infer_finish selects q's action from the policy output row (when e is OK), records the step
   and completes m's reply; it takes ownership of q. */
static void infer_finish(rly_actor *a, rly_msg *m, rly_infer_req *q, const float *out, float value,
                         relay_err e)
{
    const rly_policy_desc *d = &a->desc;
    float logp = 0.0f, env_act[RELAY_ENV_MAX_DIM];
    int32_t idx = 0;
    if (e == RELAY_OK && a->cfg.remote) {
        /* central inference: out is unused, the server selected with this actor's draws */
        double rand[RELAY_ENV_MAX_DIM];
        int64_t version = -1;
        e = remote_forward(a, q->obs, 1, q->has_mask ? q->mask : NULL, rand, &value, &idx,
                           q->action, env_act, &logp, &version);
        if (e == RELAY_OK && version != a->version) {
            if (a->traj && a->traj->len)
                a->traj_cut_pending = true; /* one policy version per trajectory */
            a->version = version;
        }
    } else if (e == RELAY_OK)
        e = select_rows(a, out, 1, q->has_mask ? q->mask : NULL, &idx, q->action, env_act, &logp);
    if (e == RELAY_OK) {
        if (d->discrete) {
            q->action_index = idx;
            q->action[0] = (float)idx;
        } else {
            memcpy(q->action, env_act, d->act_dim * sizeof(float));
        }
        q->logp = logp;
        q->value = value;
        q->version = a->version;
        atomic_fetch_add_explicit(&a->stats.inferences, 1, memory_order_relaxed);
        if (a->cfg.record) {
            /* The reward that came with this observation belongs to the previous action. */
            if (a->traj && a->traj->len)
                a->traj->reward[a->traj->len - 1] += q->reward;
            if (a->traj_cut_pending) {
                /* rows of the previous model version end here, bootstrapped with V(this obs) */
                a->traj_cut_pending = false;
                if (a->traj && a->traj->len) {
                    close_truncated(a->traj, value, true);
                    emit(a, a->traj);
                    a->traj = NULL;
                }
            }
            if (!a->traj)
                a->traj = traj_start(a, q->has_mask, -1, a->episode);
            if (a->traj) {
                if (a->traj->max_len && a->traj->len == a->traj->max_len) {
                    close_truncated(a->traj, value, true);
                    emit(a, a->traj);
                    a->traj = traj_start(a, q->has_mask, -1, a->episode);
                }
                if (a->traj && (a->traj->spec.mask_dtype != RELAY_DTYPE_INVALID) != q->has_mask) {
                    /* Masks appeared or disappeared mid-episode: start a new piece. */
                    close_truncated(a->traj, value, true);
                    emit(a, a->traj);
                    a->traj = traj_start(a, q->has_mask, -1, a->episode);
                }
                float aux[RLY_N_AUX] = {logp, value, 0.0f, 0.0f};
                const void *act = d->discrete ? (const void *)&idx : (const void *)q->action;
                if (a->traj)
                    relay_traj_push(a->traj, q->obs, act, q->has_mask ? q->mask : NULL, 0.0f, false,
                                    false, aux, rly_wall_ns());
            }
        }
    }
    /* q goes back with the reply, destroyed (if unclaimed) the way its sender said: payload_free
       (NULL when the sender owns the memory, as the agent's request path does). */
    void (*q_free)(void *) = m->payload_free;
    if (m->reply) {
        if (e && q_free)
            q_free(q);
        rly_reply_complete(m->reply, e, a->version, e ? NULL : q, e ? NULL : q_free);
        m->reply = NULL;
    } else if (q_free) {
        q_free(q);
    }
}

static void handle_infer(rly_actor *a, rly_msg *m)
{
    rly_infer_req *q = m->payload;
    m->payload = NULL;
    refresh(a);
    float value = 0.0f;
    relay_err e = a->cfg.remote ? RELAY_OK : forward_models(a, q->obs, 1, a->scratch, &value);
    infer_finish(a, m, q, a->scratch, value, e);
}

/* Per-thread scratch for batched inference across actors (grown, never shrunk), freed when the
   router thread exits. */
typedef struct batch_scratch {
    float *obs, *out, *val;
    size_t cap_obs, cap_out, cap_n;
    /* step_many (central inference): log-probabilities, draws, discrete actions */
    float *logp;
    double *rand;
    int32_t *acts_i;
    size_t cap_logp, cap_rand, cap_acts_i;
} batch_scratch;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    batch_scratch *b = p;
    free(b->obs);
    free(b->out);
    free(b->val);
    free(b->logp);
    free(b->rand);
    free(b->acts_i);
    free(b);
}

static void scratch_key_init(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

static batch_scratch *scratch_get(void)
{
    pthread_once(&scratch_once, scratch_key_init);
    batch_scratch *b = pthread_getspecific(scratch_key);
    if (!b) {
        b = calloc(1, sizeof *b);
        if (b && pthread_setspecific(scratch_key, b) != 0) {
            free(b);
            b = NULL;
        }
    }
    return b;
}

static bool grow_bytes(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    void *nb = realloc(*buf, need * elem);
    if (!nb)
        return false;
    *buf = nb;
    *cap = need;
    return true;
}

static bool grow(float **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    float *nb = realloc(*buf, need * sizeof(float));
    if (!nb)
        return false;
    *buf = nb;
    *cap = need;
    return true;
}

/*
 * deliver_many handles a run of RequestInference messages to actors of one router: when every
 * actor reads the same models (shared model mode) the observations go through one batched
 * forward pass; each actor then selects with its own RNG and records its own step, in order.
 */
static void deliver_many(rly_actor_slot **slots, rly_msg *msgs, size_t n)
{
    rly_actor *first = slots[0]->actor;
    refresh(first);
    bool same = first->pi_ref.model != NULL && !first->cfg.remote;
    for (size_t i = 1; i < n && same; i++) {
        rly_actor *a = slots[i]->actor;
        refresh(a);
        same = !a->cfg.remote && a->pi_ref.model == first->pi_ref.model &&
               a->vf_ref.model == first->vf_ref.model &&
               rly_policy_desc_same(&a->desc, &first->desc);
    }
    uint32_t od = same ? relay_model_out_dim(first->pi_ref.model) : 0;
    size_t in = first->desc.obs_dim;
    batch_scratch *b = same ? scratch_get() : NULL;
    if (!b || !grow(&b->obs, &b->cap_obs, n * in) || !grow(&b->out, &b->cap_out, n * od) ||
        !grow(&b->val, &b->cap_n, n)) {
        for (size_t i = 0; i < n; i++)
            slots[i]->ops->deliver(slots[i], &msgs[i]);
        return;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(b->obs + i * in, ((rly_infer_req *)msgs[i].payload)->obs, in * sizeof(float));
    relay_err e = forward_models(first, b->obs, (uint32_t)n, b->out, b->val);
    for (size_t i = 0; i < n; i++) {
        rly_infer_req *q = msgs[i].payload;
        if (e == RELAY_OK)
            atomic_fetch_add_explicit(&((rly_actor *)slots[i]->actor)->stats.batched, 1,
                                      memory_order_relaxed);
        msgs[i].payload = NULL;
        infer_finish(slots[i]->actor, &msgs[i], q, b->out + i * od, b->val[i], e);
    }
}

static void handle_flag_last(rly_actor *a, rly_msg *m)
{
    float reward;
    int32_t bits = (int32_t)m->arg;
    memcpy(&reward, &bits, sizeof reward);
    rly_episode_end *end = m->payload; /* optional: how the episode ended */
    relay_err e = RELAY_OK;
    a->traj_cut_pending = false; /* the piece ends with its episode */
    if (a->traj && a->traj->len) {
        uint32_t last = a->traj->len - 1;
        a->traj->reward[last] += reward;
        if (end && end->truncated) {
            /* time limit: bootstrap with V(final observation), or V(last observation) */
            float boot = end->has_obs ? value_of(a, end->obs)
                                      : a->traj->aux[(size_t)last * RLY_N_AUX + RLY_AUX_VALUE];
            close_truncated(a->traj, boot, false);
        } else {
            a->traj->terminated[last] = 1;
        }
        emit(a, a->traj);
        a->traj = NULL;
        a->episode++;
        atomic_fetch_add_explicit(&a->stats.episodes, 1, memory_order_relaxed);
    } else {
        e = RELAY_ESTATE; /* nothing to close */
    }
    if (m->reply) {
        rly_reply_complete(m->reply, e, a->episode, NULL, NULL);
        m->reply = NULL;
    }
}

static void handle_update(rly_actor *a, rly_msg *m)
{
    rly_model_update *u = m->payload;
    m->payload = NULL;
    relay_err e = RELAY_OK;
    /* Data of the old version is closed first, so each trajectory has one policy version. The
       request path's piece is cut at its next request (when V(next obs) is known) or ending. */
    a->traj_cut_pending = a->traj && a->traj->len;
    flush_run(a);
    if (u) {
        if (u->n_log_std)
            for (uint32_t i = 0; i < u->n_log_std && i < RELAY_ENV_MAX_DIM; i++)
                a->log_std[i] = u->log_std[i];
        if (u->pi && a->own_handles) {
            /* A negative version means "the next one": 0 for a first model, else current + 1. */
            int64_t v = u->version >= 0 ? u->version : (a->version < 0 ? 0 : a->version + 1);
            bool tp, tv;
            e = publish(a, u->pi, u->vf, v, &tp, &tv);
            if (tp)
                u->pi = NULL;
            if (tv)
                u->vf = NULL;
        } else if (u->pi) {
            rly_warn(MOD, "model update with models for an actor on shared handles; ignored");
            e = RELAY_EINVAL;
        } else {
            refresh(a);
        }
        rly_model_update_free(u);
    } else {
        refresh(a);
    }
    /* Running envs start fresh pieces stamped with the new version. */
    if (a->running) {
        for (uint32_t i = 0; i < a->run.n; i++)
            if (a->run.traj[i])
                a->run.traj[i]->policy_version = a->version;
        a->run.version_steps = 0;
        if (a->run.paused) {
            a->run.paused = false;
            rly_router_set_active(&a->slot, true);
        }
    }
    if (m->reply) {
        rly_reply_complete(m->reply, e, a->version, NULL, NULL);
        m->reply = NULL;
    }
}

static void end_run(rly_actor *a, relay_err status)
{
    env_run *r = &a->run;
    if (!a->running)
        return;
    if (status && status != RELAY_ESHUTDOWN && status != RELAY_ECANCELED) {
        int expected = 0;
        atomic_compare_exchange_strong(&a->stats.run_error, &expected, (int)status);
    }
    flush_all(a);
    rly_router_set_active(&a->slot, false);
    if (r->reply) {
        rly_reply_complete(r->reply, status, (int64_t)r->steps_done, NULL, NULL);
        r->reply = NULL;
    }
    a->running = false;
    run_free(r);
}

/* ---- snapshots (exact resume) --------------------------------------------------------------- */

#define SNAP_MAGIC 0x4e534152u /* "RASN" */
#define SNAP_HEAD 72u          /* magic, n, obs_dim, 0, next_version, steps_done, rng[4] */

void rly_run_env_free(void *p)
{
    rly_run_env *spec = p;
    if (!spec)
        return;
    free(spec->restore);
    free(spec);
}

/* snap_size is the byte size of a snapshot of r (venv_len: its vecenv snapshot's). */
static size_t snap_size(const env_run *r, uint32_t od, size_t venv_len)
{
    return SNAP_HEAD + (size_t)r->n * (sizeof(int64_t) + od * sizeof(float)) + 8 + venv_len;
}

relay_err rly_actor_snapshot_version(const uint8_t *snap, size_t len, int64_t *next_version)
{
    uint32_t magic = 0;
    if (!snap || len < SNAP_HEAD || (memcpy(&magic, snap, 4), magic != SNAP_MAGIC))
        return RELAY_EFORMAT;
    memcpy(next_version, snap + 16, 8);
    return RELAY_OK;
}

/* snapshot writes a's run state into r->snap and hands it to on_pause. */
static void snapshot_pause(rly_actor *a)
{
    env_run *r = &a->run;
    uint32_t od = a->desc.obs_dim;
    size_t vl = rly_vecenv_snapshot_size(r->venv);
    uint8_t *p = r->snap;
    uint32_t head[4] = {SNAP_MAGIC, r->n, od, 0};
    int64_t next = a->version + 1;
    memcpy(p, head, 16);
    memcpy(p + 16, &next, 8);
    memcpy(p + 24, &r->steps_done, 8);
    memcpy(p + 32, a->rng.s, 32);
    p += SNAP_HEAD;
    memcpy(p, r->episode, r->n * sizeof(int64_t));
    p += r->n * sizeof(int64_t);
    memcpy(p, r->obs, (size_t)r->n * od * sizeof(float));
    p += (size_t)r->n * od * sizeof(float);
    uint64_t vl64 = vl;
    memcpy(p, &vl64, 8);
    p += 8;
    if (rly_vecenv_save(r->venv, p, vl) != RELAY_OK)
        return; /* checked at start_run: cannot happen */
    r->on_pause(r->pause_ctx, next, r->snap, r->snap_len);
}

/* restore_run sets r (made by start_run) from a snapshot; errors name what does not fit. */
static relay_err restore_run(rly_actor *a, const uint8_t *b, size_t len)
{
    env_run *r = &a->run;
    uint32_t od = a->desc.obs_dim;
    uint32_t head[4] = {0};
    if (len >= SNAP_HEAD)
        memcpy(head, b, 16);
    if (len < SNAP_HEAD + 8 || head[0] != SNAP_MAGIC) {
        rly_error(MOD, "actor snapshot: not an actor snapshot (%zu bytes)", len);
        return RELAY_EFORMAT;
    }
    if (head[1] != r->n || head[2] != od) {
        rly_error(MOD, "actor snapshot: %u envs with %u observations, this actor runs %u with %u",
                  head[1], head[2], r->n, od);
        return RELAY_ESHAPE;
    }
    size_t fixed = snap_size(r, od, 0);
    uint64_t vl = 0;
    if (len >= fixed)
        memcpy(&vl, b + fixed - 8, 8);
    if (len < fixed || vl != len - fixed) {
        rly_error(MOD, "actor snapshot: %zu bytes do not hold %u envs and an env snapshot", len,
                  r->n);
        return RELAY_ETRUNCATED;
    }
    const uint8_t *p = b + SNAP_HEAD;
    const float *obs = (const float *)(const void *)(p + r->n * sizeof(int64_t));
    for (size_t i = 0; i < (size_t)r->n * od; i++) {
        float x;
        memcpy(&x, obs + i, 4);
        if (!isfinite(x)) {
            rly_error(MOD, "actor snapshot: observation %zu is not finite", i);
            return RELAY_EFORMAT;
        }
    }
    relay_err e = rly_vecenv_restore(r->venv, b + fixed, (size_t)vl);
    if (e)
        return e;
    memcpy(&r->steps_done, b + 24, 8);
    memcpy(a->rng.s, b + 32, 32);
    memcpy(r->episode, p, r->n * sizeof(int64_t));
    memcpy(r->obs, obs, (size_t)r->n * od * sizeof(float));
    return RELAY_OK;
}

static relay_err start_run(rly_actor *a, const rly_run_env *spec, rly_reply *reply)
{
    if (a->running)
        return RELAY_EBUSY;
    rly_policy_desc d;
    relay_err e = rly_policy_desc_from_env(&d, spec->env);
    if (e)
        return e;
    if (d.obs_dim != a->desc.obs_dim || d.discrete != a->desc.discrete ||
        (d.discrete ? d.n_actions != a->desc.n_actions : d.act_dim != a->desc.act_dim)) {
        rly_error(MOD, "env %s does not match the actor's policy (obs %u vs %u)", spec->env->name,
                  d.obs_dim, a->desc.obs_dim);
        return RELAY_ESHAPE;
    }
    if (spec->n_envs == 0 || spec->n_envs > RELAY_MODEL_MAX_BATCH)
        return RELAY_EINVAL;
    env_run *r = &a->run;
    memset(r, 0, sizeof *r);
    r->n = spec->n_envs;
    size_t n = r->n, od = a->desc.obs_dim, ad = a->desc.act_dim;
    size_t outw = a->desc.discrete ? a->desc.n_actions : 2 * ad;
    e = relay_vecenv_new(spec->env, spec->n_envs, spec->seed, &r->venv);
    if (e)
        return e;
    r->obs = malloc(n * od * sizeof(float));
    r->next_obs = malloc(n * od * sizeof(float));
    r->final_obs = malloc(n * od * sizeof(float));
    r->out = malloc(n * outw * sizeof(float));
    r->values = malloc(n * sizeof(float));
    r->rewards = malloc(n * sizeof(float));
    r->logp = malloc(n * sizeof(float));
    r->env_act = malloc(n * ad * sizeof(float));
    r->acts_f = malloc(n * ad * sizeof(float));
    r->acts_i = malloc(n * sizeof(int32_t));
    r->term = malloc(n * sizeof(bool));
    r->trunc = malloc(n * sizeof(bool));
    r->traj = calloc(n, sizeof *r->traj);
    r->episode = calloc(n, sizeof *r->episode);
    if (a->cfg.remote && !(r->rand = malloc(n * (ad ? ad : 1) * sizeof(double)))) {
        run_free(r);
        return RELAY_ENOMEM;
    }
    if (!r->obs || !r->next_obs || !r->final_obs || !r->out || !r->values || !r->rewards ||
        !r->logp || !r->env_act || !r->acts_f || !r->acts_i || !r->term || !r->trunc || !r->traj ||
        !r->episode) {
        run_free(r);
        return RELAY_ENOMEM;
    }
    if (a->pi_ref.model && relay_model_ws_reserve(a->ws, a->pi_ref.model, (int)n) != RELAY_OK) {
        run_free(r);
        return RELAY_ENOMEM;
    }
    if (spec->on_pause || spec->restore) {
        size_t vl = rly_vecenv_snapshot_size(r->venv);
        if (vl == 0) {
            rly_error(MOD,
                      "env %s cannot be snapshotted (a plug-in without RELAY_ENV_PLAIN_STATE): "
                      "no exact resume",
                      spec->env->name);
            run_free(r);
            return RELAY_EUNSUPPORTED;
        }
        r->snap_len = snap_size(r, (uint32_t)od, vl);
        if (spec->on_pause && !(r->snap = malloc(r->snap_len))) {
            run_free(r);
            return RELAY_ENOMEM;
        }
        r->on_pause = spec->on_pause;
        r->pause_ctx = spec->pause_ctx;
    }
    if (spec->restore) {
        if ((e = restore_run(a, spec->restore, spec->restore_len)) != RELAY_OK) {
            rly_error(MOD, "actor %s: cannot restore its snapshot: %s", spec->env->name,
                      relay_strerror(e));
            run_free(r);
            return e;
        }
    } else {
        relay_vecenv_reset(r->venv, r->obs);
    }
    if (a->cfg.record)
        for (uint32_t i = 0; i < r->n; i++) {
            r->traj[i] = traj_start(a, false, (int64_t)i, r->episode[i]);
            if (!r->traj[i]) {
                run_free(r);
                return RELAY_ENOMEM;
            }
        }
    r->steps_left = spec->steps ? spec->steps : UINT64_MAX;
    r->per_version = spec->steps_per_version;
    r->reply = reply;
    a->running = true;
    rly_router_set_active(&a->slot, true);
    return RELAY_OK;
}

/* step_env runs one vector step of the actor's env; false when the run is over. */
/*
 * env_values_finite checks what the env just returned (rewards, next observations and, for
 * finished episodes, final observations); a NaN or infinity ends the run with RELAY_EFORMAT and
 * a log naming the environment, instead of training on it.
 */
static bool env_values_finite(rly_actor *a, const env_run *r)
{
    size_t od = a->desc.obs_dim;
    for (uint32_t i = 0; i < r->n; i++) {
        const char *what = NULL;
        float bad = 0.0f;
        uint32_t at = 0;
        if (!isfinite(r->rewards[i])) {
            what = "reward";
            bad = r->rewards[i];
        }
        for (uint32_t k = 0; !what && k < od; k++)
            if (!isfinite(r->next_obs[i * od + k])) {
                what = "observation";
                bad = r->next_obs[i * od + k];
                at = k;
            }
        for (uint32_t k = 0; !what && (r->term[i] || r->trunc[i]) && k < od; k++)
            if (!isfinite(r->final_obs[i * od + k])) {
                what = "final observation";
                bad = r->final_obs[i * od + k];
                at = k;
            }
        if (what) {
            const relay_env_def *def = relay_vecenv_def(r->venv);
            char where[32] = "";
            if (what[0] != 'r')
                snprintf(where, sizeof where, " at element %u", at);
            rly_error(MOD,
                      "environment %s returned a non-finite %s (%g%s) in env copy %u after %llu "
                      "steps; run_env stopped",
                      def && def->name ? def->name : "?", what, (double)bad, where, i,
                      (unsigned long long)r->steps_done);
            return false;
        }
    }
    return true;
}

/* remote_version follows the server to model version v: one policy version per trajectory. */
static void remote_version(rly_actor *a, int64_t v)
{
    env_run *r = &a->run;
    if (v == a->version)
        return;
    a->version = v;
    for (uint32_t i = 0; i < r->n; i++) {
        relay_traj *t = r->traj[i];
        if (!t)
            continue;
        if (t->len) {
            close_truncated(t, r->values[i], true);
            emit(a, t);
            t = r->traj[i] = traj_start(a, false, (int64_t)i, r->episode[i]);
        }
        if (t)
            t->policy_version = v;
    }
}

static bool step_rest(rly_actor *a, relay_err e, bool timed, int64_t t0);

static bool step_env(rly_actor *a)
{
    env_run *r = &a->run;
    if (!a->running)
        return false;
    refresh(a);
    /* one step in RLY_ACTOR_TIME_SAMPLE is timed: four clock reads per step would cost ~4% */
    bool timed = (r->steps_done % RLY_ACTOR_TIME_SAMPLE) == 0;
    int64_t t0 = timed ? rly_now_ns() : 0;
    relay_err e;
    if (a->cfg.remote) {
        int64_t v = -1;
        e = remote_forward(a, r->obs, r->n, NULL, r->rand, r->values, r->acts_i, r->acts_f,
                           r->env_act, r->logp, &v);
        if (!e)
            remote_version(a, v);
    } else {
        e = policy_forward(a, r->obs, r->n, NULL, r->out, r->values, r->acts_i, r->acts_f,
                           r->env_act, r->logp);
    }
    return step_rest(a, e, timed, t0);
}

/* step_rest finishes a vector step once its actions are known (e: the forward pass's result). */
static bool step_rest(rly_actor *a, relay_err e, bool timed, int64_t t0)
{
    env_run *r = &a->run;
    const rly_policy_desc *d = &a->desc;
    int64_t t1 = 0, t2 = 0;
    if (e) {
        rly_error(MOD, "run_env stopped: %s", relay_strerror(e));
        end_run(a, e);
        return false;
    }
    const void *env_actions = d->discrete ? (const void *)r->acts_i : (const void *)r->env_act;
    if (timed)
        t1 = rly_now_ns();
    relay_vecenv_step(r->venv, env_actions, r->next_obs, r->rewards, r->term, r->trunc,
                      r->final_obs);
    if (timed)
        t2 = rly_now_ns();
    if (!env_values_finite(a, r)) {
        end_run(a, RELAY_EFORMAT);
        return false;
    }
    int64_t now = rly_wall_ns();
    size_t od = d->obs_dim;
    for (uint32_t i = 0; i < r->n; i++) {
        relay_traj *t = r->traj[i];
        if (t) {
            const float *obs_i = r->obs + i * od;
            if (t->max_len && t->len == t->max_len) {
                /* Max length: emit a chunk bootstrapped from this state, continue the episode. */
                close_truncated(t, r->values[i], true);
                emit(a, t);
                t = r->traj[i] = traj_start(a, false, (int64_t)i, r->episode[i]);
            }
            if (t) {
                float aux[RLY_N_AUX] = {r->logp[i], r->values[i], 0.0f, 0.0f};
                const void *act = d->discrete ? (const void *)&r->acts_i[i]
                                              : (const void *)(r->acts_f + i * d->act_dim);
                relay_traj_push(t, obs_i, act, NULL, r->rewards[i], r->term[i], r->trunc[i], aux,
                                now);
            }
        }
        if (r->term[i] || r->trunc[i]) {
            if (t) {
                if (r->trunc[i] && !r->term[i])
                    t->aux[(size_t)(t->len - 1) * RLY_N_AUX + RLY_AUX_BOOTSTRAP] =
                        value_of(a, r->final_obs + i * od);
                emit(a, t);
            }
            r->episode[i]++;
            atomic_fetch_add_explicit(&a->stats.episodes, 1, memory_order_relaxed);
            r->traj[i] = a->cfg.record ? traj_start(a, false, (int64_t)i, r->episode[i]) : NULL;
        }
    }
    float *tmp = r->obs;
    r->obs = r->next_obs;
    r->next_obs = tmp;
    if (timed) {
        int64_t t3 = rly_now_ns();
        stat_add(&a->stats.ns_infer, (uint64_t)(t1 - t0) * RLY_ACTOR_TIME_SAMPLE);
        stat_add(&a->stats.ns_env, (uint64_t)(t2 - t1) * RLY_ACTOR_TIME_SAMPLE);
        stat_add(&a->stats.ns_record, (uint64_t)(t3 - t2) * RLY_ACTOR_TIME_SAMPLE);
    }
    atomic_fetch_add_explicit(&a->stats.env_steps, r->n, memory_order_relaxed);
    r->steps_done++;
    if (r->steps_left != UINT64_MAX && --r->steps_left == 0) {
        end_run(a, RELAY_OK);
        return false;
    }
    if (r->per_version && ++r->version_steps >= r->per_version) {
        /* Quota of this version reached: snapshot (before the data leaves, so a learner that has
           used the data can rely on the snapshot), hand the data over, wait for the next model. */
        if (r->on_pause)
            snapshot_pause(a);
        flush_all(a);
        r->paused = true;
        return false;
    }
    return true;
}

static void deliver(rly_actor_slot *slot, rly_msg *m)
{
    rly_actor *a = slot->actor;
    switch (m->proto) {
    case RLY_REQUEST_INFERENCE:
        handle_infer(a, m);
        break;
    case RLY_FLAG_LAST_INFERENCE:
        handle_flag_last(a, m);
        break;
    case RLY_MODEL_VERSION:
        refresh(a);
        if (m->reply)
            rly_reply_complete(m->reply, RELAY_OK, a->version, NULL, NULL);
        m->reply = NULL;
        break;
    case RLY_MODEL_HANDSHAKE:
        refresh(a);
        if (m->reply)
            rly_reply_complete(m->reply, a->version < 0 ? RELAY_ENOMODEL : RELAY_OK, a->version,
                               NULL, NULL);
        m->reply = NULL;
        break;
    case RLY_MODEL_UPDATE:
        handle_update(a, m);
        break;
    case RLY_RUN_ENV: {
        rly_run_env *spec = m->payload;
        rly_reply *reply = m->reply;
        m->reply = NULL;
        relay_err e = spec ? start_run(a, spec, reply) : RELAY_EINVAL;
        if (e && reply)
            rly_reply_fail(reply, e);
        break;
    }
    case RLY_SHUTDOWN:
        if (a->running)
            end_run(a, RELAY_ESHUTDOWN);
        flush_all(a);
        if (m->reply)
            rly_reply_complete(m->reply, RELAY_OK, 0, NULL, NULL);
        m->reply = NULL;
        break;
    default:
        rly_warn(MOD, "actor cannot handle %s", rly_proto_name(m->proto));
        if (m->reply)
            rly_reply_fail(m->reply, RELAY_EUNSUPPORTED);
        m->reply = NULL;
    }
    if (m->payload && m->payload_free)
        m->payload_free(m->payload);
    m->payload = NULL;
}

static bool step(rly_actor_slot *slot)
{
    return step_env(slot->actor);
}

/*
 * step_many (central inference) steps n actors of one router with one request: each actor draws
 * its own random numbers in its own order (as step_env would), the rows of all of them go to the
 * server together (in pieces of at most RLY_REMOTE_MAX_ROWS rows), and each actor then steps its
 * envs with its slice of the reply.
 */
#define RLY_REMOTE_MAX_ROWS 4096
static void step_many(rly_actor_slot **slots, size_t n, bool *keep)
{
    size_t i = 0;
    while (i < n) {
        rly_actor *first = slots[i]->actor;
        if (!first->running || !first->cfg.remote) {
            keep[i] = step(slots[i]);
            i++;
            continue;
        }
        /* a group of running actors with the same policy shape and hook, within the row limit */
        const rly_policy_desc *d = &first->desc;
        size_t j = i;
        uint32_t rows = 0;
        while (j < n) {
            rly_actor *a = slots[j]->actor;
            if (!a->running || a->cfg.remote != first->cfg.remote ||
                !rly_policy_desc_same(&a->desc, d) || rows + a->run.n > RLY_REMOTE_MAX_ROWS)
                break;
            rows += a->run.n;
            j++;
        }
        if (j - i < 2) {
            keep[i] = step(slots[i]);
            i++;
            continue;
        }
        uint32_t ad = d->discrete ? 1 : d->act_dim, draws = first->cfg.deterministic ? 0 : ad;
        batch_scratch *b = scratch_get();
        if (!b || !grow(&b->obs, &b->cap_obs, (size_t)rows * d->obs_dim) ||
            !grow(&b->out, &b->cap_out, (size_t)rows * ad) || !grow(&b->val, &b->cap_n, rows) ||
            !grow(&b->logp, &b->cap_logp, rows) ||
            !grow_bytes((void **)&b->rand, &b->cap_rand, (size_t)rows * (draws ? draws : 1),
                        sizeof(double)) ||
            !grow_bytes((void **)&b->acts_i, &b->cap_acts_i, rows, sizeof(int32_t))) {
            for (; i < j; i++)
                keep[i] = step(slots[i]);
            continue;
        }
        uint32_t at = 0;
        for (size_t k = i; k < j; k++) {
            rly_actor *a = slots[k]->actor;
            refresh(a);
            memcpy(b->obs + (size_t)at * d->obs_dim, a->run.obs,
                   (size_t)a->run.n * d->obs_dim * sizeof(float));
            for (uint32_t q = 0; q < a->run.n * draws; q++)
                b->rand[(size_t)at * draws + q] =
                    d->discrete ? rly_rng_uniform(&a->rng) : rly_rng_normal(&a->rng);
            at += a->run.n;
        }
        rly_remote_rows rr = {.n = rows,
                              .deterministic = first->cfg.deterministic,
                              .obs = b->obs,
                              .rand = b->rand,
                              .acts_i = b->acts_i,
                              .acts_f = b->out,
                              .logp = b->logp,
                              .values = b->val,
                              .version = -1};
        relay_err e = first->cfg.remote->forward(first->cfg.remote->ctx, d, &rr);
        at = 0;
        for (size_t k = i; k < j; k++) {
            rly_actor *a = slots[k]->actor;
            env_run *r = &a->run;
            uint32_t bk = r->n <= 1 ? 0 : 32u - (uint32_t)__builtin_clz(r->n - 1);
            stat_add(
                &a->stats
                     .batch_hist[bk < RLY_ACTOR_BATCH_BUCKETS ? bk : RLY_ACTOR_BATCH_BUCKETS - 1],
                1);
            stat_add(&a->stats.batch_rows, r->n);
            if (!e) {
                stat_add(&a->stats.batched, r->n);
                memcpy(r->values, b->val + at, r->n * sizeof(float));
                memcpy(r->logp, b->logp + at, r->n * sizeof(float));
                if (d->discrete) {
                    memcpy(r->acts_i, b->acts_i + at, r->n * sizeof(int32_t));
                } else {
                    memcpy(r->acts_f, b->out + (size_t)at * ad, (size_t)r->n * ad * sizeof(float));
                    for (size_t q = 0; q < (size_t)r->n * ad; q++) {
                        float c = r->acts_f[q];
                        uint32_t dim = (uint32_t)(q % ad);
                        if (d->bounded && c < d->low[dim])
                            c = d->low[dim];
                        if (d->bounded && c > d->high[dim])
                            c = d->high[dim];
                        r->env_act[q] = c;
                    }
                }
                atomic_store_explicit(&a->stats.version, rr.version, memory_order_relaxed);
                remote_version(a, rr.version);
            }
            at += r->n;
            keep[k] = step_rest(a, e, false, 0);
        }
        i = j;
    }
}

static void detach(rly_actor_slot *slot)
{
    rly_actor *a = slot->actor;
    if (a->running)
        end_run(a, RELAY_ECANCELED);
    flush_all(a);
}

static const rly_actor_ops actor_ops = {
    .deliver = deliver, .deliver_many = deliver_many, .step = step, .detach = detach};
/* actors with central inference step together: one request per router slice */
static const rly_actor_ops actor_ops_remote = {.deliver = deliver,
                                               .deliver_many = deliver_many,
                                               .step = step,
                                               .step_many = step_many,
                                               .detach = detach};
