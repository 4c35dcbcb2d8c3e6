/* rly_learner: trajectories in, PPO updates on its own thread, ONNX policy/value models out. */
#include "learn/learner.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/thread.h"
#include "learn/learn_internal.h"
#include "model/mlp_view.h"

#define MOD "learner"

/* piece is a trajectory a stream still holds, with off rows already consumed. */
typedef struct piece {
    relay_traj *t;
    uint32_t off;
    int a_logp, a_value, a_boot, a_cut; /* aux column indices */
} piece;

/* stream is one (actor, env_id) source of rows (learner thread only). */
typedef struct stream {
    bool used;
    relay_id actor;
    int64_t env_id;
    piece *pieces;
    uint32_t n_pieces, cap_pieces;
    uint64_t rows; /* unconsumed rows over all pieces */
    int64_t ep_id; /* episode whose return is being summed */
    bool restored; /* ep_* come from a checkpoint: kept on first sight */
    bool ep_open;
    double ep_sum;
} stream;

struct rly_learner {
    rly_learner_config cfg;
    uint32_t n_streams, n_steps, obs_dim, act_dim, n_actions;
    bool discrete;
    relay_ppo *ppo;
    _Atomic bool cancel; /* set by rly_learner_stop: an update in progress stops early */
    relay_rollout *ro;
    float *last_values; /* [n_streams] */
    stream *streams;
    relay_traj **batch; /* [q_cap] popped trajectories */
    uint64_t *batch_tags;
    uint8_t *batch_fate;
    rly_pool pool;    /* pooled mode's FIFO */
    relay_id *actors; /* copy of cfg.stream_actors, or NULL */
    int64_t version;  /* learner thread's current version */
    bool warned_future;
    int64_t start_version; /* first version published: 0, or the resumed checkpoint's */
    double wall_offset;    /* training seconds before a resume */
    uint8_t *resume_extra; /* the resumed checkpoint's caller blob (owned) */
    size_t resume_extra_len;
    rly_ckpt_ep *resume_ep; /* the resumed checkpoint's episodes in progress (until applied) */
    uint32_t resume_n_ep;
    bool torn; /* an update was cancelled part way: the state is no longer a checkpoint's */

    rly_mutex mu; /* guards everything below */
    rly_cond cv_in, cv_space, cv_state;
    relay_traj **q;
    uint64_t *q_tags; /* [q_cap] tags of queued entries (pooled mode) */
    uint8_t *q_fate;  /* [q_cap] fate of a mark (q entry NULL) */
    uint32_t q_cap, q_head, q_len;
    bool stopping;
    rly_learner_stats st;
    float rets[RLY_LEARNER_RET_WINDOW];
    uint8_t *pi_onnx; /* newest pi chain */
    size_t pi_onnx_len;
    int64_t t0;
    /* a checkpoint request from another thread, served by the learner thread between updates */
    const char *save_path;
    const void *save_extra;
    size_t save_extra_len;
    bool save_pending, save_busy, joined, exited;
    relay_err save_result;

    rly_thread th;
    bool running;
};

/* tls_learner is the learner whose thread is the current one (NULL elsewhere). */
static _Thread_local rly_learner *tls_learner;

/* ---- export --------------------------------------------------------------------------------- */

static relay_activation act_of(relay_hidden_act a)
{
    return a == RELAY_HIDDEN_RELU ? RELAY_ACT_RELU : RELAY_ACT_TANH;
}

/* chain_layer is one dense layer of an exported chain: a view into an rly_mlp. */
typedef struct chain_layer {
    const rly_mlp *m;
    uint32_t l;
    relay_activation act;
} chain_layer;

relay_err rly_policy_export_onnx(const relay_policy *p, rly_policy_chain which, uint8_t **bytes,
                                 size_t *len)
{
    if (!p || !bytes || !len || (which != RLY_CHAIN_PI && which != RLY_CHAIN_VF)) {
        rly_error(MOD, "export_onnx: NULL argument or unknown chain %d", (int)which);
        return RELAY_EINVAL;
    }
    *bytes = NULL;
    *len = 0;
    chain_layer ch[2 * RLY_MLP_MAX_LAYERS];
    uint32_t n = 0;
    relay_activation hid = act_of(p->spec.activation);
    if (p->spec.shared)
        for (uint32_t l = 0; l < p->trunk.n_layers; l++)
            ch[n++] = (chain_layer){&p->trunk, l, hid};
    const rly_mlp *head = which == RLY_CHAIN_PI ? &p->pi : &p->vf;
    for (uint32_t l = 0; l < head->n_layers; l++)
        ch[n++] = (chain_layer){head, l, l + 1 < head->n_layers ? hid : RELAY_ACT_NONE};
    uint32_t sizes[2 * RLY_MLP_MAX_LAYERS + 1];
    relay_activation acts[2 * RLY_MLP_MAX_LAYERS];
    const float *wp[2 * RLY_MLP_MAX_LAYERS], *bp[2 * RLY_MLP_MAX_LAYERS];
    size_t total = 0;
    sizes[0] = p->spec.obs_dim;
    /* Gaussian policies also output their state-independent log std: [mean | log_std], so
       consumers (actors, `relay eval --stochastic`) can sample from the exported model alone. */
    uint32_t extra = which == RLY_CHAIN_PI && !p->spec.discrete ? p->spec.act_dim : 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t in = ch[i].m->sizes[ch[i].l], out = ch[i].m->sizes[ch[i].l + 1];
        if (in != sizes[i]) {
            rly_error(MOD, "export_onnx: layer %u takes %u inputs, previous gives %u", i, in,
                      sizes[i]);
            return RELAY_EINTERNAL;
        }
        if (i + 1 == n)
            out += extra;
        sizes[i + 1] = out;
        acts[i] = ch[i].act;
        total += (size_t)in * out + out;
    }
    float *buf = malloc(total * sizeof(float));
    if (!buf)
        return RELAY_ENOMEM;
    float *dst = buf;
    for (uint32_t i = 0; i < n; i++) {
        const rly_mlp *m = ch[i].m;
        uint32_t in = sizes[i], out = sizes[i + 1];
        const float *w = m->params + m->w_off[ch[i].l]; /* [in x out] */
        const float *b = m->params + m->b_off[ch[i].l];
        float *wt = dst, *bt = dst + (size_t)in * out;
        uint32_t own = i + 1 == n ? out - extra : out; /* columns of this layer's weights */
        for (uint32_t o = 0; o < own; o++)
            for (uint32_t k = 0; k < in; k++)
                wt[(size_t)o * in + k] = w[(size_t)k * own + o];
        memcpy(bt, b, own * sizeof(float));
        for (uint32_t o = own; o < out; o++) { /* log std rows: zero weights, bias = log std */
            memset(wt + (size_t)o * in, 0, in * sizeof(float));
            bt[o] = p->params[p->log_std_off + (o - own)];
        }
        if (i == 0 && p->spec.normalize_obs) {
            /* W ((x - mean) * inv_std) + b = (W * inv_std) x + (b - W (mean * inv_std)). */
            for (uint32_t o = 0; o < out; o++) {
                double shift = 0;
                float *row = wt + (size_t)o * in;
                for (uint32_t k = 0; k < in; k++) {
                    row[k] *= p->norm_inv_std[k];
                    shift += (double)row[k] * p->norm_mean[k];
                }
                bt[o] = (float)((double)bt[o] - shift);
            }
        }
        wp[i] = wt;
        bp[i] = bt;
        dst = bt + out;
    }
    relay_mlp_desc d = {
        .n_layers = n, .sizes = sizes, .activations = acts, .weights = wp, .biases = bp};
    relay_err e = relay_mlp_to_onnx(&d, bytes, len);
    free(buf);
    if (e)
        rly_error(MOD, "export_onnx: relay_mlp_to_onnx failed: %s", relay_strerror(e));
    return e;
}

