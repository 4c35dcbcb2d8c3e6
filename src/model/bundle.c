/*
 * Model bundles: ONNX bytes + metadata (policy version, observation and action spaces).
 * On disk: a directory with model.onnx and metadata.json (and value.onnx when the bundle has a
 * critic), or a bare .onnx file (spaces inferred, no critic).
 * In one message: the blob layout documented in docs/MODEL.md (magic "RLYB", format version,
 * flags, metadata JSON, ONNX bytes, then the critic's ONNX bytes when flag 1 is set;
 * little-endian lengths).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "model/model_int.h"

#define LOG RLY_MODEL_LOG
#define META_MAX_BYTES (1u << 20)
#define META_MAX_BOUNDS (1u << 16)
#define BLOB_MAGIC "RLYB"
#define BLOB_VERSION 1
#define BLOB_HEADER 12
#define FORMAT_NAME "relay.model"
#define BLOB_FLAG_VALUE 1u /* a value model follows the policy's ONNX bytes */

struct relay_bundle {
    relay_model_meta meta;
    relay_model *model;
    relay_model *value; /* optional critic */
};

/* value_fits checks that critic v maps the policy's input width to one value. */
static relay_err value_fits(const relay_bundle *b, const relay_model *v, const char *what)
{
    uint32_t want = b->model ? relay_model_in_dim(b->model) : relay_model_in_dim(v);
    if (relay_model_in_dim(v) != want || relay_model_out_dim(v) != 1) {
        rly_error(LOG, "%s: the value model maps %u -> %u, the bundle needs %u -> 1", what,
                  relay_model_in_dim(v), relay_model_out_dim(v), want);
        return RELAY_ESHAPE;
    }
    return RELAY_OK;
}

relay_err relay_bundle_set_value(relay_bundle *b, const void *onnx, size_t len)
{
    if (!b || (len && !onnx))
        return RELAY_EINVAL;
    relay_model *v = NULL;
    if (len) {
        relay_err e = relay_model_from_onnx(onnx, len, &v);
        if (e)
            return e;
        if ((e = value_fits(b, v, "bundle_set_value"))) {
            relay_model_free(v);
            return e;
        }
    }
    relay_model_free(b->value);
    b->value = v;
    return RELAY_OK;
}

relay_model *relay_bundle_value(const relay_bundle *b)
{
    return b ? b->value : NULL;
}

static void space_fini(relay_space_desc *s)
{
    free(s->low);
    free(s->high);
    s->low = s->high = NULL;
    s->n_bounds = 0;
}

void relay_model_meta_fini(relay_model_meta *meta)
{
    if (!meta)
        return;
    space_fini(&meta->obs);
    space_fini(&meta->act);
    memset(meta, 0, sizeof *meta);
}

static relay_err space_copy(relay_space_desc *dst, const relay_space_desc *src)
{
    *dst = *src;
    dst->low = dst->high = NULL;
    if (src->n_bounds == 0)
        return RELAY_OK;
    if (!src->low || !src->high || src->n_bounds > META_MAX_BOUNDS)
        return RELAY_EINVAL;
    dst->low = malloc(src->n_bounds * sizeof(float));
    dst->high = malloc(src->n_bounds * sizeof(float));
    if (!dst->low || !dst->high) {
        space_fini(dst);
        return RELAY_ENOMEM;
    }
    memcpy(dst->low, src->low, src->n_bounds * sizeof(float));
    memcpy(dst->high, src->high, src->n_bounds * sizeof(float));
    return RELAY_OK;
}

static relay_err meta_copy(relay_model_meta *dst, const relay_model_meta *src)
{
    memset(dst, 0, sizeof *dst);
    dst->version = src->version;
    relay_err e = space_copy(&dst->obs, &src->obs);
    if (!e)
        e = space_copy(&dst->act, &src->act);
    if (e)
        relay_model_meta_fini(dst);
    return e;
}

/* dtype_str is relay_dtype_name, with NULL for an invalid dtype. */
static const char *dtype_str(relay_dtype d)
{
    return relay_dtype_size(d) ? relay_dtype_name(d) : NULL;
}

