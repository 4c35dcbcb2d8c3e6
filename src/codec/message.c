/*
 * Conversion between Relay's C types and relay.v1 protobuf messages.
 *
 * Encoding builds protobuf-c structs on the stack that point straight into the caller's columns
 * and tensors (no copies), packs them into the codec's scratch buffer and seals the envelope.
 * Decoding unpacks into the codec's arena and validates every field against the limits and the
 * step spec before copying anything into Relay types.
 */
#include <stdlib.h>
#include <string.h>

#include "codec/codec_internal.h"
#include "core/log.h"
#include "relay.pb-c.h"

#define MOD RLY_CODEC_MOD

static char empty_str[1] = "";

/* ---- helpers ---- */

static ProtobufCBinaryData bin(const void *p, size_t n)
{
    ProtobufCBinaryData b = {n, (uint8_t *)(uintptr_t)p};
    if (!p)
        b.len = 0;
    return b;
}

static char *cstr(const char *s)
{
    return s ? (char *)(uintptr_t)s : empty_str;
}

/* id_bytes is nil ids as empty bytes, others as 16 bytes. */
static ProtobufCBinaryData id_bin(const relay_id *id)
{
    return relay_id_is_nil(*id) ? bin(NULL, 0) : bin(id->bytes, 16);
}

static relay_err id_from(ProtobufCBinaryData b, relay_id *out, const char *what)
{
    memset(out, 0, sizeof *out);
    if (b.len == 0)
        return RELAY_OK;
    if (b.len != 16) {
        rly_warn(MOD, "decode: %s is %zu bytes, want 16", what, b.len);
        return RELAY_EFORMAT;
    }
    memcpy(out->bytes, b.data, 16);
    return RELAY_OK;
}

static relay_err str_from(const char *s, char *dst, size_t cap, const char *what)
{
    if (!s)
        s = "";
    size_t n = strnlen(s, cap);
    if (n >= cap) {
        rly_warn(MOD, "decode: %s is longer than %zu bytes", what, cap - 1);
        return RELAY_ETOOBIG;
    }
    memcpy(dst, s, n + 1);
    return RELAY_OK;
}

static relay_err pack_seal(relay_codec *c, relay_msg_kind kind, const Relay__V1__Message *pm,
                           relay_codec_buf *out)
{
    size_t n = relay__v1__message__get_packed_size(pm);
    if (n > c->opt.limits.max_message_bytes) {
        rly_warn(MOD, "encode: %s message of %zu bytes exceeds max_message_bytes %zu",
                 relay_msg_kind_name(kind), n, c->opt.limits.max_message_bytes);
        return RELAY_ETOOBIG;
    }
    if (relay_codec_buf_reserve(&c->pb, n ? n : 1))
        return RELAY_ENOMEM;
    size_t w = relay__v1__message__pack(pm, c->pb.data);
    if (w != n) {
        rly_error(MOD, "encode: packed %zu bytes, expected %zu", w, n);
        return RELAY_EINTERNAL;
    }
    return rly_envelope_seal(c, kind, c->pb.data, n, out);
}

/* ---- shapes and tensors ---- */

/* check_shape validates a wire dtype/shape and returns the byte size of one element block. */
static relay_err check_shape(const relay_codec_limits *L, int dtype, size_t rank,
                             const int64_t *shape, size_t *nbytes, const char *what)
{
    if (!relay_dtype_valid((relay_dtype)dtype)) {
        rly_warn(MOD, "decode: %s has invalid dtype %d", what, dtype);
        return RELAY_EFORMAT;
    }
    if (rank > L->max_rank || rank > RELAY_MAX_RANK) {
        rly_warn(MOD, "decode: %s has rank %zu (max %u)", what, rank, L->max_rank);
        return RELAY_ETOOBIG;
    }
    relay_err e = relay_shape_nbytes((relay_dtype)dtype, (uint32_t)rank, shape, nbytes);
    if (e == RELAY_ETOOBIG) {
        rly_warn(MOD, "decode: %s shape overflows", what);
        return RELAY_ETOOBIG;
    }
    if (e) {
        rly_warn(MOD, "decode: %s has a bad shape", what);
        return RELAY_EFORMAT;
    }
    if (*nbytes / relay_dtype_size((relay_dtype)dtype) > L->max_elements) {
        rly_warn(MOD, "decode: %s has more than max_elements %llu elements", what,
                 (unsigned long long)L->max_elements);
        return RELAY_ETOOBIG;
    }
    return RELAY_OK;
}

static relay_err tensor_to_pb(const relay_tensor *t, Relay__V1__Tensor *pt, const char *what)
{
    size_t nbytes;
    relay_err e = relay_shape_nbytes(t->dtype, t->rank, t->shape, &nbytes);
    if (e || nbytes != t->nbytes || (nbytes && !t->data)) {
        rly_warn(MOD, "encode: %s tensor is inconsistent (dtype %d, rank %u, %zu bytes)", what,
                 (int)t->dtype, t->rank, t->nbytes);
        return e ? e : RELAY_ESHAPE;
    }
    relay__v1__tensor__init(pt);
    pt->dtype = (Relay__V1__DType)t->dtype;
    pt->n_shape = t->rank;
    pt->shape = (int64_t *)(uintptr_t)t->shape;
    pt->data = bin(t->data, nbytes);
    return RELAY_OK;
}