relay_err rly_policy_load_pi(relay_policy *p, const relay_model *m, const char *what)
{
    if (!p || !m)
        return RELAY_EINVAL;
    rly_mlp_view v;
    relay_err e = rly_mlp_view_of(m, &v);
    if (e) {
        rly_error(MOD, "%s: not a plain MLP policy (dense layers with tanh/relu)", what);
        return e;
    }
    chain_layer ch[2 * RLY_MLP_MAX_LAYERS];
    uint32_t n = 0;
    relay_activation hid = act_of(p->spec.activation);
    if (p->spec.shared)
        for (uint32_t l = 0; l < p->trunk.n_layers; l++)
            ch[n++] = (chain_layer){&p->trunk, l, hid};
    for (uint32_t l = 0; l < p->pi.n_layers; l++)
        ch[n++] = (chain_layer){&p->pi, l, l + 1 < p->pi.n_layers ? hid : RELAY_ACT_NONE};
    uint32_t extra = p->spec.discrete ? 0 : p->spec.act_dim;
    bool ok = v.n_layers == n;
    for (uint32_t i = 0; ok && i < n; i++) {
        uint32_t in = ch[i].m->sizes[ch[i].l], out = ch[i].m->sizes[ch[i].l + 1];
        ok = v.sizes[i] == in && v.acts[i] == ch[i].act &&
             (v.sizes[i + 1] == out || (i + 1 == n && v.sizes[i + 1] == out + extra));
    }
    if (!ok) {
        char have[128] = "", want[128] = "";
        size_t o = 0;
        for (uint32_t i = 0; i <= v.n_layers && o < sizeof have; i++)
            o += (size_t)snprintf(have + o, sizeof have - o, "%s%u", i ? "-" : "", v.sizes[i]);
        o = 0;
        for (uint32_t i = 0; i < n && o < sizeof want; i++)
            o += (size_t)snprintf(want + o, sizeof want - o, "%u-", ch[i].m->sizes[ch[i].l]);
        if (n && o < sizeof want)
            snprintf(want + o, sizeof want - o, "%u", ch[n - 1].m->sizes[ch[n - 1].l + 1]);
        rly_error(MOD,
                  "%s does not fit the policy: it is %s, the policy is %s with %s hidden "
                  "activations (set --net-arch/--activation to match)",
                  what, have, want, p->spec.activation == RELAY_HIDDEN_RELU ? "relu" : "tanh");
        rly_mlp_view_fini(&v);
        return RELAY_ESHAPE;
    }
    for (uint32_t i = 0; i < n; i++) {
        const rly_mlp *mm = ch[i].m;
        uint32_t in = mm->sizes[ch[i].l], out = mm->sizes[ch[i].l + 1], vo = v.sizes[i + 1];
        float *w = mm->params + mm->w_off[ch[i].l], *b = mm->params + mm->b_off[ch[i].l];
        for (uint32_t k = 0; k < in; k++)
            memcpy(w + (size_t)k * out, v.w[i] + (size_t)k * vo, out * sizeof(float));
        memcpy(b, v.b[i], out * sizeof(float));
        if (i + 1 == n && vo == out + extra)
            for (uint32_t j = 0; j < extra; j++)
                p->params[p->log_std_off + j] = v.b[i][out + j];
    }
    rly_mlp_view_fini(&v);
    if (p->spec.normalize_obs)
        rly_warn(MOD,
                 "%s: the exported first layer already includes its observation normalisation; "
                 "with normalize_obs the learner's statistics restart from identity",
                 what);
    return RELAY_OK;
}

/* export_model builds one chain of p as a model; the ONNX bytes are kept in *bytes if non-NULL. */
static relay_err export_model(const relay_policy *p, rly_policy_chain which, relay_model **out,
                              uint8_t **keep, size_t *keep_len)
{
    uint8_t *b = NULL;
    size_t n = 0;
    relay_err e = rly_policy_export_onnx(p, which, &b, &n);
    if (!e)
        e = relay_model_from_onnx(b, n, out);
    if (!e && keep) {
        *keep = b;
        *keep_len = n;
        b = NULL;
    }
    free(b);
    return e;
}

relay_err rly_policy_export_models(const relay_policy *p, relay_model **pi, relay_model **vf)
{
    if (!p || !pi || !vf) {
        rly_error(MOD, "export_models: NULL argument");
        return RELAY_EINVAL;
    }
    *pi = *vf = NULL;
    relay_err e = export_model(p, RLY_CHAIN_PI, pi, NULL, NULL);
    if (!e)
        e = export_model(p, RLY_CHAIN_VF, vf, NULL, NULL);
    if (e) {
        relay_model_free(*pi);
        *pi = NULL;
    }
    return e;
}

/* ---- configuration -------------------------------------------------------------------------- */

relay_err rly_learner_config_init(rly_learner_config *c, const relay_env_def *env,
                                  uint32_t n_streams)
{
    if (!c) {
        rly_error(MOD, "config_init: NULL config");
        return RELAY_EINVAL;
    }
    memset(c, 0, sizeof *c);
    if (!env || relay_ppo_config_zoo(&c->ppo, env->name) != RELAY_OK)
        relay_ppo_config_default(&c->ppo);
    c->env = env;
    c->n_streams = n_streams;
    c->n_steps = c->ppo.n_steps;
    return RELAY_OK;
}

