/*
 * The codec object and the envelope around every encoded message.
 *
 * Sealing: protobuf bytes -> optional LZ4/zstd (kept only when smaller) -> optional
 * XChaCha20-Poly1305 with a random nonce and the first 16 header bytes as associated data ->
 * CRC-32C over every envelope byte except the CRC field itself.
 * Opening checks header fields, sizes and limits, then the CRC, then the auth tag, then that the
 * payload decompresses to exactly the declared size: nothing is trusted before its check.
 */
#include <limits.h>
#include <lz4.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec_internal.h"
#include "core/log.h"

#define MOD RLY_CODEC_MOD

static const uint8_t magic[4] = {'R', 'L', 'Y', 'E'};

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

relay_err relay_codec_buf_reserve(relay_codec_buf *buf, size_t cap)
{
    if (!buf)
        return RELAY_EINVAL;
    if (cap <= buf->cap)
        return RELAY_OK;
    size_t ncap = buf->cap ? buf->cap : 256;
    while (ncap < cap)
        ncap = ncap > SIZE_MAX / 2 ? cap : ncap * 2;
    uint8_t *p = realloc(buf->data, ncap);
    if (!p)
        return RELAY_ENOMEM;
    buf->data = p;
    buf->cap = ncap;
    return RELAY_OK;
}

void relay_codec_buf_fini(relay_codec_buf *buf)
{
    if (!buf)
        return;
    free(buf->data);
    memset(buf, 0, sizeof *buf);
}

relay_codec_limits relay_codec_limits_default(void)
{
    return (relay_codec_limits){
        .max_message_bytes = (size_t)64 << 20,
        .max_rank = RELAY_MAX_RANK,
        .max_elements = (uint64_t)16 << 20,
        .max_steps = 1u << 20,
        .max_actors = 65536,
    };
}

void relay_codec_options_default(relay_codec_options *o)
{
    if (!o)
        return;
    memset(o, 0, sizeof *o);
    o->compression = RELAY_COMPRESS_LZ4;
    o->zstd_level = 3;
    o->limits = relay_codec_limits_default();
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

relay_err relay_codec_key_from_hex(const char *hex, uint8_t key[RELAY_KEY_BYTES])
{
    if (!hex || !key)
        return RELAY_EINVAL;
    if (strlen(hex) != 2 * RELAY_KEY_BYTES) {
        rly_warn(MOD, "key must be %d hex characters, got %zu", 2 * RELAY_KEY_BYTES, strlen(hex));
        return RELAY_EFORMAT;
    }
    uint8_t tmp[RELAY_KEY_BYTES];
    for (int i = 0; i < RELAY_KEY_BYTES; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            rly_warn(MOD, "key has a non-hex character at position %d", hi < 0 ? 2 * i : 2 * i + 1);
            sodium_memzero(tmp, sizeof tmp);
            return RELAY_EFORMAT;
        }
        tmp[i] = (uint8_t)(hi << 4 | lo);
    }
    memcpy(key, tmp, RELAY_KEY_BYTES);
    sodium_memzero(tmp, sizeof tmp);
    return RELAY_OK;
}

/* ---- arena allocator for protobuf-c unpacking ---- */

static void *arena_alloc(void *ud, size_t size)
{
    rly_arena *a = ud;
    if (size > SIZE_MAX - 32)
        return NULL;
    size = (size + 15) & ~(size_t)15;
    if (size > a->limit || a->used + a->big_bytes > a->limit - size) {
        a->over_limit = true;
        return NULL;
    }
    if (a->cap - a->used >= size) {
        void *p = a->base + a->used;
        a->used += size;
        return p;
    }
    if (a->n_big == a->cap_big) {
        size_t ncap = a->cap_big ? a->cap_big * 2 : 16;
        void **nb = realloc(a->big, ncap * sizeof *nb);
        if (!nb)
            return NULL;
        a->big = nb;
        a->cap_big = ncap;
    }
    void *p = malloc(size);
    if (!p)
        return NULL;
    a->big[a->n_big++] = p;
    a->big_bytes += size;
    return p;
}

static void arena_free(void *ud, void *p)
{
    (void)ud;
    (void)p; /* released all at once by rly_arena_reset */
}

