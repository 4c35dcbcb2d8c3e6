/* The sink handle (counters, sticky errors) and the output-file helpers the file sinks share. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "sink/sink_internal.h"

struct relay_sink {
    const relay_sink_vtable *vt;
    void *state;
    _Atomic int sticky; /* relay_err of the first hard failure */
    _Atomic uint64_t trajs, errors;
};

static const relay_sink_vtable *builtin_vt(relay_sink_kind kind)
{
    switch (kind) {
    case RELAY_SINK_MEMORY:
        return &rly_memory_sink_vt;
    case RELAY_SINK_ARROW:
        return &rly_arrow_sink_vt;
    case RELAY_SINK_CSV:
        return &rly_csv_sink_vt;
    case RELAY_SINK_BINARY:
        return &rly_binary_sink_vt;
    default:
        return NULL;
    }
}

relay_err relay_sink_open_custom(const relay_sink_vtable *vt, const relay_sink_config *cfg,
                                 relay_sink **out)
{
    if (out)
        *out = NULL;
    if (!vt || !cfg || !out || !vt->open || !vt->write_batch || !vt->close) {
        rly_warn(RLY_SINK_LOG, "sink open: missing config, output pointer or vtable function");
        return RELAY_EINVAL;
    }
    relay_sink *s = calloc(1, sizeof *s);
    if (!s)
        return RELAY_ENOMEM;
    s->vt = vt;
    relay_err e = vt->open(cfg, &s->state);
    if (e != RELAY_OK) {
        rly_warn(RLY_SINK_LOG, "cannot open %s sink: %s", vt->name ? vt->name : "custom",
                 relay_strerror(e));
        free(s);
        return e;
    }
    *out = s;
    return RELAY_OK;
}

relay_err relay_sink_open(const relay_sink_config *cfg, relay_sink **out)
{
    if (out)
        *out = NULL;
    const relay_sink_vtable *vt = cfg ? builtin_vt(cfg->kind) : NULL;
    if (!vt) {
        rly_warn(RLY_SINK_LOG, "sink open: unknown sink kind %d", cfg ? (int)cfg->kind : -1);
        return RELAY_EINVAL;
    }
    return relay_sink_open_custom(vt, cfg, out);
}

static relay_err note(relay_sink *s, relay_err e)
{
    if (e == RELAY_OK)
        return e;
    atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
    if (e == RELAY_EIO || e == RELAY_ENOMEM || e == RELAY_EINTERNAL) {
        int expect = RELAY_OK;
        if (atomic_compare_exchange_strong(&s->sticky, &expect, (int)e))
            rly_error(RLY_SINK_LOG, "%s sink failed (%s); further writes are refused",
                      s->vt->name ? s->vt->name : "custom", relay_strerror(e));
    }
    return e;
}

relay_err relay_sink_write_batch(relay_sink *s, relay_traj *const *trajs, size_t n)
{
    if (!s || (n && !trajs))
        return RELAY_EINVAL;
    int sticky = atomic_load(&s->sticky);
    if (sticky != RELAY_OK) {
        atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
        return (relay_err)sticky;
    }
    for (size_t i = 0; i < n; i++)
        if (!trajs[i]) {
            rly_warn(RLY_SINK_LOG, "write_batch: trajectory %zu of %zu is NULL", i, n);
            return note(s, RELAY_EINVAL);
        }
    if (n == 0)
        return RELAY_OK;
    relay_err e = s->vt->write_batch(s->state, trajs, n);
    /* Built-in sinks count accepted trajectories themselves (stats); count for the others. */
    if (e == RELAY_OK && !s->vt->stats)
        atomic_fetch_add_explicit(&s->trajs, n, memory_order_relaxed);
    return note(s, e);
}

relay_err relay_sink_flush(relay_sink *s)
{
    if (!s)
        return RELAY_EINVAL;
    int sticky = atomic_load(&s->sticky);
    if (sticky != RELAY_OK)
        return (relay_err)sticky;
    return note(s, s->vt->flush ? s->vt->flush(s->state) : RELAY_OK);
}

relay_err relay_sink_close(relay_sink *s)
{
    if (!s)
        return RELAY_OK;
    relay_err e = s->vt->close(s->state);
    int sticky = atomic_load(&s->sticky);
    if (sticky != RELAY_OK)
        e = (relay_err)sticky;
    free(s);
    return e;
}

const char *relay_sink_name(const relay_sink *s)
{
    return s && s->vt->name ? s->vt->name : "custom";
}

relay_err relay_sink_error(const relay_sink *s)
{
    return s ? (relay_err)atomic_load(&((relay_sink *)s)->sticky) : RELAY_EINVAL;
}

