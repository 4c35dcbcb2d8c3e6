/* Learner checkpoints: bit-identical resume, the caller's blob, and corrupt or foreign files. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "learn/learn_internal.h"
#include "learn/learner.h"
#include "relay/codec.h"
#include "relay/model.h"

/* publish callback: the models are not needed, only the count. */
static relay_err on_publish(void *ctx, int64_t version, relay_model *pi, relay_model *vf,
                            const float *log_std, uint32_t n_log_std)
{
    (void)ctx;
    (void)version;
    (void)log_std;
    (void)n_log_std;
    relay_model_free(pi);
    relay_model_free(vf);
    return RELAY_OK;
}

static void make_spec(relay_step_spec *s)
{
    memset(s, 0, sizeof *s);
    s->obs_dtype = RELAY_F32;
    s->obs_rank = 1;
    s->obs_shape[0] = 4;
    s->act_dtype = RELAY_I32;
    s->act_rank = 1;
    s->act_shape[0] = 1;
    s->n_aux = 4;
    strcpy(s->aux_names[0], "logp");
    strcpy(s->aux_names[1], "value");
    strcpy(s->aux_names[2], "bootstrap");
    strcpy(s->aux_names[3], "cut");
}

#define ROWS 8

/* piece k: ROWS CartPole-shaped rows of version k, varied contents; odd pieces terminate. */
static relay_traj *piece_k(relay_id actor, int64_t k)
{
    relay_step_spec spec;
    make_spec(&spec);
    relay_traj *t = relay_traj_new(&spec, ROWS, 0);
    assert_non_null(t);
    t->actor = actor;
    t->env_id = 0;
    t->episode = k;
    t->policy_version = k;
    for (uint32_t i = 0; i < ROWS; i++) {
        float x = (float)(k * ROWS + i);
        float obs[4] = {0.1f * sinf(x), 0.3f * cosf(0.7f * x), 0.05f * sinf(1.3f * x), 2.0f};
        int32_t a = (int32_t)((k + i) % 2);
        float aux[4] = {-0.6931f + 0.01f * sinf(x), 0.2f * cosf(x), 0, 0};
        bool term = (k % 2 == 1) && i == ROWS - 1;
        assert_ok(relay_traj_push(t, obs, &a, NULL, 1.0f + 0.1f * (float)i, term, false, aux,
                                  k * 100 + i + 1));
    }
    if (k % 2 == 0) { /* cut, bootstrapped */
        t->truncated[ROWS - 1] = 1;
        t->aux[(ROWS - 1) * 4 + 2] = 0.25f;
        t->aux[(ROWS - 1) * 4 + 3] = 1.0f;
    }
    return t;
}

typedef struct saver {
    char path[256];
    uint32_t at_update;
    const char *extra;
    relay_err result;
    bool saved;
    rly_learner *l;
} saver;

static void on_update(void *ctx, const rly_learner_stats *st)
{
    saver *s = ctx;
    if (s->l && st->updates == s->at_update) {
        s->result = rly_learner_checkpoint_save(s->l, s->path, s->extra,
                                                s->extra ? strlen(s->extra) + 1 : 0);
        s->saved = true;
    }
}

static void config(rly_learner_config *cfg, const char *env, uint32_t hidden)
{
    assert_ok(rly_learner_config_init(cfg, relay_env_find(env), 1));
    cfg->n_steps = ROWS;
    cfg->ppo.batch_size = 4;
    cfg->ppo.n_epochs = 3;
    cfg->ppo.seed = 5;
    cfg->ppo.total_timesteps = 1000;
    cfg->ppo.policy.normalize_obs = true;
    cfg->ppo.policy.n_hidden = 2;
    cfg->ppo.policy.hidden[0] = hidden;
    cfg->ppo.policy.hidden[1] = hidden;
    cfg->publish = on_publish;
}

/* feed pushes pieces from..to-1 and waits for each update. */
static void feed(rly_learner *l, relay_id a, int64_t from, int64_t to)
{
    for (int64_t k = from; k < to; k++) {
        relay_traj *t = piece_k(a, k);
        assert_ok(rly_learner_push(l, t));
        assert_ok(rly_learner_wait_version(l, k + 1, 20 * RLY_NS_PER_S));
    }
}

static void tmp_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "/tmp/relay-ckpt-%ld-%s", (long)getpid(), name);
}

static void params_of(rly_learner *l, float **out, size_t *n, float *mean, float *var)
{
    relay_policy *p = rly_learner_policy(l);
    assert_non_null(p);
    *n = relay_policy_num_params(p);
    *out = malloc(*n * sizeof(float));
    assert_ok(relay_policy_get_params(p, *out, *n));
    relay_policy_get_obs_norm(p, mean, var);
}

