/*
 * Trajectory batches: the payload of one message on a run's trajectory subject. Layout (all
 * integers little-endian; docs/PROTOCOL.md section 6):
 *   magic "RLYB" | version u8 (1) | 3 zero bytes | producer id (16-byte UUID, network order)
 *   | batch seq u64 | count u32 | count frames (varint length + one Trajectory envelope each)
 * A batch is identified by (producer, seq) ("<32 hex>:<seq>" as its message id); trajectory i of
 * it by "<32 hex>:<seq>:<i>". Producers number their batches 1, 2, 3, ... and resend a batch with
 * the same bytes, so both ids are stable across resends.
 *
 * Plain functions on caller-owned buffers; no threads, no allocation beyond the caller's buffer.
 */
#ifndef RLY_TRANSPORT_BATCH_H
#define RLY_TRANSPORT_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "relay/codec.h"
#include "relay/id.h"

/* RLY_BATCH_HEADER is the size of the fixed batch header. */
#define RLY_BATCH_HEADER 36
/* RLY_BATCH_MAX_COUNT bounds the trajectories in one batch. */
#define RLY_BATCH_MAX_COUNT 65536

/* rly_batch_hdr is a parsed batch header. */
typedef struct rly_batch_hdr {
    relay_id producer;
    uint64_t seq;
    uint32_t count;
} rly_batch_hdr;

/* rly_batch_begin replaces b's contents with a header for (producer, seq) and count 0. */
relay_err rly_batch_begin(relay_codec_buf *b, relay_id producer, uint64_t seq);

/* rly_batch_add appends one envelope as a frame and increments the count (ETOOBIG past max). */
relay_err rly_batch_add(relay_codec_buf *b, const void *env, size_t len);

/* rly_batch_count returns the count written in b's header (0 if b holds no header). */
uint32_t rly_batch_count(const relay_codec_buf *b);

/*
 * rly_batch_parse checks a whole batch: header, count <= RLY_BATCH_MAX_COUNT, exactly count
 * frames each at most max_frame bytes, nothing after them. RELAY_EFORMAT / ETRUNCATED / ETOOBIG /
 * EVERSION name what is wrong; on success *h is set.
 */
relay_err rly_batch_parse(const void *data, size_t len, size_t max_frame, rly_batch_hdr *h);

/*
 * rly_batch_next returns the envelope at *off (start with *off = 0 after a successful parse) and
 * advances *off; RELAY_EEMPTY after the last one.
 */
relay_err rly_batch_next(const void *data, size_t len, size_t *off, const uint8_t **env,
                         size_t *env_len);

/* rly_batch_msg_id writes "<32 hex>:<seq>" into out (RLY_TP_MSGID_MAX bytes). */
void rly_batch_msg_id(relay_id producer, uint64_t seq, char *out, size_t cap);

#endif
