/* `relay server` metrics: learner, consumer and per-actor-process series (see server_obs.h). */
#include "cli/server_obs.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/train_obs.h"
#include "core/clock.h"
#include "core/thread.h"
#include "obs/obs.h"

/* a process that sent nothing for this long is shown as not connected */
#define SILENT_NS (10 * RLY_NS_PER_S)

static const char *const fate_names[] = {"learned", "stale",    "discarded",
                                         "unused",  "rejected", "duplicate"};
#define N_FATES 6

static const char *const reject_names[RLY_REJECT_N] = {
    "batch_unreadable", "batch_id_mismatch", "trajectory_undecodable", "trajectory_refused"};

typedef struct proc_ent {
    relay_actor_stats st; /* the latest report (client_id is the key) */
    bool reported;        /* st holds a report (not just a hello) */
    bool hello, goodbye;
    int64_t last_seen_ns;
    /* steps/s from the two latest reports (their own uptime clock) */
    double sps;
} proc_ent;

struct rly_server_obs {
    rly_obs_server *srv;
    rly_learner *_Atomic learner;
    bool registered;
    double target;
    rly_obs_hist returns, update_s, lag;
    atomic_ullong fates[N_FATES], rejects[RLY_REJECT_N];
    atomic_ullong batches, trajs, hellos, reports, reports_refused;
    atomic_ullong lag_sum, lag_n; /* trajectories taken in since the last update */
    _Atomic double lag_mean;      /* their mean lag, at the last update (NaN: none yet) */

    rly_mutex mu; /* guards procs and retired_steps */
    proc_ent *procs;
    size_t n_procs;
    uint64_t retired_steps; /* env steps of processes evicted from a full table */
};

/* ---- lifecycle ------------------------------------------------------------------------------- */

relay_err rly_server_obs_new(const char *addr, const char *env, const char *title, double target,
                             rly_server_obs **out)
{
    *out = NULL;
    if (!addr || !addr[0])
        return RELAY_OK;
    rly_server_obs *o = calloc(1, sizeof *o);
    if (!o)
        return RELAY_ENOMEM;
    o->procs = calloc(RLY_SERVER_OBS_MAX_PROCS, sizeof *o->procs);
    if (!o->procs) {
        free(o);
        return RELAY_ENOMEM;
    }
    rly_mutex_init(&o->mu);
    atomic_init(&o->learner, NULL);
    atomic_init(&o->lag_mean, NAN);
    o->target = target;
    double lo, hi;
    rly_return_range(env, &lo, &hi);
    rly_obs_hist_init_lin(&o->returns, lo + (hi - lo) / 20, (hi - lo) / 20, 20);
    rly_obs_hist_init_exp(&o->update_s, 0.001, 2, 16); /* 1 ms .. 33 s */
    rly_obs_hist_init_lin(&o->lag, 0, 1, 11);          /* 0, 1, ... 10 versions */
    relay_err e = rly_obs_cli_start(addr, "relay server", &o->srv);
    if (e) {
        rly_server_obs_free(o);
        return e;
    }
    rly_obs_server_set_run(o->srv, title, target);
    *out = o;
    return RELAY_OK;
}

void rly_server_obs_free(rly_server_obs *o)
{
    if (!o)
        return;
    rly_server_obs_stop(o);
    rly_obs_server_free(o->srv);
    rly_mutex_fini(&o->mu);
    free(o->procs);
    free(o);
}

static void on_episode(void *ctx, float ret)
{
    rly_server_obs *o = ctx;
    rly_obs_hist_observe(&o->returns, ret);
}

void rly_server_obs_learner(rly_server_obs *o, rly_learner_config *lc)
{
    if (!o)
        return;
    lc->on_episode = on_episode;
    lc->on_episode_ctx = o;
}

static void collect(void *ctx, rly_obs_out *out);

void rly_server_obs_start(rly_server_obs *o, rly_learner *l)
{
    if (!o)
        return;
    atomic_store(&o->learner, l);
    if (!o->registered)
        o->registered = rly_obs_server_add_collector(o->srv, collect, o) == RELAY_OK;
}

void rly_server_obs_stop(rly_server_obs *o)
{
    if (!o)
        return;
    if (o->registered)
        rly_obs_server_remove_collector(o->srv, collect, o);
    o->registered = false;
    atomic_store(&o->learner, NULL);
}

/* ---- events ---------------------------------------------------------------------------------- */

void rly_server_obs_update(rly_server_obs *o, const rly_learner_stats *st)
{
    if (!o)
        return;
    rly_obs_hist_observe(&o->update_s, st->last_update_s);
    uint64_t n = atomic_exchange(&o->lag_n, 0), sum = atomic_exchange(&o->lag_sum, 0);
    if (n)
        atomic_store(&o->lag_mean, (double)sum / (double)n);
    rly_obs_curve_add(o->srv, (double)st->steps_consumed,
                      st->episodes ? (double)st->mean_return_100 : NAN, NAN);
}

