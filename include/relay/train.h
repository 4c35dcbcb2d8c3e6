/*
 * `relay train` as a library call: actors step a built-in or plug-in environment on routers, their
 * trajectories feed an in-process PPO/REINFORCE learner, and new policies flow back to the actors,
 * until the target mean return, the step budget, the time limit, or the caller's poll says stop.
 * The run directory (config.json, metrics.csv, learning_curve.svg, policy.onnx, trajectories/) is
 * the one `relay train` writes; the CLI is a thin wrapper over relay_train_run.
 *
 * Threads: relay_train_run blocks the calling thread, which only sleeps and calls poll (about
 * every 5 ms); everything else runs on the agent's and the learner's own threads. The call
 * installs no signal handler: a caller that wants Ctrl-C to stop the run makes poll return false.
 * Ownership: the config text and result belong to the caller; nothing is retained after return.
 */
#ifndef RELAY_TRAIN_H
#define RELAY_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/err.h"
#include "relay/export.h"
#include "relay/learn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* relay_train_result reports a run's progress (during poll) and its outcome (after return). */
typedef struct relay_train_result {
    uint64_t steps;        /* environment steps consumed by updates */
    uint64_t episodes;     /* finished episodes */
    uint32_t updates;      /* learner updates */
    int64_t version;       /* newest policy version */
    float mean_return_100; /* mean return of the last <= 100 episodes (NaN before the first) */
    float target;          /* the target mean return in effect */
    double seconds;        /* learner wall time */
    double steps_per_second;
    bool target_reached;    /* >= 100 episodes and mean_return_100 >= target */
    char stop_reason[32];   /* "target reached", "step budget spent", "interrupted", ... */
    char out_dir[512];      /* the run directory */
    relay_ppo_metrics last; /* the last update's losses and statistics */
} relay_train_result;

/* relay_train_poll_fn sees the latest counters about every 5 ms; returning false stops the run. */
typedef bool (*relay_train_poll_fn)(const relay_train_result *now, void *user);

/*
 * relay_train_run trains as `relay train --config` would with config_json (agent keys at the top,
 * training keys under "train": env, algo, actors, envs_per_actor, steps, seed, target, out, sink,
 * max_seconds, policy_lag, eval_every, eval_episodes, save_every; hyperparameters under "ppo" or
 * "reinforce", docs/CLI.md; NULL or "{}" for every default) and fills result (may be NULL). A bad
 * config is RELAY_ECONFIG/RELAY_EFORMAT, an unknown env RELAY_ENOTFOUND, each logged with the
 * cause; a run that stops early (budget, poll) still returns RELAY_OK with its stop_reason.
 * progress (true) prints `relay train`'s progress line on stderr.
 */
RELAY_API relay_err relay_train_run(const char *config_json, bool progress,
                                    relay_train_poll_fn poll, void *user,
                                    relay_train_result *result);

/* relay_policy_export_onnx serialises p's action network as ONNX (*bytes malloc'd, caller frees).
 */
RELAY_API relay_err relay_policy_export_onnx(const relay_policy *p, uint8_t **bytes, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
