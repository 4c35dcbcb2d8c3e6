/*
 * Tensors, actions and columnar trajectories.
 *
 * A trajectory keeps one heap buffer per column, all sized for cap steps; relay_traj_push copies
 * one row into each column and only allocates when len reaches cap (reserve up front to avoid
 * that). Every size computation is overflow-checked: shapes come from users and from the wire.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "relay/data.h"

#define MOD "data"

/* Largest byte size we accept for one tensor or one column (keeps products far from SIZE_MAX). */
#define RLY_DATA_MAX_BYTES ((size_t)1 << 46)

size_t relay_dtype_size(relay_dtype dtype)
{
    switch (dtype) {
    case RELAY_F32:
    case RELAY_I32:
        return 4;
    case RELAY_F64:
    case RELAY_I64:
        return 8;
    case RELAY_U8:
    case RELAY_BOOL:
        return 1;
    default:
        return 0;
    }
}

const char *relay_dtype_name(relay_dtype dtype)
{
    switch (dtype) {
    case RELAY_F32:
        return "f32";
    case RELAY_F64:
        return "f64";
    case RELAY_I32:
        return "i32";
    case RELAY_I64:
        return "i64";
    case RELAY_U8:
        return "u8";
    case RELAY_BOOL:
        return "bool";
    default:
        return "invalid";
    }
}

bool relay_dtype_valid(relay_dtype dtype)
{
    return relay_dtype_size(dtype) != 0;
}

relay_err relay_shape_nbytes(relay_dtype dtype, uint32_t rank, const int64_t *shape, size_t *out)
{
    size_t esize = relay_dtype_size(dtype);
    if (esize == 0) {
        rly_warn(MOD, "invalid dtype %d", (int)dtype);
        return RELAY_EDTYPE;
    }
    if (rank > RELAY_MAX_RANK || (rank > 0 && shape == NULL)) {
        rly_warn(MOD, "invalid rank %u (max %d)", rank, RELAY_MAX_RANK);
        return RELAY_ESHAPE;
    }
    uint64_t n = esize;
    for (uint32_t i = 0; i < rank; i++) {
        if (shape[i] < 0) {
            rly_warn(MOD, "negative dimension %lld at axis %u", (long long)shape[i], i);
            return RELAY_ESHAPE;
        }
        if (__builtin_mul_overflow(n, (uint64_t)shape[i], &n) || n > RLY_DATA_MAX_BYTES) {
            rly_warn(MOD, "shape product overflows at axis %u", i);
            return RELAY_ETOOBIG;
        }
    }
    if (out)
        *out = (size_t)n;
    return RELAY_OK;
}

relay_err relay_tensor_view(relay_tensor *t, relay_dtype dtype, uint32_t rank, const int64_t *shape,
                            void *data)
{
    if (!t)
        return RELAY_EINVAL;
    memset(t, 0, sizeof *t);
    size_t nbytes;
    relay_err e = relay_shape_nbytes(dtype, rank, shape, &nbytes);
    if (e)
        return e;
    if (!data && nbytes) {
        rly_warn(MOD, "tensor view of %zu bytes over NULL data", nbytes);
        return RELAY_EINVAL;
    }
    t->dtype = dtype;
    t->rank = rank;
    if (rank)
        memcpy(t->shape, shape, rank * sizeof shape[0]);
    t->data = data;
    t->nbytes = nbytes;
    t->owns = false;
    return RELAY_OK;
}

relay_err relay_tensor_init(relay_tensor *t, relay_dtype dtype, uint32_t rank, const int64_t *shape)
{
    if (!t)
        return RELAY_EINVAL;
    memset(t, 0, sizeof *t);
    size_t nbytes;
    relay_err e = relay_shape_nbytes(dtype, rank, shape, &nbytes);
    if (e)
        return e;
    void *data = calloc(1, nbytes ? nbytes : 1);
    if (!data)
        return RELAY_ENOMEM;
    /* Same header as a view, then take ownership of the buffer. */
    e = relay_tensor_view(t, dtype, rank, shape, data);
    if (e) {
        free(data);
        return e;
    }
    t->owns = true;
    return RELAY_OK;
}