void rly_arena_reset(rly_arena *a)
{
    if (a->n_big) {
        size_t want = a->cap + a->big_bytes;
        for (size_t i = 0; i < a->n_big; i++)
            free(a->big[i]);
        a->n_big = 0;
        a->big_bytes = 0;
        /* Grow the base block so the next message of this size needs no malloc. */
        if (want <= a->limit) {
            uint8_t *nb = malloc(want);
            if (nb) {
                free(a->base);
                a->base = nb;
                a->cap = want;
            }
        }
    }
    a->used = 0;
    a->over_limit = false;
}

void rly_arena_fini(rly_arena *a)
{
    rly_arena_reset(a);
    free(a->base);
    free(a->big);
    memset(a, 0, sizeof *a);
}

/* ---- codec object ---- */

relay_err relay_codec_new(const relay_codec_options *o, relay_codec **out)
{
    if (!out)
        return RELAY_EINVAL;
    *out = NULL;
    if (sodium_init() < 0) {
        rly_error(MOD, "libsodium failed to initialise");
        return RELAY_EINTERNAL;
    }
    relay_codec_options opt;
    if (o)
        opt = *o;
    else
        relay_codec_options_default(&opt);
    if (opt.compression != RELAY_COMPRESS_NONE && opt.compression != RELAY_COMPRESS_LZ4 &&
        opt.compression != RELAY_COMPRESS_ZSTD) {
        rly_warn(MOD, "unknown compression %d", (int)opt.compression);
        return RELAY_ECONFIG;
    }
    if (opt.compression == RELAY_COMPRESS_ZSTD &&
        (opt.zstd_level < 1 || opt.zstd_level > ZSTD_maxCLevel())) {
        rly_warn(MOD, "zstd level %d outside 1..%d", opt.zstd_level, ZSTD_maxCLevel());
        return RELAY_ECONFIG;
    }
    relay_codec_limits *L = &opt.limits;
    if (L->max_message_bytes < RELAY_ENVELOPE_HEADER || L->max_message_bytes > (size_t)INT_MAX ||
        L->max_rank > RELAY_MAX_RANK) {
        rly_warn(MOD, "invalid limits: max_message_bytes %zu (%d..%d), max_rank %u (<= %d)",
                 L->max_message_bytes, RELAY_ENVELOPE_HEADER, INT_MAX, L->max_rank, RELAY_MAX_RANK);
        return RELAY_ECONFIG;
    }
    if (!opt.has_key) {
        const char *env = getenv("RELAY_KEY");
        if (env && *env) {
            if (relay_codec_key_from_hex(env, opt.key) != RELAY_OK) {
                rly_warn(MOD, "RELAY_KEY must hold 64 hex characters");
                return RELAY_ECONFIG;
            }
            opt.has_key = true;
        }
    }
    if (opt.encrypt && !opt.has_key) {
        rly_warn(MOD, "encryption requested but no key configured (options or RELAY_KEY)");
        return RELAY_ECONFIG;
    }
    relay_codec *c = calloc(1, sizeof *c);
    if (!c)
        return RELAY_ENOMEM;
    c->opt = opt;
    sodium_memzero(&opt, sizeof opt);
    c->zc = ZSTD_createCCtx();
    c->zd = ZSTD_createDCtx();
    if (!c->zc || !c->zd) {
        relay_codec_free(c);
        return RELAY_ENOMEM;
    }
    c->arena.limit = 4 * c->opt.limits.max_message_bytes + ((size_t)1 << 20);
    c->alloc.alloc = arena_alloc;
    c->alloc.free = arena_free;
    c->alloc.allocator_data = &c->arena;
    *out = c;
    return RELAY_OK;
}

void relay_codec_free(relay_codec *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->zc);
    ZSTD_freeDCtx(c->zd);
    relay_codec_buf_fini(&c->pb);
    relay_codec_buf_fini(&c->comp);
    if (c->plain.data)
        sodium_memzero(c->plain.data, c->plain.cap);
    relay_codec_buf_fini(&c->plain);
    relay_codec_buf_fini(&c->raw);
    rly_arena_fini(&c->arena);
    sodium_memzero(&c->opt, sizeof c->opt);
    free(c);
}

const relay_codec_options *relay_codec_get_options(const relay_codec *c)
{
    return c ? &c->opt : NULL;
}

