/*
 * Binary stream sink: every trajectory is encoded by the codec as a Message{trajectory} envelope
 * and appended as a length-delimited frame (varint byte count, then the envelope), the framing of
 * protobuf's writeDelimitedTo. Frames collect in a large buffer written with one write() call.
 * The file has no header of its own: the envelope's "RLYE" magic identifies it.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "relay/codec.h"
#include "sink/sink_internal.h"

typedef struct binsink {
    rly_outfile out; /* first: relay_sink_path reads it */
    rly_sink_counters c;
    relay_codec *codec;
    relay_codec_buf msg, buf;
    size_t limit;
} binsink;

static relay_err drain(binsink *s)
{
    if (s->buf.len == 0)
        return RELAY_OK;
    relay_err e = RELAY_OK;
    if (s->out.fd < 0)
        e = rly_outfile_open(&s->out);
    if (e == RELAY_OK)
        e = rly_outfile_write(&s->out, s->buf.data, s->buf.len);
    s->buf.len = 0;
    if (e == RELAY_OK && rly_outfile_should_rotate(&s->out))
        e = rly_outfile_close(&s->out);
    return e;
}

static relay_err bin_write(void *state, relay_traj *const *trajs, size_t n)
{
    binsink *s = state;
    relay_err ret = RELAY_OK;
    for (size_t i = 0; i < n; i++) {
        relay_err e = relay_codec_encode_traj(s->codec, trajs[i], &s->msg);
        if (e == RELAY_ENOMEM)
            return e;
        if (e != RELAY_OK) {
            rly_warn(RLY_SINK_LOG, "binary sink: cannot encode trajectory %zu: %s", i,
                     relay_strerror(e));
            rly_counters_add(&s->c.rejected, 1);
            ret = e;
            continue;
        }
        e = relay_codec_frame_append(&s->buf, s->msg.data, s->msg.len);
        if (e == RELAY_OK && s->buf.len >= s->limit)
            e = drain(s);
        if (e != RELAY_OK)
            return e;
        rly_counters_add(&s->c.trajs, 1);
        rly_counters_add(&s->c.rows, trajs[i]->len);
    }
    return ret;
}

static relay_err bin_flush(void *state)
{
    return drain(state);
}

static void free_state(binsink *s)
{
    relay_codec_free(s->codec);
    relay_codec_buf_fini(&s->msg);
    relay_codec_buf_fini(&s->buf);
    free(s);
}

static relay_err bin_close(void *state)
{
    binsink *s = state;
    relay_err e = drain(s);
    relay_err c = rly_outfile_close(&s->out);
    free_state(s);
    return e != RELAY_OK ? e : c;
}

static relay_err bin_open(const relay_sink_config *cfg, void **state)
{
    if (cfg->binary_compression < RELAY_COMPRESS_NONE ||
        cfg->binary_compression > RELAY_COMPRESS_ZSTD) {
        rly_error(RLY_SINK_LOG, "binary sink: unknown compression %d", cfg->binary_compression);
        return RELAY_ECONFIG;
    }
    binsink *s = calloc(1, sizeof *s);
    if (!s)
        return RELAY_ENOMEM;
    s->limit = cfg->buffer_bytes ? cfg->buffer_bytes : (size_t)1 << 20;
    relay_codec_options o;
    relay_codec_options_default(&o);
    o.compression = (relay_compression)cfg->binary_compression;
    relay_err e = relay_codec_new(&o, &s->codec);
    if (e == RELAY_OK)
        e = relay_codec_buf_reserve(&s->buf, s->limit + (64 << 10));
    if (e == RELAY_OK)
        e = rly_outfile_init(&s->out, cfg, ".rlyb", &s->c);
    if (e == RELAY_OK)
        e = rly_outfile_open(&s->out);
    if (e != RELAY_OK) {
        free_state(s);
        return e;
    }
    *state = s;
    return RELAY_OK;
}

static void bin_stats(void *state, relay_sink_stats *out)
{
    rly_counters_read(&((binsink *)state)->c, out);
}

const relay_sink_vtable rly_binary_sink_vt = {
    .name = "binary",
    .open = bin_open,
    .write_batch = bin_write,
    .flush = bin_flush,
    .close = bin_close,
    .stats = bin_stats,
};
