/* CartPole-v1 with Gymnasium's equations (Euler integration), computed in float32. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "env/builtin.h"
#include "env/rng.h"

static void cartpole_spaces(relay_space *obs, relay_space *act)
{
    /* Unbounded velocities are +-inf, as relay_space documents (Gymnasium's Box stores float32
       max there; both mean "no bound"). */
    const float high[4] = {RLY_CP_X_LIMIT * 2.0f, INFINITY, RLY_CP_THETA_LIMIT * 2.0f, INFINITY};
    obs->discrete = false;
    obs->n = 0;
    obs->dim = 4;
    for (int i = 0; i < 4; i++) {
        obs->low[i] = -high[i];
        obs->high[i] = high[i];
    }
    act->discrete = true;
    act->n = 2;
    act->dim = 1;
    act->low[0] = 0.0f;
    act->high[0] = 1.0f;
}

void rly_cartpole_reset_values(uint64_t seed, uint64_t *rng, float s[4])
{
    *rng = seed;
    for (int i = 0; i < 4; i++)
        s[i] = (float)rly_uniform(rng, -0.05, 0.05);
}

static void cartpole_reset(void *state, uint64_t seed, float *obs)
{
    rly_cartpole_state *st = state;
    rly_cartpole_reset_values(seed, &st->rng, st->s);
    st->done = false;
    memcpy(obs, st->s, sizeof st->s);
}

static void cartpole_step(void *state, const void *action, float *obs, float *reward,
                          bool *terminated)
{
    rly_cartpole_state *st = state;
    float force = *(const int32_t *)action == 1 ? RLY_CP_FORCE : -RLY_CP_FORCE;
    bool term;
    if (rly_sincosf_ok(st->s[2])) {
        term = rly_cartpole_advance(&st->s[0], &st->s[1], &st->s[2], &st->s[3], force);
    } else {
        /* Only reachable by stepping far past termination: use libm for huge angles. */
        float x = st->s[0], xd = st->s[1], th = st->s[2], td = st->s[3];
        float s = sinf(th), c = cosf(th);
        float temp = (force + RLY_CP_POLEMASS_LENGTH * (td * td) * s) / RLY_CP_TOTAL_MASS;
        float thacc =
            (RLY_CP_GRAVITY * s - c * temp) /
            (RLY_CP_LENGTH * (4.0f / 3.0f - RLY_CP_MASSPOLE * (c * c) / RLY_CP_TOTAL_MASS));
        float xacc = temp - RLY_CP_POLEMASS_LENGTH * thacc * c / RLY_CP_TOTAL_MASS;
        st->s[0] = x + RLY_CP_TAU * xd;
        st->s[1] = xd + RLY_CP_TAU * xacc;
        st->s[2] = th + RLY_CP_TAU * td;
        st->s[3] = td + RLY_CP_TAU * thacc;
        term = true;
    }
    memcpy(obs, st->s, sizeof st->s);
    /* Gymnasium pays 1 for every step up to and including the terminating one, 0 after it. */
    *reward = st->done ? 0.0f : 1.0f;
    st->done = st->done || term;
    *terminated = term;
}

const relay_env_def rly_env_cartpole = {
    .abi_version = RELAY_ENV_ABI_VERSION,
    .flags = RELAY_ENV_PLAIN_STATE, /* the whole state (RNG included) is in the struct */
    .name = "CartPole-v1",
    .state_size = sizeof(rly_cartpole_state),
    .max_episode_steps = RLY_CP_MAX_STEPS,
    .spaces = cartpole_spaces,
    .reset = cartpole_reset,
    .step = cartpole_step,
};
