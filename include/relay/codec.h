/*
 * Relay's wire codec: relay.v1 protobuf messages (proto/relay.proto) inside a versioned envelope
 * with optional LZ4/zstd compression, optional XChaCha20-Poly1305 encryption and a CRC-32C over
 * every byte, plus varint length-delimited framing for streams and files.
 *
 * A relay_codec holds options, the key and reusable scratch buffers; it is not thread-safe, so
 * use one per thread. Decoding checks the envelope (magic, version, sizes, checksum, auth tag,
 * decompressed size) and the message (limits, shapes, column sizes) before trusting anything.
 * The byte layout is documented in docs/PROTOCOL.md.
 */
#ifndef RELAY_CODEC_H
#define RELAY_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "relay/data.h"
#include "relay/err.h"
#include "relay/export.h"
#include "relay/id.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RELAY_ENVELOPE_VERSION is the envelope format version this library writes and reads. */
#define RELAY_ENVELOPE_VERSION 1
/* RELAY_ENVELOPE_HEADER is the size of the fixed envelope header in bytes. */
#define RELAY_ENVELOPE_HEADER 20
/* RELAY_ENVELOPE_NONCE is the size of the XChaCha20 nonce that follows the header when encrypted.
 */
#define RELAY_ENVELOPE_NONCE 24
/* RELAY_ENVELOPE_TAG is the size of the Poly1305 tag at the end of an encrypted payload. */
#define RELAY_ENVELOPE_TAG 16
/* RELAY_KEY_BYTES is the size of an encryption key. */
#define RELAY_KEY_BYTES 32
/* RELAY_BUNDLE_MAX_DIM bounds a model bundle space's flat length (equals RELAY_ENV_MAX_DIM). */
#define RELAY_BUNDLE_MAX_DIM 256
/* RELAY_NAME_MAX is the longest model, input or output name, including the NUL. */
#define RELAY_NAME_MAX 64
/* RELAY_TEXT_MAX is the longest client id or shutdown reason, including the NUL. */
#define RELAY_TEXT_MAX 128

/* relay_compression selects how the protobuf payload is compressed; values are on the wire. */
typedef enum relay_compression {
    RELAY_COMPRESS_NONE = 0,
    RELAY_COMPRESS_LZ4 = 1,
    RELAY_COMPRESS_ZSTD = 2
} relay_compression;

/* relay_codec_limits bounds what a decoder accepts; anything beyond fails with RELAY_ETOOBIG. */
typedef struct relay_codec_limits {
    size_t max_message_bytes; /* envelope size and decompressed payload size (default 64 MiB) */
    uint32_t max_rank;        /* tensor / column rank (default and maximum 8) */
    uint64_t max_elements;    /* elements of one tensor or one whole column (default 16 Mi) */
    uint32_t max_steps;       /* steps of one trajectory (default 1 Mi) */
    uint32_t max_actors;      /* actor ids in one handshake (default 65536) */
} relay_codec_limits;

/* relay_codec_options configures a codec; start from relay_codec_options_default. */
typedef struct relay_codec_options {
    relay_compression compression; /* what encoders use (decoders accept all) */
    int zstd_level;                /* 1..19 (default 3) */
    bool encrypt; /* encrypt every encoded message; then decoders reject plaintext */
    bool has_key; /* key below is set; otherwise $RELAY_KEY (64 hex chars) is read */
    uint8_t key[RELAY_KEY_BYTES];
    relay_codec_limits limits;
} relay_codec_options;

/* relay_codec_buf is a growable byte buffer owned by its user; reuse it to avoid allocation. */
typedef struct relay_codec_buf {
    uint8_t *data;
    size_t len, cap;
} relay_codec_buf;

/* relay_codec_buf_reserve grows buf to hold at least cap bytes (contents kept). */
RELAY_API relay_err relay_codec_buf_reserve(relay_codec_buf *buf, size_t cap);

/* relay_codec_buf_fini frees buf's storage and zeroes it. */
RELAY_API void relay_codec_buf_fini(relay_codec_buf *buf);

/* relay_codec_limits_default returns the default limits (64 MiB, rank 8, 16 Mi elements, ...). */
RELAY_API relay_codec_limits relay_codec_limits_default(void);

/* relay_codec_options_default fills o with LZ4, zstd level 3, no encryption, default limits. */
RELAY_API void relay_codec_options_default(relay_codec_options *o);

/* relay_codec_key_from_hex parses 64 hex characters into a 32-byte key (RELAY_EFORMAT if not). */
RELAY_API relay_err relay_codec_key_from_hex(const char *hex, uint8_t key[RELAY_KEY_BYTES]);

/* relay_codec is an encoder/decoder with its options and scratch buffers (one per thread). */
typedef struct relay_codec relay_codec;

/*
 * relay_codec_new creates a codec from o (NULL = defaults). The key comes from o->key when
 * o->has_key, else from $RELAY_KEY when set; encrypt without any key is RELAY_ECONFIG.
 */
