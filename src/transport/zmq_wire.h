/*
 * The ZeroMQ transport's message header (docs/PROTOCOL.md, "ZeroMQ frames"): the first frame of
 * every message between an actor process's DEALER and the server's ROUTER. 16 bytes:
 *   'R' 'Z' | version u8 (1) | kind u8 | status u8 | 3 zero bytes | corr u64 little-endian
 * corr is the batch seq (TRAJ, ACK) or the request id (requests and their replies). Plain
 * functions on caller-owned bytes; no threads, no allocation.
 */
#ifndef RLY_TRANSPORT_ZMQ_WIRE_H
#define RLY_TRANSPORT_ZMQ_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "relay/err.h"

/* RLY_ZW_HEADER is the header frame's size. */
#define RLY_ZW_HEADER 16
/* RLY_ZW_VERSION is the header version written and accepted. */
#define RLY_ZW_VERSION 1
/* RLY_ZW_MAX_PAYLOAD bounds one frame (libzmq drops a peer that sends more: ZMQ_MAXMSGSIZE). */
#define RLY_ZW_MAX_PAYLOAD ((64u << 20) + 4096u)

/* message kinds */
enum {
    RLY_ZW_TRAJ = 1,      /* actor -> server: [hdr, batch] */
    RLY_ZW_ACK = 2,       /* server -> actor: [hdr], status OK / REFUSED / RETRY */
    RLY_ZW_CTL_REQ = 3,   /* actor -> server: [hdr, control envelope] */
    RLY_ZW_CTL_REP = 4,   /* server -> actor: [hdr, reply envelope] */
    RLY_ZW_MODEL_REQ = 5, /* actor -> server: [hdr, known version i64] */
    RLY_ZW_MODEL_REP = 6  /* server -> actor: [hdr, meta (version i64, status gen u64), model,
                             status] */
};

/* statuses */
enum {
    RLY_ZW_OK = 0,
    RLY_ZW_REFUSED = 1,    /* ACK: unreadable batch, recorded as rejected (do not resend) */
    RLY_ZW_RETRY = 2,      /* ACK: not taken (resend later) */
    RLY_ZW_NO_HANDLER = 3, /* CTL_REP: the server serves no control requests yet */
    RLY_ZW_ERROR = 4       /* CTL_REP: the request was refused (empty reply) */
};

/* rly_zw_hdr is a parsed header. */
typedef struct rly_zw_hdr {
    uint8_t kind, status;
    uint64_t corr;
} rly_zw_hdr;

/* rly_zw_header writes a header into h (RLY_ZW_HEADER bytes). */
void rly_zw_header(uint8_t *h, uint8_t kind, uint8_t status, uint64_t corr);

/* rly_zw_parse checks a header frame (ETRUNCATED / EFORMAT / EVERSION name what is wrong). */
relay_err rly_zw_parse(const void *data, size_t len, rly_zw_hdr *out);

#endif