/* fill_spaces sets the space-derived fields of s from env, keeping the architecture. */
static relay_err fill_spaces(relay_policy_spec *s, const relay_env_def *env)
{
    relay_space obs, act;
    memset(&obs, 0, sizeof obs);
    memset(&act, 0, sizeof act);
    env->spaces(&obs, &act);
    relay_policy_spec t;
    relay_err e = relay_policy_spec_from_spaces(&t, &obs, &act);
    if (e)
        return e;
    s->obs_dim = t.obs_dim;
    s->discrete = t.discrete;
    s->n_actions = t.n_actions;
    s->act_dim = t.act_dim;
    memcpy(s->act_low, t.act_low, sizeof s->act_low);
    memcpy(s->act_high, t.act_high, sizeof s->act_high);
    return RELAY_OK;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void *learner_main(void *arg);

/* resume loads the checkpoint at path into the new learner (before its thread starts). */
static relay_err resume(rly_learner *l, const char *path)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    relay_err e = rly_ckpt_read_file(path, &bytes, &len);
    rly_ckpt_counters c;
    if (!e)
        e = rly_ckpt_decode(bytes, len, path, l->ppo, &c, &l->resume_extra, &l->resume_extra_len);
    free(bytes);
    if (e) {
        rly_error(MOD, "cannot resume from %s: %s", path, relay_strerror(e));
        return e;
    }
    if (c.n_envs != l->n_streams || c.n_steps != l->n_steps)
        rly_warn(MOD,
                 "resuming %s: it was written with %u streams x %u steps, this learner uses "
                 "%u x %u (training continues, but not as the original run would have)",
                 path, c.n_envs, c.n_steps, l->n_streams, l->n_steps);
    l->start_version = c.version;
    l->wall_offset = c.wall_s;
    rly_learner_stats *st = &l->st;
    st->steps_consumed = c.steps_consumed;
    st->steps_received = c.steps_received;
    st->steps_stale = c.steps_stale;
    st->steps_discarded = c.steps_discarded;
    st->trajs_received = c.trajs_received;
    st->trajs_stale = c.trajs_stale;
    st->episodes = c.episodes;
    st->updates = c.updates;
    st->mean_return_100 = c.mean_return_100;
    st->last_return = c.last_return;
    memcpy(l->rets, c.rets, sizeof l->rets);
    if (st->steps_consumed >= l->cfg.ppo.total_timesteps)
        st->done = true;
    l->resume_ep = c.ep; /* applied once the streams exist */
    l->resume_n_ep = c.n_ep;
    if (c.ep && c.n_ep != l->n_streams) {
        rly_warn(MOD,
                 "resuming %s: it holds the episodes in progress of %u streams, this learner has "
                 "%u; the first returns after the resume are partial",
                 path, c.n_ep, l->n_streams);
        free(l->resume_ep);
        l->resume_ep = NULL;
        l->resume_n_ep = 0;
    }
    rly_info(MOD, "resumed from %s: version %lld, %u updates, %llu steps", path,
             (long long)c.version, c.updates, (unsigned long long)c.steps_consumed);
    return RELAY_OK;
}

static void streams_free(rly_learner *l)
{
    if (!l->streams)
        return;
    for (uint32_t i = 0; i < l->n_streams; i++) {
        stream *s = &l->streams[i];
        for (uint32_t k = 0; k < s->n_pieces; k++)
            relay_traj_free(s->pieces[k].t);
        free(s->pieces);
    }
    free(l->streams);
    l->streams = NULL;
}

relay_err rly_learner_new(const rly_learner_config *cfg, rly_learner **out)
{
    if (!cfg || !out) {
        rly_error(MOD, "new: NULL argument");
        return RELAY_EINVAL;
    }
    *out = NULL;
    if (!cfg->publish) {
        rly_error(MOD, "new: a publish callback is required");
        return RELAY_ECONFIG;
    }
    if (cfg->n_streams == 0 || cfg->n_streams > 65536) {
        rly_error(MOD, "new: n_streams %u out of range 1..65536", cfg->n_streams);
        return RELAY_ECONFIG;
    }
    rly_learner *l = calloc(1, sizeof *l);
    if (!l)
        return RELAY_ENOMEM;
    l->cfg = *cfg;
    relay_ppo_config *pc = &l->cfg.ppo;
    relay_err e = RELAY_OK;
    if (cfg->stream_actors) {
        if (cfg->envs_per_actor == 0 ||
            (uint64_t)cfg->n_stream_actors * cfg->envs_per_actor != cfg->n_streams) {
            rly_error(MOD, "new: %u stream actors x %u envs does not make %u streams",
                      cfg->n_stream_actors, cfg->envs_per_actor, cfg->n_streams);
            free(l);
            return RELAY_ECONFIG;
        }
        l->actors = malloc(cfg->n_stream_actors * sizeof *l->actors);
        if (!l->actors) {
            free(l);
            return RELAY_ENOMEM;
        }
        memcpy(l->actors, cfg->stream_actors, cfg->n_stream_actors * sizeof *l->actors);
        l->cfg.stream_actors = NULL; /* the copy above is the one used */
    }
    if (pc->policy.obs_dim == 0) {
        if (!cfg->env || !cfg->env->spaces) {
            rly_error(MOD, "new: no policy spec and no env to derive it from");
            free(l->actors);
            free(l);
            return RELAY_ECONFIG;
        }
        if ((e = fill_spaces(&pc->policy, cfg->env))) {
            free(l->actors);
            free(l);
            return e;
        }
    }
    l->n_streams = cfg->n_streams;
    l->n_steps = cfg->n_steps ? cfg->n_steps : pc->n_steps;
    pc->n_envs = l->n_streams;
    pc->n_steps = l->n_steps;
    l->obs_dim = pc->policy.obs_dim;
    l->discrete = pc->policy.discrete;
    l->n_actions = pc->policy.discrete ? pc->policy.n_actions : 0;
    l->act_dim = pc->policy.discrete ? 1 : pc->policy.act_dim;
    l->q_cap = cfg->queue_cap ? cfg->queue_cap : RLY_LEARNER_QUEUE_DEFAULT(l->n_streams);
    if (l->cfg.push_timeout_ns == 0)
        l->cfg.push_timeout_ns = 5 * RLY_NS_PER_S;
    l->version = -1;
    rly_mutex_init(&l->mu);
    rly_cond_init(&l->cv_in);
    rly_cond_init(&l->cv_space);
    rly_cond_init(&l->cv_state);
    l->st.version = -1;
    if ((e = relay_ppo_new(pc, &l->ppo)) ||
        (e = relay_rollout_new(&pc->policy, l->n_streams, l->n_steps, &l->ro)))
        goto fail;
    l->ppo->cancel = &l->cancel;
    if (cfg->init_pi && !cfg->resume_path &&
        (e = rly_policy_load_pi(relay_ppo_policy(l->ppo), cfg->init_pi, "--init-model")))
        goto fail;
    if (cfg->resume_path && (e = resume(l, cfg->resume_path)))
        goto fail;
    l->cfg.resume_path = NULL;
    e = RELAY_ENOMEM;
    l->last_values = calloc(l->n_streams, sizeof(float));
    l->streams = calloc(l->n_streams, sizeof(stream));
    l->q = calloc(l->q_cap, sizeof(relay_traj *));
    l->batch = calloc(l->q_cap, sizeof(relay_traj *));
    l->q_tags = calloc(l->q_cap, sizeof(uint64_t));
    l->batch_tags = calloc(l->q_cap, sizeof(uint64_t));
    l->q_fate = calloc(l->q_cap, 1);
    l->batch_fate = calloc(l->q_cap, 1);
    if (!l->last_values || !l->streams || !l->q || !l->batch || !l->q_tags || !l->batch_tags ||
        !l->q_fate || !l->batch_fate)
        goto fail;
    if (cfg->pooled && (e = rly_pool_init(&l->pool, cfg->on_fate, cfg->on_fate_ctx)))
        goto fail;
    /* A stream's episode in progress continues where the checkpoint left it (fixed layout: the
       slot is the same stream; found on first sight by actor and env id as usual). */
    for (uint32_t i = 0; l->resume_ep && !cfg->pooled && i < l->resume_n_ep; i++) {
        stream *s = &l->streams[i];
        s->restored = l->resume_ep[i].known;
        s->ep_id = l->resume_ep[i].ep_id;
        s->ep_open = l->resume_ep[i].open;
        s->ep_sum = l->resume_ep[i].ep_sum;
    }
    free(l->resume_ep);
    l->resume_ep = NULL;
    l->t0 = rly_now_ns();
    l->running = true;
    if ((e = rly_thread_start(&l->th, learner_main, l, "rly-learner"))) {
        l->running = false;
        goto fail;
    }
    *out = l;
    return RELAY_OK;
fail:
    rly_learner_free(l);
    return e;
}

