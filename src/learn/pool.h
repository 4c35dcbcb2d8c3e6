/*
 * rly_pool: the learner's pooled intake for trajectories from any number of actors and processes
 * (distributed training), where no fixed stream layout exists and sources come and go.
 *
 * Trajectories are kept whole, in arrival order, with a caller tag each. An update takes the
 * first n_envs x n_steps rows in order and packs them into rollout columns; a trajectory that
 * does not fit is split, and the split row bootstraps from the value of the row that follows it,
 * so every piece is a self-contained segment for GAE (termination -> 0, truncation or cut ->
 * the recorded bootstrap value). Because consumption follows arrival order, the position of the
 * first row not yet learned (the cursor: tag + row) says exactly what a checkpoint covers.
 *
 * Owned and used by the learner thread only.
 */
#ifndef RLY_LEARN_POOL_H
#define RLY_LEARN_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "relay/data.h"
#include "relay/learn.h"

/* rly_fate says what became of a trajectory handed to the learner. */
typedef enum rly_fate {
    RLY_FATE_LEARNED = 0,   /* every row went into an update */
    RLY_FATE_STALE = 1,     /* dropped: its policy version lagged too far behind */
    RLY_FATE_DISCARDED = 2, /* dropped: newer than the learner, or out of memory */
    RLY_FATE_UNUSED = 3,    /* still queued when the learner stopped */
    RLY_FATE_REJECTED = 4,  /* mark: failed to decode or authenticate, or does not fit */
    RLY_FATE_DUPLICATE = 5  /* mark: a batch already learned from (a resend) */
} rly_fate;

/* rly_fate_fn reports one trajectory's fate with its tag (learner thread). */
typedef void (*rly_fate_fn)(void *ctx, uint64_t tag, rly_fate fate, uint32_t rows);

/* rly_pool_piece is a queued trajectory with off rows already consumed. */
typedef struct rly_pool_piece {
    relay_traj *t;
    uint64_t tag;
    uint32_t off;
    int a_logp, a_value, a_boot, a_cut;
} rly_pool_piece;

/* rly_pool_ep sums the return of one (actor, env) source's open episode. */
typedef struct rly_pool_ep {
    relay_id actor;
    int64_t env_id;
    int64_t episode;
    double sum;
    bool used, open;
} rly_pool_ep;

/* rly_pool is the FIFO and its episode table. */
typedef struct rly_pool {
    rly_pool_piece *q;
    uint32_t head, len, cap;
    uint64_t rows;     /* unconsumed rows */
    uint64_t next_tag; /* tag after the newest pushed one (cursor when empty) */
    rly_pool_ep *eps;
    uint32_t eps_cap;
    rly_fate_fn fate;
    void *fate_ctx;
} rly_pool;

/* rly_pool_init prepares p; fate (may be NULL) hears of every trajectory's end. */
relay_err rly_pool_init(rly_pool *p, rly_fate_fn fate, void *ctx);

/* rly_pool_fini frees queued trajectories (reporting them as UNUSED) and p's storage. */
void rly_pool_fini(rly_pool *p);

/*
 * rly_pool_episode sums t's rewards into its source's episode; returns true and sets *ret when t
 * ends that episode (terminated, or truncated without a cut).
 */
bool rly_pool_episode(rly_pool *p, const relay_traj *t, float *ret);

/* rly_pool_push queues t (ownership moves on RELAY_OK) with tag. */
relay_err rly_pool_push(rly_pool *p, relay_traj *t, uint64_t tag);

/* rly_pool_skip records that tag was dropped before queueing (keeps the cursor right). */
void rly_pool_skip(rly_pool *p, uint64_t tag);

/*
 * rly_pool_fill packs the first n_envs x n_steps rows into ro (cleared by the caller) and writes
 * each column's bootstrap value to last_values [n_envs]; RELAY_EEMPTY if fewer rows are queued.
 */
relay_err rly_pool_fill(rly_pool *p, relay_rollout *ro, uint32_t n_envs, uint32_t n_steps,
                        uint32_t obs_dim, bool discrete, uint32_t act_dim, uint32_t n_actions,
                        float *last_values);

/* rly_pool_purge drops queued trajectories whose version is below min_version; returns rows. */
uint64_t rly_pool_purge(rly_pool *p, int64_t min_version, uint64_t *trajs);

/*
 * rly_pool_cursor gives the first row not yet consumed: (tag, row) of the head trajectory, or
 * (next tag, 0) when nothing is queued.
 */
void rly_pool_cursor(const rly_pool *p, uint64_t *tag, uint32_t *row);

#endif
