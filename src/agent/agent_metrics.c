/*
 * The agent's metrics: a collector that reads the counters the routing, actor and sink layers
 * already keep (relaxed loads; nothing is added to their hot paths beyond single-writer adds) and
 * writes them as Prometheus series at scrape time, plus the agent's own server for the config
 * key `metrics_addr`. docs/OBSERVABILITY.md lists every series.
 */
#include <math.h>
#include <stdio.h>

#include "agent/agent_internal.h"
#include "obs/obs.h"

#define MAX_ROUTERS_SHOWN 4096

void rly_agent_retire_stats(relay_agent *a, rly_actor_stats *s)
{
    a->retired_trajs += atomic_load(&s->trajectories);
    a->retired_episodes += atomic_load(&s->episodes);
    a->retired_steps += atomic_load(&s->env_steps);
    a->retired_inferences += atomic_load(&s->inferences);
    for (int i = 0; i < RLY_ACTOR_BATCH_BUCKETS; i++)
        a->retired_batch[i] += atomic_load(&s->batch_hist[i]);
    a->retired_rows += atomic_load(&s->batch_rows);
    a->retired_ns[0] += atomic_load(&s->ns_env);
    a->retired_ns[1] += atomic_load(&s->ns_infer);
    a->retired_ns[2] += atomic_load(&s->ns_record);
}

/* actor_totals sums the extended counters of every actor (lock held). */
static void actor_totals(relay_agent *a, uint64_t batch[RLY_ACTOR_BATCH_BUCKETS], uint64_t *rows,
                         uint64_t ns[3], int64_t *vmin, int64_t *vmax)
{
    for (int i = 0; i < RLY_ACTOR_BATCH_BUCKETS; i++)
        batch[i] = a->retired_batch[i];
    *rows = a->retired_rows;
    for (int i = 0; i < 3; i++)
        ns[i] = a->retired_ns[i];
    *vmin = INT64_MAX;
    *vmax = -1;
    size_t pos = 0;
    rly_idmap_slot *it;
    while ((it = rly_idmap_next(&a->actors, &pos))) {
        rly_actor_stats *s = rly_actor_stats_of(((agent_actor *)it->val)->actor);
        for (int i = 0; i < RLY_ACTOR_BATCH_BUCKETS; i++)
            batch[i] += atomic_load_explicit(&s->batch_hist[i], memory_order_relaxed);
        *rows += atomic_load_explicit(&s->batch_rows, memory_order_relaxed);
        ns[0] += atomic_load_explicit(&s->ns_env, memory_order_relaxed);
        ns[1] += atomic_load_explicit(&s->ns_infer, memory_order_relaxed);
        ns[2] += atomic_load_explicit(&s->ns_record, memory_order_relaxed);
        int64_t v = atomic_load_explicit(&s->version, memory_order_relaxed);
        if (v < *vmin)
            *vmin = v;
        if (v > *vmax)
            *vmax = v;
    }
    if (*vmin == INT64_MAX)
        *vmin = -1;
}

void rly_agent_times_get(relay_agent *a, rly_agent_times *out)
{
    memset(out, 0, sizeof *out);
    if (!a)
        return;
    uint64_t batch[RLY_ACTOR_BATCH_BUCKETS], rows, ns[3];
    int64_t vmin, vmax;
    rly_mutex_lock(&a->lock);
    actor_totals(a, batch, &rows, ns, &vmin, &vmax);
    out->env_s = (double)ns[0] * 1e-9;
    out->infer_s = (double)ns[1] * 1e-9;
    out->record_s = (double)ns[2] * 1e-9;
    out->router_s = a->router_s_done;
    if (a->coord && a->started_ns)
        out->router_s +=
            (double)rly_coord_num_workers(a->coord) * (double)(rly_now_ns() - a->started_ns) * 1e-9;
    if (a->worker)
        rly_sinkworker_times(a->worker, &out->sink_write_s, &out->sink_consume_s);
    out->sink_write_s += a->sink_write_done;
    out->sink_consume_s += a->sink_consume_done;
    out->version_min = vmin;
    out->version_max = vmax;
    rly_mutex_unlock(&a->lock);
}

