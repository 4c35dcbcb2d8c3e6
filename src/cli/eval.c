/* relay eval: run a saved policy greedily (or sampling) on an environment and report returns. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli/args.h"
#include "cli/cli_support.h"
#include "relay/env.h"
#include "relay/model.h"

#define EVAL_MAX_EPISODES 10000000ull
/* An episode that neither terminates nor truncates by itself is cut after this many steps. */
#define EVAL_DEFAULT_EPISODE_STEPS 100000ull
#define EVAL_MAX_EPISODE_STEPS 1000000000ull

static const char eval_usage[] =
    "usage: relay eval --model PATH --env NAME [--episodes N] [--seed S] [--stochastic]\n"
    "       relay eval --run RUN_DIR [--env NAME] [...]\n"
    "  --run DIR       a `relay train` run directory: its policy.onnx on its environment\n"
    "  --model PATH    policy.onnx file, a bundle directory (model.onnx + metadata.json) or a\n"
    "                  run directory (as --run)\n"
    "  --env NAME      built-in environment (e.g. CartPole-v1) or plug-in .so path\n"
    "  --episodes N    episodes to run (default 100)\n"
    "  --seed S        environment seed (default 0)\n"
    "  --stochastic    sample actions instead of argmax / mean\n"
    "  --max-episode-steps N  cut an episode after N steps (default 100000), counted as\n"
    "                  truncated; guards against environments that never end\n"
    "Exit status: 0 done, 1 runtime failure (e.g. the environment returned a non-finite\n"
    "reward or observation), 2 bad arguments.\n";

typedef struct eval_args {
    const char *model, *env, *run;
    char run_model[4096 + 32], run_env[512];
    uint64_t episodes;
    uint64_t seed;
    uint64_t max_episode_steps;
    bool stochastic;
} eval_args;

/* read_run_env copies train.env of RUN/config.json into out; -1 after a message. */
static int read_run_env(const char *run, char *out, size_t cap, FILE *err)
{
    char path[4096 + 32];
    snprintf(path, sizeof path, "%s/config.json", run);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(err, "relay eval: %s is not a run directory (cannot open %s: %s)\n", run, path,
                strerror(errno));
        return -1;
    }
    char *text = malloc(1 << 20);
    size_t n = text ? fread(text, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (!text)
        return -1;
    text[n] = '\0';
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *train = root ? cJSON_GetObjectItemCaseSensitive(root, "train") : NULL;
    const cJSON *env = train ? cJSON_GetObjectItemCaseSensitive(train, "env") : NULL;
    int rc = 0;
    if (!cJSON_IsString(env) || strlen(env->valuestring) >= cap) {
        fprintf(err, "relay eval: %s has no train.env; give --env\n", path);
        rc = -1;
    } else {
        snprintf(out, cap, "%s", env->valuestring);
    }
    cJSON_Delete(root);
    return rc;
}

static int parse_args(int argc, char **argv, eval_args *a, FILE *err)
{
    memset(a, 0, sizeof *a);
    a->episodes = 100;
    a->max_episode_steps = EVAL_DEFAULT_EPISODE_STEPS;
    rly_argp p = {.prog = "relay eval", .err = err};
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r = 0;
#define OPT(name) ((r = rly_arg_match(&p, argc, argv, &i, name, &v)) != 0)
        if (!strcmp(argv[i], "--stochastic")) {
            a->stochastic = true;
        } else if (!strcmp(argv[i], "--deterministic")) {
            a->stochastic = false;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(eval_usage, err);
            return 2;
        } else if (OPT("--model")) {
            a->model = v;
        } else if (OPT("--run")) {
            a->run = v;
        } else if (OPT("--env")) {
            a->env = v;
        } else if (OPT("--episodes")) {
            if (r > 0 && !rly_arg_u64(&p, "--episodes", v, 1, EVAL_MAX_EPISODES, &a->episodes))
                return 2;
        } else if (OPT("--seed")) {
            if (r > 0 && !rly_arg_u64(&p, "--seed", v, 0, UINT64_MAX, &a->seed))
                return 2;
        } else if (OPT("--max-episode-steps")) {
            if (r > 0 && !rly_arg_u64(&p, "--max-episode-steps", v, 1, EVAL_MAX_EPISODE_STEPS,
                                      &a->max_episode_steps))
                return 2;
        } else {
            rly_arg_unknown(&p, argv[i]);
            return 2;
        }
#undef OPT
        if (r < 0)
            return 2;
    }
    /* a run directory given as --model is a --run */
    char probe[4096 + 32];
    struct stat sb;
    if (!a->run && a->model && strlen(a->model) < 4096) {
        snprintf(probe, sizeof probe, "%s/config.json", a->model);
        if (stat(probe, &sb) == 0) {
            a->run = a->model;
            a->model = NULL;
        }
    }
    if (a->run) {
        if (a->model) {
            fprintf(err, "relay eval: give --run or --model, not both\n");
            return 2;
        }
        if (strlen(a->run) >= 4096) {
            fprintf(err, "relay eval: --run: the path is too long\n");
            return 2;
        }
        snprintf(a->run_model, sizeof a->run_model, "%s/policy.onnx", a->run);
        a->model = a->run_model;
        if (!a->env && read_run_env(a->run, a->run_env, sizeof a->run_env, err) != 0)
            return 2;
        if (!a->env)
            a->env = a->run_env;
    }
    if (!a->model || !a->env) {
        fprintf(err, "relay eval: --model and --env (or --run) are required\n%s", eval_usage);
        return 2;
    }
    return 0;
}

