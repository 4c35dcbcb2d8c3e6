/* Internal helpers shared by the env layer's files. */
#ifndef RLY_ENV_INTERNAL_H
#define RLY_ENV_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "relay/env.h"

/* RLY_ENV_MAX_STATE bounds one environment's state_size (1 MiB). */
#define RLY_ENV_MAX_STATE (1u << 20)

/* rly_env_def_check validates def (ABI, functions, sizes, spaces) and fills its spaces; who names
   the caller or path in log records. Returns RELAY_EVERSION or RELAY_EINVAL on a bad definition. */
relay_err rly_env_def_check(const relay_env_def *def, const char *who, relay_space *obs,
                            relay_space *act);

/* rly_env_plain_state is true when def declares RELAY_ENV_PLAIN_STATE (ABI 2 or later). */
bool rly_env_plain_state(const relay_env_def *def);

/*
 * Vecenv snapshots (exact resume of `relay train`): every env's state bytes (or CartPole's
 * structure-of-arrays state), elapsed steps, episode counts (which give the next reset seeds),
 * the base seed and the invalid-action count, in host byte order. Only environments with
 * RELAY_ENV_PLAIN_STATE can be saved.
 */

/* rly_vecenv_snapshot_size returns the bytes rly_vecenv_save writes, 0 if v cannot be saved. */
size_t rly_vecenv_snapshot_size(const relay_vecenv *v);

/* rly_vecenv_save writes v's snapshot into buf (cap >= rly_vecenv_snapshot_size);
   RELAY_EUNSUPPORTED for an env without RELAY_ENV_PLAIN_STATE. */
relay_err rly_vecenv_save(const relay_vecenv *v, uint8_t *buf, size_t cap);

/* rly_vecenv_restore sets v (same env and copy count as the saved one) from a snapshot; any
   mismatch or malformed snapshot is logged naming what differs and leaves v unchanged. */
relay_err rly_vecenv_restore(relay_vecenv *v, const uint8_t *buf, size_t len);

#endif