static relay_err tensor_from_pb(const relay_codec_limits *L, const Relay__V1__Tensor *pt,
                                relay_tensor *out, const char *what)
{
    size_t nbytes;
    relay_err e = check_shape(L, pt->dtype, pt->n_shape, pt->shape, &nbytes, what);
    if (e)
        return e;
    if (pt->data.len != nbytes) {
        rly_warn(MOD, "decode: %s holds %zu bytes, its shape needs %zu", what, pt->data.len,
                 nbytes);
        return RELAY_EFORMAT;
    }
    e = relay_tensor_init(out, (relay_dtype)pt->dtype, (uint32_t)pt->n_shape, pt->shape);
    if (e)
        return e;
    if (nbytes)
        memcpy(out->data, pt->data.data, nbytes);
    return RELAY_OK;
}

/* ---- trajectories ---- */

typedef struct traj_pb {
    Relay__V1__Trajectory t;
    Relay__V1__StepSpec spec;
    Relay__V1__ColumnSpec obs, act, mask;
    char *names[RELAY_MAX_AUX];
} traj_pb;

static relay_err traj_to_pb(const relay_traj *t, traj_pb *p)
{
    relay_err e = relay_step_spec_validate(&t->spec);
    if (e)
        return e;
    if (t->len > t->cap || (t->max_len && t->len > t->max_len)) {
        rly_warn(MOD, "encode: trajectory len %u exceeds cap %u or max_len %u", t->len, t->cap,
                 t->max_len);
        return RELAY_EINVAL;
    }
    const relay_step_spec *s = &t->spec;
    size_t ob, ab, mb, n = t->len;
    relay_step_spec_bytes(s, &ob, &ab, &mb);
    relay__v1__column_spec__init(&p->obs);
    p->obs.dtype = (Relay__V1__DType)s->obs_dtype;
    p->obs.n_shape = s->obs_rank;
    p->obs.shape = (int64_t *)(uintptr_t)s->obs_shape;
    relay__v1__column_spec__init(&p->act);
    p->act.dtype = (Relay__V1__DType)s->act_dtype;
    p->act.n_shape = s->act_rank;
    p->act.shape = (int64_t *)(uintptr_t)s->act_shape;
    relay__v1__step_spec__init(&p->spec);
    p->spec.obs = &p->obs;
    p->spec.act = &p->act;
    bool has_mask = s->mask_dtype != RELAY_DTYPE_INVALID;
    if (has_mask) {
        relay__v1__column_spec__init(&p->mask);
        p->mask.dtype = (Relay__V1__DType)s->mask_dtype;
        p->mask.n_shape = s->mask_rank;
        p->mask.shape = (int64_t *)(uintptr_t)s->mask_shape;
        p->spec.mask = &p->mask;
    }
    for (uint32_t i = 0; i < s->n_aux; i++)
        p->names[i] = (char *)(uintptr_t)s->aux_names[i];
    p->spec.n_aux_names = s->n_aux;
    p->spec.aux_names = p->names;

    Relay__V1__Trajectory *pt = &p->t;
    relay__v1__trajectory__init(pt);
    pt->actor_id = id_bin(&t->actor);
    pt->env_id = t->env_id;
    if (memchr(t->env_label, 0, RELAY_LABEL_MAX) == NULL) {
        rly_warn(MOD, "encode: env_label is not NUL-terminated");
        return RELAY_EINVAL;
    }
    pt->env_label = cstr(t->env_label);
    pt->episode = t->episode;
    pt->policy_version = t->policy_version;
    pt->start_ns = t->start_ns;
    pt->end_ns = t->end_ns;
    pt->max_len = t->max_len;
    pt->len = t->len;
    pt->spec = &p->spec;
    if (n) {
        pt->obs = bin(t->obs, n * ob);
        pt->act = bin(t->act, n * ab);
        if (has_mask)
            pt->mask = bin(t->mask, n * mb);
        pt->n_reward = n;
        pt->reward = t->reward;
        pt->terminated = bin(t->terminated, n);
        pt->truncated = bin(t->truncated, n);
        pt->n_aux = n * s->n_aux;
        pt->aux = t->aux;
        pt->n_timestamps_ns = n;
        pt->timestamps_ns = t->ts;
    }
    return RELAY_OK;
}

static relay_err column_from_pb(const relay_codec_limits *L, const Relay__V1__ColumnSpec *col,
                                relay_dtype *dtype, uint32_t *rank, int64_t *shape,
                                const char *what)
{
    if (!col) {
        rly_warn(MOD, "decode: trajectory spec lacks the %s column", what);
        return RELAY_EFORMAT;
    }
    size_t nbytes;
    relay_err e = check_shape(L, col->dtype, col->n_shape, col->shape, &nbytes, what);
    if (e)
        return e;
    *dtype = (relay_dtype)col->dtype;
    *rank = (uint32_t)col->n_shape;
    if (col->n_shape)
        memcpy(shape, col->shape, col->n_shape * sizeof shape[0]);
    return RELAY_OK;
}

