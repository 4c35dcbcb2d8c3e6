/*
 * Environments with Gymnasium semantics: reset(seed) -> observation; step(action) -> observation,
 * reward, terminated, truncated. Observations are float32; actions are int32 (discrete) or
 * float32 vectors (continuous). Every call writes into caller-owned contiguous buffers and the
 * step path never allocates.
 *
 * Built-ins: "CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1". User environments are
 * shared libraries that export `relay_env_plugin` (a const relay_env_def); load them by path.
 */
#ifndef RELAY_ENV_H
#define RELAY_ENV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/err.h"
#include "relay/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RELAY_ENV_ABI_VERSION is bumped whenever relay_env_def changes (2 added `flags`; definitions
   of version 1, without it, still load). */
#define RELAY_ENV_ABI_VERSION 2
/* RELAY_ENV_ABI_OLDEST is the oldest relay_env_def version this Relay loads. */
#define RELAY_ENV_ABI_OLDEST 1
/* RELAY_ENV_PLAIN_STATE (flags): the state_size bytes are the env's complete state and hold no
   pointers, so copying them saves the env and copying them back restores it (exact resume). */
#define RELAY_ENV_PLAIN_STATE 1u
/* RELAY_ENV_MAX_DIM bounds observation and action dimensions of one env. */
#define RELAY_ENV_MAX_DIM 256

/* relay_space describes a flat observation or action space. */
typedef struct relay_space {
    bool discrete;                /* true: one int32 in [0, n) */
    int32_t n;                    /* number of discrete actions */
    uint32_t dim;                 /* flat length (1 for discrete) */
    float low[RELAY_ENV_MAX_DIM]; /* per-element bounds (Box spaces); -inf/+inf when unbounded */
    float high[RELAY_ENV_MAX_DIM];
} relay_space;

/*
 * relay_env_def is the contract every environment implements (built-in or plug-in).
 * state points to state_size bytes owned by the caller (zeroed before init).
 */
typedef struct relay_env_def {
    uint32_t abi_version; /* RELAY_ENV_ABI_VERSION */
    const char *name;
    size_t state_size;
    int32_t max_episode_steps; /* time limit that sets truncated; 0 = none */
    /* spaces fills the observation and action spaces. */
    void (*spaces)(relay_space *obs, relay_space *act);
    /* reset seeds the env's own RNG with seed and writes the first observation. */
    void (*reset)(void *state, uint64_t seed, float *obs);
    /* step applies action (int32* or float*), writes the next observation, reward and flags;
       the time limit is applied by Relay's wrapper, not by step. */
    void (*step)(void *state, const void *action, float *obs, float *reward, bool *terminated);
    /* ABI 2: RELAY_ENV_PLAIN_STATE or 0 (not read from version 1 definitions). */
    uint32_t flags;
} relay_env_def;

/* relay_env_find returns the built-in environment called name, or NULL. */
RELAY_API const relay_env_def *relay_env_find(const char *name);

/* relay_env_load loads a plug-in shared library from path; the handle stays loaded for the process.
 */
RELAY_API relay_err relay_env_load(const char *path, const relay_env_def **out);

/* relay_env_resolve finds a built-in by name or, if name contains '/' or ends in ".so", loads it.
 */
RELAY_API relay_err relay_env_resolve(const char *name, const relay_env_def **out);

/* relay_env_builtin returns the i-th built-in environment (0-based), or NULL past the last. */
RELAY_API const relay_env_def *relay_env_builtin(size_t i);

/* relay_env_episode_seed returns the reset seed of an env's episode: env_seed for episode 0,
   a splitmix64 mix of env_seed and episode after it (what relay_vecenv uses on auto-reset). */
RELAY_API uint64_t relay_env_episode_seed(uint64_t env_seed, uint64_t episode);

/* relay_vecenv steps n copies of one environment in lockstep, with auto-reset. */
typedef struct relay_vecenv relay_vecenv;

/* relay_vecenv_new creates n environments of def; env i is seeded with seed + i on reset. */
RELAY_API relay_err relay_vecenv_new(const relay_env_def *def, uint32_t n, uint64_t seed,
                                     relay_vecenv **out);

/* relay_vecenv_free frees v; NULL is a no-op. */
RELAY_API void relay_vecenv_free(relay_vecenv *v);

/* relay_vecenv_num returns the number of environments. */
RELAY_API uint32_t relay_vecenv_num(const relay_vecenv *v);

/* relay_vecenv_def returns the environment definition. */
RELAY_API const relay_env_def *relay_vecenv_def(const relay_vecenv *v);

/* relay_vecenv_reset resets every env and writes observations [n x obs_dim]. */
RELAY_API void relay_vecenv_reset(relay_vecenv *v, float *obs);

/*
 * relay_vecenv_step steps every env with actions [n x act] (int32 or float32) and writes obs
 * [n x obs_dim], rewards [n], terminated [n], truncated [n]. An env that ends (terminated or
 * truncated) is reset at once: obs holds the first observation of its next episode, and, if
 * final_obs is not NULL, final_obs [n x obs_dim] holds the last observation of the ended episode
 * (rows of envs that did not end are left untouched).
 */
RELAY_API void relay_vecenv_step(relay_vecenv *v, const void *actions, float *obs, float *rewards,
                                 bool *terminated, bool *truncated, float *final_obs);

/* relay_vecenv_invalid_actions counts actions that were out of range (discrete, clamped) or NaN
   (continuous, replaced by 0 clipped to the bounds) since v was created. */
RELAY_API uint64_t relay_vecenv_invalid_actions(const relay_vecenv *v);

#ifdef __cplusplus
}
#endif
#endif
