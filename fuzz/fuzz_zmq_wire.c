/*
 * Fuzz target: the ZeroMQ transport's header frame (src/transport/zmq_wire.h), the first bytes
 * of every message the server's ROUTER takes from the network. A header that parses must be the
 * exact bytes rly_zw_header writes for its fields (round trip).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "transport/zmq_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rly_zw_hdr h;
    if (rly_zw_parse(data, size, &h) != RELAY_OK)
        return 0;
    uint8_t again[RLY_ZW_HEADER];
    rly_zw_header(again, h.kind, h.status, h.corr);
    if (size != RLY_ZW_HEADER || memcmp(again, data, size) != 0)
        abort();
    return 0;
}