void rly_learner_stop(rly_learner *l)
{
    if (!l)
        return;
    atomic_store(&l->cancel, true);
    rly_mutex_lock(&l->mu);
    l->stopping = true;
    rly_cond_broadcast(&l->cv_in);
    rly_cond_broadcast(&l->cv_space);
    rly_cond_broadcast(&l->cv_state);
    rly_mutex_unlock(&l->mu);
    if (l->running) {
        rly_thread_join(l->th);
        l->running = false;
    }
    rly_mutex_lock(&l->mu);
    l->joined = true;
    for (uint32_t i = 0; i < l->q_len; i++) {
        uint32_t k = (l->q_head + i) % l->q_cap;
        relay_traj *t = l->q[k];
        if (l->cfg.pooled && l->cfg.on_fate)
            l->cfg.on_fate(l->cfg.on_fate_ctx, l->q_tags[k], t ? RLY_FATE_UNUSED : l->q_fate[k],
                           t ? t->len : 0);
        if (!t)
            continue;
        l->st.steps_discarded += t->len;
        relay_traj_free(t);
    }
    l->q_len = 0;
    rly_mutex_unlock(&l->mu);
    /* the pool is queued data too: its rows not learned are reported UNUSED now, so a caller
       knows every fate once stop returns (the thread is joined: the pool is ours) */
    if (l->cfg.pooled)
        rly_pool_fini(&l->pool); /* idempotent: rly_learner_free calls it again */
}

void rly_learner_free(rly_learner *l)
{
    if (!l)
        return;
    rly_learner_stop(l);
    streams_free(l);
    free(l->actors);
    free(l->q);
    free(l->batch);
    free(l->q_tags);
    free(l->batch_tags);
    free(l->q_fate);
    free(l->batch_fate);
    if (l->cfg.pooled)
        rly_pool_fini(&l->pool);
    free(l->last_values);
    free(l->pi_onnx);
    free(l->resume_extra);
    free(l->resume_ep);
    relay_rollout_free(l->ro);
    relay_ppo_free(l->ppo);
    rly_cond_fini(&l->cv_in);
    rly_cond_fini(&l->cv_space);
    rly_cond_fini(&l->cv_state);
    rly_mutex_fini(&l->mu);
    free(l);
}

relay_policy *rly_learner_policy(rly_learner *l)
{
    return l && !l->running ? relay_ppo_policy(l->ppo) : NULL;
}

/* ---- intake --------------------------------------------------------------------------------- */

static int aux_index(const relay_step_spec *s, const char *name)
{
    for (uint32_t i = 0; i < s->n_aux; i++)
        if (!strcmp(s->aux_names[i], name))
            return (int)i;
    return -1;
}

static int64_t spec_numel(uint32_t rank, const int64_t *shape)
{
    int64_t n = 1;
    for (uint32_t i = 0; i < rank; i++)
        n *= shape[i];
    return n;
}

static relay_err check_traj(const rly_learner *l, const relay_traj *t)
{
    const relay_step_spec *s = &t->spec;
    if (s->obs_dtype != RELAY_F32 || spec_numel(s->obs_rank, s->obs_shape) != l->obs_dim) {
        rly_warn(MOD, "push: observations must be %u float32 values", l->obs_dim);
        return RELAY_ESHAPE;
    }
    if (s->act_dtype != (l->discrete ? RELAY_I32 : RELAY_F32) ||
        spec_numel(s->act_rank, s->act_shape) != l->act_dim) {
        rly_warn(MOD, "push: actions must be %u %s values", l->act_dim,
                 l->discrete ? "int32" : "float32");
        return RELAY_ESHAPE;
    }
    if (s->mask_dtype != RELAY_DTYPE_INVALID &&
        (!l->discrete || s->mask_dtype != RELAY_U8 ||
         spec_numel(s->mask_rank, s->mask_shape) != l->n_actions)) {
        rly_warn(MOD, "push: a mask must be %u uint8 values (discrete actions only)", l->n_actions);
        return RELAY_ESHAPE;
    }
    static const char *const need[] = {"logp", "value", "bootstrap", "cut"};
    for (int i = 0; i < 4; i++)
        if (aux_index(s, need[i]) < 0) {
            rly_warn(MOD, "push: trajectory has no auxiliary value \"%s\"", need[i]);
            return RELAY_EINVAL;
        }
    if (t->len > 0 && (!t->obs || !t->act || !t->reward || !t->terminated || !t->truncated ||
                       !t->aux || !t->ts)) {
        rly_warn(MOD, "push: trajectory columns missing");
        return RELAY_EINVAL;
    }
    return RELAY_OK;
}

static relay_err push_entry(rly_learner *l, relay_traj *t, uint64_t tag, rly_fate fate);

relay_err rly_learner_push(rly_learner *l, relay_traj *t)
{
    return rly_learner_push_tagged(l, t, 0);
}

relay_err rly_learner_push_tagged(rly_learner *l, relay_traj *t, uint64_t tag)
{
    if (!l || !t) {
        rly_error(MOD, "push: NULL argument");
        return RELAY_EINVAL;
    }
    relay_err e = check_traj(l, t);
    if (e)
        return e;
    return push_entry(l, t, tag, RLY_FATE_LEARNED);
}

relay_err rly_learner_push_mark(rly_learner *l, uint64_t tag, rly_fate fate)
{
    if (!l || !l->cfg.pooled) {
        rly_error(MOD, "push_mark: NULL learner or not pooled");
        return RELAY_EINVAL;
    }
    return push_entry(l, NULL, tag, fate);
}

static relay_err push_entry(rly_learner *l, relay_traj *t, uint64_t tag, rly_fate fate)
{
    int64_t deadline =
        l->cfg.push_timeout_ns > 0 ? rly_now_ns() + l->cfg.push_timeout_ns : INT64_MIN;
    rly_mutex_lock(&l->mu);
    while (!l->stopping && l->q_len == l->q_cap) {
        if (deadline == INT64_MIN || !rly_cond_wait_until(&l->cv_space, &l->mu, deadline)) {
            if (l->q_len == l->q_cap && !l->stopping) {
                rly_mutex_unlock(&l->mu);
                return RELAY_EFULL;
            }
        }
    }
    if (l->stopping) {
        rly_mutex_unlock(&l->mu);
        return RELAY_ESHUTDOWN;
    }
    uint32_t slot = (l->q_head + l->q_len) % l->q_cap;
    l->q[slot] = t;
    l->q_tags[slot] = tag;
    l->q_fate[slot] = (uint8_t)fate;
    l->q_len++;
    if (t) {
        l->st.trajs_received++;
        l->st.steps_received += t->len;
    }
    rly_cond_broadcast(&l->cv_in);
    rly_mutex_unlock(&l->mu);
    return RELAY_OK;
}

