/*
 * Evaluation during training and checkpoints of `relay train` (--eval-every, --eval-episodes,
 * --save-every, --resume): run on the learner thread from on_update, between updates, and once
 * more at the end. Owns the evaluation curve, the best evaluated return and policy.onnx while
 * training (best evaluated policy; policy_last.onnx is the last one).
 */
#ifndef RLY_CLI_TRAIN_EXTRAS_H
#define RLY_CLI_TRAIN_EXTRAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli/cli_support.h"
#include "cli/train_eval.h"
#include "cli/train_snap.h"
#include "learn/learner.h"

/* RLY_TRAIN_CKPT_NAME is the checkpoint file inside a run directory. */
#define RLY_TRAIN_CKPT_NAME "checkpoint.ckpt"

typedef struct rly_train_extras {
    const char *out; /* run directory */
    uint32_t eval_every, save_every;
    uint64_t eval_seed;
    rly_train_evaluator *ev;
    double *eval_steps, *eval_returns;
    size_t n_eval, cap_eval;
    double best;         /* best evaluated mean return (-inf before the first) */
    bool best_written;   /* policy.onnx holds the best evaluated policy */
    relay_err error;     /* first write error (learner thread) */
    double eval_seconds; /* time spent evaluating */
    double ckpt_seconds; /* time spent writing checkpoints */
    uint32_t evals, ckpts;
    uint8_t *best_onnx; /* bytes of policy.onnx while it holds the best evaluated policy */
    size_t best_len;
    /* exact resume: the actors' snapshots (NULL: checkpoints hold none), set by the driver */
    rly_train_snaps *snaps;
    const char *env_name;
    uint32_t envs_per_actor;
    bool warned_snaps;
} rly_train_extras;

/* rly_train_extras_init prepares evaluation (eval_every > 0) and checkpoints (save_every > 0). */
relay_err rly_train_extras_init(rly_train_extras *x, const char *out, const relay_env_def *env,
                                uint32_t eval_every, uint32_t eval_episodes, uint32_t save_every,
                                uint64_t seed);

/* rly_train_extras_fini frees x's buffers. */
void rly_train_extras_fini(rly_train_extras *x);

/* rly_train_extras_eval runs on the learner thread after an update: evaluates when due (row
   receives the eval columns; policy.onnx is rewritten when the policy is the best so far). */
void rly_train_extras_eval(rly_train_extras *x, rly_learner *l, const rly_learner_stats *st,
                           rly_metrics_row *row);

/*
 * rly_train_extras_save_due runs on the learner thread after the update's metrics row was
 * written: saves a checkpoint when due, with the caller blob (below) holding the training curve
 * (curve_steps/returns, n), the evaluation curve, the best policy's bytes and, with snaps, every
 * actor's snapshot of the version just published.
 */
void rly_train_extras_save_due(rly_train_extras *x, rly_learner *l, const rly_learner_stats *st,
                               const double *curve_steps, const double *curve_returns,
                               size_t n_curve);

/*
 * rly_train_extras_resume restores the curves, best return and best policy (policy.onnx is
 * rewritten from the checkpoint) from l's resumed checkpoint blob; the training curve points go
 * to *steps and *returns (malloc'd, caller frees); *acts / *acts_len receive the "actor
 * snapshots" section (inside l's blob; NULL when the checkpoint has none). A malformed section is
 * an error naming it.
 */
relay_err rly_train_extras_resume(rly_train_extras *x, rly_learner *l, double **steps,
                                  double **returns, size_t *n, const uint8_t **acts,
                                  size_t *acts_len);

/*
 * rly_train_extras_finish runs after the learner stopped: writes a final checkpoint (when saving;
 * before the final evaluation, so a resumed run continues from what the uninterrupted run had),
 * evaluates the last policy (when evaluating), writes policy_last.onnx and policy.onnx (the best
 * evaluated policy, else the last). Errors are logged naming the file.
 */
relay_err rly_train_extras_finish(rly_train_extras *x, rly_learner *l, int64_t version,
                                  uint64_t steps, const double *curve_steps,
                                  const double *curve_returns, size_t n_curve);

#endif
