/*
 * Relay's public agent API: actors that act with their models, environments they step, model
 * updates, scaling, trajectories, shutdown.
 *
 * An agent owns a routing runtime (a dispatcher and R routers run by a pool of worker threads);
 * actors live on routers, and every call below reaches them as a routed message (RequestInference,
 * FlagLastInference, ModelVersion, ModelUpdate, Shutdown, RunEnv). Every call returns a relay_err
 * and none aborts on user error. Calls are thread-safe unless noted.
 *
 * Typical use (see examples/walkthrough.c):
 *   relay_config cfg; relay_config_default(&cfg);
 *   relay_agent *agent; relay_agent_new(&cfg, &agent); relay_agent_start(agent);
 *   relay_id ids[4]; relay_agent_new_actors(agent, 4, &opts, ids);
 *   relay_agent_request_action(agent, ids, 4, obs, NULL, rewards, actions, NULL);
 *   relay_agent_flag_last_action(agent, ids, 4, final_rewards);
 *   relay_agent_shutdown(agent); relay_agent_free(agent);
 */
#ifndef RELAY_RELAY_H
#define RELAY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/data.h"
#include "relay/env.h"
#include "relay/err.h"
#include "relay/export.h"
#include "relay/id.h"
#include "relay/log.h"
#include "relay/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RELAY_PATH_MAX bounds the paths and names held in relay_config. */
#define RELAY_PATH_MAX 512

/* relay_config is an agent's configuration; docs/CONFIG.md documents every key and default. */
typedef struct relay_config {
    uint32_t routers;                /* "routers": routers (tasks on the workers), default 1 */
    uint64_t seed;                   /* "seed": base seed of actor RNGs, default 0 */
    uint32_t max_traj_length;        /* "max_traj_length": 0 = unlimited, default 1000 */
    bool shared_model;               /* "model_mode": "independent" (default) or "shared" */
    char model_path[RELAY_PATH_MAX]; /* "model_path": default model bundle (dir or .onnx), "" */
    char env[RELAY_PATH_MAX];        /* "env": default environment (name or plug-in path), "" */
    uint32_t intake_capacity;        /* "dispatcher.intake_capacity", default 65536 */
    uint32_t pending_capacity;       /* "dispatcher.pending_capacity", default 65536 */
    uint32_t tick_ms;                /* "dispatcher.tick_ms", default 50 */
    uint32_t retry_initial_ms;       /* "dispatcher.retry_initial_ms", default 100 */
    uint32_t retry_max_ms;           /* "dispatcher.retry_max_ms", default 800 */
    uint32_t ttl_ms[8];              /* "dispatcher.ttl_ms.<Protocol>", the seed's defaults */
    uint32_t router_queue_capacity;  /* "router_queue_capacity", default 16384 */
    uint32_t buffer_capacity;        /* "trajectory.buffer_capacity" per router, default 1024 */
    bool drop_oldest;              /* "trajectory.backpressure": "block" (default)|"drop_oldest" */
    bool sink_memory;              /* "sinks.memory.enabled", default true */
    uint32_t memory_per_actor;     /* "sinks.memory.per_actor", default 1000 */
    bool sink_arrow;               /* "sinks.arrow.enabled", default false */
    uint32_t arrow_batch_rows;     /* "sinks.arrow.batch_rows", default 8192 */
    uint64_t rotate_bytes;         /* "sinks.rotate_bytes": 0 = never, default 0 */
    bool sink_csv;                 /* "sinks.csv.enabled", default false */
    bool sink_binary;              /* "sinks.binary.enabled", default false */
    char sink_dir[RELAY_PATH_MAX]; /* "sinks.dir": output directory, default "trajectories" */
    char run_name[RELAY_PATH_MAX]; /* "sinks.run_name": file stem, default "" (automatic) */
    uint32_t request_timeout_ms;   /* "timeouts.request_ms", default 10000 */
    uint32_t shutdown_timeout_ms;  /* "timeouts.shutdown_ms", default 30000 */
    char log_level[16];            /* "log_level": debug|info|warn|error|off, default "warn" */
    uint32_t send_timeout_ms;      /* "dispatcher.send_timeout_ms": wait for intake room, 5000 */
    uint32_t workers;              /* "workers": threads the routers run on, 0 (default) = CPUs */
    char metrics_addr[272];        /* "metrics_addr": serve /metrics and the dashboard on HOST:PORT
                                      (a bare PORT binds 127.0.0.1); default "" = off */
} relay_config;