/* ---- learner thread ------------------------------------------------------------------------- */

/* count_locked adds to a counter of st under the mutex. */
static void count_add(rly_learner *l, uint64_t *ctr, uint64_t n)
{
    rly_mutex_lock(&l->mu);
    *ctr += n;
    rly_mutex_unlock(&l->mu);
}

static stream *find_stream(rly_learner *l, relay_id actor, int64_t env_id)
{
    if (l->actors) {
        uint32_t epa = l->cfg.envs_per_actor;
        for (uint32_t k = 0; k < l->cfg.n_stream_actors; k++) {
            if (!relay_id_eq(l->actors[k], actor))
                continue;
            if (env_id < 0 && epa == 1)
                env_id = 0; /* request-path data (no env index) of a one-stream actor */
            uint64_t slot = (uint64_t)k * epa + (uint64_t)env_id;
            if (env_id < 0 || (uint64_t)env_id >= epa || slot >= l->n_streams)
                return NULL;
            stream *s = &l->streams[slot];
            if (!s->used) {
                s->used = true;
                s->actor = actor;
                s->env_id = env_id;
                if (!s->restored)
                    s->ep_id = INT64_MIN;
            }
            return s;
        }
        return NULL;
    }
    for (uint32_t i = 0; i < l->n_streams; i++) {
        stream *s = &l->streams[i];
        if (!s->used) {
            s->used = true;
            s->actor = actor;
            s->env_id = env_id;
            s->ep_id = INT64_MIN;
            return s;
        }
        if (s->env_id == env_id && relay_id_eq(s->actor, actor))
            return s;
    }
    return NULL;
}

static float aux_at(const relay_traj *t, uint32_t row, int col)
{
    return t->aux[(size_t)row * t->spec.n_aux + (size_t)col];
}

static void record_return(rly_learner *l, float r);

/* account_episode sums t's rewards into its stream's episode and records finished returns. */
static void account_episode(rly_learner *l, stream *s, const relay_traj *t, int a_cut)
{
    if (s->ep_id == INT64_MIN || t->episode > s->ep_id) {
        s->ep_id = t->episode;
        s->ep_open = true;
        s->ep_sum = 0;
    } else if (t->episode < s->ep_id || !s->ep_open) {
        return; /* a late piece of an episode already counted */
    }
    for (uint32_t i = 0; i < t->len; i++)
        s->ep_sum += t->reward[i];
    uint32_t last = t->len - 1;
    bool ended = t->terminated[last] || (t->truncated[last] && aux_at(t, last, a_cut) == 0.0f);
    if (!ended)
        return;
    s->ep_open = false;
    record_return(l, (float)s->ep_sum);
}

static void record_return(rly_learner *l, float r)
{
    rly_mutex_lock(&l->mu);
    rly_learner_stats *st = &l->st;
    l->rets[st->episodes % RLY_LEARNER_RET_WINDOW] = r;
    st->episodes++;
    st->last_return = r;
    uint64_t have = st->episodes < RLY_LEARNER_RET_WINDOW ? st->episodes : RLY_LEARNER_RET_WINDOW;
    double sum = 0;
    for (uint64_t j = 0; j < have; j++)
        sum += l->rets[j];
    st->mean_return_100 = (float)(sum / (double)have);
    rly_mutex_unlock(&l->mu);
    if (l->cfg.on_episode)
        l->cfg.on_episode(l->cfg.on_episode_ctx, r);
}

static bool stale(const rly_learner *l, int64_t v)
{
    return v < l->version - (int64_t)l->cfg.policy_lag;
}

/* ingest_pooled queues t (or reports a mark) in arrival order (pooled mode). */
static void ingest_pooled(rly_learner *l, relay_traj *t, uint64_t tag, rly_fate mark, bool done)
{
    rly_fate_fn fate = l->cfg.on_fate;
    void *fctx = l->cfg.on_fate_ctx;
    if (!t) {
        rly_pool_skip(&l->pool, tag);
        if (fate)
            fate(fctx, tag, mark, 0);
        return;
    }
    float ret;
    if (rly_pool_episode(&l->pool, t, &ret))
        record_return(l, ret);
    rly_fate f = RLY_FATE_LEARNED;
    if (t->len == 0) {
        f = RLY_FATE_DISCARDED;
    } else if (stale(l, t->policy_version)) {
        f = RLY_FATE_STALE;
        rly_mutex_lock(&l->mu);
        l->st.trajs_stale++;
        l->st.steps_stale += t->len;
        rly_mutex_unlock(&l->mu);
    } else if (done || t->policy_version > l->version) {
        f = done ? RLY_FATE_UNUSED : RLY_FATE_DISCARDED;
        count_add(l, &l->st.steps_discarded, t->len);
    } else if (rly_pool_push(&l->pool, t, tag) != RELAY_OK) {
        rly_error(MOD, "out of memory queuing a trajectory; dropped");
        f = RLY_FATE_DISCARDED;
        count_add(l, &l->st.steps_discarded, t->len);
    }
    if (f == RLY_FATE_LEARNED)
        return;
    rly_pool_skip(&l->pool, tag);
    if (fate)
        fate(fctx, tag, f, t->len);
    relay_traj_free(t);
}

static void ingest(rly_learner *l, relay_traj *t, bool done)
{
    if (t->len == 0) {
        relay_traj_free(t);
        return;
    }
    stream *s = find_stream(l, t->actor, t->env_id);
    if (!s) {
        rly_warn(MOD, "dropping a trajectory of env %lld: more than %u streams",
                 (long long)t->env_id, l->n_streams);
        count_add(l, &l->st.steps_discarded, t->len);
        relay_traj_free(t);
        return;
    }
    piece p = {.t = t,
               .off = 0,
               .a_logp = aux_index(&t->spec, "logp"),
               .a_value = aux_index(&t->spec, "value"),
               .a_boot = aux_index(&t->spec, "bootstrap"),
               .a_cut = aux_index(&t->spec, "cut")};
    if (!l->actors)
        account_episode(l, s, t, p.a_cut); /* no fixed layout: count in arrival order */
    if (stale(l, t->policy_version)) {
        if (l->actors)
            account_episode(l, s, t, p.a_cut); /* its rewards still belong to the episode */
        rly_mutex_lock(&l->mu);
        l->st.trajs_stale++;
        l->st.steps_stale += t->len;
        rly_mutex_unlock(&l->mu);
        relay_traj_free(t);
        return;
    }
    if (done || t->policy_version > l->version) {
        if (!done && !l->warned_future) {
            rly_warn(MOD, "dropping data of version %lld, newer than the learner's %lld",
                     (long long)t->policy_version, (long long)l->version);
            l->warned_future = true;
        }
        count_add(l, &l->st.steps_discarded, t->len);
        relay_traj_free(t);
        return;
    }
    if (s->n_pieces == s->cap_pieces) {
        uint32_t nc = s->cap_pieces ? 2 * s->cap_pieces : 16;
        piece *np = realloc(s->pieces, nc * sizeof *np);
        if (!np) {
            rly_error(MOD, "out of memory queuing a trajectory; dropped");
            count_add(l, &l->st.steps_discarded, t->len);
            relay_traj_free(t);
            return;
        }
        s->pieces = np;
        s->cap_pieces = nc;
    }
    s->pieces[s->n_pieces++] = p;
    s->rows += t->len;
}

