/*
 * Central inference wire format (docs/PROTOCOL.md section 12): an actor process sends the
 * observations (and masks) of one forward call plus the random draws its own RNG would use to
 * select the actions; the server runs one batched forward pass over many such requests, selects
 * with the given draws and replies with actions, log-probabilities and values. Bytes are
 * little-endian; request and reply are single frames (ZeroMQ) or message bodies (NATS).
 *
 * Request (48-byte header):
 *   0 u32 magic "RIQ1"  4 u16 wire version (1)  6 u16 flags (1 deterministic, 2 masks)
 *   8 u64 request id    16 u32 rows  20 u32 obs_dim  24 u32 n_actions (0: continuous)
 *   28 u32 act_dim (1 when discrete)  32 u32 draws per row  36 u32 0  40 u64 0
 *   then f64 draws[rows * draws], f32 obs[rows * obs_dim], u8 masks[rows * n_actions] (flag 2)
 * Reply (48-byte header):
 *   0 u32 magic "RIR1"  4 u16 wire version (1)  6 u16 0  8 u64 request id
 *   16 i64 model version  24 i32 status (0 or a relay_err)  28 u32 rows
 *   32 u32 action width (1 when discrete: an i32 index; else act_dim f32)  36 u32 text bytes
 *   40 u64 0
 *   status 0: actions[rows * width] (i32 or f32), f32 logp[rows], f32 value[rows]
 *   otherwise: text bytes of a message saying what was wrong
 *
 * Pure functions; no allocation. Decoders treat their input as outside bytes: every size is
 * checked against the limits below and against the frame length before anything is read.
 */
#ifndef RLY_TRANSPORT_INFER_WIRE_H
#define RLY_TRANSPORT_INFER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/err.h"

#define RLY_IW_HDR 48
#define RLY_IW_MAX_ROWS 4096u        /* rows of one request */
#define RLY_IW_MAX_OBS 65536u        /* observation elements per row */
#define RLY_IW_MAX_ACT 4096u         /* discrete actions, or continuous action dimensions */
#define RLY_IW_MAX_BYTES (64u << 20) /* one request or reply */
#define RLY_IW_TEXT_MAX 200u         /* error text of a reply */

#define RLY_IW_DETERMINISTIC 1u
#define RLY_IW_MASKS 2u

/* rly_iw_req is a decoded request: a view into the bytes (pointers may be unaligned). */
typedef struct rly_iw_req {
    uint64_t id;
    uint32_t rows, obs_dim, n_actions, act_dim, draws;
    bool deterministic, has_mask;
    const uint8_t *rand; /* f64 [rows * draws] */
    const uint8_t *obs;  /* f32 [rows * obs_dim] */
    const uint8_t *mask; /* u8 [rows * n_actions] or NULL */
} rly_iw_req;

/* rly_iw_rep is a decoded reply: a view into the bytes (pointers may be unaligned). */
typedef struct rly_iw_rep {
    uint64_t id;
    int64_t version;
    relay_err status;
    uint32_t rows, width;
    const uint8_t *actions, *logp, *value; /* status 0 */
    const char *text;                      /* status != 0: not NUL-terminated */
    uint32_t text_len;
} rly_iw_rep;

/* rly_iw_draws returns the random draws per row a request needs (0 deterministic, 1 discrete,
   act_dim continuous). */
uint32_t rly_iw_draws(uint32_t n_actions, uint32_t act_dim, bool deterministic);

/* rly_iw_req_size returns a request's size in bytes, or 0 when a size is out of its limit. */
size_t rly_iw_req_size(uint32_t rows, uint32_t obs_dim, uint32_t n_actions, uint32_t act_dim,
                       bool deterministic, bool has_mask);

/*
 * rly_iw_req_encode writes a request into out (cap bytes; rly_iw_req_size needed); *len is set.
 * rand holds rly_iw_draws values per row; mask may be NULL. RELAY_ETOOBIG names no limit itself:
 * callers check rly_iw_req_size first.
 */
relay_err rly_iw_req_encode(uint8_t *out, size_t cap, size_t *len, uint64_t id, uint32_t rows,
                            uint32_t obs_dim, uint32_t n_actions, uint32_t act_dim,
                            bool deterministic, const double *rand, const float *obs,
                            const uint8_t *mask);

/*
 * rly_iw_req_decode checks and decodes a request; on failure it returns RELAY_EFORMAT (bad
 * magic, version, flags or length) or RELAY_ETOOBIG (a size beyond its limit) and writes a
 * message naming the field and the limit into why (why_cap bytes, may be 0).
 */
relay_err rly_iw_req_decode(const void *data, size_t len, rly_iw_req *out, char *why,
                            size_t why_cap);

/* rly_iw_rep_size returns an OK reply's size for rows of width action values. */
size_t rly_iw_rep_size(uint32_t rows, uint32_t width);

/*
 * rly_iw_rep_layout writes an OK reply's header into out (rly_iw_rep_size bytes) and points
 * actions / logp / value at its body (out must be 4-byte aligned) for the caller to fill.
 */
void rly_iw_rep_layout(uint8_t *out, uint64_t id, int64_t version, uint32_t rows, uint32_t width,
                       void **actions, float **logp, float **value);

/* rly_iw_rep_error writes an error reply (status, text cut to RLY_IW_TEXT_MAX) into out
   (RLY_IW_HDR + RLY_IW_TEXT_MAX bytes) and returns its length. */
size_t rly_iw_rep_error(uint8_t *out, uint64_t id, int64_t version, relay_err status,
                        const char *text);

/* rly_iw_rep_decode checks and decodes a reply (RELAY_EFORMAT when malformed). */
relay_err rly_iw_rep_decode(const void *data, size_t len, rly_iw_rep *out);

#endif