const char *relay_msg_kind_name(relay_msg_kind kind)
{
    static const char *const names[] = {"none",
                                        "trajectory",
                                        "action",
                                        "model_bundle",
                                        "handshake",
                                        "model_version_request",
                                        "model_version_reply",
                                        "model_update",
                                        "shutdown",
                                        "flag_last_action",
                                        "actor_stats"};
    if ((unsigned)kind >= sizeof names / sizeof names[0])
        return "none";
    return names[kind];
}

/* ---- sealing ---- */

relay_err rly_envelope_seal(relay_codec *c, relay_msg_kind kind, const uint8_t *pb, size_t n,
                            relay_codec_buf *out)
{
    const relay_codec_limits *L = &c->opt.limits;
    if (n > L->max_message_bytes) {
        rly_warn(MOD, "encode: %s message of %zu bytes exceeds max_message_bytes %zu",
                 relay_msg_kind_name(kind), n, L->max_message_bytes);
        return RELAY_ETOOBIG;
    }
    const uint8_t *payload = pb;
    size_t plen = n;
    uint8_t comp = RELAY_COMPRESS_NONE;
    if (c->opt.compression == RELAY_COMPRESS_LZ4 && n > 0) {
        int bound = LZ4_compressBound((int)n);
        if (bound <= 0 || relay_codec_buf_reserve(&c->comp, (size_t)bound))
            return RELAY_ENOMEM;
        int r = LZ4_compress_default((const char *)pb, (char *)c->comp.data, (int)n, bound);
        if (r <= 0) {
            rly_warn(MOD, "encode: LZ4 compression failed");
            return RELAY_ECOMPRESS;
        }
        if ((size_t)r < n) {
            payload = c->comp.data;
            plen = (size_t)r;
            comp = RELAY_COMPRESS_LZ4;
        }
    } else if (c->opt.compression == RELAY_COMPRESS_ZSTD && n > 0) {
        size_t bound = ZSTD_compressBound(n);
        if (relay_codec_buf_reserve(&c->comp, bound))
            return RELAY_ENOMEM;
        size_t r = ZSTD_compressCCtx(c->zc, c->comp.data, bound, pb, n, c->opt.zstd_level);
        if (ZSTD_isError(r)) {
            rly_warn(MOD, "encode: zstd compression failed: %s", ZSTD_getErrorName(r));
            return RELAY_ECOMPRESS;
        }
        if (r < n) {
            payload = c->comp.data;
            plen = r;
            comp = RELAY_COMPRESS_ZSTD;
        }
    }
    bool enc = c->opt.encrypt;
    size_t stored = plen + (enc ? RELAY_ENVELOPE_TAG : 0);
    size_t total = RELAY_ENVELOPE_HEADER + (enc ? RELAY_ENVELOPE_NONCE : 0) + stored;
    if (total > L->max_message_bytes) {
        rly_warn(MOD, "encode: envelope of %zu bytes exceeds max_message_bytes %zu", total,
                 L->max_message_bytes);
        return RELAY_ETOOBIG;
    }
    if (relay_codec_buf_reserve(out, total))
        return RELAY_ENOMEM;
    uint8_t *h = out->data;
    memcpy(h + RLY_ENV_OFF_MAGIC, magic, 4);
    h[RLY_ENV_OFF_VERSION] = RELAY_ENVELOPE_VERSION;
    h[RLY_ENV_OFF_FLAGS] = enc ? RLY_ENV_FLAG_ENCRYPTED : 0;
    h[RLY_ENV_OFF_COMPRESSION] = comp;
    h[RLY_ENV_OFF_KIND] = (uint8_t)kind;
    put_le32(h + RLY_ENV_OFF_STORED, (uint32_t)stored);
    put_le32(h + RLY_ENV_OFF_ORIGINAL, (uint32_t)n);
    uint8_t *body = h + RELAY_ENVELOPE_HEADER;
    if (enc) {
        uint8_t *nonce = body;
        randombytes_buf(nonce, RELAY_ENVELOPE_NONCE);
        unsigned long long clen = 0;
        if (crypto_aead_xchacha20poly1305_ietf_encrypt(body + RELAY_ENVELOPE_NONCE, &clen, payload,
                                                       plen, h, RLY_ENV_AD_BYTES, NULL, nonce,
                                                       c->opt.key) != 0 ||
            clen != stored) {
            rly_error(MOD, "encode: encryption failed");
            return RELAY_EINTERNAL;
        }
    } else if (plen) {
        memcpy(body, payload, plen);
    }
    uint32_t crc = relay_crc32c(0, h, RLY_ENV_OFF_CRC);
    crc = relay_crc32c(crc, body, total - RELAY_ENVELOPE_HEADER);
    put_le32(h + RLY_ENV_OFF_CRC, crc);
    out->len = total;
    return RELAY_OK;
}