/* RELAY_MAX_ROUTERS bounds an agent's routers ("routers", scale_throughput). */
#define RELAY_MAX_ROUTERS 4096u

/* RELAY_MAX_ACTORS bounds the actors one agent holds at a time. */
#define RELAY_MAX_ACTORS 65536u

/* relay_config_default fills cfg with every default. */
RELAY_API void relay_config_default(relay_config *cfg);

/*
 * relay_config_load_json reads a JSON file over cfg's current values: unknown keys are logged as
 * warnings; a value of the wrong type or out of range fails with RELAY_ECONFIG and a log naming
 * the key; an unreadable file is RELAY_EIO, malformed JSON RELAY_EFORMAT.
 */
RELAY_API relay_err relay_config_load_json(relay_config *cfg, const char *path);

/* relay_config_parse_json is relay_config_load_json on a JSON text. */
RELAY_API relay_err relay_config_parse_json(relay_config *cfg, const char *json);

/* relay_config_to_json renders cfg (every key) as JSON text (malloc'd, caller frees). */
RELAY_API relay_err relay_config_to_json(const relay_config *cfg, char **json);

/* relay_agent is an agent: a routing runtime, its actors, sinks and trajectory buffers. */
typedef struct relay_agent relay_agent;

/* relay_agent_new validates cfg and creates a stopped agent (NULL cfg: defaults). */
RELAY_API relay_err relay_agent_new(const relay_config *cfg, relay_agent **out);

/* relay_agent_start opens the sinks and starts the dispatcher, routers and sink worker. */
RELAY_API relay_err relay_agent_start(relay_agent *a);

/* relay_agent_shutdown flushes every actor, drains trajectories into the sinks and stops all
   threads, in a documented order (docs/ARCHITECTURE.md); idempotent and bounded by a timeout. */
RELAY_API relay_err relay_agent_shutdown(relay_agent *a);

/* relay_agent_restart shuts the runtime down and starts it again; actors and models survive. */
RELAY_API relay_err relay_agent_restart(relay_agent *a);

/* relay_agent_free shuts down if needed and frees the agent; NULL is a no-op. */
RELAY_API void relay_agent_free(relay_agent *a);

/* relay_actor_options describes a new actor; zero fields take the agent's defaults. */
typedef struct relay_actor_options {
    const relay_bundle *model; /* policy (copied); NULL: the agent's default model, if any */
    const char *env;           /* environment for spaces and run_env; NULL: config "env" */
    uint32_t max_traj_length;  /* 0: config value */
    uint64_t seed;             /* 0: derived from the config seed and the actor's index */
    bool deterministic;        /* argmax / mean instead of sampling */
    const relay_id *id;        /* NULL: a fresh random id */
    /* Critic (obs -> V(s), copied) for the "value" column and the bootstrap of cut and truncated
       pieces; NULL: the bundle's value model (relay_bundle_value), if any. Without one, value and
       bootstrap are 0 (GAE then has no baseline). Independent model mode only. */
    const relay_model *value_model;
} relay_actor_options;

/* relay_agent_new_actor creates one actor on the least-loaded router and returns its id. */
RELAY_API relay_err relay_agent_new_actor(relay_agent *a, const relay_actor_options *opt,
                                          relay_id *id);

/* relay_agent_new_actors creates count actors (ids[count] receives their ids). */
RELAY_API relay_err relay_agent_new_actors(relay_agent *a, uint32_t count,
                                           const relay_actor_options *opt, relay_id *ids);

/* relay_agent_remove_actor removes an actor after flushing its partial trajectory. */
RELAY_API relay_err relay_agent_remove_actor(relay_agent *a, relay_id id);

/* relay_agent_remove_actors removes n actors; returns the first error, removing the rest anyway. */
RELAY_API relay_err relay_agent_remove_actors(relay_agent *a, const relay_id *ids, size_t n);

/* relay_agent_set_actor_id renames an actor; its model, data and future stamps move with it. */
RELAY_API relay_err relay_agent_set_actor_id(relay_agent *a, relay_id cur, relay_id next);

/* relay_agent_actor_ids copies up to max ids (sorted) and returns how many actors exist. */
RELAY_API size_t relay_agent_actor_ids(relay_agent *a, relay_id *ids, size_t max);

/* relay_agent_obs_dim returns the observation width of actor id (0 if unknown). */
RELAY_API uint32_t relay_agent_obs_dim(relay_agent *a, relay_id id);

/* relay_agent_act_dim returns the action width written per actor by request_action (0 if unknown).
 */
