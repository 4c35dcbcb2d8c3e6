/*
 * Built-in environment dynamics checked against the published Gymnasium equations. Expected values
 * are either worked by hand (exact fractions) or computed by reference code written here in
 * float64 the way Gymnasium computes them; none of it calls the library's step code.
 */
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <string.h>

#include "env/builtin.h"
#include "env/fastmath.h"
#include "relay/env.h"

#define PI 3.14159265358979323846

/* ---- reference models (float64, straight from the Gymnasium source's equations) ---- */

static void ref_cartpole(double s[4], int action)
{
    const double g = 9.8, mc = 1.0, mp = 0.1, len = 0.5, fmag = 10.0, tau = 0.02;
    double tm = mp + mc, pml = mp * len;
    double f = action == 1 ? fmag : -fmag;
    double c = cos(s[2]), sn = sin(s[2]);
    double temp = (f + pml * s[3] * s[3] * sn) / tm;
    double thacc = (g * sn - c * temp) / (len * (4.0 / 3.0 - mp * c * c / tm));
    double xacc = temp - pml * thacc * c / tm;
    double n[4] = {s[0] + tau * s[1], s[1] + tau * xacc, s[2] + tau * s[3], s[3] + tau * thacc};
    memcpy(s, n, sizeof n);
}

/* Acrobot "book" dynamics written as M(q) qdd = rhs, then solved for qdd; RK4 with dt 0.2. */
static void ref_acro_f(const double y[4], double torque, double out[4])
{
    const double g = 9.8;
    double t1 = y[0], t2 = y[1], w1 = y[2], w2 = y[3];
    /* m1 = m2 = l1 = 1, lc1 = lc2 = 0.5, I1 = I2 = 1. */
    double d1 = 0.25 + (1.0 + 0.25 + cos(t2)) + 2.0;
    double d2 = (0.25 + 0.5 * cos(t2)) + 1.0;
    double phi2 = 0.5 * g * sin(t1 + t2); /* cos(x - pi/2) = sin(x) */
    double phi1 = -0.5 * w2 * w2 * sin(t2) - w2 * w1 * sin(t2) + 1.5 * g * sin(t1) + phi2;
    double acc2 =
        (torque + d2 / d1 * phi1 - 0.5 * w1 * w1 * sin(t2) - phi2) / (1.25 - d2 * d2 / d1);
    double acc1 = -(d2 * acc2 + phi1) / d1;
    out[0] = w1;
    out[1] = w2;
    out[2] = acc1;
    out[3] = acc2;
}

static void ref_acrobot(double s[4], int action)
{
    double torque = (double)action - 1.0, k[4][4], y[4];
    const double dt = 0.2, w[4] = {1, 2, 2, 1}, frac[4] = {0, 0.5, 0.5, 1.0};
    for (int stage = 0; stage < 4; stage++) {
        for (int i = 0; i < 4; i++)
            y[i] = s[i] + (stage ? frac[stage] * dt * k[stage - 1][i] : 0.0);
        ref_acro_f(y, torque, k[stage]);
    }
    for (int i = 0; i < 4; i++) {
        double sum = 0;
        for (int stage = 0; stage < 4; stage++)
            sum += w[stage] * k[stage][i];
        s[i] += dt / 6.0 * sum;
    }
    for (int i = 0; i < 2; i++) {
        while (s[i] > PI)
            s[i] -= 2 * PI;
        while (s[i] < -PI)
            s[i] += 2 * PI;
    }
    s[2] = fmax(-4 * PI, fmin(4 * PI, s[2]));
    s[3] = fmax(-9 * PI, fmin(9 * PI, s[3]));
}

static void step_env(const relay_env_def *def, void *st, const void *act, float *obs, float *rew,
                     bool *term)
{
    *rew = NAN;
    *term = true;
    def->step(st, act, obs, rew, term);
}

/* ---- CartPole ---- */