void rly_server_obs_fate(rly_server_obs *o, rly_fate fate)
{
    if (o && (unsigned)fate < N_FATES)
        atomic_fetch_add_explicit(&o->fates[fate], 1, memory_order_relaxed);
}

void rly_server_obs_batch(rly_server_obs *o)
{
    if (o)
        atomic_fetch_add_explicit(&o->batches, 1, memory_order_relaxed);
}

void rly_server_obs_traj(rly_server_obs *o, int64_t lag)
{
    if (!o)
        return;
    atomic_fetch_add_explicit(&o->trajs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->lag_sum, (uint64_t)(lag > 0 ? lag : 0), memory_order_relaxed);
    atomic_fetch_add_explicit(&o->lag_n, 1, memory_order_relaxed);
    rly_obs_hist_observe(&o->lag, (double)(lag > 0 ? lag : 0));
}

void rly_server_obs_reject(rly_server_obs *o, rly_reject_reason why)
{
    if (o && (unsigned)why < RLY_REJECT_N)
        atomic_fetch_add_explicit(&o->rejects[why], 1, memory_order_relaxed);
}

/* find_locked returns client_id's entry, making one (evicting the longest-silent process that
   said goodbye or went silent when the table is full); NULL when every entry is live. */
static proc_ent *find_locked(rly_server_obs *o, const char *client_id, int64_t now)
{
    for (size_t i = 0; i < o->n_procs; i++)
        if (!strcmp(o->procs[i].st.client_id, client_id))
            return &o->procs[i];
    proc_ent *p = NULL;
    if (o->n_procs < RLY_SERVER_OBS_MAX_PROCS) {
        p = &o->procs[o->n_procs++];
    } else {
        for (size_t i = 0; i < o->n_procs; i++) {
            proc_ent *q = &o->procs[i];
            bool gone = q->goodbye || now - q->last_seen_ns > SILENT_NS;
            if (gone && (!p || q->last_seen_ns < p->last_seen_ns))
                p = q;
        }
        if (!p)
            return NULL;
        o->retired_steps += p->st.env_steps;
    }
    memset(p, 0, sizeof *p);
    snprintf(p->st.client_id, sizeof p->st.client_id, "%s", client_id);
    p->st.model_version = -1;
    return p;
}

void rly_server_obs_hello(rly_server_obs *o, const char *client_id)
{
    if (!o)
        return;
    atomic_fetch_add_explicit(&o->hellos, 1, memory_order_relaxed);
    int64_t now = rly_now_ns();
    rly_mutex_lock(&o->mu);
    proc_ent *p = find_locked(o, client_id, now);
    if (p) {
        p->hello = true;
        p->goodbye = false;
        p->last_seen_ns = now;
    }
    rly_mutex_unlock(&o->mu);
}

void rly_server_obs_goodbye(rly_server_obs *o, const char *client_id)
{
    if (!o)
        return;
    rly_mutex_lock(&o->mu);
    for (size_t i = 0; i < o->n_procs; i++)
        if (!strcmp(o->procs[i].st.client_id, client_id)) {
            o->procs[i].goodbye = true;
            o->procs[i].last_seen_ns = rly_now_ns();
        }
    rly_mutex_unlock(&o->mu);
}

void rly_server_obs_report(rly_server_obs *o, const relay_actor_stats *st)
{
    if (!o)
        return;
    int64_t now = rly_now_ns();
    rly_mutex_lock(&o->mu);
    proc_ent *p = find_locked(o, st->client_id, now);
    if (p) {
        /* a restarted process with the same id (pid reuse) starts its counters again */
        if (p->reported && st->uptime_s > p->st.uptime_s && st->env_steps >= p->st.env_steps)
            p->sps = (double)(st->env_steps - p->st.env_steps) / (st->uptime_s - p->st.uptime_s);
        else if (p->reported && st->env_steps < p->st.env_steps)
            o->retired_steps += p->st.env_steps;
        p->st = *st;
        p->reported = true;
        p->last_seen_ns = now;
    }
    rly_mutex_unlock(&o->mu);
    atomic_fetch_add_explicit(p ? &o->reports : &o->reports_refused, 1, memory_order_relaxed);
}

/* ---- scrape ---------------------------------------------------------------------------------- */

static void counter(rly_obs_out *out, const char *name, const char *help, uint64_t v)
{
    rly_obs_family(out, name, "counter", help);
    rly_obs_sample_u64(out, name, NULL, v);
}

/* per_proc writes one family with a sample per reporting process. */
typedef double (*proc_val_fn)(const proc_ent *p, int64_t now);

