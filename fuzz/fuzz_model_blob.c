/*
 * Fuzz target: model bundle blobs (src/model/bundle.c, relay_bundle_from_blob): magic, version,
 * flags, metadata JSON, the policy's ONNX bytes and, with flag 1, the critic's ONNX bytes. A
 * decoded bundle must encode again and decode to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "relay/log.h"
#include "relay/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        relay_log_set_level(RELAY_LOG_OFF);
        quiet = 1;
    }
    relay_bundle *b = NULL;
    if (relay_bundle_from_blob(data, size, &b) != RELAY_OK)
        return 0;
    uint8_t *again = NULL;
    size_t len = 0;
    if (relay_bundle_to_blob(b, &again, &len) != RELAY_OK)
        abort();
    relay_bundle *c = NULL;
    if (relay_bundle_from_blob(again, len, &c) != RELAY_OK)
        abort();
    if ((relay_bundle_value(b) == NULL) != (relay_bundle_value(c) == NULL))
        abort();
    uint8_t *third = NULL;
    size_t len3 = 0;
    if (relay_bundle_to_blob(c, &third, &len3) != RELAY_OK || len3 != len ||
        memcmp(third, again, len) != 0)
        abort();
    free(third);
    free(again);
    relay_bundle_free(c);
    relay_bundle_free(b);
    return 0;
}