static void cartpole_hand_step_from_rest(void **unused)
{
    rly_cartpole_state st = {0};
    float obs[4], rew;
    bool term;
    int32_t a = 1;
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    /* By hand: temp = 10/1.1 = 100/11; thetaacc = -(100/11) / (0.5 (4/3 - 0.1/1.1)) = -600/41;
       xacc = 100/11 + 0.05 (600/41) / 1.1 = 4400/451; Euler with tau 0.02 from rest. */
    assert_float_equal(obs[0], 0.0, 1e-9);
    assert_float_equal(obs[1], 0.02 * 4400.0 / 451.0, 1e-6);
    assert_float_equal(obs[2], 0.0, 1e-9);
    assert_float_equal(obs[3], 0.02 * -600.0 / 41.0, 1e-6);
    assert_float_equal(rew, 1.0, 0.0);
    assert_false(term);

    memset(&st, 0, sizeof st);
    a = 0; /* pushing left mirrors it */
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_float_equal(obs[1], -0.02 * 4400.0 / 451.0, 1e-6);
    assert_float_equal(obs[3], 0.02 * 600.0 / 41.0, 1e-6);

    /* Second step from there: x moves by tau * x_dot, theta by tau * theta_dot. */
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_float_equal(obs[0], 0.02 * -0.02 * 4400.0 / 451.0, 1e-7);
    assert_float_equal(obs[2], 0.02 * 0.02 * 600.0 / 41.0, 1e-7);
}

static void cartpole_matches_reference_equations(void **unused)
{
    uint64_t r = 12345;
    for (int trial = 0; trial < 2000; trial++) {
        rly_cartpole_state st = {0};
        double ref[4];
        for (int i = 0; i < 4; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            double u = (double)(r >> 11) * 0x1.0p-53 * 2.0 - 1.0;
            double scale[4] = {2.3, 3.0, 0.2, 3.0};
            st.s[i] = (float)(u * scale[i]);
            ref[i] = st.s[i];
        }
        int32_t a = (int32_t)(r >> 63);
        float obs[4], rew;
        bool term;
        step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
        ref_cartpole(ref, a);
        for (int i = 0; i < 4; i++)
            assert_float_equal(obs[i], ref[i], 1e-5);
        bool want = ref[0] < -2.4 || ref[0] > 2.4 || ref[2] < -12 * 2 * PI / 360 ||
                    ref[2] > 12 * 2 * PI / 360;
        /* Skip the rare case where float32 rounding sits exactly on a threshold. */
        if (fabs(fabs(ref[0]) - 2.4) > 1e-5 && fabs(fabs(ref[2]) - 12 * 2 * PI / 360) > 1e-5)
            assert_int_equal(term, want);
    }
}

static void cartpole_termination_thresholds(void **unused)
{
    float obs[4], rew;
    bool term;
    int32_t a = 1;
    /* theta = 0.2, theta_dot = 1: theta' = 0.2 + 0.02 = 0.22 > 12 degrees (0.2094). */
    rly_cartpole_state st = {.s = {0, 0, 0.2f, 1.0f}};
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_float_equal(obs[2], 0.22, 1e-6);
    assert_true(term);
    assert_float_equal(rew, 1.0, 0.0); /* the terminating step still pays 1 */
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_true(term);
    assert_float_equal(rew, 0.0, 0.0); /* stepping past termination pays 0 */

    /* theta' = 0.2 + 0.02 * 0.4 = 0.208 < 0.2094: still alive. */
    st = (rly_cartpole_state){.s = {0, 0, 0.2f, 0.4f}};
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_false(term);
    /* Mirror image on the negative side. */
    a = 0;
    st = (rly_cartpole_state){.s = {0, 0, -0.2f, -1.0f}};
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_true(term);
    st = (rly_cartpole_state){.s = {0, 0, -0.2f, -0.4f}};
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_false(term);

    /* Cart: x' = 2.39 + 0.02 * 1 = 2.41 > 2.4 ends; 2.39 + 0.02 * 0.4 = 2.398 does not. */
    st = (rly_cartpole_state){.s = {2.39f, 1.0f, 0, 0}};
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_float_equal(obs[0], 2.41, 1e-6);
    assert_true(term);
    st = (rly_cartpole_state){.s = {2.39f, 0.4f, 0, 0}};
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_false(term);
    st = (rly_cartpole_state){.s = {-2.39f, -1.0f, 0, 0}};
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_true(term);

    /* A huge angle (far past termination) still steps finitely via libm. */
    st = (rly_cartpole_state){.s = {0, 0, 1.0e6f, 0}};
    step_env(&rly_env_cartpole, &st, &a, obs, &rew, &term);
    assert_true(term);
    assert_true(isfinite(obs[3]));
    assert_float_equal(obs[3],
                       0.02 * (9.8 * sin(1.0e6) - cos(1.0e6) * (-10.0 / 1.1)) /
                           (0.5 * (4.0 / 3.0 - 0.1 * cos(1.0e6) * cos(1.0e6) / 1.1)),
                       1e-4);
}