static relay_err spec_from_pb(const relay_codec_limits *L, const Relay__V1__StepSpec *ps,
                              relay_step_spec *s)
{
    memset(s, 0, sizeof *s);
    if (!ps) {
        rly_warn(MOD, "decode: trajectory without a step spec");
        return RELAY_EFORMAT;
    }
    relay_err e;
    if ((e = column_from_pb(L, ps->obs, &s->obs_dtype, &s->obs_rank, s->obs_shape, "obs")) ||
        (e = column_from_pb(L, ps->act, &s->act_dtype, &s->act_rank, s->act_shape, "act")))
        return e;
    if (ps->mask && (ps->mask->dtype != RELAY__V1__DTYPE__DTYPE_INVALID || ps->mask->n_shape) &&
        (e = column_from_pb(L, ps->mask, &s->mask_dtype, &s->mask_rank, s->mask_shape, "mask")))
        return e;
    if (ps->n_aux_names > RELAY_MAX_AUX) {
        rly_warn(MOD, "decode: %zu aux names (max %d)", ps->n_aux_names, RELAY_MAX_AUX);
        return RELAY_ETOOBIG;
    }
    s->n_aux = (uint32_t)ps->n_aux_names;
    for (size_t i = 0; i < ps->n_aux_names; i++) {
        if ((e = str_from(ps->aux_names[i], s->aux_names[i], RELAY_AUX_NAME_MAX, "aux name")))
            return e;
    }
    return relay_step_spec_validate(s) ? RELAY_EFORMAT : RELAY_OK;
}

/* column_check verifies that a column of n steps x step bytes matches what was received. */
static relay_err column_check(const relay_codec_limits *L, size_t got, size_t n, size_t step,
                              size_t esize, const char *what)
{
    size_t want;
    if (__builtin_mul_overflow(n, step, &want)) {
        rly_warn(MOD, "decode: %s column size overflows", what);
        return RELAY_ETOOBIG;
    }
    if (esize && want / esize > L->max_elements) {
        rly_warn(MOD, "decode: %s column has more than max_elements %llu elements", what,
                 (unsigned long long)L->max_elements);
        return RELAY_ETOOBIG;
    }
    if (got != want) {
        rly_warn(MOD, "decode: %s column holds %zu bytes, want %zu", what, got, want);
        return RELAY_EFORMAT;
    }
    return RELAY_OK;
}

static relay_err flags_check(ProtobufCBinaryData b, const char *what)
{
    for (size_t i = 0; i < b.len; i++) {
        if (b.data[i] > 1) {
            rly_warn(MOD, "decode: %s[%zu] is %u, want 0 or 1", what, i, b.data[i]);
            return RELAY_EFORMAT;
        }
    }
    return RELAY_OK;
}

/* traj_check validates a received trajectory against the limits; fills spec. */
static relay_err traj_check(const relay_codec_limits *L, const Relay__V1__Trajectory *pt,
                            relay_step_spec *spec)
{
    relay_err e = spec_from_pb(L, pt->spec, spec);
    if (e)
        return e;
    size_t n = pt->len;
    if (pt->len > L->max_steps) {
        rly_warn(MOD, "decode: trajectory of %u steps exceeds max_steps %u", pt->len, L->max_steps);
        return RELAY_ETOOBIG;
    }
    if (pt->max_len && pt->len > pt->max_len) {
        rly_warn(MOD, "decode: trajectory len %u exceeds its max_len %u", pt->len, pt->max_len);
        return RELAY_EFORMAT;
    }
    size_t ob, ab, mb;
    relay_step_spec_bytes(spec, &ob, &ab, &mb);
    if ((e = column_check(L, pt->obs.len, n, ob, relay_dtype_size(spec->obs_dtype), "obs")) ||
        (e = column_check(L, pt->act.len, n, ab, relay_dtype_size(spec->act_dtype), "act")) ||
        (e = column_check(L, pt->mask.len, n, mb, relay_dtype_size(spec->mask_dtype), "mask")) ||
        (e = column_check(L, pt->n_reward, n, 1, 1, "reward")) ||
        (e = column_check(L, pt->terminated.len, n, 1, 1, "terminated")) ||
        (e = column_check(L, pt->truncated.len, n, 1, 1, "truncated")) ||
        (e = column_check(L, pt->n_aux, n, spec->n_aux, 1, "aux")) ||
        (e = column_check(L, pt->n_timestamps_ns, n, 1, 1, "timestamps")) ||
        (e = flags_check(pt->terminated, "terminated")) ||
        (e = flags_check(pt->truncated, "truncated")))
        return e;
    return RELAY_OK;
}

/* traj_fill copies a checked trajectory into t (whose spec equals spec and cap >= len). */
static relay_err traj_fill(const Relay__V1__Trajectory *pt, relay_traj *t)
{
    relay_err e = id_from(pt->actor_id, &t->actor, "trajectory actor_id");
    if (!e)
        e = str_from(pt->env_label, t->env_label, RELAY_LABEL_MAX, "env_label");
    if (e)
        return e;
    t->env_id = pt->env_id;
    t->episode = pt->episode;
    t->policy_version = pt->policy_version;
    t->start_ns = pt->start_ns;
    t->end_ns = pt->end_ns;
    t->max_len = pt->max_len;
    size_t n = pt->len;
    if (n) {
        /* a column may hold zero bytes (a zero-sized shape): no source pointer then */
        if (pt->obs.len)
            memcpy(t->obs, pt->obs.data, pt->obs.len);
        if (pt->act.len)
            memcpy(t->act, pt->act.data, pt->act.len);
        if (pt->mask.len)
            memcpy(t->mask, pt->mask.data, pt->mask.len);
        memcpy(t->reward, pt->reward, n * sizeof(float));
        memcpy(t->terminated, pt->terminated.data, n);
        memcpy(t->truncated, pt->truncated.data, n);
        if (pt->n_aux)
            memcpy(t->aux, pt->aux, pt->n_aux * sizeof(float));
        memcpy(t->ts, pt->timestamps_ns, n * sizeof(int64_t));
    }
    t->len = pt->len;
    return RELAY_OK;
}

/* ---- model bundles ---- */

typedef struct bundle_pb {
    Relay__V1__ModelBundle b;
    Relay__V1__Space obs, act;
} bundle_pb;

