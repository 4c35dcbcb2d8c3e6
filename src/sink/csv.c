/*
 * CSV sink: one file per run (optionally rotated), a header line, one row per step.
 *
 * Columns: actor_id, env_id, env_label, episode, policy_version, traj_start_ns, traj_end_ns,
 * step, timestamp_ns, obs_0..obs_{n-1}, act_0.., [mask_0..], reward, terminated, truncated,
 * aux.<name>... Tensors are flattened in row-major order. Floats are printed so that they parse
 * back to the identical value (f32 near-shortest, f64 with 17 digits); booleans are 0/1. The
 * per-trajectory prefix (the trajectory fields) is formatted once and copied into every row; rows
 * are formatted straight into a large buffer without printf.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "sink/sink_internal.h"

typedef struct csvsink {
    rly_outfile out; /* first: relay_sink_path reads it */
    rly_sink_counters c;
    bool have_schema, header_pending;
    relay_step_spec spec;
    size_t obs_n, act_n, mask_n; /* elements per step */
    size_t row_max;              /* upper bound of one row's length */
    char *buf;
    size_t len, cap;
    char *header;
    size_t header_len;
} csvsink;

/* esc_len returns the length of s written as a CSV field, quoted when needed. */
static size_t csv_escape(char *dst, const char *s, size_t n)
{
    bool quote = false;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ',' || s[i] == '"' || s[i] == '\n' || s[i] == '\r')
            quote = true;
    if (!quote) {
        memcpy(dst, s, n);
        return n;
    }
    size_t k = 0;
    dst[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            dst[k++] = '"';
        dst[k++] = s[i];
    }
    dst[k++] = '"';
    return k;
}

static size_t elem_max(relay_dtype dt)
{
    return dt == RELAY_F64 ? 32 : 24;
}

static size_t numel(uint32_t rank, const int64_t *shape)
{
    size_t n = 1;
    for (uint32_t i = 0; i < rank; i++)
        n *= (size_t)shape[i];
    return n;
}

static relay_err append_names(char **h, size_t *len, size_t *cap, const char *prefix, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (*len + 64 > *cap) {
            size_t ncap = *cap * 2 + 256;
            char *p = realloc(*h, ncap);
            if (!p)
                return RELAY_ENOMEM;
            *h = p, *cap = ncap;
        }
        *len += (size_t)snprintf(*h + *len, *cap - *len, ",%s_%zu", prefix, i);
    }
    return RELAY_OK;
}

static relay_err build_schema(csvsink *s, const relay_step_spec *sp)
{
    for (uint32_t i = 0; i < sp->obs_rank; i++)
        if (sp->obs_shape[i] < 0 || sp->obs_shape[i] > (1 << 24))
            return RELAY_ESHAPE;
    for (uint32_t i = 0; i < sp->act_rank; i++)
        if (sp->act_shape[i] < 0 || sp->act_shape[i] > (1 << 24))
            return RELAY_ESHAPE;
    for (uint32_t i = 0; i < sp->mask_rank; i++)
        if (sp->mask_shape[i] < 0 || sp->mask_shape[i] > (1 << 24))
            return RELAY_ESHAPE;
    if (!relay_dtype_size(sp->obs_dtype) || !relay_dtype_size(sp->act_dtype))
        return RELAY_EDTYPE;
    s->obs_n = numel(sp->obs_rank, sp->obs_shape);
    s->act_n = numel(sp->act_rank, sp->act_shape);
    s->mask_n = sp->mask_dtype != RELAY_DTYPE_INVALID ? numel(sp->mask_rank, sp->mask_shape) : 0;
    if (s->obs_n + s->act_n + s->mask_n > (1u << 24))
        return RELAY_ETOOBIG;
    size_t cap = 512, len = 0;
    char *h = malloc(cap);
    if (!h)
        return RELAY_ENOMEM;
    len = (size_t)snprintf(h, cap,
                           "actor_id,env_id,env_label,episode,policy_version,"
                           "traj_start_ns,traj_end_ns,step,timestamp_ns");
    relay_err e = append_names(&h, &len, &cap, "obs", s->obs_n);
    if (e == RELAY_OK)
        e = append_names(&h, &len, &cap, "act", s->act_n);
    if (e == RELAY_OK)
        e = append_names(&h, &len, &cap, "mask", s->mask_n);
    if (e == RELAY_OK && len + 64 + sp->n_aux * (2 * RELAY_AUX_NAME_MAX + 8) > cap) {
        cap = len + 64 + sp->n_aux * (2 * RELAY_AUX_NAME_MAX + 8);
        char *p = realloc(h, cap);
        if (!p)
            e = RELAY_ENOMEM;
        else
            h = p;
    }
    if (e != RELAY_OK) {
        free(h);
        return e;
    }
    len += (size_t)snprintf(h + len, cap - len, ",reward,terminated,truncated");
    for (uint32_t j = 0; j < sp->n_aux; j++) {
        char name[8 + RELAY_AUX_NAME_MAX];
        int k = snprintf(name, sizeof name, "aux.%.*s", RELAY_AUX_NAME_MAX - 1, sp->aux_names[j]);
        h[len++] = ',';
        len += csv_escape(h + len, name, (size_t)k);
    }
    h[len++] = '\n';
    s->header = h;
    s->header_len = len;
    s->row_max = 9 * 24 + 2 * RELAY_LABEL_MAX + RELAY_ID_STRLEN +
                 s->obs_n * elem_max(sp->obs_dtype) + s->act_n * elem_max(sp->act_dtype) +
                 s->mask_n * elem_max(sp->mask_dtype) + (4 + sp->n_aux) * 24 + 16;
    if (s->row_max * 2 > s->cap) {
        char *p = realloc(s->buf, s->row_max * 2);
        if (!p)
            return RELAY_ENOMEM;
        s->buf = p, s->cap = s->row_max * 2;
    }
    return RELAY_OK;
}

