/*
 * relay_inspect_file: detect a Relay Arrow, CSV or binary trajectory file by its first bytes and
 * print its schema, row/trajectory counts, per-episode return and length statistics and the
 * first rows. An Arrow steps file is joined with its trajectory table (<run>.traj.arrow); a
 * trajectory table alone is summarised from its length and return columns. Everything read from the
 * file is bounds-checked; malformed input is RELAY_EFORMAT.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "relay/codec.h"
#include "sink/arrow_format.h"
#include "sink/fb.h"
#include "sink/sink_internal.h"

/* ---- per-episode statistics ---- */

typedef struct ep_key {
    uint8_t actor[16];
    int64_t env_id, episode;
} ep_key;

typedef struct ep_acc {
    ep_key key;
    double ret;
    uint64_t len;
    bool used;
    bool finished; /* a row ended it: terminated, or truncated by a time limit (not a cut) */
} ep_acc;

typedef struct stats {
    ep_acc *slots;
    size_t cap, count;
    uint64_t rows, trajs;
    /* the previous row's trajectory identity, to count trajectories */
    ep_key last;
    int64_t last_start;
    bool have_last;
    bool oom;
    bool ends_known; /* the format carries terminated/truncated, so finished episodes are known */
} stats;

static uint64_t key_hash(const ep_key *k)
{
    uint64_t h = 1469598103934665603ull;
    const uint8_t *p = (const uint8_t *)k;
    for (size_t i = 0; i < sizeof *k; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static ep_acc *find(stats *s, const ep_key *k)
{
    if (s->oom)
        return NULL;
    if ((s->count + 1) * 2 > s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 1024;
        ep_acc *n = calloc(ncap, sizeof *n);
        if (!n) {
            s->oom = true;
            return NULL;
        }
        for (size_t i = 0; i < s->cap; i++)
            if (s->slots[i].used) {
                size_t j = key_hash(&s->slots[i].key) & (ncap - 1);
                while (n[j].used)
                    j = (j + 1) & (ncap - 1);
                n[j] = s->slots[i];
            }
        free(s->slots);
        s->slots = n;
        s->cap = ncap;
    }
    size_t j = key_hash(k) & (s->cap - 1);
    while (s->slots[j].used && memcmp(&s->slots[j].key, k, sizeof *k) != 0)
        j = (j + 1) & (s->cap - 1);
    if (!s->slots[j].used) {
        s->slots[j].used = true;
        s->slots[j].key = *k;
        s->count++;
    }
    return &s->slots[j];
}

static void add_row(stats *s, const uint8_t actor[16], int64_t env_id, int64_t episode,
                    int64_t start, int64_t step, float reward, bool ends)
{
    ep_key k;
    memset(&k, 0, sizeof k);
    memcpy(k.actor, actor, 16);
    k.env_id = env_id;
    k.episode = episode;
    if (!s->have_last || step == 0 || start != s->last_start || memcmp(&k, &s->last, sizeof k) != 0)
        s->trajs++;
    s->last = k;
    s->last_start = start;
    s->have_last = true;
    s->rows++;
    ep_acc *a = find(s, &k);
    if (a) {
        a->ret += reward;
        a->len++;
        a->finished |= ends;
    }
}

/* row_ends says whether a row ends its episode: terminated, or truncated without a cut (a cut
   marks a trajectory chunk of an episode that goes on, or one left open at shutdown). */
static bool row_ends(bool terminated, bool truncated, float cut)
{
    return terminated || (truncated && cut == 0.0f);
}

static void print_stats(stats *s, FILE *out)
{
    size_t fin = 0;
    for (size_t i = 0; s->ends_known && i < s->cap; i++)
        fin += s->slots[i].used && s->slots[i].finished;
    if (s->ends_known)
        fprintf(out,
                "rows: %" PRIu64 "\ntrajectories: %" PRIu64 "\nepisodes: %zu finished, %zu "
                "unfinished (cut at shutdown or still running; not in the statistics below)\n",
                s->rows, s->trajs, fin, s->count - fin);
    else
        fprintf(out, "rows: %" PRIu64 "\ntrajectories: %" PRIu64 "\nepisodes: %zu\n", s->rows,
                s->trajs, s->count);
    if (s->oom)
        fprintf(out, "(episode statistics incomplete: out of memory)\n");
    size_t count = s->ends_known ? fin : s->count;
    if (count == 0)
        return;
    double rsum = 0, rmin = INFINITY, rmax = -INFINITY, lsum = 0, lmin = INFINITY, lmax = 0;
    for (size_t i = 0; i < s->cap; i++) {
        ep_acc *a = &s->slots[i];
        if (!a->used || (s->ends_known && !a->finished))
            continue;
        rsum += a->ret;
        rmin = fmin(rmin, a->ret);
        rmax = fmax(rmax, a->ret);
        lsum += (double)a->len;
        lmin = fmin(lmin, (double)a->len);
        lmax = fmax(lmax, (double)a->len);
    }
    double n = (double)count;
    fprintf(out, "episode return: count %zu mean %.6g min %.6g max %.6g\n", count, rsum / n, rmin,
            rmax);
    fprintf(out, "episode length: count %zu mean %.6g min %.0f max %.0f\n", count, lsum / n, lmin,
            lmax);
}

static relay_err bad(const char *path, const char *what)
{
    rly_warn(RLY_SINK_LOG, "inspect %s: %s", path, what);
    return RELAY_EFORMAT;
}

/* ---- Arrow ---- */

typedef struct icol {
    char name[64];
    uint8_t type, leaf, bits;
    bool sign;
    uint8_t prec;
    uint32_t lsize;
    /* per batch */
    const uint8_t *vals, *offs;
    size_t vals_len, offs_len;
} icol;

#define MAX_ICOLS 64

static bool read_at(FILE *fp, int64_t off, void *dst, size_t n)
{
    return fseeko(fp, (off_t)off, SEEK_SET) == 0 && fread(dst, 1, n, fp) == n;
}

static bool parse_int_type(const rly_fbt *type, icol *c)
{
    int64_t bits, sign;
    rly_fb_scalar(type, 0, 4, true, 0, &bits);
    rly_fb_scalar(type, 1, 1, false, 0, &sign);
    if (bits != 8 && bits != 16 && bits != 32 && bits != 64)
        return false;
    c->bits = (uint8_t)bits;
    c->sign = sign != 0;
    return true;
}

static bool parse_leaf(const rly_fbt *field, uint8_t *type_out, icol *c)
{
    int64_t tt;
    rly_fb_scalar(field, RLY_FIELD_TYPE_TYPE, 1, false, 0, &tt);
    rly_fbt type;
    if (!rly_fb_subtable(field, RLY_FIELD_TYPE, &type))
        return false;
    *type_out = (uint8_t)tt;
    int64_t v;
    switch (tt) {
    case RLY_AT_INT:
        return parse_int_type(&type, c);
    case RLY_AT_FLOAT:
        rly_fb_scalar(&type, 0, 2, false, 0, &v);
        c->prec = (uint8_t)v;
        return v == 1 || v == 2;
    case RLY_AT_FSB:
    case RLY_AT_FSL:
        rly_fb_scalar(&type, 0, 4, true, 0, &v);
        if (v < 0 || v > (1 << 24))
            return false;
        c->lsize = (uint32_t)v;
        return true;
    case RLY_AT_UTF8:
    case RLY_AT_BOOL:
        return true;
    default:
        return false;
    }
}

static size_t elem_size(const icol *c)
{
    switch (c->leaf) {
    case RLY_AT_INT:
        return c->bits / 8;
    case RLY_AT_FLOAT:
        return c->prec == 2 ? 8 : 4;
    case RLY_AT_FSB:
        return c->lsize;
    default:
        return 0;
    }
}

static void print_type(FILE *out, const icol *c)
{
    char leaf[32];
    switch (c->leaf) {
    case RLY_AT_INT:
        snprintf(leaf, sizeof leaf, "%s%u", c->sign ? "int" : "uint", c->bits);
        break;
    case RLY_AT_FLOAT:
        snprintf(leaf, sizeof leaf, "%s", c->prec == 2 ? "float64" : "float32");
        break;
    case RLY_AT_BOOL:
        snprintf(leaf, sizeof leaf, "bool");
        break;
    case RLY_AT_UTF8:
        snprintf(leaf, sizeof leaf, "utf8");
        break;
    default:
        snprintf(leaf, sizeof leaf, "fixed_size_binary[%u]", c->lsize);
        break;
    }
    if (c->type == RLY_AT_FSL)
        fprintf(out, "fixed_size_list<%s>[%u]", leaf, c->lsize);
    else
        fprintf(out, "%s", leaf);
}

static double elem_value(const icol *c, const uint8_t *p, size_t i, bool *is_int, int64_t *iv)
{
    *is_int = c->leaf != RLY_AT_FLOAT;
    if (c->leaf == RLY_AT_BOOL) {
        *iv = (p[i >> 3] >> (i & 7)) & 1;
        return (double)*iv;
    }
    if (c->leaf == RLY_AT_FLOAT) {
        if (c->prec == 2) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            return d;
        }
        float f;
        memcpy(&f, p + 4 * i, 4);
        return f;
    }
    uint64_t u = rly_fb_rd(p + (size_t)(c->bits / 8) * i, c->bits / 8);
    if (c->sign && c->bits < 64 && (u >> (c->bits - 1)) & 1)
        u |= ~0ull << c->bits;
    *iv = (int64_t)u;
    return (double)*iv;
}

static void print_elem(FILE *out, const icol *c, const uint8_t *p, size_t i)
{
    bool is_int;
    int64_t iv = 0;
    double d = elem_value(c, p, i, &is_int, &iv);
    if (c->leaf == RLY_AT_BOOL)
        fprintf(out, "%s", iv ? "true" : "false");
    else if (is_int)
        fprintf(out, c->sign ? "%" PRId64 : "%" PRIu64, iv);
    else
        fprintf(out, "%.9g", d);
}

static void print_cell(FILE *out, const icol *c, size_t row)
{
    if (c->type == RLY_AT_UTF8) {
        int32_t a, b;
        memcpy(&a, c->offs + 4 * row, 4);
        memcpy(&b, c->offs + 4 * row + 4, 4);
        fprintf(out, "%.*s", (int)(b - a), (const char *)c->vals + a);
    } else if (c->type == RLY_AT_FSB && c->lsize == 16) {
        relay_id id;
        char text[RELAY_ID_STRLEN + 1];
        memcpy(id.bytes, c->vals + 16 * row, 16);
        fprintf(out, "%s", relay_id_format(id, text));
    } else if (c->type == RLY_AT_FSB) {
        for (uint32_t k = 0; k < c->lsize; k++)
            fprintf(out, "%02x", c->vals[(size_t)c->lsize * row + k]);
    } else if (c->type == RLY_AT_FSL) {
        fputc('[', out);
        for (uint32_t k = 0; k < c->lsize && k < 8; k++) {
            if (k)
                fputc(',', out);
            print_elem(out, c, c->vals, (size_t)c->lsize * row + k);
        }
        fprintf(out, c->lsize > 8 ? ",...]" : "]");
    } else {
        print_elem(out, c, c->vals, row);
    }
}

/* bind_buffers points each column at its buffers in the batch body; false when out of bounds. */
static bool bind_buffers(icol *cols, int ncols, const rly_fbr *r, const rly_fbt *rb,
                         const uint8_t *body, size_t body_len, int64_t rows)
{
    uint32_t nb, nn;
    size_t bstart, nstart;
    if (!rly_fb_vec(rb, RLY_RB_BUFFERS, 16, &nb, &bstart) ||
        !rly_fb_vec(rb, RLY_RB_NODES, 16, &nn, &nstart))
        return false;
    uint32_t bi = 0, ni = 0;
    for (int i = 0; i < ncols; i++) {
        icol *c = &cols[i];
        int nbuf = c->type == RLY_AT_UTF8 ? 3 : c->type == RLY_AT_FSL ? 3 : 2;
        int nnode = c->type == RLY_AT_FSL ? 2 : 1;
        if (bi + (uint32_t)nbuf > nb || ni + (uint32_t)nnode > nn)
            return false;
        int64_t node_len = (int64_t)rly_fb_rd(r->p + nstart + 16 * (size_t)ni, 8);
        int64_t nulls = (int64_t)rly_fb_rd(r->p + nstart + 16 * (size_t)ni + 8, 8);
        if (node_len != rows || nulls != 0)
            return false;
        ni += (uint32_t)nnode;
        const uint8_t *bp[3];
        size_t bl[3];
        for (int k = 0; k < nbuf; k++) {
            uint64_t off = rly_fb_rd(r->p + bstart + 16 * (size_t)(bi + (uint32_t)k), 8);
            uint64_t len = rly_fb_rd(r->p + bstart + 16 * (size_t)(bi + (uint32_t)k) + 8, 8);
            if (off > body_len || len > body_len - off)
                return false;
            bp[k] = body + off;
            bl[k] = (size_t)len;
        }
        bi += (uint32_t)nbuf;
        uint64_t n = (uint64_t)rows * (c->type == RLY_AT_FSL ? c->lsize : 1);
        if (c->type == RLY_AT_UTF8) {
            c->offs = bp[1], c->offs_len = bl[1], c->vals = bp[2], c->vals_len = bl[2];
            if (c->offs_len < ((size_t)rows + 1) * 4)
                return false;
            for (int64_t k = 0; k <= rows; k++) {
                int32_t o;
                memcpy(&o, c->offs + 4 * k, 4);
                if (o < 0 || (size_t)o > c->vals_len)
                    return false;
                if (k > 0) {
                    int32_t prev;
                    memcpy(&prev, c->offs + 4 * (k - 1), 4);
                    if (o < prev)
                        return false;
                }
            }
            continue;
        }
        c->vals = bp[nbuf - 1];
        c->vals_len = bl[nbuf - 1];
        uint64_t need = c->leaf == RLY_AT_BOOL ? (n + 7) / 8 : n * elem_size(c);
        if (c->type == RLY_AT_FSB)
            need = (uint64_t)rows * c->lsize;
        if (c->vals_len < need)
            return false;
    }
    return true;
}

static int find_col(const icol *cols, int n, const char *name, uint8_t type)
{
    for (int i = 0; i < n; i++)
        if (strcmp(cols[i].name, name) == 0 && cols[i].type == type)
            return i;
    return -1;
}

/* afile is an opened Relay Arrow file: its footer, schema columns and the current batch. */
typedef struct afile {
    const char *path;
    FILE *fp;
    int64_t size;
    uint8_t *fbuf;
    rly_fbr fr;
    uint32_t nblocks;
    size_t bstart;
    icol cols[MAX_ICOLS];
    int ncols;
    uint8_t *batch;
    size_t batch_cap;
} afile;

static void afile_fini(afile *af)
{
    free(af->fbuf);
    free(af->batch);
    af->fbuf = af->batch = NULL;
}

/* afile_open reads the footer and the schema of the Arrow file fp. */
static relay_err afile_open(afile *af, const char *path, FILE *fp)
{
    memset(af, 0, sizeof *af);
    af->path = path;
    af->fp = fp;
    if (fseeko(fp, 0, SEEK_END) != 0)
        return bad(path, "cannot seek");
    af->size = (int64_t)ftello(fp);
    uint8_t head[6], tail[10];
    if (af->size < 8 + 10 || !read_at(fp, 0, head, 6) || memcmp(head, "ARROW1", 6) != 0 ||
        !read_at(fp, af->size - 10, tail, 10) || memcmp(tail + 4, "ARROW1", 6) != 0)
        return bad(path, "Arrow file without the ARROW1 magics (truncated or a stream?)");
    int64_t flen = (int32_t)rly_fb_rd(tail, 4);
    if (flen <= 0 || flen > af->size - 18)
        return bad(path, "Arrow footer length out of range");
    af->fbuf = malloc((size_t)flen);
    if (!af->fbuf)
        return RELAY_ENOMEM;
    if (!read_at(fp, af->size - 10 - flen, af->fbuf, (size_t)flen))
        return bad(path, "cannot read the Arrow footer");
    af->fr = (rly_fbr){af->fbuf, (size_t)flen};
    rly_fbt footer, schema;
    uint32_t nfields;
    size_t fstart;
    if (!rly_fb_root(&af->fr, &footer) || !rly_fb_subtable(&footer, RLY_FOOTER_SCHEMA, &schema) ||
        !rly_fb_vec(&schema, RLY_SCHEMA_FIELDS, 4, &nfields, &fstart) ||
        !rly_fb_vec(&footer, RLY_FOOTER_BATCHES, 24, &af->nblocks, &af->bstart))
        return bad(path, "malformed Arrow footer");
    if (nfields > MAX_ICOLS)
        return bad(path, "too many columns for a Relay Arrow file");
    for (uint32_t i = 0; i < nfields; i++) {
        icol *c = &af->cols[af->ncols];
        memset(c, 0, sizeof *c);
        rly_fbt f;
        const char *name;
        uint32_t nlen;
        if (!rly_fb_vec_table(&af->fr, fstart, i, &f) ||
            !rly_fb_str(&f, RLY_FIELD_NAME, &name, &nlen) || !parse_leaf(&f, &c->type, c))
            return bad(path, "unsupported or malformed field in the Arrow schema");
        snprintf(c->name, sizeof c->name, "%.*s", (int)(nlen < 63 ? nlen : 63), name);
        c->leaf = c->type;
        if (c->type == RLY_AT_FSL) {
            uint32_t nch;
            size_t cstart;
            rly_fbt child;
            icol tmp = *c;
            if (!rly_fb_vec(&f, RLY_FIELD_CHILDREN, 4, &nch, &cstart) || nch != 1 ||
                !rly_fb_vec_table(&af->fr, cstart, 0, &child) ||
                !parse_leaf(&child, &c->leaf, &tmp) ||
                (c->leaf != RLY_AT_INT && c->leaf != RLY_AT_FLOAT && c->leaf != RLY_AT_BOOL))
                return bad(path, "unsupported list child in the Arrow schema");
            c->bits = tmp.bits, c->sign = tmp.sign, c->prec = tmp.prec;
        }
        af->ncols++;
    }
    return RELAY_OK;
}

/* afile_batch reads record batch b and binds the columns to it; *rows gets its length. */
static relay_err afile_batch(afile *af, uint32_t b, int64_t *rows)
{
    const uint8_t *bl = af->fbuf + af->bstart + 24 * (size_t)b;
    int64_t off = (int64_t)rly_fb_rd(bl, 8);
    int64_t mlen = (int32_t)rly_fb_rd(bl + 8, 4);
    int64_t blen = (int64_t)rly_fb_rd(bl + 16, 8);
    if (off < 8 || mlen < 16 || blen < 0 || off > af->size || mlen > af->size - off ||
        blen > af->size - off - mlen)
        return bad(af->path, "record batch block out of range");
    size_t need = (size_t)(mlen + blen);
    if (need > af->batch_cap) {
        free(af->batch);
        af->batch = malloc(need);
        af->batch_cap = af->batch ? need : 0;
        if (!af->batch)
            return RELAY_ENOMEM;
    }
    if (!read_at(af->fp, off, af->batch, need))
        return bad(af->path, "cannot read a record batch");
    rly_fbr mr = {af->batch + 8, (size_t)mlen - 8};
    rly_fbt msg, rb;
    int64_t htype;
    if (rly_fb_rd(af->batch, 4) != 0xffffffffu || !rly_fb_root(&mr, &msg) ||
        !rly_fb_scalar(&msg, RLY_MSG_HTYPE, 1, false, 0, &htype) ||
        htype != RLY_AMSG_RECORD_BATCH || !rly_fb_subtable(&msg, RLY_MSG_HEADER, &rb) ||
        !rly_fb_scalar(&rb, RLY_RB_LENGTH, 8, true, 0, rows) || *rows < 0 ||
        !bind_buffers(af->cols, af->ncols, &mr, &rb, af->batch + mlen, (size_t)blen, *rows))
        return bad(af->path, "malformed record batch");
    return RELAY_OK;
}

static int64_t int_at(const icol *c, int64_t r)
{
    bool is_int;
    int64_t v = 0;
    elem_value(c, c->vals, (size_t)r, &is_int, &v);
    return v;
}

/* print_head prints row r of af as one of the first head_rows rows. */
static void print_head(FILE *out, const afile *af, int64_t r, uint32_t *printed, uint32_t head)
{
    if (*printed >= head)
        return;
    if (*printed == 0) {
        fprintf(out, "first rows:\n");
        for (int i = 0; i < af->ncols; i++)
            fprintf(out, "%s%s", i ? "\t" : "  ", af->cols[i].name);
        fputc('\n', out);
    }
    for (int i = 0; i < af->ncols; i++) {
        fputs(i ? "\t" : "  ", out);
        print_cell(out, &af->cols[i], (size_t)r);
    }
    fputc('\n', out);
    (*printed)++;
}

/* traj_cols finds the trajectory table's key columns; false when af is not one. */
static bool traj_cols(const afile *af, int *itraj, int *ia, int *ienv, int *iep)
{
    *itraj = find_col(af->cols, af->ncols, "traj", RLY_AT_INT);
    *ia = find_col(af->cols, af->ncols, "actor_id", RLY_AT_FSB);
    *ienv = find_col(af->cols, af->ncols, "env_id", RLY_AT_INT);
    *iep = find_col(af->cols, af->ncols, "episode", RLY_AT_INT);
    return *itraj >= 0 && *ia >= 0 && *ienv >= 0 && *iep >= 0 && af->cols[*ia].lsize == 16;
}

static ep_key make_key(const afile *af, int ia, int ienv, int iep, int64_t r)
{
    ep_key k;
    memset(&k, 0, sizeof k);
    memcpy(k.actor, af->cols[ia].vals + 16 * r, 16);
    k.env_id = int_at(&af->cols[ienv], r);
    k.episode = int_at(&af->cols[iep], r);
    return k;
}

/* inspect_trajs summarises a trajectory table on its own (episode statistics from its
 * length and return columns). */
static relay_err inspect_trajs(afile *af, FILE *out, uint32_t head_rows, stats *st)
{
    int itraj, ia, ienv, iep;
    traj_cols(af, &itraj, &ia, &ienv, &iep);
    int ilen = find_col(af->cols, af->ncols, "length", RLY_AT_INT);
    int iret = find_col(af->cols, af->ncols, "return", RLY_AT_FLOAT);
    if (ilen < 0 || iret < 0)
        return bad(af->path, "Relay trajectory table without length/return columns");
    fprintf(out, "table: trajectories (rows below count the steps of these trajectories)\n");
    uint32_t printed = 0;
    for (uint32_t b = 0; b < af->nblocks; b++) {
        int64_t rows;
        relay_err e = afile_batch(af, b, &rows);
        if (e != RELAY_OK)
            return e;
        for (int64_t r = 0; r < rows; r++) {
            ep_key k = make_key(af, ia, ienv, iep, r);
            int64_t len = int_at(&af->cols[ilen], r);
            bool is_int;
            int64_t unused;
            double ret =
                elem_value(&af->cols[iret], af->cols[iret].vals, (size_t)r, &is_int, &unused);
            if (len < 0)
                return bad(af->path, "negative trajectory length");
            st->trajs++;
            st->rows += (uint64_t)len;
            ep_acc *acc = find(st, &k);
            if (acc) {
                acc->ret += ret;
                acc->len += (uint64_t)len;
            }
            print_head(out, af, r, &printed, head_rows);
        }
    }
    return RELAY_OK;
}

/* inspect_steps summarises a steps table, joined to its trajectory table at tpath. */
static relay_err inspect_steps(afile *af, const char *tpath, FILE *out, uint32_t head_rows,
                               stats *st)
{
    int istraj = find_col(af->cols, af->ncols, "traj", RLY_AT_INT);
    int irew = find_col(af->cols, af->ncols, "reward", RLY_AT_FLOAT);
    int iterm = find_col(af->cols, af->ncols, "terminated", RLY_AT_BOOL);
    int itrunc = find_col(af->cols, af->ncols, "truncated", RLY_AT_BOOL);
    int icut = find_col(af->cols, af->ncols, "aux.cut", RLY_AT_FLOAT);
    st->ends_known = iterm >= 0 && itrunc >= 0;
    FILE *tf = fopen(tpath, "rb");
    if (!tf) {
        rly_warn(RLY_SINK_LOG, "inspect %s: cannot open its trajectory table %s: %s", af->path,
                 tpath, strerror(errno));
        return RELAY_EFORMAT;
    }
    afile ta;
    ep_key *keys = NULL;
    size_t nkeys = 0, kcap = 0;
    relay_err e = afile_open(&ta, tpath, tf);
    int itraj = -1, ia = -1, ienv = -1, iep = -1;
    if (e == RELAY_OK && ta.ncols > 0 && !traj_cols(&ta, &itraj, &ia, &ienv, &iep))
        e = bad(tpath, "not a Relay trajectory table");
    for (uint32_t b = 0; e == RELAY_OK && ta.ncols > 0 && b < ta.nblocks; b++) {
        int64_t rows;
        e = afile_batch(&ta, b, &rows);
        for (int64_t r = 0; e == RELAY_OK && r < rows; r++) {
            if (int_at(&ta.cols[itraj], r) != (int64_t)nkeys) {
                e = bad(tpath, "trajectory table rows are not numbered 0, 1, 2, ...");
                break;
            }
            if (nkeys == kcap) {
                size_t ncap = kcap ? kcap * 2 : 1024;
                ep_key *nk = realloc(keys, ncap * sizeof *nk);
                if (!nk) {
                    e = RELAY_ENOMEM;
                    break;
                }
                keys = nk, kcap = ncap;
            }
            keys[nkeys++] = make_key(&ta, ia, ienv, iep, r);
        }
    }
    afile_fini(&ta);
    fclose(tf);
    if (e != RELAY_OK) {
        free(keys);
        return e;
    }
    fprintf(out, "table: steps\ntrajectory table: %s\n", tpath);
    st->trajs = nkeys;
    uint32_t printed = 0;
    for (uint32_t b = 0; e == RELAY_OK && b < af->nblocks; b++) {
        int64_t rows;
        e = afile_batch(af, b, &rows);
        for (int64_t r = 0; e == RELAY_OK && r < rows; r++) {
            int64_t idx = int_at(&af->cols[istraj], r);
            if (idx < 0 || (uint64_t)idx >= nkeys) {
                e = bad(af->path,
                        "a step refers to a trajectory missing from the trajectory table");
                break;
            }
            float rew;
            memcpy(&rew, af->cols[irew].vals + 4 * r, 4);
            st->rows++;
            ep_acc *acc = find(st, &keys[idx]);
            if (acc) {
                acc->ret += rew;
                acc->len++;
                if (st->ends_known) {
                    bool ii;
                    int64_t iv;
                    bool term = elem_value(&af->cols[iterm], af->cols[iterm].vals, (size_t)r, &ii,
                                           &iv) != 0;
                    bool trunc = elem_value(&af->cols[itrunc], af->cols[itrunc].vals, (size_t)r,
                                            &ii, &iv) != 0;
                    float cut = icut >= 0 ? (float)elem_value(&af->cols[icut], af->cols[icut].vals,
                                                              (size_t)r, &ii, &iv)
                                          : 0.0f;
                    acc->finished |= row_ends(term, trunc, cut);
                }
            }
            print_head(out, af, r, &printed, head_rows);
        }
    }
    free(keys);
    return e;
}

relay_err rly_inspect_arrow(const char *path, FILE *fp, FILE *out, uint32_t head_rows)
{
    afile af;
    stats st = {0};
    relay_err e = afile_open(&af, path, fp);
    if (e != RELAY_OK)
        goto done;
    fprintf(out, "file: %s\nformat: arrow (Arrow IPC file, %u record batches)\nschema:\n", path,
            af.nblocks);
    for (int i = 0; i < af.ncols; i++) {
        fprintf(out, "  %s: ", af.cols[i].name);
        print_type(out, &af.cols[i]);
        fputc('\n', out);
    }
    int itraj, ia, ienv, iep;
    int istep = find_col(af.cols, af.ncols, "step", RLY_AT_INT);
    int irew = find_col(af.cols, af.ncols, "reward", RLY_AT_FLOAT);
    bool is_traj = traj_cols(&af, &itraj, &ia, &ienv, &iep);
    if (af.ncols == 0) {
        /* a sink closed before its first trajectory: an empty schema */
    } else if (is_traj) {
        e = inspect_trajs(&af, out, head_rows, &st);
    } else if (itraj >= 0 && istep >= 0 && irew >= 0 && af.cols[irew].prec == 1 && ia < 0) {
        char tpath[RLY_SINK_PATH_MAX + 16];
        size_t len = strlen(path);
        if (len > 6 && strcmp(path + len - 6, ".arrow") == 0)
            len -= 6;
        snprintf(tpath, sizeof tpath, "%.*s%s", (int)len, path, RLY_ARROW_TRAJ_EXT);
        e = inspect_steps(&af, tpath, out, head_rows, &st);
    } else if (ia >= 0 && itraj < 0) {
        e = bad(path, "a one-table Relay Arrow file of an older version (relay.format 1); this "
                      "version reads steps + .traj.arrow pairs (relay.format 2)");
    } else {
        e = bad(path, "an Arrow file, but not one written by Relay (missing Relay columns)");
    }
    if (e == RELAY_OK)
        print_stats(&st, out);
done:
    afile_fini(&af);
    free(st.slots);
    return e;
}

/* ---- CSV ---- */

#define CSV_HEADER                                                                                 \
    "actor_id,env_id,env_label,episode,policy_version,traj_start_ns,traj_end_ns,step,timestamp_ns"

/* split_csv splits a line into fields in place (unquoting); returns the field count. */
static int split_csv(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line, *w;
    while (n < max) {
        fields[n++] = w = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0')
                    break;
                if (*p == '"' && p[1] == '"') {
                    *w++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *w++ = *p++;
                }
            }
        }
        while (*p && *p != ',')
            *w++ = *p++;
        if (*p == '\0') {
            *w = '\0';
            break;
        }
        p++;
        *w = '\0';
    }
    return n;
}