static void cartpole_reset_distribution_and_seeds(void **unused)
{
    rly_cartpole_state st = {0};
    float obs[4], first[4], lo = 1, hi = -1;
    rly_env_cartpole.reset(&st, 7, first);
    for (uint64_t seed = 0; seed < 2000; seed++) {
        rly_env_cartpole.reset(&st, seed, obs);
        for (int i = 0; i < 4; i++) {
            assert_true(obs[i] >= -0.05f && obs[i] <= 0.05f);
            assert_float_equal(obs[i], st.s[i], 0.0);
            lo = fminf(lo, obs[i]);
            hi = fmaxf(hi, obs[i]);
        }
    }
    assert_true(lo < -0.049f && hi > 0.049f); /* covers the whole interval */
    rly_env_cartpole.reset(&st, 7, obs);
    assert_memory_equal(obs, first, sizeof obs);
    rly_env_cartpole.reset(&st, 8, obs);
    assert_memory_not_equal(obs, first, sizeof obs);
}

/* ---- Acrobot ---- */

static void acrobot_one_step_matches_rk4(void **unused)
{
    const double starts[][4] = {{0.05, -0.03, 0.02, -0.08},
                                {1.0, 2.0, -3.0, 4.0},
                                {3.1, -3.1, 12.0, -27.0},
                                {-2.0, 0.5, 0.0, 0.0}};
    for (size_t t = 0; t < sizeof starts / sizeof starts[0]; t++) {
        for (int32_t a = 0; a < 3; a++) {
            rly_acrobot_state st = {0};
            double ref[4];
            memcpy(st.s, starts[t], sizeof ref);
            memcpy(ref, starts[t], sizeof ref);
            float obs[6], rew;
            bool term;
            step_env(&rly_env_acrobot, &st, &a, obs, &rew, &term);
            ref_acrobot(ref, a);
            for (int i = 0; i < 4; i++)
                assert_float_equal(st.s[i], ref[i], 1e-9);
            assert_float_equal(obs[0], cos(ref[0]), 1e-6);
            assert_float_equal(obs[1], sin(ref[0]), 1e-6);
            assert_float_equal(obs[2], cos(ref[1]), 1e-6);
            assert_float_equal(obs[3], sin(ref[1]), 1e-6);
            assert_float_equal(obs[4], ref[2], 1e-5);
            assert_float_equal(obs[5], ref[3], 1e-5);
            assert_true(ref[0] >= -PI && ref[0] <= PI);
            bool want = -cos(ref[0]) - cos(ref[1] + ref[0]) > 1.0;
            assert_int_equal(term, want);
            assert_float_equal(rew, want ? 0.0 : -1.0, 0.0);
        }
    }
    /* The third start spins fast enough that the velocity bounds (4 pi, 9 pi) apply. */
    rly_acrobot_state st = {.s = {0, 0, 4 * PI, -9 * PI}};
    float obs[6], rew;
    bool term;
    int32_t a = 2;
    step_env(&rly_env_acrobot, &st, &a, obs, &rew, &term);
    assert_true(fabs(st.s[2]) <= 4 * PI && fabs(st.s[3]) <= 9 * PI);
}