/* resume_case runs the resume check with or without reward normalisation; *final receives the
   uninterrupted run's parameters (caller frees). */
static void resume_case(bool norm_reward, float **final, size_t *n_final)
{
    relay_id a = relay_id_from_seed(7, 1);
    char path[256];
    tmp_path(path, sizeof path, "resume.ckpt");
    rly_learner_config cfg;
    config(&cfg, "CartPole-v1", 16);
    cfg.ppo.normalize_reward = norm_reward;
    cfg.ppo.clip_reward = 5.0f;

    /* uninterrupted: 6 updates, a checkpoint after the 3rd (from another thread) */
    rly_learner *l = NULL;
    assert_ok(rly_learner_new(&cfg, &l));
    assert_ok(rly_learner_wait_version(l, 0, 20 * RLY_NS_PER_S));
    feed(l, a, 0, 3);
    assert_ok(rly_learner_checkpoint_save(l, path, "ids", 4));
    feed(l, a, 3, 6);
    rly_learner_stop(l);
    rly_learner_stats sa;
    rly_learner_stats_get(l, &sa);
    float *pa, ma[4], va[4];
    size_t na;
    params_of(l, &pa, &na, ma, va);

    /* resumed: starts at version 3 with the saved counters, then the same 3 updates */
    cfg.resume_path = path;
    rly_learner *r = NULL;
    assert_ok(rly_learner_new(&cfg, &r));
    assert_ok(rly_learner_wait_version(r, 3, 20 * RLY_NS_PER_S));
    rly_learner_stats s0;
    rly_learner_stats_get(r, &s0);
    assert_int_equal(s0.version, 3);
    assert_int_equal(s0.updates, 3);
    assert_int_equal(s0.steps_consumed, 3 * ROWS);
    assert_int_equal(s0.episodes, 1); /* piece 1 terminated */
    const uint8_t *x;
    size_t xl;
    assert_ok(rly_learner_resume_extra(r, &x, &xl));
    assert_int_equal(xl, 4);
    assert_string_equal((const char *)x, "ids");
    feed(r, a, 3, 6);
    rly_learner_stop(r);
    rly_learner_stats sb;
    rly_learner_stats_get(r, &sb);
    float *pb, mb[4], vb[4];
    size_t nb;
    params_of(r, &pb, &nb, mb, vb);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na * sizeof(float)); /* bit-identical weights */
    assert_memory_equal(ma, mb, sizeof ma);
    assert_memory_equal(va, vb, sizeof va);
    assert_int_equal(sa.updates, sb.updates);
    assert_int_equal(sa.version, sb.version);
    assert_int_equal(sa.steps_consumed, sb.steps_consumed);
    assert_int_equal(sa.episodes, sb.episodes);
    assert_memory_equal(&sa.mean_return_100, &sb.mean_return_100, sizeof(float));
    assert_memory_equal(&sa.last, &sb.last, sizeof sa.last); /* same losses, lr, clip */

    /* a checkpoint saved after stop resumes where the run ended */
    assert_ok(rly_learner_checkpoint_save(r, path, NULL, 0));
    rly_learner *r2 = NULL;
    assert_ok(rly_learner_new(&cfg, &r2));
    assert_ok(rly_learner_wait_version(r2, 6, 20 * RLY_NS_PER_S));
    assert_ok(rly_learner_resume_extra(r2, &x, &xl));
    assert_int_equal(xl, 0);
    rly_learner_stop(r2);
    float *pc, mc[4], vc[4];
    size_t nc;
    params_of(r2, &pc, &nc, mc, vc);
    assert_memory_equal(pa, pc, na * sizeof(float));
    /* reward normalisation must match too: a checkpoint of the other setting is refused */
    cfg.ppo.normalize_reward = !norm_reward;
    rly_learner *r3 = NULL;
    assert_err(rly_learner_new(&cfg, &r3), RELAY_ESHAPE);
    assert_null(r3);
    *final = pa;
    *n_final = na;
    free(pb);
    free(pc);
    rly_learner_free(l);
    rly_learner_free(r);
    rly_learner_free(r2);
    unlink(path);
}

static void resume_is_bit_identical(void **state)
{
    (void)state;
    float *plain, *normed;
    size_t n1, n2;
    resume_case(false, &plain, &n1);
    resume_case(true, &normed, &n2); /* running return statistics and per-stream returns too */
    assert_int_equal(n1, n2);
    /* normalised rewards change the value targets, hence the weights */
    assert_true(memcmp(plain, normed, n1 * sizeof(float)) != 0);
    free(plain);
    free(normed);
}

