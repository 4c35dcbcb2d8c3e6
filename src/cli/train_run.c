/*
 * The training driver of `relay train` and relay_train_run: actors step their environments on
 * routers, trajectories flow through the data plane to an in-process learner, and each new policy
 * flows back to every actor as a ModelUpdate message through the dispatcher. Stops when the mean
 * return of the last 100 episodes reaches the target, the step budget or time limit is spent, or
 * the caller's poll returns false; writes config.json, metrics.csv, learning_curve.svg,
 * policy.onnx (and trajectories when a sink is on) into the run directory.
 */
#include "cli/train_run.h"
#include "cli/train_obs.h"
#include "cli/train_extras.h"

#include <errno.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agent/agent.h"
#include "cli/cli_support.h"
#include "cli/files.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/thread.h"
#include "env/env_internal.h"
#include "learn/learner.h"

#define MOD "train"

static const char *const algo_names[] = {"ppo", "reinforce", NULL};
static const char *const sink_names[] = {"none", "arrow", "csv", "binary", NULL};

#define TOFF(f) (offsetof(rly_train_config, train) + offsetof(rly_train_opts, f))
#define TSZ(f) sizeof(((rly_train_opts *)0)->f)

static const rly_cfg_key train_keys[] = {
    {"train.env", RLY_CFG_STR, TOFF(env), TSZ(env), 0, 0, NULL},
    {"train.algo", RLY_CFG_STR_ENUM, TOFF(algo), TSZ(algo), 0, 0, algo_names},
    {"train.actors", RLY_CFG_U32, TOFF(actors), TSZ(actors), 1, RLY_TRAIN_MAX_ACTORS, NULL},
    {"train.envs_per_actor", RLY_CFG_U32, TOFF(envs_per_actor), TSZ(envs_per_actor), 1,
     RLY_TRAIN_MAX_ENVS_PER_ACTOR, NULL},
    {"train.steps", RLY_CFG_U64, TOFF(steps), TSZ(steps), 0, RLY_TRAIN_MAX_STEPS, NULL},
    {"train.seed", RLY_CFG_U64, TOFF(seed), TSZ(seed), 0, UINT64_MAX, NULL},
    {"train.target", RLY_CFG_F32, TOFF(target), TSZ(target), 0, 0, NULL},
    {"train.out", RLY_CFG_STR, TOFF(out), TSZ(out), 0, 0, NULL},
    {"train.sink", RLY_CFG_STR_ENUM, TOFF(sink), TSZ(sink), 0, 0, sink_names},
    {"train.max_seconds", RLY_CFG_U32, TOFF(max_seconds), TSZ(max_seconds), 0,
     RLY_TRAIN_MAX_SECONDS, NULL},
    {"train.policy_lag", RLY_CFG_U32, TOFF(policy_lag), TSZ(policy_lag), 0, 1000, NULL},
    {"train.eval_every", RLY_CFG_U32, TOFF(eval_every), TSZ(eval_every), 0, 1000000000, NULL},
    {"train.eval_episodes", RLY_CFG_U32, TOFF(eval_episodes), TSZ(eval_episodes), 1,
     RLY_EVAL_MAX_EPISODES, NULL},
    {"train.save_every", RLY_CFG_U32, TOFF(save_every), TSZ(save_every), 0, 1000000000, NULL},
    {"train.init_model", RLY_CFG_STR, TOFF(init_model), TSZ(init_model), 0, 0, NULL},
};

void rly_train_config_default(rly_train_config *c)
{
    memset(c, 0, sizeof *c);
    relay_config_default(&c->agent);
    rly_train_opts *o = &c->train;
    snprintf(o->env, sizeof o->env, "CartPole-v1");
    snprintf(o->algo, sizeof o->algo, "ppo");
    snprintf(o->sink, sizeof o->sink, "none");
    o->actors = 2;
    o->envs_per_actor = 0; /* from the zoo's n_envs */
    o->target = NAN;
    o->eval_every = RLY_TRAIN_EVAL_EVERY;
    o->eval_episodes = RLY_TRAIN_EVAL_EPISODES;
    o->save_every = RLY_TRAIN_SAVE_EVERY;
    c->agent.routers = 2;
}

rly_cfg_key *rly_train_keys(size_t *n)
{
    size_t na;
    const rly_cfg_key *ak = rly_agent_config_keys(&na);
    size_t nt = sizeof train_keys / sizeof train_keys[0], nh = rly_hparams_n_keys();
    rly_cfg_key *keys = malloc((na + nt + 2 * nh) * sizeof *keys);
    if (!keys)
        return NULL;
    memcpy(keys, ak, na * sizeof *keys); /* relay_config is the first member: offsets hold */
    memcpy(keys + na, train_keys, nt * sizeof *keys);
    rly_hparams_cfg_keys("ppo", offsetof(rly_train_config, ppo), keys + na + nt);
    rly_hparams_cfg_keys("reinforce", offsetof(rly_train_config, reinforce), keys + na + nt + nh);
    *n = na + nt + 2 * nh;
    return keys;
}

