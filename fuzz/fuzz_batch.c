/*
 * Fuzz target: the training server's network receive path for one trajectory message: the batch
 * header and frames (rly_batch_parse / rly_batch_next), then every envelope through the
 * trajectory decoder, as `relay server` does before anything reaches the learner.
 */
#include "fuzz_common.h"
#include "relay/data.h"
#include "transport/batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relay_codec *c = fuzz_codec();
    rly_batch_hdr h;
    if (rly_batch_parse(data, size, 1 << 20, &h) != RELAY_OK)
        return 0;
    size_t off = 0;
    const uint8_t *env;
    size_t n;
    uint32_t k = 0;
    while (rly_batch_next(data, size, &off, &env, &n) == RELAY_OK) {
        if (env < data || env + n > data + size || off > size)
            abort();
        relay_traj *t = NULL;
        if (relay_codec_decode_traj(c, env, n, &t) == RELAY_OK)
            relay_traj_free(t);
        k++;
    }
    if (k != h.count)
        abort(); /* a parsed batch yields exactly its declared trajectories */
    return 0;
}
