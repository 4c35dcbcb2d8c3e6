/*
 * Internal to the agent layer: the relay_agent object shared by agent.c (lifecycle), agent_actors.c
 * (actor management), agent_request.c (request/reply and model messages) and agent_data.c (run_env,
 * trajectories, stats). Any caller thread touches it; `life` and `lock` guard it as documented
 * below.
 */
#ifndef RLY_AGENT_AGENT_INTERNAL_H
#define RLY_AGENT_AGENT_INTERNAL_H

#include "agent/agent.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "coord/coordinator.h"
#include "core/clock.h"
#include "core/idmap.h"
#include "core/log.h"

#define MOD "agent"
#define MAX_SINKS 4

typedef struct agent_actor {
    rly_actor *actor;
    const relay_env_def *env;
    bool busy; /* an add, removal or rename is in flight (guarded by lock) */
} agent_actor;

enum { ST_NEW = 0, ST_RUNNING, ST_DOWN };

struct relay_agent {
    relay_config cfg;
    /* life: held for reading by calls that use the runtime outside `lock` (sending messages,
       scaling), for writing by start/shutdown/restart, so the runtime is never torn down under
       a call in flight. Order: life before lock. */
    pthread_rwlock_t life;
    rly_mutex lock; /* actors table and lifecycle state; never held across a control round trip
                       or a blocking send (those pin the runtime with `life` instead) */
    int state;
    /* set (before taking `life`) while shutdown or restart stops the runtime: threads the stop
       waits for (the learner publishing, the network thread of relay actors) give up on `life`
       and `lock` instead of waiting for the stopping thread (rly_agent_lock_unless_stopping) */
    atomic_bool stopping;
    rly_coord *coord;
    rly_sinkworker *worker;
    relay_sink *sinks[MAX_SINKS];
    size_t n_sinks;
    relay_sink *memory;
    uint64_t sink_open_failures;
    uint64_t retired_sink_errors; /* write and close errors of sinks already closed */
    rly_idmap actors;             /* id -> agent_actor* */
    uint64_t actor_count;         /* actors ever created, for seeds */
    uint64_t retired_trajs;       /* trajectories emitted by actors since removed */
    uint64_t retired_episodes;    /* and their episodes, steps and inferences */
    uint64_t retired_steps, retired_inferences;
    relay_model_handle *shared_pi, *shared_vf;
    int64_t shared_version;
    relay_bundle *default_model;
    rly_sink_consumer consumer;
    void *consumer_ctx;
    _Atomic(struct relay_learner *) learner; /* relay_agent_attach_learner (agent_learner.c) */
    relay_err shutdown_err;
    /* metrics (agent_metrics.c): the server for `metrics_addr` (NULL when off), counters of
       actors since removed, and time totals of runtimes already stopped */
    struct rly_obs_server *obs;
    uint64_t retired_batch[RLY_ACTOR_BATCH_BUCKETS], retired_rows, retired_ns[3];
    int64_t started_ns;
    double router_s_done, sink_write_done, sink_consume_done;
};

/* rly_agent_running_locked checks the agent can take actor calls; lock held. */
relay_err rly_agent_running_locked(relay_agent *a);

/* rly_agent_enter pins the runtime for a call that sends messages; pair with rly_agent_leave. */
relay_err rly_agent_enter(relay_agent *a);

/* rly_agent_leave releases what rly_agent_enter pinned. */
void rly_agent_leave(relay_agent *a);

/* rly_agent_lock_unless_stopping takes a->lock, or returns false once a shutdown or restart has
   begun (for threads that a stopping agent may be waiting for: they must not wait for it). */
bool rly_agent_lock_unless_stopping(relay_agent *a);

/* rly_agent_enter_unless_stopping is rly_agent_enter that gives up (RELAY_ESHUTDOWN) once a
   shutdown or restart has begun instead of waiting for it. */
relay_err rly_agent_enter_unless_stopping(relay_agent *a);
/* rly_agent_consume hands a drained trajectory to the attached learner, if any (ctx = agent). */
void rly_agent_consume(void *ctx, relay_traj *t);

/* rly_agent_learner_free stops and frees the attached learner, if any. */
void rly_agent_learner_free(relay_agent *a);

/* rly_agent_retire_stats adds a removed actor's counters to the agent's totals; lock held. */
void rly_agent_retire_stats(relay_agent *a, rly_actor_stats *s);

/* rly_agent_times_retire folds the running runtime's time totals into the agent's; lock held. */
void rly_agent_times_retire(relay_agent *a);

/* rly_agent_obs_start starts the server for cfg.metrics_addr (no-op when it is empty). */
relay_err rly_agent_obs_start(relay_agent *a);

/* rly_agent_check_model_locked is rly_agent_check_model with a->lock held. */
relay_err rly_agent_check_model_locked(relay_agent *a, const relay_id *ids, size_t n,
                                       const relay_model *pi, const relay_model *vf,
                                       const char *what);

/* rly_agent_ids_locked snapshots every actor id, sorted, into a malloc'd array (caller frees;
   NULL when out of memory); a->lock held. */
relay_id *rly_agent_ids_locked(relay_agent *a, size_t *n);

/* rly_agent_all_ids snapshots every actor id into a malloc'd array (caller frees). */
relay_id *rly_agent_all_ids(relay_agent *a, size_t *n);

#endif