static int piece_cmp(const void *a, const void *b)
{
    const relay_traj *x = ((const piece *)a)->t, *y = ((const piece *)b)->t;
    if (x->episode != y->episode)
        return x->episode < y->episode ? -1 : 1;
    int64_t tx = x->len ? x->ts[0] : x->start_ns, ty = y->len ? y->ts[0] : y->start_ns;
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return x->policy_version < y->policy_version ? -1 : x->policy_version > y->policy_version;
}

static bool ready(const rly_learner *l)
{
    if (l->cfg.pooled)
        return l->pool.rows >= (uint64_t)l->n_streams * l->n_steps;
    for (uint32_t i = 0; i < l->n_streams; i++)
        if (!l->streams[i].used || l->streams[i].rows < l->n_steps)
            return false;
    return true;
}

/* fill_stream moves the first n_steps rows of stream e into the rollout. */
static relay_err fill_stream(rly_learner *l, uint32_t e)
{
    stream *s = &l->streams[e];
    qsort(s->pieces, s->n_pieces, sizeof *s->pieces, piece_cmp);
    uint32_t taken = 0, k = 0;
    size_t ob = (size_t)l->obs_dim * sizeof(float);
    size_t ab = l->discrete ? sizeof(int32_t) : (size_t)l->act_dim * sizeof(float);
    size_t mb = l->n_actions;
    while (taken < l->n_steps) {
        piece *p = &s->pieces[k];
        const relay_traj *t = p->t;
        uint32_t r = p->off;
        bool last_row = taken + 1 == l->n_steps;
        bool piece_end = r + 1 == t->len;
        /* the row that follows in this stream, if any, when it continues the same episode */
        const piece *np = piece_end && k + 1 < s->n_pieces ? &s->pieces[k + 1] : NULL;
        bool cont = !piece_end || (np && np->t->episode == t->episode);
        bool term = t->terminated[r], trunc = t->truncated[r] && !term;
        bool cut = trunc && aux_at(t, r, p->a_cut) != 0.0f;
        float boot = aux_at(t, r, p->a_boot);
        /* a cut row followed by its continuation (or ending the batch) is not an episode end */
        bool as_trunc = trunc && !(cut && (cont || last_row));
        const float *obs = (const float *)(t->obs + (size_t)r * ob);
        const void *act = t->act + (size_t)r * ab;
        const uint8_t *mask = t->mask ? t->mask + (size_t)r * mb : NULL;
        relay_err err =
            relay_rollout_add_env(l->ro, e, obs, act, mask, aux_at(t, r, p->a_logp),
                                  aux_at(t, r, p->a_value), t->reward[r], term, as_trunc, boot);
        if (err)
            return err;
        if (last_row) {
            float lv;
            if (term)
                lv = 0.0f;
            else if (trunc)
                lv = boot;
            else if (!piece_end)
                lv = aux_at(t, r + 1, p->a_value);
            else if (cont)
                lv = aux_at(np->t, np->off, np->a_value);
            else
                lv = aux_at(t, r, p->a_value); /* no successor known: V(s) stands in */
            l->last_values[e] = lv;
        }
        taken++;
        p->off++;
        if (p->off == t->len) {
            /* With a fixed stream layout, episodes are counted as their pieces are consumed,
               in stream order, so the statistics do not depend on arrival order either. */
            if (l->actors)
                account_episode(l, s, t, p->a_cut);
            k++;
        }
    }
    /* drop consumed pieces, keep the rest in order */
    for (uint32_t i = 0; i < k; i++)
        relay_traj_free(s->pieces[i].t);
    memmove(s->pieces, s->pieces + k, (s->n_pieces - k) * sizeof *s->pieces);
    s->n_pieces -= k;
    s->rows -= l->n_steps;
    return RELAY_OK;
}

/* purge drops pieces whose version fell out of the accepted window. */
static void purge(rly_learner *l)
{
    uint64_t trajs = 0, rows = 0;
    for (uint32_t e = 0; e < l->n_streams; e++) {
        stream *s = &l->streams[e];
        uint32_t w = 0;
        for (uint32_t i = 0; i < s->n_pieces; i++) {
            piece *p = &s->pieces[i];
            if (stale(l, p->t->policy_version)) {
                if (l->actors)
                    account_episode(l, s, p->t, p->a_cut);
                trajs++;
                rows += p->t->len - p->off;
                s->rows -= p->t->len - p->off;
                relay_traj_free(p->t);
            } else {
                s->pieces[w++] = *p;
            }
        }
        s->n_pieces = w;
    }
    if (trajs) {
        rly_mutex_lock(&l->mu);
        l->st.trajs_stale += trajs;
        l->st.steps_stale += rows;
        rly_mutex_unlock(&l->mu);
    }
}

/* publish exports the current policy and hands version v to the callback. */
static relay_err publish(rly_learner *l, int64_t v)
{
    const relay_policy *p = relay_ppo_policy(l->ppo);
    relay_model *pi = NULL, *vf = NULL;
    uint8_t *bytes = NULL;
    size_t len = 0;
    relay_err e = export_model(p, RLY_CHAIN_PI, &pi, &bytes, &len);
    if (!e)
        e = export_model(p, RLY_CHAIN_VF, &vf, NULL, NULL);
    if (e) {
        relay_model_free(pi);
        free(bytes);
        rly_error(MOD, "exporting version %lld failed: %s", (long long)v, relay_strerror(e));
        return e;
    }
    rly_mutex_lock(&l->mu);
    free(l->pi_onnx);
    l->pi_onnx = bytes;
    l->pi_onnx_len = len;
    rly_mutex_unlock(&l->mu);
    const float *ls = p->spec.discrete ? NULL : p->params + p->log_std_off;
    uint32_t nls = p->spec.discrete ? 0 : p->spec.act_dim;
    l->version = v;
    relay_err pe = l->cfg.publish(l->cfg.publish_ctx, v, pi, vf, ls, nls);
    if (pe)
        rly_warn(MOD, "publish of version %lld failed: %s", (long long)v, relay_strerror(pe));
    rly_mutex_lock(&l->mu);
    l->st.version = v;
    rly_cond_broadcast(&l->cv_state);
    rly_mutex_unlock(&l->mu);
    return RELAY_OK;
}