static relay_dtype dtype_parse(const char *s)
{
    static const relay_dtype all[] = {RELAY_F32, RELAY_F64, RELAY_I32,
                                      RELAY_I64, RELAY_U8,  RELAY_BOOL};
    for (size_t i = 0; s && i < sizeof all / sizeof all[0]; i++)
        if (!strcmp(s, dtype_str(all[i])))
            return all[i];
    return RELAY_DTYPE_INVALID;
}

static cJSON *bounds_json(const float *v, uint32_t n)
{
    cJSON *arr = cJSON_CreateArray();
    for (uint32_t i = 0; arr && i < n; i++) {
        cJSON *x = isfinite(v[i]) ? cJSON_CreateNumber(v[i]) : cJSON_CreateNull();
        if (!x || !cJSON_AddItemToArray(arr, x)) {
            cJSON_Delete(x);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

static cJSON *space_json(const relay_space_desc *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    const char *dt = dtype_str(s->dtype);
    cJSON *shape = cJSON_AddArrayToObject(o, "shape");
    bool ok = dt && shape && cJSON_AddStringToObject(o, "kind", s->discrete ? "discrete" : "box") &&
              cJSON_AddStringToObject(o, "dtype", dt);
    for (uint32_t i = 0; ok && i < s->rank; i++) {
        cJSON *x = cJSON_CreateNumber((double)s->shape[i]);
        ok = x && cJSON_AddItemToArray(shape, x);
    }
    if (ok && s->discrete)
        ok = cJSON_AddNumberToObject(o, "n", (double)s->n) != NULL;
    if (ok && s->n_bounds) {
        cJSON *lo = bounds_json(s->low, s->n_bounds), *hi = bounds_json(s->high, s->n_bounds);
        ok = lo && hi;
        if (ok) {
            cJSON_AddItemToObject(o, "low", lo);
            cJSON_AddItemToObject(o, "high", hi);
        } else {
            cJSON_Delete(lo);
            cJSON_Delete(hi);
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

relay_err relay_model_meta_to_json(const relay_model_meta *meta, char **json)
{
    if (!meta || !json)
        return RELAY_EINVAL;
    *json = NULL;
    if (!dtype_str(meta->obs.dtype) || !dtype_str(meta->act.dtype) ||
        meta->obs.rank > RELAY_MAX_RANK || meta->act.rank > RELAY_MAX_RANK) {
        rly_error(LOG, "metadata has an invalid dtype or rank");
        return RELAY_EINVAL;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON *obs = space_json(&meta->obs), *act = space_json(&meta->act);
    relay_err e = RELAY_ENOMEM;
    if (root && obs && act && cJSON_AddStringToObject(root, "format", FORMAT_NAME) &&
        cJSON_AddNumberToObject(root, "format_version", BLOB_VERSION) &&
        cJSON_AddNumberToObject(root, "version", (double)meta->version)) {
        cJSON_AddItemToObject(root, "observation", obs);
        cJSON_AddItemToObject(root, "action", act);
        obs = act = NULL;
        *json = cJSON_PrintUnformatted(root);
        e = *json ? RELAY_OK : RELAY_ENOMEM;
    }
    cJSON_Delete(obs);
    cJSON_Delete(act);
    cJSON_Delete(root);
    return e;
}

static relay_err bounds_parse(const cJSON *arr, float inf, float **out, uint32_t *n)
{
    if (!cJSON_IsArray(arr))
        return RELAY_EFORMAT;
    int cnt = cJSON_GetArraySize(arr);
    if (cnt < 1 || (uint32_t)cnt > META_MAX_BOUNDS || (*n && (uint32_t)cnt != *n))
        return RELAY_EFORMAT;
    float *v = malloc((size_t)cnt * sizeof(float));
    if (!v)
        return RELAY_ENOMEM;
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        if (cJSON_IsNull(x)) {
            v[i++] = inf;
        } else if (cJSON_IsNumber(x)) {
            v[i++] = (float)x->valuedouble;
        } else {
            free(v);
            return RELAY_EFORMAT;
        }
    }
    *out = v;
    *n = (uint32_t)cnt;
    return RELAY_OK;
}

static relay_err space_parse(const cJSON *o, const char *what, relay_space_desc *s)
{
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(o)) {
        rly_error(LOG, "metadata: '%s' is missing or not an object", what);
        return RELAY_EFORMAT;
    }
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(o, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(o, "shape");
    if (!cJSON_IsString(kind) ||
        (strcmp(kind->valuestring, "box") && strcmp(kind->valuestring, "discrete"))) {
        rly_error(LOG, "metadata: %s.kind must be \"box\" or \"discrete\"", what);
        return RELAY_EFORMAT;
    }
    s->discrete = !strcmp(kind->valuestring, "discrete");
    s->dtype = cJSON_IsString(dtype) ? dtype_parse(dtype->valuestring) : RELAY_DTYPE_INVALID;
    if (s->dtype == RELAY_DTYPE_INVALID) {
        rly_error(LOG, "metadata: %s.dtype is missing or unknown", what);
        return RELAY_EFORMAT;
    }
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > RELAY_MAX_RANK) {
        rly_error(LOG, "metadata: %s.shape must be an array of at most %d sizes", what,
                  RELAY_MAX_RANK);
        return RELAY_EFORMAT;
    }
    const cJSON *x;
    cJSON_ArrayForEach(x, shape)
    {
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 1e9 ||
            x->valuedouble != (double)(int64_t)x->valuedouble) {
            rly_error(LOG, "metadata: %s.shape holds a bad size", what);
            return RELAY_EFORMAT;
        }
        s->shape[s->rank++] = (int64_t)x->valuedouble;
    }
    if (s->discrete) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, "n");
        if (!cJSON_IsNumber(n) || n->valuedouble < 1 || n->valuedouble > 1e9) {
            rly_error(LOG, "metadata: discrete %s needs n >= 1", what);
            return RELAY_EFORMAT;
        }
        s->n = (int64_t)n->valuedouble;
    }
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(o, "low");
    const cJSON *hi = cJSON_GetObjectItemCaseSensitive(o, "high");
    if (lo || hi) {
        uint32_t nb = 0;
        relay_err e = bounds_parse(lo, -INFINITY, &s->low, &nb);
        if (!e)
            e = bounds_parse(hi, INFINITY, &s->high, &nb);
        if (e) {
            space_fini(s);
            rly_error(LOG, "metadata: %s.low/high must be arrays of equal length", what);
            return e;
        }
        s->n_bounds = nb;
    }
    return RELAY_OK;
}

relay_err relay_model_meta_from_json(const char *json, size_t len, relay_model_meta *meta)
{
    if (!json || !meta)
        return RELAY_EINVAL;
    memset(meta, 0, sizeof *meta);
    if (len > META_MAX_BYTES) {
        rly_error(LOG, "metadata of %zu bytes exceeds %u", len, META_MAX_BYTES);
        return RELAY_ETOOBIG;
    }
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        rly_error(LOG, "metadata is not valid JSON");
        return RELAY_EFORMAT;
    }
    relay_err e = RELAY_OK;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *fv = cJSON_GetObjectItemCaseSensitive(root, "format_version");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsObject(root) || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, FORMAT_NAME)) {
        rly_error(LOG, "metadata: \"format\" must be \"%s\"", FORMAT_NAME);
        e = RELAY_EFORMAT;
    } else if (!cJSON_IsNumber(fv) || fv->valuedouble != BLOB_VERSION) {
        rly_error(LOG, "metadata: format_version %g is not supported (%d)",
                  cJSON_IsNumber(fv) ? fv->valuedouble : -1.0, BLOB_VERSION);
        e = RELAY_EVERSION;
    } else if (!cJSON_IsNumber(ver)) {
        rly_error(LOG, "metadata: \"version\" must be a number");
        e = RELAY_EFORMAT;
    } else {
        meta->version = (int64_t)ver->valuedouble;
        e = space_parse(cJSON_GetObjectItemCaseSensitive(root, "observation"), "observation",
                        &meta->obs);
        if (!e)
            e = space_parse(cJSON_GetObjectItemCaseSensitive(root, "action"), "action", &meta->act);
    }
    cJSON_Delete(root);
    if (e)
        relay_model_meta_fini(meta);
    return e;
}

