/* Test fixture: a plug-in with the right ABI but no step function. */
#include <stddef.h>

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

RELAY_API const relay_env_def relay_env_plugin = {
    .abi_version = RELAY_ENV_ABI_VERSION,
    .name = "NoStep-v0",
    .state_size = 8,
    .spaces = spaces,
    .reset = reset,
    .step = NULL,
};
