/*
 * `relay train`: actors step their environments on routers, trajectories flow through the data
 * plane to an in-process learner, and each new policy flows back to every actor as a ModelUpdate
 * message through the dispatcher. Stops when the mean return of the last 100 episodes reaches the
 * target or the step budget is spent; writes config.json, metrics.csv, learning_curve.svg,
 * policy.onnx (and trajectories when a sink is on) into the run directory.
 */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "agent/agent.h"
#include "agent/config.h"
#include "cli/cli_support.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/thread.h"
#include "learn/learner.h"

/* train_opts are the training options (command line and the config file's "train" section). */
typedef struct train_opts {
    char env[RELAY_PATH_MAX];
    char algo[16];
    uint32_t actors;
    uint32_t envs_per_actor;
    uint64_t steps;
    uint64_t seed;
    float target;
    bool target_set;
    char out[RELAY_PATH_MAX];
    char sink[16];
    uint32_t max_seconds;
    uint32_t policy_lag;
} train_opts;

/* full_config is the JSON layout: agent keys at the top, training keys under "train". */
typedef struct full_config {
    relay_config agent;
    train_opts train;
} full_config;

static const char *const algo_names[] = {"ppo", "reinforce", NULL};
static const char *const sink_names[] = {"none", "arrow", "csv", "binary", NULL};

#define TOFF(f) (offsetof(full_config, train) + offsetof(train_opts, f))
#define TSZ(f) sizeof(((train_opts *)0)->f)

static const rly_cfg_key train_keys[] = {
    {"train.env", RLY_CFG_STR, TOFF(env), TSZ(env), 0, 0, NULL},
    {"train.algo", RLY_CFG_STR_ENUM, TOFF(algo), TSZ(algo), 0, 0, algo_names},
    {"train.actors", RLY_CFG_U32, TOFF(actors), TSZ(actors), 1, 4096, NULL},
    {"train.envs_per_actor", RLY_CFG_U32, TOFF(envs_per_actor), TSZ(envs_per_actor), 1, 65536,
     NULL},
    {"train.steps", RLY_CFG_U64, TOFF(steps), TSZ(steps), 0, UINT64_MAX, NULL},
    {"train.seed", RLY_CFG_U64, TOFF(seed), TSZ(seed), 0, UINT64_MAX, NULL},
    {"train.target", RLY_CFG_F32, TOFF(target), TSZ(target), 0, 0, NULL},
    {"train.out", RLY_CFG_STR, TOFF(out), TSZ(out), 0, 0, NULL},
    {"train.sink", RLY_CFG_STR_ENUM, TOFF(sink), TSZ(sink), 0, 0, sink_names},
    {"train.max_seconds", RLY_CFG_U32, TOFF(max_seconds), TSZ(max_seconds), 0, 86400 * 30, NULL},
    {"train.policy_lag", RLY_CFG_U32, TOFF(policy_lag), TSZ(policy_lag), 0, 1000, NULL},
};

/* build_keys returns the agent keys followed by the training keys (caller frees). */
static rly_cfg_key *build_keys(size_t *n)
{
    size_t na;
    const rly_cfg_key *ak = rly_agent_config_keys(&na);
    size_t nt = sizeof train_keys / sizeof train_keys[0];
    rly_cfg_key *keys = malloc((na + nt) * sizeof *keys);
    if (!keys)
        return NULL;
    memcpy(keys, ak, na * sizeof *keys); /* relay_config is the first member: offsets hold */
    memcpy(keys + na, train_keys, nt * sizeof *keys);
    *n = na + nt;
    return keys;
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

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: relay train [--env NAME] [--algo ppo|reinforce] [--actors N]\n"
        "                   [--envs-per-actor K] [--routers R] [--steps S] [--seed X]\n"
        "                   [--target RETURN] [--config FILE.json] [--out DIR]\n"
        "                   [--sink arrow|csv|binary|none] [--max-seconds T] [--quiet]\n"
        "Trains until the mean return of the last 100 episodes reaches the target (CartPole-v1:\n"
        "475) or the step budget (the zoo's, by default) is spent. See docs/CLI.md.\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

/* ---- the run ------------------------------------------------------------------------------- */

typedef struct run {
    relay_agent *agent;
    rly_learner *learner;
    rly_metrics_csv *metrics;
    rly_progress progress;
    bool quiet;
    uint64_t total_steps;
    rly_mutex lock; /* curve points and the progress line */
    double *curve_steps, *curve_returns;
    size_t n_curve, cap_curve;
} run;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

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
    if (r->metrics)
        rly_metrics_csv_write(r->metrics, &row);
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
    if (!r->quiet) {
        rly_progress_info pi;
        progress_info(st, r->total_steps, &pi);
        rly_progress_update(&r->progress, &pi, false);
    }
    rly_mutex_unlock(&r->lock);
}

