/*
 * Learner checkpoints: the complete state of a relay_ppo (network parameters, Adam moments and
 * step, observation statistics, RNG streams, update and timestep counts) plus the learner's
 * counters and an opaque caller blob, in one little-endian file with a magic, a format number,
 * a length and a CRC-32C. Written to a temporary file, fsync'd, then renamed over the target.
 *
 * Layout (format 3; format 2 lacks the streams' episodes in progress and still loads; format 1
 * had no reward normalisation and is refused with a clear message):
 *   "RLYCKPT\0"  u32 format  u32 reserved(0)  u64 payload_len  payload  u32 crc32c(all before)
 * payload: network identity (spaces, hidden layers, activation, shared, normalize_obs, algo,
 * n_params), informational hyperparameters, ppo counters and RNGs, learner counters and the
 * return window, then params[n], adam_m[n], adam_v[n] (f32), rms_mean[obs], rms_var[obs],
 * rms_count (f64), reward normalisation ret_mean, ret_var, ret_count (f64), u32 n_streams and
 * each stream's discounted return (f64), u32 n_ep and per stream (format 3) u8 flags (1 known,
 * 2 open), i64 episode, f64 return so far, then u64 extra_len and the extra bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "learn/learn_internal.h"
#include "relay/codec.h"

#define MOD "checkpoint"

static const char ckpt_magic[8] = {'R', 'L', 'Y', 'C', 'K', 'P', 'T', '\0'};
#define CKPT_FORMAT 3u
#define CKPT_FORMAT_OLDEST 2u /* still read (learner-exact without the episodes in progress) */
#define CKPT_HEADER 24u       /* magic, format, reserved, payload_len */

/* ---- encoding ------------------------------------------------------------------------------- */

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(wbuf *b, uint32_t v)
{
    uint8_t x[4];
    for (int i = 0; i < 4; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, 4);
}

static void put_u64(wbuf *b, uint64_t v)
{
    uint8_t x[8];
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(v >> (8 * i));
    put(b, x, 8);
}

static void put_f32(wbuf *b, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    put_u32(b, u);
}

static void put_f64(wbuf *b, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    put_u64(b, u);
}

static void put_rng(wbuf *b, const rly_rng *r)
{
    for (int i = 0; i < 4; i++)
        put_u64(b, r->s[i]);
}

/* rbuf reads the payload; any read past the end sets short_read and yields zeros. */
typedef struct rbuf {
    const uint8_t *p;
    size_t len, off;
    bool short_read;
} rbuf;

static void get(rbuf *b, void *dst, size_t n)
{
    if (b->short_read || n > b->len - b->off) {
        b->short_read = true;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, b->p + b->off, n);
    b->off += n;
}

static uint32_t get_u32(rbuf *b)
{
    uint8_t x[4];
    get(b, x, 4);
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)x[i] << (8 * i);
    return v;
}

static uint64_t get_u64(rbuf *b)
{
    uint8_t x[8];
    get(b, x, 8);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)x[i] << (8 * i);
    return v;
}