void rly_agent_times_retire(relay_agent *a)
{
    if (a->coord && a->started_ns)
        a->router_s_done +=
            (double)rly_coord_num_workers(a->coord) * (double)(rly_now_ns() - a->started_ns) * 1e-9;
    a->started_ns = 0;
    if (a->worker) {
        double w, c;
        rly_sinkworker_times(a->worker, &w, &c);
        a->sink_write_done += w;
        a->sink_consume_done += c;
    }
}

static void counter(rly_obs_out *o, const char *name, const char *help, uint64_t v)
{
    rly_obs_family(o, name, "counter", help);
    rly_obs_sample_u64(o, name, NULL, v);
}

static void gauge(rly_obs_out *o, const char *name, const char *help, double v)
{
    rly_obs_metric(o, name, "gauge", help, v);
}

/* write_routers writes the per-router families (stats of n routers). */
static void write_routers(rly_obs_out *o, const rly_router_stats *rs, uint32_t n)
{
    static const struct {
        const char *name, *type, *help;
        int field;
    } fam[] = {
        {"relay_router_actors", "gauge", "Actors owned by the router.", 0},
        {"relay_router_queue_depth", "gauge", "Messages waiting in the router's intake queue.", 1},
        {"relay_router_delivered_total", "counter", "Messages delivered to actors by the router.",
         2},
        {"relay_router_misrouted_total", "counter",
         "Messages for actors the router did not own, returned to the dispatcher.", 4},
        {"relay_router_steps_total", "counter", "Actor step() calls (run_env vector steps).", 5},
    };
    char lab[32];
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        rly_obs_family(o, fam[f].name, fam[f].type, fam[f].help);
        for (uint32_t i = 0; i < n; i++) {
            const rly_router_stats *s = &rs[i];
            uint64_t v = fam[f].field == 0   ? s->actors
                         : fam[f].field == 1 ? s->queued
                         : fam[f].field == 2 ? s->delivered
                         : fam[f].field == 4 ? s->misrouted
                                             : s->steps;
            snprintf(lab, sizeof lab, "router=\"%u\"", s->id);
            rly_obs_sample_u64(o, fam[f].name, lab, v);
        }
    }
}

/* write_sinks writes the per-sink families and the router buffers' totals (lock held). */
static void write_sinks(relay_agent *a, rly_obs_out *o)
{
    static const struct {
        const char *name, *help;
        int field;
    } fam[] = {
        {"relay_sink_trajectories_total", "Trajectories a sink accepted.", 0},
        {"relay_sink_rows_total", "Steps (rows) a sink accepted.", 1},
        {"relay_sink_bytes_total", "Bytes a sink wrote to files.", 2},
        {"relay_sink_files_total", "Files a sink created.", 3},
        {"relay_sink_rejected_total", "Trajectories a sink refused (schema differs).", 4},
        {"relay_sink_dropped_total", "Trajectories a sink evicted (memory sink cap).", 5},
        {"relay_sink_errors_total", "Sink calls that returned an error.", 6},
    };
    relay_sink_stats st[MAX_SINKS];
    for (size_t i = 0; i < a->n_sinks; i++)
        relay_sink_stats_get(a->sinks[i], &st[i]);
    char lab[64];
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        rly_obs_family(o, fam[f].name, "counter", fam[f].help);
        for (size_t i = 0; i < a->n_sinks; i++) {
            const relay_sink_stats *s = &st[i];
            uint64_t v = fam[f].field == 0   ? s->trajs
                         : fam[f].field == 1 ? s->rows
                         : fam[f].field == 2 ? s->bytes
                         : fam[f].field == 3 ? s->files
                         : fam[f].field == 4 ? s->rejected
                         : fam[f].field == 5 ? s->dropped
                                             : s->errors;
            char esc[40];
            snprintf(lab, sizeof lab, "sink=\"%s\"",
                     rly_obs_label_escape(relay_sink_name(a->sinks[i]), esc, sizeof esc));
            rly_obs_sample_u64(o, fam[f].name, lab, v);
        }
    }
    rly_tbuf_stats ts = {0};
    if (a->worker)
        rly_sinkworker_totals(a->worker, &ts);
    counter(o, "relay_trajectory_buffer_accepted_total",
            "Trajectories actors pushed into the router buffers.", ts.accepted);
    counter(o, "relay_trajectory_buffer_drained_total",
            "Trajectories the sink worker took out of the router buffers.", ts.drained);
    counter(o, "relay_trajectory_buffer_blocked_total",
            "Pushes that waited for room in a full buffer (backpressure: block).", ts.blocked);
    counter(o, "relay_trajectory_buffer_dropped_total",
            "Trajectories evicted from full buffers (backpressure: drop_oldest).", ts.dropped);
    gauge(o, "relay_sinks_open", "Sinks writing now.", (double)a->n_sinks);
    counter(o, "relay_sink_open_failures_total", "Sinks that failed to open.",
            a->sink_open_failures);
}

