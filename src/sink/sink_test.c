/* Unit tests for the sinks: number formatting, memory sink, errors, binary stream, inspect. */
#include "test_util.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "relay/codec.h"
#include "sink/buffer.h"
#include "sink/sink_internal.h"
#include "sink/sink_test_util.h"

/* ---- number formatting ---- */

static void check_f32(float v)
{
    char buf[64], ref[64];
    size_t n = rly_fmt_f32(buf, v);
    buf[n] = '\0';
    float back = strtof(buf, NULL);
    if (memcmp(&back, &v, 4) != 0)
        fail_msg("'%s' parses to %.9g, wrote %.9g", buf, back, v);
    int rn = snprintf(ref, sizeof ref, "%.9g", v);
    if (n > (size_t)rn + 1) /* never much longer than %.9g ("e+38" vs "e+038" style aside) */
        fail_msg("'%s' is longer than '%s'", buf, ref);
}

static void f32_format_round_trips(void **state)
{
    float fixed[] = {0.0f,   -0.0f,           1.0f,          -1.0f,       0.1f,        0.5f,
                     1e-45f, 1.17549435e-38f, 3.4028235e38f, 16777216.0f, 16777217.0f, 123.456f,
                     1e-5f,  1e-6f,           99999999.0f,   1e9f,        2.5e-10f,    7.0f};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_f32(fixed[i]);
    uint64_t s = 42;
    int n = test_sanitized() ? 100000 : 2000000;
    for (int i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)tu_rand(&s);
        float f;
        memcpy(&f, &bits, 4);
        if (isfinite(f))
            check_f32(f);
    }
    char buf[64];
    buf[rly_fmt_f32(buf, 0.1f)] = '\0';
    assert_string_equal(buf, "0.1"); /* near-shortest, not 0.100000001 */
    buf[rly_fmt_f32(buf, 1.0f)] = '\0';
    assert_string_equal(buf, "1");
    buf[rly_fmt_f32(buf, -2.5e-10f)] = '\0';
    assert_string_equal(buf, "-2.5e-10");
    buf[rly_fmt_f32(buf, NAN)] = '\0';
    assert_string_equal(buf, "nan");
    buf[rly_fmt_f32(buf, -INFINITY)] = '\0';
    assert_string_equal(buf, "-inf");
    buf[rly_fmt_i64(buf, INT64_MIN)] = '\0';
    assert_string_equal(buf, "-9223372036854775808");
    buf[rly_fmt_u64(buf, UINT64_MAX)] = '\0';
    assert_string_equal(buf, "18446744073709551615");
}

/* ---- memory sink ---- */

static void memory_sink_keeps_last_n_per_actor(void **state)
{
    relay_step_spec spec = tu_spec(RELAY_F32, false, 1);
    relay_sink_config cfg = {.kind = RELAY_SINK_MEMORY, .memory_per_actor = 3};
    relay_sink *s;
    assert_ok(relay_sink_open(&cfg, &s));
    assert_string_equal(relay_sink_name(s), "memory");
    /* Seeds 0..9: actor = seed % 3, so actors get 4, 3 and 3 trajectories. */
    for (uint64_t i = 0; i < 10; i++) {
        relay_traj *t = tu_make(&spec, 2, i);
        t->episode = (int64_t)i;
        assert_ok(relay_sink_write_batch(s, &t, 1));
        relay_traj_free(t); /* the sink keeps its own copy */
    }
    assert_int_equal(relay_sink_memory_count(s), 9);
    relay_sink_stats st;
    relay_sink_stats_get(s, &st);
    assert_int_equal(st.trajs, 10);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.rows, 20);

    relay_traj *out[16];
    size_t n;
    relay_id a0 = relay_id_from_seed(0, 0);
    assert_ok(relay_sink_memory_drain_actor(s, a0, out, 16, &n));
    assert_int_equal(n, 3);
    /* Actor 0 had episodes 0, 3, 6, 9: the oldest (0) was dropped, the rest come oldest first. */
    assert_int_equal(out[0]->episode, 3);
    assert_int_equal(out[1]->episode, 6);
    assert_int_equal(out[2]->episode, 9);
    for (size_t i = 0; i < n; i++) {
        assert_true(relay_id_eq(out[i]->actor, a0));
        assert_int_equal(out[i]->len, 2);
        relay_traj_free(out[i]);
    }
    assert_ok(relay_sink_memory_drain(s, out, 4, &n));
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        relay_traj_free(out[i]);
    assert_int_equal(relay_sink_memory_count(s), 2);
    /* Leftovers are freed by close. */
    assert_ok(relay_sink_close(s));

    relay_sink_config csv = {.kind = RELAY_SINK_CSV, .path = "/dev/null"};
    assert_ok(relay_sink_open(&csv, &s));
    assert_err(relay_sink_memory_drain(s, out, 4, &n), RELAY_EINVAL);
    assert_int_equal(relay_sink_memory_count(s), 0);
    assert_ok(relay_sink_close(s));
}