/* read_record reads one CSV record (joining lines inside quotes); false at end of file. */
static bool read_record(FILE *fp, char **buf, size_t *cap)
{
    size_t len = 0;
    bool quoted = false;
    for (;;) {
        int ch = fgetc(fp);
        if (ch == EOF)
            break;
        if (len + 2 > *cap) {
            size_t ncap = *cap ? *cap * 2 : 4096;
            char *p = realloc(*buf, ncap);
            if (!p)
                return false;
            *buf = p, *cap = ncap;
        }
        if (ch == '"')
            quoted = !quoted;
        if (ch == '\n' && !quoted)
            break;
        (*buf)[len++] = (char)ch;
    }
    if (len == 0 && feof(fp))
        return false;
    if (len && (*buf)[len - 1] == '\r')
        len--;
    (*buf)[len] = '\0';
    return true;
}

relay_err rly_inspect_csv(const char *path, FILE *fp, FILE *out, uint32_t head_rows)
{
    char *line = NULL;
    size_t cap = 0;
    relay_err e = RELAY_OK;
    stats st = {0};
    enum { MAXF = 1 << 16 };
    char **f = malloc(sizeof *f * MAXF);
    if (!f)
        return RELAY_ENOMEM;
    rewind(fp);
    if (!read_record(fp, &line, &cap) || strncmp(line, CSV_HEADER, strlen(CSV_HEADER)) != 0) {
        e = bad(path, "CSV without the Relay header");
        goto done;
    }
    fprintf(out, "file: %s\nformat: csv\nschema:\n", path);
    char *hdr = strdup(line);
    if (!hdr) {
        e = RELAY_ENOMEM;
        goto done;
    }
    int nh = split_csv(line, f, MAXF), irew = -1, iterm = -1, itrunc = -1, icut = -1;
    for (int i = 0; i < nh; i++) {
        fprintf(out, "  %s\n", f[i]);
        if (strcmp(f[i], "reward") == 0)
            irew = i;
        else if (strcmp(f[i], "terminated") == 0)
            iterm = i;
        else if (strcmp(f[i], "truncated") == 0)
            itrunc = i;
        else if (strcmp(f[i], "aux.cut") == 0 || strcmp(f[i], "cut") == 0)
            icut = i;
    }
    st.ends_known = iterm >= 0 && itrunc >= 0;
    if (irew < 0) {
        free(hdr);
        e = bad(path, "CSV header has no reward column");
        goto done;
    }
    uint32_t printed = 0;
    uint64_t lineno = 1;
    while (read_record(fp, &line, &cap)) {
        lineno++;
        if (printed < head_rows) {
            if (printed == 0)
                fprintf(out, "first rows:\n  %s\n", hdr);
            fprintf(out, "  %s\n", line);
            printed++;
        }
        int n = split_csv(line, f, MAXF);
        relay_id id;
        char *end1, *end2, *end3, *end4, *end5;
        if (n != nh || relay_id_parse(f[0], &id) != RELAY_OK) {
            char msg[96];
            snprintf(msg, sizeof msg, "CSV line %" PRIu64 " is malformed", lineno);
            free(hdr);
            e = bad(path, msg);
            goto done;
        }
        int64_t env = strtoll(f[1], &end1, 10), ep = strtoll(f[3], &end2, 10);
        int64_t start = strtoll(f[5], &end3, 10), step = strtoll(f[7], &end4, 10);
        float rew = strtof(f[irew], &end5);
        if (*end1 || *end2 || *end3 || *end4 || *end5) {
            char msg[96];
            snprintf(msg, sizeof msg, "CSV line %" PRIu64 " has a non-numeric field", lineno);
            free(hdr);
            e = bad(path, msg);
            goto done;
        }
        bool ends = st.ends_known &&
                    row_ends(strtol(f[iterm], NULL, 10) != 0 || !strcmp(f[iterm], "true"),
                             strtol(f[itrunc], NULL, 10) != 0 || !strcmp(f[itrunc], "true"),
                             icut >= 0 ? strtof(f[icut], NULL) : 0.0f);
        add_row(&st, id.bytes, env, ep, start, step, rew, ends);
    }
    free(hdr);
    print_stats(&st, out);
done:
    free(line);
    free(f);
    free(st.slots);
    return e;
}

