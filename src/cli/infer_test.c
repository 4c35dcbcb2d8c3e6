/*
 * Central inference end to end in one process, over ZeroMQ (ipc://): 64 remote actors (an agent
 * whose actors ask an inference server) record exactly the trajectories of 64 local actors with
 * the same model and seeds (actions, log-probabilities and values bit for bit); a server that is
 * gone ends requests with RELAY_ETIMEDOUT / RELAY_ECLOSED; malformed requests are refused with
 * the limit named, counted, and the server keeps answering.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/infer.h"
#include "core/clock.h"
#include "core/rng.h"
#include "test_util.h"

#define N_ACTORS 64
#define N_ENVS 2
#define STEPS 40

static relay_model *mlp(uint32_t in, uint32_t hidden, uint32_t out, uint64_t seed)
{
    uint32_t sizes[3] = {in, hidden, out};
    float *w0 = malloc(sizeof(float) * in * hidden), *w1 = malloc(sizeof(float) * hidden * out);
    float *b0 = calloc(hidden, sizeof(float)), *b1 = calloc(out, sizeof(float));
    rly_rng r;
    rly_rng_seed(&r, seed);
    for (uint32_t i = 0; i < in * hidden; i++)
        w0[i] = (float)(rly_rng_uniform(&r) - 0.5);
    for (uint32_t i = 0; i < hidden * out; i++)
        w1[i] = (float)(rly_rng_uniform(&r) - 0.5);
    const float *ws[2] = {w0, w1}, *bs[2] = {b0, b1};
    relay_activation act[2] = {RELAY_ACT_TANH, RELAY_ACT_NONE};
    relay_mlp_desc d = {
        .n_layers = 2, .sizes = sizes, .activations = act, .weights = ws, .biases = bs};
    relay_model *m = NULL;
    assert_ok(relay_model_from_mlp(&d, &m));
    free(w0);
    free(w1);
    free(b0);
    free(b1);
    return m;
}

/* digest: every recorded row as (hash of actor, env, episode, obs, action, reward; logp, value);
   trajectories arrive from the sink worker only */
typedef struct row_rec {
    uint64_t key;
    float logp, value;
} row_rec;

typedef struct digest {
    _Atomic uint64_t rows, versions_bad;
    int64_t want_version;
    row_rec *rec;
    size_t n, cap;
} digest;

