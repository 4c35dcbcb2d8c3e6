/*
 * The JetStream delivery metadata the NATS transport reads from the network: a delivery's reply
 * subject (its ack subject) names the stream sequence and the delivery count,
 *   $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
 * or, from servers with domains, with <domain>.<account hash> after "ACK" (and an optional random
 * token at the end): 9, 11 or 12 dot-separated tokens. Plain functions on caller-owned bytes; no
 * threads, no allocation.
 */
#ifndef RLY_TRANSPORT_NATS_WIRE_H
#define RLY_TRANSPORT_NATS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "relay/err.h"

/* RLY_NW_ACK_MAX bounds an ack subject's length (NATS subjects are far shorter in practice). */
#define RLY_NW_ACK_MAX 1024

/* rly_nw_u64 parses s[0, n) as a decimal u64 (1 to 20 digits, no sign, no overflow). */
static inline bool rly_nw_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/*
 * rly_nw_ack_meta reads the delivery count and the stream sequence from the ack subject s[0, n):
 * RELAY_OK, or RELAY_EFORMAT when it is not a JetStream ack subject (wrong prefix, token count,
 * empty token, or a count that is not a decimal u64), leaving *delivered and *seq unchanged.
 */
static inline relay_err rly_nw_ack_meta(const char *s, size_t n, uint64_t *delivered, uint64_t *seq)
{
    if (!s || n < 8 || n > RLY_NW_ACK_MAX || memcmp(s, "$JS.ACK.", 8) != 0)
        return RELAY_EFORMAT;
    size_t start[13], len[13], nt = 0, from = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        if (nt == 13 || i == from)
            return RELAY_EFORMAT; /* too many tokens, or an empty one */
        start[nt] = from;
        len[nt++] = i - from;
        from = i + 1;
    }
    size_t base = nt == 9 ? 2 : (nt == 11 || nt == 12) ? 4 : 0;
    uint64_t d, q;
    if (!base || !rly_nw_u64(s + start[base + 2], len[base + 2], &d) ||
        !rly_nw_u64(s + start[base + 3], len[base + 3], &q))
        return RELAY_EFORMAT;
    *delivered = d;
    *seq = q;
    return RELAY_OK;
}

#endif