void relay_sink_stats_get(const relay_sink *s, relay_sink_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    relay_sink *m = (relay_sink *)s;
    if (m->vt->stats)
        m->vt->stats(m->state, out);
    out->errors = atomic_load_explicit(&m->errors, memory_order_relaxed);
    if (!m->vt->stats)
        out->trajs = atomic_load_explicit(&m->trajs, memory_order_relaxed);
}

relay_err relay_sink_path(const relay_sink *s, char *buf, size_t n)
{
    if (!s || !buf || n == 0)
        return RELAY_EINVAL;
    buf[0] = '\0';
    if (s->vt != &rly_arrow_sink_vt && s->vt != &rly_csv_sink_vt && s->vt != &rly_binary_sink_vt)
        return RELAY_ENOTFOUND;
    /* Every file sink's state starts with its rly_outfile. */
    const rly_outfile *f = (const rly_outfile *)s->state;
    if (!f->path[0])
        return RELAY_ENOTFOUND;
    if (strlen(f->path) >= n)
        return RELAY_ETOOBIG;
    strcpy(buf, f->path);
    return RELAY_OK;
}

relay_err relay_sink_memory_drain(relay_sink *s, relay_traj **out, size_t cap, size_t *n)
{
    if (n)
        *n = 0;
    if (!s || !n || (cap && !out) || s->vt != &rly_memory_sink_vt)
        return RELAY_EINVAL;
    return rly_memory_sink_drain(s->state, NULL, out, cap, n);
}

relay_err relay_sink_memory_drain_actor(relay_sink *s, relay_id actor, relay_traj **out, size_t cap,
                                        size_t *n)
{
    if (n)
        *n = 0;
    if (!s || !n || (cap && !out) || s->vt != &rly_memory_sink_vt)
        return RELAY_EINVAL;
    return rly_memory_sink_drain(s->state, &actor, out, cap, n);
}

size_t relay_sink_memory_count(relay_sink *s)
{
    if (!s || s->vt != &rly_memory_sink_vt)
        return 0;
    return rly_memory_sink_count(s->state);
}

void rly_counters_read(rly_sink_counters *c, relay_sink_stats *out)
{
    out->trajs += atomic_load_explicit(&c->trajs, memory_order_relaxed);
    out->rows += atomic_load_explicit(&c->rows, memory_order_relaxed);
    out->bytes += atomic_load_explicit(&c->bytes, memory_order_relaxed);
    out->files += atomic_load_explicit(&c->files, memory_order_relaxed);
    out->rejected += atomic_load_explicit(&c->rejected, memory_order_relaxed);
    out->dropped += atomic_load_explicit(&c->dropped, memory_order_relaxed);
}

/* ---- output files ---- */

static relay_err mkdir_p(const char *dir)
{
    char tmp[RLY_SINK_PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof tmp) {
        rly_error(RLY_SINK_LOG, "output directory name is empty or too long");
        return RELAY_EINVAL;
    }
    memcpy(tmp, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        char c = tmp[i];
        tmp[i] = '\0';
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
            rly_error(RLY_SINK_LOG, "cannot create directory %s: %s", tmp, strerror(errno));
            return RELAY_EIO;
        }
        tmp[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rly_error(RLY_SINK_LOG, "output directory %s is not a directory: %s", dir,
                  errno ? strerror(errno) : "exists as a file");
        return RELAY_EIO;
    }
    return RELAY_OK;
}

relay_err rly_outfile_init(rly_outfile *f, const relay_sink_config *cfg, const char *ext,
                           rly_sink_counters *c)
{
    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->c = c;
    f->overwrite = cfg->overwrite;
    snprintf(f->ext, sizeof f->ext, "%s", ext);
    if (cfg->path && cfg->path[0]) {
        if (strlen(cfg->path) >= sizeof f->base) {
            rly_error(RLY_SINK_LOG, "output path too long");
            return RELAY_EINVAL;
        }
        f->fixed = true;
        strcpy(f->base, cfg->path);
        return RELAY_OK;
    }
    const char *dir = cfg->dir && cfg->dir[0] ? cfg->dir : ".";
    relay_err e = mkdir_p(dir);
    if (e != RELAY_OK)
        return e;
    char stem[256];
    if (cfg->run_name && cfg->run_name[0]) {
        if (strchr(cfg->run_name, '/') || strlen(cfg->run_name) >= sizeof stem) {
            rly_error(RLY_SINK_LOG, "run name '%s' contains '/' or is too long", cfg->run_name);
            return RELAY_EINVAL;
        }
        snprintf(stem, sizeof stem, "%s", cfg->run_name);
    } else {
        snprintf(stem, sizeof stem, "run-%lld-%d", (long long)time(NULL), (int)getpid());
    }
    int k = snprintf(f->base, sizeof f->base, "%s/%s", dir, stem);
    if (k < 0 || (size_t)k + 32 >= sizeof f->base) {
        rly_error(RLY_SINK_LOG, "output path too long");
        return RELAY_EINVAL;
    }
    f->rotate = cfg->rotate_bytes > 0;
    f->rotate_bytes = cfg->rotate_bytes;
    return RELAY_OK;
}

