/*
 * Fuzz target: learner checkpoint decoding (src/learn/checkpoint.c). Each input is decoded as
 * is, and again with its CRC-32C recomputed so mutations reach the fields behind the checksum.
 */
#include <stdlib.h>
#include <string.h>

#include "learn/learn_internal.h"
#include "relay/codec.h"
#include "relay/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fuzz_ppo returns a CartPole learner with an 8-8 network and observation normalisation, the
   shape the committed corpus was written for. */
static relay_ppo *fuzz_ppo(void)
{
    static relay_ppo *p;
    if (!p) {
        relay_log_set_level(RELAY_LOG_OFF);
        relay_ppo_config c;
        relay_ppo_config_default(&c);
        c.n_envs = 1;
        c.n_steps = 8;
        c.batch_size = 8;
        relay_space os = {.discrete = false, .dim = 4}, as = {.discrete = true, .n = 2};
        if (relay_policy_spec_from_spaces(&c.policy, &os, &as) != RELAY_OK)
            abort();
        c.policy.hidden[0] = c.policy.hidden[1] = 8;
        c.policy.normalize_obs = true;
        if (relay_ppo_new(&c, &p) != RELAY_OK)
            abort();
    }
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relay_ppo *p = fuzz_ppo();
    rly_ckpt_counters c;
    uint8_t *extra = NULL;
    size_t n = 0;
    c.ep = NULL;
    if (rly_ckpt_decode(data, size, "fuzz", p, &c, &extra, &n) == RELAY_OK) {
        if (n && !extra)
            abort();
        free(c.ep);
    }
    free(extra);
    if (size < 28 || size > (1u << 20))
        return 0;
    uint8_t *b = malloc(size);
    if (!b)
        return 0;
    memcpy(b, data, size);
    uint32_t crc = relay_crc32c(0, b, size - 4);
    for (int i = 0; i < 4; i++)
        b[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    extra = NULL;
    if (rly_ckpt_decode(b, size, "fuzz", p, &c, &extra, &n) == RELAY_OK) {
        uint8_t *again = NULL;
        size_t len = 0;
        /* a decoded state encodes again */
        if (rly_ckpt_encode(p, &c, extra, n, &again, &len) != RELAY_OK)
            abort();
        free(again);
        free(c.ep);
    }
    free(extra);
    free(b);
    return 0;
}
