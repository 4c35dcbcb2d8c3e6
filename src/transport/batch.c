/* Trajectory batches: header, frames of envelopes, strict parsing (see batch.h). */
#include "transport/batch.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"

#define MOD "batch"

static const uint8_t magic[4] = {'R', 'L', 'Y', 'B'};

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

relay_err rly_batch_begin(relay_codec_buf *b, relay_id producer, uint64_t seq)
{
    if (!b)
        return RELAY_EINVAL;
    relay_err e = relay_codec_buf_reserve(b, RLY_BATCH_HEADER);
    if (e)
        return e;
    uint8_t *p = b->data;
    memcpy(p, magic, 4);
    p[4] = 1;
    p[5] = p[6] = p[7] = 0;
    memcpy(p + 8, producer.bytes, 16);
    put_u64(p + 24, seq);
    put_u32(p + 32, 0);
    b->len = RLY_BATCH_HEADER;
    return RELAY_OK;
}

uint32_t rly_batch_count(const relay_codec_buf *b)
{
    return b && b->len >= RLY_BATCH_HEADER ? get_u32(b->data + 32) : 0;
}

relay_err rly_batch_add(relay_codec_buf *b, const void *env, size_t len)
{
    if (!b || b->len < RLY_BATCH_HEADER || (!env && len))
        return RELAY_EINVAL;
    uint32_t n = get_u32(b->data + 32);
    if (n >= RLY_BATCH_MAX_COUNT)
        return RELAY_ETOOBIG;
    relay_err e = relay_codec_frame_append(b, env, len);
    if (e)
        return e;
    put_u32(b->data + 32, n + 1);
    return RELAY_OK;
}

relay_err rly_batch_parse(const void *data, size_t len, size_t max_frame, rly_batch_hdr *h)
{
    const uint8_t *p = data;
    if (!data && len)
        return RELAY_EINVAL;
    if (len < RLY_BATCH_HEADER) {
        rly_warn(MOD, "batch of %zu bytes is shorter than its %d-byte header", len,
                 RLY_BATCH_HEADER);
        return RELAY_ETRUNCATED;
    }
    if (memcmp(p, magic, 4)) {
        rly_warn(MOD, "batch magic is not RLYB");
        return RELAY_EFORMAT;
    }
    if (p[4] != 1) {
        rly_warn(MOD, "batch version %u is not 1", p[4]);
        return RELAY_EVERSION;
    }
    if (p[5] || p[6] || p[7]) {
        rly_warn(MOD, "batch reserved bytes are not zero");
        return RELAY_EFORMAT;
    }
    uint32_t count = get_u32(p + 32);
    if (count > RLY_BATCH_MAX_COUNT) {
        rly_warn(MOD, "batch declares %u trajectories, above the limit %d", count,
                 RLY_BATCH_MAX_COUNT);
        return RELAY_ETOOBIG;
    }
    size_t off = RLY_BATCH_HEADER;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *msg;
        size_t ml, used;
        relay_err e = relay_codec_frame_parse(p + off, len - off, max_frame, &msg, &ml, &used);
        if (e == RELAY_EAGAIN) {
            rly_warn(MOD, "batch ends inside trajectory %u of %u", i, count);
            return RELAY_ETRUNCATED;
        }
        if (e) {
            rly_warn(MOD, "batch frame %u: %s", i, relay_strerror(e));
            return e;
        }
        off += used;
    }
    if (off != len) {
        rly_warn(MOD, "batch has %zu bytes after its %u trajectories", len - off, count);
        return RELAY_EFORMAT;
    }
    if (h) {
        memcpy(h->producer.bytes, p + 8, 16);
        h->seq = get_u64(p + 24);
        h->count = count;
    }
    return RELAY_OK;
}

relay_err rly_batch_next(const void *data, size_t len, size_t *off, const uint8_t **env,
                         size_t *env_len)
{
    if (!data || !off || !env || !env_len)
        return RELAY_EINVAL;
    if (*off < RLY_BATCH_HEADER)
        *off = RLY_BATCH_HEADER;
    if (*off >= len)
        return RELAY_EEMPTY;
    size_t used;
    relay_err e =
        relay_codec_frame_parse((const uint8_t *)data + *off, len - *off, len, env, env_len, &used);
    if (e)
        return e == RELAY_EAGAIN ? RELAY_ETRUNCATED : e;
    *off += used;
    return RELAY_OK;
}

void rly_batch_msg_id(relay_id producer, uint64_t seq, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    char h[33];
    for (int i = 0; i < 16; i++) {
        h[2 * i] = hex[producer.bytes[i] >> 4];
        h[2 * i + 1] = hex[producer.bytes[i] & 15];
    }
    h[32] = 0;
    snprintf(out, cap, "%s:%llu", h, (unsigned long long)seq);
}
