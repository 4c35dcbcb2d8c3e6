/*
 * rly_actor: a policy that acts, records what happens, and hands finished trajectories on.
 *
 * An actor runs on its router's thread (it implements rly_actor_ops). It owns: its model refs
 * (pinned versions of a policy model and an optional value model, read from model handles that
 * are its own or shared with other actors), a seeded RNG, its current trajectory (one per env
 * when it steps a vectorised env), and episode counters.
 *
 * Messages it handles (payloads below, ownership as in routing/message.h):
 *   RequestInference  payload rly_infer_req (owned); reply ptr = the same request, filled in,
 *                     with the message's payload_free as its destructor (NULL: caller-owned).
 *   FlagLastInference arg = final reward as float bits; closes the episode: terminated, or with
 *                     an rly_episode_end payload (owned) saying truncated, a time-limit end
 *                     bootstrapped with V(final observation).
 *   ModelVersion      reply value = current version, -1 without a model.
 *   ModelUpdate       payload rly_model_update (owned); arg = version.
 *   ModelHandshake    reply value = current version, RELAY_ENOMODEL without a model.
 *   RunEnv            payload rly_run_env (owned); reply value = steps done, at the end.
 *   Shutdown          flushes partial trajectories and ends a run.
 *
 * Rewards: the reward passed with RequestInference is credited to the previous action (the one
 * that led to this observation); flag_last_action's reward to the last action. So row t of a
 * trajectory is (s_t, a_t, r_t), not RelayRL's off-by-one pairing.
 *
 * Trajectories end on termination, on truncation (time limit), on max length (emitted as a
 * chunk: last row truncated and aux "cut" = 1, the episode continues in the next trajectory),
 * on flag_last_action, on a model update (so each trajectory has one policy version), on removal
 * and on shutdown. Auxiliary values per row: "logp", "value" (0 without a value model), and on
 * a row that ends a truncated trajectory "bootstrap" = V(next observation) for GAE.
 */
#ifndef RLY_ACTOR_ACTOR_H
#define RLY_ACTOR_ACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "actor/select.h"
#include "relay/data.h"
#include "relay/env.h"
#include "relay/model.h"
#include "routing/router.h"

/* Names and order of the auxiliary values actors record. */
#define RLY_AUX_LOGP 0
#define RLY_AUX_VALUE 1
#define RLY_AUX_BOOTSTRAP 2
#define RLY_AUX_CUT 3
#define RLY_N_AUX 4

/*
 * rly_traj_out receives finished trajectories; push always takes ownership (it may block).
 * take (optional) hands back an emptied trajectory with the same spec and max length for reuse,
 * or NULL, so recording does not allocate per episode.
 */
typedef struct rly_traj_out {
    void (*push)(struct rly_traj_out *out, relay_traj *t);
    relay_traj *(*take)(struct rly_traj_out *out, const relay_step_spec *spec, uint32_t max_len);
} rly_traj_out;

/* rly_policy_desc describes what a policy model maps from and to. */
typedef struct rly_policy_desc {
    uint32_t obs_dim;
    bool discrete;
    uint32_t n_actions; /* discrete */
    uint32_t act_dim;   /* continuous (1 for discrete) */
    bool bounded;       /* continuous: clip env actions to [low, high] */
    float low[RELAY_ENV_MAX_DIM];
    float high[RELAY_ENV_MAX_DIM];
} rly_policy_desc;

/* rly_policy_desc_from_spaces fills d from observation and action spaces; RELAY_EINVAL when
 * they are not supported (observations a Box of 1..RELAY_ENV_MAX_DIM, actions Discrete or a Box
 * of 1..RELAY_ENV_MAX_DIM). */
relay_err rly_policy_desc_from_spaces(rly_policy_desc *d, const relay_space *obs,
                                      const relay_space *act);

/* rly_policy_desc_from_env fills d from an environment's spaces. */
relay_err rly_policy_desc_from_env(rly_policy_desc *d, const relay_env_def *env);

/* rly_policy_desc_from_meta fills d from a model bundle's metadata. */
relay_err rly_policy_desc_from_meta(rly_policy_desc *d, const relay_model_meta *meta);

/*
 * rly_policy_check_model checks that models fit description d before anything installs them:
 * pi (may be NULL) maps obs_dim -> n_actions (discrete) or act_dim / 2 * act_dim (continuous:
 * mean, or mean and log std), vf (may be NULL) maps obs_dim -> 1. RELAY_ESHAPE, with a logged
 * message naming both shapes and `what` (the caller, e.g. "update_model"), when one does not fit.
 * Every path that installs a model on an actor (update_model, model_path, the learner's publish,
 * network model updates) calls it, so a model whose outputs are narrower than the actor's action
 * space never reaches the kernels.
 */
