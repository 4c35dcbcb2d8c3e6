/*
 * Observability of `relay server` (--metrics-addr): the learner's series, what the consumer took
 * in (batches, trajectories by fate, rejections by reason, behaviour-policy lag), and the actor
 * processes' own load as they report it (ActorStats control requests, docs/PROTOCOL.md),
 * re-exported as series labelled process="<client id>" and shown per process on the dashboard.
 *
 * Ownership and threads: the server's main thread creates and frees an rly_server_obs. The
 * consumer (main thread) calls rly_server_obs_batch/_traj/_reject, the learner thread
 * rly_server_obs_update/_fate and the episode callback, the transport's control threads
 * rly_server_obs_hello/_goodbye/_report; the metrics server's thread reads it at scrape time.
 * Counters are atomics; the actor-process table has its own lock, never held while calling out.
 * Every function is a no-op on NULL (metrics off).
 */
#ifndef RLY_CLI_SERVER_OBS_H
#define RLY_CLI_SERVER_OBS_H

#include <stdint.h>

#include "learn/learner.h"
#include "relay/codec.h"

/* RLY_SERVER_OBS_MAX_PROCS is how many actor processes the table keeps (the oldest gone go). */
#define RLY_SERVER_OBS_MAX_PROCS 1024

/* rly_reject_reason says why the server refused a batch or a trajectory. */
typedef enum rly_reject_reason {
    RLY_REJECT_BATCH_UNREADABLE = 0, /* the batch header or framing failed its checks */
    RLY_REJECT_BATCH_ID,             /* the message id does not match the batch header */
    RLY_REJECT_TRAJ_UNDECODABLE,     /* a trajectory envelope failed to decode (format, key) */
    RLY_REJECT_TRAJ_REFUSED,         /* the learner refused the trajectory (shape, state) */
    RLY_REJECT_N
} rly_reject_reason;

/* rly_server_obs is the server's metrics state (opaque). */
typedef struct rly_server_obs rly_server_obs;

/*
 * rly_server_obs_new starts the metrics server on addr (NULL or "": *out = NULL, RELAY_OK) and
 * prints its URLs; env names the return histogram's span, title and target go to the dashboard.
 * On failure it prints why and returns the error (exit status 2).
 */
relay_err rly_server_obs_new(const char *addr, const char *env, const char *title, double target,
                             rly_server_obs **out);

/* rly_server_obs_free stops the metrics server and frees o (call rly_server_obs_stop first). */
void rly_server_obs_free(rly_server_obs *o);

/* rly_server_obs_learner installs the episode-return callback into the learner's config. */
void rly_server_obs_learner(rly_server_obs *o, rly_learner_config *lc);

/* rly_server_obs_start registers the series once the learner exists. */
void rly_server_obs_start(rly_server_obs *o, rly_learner *l);

/* rly_server_obs_stop unregisters the series; call before the learner is freed. */
void rly_server_obs_stop(rly_server_obs *o);

/* rly_server_obs_update records one learner update (learner thread): curve, update time. */
void rly_server_obs_update(rly_server_obs *o, const rly_learner_stats *st);

/* rly_server_obs_fate counts a trajectory's fate (learner thread). */
void rly_server_obs_fate(rly_server_obs *o, rly_fate fate);

/* rly_server_obs_batch counts a batch message taken in (consumer thread). */
void rly_server_obs_batch(rly_server_obs *o);

/* rly_server_obs_traj counts a decoded trajectory and its behaviour-policy lag in versions. */
void rly_server_obs_traj(rly_server_obs *o, int64_t lag);

/* rly_server_obs_reject counts a rejection by reason. */
void rly_server_obs_reject(rly_server_obs *o, rly_reject_reason why);

/* rly_server_obs_hello marks client_id connected (control thread). */
void rly_server_obs_hello(rly_server_obs *o, const char *client_id);

/* rly_server_obs_goodbye marks client_id gone (control thread). */
void rly_server_obs_goodbye(rly_server_obs *o, const char *client_id);

/* rly_server_obs_report keeps an actor process's latest load report (control thread). */
void rly_server_obs_report(rly_server_obs *o, const relay_actor_stats *st);

#endif