RELAY_API relay_err relay_codec_new(const relay_codec_options *o, relay_codec **out);

/* relay_codec_free frees c; NULL is a no-op. */
RELAY_API void relay_codec_free(relay_codec *c);

/* relay_codec_get_options returns the codec's options (the key is included only if it has one). */
RELAY_API const relay_codec_options *relay_codec_get_options(const relay_codec *c);

/* relay_msg_kind names the body of a message; values equal the relay.v1.Message oneof numbers. */
typedef enum relay_msg_kind {
    RELAY_MSG_NONE = 0,
    RELAY_MSG_TRAJECTORY = 1,
    RELAY_MSG_ACTION = 2,
    RELAY_MSG_MODEL_BUNDLE = 3,
    RELAY_MSG_HANDSHAKE = 4,
    RELAY_MSG_MODEL_VERSION_REQUEST = 5,
    RELAY_MSG_MODEL_VERSION_REPLY = 6,
    RELAY_MSG_MODEL_UPDATE = 7,
    RELAY_MSG_SHUTDOWN = 8,
    RELAY_MSG_FLAG_LAST_ACTION = 9,
    RELAY_MSG_ACTOR_STATS = 10
} relay_msg_kind;

/* relay_msg_kind_name returns "trajectory", "action", ... or "none". */
RELAY_API const char *relay_msg_kind_name(relay_msg_kind kind);

/* relay_bundle_space is a flat space as carried by a model bundle (mirrors relay_space). */
typedef struct relay_bundle_space {
    bool discrete;
    int32_t n;
    uint32_t dim;
    bool has_bounds; /* low/high hold dim values */
    float low[RELAY_BUNDLE_MAX_DIM];
    float high[RELAY_BUNDLE_MAX_DIM];
} relay_bundle_space;

/* relay_model_bundle is an ONNX policy (+ optional critic and log std) plus metadata. */
typedef struct relay_model_bundle {
    int64_t version;
    int64_t created_ns;
    char name[RELAY_NAME_MAX];
    char input_name[RELAY_NAME_MAX];
    char output_name[RELAY_NAME_MAX];
    relay_bundle_space obs_space, act_space;
    uint8_t *onnx;
    size_t onnx_len;
    bool owns_onnx;      /* onnx and value_onnx are freed by relay_model_bundle_fini */
    uint8_t *value_onnx; /* optional critic (obs -> value) or NULL */
    size_t value_onnx_len;
    uint32_t n_log_std; /* Gaussian policies: log std values (0 = none) */
    float log_std[RELAY_BUNDLE_MAX_DIM];
} relay_model_bundle;

/* relay_model_bundle_fini frees an owned ONNX buffer and zeroes b. */
RELAY_API void relay_model_bundle_fini(relay_model_bundle *b);

/* relay_handshake opens a session; actors is owned iff owns_actors (decoded ones are). */
typedef struct relay_handshake {
    char client_id[RELAY_TEXT_MAX];
    relay_id *actors;
    uint32_t n_actors;
    bool owns_actors;
    int64_t requested_version; /* -1 = latest */
} relay_handshake;

/* relay_flag_last_action marks an actor's last step with its final reward. */
typedef struct relay_flag_last_action {
    relay_id actor;
    float reward;
    int64_t env_id; /* -1 = none */
    char env_label[RELAY_LABEL_MAX];
} relay_flag_last_action;

/* RELAY_STATS_MAX_ROUTERS is the most router queue depths an ActorStats report may carry. */
#define RELAY_STATS_MAX_ROUTERS 256

/* RELAY_STATS_MAX_COUNT is the largest counter an ActorStats report may carry (2^53). */
#define RELAY_STATS_MAX_COUNT (UINT64_C(1) << 53)

/* relay_actor_stats is an actor process's load report (totals since the process started). */
typedef struct relay_actor_stats {
    char client_id[RELAY_TEXT_MAX];
    uint64_t env_steps, episodes, trajectories, trajectories_acked, trajectories_dropped;
    uint64_t batches_sent, batches_acked, batches_resent, spool_batches, spool_bytes;
    int64_t model_version; /* -1 = none */
    uint32_t actors;
    uint32_t n_routers; /* <= RELAY_STATS_MAX_ROUTERS */
    uint32_t router_queue_depth[RELAY_STATS_MAX_ROUTERS];
    double uptime_s, cpu_s;
    uint64_t rss_bytes;
} relay_actor_stats;

/*
 * relay_msg is any relay.v1.Message: kind says which fields are meaningful.
 *   TRAJECTORY: traj (owned by the message after decode; borrowed for encode).
 *   ACTION: action (decoded tensors are owned copies).
 *   MODEL_BUNDLE: bundle.  MODEL_UPDATE: actor (nil = all) + bundle.
 *   HANDSHAKE: handshake.  MODEL_VERSION_REQUEST: actor.  MODEL_VERSION_REPLY: actor + version.
 *   SHUTDOWN: text (reason).  FLAG_LAST_ACTION: flag.  ACTOR_STATS: stats.
 */
