/* Pendulum-v1 with Gymnasium's dynamics (g = 10, float64 state, torque clipped to [-2, 2]). */
#include <math.h>

#include "env/builtin.h"
#include "env/rng.h"

#define PEN_PI 3.14159265358979323846
#define PEN_MAX_SPEED 8.0
#define PEN_MAX_TORQUE 2.0
#define PEN_DT 0.05
#define PEN_G 10.0
#define PEN_M 1.0
#define PEN_L 1.0

static void pendulum_spaces(relay_space *obs, relay_space *act)
{
    obs->discrete = false;
    obs->n = 0;
    obs->dim = 3;
    obs->low[0] = -1.0f;
    obs->high[0] = 1.0f;
    obs->low[1] = -1.0f;
    obs->high[1] = 1.0f;
    obs->low[2] = (float)-PEN_MAX_SPEED;
    obs->high[2] = (float)PEN_MAX_SPEED;
    act->discrete = false;
    act->n = 0;
    act->dim = 1;
    act->low[0] = (float)-PEN_MAX_TORQUE;
    act->high[0] = (float)PEN_MAX_TORQUE;
}

static void pendulum_observe(const rly_pendulum_state *st, float *obs)
{
    obs[0] = (float)cos(st->th);
    obs[1] = (float)sin(st->th);
    obs[2] = (float)st->thdot;
}

static void pendulum_reset(void *state, uint64_t seed, float *obs)
{
    rly_pendulum_state *st = state;
    st->rng = seed;
    st->th = rly_uniform(&st->rng, -PEN_PI, PEN_PI);
    st->thdot = rly_uniform(&st->rng, -1.0, 1.0);
    pendulum_observe(st, obs);
}

/* pendulum_angle_normalize maps x to [-pi, pi) like Python's ((x + pi) % (2 pi)) - pi. */
static double pendulum_angle_normalize(double x)
{
    double r = fmod(x + PEN_PI, 2.0 * PEN_PI);
    if (r < 0.0)
        r += 2.0 * PEN_PI;
    return r - PEN_PI;
}

static void pendulum_step(void *state, const void *action, float *obs, float *reward,
                          bool *terminated)
{
    rly_pendulum_state *st = state;
    float uf = *(const float *)action;
    /* NaN torque is treated as 0; otherwise clip to the action bounds. */
    double u = isnan(uf) ? 0.0 : fmin(fmax((double)uf, -PEN_MAX_TORQUE), PEN_MAX_TORQUE);
    double an = pendulum_angle_normalize(st->th);
    double cost = an * an + 0.1 * st->thdot * st->thdot + 0.001 * (u * u);
    double newthdot =
        st->thdot +
        (3.0 * PEN_G / (2.0 * PEN_L) * sin(st->th) + 3.0 / (PEN_M * PEN_L * PEN_L) * u) * PEN_DT;
    newthdot = fmin(fmax(newthdot, -PEN_MAX_SPEED), PEN_MAX_SPEED);
    st->th = st->th + newthdot * PEN_DT;
    st->thdot = newthdot;
    pendulum_observe(st, obs);
    *reward = (float)-cost;
    *terminated = false;
}

const relay_env_def rly_env_pendulum = {
    .abi_version = RELAY_ENV_ABI_VERSION,
    .flags = RELAY_ENV_PLAIN_STATE, /* the whole state (RNG included) is in the struct */
    .name = "Pendulum-v1",
    .state_size = sizeof(rly_pendulum_state),
    .max_episode_steps = 200,
    .spaces = pendulum_spaces,
    .reset = pendulum_reset,
    .step = pendulum_step,
};
