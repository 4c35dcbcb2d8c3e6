/*
 * Fuzz target: a JetStream delivery's ack subject (src/transport/nats_wire.h), which the NATS
 * transport reads from every trajectory delivery the server fetches. A subject that parses must
 * start with "$JS.ACK.", parse the same again, and hold both numbers it returned as tokens.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "transport/nats_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* has_value reports whether a dot-separated token of s[0, n) is all digits and equals v. */
static int has_value(const char *s, size_t n, uint64_t v)
{
    size_t from = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        unsigned __int128 x = 0;
        int digits = i > from;
        for (size_t k = from; k < i && digits; k++) {
            digits = s[k] >= '0' && s[k] <= '9';
            x = x * 10 + (unsigned)(s[k] - '0');
            if (x > UINT64_MAX)
                digits = 0;
        }
        if (digits && (uint64_t)x == v)
            return 1;
        from = i + 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    uint64_t d = 0, q = 0;
    if (rly_nw_ack_meta(s, size, &d, &q) != RELAY_OK)
        return 0;
    uint64_t d2 = 1, q2 = 1;
    if (size < 8 || memcmp(s, "$JS.ACK.", 8) != 0 ||
        rly_nw_ack_meta(s, size, &d2, &q2) != RELAY_OK || d2 != d || q2 != q ||
        !has_value(s, size, d) || !has_value(s, size, q))
        abort();
    return 0;
}