/* ---- binary ---- */

relay_err rly_inspect_binary(const char *path, FILE *fp, FILE *out, uint32_t head_rows)
{
    relay_codec *codec = NULL;
    relay_err e = relay_codec_new(NULL, &codec);
    if (e != RELAY_OK)
        return e;
    relay_codec_buf buf = {0};
    relay_traj *t = NULL;
    stats st = {0};
    uint32_t printed = 0;
    uint64_t frames = 0;
    rewind(fp);
    relay_codec_limits lim = relay_codec_limits_default();
    for (;;) {
        e = relay_codec_frame_read(fp, &buf, lim.max_message_bytes);
        if (e == RELAY_EEMPTY) {
            e = RELAY_OK;
            break;
        }
        if (e != RELAY_OK) {
            rly_warn(RLY_SINK_LOG, "inspect %s: frame %" PRIu64 ": %s", path, frames,
                     relay_strerror(e));
            break;
        }
        if (!t) {
            relay_step_spec empty;
            memset(&empty, 0, sizeof empty);
            empty.obs_dtype = empty.act_dtype = RELAY_F32;
            t = relay_traj_new(&empty, 1, 0);
            if (!t) {
                e = RELAY_ENOMEM;
                break;
            }
        }
        e = relay_codec_decode_traj_into(codec, buf.data, buf.len, t);
        if (e != RELAY_OK) {
            rly_warn(RLY_SINK_LOG, "inspect %s: frame %" PRIu64 " is not a trajectory: %s", path,
                     frames, relay_strerror(e));
            break;
        }
        if (frames == 0) {
            char sh[200];
            fprintf(out, "file: %s\nformat: binary (length-delimited relay.v1 envelopes)\n", path);
            fprintf(out, "schema (first trajectory):\n");
            rly_shape_text(sh, sizeof sh, t->spec.obs_rank, t->spec.obs_shape);
            fprintf(out, "  obs: %s %s\n", relay_dtype_name(t->spec.obs_dtype), sh);
            rly_shape_text(sh, sizeof sh, t->spec.act_rank, t->spec.act_shape);
            fprintf(out, "  act: %s %s\n", relay_dtype_name(t->spec.act_dtype), sh);
            if (t->spec.mask_dtype != RELAY_DTYPE_INVALID) {
                rly_shape_text(sh, sizeof sh, t->spec.mask_rank, t->spec.mask_shape);
                fprintf(out, "  mask: %s %s\n", relay_dtype_name(t->spec.mask_dtype), sh);
            }
            for (uint32_t j = 0; j < t->spec.n_aux; j++)
                fprintf(out, "  aux.%s: f32\n", t->spec.aux_names[j]);
        }
        frames++;
        char idtext[RELAY_ID_STRLEN + 1];
        relay_id_format(t->actor, idtext);
        for (uint32_t i = 0; i < t->len; i++) {
            if (printed < head_rows) {
                if (printed == 0)
                    fprintf(out, "first rows:\n  actor_id\tenv_id\tepisode\tstep\treward\t"
                                 "terminated\ttruncated\n");
                fprintf(out, "  %s\t%" PRId64 "\t%" PRId64 "\t%u\t%.9g\t%d\t%d\n", idtext,
                        t->env_id, t->episode, i, t->reward[i], t->terminated[i], t->truncated[i]);
                printed++;
            }
            float cut = 0.0f;
            for (uint32_t j = 0; j < t->spec.n_aux; j++)
                if (!strcmp(t->spec.aux_names[j], "cut"))
                    cut = t->aux[(size_t)i * t->spec.n_aux + j];
            st.ends_known = true;
            add_row(&st, t->actor.bytes, t->env_id, t->episode, t->start_ns, i, t->reward[i],
                    row_ends(t->terminated[i], t->truncated[i], cut));
        }
    }
    if (e == RELAY_OK && frames == 0)
        e = bad(path, "binary trajectory file without frames");
    st.trajs = frames; /* every decoded trajectory, including empty ones */
    if (e == RELAY_OK)
        print_stats(&st, out);
    else if (e != RELAY_ENOMEM)
        e = RELAY_EFORMAT;
    relay_traj_free(t);
    relay_codec_buf_fini(&buf);
    relay_codec_free(codec);
    free(st.slots);
    return e;
}

/* ---- detection ---- */

relay_err relay_inspect_file(const char *path, FILE *out, uint32_t head_rows)
{
    if (!path || !out)
        return RELAY_EINVAL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        rly_error(RLY_SINK_LOG, "inspect: cannot open %s: %s", path, strerror(errno));
        return RELAY_EIO;
    }
    uint8_t head[16] = {0};
    size_t n = fread(head, 1, sizeof head, fp);
    relay_err e;
    size_t vlen = 0;
    while (vlen < n && vlen < RELAY_FRAME_MAX_PREFIX && (head[vlen] & 0x80))
        vlen++;
    if (n >= 6 && memcmp(head, "ARROW1", 6) == 0)
        e = rly_inspect_arrow(path, fp, out, head_rows);
    else if (n >= 9 && memcmp(head, "actor_id,", 9) == 0)
        e = rly_inspect_csv(path, fp, out, head_rows);
    else if (vlen < n && vlen + 5 <= n && memcmp(head + vlen + 1, "RLYE", 4) == 0)
        e = rly_inspect_binary(path, fp, out, head_rows);
    else
        e = bad(path, "not a Relay Arrow, CSV or binary trajectory file (unknown first bytes)");
    fclose(fp);
    return e;
}
