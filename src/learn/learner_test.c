/* rly_learner driven without actors: a test loop acts with the published models and feeds it. */
#include "test_util.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "core/clock.h"
#include "learn/learn_internal.h"
#include "learn/learner.h"
#include "relay/env.h"
#include "relay/model.h"

#define AUX_LOGP 0
#define AUX_VALUE 1
#define AUX_BOOT 2
#define AUX_CUT 3

/* ---- publish sink: keeps the newest models for the acting loop --------------------------------
 */

typedef struct sink {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t version;
    relay_model *pi, *vf; /* newest, not yet taken */
    int publishes;
    atomic_bool block; /* publish waits while set (to fill the intake) */
} sink;

static void sink_init(sink *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->version = -1;
}

static void sink_fini(sink *s)
{
    relay_model_free(s->pi);
    relay_model_free(s->vf);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static relay_err on_publish(void *ctx, int64_t version, relay_model *pi, relay_model *vf,
                            const float *log_std, uint32_t n_log_std)
{
    sink *s = ctx;
    while (atomic_load(&s->block))
        rly_sleep_ns(RLY_NS_PER_MS);
    pthread_mutex_lock(&s->mu);
    relay_model_free(s->pi);
    relay_model_free(s->vf);
    s->pi = pi;
    s->vf = vf;
    s->version = version;
    s->publishes++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return RELAY_OK;
}

/* sink_take waits up to 60 s for version >= v and moves the models out. */
static int64_t sink_take(sink *s, int64_t v, relay_model **pi, relay_model **vf)
{
    int64_t deadline = rly_now_ns() + 60 * RLY_NS_PER_S;
    pthread_mutex_lock(&s->mu);
    while (s->version < v && rly_now_ns() < deadline) {
        pthread_mutex_unlock(&s->mu);
        rly_sleep_ns(100 * RLY_NS_PER_US);
        pthread_mutex_lock(&s->mu);
    }
    int64_t got = s->version;
    if (pi && vf && s->pi) {
        relay_model_free(*pi);
        relay_model_free(*vf);
        *pi = s->pi;
        *vf = s->vf;
        s->pi = s->vf = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    return got;
}

/* ---- trajectories like the actor's -------------------------------------------------------- */

static void make_spec(relay_step_spec *s, uint32_t obs_dim, bool discrete, uint32_t act_dim)
{
    memset(s, 0, sizeof *s);
    s->obs_dtype = RELAY_F32;
    s->obs_rank = 1;
    s->obs_shape[0] = obs_dim;
    s->act_dtype = discrete ? RELAY_I32 : RELAY_F32;
    s->act_rank = 1;
    s->act_shape[0] = discrete ? 1 : act_dim;
    s->n_aux = 4;
    strcpy(s->aux_names[0], "logp");
    strcpy(s->aux_names[1], "value");
    strcpy(s->aux_names[2], "bootstrap");
    strcpy(s->aux_names[3], "cut");
}

static relay_traj *new_traj(const relay_step_spec *spec, relay_id actor, int64_t env_id,
                            int64_t episode, int64_t version, uint32_t max_len)
{
    relay_traj *t = relay_traj_new(spec, max_len ? max_len : 64, max_len);
    assert_non_null(t);
    t->actor = actor;
    t->env_id = env_id;
    t->episode = episode;
    t->policy_version = version;
    return t;
}

/* fake_piece builds rows CartPole-shaped rows with constant contents; last row cut if asked. */
static relay_traj *fake_piece(relay_id actor, int64_t version, int64_t episode, uint32_t rows,
                              float reward, bool cut_last, int64_t *ts)
{
    relay_step_spec spec;
    make_spec(&spec, 4, true, 1);
    relay_traj *t = new_traj(&spec, actor, 0, episode, version, 0);
    for (uint32_t i = 0; i < rows; i++) {
        float obs[4] = {0.01f * (float)i, 0, 0.02f, 0};
        int32_t a = (int32_t)(i & 1);
        float aux[4] = {-0.6931f, 0.5f, 0, 0};
        assert_ok(relay_traj_push(t, obs, &a, NULL, reward, false, false, aux, (*ts)++));
    }
    if (cut_last) {
        t->truncated[rows - 1] = 1;
        t->aux[(size_t)(rows - 1) * 4 + AUX_BOOT] = 0.5f;
        t->aux[(size_t)(rows - 1) * 4 + AUX_CUT] = 1.0f;
    }
    return t;
}

/* ---- the acting loop ------------------------------------------------------------------------ */

typedef struct xrng {
    uint64_t s;
} xrng;

static float xrng_uniform(xrng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (float)(r->s >> 40) * (1.0f / 16777216.0f);
}

#define N_ENVS 8
#define ENVS_PER_ACTOR 4

static void push_ok(rly_learner *l, relay_traj *t)
{
    relay_err e = rly_learner_push(l, t);
    if (e) {
        relay_traj_free(t);
        fail_msg("push: %s", relay_errname(e));
    }
}

static void learner_learns_cartpole(void **state)
{
    const relay_env_def *def = relay_env_find("CartPole-v1");
    assert_non_null(def);
    bool san = test_sanitized();
    sink sk;
    sink_init(&sk);
    rly_learner_config cfg;
    assert_ok(rly_learner_config_init(&cfg, def, N_ENVS));
    cfg.ppo.seed = 3;
    cfg.publish = on_publish;
    cfg.publish_ctx = &sk;
    uint32_t T = cfg.n_steps;
    assert_int_equal(T, 32);
    uint64_t budget = san ? 8000 : 60000;
    float bar = san ? 50.0f : 150.0f;
    rly_learner *l = NULL;
    assert_ok(rly_learner_new(&cfg, &l));

    relay_id actors[N_ENVS / ENVS_PER_ACTOR];
    for (uint32_t i = 0; i < N_ENVS / ENVS_PER_ACTOR; i++)
        actors[i] = relay_id_from_seed(11, i);
    relay_step_spec spec;
    make_spec(&spec, 4, true, 1);
    relay_vecenv *venv = NULL;
    assert_ok(relay_vecenv_new(def, N_ENVS, 42, &venv));
    float obs[N_ENVS * 4], next[N_ENVS * 4], fin[N_ENVS * 4], rew[N_ENVS], logits[N_ENVS * 2],
        val[N_ENVS];
    bool term[N_ENVS], trunc[N_ENVS];
    int32_t act[N_ENVS];
    int64_t episode[N_ENVS] = {0};
    relay_traj *tr[N_ENVS] = {0};
    double ep_ret[N_ENVS] = {0};
    float rets[100];
    uint64_t my_episodes = 0, steps = 0;
    int64_t ts = 1;
    xrng rng = {0x9e3779b97f4a7c15ULL};
    relay_model *pi = NULL, *vf = NULL;
    relay_vecenv_reset(venv, obs);
    int64_t v = 0;
    rly_learner_stats st;
    float first_mean = -1;
    for (;;) {
        assert_int_equal(sink_take(&sk, v, &pi, &vf), v);
        rly_learner_stats_get(l, &st);
        if (st.episodes >= 20 && first_mean < 0)
            first_mean = st.mean_return_100;
        if ((st.episodes >= 100 && st.mean_return_100 > bar) || steps >= budget)
            break;
        for (uint32_t t = 0; t < T; t++) {
            assert_ok(relay_model_forward(pi, obs, N_ENVS, logits));
            assert_ok(relay_model_forward(vf, obs, N_ENVS, val));
            float logp[N_ENVS];
            for (uint32_t i = 0; i < N_ENVS; i++) {
                float a0 = logits[2 * i], a1 = logits[2 * i + 1];
                float m = a0 > a1 ? a0 : a1;
                float lse = m + logf(expf(a0 - m) + expf(a1 - m));
                float p1 = expf(a1 - lse);
                act[i] = xrng_uniform(&rng) < p1 ? 1 : 0;
                logp[i] = (act[i] ? a1 : a0) - lse;
            }
            relay_vecenv_step(venv, act, next, rew, term, trunc, fin);
            steps += N_ENVS;
            for (uint32_t i = 0; i < N_ENVS; i++) {
                if (!tr[i])
                    tr[i] = new_traj(&spec, actors[i / ENVS_PER_ACTOR], i % ENVS_PER_ACTOR,
                                     episode[i], v, 0);
                float aux[4] = {logp[i], val[i], 0, 0};
                assert_ok(relay_traj_push(tr[i], obs + 4 * i, &act[i], NULL, rew[i], term[i],
                                          trunc[i], aux, ts++));
                ep_ret[i] += rew[i];
                if (term[i] || trunc[i]) {
                    if (trunc[i] && !term[i]) {
                        float b;
                        assert_ok(relay_model_forward(vf, fin + 4 * i, 1, &b));
                        tr[i]->aux[(size_t)(tr[i]->len - 1) * 4 + AUX_BOOT] = b;
                    }
                    push_ok(l, tr[i]);
                    tr[i] = NULL;
                    rets[my_episodes++ % 100] = (float)ep_ret[i];
                    ep_ret[i] = 0;
                    episode[i]++;
                }
            }
            memcpy(obs, next, sizeof obs);
        }
        /* cut every open trajectory at n_steps, bootstrapped from V(next observation) */
        assert_ok(relay_model_forward(vf, obs, N_ENVS, val));
        for (uint32_t i = 0; i < N_ENVS; i++) {
            if (!tr[i])
                continue;
            uint32_t last = tr[i]->len - 1;
            tr[i]->truncated[last] = 1;
            tr[i]->aux[(size_t)last * 4 + AUX_BOOT] = val[i];
            tr[i]->aux[(size_t)last * 4 + AUX_CUT] = 1;
            push_ok(l, tr[i]);
            tr[i] = NULL;
        }
        v++;
    }
    print_message("learner: %llu steps, %u updates, %llu episodes, first mean %.1f, mean100 "
                  "%.1f, %.1f s, %.0f steps/s consumed\n",
                  (unsigned long long)st.steps_consumed, st.updates,
                  (unsigned long long)st.episodes, first_mean, st.mean_return_100, st.wall_s,
                  st.sps);
    /* The learner saw exactly the episodes the loop finished and the same returns. */
    assert_int_equal(st.episodes, my_episodes);
    uint64_t have = my_episodes < 100 ? my_episodes : 100;
    double sum = 0;
    for (uint64_t j = 0; j < have; j++)
        sum += rets[j];
    assert_float_equal(st.mean_return_100, sum / (double)have, 1e-3);
    assert_true(st.mean_return_100 > bar);
    assert_true(st.mean_return_100 > first_mean + 30);
    assert_int_equal(st.updates, (uint32_t)v);
    assert_int_equal(st.steps_consumed, (uint64_t)v * N_ENVS * T);
    assert_int_equal(st.steps_received, steps);
    assert_int_equal(st.steps_stale, 0);
    assert_true(isfinite(st.last.value_loss) && isfinite(st.last.policy_loss));

    /* The exported ONNX policy reloads and matches the learner's own forward path. */
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_ok(rly_learner_export_onnx(l, &bytes, &len));
    rly_learner_stop(l);
    relay_model *m = NULL;
    assert_ok(relay_model_from_onnx(bytes, len, &m));
    assert_int_equal(relay_model_in_dim(m), 4);
    assert_int_equal(relay_model_out_dim(m), 2);
    relay_policy *pol = rly_learner_policy(l);
    assert_non_null(pol);
    float probe[16 * 4], got[16 * 2];
    for (uint32_t i = 0; i < 16 * 4; i++)
        probe[i] = 0.3f * sinf(0.7f * (float)i + 0.1f);
    assert_ok(relay_model_forward(m, probe, 16, got));
    for (uint32_t b = 0; b < 16; b++) {
        const float *want;
        const float *x = rly_policy_normalize(pol, probe + 4 * b, 1, pol->xbuf);
        rly_policy_forward(pol, x, 1, &want, NULL);
        for (uint32_t k = 0; k < 2; k++)
            assert_float_equal(got[2 * b + k], want[k], 1e-5);
        int32_t a;
        float lp;
        assert_ok(relay_policy_act(pol, probe + 4 * b, 1, NULL, true, &a, NULL, &lp, NULL));
        float g0 = got[2 * b], g1 = got[2 * b + 1], mx = g0 > g1 ? g0 : g1;
        float lse = mx + logf(expf(g0 - mx) + expf(g1 - mx));
        assert_int_equal(a, g1 > g0 ? 1 : 0);
        assert_float_equal(lp, (a ? g1 : g0) - lse, 1e-5);
    }
    relay_model_free(m);
    free(bytes);
    for (uint32_t i = 0; i < N_ENVS; i++)
        relay_traj_free(tr[i]);
    relay_model_free(pi);
    relay_model_free(vf);
    relay_vecenv_free(venv);
    rly_learner_free(l);
    sink_fini(&sk);
}

/* wait_stats polls until pred holds or 10 s pass. */
#define WAIT_STATS(l, st, pred)                                                                    \
    do {                                                                                           \
        int64_t dl_ = rly_now_ns() + 10 * RLY_NS_PER_S;                                            \
        do {                                                                                       \
            rly_learner_stats_get((l), &(st));                                                     \
            if (pred)                                                                              \
                break;                                                                             \
            rly_sleep_ns(RLY_NS_PER_MS);                                                           \
        } while (rly_now_ns() < dl_);                                                              \
        assert_true(pred);                                                                         \
    } while (0)

static rly_learner *small_learner(sink *sk, uint32_t lag, uint32_t queue_cap)
{
    rly_learner_config cfg;
    assert_ok(rly_learner_config_init(&cfg, relay_env_find("CartPole-v1"), 1));
    cfg.n_steps = 4;
    cfg.ppo.batch_size = 4;
    cfg.ppo.n_epochs = 2;
    cfg.policy_lag = lag;
    cfg.queue_cap = queue_cap;
    cfg.push_timeout_ns = 50 * RLY_NS_PER_MS;
    cfg.publish = on_publish;
    cfg.publish_ctx = sk;
    rly_learner *l = NULL;
    assert_ok(rly_learner_new(&cfg, &l));
    return l;
}

static void stale_data_is_dropped(void **state)
{
    sink sk;
    sink_init(&sk);
    rly_learner *l = small_learner(&sk, 0, 0);
    relay_id a = relay_id_from_seed(1, 1);
    int64_t ts = 1;
    rly_learner_stats st;
    assert_int_equal(sink_take(&sk, 0, NULL, NULL), 0);
    /* 6 rows of v0: 4 make update 1, the 2 left over are stale once v1 is out */
    push_ok(l, fake_piece(a, 0, 0, 6, 1.0f, true, &ts));
    assert_ok(rly_learner_wait_version(l, 1, 10 * RLY_NS_PER_S));
    WAIT_STATS(l, st, st.trajs_stale == 1);
    assert_int_equal(st.steps_stale, 2);
    assert_int_equal(st.steps_consumed, 4);
    /* v0 data arriving after v1: dropped on arrival (its NaN rewards would poison an update) */
    push_ok(l, fake_piece(a, 0, 0, 3, NAN, true, &ts));
    WAIT_STATS(l, st, st.trajs_stale == 2);
    assert_int_equal(st.steps_stale, 5);
    push_ok(l, fake_piece(a, 1, 1, 4, 1.0f, true, &ts));
    assert_ok(rly_learner_wait_version(l, 2, 10 * RLY_NS_PER_S));
    rly_learner_stats_get(l, &st);
    assert_int_equal(st.version, 2);
    assert_int_equal(st.updates, 2);
    assert_int_equal(st.steps_consumed, 8);
    assert_int_equal(st.steps_received, 13);
    assert_true(isfinite(st.last.value_loss) && isfinite(st.last.policy_loss));
    assert_int_equal(sk.publishes, 3);
    rly_learner_free(l);
    sink_fini(&sk);
}

static void lagged_data_is_used(void **state)
{
    sink sk;
    sink_init(&sk);
    rly_learner *l = small_learner(&sk, 1, 0);
    relay_id a = relay_id_from_seed(1, 2);
    int64_t ts = 1;
    rly_learner_stats st;
    push_ok(l, fake_piece(a, 0, 0, 4, 1.0f, true, &ts));
    assert_ok(rly_learner_wait_version(l, 1, 10 * RLY_NS_PER_S));
    /* with lag 1, v0 rows still count for update 2 */
    push_ok(l, fake_piece(a, 0, 1, 2, 1.0f, true, &ts));
    push_ok(l, fake_piece(a, 1, 1, 2, 1.0f, true, &ts));
    assert_ok(rly_learner_wait_version(l, 2, 10 * RLY_NS_PER_S));
    rly_learner_stats_get(l, &st);
    assert_int_equal(st.steps_consumed, 8);
    assert_int_equal(st.steps_stale, 0);
    /* ... but not after v2 */
    push_ok(l, fake_piece(a, 0, 2, 2, 1.0f, true, &ts));
    WAIT_STATS(l, st, st.trajs_stale == 1);
    assert_int_equal(st.steps_stale, 2);
    rly_learner_free(l);
    sink_fini(&sk);
}

static void episodes_are_summed_over_pieces(void **state)
{
    sink sk;
    sink_init(&sk);
    rly_learner *l = small_learner(&sk, 0, 0);
    relay_id a = relay_id_from_seed(1, 3);
    int64_t ts = 1;
    rly_learner_stats st;
    assert_int_equal(sink_take(&sk, 0, NULL, NULL), 0);
    /* episode 0: two cut pieces then a terminated one: 3 + 2 + 1 rows of reward 2 */
    push_ok(l, fake_piece(a, 0, 0, 3, 2.0f, true, &ts));
    assert_ok(rly_learner_wait_version(l, 0, RLY_NS_PER_S));
    relay_traj *p2 = fake_piece(a, 0, 0, 1, 2.0f, true, &ts);
    push_ok(l, p2);
    assert_ok(rly_learner_wait_version(l, 1, 10 * RLY_NS_PER_S));
    relay_traj *p3 = fake_piece(a, 1, 0, 2, 2.0f, false, &ts);
    p3->terminated[1] = 1;
    push_ok(l, p3);
    WAIT_STATS(l, st, st.episodes == 1);
    assert_float_equal(st.last_return, 12.0f, 1e-6);
    /* episode 1 ends on a time limit (truncated, cut 0): it counts too */
    relay_traj *p4 = fake_piece(a, 1, 1, 2, 1.5f, false, &ts);
    p4->truncated[1] = 1;
    push_ok(l, p4);
    WAIT_STATS(l, st, st.episodes == 2);
    assert_float_equal(st.last_return, 3.0f, 1e-6);
    assert_float_equal(st.mean_return_100, 7.5f, 1e-6);
    rly_learner_free(l);
    sink_fini(&sk);
}

static void full_intake_reports_efull(void **state)
{
    sink sk;
    sink_init(&sk);
    atomic_store(&sk.block, true); /* the learner thread sits in publish(v0) */
    rly_learner *l = small_learner(&sk, 0, 2);
    relay_id a = relay_id_from_seed(1, 4);
    int64_t ts = 1;
    push_ok(l, fake_piece(a, 0, 0, 1, 1.0f, true, &ts));
    push_ok(l, fake_piece(a, 0, 0, 1, 1.0f, true, &ts));
    relay_traj *t = fake_piece(a, 0, 0, 1, 1.0f, true, &ts);
    int64_t t0 = rly_now_ns();
    assert_err(rly_learner_push(l, t), RELAY_EFULL);
    assert_true(rly_now_ns() - t0 >= 40 * RLY_NS_PER_MS);
    atomic_store(&sk.block, false);
    assert_ok(rly_learner_wait_version(l, 0, 10 * RLY_NS_PER_S));
    rly_learner_stats st;
    push_ok(l, t);
    WAIT_STATS(l, st, st.steps_received == 3);
    rly_learner_stop(l);
    relay_traj *late = fake_piece(a, 0, 0, 1, 1.0f, true, &ts);
    assert_err(rly_learner_push(l, late), RELAY_ESHUTDOWN);
    relay_traj_free(late);
    rly_learner_free(l);
    sink_fini(&sk);
}

static void bad_input_is_rejected(void **state)
{
    sink sk;
    sink_init(&sk);
    rly_learner_config cfg;
    assert_ok(rly_learner_config_init(&cfg, relay_env_find("CartPole-v1"), 1));
    rly_learner *l = NULL;
    assert_err(rly_learner_new(&cfg, &l), RELAY_ECONFIG); /* no publish callback */
    cfg.publish = on_publish;
    cfg.publish_ctx = &sk;
    cfg.n_streams = 0;
    assert_err(rly_learner_new(&cfg, &l), RELAY_ECONFIG);
    cfg.n_streams = 1;
    cfg.env = NULL;
    assert_err(rly_learner_new(&cfg, &l), RELAY_ECONFIG); /* no spaces to build the policy */
    cfg.env = relay_env_find("CartPole-v1");
    cfg.n_steps = 4;
    assert_ok(rly_learner_new(&cfg, &l));
    assert_err(rly_learner_push(l, NULL), RELAY_EINVAL);
    relay_step_spec spec;
    make_spec(&spec, 3, true, 1); /* CartPole observations have 4 values */
    relay_traj *t = new_traj(&spec, relay_id_from_seed(2, 0), 0, 0, 0, 0);
    assert_err(rly_learner_push(l, t), RELAY_ESHAPE);
    relay_traj_free(t);
    make_spec(&spec, 4, false, 2); /* continuous actions for a discrete policy */
    t = new_traj(&spec, relay_id_from_seed(2, 0), 0, 0, 0, 0);
    assert_err(rly_learner_push(l, t), RELAY_ESHAPE);
    relay_traj_free(t);
    make_spec(&spec, 4, true, 1);
    strcpy(spec.aux_names[2], "boot");
    t = new_traj(&spec, relay_id_from_seed(2, 0), 0, 0, 0, 0);
    assert_err(rly_learner_push(l, t), RELAY_EINVAL);
    relay_traj_free(t);
    /* a second stream when only one is configured is discarded and counted */
    int64_t ts = 1;
    assert_ok(rly_learner_wait_version(l, 0, 10 * RLY_NS_PER_S));
    push_ok(l, fake_piece(relay_id_from_seed(2, 1), 0, 0, 2, 1.0f, true, &ts));
    push_ok(l, fake_piece(relay_id_from_seed(2, 2), 0, 0, 3, 1.0f, true, &ts));
    rly_learner_stats st;
    WAIT_STATS(l, st, st.steps_discarded == 3);
    uint8_t *bytes;
    size_t len;
    assert_err(rly_learner_export_onnx(NULL, &bytes, &len), RELAY_EINVAL);
    assert_null(rly_learner_policy(l)); /* still running */
    rly_learner_free(l);
    rly_learner_free(NULL);
    sink_fini(&sk);
}

/* Shared trunk, ReLU, continuous actions and observation normalisation export exactly. */
static void export_folds_shared_trunk_and_normalisation(void **state)
{
    const relay_env_def *def = relay_env_find("Pendulum-v1");
    assert_non_null(def);
    relay_space os, as;
    def->spaces(&os, &as);
    relay_policy_spec spec;
    assert_ok(relay_policy_spec_from_spaces(&spec, &os, &as));
    spec.shared = true;
    spec.activation = RELAY_HIDDEN_RELU;
    spec.normalize_obs = true;
    spec.n_hidden = 2;
    spec.hidden[0] = 32;
    spec.hidden[1] = 16;
    relay_policy *p = NULL;
    assert_ok(relay_policy_new(&spec, 8, 7, &p));
    /* non-trivial biases and statistics */
    size_t np = relay_policy_num_params(p);
    float *w = malloc(np * sizeof(float));
    assert_ok(relay_policy_get_params(p, w, np));
    for (size_t i = 0; i < np; i++)
        w[i] += 0.05f * sinf((float)i);
    assert_ok(relay_policy_set_params(p, w, np));
    free(w);
    float mean[3] = {0.2f, -0.1f, 0.5f}, var[3] = {0.5f, 0.25f, 4.0f};
    relay_policy_set_obs_norm(p, mean, var, 100);
    relay_model *pi = NULL, *vf = NULL;
    assert_ok(rly_policy_export_models(p, &pi, &vf));
    assert_int_equal(relay_model_in_dim(pi), 3);
    assert_int_equal(relay_model_out_dim(pi), 2); /* mean and log std */
    assert_int_equal(relay_model_out_dim(vf), 1);
    float x[8 * 3], mu2[8 * 2], mu[8], v[8];
    for (int i = 0; i < 8 * 3; i++)
        x[i] = 0.8f * cosf(1.3f * (float)i);
    assert_ok(relay_model_forward(pi, x, 8, mu2));
    for (int b = 0; b < 8; b++) {
        mu[b] = mu2[2 * b];
        assert_float_equal(mu2[2 * b + 1], spec.log_std_init + 0.05f * sinf((float)(np - 1)), 1e-6);
    }
    assert_ok(relay_model_forward(vf, x, 8, v));
    float want_v[8];
    assert_ok(relay_policy_value(p, x, 8, want_v));
    for (int b = 0; b < 8; b++) {
        float a, ea, lp;
        assert_ok(relay_policy_act(p, x + 3 * b, 1, NULL, true, &a, &ea, &lp, NULL));
        assert_float_equal(mu[b], a, 1e-5);
        assert_float_equal(v[b], want_v[b], 1e-5);
    }
    relay_model_free(pi);
    relay_model_free(vf);
    assert_err(rly_policy_export_models(NULL, &pi, &vf), RELAY_EINVAL);
    relay_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(export_folds_shared_trunk_and_normalisation),
        cmocka_unit_test(bad_input_is_rejected),
        cmocka_unit_test(full_intake_reports_efull),
        cmocka_unit_test(episodes_are_summed_over_pieces),
        cmocka_unit_test(stale_data_is_dropped),
        cmocka_unit_test(lagged_data_is_used),
        cmocka_unit_test(learner_learns_cartpole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
