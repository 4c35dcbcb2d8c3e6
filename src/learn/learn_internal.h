/* Internal layout of policies, rollouts and learners, shared by the learn layer and its tests. */
#ifndef RLY_LEARN_INTERNAL_H
#define RLY_LEARN_INTERNAL_H

#include <stdatomic.h>
#include "learn/nn.h"
#include "core/rng.h"
#include "relay/learn.h"

struct relay_policy {
    relay_policy_spec spec;
    uint32_t max_batch;
    uint32_t n_out; /* pi head width: n_actions or act_dim */
    bool trainable;
    rly_mlp trunk; /* shared only */
    rly_mlp pi, vf;
    size_t n_params, trunk_off, pi_off, vf_off, log_std_off;
    float *params;              /* [n_params] */
    float *grads;               /* [n_params], trainable only */
    float *dh;                  /* shared + trainable: trunk output gradient [max_batch x h] */
    float *xbuf;                /* normalised observations [max_batch x obs_dim] */
    float *lpbuf;               /* log-probability row scratch [n_actions] */
    double *rms_mean, *rms_var; /* running observation statistics */
    double rms_count;
    float *norm_mean, *norm_inv_std; /* float copies used by normalisation */
    rly_rng rng;
};

/* rly_policy_create builds a policy; trainable adds gradients and backward workspaces. */
relay_err rly_policy_create(const relay_policy_spec *spec, uint32_t max_batch, uint64_t seed,
                            bool trainable, relay_policy **out);

/* rly_policy_normalize writes normalised observations (or returns obs itself when disabled). */
const float *rly_policy_normalize(relay_policy *p, const float *obs, uint32_t n, float *dst);

/* rly_policy_forward runs pi and vf on network inputs x; logits/means and values are returned. */
void rly_policy_forward(relay_policy *p, const float *x, uint32_t n, const float **pi_out,
                        const float **v_out);

/* rly_policy_backward back-propagates dpi [n x n_out] and dv [n] into p->grads (overwritten;
   log_std gradients are left to the caller). Both inputs are overwritten. */
void rly_policy_backward(relay_policy *p, float *dpi, float *dv, uint32_t n);

/* rly_policy_refresh_norm recomputes the float normalisation copies from the running stats. */
void rly_policy_refresh_norm(relay_policy *p);

/* rly_policy_update_obs_stats folds n raw observations into the running statistics. */
void rly_policy_update_obs_stats(relay_policy *p, const float *obs, size_t n);

struct relay_rollout {
    uint32_t obs_dim, act_dim, n_actions;
    bool discrete;
    uint32_t n_envs, n_steps;
    uint32_t *count; /* [n_envs] steps stored per stream */
    float *obs;      /* [T x N x obs_dim] */
    int32_t *act_i;  /* discrete [T x N] */
    float *act_f;    /* continuous [T x N x act_dim] */
    uint8_t *mask;   /* discrete [T x N x n_actions] */
    bool has_mask;
    float *logp, *value, *reward, *final_value, *adv, *ret; /* [T x N] */
    uint8_t *term, *trunc;                                  /* [T x N] */
    bool finished;
};

/*
 * rly_vtrace computes V-trace advantages and value targets of a full rollout r for the current
 * policy p (importance weights against the recorded behaviour log-probabilities), in place of
 * relay_rollout_finish; see vtrace.c.
 */
relay_err rly_vtrace(relay_rollout *r, relay_policy *p, const float *last_values, float gamma,
                     float lambda, float rho_bar, float c_bar);

/*
 * rly_gae computes GAE over [T x N] arrays (row t, stream e at t*N + e): termination bootstraps
 * with 0, truncation with final_value, the last step with last_value[e]; ret = adv + value.
 */
void rly_gae(uint32_t T, uint32_t N, const float *reward, const float *value, const uint8_t *term,
             const uint8_t *trunc, const float *final_value, const float *last_value, float gamma,
             float lambda, float *adv, float *ret);

/* rly_loss_out holds the per-minibatch loss terms. */
typedef struct rly_loss_out {
    float policy_loss, value_loss, entropy, approx_kl, clip_fraction, loss;
} rly_loss_out;