static relay_err update(rly_learner *l)
{
    int64_t t0 = rly_now_ns();
    relay_rollout_clear(l->ro);
    relay_err e = RELAY_OK;
    if (l->cfg.pooled)
        e = rly_pool_fill(&l->pool, l->ro, l->n_streams, l->n_steps, l->obs_dim, l->discrete,
                          l->act_dim, l->n_actions, l->last_values);
    for (uint32_t s = 0; s < l->n_streams && !e && !l->cfg.pooled; s++)
        e = fill_stream(l, s);
    relay_ppo_metrics m;
    if (!e)
        e = relay_ppo_normalize_rewards(l->ppo, l->ro);
    if (!e)
        e = l->cfg.vtrace
                ? rly_vtrace(l->ro, relay_ppo_policy(l->ppo), l->last_values, l->cfg.ppo.gamma,
                             l->cfg.ppo.gae_lambda, l->cfg.rho_bar > 0 ? l->cfg.rho_bar : 1.0f,
                             l->cfg.c_bar > 0 ? l->cfg.c_bar : 1.0f)
                : relay_rollout_finish(l->ro, l->last_values, l->cfg.ppo.gamma,
                                       l->cfg.ppo.gae_lambda);
    if (!e)
        e = relay_ppo_update(l->ppo, l->ro, &m);
    if (e == RELAY_ECANCELED) {
        l->torn = true; /* rows consumed, weights part-updated: no checkpoint of this state */
        return e;       /* stopping: no new version, not a failure */
    }
    if (e) {
        rly_error(MOD, "update %lld failed: %s", (long long)l->version, relay_strerror(e));
        return e;
    }
    rly_mutex_lock(&l->mu);
    l->st.updates++;
    l->st.last = m;
    l->st.steps_consumed += (uint64_t)l->n_streams * l->n_steps;
    if (l->st.steps_consumed >= l->cfg.ppo.total_timesteps)
        l->st.done = true;
    rly_mutex_unlock(&l->mu);
    if ((e = publish(l, l->version + 1)))
        return e;
    if (l->cfg.pooled) {
        uint64_t trajs = 0;
        uint64_t rows = rly_pool_purge(&l->pool, l->version - (int64_t)l->cfg.policy_lag, &trajs);
        uint64_t tag;
        uint32_t row;
        rly_pool_cursor(&l->pool, &tag, &row);
        rly_mutex_lock(&l->mu);
        l->st.trajs_stale += trajs;
        l->st.steps_stale += rows;
        l->st.cursor_tag = tag;
        l->st.cursor_row = row;
        rly_mutex_unlock(&l->mu);
    } else {
        purge(l);
    }
    double dt = (double)(rly_now_ns() - t0) * 1e-9;
    rly_mutex_lock(&l->mu);
    l->st.update_s += dt;
    l->st.last_update_s = dt;
    rly_mutex_unlock(&l->mu);
    if (l->cfg.on_update) {
        rly_learner_stats st;
        rly_learner_stats_get(l, &st);
        l->cfg.on_update(l->cfg.on_update_ctx, &st);
    }
    return RELAY_OK;
}

static void fail(rly_learner *l, relay_err e)
{
    rly_mutex_lock(&l->mu);
    if (!l->st.error)
        l->st.error = e;
    rly_cond_broadcast(&l->cv_state);
    rly_mutex_unlock(&l->mu);
}

static relay_err save_now(rly_learner *l, const char *path, const void *extra, size_t n);

/* serve_save performs a pending checkpoint request (learner thread, mutex held on entry/exit). */
static void serve_save(rly_learner *l)
{
    if (!l->save_pending)
        return;
    const char *path = l->save_path;
    const void *extra = l->save_extra;
    size_t n = l->save_extra_len;
    rly_mutex_unlock(&l->mu);
    relay_err e = save_now(l, path, extra, n);
    rly_mutex_lock(&l->mu);
    l->save_result = e;
    l->save_pending = false;
    rly_cond_broadcast(&l->cv_state);
}

static void *learner_main(void *arg)
{
    rly_learner *l = arg;
    tls_learner = l;
    relay_err e = publish(l, l->start_version);
    bool failed = false;
    if (e) {
        fail(l, e);
        goto out;
    }
    for (;;) {
        rly_mutex_lock(&l->mu);
        while (!l->stopping && l->q_len == 0 && !l->save_pending)
            rly_cond_wait(&l->cv_in, &l->mu);
        serve_save(l);
        if (l->stopping) {
            rly_mutex_unlock(&l->mu);
            break;
        }
        if (l->q_len == 0) {
            rly_mutex_unlock(&l->mu);
            continue;
        }
        uint32_t n = l->q_len;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t k = (l->q_head + i) % l->q_cap;
            l->batch[i] = l->q[k];
            l->batch_tags[i] = l->q_tags[k];
            l->batch_fate[i] = l->q_fate[k];
        }
        l->q_head = (l->q_head + n) % l->q_cap;
        l->q_len = 0;
        bool done = l->st.done || failed;
        rly_cond_broadcast(&l->cv_space);
        rly_mutex_unlock(&l->mu);
        for (uint32_t i = 0; i < n; i++) {
            if (l->cfg.pooled)
                ingest_pooled(l, l->batch[i], l->batch_tags[i], (rly_fate)l->batch_fate[i], done);
            else
                ingest(l, l->batch[i], done);
            if (!done && ready(l)) {
                if ((e = update(l)) == RELAY_ECANCELED) {
                    failed = true; /* stopping: leave the loop without an error */
                } else if (e) {
                    fail(l, e);
                    failed = true;
                }
                rly_mutex_lock(&l->mu);
                done = l->st.done || failed;
                rly_mutex_unlock(&l->mu);
            }
        }
        if (done)
            rly_cond_broadcast(&l->cv_state);
    }
out:
    rly_mutex_lock(&l->mu);
    l->exited = true; /* from here on checkpoint requests are served by their caller */
    serve_save(l);
    rly_cond_broadcast(&l->cv_state);
    rly_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- checkpoints ------------------------------------------------------------------------------
 */

/* save_now writes the checkpoint; only on the learner thread or once it has been joined. */
static relay_err save_now(rly_learner *l, const char *path, const void *extra, size_t n)
{
    /* Pooled (the distributed server) keeps saving: its cursor was not advanced by the torn
       update, so a resumed server learns those rows again (on the part-updated weights). */
    if (l->torn && !l->cfg.pooled) {
        rly_warn(MOD,
                 "checkpoint %s not written: the stop cancelled an update part way, so the "
                 "learner's state is not one an uninterrupted run passes through (the previous "
                 "checkpoint stays)",
                 path);
        return RELAY_ESTATE;
    }
    rly_ckpt_counters c;
    memset(&c, 0, sizeof c);
    if (!l->cfg.pooled && l->streams) {
        c.ep = calloc(l->n_streams, sizeof *c.ep);
        if (!c.ep)
            return RELAY_ENOMEM;
        c.n_ep = l->n_streams;
        for (uint32_t i = 0; i < l->n_streams; i++) {
            const stream *s = &l->streams[i];
            bool known = s->ep_id != INT64_MIN && (s->used || s->restored);
            c.ep[i] = (rly_ckpt_ep){.known = known,
                                    .open = known && s->ep_open,
                                    .ep_id = known ? s->ep_id : 0,
                                    .ep_sum = known ? s->ep_sum : 0.0};
        }
    }
    rly_mutex_lock(&l->mu);
    const rly_learner_stats *st = &l->st;
    c.steps_consumed = st->steps_consumed;
    c.steps_received = st->steps_received;
    c.steps_stale = st->steps_stale;
    c.steps_discarded = st->steps_discarded;
    c.trajs_received = st->trajs_received;
    c.trajs_stale = st->trajs_stale;
    c.episodes = st->episodes;
    c.updates = st->updates;
    c.mean_return_100 = st->mean_return_100;
    c.last_return = st->last_return;
    memcpy(c.rets, l->rets, sizeof c.rets);
    rly_mutex_unlock(&l->mu);
    c.version = l->version < 0 ? l->start_version : l->version;
    c.wall_s = l->wall_offset + (double)(rly_now_ns() - l->t0) * 1e-9;
    c.n_envs = l->n_streams;
    c.n_steps = l->n_steps;
    c.total_timesteps = l->cfg.ppo.total_timesteps;
    c.seed = l->cfg.ppo.seed;
    uint8_t *bytes = NULL;
    size_t len = 0;
    relay_err e = rly_ckpt_encode(l->ppo, &c, extra, n, &bytes, &len);
    free(c.ep);
    if (!e)
        e = rly_ckpt_write_file(path, bytes, len);
    free(bytes);
    if (e)
        rly_error(MOD, "checkpoint %s not written: %s", path, relay_strerror(e));
    return e;
}