RELAY_API uint32_t relay_agent_act_dim(relay_agent *a, relay_id id);

/*
 * relay_agent_request_action asks n actors for actions in parallel: obs is [n x obs_dim], masks
 * [n x n_actions] (1 = allowed) or NULL, rewards [n] (credited to each actor's previous action) or
 * NULL; actions receives [n x act_dim] floats (discrete: the action index). errs[n] (optional)
 * receives each actor's status; the call returns the first error. An unknown id gets
 * RELAY_ENOTFOUND in errs[] and its actions row is left alone while the other ids are served
 * (its rows are taken to be as wide as the other actors'; when known actors differ in widths
 * nothing is sent and they get RELAY_ECANCELED).
 */
RELAY_API relay_err relay_agent_request_action(relay_agent *a, const relay_id *ids, size_t n,
                                               const float *obs, const uint8_t *masks,
                                               const float *rewards, float *actions,
                                               relay_err *errs);

/* relay_agent_flag_last_action ends each actor's episode with a final reward (NULL: 0). */
RELAY_API relay_err relay_agent_flag_last_action(relay_agent *a, const relay_id *ids, size_t n,
                                                 const float *rewards);

/*
 * relay_agent_end_episodes ends each actor's episode with a final reward (rewards NULL: 0) and
 * Gymnasium's distinction: truncated[i] (NULL: all false) marks a time-limit end, which learners
 * bootstrap with V(final_obs row i) (final_obs [n x obs_dim], may be NULL: V of the last
 * observation acted on); otherwise the episode terminated (bootstrap 0). RELAY_ESTATE for an
 * actor with nothing to close.
 */
RELAY_API relay_err relay_agent_end_episodes(relay_agent *a, const relay_id *ids, size_t n,
                                             const float *rewards, const bool *truncated,
                                             const float *final_obs);

/*
 * relay_agent_update_model sends model b to actors ids[0..n) (n = 0: all) as ModelUpdate
 * messages; each actor's version becomes its previous version + 1 (0 for its first model). In
 * shared mode the agent's shared model is replaced once and every actor switches to it.
 */
RELAY_API relay_err relay_agent_update_model(relay_agent *a, const relay_bundle *b,
                                             const relay_id *ids, size_t n);

/* relay_agent_get_model_version writes each actor's model version (-1: none) to versions[n]. */
RELAY_API relay_err relay_agent_get_model_version(relay_agent *a, const relay_id *ids, size_t n,
                                                  int64_t *versions);

/* relay_agent_scale_throughput adds (delta > 0) or removes (delta < 0) routers; 0 is RELAY_EINVAL.
 */
RELAY_API relay_err relay_agent_scale_throughput(relay_agent *a, int32_t delta);

/* relay_agent_num_routers returns the current router count. */
RELAY_API uint32_t relay_agent_num_routers(relay_agent *a);

/*
 * relay_agent_run_env makes actor id step n_envs copies of env (NULL: the actor's env) for steps
 * vector steps (0: until shutdown or removal) on its router (a pool worker), recording
 * trajectories. With wait, the call returns when the run ends.
 */
RELAY_API relay_err relay_agent_run_env(relay_agent *a, relay_id id, const char *env,
                                        uint32_t n_envs, uint64_t steps, bool wait);

/*
 * relay_agent_drain_trajectories moves up to max trajectories out of the memory sink (ownership
 * passes to the caller: relay_traj_free each) and stores the count in *n.
 */
RELAY_API relay_err relay_agent_drain_trajectories(relay_agent *a, relay_traj **out, size_t max,
                                                   size_t *n);

/* relay_agent_flush waits until every trajectory emitted so far has reached the sinks. */
RELAY_API relay_err relay_agent_flush(relay_agent *a);

/* relay_agent_stats are counters for progress and diagnostics. */
typedef struct relay_agent_stats {
    uint64_t env_steps, inferences, episodes, trajectories;
    uint64_t batched_inferences; /* inferences that shared one forward pass with other actors */
    uint64_t dispatched, pending, expired, rejected;
    uint64_t buffered_dropped, buffered_blocked;
    uint32_t sinks_open;  /* sinks writing now (a file sink that failed to open is not counted) */
    uint64_t sink_errors; /* sinks that failed to open, failed sink writes and failed closes */
    uint32_t actors, routers;
} relay_agent_stats;

/* relay_agent_get_stats fills out with current counters. */
RELAY_API void relay_agent_get_stats(relay_agent *a, relay_agent_stats *out);

#ifdef __cplusplus
}
#endif
#endif