static float get_f32(rbuf *b)
{
    uint32_t u = get_u32(b);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double get_f64(rbuf *b)
{
    uint64_t u = get_u64(b);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static void get_rng(rbuf *b, rly_rng *r)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = get_u64(b);
}

/* ---- network identity ----------------------------------------------------------------------- */

/* ident is what must match between a checkpoint and the learner loading it. */
typedef struct ident {
    uint32_t obs_dim, discrete, n_actions, act_dim, n_hidden, hidden[RELAY_LEARN_MAX_HIDDEN];
    uint32_t activation, shared, normalize_obs, algo, normalize_reward;
    uint64_t n_params;
} ident;

static void ident_of(const relay_ppo *p, ident *id)
{
    const relay_policy_spec *s = &p->pol->spec;
    memset(id, 0, sizeof *id);
    id->obs_dim = s->obs_dim;
    id->discrete = s->discrete;
    id->n_actions = s->discrete ? s->n_actions : 0;
    id->act_dim = s->discrete ? 1 : s->act_dim;
    id->n_hidden = s->n_hidden;
    for (uint32_t i = 0; i < s->n_hidden && i < RELAY_LEARN_MAX_HIDDEN; i++)
        id->hidden[i] = s->hidden[i];
    id->activation = (uint32_t)s->activation;
    id->shared = s->shared;
    id->normalize_obs = s->normalize_obs;
    id->algo = (uint32_t)p->cfg.algo;
    id->normalize_reward = p->cfg.normalize_reward;
    id->n_params = p->pol->n_params;
}

static void ident_put(wbuf *b, const ident *id)
{
    put_u32(b, id->obs_dim);
    put_u32(b, id->discrete);
    put_u32(b, id->n_actions);
    put_u32(b, id->act_dim);
    put_u32(b, id->n_hidden);
    for (int i = 0; i < RELAY_LEARN_MAX_HIDDEN; i++)
        put_u32(b, id->hidden[i]);
    put_u32(b, id->activation);
    put_u32(b, id->shared);
    put_u32(b, id->normalize_obs);
    put_u32(b, id->algo);
    put_u32(b, id->normalize_reward);
    put_u64(b, id->n_params);
}

static void ident_get(rbuf *b, ident *id)
{
    id->obs_dim = get_u32(b);
    id->discrete = get_u32(b);
    id->n_actions = get_u32(b);
    id->act_dim = get_u32(b);
    id->n_hidden = get_u32(b);
    for (int i = 0; i < RELAY_LEARN_MAX_HIDDEN; i++)
        id->hidden[i] = get_u32(b);
    id->activation = get_u32(b);
    id->shared = get_u32(b);
    id->normalize_obs = get_u32(b);
    id->algo = get_u32(b);
    id->normalize_reward = get_u32(b);
    id->n_params = get_u64(b);
}

/* ident_str describes id for error messages, e.g. "obs 4, 2 actions, net 64,64 tanh separate". */
static void ident_str(const ident *id, char *out, size_t cap)
{
    char net[64] = "";
    size_t o = 0;
    for (uint32_t i = 0; i < id->n_hidden && i < RELAY_LEARN_MAX_HIDDEN && o < sizeof net; i++)
        o += (size_t)snprintf(net + o, sizeof net - o, "%s%u", i ? "," : "", id->hidden[i]);
    if (id->discrete)
        snprintf(out, cap,
                 "obs %u, %u discrete actions, net [%s] %s %s, obs-norm %s, reward-norm %s, %s",
                 id->obs_dim, id->n_actions, net, id->activation ? "relu" : "tanh",
                 id->shared ? "shared" : "separate", id->normalize_obs ? "on" : "off",
                 id->normalize_reward ? "on" : "off", id->algo ? "reinforce" : "ppo");
    else
        snprintf(out, cap,
                 "obs %u, %u-dim continuous actions, net [%s] %s %s, obs-norm %s, reward-norm %s, "
                 "%s",
                 id->obs_dim, id->act_dim, net, id->activation ? "relu" : "tanh",
                 id->shared ? "shared" : "separate", id->normalize_obs ? "on" : "off",
                 id->normalize_reward ? "on" : "off", id->algo ? "reinforce" : "ppo");
}

/* ---- encode / decode ------------------------------------------------------------------------ */

relay_err rly_ckpt_encode(const relay_ppo *p, const rly_ckpt_counters *c, const void *extra,
                          size_t extra_len, uint8_t **out, size_t *out_len)
{
    if (!p || !c || !out || !out_len || (extra_len && !extra)) {
        rly_error(MOD, "encode: NULL argument");
        return RELAY_EINVAL;
    }
    *out = NULL;
    *out_len = 0;
    if (extra_len > RLY_CKPT_MAX_EXTRA) {
        rly_error(MOD, "extra blob of %zu bytes exceeds the limit of %u bytes", extra_len,
                  RLY_CKPT_MAX_EXTRA);
        return RELAY_ETOOBIG;
    }
    const relay_policy *pol = p->pol;
    size_t n = pol->n_params;
    uint32_t d = pol->spec.obs_dim;
    wbuf b = {0};
    put(&b, ckpt_magic, sizeof ckpt_magic);
    put_u32(&b, CKPT_FORMAT);
    put_u32(&b, 0);
    put_u64(&b, 0); /* payload length, patched below */
    ident id;
    ident_of(p, &id);
    ident_put(&b, &id);
    /* informational hyperparameters */
    put_u32(&b, p->cfg.n_envs);
    put_u32(&b, p->cfg.n_steps);
    put_u64(&b, p->cfg.total_timesteps);
    put_u64(&b, p->cfg.seed);
    /* ppo state */
    put_u64(&b, p->timesteps);
    put_u32(&b, p->updates);
    put_rng(&b, &p->rng);
    put_rng(&b, &pol->rng);
    put_u64(&b, p->adam.t);
    /* learner counters */
    put_u64(&b, (uint64_t)c->version);
    put_u64(&b, c->steps_consumed);
    put_u64(&b, c->steps_received);
    put_u64(&b, c->steps_stale);
    put_u64(&b, c->steps_discarded);
    put_u64(&b, c->trajs_received);
    put_u64(&b, c->trajs_stale);
    put_u64(&b, c->episodes);
    put_u32(&b, c->updates);
    put_f32(&b, c->mean_return_100);
    put_f32(&b, c->last_return);
    for (int i = 0; i < RLY_CKPT_RET_WINDOW; i++)
        put_f32(&b, c->rets[i]);
    put_f64(&b, c->wall_s);
    /* arrays */
    for (size_t i = 0; i < n; i++)
        put_f32(&b, pol->params[i]);
    for (size_t i = 0; i < n; i++)
        put_f32(&b, p->adam.m[i]);
    for (size_t i = 0; i < n; i++)
        put_f32(&b, p->adam.v[i]);
    for (uint32_t i = 0; i < d; i++)
        put_f64(&b, pol->rms_mean[i]);
    for (uint32_t i = 0; i < d; i++)
        put_f64(&b, pol->rms_var[i]);
    put_f64(&b, pol->rms_count);
    put_f64(&b, p->ret_mean);
    put_f64(&b, p->ret_var);
    put_f64(&b, p->ret_count);
    put_u32(&b, p->cfg.n_envs);
    for (uint32_t i = 0; i < p->cfg.n_envs; i++)
        put_f64(&b, p->disc_ret[i]);
    put_u32(&b, c->ep ? c->n_ep : 0);
    for (uint32_t i = 0; c->ep && i < c->n_ep; i++) {
        uint8_t fl = (uint8_t)((c->ep[i].known ? 1u : 0u) | (c->ep[i].open ? 2u : 0u));
        put(&b, &fl, 1);
        put_u64(&b, (uint64_t)c->ep[i].ep_id);
        put_f64(&b, c->ep[i].ep_sum);
    }
    put_u64(&b, extra_len);
    if (extra_len)
        put(&b, extra, extra_len);
    if (b.oom) {
        free(b.p);
        return RELAY_ENOMEM;
    }
    uint64_t plen = b.len - CKPT_HEADER;
    for (int i = 0; i < 8; i++)
        b.p[16 + i] = (uint8_t)(plen >> (8 * i));
    put_u32(&b, relay_crc32c(0, b.p, b.len));
    if (b.oom) {
        free(b.p);
        return RELAY_ENOMEM;
    }
    *out = b.p;
    *out_len = b.len;
    return RELAY_OK;
}

/* check_header validates magic, format, length and CRC; *plen receives the payload length. */
static relay_err check_header(const uint8_t *buf, size_t len, const char *what, uint64_t *plen_out,
                              uint32_t *format_out)
{
    if (len < CKPT_HEADER + 4) {
        rly_error(MOD, "%s: %zu bytes is too short to be a checkpoint (truncated?)", what, len);
        return RELAY_ETRUNCATED;
    }
    if (memcmp(buf, ckpt_magic, sizeof ckpt_magic) != 0) {
        rly_error(MOD, "%s: not a Relay learner checkpoint (bad magic)", what);
        return RELAY_EFORMAT;
    }
    rbuf h = {.p = buf, .len = CKPT_HEADER, .off = 8};
    uint32_t format = get_u32(&h);
    (void)get_u32(&h);
    uint64_t plen = get_u64(&h);
    if (format < CKPT_FORMAT_OLDEST || format > CKPT_FORMAT) {
        rly_error(MOD,
                  "%s: checkpoint format %u, this build reads formats %u..%u only (%s); start a "
                  "fresh run or use the Relay version that wrote it",
                  what, format, CKPT_FORMAT_OLDEST, CKPT_FORMAT,
                  format < CKPT_FORMAT ? "written by an older Relay, before reward normalisation"
                                       : "written by a newer Relay");
        return RELAY_EVERSION;
    }
    if (plen != len - CKPT_HEADER - 4) {
        rly_error(MOD,
                  "%s: header announces %llu payload bytes, file holds %zu (truncated or "
                  "extended)",
                  what, (unsigned long long)plen, len - CKPT_HEADER - 4);
        return plen > len - CKPT_HEADER - 4 ? RELAY_ETRUNCATED : RELAY_EFORMAT;
    }
    uint32_t want = 0;
    for (int i = 0; i < 4; i++)
        want |= (uint32_t)buf[len - 4 + i] << (8 * i);
    if (relay_crc32c(0, buf, len - 4) != want) {
        rly_error(MOD, "%s: checksum mismatch (the file is corrupt)", what);
        return RELAY_ECHECKSUM;
    }
    *plen_out = plen;
    if (format_out)
        *format_out = format;
    return RELAY_OK;
}

/* get_counters reads the counters that follow the network identity. */
static void get_counters(rbuf *b, rly_ckpt_counters *k, uint64_t *timesteps, uint32_t *updates,
                         rly_rng *ppo_rng, rly_rng *pol_rng, uint64_t *adam_t)
{
    memset(k, 0, sizeof *k);
    k->n_envs = get_u32(b);
    k->n_steps = get_u32(b);
    k->total_timesteps = get_u64(b);
    k->seed = get_u64(b);
    *timesteps = get_u64(b);
    *updates = get_u32(b);
    get_rng(b, ppo_rng);
    get_rng(b, pol_rng);
    *adam_t = get_u64(b);
    k->version = (int64_t)get_u64(b);
    k->steps_consumed = get_u64(b);
    k->steps_received = get_u64(b);
    k->steps_stale = get_u64(b);
    k->steps_discarded = get_u64(b);
    k->trajs_received = get_u64(b);
    k->trajs_stale = get_u64(b);
    k->episodes = get_u64(b);
    k->updates = get_u32(b);
    k->mean_return_100 = get_f32(b);
    k->last_return = get_f32(b);
    for (int i = 0; i < RLY_CKPT_RET_WINDOW; i++)
        k->rets[i] = get_f32(b);
    k->wall_s = get_f64(b);
}

relay_err rly_ckpt_peek(const uint8_t *buf, size_t len, const char *what, rly_ckpt_counters *c)
{
    if (!buf || !c)
        return RELAY_EINVAL;
    if (!what)
        what = "checkpoint";
    uint64_t plen;
    relay_err e = check_header(buf, len, what, &plen, NULL);
    if (e)
        return e;
    rbuf b = {.p = buf + CKPT_HEADER, .len = (size_t)plen, .off = 0};
    ident id;
    memset(&id, 0, sizeof id);
    ident_get(&b, &id);
    uint64_t ts, at;
    uint32_t up;
    rly_rng r1, r2;
    get_counters(&b, c, &ts, &up, &r1, &r2, &at);
    if (b.short_read) {
        rly_error(MOD, "%s: payload ends inside the counters (truncated)", what);
        return RELAY_ETRUNCATED;
    }
    return RELAY_OK;
}

relay_err rly_ckpt_decode(const uint8_t *buf, size_t len, const char *what, relay_ppo *p,
                          rly_ckpt_counters *c, uint8_t **extra, size_t *extra_len)
{
    if (!buf || !p || !c) {
        rly_error(MOD, "decode: NULL argument");
        return RELAY_EINVAL;
    }
    if (!what)
        what = "checkpoint";
    if (extra) {
        *extra = NULL;
        *extra_len = 0;
    }
    uint64_t plen;
    uint32_t format = 0;
    relay_err he = check_header(buf, len, what, &plen, &format);
    if (he)
        return he;
    rbuf b = {.p = buf + CKPT_HEADER, .len = (size_t)plen, .off = 0};
    ident got, have;
    memset(&got, 0, sizeof got);
    ident_get(&b, &got);
    ident_of(p, &have);
    if (b.short_read) {
        rly_error(MOD, "%s: payload ends inside the network description", what);
        return RELAY_ETRUNCATED;
    }
    if (memcmp(&got, &have, sizeof got) != 0) {
        char gs[192], hs[192];
        ident_str(&got, gs, sizeof gs);
        ident_str(&have, hs, sizeof hs);
        rly_error(MOD,
                  "%s was written for a different network or spaces: checkpoint has %s; "
                  "this learner has %s",
                  what, gs, hs);
        return RELAY_ESHAPE;
    }
    rly_ckpt_counters k;
    uint64_t timesteps, adam_t;
    uint32_t updates;
    rly_rng ppo_rng, pol_rng;
    get_counters(&b, &k, &timesteps, &updates, &ppo_rng, &pol_rng, &adam_t);
    size_t n = p->pol->n_params;
    uint32_t d = p->pol->spec.obs_dim;
    size_t arrays = 3 * n * 4 + 2 * (size_t)d * 8 + 8 + 8;
    if (b.short_read || arrays > b.len - b.off) {
        rly_error(MOD, "%s: payload too short for %zu parameters (truncated)", what, n);
        return RELAY_ETRUNCATED;
    }
    if (k.version < 0 || k.version > (int64_t)1 << 40) {
        rly_error(MOD, "%s: policy version %lld out of range", what, (long long)k.version);
        return RELAY_EFORMAT;
    }
    /* Everything below comes from a buffer known to be long enough: decode into temporaries,
       then apply, so a failure leaves p untouched. */
    float *tmp = malloc(3 * n * sizeof(float));
    double *rm = malloc(2 * (size_t)d * sizeof(double));
    if (!tmp || !rm) {
        free(tmp);
        free(rm);
        return RELAY_ENOMEM;
    }
    float *params = tmp, *am = tmp + n, *av = tmp + 2 * n;
    double *rv = rm + d;
    for (size_t i = 0; i < 3 * n; i++)
        tmp[i] = get_f32(&b);
    for (uint32_t i = 0; i < 2 * d; i++)
        rm[i] = get_f64(&b);
    double rc = get_f64(&b);
    double ret_m = get_f64(&b), ret_v = get_f64(&b), ret_c = get_f64(&b);
    uint32_t ns = get_u32(&b);
    relay_err e = RELAY_OK;
    double *dr = NULL;
    if (b.short_read || ns > (1u << 24) || (size_t)ns * 8 + 8 > b.len - b.off) {
        rly_error(MOD, "%s: payload too short for the reward statistics of %u streams (truncated)",
                  what, ns);
        e = RELAY_ETRUNCATED;
    } else if (!(dr = calloc(ns ? ns : 1, sizeof *dr))) {
        e = RELAY_ENOMEM;
    }
    for (uint32_t i = 0; !e && i < ns; i++)
        dr[i] = get_f64(&b);
    /* format 3: the streams' episodes in progress */
    uint32_t n_ep = !e && format >= 3 ? get_u32(&b) : 0;
    rly_ckpt_ep *ep = NULL;
    if (!e && (b.short_read || n_ep > (1u << 24) || (size_t)n_ep * 17 + 8 > b.len - b.off)) {
        rly_error(MOD, "%s: section \"episodes in progress\" (%u streams) is truncated", what,
                  n_ep);
        e = RELAY_ETRUNCATED;
    } else if (!e && n_ep && !(ep = calloc(n_ep, sizeof *ep))) {
        e = RELAY_ENOMEM;
    }
    for (uint32_t i = 0; !e && i < n_ep; i++) {
        uint8_t fl = 0;
        get(&b, &fl, 1);
        ep[i].known = fl & 1u;
        ep[i].open = (fl & 2u) != 0;
        ep[i].ep_id = (int64_t)get_u64(&b);
        ep[i].ep_sum = get_f64(&b);
        if (fl > 3u || !isfinite(ep[i].ep_sum) || ep[i].ep_id < 0) {
            rly_error(MOD,
                      "%s: section \"episodes in progress\": stream %u is invalid (flags %u, "
                      "episode %lld, return %g)",
                      what, i, fl, (long long)ep[i].ep_id, ep[i].ep_sum);
            e = RELAY_EFORMAT;
        }
    }
    uint64_t xl = e ? 0 : get_u64(&b);
    if (!e &&
        (!isfinite(ret_m) || !isfinite(ret_v) || ret_v < 0 || !(ret_c > 0) || !isfinite(ret_c))) {
        rly_error(MOD, "%s: reward statistics (mean %g, var %g, count %g) are invalid", what, ret_m,
                  ret_v, ret_c);
        e = RELAY_EFORMAT;
    }
    for (uint32_t i = 0; !e && i < ns; i++)
        if (!isfinite(dr[i])) {
            rly_error(MOD, "%s: discounted return of stream %u is not finite", what, i);
            e = RELAY_EFORMAT;
        }
    if (!e && xl > RLY_CKPT_MAX_EXTRA) {
        rly_error(MOD, "%s: extra blob of %llu bytes exceeds the limit of %u bytes", what,
                  (unsigned long long)xl, RLY_CKPT_MAX_EXTRA);
        e = RELAY_ETOOBIG;
    } else if (!e && xl != b.len - b.off) {
        rly_error(MOD, "%s: extra blob announces %llu bytes, %zu remain", what,
                  (unsigned long long)xl, b.len - b.off);
        e = xl > b.len - b.off ? RELAY_ETRUNCATED : RELAY_EFORMAT;
    }
    for (size_t i = 0; !e && i < 3 * n; i++)
        if (!isfinite(tmp[i]) || (i >= 2 * n && tmp[i] < 0)) {
            rly_error(MOD, "%s: %s value %zu is not finite", what,
                      i < n       ? "parameter"
                      : i < 2 * n ? "Adam first-moment"
                                  : "Adam second-moment",
                      i % n);
            e = RELAY_EFORMAT;
        }
    for (uint32_t i = 0; !e && i < d; i++)
        if (!isfinite(rm[i]) || !isfinite(rv[i]) || rv[i] < 0) {
            rly_error(MOD, "%s: observation statistic %u is not finite", what, i);
            e = RELAY_EFORMAT;
        }
    if (!e && !(rc > 0 && isfinite(rc))) {
        rly_error(MOD, "%s: observation count %g is not positive", what, rc);
        e = RELAY_EFORMAT;
    }
    uint8_t *x = NULL;
    if (!e && extra && xl) {
        x = malloc(xl);
        if (!x)
            e = RELAY_ENOMEM;
        else
            memcpy(x, b.p + b.off, xl);
    }
    if (e) {
        free(tmp);
        free(rm);
        free(dr);
        free(ep);
        return e;
    }
    relay_policy *pol = p->pol;
    memcpy(pol->params, params, n * sizeof(float));
    memcpy(p->adam.m, am, n * sizeof(float));
    memcpy(p->adam.v, av, n * sizeof(float));
    p->adam.t = adam_t;
    p->timesteps = timesteps;
    p->updates = updates;
    p->rng = ppo_rng;
    pol->rng = pol_rng;
    memcpy(pol->rms_mean, rm, d * sizeof(double));
    memcpy(pol->rms_var, rv, d * sizeof(double));
    pol->rms_count = rc;
    rly_policy_refresh_norm(pol);
    p->ret_mean = ret_m;
    p->ret_var = ret_v;
    p->ret_count = ret_c;
    if (ns == p->cfg.n_envs)
        memcpy(p->disc_ret, dr, ns * sizeof *dr);
    else if (p->cfg.normalize_reward)
        rly_warn(MOD,
                 "%s: written with %u streams, this learner has %u: the running discounted "
                 "returns restart at 0 (the reward statistics are kept)",
                 what, ns, p->cfg.n_envs);
    free(dr);
    free(tmp);
    free(rm);
    *c = k;
    c->n_ep = n_ep;
    c->ep = ep;
    if (extra) {
        *extra = x;
        *extra_len = (size_t)xl;
    }
    return RELAY_OK;
}

/* ---- files ---------------------------------------------------------------------------------- */

relay_err rly_ckpt_write_file(const char *path, const uint8_t *bytes, size_t len)
{
    if (!path || !bytes) {
        rly_error(MOD, "write: NULL argument");
        return RELAY_EINVAL;
    }
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 32);
    if (!tmp)
        return RELAY_ENOMEM;
    static _Atomic unsigned tmp_seq;
    snprintf(tmp, pl + 32, "%s.tmp.%ld.%u", path, (long)getpid(), tmp_seq++);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rly_error(MOD, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return RELAY_EIO;
    }
    size_t off = 0;
    relay_err e = RELAY_OK;
    while (off < len) {
        ssize_t w = write(fd, bytes + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rly_error(MOD, "writing %s: %s", tmp, w < 0 ? strerror(errno) : "short write");
            e = RELAY_EIO;
            break;
        }
        off += (size_t)w;
    }
    if (!e && fsync(fd) != 0) {
        rly_error(MOD, "fsync %s: %s", tmp, strerror(errno));
        e = RELAY_EIO;
    }
    if (close(fd) != 0 && !e) {
        rly_error(MOD, "closing %s: %s", tmp, strerror(errno));
        e = RELAY_EIO;
    }
    if (!e && rename(tmp, path) != 0) {
        rly_error(MOD, "renaming %s to %s: %s", tmp, path, strerror(errno));
        e = RELAY_EIO;
    }
    if (e) {
        unlink(tmp);
    } else {
        /* make the rename itself durable (best effort) */
        char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        const char *dpath = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
        int dfd = open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    free(tmp);
    return e;
}

relay_err rly_ckpt_read_file(const char *path, uint8_t **bytes, size_t *len)
{
    if (!path || !bytes || !len) {
        rly_error(MOD, "read: NULL argument");
        return RELAY_EINVAL;
    }
    *bytes = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rly_error(MOD, "cannot open checkpoint %s: %s", path, strerror(errno));
        return errno == ENOENT ? RELAY_ENOTFOUND : RELAY_EIO;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        rly_error(MOD, "checkpoint %s is not a regular file", path);
        fclose(f);
        return RELAY_EIO;
    }
    if ((uint64_t)st.st_size > RLY_CKPT_MAX_FILE) {
        rly_error(MOD, "checkpoint %s is %lld bytes, over the limit of %llu", path,
                  (long long)st.st_size, (unsigned long long)RLY_CKPT_MAX_FILE);
        fclose(f);
        return RELAY_ETOOBIG;
    }
    size_t n = (size_t)st.st_size;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        fclose(f);
        return RELAY_ENOMEM;
    }
    size_t got = fread(b, 1, n, f);
    bool err = ferror(f);
    fclose(f);
    if (err || got != n) {
        rly_error(MOD, "reading checkpoint %s: %s", path, err ? "I/O error" : "size changed");
        free(b);
        return RELAY_EIO;
    }
    *bytes = b;
    *len = n;
    return RELAY_OK;
}
