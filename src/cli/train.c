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

#include "cli/train_run.h"

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

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
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
    rly_train_config fc;
    rly_train_config_default(&fc);
    rly_train_opts *o = &fc.train;
    bool quiet = false;
    const char *config_path = NULL;

    /* First pass: the config file, so command-line options override it. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config_path = argv[i + 1];
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
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    relay_train_result res;
    relay_err e = rly_train_run(&fc, quiet ? NULL : stderr, keep_going, NULL, &res);
    if (e == RELAY_EUNSUPPORTED) {
        fprintf(stderr, "relay train: environment %s has unsupported spaces\n", o->env);
        return 2;
    }
    if (e && res.stop_reason[0] == '\0') {
        fprintf(stderr, "relay train: cannot run: %s\n", relay_strerror(e));
        return 1;
    }
    printf("%s: %s after %llu steps, %u updates, %.2f s (%.0f steps/s); mean return (last 100) "
           "%.1f over %llu episodes; policy version %lld; files in %s\n",
           o->env, res.stop_reason, (unsigned long long)res.steps, res.updates, res.seconds,
           res.steps_per_second, res.mean_return_100, (unsigned long long)res.episodes,
           (long long)res.version, res.out_dir);
    /* 0: target reached (or interrupted by the user); 3: budget or time limit spent first. */
    return e ? 1 : (res.target_reached || interrupted) ? 0 : 3;
}