static relay_err space_to_pb(const relay_bundle_space *s, Relay__V1__Space *ps, const char *what)
{
    if (s->dim > RELAY_BUNDLE_MAX_DIM) {
        rly_warn(MOD, "encode: %s dim %u exceeds %d", what, s->dim, RELAY_BUNDLE_MAX_DIM);
        return RELAY_EINVAL;
    }
    relay__v1__space__init(ps);
    ps->discrete = s->discrete;
    ps->n = s->n;
    ps->dim = s->dim;
    if (s->has_bounds) {
        ps->n_low = ps->n_high = s->dim;
        ps->low = (float *)(uintptr_t)s->low;
        ps->high = (float *)(uintptr_t)s->high;
    }
    return RELAY_OK;
}

static relay_err bundle_to_pb(const relay_model_bundle *b, bundle_pb *p)
{
    relay_err e;
    if ((e = space_to_pb(&b->obs_space, &p->obs, "obs_space")) ||
        (e = space_to_pb(&b->act_space, &p->act, "act_space")))
        return e;
    if (!memchr(b->name, 0, RELAY_NAME_MAX) || !memchr(b->input_name, 0, RELAY_NAME_MAX) ||
        !memchr(b->output_name, 0, RELAY_NAME_MAX) || (b->onnx_len && !b->onnx) ||
        (b->value_onnx_len && !b->value_onnx) || b->n_log_std > RELAY_BUNDLE_MAX_DIM) {
        rly_warn(MOD, "encode: model bundle has unterminated names or NULL ONNX bytes");
        return RELAY_EINVAL;
    }
    relay__v1__model_bundle__init(&p->b);
    p->b.onnx = bin(b->onnx, b->onnx_len);
    p->b.version = b->version;
    p->b.obs_space = &p->obs;
    p->b.act_space = &p->act;
    p->b.name = cstr(b->name);
    p->b.input_name = cstr(b->input_name);
    p->b.output_name = cstr(b->output_name);
    p->b.created_ns = b->created_ns;
    p->b.value_onnx = bin(b->value_onnx, b->value_onnx_len);
    p->b.n_log_std = b->n_log_std;
    p->b.log_std = (float *)b->log_std;
    return RELAY_OK;
}

static relay_err space_from_pb(const Relay__V1__Space *ps, relay_bundle_space *s, const char *what)
{
    memset(s, 0, sizeof *s);
    if (!ps)
        return RELAY_OK;
    if (ps->dim > RELAY_BUNDLE_MAX_DIM) {
        rly_warn(MOD, "decode: %s dim %u exceeds %d", what, ps->dim, RELAY_BUNDLE_MAX_DIM);
        return RELAY_ETOOBIG;
    }
    if (ps->n_low != ps->n_high || (ps->n_low && ps->n_low != ps->dim) || ps->n < 0) {
        rly_warn(MOD, "decode: %s has %zu low and %zu high bounds for dim %u (n %d)", what,
                 ps->n_low, ps->n_high, ps->dim, ps->n);
        return RELAY_EFORMAT;
    }
    s->discrete = ps->discrete;
    s->n = ps->n;
    s->dim = ps->dim;
    s->has_bounds = ps->n_low != 0;
    if (ps->n_low) {
        memcpy(s->low, ps->low, ps->n_low * sizeof(float));
        memcpy(s->high, ps->high, ps->n_high * sizeof(float));
    }
    return RELAY_OK;
}

static relay_err bundle_from_pb(const Relay__V1__ModelBundle *pb, relay_model_bundle *b)
{
    memset(b, 0, sizeof *b);
    relay_err e;
    if ((e = space_from_pb(pb->obs_space, &b->obs_space, "obs_space")) ||
        (e = space_from_pb(pb->act_space, &b->act_space, "act_space")) ||
        (e = str_from(pb->name, b->name, RELAY_NAME_MAX, "model name")) ||
        (e = str_from(pb->input_name, b->input_name, RELAY_NAME_MAX, "input_name")) ||
        (e = str_from(pb->output_name, b->output_name, RELAY_NAME_MAX, "output_name")))
        return e;
    if (pb->n_log_std > RELAY_BUNDLE_MAX_DIM) {
        rly_warn(MOD, "decode: %zu log std values exceed %d", pb->n_log_std, RELAY_BUNDLE_MAX_DIM);
        return RELAY_ETOOBIG;
    }
    b->version = pb->version;
    b->created_ns = pb->created_ns;
    b->onnx = malloc(pb->onnx.len ? pb->onnx.len : 1);
    if (!b->onnx)
        return RELAY_ENOMEM;
    b->owns_onnx = true;
    if (pb->onnx.len)
        memcpy(b->onnx, pb->onnx.data, pb->onnx.len);
    b->onnx_len = pb->onnx.len;
    if (pb->value_onnx.len) {
        if (!(b->value_onnx = malloc(pb->value_onnx.len))) {
            free(b->onnx);
            b->onnx = NULL;
            return RELAY_ENOMEM;
        }
        memcpy(b->value_onnx, pb->value_onnx.data, pb->value_onnx.len);
        b->value_onnx_len = pb->value_onnx.len;
    }
    b->n_log_std = (uint32_t)pb->n_log_std;
    if (pb->n_log_std)
        memcpy(b->log_std, pb->log_std, pb->n_log_std * sizeof(float));
    return RELAY_OK;
}

void relay_model_bundle_fini(relay_model_bundle *b)
{
    if (!b)
        return;
    if (b->owns_onnx) {
        free(b->onnx);
        free(b->value_onnx);
    }
    memset(b, 0, sizeof *b);
}