static void per_proc(rly_obs_out *out, const proc_ent *ps, size_t n, char (*labels)[300],
                     const char *name, const char *type, const char *help, proc_val_fn fn,
                     int64_t now)
{
    rly_obs_family(out, name, type, help);
    for (size_t i = 0; i < n; i++)
        if (ps[i].reported || !strcmp(name, "relay_actor_connected") ||
            !strcmp(name, "relay_actor_last_seen_seconds"))
            rly_obs_sample(out, name, labels[i], fn(&ps[i], now));
}

static double v_connected(const proc_ent *p, int64_t now)
{
    return !p->goodbye && now - p->last_seen_ns <= SILENT_NS ? 1 : 0;
}
static double v_seen(const proc_ent *p, int64_t now)
{
    return (double)(now - p->last_seen_ns) * 1e-9;
}
static double v_steps(const proc_ent *p, int64_t now)
{
    (void)now;
    return (double)p->st.env_steps;
}
static double v_sps(const proc_ent *p, int64_t now)
{
    return v_connected(p, now) ? p->sps : 0;
}
static double v_episodes(const proc_ent *p, int64_t now)
{
    (void)now;
    return (double)p->st.episodes;
}
static double v_spool_b(const proc_ent *p, int64_t now)
{
    (void)now;
    return (double)p->st.spool_batches;
}
static double v_spool_bytes(const proc_ent *p, int64_t now)
{
    (void)now;
    return (double)p->st.spool_bytes;
}
static double v_version(const proc_ent *p, int64_t now)
{
    (void)now;
    return (double)p->st.model_version;
}
static double v_actors(const proc_ent *p, int64_t now)
{
    (void)now;
    return (double)p->st.actors;
}
static double v_uptime(const proc_ent *p, int64_t now)
{
    (void)now;
    return p->st.uptime_s;
}
static double v_cpu(const proc_ent *p, int64_t now)
{
    (void)now;
    return p->st.cpu_s;
}
static double v_rss(const proc_ent *p, int64_t now)
{
    (void)now;
    return (double)p->st.rss_bytes;
}

