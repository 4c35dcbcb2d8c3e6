/*
 * Learning: a hand-written fp32 MLP policy (separate or shared actor/critic networks), PPO and
 * REINFORCE-with-baseline updates, and a synchronous trainer over relay_vecenv.
 *
 * The pieces are split so actors and the learner can live in different threads:
 *   (a) relay_policy: network weights + forward workspace; relay_policy_act maps an observation
 *       batch to actions, log-probabilities and values (one policy object per thread);
 *   (b) relay_rollout: a [n_steps x n_envs] buffer filled step by step (per env or lockstep);
 *   (c) relay_ppo_update: one learner update from a full rollout, with metrics;
 *   (d) relay_policy_get_params / relay_policy_set_params: the trainable parameters as one flat
 *       float array, described layer by layer by relay_policy_param_info (for ONNX export).
 * Nothing allocates after construction.
 */
#ifndef RELAY_LEARN_H
#define RELAY_LEARN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/env.h"
#include "relay/err.h"
#include "relay/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RELAY_LEARN_MAX_HIDDEN bounds the number of hidden layers of a network. */
#define RELAY_LEARN_MAX_HIDDEN 4
/* RELAY_LEARN_MAX_WIDTH bounds the width of any layer (observation, hidden or action). */
#define RELAY_LEARN_MAX_WIDTH 1024

/* relay_hidden_act selects the hidden-layer nonlinearity. */
typedef enum relay_hidden_act { RELAY_HIDDEN_TANH = 0, RELAY_HIDDEN_RELU = 1 } relay_hidden_act;

/* relay_algo selects the policy-gradient update. */
typedef enum relay_algo { RELAY_ALGO_PPO = 0, RELAY_ALGO_REINFORCE = 1 } relay_algo;

/* relay_policy_spec describes a policy network: spaces, hidden layers and parameterisation. */
typedef struct relay_policy_spec {
    uint32_t obs_dim;                 /* flat observation length */
    bool discrete;                    /* categorical (true) or diagonal Gaussian (false) actions */
    uint32_t n_actions;               /* discrete: number of actions */
    uint32_t act_dim;                 /* continuous: action length (1 for discrete) */
    float act_low[RELAY_ENV_MAX_DIM]; /* continuous: env bounds actions are clipped to */
    float act_high[RELAY_ENV_MAX_DIM];
    uint32_t n_hidden;                       /* hidden layers, 0..RELAY_LEARN_MAX_HIDDEN */
    uint32_t hidden[RELAY_LEARN_MAX_HIDDEN]; /* widths, e.g. {64, 64} */
    relay_hidden_act activation;
    bool shared;        /* true: one trunk with pi and vf heads; false: separate pi and vf nets */
    float log_std_init; /* continuous: initial state-independent log standard deviation */
    bool normalize_obs; /* keep running observation mean/var and feed normalised inputs */
    float clip_obs;     /* normalised observations are clipped to [-clip_obs, clip_obs] */
} relay_policy_spec;

/* relay_policy_spec_from_spaces fills s from env spaces with SB3 MlpPolicy defaults (64-64 tanh).
 */
RELAY_API relay_err relay_policy_spec_from_spaces(relay_policy_spec *s, const relay_space *obs,
                                                  const relay_space *act);

/* relay_policy is a network with its own forward workspace and RNG; use one per thread. */
typedef struct relay_policy relay_policy;

/* relay_policy_new builds spec's network, orthogonally initialised from seed, for batches <=
 * max_batch. */
RELAY_API relay_err relay_policy_new(const relay_policy_spec *spec, uint32_t max_batch,
                                     uint64_t seed, relay_policy **out);

/* relay_policy_free frees p; NULL is a no-op. */
RELAY_API void relay_policy_free(relay_policy *p);

/* relay_policy_get_spec returns the spec p was built from. */
RELAY_API const relay_policy_spec *relay_policy_get_spec(const relay_policy *p);

/*
 * relay_policy_act samples actions for n <= max_batch observations [n x obs_dim].
 * mask (discrete only, may be NULL) is [n x n_actions] with 0 = forbidden; each row needs one
 * allowed action. actions receives int32 [n] (discrete) or the unclipped float [n x act_dim]
 * Gaussian sample; env_actions (continuous, may be NULL) receives the sample clipped to the
 * bounds. logp [n] and values [n] may be NULL. deterministic picks the mode instead of sampling.
 */
RELAY_API relay_err relay_policy_act(relay_policy *p, const float *obs, uint32_t n,
                                     const uint8_t *mask, bool deterministic, void *actions,
                                     float *env_actions, float *logp, float *values);

/* relay_policy_value writes the critic's value of n <= max_batch observations to values [n]. */
RELAY_API relay_err relay_policy_value(relay_policy *p, const float *obs, uint32_t n,
                                       float *values);

/* relay_policy_num_params returns the length of the flat trainable parameter array. */
RELAY_API size_t relay_policy_num_params(const relay_policy *p);

