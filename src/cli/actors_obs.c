/* `relay actors` metrics: publisher/spool series and the load report (see actors_obs.h). */
#include "cli/actors_obs.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "obs/obs.h"
#include "relay/relay.h"

#define REPORT_EVERY_NS RLY_NS_PER_S
#define REPORT_BACKOFF_NS (10 * RLY_NS_PER_S)
#define REPORT_WAIT_NS (300 * RLY_NS_PER_MS)

static void counter(rly_obs_out *out, const char *name, const char *help, uint64_t v)
{
    rly_obs_family(out, name, "counter", help);
    rly_obs_sample_u64(out, name, NULL, v);
}

static void collect(void *ctx, rly_obs_out *out)
{
    rly_actors_obs *o = ctx;
    rly_pub_snapshot p;
    o->snap(o->snap_ctx, &p);
    rly_obs_family(out, "relay_publisher_trajectories_total", "counter",
                   "Trajectories handed to the publisher (made), acknowledged by the transport, "
                   "or dropped (spool full, encode failure, shutdown).");
    rly_obs_sample_u64(out, "relay_publisher_trajectories_total", "state=\"made\"", p.trajs_made);
    rly_obs_sample_u64(out, "relay_publisher_trajectories_total", "state=\"acked\"", p.trajs_acked);
    rly_obs_sample_u64(out, "relay_publisher_trajectories_total", "state=\"dropped\"",
                       p.trajs_dropped);
    rly_obs_family(out, "relay_publisher_batches_total", "counter",
                   "Trajectory batches: publishes (resends included), acknowledged, resent.");
    rly_obs_sample_u64(out, "relay_publisher_batches_total", "state=\"sent\"", p.batches_sent);
    rly_obs_sample_u64(out, "relay_publisher_batches_total", "state=\"acked\"", p.batches_acked);
    rly_obs_sample_u64(out, "relay_publisher_batches_total", "state=\"resent\"", p.resends);
    counter(out, "relay_publisher_send_errors_total",
            "Batch publishes the transport refused or did not acknowledge (resent later).",
            p.publish_errors);
    rly_obs_metric(out, "relay_spool_batches", "gauge",
                   "Batches in the spool not yet acknowledged.", (double)p.spool_batches);
    rly_obs_metric(out, "relay_spool_bytes", "gauge", "Bytes held in the spool.",
                   (double)p.spool_bytes);
    rly_obs_metric(out, "relay_model_version_installed", "gauge",
                   "Model version the actors act with (-1: none yet).", (double)p.version);
    rly_obs_family(
        out, "relay_models_total", "counter",
        "Model messages from the server: applied, or refused (not fitting, unreadable).");
    rly_obs_sample_u64(out, "relay_models_total", "result=\"applied\"", p.models_applied);
    rly_obs_sample_u64(out, "relay_models_total", "result=\"refused\"", p.models_refused);
}

void rly_actors_obs_init(rly_actors_obs *o, relay_agent *agent, relay_codec *codec,
                         const char *client_id, rly_pub_snapshot_fn snap, void *snap_ctx)
{
    memset(o, 0, sizeof *o);
    o->agent = agent;
    o->codec = codec;
    o->snap = snap;
    o->snap_ctx = snap_ctx;
    snprintf(o->client_id, sizeof o->client_id, "%s", client_id);
    o->start_ns = rly_now_ns();
    o->next_report_ns = o->start_ns;
    o->srv = rly_agent_obs(agent);
    if (o->srv) {
        char title[RELAY_TEXT_MAX + 32];
        snprintf(title, sizeof title, "%s (actor process)", client_id);
        rly_obs_server_set_run(o->srv, title, NAN);
        o->registered = rly_obs_server_add_collector(o->srv, collect, o) == RELAY_OK;
    }
}

void rly_actors_obs_stats(rly_actors_obs *o, relay_actor_stats *st)
{
    memset(st, 0, sizeof *st);
    snprintf(st->client_id, sizeof st->client_id, "%s", o->client_id);
    rly_pub_snapshot p;
    o->snap(o->snap_ctx, &p);
    relay_agent_stats as;
    relay_agent_get_stats(o->agent, &as);
    st->env_steps = as.env_steps;
    st->episodes = as.episodes;
    st->trajectories = p.trajs_made;
    st->trajectories_acked = p.trajs_acked;
    st->trajectories_dropped = p.trajs_dropped;
    st->batches_sent = p.batches_sent;
    st->batches_acked = p.batches_acked;
    st->batches_resent = p.resends;
    st->spool_batches = p.spool_batches;
    st->spool_bytes = p.spool_bytes;
    st->model_version = p.version < -1 ? -1 : p.version;
    st->actors = as.actors;
    st->n_routers =
        rly_agent_router_depths(o->agent, st->router_queue_depth, RELAY_STATS_MAX_ROUTERS);
    st->uptime_s = (double)(rly_now_ns() - o->start_ns) * 1e-9;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        st->cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                    (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &res) == 2)
            st->rss_bytes = res * (unsigned long long)sysconf(_SC_PAGESIZE);
        fclose(f);
    }
    /* counters past the wire's limit (never in practice) are clamped, not refused */
    uint64_t *c[] = {&st->env_steps,
                     &st->episodes,
                     &st->trajectories,
                     &st->trajectories_acked,
                     &st->trajectories_dropped,
                     &st->batches_sent,
                     &st->batches_acked,
                     &st->batches_resent,
                     &st->spool_batches,
                     &st->spool_bytes,
                     &st->rss_bytes};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        if (*c[i] > RELAY_STATS_MAX_COUNT)
            *c[i] = RELAY_STATS_MAX_COUNT;
}

void rly_actors_obs_tick(rly_actors_obs *o, rly_tp *tp)
{
    int64_t now = rly_now_ns();
    if (now < o->next_report_ns || !o->codec)
        return;
    relay_msg m;
    memset(&m, 0, sizeof m);
    m.kind = RELAY_MSG_ACTOR_STATS;
    rly_actors_obs_stats(o, &m.stats);
    relay_err e = relay_codec_encode_msg(o->codec, &m, &o->req);
    if (!e)
        e = rly_tp_control_request(tp, o->req.data, o->req.len, &o->rep, REPORT_WAIT_NS);
    if (e) {
        if (++o->failures == 3)
            rly_info("actors",
                     "the server does not take load reports (%s): sending one every "
                     "10 s",
                     relay_strerror(e));
    } else {
        o->failures = 0;
    }
    o->next_report_ns = rly_now_ns() + (o->failures >= 3 ? REPORT_BACKOFF_NS : REPORT_EVERY_NS);
}

void rly_actors_obs_fini(rly_actors_obs *o)
{
    if (o->registered)
        rly_obs_server_remove_collector(o->srv, collect, o);
    o->registered = false;
    relay_codec_free(o->codec);
    o->codec = NULL;
    relay_codec_buf_fini(&o->req);
    relay_codec_buf_fini(&o->rep);
}
