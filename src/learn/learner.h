/*
 * rly_learner: an in-process PPO/REINFORCE learner fed with actor trajectories.
 *
 * Interface (message-like, so a networked learner can reuse it): trajectories come in through
 * rly_learner_push (any thread, bounded, ownership moves on success); new models go out through
 * the publish callback (learner thread), which receives the policy model pi (obs -> logits for
 * discrete actions, obs -> mean for continuous ones), the value model vf (obs -> value), the
 * state-independent log std (continuous) and the version number. Version 0 (the initial
 * weights) is published by the learner thread as soon as it starts.
 *
 * Trajectories follow the actor's layout (src/actor/actor.h): observations f32 [obs_dim],
 * actions i32 [1] (discrete) or f32 [act_dim] (unclipped Gaussian sample), optional u8 mask,
 * auxiliary values "logp", "value", "bootstrap", "cut" (looked up by name). A stream is one
 * (actor id, env_id) pair; there must be n_streams of them. When every stream holds n_steps rows
 * of acceptable versions (current - policy_lag .. current), the learner orders each stream's
 * pieces by (episode, first timestamp), fills a relay_rollout, runs relay_ppo_update, exports and
 * publishes version + 1. Older data is dropped and counted; rows left over after a batch stay
 * for the next one while their version is still acceptable.
 *
 * Checkpoints: rly_learner_checkpoint_save writes the complete learner state (policy and value
 * networks, Adam moments and step, observation statistics, PPO and policy RNG streams, update and
 * timestep counts, the learner's counters and return window, and an opaque caller blob) to one
 * file, atomically (temporary file, fsync, rename), with a magic, a format number and a CRC-32C.
 * A learner created with cfg.resume_path set starts from such a file: it publishes the saved
 * version (instead of 0) and continues counting from the saved counters; the caller's blob is
 * returned by rly_learner_resume_extra. Rows queued but not yet used by an update are not part of
 * a checkpoint (the actors regenerate data after a resume). Corrupt, truncated, foreign-format or
 * mismatched files (other spaces, network sizes, activation, algorithm) are refused with a log
 * line naming what differs, and rly_learner_new returns the error (RELAY_ECHECKSUM,
 * RELAY_ETRUNCATED, RELAY_EFORMAT, RELAY_EVERSION, RELAY_ESHAPE, RELAY_ENOTFOUND, RELAY_EIO).
 */
#ifndef RLY_LEARN_LEARNER_H
#define RLY_LEARN_LEARNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/data.h"
#include "relay/learn.h"
#include "relay/model.h"
#include "learn/pool.h"

/* rly_learner_publish_fn receives a new version; it owns pi and vf from the call on. */
typedef relay_err (*rly_learner_publish_fn)(void *ctx, int64_t version, relay_model *pi,
                                            relay_model *vf, const float *log_std,
                                            uint32_t n_log_std);

/* RLY_LEARNER_RET_WINDOW is how many recent episode returns the mean return is taken over. */
#define RLY_LEARNER_RET_WINDOW 100

/* rly_learner_stats is a snapshot of the learner's counters (see rly_learner_stats_get). */
typedef struct rly_learner_stats {
    uint64_t steps_consumed;  /* rows used by updates */
    uint64_t steps_received;  /* rows pushed and accepted by rly_learner_push */
    uint64_t steps_stale;     /* rows dropped because their version was too old */
    uint64_t steps_discarded; /* rows dropped otherwise (unknown stream, future version, stop) */
    uint64_t trajs_received;
    uint64_t trajs_stale; /* trajectories dropped (wholly or partly) as too old */
    uint64_t episodes;    /* finished episodes seen (terminated, or truncated without a cut) */
    float mean_return_100;
    float last_return;
    uint32_t updates;
    int64_t version; /* newest published version (-1 before version 0) */
    relay_ppo_metrics last;
    double sps;           /* steps_consumed / wall_s */
    double wall_s;        /* seconds since the learner started */
    double update_s;      /* total seconds spent in updates (rollout, GAE, PPO, export, publish) */
    double last_update_s; /* seconds of the newest update */
    bool done;            /* steps_consumed reached the configured total_timesteps */
    relay_err error;      /* first fatal error of the learner thread (RELAY_OK if none) */
    /* pooled: the first row not yet learned (see rly_pool_cursor); valid in on_update */
    uint64_t cursor_tag;
    uint32_t cursor_row;
} rly_learner_stats;

