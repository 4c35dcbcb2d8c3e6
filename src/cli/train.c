/*
 * `relay train`: actors step their environments on routers, trajectories flow through the data
 * plane to an in-process learner, and each new policy flows back to every actor as a ModelUpdate
 * message through the dispatcher. This file parses the command line and signals; the driver itself
 * is rly_train_run (train_run.c, also public as relay_train_run in relay/train.h).
 */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/train_eval.h"
#include "cli/train_run.h"
#include "core/clock.h"
#include "obs/obs.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: relay train [--env NAME] [--algo ppo|reinforce] [--actors N]\n"
        "                   [--envs-per-actor K] [--routers R] [--steps S] [--seed X]\n"
        "                   [--target RETURN] [--config FILE.json] [--out DIR]\n"
        "                   [--sink arrow|csv|binary|none] [--max-seconds T] [--quiet]\n"
        "                   [--verbose] [--metrics-addr HOST:PORT]\n"
        "                   [--eval-every N] [--eval-episodes K] [--save-every N]\n"
        "                   [--resume RUN_DIR] [--init-model POLICY.onnx] [--max-updates N]\n"
        "Trains until the mean return of the last 100 episodes reaches the target (CartPole-v1:\n"
        "475) or the step budget (the zoo's, by default) is spent. See docs/CLI.md.\n");
    rly_hparams_usage(f);
}

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/*
 * install_signals runs before anything else of `relay train`: the first SIGINT/SIGTERM asks for a
 * graceful stop (files completed), a second one ends the process (SA_RESETHAND); SIGPIPE is
 * ignored so a closed stdout (`relay train | head`) cannot kill the run halfway through its files.
 */
static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* keep_going is the run's poll: it stops the run on SIGINT or SIGTERM. */
static bool keep_going(const relay_train_result *now, void *user)
{
    (void)now;
    (void)user;
    return !interrupted;
}

int rly_cli_train(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--distributed") == 0)
            return rly_cli_train_distributed(argc, argv);
    install_signals();
    const int64_t t0 = rly_now_ns(); /* --max-seconds counts from here */
    rly_train_config fc;
    rly_train_config_default(&fc);
    rly_train_opts *o = &fc.train;
    bool quiet = false;
    const char *config_path = NULL;

    rly_argp p = {.prog = "relay train", .err = stderr};
    /* First pass: the config file, so command-line options override it. */
    const char *resume_dir = NULL;
    static char resume_cfg[RELAY_PATH_MAX + 32];
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = rly_arg_match(&p, argc, argv, &i, "--config", &v);
        if (r == 0 && (r = rly_arg_match(&p, argc, argv, &i, "--resume", &v)) > 0) {
            /* --resume RUN: RUN/config.json is the configuration, RUN the run directory */
            if (strlen(v) >= sizeof o->out - 32)
                return rly_arg_fail(&p, "--resume: the path is longer than %zu bytes",
                                    sizeof o->out - 33);
            resume_dir = v;
            snprintf(resume_cfg, sizeof resume_cfg, "%s/config.json", v);
            v = resume_cfg;
        }
        if (r < 0)
            return 2;
        if (r > 0)
            config_path = v;
    }
    if (config_path) {
        char *text = NULL;
        relay_err e = rly_cfg_read_file(config_path, &text);
        if (!e)
            e = rly_train_config_parse(&fc, text);
        free(text);
        if (e) {
            fprintf(stderr, "relay train: configuration %s rejected: %s\n", config_path,
                    relay_strerror(e));
            return 2;
        }
    }
    if (resume_dir) {
        snprintf(o->out, sizeof o->out, "%s", resume_dir);
        o->resume = true;
    }
    static const char *const algos[] = {"ppo", "reinforce", NULL};
    rly_hparams cli_hp; /* hyperparameter flags, applied to the section of the final --algo */
    memset(&cli_hp, 0, sizeof cli_hp);
    static const char *const sinks[] = {"none", "arrow", "csv", "binary", NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        int k, r = 0;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = true;
            continue;
        }
        if (strcmp(a, "--verbose") == 0) {
            o->verbose = true;
            continue;
        }
