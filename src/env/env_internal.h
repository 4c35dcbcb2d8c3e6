/* Internal helpers shared by the env layer's files. */
#ifndef RLY_ENV_INTERNAL_H
#define RLY_ENV_INTERNAL_H

#include <stdlib.h>

#include "relay/env.h"

/* RLY_ENV_MAX_STATE bounds one environment's state_size (1 MiB). */
#define RLY_ENV_MAX_STATE (1u << 20)

/* rly_env_def_check validates def (ABI, functions, sizes, spaces) and fills its spaces; who names
   the caller or path in log records. Returns RELAY_EVERSION or RELAY_EINVAL on a bad definition. */
relay_err rly_env_def_check(const relay_env_def *def, const char *who, relay_space *obs,
                            relay_space *act);

#endif