/* relay_param_info describes one parameter tensor inside the flat array. */
typedef struct relay_param_info {
    char name[32]; /* e.g. "pi.0.weight", "vf.2.bias", "log_std" */
    size_t offset; /* first element in the flat array */
    uint32_t rows; /* weights: input width (row-major [in x out], so y = x W + b) */
    uint32_t cols; /* weights: output width; biases and log_std: rows = 1 */
} relay_param_info;

/*
 * relay_policy_param_info writes up to cap entries describing the flat layout and returns how
 * many tensors there are. Layers are listed input to output: separate nets give pi.* then vf.*
 * then log_std (continuous); shared nets give trunk.*, pi.*, vf.*, log_std.
 */
RELAY_API uint32_t relay_policy_param_info(const relay_policy *p, relay_param_info *info,
                                           uint32_t cap);

/* relay_policy_get_params copies the flat parameters to out (n must equal num_params). */
RELAY_API relay_err relay_policy_get_params(const relay_policy *p, float *out, size_t n);

/* relay_policy_set_params copies n (= num_params) flat parameters from in into p. */
RELAY_API relay_err relay_policy_set_params(relay_policy *p, const float *in, size_t n);

/* relay_policy_get_obs_norm copies the running observation mean and variance [obs_dim] each. */
RELAY_API void relay_policy_get_obs_norm(const relay_policy *p, float *mean, float *var);

/* relay_policy_set_obs_norm replaces the observation statistics (count = samples seen). */
RELAY_API void relay_policy_set_obs_norm(relay_policy *p, const float *mean, const float *var,
                                         double count);

/* relay_policy_copy_weights copies parameters and observation statistics from src to dst. */
RELAY_API relay_err relay_policy_copy_weights(relay_policy *dst, const relay_policy *src);

/* relay_rollout stores n_steps steps of n_envs streams and their advantages and returns. */
typedef struct relay_rollout relay_rollout;

/* relay_rollout_new allocates a rollout for policies of spec, n_envs streams of n_steps steps. */
RELAY_API relay_err relay_rollout_new(const relay_policy_spec *spec, uint32_t n_envs,
                                      uint32_t n_steps, relay_rollout **out);

/* relay_rollout_free frees r; NULL is a no-op. */
RELAY_API void relay_rollout_free(relay_rollout *r);

/* relay_rollout_clear empties r for the next collection. */
RELAY_API void relay_rollout_clear(relay_rollout *r);

/* relay_rollout_full reports whether every stream holds n_steps steps. */
RELAY_API bool relay_rollout_full(const relay_rollout *r);

/*
 * relay_rollout_add_env appends one step of stream env: the observation acted on, the action as
 * stored by relay_policy_act (int32 or unclipped floats), its mask row (NULL = all allowed), the
 * old log-probability and value, the reward, the end flags, and final_value = V(final obs) used
 * to bootstrap a truncated episode (ignored otherwise). RELAY_EFULL when the stream is full.
 */
RELAY_API relay_err relay_rollout_add_env(relay_rollout *r, uint32_t env, const float *obs,
                                          const void *action, const uint8_t *mask, float logp,
                                          float value, float reward, bool terminated,
                                          bool truncated, float final_value);

/* relay_rollout_add appends one lockstep step of all n_envs streams (arrays are [n_envs x ...]). */
RELAY_API relay_err relay_rollout_add(relay_rollout *r, const float *obs, const void *actions,
                                      const uint8_t *masks, const float *logp, const float *values,
                                      const float *rewards, const bool *terminated,
                                      const bool *truncated, const float *final_values);

/*
 * relay_rollout_finish computes GAE(gamma, lambda) advantages and returns of a full rollout;
 * last_values [n_envs] are V(obs after each stream's last step). Termination bootstraps with 0,
 * truncation with the step's final_value.
 */
RELAY_API relay_err relay_rollout_finish(relay_rollout *r, const float *last_values, float gamma,
                                         float gae_lambda);

/* relay_rollout_advantages returns the [n_steps x n_envs] advantages (valid after finish). */
RELAY_API const float *relay_rollout_advantages(const relay_rollout *r);

/* relay_rollout_returns returns the [n_steps x n_envs] value targets (valid after finish). */
RELAY_API const float *relay_rollout_returns(const relay_rollout *r);