static void acrobot_termination_line(void **unused)
{
    float obs[6], rew;
    bool term;
    int32_t a = 1;
    /* Both links straight up: -cos(pi) - cos(pi) = 2 > 1 (stays above after one step). */
    rly_acrobot_state st = {.s = {PI, 0, 0, 0}};
    step_env(&rly_env_acrobot, &st, &a, obs, &rew, &term);
    assert_true(term);
    assert_float_equal(rew, 0.0, 0.0);
    /* Hanging down at rest with no torque: stays down, -1 per step. */
    st = (rly_acrobot_state){.s = {0, 0, 0, 0}};
    step_env(&rly_env_acrobot, &st, &a, obs, &rew, &term);
    assert_false(term);
    assert_float_equal(rew, -1.0, 0.0);
    assert_float_equal(obs[0], 1.0, 0.0);
    assert_float_equal(obs[4], 0.0, 1e-12); /* cos(-pi/2) is 6e-17 in float64 */
    /* Reset: uniform(-0.1, 0.1) on the 4 state variables, observed through cos/sin. */
    for (uint64_t seed = 0; seed < 200; seed++) {
        rly_env_acrobot.reset(&st, seed, obs);
        for (int i = 0; i < 4; i++)
            assert_true(fabs(st.s[i]) <= 0.1);
        assert_float_equal(obs[0], cos(st.s[0]), 1e-7);
        assert_float_equal(obs[3], sin(st.s[1]), 1e-7);
        assert_float_equal(obs[5], st.s[3], 1e-7);
    }
}

/* ---- MountainCar ---- */

static void mountain_car_hand_steps(void **unused)
{
    float obs[2], rew;
    bool term;
    int32_t a = 2;
    rly_mountain_car_state st = {.pos = -0.5, .vel = 0};
    step_env(&rly_env_mountain_car, &st, &a, obs, &rew, &term);
    /* v = 0 + (2 - 1) 0.001 - cos(3 (-0.5)) 0.0025; p = -0.5 + v. */
    double v = 0.001 - cos(-1.5) * 0.0025;
    assert_float_equal(st.vel, v, 1e-15);
    assert_float_equal(st.pos, -0.5 + v, 1e-15);
    assert_float_equal(obs[0], -0.5 + v, 1e-7);
    assert_float_equal(rew, -1.0, 0.0);
    assert_false(term);

    /* Velocity clipped to 0.07. */
    st = (rly_mountain_car_state){.pos = -0.5, .vel = 0.0699};
    step_env(&rly_env_mountain_car, &st, &a, obs, &rew, &term);
    assert_float_equal(st.vel, 0.07, 0.0);

    /* Left wall: position clipped to -1.2 and the velocity zeroed. */
    a = 0;
    st = (rly_mountain_car_state){.pos = -1.19, .vel = -0.05};
    step_env(&rly_env_mountain_car, &st, &a, obs, &rew, &term);
    assert_float_equal(st.pos, -1.2, 0.0);
    assert_float_equal(st.vel, 0.0, 0.0);

    /* Goal: position >= 0.5 with velocity >= 0. */
    a = 2;
    st = (rly_mountain_car_state){.pos = 0.49, .vel = 0.05};
    step_env(&rly_env_mountain_car, &st, &a, obs, &rew, &term);
    assert_true(term);
    assert_float_equal(rew, -1.0, 0.0);
    st = (rly_mountain_car_state){.pos = 0.40, .vel = 0.05};
    step_env(&rly_env_mountain_car, &st, &a, obs, &rew, &term);
    assert_false(term);

    for (uint64_t seed = 0; seed < 200; seed++) {
        rly_env_mountain_car.reset(&st, seed, obs);
        assert_true(st.pos >= -0.6 && st.pos <= -0.4);
        assert_float_equal(st.vel, 0.0, 0.0);
        assert_float_equal(obs[1], 0.0, 0.0);
    }
}

/* ---- Pendulum ---- */

