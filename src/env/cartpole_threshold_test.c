/*
 * Regression test (issue 15, item 8): CartPole terminates exactly where Gymnasium does. Gymnasium
 * compares the float32 state with the double thresholds 2.4 and 0.20943951023931953; Relay's
 * float32 comparison must give the same answer for every float near them, including a state that
 * lands exactly on the float32 threshold (2.4f > 2.4, so Gymnasium terminates there).
 */
#include <math.h>

#include "env/builtin.h"
#include "test_util.h"

static bool gymnasium_terminates(float x, float theta)
{
    double xd = x, td = theta;
    return xd < -2.4 || xd > 2.4 || td < -0.20943951023931953 || td > 0.20943951023931953;
}

/* sweep checks 2000 consecutive floats on each side of v for the x and the theta test. */
static void sweep(float v)
{
    float lo = v, hi = v;
    for (int i = 0; i < 1000; i++) {
        lo = nextafterf(lo, -INFINITY);
        hi = nextafterf(hi, INFINITY);
    }
    for (float f = lo; f <= hi; f = nextafterf(f, INFINITY)) {
        if (rly_cartpole_out_of_bounds(f, 0.0f) != gymnasium_terminates(f, 0.0f))
            fail_msg("x = %.9g: relay and Gymnasium disagree", (double)f);
        if (rly_cartpole_out_of_bounds(0.0f, f) != gymnasium_terminates(0.0f, f))
            fail_msg("theta = %.9g: relay and Gymnasium disagree", (double)f);
    }
}

static void test_thresholds_match_gymnasium(void **state)
{
    (void)state;
    sweep(2.4f);
    sweep(-2.4f);
    sweep(0.20943951023931953f);
    sweep(-0.20943951023931953f);
    /* The case of the issue: exactly on the float32 threshold terminates. */
    assert_true(rly_cartpole_out_of_bounds(2.4f, 0.0f));
    assert_true(rly_cartpole_out_of_bounds(0.0f, -0.20943951023931953f));
    assert_false(rly_cartpole_out_of_bounds(nextafterf(2.4f, 0.0f), 0.0f));
}

/* A state one Euler step away from landing on x = 2.4f: the step terminates. */
static void test_step_onto_threshold(void **state)
{
    (void)state;
    /* x_dot is chosen so x + 0.02f * x_dot rounds to exactly 2.4f with theta at rest. */
    float x = 2.3f, xd = (2.4f - 2.3f) / 0.02f, th = 0.0f, thd = 0.0f;
    float nx = x + RLY_CP_TAU * xd;
    if (nx != 2.4f) {
        /* Search nearby velocities for one that lands exactly on the threshold. */
        for (int i = 0; i < 1000 && nx != 2.4f; i++) {
            xd = nextafterf(xd, nx < 2.4f ? INFINITY : -INFINITY);
            nx = x + RLY_CP_TAU * xd;
        }
    }
    assert_true(nx == 2.4f);
    assert_true(rly_cartpole_advance(&x, &xd, &th, &thd, RLY_CP_FORCE));
    assert_true(x == 2.4f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thresholds_match_gymnasium),
        cmocka_unit_test(test_step_onto_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