relay_err relay_tensor_copy(relay_tensor *dst, const relay_tensor *src)
{
    if (!dst || !src || dst == src)
        return RELAY_EINVAL;
    relay_tensor tmp;
    relay_err e = relay_tensor_init(&tmp, src->dtype, src->rank, src->shape);
    if (e)
        return e;
    if (tmp.nbytes != src->nbytes || (src->nbytes && !src->data)) {
        rly_warn(MOD, "tensor copy: source holds %zu bytes, its shape says %zu", src->nbytes,
                 tmp.nbytes);
        relay_tensor_fini(&tmp);
        return RELAY_ESHAPE;
    }
    if (tmp.nbytes)
        memcpy(tmp.data, src->data, tmp.nbytes);
    *dst = tmp;
    return RELAY_OK;
}

void relay_tensor_fini(relay_tensor *t)
{
    if (!t)
        return;
    if (t->owns)
        free(t->data);
    memset(t, 0, sizeof *t);
}

int64_t relay_tensor_numel(const relay_tensor *t)
{
    if (!t || t->rank > RELAY_MAX_RANK)
        return 0;
    int64_t n = 1;
    for (uint32_t i = 0; i < t->rank; i++) {
        if (t->shape[i] < 0 || __builtin_mul_overflow(n, t->shape[i], &n))
            return 0;
    }
    return n;
}

void relay_action_fini(relay_action *a)
{
    if (!a)
        return;
    relay_tensor_fini(&a->obs);
    relay_tensor_fini(&a->act);
    relay_tensor_fini(&a->mask);
}

float relay_action_aux(const relay_action *a, const char *name, float def)
{
    if (!a || !name)
        return def;
    uint32_t n = a->n_aux < RELAY_MAX_AUX ? a->n_aux : RELAY_MAX_AUX;
    for (uint32_t i = 0; i < n; i++) {
        if (strncmp(a->aux[i].name, name, RELAY_AUX_NAME_MAX) == 0)
            return a->aux[i].value;
    }
    return def;
}

relay_err relay_step_spec_validate(const relay_step_spec *s)
{
    if (!s)
        return RELAY_EINVAL;
    relay_err e;
    if ((e = relay_shape_nbytes(s->obs_dtype, s->obs_rank, s->obs_shape, NULL))) {
        rly_warn(MOD, "step spec: bad observation column");
        return e;
    }
    if ((e = relay_shape_nbytes(s->act_dtype, s->act_rank, s->act_shape, NULL))) {
        rly_warn(MOD, "step spec: bad action column");
        return e;
    }
    if (s->mask_dtype != RELAY_DTYPE_INVALID &&
        (e = relay_shape_nbytes(s->mask_dtype, s->mask_rank, s->mask_shape, NULL))) {
        rly_warn(MOD, "step spec: bad mask column");
        return e;
    }
    if (s->n_aux > RELAY_MAX_AUX) {
        rly_warn(MOD, "step spec: %u aux values (max %d)", s->n_aux, RELAY_MAX_AUX);
        return RELAY_ETOOBIG;
    }
    for (uint32_t i = 0; i < s->n_aux; i++) {
        if (memchr(s->aux_names[i], 0, RELAY_AUX_NAME_MAX) == NULL) {
            rly_warn(MOD, "step spec: aux name %u is not NUL-terminated", i);
            return RELAY_EINVAL;
        }
    }
    return RELAY_OK;
}