void relay_msg_fini(relay_msg *m)
{
    if (!m)
        return;
    if (m->kind == RELAY_MSG_TRAJECTORY)
        relay_traj_free(m->traj);
    relay_action_fini(&m->action);
    relay_model_bundle_fini(&m->bundle);
    if (m->handshake.owns_actors)
        free(m->handshake.actors);
    memset(m, 0, sizeof *m);
}

/* ---- actor stats ---- */

/* stats_check refuses a report with absurd values, naming the field and the limit. */
static relay_err stats_check(const relay_actor_stats *st, const char *how)
{
    const struct {
        const char *name;
        uint64_t v;
    } counts[] = {{"env_steps", st->env_steps},
                  {"episodes", st->episodes},
                  {"trajectories", st->trajectories},
                  {"trajectories_acked", st->trajectories_acked},
                  {"trajectories_dropped", st->trajectories_dropped},
                  {"batches_sent", st->batches_sent},
                  {"batches_acked", st->batches_acked},
                  {"batches_resent", st->batches_resent},
                  {"spool_batches", st->spool_batches},
                  {"spool_bytes", st->spool_bytes},
                  {"rss_bytes", st->rss_bytes}};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i].v > RELAY_STATS_MAX_COUNT) {
            rly_warn(MOD, "%s: actor stats %s %llu exceeds 2^53", how, counts[i].name,
                     (unsigned long long)counts[i].v);
            return RELAY_ETOOBIG;
        }
    if (st->n_routers > RELAY_STATS_MAX_ROUTERS) {
        rly_warn(MOD, "%s: actor stats with %u routers exceeds %d", how, st->n_routers,
                 RELAY_STATS_MAX_ROUTERS);
        return RELAY_ETOOBIG;
    }
    if (st->model_version < -1 || st->model_version >= (int64_t)RELAY_STATS_MAX_COUNT) {
        rly_warn(MOD, "%s: actor stats model_version %lld out of range", how,
                 (long long)st->model_version);
        return RELAY_EFORMAT;
    }
    /* 1e12 seconds is ~31,700 years: anything above (or NaN, or negative) is not a clock */
    if (!(st->uptime_s >= 0 && st->uptime_s < 1e12) || !(st->cpu_s >= 0 && st->cpu_s < 1e12)) {
        rly_warn(MOD, "%s: actor stats uptime/cpu seconds out of range [0, 1e12)", how);
        return RELAY_EFORMAT;
    }
    return RELAY_OK;
}

static relay_err stats_to_pb(const relay_actor_stats *in, Relay__V1__ActorStats *o)
{
    if (!memchr(in->client_id, 0, RELAY_TEXT_MAX))
        return RELAY_EINVAL;
    relay_err e = stats_check(in, "encode");
    if (e)
        return e;
    relay__v1__actor_stats__init(o);
    o->client_id = cstr(in->client_id);
    o->env_steps = in->env_steps;
    o->episodes = in->episodes;
    o->trajectories = in->trajectories;
    o->trajectories_acked = in->trajectories_acked;
    o->trajectories_dropped = in->trajectories_dropped;
    o->batches_sent = in->batches_sent;
    o->batches_acked = in->batches_acked;
    o->batches_resent = in->batches_resent;
    o->spool_batches = in->spool_batches;
    o->spool_bytes = in->spool_bytes;
    o->model_version = in->model_version;
    o->actors = in->actors;
    o->n_router_queue_depth = in->n_routers;
    o->router_queue_depth = (uint32_t *)in->router_queue_depth;
    o->uptime_seconds = in->uptime_s;
    o->cpu_seconds = in->cpu_s;
    o->rss_bytes = in->rss_bytes;
    return RELAY_OK;
}

static relay_err stats_from_pb(const Relay__V1__ActorStats *p, relay_actor_stats *o)
{
    if (p->n_router_queue_depth > RELAY_STATS_MAX_ROUTERS) {
        rly_warn(MOD, "decode: actor stats with %zu router queue depths exceeds %d",
                 p->n_router_queue_depth, RELAY_STATS_MAX_ROUTERS);
        return RELAY_ETOOBIG;
    }
    relay_err e = str_from(p->client_id, o->client_id, RELAY_TEXT_MAX, "actor stats client_id");
    if (e)
        return e;
    o->env_steps = p->env_steps;
    o->episodes = p->episodes;
    o->trajectories = p->trajectories;
    o->trajectories_acked = p->trajectories_acked;
    o->trajectories_dropped = p->trajectories_dropped;
    o->batches_sent = p->batches_sent;
    o->batches_acked = p->batches_acked;
    o->batches_resent = p->batches_resent;
    o->spool_batches = p->spool_batches;
    o->spool_bytes = p->spool_bytes;
    o->model_version = p->model_version;
    o->actors = p->actors;
    o->n_routers = (uint32_t)p->n_router_queue_depth;
    if (o->n_routers)
        memcpy(o->router_queue_depth, p->router_queue_depth,
               o->n_routers * sizeof o->router_queue_depth[0]);
    o->uptime_s = p->uptime_seconds;
    o->cpu_s = p->cpu_seconds;
    o->rss_bytes = p->rss_bytes;
    return stats_check(o, "decode");
}

/* ---- whole messages ---- */