static void pendulum_hand_steps(void **unused)
{
    float obs[3], rew;
    bool term;
    struct {
        double th, thdot;
        float u;
    } cases[] = {{0.3, -0.5, 1.0f}, {7.0, 2.0, 5.0f}, {-4.0, 7.9, -3.0f}, {PI, 0.0, 0.0f}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rly_pendulum_state st = {.th = cases[c].th, .thdot = cases[c].thdot};
        step_env(&rly_env_pendulum, &st, &cases[c].u, obs, &rew, &term);
        double u = fmax(-2.0, fmin(2.0, cases[c].u));
        double an = cases[c].th + PI;
        an = an - 2 * PI * floor(an / (2 * PI)) - PI; /* floor-mod, as Python's % */
        double cost = an * an + 0.1 * cases[c].thdot * cases[c].thdot + 0.001 * u * u;
        double nthd = cases[c].thdot + (3.0 * 10.0 / 2.0 * sin(cases[c].th) + 3.0 * u) * 0.05;
        nthd = fmax(-8.0, fmin(8.0, nthd));
        double nth = cases[c].th + nthd * 0.05;
        assert_float_equal(rew, -cost, 1e-5);
        assert_float_equal(st.thdot, nthd, 1e-12);
        assert_float_equal(st.th, nth, 1e-12);
        assert_float_equal(obs[0], cos(nth), 1e-6);
        assert_float_equal(obs[1], sin(nth), 1e-6);
        assert_float_equal(obs[2], nthd, 1e-6);
        assert_false(term);
    }
    /* th = 7: the cost uses 7 - 2 pi = 0.7168. */
    rly_pendulum_state st = {.th = 7.0, .thdot = 0.0};
    float u = 0;
    step_env(&rly_env_pendulum, &st, &u, obs, &rew, &term);
    assert_float_equal(rew, -(7.0 - 2 * PI) * (7.0 - 2 * PI), 1e-6);
    /* Reset: theta in [-pi, pi], theta_dot in [-1, 1]. */
    for (uint64_t seed = 0; seed < 200; seed++) {
        rly_env_pendulum.reset(&st, seed, obs);
        assert_true(fabs(st.th) <= PI && fabs(st.thdot) <= 1.0);
        assert_float_equal(obs[2], st.thdot, 1e-7);
    }
}

/* ---- spaces, registry, math ---- */

static void spaces_and_limits(void **unused)
{
    relay_space obs, act;
    const relay_env_def *d = relay_env_find("CartPole-v1");
    assert_ptr_equal(d, &rly_env_cartpole);
    d->spaces(&obs, &act);
    assert_int_equal(obs.dim, 4);
    assert_true(act.discrete);
    assert_int_equal(act.n, 2);
    assert_float_equal(obs.high[0], 4.8, 1e-6);
    assert_true(isinf(obs.high[1]) && obs.high[1] > 0 && isinf(obs.low[3]) && obs.low[3] < 0);
    assert_float_equal(obs.high[2], 2 * 12 * 2 * PI / 360, 1e-6);
    assert_float_equal(obs.low[2], -2 * 12 * 2 * PI / 360, 1e-6);
    assert_int_equal(d->max_episode_steps, 500);

    d = relay_env_find("Acrobot-v1");
    d->spaces(&obs, &act);
    assert_int_equal(obs.dim, 6);
    assert_int_equal(act.n, 3);
    assert_float_equal(obs.high[4], 4 * PI, 1e-5);
    assert_float_equal(obs.high[5], 9 * PI, 1e-5);
    assert_int_equal(d->max_episode_steps, 500);

    d = relay_env_find("MountainCar-v0");
    d->spaces(&obs, &act);
    assert_int_equal(obs.dim, 2);
    assert_int_equal(act.n, 3);
    assert_float_equal(obs.low[0], -1.2, 1e-6);
    assert_float_equal(obs.high[0], 0.6, 1e-6);
    assert_float_equal(obs.high[1], 0.07, 1e-7);
    assert_int_equal(d->max_episode_steps, 200);

    d = relay_env_find("Pendulum-v1");
    d->spaces(&obs, &act);
    assert_int_equal(obs.dim, 3);
    assert_false(act.discrete);
    assert_int_equal(act.dim, 1);
    assert_float_equal(act.low[0], -2.0, 0.0);
    assert_float_equal(act.high[0], 2.0, 0.0);
    assert_float_equal(obs.high[2], 8.0, 0.0);
    assert_int_equal(d->max_episode_steps, 200);
}

