/*
 * Minimal FlatBuffers writer and bounds-checked reader, enough for Arrow IPC metadata.
 *
 * The writer lays a buffer out front to back: a parent table is written first with placeholder
 * offset slots that are patched once the child is written after it, so every uoffset points
 * forward as the format requires. Vtables are written just before their table. Scalars are
 * aligned to their size relative to the buffer start (which the caller keeps 8-aligned).
 */
#ifndef RLY_SINK_FB_H
#define RLY_SINK_FB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/err.h"

typedef struct rly_fbb {
    uint8_t *buf;
    size_t len, cap;
    bool oom;
} rly_fbb;

/* rly_fb_field describes one table field: size 1, 2, 4 or 8 bytes, or off (a 4-byte uoffset). */
typedef struct rly_fb_field {
    uint16_t id;
    uint8_t size;
    bool off;
    uint64_t val; /* scalar value (ignored for offsets) */
} rly_fb_field;

/* RLY_FB_MAX_FIELDS bounds the field id of the tables written here. */
#define RLY_FB_MAX_FIELDS 8

/* rly_fbb_reset empties the builder (keeps its memory) and reserves the root offset. */
void rly_fbb_reset(rly_fbb *b);
/* rly_fbb_fini frees the builder's memory. */
void rly_fbb_fini(rly_fbb *b);
/* rly_fb_table writes a table and returns its position; slots[id] receives offset-field positions.
 */
size_t rly_fb_table(rly_fbb *b, const rly_fb_field *f, int n, size_t *slots);
/* rly_fb_string writes a string and returns its position. */
size_t rly_fb_string(rly_fbb *b, const char *s);
/* rly_fb_vector writes a vector header for count elements; returns the first element's position. */
size_t rly_fb_vector(rly_fbb *b, uint32_t count, size_t elem_size, size_t elem_align);
/* rly_fb_patch makes the uoffset at slot point at target. */
void rly_fb_patch(rly_fbb *b, size_t slot, size_t target);
/* rly_fb_put writes little-endian v of size bytes at pos. */
void rly_fb_put(rly_fbb *b, size_t pos, uint64_t v, int size);
/* rly_fb_finish pads the buffer to 8 bytes and returns RELAY_ENOMEM if any growth failed. */
relay_err rly_fb_finish(rly_fbb *b, size_t root);

/* rly_fbr is a read-only view of a flatbuffer. */
typedef struct rly_fbr {
    const uint8_t *p;
    size_t n;
} rly_fbr;

/* rly_fbt is a table found in a flatbuffer. */
typedef struct rly_fbt {
    const rly_fbr *r;
    size_t pos, vt;
    uint16_t vtlen, tlen;
} rly_fbt;

/* rly_fb_root finds the root table; false when the buffer is malformed. */
bool rly_fb_root(const rly_fbr *r, rly_fbt *t);
/* rly_fb_scalar reads field id of size bytes (sign-extended when sign), or def when absent. */
bool rly_fb_scalar(const rly_fbt *t, uint16_t id, int size, bool sign, int64_t def, int64_t *out);
/* rly_fb_deref follows the uoffset at field id; false when absent or out of bounds. */
bool rly_fb_deref(const rly_fbt *t, uint16_t id, size_t *target);
/* rly_fb_subtable reads the table that field id points at. */
bool rly_fb_subtable(const rly_fbt *t, uint16_t id, rly_fbt *out);
/* rly_fb_vec reads the vector at field id: count and element start, checked for elem_size. */
bool rly_fb_vec(const rly_fbt *t, uint16_t id, size_t elem_size, uint32_t *count, size_t *start);
/* rly_fb_vec_table reads element i of a vector of tables starting at start. */
bool rly_fb_vec_table(const rly_fbr *r, size_t start, uint32_t i, rly_fbt *out);
/* rly_fb_str reads the string at field id (pointer into the buffer, not NUL-checked) and its
 * length. */
bool rly_fb_str(const rly_fbt *t, uint16_t id, const char **s, uint32_t *len);
/* rly_fb_rd reads a little-endian integer of size bytes at pos (caller checked bounds). */
uint64_t rly_fb_rd(const uint8_t *p, int size);

#endif