static int by_key(const void *a, const void *b)
{
    uint64_t x = ((const row_rec *)a)->key, y = ((const row_rec *)b)->key;
    return x < y ? -1 : x > y;
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static void consume(void *ctx, relay_traj *t)
{
    digest *d = ctx;
    if (t->policy_version != d->want_version)
        atomic_fetch_add(&d->versions_bad, 1);
    size_t ob = 0, ab = 0, mb = 0;
    relay_step_spec_bytes(&t->spec, &ob, &ab, &mb);
    uint32_t na = t->spec.n_aux;
    for (uint32_t i = 0; i < t->len; i++) {
        uint64_t h = 0xcbf29ce484222325ULL;
        h = mix(h, &t->actor, sizeof t->actor);
        h = mix(h, &t->env_id, sizeof t->env_id);
        h = mix(h, &t->episode, sizeof t->episode);
        h = mix(h, t->obs + (size_t)i * ob, ob);
        h = mix(h, t->act + (size_t)i * ab, ab);
        h = mix(h, &t->reward[i], sizeof(float));
        if (d->n < d->cap)
            d->rec[d->n++] = (row_rec){h, t->aux[(size_t)i * na], t->aux[(size_t)i * na + 1]};
    }
    atomic_fetch_add(&d->rows, t->len);
    relay_traj_free(t);
}

static relay_agent *start_agent(digest *d, const rly_remote_infer *remote,
                                const rly_policy_desc *desc, const relay_env_def *env)
{
    relay_config ac;
    relay_config_default(&ac);
    ac.shared_model = true;
    ac.routers = 2; /* remote: 32 actors per router step together with one request */
    ac.workers = 2;
    ac.sink_memory = false;
    relay_agent *a = NULL;
    assert_ok(relay_agent_new(&ac, &a));
    assert_ok(rly_agent_set_consumer(a, consume, d));
    assert_ok(relay_agent_start(a));
    assert_ok(rly_agent_publish(a, 3, mlp(4, 16, 2, 11), mlp(4, 16, 1, 12), NULL, 0));
    for (uint32_t i = 0; i < N_ACTORS; i++) {
        relay_id id;
        assert_ok(rly_agent_new_actor_remote(a, desc, 1000 + i, 0, remote, &id));
        assert_ok(rly_agent_run_env_quota(a, id, env, N_ENVS, 5000 + 7 * i, STEPS, NULL));
    }
    return a;
}

static void wait_rows(digest *d, uint64_t want)
{
    int64_t until = rly_now_ns() + 60 * RLY_NS_PER_S;
    while (atomic_load(&d->rows) < want && rly_now_ns() < until)
        rly_sleep_ns(5 * RLY_NS_PER_MS);
}

static void open_pair(const char *url, rly_tp **srv, rly_tp **cli)
{
    rly_tp_config c;
    rly_tp_config_init(&c);
    c.url = url;
    c.bind = true;
    assert_ok(rly_tp_open(&c, srv));
    c.bind = false;
    assert_ok(rly_tp_open(&c, cli));
}

/* unlink_ipc removes the ipc endpoints a transport bound at url (main, models, inference). */
static void unlink_ipc(const char *url)
{
    static const char *const ext[] = {"", ".pub", ".infer"};
    for (size_t i = 0; i < 3; i++) {
        char path[160];
        snprintf(path, sizeof path, "%s%s", url + 6, ext[i]);
        unlink(path);
    }
}

static void remote_equals_local(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "ipc:///tmp/relay-infer-test-%d", (int)getpid());
    rly_tp *srv = NULL, *cli = NULL;
    open_pair(url, &srv, &cli);
    const relay_env_def *env = NULL;
    assert_ok(relay_env_resolve("CartPole-v1", &env));
    rly_policy_desc desc;
    assert_ok(rly_policy_desc_from_env(&desc, env));
    rly_infer_server *is = NULL;
    assert_ok(rly_infer_server_new(&desc, &is));
    rly_infer_server_publish(is, 3, mlp(4, 16, 2, 11), mlp(4, 16, 1, 12), NULL, 0);
    rly_tp_infer_opts o = {.max_batch = 256, .max_wait_ns = 200000};
    assert_ok(rly_infer_server_start(is, srv, &o));
    assert_int_equal(rly_infer_server_start(is, srv, &o), RELAY_EBUSY);
    rly_infer_client *ic = NULL;
    assert_ok(rly_infer_client_new(cli, 10 * RLY_NS_PER_S, &ic));

    uint64_t want = (uint64_t)N_ACTORS * N_ENVS * STEPS;
    digest dl = {.want_version = 3, .cap = want}, dr = {.want_version = 3, .cap = want};
    dl.rec = calloc(want, sizeof(row_rec));
    dr.rec = calloc(want, sizeof(row_rec));
    relay_agent *local = start_agent(&dl, NULL, &desc, env);
    wait_rows(&dl, want);
    relay_agent *remote = start_agent(&dr, rly_infer_client_hook(ic), &desc, env);
    wait_rows(&dr, want);
    assert_int_equal(atomic_load(&dl.rows), want);
    assert_int_equal(atomic_load(&dr.rows), want);
    /* the same rows (observations, actions, rewards: bit for bit), and the same log-probabilities
       and values up to float rounding (a batched forward pass sums in another order) */
    relay_agent_shutdown(remote);
    relay_agent_shutdown(local);
    qsort(dl.rec, dl.n, sizeof(row_rec), by_key);
    qsort(dr.rec, dr.n, sizeof(row_rec), by_key);
    size_t exact = 0;
    for (size_t i = 0; i < want; i++) {
        assert_true(dl.rec[i].key == dr.rec[i].key);
        assert_float_equal(dl.rec[i].logp, dr.rec[i].logp, 1e-5);
        assert_float_equal(dl.rec[i].value, dr.rec[i].value, 1e-5);
        exact += dl.rec[i].logp == dr.rec[i].logp && dl.rec[i].value == dr.rec[i].value;
    }
    printf("# %zu of %llu rows with bit-equal log-probability and value\n", exact,
           (unsigned long long)want);
    free(dl.rec);
    free(dr.rec);
    assert_int_equal(atomic_load(&dr.versions_bad), 0);
    assert_int_equal(rly_infer_client_failures(ic), 0);
    rly_tp_infer_stats st;
    rly_tp_infer_stats_get(srv, &st);
    assert_int_equal(st.rows, want);
    assert_true(st.batches > 0 && st.batches <= st.requests);
    assert_true(st.max_rows <= 256 + N_ENVS);
    assert_int_equal(st.rejected, 0);
    printf("# %llu requests, %llu rows in %llu batches (largest %u)\n",
           (unsigned long long)st.requests, (unsigned long long)st.rows,
           (unsigned long long)st.batches, st.max_rows);
    relay_agent_free(remote);
    relay_agent_free(local);

    /* the server goes away: a request ends with a clear error, not a hang */
    rly_tp_close(srv);
    rly_infer_server_free(is);
    rly_infer_client_free(ic);
    assert_ok(rly_infer_client_new(cli, 300 * RLY_NS_PER_MS, &ic));
    float obs[4] = {0};
    double u = 0.5;
    int32_t act = -1;
    float lp = 0, val = 0;
    rly_remote_rows rr = {
        .n = 1, .obs = obs, .rand = &u, .acts_i = &act, .logp = &lp, .values = &val};
    const rly_remote_infer *h = rly_infer_client_hook(ic);
    relay_err e = h->forward(h->ctx, &desc, &rr);
    assert_true(e == RELAY_ETIMEDOUT || e == RELAY_ECLOSED);
    e = h->forward(h->ctx, &desc, &rr);
    assert_true(e == RELAY_ETIMEDOUT || e == RELAY_ECLOSED);
    assert_int_equal(rly_infer_client_failures(ic), 2);
    rly_infer_client_free(ic);
    rly_tp_close(cli);
    unlink_ipc(url);
}

