/*
 * Test fixture: an environment plug-in that misbehaves on request, for the checks of issue 15
 * item 6. RELAY_TEST_MISBEHAVE selects how: "nan_reward" (a NaN reward at step 5), "inf_obs" (an
 * infinite observation at step 5), "huge_reward" (rewards of 3e38, whose sums overflow), "endless"
 * (never terminates; no time limit). Anything else: a harmless 3-step episode. Observations have
 * 4 values and there are 2 actions, like CartPole, so CartPole-shaped models run on it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "relay/env.h"

typedef struct mis {
    int mode;
    int t;
} mis;

static void spaces(relay_space *obs, relay_space *act)
{
    obs->discrete = false;
    obs->dim = 4;
    for (int i = 0; i < 4; i++) {
        obs->low[i] = -INFINITY;
        obs->high[i] = INFINITY;
    }
    act->discrete = true;
    act->n = 2;
    act->dim = 1;
    act->low[0] = 0.0f;
    act->high[0] = 1.0f;
}

static void reset(void *state, uint64_t seed, float *obs)
{
    (void)seed;
    mis *m = state;
    const char *how = getenv("RELAY_TEST_MISBEHAVE");
    m->mode = !how                          ? 0
              : !strcmp(how, "nan_reward")  ? 1
              : !strcmp(how, "inf_obs")     ? 2
              : !strcmp(how, "huge_reward") ? 3
              : !strcmp(how, "endless")     ? 4
                                            : 0;
    m->t = 0;
    memset(obs, 0, 4 * sizeof(float));
}

static void step(void *state, const void *action, float *obs, float *reward, bool *terminated)
{
    (void)action;
    mis *m = state;
    m->t++;
    memset(obs, 0, 4 * sizeof(float));
    *reward = 1.0f;
    *terminated = m->mode == 0 ? m->t >= 3 : m->mode == 4 ? false : m->t >= 20;
    if (m->mode == 1 && m->t == 5)
        *reward = NAN;
    if (m->mode == 2 && m->t == 5)
        obs[2] = INFINITY;
    if (m->mode == 3)
        *reward = 3e38f;
}

RELAY_API const relay_env_def relay_env_plugin = {
    .abi_version = RELAY_ENV_ABI_VERSION,
    .name = "Misbehave-v0",
    .state_size = sizeof(mis),
    .max_episode_steps = 0,
    .spaces = spaces,
    .reset = reset,
    .step = step,
};