/* rly_learner_update_fn is called by the learner thread after each update and publish. */
typedef void (*rly_learner_update_fn)(void *ctx, const rly_learner_stats *stats);

/* rly_learner_episode_fn receives each finished episode's return (learner thread, no locks held).
 */
typedef void (*rly_learner_episode_fn)(void *ctx, float episode_return);

/* RLY_LEARNER_QUEUE_DEFAULT is the intake's capacity in trajectories when queue_cap is 0. */
#define RLY_LEARNER_QUEUE_DEFAULT(n_streams) (4u * (uint32_t)(n_streams) + 64u)

/* rly_learner_config configures a learner (see rly_learner_config_init for defaults). */
typedef struct rly_learner_config {
    relay_ppo_config ppo;     /* hyperparameters; ppo.n_envs is replaced by n_streams */
    const relay_env_def *env; /* fills ppo.policy's spaces when ppo.policy.obs_dim == 0 */
    uint32_t n_streams;       /* actors x envs per actor */
    /* Optional fixed stream layout: stream k * envs_per_actor + env_id belongs to actor
       stream_actors[k], so the rollout (and training) does not depend on arrival order. NULL:
       streams are numbered in order of first arrival. */
    const relay_id *stream_actors;
    uint32_t n_stream_actors;
    uint32_t envs_per_actor;
    uint32_t n_steps;        /* rows per stream per update (0: ppo.n_steps) */
    uint32_t policy_lag;     /* accepted age of data in versions; 0 = on-policy */
    uint32_t queue_cap;      /* trajectories the intake holds (0: RLY_LEARNER_QUEUE_DEFAULT) */
    int64_t push_timeout_ns; /* how long rly_learner_push blocks when full (0: 5 s; < 0: none) */
    rly_learner_publish_fn publish;
    void *publish_ctx;
    rly_learner_update_fn on_update; /* optional */
    void *on_update_ctx;
    /* Pooled intake (distributed training): trajectories from any sources are packed in arrival
       order (see learn/pool.h) instead of per stream; n_streams is then the rollout width. */
    bool pooled;
    /* Off-policy correction: false = GAE with PPO's ratio against the behaviour log-probs;
       true = V-trace targets (rho_bar, c_bar: truncation levels, 0 = 1.0). */
    bool vtrace;
    float rho_bar, c_bar;
    rly_fate_fn on_fate; /* pooled: hears of every tagged trajectory's end (learner thread) */
    void *on_fate_ctx;
    rly_learner_episode_fn on_episode; /* optional (e.g. a return histogram) */
    void *on_episode_ctx;

    /* Optional: a checkpoint written by rly_learner_checkpoint_save to start from (read during
       rly_learner_new only; the string is not kept). */
    const char *resume_path;
    /* Optional warm start (ignored when resuming): a policy model (an exported policy.onnx of the
       same architecture) whose weights replace the initial pi network (not kept after new). */
    const relay_model *init_pi;
} rly_learner_config;

/* rly_learner is the learner object (opaque). */
typedef struct rly_learner rly_learner;

/* rly_learner_config_init fills c with zoo hyperparameters of env (SB3 defaults if none). */
relay_err rly_learner_config_init(rly_learner_config *c, const relay_env_def *env,
                                  uint32_t n_streams);

/* rly_learner_new validates cfg, builds the learner and starts its thread (which publishes v0). */
relay_err rly_learner_new(const rly_learner_config *cfg, rly_learner **out);

/*
 * rly_learner_push hands t to the learner: ownership moves on RELAY_OK; on error the caller keeps
 * t (RELAY_EINVAL/ESHAPE: t does not fit the policy, RELAY_EFULL: intake still full after the
 * push timeout, RELAY_ESHUTDOWN: the learner is stopping). Thread-safe.
 */
relay_err rly_learner_push(rly_learner *l, relay_traj *t);

/*
 * rly_learner_push_tagged is rly_learner_push with a tag that the fate callback and the cursor
 * report (pooled mode); tags must increase from push to push.
 */
relay_err rly_learner_push_tagged(rly_learner *l, relay_traj *t, uint64_t tag);

/*
 * rly_learner_push_mark queues a fate for a tag that carries no trajectory (a rejected or
 * duplicate message), so it is reported in order with the others and moves the cursor.
 */
relay_err rly_learner_push_mark(rly_learner *l, uint64_t tag, rly_fate fate);

/* rly_learner_stats_get copies the current counters into out (thread-safe). */
void rly_learner_stats_get(rly_learner *l, rly_learner_stats *out);

