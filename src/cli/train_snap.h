/*
 * Actor snapshots of `relay train` (exact resume): each actor hands a snapshot of its run state to
 * this store at every pause (rly_run_pause_fn, on its router thread); a checkpoint taken after the
 * update that published version v takes every actor's snapshot tagged v (the actors paused after
 * the data of v - 1, which that update consumed, so the snapshots exist and match the learner).
 * Two slots per actor suffice: the learner cannot publish v + 1 before on_update of v returned.
 */
#ifndef RLY_CLI_TRAIN_SNAP_H
#define RLY_CLI_TRAIN_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/err.h"

typedef struct rly_train_snaps rly_train_snaps;

/* rly_train_snaps_new makes a store for n_actors actors. */
relay_err rly_train_snaps_new(uint32_t n_actors, rly_train_snaps **out);

/* rly_train_snaps_free frees s; NULL is a no-op. */
void rly_train_snaps_free(rly_train_snaps *s);

/* rly_train_snaps_ctx is the pause_ctx to give actor i (with rly_train_snaps_on_pause). */
void *rly_train_snaps_ctx(rly_train_snaps *s, uint32_t i);

/* rly_train_snaps_on_pause stores a snapshot (any thread; the rly_run_pause_fn of the actors). */
void rly_train_snaps_on_pause(void *ctx, int64_t next_version, const uint8_t *snap, size_t len);

/* rly_train_snaps_wait waits up to timeout_ns until every actor has a snapshot of version v;
   true when they all have one. */
bool rly_train_snaps_wait(rly_train_snaps *s, int64_t v, int64_t timeout_ns);

/*
 * rly_train_snaps_encode serialises every actor's snapshot of version v (section "actor
 * snapshots": u32 actors, u32 envs per actor, i64 version, u32 env name length, name, then per
 * actor u64 length and bytes) into *out (malloc'd); RELAY_ENOTFOUND when an actor has none.
 */
relay_err rly_train_snaps_encode(rly_train_snaps *s, int64_t v, const char *env,
                                 uint32_t envs_per_actor, uint8_t **out, size_t *len);

/*
 * rly_train_snaps_decode checks a section written by rly_train_snaps_encode against this run
 * (actors, envs per actor, env name, the checkpoint's version) and points snaps[i] / lens[i] into
 * buf. Errors are logged naming the section and what differs.
 */
relay_err rly_train_snaps_decode(const uint8_t *buf, size_t len, int64_t version, const char *env,
                                 uint32_t actors, uint32_t envs_per_actor, const uint8_t **snaps,
                                 size_t *lens);

#endif