/* ---- opening ---- */

relay_err relay_codec_peek(const void *data, size_t len, relay_msg_kind *kind, size_t *total)
{
    const uint8_t *h = data;
    if (!data || len < RELAY_ENVELOPE_HEADER)
        return RELAY_ETRUNCATED;
    if (memcmp(h, magic, 4) != 0)
        return RELAY_EFORMAT;
    if (h[RLY_ENV_OFF_VERSION] != RELAY_ENVELOPE_VERSION)
        return RELAY_EVERSION;
    bool enc = (h[RLY_ENV_OFF_FLAGS] & RLY_ENV_FLAG_ENCRYPTED) != 0;
    if (kind)
        *kind = (relay_msg_kind)h[RLY_ENV_OFF_KIND];
    if (total)
        *total = RELAY_ENVELOPE_HEADER + (enc ? RELAY_ENVELOPE_NONCE : 0) +
                 (size_t)get_le32(h + RLY_ENV_OFF_STORED);
    return RELAY_OK;
}

relay_err rly_envelope_open(relay_codec *c, const uint8_t *data, size_t len, relay_msg_kind *kind,
                            const uint8_t **pb, size_t *n)
{
    const relay_codec_limits *L = &c->opt.limits;
    if (!data || len < RELAY_ENVELOPE_HEADER) {
        rly_warn(MOD, "decode: %zu bytes is shorter than the %d-byte envelope header", len,
                 RELAY_ENVELOPE_HEADER);
        return RELAY_ETRUNCATED;
    }
    const uint8_t *h = data;
    if (memcmp(h, magic, 4) != 0) {
        rly_warn(MOD, "decode: bad magic %02x%02x%02x%02x", h[0], h[1], h[2], h[3]);
        return RELAY_EFORMAT;
    }
    if (h[RLY_ENV_OFF_VERSION] != RELAY_ENVELOPE_VERSION) {
        rly_warn(MOD, "decode: envelope version %u, this build reads %d", h[RLY_ENV_OFF_VERSION],
                 RELAY_ENVELOPE_VERSION);
        return RELAY_EVERSION;
    }
    uint8_t flags = h[RLY_ENV_OFF_FLAGS], comp = h[RLY_ENV_OFF_COMPRESSION];
    uint8_t k = h[RLY_ENV_OFF_KIND];
    if (flags & ~RLY_ENV_FLAGS_KNOWN) {
        rly_warn(MOD, "decode: unknown envelope flags 0x%02x", flags);
        return RELAY_EFORMAT;
    }
    if (comp > RELAY_COMPRESS_ZSTD) {
        rly_warn(MOD, "decode: unknown compression %u", comp);
        return RELAY_EFORMAT;
    }
    if (k < RELAY_MSG_TRAJECTORY || k > RELAY_MSG_ACTOR_STATS) {
        rly_warn(MOD, "decode: unknown message kind %u", k);
        return RELAY_EFORMAT;
    }
    size_t stored = get_le32(h + RLY_ENV_OFF_STORED);
    size_t original = get_le32(h + RLY_ENV_OFF_ORIGINAL);
    bool enc = flags & RLY_ENV_FLAG_ENCRYPTED;
    size_t need = RELAY_ENVELOPE_HEADER + (enc ? RELAY_ENVELOPE_NONCE : 0) + stored;
    if (original > L->max_message_bytes || need > L->max_message_bytes) {
        rly_warn(MOD,
                 "decode: declared sizes (stored %zu, original %zu) exceed max_message_bytes %zu",
                 stored, original, L->max_message_bytes);
        return RELAY_ETOOBIG;
    }
    if (len < need) {
        rly_warn(MOD, "decode: envelope declares %zu bytes, only %zu present", need, len);
        return RELAY_ETRUNCATED;
    }
    if (len > need) {
        rly_warn(MOD, "decode: %zu trailing bytes after the envelope", len - need);
        return RELAY_EFORMAT;
    }
    if (enc && stored < RELAY_ENVELOPE_TAG) {
        rly_warn(MOD, "decode: encrypted payload of %zu bytes has no room for its tag", stored);
        return RELAY_EFORMAT;
    }
    size_t plen = stored - (enc ? RELAY_ENVELOPE_TAG : 0);
    if (comp == RELAY_COMPRESS_NONE && plen != original) {
        rly_warn(MOD, "decode: uncompressed payload of %zu bytes declares original size %zu", plen,
                 original);
        return RELAY_EFORMAT;
    }
    const uint8_t *body = h + RELAY_ENVELOPE_HEADER;
    uint32_t crc = relay_crc32c(0, h, RLY_ENV_OFF_CRC);
    crc = relay_crc32c(crc, body, len - RELAY_ENVELOPE_HEADER);
    if (crc != get_le32(h + RLY_ENV_OFF_CRC)) {
        rly_warn(MOD, "decode: CRC-32C mismatch (computed %08x, stored %08x)", crc,
                 get_le32(h + RLY_ENV_OFF_CRC));
        return RELAY_ECHECKSUM;
    }
    const uint8_t *payload = body;
    if (enc) {
        if (!c->opt.has_key) {
            rly_warn(MOD, "decode: message is encrypted but no key is configured");
            return RELAY_EAUTH;
        }
        if (relay_codec_buf_reserve(&c->plain, plen ? plen : 1))
            return RELAY_ENOMEM;
        unsigned long long mlen = 0;
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(c->plain.data, &mlen, NULL,
                                                       body + RELAY_ENVELOPE_NONCE, stored, h,
                                                       RLY_ENV_AD_BYTES, body, c->opt.key) != 0 ||
            mlen != plen) {
            rly_warn(MOD, "decode: authentication failed (wrong key or tampered message)");
            return RELAY_EAUTH;
        }
        payload = c->plain.data;
    } else if (c->opt.encrypt) {
        rly_warn(MOD, "decode: plaintext message rejected (this codec requires encryption)");
        return RELAY_EAUTH;
    }
    if (comp == RELAY_COMPRESS_NONE) {
        *pb = payload;
        *n = plen;
    } else if (comp == RELAY_COMPRESS_LZ4) {
        if (relay_codec_buf_reserve(&c->raw, original ? original : 1))
            return RELAY_ENOMEM;
        int r = LZ4_decompress_safe((const char *)payload, (char *)c->raw.data, (int)plen,
                                    (int)original);
        if (r < 0 || (size_t)r != original) {
            rly_warn(MOD, "decode: LZ4 payload does not decompress to the declared %zu bytes (%d)",
                     original, r);
            return RELAY_ECOMPRESS;
        }
        *pb = c->raw.data;
        *n = original;
    } else {
        unsigned long long fcs = ZSTD_getFrameContentSize(payload, plen);
        if (fcs == ZSTD_CONTENTSIZE_ERROR) {
            rly_warn(MOD, "decode: payload is not a zstd frame");
            return RELAY_ECOMPRESS;
        }
        if (fcs != ZSTD_CONTENTSIZE_UNKNOWN && fcs != original) {
            rly_warn(MOD, "decode: zstd frame declares %llu bytes, envelope declares %zu", fcs,
                     original);
            return RELAY_ECOMPRESS;
        }
        if (relay_codec_buf_reserve(&c->raw, original ? original : 1))
            return RELAY_ENOMEM;
        size_t r = ZSTD_decompressDCtx(c->zd, c->raw.data, original, payload, plen);
        if (ZSTD_isError(r) || r != original) {
            rly_warn(MOD, "decode: zstd payload does not decompress to the declared %zu bytes (%s)",
                     original, ZSTD_isError(r) ? ZSTD_getErrorName(r) : "size differs");
            return RELAY_ECOMPRESS;
        }
        *pb = c->raw.data;
        *n = original;
    }
    *kind = (relay_msg_kind)k;
    return RELAY_OK;
}