/* rly_learner_wait_version blocks until version >= v or timeout_ns passes (RELAY_ETIMEDOUT). */
relay_err rly_learner_wait_version(rly_learner *l, int64_t v, int64_t timeout_ns);

/* rly_learner_wait_done blocks until total_timesteps were consumed, an error, or timeout_ns. */
relay_err rly_learner_wait_done(rly_learner *l, int64_t timeout_ns);

/* rly_learner_stop stops the learner thread and drops queued data (pooled: every fate not yet
   reported is reported before it returns, the pool's rows as UNUSED); idempotent. */
void rly_learner_stop(rly_learner *l);

/* rly_learner_free stops l and frees it and everything it still holds; NULL is a no-op. */
void rly_learner_free(rly_learner *l);

/* rly_learner_export_onnx serialises the newest policy (pi chain) to ONNX; *bytes malloc'd. */
relay_err rly_learner_export_onnx(rly_learner *l, uint8_t **bytes, size_t *len);

/*
 * rly_learner_checkpoint_save writes l's complete state and extra_len bytes of extra (an opaque
 * caller blob, <= 64 MiB, may be NULL/0) to path atomically. Thread-safe: called from on_update
 * (the learner thread) it saves at once, between updates; from another thread it asks the
 * learner thread to save before its next update and waits for the result; after rly_learner_stop
 * it saves directly. While the learner is stopping (stop called but not returned) it returns
 * RELAY_ESHUTDOWN. Errors: RELAY_EIO (file system, logged with the reason), RELAY_ETOOBIG;
 * RELAY_ESTATE (nothing written, a warning logged) when the stop cancelled an update part way
 * (rows consumed, weights part-updated: no uninterrupted run passes through that state), except
 * in pooled mode, whose cursor makes a resumed learner learn those rows again.
 */
relay_err rly_learner_checkpoint_save(rly_learner *l, const char *path, const void *extra,
                                      size_t extra_len);

/*
 * rly_learner_end marks l done (as a spent budget does): no update starts after the one in
 * progress, further data is discarded. Called from on_update it ends training exactly after that
 * update (a target reached, an update limit), so where a run stops does not depend on timing.
 */
void rly_learner_end(rly_learner *l);

/* rly_learner_current_policy returns l's policy on the learner thread (in on_update) or after
   stop; NULL elsewhere. It must not be kept across updates. */
relay_policy *rly_learner_current_policy(rly_learner *l);

/* rly_learner_ckpt_info are a checkpoint's counters, read without building a learner. */
typedef struct rly_learner_ckpt_info {
    int64_t version;
    uint32_t updates;
    uint64_t steps_consumed, episodes;
} rly_learner_ckpt_info;

/* rly_learner_checkpoint_peek checks path's integrity (magic, format, length, CRC) and reads its
   counters. */
relay_err rly_learner_checkpoint_peek(const char *path, rly_learner_ckpt_info *info);

/* rly_learner_resume_extra gives the blob of the checkpoint l resumed from (NULL/0 if none); the
   bytes belong to l and stay valid until rly_learner_free. */
relay_err rly_learner_resume_extra(rly_learner *l, const uint8_t **bytes, size_t *len);

/* rly_learner_policy returns the learner's policy; only valid after rly_learner_stop. */
relay_policy *rly_learner_policy(rly_learner *l);

/* rly_policy_chain selects which network rly_policy_export_onnx writes. */
typedef enum rly_policy_chain { RLY_CHAIN_PI = 0, RLY_CHAIN_VF = 1 } rly_policy_chain;

/*
 * rly_policy_export_onnx writes one network of p as a plain MLP in ONNX (*bytes malloc'd,
 * caller frees): shared trunks are duplicated into each chain and observation normalisation is
 * folded into the first layer (its clipping is dropped). Not safe concurrently with updates of p.
 */
relay_err rly_policy_export_onnx(const relay_policy *p, rly_policy_chain which, uint8_t **bytes,
                                 size_t *len);

/*
 * rly_policy_load_pi copies the weights of a plain MLP policy model m (as rly_policy_export_onnx
 * writes it, with or without the log-std outputs) into p's pi chain; RELAY_ESHAPE with a message
 * naming both shapes when the architecture differs. what names m in messages.
 */
relay_err rly_policy_load_pi(relay_policy *p, const relay_model *m, const char *what);

/* rly_policy_export_models builds the pi and vf models of p (both owned by the caller). */
relay_err rly_policy_export_models(const relay_policy *p, relay_model **pi, relay_model **vf);

#endif