relay_err rly_policy_check_model(const rly_policy_desc *d, const relay_model *pi,
                                 const relay_model *vf, const char *what);

/* rly_policy_desc_same is true when a and b describe the same observation and action shapes. */
bool rly_policy_desc_same(const rly_policy_desc *a, const rly_policy_desc *b);

/*
 * Central inference (relay actors --remote-inference, docs/DISTRIBUTED.md): instead of running
 * its model, an actor hands the rows of one forward call to rly_remote_infer.forward, which asks
 * a server. The actor draws the random numbers selection needs from its own RNG first (one
 * uniform per row for a discrete policy, act_dim normals per row for a Gaussian one, none when
 * deterministic), in the order local selection would, so the server's actions equal a local
 * forward of the same model and seed.
 */
typedef struct rly_remote_rows {
    uint32_t n;
    bool deterministic;
    const float *obs;     /* [n * obs_dim] */
    const uint8_t *masks; /* [n * n_actions] or NULL */
    const double *rand;   /* [n * draws] (see above) */
    /* out */
    int32_t *acts_i; /* [n] discrete */
    float *acts_f;   /* [n * act_dim] continuous (unclipped sample) */
    float *logp, *values;
    int64_t version; /* model version the server used */
} rly_remote_rows;

/* rly_remote_infer is the hook (called on router workers, concurrently; must be thread-safe). */
typedef struct rly_remote_infer {
    relay_err (*forward)(void *ctx, const rly_policy_desc *d, rly_remote_rows *rows);
    void *ctx;
} rly_remote_infer;

typedef struct rly_actor_config {
    relay_id id;
    uint64_t seed;
    uint32_t max_traj_len; /* 0 = unlimited */
    rly_policy_desc policy;
    relay_model_handle *shared_pi; /* NULL: the actor has its own handles */
    relay_model_handle *shared_vf;
    bool deterministic;             /* argmax / mean instead of sampling */
    bool record;                    /* record trajectories */
    const rly_remote_infer *remote; /* non-NULL: central inference (outlives the actor) */
} rly_actor_config;

/* rly_infer_req is one RequestInference: the caller fills the inputs, the actor the outputs. */
typedef struct rly_infer_req {
    float reward; /* credited to the previous action */
    bool has_mask;
    int64_t version;      /* out: model version used */
    float logp;           /* out */
    float value;          /* out (0 without a value model) */
    float *obs;           /* [obs_dim], points into data */
    uint8_t *mask;        /* [n_actions] or NULL */
    float *action;        /* out: [act_dim] (discrete: the index as a float) */
    int32_t action_index; /* out, discrete */
    float data[];         /* storage for obs, action and mask */
} rly_infer_req;

/* rly_infer_req_new allocates a request sized for desc (mask storage when with_mask). */
rly_infer_req *rly_infer_req_new(const rly_policy_desc *desc, bool with_mask);

/* rly_infer_req_size returns the bytes one request for desc needs (a multiple of 16). */
size_t rly_infer_req_size(const rly_policy_desc *desc, bool with_mask);

/* rly_infer_req_init lays a request for desc out in caller-owned mem of rly_infer_req_size bytes
   (16-byte aligned); send it with payload_free = NULL so nobody frees it. */
rly_infer_req *rly_infer_req_init(void *mem, const rly_policy_desc *desc, bool with_mask);

/* rly_episode_end is the optional FlagLastInference payload (relay_agent_end_episodes). */
typedef struct rly_episode_end {
    bool truncated; /* time limit (Gymnasium's truncated) rather than a terminal state */
    bool has_obs;   /* obs holds the final observation [obs_dim] for V(final obs) */
    float obs[];
} rly_episode_end;

/* rly_model_update is a ModelUpdate payload: new models (owned) or a refresh of shared handles. */
typedef struct rly_model_update {
    relay_model *pi; /* NULL with shared handles (already published there) */
    relay_model *vf;
    int64_t version;
    uint32_t n_log_std; /* continuous: state-independent log std, 0 = keep */
    float log_std[RELAY_ENV_MAX_DIM];
} rly_model_update;

/* rly_model_update_free frees an update and the models it still owns. */
void rly_model_update_free(void *p);