void relay_step_spec_bytes(const relay_step_spec *s, size_t *obs, size_t *act, size_t *mask)
{
    size_t o = 0, a = 0, m = 0;
    if (s) {
        if (relay_shape_nbytes(s->obs_dtype, s->obs_rank, s->obs_shape, &o))
            o = 0;
        if (relay_shape_nbytes(s->act_dtype, s->act_rank, s->act_shape, &a))
            a = 0;
        if (s->mask_dtype == RELAY_DTYPE_INVALID ||
            relay_shape_nbytes(s->mask_dtype, s->mask_rank, s->mask_shape, &m))
            m = 0;
    }
    if (obs)
        *obs = o;
    if (act)
        *act = a;
    if (mask)
        *mask = m;
}

static bool column_eq(relay_dtype da, uint32_t ra, const int64_t *sa, relay_dtype db, uint32_t rb,
                      const int64_t *sb)
{
    if (da != db || ra != rb || ra > RELAY_MAX_RANK)
        return false;
    return ra == 0 || memcmp(sa, sb, ra * sizeof sa[0]) == 0;
}

bool relay_step_spec_eq(const relay_step_spec *a, const relay_step_spec *b)
{
    if (!a || !b)
        return a == b;
    if (!column_eq(a->obs_dtype, a->obs_rank, a->obs_shape, b->obs_dtype, b->obs_rank,
                   b->obs_shape) ||
        !column_eq(a->act_dtype, a->act_rank, a->act_shape, b->act_dtype, b->act_rank,
                   b->act_shape))
        return false;
    if (a->mask_dtype != b->mask_dtype)
        return false;
    if (a->mask_dtype != RELAY_DTYPE_INVALID &&
        !column_eq(a->mask_dtype, a->mask_rank, a->mask_shape, b->mask_dtype, b->mask_rank,
                   b->mask_shape))
        return false;
    if (a->n_aux != b->n_aux || a->n_aux > RELAY_MAX_AUX)
        return false;
    for (uint32_t i = 0; i < a->n_aux; i++) {
        if (strncmp(a->aux_names[i], b->aux_names[i], RELAY_AUX_NAME_MAX) != 0)
            return false;
    }
    return true;
}

/* grow reallocates *p to n bytes (at least 1, so a column pointer is never NULL). */
static relay_err grow(void *pp, size_t n)
{
    void **p = pp;
    void *q = realloc(*p, n ? n : 1);
    if (!q)
        return RELAY_ENOMEM;
    *p = q;
    return RELAY_OK;
}

static relay_err mul_size(size_t a, size_t b, size_t *out)
{
    if (__builtin_mul_overflow(a, b, out) || *out > RLY_DATA_MAX_BYTES)
        return RELAY_ETOOBIG;
    return RELAY_OK;
}

relay_err relay_traj_reserve(relay_traj *t, uint32_t cap)
{
    if (!t)
        return RELAY_EINVAL;
    size_t ob, ab, mb;
    relay_step_spec_bytes(&t->spec, &ob, &ab, &mb);
    /* The spec only changes together with a reserve (see the codec), so the cache stays true. */
    t->row_obs_ = ob;
    t->row_act_ = ab;
    t->row_mask_ = mb;
    t->row_cached_ = true;
    if (cap <= t->cap)
        return RELAY_OK;
    size_t so, sa, sm, saux;
    if (mul_size(cap, ob, &so) || mul_size(cap, ab, &sa) || mul_size(cap, mb, &sm) ||
        mul_size(cap, (size_t)t->spec.n_aux * sizeof(float), &saux)) {
        rly_warn(MOD, "trajectory capacity %u is too large for its step spec", cap);
        return RELAY_ETOOBIG;
    }
    /* Each column grows independently; cap only moves once all of them have grown. */
    if (grow(&t->obs, so) || grow(&t->act, sa) || grow(&t->reward, cap * sizeof(float)) ||
        grow(&t->terminated, cap) || grow(&t->truncated, cap) || grow(&t->aux, saux) ||
        grow(&t->ts, cap * sizeof(int64_t)))
        return RELAY_ENOMEM;
    if (t->spec.mask_dtype != RELAY_DTYPE_INVALID && grow(&t->mask, sm))
        return RELAY_ENOMEM;
    t->cap = cap;
    return RELAY_OK;
}