static relay_err raw(rly_tp *cli, const void *req, size_t len, rly_iw_rep *rep, uint8_t *buf,
                     size_t cap)
{
    size_t rl = 0;
    relay_err e = rly_tp_infer_request(cli, req, len, buf, cap, &rl, 5 * RLY_NS_PER_S);
    if (e)
        return e;
    return rly_iw_rep_decode(buf, rl, rep);
}

static bool text_has(const rly_iw_rep *r, const char *s)
{
    char t[RLY_IW_TEXT_MAX + 1];
    memcpy(t, r->text, r->text_len);
    t[r->text_len] = 0;
    printf("# refused: %s\n", t);
    return strstr(t, s) != NULL;
}

static void malformed_refused(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "ipc:///tmp/relay-infer-bad-%d", (int)getpid());
    rly_tp *srv = NULL, *cli = NULL;
    open_pair(url, &srv, &cli);
    rly_policy_desc desc = {.obs_dim = 4, .discrete = true, .n_actions = 2, .act_dim = 1};
    rly_infer_server *is = NULL;
    assert_ok(rly_infer_server_new(&desc, &is));
    rly_tp_infer_opts o = {.max_batch = 64, .max_wait_ns = 0};
    assert_ok(rly_infer_server_start(is, srv, &o));
    static uint8_t buf[1 << 16], req[1 << 12];
    rly_iw_rep rep;
    float obs[8] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f};
    double rnd[2] = {0.25, 0.75};
    size_t len = 0;

    /* before any model: a clear refusal, not a hang */
    assert_ok(rly_iw_req_encode(req, sizeof req, &len, 1, 2, 4, 2, 1, false, rnd, obs, NULL));
    assert_ok(raw(cli, req, len, &rep, buf, sizeof buf));
    assert_int_equal(rep.status, RELAY_ENOMODEL);
    rly_infer_server_publish(is, 9, mlp(4, 8, 2, 1), NULL, NULL, 0);

    /* garbage */
    memset(req, 0xab, 64);
    assert_ok(raw(cli, req, 64, &rep, buf, sizeof buf));
    assert_int_equal(rep.status, RELAY_EFORMAT);
    assert_true(text_has(&rep, "magic"));
    /* a header claiming absurd sizes: refused with the limit named */
    assert_ok(rly_iw_req_encode(req, sizeof req, &len, 2, 2, 4, 2, 1, false, rnd, obs, NULL));
    uint32_t rows = 1000000;
    memcpy(req + 16, &rows, 4);
    assert_ok(raw(cli, req, len, &rep, buf, sizeof buf));
    assert_int_equal(rep.status, RELAY_ETOOBIG);
    assert_true(text_has(&rep, "4096"));
    uint32_t dim = 1u << 30;
    rows = 2;
    memcpy(req + 16, &rows, 4);
    memcpy(req + 20, &dim, 4);
    assert_ok(raw(cli, req, len, &rep, buf, sizeof buf));
    assert_int_equal(rep.status, RELAY_ETOOBIG);
    assert_true(text_has(&rep, "65536"));
    /* truncated */
    assert_ok(rly_iw_req_encode(req, sizeof req, &len, 3, 2, 4, 2, 1, false, rnd, obs, NULL));
    assert_ok(raw(cli, req, len - 5, &rep, buf, sizeof buf));
    assert_int_equal(rep.status, RELAY_EFORMAT);
    assert_true(text_has(&rep, "bytes"));
    /* well formed but the wrong shape for the served policy: refused by the server */
    assert_ok(rly_iw_req_encode(req, sizeof req, &len, 4, 1, 5, 2, 1, false, rnd, obs, NULL));
    assert_ok(raw(cli, req, len, &rep, buf, sizeof buf));
    assert_int_equal(rep.status, RELAY_ESHAPE);
    /* masks forbidding everything */
    uint8_t masks[4] = {0, 0, 1, 1};
    assert_ok(rly_iw_req_encode(req, sizeof req, &len, 5, 2, 4, 2, 1, false, rnd, obs, masks));
    assert_ok(raw(cli, req, len, &rep, buf, sizeof buf));
    assert_int_equal(rep.status, RELAY_EINVAL);

    /* and the server still serves */
    assert_ok(rly_iw_req_encode(req, sizeof req, &len, 6, 2, 4, 2, 1, false, rnd, obs, NULL));
    assert_ok(raw(cli, req, len, &rep, buf, sizeof buf));
    assert_int_equal(rep.status, RELAY_OK);
    assert_int_equal(rep.id, 6);
    assert_int_equal(rep.version, 9);
    assert_int_equal(rep.rows, 2);
    rly_tp_infer_stats st;
    rly_tp_infer_stats_get(srv, &st);
    assert_int_equal(st.rejected, 4);
    assert_int_equal(st.failed, 3);
    rly_tp_close(cli);
    rly_tp_close(srv);
    rly_infer_server_free(is);
    unlink_ipc(url);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(remote_equals_local),
        cmocka_unit_test(malformed_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
