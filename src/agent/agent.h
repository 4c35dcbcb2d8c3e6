/*
 * Internal agent hooks for in-process training (used by the CLI's train command): a consumer
 * that takes every drained trajectory (the learner), actors created from a policy description
 * on the agent's shared model handles, and publishing new models to every actor as ModelUpdate
 * messages through the dispatcher.
 */
#ifndef RLY_AGENT_AGENT_H
#define RLY_AGENT_AGENT_H

#include "actor/actor.h"
#include "relay/relay.h"
#include "sink/buffer.h"

/* rly_agent_set_consumer makes fn(ctx, t) own every trajectory after the sinks (before start). */
relay_err rly_agent_set_consumer(relay_agent *a, rly_sink_consumer fn, void *ctx);

/*
 * rly_agent_new_actor_desc creates an actor for desc on the agent's shared handles (shared mode
 * is required), seeded with seed, with trajectories cut at max_len.
 */
relay_err rly_agent_new_actor_desc(relay_agent *a, const rly_policy_desc *desc, uint64_t seed,
                                   uint32_t max_len, relay_id *id);

/*
 * rly_agent_new_actor_remote is rly_agent_new_actor_desc for an actor whose forward passes go to
 * remote (central inference; remote must outlive the agent's actors). NULL remote: local.
 */
relay_err rly_agent_new_actor_remote(relay_agent *a, const rly_policy_desc *desc, uint64_t seed,
                                     uint32_t max_len, const rly_remote_infer *remote,
                                     relay_id *id);

/*
 * rly_agent_publish makes pi/vf the shared models at version (it always takes ownership of both),
 * then sends a ModelUpdate (with log_std for continuous policies) to every actor through the
 * dispatcher without waiting for acknowledgements.
 */
relay_err rly_agent_publish(relay_agent *a, int64_t version, relay_model *pi, relay_model *vf,
                            const float *log_std, uint32_t n_log_std);

/*
 * rly_agent_check_model checks that pi and vf (either may be NULL) fit the actors they are meant
 * for: ids[0..n) in independent mode, every actor when ids is NULL or the agent shares one model
 * (shared mode: every actor reads the same handles). RELAY_ESHAPE (logged, naming `what` and both
 * shapes) when one does not fit; unknown ids are skipped (the caller reports them per actor).
 * Takes the agent lock; every
 * path that installs models on actors calls it (or rly_agent_check_model_locked) first, so a
 * network ModelUpdate must too.
 */
relay_err rly_agent_check_model(relay_agent *a, const relay_id *ids, size_t n,
                                const relay_model *pi, const relay_model *vf, const char *what);

/* rly_agent_run_error returns the first error that ended any actor's run_env (RELAY_OK: none). */
relay_err rly_agent_run_error(relay_agent *a);

/* rly_run_snap asks a quota run for snapshots at its pauses and/or to start from one. */
typedef struct rly_run_snap {
    rly_run_pause_fn on_pause; /* NULL: no snapshots */
    void *pause_ctx;
    const uint8_t *restore; /* copied; NULL: reset the envs */
    size_t restore_len;
} rly_run_snap;

/*
 * rly_agent_run_env_quota starts actor id stepping env with n_envs copies until shutdown,
 * pausing after steps_per_version vector steps of each policy version until the next update;
 * snap (may be NULL) adds snapshots at the pauses and a start from a snapshot (exact resume).
 */
relay_err rly_agent_run_env_quota(relay_agent *a, relay_id id, const relay_env_def *env,
                                  uint32_t n_envs, uint64_t seed, uint32_t steps_per_version,
                                  const rly_run_snap *snap);

/* rly_agent_times are cumulative thread-seconds by phase (see docs/OBSERVABILITY.md). */
typedef struct rly_agent_times {
    double env_s, infer_s, record_s;  /* run_env vector steps, sampled 1 in RLY_ACTOR_TIME_SAMPLE */
    double sink_write_s;              /* sink worker writing to sinks */
    double sink_consume_s;            /* sink worker handing trajectories to the consumer */
    double router_s;                  /* worker thread-seconds available (workers x running time) */
    int64_t version_min, version_max; /* model versions actors use now (-1: none) */
} rly_agent_times;

/* rly_agent_times_get fills out (any thread). */
void rly_agent_times_get(relay_agent *a, rly_agent_times *out);

struct rly_obs_server;
struct rly_obs_out;

/* rly_agent_obs returns the agent's metrics server (config `metrics_addr`), or NULL when off. */
struct rly_obs_server *rly_agent_obs(relay_agent *a);

/*
 * rly_agent_collect is the agent's rly_obs_collect_fn (ctx = the agent): actors, env steps,
 * inference batch sizes, dispatcher and per-router counters, sinks, buffers, time by phase. Add
 * it to a server you own with rly_obs_server_add_collector(srv, rly_agent_collect, agent) and
 * remove it before relay_agent_free.
 */
void rly_agent_collect(void *agent, struct rly_obs_out *o);

/* rly_agent_router_depths writes up to cap routers' intake queue depths; returns how many. */
uint32_t rly_agent_router_depths(relay_agent *a, uint32_t *out, uint32_t cap);

#endif
