/*
 * Bounded lock-free queues of fixed-size elements, copied in and out by value.
 *
 * rly_mpsc: many producers, one consumer (a router's or the dispatcher's intake).
 * Each cell carries a sequence number (Vyukov's bounded queue); producers claim
 * cells with one CAS on the tail (one CAS for a whole batch), the consumer reads
 * cells in order and releases them. Capacity is a power of two.
 *
 * rly_spsc: one producer, one consumer, with cached opposite indices so the
 * shared index cache lines move only when a side runs out of room or items;
 * batch operations publish their index once per batch.
 *
 * Ownership: an element is a plain value; whatever it points to belongs to the
 * queue from a successful push until the consumer pops it. A failed push leaves
 * ownership with the caller.
 */
#ifndef RLY_CORE_QUEUE_H
#define RLY_CORE_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/thread.h"
#include "relay/err.h"

typedef struct rly_mpsc {
    _Alignas(RLY_CACHELINE) _Atomic size_t tail; /* next position producers claim */
    _Alignas(RLY_CACHELINE) _Atomic size_t head; /* written by the consumer only */
    size_t mask;
    size_t elem_size;
    size_t cell_size;
    unsigned char *cells; /* cache-line aligned, inside mem */
    void *mem;
    size_t mapped;  /* mem's length when mmap'ed, else 0 (calloc) */
    bool populated; /* faulted in at creation (counted in the process's populate budget) */
} rly_mpsc;

/* rly_mpsc_init creates a queue of capacity (rounded up to a power of two) elements. */
relay_err rly_mpsc_init(rly_mpsc *q, size_t capacity, size_t elem_size);
/* rly_mpsc_fini frees the cells; elements still inside are not inspected. */
void rly_mpsc_fini(rly_mpsc *q);
/* rly_mpsc_push copies *elem in; RELAY_EFULL when there is no room (caller keeps ownership). */
relay_err rly_mpsc_push(rly_mpsc *q, const void *elem);
/* rly_mpsc_push_batch copies all n elements in, contiguously and in order, or none (RELAY_EFULL).
 */
relay_err rly_mpsc_push_batch(rly_mpsc *q, const void *elems, size_t n);
/* rly_mpsc_pop_batch copies up to max elements out (consumer only) and returns how many. */
size_t rly_mpsc_pop_batch(rly_mpsc *q, void *out, size_t max);
/* rly_mpsc_size_approx returns a racy estimate of the number of queued elements. */
size_t rly_mpsc_size_approx(rly_mpsc *q);
/* rly_mpsc_capacity returns the capacity. */
static inline size_t rly_mpsc_capacity(const rly_mpsc *q)
{
    return q->mask + 1;
}

typedef struct rly_spsc {
    _Alignas(RLY_CACHELINE) _Atomic size_t tail; /* written by the producer */
    size_t head_cache;                           /* producer's view of head */
    _Alignas(RLY_CACHELINE) _Atomic size_t head; /* written by the consumer */
    size_t tail_cache;                           /* consumer's view of tail */
    _Alignas(RLY_CACHELINE) size_t mask;
    size_t elem_size;
    unsigned char *data;
} rly_spsc;

/* rly_spsc_init creates a queue of capacity (rounded up to a power of two) elements. */
relay_err rly_spsc_init(rly_spsc *q, size_t capacity, size_t elem_size);
/* rly_spsc_fini frees the buffer. */
void rly_spsc_fini(rly_spsc *q);
/* rly_spsc_push_batch copies up to n elements in (producer only) and returns how many fitted. */
size_t rly_spsc_push_batch(rly_spsc *q, const void *elems, size_t n);
/* rly_spsc_pop_batch copies up to max elements out (consumer only) and returns how many. */
size_t rly_spsc_pop_batch(rly_spsc *q, void *out, size_t max);
/* rly_spsc_push copies one element in; RELAY_EFULL when full. */
static inline relay_err rly_spsc_push(rly_spsc *q, const void *elem)
{
    return rly_spsc_push_batch(q, elem, 1) == 1 ? RELAY_OK : RELAY_EFULL;
}

#endif
