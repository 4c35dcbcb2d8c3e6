/*
 * V-trace: on-policy with rho_bar = c_bar = 1 it equals GAE with the same lambda (advantages and
 * returns); off-policy, importance weights are truncated at rho_bar.
 */
#include <math.h>
#include <string.h>

#include "learn/learn_internal.h"
#include "relay/env.h"
#include "test_util.h"

enum { N = 3, T = 16 };

/* fill acts with p itself (so behaviour = target) on random observations, with episode ends. */
static void fill(relay_rollout *r, relay_policy *p, float logp_shift)
{
    uint64_t x = 7;
    for (uint32_t t = 0; t < T; t++) {
        float obs[N * 4];
        for (int i = 0; i < N * 4; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            obs[i] = (float)((double)(x >> 40) / (double)(1 << 24) - 0.5);
        }
        int32_t act[N];
        float logp[N], val[N], rew[N], fin[N];
        bool term[N], trunc[N];
        assert_ok(relay_policy_act(p, obs, N, NULL, false, act, NULL, logp, val));
        for (int e = 0; e < N; e++) {
            logp[e] += logp_shift;
            rew[e] = 1.0f + 0.1f * (float)e;
            term[e] = t == 5 && e == 1;
            trunc[e] = t == 9 && e == 2;
            fin[e] = 3.0f;
        }
        assert_ok(relay_rollout_add(r, obs, act, NULL, logp, val, rew, term, trunc, fin));
    }
}

static void on_policy_equals_gae(void **state)
{
    (void)state;
    relay_space os = {.dim = 4}, as = {.discrete = true, .n = 2, .dim = 1};
    relay_policy_spec spec;
    assert_ok(relay_policy_spec_from_spaces(&spec, &os, &as));
    relay_policy *p;
    assert_ok(relay_policy_new(&spec, 64, 1, &p));
    relay_rollout *a, *b;
    assert_ok(relay_rollout_new(&spec, N, T, &a));
    assert_ok(relay_rollout_new(&spec, N, T, &b));
    fill(a, p, 0.0f);
    relay_policy_free(p);
    assert_ok(relay_policy_new(&spec, 64, 1, &p)); /* same seed: same weights */
    fill(b, p, 0.0f);
    float last[N] = {0.5f, -0.5f, 2.0f};
    for (float lambda = 0.5f; lambda <= 1.0f; lambda += 0.5f) {
        assert_ok(relay_rollout_finish(a, last, 0.99f, lambda));
        assert_ok(rly_vtrace(b, p, last, 0.99f, lambda, 1.0f, 1.0f));
        const float *ga = relay_rollout_advantages(a), *va = relay_rollout_advantages(b);
        const float *gr = relay_rollout_returns(a), *vr = relay_rollout_returns(b);
        for (int i = 0; i < N * T; i++) {
            /* returns: vs equals the lambda-return; advantages use one-step vs targets, so
               they equal GAE only at lambda = 1 */
            assert_true(fabsf(gr[i] - vr[i]) < 1e-3f);
            if (lambda == 1.0f)
                assert_true(fabsf(ga[i] - va[i]) < 1e-3f);
        }
    }
    relay_rollout_free(a);
    relay_rollout_free(b);
    relay_policy_free(p);
}

static void stale_data_is_truncated(void **state)
{
    (void)state;
    relay_space os = {.dim = 4}, as = {.discrete = true, .n = 2, .dim = 1};
    relay_policy_spec spec;
    assert_ok(relay_policy_spec_from_spaces(&spec, &os, &as));
    relay_policy *p;
    assert_ok(relay_policy_new(&spec, 64, 1, &p));
    relay_rollout *a, *b;
    assert_ok(relay_rollout_new(&spec, N, T, &a));
    assert_ok(relay_rollout_new(&spec, N, T, &b));
    relay_policy *q;
    assert_ok(relay_policy_new(&spec, 64, 1, &q));
    fill(a, q, 0.0f);
    relay_policy_free(q);
    assert_ok(relay_policy_new(&spec, 64, 1, &q));
    fill(b, q, -2.0f); /* behaviour was much less likely: pi/mu = e^2, truncated at rho_bar */
    relay_policy_free(q);
    float last[N] = {0, 0, 0};
    assert_ok(rly_vtrace(a, p, last, 0.99f, 1.0f, 1.0f, 1.0f));
    assert_ok(rly_vtrace(b, p, last, 0.99f, 1.0f, 1.0f, 1.0f));
    for (int i = 0; i < N * T; i++) {
        assert_true(fabsf(relay_rollout_advantages(a)[i] - relay_rollout_advantages(b)[i]) < 1e-4f);
        assert_true(isfinite(relay_rollout_returns(b)[i]));
    }
    relay_rollout_free(a);
    relay_rollout_free(b);
    relay_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(on_policy_equals_gae),
        cmocka_unit_test(stale_data_is_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
