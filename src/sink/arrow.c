/*
 * Arrow IPC file sink, written by hand. A run writes a *pair* of Arrow IPC files (metadata V5):
 *
 *   <run>.arrow       the steps table: one row per step, with an int32 "traj" column
 *   <run>.traj.arrow  the trajectory table: one row per trajectory (row i has traj == i) with
 *                     every trajectory-level field (actor id, env, episode, policy, times, ...)
 *
 * Each file is "ARROW1\0\0" | Schema | RecordBatch messages ... | EOS | Footer | int32 len |
 * "ARROW1". A message is 0xFFFFFFFF, an int32 metadata length, the Message flatbuffer padded to 8
 * bytes, then the body (every buffer at an 8-byte aligned offset). The steps columns are fixed by
 * the first trajectory's spec (see docs/DATA.md). Rows are gathered column by column into
 * preallocated batch buffers with memcpy; when batch_rows steps are buffered (or on flush/close)
 * the pending trajectory rows and then the step rows are written, one writev per record batch, so
 * every step on disk refers to a trajectory row already on disk. Trajectories longer than a batch
 * are split across batches; a trajectory split by a file rotation gets a row in both file pairs
 * (first_step tells where its rows resume).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "sink/arrow_format.h"
#include "sink/fb.h"
#include "sink/sink_internal.h"

enum src {
    /* steps table */
    SRC_TRAJ,
    SRC_STEP,
    SRC_TS,
    SRC_OBS,
    SRC_ACT,
    SRC_MASK,
    SRC_REWARD,
    SRC_TERM,
    SRC_TRUNC,
    /* trajectory table */
    T_TRAJ,
    T_ACTOR,
    T_ENV_ID,
    T_ENV_LABEL,
    T_EPISODE,
    T_POLICY,
    T_START,
    T_END,
    T_LENGTH,
    T_FIRST,
    T_RETURN,
    SRC_AUX /* + index */
};

#define MAX_COLS (12 + RELAY_MAX_AUX)

typedef struct acol {
    char name[8 + RELAY_AUX_NAME_MAX];
    int src;
    uint8_t type;     /* RLY_AT_* of the column */
    uint8_t leaf;     /* RLY_AT_* of the values (the child type for FixedSizeList) */
    uint8_t bits;     /* Int bit width */
    bool sign;        /* Int signedness */
    uint8_t prec;     /* FloatingPoint precision: 1 single, 2 double */
    uint32_t lsize;   /* FixedSizeList size, FixedSizeBinary width */
    size_t width;     /* bytes per row in vals */
    char dtype[8];    /* relay.dtype metadata (tensors) */
    char shape[200];  /* relay.shape metadata (tensors) */
    const char *kind; /* relay.kind metadata or NULL */
    uint8_t *vals;    /* [batch_rows x width] */
    int32_t *offs;    /* utf8: [batch_rows + 1] */
    char *data;       /* utf8 bytes */
    size_t data_len, data_cap;
} acol;

typedef struct ablock {
    int64_t offset, body;
    int32_t meta;
} ablock;

/* atable is one of the two Arrow files of the pair and its buffered record batch. */
typedef struct atable {
    rly_outfile out;   /* first: relay_sink_path reads the steps table's */
    const char *table; /* relay.table metadata: "steps" or "trajectories" */
    int ncols;
    acol cols[MAX_COLS];
    uint32_t rows; /* rows buffered in the current batch */
    bool header_written;
    ablock *blocks;
    size_t nblocks, blocks_cap;
    struct iovec *iov;
    int iov_cap;
} atable;

typedef struct arrowsink {
    atable st; /* first: the steps file is the sink's path */
    atable tt;
    rly_sink_counters c;
    uint32_t batch_rows;
    bool have_schema;
    uint32_t gen;  /* file pair generation, bumped by each rotation */
    int32_t ntraj; /* trajectory rows given out in the current file pair */
    relay_step_spec spec;
    uint8_t *bits; /* scratch for bit-packing bool buffers */
    size_t bits_cap;
    rly_fbb fbb;
    char traj_path[RLY_SINK_PATH_MAX];
} arrowsink;

static const uint8_t zeros[8];

/* ---- schema ---- */

static relay_err leaf_of(relay_dtype dt, acol *c)
{
    switch (dt) {
    case RELAY_F32:
        c->leaf = RLY_AT_FLOAT, c->prec = 1;
        return RELAY_OK;
    case RELAY_F64:
        c->leaf = RLY_AT_FLOAT, c->prec = 2;
        return RELAY_OK;
    case RELAY_I32:
        c->leaf = RLY_AT_INT, c->bits = 32, c->sign = true;
        return RELAY_OK;
    case RELAY_I64:
        c->leaf = RLY_AT_INT, c->bits = 64, c->sign = true;
        return RELAY_OK;
    case RELAY_U8:
        c->leaf = RLY_AT_INT, c->bits = 8, c->sign = false;
        return RELAY_OK;
    case RELAY_BOOL:
        c->leaf = RLY_AT_BOOL;
        return RELAY_OK;
    default:
        return RELAY_EDTYPE;
    }
}

