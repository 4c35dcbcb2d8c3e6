/* Tests for action selection: masks give zero probability, log-probabilities match the formulas. */
#include <math.h>

#include "actor/select.h"
#include "test_util.h"

static void masked_actions_are_never_sampled(void **state)
{
    rly_rng rng;
    rly_rng_seed(&rng, 1);
    const float logits[4] = {5.0f, 0.0f, 9.0f, 1.0f};
    const uint8_t mask[4] = {1, 1, 0, 1};
    int counts[4] = {0};
    for (int i = 0; i < 20000; i++) {
        int32_t a;
        float lp;
        assert_ok(rly_select_categorical(logits, mask, 4, false, &rng, &a, &lp));
        counts[a]++;
        /* log p under the masked softmax over {0, 1, 3} */
        double z = exp(5.0) + exp(0.0) + exp(1.0);
        assert_float_equal(lp, (float)(logits[a] - log(z)), 1e-5);
    }
    assert_int_equal(counts[2], 0);
    /* Empirical frequency of action 0 close to its probability e^5 / z. */
    double p0 = exp(5.0) / (exp(5.0) + 1.0 + exp(1.0));
    assert_true(fabs(counts[0] / 20000.0 - p0) < 0.01);
}

static void argmax_respects_mask(void **state)
{
    const float logits[3] = {1.0f, 3.0f, 2.0f};
    const uint8_t mask[3] = {1, 0, 1};
    int32_t a;
    float lp;
    assert_ok(rly_select_categorical(logits, mask, 3, true, NULL, &a, &lp));
    assert_int_equal(a, 2);
    assert_ok(rly_select_categorical(logits, NULL, 3, true, NULL, &a, &lp));
    assert_int_equal(a, 1);
    const uint8_t none[3] = {0, 0, 0};
    assert_err(rly_select_categorical(logits, none, 3, false, NULL, &a, &lp), RELAY_EINVAL);
}

static void gaussian_logp_and_clipping(void **state)
{
    rly_rng rng;
    rly_rng_seed(&rng, 7);
    const float mean[2] = {0.5f, -1.0f}, log_std[2] = {-0.5f, 0.2f};
    const float low[2] = {-1.0f, -1.0f}, high[2] = {1.0f, 1.0f};
    double sum0 = 0;
    for (int i = 0; i < 20000; i++) {
        float a[2], env[2], lp;
        rly_select_gaussian(mean, log_std, 2, false, &rng, low, high, a, env, &lp);
        double want = 0;
        for (int k = 0; k < 2; k++) {
            double sd = exp(log_std[k]);
            double z = (a[k] - mean[k]) / sd;
            want += -0.5 * z * z - log(sd) - 0.5 * log(2 * M_PI);
            assert_true(env[k] >= -1.0f && env[k] <= 1.0f);
            if (a[k] >= -1.0f && a[k] <= 1.0f)
                assert_float_equal(env[k], a[k], 0);
        }
        assert_float_equal(lp, (float)want, 1e-4);
        sum0 += a[0];
    }
    assert_true(fabs(sum0 / 20000 - 0.5) < 0.02);
    float a[2], env[2], lp;
    rly_select_gaussian(mean, log_std, 2, true, &rng, low, high, a, env, &lp);
    assert_float_equal(a[0], 0.5f, 0);
    assert_float_equal(env[1], -1.0f, 0);
}

static void rng_is_reproducible(void **state)
{
    rly_rng a, b;
    rly_rng_seed(&a, 42);
    rly_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++)
        assert_true(rly_rng_next(&a) == rly_rng_next(&b));
    float u = rly_rng_uniform(&a);
    assert_true(u >= 0.0f && u < 1.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(masked_actions_are_never_sampled),
        cmocka_unit_test(argmax_respects_mask),
        cmocka_unit_test(gaussian_logp_and_clipping),
        cmocka_unit_test(rng_is_reproducible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
