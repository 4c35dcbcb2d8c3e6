/* The training run's metrics, dashboard feed and time breakdown (see train_obs.h). */
#include "cli/train_obs.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "core/log.h"

#define MOD "train"

const char *const rly_phase_names[RLY_PHASES] = {"env",  "inference", "record",
                                                 "sink", "learn",     "wait"};

/* return_range picks the return histogram's span for the built-in environments. */
void rly_return_range(const char *env, double *lo, double *hi)
{
    *lo = -1000;
    *hi = 1000;
    if (strcmp(env, "CartPole-v1") == 0)
        *lo = 0, *hi = 500;
    else if (strcmp(env, "Acrobot-v1") == 0)
        *lo = -500, *hi = 0;
    else if (strcmp(env, "MountainCar-v0") == 0)
        *lo = -200, *hi = 0;
    else if (strcmp(env, "Pendulum-v1") == 0)
        *lo = -1700, *hi = 0;
}

static void on_episode(void *ctx, float ret)
{
    rly_train_obs *t = ctx;
    rly_obs_hist_observe(&t->returns, ret);
}

void rly_train_obs_init(rly_train_obs *t, relay_agent *agent, const char *env, const char *algo,
                        double target)
{
    memset(t, 0, sizeof *t);
    t->agent = agent;
    t->srv = rly_agent_obs(agent);
    t->target = target;
    atomic_init(&t->learner, NULL);
    double lo, hi;
    rly_return_range(env, &lo, &hi);
    rly_obs_hist_init_lin(&t->returns, lo + (hi - lo) / 20, (hi - lo) / 20, 20);
    rly_obs_hist_init_exp(&t->update_s, 0.001, 2, 16); /* 1 ms .. 33 s */
    char title[300];
    snprintf(title, sizeof title, "%.120s %.16s", env, algo);
    rly_obs_server_set_run(t->srv, title, target);
}

void rly_train_obs_learner(rly_train_obs *t, rly_learner_config *lc)
{
    lc->on_episode = on_episode;
    lc->on_episode_ctx = t;
}

void rly_learner_series(rly_obs_out *o, const rly_learner_stats *st, double target, double lag,
                        const char *lag_help, const rly_obs_hist *update_s,
                        const rly_obs_hist *returns)
{
    rly_obs_metric(o, "relay_learner_steps_total", "counter",
                   "Env steps consumed by learner updates.", (double)st->steps_consumed);
    rly_obs_metric(o, "relay_learner_received_steps_total", "counter",
                   "Env steps the learner accepted from actors.", (double)st->steps_received);
    rly_obs_metric(o, "relay_learner_stale_steps_total", "counter",
                   "Env steps dropped because their policy version was too old.",
                   (double)st->steps_stale);
    rly_obs_metric(o, "relay_learner_updates_total", "counter", "Learner updates.",
                   (double)st->updates);
    rly_obs_metric(o, "relay_learner_episodes_total", "counter", "Episodes the learner saw finish.",
                   (double)st->episodes);
    rly_obs_metric(o, "relay_learner_mean_return", "gauge", "Mean return of the last 100 episodes.",
                   st->episodes ? (double)st->mean_return_100 : NAN);
    rly_obs_metric(o, "relay_train_target_return", "gauge",
                   "The mean return the run stops at (NaN: none).", target);
    rly_obs_metric(o, "relay_policy_version", "gauge",
                   "Newest policy version the learner published.", (double)st->version);
    rly_obs_metric(
        o, "relay_policy_lag_versions", "gauge",
        lag_help ? lag_help : "Learner version minus the oldest version an actor is using.", lag);
    rly_obs_metric(o, "relay_learner_update_seconds_total", "counter",
                   "Seconds spent in learner updates (rollout, GAE, PPO, export, publish).",
                   st->update_s);
    rly_obs_metric(o, "relay_learner_last_update_seconds", "gauge",
                   "Duration of the newest learner update in seconds.", st->last_update_s);
    rly_obs_hist_write(o, "relay_learner_update_duration_seconds",
                       "Learner update durations in seconds.", NULL, update_s);
    rly_obs_hist_write(o, "relay_episode_return", "Returns of finished episodes.", NULL, returns);
    rly_obs_family(o, "relay_learner_loss", "gauge", "Losses of the newest update, by kind.");
    rly_obs_sample(o, "relay_learner_loss", "kind=\"policy\"", st->last.policy_loss);
    rly_obs_sample(o, "relay_learner_loss", "kind=\"value\"", st->last.value_loss);
    rly_obs_metric(o, "relay_learner_entropy", "gauge", "Policy entropy of the newest update.",
                   st->last.entropy);
    rly_obs_metric(o, "relay_learner_approx_kl", "gauge", "Approximate KL of the newest update.",
                   st->last.approx_kl);
}