relay_err rly_train_config_parse(rly_train_config *c, const char *json)
{
    size_t n;
    rly_cfg_key *keys = rly_train_keys(&n);
    if (!keys)
        return RELAY_ENOMEM;
    rly_train_config tmp = *c;
    relay_err e = rly_cfg_parse(&tmp, keys, n, json);
    if (!e)
        e = rly_config_validate(&tmp.agent);
    free(keys);
    if (!e) {
        /* One seed drives the run: the top-level "seed" and "train.seed" are the same value
           (config.json holds both); either alone sets it, both must agree. */
        cJSON *root = cJSON_Parse(json);
        const cJSON *train = root ? cJSON_GetObjectItemCaseSensitive(root, "train") : NULL;
        bool top = root && cJSON_GetObjectItemCaseSensitive(root, "seed");
        bool sub = train && cJSON_GetObjectItemCaseSensitive(train, "seed");
        if (top && sub && tmp.agent.seed != tmp.train.seed) {
            rly_error(MOD,
                      "\"seed\" (%llu) and \"train.seed\" (%llu) disagree; relay train uses one "
                      "seed: give one of them or the same value",
                      (unsigned long long)tmp.agent.seed, (unsigned long long)tmp.train.seed);
            e = RELAY_ECONFIG;
        } else if (top && !sub) {
            tmp.train.seed = tmp.agent.seed;
        }
        if (train && cJSON_GetObjectItemCaseSensitive(train, "target"))
            tmp.train.target_set = true; /* a missed target is then exit 3 */
        cJSON_Delete(root);
        rly_hparams_mark_json(&tmp.ppo, json, "ppo");
        rly_hparams_mark_json(&tmp.reinforce, json, "reinforce");
    }
    if (!e)
        *c = tmp;
    return e;
}