typedef struct relay_msg {
    relay_msg_kind kind;
    relay_traj *traj;
    relay_action action;
    relay_model_bundle bundle;
    relay_handshake handshake;
    relay_flag_last_action flag;
    relay_actor_stats stats;
    relay_id actor;
    int64_t version;
    char text[RELAY_TEXT_MAX];
} relay_msg;

/* relay_msg_fini frees whatever a decoded m owns (trajectory, tensors, ONNX, actor list). */
RELAY_API void relay_msg_fini(relay_msg *m);

/*
 * relay_codec_encode_msg encodes m into a complete envelope in out (out->len is set; previous
 * contents are replaced). m stays owned by the caller.
 */
RELAY_API relay_err relay_codec_encode_msg(relay_codec *c, const relay_msg *m,
                                           relay_codec_buf *out);

/*
 * relay_codec_decode_msg checks and decodes one envelope into *m (zeroed first); on success the
 * caller owns m's contents (relay_msg_fini), on failure nothing is left to free.
 */
RELAY_API relay_err relay_codec_decode_msg(relay_codec *c, const void *data, size_t len,
                                           relay_msg *m);

/* relay_codec_encode_traj encodes t as a Message{trajectory} envelope into out. */
RELAY_API relay_err relay_codec_encode_traj(relay_codec *c, const relay_traj *t,
                                            relay_codec_buf *out);

/*
 * relay_codec_decode_traj decodes a trajectory envelope into a new trajectory the caller owns;
 * any other message kind is RELAY_EFORMAT.
 */
RELAY_API relay_err relay_codec_decode_traj(relay_codec *c, const void *data, size_t len,
                                            relay_traj **out);

/*
 * relay_codec_decode_traj_into decodes a trajectory envelope into t, reusing its columns (its spec
 * and identity are replaced); t is left cleared (len 0) on failure.
 */
RELAY_API relay_err relay_codec_decode_traj_into(relay_codec *c, const void *data, size_t len,
                                                 relay_traj *t);

/* relay_codec_encode_bundle encodes a model bundle blob (Message{model_bundle} envelope). */
RELAY_API relay_err relay_codec_encode_bundle(relay_codec *c, const relay_model_bundle *b,
                                              relay_codec_buf *out);

/* relay_codec_decode_bundle decodes a model bundle blob into *b, which then owns its ONNX bytes. */
RELAY_API relay_err relay_codec_decode_bundle(relay_codec *c, const void *data, size_t len,
                                              relay_model_bundle *b);

/*
 * relay_codec_peek reads an envelope's header only (no checksum or decryption): its kind and
 * total envelope size. RELAY_ETRUNCATED when fewer than RELAY_ENVELOPE_HEADER bytes are given.
 */
RELAY_API relay_err relay_codec_peek(const void *data, size_t len, relay_msg_kind *kind,
                                     size_t *total);

/* RELAY_FRAME_MAX_PREFIX is the longest varint length prefix (10 bytes). */
#define RELAY_FRAME_MAX_PREFIX 10

/* relay_codec_frame_append appends a varint length and then the len bytes of msg to buf. */
RELAY_API relay_err relay_codec_frame_append(relay_codec_buf *buf, const void *msg, size_t len);

/*
 * relay_codec_frame_parse finds the frame at the start of data: sets *msg and *msg_len to its body
 * (pointing into data) and *consumed to prefix + body. RELAY_EAGAIN when data holds only part of
 * a frame, RELAY_ETOOBIG when the declared length exceeds max_frame, RELAY_EFORMAT for a bad
 * varint.
 */
RELAY_API relay_err relay_codec_frame_parse(const void *data, size_t len, size_t max_frame,
                                            const uint8_t **msg, size_t *msg_len, size_t *consumed);

/* relay_codec_frame_write writes one length-delimited frame to f (RELAY_EIO on failure). */
RELAY_API relay_err relay_codec_frame_write(FILE *f, const void *msg, size_t len);

/*
 * relay_codec_frame_read reads one frame body from f into buf (buf->len = body size): RELAY_EEMPTY
 * at a clean end of file, RELAY_ETRUNCATED at end of file inside a frame, RELAY_ETOOBIG beyond
 * max_frame, RELAY_EFORMAT for a bad varint, RELAY_EIO on read errors.
 */
RELAY_API relay_err relay_codec_frame_read(FILE *f, relay_codec_buf *buf, size_t max_frame);

/* relay_crc32c returns the CRC-32C (Castagnoli) of n bytes continuing from crc (start with 0). */
RELAY_API uint32_t relay_crc32c(uint32_t crc, const void *data, size_t n);

#ifdef __cplusplus
}
#endif
#endif