relay_err rly_learner_checkpoint_save(rly_learner *l, const char *path, const void *extra,
                                      size_t extra_len)
{
    if (!l || !path || (extra_len && !extra)) {
        rly_error(MOD, "checkpoint_save: NULL argument");
        return RELAY_EINVAL;
    }
    if (tls_learner == l)
        return save_now(l, path, extra, extra_len); /* from on_update: between updates */
    rly_mutex_lock(&l->mu);
    if (l->joined || l->exited) {
        rly_mutex_unlock(&l->mu);
        return save_now(l, path, extra, extra_len); /* the thread is gone: state is stable */
    }
    while (l->save_busy && !l->stopping)
        rly_cond_wait(&l->cv_state, &l->mu);
    if (l->stopping) {
        rly_mutex_unlock(&l->mu);
        rly_warn(MOD, "checkpoint_save: learner is stopping; save after rly_learner_stop returns");
        return RELAY_ESHUTDOWN;
    }
    l->save_busy = true;
    l->save_path = path;
    l->save_extra = extra;
    l->save_extra_len = extra_len;
    l->save_pending = true;
    rly_cond_broadcast(&l->cv_in);
    /* The learner thread serves the request even when it is stopping or has failed. */
    while (l->save_pending)
        rly_cond_wait(&l->cv_state, &l->mu);
    relay_err e = l->save_result;
    l->save_busy = false;
    rly_cond_broadcast(&l->cv_state);
    rly_mutex_unlock(&l->mu);
    return e;
}

void rly_learner_end(rly_learner *l)
{
    if (!l)
        return;
    rly_mutex_lock(&l->mu);
    l->st.done = true;
    rly_cond_broadcast(&l->cv_state);
    rly_mutex_unlock(&l->mu);
}

relay_policy *rly_learner_current_policy(rly_learner *l)
{
    return l && (tls_learner == l || !l->running) ? relay_ppo_policy(l->ppo) : NULL;
}

relay_err rly_learner_checkpoint_peek(const char *path, rly_learner_ckpt_info *info)
{
    if (!path || !info)
        return RELAY_EINVAL;
    uint8_t *b = NULL;
    size_t n = 0;
    rly_ckpt_counters c;
    relay_err e = rly_ckpt_read_file(path, &b, &n);
    if (!e)
        e = rly_ckpt_peek(b, n, path, &c);
    free(b);
    if (!e) {
        info->version = c.version;
        info->updates = c.updates;
        info->steps_consumed = c.steps_consumed;
        info->episodes = c.episodes;
    }
    return e;
}

relay_err rly_learner_resume_extra(rly_learner *l, const uint8_t **bytes, size_t *len)
{
    if (!l || !bytes || !len) {
        rly_error(MOD, "resume_extra: NULL argument");
        return RELAY_EINVAL;
    }
    *bytes = l->resume_extra;
    *len = l->resume_extra_len;
    return RELAY_OK;
}

/* ---- queries -------------------------------------------------------------------------------- */

void rly_learner_stats_get(rly_learner *l, rly_learner_stats *out)
{
    if (!l || !out)
        return;
    rly_mutex_lock(&l->mu);
    *out = l->st;
    rly_mutex_unlock(&l->mu);
    out->wall_s = l->wall_offset + (double)(rly_now_ns() - l->t0) * 1e-9;
    out->sps = out->wall_s > 0 ? (double)out->steps_consumed / out->wall_s : 0.0;
}

relay_err rly_learner_wait_version(rly_learner *l, int64_t v, int64_t timeout_ns)
{
    if (!l)
        return RELAY_EINVAL;
    int64_t deadline = rly_now_ns() + timeout_ns;
    relay_err e = RELAY_OK;
    rly_mutex_lock(&l->mu);
    while (l->st.version < v) {
        if (l->st.error) {
            e = l->st.error;
            break;
        }
        if (l->stopping) {
            e = RELAY_ESHUTDOWN;
            break;
        }
        if (!rly_cond_wait_until(&l->cv_state, &l->mu, deadline) && l->st.version < v) {
            e = RELAY_ETIMEDOUT;
            break;
        }
    }
    rly_mutex_unlock(&l->mu);
    return e;
}

relay_err rly_learner_wait_done(rly_learner *l, int64_t timeout_ns)
{
    if (!l)
        return RELAY_EINVAL;
    int64_t deadline = rly_now_ns() + timeout_ns;
    relay_err e = RELAY_OK;
    rly_mutex_lock(&l->mu);
    while (!l->st.done) {
        if (l->st.error) {
            e = l->st.error;
            break;
        }
        if (l->stopping) {
            e = RELAY_ESHUTDOWN;
            break;
        }
        if (!rly_cond_wait_until(&l->cv_state, &l->mu, deadline) && !l->st.done) {
            e = RELAY_ETIMEDOUT;
            break;
        }
    }
    rly_mutex_unlock(&l->mu);
    return e;
}

relay_err rly_learner_export_onnx(rly_learner *l, uint8_t **bytes, size_t *len)
{
    if (!l || !bytes || !len) {
        rly_error(MOD, "export_onnx: NULL argument");
        return RELAY_EINVAL;
    }
    *bytes = NULL;
    *len = 0;
    relay_err e = RELAY_OK;
    rly_mutex_lock(&l->mu);
    if (!l->pi_onnx) {
        e = RELAY_ENOMODEL;
    } else if (!(*bytes = malloc(l->pi_onnx_len))) {
        e = RELAY_ENOMEM;
    } else {
        memcpy(*bytes, l->pi_onnx, l->pi_onnx_len);
        *len = l->pi_onnx_len;
    }
    rly_mutex_unlock(&l->mu);
    if (e == RELAY_ENOMODEL)
        rly_warn(MOD, "export_onnx: no version published yet");
    return e;
}
