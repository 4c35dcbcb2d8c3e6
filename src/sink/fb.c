/* Minimal FlatBuffers writer and bounds-checked reader (see fb.h). */
#include <stdlib.h>
#include <string.h>

#include "sink/fb.h"

static size_t grow(rly_fbb *b, size_t n)
{
    if (b->oom)
        return 0;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 1024;
        while (ncap < b->len + n)
            ncap *= 2;
        uint8_t *p = realloc(b->buf, ncap);
        if (!p) {
            b->oom = true;
            return 0;
        }
        b->buf = p;
        b->cap = ncap;
    }
    size_t pos = b->len;
    memset(b->buf + pos, 0, n);
    b->len += n;
    return pos;
}

/* pad_to zero-pads until (len + bias) is a multiple of align. */
static void pad_to(rly_fbb *b, size_t align, size_t bias)
{
    size_t r = (b->len + bias) % align;
    if (r)
        grow(b, align - r);
}

void rly_fb_put(rly_fbb *b, size_t pos, uint64_t v, int size)
{
    if (b->oom)
        return;
    for (int i = 0; i < size; i++)
        b->buf[pos + (size_t)i] = (uint8_t)(v >> (8 * i));
}

void rly_fbb_reset(rly_fbb *b)
{
    b->len = 0;
    b->oom = false;
    grow(b, 4);
}

void rly_fbb_fini(rly_fbb *b)
{
    free(b->buf);
    memset(b, 0, sizeof *b);
}

size_t rly_fb_table(rly_fbb *b, const rly_fb_field *f, int n, size_t *slots)
{
    int maxid = -1;
    bool has8 = false;
    for (int i = 0; i < n; i++) {
        if (f[i].id > maxid)
            maxid = f[i].id;
        if (!f[i].off && f[i].size == 8)
            has8 = true;
    }
    /* Field offsets inside the table, largest fields first so each is naturally aligned. */
    uint16_t at[RLY_FB_MAX_FIELDS] = {0};
    size_t tlen = 4;
    static const int order[4] = {8, 4, 2, 1};
    for (int o = 0; o < 4; o++)
        for (int i = 0; i < n; i++) {
            int sz = f[i].off ? 4 : f[i].size;
            if (sz != order[o])
                continue;
            at[f[i].id] = (uint16_t)tlen;
            tlen += (size_t)sz;
        }
    size_t vtlen = 4 + 2 * (size_t)(maxid + 1);
    pad_to(b, 2, 0);
    size_t vt = grow(b, vtlen);
    rly_fb_put(b, vt, vtlen, 2);
    rly_fb_put(b, vt + 2, tlen, 2);
    for (int i = 0; i < n; i++)
        rly_fb_put(b, vt + 4 + 2 * (size_t)f[i].id, at[f[i].id], 2);
    pad_to(b, has8 ? 8 : 4, has8 ? 4 : 0);
    size_t t = grow(b, tlen);
    rly_fb_put(b, t, (uint64_t)(uint32_t)(int32_t)(t - vt), 4);
    for (int i = 0; i < n; i++) {
        if (f[i].off) {
            if (slots)
                slots[f[i].id] = t + at[f[i].id];
        } else {
            rly_fb_put(b, t + at[f[i].id], f[i].val, f[i].size);
        }
    }
    return t;
}

size_t rly_fb_string(rly_fbb *b, const char *s)
{
    size_t n = strlen(s);
    pad_to(b, 4, 0);
    size_t pos = grow(b, 4 + n + 1);
    rly_fb_put(b, pos, n, 4);
    if (!b->oom)
        memcpy(b->buf + pos + 4, s, n);
    return pos;
}

size_t rly_fb_vector(rly_fbb *b, uint32_t count, size_t elem_size, size_t elem_align)
{
    if (elem_align > 4)
        pad_to(b, elem_align, 4);
    else
        pad_to(b, 4, 0);
    size_t pos = grow(b, 4 + (size_t)count * elem_size);
    rly_fb_put(b, pos, count, 4);
    return pos + 4;
}

void rly_fb_patch(rly_fbb *b, size_t slot, size_t target)
{
    rly_fb_put(b, slot, target - slot, 4);
}