static void collect(void *ctx, rly_obs_out *out)
{
    rly_server_obs *o = ctx;
    rly_learner *l = atomic_load(&o->learner);
    int64_t now = rly_now_ns();

    /* snapshot the process table, then write without the lock */
    rly_mutex_lock(&o->mu);
    size_t n = o->n_procs;
    proc_ent *ps = n ? malloc(n * sizeof *ps) : NULL;
    if (!ps)
        n = 0;
    if (n)
        memcpy(ps, o->procs, n * sizeof *ps);
    uint64_t steps = o->retired_steps;
    rly_mutex_unlock(&o->mu);
    char(*labels)[300] = n ? malloc(n * sizeof *labels) : NULL;
    if (!labels)
        n = 0;
    uint32_t connected = 0;
    for (size_t i = 0; i < n; i++) {
        char esc[RELAY_TEXT_MAX * 2 + 8];
        rly_obs_label_escape(ps[i].st.client_id, esc, sizeof esc);
        snprintf(labels[i], sizeof labels[i], "process=\"%s\"", esc);
        steps += ps[i].st.env_steps;
        if (v_connected(&ps[i], now))
            connected++;
    }

    if (l) {
        rly_learner_stats st;
        rly_learner_stats_get(l, &st);
        /* lag: mean behaviour-policy lag of what the newest update's trajectories came with
           (the processes' reported versions are up to a second old: too coarse for this) */
        rly_learner_series(out, &st, o->target, atomic_load(&o->lag_mean),
                           "Mean of server version minus behaviour-policy version over the "
                           "trajectories taken in during the newest update.",
                           &o->update_s, &o->returns);
    }
    counter(out, "relay_env_steps_total",
            "Environment transitions stepped by all actor processes (their reports).", steps);
    rly_obs_metric(out, "relay_actor_processes", "gauge",
                   "Actor processes connected (hello, no goodbye, reported within 10 s).",
                   (double)connected);
    counter(out, "relay_server_hellos_total", "Hello (Handshake) requests answered.",
            atomic_load(&o->hellos));
    counter(out, "relay_server_actor_reports_total", "ActorStats reports taken in.",
            atomic_load(&o->reports));
    counter(out, "relay_server_actor_reports_refused_total",
            "ActorStats reports refused because the process table was full of live processes.",
            atomic_load(&o->reports_refused));
    counter(out, "relay_server_batches_total", "Trajectory batch messages taken in.",
            atomic_load(&o->batches));
    counter(out, "relay_server_trajectories_received_total",
            "Trajectories decoded from batches (before the learner's checks).",
            atomic_load(&o->trajs));
    rly_obs_family(out, "relay_server_trajectories_total", "counter",
                   "Trajectories by fate (as in ledger.csv): learned, stale, discarded, unused, "
                   "rejected, duplicate (batches).");
    char lab[64];
    for (int i = 0; i < N_FATES; i++) {
        snprintf(lab, sizeof lab, "fate=\"%s\"", fate_names[i]);
        rly_obs_sample_u64(out, "relay_server_trajectories_total", lab, atomic_load(&o->fates[i]));
    }
    rly_obs_family(out, "relay_server_rejected_total", "counter",
                   "Batches or trajectories refused, by reason.");
    for (int i = 0; i < RLY_REJECT_N; i++) {
        snprintf(lab, sizeof lab, "reason=\"%s\"", reject_names[i]);
        rly_obs_sample_u64(out, "relay_server_rejected_total", lab, atomic_load(&o->rejects[i]));
    }
    rly_obs_hist_write(out, "relay_trajectory_policy_lag_versions",
                       "Server version minus a trajectory's behaviour-policy version, on arrival.",
                       NULL, &o->lag);

    per_proc(out, ps, n, labels, "relay_actor_connected", "gauge",
             "1 while the actor process is connected (hello, no goodbye, seen within 10 s).",
             v_connected, now);
    per_proc(out, ps, n, labels, "relay_actor_last_seen_seconds", "gauge",
             "Seconds since the actor process's last report or hello.", v_seen, now);
    per_proc(out, ps, n, labels, "relay_actor_env_steps_total", "counter",
             "Environment transitions stepped by the actor process.", v_steps, now);
    per_proc(out, ps, n, labels, "relay_actor_env_steps_per_second", "gauge",
             "Env steps per second between the process's two latest reports.", v_sps, now);
    per_proc(out, ps, n, labels, "relay_actor_episodes_total", "counter",
             "Episodes finished in the actor process.", v_episodes, now);
    per_proc(out, ps, n, labels, "relay_actor_spool_batches", "gauge",
             "Batches in the process's spool not yet acknowledged.", v_spool_b, now);
    per_proc(out, ps, n, labels, "relay_actor_spool_bytes", "gauge",
             "Bytes in the process's spool.", v_spool_bytes, now);
    per_proc(out, ps, n, labels, "relay_actor_model_version", "gauge",
             "Model version installed in the actor process (-1: none).", v_version, now);
    per_proc(out, ps, n, labels, "relay_actor_actors", "gauge", "Actors in the actor process.",
             v_actors, now);
    per_proc(out, ps, n, labels, "relay_actor_uptime_seconds", "gauge",
             "Seconds since the actor process started.", v_uptime, now);
    per_proc(out, ps, n, labels, "relay_actor_cpu_seconds_total", "counter",
             "CPU seconds (user + system) of the actor process.", v_cpu, now);
    per_proc(out, ps, n, labels, "relay_actor_resident_memory_bytes", "gauge",
             "Resident memory of the actor process in bytes.", v_rss, now);

    char l2[400];
    static const char *const tstate[] = {"made", "acked", "dropped"};
    rly_obs_family(out, "relay_actor_trajectories_total", "counter",
                   "Trajectories of the actor process: made, acknowledged, dropped.");
    for (size_t i = 0; i < n; i++) {
        if (!ps[i].reported)
            continue;
        const uint64_t v[3] = {ps[i].st.trajectories, ps[i].st.trajectories_acked,
                               ps[i].st.trajectories_dropped};
        for (int k = 0; k < 3; k++) {
            snprintf(l2, sizeof l2, "%s,state=\"%s\"", labels[i], tstate[k]);
            rly_obs_sample_u64(out, "relay_actor_trajectories_total", l2, v[k]);
        }
    }
    static const char *const bstate[] = {"sent", "acked", "resent"};
    rly_obs_family(out, "relay_actor_batches_total", "counter",
                   "Trajectory batches of the actor process: sent (resends included), "
                   "acknowledged, resent.");
    for (size_t i = 0; i < n; i++) {
        if (!ps[i].reported)
            continue;
        const uint64_t v[3] = {ps[i].st.batches_sent, ps[i].st.batches_acked,
                               ps[i].st.batches_resent};
        for (int k = 0; k < 3; k++) {
            snprintf(l2, sizeof l2, "%s,state=\"%s\"", labels[i], bstate[k]);
            rly_obs_sample_u64(out, "relay_actor_batches_total", l2, v[k]);
        }
    }
    rly_obs_family(out, "relay_actor_router_queue_depth", "gauge",
                   "Messages waiting in a router's intake queue in the actor process.");
    for (size_t i = 0; i < n; i++)
        for (uint32_t r = 0; ps[i].reported && r < ps[i].st.n_routers; r++) {
            snprintf(l2, sizeof l2, "%s,router=\"%u\"", labels[i], r);
            rly_obs_sample_u64(out, "relay_actor_router_queue_depth", l2,
                               ps[i].st.router_queue_depth[r]);
        }
    free(labels);
    free(ps);
}
