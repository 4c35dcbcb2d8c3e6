/* Central inference request and reply frames (infer_wire.h). */
#include "transport/infer_wire.h"

#include <stdio.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the inference wire format is written for little-endian hosts"
#endif

#define MAGIC_REQ 0x31514952u /* "RIQ1" */
#define MAGIC_REP 0x31524952u /* "RIR1" */
#define WIRE_VERSION 1u

static void put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
}
static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}
static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}
static uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

uint32_t rly_iw_draws(uint32_t n_actions, uint32_t act_dim, bool deterministic)
{
    if (deterministic)
        return 0;
    return n_actions ? 1 : act_dim;
}

size_t rly_iw_req_size(uint32_t rows, uint32_t obs_dim, uint32_t n_actions, uint32_t act_dim,
                       bool deterministic, bool has_mask)
{
    if (rows == 0 || rows > RLY_IW_MAX_ROWS || obs_dim == 0 || obs_dim > RLY_IW_MAX_OBS ||
        n_actions > RLY_IW_MAX_ACT || act_dim == 0 || act_dim > RLY_IW_MAX_ACT ||
        (n_actions && act_dim != 1) || (has_mask && !n_actions))
        return 0;
    uint64_t r = rows, draws = rly_iw_draws(n_actions, act_dim, deterministic);
    uint64_t n = RLY_IW_HDR + r * draws * 8 + r * obs_dim * 4 + (has_mask ? r * n_actions : 0);
    return n > RLY_IW_MAX_BYTES ? 0 : (size_t)n;
}

relay_err rly_iw_req_encode(uint8_t *out, size_t cap, size_t *len, uint64_t id, uint32_t rows,
                            uint32_t obs_dim, uint32_t n_actions, uint32_t act_dim,
                            bool deterministic, const double *rand, const float *obs,
                            const uint8_t *mask)
{
    size_t n = rly_iw_req_size(rows, obs_dim, n_actions, act_dim, deterministic, mask != NULL);
    if (n == 0)
        return RELAY_EINVAL;
    if (n > cap)
        return RELAY_ETOOBIG;
    uint32_t draws = rly_iw_draws(n_actions, act_dim, deterministic);
    memset(out, 0, RLY_IW_HDR);
    put32(out, MAGIC_REQ);
    put16(out + 4, WIRE_VERSION);
    put16(out + 6,
          (uint16_t)((deterministic ? RLY_IW_DETERMINISTIC : 0) | (mask ? RLY_IW_MASKS : 0)));
    put64(out + 8, id);
    put32(out + 16, rows);
    put32(out + 20, obs_dim);
    put32(out + 24, n_actions);
    put32(out + 28, act_dim);
    put32(out + 32, draws);
    uint8_t *p = out + RLY_IW_HDR;
    size_t nr = (size_t)rows * draws * 8, no = (size_t)rows * obs_dim * 4;
    if (nr)
        memcpy(p, rand, nr);
    memcpy(p + nr, obs, no);
    if (mask)
        memcpy(p + nr + no, mask, (size_t)rows * n_actions);
    *len = n;
    return RELAY_OK;
}

/* True when the n bytes at p are all zero (the reserved header fields). */
static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static relay_err bad(char *why, size_t cap, relay_err e, const char *fmt, unsigned long long v,
                     unsigned long long lim)
{
    if (cap)
        snprintf(why, cap, fmt, v, lim);
    return e;
}

