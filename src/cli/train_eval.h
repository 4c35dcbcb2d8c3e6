/*
 * Evaluation during `relay train`: K episodes of the deterministic policy (argmax / mean) on
 * their own environment copies and seeds, run as one batch, on the learner thread between updates
 * (the policy is read, never changed, so training is unaffected).
 */
#ifndef RLY_CLI_TRAIN_EVAL_H
#define RLY_CLI_TRAIN_EVAL_H

#include <stdint.h>

#include "relay/env.h"
#include "relay/learn.h"

/* RLY_EVAL_MAX_EPISODES bounds --eval-episodes. */
#define RLY_EVAL_MAX_EPISODES 1000u

/* rly_train_evaluator owns the evaluation envs and buffers (one thread). */
typedef struct rly_train_evaluator rly_train_evaluator;

/* rly_train_evaluator_new prepares episodes evaluation episodes of env. */
relay_err rly_train_evaluator_new(const relay_env_def *env, uint32_t episodes,
                                  rly_train_evaluator **out);

/* rly_train_evaluator_free frees e; NULL is a no-op. */
void rly_train_evaluator_free(rly_train_evaluator *e);

/*
 * rly_train_evaluate runs every episode once with p acting deterministically from envs seeded
 * with seed + i, and writes the mean and standard deviation of the returns.
 */
relay_err rly_train_evaluate(rly_train_evaluator *e, relay_policy *p, uint64_t seed, double *mean,
                             double *std);

#endif