typedef struct mt_ctx {
    relay_sink *s;
    int n;
    _Atomic int done;
} mt_ctx;

static void *mt_writer(void *arg)
{
    mt_ctx *c = arg;
    relay_step_spec spec = tu_spec(RELAY_F32, false, 0);
    relay_traj *ts[8];
    for (int i = 0; i < 8; i++)
        ts[i] = tu_make(&spec, 3, (uint64_t)i);
    for (int i = 0; i < c->n; i += 8)
        if (relay_sink_write_batch(c->s, ts, 8) != RELAY_OK)
            break;
    for (int i = 0; i < 8; i++)
        relay_traj_free(ts[i]);
    atomic_store(&c->done, 1);
    return NULL;
}

static void memory_sink_drains_while_written(void **state)
{
    relay_sink_config cfg = {.kind = RELAY_SINK_MEMORY, .memory_per_actor = 50};
    mt_ctx c = {.n = test_sanitized() ? 2000 : 20000};
    assert_ok(relay_sink_open(&cfg, &c.s));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, mt_writer, &c), 0);
    size_t drained = 0;
    relay_traj *out[32];
    for (;;) {
        int done = atomic_load(&c.done);
        size_t n;
        assert_ok(relay_sink_memory_drain(c.s, out, 32, &n));
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(out[i]->len, 3);
            relay_traj_free(out[i]);
        }
        drained += n;
        if (done && n == 0)
            break;
    }
    pthread_join(th, NULL);
    relay_sink_stats st;
    relay_sink_stats_get(c.s, &st);
    assert_int_equal(st.trajs, (uint64_t)c.n);
    assert_int_equal(drained + st.dropped, (uint64_t)c.n);
    assert_ok(relay_sink_close(c.s));
}

/* ---- failures ---- */

