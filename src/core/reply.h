/*
 * rly_reply: a one-shot result (future) shared by one completer and one waiter.
 *
 * It completes exactly once, with a status and a value (an int64 and/or an owned
 * pointer with its destructor). The waiter may wait with a timeout, take the value,
 * or walk away; the reply is freed when both sides have let go, and a pointer value
 * nobody took is destroyed then, so nothing leaks when nobody waits.
 *
 * Replies may share an rly_latch so that a caller waiting on many replies is woken
 * once, when the last completes.
 */
#ifndef RLY_CORE_REPLY_H
#define RLY_CORE_REPLY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/thread.h"
#include "relay/err.h"

typedef struct rly_latch rly_latch;

typedef struct rly_reply {
    _Atomic uint32_t refs;
    _Atomic uint32_t done; /* 0 pending, 1 completing, 2 complete */
    relay_err status;
    int64_t value;
    void *ptr;
    void (*ptr_free)(void *);
    rly_latch *latch;
    rly_event ev;
    struct rly_reply *next_free; /* per-thread recycling list (reply.c) */
} rly_reply;

/* rly_reply_new returns a pending reply holding two references: the waiter's and the completer's.
 */
rly_reply *rly_reply_new(void);

/* rly_reply_new_in is rly_reply_new whose completion also counts down latch (which it references).
 */
rly_reply *rly_reply_new_in(rly_latch *latch);

/*
 * rly_reply_complete sets the outcome and drops the completer's reference. Only the first call
 * takes effect; a later call returns RELAY_ESTATE and, if ptr is given, destroys it with ptr_free.
 */
relay_err rly_reply_complete(rly_reply *r, relay_err status, int64_t value, void *ptr,
                             void (*ptr_free)(void *));

/* rly_reply_fail completes r with an error status and no value. */
static inline relay_err rly_reply_fail(rly_reply *r, relay_err status)
{
    return rly_reply_complete(r, status, 0, NULL, NULL);
}

/* rly_reply_is_done reports whether r has completed. */
bool rly_reply_is_done(rly_reply *r);

/*
 * rly_reply_wait waits up to timeout_ns (< 0: forever) and returns the completion status, or
 * RELAY_ETIMEDOUT if it has not completed. On completion *value and *ptr (each optional) receive
 * the value; taking ptr transfers its ownership to the caller.
 */
relay_err rly_reply_wait(rly_reply *r, int64_t timeout_ns, int64_t *value, void **ptr);

/* rly_reply_release drops the waiter's reference (call exactly once, whether or not it waited). */
void rly_reply_release(rly_reply *r);

/*
 * rly_latch counts outstanding replies and wakes its single waiter when the count reaches zero.
 * It may carry storage (e.g. the requests its replies answer) that lives exactly as long as the
 * latch: every reply created in it holds a reference, so the storage outlives any completer.
 */
struct rly_latch {
    _Atomic uint32_t refs;
    _Atomic int64_t remaining;
    rly_event ev;
    void *storage; /* owned; freed with the latch */
    size_t storage_cap;
};

/* rly_latch_new returns a latch expecting count completions, referenced once by the caller. */
rly_latch *rly_latch_new(int64_t count);
/* rly_latch_wait waits until all expected completions happened; RELAY_ETIMEDOUT otherwise. */
relay_err rly_latch_wait(rly_latch *l, int64_t timeout_ns);
/* rly_latch_count_down records one completion. */
void rly_latch_count_down(rly_latch *l);
/* rly_latch_release drops the caller's reference. */
void rly_latch_release(rly_latch *l);
/*
 * rly_latch_reuse re-arms l for count completions when the caller holds its only reference (every
 * reply created in it has been freed, so nobody else can touch it or its storage) and returns
 * true; otherwise it changes nothing and returns false.
 */
bool rly_latch_reuse(rly_latch *l, int64_t count);
/* rly_latch_storage returns at least bytes of storage owned by l (sole owner only); NULL on OOM. */
void *rly_latch_storage(rly_latch *l, size_t bytes);

#endif