relay_traj *relay_traj_new(const relay_step_spec *spec, uint32_t cap, uint32_t max_len)
{
    if (!spec || relay_step_spec_validate(spec) != RELAY_OK)
        return NULL;
    relay_traj *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->spec = *spec;
    for (uint32_t i = t->spec.n_aux; i < RELAY_MAX_AUX; i++)
        memset(t->spec.aux_names[i], 0, RELAY_AUX_NAME_MAX);
    if (t->spec.mask_dtype == RELAY_DTYPE_INVALID) {
        t->spec.mask_rank = 0;
        memset(t->spec.mask_shape, 0, sizeof t->spec.mask_shape);
    }
    t->env_id = -1;
    t->max_len = max_len;
    if (max_len && cap > max_len)
        cap = max_len;
    if (relay_traj_reserve(t, cap ? cap : 1) != RELAY_OK) {
        relay_traj_free(t);
        return NULL;
    }
    return t;
}

void relay_traj_free(relay_traj *t)
{
    if (!t)
        return;
    free(t->obs);
    free(t->act);
    free(t->mask);
    free(t->reward);
    free(t->terminated);
    free(t->truncated);
    free(t->aux);
    free(t->ts);
    free(t);
}

/* fill_ones writes the value 1 of dtype into every element of a mask row (everything allowed). */
static void fill_ones(uint8_t *dst, relay_dtype dtype, size_t nbytes)
{
    size_t es = relay_dtype_size(dtype);
    for (size_t off = 0; es && off + es <= nbytes; off += es) {
        switch (dtype) {
        case RELAY_F32: {
            float v = 1.0f;
            memcpy(dst + off, &v, 4);
            break;
        }
        case RELAY_F64: {
            double v = 1.0;
            memcpy(dst + off, &v, 8);
            break;
        }
        case RELAY_I32: {
            int32_t v = 1;
            memcpy(dst + off, &v, 4);
            break;
        }
        case RELAY_I64: {
            int64_t v = 1;
            memcpy(dst + off, &v, 8);
            break;
        }
        default:
            dst[off] = 1;
        }
    }
}

relay_err relay_traj_push(relay_traj *t, const void *obs, const void *act, const void *mask,
                          float reward, bool terminated, bool truncated, const float *aux,
                          int64_t ts_ns)
{
    if (!t)
        return RELAY_EINVAL;
    if (t->max_len && t->len >= t->max_len)
        return RELAY_EFULL;
    if (!t->row_cached_) {
        relay_step_spec_bytes(&t->spec, &t->row_obs_, &t->row_act_, &t->row_mask_);
        t->row_cached_ = true;
    }
    size_t ob = t->row_obs_, ab = t->row_act_, mb = t->row_mask_;
    if ((ob && !obs) || (ab && !act)) {
        rly_warn(MOD, "relay_traj_push: NULL observation or action");
        return RELAY_EINVAL;
    }
    if (t->len == t->cap) {
        uint32_t ncap = t->cap < 8 ? 16 : (t->cap > UINT32_MAX / 2 ? UINT32_MAX : t->cap * 2);
        if (t->max_len && ncap > t->max_len)
            ncap = t->max_len;
        if (ncap <= t->cap)
            return RELAY_EFULL;
        relay_err e = relay_traj_reserve(t, ncap);
        if (e)
            return e;
    }
    uint32_t i = t->len;
    memcpy(t->obs + (size_t)i * ob, obs, ob);
    memcpy(t->act + (size_t)i * ab, act, ab);
    if (t->spec.mask_dtype != RELAY_DTYPE_INVALID) {
        if (mask)
            memcpy(t->mask + (size_t)i * mb, mask, mb);
        else
            fill_ones(t->mask + (size_t)i * mb, t->spec.mask_dtype, mb);
    }
    t->reward[i] = reward;
    t->terminated[i] = terminated ? 1 : 0;
    t->truncated[i] = truncated ? 1 : 0;
    if (t->spec.n_aux) {
        float *row = t->aux + (size_t)i * t->spec.n_aux;
        if (aux)
            memcpy(row, aux, t->spec.n_aux * sizeof(float));
        else
            memset(row, 0, t->spec.n_aux * sizeof(float));
    }
    t->ts[i] = ts_ns;
    if (i == 0)
        t->start_ns = ts_ns;
    t->end_ns = ts_ns;
    t->len = i + 1;
    return RELAY_OK;
}