static void failing_sinks_report_and_keep_working(void **state)
{
    relay_step_spec spec = tu_spec(RELAY_F32, false, 0);
    relay_traj *t = tu_make(&spec, 4, 1);
    relay_sink *s = NULL;
    /* A directory under a regular file cannot be created. */
    relay_sink_config bad = {.kind = RELAY_SINK_ARROW, .dir = "/etc/passwd/relay"};
    assert_err(relay_sink_open(&bad, &s), RELAY_EIO);
    assert_null(s);
    bad.kind = RELAY_SINK_CSV;
    assert_err(relay_sink_open(&bad, &s), RELAY_EIO);
    relay_sink_config unknown = {.kind = (relay_sink_kind)77};
    assert_err(relay_sink_open(&unknown, &s), RELAY_EINVAL);

    /* Disk full: /dev/full fails every write with ENOSPC. */
    relay_sink_kind kinds[] = {RELAY_SINK_ARROW, RELAY_SINK_CSV, RELAY_SINK_BINARY};
    for (size_t k = 0; k < 3; k++) {
        relay_sink_config full = {
            .kind = kinds[k], .path = "/dev/full", .batch_rows = 2, .buffer_bytes = 64};
        assert_ok(relay_sink_open(&full, &s));
        relay_err e = relay_sink_write_batch(s, &t, 1);
        if (e == RELAY_OK)
            e = relay_sink_flush(s);
        assert_err(e, RELAY_EIO);
        assert_err(relay_sink_error(s), RELAY_EIO);
        assert_err(relay_sink_write_batch(s, &t, 1), RELAY_EIO); /* sticky */
        relay_sink_stats st;
        relay_sink_stats_get(s, &st);
        assert_true(st.errors >= 2);
        assert_err(relay_sink_close(s), RELAY_EIO);
    }

    /* An existing file is not overwritten unless asked. */
    char dir[256];
    assert_int_equal(tu_tmpdir(dir, sizeof dir), 0);
    relay_sink_config c1 = {.kind = RELAY_SINK_CSV, .dir = dir, .run_name = "same"};
    assert_ok(relay_sink_open(&c1, &s));
    assert_ok(relay_sink_close(s));
    assert_err(relay_sink_open(&c1, &s), RELAY_EEXIST);
    c1.overwrite = true;
    assert_ok(relay_sink_open(&c1, &s));
    assert_ok(relay_sink_close(s));
    relay_sink_config slash = {.kind = RELAY_SINK_CSV, .dir = dir, .run_name = "a/b"};
    assert_err(relay_sink_open(&slash, &s), RELAY_EINVAL);

    /* A different spec is refused per trajectory; the sink stays healthy. */
    relay_sink_config ok = {.kind = RELAY_SINK_CSV, .dir = dir, .run_name = "shape"};
    assert_ok(relay_sink_open(&ok, &s));
    relay_step_spec other = tu_spec(RELAY_I32, true, 1);
    relay_traj *u = tu_make(&other, 2, 2);
    relay_traj *mix[3] = {t, u, t};
    assert_err(relay_sink_write_batch(s, mix, 3), RELAY_ESHAPE);
    assert_ok(relay_sink_error(s));
    relay_sink_stats st;
    relay_sink_stats_get(s, &st);
    assert_int_equal(st.trajs, 2);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.rows, 8);
    assert_ok(relay_sink_write_batch(s, &t, 1));
    assert_err(relay_sink_write_batch(s, NULL, 1), RELAY_EINVAL);
    assert_ok(relay_sink_close(s));

    /* An invalid first spec is refused; a valid trajectory afterwards still fixes the schema. */
    relay_sink_config ar = {.kind = RELAY_SINK_ARROW, .dir = dir, .run_name = "badspec"};
    assert_ok(relay_sink_open(&ar, &s));
    relay_traj *w = tu_make(&spec, 2, 3);
    w->spec.act_dtype = (relay_dtype)99;
    assert_err(relay_sink_write_batch(s, &w, 1), RELAY_EDTYPE);
    w->spec.act_dtype = RELAY_F32;
    assert_ok(relay_sink_write_batch(s, &w, 1));
    assert_ok(relay_sink_close(s));
    relay_traj_free(w);
    relay_traj_free(u);
    relay_traj_free(t);
    tu_rmtree(dir);
}

/* ---- binary stream ---- */

static void binary_sink_frames_decode_back(void **state)
{
    char dir[256];
    assert_int_equal(tu_tmpdir(dir, sizeof dir), 0);
    relay_step_spec spec = tu_spec(RELAY_I32, true, 2);
    enum { NT = 6 };
    relay_traj *t[NT];
    for (int i = 0; i < NT; i++)
        t[i] = tu_make(&spec, (uint32_t)(i * 3), (uint64_t)i);
    relay_sink_config cfg = {.kind = RELAY_SINK_BINARY,
                             .dir = dir,
                             .run_name = "b",
                             .buffer_bytes = 512,
                             .binary_compression = RELAY_COMPRESS_LZ4};
    relay_sink *s;
    assert_ok(relay_sink_open(&cfg, &s));
    assert_ok(relay_sink_write_batch(s, t, NT));
    char path[512];
    assert_ok(relay_sink_path(s, path, sizeof path));
    assert_ok(relay_sink_close(s));

    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    relay_codec *c;
    assert_ok(relay_codec_new(NULL, &c));
    relay_codec_buf buf = {0};
    for (int i = 0; i < NT; i++) {
        assert_ok(relay_codec_frame_read(f, &buf, 1 << 26));
        relay_traj *u;
        assert_ok(relay_codec_decode_traj(c, buf.data, buf.len, &u));
        assert_true(relay_id_eq(u->actor, t[i]->actor));
        assert_int_equal(u->len, t[i]->len);
        assert_int_equal(u->episode, t[i]->episode);
        assert_string_equal(u->env_label, t[i]->env_label);
        assert_true(relay_step_spec_eq(&u->spec, &t[i]->spec));
        if (u->len) {
            assert_memory_equal(u->obs, t[i]->obs, (size_t)u->len * 16);
            assert_memory_equal(u->reward, t[i]->reward, (size_t)u->len * 4);
            assert_memory_equal(u->aux, t[i]->aux, (size_t)u->len * 8);
        }
        relay_traj_free(u);
    }
    assert_err(relay_codec_frame_read(f, &buf, 1 << 26), RELAY_EEMPTY);
    fclose(f);
    relay_codec_buf_fini(&buf);
    relay_codec_free(c);
    for (int i = 0; i < NT; i++)
        relay_traj_free(t[i]);
    tu_rmtree(dir);
}

