/* Tests for actors on a real router: inference, reward crediting, chunking, updates, run_env. */
#include <math.h>
#include <string.h>

#include "actor/actor.h"
#include "coord/coordinator.h"
#include "core/clock.h"
#include "test_util.h"

/* A trajectory destination that keeps everything for inspection. */
typedef struct collect {
    rly_traj_out out;
    rly_mutex lock;
    relay_traj *items[4096];
    int n;
} collect;

static void collect_push(rly_traj_out *o, relay_traj *t)
{
    collect *c = (collect *)o;
    rly_mutex_lock(&c->lock);
    if (c->n < 4096)
        c->items[c->n++] = t;
    else
        relay_traj_free(t);
    rly_mutex_unlock(&c->lock);
}

static void collect_init(collect *c)
{
    memset(c, 0, sizeof *c);
    c->out.push = collect_push;
    rly_mutex_init(&c->lock);
}

static void collect_fini(collect *c)
{
    for (int i = 0; i < c->n; i++)
        relay_traj_free(c->items[i]);
    rly_mutex_fini(&c->lock);
}

/* dense builds an in -> out single-layer model with zero weights and the given bias. */
static relay_model *dense(uint32_t in, uint32_t out, const float *bias)
{
    uint32_t sizes[2] = {in, out};
    float *w = calloc((size_t)in * out, sizeof(float));
    const float *ws[1] = {w};
    const float *bs[1] = {bias};
    relay_activation act[1] = {RELAY_ACT_NONE};
    relay_mlp_desc d = {
        .n_layers = 1, .sizes = sizes, .activations = act, .weights = ws, .biases = bs};
    relay_model *m = NULL;
    assert_ok(relay_model_from_mlp(&d, &m));
    free(w);
    return m;
}

typedef struct world {
    rly_coord *c;
    collect col;
} world;

static void world_start(world *w)
{
    collect_init(&w->col);
    rly_coord_config cfg;
    rly_coord_config_default(&cfg);
    cfg.routers = 1;
    assert_ok(rly_coord_new(&cfg, &w->c));
    rly_router_set_user(w->c->routers[0], &w->col.out);
}

static rly_actor *make_actor(world *w, uint32_t max_len, float vf_bias)
{
    rly_actor_config cfg = {
        .id = relay_id_new(), .seed = 3, .max_traj_len = max_len, .record = true};
    cfg.policy.obs_dim = 4;
    cfg.policy.discrete = true;
    cfg.policy.n_actions = 2;
    cfg.policy.act_dim = 1;
    rly_actor *a = NULL;
    assert_ok(rly_actor_new(&cfg, &a));
    const float pib[2] = {0.0f, 20.0f};
    const float vfb[1] = {vf_bias};
    assert_ok(rly_actor_install(a, dense(4, 2, pib), dense(4, 1, vfb), 0, NULL, 0));
    assert_ok(rly_coord_add_actor(w->c, rly_actor_slot_of(a)));
    return a;
}

static relay_err request(world *w, rly_actor *a, float reward, rly_infer_req **out)
{
    rly_infer_req *q = rly_infer_req_new(rly_actor_desc(a), false);
    for (int i = 0; i < 4; i++)
        q->obs[i] = (float)i;
    q->reward = reward;
    rly_reply *r = rly_reply_new();
    rly_msg m = rly_msg_data(rly_actor_slot_of(a)->id, RLY_REQUEST_INFERENCE, 0, q, free, r);
    assert_ok(rly_coord_send(w->c, &m));
    void *p = NULL;
    relay_err e = rly_reply_wait(r, 10 * RLY_NS_PER_S, NULL, &p);
    rly_reply_release(r);
    if (out)
        *out = p;
    else
        free(p);
    return e;
}

static relay_err send_wait(world *w, rly_actor *a, rly_proto proto, int64_t arg, void *payload,
                           void (*pfree)(void *), int64_t *value)
{
    rly_reply *r = rly_reply_new();
    rly_msg m = rly_msg_data(rly_actor_slot_of(a)->id, proto, arg, payload, pfree, r);
    assert_ok(rly_coord_send(w->c, &m));
    relay_err e = rly_reply_wait(r, 30 * RLY_NS_PER_S, value, NULL);
    rly_reply_release(r);
    return e;
}