/* Default targets: CartPole's solved threshold and the goals for the others. */
static float default_target(const char *env)
{
    if (strcmp(env, "CartPole-v1") == 0)
        return 475.0f;
    if (strcmp(env, "Acrobot-v1") == 0)
        return -100.0f;
    if (strcmp(env, "MountainCar-v0") == 0)
        return -110.0f;
    if (strcmp(env, "Pendulum-v1") == 0)
        return -250.0f;
    return INFINITY;
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct run {
    relay_agent *agent;
    rly_learner *learner;
    rly_metrics_csv *metrics;
    relay_err metrics_err; /* first write error of metrics.csv (learner thread) */
    const char *out;       /* run directory */
    rly_progress progress;
    bool show_progress;
    uint64_t total_steps;
    rly_mutex lock; /* curve points and the progress line */
    double *curve_steps, *curve_returns;
    size_t n_curve, cap_curve;
    rly_train_obs obs; /* metrics, dashboard curve, time breakdown (train_obs.c) */
    bool verbose;
    rly_train_extras x; /* evaluation and checkpoints (train_extras.c) */
    rly_learner *lh;    /* the learner, for on_update */
    float target;
    uint32_t max_updates; /* 0: no limit */
    _Atomic int stop;     /* set by on_update: STOP_TARGET or STOP_UPDATES (training ended) */
} run;

#define STOP_TARGET 1
#define STOP_UPDATES 2

static relay_err publish(void *ctx, int64_t version, relay_model *pi, relay_model *vf,
                         const float *log_std, uint32_t n_log_std)
{
    run *r = ctx;
    return rly_agent_publish(r->agent, version, pi, vf, log_std, n_log_std);
}

static void consume(void *ctx, relay_traj *t)
{
    run *r = ctx;
    if (!r->learner || rly_learner_push(r->learner, t) != RELAY_OK)
        relay_traj_free(t);
}

static void progress_info(const rly_learner_stats *st, uint64_t total, rly_progress_info *pi)
{
    *pi = (rly_progress_info){.steps = st->steps_consumed,
                              .total_steps = total,
                              .sps = st->sps,
                              .mean_return = st->episodes ? st->mean_return_100 : NAN,
                              .episodes = st->episodes,
                              .version = st->version,
                              .elapsed_s = st->wall_s};
}

static void on_update(void *ctx, const rly_learner_stats *st)
{
    run *r = ctx;
    rly_metrics_row row;
    rly_metrics_row_from_stats(&row, st);
    rly_train_extras_eval(&r->x, r->lh, st, &row);
    /* The row is written before the checkpoint, so a kill -9 after the checkpoint of update u
       never leaves metrics.csv without row u. */
    if (r->metrics && !r->metrics_err && (r->metrics_err = rly_metrics_csv_write(r->metrics, &row)))
        rly_error(MOD, "cannot write %s/metrics.csv: %s", r->out, relay_strerror(r->metrics_err));
    rly_mutex_lock(&r->lock);
    if (st->episodes) {
        if (r->n_curve == r->cap_curve) {
            size_t cap = r->cap_curve ? r->cap_curve * 2 : 256;
            double *a = realloc(r->curve_steps, cap * sizeof *a);
            if (a)
                r->curve_steps = a;
            double *b = realloc(r->curve_returns, cap * sizeof *b);
            if (b)
                r->curve_returns = b;
            if (a && b)
                r->cap_curve = cap;
        }
        if (r->n_curve < r->cap_curve) {
            r->curve_steps[r->n_curve] = (double)st->steps_consumed;
            r->curve_returns[r->n_curve] = st->mean_return_100;
            r->n_curve++;
        }
    }
    rly_mutex_unlock(&r->lock);
    /* The target and the update limit end training right after this update (on the learner
       thread), so where a run stops does not depend on when the main thread looks. */
    int stop = 0;
    if (st->episodes >= 100 && st->mean_return_100 >= r->target)
        stop = STOP_TARGET;
    else if (r->max_updates && st->updates >= r->max_updates)
        stop = STOP_UPDATES;
    if (stop) {
        rly_learner_end(r->lh);
        atomic_store(&r->stop, stop);
    }
    /* the checkpoint includes this update's curve point (the curve is only read here) */
    rly_train_extras_save_due(&r->x, r->lh, st, r->curve_steps, r->curve_returns, r->n_curve);
    rly_mutex_lock(&r->lock);
    rly_train_obs_update(&r->obs, st);
    if (r->show_progress) {
        rly_progress_info pi;
        progress_info(st, r->total_steps, &pi);
        if (rly_progress_update(&r->progress, &pi, false) && r->verbose) {
            rly_time_breakdown tb;
            char line[256];
            rly_time_breakdown_get(r->agent, st, &tb);
            rly_time_breakdown_format(&tb, line, sizeof line);
            fprintf(r->progress.out, "%s%s\n", r->progress.tty ? "\n" : "", line);
        }
    }
    rly_mutex_unlock(&r->lock);
}

/* write_file writes path atomically (complete or absent); errors name the file. */
static relay_err write_file(const char *path, const void *data, size_t len)
{
    int err = rly_cli_write_atomic(path, data, len, false);
    if (err) {
        rly_error(MOD, "cannot write %s: %s", path, strerror(err));
        return RELAY_EIO;
    }
    return RELAY_OK;
}

/*
 * prepare_run_dir makes sure the run directory can take this run before training starts: it is a
 * directory (created if missing), writable, and holds no earlier run (config.json), so a second
 * run never mixes its files with the first one's.
 */
static relay_err prepare_run_dir(const char *dir)
{
    struct stat sb;
    char probe[RELAY_PATH_MAX + 64];
    if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        rly_error(MOD, "run directory %s exists and is not a directory", dir);
        return RELAY_EEXIST;
    }
    snprintf(probe, sizeof probe, "%s/config.json", dir);
    if (stat(probe, &sb) == 0) {
        rly_error(MOD,
                  "run directory %s already holds a run (%s); choose another --out or remove it",
                  dir, probe);
        return RELAY_EEXIST;
    }
    if ((errno = rly_cli_mkdirs(dir)) != 0) {
        rly_error(MOD, "cannot create run directory %s: %s", dir, strerror(errno));
        return RELAY_EIO;
    }
    snprintf(probe, sizeof probe, "%s/.relay-write-check", dir);
    FILE *f = fopen(probe, "wb");
    if (!f) {
        rly_error(MOD, "cannot write in run directory %s: %s", dir, strerror(errno));
        return RELAY_EIO;
    }
    fclose(f);
    unlink(probe);
    snprintf(probe, sizeof probe, "%s/trajectories", dir);
    if (stat(probe, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        rly_error(MOD, "%s exists and is not a directory (trajectory files go there)", probe);
        return RELAY_EEXIST;
    }
    return RELAY_OK;
}

/* fresh_name appends -2, -3, ... to a default run directory name that is already taken. */
static void fresh_name(char *out, size_t cap)
{
    struct stat sb;
    if (stat(out, &sb) != 0)
        return;
    char base[RELAY_PATH_MAX];
    snprintf(base, sizeof base, "%s", out);
    for (int k = 2; k < 10000; k++) {
        snprintf(out, cap, "%.*s-%d", RELAY_PATH_MAX - 16, base, k);
        if (stat(out, &sb) != 0)
            return;
    }
}

/*
 * write_effective_config writes every setting of the run, so `relay train --config RUN/config.json`
 * repeats it exactly (64-bit seeds above 2^53 as strings); "out" is left empty so the repeat gets
 * a fresh run directory instead of being refused by this one.
 */
static relay_err write_effective_config(const char *path, const rly_train_config *fc)
{
    size_t n;
    rly_cfg_key *keys = rly_train_keys(&n);
    cJSON *root = cJSON_CreateObject();
    rly_train_config *copy = malloc(sizeof *copy);
    if (copy) {
        *copy = *fc;
        copy->train.out[0] = '\0';
    }
    /* only the section of the algorithm that ran (the other one holds no effective values) */
    const char *skip = strcmp(fc->train.algo, "reinforce") == 0 ? "ppo." : "reinforce.";
    size_t kept = 0;
    for (size_t i = 0; keys && i < n; i++)
        if (strncmp(keys[i].name, skip, strlen(skip)) != 0)
            keys[kept++] = keys[i];
    n = kept;
    relay_err e = keys && root && copy ? rly_cfg_to_json(copy, keys, n, root) : RELAY_ENOMEM;
    /* no target (a plug-in's default is +inf, which JSON cannot hold): leave the key out, so
       `--config` / `--resume` of this file read it back as "no target" */
    cJSON *tr = root ? cJSON_GetObjectItemCaseSensitive(root, "train") : NULL;
    if (!e && copy && !isfinite(copy->train.target) && tr)
        cJSON_DeleteItemFromObjectCaseSensitive(tr, "target");
    free(copy);
    char *text = e ? NULL : cJSON_Print(root);
    if (!e && !text)
        e = RELAY_ENOMEM;
    if (!e)
        e = write_file(path, text, strlen(text));
    free(text);
    cJSON_Delete(root);
    free(keys);
    return e;
}

static void fill_result(relay_train_result *res, const rly_learner_stats *st, float target)
{
    res->steps = st->steps_consumed;
    res->episodes = st->episodes;
    res->updates = st->updates;
    res->version = st->version;
    res->mean_return_100 = st->episodes ? st->mean_return_100 : NAN;
    res->target = target;
    res->seconds = st->wall_s;
    res->steps_per_second = st->sps;
    res->target_reached = st->episodes >= 100 && st->mean_return_100 >= target;
    res->last = st->last;
}

relay_err rly_train_run(rly_train_config *fc, FILE *progress, relay_train_poll_fn poll, void *user,
                        relay_train_result *res)
{
    relay_train_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    res->mean_return_100 = NAN;
    rly_train_opts *o = &fc->train;
    const int64_t t0 = o->t0_ns ? o->t0_ns : rly_now_ns();
    const int64_t deadline = o->max_seconds ? t0 + (int64_t)o->max_seconds * RLY_NS_PER_S : 0;
    const relay_env_def *env = NULL;
    if (relay_env_resolve(o->env, &env) != RELAY_OK) {
        rly_error(MOD, "unknown environment \"%s\"", o->env);
        return RELAY_ENOTFOUND;
    }
    rly_policy_desc desc;
    if (rly_policy_desc_from_env(&desc, env) != RELAY_OK) {
        rly_error(MOD, "environment %s has unsupported spaces", o->env);
        return RELAY_EUNSUPPORTED;
    }
    rly_learner_config lc;
    relay_err e = rly_learner_config_init(&lc, env, 8);
    if (e)
        return e;
    if (o->envs_per_actor == 0)
        o->envs_per_actor =
            lc.ppo.n_envs >= o->actors ? (lc.ppo.n_envs + o->actors - 1) / o->actors : 1;
    if ((uint64_t)o->actors * o->envs_per_actor > RLY_TRAIN_MAX_STREAMS) {
        rly_error(MOD, "%u actors x %u envs per actor is above the maximum of %u environments",
                  o->actors, o->envs_per_actor, RLY_TRAIN_MAX_STREAMS);
        return RELAY_ETOOBIG;
    }
    uint32_t streams = o->actors * o->envs_per_actor;
    e = rly_learner_config_init(&lc, env, streams);
    if (e)
        return e;
    if (o->steps)
        lc.ppo.total_timesteps = o->steps;
    else
        o->steps = lc.ppo.total_timesteps;
    lc.ppo.seed = o->seed;
    lc.ppo.algo = strcmp(o->algo, "reinforce") == 0 ? RELAY_ALGO_REINFORCE : RELAY_ALGO_PPO;
    lc.policy_lag = o->policy_lag;
    /* hyperparameters given in the config or as flags replace the zoo's; config.json gets all */
    rly_hparams *hp = lc.ppo.algo == RELAY_ALGO_REINFORCE ? &fc->reinforce : &fc->ppo;
    if ((e = rly_hparams_apply(hp, o->algo, &lc.ppo)) != RELAY_OK)
        return e;
    lc.n_steps = lc.ppo.n_steps;
    rly_hparams_from_ppo(hp, &lc.ppo);
    if (isnan(o->target))
        o->target = default_target(env->name);
    res->target = o->target;
    uint32_t n_steps = lc.n_steps ? lc.n_steps : lc.ppo.n_steps;

    const bool default_out = o->out[0] == '\0';
    if (default_out) {
        char name[160];
        snprintf(name, sizeof name, "runs/%.100s-s%llu-%lld", env->name,
                 (unsigned long long)o->seed, (long long)time(NULL));
        snprintf(o->out, sizeof o->out, "%s", name);
        fresh_name(o->out, sizeof o->out);
    }
    if (strlen(o->out) > RELAY_PATH_MAX - 64) {
        rly_error(MOD, "run directory path is too long (limit %d bytes)", RELAY_PATH_MAX - 64);
        return RELAY_ETOOBIG;
    }
    snprintf(res->out_dir, sizeof res->out_dir, "%s", o->out);
    char ckpt[RELAY_PATH_MAX + 64];
    snprintf(ckpt, sizeof ckpt, "%s/%s", o->out, RLY_TRAIN_CKPT_NAME);
    uint64_t seed_shift = 0; /* a resumed run's actors and envs take fresh seeds */
    uint32_t resume_updates = 0;
    int64_t resume_version = -1;
    if (o->resume) {
        rly_learner_ckpt_info ci;
        if ((e = rly_learner_checkpoint_peek(ckpt, &ci)) != RELAY_OK) {
            rly_error(MOD, "cannot resume %s: %s (written with --save-every)", ckpt,
                      relay_strerror(e));
            return e == RELAY_ENOTFOUND ? RELAY_ECONFIG : e;
        }
        lc.resume_path = ckpt;
        resume_version = ci.version;
        seed_shift = (uint64_t)ci.updates * 0x9E3779B97F4A7C15ULL;
        resume_updates = ci.updates;
        if (ci.steps_consumed >= o->steps)
            rly_warn(MOD, "%s already spent its budget of %llu steps (give a larger --steps)",
                     o->out, (unsigned long long)o->steps);
    } else if ((e = prepare_run_dir(o->out)) != RELAY_OK) {
        return e;
    }
    /* A fresh run that fails before training removes what it wrote; a resumed one keeps all. */
    bool started = false, ran_dir_check = !o->resume;
    /* Agent: shared model handles, trajectories cut at n_steps, the sink asked for. */
    relay_config *ac = &fc->agent;
    ac->shared_model = true;
    ac->max_traj_length = n_steps;
    ac->seed = o->seed;
    ac->sink_memory = false;
    ac->sink_arrow = strcmp(o->sink, "arrow") == 0;
    ac->sink_csv = strcmp(o->sink, "csv") == 0;
    ac->sink_binary = strcmp(o->sink, "binary") == 0;
    snprintf(ac->sink_dir, sizeof ac->sink_dir, "%.*s/trajectories", RELAY_PATH_MAX - 64, o->out);
    /* a resumed run writes its trajectories next to the interrupted run's, not over them */
    if (o->resume)
        snprintf(ac->run_name, sizeof ac->run_name, "run-resume%u", resume_updates);
    else
        snprintf(ac->run_name, sizeof ac->run_name, "run");
    char path[RELAY_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/config.json", o->out);
    if ((e = write_effective_config(path, fc)) != RELAY_OK)
        return e;

    const uint8_t **restore = NULL; /* per actor: its snapshot (exact resume) */
    size_t *restore_len = NULL;
    run r;
    memset(&r, 0, sizeof r);
    r.show_progress = progress != NULL;
    r.total_steps = o->steps;
    r.out = o->out;
    r.target = o->target;
    r.max_updates = o->max_updates;
    rly_mutex_init(&r.lock);
    if (progress)
        rly_progress_init(&r.progress, progress, 1.0);
    snprintf(path, sizeof path, "%s/metrics.csv", o->out);
    relay_id *ids = NULL;
    rly_learner *learner = NULL;
    if ((e = rly_train_extras_init(&r.x, o->out, env, o->eval_every, o->eval_episodes,
                                   o->save_every, o->seed)) != RELAY_OK ||
        (e = o->resume ? rly_metrics_csv_open_append(path, resume_updates, &r.metrics)
                       : rly_metrics_csv_open(path, &r.metrics)) != RELAY_OK) {
        rly_error(MOD, "cannot write %s", path);
        goto out;
    }

    /* Exact resume needs snapshots of the actors at their pauses: built-in environments and
       plug-ins that declare RELAY_ENV_PLAIN_STATE (others resume learner-exact only). */
    const bool snapshots = rly_env_plain_state(env);
    if (o->save_every && snapshots) {
        if ((e = rly_train_snaps_new(o->actors, &r.x.snaps)) != RELAY_OK)
            goto out;
        r.x.env_name = env->name;
        r.x.envs_per_actor = o->envs_per_actor;
    }
    r.verbose = o->verbose;
    e = relay_agent_new(ac, &r.agent);
    rly_train_obs_init(&r.obs, r.agent, env->name, o->algo, o->target);
    if (!e && r.obs.srv) {
        char url[300];
        snprintf(path, sizeof path, "%s/metrics_url", o->out);
        rly_obs_server_url(r.obs.srv, url, sizeof url);
        write_file(path, url, strlen(url));
        if (progress)
            fprintf(progress, "relay train: metrics on %smetrics, dashboard on %s\n", url, url);
    }
    if (!e)
        e = rly_agent_set_consumer(r.agent, consume, &r);
    if (!e)
        e = relay_agent_start(r.agent);
    if (!e) {
        /* A trajectory sink that cannot open fails the run now, not silently at the end. */
        relay_agent_stats as;
        relay_agent_get_stats(r.agent, &as);
        if (as.sink_errors) {
            rly_error(MOD, "the %s sink cannot write in %s (see the error above)", o->sink,
                      ac->sink_dir);
            e = RELAY_EIO;
        }
    }
    ids = e ? NULL : calloc(o->actors, sizeof *ids);
    if (!ids && !e)
        e = RELAY_ENOMEM;
    /* The time limit also holds while thousands of actors are created and started. */
    for (uint32_t i = 0; !e && i < o->actors; i++) {
        if (deadline && rly_now_ns() >= deadline) {
            rly_error(MOD, "the time limit (%u s) passed while creating actors (%u of %u)",
                      o->max_seconds, i, o->actors);
            e = RELAY_ETIMEDOUT;
            break;
        }
        e = rly_agent_new_actor_desc(r.agent, &desc, o->seed * 1000003ULL + i + 1 + seed_shift,
                                     n_steps, &ids[i]);
    }
    lc.publish = publish;
    lc.publish_ctx = &r;
    lc.stream_actors = ids;
    lc.n_stream_actors = o->actors;
    lc.envs_per_actor = o->envs_per_actor;
    lc.on_update = on_update;
    lc.on_update_ctx = &r;
    rly_train_obs_learner(&r.obs, &lc);
    relay_model *init_pi = NULL;
    if (!e && o->init_model[0] && !o->resume) {
        if ((e = relay_model_load_onnx(o->init_model, &init_pi)) != RELAY_OK)
            rly_error(MOD, "--init-model %s: cannot load: %s", o->init_model, relay_strerror(e));
        lc.init_pi = init_pi;
    }
    if (!e)
        e = rly_learner_new(&lc, &learner);
    relay_model_free(init_pi);
    lc.init_pi = NULL;
    r.lh = learner;
    const uint8_t *acts = NULL;
    size_t acts_len = 0;
    if (!e && o->resume)
        e = rly_train_extras_resume(&r.x, learner, &r.curve_steps, &r.curve_returns, &r.n_curve,
                                    &acts, &acts_len);
    r.cap_curve = r.n_curve;
    if (!e && o->resume && acts && snapshots) {
        restore = calloc(o->actors, sizeof *restore);
        restore_len = calloc(o->actors, sizeof *restore_len);
        if (!restore || !restore_len)
            e = RELAY_ENOMEM;
        else
            e = rly_train_snaps_decode(acts, acts_len, resume_version, env->name, o->actors,
                                       o->envs_per_actor, restore, restore_len);
    } else if (!e && o->resume) {
        rly_warn(MOD,
                 "%s holds no actor snapshots (%s): the resumed run restarts its environments, "
                 "so it is learner-exact but not bit-identical to an uninterrupted run",
                 ckpt,
                 !snapshots ? "the environment is a plug-in without RELAY_ENV_PLAIN_STATE"
                            : "written by an older Relay, or without --save-every snapshots");
    }
    if (!e)
        rly_train_obs_start(&r.obs, learner);
    if (!e) {
        int64_t wait = 30 * RLY_NS_PER_S;
        if (deadline && deadline - rly_now_ns() < wait)
            wait = deadline - rly_now_ns() > 0 ? deadline - rly_now_ns() : 1;
        e = rly_learner_wait_version(learner, 0, wait);
    }
    r.learner = learner; /* from here on trajectories reach it */
    for (uint32_t i = 0; !e && i < o->actors; i++) {
        if (deadline && rly_now_ns() >= deadline) {
            rly_error(MOD, "the time limit (%u s) passed while starting actors (%u of %u)",
                      o->max_seconds, i, o->actors);
            e = RELAY_ETIMEDOUT;
            break;
        }
        rly_run_snap rs = {.on_pause = r.x.snaps ? rly_train_snaps_on_pause : NULL,
                           .pause_ctx = rly_train_snaps_ctx(r.x.snaps, i),
                           .restore = restore ? restore[i] : NULL,
                           .restore_len = restore ? restore_len[i] : 0};
        e = rly_agent_run_env_quota(
            r.agent, ids[i], env, o->envs_per_actor,
            o->seed * 1000003ULL + (uint64_t)i * o->envs_per_actor + seed_shift, n_steps, &rs);
    }
    if (e) {
        rly_error(MOD, "cannot start: %s", relay_strerror(e));
        goto out;
    }
    started = true;
    if (progress)
        fprintf(progress,
                "relay train: %s, %s, %u actors x %u envs, %u routers, target %.1f, "
                "budget %llu steps, run directory %s\n",
                o->env, o->algo, o->actors, o->envs_per_actor, ac->routers, o->target,
                (unsigned long long)o->steps, o->out);
    rly_learner_stats st;
    relay_err env_e = RELAY_OK;
    uint64_t polls = 0;
    const char *why = "step budget spent";
    for (;;) {
        rly_sleep_ns(5 * RLY_NS_PER_MS);
        rly_learner_stats_get(learner, &st);
        if (st.error) {
            rly_error(MOD, "learner failed: %s", relay_strerror(st.error));
            why = "learner error";
            break;
        }
        /* An actor whose environment misbehaved (non-finite values) ended its run: stop. */
        if (++polls % 20 == 0 && (env_e = rly_agent_run_error(r.agent)) != RELAY_OK) {
            rly_error(MOD, "an actor stopped: %s (see above)", relay_strerror(env_e));
            why = "environment error";
            break;
        }
        if (st.episodes && !isfinite(st.mean_return_100)) {
            rly_error(MOD,
                      "environment %s gives episode returns that are not finite (mean of the "
                      "last 100: %g); its rewards are too large for float32 sums",
                      env->name, (double)st.mean_return_100);
            env_e = RELAY_EFORMAT;
            why = "environment error";
            break;
        }
        int stop = atomic_load(&r.stop);
        if (stop == STOP_TARGET) {
            why = "target reached";
            break;
        }
        if (stop == STOP_UPDATES) {
            why = "update limit";
            break;
        }
        if (st.done)
            break;
        if (poll) {
            fill_result(res, &st, o->target);
            if (!poll(res, user)) {
                why = "interrupted";
                break;
            }
        }
        if (deadline && rly_now_ns() >= deadline) {
            why = "time limit";
            break;
        }
    }
    rly_learner_stop(learner);
    rly_learner_stats_get(learner, &st);
    /* The final checkpoint takes the actors' snapshots of the last version: they pause after one
       more rollout (whose data the stopped learner drops), so wait for that, bounded. */
    if (r.x.snaps && env_e == RELAY_OK && !st.error) {
        int64_t w0 = rly_now_ns();
        if (!rly_train_snaps_wait(r.x.snaps, st.version, 10 * RLY_NS_PER_S))
            rly_warn(MOD, "the actors did not pause at version %lld within 10 s",
                     (long long)st.version);
        r.x.ckpt_seconds += (double)(rly_now_ns() - w0) * 1e-9; /* part of the checkpoint cost */
    }
    relay_agent_shutdown(r.agent); /* actors flush; sinks close with valid files */
    /* Every output that could not be written fails the run (exit 1), naming the file. */
    relay_err out_e = RELAY_OK;
    relay_agent_stats as;
    relay_agent_get_stats(r.agent, &as);
    if (as.sink_errors) {
        rly_error(MOD, "trajectory files in %s are incomplete: %llu sink errors (see above)",
                  ac->sink_dir, (unsigned long long)as.sink_errors);
        out_e = RELAY_EIO;
    }
    rly_time_breakdown tb;
    rly_time_breakdown_get(r.agent, &st, &tb);
    snprintf(path, sizeof path, "%s/time_breakdown.json", o->out);
    relay_err we = rly_time_breakdown_write_json(path, &tb);
    if (we) {
        rly_error(MOD, "cannot write %s: %s", path, relay_strerror(we));
        out_e = we;
    }
    if (progress) {
        rly_progress_info pi;
        progress_info(&st, o->steps, &pi);
        rly_mutex_lock(&r.lock);
        rly_progress_finish(&r.progress, &pi);
        rly_mutex_unlock(&r.lock);
        char line[256];
        rly_time_breakdown_format(&tb, line, sizeof line);
        fprintf(progress, "%s\n", line);
    }
    fill_result(res, &st, o->target);
    snprintf(res->stop_reason, sizeof res->stop_reason, "%s", why);
    e = st.error ? st.error : env_e;
    snprintf(path, sizeof path, "%s/policy.onnx", o->out);
    /* After an environment error the policy was trained on bad values: no policy.onnx. The best
       evaluated policy is policy.onnx, the last one policy_last.onnx (train_extras.c). */
    if (env_e)
        rly_error(MOD, "%s not written: training stopped on an environment error", path);
    else if ((we = rly_train_extras_finish(&r.x, learner, st.version, st.steps_consumed,
                                           r.curve_steps, r.curve_returns, r.n_curve)) &&
             !out_e)
        out_e = we;
    if (progress && (r.x.evals || r.x.ckpts))
        fprintf(progress,
                "relay train: %u evaluations (%.2f s, best mean return %.1f), %u checkpoints "
                "(%.2f s)\n",
                r.x.evals, r.x.eval_seconds, r.x.best, r.x.ckpts, r.x.ckpt_seconds);
    char title[RELAY_PATH_MAX + 64];
    snprintf(title, sizeof title, "%s %s: mean return of the last 100 episodes", o->env, o->algo);
    snprintf(path, sizeof path, "%s/learning_curve.svg", o->out);
    rly_svg_extra sx = {.eval_steps = r.x.eval_steps,
                        .eval_returns = r.x.eval_returns,
                        .n_eval = r.x.n_eval,
                        .target = o->target};
    if ((we = rly_svg_learning_curve_ex(path, title, r.curve_steps, r.curve_returns, r.n_curve,
                                        &sx))) {
        rly_error(MOD, "cannot write %s: %s", path, relay_strerror(we));
        if (!out_e)
            out_e = we;
    }
    we = rly_metrics_csv_close(r.metrics);
    r.metrics = NULL;
    if (r.metrics_err || we) {
        if (!r.metrics_err)
            rly_error(MOD, "cannot write %s/metrics.csv: %s", o->out, relay_strerror(we));
        if (!out_e)
            out_e = r.metrics_err ? r.metrics_err : we;
    }
    if (!e)
        e = out_e;
    /* runs/latest points at the newest default run directory (best effort); an --out chosen by
       the user never moves it. */
    if (default_out && strncmp(o->out, "runs/", 5) == 0) {
        unlink("runs/latest");
        if (symlink(o->out + 5, "runs/latest") != 0)
            rly_debug(MOD, "runs/latest not updated");
    }
out:
    rly_train_obs_stop(&r.obs); /* no scrape reads the learner from here on */
    if (!started && ran_dir_check) {
        /* Nothing trained: leave no half run behind (a retry into the same --out must work). */
        static const char *const files[] = {"config.json", "metrics.csv", "metrics_url",
                                            "trajectories", NULL};
        for (int i = 0; files[i]; i++) {
            snprintf(path, sizeof path, "%s/%s", o->out, files[i]);
            if (unlink(path) != 0)
                rmdir(path); /* trajectories/, when empty */
        }
        rmdir(o->out); /* only if empty: never anything that was there before */
    }
    rly_learner_free(learner);
    relay_agent_free(r.agent);
    rly_metrics_csv_close(r.metrics);
    free(ids);
    free(restore);
    free(restore_len);
    rly_train_snaps_free(r.x.snaps);
    r.x.snaps = NULL;
    free(r.curve_steps);
    free(r.curve_returns);
    rly_train_extras_fini(&r.x);
    rly_mutex_fini(&r.lock);
    return e;
}

relay_err relay_train_run(const char *config_json, bool progress, relay_train_poll_fn poll,
                          void *user, relay_train_result *result)
{
    rly_train_config c;
    rly_train_config_default(&c);
    if (config_json) {
        relay_err e = rly_train_config_parse(&c, config_json);
        if (e) {
            rly_error(MOD, "training configuration rejected: %s", relay_strerror(e));
            return e;
        }
    }
    return rly_train_run(&c, progress ? stderr : NULL, poll, user, result);
}

relay_err relay_policy_export_onnx(const relay_policy *p, uint8_t **bytes, size_t *len)
{
    return rly_policy_export_onnx(p, RLY_CHAIN_PI, bytes, len);
}