typedef struct xrng {
    uint64_t s;
} xrng;

static double xrng_uniform(xrng *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static double xrng_normal(xrng *r)
{
    double u = xrng_uniform(r), v = xrng_uniform(r);
    if (u < 1e-300)
        u = 1e-300;
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* choose_discrete picks argmax, or samples from softmax(out) (out already probabilities when
 * probs). */
static int32_t choose_discrete(const float *out, uint32_t n, bool stochastic, bool probs, xrng *rng)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (out[i] > out[best])
            best = i;
    if (!stochastic)
        return (int32_t)best;
    double w[RELAY_ENV_MAX_DIM > 1024 ? RELAY_ENV_MAX_DIM : 1024], tot = 0;
    for (uint32_t i = 0; i < n; i++) {
        w[i] = probs ? (out[i] > 0 ? out[i] : 0) : exp((double)out[i] - out[best]);
        tot += w[i];
    }
    double u = xrng_uniform(rng) * tot;
    for (uint32_t i = 0; i < n; i++) {
        if (u < w[i])
            return (int32_t)i;
        u -= w[i];
    }
    return (int32_t)best;
}

int rly_cli_eval_io(int argc, char **argv, FILE *out, FILE *err)
{
    eval_args a;
    int rc = parse_args(argc, argv, &a, err);
    if (rc)
        return rc;
    const relay_env_def *def = NULL;
    if (relay_env_resolve(a.env, &def) != RELAY_OK || !def) {
        fprintf(err, "relay eval: unknown environment '%s'\n", a.env);
        return 2;
    }
    relay_space os, as;
    memset(&os, 0, sizeof os);
    memset(&as, 0, sizeof as);
    def->spaces(&os, &as);
    if (os.discrete || (as.discrete ? as.n < 1 || as.n > 1024 : as.dim == 0)) {
        fprintf(err, "relay eval: environment '%s' has unsupported spaces\n", a.env);
        return 2;
    }
    relay_model *m = NULL;
    int64_t version = -1;
    struct stat sb;
    relay_err e;
    if (stat(a.model, &sb) != 0) {
        fprintf(err, "relay eval: cannot open model '%s': %s\n", a.model, strerror(errno));
        return 2;
    }
    if (S_ISDIR(sb.st_mode)) {
        relay_bundle *b = NULL;
        if ((e = relay_bundle_load(a.model, &b))) {
            fprintf(err, "relay eval: cannot load bundle '%s': %s\n", a.model, relay_strerror(e));
            return 2;
        }
        version = relay_bundle_meta(b)->version;
        m = relay_bundle_take_model(b);
        relay_bundle_free(b);
    } else if ((e = relay_model_load_onnx(a.model, &m))) {
        fprintf(err, "relay eval: cannot load ONNX model '%s': %s\n", a.model, relay_strerror(e));
        return 2;
    }
    uint32_t in = relay_model_in_dim(m), od = relay_model_out_dim(m);
    uint32_t ad = as.discrete ? (uint32_t)as.n : as.dim;
    if (in != os.dim) {
        fprintf(err, "relay eval: model takes %u inputs but %s observations have %u values\n", in,
                def->name, os.dim);
        relay_model_free(m);
        return 2;
    }
    if (as.discrete ? od != ad : od != ad && od != 2 * ad) {
        fprintf(err, "relay eval: model gives %u outputs but %s needs %u (%s)\n", od, def->name, ad,
                as.discrete ? "one logit or probability per action" : "the action mean");
        relay_model_free(m);
        return 2;
    }
    if (a.stochastic && !as.discrete && od != 2 * ad) {
        fprintf(err,
                "relay eval: --stochastic with continuous actions needs a model that outputs "
                "mean and log std (%u values)\n",
                2 * ad);
        relay_model_free(m);
        return 2;
    }
    bool probs = relay_model_output_is_softmax(m);
    relay_vecenv *venv = NULL;
    float *buf = NULL;
    double *rets = NULL;
    rc = 1;
    if ((e = relay_vecenv_new(def, 1, a.seed, &venv)) || (e = relay_model_reserve(m, 1))) {
        fprintf(err, "relay eval: %s\n", relay_strerror(e));
        goto out;
    }
    buf = calloc((size_t)os.dim + od + ad, sizeof(float));
    rets = calloc((size_t)a.episodes, sizeof(double));
    if (!buf || !rets) {
        fprintf(err, "relay eval: out of memory\n");
        goto out;
    }
    float *obs = buf, *o = buf + os.dim, *act_f = o + od;
    xrng rng = {a.seed ^ 0x243f6a8885a308d3ULL};
    relay_vecenv_reset(venv, obs);
    uint64_t done = 0, capped = 0;
    uint64_t steps = 0, ep_steps = 0;
    double ret = 0;
    while (done < a.episodes) {
        if ((e = relay_model_forward(m, obs, 1, o))) {
            fprintf(err, "relay eval: inference failed: %s\n", relay_strerror(e));
            goto out;
        }
        int32_t act_i = 0;
        if (as.discrete) {
            act_i = choose_discrete(o, ad, a.stochastic, probs, &rng);
        } else {
            for (uint32_t i = 0; i < ad; i++) {
                double v = o[i];
                if (a.stochastic)
                    v += exp(o[ad + i]) * xrng_normal(&rng);
                act_f[i] = (float)(v < as.low[i] ? as.low[i] : v > as.high[i] ? as.high[i] : v);
            }
        }
        float r;
        bool term, trunc;
        relay_vecenv_step(venv, as.discrete ? (const void *)&act_i : (const void *)act_f, obs, &r,
                          &term, &trunc, NULL);
        if (!isfinite(r)) {
            fprintf(err,
                    "relay eval: environment %s returned a non-finite reward (%g) at step %llu "
                    "of episode %llu\n",
                    def->name, (double)r, (unsigned long long)ep_steps, (unsigned long long)done);
            goto out;
        }
        for (uint32_t i = 0; i < os.dim; i++)
            if (!isfinite(obs[i])) {
                fprintf(err,
                        "relay eval: environment %s returned a non-finite observation (element "
                        "%u is %g) at step %llu of episode %llu\n",
                        def->name, i, (double)obs[i], (unsigned long long)ep_steps,
                        (unsigned long long)done);
                goto out;
            }
        ret += r;
        steps++;
        ep_steps++;
        bool cap = !term && !trunc && ep_steps >= a.max_episode_steps;
        if (term || trunc || cap) {
            rets[done++] = ret;
            ret = 0;
            ep_steps = 0;
            if (cap) {
                capped++;
                relay_vecenv_reset(venv, obs);
            }
        }
    }
    double mean = 0, var = 0, lo = rets[0], hi = rets[0];
    for (uint64_t i = 0; i < done; i++) {
        mean += rets[i];
        lo = rets[i] < lo ? rets[i] : lo;
        hi = rets[i] > hi ? rets[i] : hi;
    }
    mean /= (double)done;
    for (uint64_t i = 0; i < done; i++)
        var += (rets[i] - mean) * (rets[i] - mean);
    var /= (double)done;
    fprintf(out, "env %s\n", def->name);
    fprintf(out, "model %s", a.model);
    if (version >= 0)
        fprintf(out, " (version %lld)", (long long)version);
    fprintf(out, "\npolicy %s\nseed %llu\n", a.stochastic ? "stochastic" : "deterministic",
            (unsigned long long)a.seed);
    fprintf(out, "episodes %llu\n", (unsigned long long)done);
    if (capped)
        fprintf(out, "capped_episodes %llu (cut after %llu steps: --max-episode-steps)\n",
                (unsigned long long)capped, (unsigned long long)a.max_episode_steps);
    fprintf(out, "mean_return %.4f\nstd_return %.4f\nmin_return %.4f\nmax_return %.4f\n", mean,
            sqrt(var), lo, hi);
    fprintf(out, "mean_length %.2f\n", (double)steps / (double)done);
    rc = 0;
out:
    free(buf);
    free(rets);
    relay_vecenv_free(venv);
    relay_model_free(m);
    return rc;
}

int rly_cli_eval(int argc, char **argv)
{
    return rly_cli_eval_io(argc, argv, stdout, stderr);
}