void rly_agent_collect(void *ctx, rly_obs_out *o)
{
    relay_agent *a = ctx;
    relay_agent_stats as;
    relay_agent_get_stats(a, &as);
    rly_agent_times t;
    rly_agent_times_get(a, &t);
    gauge(o, "relay_actors", "Actors in the agent.", as.actors);
    gauge(o, "relay_routers", "Router threads running.", as.routers);
    counter(o, "relay_env_steps_total", "Environment transitions stepped by actors (all envs).",
            as.env_steps);
    counter(o, "relay_episodes_total", "Episodes finished by actors.", as.episodes);
    counter(o, "relay_trajectories_total", "Trajectories emitted by actors.", as.trajectories);
    counter(o, "relay_inference_requests_total", "RequestInference messages handled by actors.",
            as.inferences);
    counter(o, "relay_inference_batched_total",
            "Inference requests served by a forward pass shared with other actors.",
            as.batched_inferences);

    uint64_t batch[RLY_ACTOR_BATCH_BUCKETS], rows, ns[3];
    int64_t vmin, vmax;
    rly_mutex_lock(&a->lock);
    actor_totals(a, batch, &rows, ns, &vmin, &vmax);
    rly_router_stats rs[64];
    rly_router_stats *rsp = rs;
    uint32_t n_rs = 0;
    rly_dispatcher_stats ds;
    bool have_coord = a->coord != NULL;
    if (have_coord) {
        rly_coord_get_stats(a->coord, &ds);
        uint32_t nr = rly_coord_num_routers(a->coord);
        if (nr > 64)
            rsp = malloc((nr < MAX_ROUTERS_SHOWN ? nr : MAX_ROUTERS_SHOWN) * sizeof *rsp);
        if (!rsp)
            rsp = rs, nr = 64;
        n_rs =
            rly_coord_router_stats(a->coord, rsp, nr < MAX_ROUTERS_SHOWN ? nr : MAX_ROUTERS_SHOWN);
    }
    write_sinks(a, o);
    rly_mutex_unlock(&a->lock);

    /* inference batch sizes: cumulative buckets 1, 2, 4, ... 512, +Inf */
    rly_obs_family(o, "relay_inference_batch_size", "histogram",
                   "Rows per policy forward pass (run_env vector steps and batched requests).");
    uint64_t cum = 0, fwd = 0;
    char lab[48];
    for (int i = 0; i < RLY_ACTOR_BATCH_BUCKETS; i++) {
        cum += batch[i];
        if (i < RLY_ACTOR_BATCH_BUCKETS - 1)
            snprintf(lab, sizeof lab, "le=\"%u\"", 1u << i);
        else
            snprintf(lab, sizeof lab, "le=\"+Inf\"");
        rly_obs_sample_u64(o, "relay_inference_batch_size_bucket", lab, cum);
    }
    fwd = cum;
    rly_obs_sample_u64(o, "relay_inference_batch_size_sum", NULL, rows);
    rly_obs_sample_u64(o, "relay_inference_batch_size_count", NULL, fwd);
    gauge(o, "relay_actor_policy_version_min",
          "Oldest model version any actor is using (-1: none).", (double)vmin);
    gauge(o, "relay_actor_policy_version_max", "Newest model version any actor is using.",
          (double)vmax);

    rly_obs_family(
        o, "relay_time_seconds_total", "counter",
        "Thread time by phase: env stepping, inference, trajectory recording (run_env, "
        "sampled 1 step in 16), sink writes, and router time not spent stepping (wait).");
    double busy = t.env_s + t.infer_s + t.record_s;
    rly_obs_sample(o, "relay_time_seconds_total", "phase=\"env\"", t.env_s);
    rly_obs_sample(o, "relay_time_seconds_total", "phase=\"inference\"", t.infer_s);
    rly_obs_sample(o, "relay_time_seconds_total", "phase=\"record\"", t.record_s);
    rly_obs_sample(o, "relay_time_seconds_total", "phase=\"sink\"", t.sink_write_s);
    rly_obs_sample(o, "relay_time_seconds_total", "phase=\"wait\"",
                   t.router_s > busy ? t.router_s - busy : 0);
    rly_obs_family(o, "relay_sink_worker_seconds_total", "counter",
                   "Sink worker time: writing batches to sinks, handing trajectories to the "
                   "consumer (learner).");
    rly_obs_sample(o, "relay_sink_worker_seconds_total", "stage=\"write\"", t.sink_write_s);
    rly_obs_sample(o, "relay_sink_worker_seconds_total", "stage=\"consume\"", t.sink_consume_s);

    if (have_coord) {
        rly_obs_family(o, "relay_dispatcher_dispatched_total", "counter",
                       "Messages forwarded to routers: by the dispatcher thread, or pushed "
                       "straight to the owning router by the sender (fast path).");
        rly_obs_sample_u64(o, "relay_dispatcher_dispatched_total", "path=\"dispatcher\"",
                           ds.dispatched - ds.direct);
        rly_obs_sample_u64(o, "relay_dispatcher_dispatched_total", "path=\"fast\"", ds.direct);
        counter(o, "relay_dispatcher_queued_total",
                "Messages held in the pending table for unassigned actors.", ds.queued);
        counter(o, "relay_dispatcher_retried_total", "Retry attempts of pending actors.",
                ds.retried);
        counter(o, "relay_dispatcher_expired_total",
                "Pending messages completed with a timeout after their TTL.", ds.expired);
        counter(o, "relay_dispatcher_rejected_total",
                "Sends refused because the pending table was full.", ds.rejected);
        counter(o, "relay_dispatcher_requeued_total", "Misrouted messages routed again.",
                ds.requeued);
        counter(o, "relay_dispatcher_failed_total", "Messages completed with an error at shutdown.",
                ds.failed);
        gauge(o, "relay_dispatcher_pending_messages", "Messages held for unassigned actors now.",
              (double)ds.pending);
        write_routers(o, rsp, n_rs);
    }
    if (rsp != rs)
        free(rsp);
}