static void save_from_on_update(void **state)
{
    (void)state;
    saver sv = {.at_update = 2, .extra = "trajectory ids 0..41"};
    tmp_path(sv.path, sizeof sv.path, "onupdate.ckpt");
    rly_learner_config cfg;
    config(&cfg, "CartPole-v1", 8);
    cfg.on_update = on_update;
    cfg.on_update_ctx = &sv;
    rly_learner *l = NULL;
    assert_ok(rly_learner_new(&cfg, &l));
    sv.l = l;
    relay_id a = relay_id_from_seed(7, 2);
    feed(l, a, 0, 3);
    rly_learner_stop(l);
    assert_true(sv.saved);
    assert_ok(sv.result);
    cfg.on_update = NULL;
    cfg.resume_path = sv.path;
    rly_learner *r = NULL;
    assert_ok(rly_learner_new(&cfg, &r));
    assert_ok(rly_learner_wait_version(r, 2, 20 * RLY_NS_PER_S));
    const uint8_t *x;
    size_t xl;
    assert_ok(rly_learner_resume_extra(r, &x, &xl));
    assert_int_equal(xl, strlen(sv.extra) + 1);
    assert_string_equal((const char *)x, sv.extra);
    rly_learner_stats st;
    rly_learner_stats_get(r, &st);
    assert_int_equal(st.updates, 2);
    /* no temporary files are left behind */
    char tmpl[300];
    snprintf(tmpl, sizeof tmpl, "%s.tmp.%ld.0", sv.path, (long)getpid());
    assert_int_not_equal(access(tmpl, F_OK), 0);
    rly_learner_free(l);
    rly_learner_free(r);
    unlink(sv.path);
}

