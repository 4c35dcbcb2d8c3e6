/* Shared setup for the codec fuzz targets: one codec per process with a fixed test key. */
#ifndef RLY_FUZZ_COMMON_H
#define RLY_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "codec/codec_internal.h"
#include "relay/codec.h"
#include "relay/log.h"

/* FUZZ_KEY_HEX is the key every fuzz target and the corpus generator use. */
#define FUZZ_KEY_HEX "8f3c2a1b0d9e7f6a5b4c3d2e1f00112233445566778899aabbccddeeff001122"

/* fuzz_codec returns a lazily created codec: no encryption required, key known, 1 MiB limit. */
static inline relay_codec *fuzz_codec(void)
{
    static relay_codec *c;
    if (!c) {
        relay_log_set_level(RELAY_LOG_OFF);
        relay_codec_options o;
        relay_codec_options_default(&o);
        o.compression = RELAY_COMPRESS_NONE;
        o.has_key = true;
        if (relay_codec_key_from_hex(FUZZ_KEY_HEX, o.key) != RELAY_OK)
            abort();
        o.limits.max_message_bytes = 1 << 20;
        o.limits.max_elements = 1 << 18;
        o.limits.max_steps = 1 << 16;
        o.limits.max_actors = 1024;
        if (relay_codec_new(&o, &c) != RELAY_OK)
            abort();
    }
    return c;
}

/* fuzz_check_traj touches every column byte of a decoded trajectory so ASan sees bad sizes. */
static inline void fuzz_check_traj(const relay_traj *t)
{
    size_t ob, ab, mb;
    relay_step_spec_bytes(&t->spec, &ob, &ab, &mb);
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < (size_t)t->len * ob; i++)
        sink ^= t->obs[i];
    for (size_t i = 0; i < (size_t)t->len * ab; i++)
        sink ^= t->act[i];
    for (size_t i = 0; i < (size_t)t->len * mb; i++)
        sink ^= t->mask[i];
    for (uint32_t i = 0; i < t->len; i++) {
        relay_action a;
        if (relay_traj_get_action(t, i, &a) != RELAY_OK)
            abort();
        sink ^= (uint8_t)a.terminated;
    }
    (void)sink;
}

#endif