static int64_t numel(const relay_space_desc *s)
{
    int64_t n = 1;
    for (uint32_t i = 0; i < s->rank; i++)
        n *= s->shape[i];
    return n;
}

/* meta_check verifies that meta agrees with the model's input. */
static relay_err meta_check(const relay_model_meta *meta, const relay_model *m)
{
    if (meta->obs.discrete) {
        if (m->in_dim != 1 && (int64_t)m->in_dim != meta->obs.n) {
            rly_error(LOG, "metadata: discrete observation does not fit model input width %u",
                      m->in_dim);
            return RELAY_ESHAPE;
        }
    } else if (numel(&meta->obs) != (int64_t)m->in_dim) {
        rly_error(LOG, "metadata: observation has %lld elements, model input has %u",
                  (long long)numel(&meta->obs), m->in_dim);
        return RELAY_ESHAPE;
    }
    for (int i = 0; i < 2; i++) {
        const relay_space_desc *s = i ? &meta->act : &meta->obs;
        if (s->n_bounds > 1 && !s->discrete && s->n_bounds != numel(s)) {
            rly_error(LOG, "metadata: %u bounds for %lld elements", s->n_bounds,
                      (long long)numel(s));
            return RELAY_ESHAPE;
        }
    }
    return RELAY_OK;
}