/* ---- custom vtable ---- */

typedef struct counting {
    size_t trajs;
    bool fail;
} counting;

static counting g_counting;

static relay_err cnt_open(const relay_sink_config *cfg, void **st)
{
    *st = &g_counting;
    return RELAY_OK;
}
static relay_err cnt_write(void *st, relay_traj *const *t, size_t n)
{
    counting *c = st;
    if (c->fail)
        return RELAY_EIO;
    c->trajs += n;
    return RELAY_OK;
}
static relay_err cnt_close(void *st)
{
    return RELAY_OK;
}

static void custom_sink_through_the_handle(void **state)
{
    static const relay_sink_vtable vt = {
        .name = "counting", .open = cnt_open, .write_batch = cnt_write, .close = cnt_close};
    relay_sink_config cfg = {0};
    relay_sink *s;
    assert_ok(relay_sink_open_custom(&vt, &cfg, &s));
    assert_string_equal(relay_sink_name(s), "counting");
    relay_step_spec spec = tu_spec(RELAY_F32, false, 0);
    relay_traj *t = tu_make(&spec, 2, 0);
    relay_traj *two[2] = {t, t};
    assert_ok(relay_sink_write_batch(s, two, 2));
    assert_ok(relay_sink_flush(s)); /* no flush function: fine */
    relay_sink_stats st;
    relay_sink_stats_get(s, &st);
    assert_int_equal(st.trajs, 2);
    assert_int_equal(g_counting.trajs, 2);
    char path[64];
    assert_err(relay_sink_path(s, path, sizeof path), RELAY_ENOTFOUND);
    g_counting.fail = true;
    assert_err(relay_sink_write_batch(s, &t, 1), RELAY_EIO);
    g_counting.fail = false;
    assert_err(relay_sink_write_batch(s, &t, 1), RELAY_EIO); /* sticky after EIO */
    assert_int_equal(g_counting.trajs, 2);
    assert_err(relay_sink_close(s), RELAY_EIO);
    relay_traj_free(t);
    relay_sink_vtable broken = vt;
    broken.write_batch = NULL;
    assert_err(relay_sink_open_custom(&broken, &cfg, &s), RELAY_EINVAL);
}

/* ---- inspect ---- */

static char *inspect_text(const char *path, uint32_t head, relay_err *err)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    assert_non_null(mem);
    *err = relay_inspect_file(path, mem, head);
    fclose(mem);
    return text;
}

static void expect_line(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("missing '%s' in:\n%s", line, text);
}

