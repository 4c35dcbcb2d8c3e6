/*
 * Length-delimited framing: an unsigned LEB128 varint byte count, then that many bytes. The same
 * framing as protobuf's writeDelimitedTo/parseDelimitedFrom, so stock libraries read our streams.
 */
#include <errno.h>
#include <string.h>

#include "codec/codec_internal.h"
#include "core/log.h"

#define MOD RLY_CODEC_MOD

static size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

relay_err relay_codec_frame_append(relay_codec_buf *buf, const void *msg, size_t len)
{
    if (!buf || (len && !msg))
        return RELAY_EINVAL;
    if (len > SIZE_MAX - buf->len - RELAY_FRAME_MAX_PREFIX)
        return RELAY_ETOOBIG;
    if (relay_codec_buf_reserve(buf, buf->len + RELAY_FRAME_MAX_PREFIX + len))
        return RELAY_ENOMEM;
    buf->len += varint_put(buf->data + buf->len, len);
    if (len)
        memcpy(buf->data + buf->len, msg, len);
    buf->len += len;
    return RELAY_OK;
}

/* varint_get decodes a prefix: 0 ok, RELAY_EAGAIN when incomplete, RELAY_EFORMAT when invalid. */
static relay_err varint_get(const uint8_t *p, size_t len, uint64_t *v, size_t *used)
{
    uint64_t x = 0;
    for (size_t i = 0; i < RELAY_FRAME_MAX_PREFIX; i++) {
        if (i == len)
            return RELAY_EAGAIN;
        uint64_t b = p[i];
        if (i == RELAY_FRAME_MAX_PREFIX - 1 && b > 1) {
            rly_warn(MOD, "frame: length varint overflows 64 bits");
            return RELAY_EFORMAT;
        }
        x |= (b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            *used = i + 1;
            return RELAY_OK;
        }
    }
    rly_warn(MOD, "frame: length varint longer than %d bytes", RELAY_FRAME_MAX_PREFIX);
    return RELAY_EFORMAT;
}

relay_err relay_codec_frame_parse(const void *data, size_t len, size_t max_frame,
                                  const uint8_t **msg, size_t *msg_len, size_t *consumed)
{
    if ((!data && len) || !msg || !msg_len || !consumed)
        return RELAY_EINVAL;
    const uint8_t *p = data;
    uint64_t n;
    size_t used;
    relay_err e = varint_get(p, len, &n, &used);
    if (e)
        return e;
    if (n > max_frame) {
        rly_warn(MOD, "frame: declared length %llu exceeds the limit %zu", (unsigned long long)n,
                 max_frame);
        return RELAY_ETOOBIG;
    }
    if (n > len - used)
        return RELAY_EAGAIN;
    *msg = p + used;
    *msg_len = (size_t)n;
    *consumed = used + (size_t)n;
    return RELAY_OK;
}

relay_err relay_codec_frame_write(FILE *f, const void *msg, size_t len)
{
    if (!f || (len && !msg))
        return RELAY_EINVAL;
    uint8_t pre[RELAY_FRAME_MAX_PREFIX];
    size_t np = varint_put(pre, len);
    if (fwrite(pre, 1, np, f) != np || (len && fwrite(msg, 1, len, f) != len)) {
        rly_warn(MOD, "frame: write failed: %s", strerror(errno));
        return RELAY_EIO;
    }
    return RELAY_OK;
}

relay_err relay_codec_frame_read(FILE *f, relay_codec_buf *buf, size_t max_frame)
{
    if (!f || !buf)
        return RELAY_EINVAL;
    buf->len = 0;
    uint8_t pre[RELAY_FRAME_MAX_PREFIX];
    size_t np = 0;
    uint64_t n = 0;
    size_t used = 0;
    for (;;) {
        int ch = fgetc(f);
        if (ch == EOF) {
            if (ferror(f)) {
                rly_warn(MOD, "frame: read failed: %s", strerror(errno));
                return RELAY_EIO;
            }
            if (np == 0)
                return RELAY_EEMPTY;
            rly_warn(MOD, "frame: end of file inside a length prefix");
            return RELAY_ETRUNCATED;
        }
        pre[np++] = (uint8_t)ch;
        relay_err e = varint_get(pre, np, &n, &used);
        if (e == RELAY_OK)
            break;
        if (e != RELAY_EAGAIN)
            return e;
    }
    if (n > max_frame) {
        rly_warn(MOD, "frame: declared length %llu exceeds the limit %zu", (unsigned long long)n,
                 max_frame);
        return RELAY_ETOOBIG;
    }
    if (relay_codec_buf_reserve(buf, n ? (size_t)n : 1))
        return RELAY_ENOMEM;
    size_t got = n ? fread(buf->data, 1, (size_t)n, f) : 0;
    if (got != n) {
        if (ferror(f)) {
            rly_warn(MOD, "frame: read failed: %s", strerror(errno));
            return RELAY_EIO;
        }
        rly_warn(MOD, "frame: end of file after %zu of %llu bytes", got, (unsigned long long)n);
        return RELAY_ETRUNCATED;
    }
    buf->len = (size_t)n;
    return RELAY_OK;
}