static void write_bytes(const char *path, const uint8_t *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* expect_resume_error writes b to path and checks that resuming from it fails with want. */
static void expect_resume_error(rly_learner_config *cfg, const char *path, const uint8_t *b,
                                size_t n, relay_err want)
{
    if (b)
        write_bytes(path, b, n);
    cfg->resume_path = path;
    rly_learner *l = (rly_learner *)(uintptr_t)1;
    relay_err e = rly_learner_new(cfg, &l);
    if (e != want)
        fail_msg("resume: got %s, want %s", relay_errname(e), relay_errname(want));
    assert_null(l);
}

static void corrupt_checkpoints_are_rejected(void **state)
{
    (void)state;
    char good[256], bad[256];
    tmp_path(good, sizeof good, "good.ckpt");
    tmp_path(bad, sizeof bad, "bad.ckpt");
    rly_learner_config cfg;
    config(&cfg, "CartPole-v1", 16);
    rly_learner *l = NULL;
    assert_ok(rly_learner_new(&cfg, &l));
    feed(l, relay_id_from_seed(7, 3), 0, 1);
    assert_ok(rly_learner_checkpoint_save(l, good, "x", 1));
    rly_learner_free(l);
    uint8_t *b;
    size_t n;
    assert_ok(rly_ckpt_read_file(good, &b, &n));
    assert_true(n > 100);
    uint8_t *c = malloc(n + 16);
    /* one flipped bit in the weights */
    memcpy(c, b, n);
    c[n / 2] ^= 0x10;
    expect_resume_error(&cfg, bad, c, n, RELAY_ECHECKSUM);
    /* truncated: half the file, and a stub */
    expect_resume_error(&cfg, bad, b, n / 2, RELAY_ETRUNCATED);
    expect_resume_error(&cfg, bad, b, 10, RELAY_ETRUNCATED);
    expect_resume_error(&cfg, bad, b, 0, RELAY_ETRUNCATED);
    /* trailing garbage */
    memcpy(c, b, n);
    memset(c + n, 0xab, 16);
    expect_resume_error(&cfg, bad, c, n + 16, RELAY_EFORMAT);
    /* not a checkpoint */
    memcpy(c, b, n);
    memcpy(c, "PK\3\4", 4);
    expect_resume_error(&cfg, bad, c, n, RELAY_EFORMAT);
    /* a future format (4) and an old one (format 1, before reward normalisation), valid checksums
     */
    for (uint8_t fmt = 1; fmt <= 4; fmt += 3) {
        memcpy(c, b, n);
        c[8] = fmt;
        uint32_t crc = relay_crc32c(0, c, n - 4);
        for (int i = 0; i < 4; i++)
            c[n - 4 + i] = (uint8_t)(crc >> (8 * i));
        expect_resume_error(&cfg, bad, c, n, RELAY_EVERSION);
    }
    /* missing file */
    unlink(bad);
    expect_resume_error(&cfg, bad, NULL, 0, RELAY_ENOTFOUND);
    /* valid file, other network sizes / other spaces / other activation */
    rly_learner_config other;
    config(&other, "CartPole-v1", 32);
    expect_resume_error(&other, good, NULL, 0, RELAY_ESHAPE);
    config(&other, "Acrobot-v1", 16);
    expect_resume_error(&other, good, NULL, 0, RELAY_ESHAPE);
    config(&other, "CartPole-v1", 16);
    other.ppo.policy.activation = RELAY_HIDDEN_RELU;
    expect_resume_error(&other, good, NULL, 0, RELAY_ESHAPE);
    /* the good file still loads */
    cfg.resume_path = good;
    assert_ok(rly_learner_new(&cfg, &l));
    rly_learner_free(l);
    /* decode directly: every truncation of the file is refused, never crashes */
    relay_ppo *p = NULL;
    relay_ppo_config pc = cfg.ppo;
    pc.n_envs = 1;
    pc.n_steps = ROWS;
    pc.policy.obs_dim = 0;
    assert_ok(relay_ppo_config_zoo(&pc, "CartPole-v1"));
    pc.policy = (relay_policy_spec){0};
    relay_space os, as;
    relay_env_find("CartPole-v1")->spaces(&os, &as);
    assert_ok(relay_policy_spec_from_spaces(&pc.policy, &os, &as));
    pc.policy.hidden[0] = pc.policy.hidden[1] = 16;
    pc.policy.normalize_obs = true;
    assert_ok(relay_ppo_new(&pc, &p));
    rly_ckpt_counters k;
    for (size_t cut = 0; cut < n; cut += 1 + cut / 8)
        assert_int_not_equal(rly_ckpt_decode(b, cut, "cut", p, &k, NULL, NULL), RELAY_OK);
    uint8_t *x = NULL;
    size_t xl = 0;
    assert_ok(rly_ckpt_decode(b, n, "good", p, &k, &x, &xl));
    assert_int_equal(k.version, 1);
    assert_int_equal(k.n_ep, 1); /* format 3: the streams' episodes in progress */
    assert_non_null(k.ep);
    /* the same state as format 2 (no episodes section) still loads, without episodes */
    size_t sec = 4 + 17 * (size_t)k.n_ep, end = n - 4 - xl - 8;
    uint8_t *old = malloc(n);
    assert_non_null(old);
    memcpy(old, b, end - sec);
    memcpy(old + end - sec, b + end, n - end);
    size_t on = n - sec;
    old[8] = 2;
    uint64_t plen = on - 24 - 4;
    for (int i = 0; i < 8; i++)
        old[16 + i] = (uint8_t)(plen >> (8 * i));
    uint32_t ocrc = relay_crc32c(0, old, on - 4);
    for (int i = 0; i < 4; i++)
        old[on - 4 + i] = (uint8_t)(ocrc >> (8 * i));
    free(k.ep);
    free(x);
    x = NULL;
    assert_ok(rly_ckpt_decode(old, on, "format 2", p, &k, &x, &xl));
    assert_int_equal(k.n_ep, 0);
    assert_null(k.ep);
    assert_int_equal(k.version, 1);
    free(x);
    /* a corrupt episodes section is named (flags out of range; checksum made valid) */
    memcpy(old, b, n);
    old[end - sec + 4] = 7;
    ocrc = relay_crc32c(0, old, n - 4);
    for (int i = 0; i < 4; i++)
        old[n - 4 + i] = (uint8_t)(ocrc >> (8 * i));
    assert_int_equal(rly_ckpt_decode(old, n, "bad ep", p, &k, NULL, NULL), RELAY_EFORMAT);
    free(old);
    relay_ppo_free(p);
    /* an unwritable destination is an error, not a crash */
    l = NULL;
    cfg.resume_path = NULL;
    assert_ok(rly_learner_new(&cfg, &l));
    assert_err(rly_learner_checkpoint_save(l, "/nonexistent-dir/x.ckpt", NULL, 0), RELAY_EIO);
    assert_err(rly_learner_checkpoint_save(l, NULL, NULL, 0), RELAY_EINVAL);
    rly_learner_free(l);
    free(b);
    free(c);
    unlink(good);
    unlink(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(resume_is_bit_identical),
        cmocka_unit_test(save_from_on_update),
        cmocka_unit_test(corrupt_checkpoints_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
