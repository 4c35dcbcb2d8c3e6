/*
 * relay_vecenv: time limits, auto-reset and final_obs, seeding, action checks, the CartPole
 * structure-of-arrays fast path against the generic path, and bad definitions.
 */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "env/builtin.h"
#include "env/env_internal.h"
#include "relay/env.h"

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* Balances the pole for well over 500 steps (checked below): push towards where it falls. */
static int32_t balance(const float *o)
{
    return 0.1f * o[0] + 0.1f * o[1] + o[2] + 0.5f * o[3] > 0.0f;
}

static void cartpole_truncates_at_500(void **unused)
{
    relay_vecenv *v;
    assert_ok(relay_vecenv_new(relay_env_find("CartPole-v1"), 2, 11, &v));
    float obs[8], rew[2], fin[8];
    bool term[2], trunc[2];
    relay_vecenv_reset(v, obs);
    for (int t = 1; t <= 500; t++) {
        int32_t a[2] = {balance(obs), balance(obs + 4)};
        float before[8];
        memcpy(before, obs, sizeof obs);
        relay_vecenv_step(v, a, obs, rew, term, trunc, fin);
        for (int i = 0; i < 2; i++) {
            assert_false(term[i]);
            assert_float_equal(rew[i], 1.0, 0.0);
            assert_int_equal(trunc[i], t == 500);
        }
    }
    /* After the 500th step both were reset: obs is a fresh start, final_obs the 500th state. */
    for (int i = 0; i < 8; i++)
        assert_true(fabsf(obs[i]) <= 0.05f);
    assert_true(fabsf(fin[2]) < 0.2095f);
    assert_memory_not_equal(obs, fin, sizeof obs);
    relay_vecenv_free(v);
}

/* Runs env 'name' with a constant action and checks it truncates exactly at its limit. */
static void check_limit(const char *name, const void *action, size_t act_size, int limit,
                        float reward)
{
    relay_vecenv *v;
    const relay_env_def *def = relay_env_find(name);
    assert_non_null(def);
    assert_int_equal(def->max_episode_steps, limit);
    assert_ok(relay_vecenv_new(def, 3, 5, &v));
    float obs[3 * 6], rew[3];
    bool term[3], trunc[3];
    unsigned char acts[3 * 8];
    for (int i = 0; i < 3; i++)
        memcpy(acts + i * act_size, action, act_size);
    relay_vecenv_reset(v, obs);
    for (int round = 0; round < 2; round++) {
        for (int t = 1; t <= limit; t++) {
            relay_vecenv_step(v, acts, obs, rew, term, trunc, NULL);
            for (int i = 0; i < 3; i++) {
                assert_false(term[i]);
                assert_int_equal(trunc[i], t == limit);
                if (!isnan(reward))
                    assert_float_equal(rew[i], reward, 0.0);
                else
                    assert_true(rew[i] <= 0.0f && rew[i] >= -16.2736044f);
            }
        }
    }
    relay_vecenv_free(v);
}

static void time_limits_of_every_builtin(void **unused)
{
    int32_t idle = 1; /* Acrobot: no torque; MountainCar: no push; neither reaches its goal */
    float torque = 0.5f;
    check_limit("Acrobot-v1", &idle, sizeof idle, 500, -1.0f);
    check_limit("MountainCar-v0", &idle, sizeof idle, 200, -1.0f);
    check_limit("Pendulum-v1", &torque, sizeof torque, 200, NAN);
}

/* Replays env i by hand with the env's own reset/step and the documented seed convention. */
struct shadow {
    rly_cartpole_state st;
    uint64_t episode;
    int steps;
};

