/*
 * Router-side trajectory buffers and the sink worker that drains them.
 *
 * Each router owns one rly_tbuf (installed as the router's user object, so an actor always
 * pushes to the buffer of the router it currently lives on: after a rebalance its trajectories
 * go to its new router's buffer). A buffer is a bounded FIFO of trajectory pointers: actors push
 * on their router's thread; the sink worker thread drains every buffer in batches and hands each
 * batch to the configured sinks (which copy what they keep) and then to an optional consumer that
 * takes ownership (the in-process learner), or frees it.
 *
 * A mutex-protected ring is used rather than a lock-free queue: it is taken once per trajectory
 * (hundreds of steps), not per step, and it makes the drop-oldest policy and blocking simple.
 *
 * Backpressure when a buffer is full: BLOCK (default) makes the pushing actor wait until the
 * worker makes room; DROP_OLDEST evicts the oldest queued trajectory. Both are counted.
 * Shutdown and scale-in drain every accepted trajectory into the sinks before threads exit.
 */
#ifndef RLY_SINK_BUFFER_H
#define RLY_SINK_BUFFER_H

#include <stdbool.h>
#include <stdint.h>

#include "actor/actor.h"
#include "core/thread.h"
#include "relay/sink.h"

typedef enum rly_backpressure { RLY_BP_BLOCK = 0, RLY_BP_DROP_OLDEST = 1 } rly_backpressure;

typedef struct rly_sinkworker rly_sinkworker;
typedef struct rly_tbuf rly_tbuf;

/* rly_tbuf_stats counts what happened at one buffer. */
typedef struct rly_tbuf_stats {
    uint64_t accepted;
    uint64_t dropped; /* drop-oldest evictions */
    uint64_t blocked; /* pushes that had to wait */
    uint64_t drained;
} rly_tbuf_stats;

/* rly_sink_consumer takes ownership of each drained trajectory (e.g. the learner). */
typedef void (*rly_sink_consumer)(void *ctx, relay_traj *t);

/* rly_sinkworker_new starts a worker that writes to sinks[0..n) (borrowed, caller closes them). */
relay_err rly_sinkworker_new(relay_sink *const *sinks, size_t n_sinks, uint32_t batch,
                             rly_sink_consumer consumer, void *consumer_ctx, rly_sinkworker **out);

/* rly_sinkworker_set_consumer installs a consumer on a worker that has none (RELAY_EEXIST
   otherwise); trajectories drained from then on go to it instead of being recycled. */
relay_err rly_sinkworker_set_consumer(rly_sinkworker *w, rly_sink_consumer consumer, void *ctx);

/* rly_sinkworker_stop drains every buffer, then stops and joins the worker thread. */
void rly_sinkworker_stop(rly_sinkworker *w);

/* rly_sinkworker_free stops (if needed) and frees the worker and any buffers still attached. */
void rly_sinkworker_free(rly_sinkworker *w);

/* rly_sinkworker_kick wakes the worker now (instead of at its next poll). */
void rly_sinkworker_kick(rly_sinkworker *w);

/* rly_sinkworker_written returns how many trajectories the worker has passed on so far. */
uint64_t rly_sinkworker_written(rly_sinkworker *w);

/* rly_tbuf_new creates a buffer of capacity trajectories attached to w. */
relay_err rly_tbuf_new(rly_sinkworker *w, uint32_t capacity, rly_backpressure policy,
                       rly_tbuf **out);

/* rly_tbuf_out returns the actor-facing push interface of b. */
rly_traj_out *rly_tbuf_out(rly_tbuf *b);

/* rly_tbuf_retire waits until the worker drained b, then detaches and frees it. */
void rly_tbuf_retire(rly_tbuf *b);

/* rly_tbuf_get_stats copies b's counters. */
void rly_tbuf_get_stats(rly_tbuf *b, rly_tbuf_stats *out);

/*
 * rly_sinkworker_times returns the seconds the worker spent writing batches to the sinks and
 * handing trajectories to the consumer (e.g. the learner's intake), any thread.
 */
void rly_sinkworker_times(rly_sinkworker *w, double *write_s, double *consume_s);

/* rly_sinkworker_totals sums the counters of all buffers ever attached to w. */
void rly_sinkworker_totals(rly_sinkworker *w, rly_tbuf_stats *out);

#endif