struct relay_ppo {
    relay_ppo_config cfg;
    relay_policy *pol;
    rly_adam adam;
    uint64_t timesteps;
    uint32_t updates;
    rly_rng rng;
    /* reward normalisation: running statistics of the discounted return, and each stream's
       current discounted return [cfg.n_envs] */
    double ret_mean, ret_var, ret_count;
    double *disc_ret;
    uint32_t buf_size, mb_cap;
    uint32_t *perm;
    float *mb_obs, *mb_act_f, *mb_logp, *mb_adv, *mb_ret, *mb_val;
    int32_t *mb_act_i;
    uint8_t *mb_mask;
    float *dpi, *dv, *lp; /* [mb x n_out], [mb], [mb x n_actions] */
    /* cancel (may be NULL, owned by the caller, e.g. the learner): once true, relay_ppo_update
       stops at the next minibatch and returns RELAY_ECANCELED, so a stop request or a time
       limit is honoured within one minibatch instead of a whole update. */
    const _Atomic bool *cancel;
};

/*
 * rly_ppo_loss_grad evaluates the loss on one minibatch of n network inputs (already
 * normalised) and leaves its gradient in p->pol->grads. act is int32 or float per the spec,
 * mask may be NULL. clip <= 0 gives the plain policy-gradient loss -mean(A logp) (REINFORCE).
 */
void rly_ppo_loss_grad(relay_ppo *p, uint32_t n, const float *x, const void *act,
                       const uint8_t *mask, const float *logp_old, float *adv, const float *ret,
                       const float *val_old, float clip, rly_loss_out *out);

/* ---- checkpoints (checkpoint.c) ---- */

/* RLY_CKPT_MAX_EXTRA bounds the caller's opaque blob in a checkpoint (64 MiB). */
#define RLY_CKPT_MAX_EXTRA (64u << 20)
/* RLY_CKPT_MAX_FILE bounds the size of a checkpoint file read back (1 GiB). */
#define RLY_CKPT_MAX_FILE (1ull << 30)
/* RLY_CKPT_RET_WINDOW is the number of recent episode returns a checkpoint keeps. */
#define RLY_CKPT_RET_WINDOW 100

/* rly_ckpt_ep is one stream's episode in progress (the learner's return sum), format 3. */
typedef struct rly_ckpt_ep {
    bool known;    /* the stream has seen an episode (ep_id valid) */
    bool open;     /* that episode has not ended yet */
    int64_t ep_id; /* episode number of the stream's env */
    double ep_sum; /* rewards summed so far */
} rly_ckpt_ep;

/* rly_ckpt_counters are the learner-level counters stored beside the relay_ppo state. */
typedef struct rly_ckpt_counters {
    int64_t version; /* newest published policy version */
    uint64_t steps_consumed, steps_received, steps_stale, steps_discarded;
    uint64_t trajs_received, trajs_stale, episodes;
    uint32_t updates;
    float mean_return_100, last_return;
    float rets[RLY_CKPT_RET_WINDOW]; /* ring indexed by episodes % window */
    double wall_s;                   /* training seconds so far */
    /* informational (read back, never enforced): the writer's layout and budget */
    uint32_t n_envs, n_steps;
    uint64_t total_timesteps, seed;
    /* streams' episodes in progress (format 3; decode mallocs ep, the caller frees it; a format
       2 file gives n_ep = 0, ep = NULL) */
    uint32_t n_ep;
    rly_ckpt_ep *ep;
} rly_ckpt_counters;

/* rly_ckpt_encode serialises p's complete state, c and extra into *out (malloc'd, caller frees). */
relay_err rly_ckpt_encode(const relay_ppo *p, const rly_ckpt_counters *c, const void *extra,
                          size_t extra_len, uint8_t **out, size_t *out_len);

/*
 * rly_ckpt_decode checks buf (magic, format, length, CRC-32C, network identity against p) and
 * only then loads it into p and c; *extra (if extra is not NULL) receives a malloc'd copy of the
 * blob (NULL when empty). On error p is unchanged and the log names what is wrong; what names
 * the source in messages (e.g. the path).
 */
relay_err rly_ckpt_decode(const uint8_t *buf, size_t len, const char *what, relay_ppo *p,
                          rly_ckpt_counters *c, uint8_t **extra, size_t *extra_len);

/* rly_ckpt_peek checks buf like rly_ckpt_decode and reads only its counters (no learner needed). */
relay_err rly_ckpt_peek(const uint8_t *buf, size_t len, const char *what, rly_ckpt_counters *c);

/* rly_ckpt_write_file writes bytes to path atomically: a temporary file, fsync, rename. */
relay_err rly_ckpt_write_file(const char *path, const uint8_t *bytes, size_t len);

/* rly_ckpt_read_file reads a whole checkpoint file (<= RLY_CKPT_MAX_FILE) into *bytes. */
relay_err rly_ckpt_read_file(const char *path, uint8_t **bytes, size_t *len);

#endif