#define OPT(name) ((r = rly_arg_match(&p, argc, argv, &i, name, &v)) != 0)
        if (OPT("--config") || OPT("--resume")) {
            /* read above */
        } else if (OPT("--env")) {
            if (r > 0 && strlen(v) >= sizeof o->env)
                return rly_arg_fail(&p, "--env: the name is longer than %zu bytes",
                                    sizeof o->env - 1);
            if (r > 0)
                snprintf(o->env, sizeof o->env, "%s", v);
        } else if (OPT("--algo")) {
            if (r > 0 && !rly_arg_choice(&p, "--algo", v, algos, &k))
                return 2;
            if (r > 0)
                snprintf(o->algo, sizeof o->algo, "%s", v);
        } else if (OPT("--sink")) {
            if (r > 0 && !rly_arg_choice(&p, "--sink", v, sinks, &k))
                return 2;
            if (r > 0)
                snprintf(o->sink, sizeof o->sink, "%s", v);
        } else if (OPT("--out")) {
            if (r > 0 && strlen(v) >= sizeof o->out)
                return rly_arg_fail(&p, "--out: the path is longer than %zu bytes",
                                    sizeof o->out - 1);
            if (r > 0)
                snprintf(o->out, sizeof o->out, "%s", v);
        } else if (OPT("--target")) {
            if (r > 0 && !rly_arg_float(&p, "--target", v, -1e30f, 1e30f, &o->target))
                return 2;
            o->target_set = true;
        } else if (OPT("--eval-every")) {
            if (r > 0 && !rly_arg_u32(&p, "--eval-every", v, 0, 1000000000, &o->eval_every))
                return 2;
        } else if (OPT("--eval-episodes")) {
            if (r > 0 &&
                !rly_arg_u32(&p, "--eval-episodes", v, 1, RLY_EVAL_MAX_EPISODES, &o->eval_episodes))
                return 2;
        } else if (OPT("--init-model")) {
            if (r > 0 && strlen(v) >= sizeof o->init_model)
                return rly_arg_fail(&p, "--init-model: the path is longer than %zu bytes",
                                    sizeof o->init_model - 1);
            if (r > 0)
                snprintf(o->init_model, sizeof o->init_model, "%s", v);
        } else if (OPT("--max-updates")) {
            if (r > 0 && !rly_arg_u32(&p, "--max-updates", v, 0, 1000000000, &o->max_updates))
                return 2;
        } else if (OPT("--save-every")) {
            if (r > 0 && !rly_arg_u32(&p, "--save-every", v, 0, 1000000000, &o->save_every))
                return 2;
        } else if (OPT("--actors")) {
            if (r > 0 && !rly_arg_u32(&p, "--actors", v, 1, RLY_TRAIN_MAX_ACTORS, &o->actors))
                return 2;
        } else if (OPT("--envs-per-actor")) {
            if (r > 0 && !rly_arg_u32(&p, "--envs-per-actor", v, 1, RLY_TRAIN_MAX_ENVS_PER_ACTOR,
                                      &o->envs_per_actor))
                return 2;
        } else if (OPT("--routers")) {
            if (r > 0 && !rly_arg_u32(&p, "--routers", v, 1, RELAY_MAX_ROUTERS, &fc.agent.routers))
                return 2;
        } else if (OPT("--steps")) {
            if (r > 0 && !rly_arg_u64(&p, "--steps", v, 1, RLY_TRAIN_MAX_STEPS, &o->steps))
                return 2;
        } else if (OPT("--seed")) {
            if (r > 0 && !rly_arg_u64(&p, "--seed", v, 0, UINT64_MAX, &o->seed))
                return 2;
        } else if (OPT("--metrics-addr")) {
            if (r > 0 && rly_obs_cli_check_addr(v, "relay train", fc.agent.metrics_addr,
                                                sizeof fc.agent.metrics_addr) != RELAY_OK)
                return 2;
        } else if (OPT("--max-seconds")) {
            if (r > 0 &&
                !rly_arg_u32(&p, "--max-seconds", v, 0, RLY_TRAIN_MAX_SECONDS, &o->max_seconds))
                return 2;
        } else if ((r = rly_hparams_flag(&cli_hp, &p, argc, argv, &i)) != 0) {
            /* parsed into cli_hp (r > 0) or reported (r < 0) */
        } else {
            return rly_arg_unknown(&p, a);
        }
#undef OPT
        if (r < 0)
            return 2;
    }
    if ((uint64_t)o->actors * (o->envs_per_actor ? o->envs_per_actor : 1) > RLY_TRAIN_MAX_STREAMS)
        return rly_arg_fail(&p,
                            "--actors %u x --envs-per-actor %u = %llu environments is above the "
                            "maximum %u",
                            o->actors, o->envs_per_actor,
                            (unsigned long long)o->actors * o->envs_per_actor,
                            RLY_TRAIN_MAX_STREAMS);

    rly_hparams_merge(strcmp(o->algo, "reinforce") == 0 ? &fc.reinforce : &fc.ppo, &cli_hp);
    const relay_env_def *env = NULL;
    if (relay_env_resolve(o->env, &env) != RELAY_OK) {
        fprintf(stderr, "relay train: unknown environment \"%s\"\n", o->env);
        return 2;
    }
    o->t0_ns = t0;
    relay_train_result res;
    relay_err e = rly_train_run(&fc, quiet ? NULL : stderr, keep_going, NULL, &res);
    if (e == RELAY_EUNSUPPORTED) {
        fprintf(stderr, "relay train: environment %s has unsupported spaces\n", o->env);
        return 2;
    }
    if (e && res.stop_reason[0] == '\0') {
        /* Refused before training (the log line above says why): 2 for what the user can fix
           in the arguments (an --out that holds a run or is a file, sizes), 1 otherwise. */
        fprintf(stderr, "relay train: cannot run: %s\n", relay_strerror(e));
        bool user = e == RELAY_EEXIST || e == RELAY_ETOOBIG || e == RELAY_ECONFIG ||
                    e == RELAY_ECHECKSUM || e == RELAY_ETRUNCATED || e == RELAY_EFORMAT ||
                    e == RELAY_EVERSION || e == RELAY_ESHAPE; /* incl. a bad --resume checkpoint */
        return user ? 2 : 1;
    }
    printf("%s: %s after %llu steps, %u updates, %.2f s (%.0f steps/s); mean return (last 100) "
           "%.1f over %llu episodes; policy version %lld; files in %s\n",
           o->env, res.stop_reason, (unsigned long long)res.steps, res.updates, res.seconds,
           res.steps_per_second, res.mean_return_100, (unsigned long long)res.episodes,
           (long long)res.version, res.out_dir);
    fflush(stdout); /* a closed stdout (EPIPE) is not an error of the run: files are complete */
    if (e == RELAY_EIO) {
        fprintf(stderr,
                "relay train: some output files of %s could not be written (see the "
                "errors above)\n",
                res.out_dir);
        return 1;
    }
    /* 0: target reached, interrupted by the user, or the budget spent with no target set;
       3: a target was set (--target or train.target) and the budget or time limit ran out first. */
    return e ? 1 : (res.target_reached || interrupted || !o->target_set) ? 0 : 3;
}