relay_err relay_codec_encode_msg(relay_codec *c, const relay_msg *m, relay_codec_buf *out)
{
    if (!c || !m || !out)
        return RELAY_EINVAL;
    Relay__V1__Message pm = RELAY__V1__MESSAGE__INIT;
    relay_err e = RELAY_OK;
    traj_pb tp;
    bundle_pb bp;
    Relay__V1__Action pa;
    Relay__V1__Tensor tobs, tact, tmask;
    Relay__V1__AuxValue aux[RELAY_MAX_AUX], *auxp[RELAY_MAX_AUX];
    Relay__V1__Handshake hs;
    Relay__V1__ModelVersionRequest vreq;
    Relay__V1__ModelVersionReply vrep;
    Relay__V1__ModelUpdate upd;
    Relay__V1__Shutdown sd;
    Relay__V1__FlagLastInference fl;
    Relay__V1__ActorStats st;
    ProtobufCBinaryData *ids = NULL;
    pm.body_case = (Relay__V1__Message__BodyCase)m->kind;
    switch (m->kind) {
    case RELAY_MSG_TRAJECTORY:
        if (!m->traj)
            return RELAY_EINVAL;
        if ((e = traj_to_pb(m->traj, &tp)))
            return e;
        pm.trajectory = &tp.t;
        break;
    case RELAY_MSG_ACTION: {
        const relay_action *a = &m->action;
        relay__v1__action__init(&pa);
        if ((e = tensor_to_pb(&a->obs, &tobs, "obs")) || (e = tensor_to_pb(&a->act, &tact, "act")))
            return e;
        pa.obs = &tobs;
        pa.act = &tact;
        if (a->mask.dtype != RELAY_DTYPE_INVALID) {
            if ((e = tensor_to_pb(&a->mask, &tmask, "mask")))
                return e;
            pa.mask = &tmask;
        }
        if (a->n_aux > RELAY_MAX_AUX)
            return RELAY_EINVAL;
        for (uint32_t i = 0; i < a->n_aux; i++) {
            if (!memchr(a->aux[i].name, 0, RELAY_AUX_NAME_MAX))
                return RELAY_EINVAL;
            relay__v1__aux_value__init(&aux[i]);
            aux[i].name = cstr(a->aux[i].name);
            aux[i].value = a->aux[i].value;
            auxp[i] = &aux[i];
        }
        pa.n_aux = a->n_aux;
        pa.aux = auxp;
        pa.reward = a->reward;
        pa.terminated = a->terminated;
        pa.truncated = a->truncated;
        pa.actor_id = id_bin(&a->actor);
        pa.timestamp_ns = a->timestamp_ns;
        pm.action = &pa;
        break;
    }
    case RELAY_MSG_MODEL_BUNDLE:
        if ((e = bundle_to_pb(&m->bundle, &bp)))
            return e;
        pm.model_bundle = &bp.b;
        break;
    case RELAY_MSG_MODEL_UPDATE:
        if ((e = bundle_to_pb(&m->bundle, &bp)))
            return e;
        relay__v1__model_update__init(&upd);
        upd.actor_id = id_bin(&m->actor);
        upd.bundle = &bp.b;
        pm.model_update = &upd;
        break;
    case RELAY_MSG_HANDSHAKE: {
        const relay_handshake *h = &m->handshake;
        if (!memchr(h->client_id, 0, RELAY_TEXT_MAX) || (h->n_actors && !h->actors))
            return RELAY_EINVAL;
        if (h->n_actors > c->opt.limits.max_actors) {
            rly_warn(MOD, "encode: handshake with %u actors exceeds max_actors %u", h->n_actors,
                     c->opt.limits.max_actors);
            return RELAY_ETOOBIG;
        }
        relay__v1__handshake__init(&hs);
        hs.client_id = cstr(h->client_id);
        hs.requested_model_version = h->requested_version;
        if (h->n_actors) {
            ids = malloc(h->n_actors * sizeof *ids);
            if (!ids)
                return RELAY_ENOMEM;
            for (uint32_t i = 0; i < h->n_actors; i++)
                ids[i] = bin(h->actors[i].bytes, 16);
        }
        hs.n_actor_ids = h->n_actors;
        hs.actor_ids = ids;
        pm.handshake = &hs;
        break;
    }
    case RELAY_MSG_MODEL_VERSION_REQUEST:
        relay__v1__model_version_request__init(&vreq);
        vreq.actor_id = id_bin(&m->actor);
        pm.model_version_request = &vreq;
        break;
    case RELAY_MSG_MODEL_VERSION_REPLY:
        relay__v1__model_version_reply__init(&vrep);
        vrep.actor_id = id_bin(&m->actor);
        vrep.version = m->version;
        pm.model_version_reply = &vrep;
        break;
    case RELAY_MSG_SHUTDOWN:
        if (!memchr(m->text, 0, RELAY_TEXT_MAX))
            return RELAY_EINVAL;
        relay__v1__shutdown__init(&sd);
        sd.reason = cstr(m->text);
        pm.shutdown = &sd;
        break;
    case RELAY_MSG_FLAG_LAST_ACTION:
        if (!memchr(m->flag.env_label, 0, RELAY_LABEL_MAX))
            return RELAY_EINVAL;
        relay__v1__flag_last_inference__init(&fl);
        fl.actor_id = id_bin(&m->flag.actor);
        fl.reward = m->flag.reward;
        fl.env_id = m->flag.env_id;
        fl.env_label = cstr(m->flag.env_label);
        pm.flag_last_action = &fl;
        break;
    case RELAY_MSG_ACTOR_STATS:
        if ((e = stats_to_pb(&m->stats, &st)))
            return e;
        pm.actor_stats = &st;
        break;
    default:
        rly_warn(MOD, "encode: unknown message kind %d", (int)m->kind);
        return RELAY_EINVAL;
    }
    e = pack_seal(c, m->kind, &pm, out);
    free(ids);
    return e;
}