static void find_and_resolve(void **unused)
{
    const relay_env_def *d = NULL;
    size_t count = 0;
    while (relay_env_builtin(count) != NULL) {
        const relay_env_def *b = relay_env_builtin(count);
        assert_ptr_equal(relay_env_find(b->name), b);
        assert_ok(relay_env_resolve(b->name, &d));
        assert_ptr_equal(d, b);
        assert_int_equal(b->abi_version, RELAY_ENV_ABI_VERSION);
        count++;
    }
    assert_int_equal(count, 4);
    assert_null(relay_env_find("CartPole-v0"));
    assert_null(relay_env_find(NULL));
    assert_err(relay_env_resolve("NoSuchEnv-v9", &d), RELAY_ENOTFOUND);
    assert_null(d);
    assert_err(relay_env_resolve(NULL, &d), RELAY_EINVAL);
    assert_err(relay_env_resolve("CartPole-v1", NULL), RELAY_EINVAL);
    /* Names that look like paths go to the loader. */
    assert_err(relay_env_resolve("./no/such/plugin.so", &d), RELAY_EDLOPEN);
    assert_err(relay_env_resolve("libmissing.so", &d), RELAY_EDLOPEN);
    assert_err(relay_env_load(NULL, &d), RELAY_EINVAL);
    assert_err(relay_env_load("", &d), RELAY_EINVAL);
}

static void episode_seed_convention(void **unused)
{
    assert_true(relay_env_episode_seed(42, 0) == 42);
    assert_true(relay_env_episode_seed(42, 1) == relay_env_episode_seed(42, 1));
    assert_true(relay_env_episode_seed(42, 1) != relay_env_episode_seed(42, 2));
    assert_true(relay_env_episode_seed(42, 1) != relay_env_episode_seed(43, 1));
    assert_true(relay_env_episode_seed(42, 1) != 42);
}

static void fast_sincos_accuracy(void **unused)
{
    double worst = 0;
    for (int i = -200000; i <= 200000; i++) {
        float x = (float)i * (RLY_SINCOS_MAX_ARG / 200000.0f);
        float s, c;
        rly_sincosf(x, &s, &c);
        worst = fmax(worst, fabs(s - sin((double)x)));
        worst = fmax(worst, fabs(c - cos((double)x)));
    }
    assert_true(worst < 3e-7);
    /* Small angles (CartPole's range) keep relative accuracy. */
    for (int i = 1; i < 1000; i++) {
        float x = (float)i * 2.5e-4f, s, c;
        rly_sincosf(x, &s, &c);
        assert_float_equal(s / sin((double)x), 1.0, 3e-7);
        rly_sincosf(-x, &s, &c);
        assert_float_equal(s / sin(-(double)x), 1.0, 3e-7);
    }
    assert_true(rly_sincosf_ok(8000.0f) && !rly_sincosf_ok(9000.0f) && !rly_sincosf_ok(NAN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cartpole_hand_step_from_rest),
        cmocka_unit_test(cartpole_matches_reference_equations),
        cmocka_unit_test(cartpole_termination_thresholds),
        cmocka_unit_test(cartpole_reset_distribution_and_seeds),
        cmocka_unit_test(acrobot_one_step_matches_rk4),
        cmocka_unit_test(acrobot_termination_line),
        cmocka_unit_test(mountain_car_hand_steps),
        cmocka_unit_test(pendulum_hand_steps),
        cmocka_unit_test(spaces_and_limits),
        cmocka_unit_test(find_and_resolve),
        cmocka_unit_test(episode_seed_convention),
        cmocka_unit_test(fast_sincos_accuracy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