/*
 * rly_run_pause_fn receives an actor's snapshot at a pause (exact resume of `relay train`), on
 * the actor's thread, before the data of the version just finished leaves the actor: everything
 * that decides the actor's future (its vecenv, current observations, episode numbers and sampling
 * RNG), tagged with the version it runs next. snap is valid during the call only.
 */
typedef void (*rly_run_pause_fn)(void *ctx, int64_t next_version, const uint8_t *snap, size_t len);

/* rly_run_env is a RunEnv payload (free it with rly_run_env_free). */
typedef struct rly_run_env {
    const relay_env_def *env;
    uint32_t n_envs;
    uint64_t seed;
    uint64_t steps;             /* vector steps; 0 = until stopped */
    uint32_t steps_per_version; /* > 0: pause after this many vector steps of one policy version
                                   until a ModelUpdate arrives (synchronous on-policy training) */
    rly_run_pause_fn on_pause;  /* optional, with steps_per_version (env must be snapshotable) */
    void *pause_ctx;
    uint8_t *restore; /* optional (owned, malloc'd): start from this snapshot, not a reset */
    size_t restore_len;
} rly_run_env;

/* rly_run_env_free frees a RunEnv payload and its restore snapshot; NULL is a no-op. */
void rly_run_env_free(void *spec);

/* rly_actor_snapshot_version reads the next_version tag of an actor snapshot (RELAY_EFORMAT if
   snap is not one). */
relay_err rly_actor_snapshot_version(const uint8_t *snap, size_t len, int64_t *next_version);

/* RLY_ACTOR_BATCH_BUCKETS: forward passes are counted by batch size <= 1, 2, 4, ..., 512, more. */
#define RLY_ACTOR_BATCH_BUCKETS 11

/* RLY_ACTOR_TIME_SAMPLE: one vector step in this many is timed; the times are scaled up by it. */
#define RLY_ACTOR_TIME_SAMPLE 16

/*
 * rly_actor_stats are racy counters, for progress reporting and metrics. The router thread that
 * runs the actor is the only writer; readers load them relaxed from any thread.
 */
typedef struct rly_actor_stats {
    _Atomic uint64_t env_steps;  /* env transitions (all envs) */
    _Atomic uint64_t inferences; /* RequestInference handled */
    _Atomic uint64_t batched;    /* of those, served by a forward pass shared with other actors */
    _Atomic uint64_t episodes;   /* finished episodes */
    _Atomic uint64_t trajectories;
    _Atomic int run_error; /* first error that ended a run_env (0: none), e.g. RELAY_EFORMAT */
    _Atomic uint64_t batch_hist[RLY_ACTOR_BATCH_BUCKETS]; /* forward passes by batch size */
    _Atomic uint64_t batch_rows;                          /* rows of all forward passes */
    _Atomic int64_t version;                              /* model version in use (-1: none) */
    /* Estimated time of run_env vector steps (one in RLY_ACTOR_TIME_SAMPLE timed, scaled), ns:
       policy forward + action selection, env stepping, trajectory recording (incl. hand-off). */
    _Atomic uint64_t ns_infer, ns_env, ns_record;
} rly_actor_stats;

typedef struct rly_actor rly_actor;

/* rly_actor_new creates an actor (not yet on a router); its slot is rly_actor_slot_of(). */
relay_err rly_actor_new(const rly_actor_config *cfg, rly_actor **out);

/* rly_actor_free frees an actor that is on no router (removed, or after shutdown). */
void rly_actor_free(rly_actor *a);

/* rly_actor_slot_of returns the routing slot of a. */
rly_actor_slot *rly_actor_slot_of(rly_actor *a);

/* rly_actor_of returns the actor behind a slot made by rly_actor_new. */
rly_actor *rly_actor_of(rly_actor_slot *slot);

/* rly_actor_stats_of returns a's counters. */
rly_actor_stats *rly_actor_stats_of(rly_actor *a);

/* rly_actor_desc returns a's policy description. */
const rly_policy_desc *rly_actor_desc(const rly_actor *a);

/*
 * rly_actor_install sets a's initial models before it is on a router (owned on success):
 * pi (required unless shared), vf (optional), version, log_std (continuous, may be NULL).
 */
relay_err rly_actor_install(rly_actor *a, relay_model *pi, relay_model *vf, int64_t version,
                            const float *log_std, uint32_t n_log_std);

/* rly_actor_set_out sets where trajectories go when a is on no router (tests, single thread). */
void rly_actor_set_out(rly_actor *a, rly_traj_out *out);

#endif