/* relay_ppo_config holds the learner's hyperparameters (SB3 names and meanings). */
typedef struct relay_ppo_config {
    relay_algo algo;     /* PPO or REINFORCE with a learned baseline */
    uint32_t n_envs;     /* environment copies stepped in lockstep by the trainer */
    uint32_t n_steps;    /* steps per env per rollout */
    uint32_t batch_size; /* minibatch size (PPO) */
    uint32_t n_epochs;   /* passes over the rollout per update (PPO) */
    float gamma, gae_lambda;
    float learning_rate;
    bool lr_linear; /* anneal learning_rate linearly to 0 over total_timesteps */
    float clip_range;
    bool clip_linear;    /* anneal clip_range linearly to 0 over total_timesteps */
    float clip_range_vf; /* <= 0: value predictions are not clipped */
    float ent_coef, vf_coef;
    float max_grad_norm; /* <= 0: no clipping */
    float target_kl;     /* <= 0: no early stop */
    bool normalize_advantage;
    float adam_eps;
    /* Reward normalisation (SB3 VecNormalize's norm_reward): rewards are divided by the standard
       deviation of a running discounted return (per stream, reset at episode ends) and clipped to
       +-clip_reward (<= 0: no clip); applied by relay_ppo_normalize_rewards. */
    bool normalize_reward;
    float clip_reward;
    uint64_t total_timesteps;
    uint64_t seed;
    relay_policy_spec policy; /* network (filled from the env by the trainer if obs_dim == 0) */
} relay_ppo_config;

/* relay_ppo_config_default fills c with SB3 PPO defaults (lr 3e-4, n_steps 2048, batch 64, ...). */
RELAY_API void relay_ppo_config_default(relay_ppo_config *c);

/* relay_ppo_config_zoo fills c with rl-baselines3-zoo hyperparameters for env_name (ENOTFOUND if
 * none). */
RELAY_API relay_err relay_ppo_config_zoo(relay_ppo_config *c, const char *env_name);

/* relay_ppo_metrics summarises one update. */
typedef struct relay_ppo_metrics {
    float policy_loss, value_loss, entropy, approx_kl, clip_fraction;
    float explained_variance, learning_rate, clip_range, grad_norm;
    uint32_t epochs_run;     /* < n_epochs when target_kl stopped the update */
    uint32_t gradient_steps; /* optimizer steps taken */
} relay_ppo_metrics;

/* relay_ppo is a learner: a policy plus gradients, Adam state and minibatch workspaces. */
typedef struct relay_ppo relay_ppo;

/* relay_ppo_new validates cfg (including cfg->policy) and builds the learner. */
RELAY_API relay_err relay_ppo_new(const relay_ppo_config *cfg, relay_ppo **out);

/* relay_ppo_free frees p; NULL is a no-op. */
RELAY_API void relay_ppo_free(relay_ppo *p);

/* relay_ppo_policy returns the learner's policy (its weights are the newest). */
RELAY_API relay_policy *relay_ppo_policy(relay_ppo *p);

/*
 * relay_ppo_update runs one update from the finished rollout r (n_envs*n_steps samples),
 * advances the learner's timestep count by that many steps (for annealing), then folds r's
 * observations into the running observation statistics when enabled. m may be NULL.
 */
RELAY_API relay_err relay_ppo_update(relay_ppo *p, relay_rollout *r, relay_ppo_metrics *m);

/*
 * relay_ppo_normalize_rewards scales the rewards of the full rollout r in place when
 * cfg.normalize_reward is on (a no-op otherwise): row by row, each stream's discounted return
 * R = gamma R + reward is folded into running statistics (SB3 RunningMeanStd, initial var 1 and
 * count 1e-4) and the reward becomes clip(reward / sqrt(var + 1e-8), +-clip_reward); R restarts
 * at 0 after a terminated or truncated row. Call it before relay_rollout_finish. The statistics
 * and per-stream returns are part of learner checkpoints.
 */
RELAY_API relay_err relay_ppo_normalize_rewards(relay_ppo *p, relay_rollout *r);

/* relay_ppo_reward_stats reads the running return statistics (mean, var, count; any may be NULL).
 */
RELAY_API void relay_ppo_reward_stats(const relay_ppo *p, double *mean, double *var, double *count);

/* relay_train_stats is what the trainer reports after each update. */
typedef struct relay_train_stats {
    uint64_t timesteps; /* env steps so far (all envs) */
    uint64_t episodes;  /* finished episodes */
    uint32_t updates;
    float mean_return_100; /* mean undiscounted return of the last <= 100 episodes */
    float mean_return_20;  /* ... of the last <= 20 episodes */
    float last_return;
    double seconds; /* wall time since the start of training */
    relay_ppo_metrics update;
} relay_train_stats;

/* relay_train_cb is called after every update; returning false stops training. */
typedef bool (*relay_train_cb)(const relay_train_stats *stats, void *user);

/*
 * relay_ppo_train trains a policy on def with cfg in one thread (relay_vecenv of cfg->n_envs,
 * seeded with cfg->seed) until total_timesteps or cb returns false. final receives the last
 * stats (may be NULL); policy_out (may be NULL) receives the learner's policy, owned by the caller.
 */
RELAY_API relay_err relay_ppo_train(const relay_env_def *def, const relay_ppo_config *cfg,
                                    relay_train_cb cb, void *user, relay_train_stats *final,
                                    relay_policy **policy_out);

#ifdef __cplusplus
}
#endif
#endif
