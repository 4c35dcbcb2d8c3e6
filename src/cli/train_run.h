/*
 * The training driver behind `relay train` and relay_train_run: its configuration (agent keys plus
 * the "train" section) and the run itself. The CLI parses flags into an rly_train_config and calls
 * rly_train_run; the public relay_train_run parses JSON into one and calls the same function.
 */
#ifndef RLY_CLI_TRAIN_RUN_H
#define RLY_CLI_TRAIN_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include "agent/config.h"
#include "cli/hparams.h"
#include "relay/relay.h"
#include "relay/train.h"

/* Documented maxima of `relay train` (docs/CLI.md), enforced for flags and the config alike. */
#define RLY_TRAIN_MAX_ACTORS 4096u
#define RLY_TRAIN_MAX_ENVS_PER_ACTOR 4096u
#define RLY_TRAIN_MAX_STREAMS 16384u /* actors x envs_per_actor */
#define RLY_TRAIN_MAX_STEPS 1000000000000ull
#define RLY_TRAIN_MAX_SECONDS (86400u * 30u)

/* rly_train_opts are the training options (command line and the config's "train" section). */
typedef struct rly_train_opts {
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
    int64_t t0_ns; /* monotonic time max_seconds counts from (0: the start of rly_train_run) */
    bool verbose;  /* progress lines also show the time breakdown (command line only) */
    uint32_t eval_every;             /* evaluate every N updates (0: never) */
    uint32_t eval_episodes;          /* episodes per evaluation */
    uint32_t save_every;             /* checkpoint every N updates (0: never) */
    bool resume;                     /* continue the run in `out` from its checkpoint (--resume) */
    char init_model[RELAY_PATH_MAX]; /* warm start: a policy.onnx of the same architecture */
    uint32_t max_updates;            /* stop after this update (counted over the whole run, resumes
                                        included; 0: no limit). Command line only (--max-updates): not in
                                        config.json, so `--resume` does not inherit it */
} rly_train_opts;

/* Defaults of the evaluation and checkpoint intervals (docs/CLI.md, docs/PERFORMANCE.md). */
#define RLY_TRAIN_EVAL_EVERY 20u
#define RLY_TRAIN_EVAL_EPISODES 10u
#define RLY_TRAIN_SAVE_EVERY 50u

/* rly_train_config is the JSON layout: agent keys at the top, training keys under "train",
   hyperparameters under "ppo" / "reinforce" (cli/hparams.h; the one matching train.algo applies).
 */
typedef struct rly_train_config {
    relay_config agent;
    rly_train_opts train;
    rly_hparams ppo, reinforce;
} rly_train_config;

/* rly_train_config_default fills c with `relay train`'s defaults (CartPole-v1, PPO, 2 actors). */
void rly_train_config_default(rly_train_config *c);

/* rly_train_keys returns the agent keys followed by the training keys (caller frees). */
rly_cfg_key *rly_train_keys(size_t *n);

/* rly_train_config_parse applies JSON text over c's values and validates the agent part. */
relay_err rly_train_config_parse(rly_train_config *c, const char *json);

/*
 * rly_train_run resolves defaults (envs per actor, budget, target, out) in c, runs training and
 * fills res; progress (may be NULL) receives the progress line. Errors are logged, not printed.
 */
relay_err rly_train_run(rly_train_config *c, FILE *progress, relay_train_poll_fn poll, void *user,
                        relay_train_result *res);

#endif
