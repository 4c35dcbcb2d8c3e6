/* MountainCar-v0 with Gymnasium's dynamics (float64 state, float32 observations). */
#include <math.h>

#include "env/builtin.h"
#include "env/rng.h"

#define MC_MIN_POS -1.2
#define MC_MAX_POS 0.6
#define MC_MAX_SPEED 0.07
#define MC_GOAL_POS 0.5
#define MC_FORCE 0.001
#define MC_GRAVITY 0.0025

static void mountain_car_spaces(relay_space *obs, relay_space *act)
{
    obs->discrete = false;
    obs->n = 0;
    obs->dim = 2;
    obs->low[0] = (float)MC_MIN_POS;
    obs->high[0] = (float)MC_MAX_POS;
    obs->low[1] = (float)-MC_MAX_SPEED;
    obs->high[1] = (float)MC_MAX_SPEED;
    act->discrete = true;
    act->n = 3;
    act->dim = 1;
    act->low[0] = 0.0f;
    act->high[0] = 2.0f;
}

static void mountain_car_reset(void *state, uint64_t seed, float *obs)
{
    rly_mountain_car_state *st = state;
    st->rng = seed;
    st->pos = rly_uniform(&st->rng, -0.6, -0.4);
    st->vel = 0.0;
    obs[0] = (float)st->pos;
    obs[1] = 0.0f;
}

static void mountain_car_step(void *state, const void *action, float *obs, float *reward,
                              bool *terminated)
{
    rly_mountain_car_state *st = state;
    int32_t a = *(const int32_t *)action;
    a = a < 0 ? 0 : (a > 2 ? 2 : a);
    double vel = st->vel + (double)(a - 1) * MC_FORCE + cos(3.0 * st->pos) * (-MC_GRAVITY);
    vel = fmin(fmax(vel, -MC_MAX_SPEED), MC_MAX_SPEED);
    double pos = st->pos + vel;
    pos = fmin(fmax(pos, MC_MIN_POS), MC_MAX_POS);
    if (pos == MC_MIN_POS && vel < 0.0)
        vel = 0.0; /* inelastic collision with the left wall */
    st->pos = pos;
    st->vel = vel;
    obs[0] = (float)pos;
    obs[1] = (float)vel;
    *reward = -1.0f;
    *terminated = pos >= MC_GOAL_POS && vel >= 0.0;
}

const relay_env_def rly_env_mountain_car = {
    .abi_version = RELAY_ENV_ABI_VERSION,
    .flags = RELAY_ENV_PLAIN_STATE, /* the whole state (RNG included) is in the struct */
    .name = "MountainCar-v0",
    .state_size = sizeof(rly_mountain_car_state),
    .max_episode_steps = 200,
    .spaces = mountain_car_spaces,
    .reset = mountain_car_reset,
    .step = mountain_car_step,
};