/* unpack opens the envelope and unpacks its Message into the arena (reset by the caller). */
static relay_err unpack(relay_codec *c, const void *data, size_t len, Relay__V1__Message **out)
{
    relay_msg_kind kind;
    const uint8_t *pb;
    size_t n;
    relay_err e = rly_envelope_open(c, data, len, &kind, &pb, &n);
    if (e)
        return e;
    Relay__V1__Message *pm = relay__v1__message__unpack(&c->alloc, n, pb);
    if (!pm) {
        if (c->arena.over_limit) {
            rly_warn(MOD, "decode: message needs more than %zu bytes of memory", c->arena.limit);
            return RELAY_ETOOBIG;
        }
        rly_warn(MOD, "decode: payload is not a valid relay.v1.Message");
        return RELAY_EFORMAT;
    }
    if ((int)pm->body_case != (int)kind || !pm->trajectory) {
        rly_warn(MOD, "decode: envelope kind %s does not match the message body (%d)",
                 relay_msg_kind_name(kind), (int)pm->body_case);
        return RELAY_EFORMAT;
    }
    *out = pm;
    return RELAY_OK;
}

static relay_err decode_body(relay_codec *c, const Relay__V1__Message *pm, relay_msg *m)
{
    const relay_codec_limits *L = &c->opt.limits;
    relay_err e = RELAY_OK;
    m->kind = (relay_msg_kind)pm->body_case;
    switch (pm->body_case) {
    case RELAY__V1__MESSAGE__BODY_TRAJECTORY: {
        relay_step_spec spec;
        if ((e = traj_check(L, pm->trajectory, &spec)))
            return e;
        m->traj = relay_traj_new(&spec, pm->trajectory->len ? pm->trajectory->len : 1, 0);
        if (!m->traj)
            return RELAY_ENOMEM;
        return traj_fill(pm->trajectory, m->traj);
    }
    case RELAY__V1__MESSAGE__BODY_ACTION: {
        const Relay__V1__Action *pa = pm->action;
        relay_action *a = &m->action;
        if (!pa->obs || !pa->act) {
            rly_warn(MOD, "decode: action without obs or act");
            return RELAY_EFORMAT;
        }
        if ((e = tensor_from_pb(L, pa->obs, &a->obs, "action obs")) ||
            (e = tensor_from_pb(L, pa->act, &a->act, "action act")) ||
            (pa->mask && (e = tensor_from_pb(L, pa->mask, &a->mask, "action mask"))))
            return e;
        if (pa->n_aux > RELAY_MAX_AUX) {
            rly_warn(MOD, "decode: action has %zu aux values (max %d)", pa->n_aux, RELAY_MAX_AUX);
            return RELAY_ETOOBIG;
        }
        for (size_t i = 0; i < pa->n_aux; i++) {
            if ((e = str_from(pa->aux[i]->name, a->aux[i].name, RELAY_AUX_NAME_MAX, "aux name")))
                return e;
            a->aux[i].value = pa->aux[i]->value;
        }
        a->n_aux = (uint32_t)pa->n_aux;
        a->reward = pa->reward;
        a->terminated = pa->terminated;
        a->truncated = pa->truncated;
        a->timestamp_ns = pa->timestamp_ns;
        return id_from(pa->actor_id, &a->actor, "action actor_id");
    }
    case RELAY__V1__MESSAGE__BODY_MODEL_BUNDLE:
        return bundle_from_pb(pm->model_bundle, &m->bundle);
    case RELAY__V1__MESSAGE__BODY_MODEL_UPDATE:
        if (!pm->model_update->bundle) {
            rly_warn(MOD, "decode: model update without a bundle");
            return RELAY_EFORMAT;
        }
        if ((e = id_from(pm->model_update->actor_id, &m->actor, "model update actor_id")))
            return e;
        return bundle_from_pb(pm->model_update->bundle, &m->bundle);
    case RELAY__V1__MESSAGE__BODY_HANDSHAKE: {
        const Relay__V1__Handshake *h = pm->handshake;
        relay_handshake *o = &m->handshake;
        if (h->n_actor_ids > L->max_actors) {
            rly_warn(MOD, "decode: handshake with %zu actors exceeds max_actors %u", h->n_actor_ids,
                     L->max_actors);
            return RELAY_ETOOBIG;
        }
        if ((e = str_from(h->client_id, o->client_id, RELAY_TEXT_MAX, "client_id")))
            return e;
        o->requested_version = h->requested_model_version;
        if (h->n_actor_ids) {
            o->actors = malloc(h->n_actor_ids * sizeof(relay_id));
            if (!o->actors)
                return RELAY_ENOMEM;
            o->owns_actors = true;
            for (size_t i = 0; i < h->n_actor_ids; i++) {
                if (h->actor_ids[i].len != 16) {
                    rly_warn(MOD, "decode: handshake actor id %zu is %zu bytes, want 16", i,
                             h->actor_ids[i].len);
                    return RELAY_EFORMAT;
                }
                memcpy(o->actors[i].bytes, h->actor_ids[i].data, 16);
            }
            o->n_actors = (uint32_t)h->n_actor_ids;
        }
        return RELAY_OK;
    }
    case RELAY__V1__MESSAGE__BODY_MODEL_VERSION_REQUEST:
        return id_from(pm->model_version_request->actor_id, &m->actor, "actor_id");
    case RELAY__V1__MESSAGE__BODY_MODEL_VERSION_REPLY:
        m->version = pm->model_version_reply->version;
        return id_from(pm->model_version_reply->actor_id, &m->actor, "actor_id");
    case RELAY__V1__MESSAGE__BODY_SHUTDOWN:
        return str_from(pm->shutdown->reason, m->text, RELAY_TEXT_MAX, "shutdown reason");
    case RELAY__V1__MESSAGE__BODY_FLAG_LAST_ACTION: {
        const Relay__V1__FlagLastInference *f = pm->flag_last_action;
        m->flag.reward = f->reward;
        m->flag.env_id = f->env_id;
        if ((e = str_from(f->env_label, m->flag.env_label, RELAY_LABEL_MAX, "env_label")))
            return e;
        return id_from(f->actor_id, &m->flag.actor, "flag actor_id");
    }
    case RELAY__V1__MESSAGE__BODY_ACTOR_STATS:
        return stats_from_pb(pm->actor_stats, &m->stats);
    default:
        return RELAY_EFORMAT;
    }
}