/* infer_meta derives spaces from the graph: box f32 input; discrete if the output is a softmax. */
static void infer_meta(const relay_model *m, relay_model_meta *meta)
{
    memset(meta, 0, sizeof *meta);
    meta->obs.dtype = RELAY_F32;
    meta->obs.rank = m->in_rank;
    memcpy(meta->obs.shape, m->in_shape, sizeof m->in_shape);
    if (m->out_softmax) {
        meta->act.discrete = true;
        meta->act.dtype = RELAY_I32;
        meta->act.n = m->out_dim;
        meta->act.rank = 0;
    } else {
        meta->act.dtype = RELAY_F32;
        meta->act.rank = 1;
        meta->act.shape[0] = m->out_dim;
    }
}

static relay_err bundle_make(relay_model *model, const relay_model_meta *meta, bool copy,
                             relay_bundle **out)
{
    relay_bundle *b = calloc(1, sizeof *b);
    if (!b)
        return RELAY_ENOMEM;
    relay_err e = RELAY_OK;
    if (meta && copy)
        e = meta_copy(&b->meta, meta);
    else if (meta)
        b->meta = *meta;
    else
        infer_meta(model, &b->meta);
    if (!e)
        e = meta_check(&b->meta, model);
    if (e) {
        if (copy)
            relay_model_meta_fini(&b->meta);
        free(b);
        return e;
    }
    b->model = model;
    *out = b;
    return RELAY_OK;
}

relay_err relay_bundle_new(const void *onnx, size_t len, const relay_model_meta *meta,
                           relay_bundle **out)
{
    if (!out)
        return RELAY_EINVAL;
    *out = NULL;
    relay_model *m;
    relay_err e = relay_model_from_onnx(onnx, len, &m);
    if (e)
        return e;
    if ((e = bundle_make(m, meta, true, out)))
        relay_model_free(m);
    return e;
}

static relay_err path_join(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) {
        rly_error(LOG, "path too long: %s/%s", dir, name);
        return RELAY_EINVAL;
    }
    return RELAY_OK;
}

relay_err relay_bundle_load(const char *path, relay_bundle **out)
{
    if (!path || !out)
        return RELAY_EINVAL;
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        rly_error(LOG, "cannot open model '%s': %s", path, strerror(errno));
        return errno == ENOENT ? RELAY_ENOTFOUND : RELAY_EIO;
    }
    if (!S_ISDIR(st.st_mode)) {
        relay_model *m;
        relay_err e = relay_model_load_onnx(path, &m);
        if (e)
            return e;
        if ((e = bundle_make(m, NULL, false, out)))
            relay_model_free(m);
        return e;
    }
    char p[4096];
    relay_err e = path_join(p, sizeof p, path, "metadata.json");
    uint8_t *js = NULL;
    size_t js_len = 0;
    relay_model_meta meta;
    if (!e)
        e = rly_read_file(p, META_MAX_BYTES, &js, &js_len);
    if (e)
        return e;
    e = relay_model_meta_from_json((const char *)js, js_len, &meta);
    free(js);
    if (e)
        return e;
    relay_model *m = NULL;
    if (!(e = path_join(p, sizeof p, path, "model.onnx")))
        e = relay_model_load_onnx(p, &m);
    if (!e && (e = bundle_make(m, &meta, false, out)))
        relay_model_free(m);
    if (e) {
        relay_model_meta_fini(&meta);
        return e;
    }
    /* optional critic */
    relay_model *v = NULL;
    if (!(e = path_join(p, sizeof p, path, "value.onnx")) && access(p, F_OK) == 0 &&
        !(e = relay_model_load_onnx(p, &v)) && !(e = value_fits(*out, v, p)))
        (*out)->value = v;
    else
        relay_model_free(v);
    if (e) {
        relay_bundle_free(*out);
        *out = NULL;
    }
    return e;
}

