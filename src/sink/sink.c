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
    f->stage_len = f->stage_done = 0;
    f->stage_off = 0;
    f->dio = f->padded = false;
    if (f->stage) {
        /* Regular files only; a filesystem without direct I/O (tmpfs) refuses the flag. */
        struct stat st;
        int fl = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fcntl(fd, F_GETFL) : -1;
        f->dio = fl >= 0 && fcntl(fd, F_SETFL, fl | O_DIRECT) == 0;
        if (!f->dio)
            rly_debug(RLY_SINK_LOG, "%s: written through the page cache (no direct I/O)", f->path);
    }
    rly_counters_add(&f->c->files, 1);
    return RELAY_OK;
}

relay_err rly_outfile_direct(rly_outfile *f, size_t stage_bytes)
{
    size_t cap = (stage_bytes + RLY_OUTFILE_DIO_ALIGN - 1) & ~(size_t)(RLY_OUTFILE_DIO_ALIGN - 1);
    if (cap == 0 || f->stage)
        return RELAY_OK;
    void *p = NULL;
    if (posix_memalign(&p, RLY_OUTFILE_DIO_ALIGN, cap) != 0)
        return RELAY_ENOMEM;
    f->stage = p;
    f->stage_cap = cap;
    return RELAY_OK;
}

void rly_outfile_fini(rly_outfile *f)
{
    rly_outfile_close(f);
    free(f->stage);
    f->stage = NULL;
    f->stage_cap = 0;
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

/* pwrite_all writes n bytes at off; with O_DIRECT on, EINVAL (the device refuses this direct
   write) returns RELAY_EAGAIN so the caller can turn direct writes off and write it again. */
static relay_err pwrite_all(rly_outfile *f, const uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(f->fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EINVAL && f->dio)
            return RELAY_EAGAIN;
        if (w <= 0) {
            rly_error(RLY_SINK_LOG, "write to %s failed: %s", f->path,
                      w < 0 ? strerror(errno) : "no progress");
            return RELAY_EIO;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return RELAY_OK;
}

/* stage_fallback turns direct writes off for the open file (the device refused one): what the
   stage holds beyond the file's written part goes through the page cache, any zero padding past
   the data is cut, and later writes continue at the file position as buffered writes do. */
static relay_err stage_fallback(rly_outfile *f)
{
    int fl = fcntl(f->fd, F_GETFL);
    if (fl < 0 || fcntl(f->fd, F_SETFL, fl & ~O_DIRECT) != 0) {
        rly_error(RLY_SINK_LOG, "%s: cannot turn direct I/O off: %s", f->path, strerror(errno));
        return RELAY_EIO;
    }
    f->dio = false;
    rly_warn(RLY_SINK_LOG, "%s: the device refused a direct write; writing through the page cache",
             f->path);
    size_t from = f->stage_done & ~(size_t)(RLY_OUTFILE_DIO_ALIGN - 1);
    relay_err e =
        pwrite_all(f, f->stage + from, f->stage_len - from, f->stage_off + (uint64_t)from);
    if (e == RELAY_OK && f->padded && ftruncate(f->fd, (off_t)f->size) != 0) {
        rly_error(RLY_SINK_LOG, "%s: cannot cut the padding: %s", f->path, strerror(errno));
        e = RELAY_EIO;
    }
    if (e == RELAY_OK && lseek(f->fd, (off_t)f->size, SEEK_SET) < 0) {
        rly_error(RLY_SINK_LOG, "%s: cannot seek to its end: %s", f->path, strerror(errno));
        e = RELAY_EIO;
    }
    f->padded = false;
    f->stage_len = f->stage_done = 0;
    f->stage_off = f->size;
    return e;
}

/* stage_write writes the stage's unwritten bytes with one direct write: from the block holding
   the first of them to the end of the block holding the last, zero-padded; a full stage is then
   emptied. Falls back to buffered writes when the device refuses. */
static relay_err stage_write(rly_outfile *f)
{
    const size_t a = RLY_OUTFILE_DIO_ALIGN;
    size_t from = f->stage_done & ~(a - 1), to = (f->stage_len + a - 1) & ~(a - 1);
    memset(f->stage + f->stage_len, 0, to - f->stage_len);
    relay_err e = pwrite_all(f, f->stage + from, to - from, f->stage_off + (uint64_t)from);
    if (e == RELAY_EAGAIN)
        return stage_fallback(f);
    if (e != RELAY_OK)
        return e;
    f->stage_done = f->stage_len;
    f->padded = to > f->stage_len;
    if (f->stage_len == f->stage_cap) {
        f->stage_off += f->stage_cap;
        f->stage_len = f->stage_done = 0;
    }
    return RELAY_OK;
}

/* stage_writev copies iovecs into the stage, writing each full stage and at the end the rest
   (direct writes); consumes *iov / *cnt. Returns early with direct writes off if the device
   refused one, leaving the unconsumed iovecs to the buffered path. */
static relay_err stage_writev(rly_outfile *f, struct iovec **iov, int *cnt)
{
    while (*cnt > 0) {
        struct iovec *v = *iov;
        size_t k = f->stage_cap - f->stage_len;
        if (k > v->iov_len)
            k = v->iov_len;
        memcpy(f->stage + f->stage_len, v->iov_base, k);
        f->stage_len += k;
        f->size += k;
        rly_counters_add(&f->c->bytes, k);
        v->iov_base = (uint8_t *)v->iov_base + k;
        v->iov_len -= k;
        if (v->iov_len == 0) {
            (*iov)++;
            (*cnt)--;
        }
        if (f->stage_len == f->stage_cap) {
            relay_err e = stage_write(f);
            if (e != RELAY_OK || !f->dio)
                return e;
        }
    }
    return f->stage_len > f->stage_done ? stage_write(f) : RELAY_OK;
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
    if (f->dio) {
        relay_err e = stage_writev(f, &iov, &cnt);
        if (e != RELAY_OK || f->dio)
            return e;
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
    relay_err e = RELAY_OK;
    if (f->padded && ftruncate(f->fd, (off_t)f->size) != 0) {
        rly_error(RLY_SINK_LOG, "%s: cannot cut the padding after its last write: %s", f->path,
                  strerror(errno));
        e = RELAY_EIO;
    }
    f->padded = f->dio = false;
    int rc = close(f->fd);
    f->fd = -1;
    if (rc != 0 && errno != EINTR) {
        rly_error(RLY_SINK_LOG, "closing %s failed: %s", f->path, strerror(errno));
        return RELAY_EIO;
    }
    return e;
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
