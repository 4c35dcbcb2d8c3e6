/*
 * Trajectory sinks: where finished trajectories go (memory, Arrow IPC file, CSV file, binary
 * stream).
 *
 * A sink is a vtable (open / write_batch / flush / close) behind a small handle that counts what
 * was written and remembers the first hard failure. write_batch borrows the trajectories: the
 * caller keeps ownership and may free them as soon as the call returns. A sink that fails
 * (unwritable directory, disk full) returns RELAY_EIO, logs the path and the errno text once, and
 * from then on answers every write with the same error without touching the disk; it never aborts,
 * so a caller holding several sinks keeps using the others. One sink is used by one writer thread
 * at a time; the memory sink's drain and count calls, and relay_sink_stats_get, may be called from
 * any thread.
 */
#ifndef RELAY_SINK_H
#define RELAY_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "relay/data.h"
#include "relay/err.h"
#include "relay/export.h"
#include "relay/id.h"

#ifdef __cplusplus
extern "C" {
#endif

/* relay_sink_kind selects a built-in sink. */
typedef enum relay_sink_kind {
    RELAY_SINK_CUSTOM = 0, /* only with relay_sink_open_custom */
    RELAY_SINK_MEMORY = 1, /* last N trajectories per actor, drained by the user */
    RELAY_SINK_ARROW = 2,  /* Arrow IPC file, one row per step */
    RELAY_SINK_CSV = 3,    /* CSV file with a header, one row per step */
    RELAY_SINK_BINARY = 4  /* length-delimited protobuf trajectories */
} relay_sink_kind;

/* RELAY_ARROW_BATCH_ROWS_DEFAULT is the Arrow sink's rows per record batch when none is set (small
   enough that a batch being gathered stays in a core's cache next to the actors' own data). */
#define RELAY_ARROW_BATCH_ROWS_DEFAULT 8192

/* relay_sink_config configures a sink; zero fields take the documented defaults. */
typedef struct relay_sink_config {
    relay_sink_kind kind;
    const char *path;          /* exact output file; overrides dir/run_name and disables rotation */
    const char *dir;           /* output directory, created if missing (default ".") */
    const char *run_name;      /* file stem (default "run-<unix seconds>-<pid>") */
    bool overwrite;            /* replace an existing file instead of failing with RELAY_EEXIST */
    uint32_t batch_rows;       /* Arrow: rows per record batch (default 8192) */
    uint64_t rotate_bytes;     /* Arrow/CSV/binary: start a new file past this size (0 = never) */
    uint32_t memory_per_actor; /* memory: trajectories kept per actor (default 1000) */
    size_t buffer_bytes;       /* CSV/binary: write buffer size (default 1 MiB) */
    int binary_compression;    /* binary: a relay_compression value (default 0 = none) */
} relay_sink_config;

/* relay_sink_stats counts what a sink did since it was opened. */
typedef struct relay_sink_stats {
    uint64_t trajs;    /* trajectories accepted */
    uint64_t rows;     /* steps accepted */
    uint64_t bytes;    /* bytes written to files */
    uint64_t files;    /* files created */
    uint64_t rejected; /* trajectories refused (spec differs from the file's schema) */
    uint64_t dropped;  /* memory sink: trajectories evicted because an actor exceeded its cap */
    uint64_t errors;   /* calls that returned an error */
} relay_sink_stats;

/*
 * relay_sink_vtable is the interface every sink implements. open creates the state from cfg;
 * write_batch borrows n trajectories; flush pushes buffered data to the OS; close finishes the
 * output (e.g. the Arrow footer) and frees the state even when it fails. stats (optional) adds
 * the sink's own counters (rows, bytes, files, rejected, dropped) to out.
 */
typedef struct relay_sink_vtable {
    const char *name;
    relay_err (*open)(const relay_sink_config *cfg, void **state);
    relay_err (*write_batch)(void *state, relay_traj *const *trajs, size_t n);
    relay_err (*flush)(void *state);
    relay_err (*close)(void *state);
    void (*stats)(void *state, relay_sink_stats *out);
} relay_sink_vtable;

/* relay_sink is an open sink: a vtable, its state, counters and the first hard error. */
typedef struct relay_sink relay_sink;

/* relay_sink_open opens the built-in sink cfg->kind; on failure *out is NULL and the cause is
 * logged. */
RELAY_API relay_err relay_sink_open(const relay_sink_config *cfg, relay_sink **out);

/* relay_sink_open_custom opens a sink implemented by vt (which must outlive the sink). */
RELAY_API relay_err relay_sink_open_custom(const relay_sink_vtable *vt,
                                           const relay_sink_config *cfg, relay_sink **out);

/*
 * relay_sink_write_batch writes n borrowed trajectories. Returns RELAY_ESHAPE when some of them
 * have a spec different from the file's schema (those are skipped and counted as rejected, the
 * others are written), RELAY_EIO after a failed write (sticky: later calls fail the same way).
 */
RELAY_API relay_err relay_sink_write_batch(relay_sink *s, relay_traj *const *trajs, size_t n);

/* relay_sink_flush hands buffered rows to the OS (Arrow: ends the current record batch early). */
RELAY_API relay_err relay_sink_flush(relay_sink *s);

/* relay_sink_close finishes the output and frees s (always); returns the first error seen. */
RELAY_API relay_err relay_sink_close(relay_sink *s);

/* relay_sink_name returns the sink's kind name ("memory", "arrow", "csv", "binary" or custom). */
RELAY_API const char *relay_sink_name(const relay_sink *s);

/* relay_sink_error returns the sticky error of a failed sink, RELAY_OK while it is healthy. */
RELAY_API relay_err relay_sink_error(const relay_sink *s);

/* relay_sink_stats_get fills out with the sink's counters (any thread). */
RELAY_API void relay_sink_stats_get(const relay_sink *s, relay_sink_stats *out);

/* relay_sink_path copies the current output file's path into buf (size n); RELAY_ENOTFOUND if none.
 */
RELAY_API relay_err relay_sink_path(const relay_sink *s, char *buf, size_t n);

/*
 * relay_sink_memory_drain moves up to cap stored trajectories (oldest first per actor) into out
 * and sets *n; the caller owns them and frees each with relay_traj_free. RELAY_EINVAL if s is not
 * a memory sink.
 */
RELAY_API relay_err relay_sink_memory_drain(relay_sink *s, relay_traj **out, size_t cap, size_t *n);

/* relay_sink_memory_drain_actor is relay_sink_memory_drain limited to one actor's trajectories. */
RELAY_API relay_err relay_sink_memory_drain_actor(relay_sink *s, relay_id actor, relay_traj **out,
                                                  size_t cap, size_t *n);

/* relay_sink_memory_count returns how many trajectories a memory sink holds (0 for other sinks). */
RELAY_API size_t relay_sink_memory_count(relay_sink *s);

/*
 * relay_inspect_file detects a Relay Arrow, CSV or binary file by its content and prints to out
 * its format, schema, row and trajectory counts, per-episode return and length statistics and the
 * first head_rows rows. Anything else returns RELAY_EFORMAT (logged with the reason).
 */
RELAY_API relay_err relay_inspect_file(const char *path, FILE *out, uint32_t head_rows);

#ifdef __cplusplus
}
#endif
#endif
