/* Test fixture: a plug-in built for a future, incompatible environment ABI. */
#include "relay/env.h"

static void spaces(relay_space *obs, relay_space *act)
{
    obs->dim = 1;
    act->discrete = true;
    act->n = 2;
    act->dim = 1;
}

static void reset(void *state, uint64_t seed, float *obs)
{
    obs[0] = 0.0f;
}

static void step(void *state, const void *action, float *obs, float *reward, bool *terminated)
{
    obs[0] = 0.0f;
    *reward = 0.0f;
    *terminated = true;
}

RELAY_API const relay_env_def relay_env_plugin = {
    .abi_version = 42,
    .name = "FutureAbi-v0",
    .state_size = 8,
    .spaces = spaces,
    .reset = reset,
    .step = step,
};