void relay_traj_clear(relay_traj *t)
{
    if (!t)
        return;
    t->len = 0;
    t->start_ns = 0;
    t->end_ns = 0;
}

relay_err relay_traj_get_action(const relay_traj *t, uint32_t i, relay_action *a)
{
    if (!t || !a)
        return RELAY_EINVAL;
    if (i >= t->len) {
        rly_warn(MOD, "step %u out of range (len %u)", i, t->len);
        return RELAY_EINVAL;
    }
    memset(a, 0, sizeof *a);
    size_t ob, ab, mb;
    relay_step_spec_bytes(&t->spec, &ob, &ab, &mb);
    const relay_step_spec *s = &t->spec;
    relay_err e = relay_tensor_view(&a->obs, s->obs_dtype, s->obs_rank, s->obs_shape,
                                    t->obs + (size_t)i * ob);
    if (!e)
        e = relay_tensor_view(&a->act, s->act_dtype, s->act_rank, s->act_shape,
                              t->act + (size_t)i * ab);
    if (!e && s->mask_dtype != RELAY_DTYPE_INVALID)
        e = relay_tensor_view(&a->mask, s->mask_dtype, s->mask_rank, s->mask_shape,
                              t->mask + (size_t)i * mb);
    if (e)
        return e;
    a->reward = t->reward[i];
    a->terminated = t->terminated[i] != 0;
    a->truncated = t->truncated[i] != 0;
    a->n_aux = s->n_aux;
    for (uint32_t k = 0; k < s->n_aux; k++) {
        memcpy(a->aux[k].name, s->aux_names[k], RELAY_AUX_NAME_MAX);
        a->aux[k].name[RELAY_AUX_NAME_MAX - 1] = 0;
        a->aux[k].value = t->aux[(size_t)i * s->n_aux + k];
    }
    a->actor = t->actor;
    a->timestamp_ns = t->ts[i];
    return RELAY_OK;
}

double relay_traj_return(const relay_traj *t)
{
    double sum = 0;
    if (!t)
        return 0;
    for (uint32_t i = 0; i < t->len; i++)
        sum += t->reward[i];
    return sum;
}

relay_traj *relay_traj_clone(const relay_traj *t)
{
    if (!t)
        return NULL;
    relay_traj *c = relay_traj_new(&t->spec, t->len ? t->len : 1, 0);
    if (!c)
        return NULL;
    c->actor = t->actor;
    c->env_id = t->env_id;
    memcpy(c->env_label, t->env_label, RELAY_LABEL_MAX);
    c->episode = t->episode;
    c->policy_version = t->policy_version;
    c->start_ns = t->start_ns;
    c->end_ns = t->end_ns;
    c->max_len = t->max_len;
    c->len = t->len;
    size_t ob, ab, mb, n = t->len;
    relay_step_spec_bytes(&t->spec, &ob, &ab, &mb);
    memcpy(c->obs, t->obs, n * ob);
    memcpy(c->act, t->act, n * ab);
    if (mb)
        memcpy(c->mask, t->mask, n * mb);
    memcpy(c->reward, t->reward, n * sizeof(float));
    memcpy(c->terminated, t->terminated, n);
    memcpy(c->truncated, t->truncated, n);
    if (t->spec.n_aux)
        memcpy(c->aux, t->aux, n * t->spec.n_aux * sizeof(float));
    memcpy(c->ts, t->ts, n * sizeof(int64_t));
    return c;
}
