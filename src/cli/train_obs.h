/*
 * Observability of `relay train` (and relay_train_run): the learner's series on the agent's
 * metrics server (config `metrics_addr` / --metrics-addr), the dashboard's learning curve, and the
 * time breakdown (where the thread time went) printed at the end and written to
 * <run>/time_breakdown.json. The run owns an rly_train_obs; the learner thread feeds it through
 * rly_train_obs_update and the episode callback; the server thread reads it at scrape time.
 */
#ifndef RLY_CLI_TRAIN_OBS_H
#define RLY_CLI_TRAIN_OBS_H

#include <stddef.h>

#include "agent/agent.h"
#include "learn/learner.h"
#include "obs/obs.h"

/* rly_train_obs holds the training series (embedded in the run; init before the learner). */
typedef struct rly_train_obs {
    rly_obs_server *srv; /* the agent's server, NULL when metrics are off */
    relay_agent *agent;
    rly_learner *_Atomic learner; /* set once the learner exists */
    rly_obs_hist returns;         /* episode returns */
    rly_obs_hist update_s;        /* learner update durations */
    double target;
    bool registered;
} rly_train_obs;

/* rly_train_obs_init prepares t for agent (its server may be NULL) and sets the dashboard title. */
void rly_train_obs_init(rly_train_obs *t, relay_agent *agent, const char *env, const char *algo,
                        double target);

/* rly_train_obs_learner installs the episode-return callback into the learner's config. */
void rly_train_obs_learner(rly_train_obs *t, rly_learner_config *lc);

/* rly_train_obs_start registers the learner's series on the server (no-op without a server). */
void rly_train_obs_start(rly_train_obs *t, rly_learner *l);

/* rly_train_obs_update records one update (learner thread): curve point, update duration. */
void rly_train_obs_update(rly_train_obs *t, const rly_learner_stats *st);

/* rly_return_range picks the span of the episode-return histogram for env (built-ins known). */
void rly_return_range(const char *env, double *lo, double *hi);

/*
 * rly_learner_series writes the learner's series (steps, updates, episodes, mean return, target,
 * policy version and lag, update time, update and return histograms, losses): shared by
 * `relay train` and `relay server`; lag_help (NULL: train's) says what the lag gauge means.
 */
void rly_learner_series(rly_obs_out *o, const rly_learner_stats *st, double target, double lag,
                        const char *lag_help, const rly_obs_hist *update_s,
                        const rly_obs_hist *returns);

/* rly_train_obs_stop unregisters the series; call before the learner is freed. */
void rly_train_obs_stop(rly_train_obs *t);

/* RLY_PHASES is the number of phases of a time breakdown. */
#define RLY_PHASES 6

/* rly_phase_names are the phases: env, inference, record, sink, learn, wait. */
extern const char *const rly_phase_names[RLY_PHASES];

/* rly_time_breakdown is where the thread time of a run went (seconds). */
typedef struct rly_time_breakdown {
    double phase[RLY_PHASES]; /* in rly_phase_names order */
    double wall_s;            /* learner lifetime */
    double cpu_s;             /* process CPU time (user + system) */
    double router_s;          /* router thread-seconds (routers x running time) */
    double learner_idle_s;    /* learner thread time not in updates */
    double handoff_s;         /* sink worker handing trajectories to the learner */
} rly_time_breakdown;

/* rly_time_breakdown_get measures b from the agent's and the learner's counters. */
void rly_time_breakdown_get(relay_agent *a, const rly_learner_stats *st, rly_time_breakdown *b);

/* rly_time_breakdown_format writes "time: env 12.3% | inference ... | wait 4.0%" into buf. */
size_t rly_time_breakdown_format(const rly_time_breakdown *b, char *buf, size_t cap);

/* rly_time_breakdown_write_json writes b to path (seconds and shares); RELAY_EIO on failure. */
relay_err rly_time_breakdown_write_json(const char *path, const rly_time_breakdown *b);

#endif
