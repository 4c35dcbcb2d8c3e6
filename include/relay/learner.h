/*
 * A PPO/REINFORCE learner attached to an agent, for users' own environment loops: it does for
 * relay_agent_request_action / relay_agent_end_episodes what `relay train` does for built-in
 * environments. relay_agent_attach_learner creates the actors it learns from (each with a value
 * network, trajectories cut at n_steps), takes every trajectory they record, trains on its own
 * thread and sends each new policy to every actor of the agent.
 *
 * Ownership and threads: the learner belongs to the agent (relay_agent_free frees it, after the
 * shutdown has delivered the last trajectories); its thread calls on_update after every update.
 * Every function below is thread-safe. The agent must use "model_mode": "shared".
 */
#ifndef RELAY_LEARNER_H
#define RELAY_LEARNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/env.h"
#include "relay/err.h"
#include "relay/export.h"
#include "relay/id.h"
#include "relay/learn.h"

#ifdef __cplusplus
extern "C" {
#endif

struct relay_agent;

/* relay_learner is a learner attached to an agent (opaque, owned by the agent). */
typedef struct relay_learner relay_learner;

/* relay_learner_stats is a snapshot of a learner's progress. */
typedef struct relay_learner_stats {
    uint64_t steps;          /* rows consumed by updates */
    uint64_t steps_received; /* rows the actors delivered */
    uint64_t steps_stale;    /* rows dropped as older than policy_lag allows */
    uint64_t episodes;       /* finished episodes (terminated or truncated) */
    uint32_t updates;
    int64_t version;       /* newest published policy version */
    float mean_return_100; /* mean return of the last <= 100 episodes */
    float last_return;
    double seconds; /* learner wall time */
    double steps_per_second;
    bool done;              /* total_timesteps consumed */
    relay_err error;        /* first fatal learner error (RELAY_OK if none) */
    relay_ppo_metrics last; /* the last update's losses and statistics */
} relay_learner_stats;

/* relay_learner_update_fn runs on the learner thread after every update (keep it short). */
typedef void (*relay_learner_update_fn)(const relay_learner_stats *st, void *user);

/* relay_learner_options configures relay_agent_attach_learner; zero fields take defaults. */
typedef struct relay_learner_options {
    const char *env;              /* env name or plug-in path: spaces and the zoo's settings */
    const relay_space *obs_space; /* without env: the spaces of the user's environment */
    const relay_space *act_space;
    const relay_ppo_config *ppo; /* NULL: the zoo's hyperparameters for env (SB3's otherwise);
                                    ppo->n_envs is replaced by n_actors */
    uint32_t n_actors;           /* actors created for the learner, one stream each (default 1) */
    uint32_t policy_lag;         /* accepted age of data in policy versions (0 = on-policy) */
    uint64_t seed;               /* network initialisation and actor RNGs */
    const char *resume_path;     /* a checkpoint (relay_learner_save_checkpoint) to start from */
    relay_learner_update_fn on_update;
    void *user;
} relay_learner_options;

/*
 * relay_agent_attach_learner creates o->n_actors actors on the running agent a (ids[n_actors]
 * receives their ids) and a learner fed with their trajectories; *out is owned by the agent.
 * RELAY_ECONFIG (logged) when the agent is not in shared model mode, already has a learner or
 * the options are invalid; a bad resume checkpoint fails with the checkpoint's error.
 */
RELAY_API relay_err relay_agent_attach_learner(struct relay_agent *a,
                                               const relay_learner_options *o, relay_id *ids,
                                               relay_learner **out);

/* relay_learner_get_stats copies the learner's current counters into out. */
RELAY_API void relay_learner_get_stats(relay_learner *l, relay_learner_stats *out);

/* relay_learner_wait_version blocks until version >= v (RELAY_ETIMEDOUT after timeout_ms). */
RELAY_API relay_err relay_learner_wait_version(relay_learner *l, int64_t v, uint32_t timeout_ms);

/* relay_learner_n_steps returns the rows per actor that make one update. */
RELAY_API uint32_t relay_learner_n_steps(relay_learner *l);

/* relay_learner_save_checkpoint writes the complete learner state to path atomically
   (RELAY_ESTATE, and the file untouched, after a stop that cancelled an update part way). */
RELAY_API relay_err relay_learner_save_checkpoint(relay_learner *l, const char *path);

/* relay_learner_export_onnx writes the newest policy network to path as ONNX. */
RELAY_API relay_err relay_learner_export_onnx(relay_learner *l, const char *path);

/* relay_learner_stop stops training (later trajectories are dropped); idempotent. */
RELAY_API void relay_learner_stop(relay_learner *l);

#ifdef __cplusplus
}
#endif
#endif
