/* Internal id helpers: a fast hash for tables keyed by relay_id. */
#ifndef RLY_CORE_ID_H
#define RLY_CORE_ID_H

#include <stdint.h>
#include <string.h>

#include "relay/id.h"

/* rly_id_hash mixes both halves of id into a well-spread 64-bit hash. */
static inline uint64_t rly_id_hash(relay_id id)
{
    uint64_t a, b;
    memcpy(&a, id.bytes, 8);
    memcpy(&b, id.bytes + 8, 8);
    uint64_t h = a ^ (b * 0x9e3779b97f4a7c15ULL);
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}

/* rly_id_same compares two ids with two 64-bit loads. */
static inline int rly_id_same(const relay_id *a, const relay_id *b)
{
    uint64_t a0, a1, b0, b1;
    memcpy(&a0, a->bytes, 8);
    memcpy(&a1, a->bytes + 8, 8);
    memcpy(&b0, b->bytes, 8);
    memcpy(&b1, b->bytes + 8, 8);
    return a0 == b0 && a1 == b1;
}

#endif