static acol *add_col(atable *tb, const char *name, int src, uint8_t type, size_t width)
{
    acol *c = &tb->cols[tb->ncols++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->src = src;
    c->type = c->leaf = type;
    c->width = width;
    return c;
}

static void int_col(atable *tb, const char *name, int src, uint8_t bits)
{
    acol *c = add_col(tb, name, src, RLY_AT_INT, bits / 8);
    c->bits = bits;
    c->sign = true;
}

static void float_col(atable *tb, const char *name, int src, uint8_t prec)
{
    acol *c = add_col(tb, name, src, RLY_AT_FLOAT, prec == 2 ? 8 : 4);
    c->prec = prec;
}

static relay_err add_tensor(atable *tb, const char *name, int src, relay_dtype dt, uint32_t rank,
                            const int64_t *shape)
{
    int64_t numel = 1;
    for (uint32_t i = 0; i < rank; i++) {
        if (shape[i] < 0 || (shape[i] && numel > INT32_MAX / shape[i])) {
            rly_warn(RLY_SINK_LOG, "arrow sink: %s shape is negative or too large", name);
            return RELAY_ESHAPE;
        }
        numel *= shape[i];
    }
    acol *c = add_col(tb, name, src, RLY_AT_FSL, 0);
    if (leaf_of(dt, c) != RELAY_OK) {
        rly_warn(RLY_SINK_LOG, "arrow sink: %s has invalid dtype %d", name, (int)dt);
        return RELAY_EDTYPE;
    }
    c->type = RLY_AT_FSL;
    c->lsize = (uint32_t)numel;
    c->width = (size_t)numel * relay_dtype_size(dt);
    snprintf(c->dtype, sizeof c->dtype, "%s", relay_dtype_name(dt));
    rly_shape_text(c->shape, sizeof c->shape, rank, shape);
    return RELAY_OK;
}

/* alloc_table allocates the batch buffers of every column of tb for batch_rows rows. */
static relay_err alloc_table(arrowsink *a, atable *tb)
{
    int nbool = 0;
    size_t bits_cap = 0;
    for (int i = 0; i < tb->ncols; i++) {
        acol *k = &tb->cols[i];
        if (k->type == RLY_AT_UTF8) {
            k->offs = malloc(sizeof(int32_t) * ((size_t)a->batch_rows + 1));
            k->data_cap = (size_t)a->batch_rows * 16 + 64;
            k->data = malloc(k->data_cap);
            if (!k->offs || !k->data)
                return RELAY_ENOMEM;
            k->offs[0] = 0;
        } else {
            if ((uint64_t)k->width * a->batch_rows > ((uint64_t)1 << 40))
                return RELAY_ETOOBIG;
            k->vals = malloc(k->width * a->batch_rows + 1);
            if (!k->vals)
                return RELAY_ENOMEM;
        }
        size_t bits = ((size_t)a->batch_rows * (k->type == RLY_AT_FSL ? k->lsize : 1) + 7) / 8;
        if (k->leaf == RLY_AT_BOOL) {
            nbool++;
            if (bits > bits_cap)
                bits_cap = bits;
        }
    }
    if (bits_cap) {
        a->bits_cap = bits_cap;
        a->bits = malloc(((bits_cap + 7) & ~(size_t)7) * (size_t)nbool + 8);
        if (!a->bits)
            return RELAY_ENOMEM;
    }
    tb->iov_cap = 4 * tb->ncols + 8;
    tb->iov = malloc(sizeof *tb->iov * (size_t)tb->iov_cap);
    return tb->iov ? RELAY_OK : RELAY_ENOMEM;
}

static relay_err build_columns(arrowsink *a, const relay_step_spec *s)
{
    atable *st = &a->st, *tt = &a->tt;
    st->ncols = tt->ncols = 0;
    int_col(st, "traj", SRC_TRAJ, 32);
    int_col(st, "step", SRC_STEP, 32);
    int_col(st, "timestamp_ns", SRC_TS, 64);
    relay_err e = add_tensor(st, "obs", SRC_OBS, s->obs_dtype, s->obs_rank, s->obs_shape);
    if (e == RELAY_OK)
        e = add_tensor(st, "act", SRC_ACT, s->act_dtype, s->act_rank, s->act_shape);
    if (e == RELAY_OK && s->mask_dtype != RELAY_DTYPE_INVALID)
        e = add_tensor(st, "mask", SRC_MASK, s->mask_dtype, s->mask_rank, s->mask_shape);
    if (e != RELAY_OK)
        return e;
    float_col(st, "reward", SRC_REWARD, 1);
    add_col(st, "terminated", SRC_TERM, RLY_AT_BOOL, 1);
    add_col(st, "truncated", SRC_TRUNC, RLY_AT_BOOL, 1);
    for (uint32_t j = 0; j < s->n_aux; j++) {
        char name[8 + RELAY_AUX_NAME_MAX];
        snprintf(name, sizeof name, "aux.%.*s", RELAY_AUX_NAME_MAX - 1, s->aux_names[j]);
        float_col(st, name, SRC_AUX + (int)j, 1);
    }

    int_col(tt, "traj", T_TRAJ, 32);
    acol *c = add_col(tt, "actor_id", T_ACTOR, RLY_AT_FSB, 16);
    c->lsize = 16;
    c->kind = "uuid";
    int_col(tt, "env_id", T_ENV_ID, 64);
    add_col(tt, "env_label", T_ENV_LABEL, RLY_AT_UTF8, 0);
    int_col(tt, "episode", T_EPISODE, 64);
    int_col(tt, "policy_version", T_POLICY, 64);
    int_col(tt, "traj_start_ns", T_START, 64);
    int_col(tt, "traj_end_ns", T_END, 64);
    int_col(tt, "length", T_LENGTH, 32);
    int_col(tt, "first_step", T_FIRST, 32);
    float_col(tt, "return", T_RETURN, 2);
    e = alloc_table(a, st);
    return e == RELAY_OK ? alloc_table(a, tt) : e;
}

static size_t write_kv(rly_fbb *b, const char *k, const char *v)
{
    size_t slots[RLY_FB_MAX_FIELDS];
    rly_fb_field f[2] = {{.id = 0, .off = true}, {.id = 1, .off = true}};
    size_t t = rly_fb_table(b, f, 2, slots);
    rly_fb_patch(b, slots[0], rly_fb_string(b, k));
    rly_fb_patch(b, slots[1], rly_fb_string(b, v));
    return t;
}

/* write_type writes the type table of an Arrow type (leaf description taken from c). */
static size_t write_type(rly_fbb *b, uint8_t type, const acol *c)
{
    rly_fb_field f[2] = {{0}};
    switch (type) {
    case RLY_AT_INT:
        f[0] = (rly_fb_field){.id = 0, .size = 4, .val = c->bits};
        f[1] = (rly_fb_field){.id = 1, .size = 1, .val = c->sign};
        return rly_fb_table(b, f, 2, NULL);
    case RLY_AT_FLOAT:
        f[0] = (rly_fb_field){.id = 0, .size = 2, .val = c->prec};
        return rly_fb_table(b, f, 1, NULL);
    case RLY_AT_FSB:
    case RLY_AT_FSL:
        f[0] = (rly_fb_field){.id = 0, .size = 4, .val = c->lsize};
        return rly_fb_table(b, f, 1, NULL);
    default: /* Utf8, Bool: empty tables */
        return rly_fb_table(b, f, 0, NULL);
    }
}

/* write_field writes a Field table; child is true for the "item" child of a FixedSizeList. */
static size_t write_field(rly_fbb *b, const acol *c, bool child)
{
    uint8_t type = child ? c->leaf : c->type;
    int nmeta = 0;
    const char *mk[3], *mv[3];
    if (!child && c->type == RLY_AT_FSL) {
        mk[nmeta] = "relay.dtype", mv[nmeta++] = c->dtype;
        mk[nmeta] = "relay.shape", mv[nmeta++] = c->shape;
    }
    if (!child && c->kind)
        mk[nmeta] = "relay.kind", mv[nmeta++] = c->kind;
    size_t slots[RLY_FB_MAX_FIELDS];
    rly_fb_field f[6] = {
        {.id = RLY_FIELD_NAME, .off = true},
        {.id = RLY_FIELD_NULLABLE, .size = 1, .val = 0},
        {.id = RLY_FIELD_TYPE_TYPE, .size = 1, .val = type},
        {.id = RLY_FIELD_TYPE, .off = true},
        {.id = RLY_FIELD_CHILDREN, .off = true},
        {.id = RLY_FIELD_META, .off = true},
    };
    size_t t = rly_fb_table(b, f, nmeta ? 6 : 5, slots);
    rly_fb_patch(b, slots[RLY_FIELD_NAME], rly_fb_string(b, child ? "item" : c->name));
    rly_fb_patch(b, slots[RLY_FIELD_TYPE], write_type(b, type, c));
    bool has_child = !child && c->type == RLY_AT_FSL;
    size_t v = rly_fb_vector(b, has_child ? 1 : 0, 4, 4);
    rly_fb_patch(b, slots[RLY_FIELD_CHILDREN], v - 4);
    if (has_child)
        rly_fb_patch(b, v, write_field(b, c, true));
    if (nmeta) {
        size_t mvv = rly_fb_vector(b, (uint32_t)nmeta, 4, 4);
        rly_fb_patch(b, slots[RLY_FIELD_META], mvv - 4);
        for (int i = 0; i < nmeta; i++)
            rly_fb_patch(b, mvv + 4 * (size_t)i, write_kv(b, mk[i], mv[i]));
    }
    return t;
}

static size_t write_schema(rly_fbb *b, const atable *tb)
{
    size_t slots[RLY_FB_MAX_FIELDS];
    rly_fb_field f[2] = {{.id = RLY_SCHEMA_FIELDS, .off = true},
                         {.id = RLY_SCHEMA_META, .off = true}};
    size_t t = rly_fb_table(b, f, 2, slots);
    size_t v = rly_fb_vector(b, (uint32_t)tb->ncols, 4, 4);
    rly_fb_patch(b, slots[RLY_SCHEMA_FIELDS], v - 4);
    for (int i = 0; i < tb->ncols; i++)
        rly_fb_patch(b, v + 4 * (size_t)i, write_field(b, &tb->cols[i], false));
    size_t m = rly_fb_vector(b, 3, 4, 4);
    rly_fb_patch(b, slots[RLY_SCHEMA_META], m - 4);
    rly_fb_patch(b, m, write_kv(b, "relay.format", RLY_ARROW_FORMAT_VERSION));
    rly_fb_patch(b, m + 4, write_kv(b, "relay.writer", "relay"));
    rly_fb_patch(b, m + 8, write_kv(b, "relay.table", tb->table));
    return t;
}

/* message_begin writes a Message table and returns the header slot. */
static size_t message_begin(rly_fbb *b, uint8_t htype, int64_t body, size_t *root)
{
    size_t slots[RLY_FB_MAX_FIELDS];
    rly_fb_field f[4] = {
        {.id = RLY_MSG_VERSION, .size = 2, .val = RLY_ARROW_V5},
        {.id = RLY_MSG_HTYPE, .size = 1, .val = htype},
        {.id = RLY_MSG_HEADER, .off = true},
        {.id = RLY_MSG_BODYLEN, .size = 8, .val = (uint64_t)body},
    };
    *root = rly_fb_table(b, f, 4, slots);
    return slots[RLY_MSG_HEADER];
}

/* ---- file framing ---- */

static relay_err write_header(arrowsink *a, atable *tb)
{
    rly_fbb *b = &a->fbb;
    rly_fbb_reset(b);
    size_t root, slot = message_begin(b, RLY_AMSG_SCHEMA, 0, &root);
    rly_fb_patch(b, slot, write_schema(b, tb));
    relay_err e = rly_fb_finish(b, root);
    if (e != RELAY_OK)
        return e;
    uint8_t pre[16] = {'A', 'R', 'R', 'O', 'W', '1', 0, 0, 0xff, 0xff, 0xff, 0xff};
    uint32_t len = (uint32_t)b->len;
    memcpy(pre + 12, &len, 4);
    struct iovec iov[2] = {{pre, 16}, {b->buf, b->len}};
    e = rly_outfile_writev(&tb->out, iov, 2);
    if (e == RELAY_OK)
        tb->header_written = true;
    return e;
}

static relay_err write_footer(arrowsink *a, atable *tb)
{
    rly_fbb *b = &a->fbb;
    rly_fbb_reset(b);
    size_t slots[RLY_FB_MAX_FIELDS];
    rly_fb_field f[4] = {
        {.id = RLY_FOOTER_VERSION, .size = 2, .val = RLY_ARROW_V5},
        {.id = RLY_FOOTER_SCHEMA, .off = true},
        {.id = RLY_FOOTER_DICTS, .off = true},
        {.id = RLY_FOOTER_BATCHES, .off = true},
    };
    size_t root = rly_fb_table(b, f, 4, slots);
    rly_fb_patch(b, slots[RLY_FOOTER_SCHEMA], write_schema(b, tb));
    rly_fb_patch(b, slots[RLY_FOOTER_DICTS], rly_fb_vector(b, 0, 24, 8) - 4);
    size_t v = rly_fb_vector(b, (uint32_t)tb->nblocks, 24, 8);
    rly_fb_patch(b, slots[RLY_FOOTER_BATCHES], v - 4);
    for (size_t i = 0; i < tb->nblocks; i++) {
        rly_fb_put(b, v + 24 * i, (uint64_t)tb->blocks[i].offset, 8);
        rly_fb_put(b, v + 24 * i + 8, (uint32_t)tb->blocks[i].meta, 4);
        rly_fb_put(b, v + 24 * i + 16, (uint64_t)tb->blocks[i].body, 8);
    }
    relay_err e = rly_fb_finish(b, root);
    if (e != RELAY_OK)
        return e;
    uint8_t eos[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    uint8_t tail[10];
    uint32_t len = (uint32_t)b->len;
    memcpy(tail, &len, 4);
    memcpy(tail + 4, "ARROW1", 6);
    struct iovec iov[3] = {{eos, 8}, {b->buf, b->len}, {tail, 10}};
    return rly_outfile_writev(&tb->out, iov, 3);
}

/* finish_file writes the footer and closes the current file of tb. */
static relay_err finish_file(arrowsink *a, atable *tb)
{
    if (tb->out.fd < 0)
        return RELAY_OK;
    relay_err e = RELAY_OK;
    if (!tb->header_written)
        e = write_header(a, tb);
    if (e == RELAY_OK)
        e = write_footer(a, tb);
    relay_err c = rly_outfile_close(&tb->out);
    tb->nblocks = 0;
    tb->header_written = false;
    return e != RELAY_OK ? e : c;
}

/* ---- batches ---- */

static const void *pack_bits(uint8_t *dst, const uint8_t *bytes, size_t n, size_t *len)
{
    size_t nb = (n + 7) / 8;
    memset(dst, 0, nb);
    for (size_t i = 0; i < n; i++)
        dst[i >> 3] |= (uint8_t)((bytes[i] != 0) << (i & 7));
    *len = nb;
    return dst;
}

/* write_batch writes the buffered rows of tb as one record batch with a single writev. */
static relay_err write_batch(arrowsink *a, atable *tb)
{
    size_t n = tb->rows;
    /* Bool columns are bit-packed into one slice each of the preallocated scratch buffer. */
    size_t packed_stride = (a->bits_cap + 7) & ~(size_t)7;
    /* Buffers in pre-order: (offset, length, data). */
    enum { MAXB = 4 * MAX_COLS };
    struct {
        uint64_t off, len;
        const void *p;
    } bufs[MAXB];
    int nb = 0, nnodes = 0, ib = 0;
    uint64_t body = 0;
#define ADD_BUF(ptr, length)                                                                       \
    do {                                                                                           \
        bufs[nb].off = body;                                                                       \
        bufs[nb].len = (length);                                                                   \
        bufs[nb].p = (ptr);                                                                        \
        body += (bufs[nb].len + 7) & ~(uint64_t)7;                                                 \
        nb++;                                                                                      \
    } while (0)
    int64_t node_len[2 * MAX_COLS];
    for (int i = 0; i < tb->ncols; i++) {
        acol *c = &tb->cols[i];
        node_len[nnodes++] = (int64_t)n;
        ADD_BUF(NULL, 0); /* validity: absent, no nulls */
        if (c->type == RLY_AT_FSL) {
            node_len[nnodes++] = (int64_t)(n * c->lsize);
            ADD_BUF(NULL, 0);
        }
        if (c->type == RLY_AT_UTF8) {
            ADD_BUF(c->offs, (n + 1) * 4);
            ADD_BUF(c->data, (uint64_t)c->offs[n]);
        } else if (c->leaf == RLY_AT_BOOL) {
            size_t cnt = n * (c->type == RLY_AT_FSL ? c->lsize : 1), len;
            const void *bits =
                pack_bits(a->bits + packed_stride * (size_t)ib++, c->vals, cnt, &len);
            ADD_BUF(bits, len);
        } else {
            ADD_BUF(c->vals, n * c->width);
        }
    }
#undef ADD_BUF
    rly_fbb *b = &a->fbb;
    rly_fbb_reset(b);
    size_t root, hslot = message_begin(b, RLY_AMSG_RECORD_BATCH, (int64_t)body, &root);
    size_t slots[RLY_FB_MAX_FIELDS];
    rly_fb_field f[3] = {
        {.id = RLY_RB_LENGTH, .size = 8, .val = n},
        {.id = RLY_RB_NODES, .off = true},
        {.id = RLY_RB_BUFFERS, .off = true},
    };
    rly_fb_patch(b, hslot, rly_fb_table(b, f, 3, slots));
    size_t v = rly_fb_vector(b, (uint32_t)nnodes, 16, 8);
    rly_fb_patch(b, slots[RLY_RB_NODES], v - 4);
    for (int i = 0; i < nnodes; i++) {
        rly_fb_put(b, v + 16 * (size_t)i, (uint64_t)node_len[i], 8);
        rly_fb_put(b, v + 16 * (size_t)i + 8, 0, 8);
    }
    v = rly_fb_vector(b, (uint32_t)nb, 16, 8);
    rly_fb_patch(b, slots[RLY_RB_BUFFERS], v - 4);
    for (int i = 0; i < nb; i++) {
        rly_fb_put(b, v + 16 * (size_t)i, bufs[i].off, 8);
        rly_fb_put(b, v + 16 * (size_t)i + 8, bufs[i].len, 8);
    }
    relay_err e = rly_fb_finish(b, root);
    if (e == RELAY_OK && tb->nblocks == tb->blocks_cap) {
        size_t ncap = tb->blocks_cap ? tb->blocks_cap * 2 : 64;
        ablock *nbk = realloc(tb->blocks, ncap * sizeof *nbk);
        if (!nbk)
            e = RELAY_ENOMEM;
        else
            tb->blocks = nbk, tb->blocks_cap = ncap;
    }
    if (e != RELAY_OK)
        return e;
    uint8_t pre[8] = {0xff, 0xff, 0xff, 0xff};
    uint32_t mlen = (uint32_t)b->len;
    memcpy(pre + 4, &mlen, 4);
    int ni = 0;
    struct iovec *iov = tb->iov;
    iov[ni++] = (struct iovec){pre, 8};
    iov[ni++] = (struct iovec){b->buf, b->len};
    for (int i = 0; i < nb; i++) {
        if (bufs[i].len == 0)
            continue;
        iov[ni++] = (struct iovec){(void *)bufs[i].p, bufs[i].len};
        size_t pad = (size_t)((8 - bufs[i].len % 8) % 8);
        if (pad)
            iov[ni++] = (struct iovec){(void *)zeros, pad};
        if (ni + 2 >= tb->iov_cap)
            break; /* cannot happen: iov_cap covers every buffer and pad */
    }
    ablock blk = {
        .offset = (int64_t)tb->out.size, .meta = (int32_t)(8 + b->len), .body = (int64_t)body};
    e = rly_outfile_writev(&tb->out, iov, ni);
    if (e != RELAY_OK)
        return e;
    tb->blocks[tb->nblocks++] = blk;
    tb->rows = 0;
    for (int i = 0; i < tb->ncols; i++)
        if (tb->cols[i].type == RLY_AT_UTF8)
            tb->cols[i].data_len = 0;
    return RELAY_OK;
}

/* emit writes the pending trajectory rows, then the pending step rows, and rotates if due. */
static relay_err emit(arrowsink *a)
{
    if (a->st.rows == 0 && a->tt.rows == 0)
        return RELAY_OK;
    atable *tabs[2] = {&a->tt, &a->st};
    for (int i = 0; i < 2; i++) {
        relay_err e = RELAY_OK;
        if (tabs[i]->out.fd < 0)
            e = rly_outfile_open(&tabs[i]->out);
        if (e == RELAY_OK && !tabs[i]->header_written)
            e = write_header(a, tabs[i]);
        if (e != RELAY_OK)
            return e;
    }
    for (int i = 0; i < 2; i++) {
        if (tabs[i]->rows) {
            relay_err e = write_batch(a, tabs[i]);
            if (e != RELAY_OK)
                return e;
        }
    }
    if (rly_outfile_should_rotate(&a->st.out)) {
        relay_err e = finish_file(a, &a->st);
        relay_err e2 = finish_file(a, &a->tt);
        a->gen++;
        a->ntraj = 0;
        return e != RELAY_OK ? e : e2;
    }
    return RELAY_OK;
}

static void fill_i64(uint8_t *dst, int64_t v, size_t k)
{
    int64_t *d = (int64_t *)(void *)dst;
    for (size_t i = 0; i < k; i++)
        d[i] = v;
}

/* add_traj_row gives t (its rows from first_step on) a row in the current trajectory table. */
static relay_err add_traj_row(arrowsink *a, const relay_traj *t, uint32_t first_step, int32_t *idx)
{
    atable *tt = &a->tt;
    if (tt->rows == a->batch_rows) {
        relay_err e = emit(a);
        if (e != RELAY_OK)
            return e;
    }
    if (a->ntraj == INT32_MAX) {
        rly_error(RLY_SINK_LOG,
                  "arrow sink %s: more than 2^31-1 trajectories in one file (set rotate_bytes)",
                  a->st.out.path);
        return RELAY_ETOOBIG;
    }
    uint32_t r = tt->rows;
    *idx = a->ntraj;
    for (int ci = 0; ci < tt->ncols; ci++) {
        acol *c = &tt->cols[ci];
        uint8_t *dst = c->vals ? c->vals + (size_t)r * c->width : NULL;
        int32_t i32;
        switch (c->src) {
        case T_TRAJ:
            memcpy(dst, idx, 4);
            break;
        case T_ACTOR:
            memcpy(dst, t->actor.bytes, 16);
            break;
        case T_ENV_ID:
            fill_i64(dst, t->env_id, 1);
            break;
        case T_ENV_LABEL: {
            size_t L = strnlen(t->env_label, RELAY_LABEL_MAX - 1);
            size_t need = c->data_len + L;
            if (need > INT32_MAX) {
                rly_error(RLY_SINK_LOG, "arrow sink: env_label data exceeds 2 GiB in one batch");
                return RELAY_ETOOBIG;
            }
            if (need > c->data_cap) {
                size_t ncap = c->data_cap * 2;
                while (ncap < need)
                    ncap *= 2;
                char *p = realloc(c->data, ncap);
                if (!p)
                    return RELAY_ENOMEM;
                c->data = p, c->data_cap = ncap;
            }
            memcpy(c->data + c->data_len, t->env_label, L);
            c->data_len += L;
            c->offs[r + 1] = (int32_t)c->data_len;
            break;
        }
        case T_EPISODE:
            fill_i64(dst, t->episode, 1);
            break;
        case T_POLICY:
            fill_i64(dst, t->policy_version, 1);
            break;
        case T_START:
            fill_i64(dst, t->start_ns, 1);
            break;
        case T_END:
            fill_i64(dst, t->end_ns, 1);
            break;
        case T_LENGTH:
            i32 = (int32_t)t->len;
            memcpy(dst, &i32, 4);
            break;
        case T_FIRST:
            i32 = (int32_t)first_step;
            memcpy(dst, &i32, 4);
            break;
        case T_RETURN: {
            double ret = 0;
            for (uint32_t i = 0; i < t->len; i++)
                ret += t->reward[i];
            memcpy(dst, &ret, 8);
            break;
        }
        default:
            break;
        }
    }
    tt->rows++;
    a->ntraj++;
    return RELAY_OK;
}

/* append copies steps [i0, i0 + k) of t, trajectory row idx, into the steps batch. */
static void append(arrowsink *a, const relay_traj *t, uint32_t i0, uint32_t k, int32_t idx)
{
    atable *st = &a->st;
    uint32_t r0 = st->rows;
    for (int ci = 0; ci < st->ncols; ci++) {
        acol *c = &st->cols[ci];
        uint8_t *dst = c->vals + (size_t)r0 * c->width;
        switch (c->src) {
        case SRC_TRAJ: {
            int32_t *d = (int32_t *)(void *)dst;
            for (uint32_t i = 0; i < k; i++)
                d[i] = idx;
            break;
        }
        case SRC_STEP: {
            int32_t *d = (int32_t *)(void *)dst;
            for (uint32_t i = 0; i < k; i++)
                d[i] = (int32_t)(i0 + i);
            break;
        }
        case SRC_TS:
            memcpy(dst, t->ts + i0, 8 * (size_t)k);
            break;
        case SRC_OBS:
            memcpy(dst, t->obs + (size_t)i0 * c->width, (size_t)k * c->width);
            break;
        case SRC_ACT:
            memcpy(dst, t->act + (size_t)i0 * c->width, (size_t)k * c->width);
            break;
        case SRC_MASK:
            if (t->mask)
                memcpy(dst, t->mask + (size_t)i0 * c->width, (size_t)k * c->width);
            else
                memset(dst, 0, (size_t)k * c->width);
            break;
        case SRC_REWARD:
            memcpy(dst, t->reward + i0, 4 * (size_t)k);
            break;
        case SRC_TERM:
            memcpy(dst, t->terminated + i0, k);
            break;
        case SRC_TRUNC:
            memcpy(dst, t->truncated + i0, k);
            break;
        default: {
            uint32_t j = (uint32_t)(c->src - SRC_AUX), na = t->spec.n_aux;
            float *d = (float *)(void *)dst;
            const float *s = t->aux + (size_t)i0 * na + j;
            for (uint32_t i = 0; i < k; i++)
                d[i] = s[(size_t)i * na];
            break;
        }
        }
    }
    st->rows += k;
}

static bool traj_ok(const relay_traj *t)
{
    return t->len <= t->cap && t->len <= INT32_MAX && t->spec.n_aux <= RELAY_MAX_AUX &&
           (t->len == 0 || (t->obs && t->act && t->reward && t->terminated && t->truncated &&
                            t->ts && (t->spec.n_aux == 0 || t->aux) &&
                            (t->spec.mask_dtype == RELAY_DTYPE_INVALID || t->mask)));
}

static void free_table(atable *tb);

/* write_traj adds one trajectory: a trajectory row (one per file pair it lands in) and its steps.
 */
static relay_err write_traj(arrowsink *a, const relay_traj *t)
{
    int32_t idx = 0;
    relay_err e = RELAY_OK;
    if (t->len == 0)
        return add_traj_row(a, t, 0, &idx);
    uint32_t gen = 0, i0 = 0;
    bool have_row = false;
    while (i0 < t->len) {
        if (!have_row || gen != a->gen) {
            if ((e = add_traj_row(a, t, i0, &idx)) != RELAY_OK)
                return e;
            have_row = true;
            gen = a->gen;
        }
        uint32_t k = t->len - i0;
        if (k > a->batch_rows - a->st.rows)
            k = a->batch_rows - a->st.rows;
        append(a, t, i0, k, idx);
        if (a->st.rows == a->batch_rows && (e = emit(a)) != RELAY_OK)
            return e;
        i0 += k;
    }
    return RELAY_OK;
}

/* prefetch_head asks for the cache lines of t's fields that writing it reads. Trajectories were
   recorded on other cores: with cold caches, asking ahead cut a third of the sink thread's CPU per
   step (bench/sink/bench_sink_xcore); with warm ones it costs nothing measurable. */
static void prefetch_head(const relay_traj *t)
{
    const char *p = (const char *)t;
    for (size_t off = 0; off < offsetof(relay_traj, row_obs_); off += 64)
        __builtin_prefetch(p + off);
}

/* prefetch_range asks for the lines of [p, p + n), at most PREFETCH_MAX bytes of them. */
#define PREFETCH_MAX 4096
static void prefetch_range(const void *p, size_t n)
{
    if (!p)
        return;
    const char *c = (const char *)((uintptr_t)p & ~(uintptr_t)63);
    const char *end = (const char *)p + (n < PREFETCH_MAX ? n : PREFETCH_MAX);
    for (; c < end; c += 64)
        __builtin_prefetch(c);
}

/* prefetch_cols asks for the lines of t's columns (its header has arrived meanwhile). */
static void prefetch_cols(const relay_traj *t)
{
    if (t->len == 0 || t->len > t->cap || !t->row_cached_)
        return;
    size_t n = t->len;
    prefetch_range(t->obs, n * t->row_obs_);
    prefetch_range(t->act, n * t->row_act_);
    prefetch_range(t->mask, n * t->row_mask_);
    prefetch_range(t->reward, n * sizeof(float));
    prefetch_range(t->terminated, n);
    prefetch_range(t->truncated, n);
    prefetch_range(t->ts, n * sizeof(int64_t));
    prefetch_range(t->aux, n * t->spec.n_aux * sizeof(float));
}

static relay_err arrow_write(void *state, relay_traj *const *trajs, size_t n)
{
    arrowsink *a = state;
    relay_err ret = RELAY_OK;
    for (size_t ti = 0; ti < n && ti < 2; ti++)
        prefetch_head(trajs[ti]);
    if (n > 0)
        prefetch_cols(trajs[0]);
    for (size_t ti = 0; ti < n; ti++) {
        const relay_traj *t = trajs[ti];
        if (ti + 2 < n)
            prefetch_head(trajs[ti + 2]);
        if (ti + 1 < n)
            prefetch_cols(trajs[ti + 1]);
        if (!traj_ok(t)) {
            rly_warn(RLY_SINK_LOG, "arrow sink: trajectory %zu has inconsistent columns", ti);
            rly_counters_add(&a->c.rejected, 1);
            ret = RELAY_EINVAL;
            continue;
        }
        if (!a->have_schema) {
            relay_err e = build_columns(a, &t->spec);
            if (e != RELAY_OK) {
                free_table(&a->st);
                free_table(&a->tt);
                free(a->bits);
                a->bits = NULL;
                a->bits_cap = 0;
                rly_error(RLY_SINK_LOG, "arrow sink: cannot build the schema: %s",
                          relay_strerror(e));
                return e;
            }
            a->spec = t->spec;
            a->have_schema = true;
        } else if (!relay_step_spec_eq(&a->spec, &t->spec)) {
            rly_warn(RLY_SINK_LOG,
                     "arrow sink %s: trajectory %zu has a different step spec than the file's "
                     "schema; skipped",
                     a->st.out.path, ti);
            rly_counters_add(&a->c.rejected, 1);
            ret = RELAY_ESHAPE;
            continue;
        }
        relay_err e = write_traj(a, t);
        if (e != RELAY_OK)
            return e;
        rly_counters_add(&a->c.trajs, 1);
        rly_counters_add(&a->c.rows, t->len);
    }
    return ret;
}

static relay_err arrow_flush(void *state)
{
    return emit(state);
}

static void free_table(atable *tb)
{
    for (int i = 0; i < tb->ncols; i++) {
        free(tb->cols[i].vals);
        free(tb->cols[i].offs);
        free(tb->cols[i].data);
    }
    tb->ncols = 0;
    free(tb->iov);
    tb->iov = NULL;
}

static void free_state(arrowsink *a)
{
    free_table(&a->st);
    free_table(&a->tt);
    free(a->st.blocks);
    free(a->tt.blocks);
    free(a->bits);
    rly_fbb_fini(&a->fbb);
    free(a);
}

static relay_err arrow_close(void *state)
{
    arrowsink *a = state;
    relay_err e = RELAY_OK;
    if (a->st.out.fd >= 0 || a->tt.out.fd >= 0 || a->st.rows || a->tt.rows) {
        e = emit(a);
        if (e == RELAY_OK)
            e = finish_file(a, &a->st);
        relay_err e2 = e == RELAY_OK ? finish_file(a, &a->tt) : RELAY_OK;
        if (e == RELAY_OK)
            e = e2;
    }
    rly_outfile_close(&a->st.out);
    rly_outfile_close(&a->tt.out);
    free_state(a);
    return e;
}

/* traj_config derives the trajectory table's configuration from the sink's: the same run with
 * the .traj.arrow extension, or for a fixed path "<path minus .arrow>.traj.arrow" (a fixed path
 * that is not a regular file, such as /dev/null, receives both tables). */
static relay_err traj_config(arrowsink *a, const relay_sink_config *cfg, relay_sink_config *tc)
{
    *tc = *cfg;
    if (!cfg->path || !cfg->path[0])
        return RELAY_OK;
    struct stat sb;
    if (stat(cfg->path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return RELAY_OK;
    size_t len = strlen(cfg->path), stem = len;
    if (len > 6 && strcmp(cfg->path + len - 6, ".arrow") == 0)
        stem -= 6;
    if (stem + sizeof RLY_ARROW_TRAJ_EXT > sizeof a->traj_path) {
        rly_error(RLY_SINK_LOG, "output path too long");
        return RELAY_EINVAL;
    }
    snprintf(a->traj_path, sizeof a->traj_path, "%.*s%s", (int)stem, cfg->path, RLY_ARROW_TRAJ_EXT);
    tc->path = a->traj_path;
    return RELAY_OK;
}

static relay_err arrow_open(const relay_sink_config *cfg, void **state)
{
    arrowsink *a = calloc(1, sizeof *a);
    if (!a)
        return RELAY_ENOMEM;
    a->st.out.fd = a->tt.out.fd = -1;
    a->st.table = "steps";
    a->tt.table = "trajectories";
    a->batch_rows = cfg->batch_rows ? cfg->batch_rows : RELAY_ARROW_BATCH_ROWS_DEFAULT;
    if (a->batch_rows > (1u << 24)) {
        rly_error(RLY_SINK_LOG, "arrow sink: batch_rows %u is above the limit of 16777216",
                  a->batch_rows);
        free(a);
        return RELAY_ECONFIG;
    }
    relay_sink_config tc;
    relay_err e = rly_outfile_init(&a->st.out, cfg, ".arrow", &a->c);
    if (e == RELAY_OK)
        e = traj_config(a, cfg, &tc);
    if (e == RELAY_OK)
        e = rly_outfile_init(&a->tt.out, &tc, RLY_ARROW_TRAJ_EXT, &a->c);
    rly_outfile_stream(&a->st.out, RLY_OUTFILE_STREAM_CHUNK);
    rly_outfile_stream(&a->tt.out, RLY_OUTFILE_STREAM_CHUNK);
    if (e == RELAY_OK)
        e = rly_outfile_open(&a->st.out);
    if (e == RELAY_OK)
        e = rly_outfile_open(&a->tt.out);
    if (e != RELAY_OK) {
        rly_outfile_close(&a->st.out);
        rly_outfile_close(&a->tt.out);
        free_state(a);
        return e;
    }
    *state = a;
    return RELAY_OK;
}

static void arrow_stats(void *state, relay_sink_stats *out)
{
    rly_counters_read(&((arrowsink *)state)->c, out);
}

const relay_sink_vtable rly_arrow_sink_vt = {
    .name = "arrow",
    .open = arrow_open,
    .write_batch = arrow_write,
    .flush = arrow_flush,
    .close = arrow_close,
    .stats = arrow_stats,
};