static void inspect_reads_every_format(void **state)
{
    char dir[256];
    assert_int_equal(tu_tmpdir(dir, sizeof dir), 0);
    relay_step_spec spec = tu_spec(RELAY_I32, true, 2);
    /* Two episodes of actor A (the second split in two chunks), one of actor B. */
    relay_traj *t[4];
    uint32_t lens[4] = {10, 4, 6, 5};
    for (int i = 0; i < 4; i++) {
        t[i] = tu_make(&spec, lens[i], 3);
        for (uint32_t k = 0; k < lens[i]; k++)
            t[i]->reward[k] = 1.0f;
    }
    t[1]->episode = t[2]->episode = t[0]->episode + 1;
    t[2]->start_ns += 5000; /* a second chunk of the same episode */
    t[3]->actor = relay_id_from_seed(9, 9);
    t[3]->reward[0] = -3.0f; /* return 1 */
    /* actor B's episode is left unfinished (as at shutdown): no end flag on its last row */
    t[3]->terminated[4] = t[3]->truncated[4] = 0;
    const char *ext[3] = {"arrow", "csv", "rlyb"};
    relay_sink_kind kinds[3] = {RELAY_SINK_ARROW, RELAY_SINK_CSV, RELAY_SINK_BINARY};
    for (int k = 0; k < 3; k++) {
        relay_sink_config cfg = {.kind = kinds[k], .dir = dir, .run_name = "i", .batch_rows = 4};
        relay_sink *s;
        assert_ok(relay_sink_open(&cfg, &s));
        assert_ok(relay_sink_write_batch(s, t, 4));
        assert_ok(relay_sink_close(s));
        /* Arrow: the steps file (joined with its trajectory table) and the table alone. */
        for (int part = 0; part < (k == 0 ? 2 : 1); part++) {
            char path[512];
            snprintf(path, sizeof path, "%s/i.%s%s", dir, part ? "traj." : "", ext[k]);
            relay_err e;
            char *text = inspect_text(path, 3, &e);
            assert_ok(e);
            expect_line(text, k == 0 ? "format: arrow" : k == 1 ? "format: csv" : "format: binary");
            expect_line(text, "rows: 25\n");
            expect_line(text, "trajectories: 4\n");
            if (k == 0 && part == 1) {
                /* the trajectory table alone has no end flags: every episode counts */
                expect_line(text, "episodes: 3\n");
                /* Returns 10, 10 (4 + 6) and 1; lengths 10, 10, 5. */
                expect_line(text, "episode return: count 3 mean 7 min 1 max 10\n");
                expect_line(text, "episode length: count 3 mean 8.33333 min 5 max 10\n");
            } else {
                /* actor B's unfinished episode is reported apart, outside the statistics */
                expect_line(text, "episodes: 2 finished, 1 unfinished");
                expect_line(text, "episode return: count 2 mean 10 min 10 max 10\n");
                expect_line(text, "episode length: count 2 mean 10 min 10 max 10\n");
            }
            expect_line(text, "first rows:");
            if (k == 0 && part == 0) {
                expect_line(text, "table: steps\n");
                expect_line(text, "obs: fixed_size_list<float32>[4]");
                expect_line(text, "mask: fixed_size_list<bool>[3]");
                expect_line(text, "traj: int32");
            } else if (k == 0) {
                expect_line(text, "table: trajectories");
                expect_line(text, "actor_id: fixed_size_binary[16]");
                expect_line(text, "return: float64");
            }
            free(text);
        }
    }
    /* Anything else is RELAY_EFORMAT. */
    char junk[512];
    snprintf(junk, sizeof junk, "%s/junk.txt", dir);
    FILE *f = fopen(junk, "w");
    fputs("hello, world\n", f);
    fclose(f);
    relay_err e;
    free(inspect_text(junk, 3, &e));
    assert_err(e, RELAY_EFORMAT);
    /* A truncated Arrow file is RELAY_EFORMAT, not a crash. */
    char arrow[512], cut[512], cmd[1200];
    snprintf(arrow, sizeof arrow, "%s/i.arrow", dir);
    snprintf(cut, sizeof cut, "%s/cut.arrow", dir);
    snprintf(cmd, sizeof cmd, "head -c 700 '%s' > '%s'", arrow, cut);
    assert_int_equal(system(cmd), 0);
    free(inspect_text(cut, 3, &e));
    assert_err(e, RELAY_EFORMAT);
    /* A complete steps file without its trajectory table cannot be summarised. */
    snprintf(cut, sizeof cut, "%s/alone.arrow", dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", arrow, cut);
    assert_int_equal(system(cmd), 0);
    free(inspect_text(cut, 3, &e));
    assert_err(e, RELAY_EFORMAT);
    free(inspect_text("/nonexistent/file", 3, &e));
    assert_err(e, RELAY_EIO);
    for (int i = 0; i < 4; i++)
        relay_traj_free(t[i]);
    tu_rmtree(dir);
}

/* Corrupting any single byte of an Arrow steps file or trajectory table never crashes inspect. */
static void inspect_survives_corruption(void **state)
{
    char dir[256];
    assert_int_equal(tu_tmpdir(dir, sizeof dir), 0);
    relay_step_spec spec = tu_spec(RELAY_F32, true, 1);
    relay_traj *t = tu_make(&spec, 9, 1);
    char path[512], bad[512], tpath[512], tbad[512];
    snprintf(path, sizeof path, "%s/c.arrow", dir);
    snprintf(bad, sizeof bad, "%s/bad.arrow", dir);
    snprintf(tpath, sizeof tpath, "%s/c.traj.arrow", dir);
    snprintf(tbad, sizeof tbad, "%s/bad.traj.arrow", dir);
    relay_sink_config cfg = {.kind = RELAY_SINK_ARROW, .path = path, .batch_rows = 4};
    relay_sink *s;
    assert_ok(relay_sink_open(&cfg, &s));
    assert_ok(relay_sink_write_batch(s, &t, 1));
    assert_ok(relay_sink_close(s));
    /* Corrupt one byte of the steps file or of its trajectory table, then inspect the pair. */
    const char *src[2] = {path, tpath}, *dst[2] = {bad, tbad};
    char *orig[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(src[k], "rb");
        assert_non_null(f);
        orig[k] = tu_read_all(f, &len[k]);
        assert_non_null(orig[k]);
        fclose(f);
        f = fopen(dst[k], "wb");
        fwrite(orig[k], 1, len[k], f);
        fclose(f);
    }
    relay_err e;
    free(inspect_text(bad, 2, &e));
    assert_ok(e); /* the uncorrupted copies read */
    uint64_t seed = 5;
    int n = test_sanitized() ? 300 : 3000;
    for (int i = 0; i < n; i++) {
        int k = i % 2;
        size_t pos = (size_t)(tu_rand(&seed) % len[k]);
        char saved = orig[k][pos];
        orig[k][pos] = (char)tu_rand(&seed);
        FILE *f = fopen(dst[k], "wb");
        fwrite(orig[k], 1, len[k], f);
        fclose(f);
        free(inspect_text(bad, 2, &e));
        assert_true(e == RELAY_OK || e == RELAY_EFORMAT);
        if (k == 1) {
            free(inspect_text(tbad, 2, &e));
            assert_true(e == RELAY_OK || e == RELAY_EFORMAT);
        }
        orig[k][pos] = saved;
        f = fopen(dst[k], "wb");
        fwrite(orig[k], 1, len[k], f);
        fclose(f);
    }
    free(orig[0]);
    free(orig[1]);
    relay_traj_free(t);
    tu_rmtree(dir);
}

/* ---- output files ---- */

/* A streaming output file (writeback every chunk, older chunks dropped from the page cache)
 * holds exactly the bytes written, across many chunks and writes that straddle chunk ends; on a
 * device that has no writeback (/dev/null) streaming turns itself off and writes still succeed. */
static void streaming_outfile_keeps_every_byte(void **state)
{
    (void)state;
    char dir[256];
    assert_int_equal(tu_tmpdir(dir, sizeof dir), 0);
    rly_sink_counters c;
    memset(&c, 0, sizeof c);
    relay_sink_config cfg = {.kind = RELAY_SINK_ARROW, .dir = dir, .run_name = "stream"};
    rly_outfile f;
    assert_ok(rly_outfile_init(&f, &cfg, ".bin", &c));
    rly_outfile_stream(&f, 16384);
    assert_ok(rly_outfile_open(&f));
    enum { TOTAL = 1 << 20 };
    uint8_t *want = malloc(TOTAL);
    assert_non_null(want);
    uint64_t seed = 7;
    for (size_t i = 0; i < TOTAL; i++)
        want[i] = (uint8_t)tu_rand(&seed);
    size_t off = 0, k = 0;
    while (off < TOTAL) {
        size_t n = 1000 + (k++ * 7919) % 40000; /* 1 KB .. 41 KB: chunk ends fall mid-write */
        if (n > TOTAL - off)
            n = TOTAL - off;
        if (k % 3 == 0) {
            size_t h = n / 2; /* a two-part writev now and then */
            struct iovec iov[2] = {{want + off, h}, {want + off + h, n - h}};
            assert_ok(rly_outfile_writev(&f, iov, 2));
        } else {
            assert_ok(rly_outfile_write(&f, want + off, n));
        }
        off += n;
    }
    assert_true(f.stream_chunk > 0);              /* a regular file keeps streaming */
    assert_int_equal(f.wb_n, RLY_OUTFILE_WB_LAG); /* older chunks were dropped */
    assert_true(f.wb_mark[0] > 0);
    char path[sizeof f.path];
    snprintf(path, sizeof path, "%s", f.path);
    assert_ok(rly_outfile_close(&f));
    assert_int_equal(c.bytes, TOTAL);
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    size_t len = 0;
    char *got = tu_read_all(fp, &len);
    fclose(fp);
    assert_int_equal(len, TOTAL);
    assert_memory_equal(got, want, TOTAL);
    free(got);

    relay_sink_config dev = {.kind = RELAY_SINK_ARROW, .path = "/dev/null"};
    assert_ok(rly_outfile_init(&f, &dev, ".bin", &c));
    rly_outfile_stream(&f, 4096);
    assert_ok(rly_outfile_open(&f));
    for (int i = 0; i < 4; i++)
        assert_ok(rly_outfile_write(&f, want, 10000));
    assert_int_equal(f.stream_chunk, 0);
    assert_ok(rly_outfile_close(&f));
    free(want);
    tu_rmtree(dir);
}

/* ---- router trajectory buffers ---- */

static void count_consumed(void *ctx, relay_traj *t)
{
    atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
    relay_traj_free(t);
}

#define MANY_BUFS 600
typedef struct {
    rly_tbuf **bufs;
    uint32_t id;
    int n;
} buf_pusher;

static void *push_many(void *arg)
{
    buf_pusher *p = arg;
    relay_step_spec spec = tu_spec(RELAY_F32, false, 0);
    uint64_t x = 0x9e3779b97f4a7c15ull * (p->id + 1);
    for (int i = 0; i < p->n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        rly_traj_out *o = rly_tbuf_out(p->bufs[x % MANY_BUFS]);
        o->push(o, tu_make(&spec, 2, (uint64_t)i));
    }
    return NULL;
}

/* Many buffers, few of them busy at a time (thousands of routers): the worker finds every
   trajectory through the ready stack (none is stranded in a buffer it no longer visits), and
   retiring every buffer, busy or not, returns once each is drained. */
static void many_buffers_drain_and_retire(void **state)
{
    _Atomic uint64_t consumed = 0;
    rly_sinkworker *w;
    assert_ok(rly_sinkworker_new(NULL, 0, 16, count_consumed, (void *)&consumed, &w));
    rly_tbuf **bufs = calloc(MANY_BUFS, sizeof *bufs);
    for (int i = 0; i < MANY_BUFS; i++)
        assert_ok(rly_tbuf_new(w, 4, RLY_BP_BLOCK, &bufs[i]));
    int per = test_sanitized() ? 2000 : 20000;
    buf_pusher ps[3];
    pthread_t th[3];
    for (uint32_t k = 0; k < 3; k++) {
        ps[k] = (buf_pusher){.bufs = bufs, .id = k, .n = per};
        assert_int_equal(pthread_create(&th[k], NULL, push_many, &ps[k]), 0);
    }
    for (int k = 0; k < 3; k++)
        pthread_join(th[k], NULL);
    for (int i = 0; i < MANY_BUFS; i++)
        rly_tbuf_retire(bufs[i]);
    assert_int_equal(atomic_load(&consumed), (uint64_t)(3 * per));
    rly_tbuf_stats st;
    rly_sinkworker_totals(w, &st);
    assert_int_equal(st.accepted, (uint64_t)(3 * per));
    assert_int_equal(st.drained, (uint64_t)(3 * per));
    assert_int_equal(st.dropped, 0);
    rly_sinkworker_free(w);
    free(bufs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(f32_format_round_trips),
        cmocka_unit_test(memory_sink_keeps_last_n_per_actor),
        cmocka_unit_test(memory_sink_drains_while_written),
        cmocka_unit_test(failing_sinks_report_and_keep_working),
        cmocka_unit_test(binary_sink_frames_decode_back),
        cmocka_unit_test(custom_sink_through_the_handle),
        cmocka_unit_test(inspect_reads_every_format),
        cmocka_unit_test(inspect_survives_corruption),
        cmocka_unit_test(streaming_outfile_keeps_every_byte),
        cmocka_unit_test(many_buffers_drain_and_retire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