static int mkdirs(const char *path)
{
    char tmp[RELAY_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static relay_err write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "relay train: cannot write %s: %s\n", path, strerror(errno));
        return RELAY_EIO;
    }
    bool ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    return ok ? RELAY_OK : RELAY_EIO;
}

static relay_err write_effective_config(const char *path, const full_config *fc)
{
    size_t n;
    rly_cfg_key *keys = build_keys(&n);
    cJSON *root = cJSON_CreateObject();
    relay_err e = keys && root ? rly_cfg_to_json(fc, keys, n, root) : RELAY_ENOMEM;
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

int rly_cli_train(int argc, char **argv)
{
    full_config fc;
    memset(&fc, 0, sizeof fc);
    relay_config_default(&fc.agent);
    train_opts *o = &fc.train;
    snprintf(o->env, sizeof o->env, "CartPole-v1");
    snprintf(o->algo, sizeof o->algo, "ppo");
    snprintf(o->sink, sizeof o->sink, "none");
    o->actors = 2;
    o->envs_per_actor = 0; /* from the zoo's n_envs */
    o->target = NAN;
    fc.agent.routers = 2;
    bool quiet = false;
    const char *config_path = NULL;

    /* First pass: the config file, so command-line options override it. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_path = argv[i + 1];
    if (config_path) {
        size_t n;
        rly_cfg_key *keys = build_keys(&n);
        char *text = NULL;
        relay_err e = keys ? rly_cfg_read_file(config_path, &text) : RELAY_ENOMEM;
        full_config tmp = fc;
        if (!e)
            e = rly_cfg_parse(&tmp, keys, n, text);
        if (!e)
            e = rly_config_validate(&tmp.agent);
        free(text);
        free(keys);
        if (e) {
            fprintf(stderr, "relay train: configuration %s rejected: %s\n", config_path,
                    relay_strerror(e));
            return 2;
        }
        fc = tmp;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "relay train: %s needs a value\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--config") == 0) {
            continue;
        } else if (strcmp(a, "--env") == 0) {
            snprintf(o->env, sizeof o->env, "%s", v);
        } else if (strcmp(a, "--algo") == 0) {
            if (strcmp(v, "ppo") && strcmp(v, "reinforce")) {
                fprintf(stderr, "relay train: --algo must be ppo or reinforce, not \"%s\"\n", v);
                return 2;
            }
            snprintf(o->algo, sizeof o->algo, "%s", v);
        } else if (strcmp(a, "--sink") == 0) {
            if (strcmp(v, "arrow") && strcmp(v, "csv") && strcmp(v, "binary") &&
                strcmp(v, "none")) {
                fprintf(stderr, "relay train: --sink must be arrow, csv, binary or none\n");
                return 2;
            }
            snprintf(o->sink, sizeof o->sink, "%s", v);
        } else if (strcmp(a, "--out") == 0) {
            snprintf(o->out, sizeof o->out, "%s", v);
        } else if (strcmp(a, "--target") == 0) {
            char *end;
            o->target = strtof(v, &end);
            if (end == v || *end) {
                fprintf(stderr, "relay train: --target needs a number, not \"%s\"\n", v);
                return 2;
            }
        } else if (parse_u64(v, &u)) {
            if (strcmp(a, "--actors") == 0 && u >= 1 && u <= 4096)
                o->actors = (uint32_t)u;
            else if (strcmp(a, "--envs-per-actor") == 0 && u >= 1 && u <= 65536)
                o->envs_per_actor = (uint32_t)u;
            else if (strcmp(a, "--routers") == 0 && u >= 1 && u <= 4096)
                fc.agent.routers = (uint32_t)u;
            else if (strcmp(a, "--steps") == 0)
                o->steps = u;
            else if (strcmp(a, "--seed") == 0)
                o->seed = u;
            else if (strcmp(a, "--max-seconds") == 0)
                o->max_seconds = (uint32_t)u;
            else {
                fprintf(stderr, "relay train: unknown option %s or value %s out of range\n", a, v);
                usage(stderr);
                return 2;
            }
        } else {
            fprintf(stderr, "relay train: unknown option %s or bad number \"%s\"\n", a, v);
            usage(stderr);
            return 2;
        }
    }

    const relay_env_def *env = NULL;
    if (relay_env_resolve(o->env, &env) != RELAY_OK) {
        fprintf(stderr, "relay train: unknown environment \"%s\"\n", o->env);
        return 2;
    }
    rly_policy_desc desc;
    if (rly_policy_desc_from_env(&desc, env) != RELAY_OK) {
        fprintf(stderr, "relay train: environment %s has unsupported spaces\n", o->env);
        return 2;
    }
    rly_learner_config lc;
    relay_err e = rly_learner_config_init(&lc, env, 8);
    if (e) {
        fprintf(stderr, "relay train: %s\n", relay_strerror(e));
        return 1;
    }
    if (o->envs_per_actor == 0)
        o->envs_per_actor =
            lc.ppo.n_envs >= o->actors ? (lc.ppo.n_envs + o->actors - 1) / o->actors : 1;
    uint32_t streams = o->actors * o->envs_per_actor;
    e = rly_learner_config_init(&lc, env, streams);
    if (e) {
        fprintf(stderr, "relay train: %s\n", relay_strerror(e));
        return 1;
    }
    if (o->steps)
        lc.ppo.total_timesteps = o->steps;
    else
        o->steps = lc.ppo.total_timesteps;
    lc.ppo.seed = o->seed;
    lc.ppo.algo = strcmp(o->algo, "reinforce") == 0 ? RELAY_ALGO_REINFORCE : RELAY_ALGO_PPO;
    lc.policy_lag = o->policy_lag;
    if (isnan(o->target))
        o->target = default_target(env->name);
    uint32_t n_steps = lc.n_steps ? lc.n_steps : lc.ppo.n_steps;

    if (o->out[0] == '\0') {
        char name[160];
        snprintf(name, sizeof name, "runs/%.100s-s%llu-%lld", env->name,
                 (unsigned long long)o->seed, (long long)time(NULL));
        snprintf(o->out, sizeof o->out, "%s", name);
    }
    if (strlen(o->out) > RELAY_PATH_MAX - 64) {
        fprintf(stderr, "relay train: --out path is too long\n");
        return 2;
    }
    if (mkdirs(o->out) != 0) {
        fprintf(stderr, "relay train: cannot create %s: %s\n", o->out, strerror(errno));
        return 1;
    }
    /* Agent: shared model handles, trajectories cut at n_steps, the sink asked for. */
    relay_config *ac = &fc.agent;
    ac->shared_model = true;
    ac->max_traj_length = n_steps;
    ac->seed = o->seed;
    ac->sink_memory = false;
    ac->sink_arrow = strcmp(o->sink, "arrow") == 0;
    ac->sink_csv = strcmp(o->sink, "csv") == 0;
    ac->sink_binary = strcmp(o->sink, "binary") == 0;
    snprintf(ac->sink_dir, sizeof ac->sink_dir, "%.*s/trajectories", RELAY_PATH_MAX - 64, o->out);
    snprintf(ac->run_name, sizeof ac->run_name, "run");
    char path[RELAY_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/config.json", o->out);
    write_effective_config(path, &fc);

    run r;
    memset(&r, 0, sizeof r);
    r.quiet = quiet;
    r.total_steps = o->steps;
    rly_mutex_init(&r.lock);
    rly_progress_init(&r.progress, stderr, 1.0);
    snprintf(path, sizeof path, "%s/metrics.csv", o->out);
    if (rly_metrics_csv_open(path, &r.metrics) != RELAY_OK)
        fprintf(stderr, "relay train: metrics.csv not written\n");

    int status = 1;
    e = relay_agent_new(ac, &r.agent);
    if (!e)
        e = rly_agent_set_consumer(r.agent, consume, &r);
    if (!e)
        e = relay_agent_start(r.agent);
    relay_id *ids = calloc(o->actors, sizeof *ids);
    for (uint32_t i = 0; !e && i < o->actors; i++)
        e = rly_agent_new_actor_desc(r.agent, &desc, o->seed * 1000003ULL + i + 1, n_steps,
                                     &ids[i]);
    lc.publish = publish;
    lc.publish_ctx = &r;
    lc.stream_actors = ids;
    lc.n_stream_actors = o->actors;
    lc.envs_per_actor = o->envs_per_actor;
    lc.on_update = on_update;
    lc.on_update_ctx = &r;
    rly_learner *learner = NULL;
    if (!e)
        e = rly_learner_new(&lc, &learner);
    if (!e)
        e = rly_learner_wait_version(learner, 0, 30 * RLY_NS_PER_S);
    r.learner = learner; /* from here on trajectories reach it */
    for (uint32_t i = 0; !e && i < o->actors; i++)
        e = rly_agent_run_env_quota(r.agent, ids[i], env, o->envs_per_actor,
                                    o->seed * 1000003ULL + (uint64_t)i * o->envs_per_actor,
                                    n_steps);
    if (e) {
        fprintf(stderr, "relay train: cannot start: %s\n", relay_strerror(e));
        goto out;
    }
    if (!quiet)
        fprintf(stderr,
                "relay train: %s, %s, %u actors x %u envs, %u routers, target %.1f, "
                "budget %llu steps, run directory %s\n",
                o->env, o->algo, o->actors, o->envs_per_actor, ac->routers, o->target,
                (unsigned long long)o->steps, o->out);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int64_t t0 = rly_now_ns();
    rly_learner_stats st;
    const char *why = "step budget spent";
    for (;;) {
        rly_sleep_ns(5 * RLY_NS_PER_MS);
        rly_learner_stats_get(learner, &st);
        if (st.error) {
            fprintf(stderr, "relay train: learner failed: %s\n", relay_strerror(st.error));
            why = "learner error";
            break;
        }
        if (st.episodes >= 100 && st.mean_return_100 >= o->target) {
            why = "target reached";
            break;
        }
        if (st.done)
            break;
        if (interrupted) {
            why = "interrupted";
            break;
        }
        if (o->max_seconds && rly_now_ns() - t0 > (int64_t)o->max_seconds * RLY_NS_PER_S) {
            why = "time limit";
            break;
        }
    }
    rly_learner_stop(learner);
    rly_learner_stats_get(learner, &st);
    relay_agent_shutdown(r.agent); /* actors flush; sinks close with valid files */
    if (!quiet) {
        rly_progress_info pi;
        progress_info(&st, o->steps, &pi);
        rly_mutex_lock(&r.lock);
        rly_progress_finish(&r.progress, &pi);
        rly_mutex_unlock(&r.lock);
    }
    uint8_t *onnx = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/policy.onnx", o->out);
    if (rly_learner_export_onnx(learner, &onnx, &len) == RELAY_OK)
        write_file(path, onnx, len);
    free(onnx);
    char title[RELAY_PATH_MAX + 64];
    snprintf(title, sizeof title, "%s %s: mean return of the last 100 episodes", o->env, o->algo);
    snprintf(path, sizeof path, "%s/learning_curve.svg", o->out);
    rly_svg_learning_curve(path, title, r.curve_steps, r.curve_returns, r.n_curve);
    printf("%s: %s after %llu steps, %u updates, %.2f s (%.0f steps/s); mean return (last 100) "
           "%.1f over %llu episodes; policy version %lld; files in %s\n",
           o->env, why, (unsigned long long)st.steps_consumed, st.updates, st.wall_s, st.sps,
           st.mean_return_100, (unsigned long long)st.episodes, (long long)st.version, o->out);
    /* 0: target reached (or interrupted by the user); 3: budget or time limit spent first. */
    bool reached = st.episodes >= 100 && st.mean_return_100 >= o->target;
    status = st.error ? 1 : (reached || interrupted) ? 0 : 3;
    /* runs/latest points at the newest run (best effort). */
    if (strncmp(o->out, "runs/", 5) == 0) {
        unlink("runs/latest");
        if (symlink(o->out + 5, "runs/latest") != 0)
            rly_debug("cli", "runs/latest not updated");
    }
out:
    rly_learner_free(learner);
    relay_agent_free(r.agent);
    rly_metrics_csv_close(r.metrics);
    free(ids);
    free(r.curve_steps);
    free(r.curve_returns);
    rly_mutex_fini(&r.lock);
    return status;
}
