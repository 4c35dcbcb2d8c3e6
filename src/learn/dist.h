/* Action distributions: masked categorical over logits and diagonal Gaussian with log-std. */
#ifndef RLY_LEARN_DIST_H
#define RLY_LEARN_DIST_H

#include <stdbool.h>
#include <stdint.h>

/* RLY_MASKED_LOGIT replaces the logits of forbidden actions (probability exp(-1e8) == 0). */
#define RLY_MASKED_LOGIT (-1e8f)

/*
 * rly_cat_logprobs writes log-probabilities of k logits to logp (forbidden actions, mask[i] == 0,
 * get RLY_MASKED_LOGIT - logsumexp and probability 0); mask may be NULL. Returns false when the
 * mask forbids every action.
 */
bool rly_cat_logprobs(const float *logits, const uint8_t *mask, uint32_t k, float *logp);

/* rly_cat_entropy returns -sum p log p over the allowed actions of a log-probability row. */
float rly_cat_entropy(const float *logp, const uint8_t *mask, uint32_t k);

/* rly_cat_sample draws an allowed action given log-probabilities and a uniform u in [0, 1). */
uint32_t rly_cat_sample(const float *logp, const uint8_t *mask, uint32_t k, double u);

/* rly_cat_argmax returns the most probable allowed action. */
uint32_t rly_cat_argmax(const float *logp, const uint8_t *mask, uint32_t k);

/* rly_gauss_logp returns the log-density of a under N(mu, exp(log_std)^2), summed over d dims. */
float rly_gauss_logp(const float *a, const float *mu, const float *log_std, uint32_t d);

/* rly_gauss_entropy returns the entropy of the diagonal Gaussian, summed over d dims. */
float rly_gauss_entropy(const float *log_std, uint32_t d);

#endif