static void autoreset_and_final_obs(void **unused)
{
    const uint32_t n = 5;
    const uint64_t seed = 1000;
    const relay_env_def *def = relay_env_find("CartPole-v1");
    relay_vecenv *v;
    assert_ok(relay_vecenv_new(def, n, seed, &v));
    assert_int_equal(relay_vecenv_num(v), n);
    assert_ptr_equal(relay_vecenv_def(v), def);
    float obs[5 * 4], fin[5 * 4], rew[5], sobs[4], srew;
    bool term[5], trunc[5], sterm;
    struct shadow sh[5];
    relay_vecenv_reset(v, obs);
    for (uint32_t i = 0; i < n; i++) {
        memset(&sh[i], 0, sizeof sh[i]);
        def->reset(&sh[i].st, seed + i, sobs);
        sh[i].episode = 1;
        assert_memory_equal(obs + 4 * i, sobs, sizeof sobs);
    }
    uint64_t r = 3;
    int ends = 0;
    for (int t = 0; t < 3000; t++) {
        int32_t a[5];
        for (uint32_t i = 0; i < n; i++)
            a[i] = (int32_t)(lcg(&r) & 1);
        const float sentinel = -777.0f;
        for (uint32_t k = 0; k < 4 * n; k++)
            fin[k] = sentinel;
        relay_vecenv_step(v, a, obs, rew, term, trunc, fin);
        for (uint32_t i = 0; i < n; i++) {
            def->step(&sh[i].st, &a[i], sobs, &srew, &sterm);
            sh[i].steps++;
            assert_int_equal(term[i], sterm);
            assert_int_equal(trunc[i], sh[i].steps >= 500);
            assert_float_equal(rew[i], srew, 0.0);
            if (sterm || sh[i].steps >= 500) {
                ends++;
                /* final_obs holds the terminal observation; obs the next episode's first one. */
                assert_memory_equal(fin + 4 * i, sobs, sizeof sobs);
                def->reset(&sh[i].st, relay_env_episode_seed(seed + i, sh[i].episode++), sobs);
                sh[i].steps = 0;
                assert_memory_equal(obs + 4 * i, sobs, sizeof sobs);
            } else {
                assert_memory_equal(obs + 4 * i, sobs, sizeof sobs);
                for (int k = 0; k < 4; k++)
                    assert_float_equal(fin[4 * i + k], sentinel, 0.0); /* untouched */
            }
        }
    }
    assert_true(ends > 100); /* random actions end an episode every ~20 steps */
    relay_vecenv_free(v);
}

/* The CartPole fast path and the generic def path must give identical bits. */
static void cartpole_fast_path_equals_generic(void **unused)
{
    relay_env_def copy = *relay_env_find("CartPole-v1"); /* a different pointer: generic path */
    const uint32_t n = 67;                               /* not a multiple of the vector width */
    relay_vecenv *fast, *slow;
    assert_ok(relay_vecenv_new(relay_env_find("CartPole-v1"), n, 77, &fast));
    assert_ok(relay_vecenv_new(&copy, n, 77, &slow));
    static float o1[67 * 4], o2[67 * 4], f1[67 * 4], f2[67 * 4], r1[67], r2[67];
    static bool t1[67], t2[67], u1[67], u2[67];
    static int32_t a[67];
    relay_vecenv_reset(fast, o1);
    relay_vecenv_reset(slow, o2);
    assert_memory_equal(o1, o2, sizeof o1);
    uint64_t r = 9;
    int steps = test_sanitized() ? 800 : 3000;
    for (int t = 0; t < steps; t++) {
        for (uint32_t i = 0; i < n; i++)
            a[i] = (i % 3 == 0) ? balance(o1 + 4 * i) : (int32_t)(lcg(&r) & 1);
        relay_vecenv_step(fast, a, o1, r1, t1, u1, f1);
        relay_vecenv_step(slow, a, o2, r2, t2, u2, f2);
        assert_memory_equal(o1, o2, sizeof o1);
        assert_memory_equal(r1, r2, sizeof r1);
        assert_memory_equal(t1, t2, sizeof t1);
        assert_memory_equal(u1, u2, sizeof u1);
        for (uint32_t i = 0; i < n; i++)
            if (t1[i] || u1[i])
                assert_memory_equal(f1 + 4 * i, f2 + 4 * i, 4 * sizeof(float));
    }
    relay_vecenv_free(fast);
    relay_vecenv_free(slow);
}

