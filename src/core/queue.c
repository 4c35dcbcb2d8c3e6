/* Bounded MPSC (sequence-numbered cells) and SPSC (cached indices) queues. */
#include "core/queue.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Rings of at least this many bytes get their own mapping (see rly_mpsc_init). */
#define MAP_MIN_BYTES ((size_t)64 << 10)
/* Mapped rings are faulted in at creation while all such rings of the process together stay
   within this; beyond it (thousands of routers) pages are faulted in when first used. A fault in
   the message path costs about a microsecond, once per page of a ring's first lap. */
#define POPULATE_BUDGET ((size_t)32 << 20)

static _Atomic size_t populated_bytes;

static size_t round_pow2(size_t n)
{
    size_t p = 2;
    while (p < n)
        p <<= 1;
    return p;
}

typedef struct {
    _Atomic size_t seq;
} cell_hdr;

#define CELL_DATA_OFF ((sizeof(cell_hdr) + 7) & ~(size_t)7)

static inline cell_hdr *cell_at(const rly_mpsc *q, size_t pos)
{
    return (cell_hdr *)(q->cells + (pos & q->mask) * q->cell_size);
}

static inline void *cell_data(cell_hdr *c)
{
    return (unsigned char *)c + CELL_DATA_OFF;
}

/* A cell stores its sequence number minus its index, so the initial state (cell i holds i) is
   all zeroes: the cells come from calloc and are not touched until used, which makes creating
   thousands of queues cheap (no page is faulted in before a message lands in it). */
static inline size_t seq_get(const rly_mpsc *q, cell_hdr *c, size_t pos, memory_order o)
{
    return atomic_load_explicit(&c->seq, o) + (pos & q->mask);
}

static inline void seq_set(const rly_mpsc *q, cell_hdr *c, size_t pos, size_t v, memory_order o)
{
    atomic_store_explicit(&c->seq, v - (pos & q->mask), o);
}

/* prefetch_next asks for the cell the next push will write, for writing. A lightly loaded ring's
   next cell was last used a lap ago and is out of cache: this takes the miss off the next
   message's path (the consumer does not read past the tail, so nothing else brings it in). */
static inline void prefetch_next(const rly_mpsc *q, size_t pos)
{
    __builtin_prefetch(cell_at(q, pos), 1);
}

relay_err rly_mpsc_init(rly_mpsc *q, size_t capacity, size_t elem_size)
{
    memset(q, 0, sizeof *q);
    if (capacity == 0 || capacity > ((size_t)1 << 30) || elem_size == 0)
        return RELAY_EINVAL;
    size_t cap = round_pow2(capacity);
    q->mask = cap - 1;
    q->elem_size = elem_size;
    q->cell_size = (CELL_DATA_OFF + elem_size + 7) & ~(size_t)7;
    /* Zeroed memory is the initial state (seq_get). Large rings are mapped directly, so their
       pages are faulted in only when messages reach them (calloc would clear them all now). */
    size_t bytes = cap * q->cell_size;
    if (bytes >= MAP_MIN_BYTES) {
        int flags = MAP_PRIVATE | MAP_ANONYMOUS;
        size_t prev = atomic_fetch_add_explicit(&populated_bytes, bytes, memory_order_relaxed);
        if (prev + bytes <= POPULATE_BUDGET) {
            flags |= MAP_POPULATE;
            q->populated = true;
        } else {
            atomic_fetch_sub_explicit(&populated_bytes, bytes, memory_order_relaxed);
        }
        void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (m == MAP_FAILED) {
            if (q->populated)
                atomic_fetch_sub_explicit(&populated_bytes, bytes, memory_order_relaxed);
            q->populated = false;
            return RELAY_ENOMEM;
        }
        q->mem = m;
        q->mapped = bytes;
        q->cells = m;
    } else {
        q->mem = calloc(1, bytes + RLY_CACHELINE);
        if (!q->mem)
            return RELAY_ENOMEM;
        q->cells = (unsigned char *)(((uintptr_t)q->mem + RLY_CACHELINE - 1) &
                                     ~(uintptr_t)(RLY_CACHELINE - 1));
    }
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
    return RELAY_OK;
}

void rly_mpsc_fini(rly_mpsc *q)
{
    if (q->mapped) {
        munmap(q->mem, q->mapped);
        if (q->populated)
            atomic_fetch_sub_explicit(&populated_bytes, q->mapped, memory_order_relaxed);
        q->populated = false;
    } else
        free(q->mem);
    q->mapped = 0;
    q->mem = NULL;
    q->cells = NULL;
}

