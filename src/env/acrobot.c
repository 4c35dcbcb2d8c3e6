/* Acrobot-v1 with Gymnasium's "book" dynamics, integrated by one RK4 step of dt = 0.2 (float64). */
#include <math.h>

#include "env/builtin.h"
#include "env/rng.h"

#define ACRO_DT 0.2
#define ACRO_PI 3.14159265358979323846
#define ACRO_MAX_VEL1 (4.0 * ACRO_PI)
#define ACRO_MAX_VEL2 (9.0 * ACRO_PI)

static void acrobot_spaces(relay_space *obs, relay_space *act)
{
    const float high[6] = {1.0f, 1.0f, 1.0f, 1.0f, (float)ACRO_MAX_VEL1, (float)ACRO_MAX_VEL2};
    obs->discrete = false;
    obs->n = 0;
    obs->dim = 6;
    for (int i = 0; i < 6; i++) {
        obs->low[i] = -high[i];
        obs->high[i] = high[i];
    }
    act->discrete = true;
    act->n = 3;
    act->dim = 1;
    act->low[0] = 0.0f;
    act->high[0] = 2.0f;
}

static void acrobot_observe(const rly_acrobot_state *st, float *obs)
{
    obs[0] = (float)cos(st->s[0]);
    obs[1] = (float)sin(st->s[0]);
    obs[2] = (float)cos(st->s[1]);
    obs[3] = (float)sin(st->s[1]);
    obs[4] = (float)st->s[2];
    obs[5] = (float)st->s[3];
}

static void acrobot_reset(void *state, uint64_t seed, float *obs)
{
    rly_acrobot_state *st = state;
    st->rng = seed;
    /* Gymnasium draws float64 and stores the state as float32 until the first step. */
    for (int i = 0; i < 4; i++)
        st->s[i] = (float)rly_uniform(&st->rng, -0.1, 0.1);
    acrobot_observe(st, obs);
}

/* acrobot_derivs writes d/dt of (theta1, theta2, dtheta1, dtheta2) under torque a. */
static void acrobot_derivs(const double y[4], double a, double dy[4])
{
    const double m1 = 1.0, m2 = 1.0, l1 = 1.0, lc1 = 0.5, lc2 = 0.5, i1 = 1.0, i2 = 1.0, g = 9.8;
    double th1 = y[0], th2 = y[1], dth1 = y[2], dth2 = y[3];
    double d1 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2.0 * l1 * lc2 * cos(th2)) + i1 + i2;
    double d2 = m2 * (lc2 * lc2 + l1 * lc2 * cos(th2)) + i2;
    double phi2 = m2 * lc2 * g * cos(th1 + th2 - ACRO_PI / 2.0);
    double phi1 = -m2 * l1 * lc2 * dth2 * dth2 * sin(th2) -
                  2.0 * m2 * l1 * lc2 * dth2 * dth1 * sin(th2) +
                  (m1 * lc1 + m2 * l1) * g * cos(th1 - ACRO_PI / 2.0) + phi2;
    double ddth2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dth1 * dth1 * sin(th2) - phi2) /
                   (m2 * lc2 * lc2 + i2 - d2 * d2 / d1);
    double ddth1 = -(d2 * ddth2 + phi1) / d1;
    dy[0] = dth1;
    dy[1] = dth2;
    dy[2] = ddth1;
    dy[3] = ddth2;
}

static double acrobot_wrap(double x)
{
    /* Same loop as Gymnasium's wrap(); velocities are bounded so |x| stays small, but reduce
       a (never expected) large argument first so the loop stays short. */
    if (fabs(x) > 64.0 * ACRO_PI)
        x = fmod(x, 2.0 * ACRO_PI);
    while (x > ACRO_PI)
        x -= 2.0 * ACRO_PI;
    while (x < -ACRO_PI)
        x += 2.0 * ACRO_PI;
    return x;
}

static double acrobot_bound(double x, double m)
{
    return fmin(fmax(x, -m), m);
}

static void acrobot_step(void *state, const void *action, float *obs, float *reward,
                         bool *terminated)
{
    rly_acrobot_state *st = state;
    static const double torques[3] = {-1.0, 0.0, 1.0};
    int32_t a = *(const int32_t *)action;
    double torque = torques[a < 0 ? 0 : (a > 2 ? 2 : a)];
    double k1[4], k2[4], k3[4], k4[4], y[4];
    const double h = ACRO_DT, h2 = ACRO_DT / 2.0;
    acrobot_derivs(st->s, torque, k1);
    for (int i = 0; i < 4; i++)
        y[i] = st->s[i] + h2 * k1[i];
    acrobot_derivs(y, torque, k2);
    for (int i = 0; i < 4; i++)
        y[i] = st->s[i] + h2 * k2[i];
    acrobot_derivs(y, torque, k3);
    for (int i = 0; i < 4; i++)
        y[i] = st->s[i] + h * k3[i];
    acrobot_derivs(y, torque, k4);
    double ns[4];
    for (int i = 0; i < 4; i++)
        ns[i] = st->s[i] + h / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]);
    st->s[0] = isfinite(ns[0]) ? acrobot_wrap(ns[0]) : ns[0];
    st->s[1] = isfinite(ns[1]) ? acrobot_wrap(ns[1]) : ns[1];
    st->s[2] = acrobot_bound(ns[2], ACRO_MAX_VEL1);
    st->s[3] = acrobot_bound(ns[3], ACRO_MAX_VEL2);
    bool term = -cos(st->s[0]) - cos(st->s[1] + st->s[0]) > 1.0;
    acrobot_observe(st, obs);
    *reward = term ? 0.0f : -1.0f;
    *terminated = term;
}

const relay_env_def rly_env_acrobot = {
    .abi_version = RELAY_ENV_ABI_VERSION,
    .flags = RELAY_ENV_PLAIN_STATE, /* the whole state (RNG included) is in the struct */
    .name = "Acrobot-v1",
    .state_size = sizeof(rly_acrobot_state),
    .max_episode_steps = 500,
    .spaces = acrobot_spaces,
    .reset = acrobot_reset,
    .step = acrobot_step,
};