static void seeds_are_deterministic(void **unused)
{
    const char *names[] = {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1"};
    for (size_t e = 0; e < 4; e++) {
        const relay_env_def *def = relay_env_find(names[e]);
        relay_space os, as;
        def->spaces(&os, &as);
        relay_vecenv *a, *b, *c;
        assert_ok(relay_vecenv_new(def, 4, 123, &a));
        assert_ok(relay_vecenv_new(def, 4, 123, &b));
        assert_ok(relay_vecenv_new(def, 4, 124, &c));
        float oa[24], ob[24], oc[24], ra[4], rb[4], rc[4];
        bool ta[4], tb[4], tc[4], ua[4], ub[4], uc[4];
        relay_vecenv_reset(a, oa);
        relay_vecenv_reset(b, ob);
        relay_vecenv_reset(c, oc);
        size_t bytes = 4 * os.dim * sizeof(float);
        assert_memory_equal(oa, ob, bytes);
        assert_memory_not_equal(oa, oc, bytes);
        /* Env i of seed s starts like env 0 of seed s + i: c's env 0 is a's env 1. */
        assert_memory_equal(oc, oa + os.dim, os.dim * sizeof(float));
        uint64_t r = 5;
        for (int t = 0; t < 600; t++) {
            union {
                int32_t i[4];
                float f[4];
            } act;
            for (int i = 0; i < 4; i++) {
                uint64_t x = lcg(&r);
                if (as.discrete)
                    act.i[i] = (int32_t)(x % (uint64_t)as.n);
                else
                    act.f[i] = (float)((double)x / (double)(1ull << 31) * 4.0 - 2.0);
            }
            relay_vecenv_step(a, &act, oa, ra, ta, ua, NULL);
            relay_vecenv_step(b, &act, ob, rb, tb, ub, NULL);
            relay_vecenv_step(c, &act, oc, rc, tc, uc, NULL);
            assert_memory_equal(oa, ob, bytes);
            assert_memory_equal(ra, rb, sizeof ra);
        }
        assert_memory_not_equal(oa, oc, bytes);
        relay_vecenv_free(a);
        relay_vecenv_free(b);
        relay_vecenv_free(c);
    }
}

static void invalid_and_clipped_actions(void **unused)
{
    /* CartPole: action 5 counts as invalid and acts like 1 (clamped), -3 like 0. */
    relay_vecenv *v, *w;
    const relay_env_def *cp = relay_env_find("CartPole-v1");
    assert_ok(relay_vecenv_new(cp, 2, 1, &v));
    assert_ok(relay_vecenv_new(cp, 2, 1, &w));
    float o1[8], o2[8], r[2];
    bool t[2], u[2];
    relay_vecenv_reset(v, o1);
    relay_vecenv_reset(w, o2);
    int32_t bad[2] = {5, -3}, good[2] = {1, 0};
    relay_vecenv_step(v, bad, o1, r, t, u, NULL);
    relay_vecenv_step(w, good, o2, r, t, u, NULL);
    assert_memory_equal(o1, o2, sizeof o1);
    assert_int_equal(relay_vecenv_invalid_actions(v), 2);
    assert_int_equal(relay_vecenv_invalid_actions(w), 0);
    relay_vecenv_free(v);
    relay_vecenv_free(w);

    /* MountainCar (generic path): 7 clamps to 2. */
    const relay_env_def *mc = relay_env_find("MountainCar-v0");
    assert_ok(relay_vecenv_new(mc, 1, 1, &v));
    assert_ok(relay_vecenv_new(mc, 1, 1, &w));
    relay_vecenv_reset(v, o1);
    relay_vecenv_reset(w, o2);
    int32_t a7 = 7, a2 = 2;
    relay_vecenv_step(v, &a7, o1, r, t, u, NULL);
    relay_vecenv_step(w, &a2, o2, r, t, u, NULL);
    assert_memory_equal(o1, o2, 2 * sizeof(float));
    assert_int_equal(relay_vecenv_invalid_actions(v), 1);
    relay_vecenv_free(v);
    relay_vecenv_free(w);

    /* Pendulum: torque 10 is clipped to 2 (not invalid); NaN is invalid and becomes 0. */
    const relay_env_def *pd = relay_env_find("Pendulum-v1");
    relay_vecenv *x;
    assert_ok(relay_vecenv_new(pd, 1, 1, &v));
    assert_ok(relay_vecenv_new(pd, 1, 1, &w));
    assert_ok(relay_vecenv_new(pd, 1, 1, &x));
    float o3[3], r1, r2, r3;
    relay_vecenv_reset(v, o1);
    relay_vecenv_reset(w, o2);
    relay_vecenv_reset(x, o3);
    float big = 10.0f, two = 2.0f, nan = NAN, zero = 0.0f;
    relay_vecenv_step(v, &big, o1, &r1, t, u, NULL);
    relay_vecenv_step(w, &two, o2, &r2, t, u, NULL);
    assert_memory_equal(o1, o2, 3 * sizeof(float));
    assert_float_equal(r1, r2, 0.0);
    assert_int_equal(relay_vecenv_invalid_actions(v), 0);
    relay_vecenv_step(v, &nan, o1, &r1, t, u, NULL);
    relay_vecenv_step(w, &zero, o2, &r2, t, u, NULL);
    relay_vecenv_step(x, &two, o3, &r3, t, u, NULL);
    assert_memory_equal(o1, o2, 3 * sizeof(float));
    assert_memory_not_equal(o1, o3, 3 * sizeof(float)); /* zero torque differs from 2 */
    assert_int_equal(relay_vecenv_invalid_actions(v), 1);
    relay_vecenv_free(v);
    relay_vecenv_free(w);
    relay_vecenv_free(x);
}

static void step_before_reset_starts_episodes(void **unused)
{
    const relay_env_def *cp = relay_env_find("Acrobot-v1");
    relay_vecenv *v, *w;
    assert_ok(relay_vecenv_new(cp, 2, 9, &v));
    assert_ok(relay_vecenv_new(cp, 2, 9, &w));
    float o1[12], o2[12], r[2];
    bool t[2], u[2];
    int32_t a[2] = {0, 2};
    relay_vecenv_step(v, a, o1, r, t, u, NULL); /* no reset first */
    relay_vecenv_reset(w, o2);
    relay_vecenv_step(w, a, o2, r, t, u, NULL);
    assert_memory_equal(o1, o2, sizeof o1);
    /* NULL buffers are refused without crashing. */
    relay_vecenv_step(v, NULL, o1, r, t, u, NULL);
    relay_vecenv_step(NULL, a, o1, r, t, u, NULL);
    relay_vecenv_reset(v, NULL);
    relay_vecenv_free(v);
    relay_vecenv_free(w);
    relay_vecenv_free(NULL);
    assert_int_equal(relay_vecenv_num(NULL), 0);
}

static void dummy_spaces(relay_space *o, relay_space *a)
{
    memset(o, 0, sizeof *o);
    memset(a, 0, sizeof *a);
    o->dim = 3;
    o->low[0] = o->low[1] = o->low[2] = -1;
    o->high[0] = o->high[1] = o->high[2] = 1;
    a->discrete = true;
    a->n = 2;
    a->dim = 1;
}

static void zero_dim_spaces(relay_space *o, relay_space *a)
{
    dummy_spaces(o, a);
    o->dim = 0;
}

static void huge_dim_spaces(relay_space *o, relay_space *a)
{
    dummy_spaces(o, a);
    a->discrete = false;
    a->dim = RELAY_ENV_MAX_DIM + 1;
}

static void bad_bounds_spaces(relay_space *o, relay_space *a)
{
    dummy_spaces(o, a);
    o->low[1] = 2;
}

static void no_actions_spaces(relay_space *o, relay_space *a)
{
    dummy_spaces(o, a);
    a->n = 0;
}

/* fill_actions writes a deterministic action pattern for step k of every env. */
static void fill_actions(const relay_space *as, uint32_t n, uint32_t k, int32_t *ai, float *af)
{
    for (uint32_t i = 0; i < n; i++) {
        if (as->discrete)
            ai[i] = (int32_t)((i * 7u + k * 3u + (k / 5u)) % (uint32_t)as->n);
        else
            for (uint32_t d = 0; d < as->dim; d++)
                af[i * as->dim + d] = as->low[d] + (as->high[d] - as->low[d]) *
                                                       (float)((i + 3u * k + d) % 11u) / 10.0f;
    }
}

/* A snapshot taken mid-run restores into a fresh vecenv that then steps bit-identically. */
static void snapshot_restores_exactly(void **unused)
{
    enum { N = 5, K = 700 };
    for (size_t b = 0; relay_env_builtin(b); b++) {
        const relay_env_def *def = relay_env_builtin(b);
        relay_space sp[2];
        def->spaces(&sp[0], &sp[1]);
        uint32_t od = sp[0].dim;
        relay_vecenv *v = NULL, *w = NULL;
        assert_ok(relay_vecenv_new(def, N, 77, &v));
        assert_ok(relay_vecenv_new(def, N, 1234, &w)); /* other seed: restore replaces it */
        float obs[N * 8], obs2[N * 8], fo[N * 8], fo2[N * 8], r[N], r2[N], af[N * 4];
        int32_t ai[N];
        bool te[N], tr[N], te2[N], tr2[N];
        const void *act = sp[1].discrete ? (const void *)ai : (const void *)af;
        relay_vecenv_reset(v, obs);
        for (uint32_t k = 0; k < K / 2; k++) {
            fill_actions(&sp[1], N, k, ai, af);
            relay_vecenv_step(v, act, obs, r, te, tr, fo);
        }
        size_t len = rly_vecenv_snapshot_size(v);
        assert_true(len > 0);
        uint8_t *snap = malloc(len);
        assert_non_null(snap);
        assert_ok(rly_vecenv_save(v, snap, len));
        assert_err(rly_vecenv_restore(w, snap, len - 1), RELAY_ETRUNCATED);
        assert_ok(rly_vecenv_restore(w, snap, len));
        for (uint32_t k = K / 2; k < K; k++) {
            fill_actions(&sp[1], N, k, ai, af);
            relay_vecenv_step(v, act, obs, r, te, tr, fo);
            relay_vecenv_step(w, act, obs2, r2, te2, tr2, fo2);
            assert_memory_equal(obs, obs2, N * od * sizeof(float));
            assert_memory_equal(r, r2, sizeof r);
            assert_memory_equal(te, te2, sizeof te);
            assert_memory_equal(tr, tr2, sizeof tr);
        }
        /* a snapshot of another env or another copy count is refused */
        relay_vecenv *o = NULL;
        assert_ok(relay_vecenv_new(def, N + 1, 77, &o));
        assert_err(rly_vecenv_restore(o, snap, len), RELAY_ESHAPE);
        relay_vecenv_free(o);
        const relay_env_def *other =
            relay_env_builtin(b + 1) ? relay_env_builtin(b + 1) : relay_env_builtin(0);
        assert_ok(relay_vecenv_new(other, N, 77, &o));
        assert_int_not_equal(rly_vecenv_restore(o, snap, len), RELAY_OK);
        relay_vecenv_free(o);
        snap[0] ^= 1;
        assert_err(rly_vecenv_restore(w, snap, len), RELAY_EFORMAT);
        free(snap);
        relay_vecenv_free(v);
        relay_vecenv_free(w);
    }
    /* an env without RELAY_ENV_PLAIN_STATE (or of ABI 1) cannot be saved */
    relay_env_def d = *relay_env_find("Pendulum-v1");
    d.flags = 0;
    relay_vecenv *v = NULL;
    assert_ok(relay_vecenv_new(&d, 2, 1, &v));
    assert_int_equal(rly_vecenv_snapshot_size(v), 0);
    uint8_t tmp[8];
    assert_err(rly_vecenv_save(v, tmp, sizeof tmp), RELAY_EUNSUPPORTED);
    relay_vecenv_free(v);
    d = *relay_env_find("Pendulum-v1");
    d.abi_version = 1;
    assert_false(rly_env_plain_state(&d));
    assert_ok(relay_vecenv_new(&d, 2, 1, &v)); /* ABI 1 still loads */
    relay_vecenv_free(v);
}

static void bad_definitions_are_refused(void **unused)
{
    relay_vecenv *v = (relay_vecenv *)&v;
    relay_env_def d = *relay_env_find("CartPole-v1");
    assert_err(relay_vecenv_new(NULL, 1, 0, &v), RELAY_EINVAL);
    assert_null(v);
    assert_err(relay_vecenv_new(&d, 0, 0, &v), RELAY_EINVAL);
    assert_err(relay_vecenv_new(&d, (1u << 24) + 1, 0, &v), RELAY_ETOOBIG);
    assert_err(relay_vecenv_new(&d, 1, 0, NULL), RELAY_EINVAL);
    d.abi_version = 99;
    assert_err(relay_vecenv_new(&d, 1, 0, &v), RELAY_EVERSION);
    d = *relay_env_find("CartPole-v1");
    d.step = NULL;
    assert_err(relay_vecenv_new(&d, 1, 0, &v), RELAY_EINVAL);
    d = *relay_env_find("CartPole-v1");
    d.state_size = 0;
    assert_err(relay_vecenv_new(&d, 1, 0, &v), RELAY_EINVAL);
    d = *relay_env_find("CartPole-v1");
    d.max_episode_steps = -1;
    assert_err(relay_vecenv_new(&d, 1, 0, &v), RELAY_EINVAL);
    void (*bad[])(relay_space *, relay_space *) = {zero_dim_spaces, huge_dim_spaces,
                                                   bad_bounds_spaces, no_actions_spaces};
    for (size_t i = 0; i < 4; i++) {
        d = *relay_env_find("CartPole-v1");
        d.spaces = bad[i];
        assert_err(relay_vecenv_new(&d, 1, 0, &v), RELAY_EINVAL);
    }
    d.spaces = dummy_spaces; /* sane spaces pass */
    assert_ok(relay_vecenv_new(&d, 1, 0, &v));
    relay_vecenv_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cartpole_truncates_at_500),
        cmocka_unit_test(time_limits_of_every_builtin),
        cmocka_unit_test(autoreset_and_final_obs),
        cmocka_unit_test(cartpole_fast_path_equals_generic),
        cmocka_unit_test(seeds_are_deterministic),
        cmocka_unit_test(invalid_and_clipped_actions),
        cmocka_unit_test(step_before_reset_starts_episodes),
        cmocka_unit_test(bad_definitions_are_refused),
        cmocka_unit_test(snapshot_restores_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