/* write_atomic writes data to path through a temporary file and a rename. */
static relay_err write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[4200];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof tmp)
        return RELAY_EINVAL;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rly_error(LOG, "cannot create '%s': %s", tmp, strerror(errno));
        return RELAY_EIO;
    }
    bool ok = fwrite(data, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        rly_error(LOG, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
        return RELAY_EIO;
    }
    return RELAY_OK;
}

relay_err relay_bundle_save(const relay_bundle *b, const char *dir)
{
    if (!b || !dir)
        return RELAY_EINVAL;
    if (!b->model)
        return RELAY_ENOMODEL;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rly_error(LOG, "cannot create directory '%s': %s", dir, strerror(errno));
        return RELAY_EIO;
    }
    char *js;
    relay_err e = relay_model_meta_to_json(&b->meta, &js);
    if (e)
        return e;
    char p[4096];
    if (!(e = path_join(p, sizeof p, dir, "model.onnx")))
        e = write_atomic(p, b->model->onnx, b->model->onnx_len);
    if (!e && !(e = path_join(p, sizeof p, dir, "metadata.json")))
        e = write_atomic(p, js, strlen(js));
    free(js);
    if (!e && !(e = path_join(p, sizeof p, dir, "value.onnx"))) {
        if (b->value) {
            e = write_atomic(p, b->value->onnx, b->value->onnx_len);
        } else if (unlink(p) != 0 && errno != ENOENT) {
            rly_error(LOG, "cannot remove the stale critic '%s': %s", p, strerror(errno));
            e = RELAY_EIO;
        }
    }
    return e;
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

relay_err relay_bundle_to_blob(const relay_bundle *b, uint8_t **blob, size_t *len)
{
    if (!b || !blob || !len)
        return RELAY_EINVAL;
    *blob = NULL;
    *len = 0;
    if (!b->model)
        return RELAY_ENOMODEL;
    char *js;
    relay_err e = relay_model_meta_to_json(&b->meta, &js);
    if (e)
        return e;
    const size_t js_len = strlen(js), onnx_len = b->model->onnx_len;
    const size_t v_len = b->value ? b->value->onnx_len : 0;
    const size_t total = BLOB_HEADER + js_len + 8 + onnx_len + (b->value ? 8 + v_len : 0);
    uint8_t *p = malloc(total);
    if (!p) {
        free(js);
        return RELAY_ENOMEM;
    }
    memcpy(p, BLOB_MAGIC, 4);
    p[4] = BLOB_VERSION & 0xff;
    p[5] = BLOB_VERSION >> 8;
    p[6] = b->value ? BLOB_FLAG_VALUE : 0; /* flags */
    p[7] = 0;
    put_u32(p + 8, (uint32_t)js_len);
    memcpy(p + BLOB_HEADER, js, js_len);
    uint8_t *q = p + BLOB_HEADER + js_len;
    put_u32(q, (uint32_t)onnx_len);
    put_u32(q + 4, (uint32_t)((uint64_t)onnx_len >> 32));
    memcpy(q + 8, b->model->onnx, onnx_len);
    if (b->value) {
        q += 8 + onnx_len;
        put_u32(q, (uint32_t)v_len);
        put_u32(q + 4, (uint32_t)((uint64_t)v_len >> 32));
        memcpy(q + 8, b->value->onnx, v_len);
    }
    free(js);
    *blob = p;
    *len = total;
    return RELAY_OK;
}

