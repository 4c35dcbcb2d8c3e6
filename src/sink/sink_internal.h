/* Internals shared by the sink implementations: output files, write buffers, counters, formatting.
 */
#ifndef RLY_SINK_INTERNAL_H
#define RLY_SINK_INTERNAL_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "relay/sink.h"

#define RLY_SINK_LOG "sink"
#define RLY_SINK_PATH_MAX 4096

/* rly_sink_counters are a sink's own counters, readable from any thread. */
typedef struct rly_sink_counters {
    _Atomic uint64_t trajs, rows, bytes, files, rejected, dropped;
} rly_sink_counters;

/* rly_counters_add adds v to *c (relaxed). */
static inline void rly_counters_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/* rly_counters_read adds the counters of c to out. */
void rly_counters_read(rly_sink_counters *c, relay_sink_stats *out);

/* RLY_OUTFILE_WB_LAG is how many written-back chunks a streaming file leaves in the page cache
   before it waits for the oldest and drops it (the lag lets its writeback finish meanwhile). */
#define RLY_OUTFILE_WB_LAG 3

/*
 * rly_outfile is a run's sequence of output files: <dir>/<stem><ext>, or <dir>/<stem>.NNNNN<ext>
 * when rotating, or one fixed path. Errors are logged with the path and errno text.
 */
typedef struct rly_outfile {
    int fd; /* -1 when closed */
    char path[RLY_SINK_PATH_MAX + 32];
    char base[RLY_SINK_PATH_MAX]; /* <dir>/<stem> */
    char ext[16];
    bool fixed, rotate, overwrite;
    uint64_t rotate_bytes;
    uint32_t index;       /* next rotation index */
    uint64_t size;        /* bytes written to the current file */
    rly_sink_counters *c; /* bytes and files are counted here */
    /* Streaming writeback (rly_outfile_stream): chunk k is [wb_mark[k], wb_mark[k + 1]), k <
       wb_n, oldest first; every one of them has had its writeback started. */
    uint64_t stream_chunk; /* 0: off */
    uint64_t wb_mark[RLY_OUTFILE_WB_LAG + 2];
    uint32_t wb_n;
} rly_outfile;

/* RLY_OUTFILE_STREAM_CHUNK is the file sinks' streaming writeback chunk (rly_outfile_stream). */
#define RLY_OUTFILE_STREAM_CHUNK ((uint64_t)8 << 20)

/* rly_outfile_init prepares names from cfg (creating the directory); ext is e.g. ".arrow". */
relay_err rly_outfile_init(rly_outfile *f, const relay_sink_config *cfg, const char *ext,
                           rly_sink_counters *c);
/* rly_outfile_open creates the next file of the run. */
relay_err rly_outfile_open(rly_outfile *f);
/* rly_outfile_write writes all n bytes at the current position. */
relay_err rly_outfile_write(rly_outfile *f, const void *p, size_t n);
/* rly_outfile_writev writes every iovec (cnt <= IOV_MAX), retrying partial writes. */
relay_err rly_outfile_writev(rly_outfile *f, struct iovec *iov, int cnt);
/*
 * rly_outfile_stream makes f start writeback of every `chunk` bytes as they are written and drop
 * each chunk from the page cache RLY_OUTFILE_WB_LAG chunks later, once it is on disk (0 = off), so
 * a long run recycles a few chunks of page cache instead of claiming fresh memory for every byte
 * (on a VM whose free memory is handed back to the host, fresh pages cost ~4 ns per byte to touch).
 * Files that cannot do this (pipes, /dev/null) are written normally.
 */
void rly_outfile_stream(rly_outfile *f, uint64_t chunk);
/* rly_outfile_should_rotate reports whether the current file passed the rotation size. */
bool rly_outfile_should_rotate(const rly_outfile *f);
/* rly_outfile_close closes the current file (no-op when closed). */
relay_err rly_outfile_close(rly_outfile *f);

/* rly_fmt_f32 writes an exact round-trip (near-shortest) decimal for v into p; returns the length.
 */
size_t rly_fmt_f32(char *p, float v);
/* rly_fmt_f64 writes "%.17g" of v into p (>= 32 bytes); returns the length. */
size_t rly_fmt_f64(char *p, double v);
/* rly_fmt_i64 writes the decimal of v into p (>= 21 bytes); returns the length. */
size_t rly_fmt_i64(char *p, int64_t v);
/* rly_fmt_u64 writes the decimal of v into p (>= 20 bytes); returns the length. */
size_t rly_fmt_u64(char *p, uint64_t v);

/* rly_shape_text writes "[d0,d1,...]" for a shape into buf (size n). */
void rly_shape_text(char *buf, size_t n, uint32_t rank, const int64_t *shape);

/* The built-in sinks' vtables. */
extern const relay_sink_vtable rly_memory_sink_vt;
extern const relay_sink_vtable rly_arrow_sink_vt;
extern const relay_sink_vtable rly_csv_sink_vt;
extern const relay_sink_vtable rly_binary_sink_vt;

/* rly_memory_sink_drain drains a memory sink's state (filter NULL = every actor). */
relay_err rly_memory_sink_drain(void *state, const relay_id *filter, relay_traj **out, size_t cap,
                                size_t *n);
/* rly_memory_sink_count returns how many trajectories a memory sink state holds. */
size_t rly_memory_sink_count(void *state);

/* rly_inspect_arrow prints a summary of the Relay Arrow file at path (already opened as fp). */
relay_err rly_inspect_arrow(const char *path, FILE *fp, FILE *out, uint32_t head_rows);
/* rly_inspect_csv prints a summary of the Relay CSV file at path. */
relay_err rly_inspect_csv(const char *path, FILE *fp, FILE *out, uint32_t head_rows);
/* rly_inspect_binary prints a summary of the Relay binary trajectory file at path. */
relay_err rly_inspect_binary(const char *path, FILE *fp, FILE *out, uint32_t head_rows);

#endif
