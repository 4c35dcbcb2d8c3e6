/* Internal codec state shared by the envelope, message conversion and framing code. */
#ifndef RLY_CODEC_INTERNAL_H
#define RLY_CODEC_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <zstd.h>

#include "relay/codec.h"

#define RLY_CODEC_MOD "codec"

/* Envelope header field offsets (see docs/PROTOCOL.md). */
#define RLY_ENV_OFF_MAGIC 0
#define RLY_ENV_OFF_VERSION 4
#define RLY_ENV_OFF_FLAGS 5
#define RLY_ENV_OFF_COMPRESSION 6
#define RLY_ENV_OFF_KIND 7
#define RLY_ENV_OFF_STORED 8
#define RLY_ENV_OFF_ORIGINAL 12
#define RLY_ENV_OFF_CRC 16
/* RLY_ENV_AD_BYTES: header bytes bound as AEAD associated data (everything before the CRC). */
#define RLY_ENV_AD_BYTES 16
#define RLY_ENV_FLAG_ENCRYPTED 0x01u
#define RLY_ENV_FLAGS_KNOWN RLY_ENV_FLAG_ENCRYPTED

/* rly_arena is a bump allocator that protobuf-c unpacks into; reset after every message. */
typedef struct rly_arena {
    uint8_t *base;
    size_t cap, used;
    void **big; /* overflow blocks malloc'd when base was too small */
    size_t n_big, cap_big, big_bytes;
    size_t limit; /* most bytes one message may allocate */
    bool over_limit;
} rly_arena;

struct relay_codec {
    relay_codec_options opt;
    ZSTD_CCtx *zc;
    ZSTD_DCtx *zd;
    relay_codec_buf pb;    /* packed protobuf (encode) */
    relay_codec_buf comp;  /* compressed payload (encode) */
    relay_codec_buf plain; /* decrypted payload (decode) */
    relay_codec_buf raw;   /* decompressed payload (decode) */
    rly_arena arena;
    ProtobufCAllocator alloc;
};

/* rly_envelope_seal wraps pb (a packed relay.v1.Message of kind) into an envelope in out. */
relay_err rly_envelope_seal(relay_codec *c, relay_msg_kind kind, const uint8_t *pb, size_t n,
                            relay_codec_buf *out);

/*
 * rly_envelope_open checks an envelope and returns its protobuf payload (in data or in codec
 * scratch, valid until the next call) and its kind.
 */
relay_err rly_envelope_open(relay_codec *c, const uint8_t *data, size_t len, relay_msg_kind *kind,
                            const uint8_t **pb, size_t *n);

/* rly_arena_reset frees overflow blocks (growing the base block to fit them next time). */
void rly_arena_reset(rly_arena *a);

/* rly_arena_fini frees everything. */
void rly_arena_fini(rly_arena *a);

#endif