static int64_t float_bits(float f)
{
    int32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static void world_stop(world *w, rly_actor **actors, int n)
{
    assert_ok(rly_coord_shutdown(w->c));
    rly_coord_free(w->c);
    for (int i = 0; i < n; i++)
        rly_actor_free(actors[i]);
}

static void request_action_credits_rewards_to_previous_step(void **state)
{
    world w;
    world_start(&w);
    rly_actor *a = make_actor(&w, 0, 0.5f);
    relay_id id = rly_actor_slot_of(a)->id;
    rly_infer_req *q = NULL;
    assert_ok(request(&w, a, 9.0f, &q)); /* no previous action: 9 is not credited */
    assert_int_equal(q->action_index, 1);
    assert_float_equal(q->value, 0.5f, 1e-6);
    assert_float_equal(q->logp, -log1p(exp(-20.0)), 1e-6);
    free(q);
    assert_ok(request(&w, a, 1.0f, NULL));
    assert_ok(request(&w, a, 2.0f, NULL));
    assert_ok(send_wait(&w, a, RLY_FLAG_LAST_INFERENCE, float_bits(5.0f), NULL, NULL, NULL));
    /* Closing an episode with no action is a clear error, not a crash. */
    assert_err(send_wait(&w, a, RLY_FLAG_LAST_INFERENCE, 0, NULL, NULL, NULL), RELAY_ESTATE);
    world_stop(&w, &a, 1);
    assert_int_equal(w.col.n, 1);
    relay_traj *t = w.col.items[0];
    assert_int_equal(t->len, 3);
    assert_float_equal(t->reward[0], 1.0f, 0);
    assert_float_equal(t->reward[1], 2.0f, 0);
    assert_float_equal(t->reward[2], 5.0f, 0);
    assert_int_equal(t->terminated[2], 1);
    assert_int_equal(t->terminated[0], 0);
    assert_true(relay_id_eq(t->actor, id));
    assert_int_equal(t->env_id, -1);
    assert_int_equal(t->spec.n_aux, RLY_N_AUX);
    assert_string_equal(t->spec.aux_names[RLY_AUX_VALUE], "value");
    assert_float_equal(t->aux[1 * RLY_N_AUX + RLY_AUX_VALUE], 0.5f, 1e-6);
    int32_t act;
    memcpy(&act, t->act + 4, 4);
    assert_int_equal(act, 1);
    collect_fini(&w.col);
}

static void max_length_emits_truncated_chunks(void **state)
{
    world w;
    world_start(&w);
    rly_actor *a = make_actor(&w, 2, 0.25f);
    for (int i = 0; i < 5; i++)
        assert_ok(request(&w, a, 1.0f, NULL));
    assert_ok(send_wait(&w, a, RLY_FLAG_LAST_INFERENCE, float_bits(3.0f), NULL, NULL, NULL));
    world_stop(&w, &a, 1);
    assert_int_equal(w.col.n, 3);
    int lens[3] = {2, 2, 1};
    for (int i = 0; i < 3; i++) {
        relay_traj *t = w.col.items[i];
        assert_int_equal(t->len, lens[i]);
        assert_int_equal(t->episode, 0); /* chunks of one episode */
        uint32_t last = t->len - 1;
        if (i < 2) {
            assert_int_equal(t->truncated[last], 1);
            assert_float_equal(t->aux[last * RLY_N_AUX + RLY_AUX_CUT], 1.0f, 0);
            assert_float_equal(t->aux[last * RLY_N_AUX + RLY_AUX_BOOTSTRAP], 0.25f, 1e-6);
        } else {
            assert_int_equal(t->terminated[last], 1);
        }
    }
    collect_fini(&w.col);
}

static void model_version_and_update(void **state)
{
    world w;
    world_start(&w);
    rly_actor_config cfg = {.id = relay_id_new(), .seed = 1, .record = true};
    cfg.policy = (rly_policy_desc){.obs_dim = 4, .discrete = true, .n_actions = 2, .act_dim = 1};
    rly_actor *a = NULL;
    assert_ok(rly_actor_new(&cfg, &a));
    assert_ok(rly_coord_add_actor(w.c, rly_actor_slot_of(a)));
    int64_t v = 99;
    assert_ok(send_wait(&w, a, RLY_MODEL_VERSION, 0, NULL, NULL, &v));
    assert_int_equal(v, -1);
    assert_err(request(&w, a, 0.0f, NULL), RELAY_ENOMODEL); /* never zeros from no model */
    assert_err(send_wait(&w, a, RLY_MODEL_HANDSHAKE, 0, NULL, NULL, NULL), RELAY_ENOMODEL);
    const float b[2] = {0.0f, 0.0f};
    rly_model_update *u = calloc(1, sizeof *u);
    u->pi = dense(4, 2, b);
    u->version = 3;
    assert_ok(send_wait(&w, a, RLY_MODEL_UPDATE, 3, u, rly_model_update_free, NULL));
    assert_ok(send_wait(&w, a, RLY_MODEL_VERSION, 0, NULL, NULL, &v));
    assert_int_equal(v, 3);
    /* A model of the wrong shape is refused and the current one stays. */
    u = calloc(1, sizeof *u);
    u->pi = dense(3, 2, b);
    u->version = 4;
    assert_err(send_wait(&w, a, RLY_MODEL_UPDATE, 4, u, rly_model_update_free, NULL), RELAY_ESHAPE);
    assert_ok(send_wait(&w, a, RLY_MODEL_VERSION, 0, NULL, NULL, &v));
    assert_int_equal(v, 3);
    world_stop(&w, &a, 1);
    collect_fini(&w.col);
}

static void run_env_records_every_step(void **state)
{
    world w;
    world_start(&w);
    rly_actor *a = make_actor(&w, 0, 1.0f);
    rly_run_env *spec = calloc(1, sizeof *spec);
    spec->env = relay_env_find("CartPole-v1");
    spec->n_envs = 8;
    spec->seed = 5;
    spec->steps = 200;
    int64_t done = 0;
    assert_ok(send_wait(&w, a, RLY_RUN_ENV, 0, spec, free, &done));
    assert_int_equal(done, 200);
    assert_int_equal(atomic_load(&rly_actor_stats_of(a)->env_steps), 1600);
    world_stop(&w, &a, 1);
    /* Always pushing right: episodes end by termination in ~10 steps; every step is recorded. */
    uint64_t rows = 0, ends = 0;
    int64_t next_episode[8] = {0};
    for (int i = 0; i < w.col.n; i++) {
        relay_traj *t = w.col.items[i];
        assert_true(t->env_id >= 0 && t->env_id < 8);
        rows += t->len;
        uint32_t last = t->len - 1;
        bool cut = t->aux[last * RLY_N_AUX + RLY_AUX_CUT] != 0.0f;
        assert_true(t->terminated[last] || t->truncated[last]);
        assert_int_equal(t->episode, next_episode[t->env_id]);
        if (!cut) {
            next_episode[t->env_id]++;
            ends++;
        }
        for (uint32_t k = 0; k + 1 < t->len; k++)
            assert_false(t->terminated[k] || t->truncated[k]);
    }
    assert_int_equal(rows, 1600);
    assert_true(ends >= 8 * 10);
    collect_fini(&w.col);
}

static void update_takes_effect_within_one_step_of_a_run(void **state)
{
    world w;
    world_start(&w);
    rly_actor *a = make_actor(&w, 0, 0.0f);
    rly_run_env *spec = calloc(1, sizeof *spec);
    spec->env = relay_env_find("CartPole-v1");
    spec->n_envs = 4;
    spec->steps = 0; /* until stopped */
    rly_reply *run = rly_reply_new();
    rly_msg m = rly_msg_data(rly_actor_slot_of(a)->id, RLY_RUN_ENV, 0, spec, free, run);
    assert_ok(rly_coord_send(w.c, &m));
    while (atomic_load(&rly_actor_stats_of(a)->env_steps) < 400)
        rly_sleep_ns(RLY_NS_PER_MS);
    const float b[2] = {20.0f, 0.0f};
    rly_model_update *u = calloc(1, sizeof *u);
    u->pi = dense(4, 2, b);
    u->version = 7;
    assert_ok(send_wait(&w, a, RLY_MODEL_UPDATE, 7, u, rly_model_update_free, NULL));
    uint64_t at_update = atomic_load(&rly_actor_stats_of(a)->env_steps);
    while (atomic_load(&rly_actor_stats_of(a)->env_steps) < at_update + 400)
        rly_sleep_ns(RLY_NS_PER_MS);
    assert_false(rly_reply_is_done(run));
    world_stop(&w, &a, 1);
    assert_err(rly_reply_wait(run, 0, NULL, NULL), RELAY_ESHUTDOWN);
    rly_reply_release(run);
    int newer = 0;
    for (int i = 0; i < w.col.n; i++) {
        relay_traj *t = w.col.items[i];
        assert_true(t->policy_version == 0 || t->policy_version == 7);
        if (t->policy_version == 7) {
            newer++;
            /* The new policy always pushes left: every recorded action is 0. */
            for (uint32_t k = 0; k < t->len; k++) {
                int32_t act;
                memcpy(&act, t->act + 4 * k, 4);
                assert_int_equal(act, 0);
            }
        }
    }
    assert_true(newer > 0);
    collect_fini(&w.col);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_action_credits_rewards_to_previous_step),
        cmocka_unit_test(max_length_emits_truncated_chunks),
        cmocka_unit_test(model_version_and_update),
        cmocka_unit_test(run_env_records_every_step),
        cmocka_unit_test(update_takes_effect_within_one_step_of_a_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
