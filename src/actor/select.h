/*
 * Action selection from model outputs, with the actor's seeded RNG (core/rng.h).
 *
 * Discrete policies output logits; a mask (1 = allowed, 0 = forbidden) removes actions by
 * setting their logits to -inf before the softmax, so masked actions have probability exactly
 * zero. Continuous policies output the Gaussian mean; the standard deviation is exp(log_std), a
 * state-independent parameter. Log-probabilities are of the unclipped sample; the environment
 * receives the sample clipped to the action bounds.
 */
#ifndef RLY_ACTOR_SELECT_H
#define RLY_ACTOR_SELECT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rng.h"
#include "relay/err.h"

/* RLY_SELECT_MAX_DIM bounds a Gaussian action's dimensions (= RELAY_ENV_MAX_DIM). */
#define RLY_SELECT_MAX_DIM 256

/*
 * rly_select_categorical picks an action from n logits (masked by mask[n] when not NULL) by
 * sampling, or the most likely one when deterministic; writes its log-probability to *logp.
 * RELAY_EINVAL when the mask forbids every action.
 */
relay_err rly_select_categorical(const float *logits, const uint8_t *mask, uint32_t n,
                                 bool deterministic, rly_rng *rng, int32_t *action, float *logp);

/*
 * rly_select_categorical_u is rly_select_categorical with the uniform draw in [0, 1) given (the
 * one rly_select_categorical would take from the RNG): a server selecting for a remote actor with
 * the actor's own draw picks what the actor would have picked locally.
 */
relay_err rly_select_categorical_u(const float *logits, const uint8_t *mask, uint32_t n,
                                   bool deterministic, double uniform, int32_t *action,
                                   float *logp);

/*
 * rly_select_gaussian samples a = mean + exp(log_std) * eps (or a = mean when deterministic)
 * for dim dimensions, writes a to action, a clipped to [low, high] to env_action (bounds may be
 * NULL for unbounded), and the log-probability of a to *logp.
 */
void rly_select_gaussian(const float *mean, const float *log_std, uint32_t dim, bool deterministic,
                         rly_rng *rng, const float *low, const float *high, float *action,
                         float *env_action, float *logp);

/*
 * rly_select_gaussian_eps is rly_select_gaussian with the standard normal draws given (normals
 * [dim], NULL for the mean), for remote selection with an actor's own draws.
 */
void rly_select_gaussian_eps(const float *mean, const float *log_std, uint32_t dim,
                             const double *normals, const float *low, const float *high,
                             float *action, float *env_action, float *logp);

#endif