relay_err rly_mpsc_push_batch(rly_mpsc *q, const void *elems, size_t n)
{
    if (n == 0)
        return RELAY_OK;
    if (n > q->mask + 1)
        return RELAY_EFULL;
    size_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        /* The consumer frees cells in order, so the last cell being free means all are. */
        cell_hdr *last = cell_at(q, pos + n - 1);
        size_t seq = seq_get(q, last, pos + n - 1, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)(pos + n - 1);
        if (dif == 0) {
            cell_hdr *first = cell_at(q, pos);
            size_t fseq = seq_get(q, first, pos, memory_order_acquire);
            if (fseq != pos) { /* an earlier cell of our range is not yet free */
                if ((intptr_t)fseq - (intptr_t)pos < 0)
                    return RELAY_EFULL;
                pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
                continue;
            }
            if (atomic_compare_exchange_weak_explicit(&q->tail, &pos, pos + n, memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (dif < 0) {
            return RELAY_EFULL;
        } else {
            pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
    const unsigned char *src = elems;
    for (size_t i = 0; i < n; i++) {
        cell_hdr *c = cell_at(q, pos + i);
        memcpy(cell_data(c), src + i * q->elem_size, q->elem_size);
        seq_set(q, c, pos + i, pos + i + 1, memory_order_release);
    }
    prefetch_next(q, pos + n);
    return RELAY_OK;
}

relay_err rly_mpsc_push(rly_mpsc *q, const void *elem)
{
    size_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    for (;;) {
        cell_hdr *c = cell_at(q, pos);
        size_t seq = seq_get(q, c, pos, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->tail, &pos, pos + 1, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                memcpy(cell_data(c), elem, q->elem_size);
                seq_set(q, c, pos, pos + 1, memory_order_release);
                prefetch_next(q, pos + 1);
                return RELAY_OK;
            }
        } else if (dif < 0) {
            return RELAY_EFULL;
        } else {
            pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
}

size_t rly_mpsc_pop_batch(rly_mpsc *q, void *out, size_t max)
{
    unsigned char *dst = out;
    size_t n = 0;
    size_t cap = q->mask + 1;
    size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    /* Look no further than the claimed positions: reading the cell after the last message
       would touch a line not used since the ring's previous lap (a cache miss on every call
       for a lightly loaded queue). A stale tail only means fewer now; cells claimed but not
       yet written still stop the loop below. */
    size_t avail = atomic_load_explicit(&q->tail, memory_order_relaxed) - head;
    if ((intptr_t)avail <= 0)
        return 0;
    if (max > avail)
        max = avail;
    while (n < max) {
        cell_hdr *c = cell_at(q, head);
        size_t seq = seq_get(q, c, head, memory_order_acquire);
        if (seq != head + 1)
            break;
        memcpy(dst + n * q->elem_size, cell_data(c), q->elem_size);
        seq_set(q, c, head, head + cap, memory_order_release);
        head++;
        n++;
    }
    if (n)
        atomic_store_explicit(&q->head, head, memory_order_relaxed);
    return n;
}

size_t rly_mpsc_size_approx(rly_mpsc *q)
{
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    return t > h ? t - h : 0;
}

relay_err rly_spsc_init(rly_spsc *q, size_t capacity, size_t elem_size)
{
    memset(q, 0, sizeof *q);
    if (capacity == 0 || capacity > ((size_t)1 << 30) || elem_size == 0)
        return RELAY_EINVAL;
    size_t cap = round_pow2(capacity);
    q->mask = cap - 1;
    q->elem_size = elem_size;
    q->data = malloc(cap * elem_size);
    if (!q->data)
        return RELAY_ENOMEM;
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    return RELAY_OK;
}

void rly_spsc_fini(rly_spsc *q)
{
    free(q->data);
    q->data = NULL;
}

size_t rly_spsc_push_batch(rly_spsc *q, const void *elems, size_t n)
{
    size_t cap = q->mask + 1;
    size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    if (tail + n - q->head_cache > cap)
        q->head_cache = atomic_load_explicit(&q->head, memory_order_acquire);
    size_t room = cap - (tail - q->head_cache);
    if (n > room)
        n = room;
    const unsigned char *src = elems;
    for (size_t i = 0; i < n;) {
        size_t idx = (tail + i) & q->mask;
        size_t run = cap - idx < n - i ? cap - idx : n - i;
        memcpy(q->data + idx * q->elem_size, src + i * q->elem_size, run * q->elem_size);
        i += run;
    }
    if (n)
        atomic_store_explicit(&q->tail, tail + n, memory_order_release);
    return n;
}

size_t rly_spsc_pop_batch(rly_spsc *q, void *out, size_t max)
{
    size_t cap = q->mask + 1;
    size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (q->tail_cache - head < max)
        q->tail_cache = atomic_load_explicit(&q->tail, memory_order_acquire);
    size_t avail = q->tail_cache - head;
    size_t n = avail < max ? avail : max;
    unsigned char *dst = out;
    for (size_t i = 0; i < n;) {
        size_t idx = (head + i) & q->mask;
        size_t run = cap - idx < n - i ? cap - idx : n - i;
        memcpy(dst + i * q->elem_size, q->data + idx * q->elem_size, run * q->elem_size);
        i += run;
    }
    if (n)
        atomic_store_explicit(&q->head, head + n, memory_order_release);
    return n;
}
