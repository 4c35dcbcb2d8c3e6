/*
 * rly_seen: the training server's memory of which trajectory batches it has taken in, keyed by
 * (producer, batch seq), with the stream position each came from. It is the learner-side half of
 * exactly-once learning: the bus's deduplication window catches resends within minutes; this
 * table catches the rest, and survives restarts inside the server's checkpoint. A batch seen at
 * the same stream position again is a replay after a restart (taken in again); at another
 * position it is a duplicate (refused). Owned by the server's consumer thread.
 */
#ifndef RLY_TRANSPORT_SEEN_H
#define RLY_TRANSPORT_SEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/codec.h"
#include "relay/id.h"

/* rly_seen_verdict classifies a batch. */
typedef enum rly_seen_verdict {
    RLY_SEEN_NEW = 0,      /* first time: recorded */
    RLY_SEEN_REPLAY = 1,   /* same batch at the same stream position (a replay) */
    RLY_SEEN_DUPLICATE = 2 /* same batch at another position: do not learn it again */
} rly_seen_verdict;

/* rly_seen_entry is one remembered batch. */
typedef struct rly_seen_entry {
    relay_id producer;
    uint64_t batch;
    uint64_t stream_seq; /* 0 = empty slot */
} rly_seen_entry;

/* rly_seen is an open-addressing table holding at most max entries (oldest evicted first). */
typedef struct rly_seen {
    rly_seen_entry *tab;
    size_t cap, n, max;
    uint64_t evicted;
} rly_seen;

/* rly_seen_init prepares s for up to max entries (0: 1 Mi). */
relay_err rly_seen_init(rly_seen *s, size_t max);

/* rly_seen_fini frees s. */
void rly_seen_fini(rly_seen *s);

/* rly_seen_check classifies (producer, batch) found at stream_seq (>= 1) and records it if new. */
rly_seen_verdict rly_seen_check(rly_seen *s, relay_id producer, uint64_t batch,
                                uint64_t stream_seq);

/* rly_seen_find_seq copies the entry taken in at stream_seq into *out; false when none. */
bool rly_seen_find_seq(const rly_seen *s, uint64_t stream_seq, rly_seen_entry *out);

/*
 * rly_seen_forget_from forgets every batch taken in at stream position from or later (a
 * non-durable transport's server restarts: those batches come again, at new positions).
 */
relay_err rly_seen_forget_from(rly_seen *s, uint64_t from);

/* rly_seen_save appends s's entries to out (24 + 8 bytes each, after an 8-byte count). */
relay_err rly_seen_save(const rly_seen *s, relay_codec_buf *out);

/* rly_seen_load replaces s's entries with those saved at data (*used = bytes read). */
relay_err rly_seen_load(rly_seen *s, const uint8_t *data, size_t len, size_t *used);

#endif