relay_err relay_bundle_from_blob(const void *blob, size_t len, relay_bundle **out)
{
    if (!blob || !out)
        return RELAY_EINVAL;
    *out = NULL;
    const uint8_t *p = blob;
    if (len < BLOB_HEADER || memcmp(p, BLOB_MAGIC, 4) != 0) {
        rly_error(LOG, "model blob: bad magic or too short (%zu bytes)", len);
        return len < BLOB_HEADER && len >= 4 && !memcmp(p, BLOB_MAGIC, 4) ? RELAY_ETRUNCATED
                                                                          : RELAY_EFORMAT;
    }
    const unsigned ver = p[4] | (unsigned)p[5] << 8;
    if (ver != BLOB_VERSION) {
        rly_error(LOG, "model blob: format version %u is not supported (%d)", ver, BLOB_VERSION);
        return RELAY_EVERSION;
    }
    if ((p[6] & ~BLOB_FLAG_VALUE) || p[7]) {
        rly_error(LOG, "model blob: unknown flags 0x%02x%02x", p[7], p[6]);
        return RELAY_EUNSUPPORTED;
    }
    const uint32_t js_len = get_u32(p + 8);
    if (js_len > META_MAX_BYTES) {
        rly_error(LOG, "model blob: metadata length %u exceeds %u", js_len, META_MAX_BYTES);
        return RELAY_ETOOBIG;
    }
    if (len - BLOB_HEADER < (size_t)js_len + 8) {
        rly_error(LOG, "model blob: truncated metadata");
        return RELAY_ETRUNCATED;
    }
    const uint8_t *q = p + BLOB_HEADER + js_len;
    const uint64_t onnx_len = get_u32(q) | (uint64_t)get_u32(q + 4) << 32;
    const size_t rest = len - BLOB_HEADER - js_len - 8;
    if (onnx_len > RELAY_MODEL_MAX_ONNX_BYTES) {
        rly_error(LOG, "model blob: ONNX length %llu exceeds the limit",
                  (unsigned long long)onnx_len);
        return RELAY_ETOOBIG;
    }
    const bool has_value = p[6] & BLOB_FLAG_VALUE;
    uint64_t v_len = 0;
    if (has_value) {
        if (onnx_len + 8 > rest) {
            rly_error(LOG, "model blob: ONNX length %llu but %zu bytes follow (with a critic)",
                      (unsigned long long)onnx_len, rest);
            return RELAY_ETRUNCATED;
        }
        const uint8_t *vq = q + 8 + onnx_len;
        v_len = get_u32(vq) | (uint64_t)get_u32(vq + 4) << 32;
        if (v_len > RELAY_MODEL_MAX_ONNX_BYTES || v_len == 0) {
            rly_error(LOG, "model blob: critic ONNX length %llu is out of range (1..limit)",
                      (unsigned long long)v_len);
            return v_len ? RELAY_ETOOBIG : RELAY_EFORMAT;
        }
        if (v_len != rest - onnx_len - 8) {
            rly_error(LOG, "model blob: critic ONNX length %llu but %zu bytes follow",
                      (unsigned long long)v_len, (size_t)(rest - onnx_len - 8));
            return v_len > rest - onnx_len - 8 ? RELAY_ETRUNCATED : RELAY_EFORMAT;
        }
    } else if (onnx_len != rest) {
        rly_error(LOG, "model blob: ONNX length %llu but %zu bytes follow",
                  (unsigned long long)onnx_len, rest);
        return onnx_len > rest ? RELAY_ETRUNCATED : RELAY_EFORMAT;
    }
    relay_model_meta meta;
    relay_err e = relay_model_meta_from_json((const char *)p + BLOB_HEADER, js_len, &meta);
    if (e)
        return e;
    relay_model *m;
    if ((e = relay_model_from_onnx(q + 8, (size_t)onnx_len, &m))) {
        relay_model_meta_fini(&meta);
        return e;
    }
    if ((e = bundle_make(m, &meta, false, out))) {
        relay_model_free(m);
        relay_model_meta_fini(&meta);
        return e;
    }
    if (has_value &&
        (e = relay_bundle_set_value(*out, q + 16 + onnx_len, (size_t)v_len)) != RELAY_OK) {
        relay_bundle_free(*out);
        *out = NULL;
    }
    return e;
}

void relay_bundle_free(relay_bundle *b)
{
    if (!b)
        return;
    relay_model_meta_fini(&b->meta);
    relay_model_free(b->model);
    relay_model_free(b->value);
    free(b);
}

relay_model *relay_bundle_model(const relay_bundle *b)
{
    return b ? b->model : NULL;
}

const relay_model_meta *relay_bundle_meta(const relay_bundle *b)
{
    return b ? &b->meta : NULL;
}

relay_model *relay_bundle_take_model(relay_bundle *b)
{
    if (!b)
        return NULL;
    relay_model *m = b->model;
    b->model = NULL;
    return m;
}