static void collect(void *ctx, rly_obs_out *o)
{
    rly_train_obs *t = ctx;
    rly_learner *l = atomic_load(&t->learner);
    if (!l)
        return;
    rly_learner_stats st;
    rly_learner_stats_get(l, &st);
    rly_agent_times at;
    rly_agent_times_get(t->agent, &at);
    double lag =
        at.version_min >= 0 && st.version >= 0 ? (double)(st.version - at.version_min) : NAN;
    rly_learner_series(o, &st, t->target, lag, NULL, &t->update_s, &t->returns);
}

void rly_train_obs_start(rly_train_obs *t, rly_learner *l)
{
    atomic_store(&t->learner, l);
    if (t->srv && !t->registered)
        t->registered = rly_obs_server_add_collector(t->srv, collect, t) == RELAY_OK;
}

void rly_train_obs_update(rly_train_obs *t, const rly_learner_stats *st)
{
    rly_obs_hist_observe(&t->update_s, st->last_update_s);
    rly_obs_curve_add(t->srv, (double)st->steps_consumed,
                      st->episodes ? (double)st->mean_return_100 : NAN, NAN);
}

void rly_train_obs_stop(rly_train_obs *t)
{
    if (t->registered)
        rly_obs_server_remove_collector(t->srv, collect, t);
    t->registered = false;
    atomic_store(&t->learner, NULL);
}

/* ---- time breakdown ----------------------------------------------------------------------- */

void rly_time_breakdown_get(relay_agent *a, const rly_learner_stats *st, rly_time_breakdown *b)
{
    memset(b, 0, sizeof *b);
    rly_agent_times at;
    rly_agent_times_get(a, &at);
    double busy = at.env_s + at.infer_s + at.record_s;
    b->phase[0] = at.env_s;
    b->phase[1] = at.infer_s;
    b->phase[2] = at.record_s;
    b->phase[3] = at.sink_write_s;
    b->phase[4] = st->update_s;
    b->phase[5] = at.router_s > busy ? at.router_s - busy : 0;
    b->wall_s = st->wall_s;
    b->router_s = at.router_s;
    b->learner_idle_s = st->wall_s > st->update_s ? st->wall_s - st->update_s : 0;
    b->handoff_s = at.sink_consume_s;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        b->cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static double phase_total(const rly_time_breakdown *b)
{
    double s = 0;
    for (int i = 0; i < RLY_PHASES; i++)
        s += b->phase[i];
    return s;
}

size_t rly_time_breakdown_format(const rly_time_breakdown *b, char *buf, size_t cap)
{
    double tot = phase_total(b);
    size_t n = 0;
    int k = snprintf(buf, cap, "time:");
    n = k > 0 ? (size_t)k : 0;
    for (int i = 0; i < RLY_PHASES && n < cap; i++) {
        k = snprintf(buf + n, cap - n, "%s %s %.1f%%", i ? " |" : "", rly_phase_names[i],
                     tot > 0 ? 100.0 * b->phase[i] / tot : 0.0);
        if (k > 0)
            n += (size_t)k;
    }
    if (n < cap) {
        k = snprintf(buf + n, cap - n, " (of %.1f thread-s; wall %.1f s, cpu %.1f s)", tot,
                     b->wall_s, b->cpu_s);
        if (k > 0)
            n += (size_t)k;
    }
    return n < cap ? n : cap - 1;
}

relay_err rly_time_breakdown_write_json(const char *path, const rly_time_breakdown *b)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        rly_error(MOD, "cannot write %s", path);
        return RELAY_EIO;
    }
    double tot = phase_total(b);
    fprintf(f, "{\n  \"unit\": \"seconds of thread time\",\n  \"phases\": {");
    for (int i = 0; i < RLY_PHASES; i++)
        fprintf(f, "%s\n    \"%s\": %.6f", i ? "," : "", rly_phase_names[i], b->phase[i]);
    fprintf(f, "\n  },\n  \"shares\": {");
    for (int i = 0; i < RLY_PHASES; i++)
        fprintf(f, "%s\n    \"%s\": %.4f", i ? "," : "", rly_phase_names[i],
                tot > 0 ? b->phase[i] / tot : 0.0);
    fprintf(f,
            "\n  },\n  \"total_seconds\": %.6f,\n  \"wall_seconds\": %.6f,\n"
            "  \"cpu_seconds\": %.6f,\n  \"router_thread_seconds\": %.6f,\n"
            "  \"learner_idle_seconds\": %.6f,\n  \"sink_handoff_seconds\": %.6f,\n"
            "  \"notes\": \"env/inference/record are run_env vector steps on router threads, "
            "sampled 1 step in %d and scaled; sink is the sink worker writing files; learn is "
            "learner updates; wait is router thread time not spent stepping (waiting for a new "
            "policy, parked or delivering messages). See docs/OBSERVABILITY.md.\"\n}\n",
            tot, b->wall_s, b->cpu_s, b->router_s, b->learner_idle_s, b->handoff_s,
            RLY_ACTOR_TIME_SAMPLE);
    bool ok = !ferror(f);
    ok = fclose(f) == 0 && ok;
    return ok ? RELAY_OK : RELAY_EIO;
}
