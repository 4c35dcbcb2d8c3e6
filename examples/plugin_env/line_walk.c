/*
 * LineWalk-v0: a tiny environment plug-in for Relay. The agent stands on cell p of a line
 * -5..5 and moves left (action 0) or right (action 1). Reaching +5 ends the episode with reward +1,
 * reaching -5 with reward -1; every other step costs 0.01. Episodes start on a random cell in
 * -2..2 and are truncated by Relay after 50 steps. The observation is p / 5.
 *
 * Build as a shared module and load it with relay_env_load("path/to/linewalk_env.so", &def), or
 * name the path wherever Relay takes an environment name.
 */
#include <stdbool.h>
#include <stdint.h>

#include "relay/env.h"

#define LINE_END 5

/* The state Relay allocates for each copy (state_size bytes, zeroed before the first reset). */
typedef struct line_walk {
    int32_t pos;
    uint64_t rng; /* each env keeps its own generator */
} line_walk;

static uint64_t next_random(uint64_t *s)
{
    /* xorshift64*; the seed is mixed first so that seed 0 works too. */
    if (*s == 0)
        *s = 0x9E3779B97F4A7C15ull;
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static void line_walk_spaces(relay_space *obs, relay_space *act)
{
    obs->discrete = false;
    obs->n = 0;
    obs->dim = 1;
    obs->low[0] = -1.0f;
    obs->high[0] = 1.0f;
    act->discrete = true;
    act->n = 2;
    act->dim = 1;
    act->low[0] = 0.0f;
    act->high[0] = 1.0f;
}

static void line_walk_reset(void *state, uint64_t seed, float *obs)
{
    line_walk *w = state;
    w->rng = seed ^ 0xA0761D6478BD642Full;
    w->pos = (int32_t)(next_random(&w->rng) % 5u) - 2;
    obs[0] = (float)w->pos / LINE_END;
}

static void line_walk_step(void *state, const void *action, float *obs, float *reward,
                           bool *terminated)
{
    line_walk *w = state;
    w->pos += *(const int32_t *)action == 1 ? 1 : -1;
    obs[0] = (float)w->pos / LINE_END;
    *terminated = w->pos >= LINE_END || w->pos <= -LINE_END;
    *reward = w->pos >= LINE_END ? 1.0f : (w->pos <= -LINE_END ? -1.0f : -0.01f);
}

/* relay_env_plugin is the one symbol Relay looks up in the library. */
RELAY_API const relay_env_def relay_env_plugin = {
    .abi_version = RELAY_ENV_ABI_VERSION,
    .name = "LineWalk-v0",
    .state_size = sizeof(line_walk),
    .max_episode_steps = 50,
    .spaces = line_walk_spaces,
    .reset = line_walk_reset,
    .step = line_walk_step,
    .flags = RELAY_ENV_PLAIN_STATE, /* all state is in line_walk: `relay train --resume` is exact */
};