static relay_err drain(csvsink *s)
{
    if (s->len == 0)
        return RELAY_OK;
    relay_err e = RELAY_OK;
    if (s->out.fd < 0)
        e = rly_outfile_open(&s->out);
    if (e == RELAY_OK)
        e = rly_outfile_write(&s->out, s->buf, s->len);
    s->len = 0;
    return e;
}

static relay_err start_file(csvsink *s)
{
    relay_err e = RELAY_OK;
    if (s->out.fd < 0)
        e = rly_outfile_open(&s->out);
    if (e == RELAY_OK)
        e = rly_outfile_write(&s->out, s->header, s->header_len);
    if (e == RELAY_OK)
        s->header_pending = false;
    return e;
}

static char *put_elems(char *p, const uint8_t *src, relay_dtype dt, size_t n)
{
    switch (dt) {
    case RELAY_F32: {
        const float *v = (const float *)(const void *)src;
        for (size_t i = 0; i < n; i++) {
            *p++ = ',';
            p += rly_fmt_f32(p, v[i]);
        }
        break;
    }
    case RELAY_F64: {
        const double *v = (const double *)(const void *)src;
        for (size_t i = 0; i < n; i++) {
            *p++ = ',';
            p += rly_fmt_f64(p, v[i]);
        }
        break;
    }
    case RELAY_I32: {
        const int32_t *v = (const int32_t *)(const void *)src;
        for (size_t i = 0; i < n; i++) {
            *p++ = ',';
            p += rly_fmt_i64(p, v[i]);
        }
        break;
    }
    case RELAY_I64: {
        const int64_t *v = (const int64_t *)(const void *)src;
        for (size_t i = 0; i < n; i++) {
            *p++ = ',';
            p += rly_fmt_i64(p, v[i]);
        }
        break;
    }
    case RELAY_U8:
        for (size_t i = 0; i < n; i++) {
            *p++ = ',';
            p += rly_fmt_u64(p, src[i]);
        }
        break;
    default: /* bool */
        for (size_t i = 0; i < n; i++) {
            *p++ = ',';
            *p++ = src[i] ? '1' : '0';
        }
        break;
    }
    return p;
}

static relay_err write_traj(csvsink *s, const relay_traj *t)
{
    char prefix[4 * RELAY_LABEL_MAX + 160];
    char *q = prefix;
    relay_id_format(t->actor, q);
    q += RELAY_ID_STRLEN;
    *q++ = ',';
    q += rly_fmt_i64(q, t->env_id);
    *q++ = ',';
    q += csv_escape(q, t->env_label, strnlen(t->env_label, RELAY_LABEL_MAX - 1));
    *q++ = ',';
    q += rly_fmt_i64(q, t->episode);
    *q++ = ',';
    q += rly_fmt_i64(q, t->policy_version);
    *q++ = ',';
    q += rly_fmt_i64(q, t->start_ns);
    *q++ = ',';
    q += rly_fmt_i64(q, t->end_ns);
    *q++ = ',';
    size_t plen = (size_t)(q - prefix);
    const relay_step_spec *sp = &s->spec;
    size_t ob = s->obs_n * relay_dtype_size(sp->obs_dtype);
    size_t ab = s->act_n * relay_dtype_size(sp->act_dtype);
    size_t mb = s->mask_n * relay_dtype_size(sp->mask_dtype);
    uint32_t na = sp->n_aux;
    for (uint32_t i = 0; i < t->len; i++) {
        if (s->cap - s->len < s->row_max) {
            relay_err e = drain(s);
            if (e != RELAY_OK)
                return e;
        }
        char *p = s->buf + s->len;
        memcpy(p, prefix, plen);
        p += plen;
        p += rly_fmt_u64(p, i);
        *p++ = ',';
        p += rly_fmt_i64(p, t->ts[i]);
        p = put_elems(p, t->obs + (size_t)i * ob, sp->obs_dtype, s->obs_n);
        p = put_elems(p, t->act + (size_t)i * ab, sp->act_dtype, s->act_n);
        if (s->mask_n)
            p = put_elems(p, t->mask + (size_t)i * mb, sp->mask_dtype, s->mask_n);
        *p++ = ',';
        p += rly_fmt_f32(p, t->reward[i]);
        *p++ = ',';
        *p++ = t->terminated[i] ? '1' : '0';
        *p++ = ',';
        *p++ = t->truncated[i] ? '1' : '0';
        for (uint32_t j = 0; j < na; j++) {
            *p++ = ',';
            p += rly_fmt_f32(p, t->aux[(size_t)i * na + j]);
        }
        *p++ = '\n';
        s->len = (size_t)(p - s->buf);
    }
    return RELAY_OK;
}