relay_err rly_iw_req_decode(const void *data, size_t len, rly_iw_req *out, char *why,
                            size_t why_cap)
{
    const uint8_t *p = data;
    if (len < RLY_IW_HDR)
        return bad(why, why_cap, RELAY_EFORMAT,
                   "inference request of %llu bytes is shorter than its %llu-byte header", len,
                   RLY_IW_HDR);
    if (len > RLY_IW_MAX_BYTES)
        return bad(why, why_cap, RELAY_ETOOBIG,
                   "inference request of %llu bytes exceeds the limit of %llu bytes", len,
                   RLY_IW_MAX_BYTES);
    if (get32(p) != MAGIC_REQ)
        return bad(why, why_cap, RELAY_EFORMAT,
                   "not an inference request (magic %#llx, want %#llx)", get32(p), MAGIC_REQ);
    if (get16(p + 4) != WIRE_VERSION)
        return bad(why, why_cap, RELAY_EFORMAT,
                   "inference request wire version %llu (this server speaks %llu)", get16(p + 4),
                   WIRE_VERSION);
    uint16_t flags = get16(p + 6);
    if (flags & ~(RLY_IW_DETERMINISTIC | RLY_IW_MASKS))
        return bad(why, why_cap, RELAY_EFORMAT,
                   "unknown inference request flags %#llx (known %#llx)", flags,
                   RLY_IW_DETERMINISTIC | RLY_IW_MASKS);
    if (!all_zero(p + 36, RLY_IW_HDR - 36))
        return bad(why, why_cap, RELAY_EFORMAT,
                   "inference request header bytes %llu..%llu are reserved and must be zero", 36,
                   RLY_IW_HDR - 1);
    memset(out, 0, sizeof *out);
    out->id = get64(p + 8);
    out->rows = get32(p + 16);
    out->obs_dim = get32(p + 20);
    out->n_actions = get32(p + 24);
    out->act_dim = get32(p + 28);
    out->draws = get32(p + 32);
    out->deterministic = flags & RLY_IW_DETERMINISTIC;
    out->has_mask = flags & RLY_IW_MASKS;
    if (out->rows == 0 || out->rows > RLY_IW_MAX_ROWS)
        return bad(why, why_cap, RELAY_ETOOBIG, "inference request of %llu rows (limit 1..%llu)",
                   out->rows, RLY_IW_MAX_ROWS);
    if (out->obs_dim == 0 || out->obs_dim > RLY_IW_MAX_OBS)
        return bad(why, why_cap, RELAY_ETOOBIG,
                   "inference request with observations of %llu elements (limit 1..%llu)",
                   out->obs_dim, RLY_IW_MAX_OBS);
    if (out->n_actions > RLY_IW_MAX_ACT)
        return bad(why, why_cap, RELAY_ETOOBIG, "inference request with %llu actions (limit %llu)",
                   out->n_actions, RLY_IW_MAX_ACT);
    if (out->act_dim == 0 || out->act_dim > RLY_IW_MAX_ACT)
        return bad(why, why_cap, RELAY_ETOOBIG,
                   "inference request with %llu action dimensions (limit 1..%llu)", out->act_dim,
                   RLY_IW_MAX_ACT);
    if (out->n_actions && out->act_dim != 1)
        return bad(why, why_cap, RELAY_EFORMAT,
                   "discrete inference request with %llu action dimensions (want %llu)",
                   out->act_dim, 1);
    if (out->has_mask && !out->n_actions)
        return bad(why, why_cap, RELAY_EFORMAT,
                   "continuous inference request with masks (%llu actions, want > %llu)", 0, 0);
    uint32_t want = rly_iw_draws(out->n_actions, out->act_dim, out->deterministic);
    if (out->draws != want)
        return bad(why, why_cap, RELAY_EFORMAT,
                   "inference request with %llu random draws per row (want %llu)", out->draws,
                   want);
    size_t need = rly_iw_req_size(out->rows, out->obs_dim, out->n_actions, out->act_dim,
                                  out->deterministic, out->has_mask);
    if (need == 0)
        return bad(why, why_cap, RELAY_ETOOBIG,
                   "inference request of %llu rows would exceed %llu bytes", out->rows,
                   RLY_IW_MAX_BYTES);
    if (need != len)
        return bad(why, why_cap, RELAY_EFORMAT,
                   "inference request is %llu bytes but its header describes %llu", len, need);
    const uint8_t *b = p + RLY_IW_HDR;
    out->rand = b;
    out->obs = b + (size_t)out->rows * out->draws * 8;
    out->mask = out->has_mask ? out->obs + (size_t)out->rows * out->obs_dim * 4 : NULL;
    return RELAY_OK;
}

size_t rly_iw_rep_size(uint32_t rows, uint32_t width)
{
    return RLY_IW_HDR + (size_t)rows * width * 4 + (size_t)rows * 8;
}

void rly_iw_rep_layout(uint8_t *out, uint64_t id, int64_t version, uint32_t rows, uint32_t width,
                       void **actions, float **logp, float **value)
{
    memset(out, 0, RLY_IW_HDR);
    put32(out, MAGIC_REP);
    put16(out + 4, WIRE_VERSION);
    put64(out + 8, id);
    put64(out + 16, (uint64_t)version);
    put32(out + 28, rows);
    put32(out + 32, width);
    uint8_t *b = out + RLY_IW_HDR;
    *actions = b;
    *logp = (float *)(void *)(b + (size_t)rows * width * 4);
    *value = *logp + rows;
}

size_t rly_iw_rep_error(uint8_t *out, uint64_t id, int64_t version, relay_err status,
                        const char *text)
{
    size_t tl = text ? strlen(text) : 0;
    if (tl > RLY_IW_TEXT_MAX)
        tl = RLY_IW_TEXT_MAX;
    memset(out, 0, RLY_IW_HDR);
    put32(out, MAGIC_REP);
    put16(out + 4, WIRE_VERSION);
    put64(out + 8, id);
    put64(out + 16, (uint64_t)version);
    put32(out + 24, (uint32_t)(int32_t)status);
    put32(out + 36, (uint32_t)tl);
    if (tl)
        memcpy(out + RLY_IW_HDR, text, tl);
    return RLY_IW_HDR + tl;
}

relay_err rly_iw_rep_decode(const void *data, size_t len, rly_iw_rep *out)
{
    const uint8_t *p = data;
    if (len < RLY_IW_HDR || len > RLY_IW_MAX_BYTES || get32(p) != MAGIC_REP ||
        get16(p + 4) != WIRE_VERSION || !all_zero(p + 6, 2) || !all_zero(p + 40, RLY_IW_HDR - 40))
        return RELAY_EFORMAT;
    memset(out, 0, sizeof *out);
    out->id = get64(p + 8);
    out->version = (int64_t)get64(p + 16);
    int32_t st = (int32_t)get32(p + 24);
    out->rows = get32(p + 28);
    out->width = get32(p + 32);
    uint32_t tl = get32(p + 36);
    const uint8_t *b = p + RLY_IW_HDR;
    if (st != 0) {
        if (tl > RLY_IW_TEXT_MAX || len != RLY_IW_HDR + (size_t)tl)
            return RELAY_EFORMAT;
        /* a status this build does not know still reads as a failure */
        out->status = st > 0 && st < (int32_t)RELAY_ERR_COUNT_ ? (relay_err)st : RELAY_EIO;
        out->text = (const char *)b;
        out->text_len = tl;
        return RELAY_OK;
    }
    if (tl || out->rows == 0 || out->rows > RLY_IW_MAX_ROWS || out->width == 0 ||
        out->width > RLY_IW_MAX_ACT || len != rly_iw_rep_size(out->rows, out->width))
        return RELAY_EFORMAT;
    out->status = RELAY_OK;
    out->actions = b;
    out->logp = b + (size_t)out->rows * out->width * 4;
    out->value = out->logp + (size_t)out->rows * 4;
    return RELAY_OK;
}