uint32_t rly_agent_router_depths(relay_agent *a, uint32_t *out, uint32_t cap)
{
    rly_router_stats rs[256]; /* the most an ActorStats report carries */
    uint32_t n = 0;
    if (cap > 256)
        cap = 256;
    rly_mutex_lock(&a->lock);
    if (a->coord)
        n = rly_coord_router_stats(a->coord, rs, cap);
    rly_mutex_unlock(&a->lock);
    for (uint32_t i = 0; i < n; i++)
        out[i] = rs[i].queued > UINT32_MAX ? UINT32_MAX : (uint32_t)rs[i].queued;
    return n;
}

rly_obs_server *rly_agent_obs(relay_agent *a)
{
    return a ? a->obs : NULL;
}

relay_err rly_agent_obs_start(relay_agent *a)
{
    if (!a->cfg.metrics_addr[0])
        return RELAY_OK;
    rly_obs_server_config oc = {.addr = a->cfg.metrics_addr};
    relay_err e = rly_obs_server_new(&oc, &a->obs);
    if (!e)
        e = rly_obs_server_add_collector(a->obs, rly_agent_collect, a);
    if (!e) {
        char url[300];
        rly_info(MOD, "metrics on %smetrics", rly_obs_server_url(a->obs, url, sizeof url));
    }
    return e;
}