static relay_err csv_write(void *state, relay_traj *const *trajs, size_t n)
{
    csvsink *s = state;
    relay_err ret = RELAY_OK;
    for (size_t ti = 0; ti < n; ti++) {
        const relay_traj *t = trajs[ti];
        if (t->len > t->cap || t->spec.n_aux > RELAY_MAX_AUX ||
            (t->len && (!t->obs || !t->act || !t->reward || !t->ts || !t->terminated ||
                        !t->truncated || (t->spec.n_aux && !t->aux) ||
                        (t->spec.mask_dtype != RELAY_DTYPE_INVALID && !t->mask)))) {
            rly_warn(RLY_SINK_LOG, "csv sink: trajectory %zu has inconsistent columns", ti);
            rly_counters_add(&s->c.rejected, 1);
            ret = RELAY_EINVAL;
            continue;
        }
        if (!s->have_schema) {
            relay_err e = build_schema(s, &t->spec);
            if (e != RELAY_OK) {
                rly_error(RLY_SINK_LOG, "csv sink: cannot build the header: %s", relay_strerror(e));
                return e;
            }
            s->spec = t->spec;
            s->have_schema = true;
            s->header_pending = true;
        } else if (!relay_step_spec_eq(&s->spec, &t->spec)) {
            rly_warn(RLY_SINK_LOG,
                     "csv sink %s: trajectory %zu has a different step spec than the header; "
                     "skipped",
                     s->out.path, ti);
            rly_counters_add(&s->c.rejected, 1);
            ret = RELAY_ESHAPE;
            continue;
        }
        relay_err e = RELAY_OK;
        if (s->header_pending)
            e = start_file(s);
        if (e == RELAY_OK)
            e = write_traj(s, t);
        if (e != RELAY_OK)
            return e;
        rly_counters_add(&s->c.trajs, 1);
        rly_counters_add(&s->c.rows, t->len);
        if (s->out.rotate && s->out.size + s->len >= s->out.rotate_bytes) {
            e = drain(s);
            if (e == RELAY_OK)
                e = rly_outfile_close(&s->out);
            s->header_pending = true;
            if (e != RELAY_OK)
                return e;
        }
    }
    return ret;
}

static relay_err csv_flush(void *state)
{
    return drain(state);
}

static void free_state(csvsink *s)
{
    free(s->buf);
    free(s->header);
    free(s);
}

static relay_err csv_close(void *state)
{
    csvsink *s = state;
    relay_err e = drain(s);
    relay_err c = rly_outfile_close(&s->out);
    free_state(s);
    return e != RELAY_OK ? e : c;
}

static relay_err csv_open(const relay_sink_config *cfg, void **state)
{
    csvsink *s = calloc(1, sizeof *s);
    if (!s)
        return RELAY_ENOMEM;
    s->cap = cfg->buffer_bytes ? cfg->buffer_bytes : (size_t)1 << 20;
    s->buf = malloc(s->cap);
    relay_err e = s->buf ? rly_outfile_init(&s->out, cfg, ".csv", &s->c) : RELAY_ENOMEM;
    if (e == RELAY_OK)
        e = rly_outfile_open(&s->out);
    if (e != RELAY_OK) {
        free_state(s);
        return e;
    }
    *state = s;
    return RELAY_OK;
}

static void csv_stats(void *state, relay_sink_stats *out)
{
    rly_counters_read(&((csvsink *)state)->c, out);
}

const relay_sink_vtable rly_csv_sink_vt = {
    .name = "csv",
    .open = csv_open,
    .write_batch = csv_write,
    .flush = csv_flush,
    .close = csv_close,
    .stats = csv_stats,
};