relay_err relay_codec_decode_msg(relay_codec *c, const void *data, size_t len, relay_msg *m)
{
    if (!c || !m)
        return RELAY_EINVAL;
    memset(m, 0, sizeof *m);
    Relay__V1__Message *pm = NULL;
    relay_err e = unpack(c, data, len, &pm);
    if (!e)
        e = decode_body(c, pm, m);
    rly_arena_reset(&c->arena);
    if (e)
        relay_msg_fini(m);
    return e;
}

relay_err relay_codec_encode_traj(relay_codec *c, const relay_traj *t, relay_codec_buf *out)
{
    if (!c || !t || !out)
        return RELAY_EINVAL;
    traj_pb tp;
    relay_err e = traj_to_pb(t, &tp);
    if (e)
        return e;
    Relay__V1__Message pm = RELAY__V1__MESSAGE__INIT;
    pm.body_case = RELAY__V1__MESSAGE__BODY_TRAJECTORY;
    pm.trajectory = &tp.t;
    return pack_seal(c, RELAY_MSG_TRAJECTORY, &pm, out);
}

relay_err relay_codec_decode_traj(relay_codec *c, const void *data, size_t len, relay_traj **out)
{
    if (!c || !out)
        return RELAY_EINVAL;
    *out = NULL;
    relay_msg m;
    relay_err e = relay_codec_decode_msg(c, data, len, &m);
    if (e)
        return e;
    if (m.kind != RELAY_MSG_TRAJECTORY) {
        rly_warn(MOD, "decode: expected a trajectory, got %s", relay_msg_kind_name(m.kind));
        relay_msg_fini(&m);
        return RELAY_EFORMAT;
    }
    *out = m.traj;
    return RELAY_OK;
}

relay_err relay_codec_decode_traj_into(relay_codec *c, const void *data, size_t len, relay_traj *t)
{
    if (!c || !t)
        return RELAY_EINVAL;
    relay_traj_clear(t);
    Relay__V1__Message *pm = NULL;
    relay_step_spec spec;
    relay_err e = unpack(c, data, len, &pm);
    if (!e && pm->body_case != RELAY__V1__MESSAGE__BODY_TRAJECTORY) {
        rly_warn(MOD, "decode: expected a trajectory, got %s",
                 relay_msg_kind_name((relay_msg_kind)pm->body_case));
        e = RELAY_EFORMAT;
    }
    if (!e)
        e = traj_check(&c->opt.limits, pm->trajectory, &spec);
    if (!e && !relay_step_spec_eq(&spec, &t->spec)) {
        /* Columns are sized for the old spec: resize them all for the new one. */
        uint32_t keep = t->cap;
        if (spec.mask_dtype == RELAY_DTYPE_INVALID) {
            free(t->mask);
            t->mask = NULL;
        }
        t->spec = spec;
        t->cap = 0;
        e = relay_traj_reserve(t, keep ? keep : 1);
    }
    if (!e)
        e = relay_traj_reserve(t, pm->trajectory->len);
    if (!e)
        e = traj_fill(pm->trajectory, t);
    rly_arena_reset(&c->arena);
    if (e)
        relay_traj_clear(t);
    return e;
}

relay_err relay_codec_encode_bundle(relay_codec *c, const relay_model_bundle *b,
                                    relay_codec_buf *out)
{
    if (!c || !b || !out)
        return RELAY_EINVAL;
    bundle_pb bp;
    relay_err e = bundle_to_pb(b, &bp);
    if (e)
        return e;
    Relay__V1__Message pm = RELAY__V1__MESSAGE__INIT;
    pm.body_case = RELAY__V1__MESSAGE__BODY_MODEL_BUNDLE;
    pm.model_bundle = &bp.b;
    return pack_seal(c, RELAY_MSG_MODEL_BUNDLE, &pm, out);
}

relay_err relay_codec_decode_bundle(relay_codec *c, const void *data, size_t len,
                                    relay_model_bundle *b)
{
    if (!c || !b)
        return RELAY_EINVAL;
    memset(b, 0, sizeof *b);
    relay_msg m;
    relay_err e = relay_codec_decode_msg(c, data, len, &m);
    if (e)
        return e;
    if (m.kind != RELAY_MSG_MODEL_BUNDLE) {
        rly_warn(MOD, "decode: expected a model bundle, got %s", relay_msg_kind_name(m.kind));
        relay_msg_fini(&m);
        return RELAY_EFORMAT;
    }
    *b = m.bundle;
    memset(&m.bundle, 0, sizeof m.bundle);
    relay_msg_fini(&m);
    return RELAY_OK;
}