relay_err rly_outfile_open(rly_outfile *f)
{
    if (f->fd >= 0)
        return RELAY_OK;
    if (f->fixed)
        snprintf(f->path, sizeof f->path, "%s", f->base);
    else if (f->rotate)
        snprintf(f->path, sizeof f->path, "%s.%05u%s", f->base, f->index++, f->ext);
    else
        snprintf(f->path, sizeof f->path, "%s%s", f->base, f->ext);
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (f->overwrite || f->fixed ? O_TRUNC : O_EXCL);
    int fd = open(f->path, flags, 0666);
    if (fd < 0) {
        int err = errno;
        rly_error(RLY_SINK_LOG, "cannot create %s: %s", f->path, strerror(err));
        return err == EEXIST ? RELAY_EEXIST : RELAY_EIO;
    }
    f->fd = fd;
    f->size = 0;
    f->wb_mark[0] = 0;
    f->wb_n = 0;
    rly_counters_add(&f->c->files, 1);
    return RELAY_OK;
}

void rly_outfile_stream(rly_outfile *f, uint64_t chunk)
{
    f->stream_chunk = chunk;
}

/* stream_chunk starts writeback of what was written since the last chunk and, once more than
   RLY_OUTFILE_WB_LAG chunks are in flight, waits for the oldest and drops it from the page cache.
 */
static void stream_chunk(rly_outfile *f)
{
    uint64_t from = f->wb_mark[f->wb_n];
    if (sync_file_range(f->fd, (off_t)from, (off_t)(f->size - from), SYNC_FILE_RANGE_WRITE) != 0) {
        /* Not a file that has writeback (pipe, character device): write it normally. */
        rly_debug(RLY_SINK_LOG, "%s: no streaming writeback (%s)", f->path, strerror(errno));
        f->stream_chunk = 0;
        return;
    }
    f->wb_mark[++f->wb_n] = f->size;
    if (f->wb_n <= RLY_OUTFILE_WB_LAG)
        return;
    off_t off = (off_t)f->wb_mark[0], len = (off_t)(f->wb_mark[1] - f->wb_mark[0]);
    unsigned flags =
        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
    if (sync_file_range(f->fd, off, len, flags) == 0)
        (void)posix_fadvise(f->fd, off, len, POSIX_FADV_DONTNEED);
    memmove(f->wb_mark, f->wb_mark + 1, f->wb_n * sizeof f->wb_mark[0]);
    f->wb_n--;
}

relay_err rly_outfile_write(rly_outfile *f, const void *p, size_t n)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
    return rly_outfile_writev(f, &iov, 1);
}

relay_err rly_outfile_writev(rly_outfile *f, struct iovec *iov, int cnt)
{
    if (f->fd < 0) {
        rly_error(RLY_SINK_LOG, "write to %s after it was closed",
                  f->path[0] ? f->path : "(no file)");
        return RELAY_EIO;
    }
    while (cnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            cnt--;
            continue;
        }
        ssize_t w = writev(f->fd, iov, cnt > 1024 ? 1024 : cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rly_error(RLY_SINK_LOG, "write to %s failed: %s", f->path, strerror(errno));
            return RELAY_EIO;
        }
        if (w == 0) {
            rly_error(RLY_SINK_LOG, "write to %s made no progress", f->path);
            return RELAY_EIO;
        }
        f->size += (uint64_t)w;
        rly_counters_add(&f->c->bytes, (uint64_t)w);
        size_t left = (size_t)w;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0 && left) {
            iov->iov_base = (uint8_t *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    if (f->stream_chunk && f->size - f->wb_mark[f->wb_n] >= f->stream_chunk)
        stream_chunk(f);
    return RELAY_OK;
}

bool rly_outfile_should_rotate(const rly_outfile *f)
{
    return f->rotate && f->fd >= 0 && f->size >= f->rotate_bytes;
}

relay_err rly_outfile_close(rly_outfile *f)
{
    if (f->fd < 0)
        return RELAY_OK;
    int rc = close(f->fd);
    f->fd = -1;
    if (rc != 0 && errno != EINTR) {
        rly_error(RLY_SINK_LOG, "closing %s failed: %s", f->path, strerror(errno));
        return RELAY_EIO;
    }
    return RELAY_OK;
}

void rly_shape_text(char *buf, size_t n, uint32_t rank, const int64_t *shape)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (uint32_t i = 0; i < rank && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%" PRId64 : "%" PRId64, shape[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}