relay_err rly_fb_finish(rly_fbb *b, size_t root)
{
    rly_fb_patch(b, 0, root);
    pad_to(b, 8, 0);
    return b->oom ? RELAY_ENOMEM : RELAY_OK;
}

/* ---- reader ---- */

uint64_t rly_fb_rd(const uint8_t *p, int size)
{
    uint64_t v = 0;
    for (int i = 0; i < size; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static bool table_at(const rly_fbr *r, size_t pos, rly_fbt *t)
{
    if (pos % 4 || pos + 4 > r->n)
        return false;
    int64_t so = (int32_t)(uint32_t)rly_fb_rd(r->p + pos, 4);
    int64_t vt = (int64_t)pos - so;
    if (vt < 0 || vt % 2 || (uint64_t)vt + 4 > r->n)
        return false;
    uint16_t vtlen = (uint16_t)rly_fb_rd(r->p + vt, 2);
    uint16_t tlen = (uint16_t)rly_fb_rd(r->p + vt + 2, 2);
    if (vtlen < 4 || vtlen % 2 || (uint64_t)vt + vtlen > r->n || tlen < 4 || pos + tlen > r->n)
        return false;
    t->r = r;
    t->pos = pos;
    t->vt = (size_t)vt;
    t->vtlen = vtlen;
    t->tlen = tlen;
    return true;
}

bool rly_fb_root(const rly_fbr *r, rly_fbt *t)
{
    if (r->n < 8)
        return false;
    return table_at(r, (size_t)rly_fb_rd(r->p, 4), t);
}

/* field_pos returns the absolute position of field id holding size bytes, or 0 when absent. */
static size_t field_pos(const rly_fbt *t, uint16_t id, int size)
{
    size_t e = 4 + 2 * (size_t)id;
    if (e + 2 > t->vtlen)
        return 0;
    uint16_t off = (uint16_t)rly_fb_rd(t->r->p + t->vt + e, 2);
    if (off == 0 || off + (size_t)size > t->tlen)
        return 0;
    return t->pos + off;
}

bool rly_fb_scalar(const rly_fbt *t, uint16_t id, int size, bool sign, int64_t def, int64_t *out)
{
    size_t p = field_pos(t, id, size);
    if (!p) {
        *out = def;
        return true;
    }
    uint64_t v = rly_fb_rd(t->r->p + p, size);
    if (sign && size < 8 && (v >> (8 * size - 1)) & 1)
        v |= ~0ull << (8 * size);
    *out = (int64_t)v;
    return true;
}

bool rly_fb_deref(const rly_fbt *t, uint16_t id, size_t *target)
{
    size_t p = field_pos(t, id, 4);
    if (!p)
        return false;
    uint64_t tgt = p + rly_fb_rd(t->r->p + p, 4);
    if (tgt >= t->r->n)
        return false;
    *target = (size_t)tgt;
    return true;
}

bool rly_fb_subtable(const rly_fbt *t, uint16_t id, rly_fbt *out)
{
    size_t pos;
    return rly_fb_deref(t, id, &pos) && table_at(t->r, pos, out);
}

bool rly_fb_vec(const rly_fbt *t, uint16_t id, size_t elem_size, uint32_t *count, size_t *start)
{
    size_t pos;
    if (!rly_fb_deref(t, id, &pos) || pos + 4 > t->r->n)
        return false;
    uint32_t c = (uint32_t)rly_fb_rd(t->r->p + pos, 4);
    if ((uint64_t)c * elem_size > t->r->n - pos - 4)
        return false;
    *count = c;
    *start = pos + 4;
    return true;
}

bool rly_fb_vec_table(const rly_fbr *r, size_t start, uint32_t i, rly_fbt *out)
{
    size_t slot = start + 4 * (size_t)i;
    if (slot + 4 > r->n)
        return false;
    uint64_t tgt = slot + rly_fb_rd(r->p + slot, 4);
    if (tgt >= r->n)
        return false;
    return table_at(r, (size_t)tgt, out);
}

bool rly_fb_str(const rly_fbt *t, uint16_t id, const char **s, uint32_t *len)
{
    uint32_t n;
    size_t start;
    if (!rly_fb_vec(t, id, 1, &n, &start))
        return false;
    *s = (const char *)t->r->p + start;
    *len = n;
    return true;
}
