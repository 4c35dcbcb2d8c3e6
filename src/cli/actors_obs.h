/*
 * Observability of `relay actors`: the publisher's and spool's series on the agent's metrics
 * server (config metrics_addr, from --metrics-addr; the agent exports routers, dispatcher, env
 * steps, inference and sinks itself), and the process's load report to the training server
 * (an ActorStats control request about once a second, docs/PROTOCOL.md), whether or not
 * --metrics-addr is given.
 *
 * Ownership and threads: the actor process's main thread owns an rly_actors_obs (init, report,
 * fini) and its codec; the metrics server's thread calls the snapshot function at scrape time, so
 * it must only read atomics or take short locks.
 */
#ifndef RLY_CLI_ACTORS_OBS_H
#define RLY_CLI_ACTORS_OBS_H

#include <stdint.h>

#include "agent/agent.h"
#include "relay/codec.h"
#include "transport/transport.h"

/* rly_pub_snapshot is what the publisher and spool have done so far. */
typedef struct rly_pub_snapshot {
    uint64_t trajs_made, trajs_acked, trajs_dropped;
    uint64_t batches_sent, batches_acked, resends, publish_errors;
    uint64_t models_applied, models_refused;
    uint64_t spool_batches, spool_bytes; /* not yet acknowledged */
    int64_t version;                     /* model installed, -1 = none */
    uint32_t actors;
} rly_pub_snapshot;

/* rly_pub_snapshot_fn fills out (any thread). */
typedef void (*rly_pub_snapshot_fn)(void *ctx, rly_pub_snapshot *out);

/* rly_actors_obs is the actor process's metrics state (embed it; main thread). */
typedef struct rly_actors_obs {
    relay_agent *agent;
    struct rly_obs_server *srv; /* the agent's server, NULL when --metrics-addr is off */
    rly_pub_snapshot_fn snap;
    void *snap_ctx;
    relay_codec *codec; /* encodes the reports (main thread) */
    relay_codec_buf req, rep;
    char client_id[RELAY_TEXT_MAX];
    int64_t start_ns, next_report_ns;
    uint32_t failures; /* reports in a row the server did not answer */
    bool registered;
} rly_actors_obs;

/*
 * rly_actors_obs_init prepares o for agent (its metrics server, if any, gets the publisher's
 * series) and the reports of client_id; codec is o's own (freed by rly_actors_obs_fini).
 */
void rly_actors_obs_init(rly_actors_obs *o, relay_agent *agent, relay_codec *codec,
                         const char *client_id, rly_pub_snapshot_fn snap, void *snap_ctx);

/* rly_actors_obs_stats fills st with the process's current load report. */
void rly_actors_obs_stats(rly_actors_obs *o, relay_actor_stats *st);

/*
 * rly_actors_obs_tick sends the load report to the server when one is due (every second; every
 * 10 s after 3 unanswered ones, e.g. an older server). It waits at most 300 ms for the reply.
 */
void rly_actors_obs_tick(rly_actors_obs *o, rly_tp *tp);

/* rly_actors_obs_fini unregisters the series and frees the codec and buffers. */
void rly_actors_obs_fini(rly_actors_obs *o);

#endif
