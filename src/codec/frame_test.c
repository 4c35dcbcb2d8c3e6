/* Tests for length-delimited framing over buffers and files. */
#include "test_util.h"

#include <string.h>

#include "relay/codec.h"
#include "relay/log.h"

static void buffer_frames_roundtrip(void **state)
{
    relay_codec_buf buf = {0};
    static uint8_t big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    const size_t sizes[] = {0, 1, 127, 128, 16383, 16384, sizeof big};
    for (size_t i = 0; i < 7; i++)
        assert_ok(relay_codec_frame_append(&buf, big, sizes[i]));
    /* prefixes: 1 byte below 128, 2 bytes below 16384, 3 bytes above */
    size_t want_total = 0;
    for (size_t i = 0; i < 7; i++)
        want_total += sizes[i] + (sizes[i] < 128 ? 1 : sizes[i] < 16384 ? 2 : 3);
    assert_int_equal(buf.len, want_total);
    size_t off = 0;
    for (size_t i = 0; i < 7; i++) {
        const uint8_t *msg;
        size_t n, used;
        /* every strict prefix of the frame asks for more bytes */
        for (size_t cut = 0; cut < 4 && cut < sizes[i]; cut++)
            assert_err(relay_codec_frame_parse(buf.data + off, cut, sizeof big, &msg, &n, &used),
                       RELAY_EAGAIN);
        assert_ok(
            relay_codec_frame_parse(buf.data + off, buf.len - off, sizeof big, &msg, &n, &used));
        assert_int_equal(n, sizes[i]);
        assert_memory_equal(msg, big, n);
        if (n)
            assert_err(
                relay_codec_frame_parse(buf.data + off, used - 1, sizeof big, &msg, &n, &used),
                RELAY_EAGAIN);
        assert_ok(
            relay_codec_frame_parse(buf.data + off, buf.len - off, sizeof big, &msg, &n, &used));
        off += used;
    }
    assert_int_equal(off, buf.len);
    relay_codec_buf_fini(&buf);
}

static void buffer_frames_reject_bad_prefixes(void **state)
{
    const uint8_t *msg;
    size_t n, used;
    uint8_t too_long[11];
    memset(too_long, 0x80, sizeof too_long);
    assert_err(relay_codec_frame_parse(too_long, sizeof too_long, 1000, &msg, &n, &used),
               RELAY_EFORMAT);
    uint8_t overflow[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    assert_err(relay_codec_frame_parse(overflow, sizeof overflow, 1000, &msg, &n, &used),
               RELAY_EFORMAT);
    uint8_t max64[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_err(relay_codec_frame_parse(max64, sizeof max64, 1000, &msg, &n, &used), RELAY_ETOOBIG);
    uint8_t big[3] = {0xe9, 0x07, 0}; /* 1001 */
    assert_err(relay_codec_frame_parse(big, sizeof big, 1000, &msg, &n, &used), RELAY_ETOOBIG);
    assert_err(relay_codec_frame_parse(big, 1, 1000, &msg, &n, &used), RELAY_EAGAIN);
}

static void file_frames(void **state)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    const char *msgs[] = {"alpha", "", "a longer third message"};
    for (int i = 0; i < 3; i++)
        assert_ok(relay_codec_frame_write(f, msgs[i], strlen(msgs[i])));
    long full = ftell(f);
    rewind(f);
    relay_codec_buf buf = {0};
    for (int i = 0; i < 3; i++) {
        assert_ok(relay_codec_frame_read(f, &buf, 1 << 20));
        assert_int_equal(buf.len, strlen(msgs[i]));
        assert_memory_equal(buf.data, msgs[i], buf.len);
    }
    assert_err(relay_codec_frame_read(f, &buf, 1 << 20), RELAY_EEMPTY);
    /* every truncation of the file inside a frame is reported as such */
    rewind(f);
    static uint8_t all[256];
    size_t total = fread(all, 1, sizeof all, f);
    assert_int_equal(total, (size_t)full);
    for (size_t cut = 1; cut < total; cut++) {
        FILE *g = tmpfile();
        fwrite(all, 1, cut, g);
        rewind(g);
        relay_err e;
        int frames = 0;
        while ((e = relay_codec_frame_read(g, &buf, 1 << 20)) == RELAY_OK)
            frames++;
        bool boundary = cut == 6 || cut == 7;
        assert_err(e, boundary ? RELAY_EEMPTY : RELAY_ETRUNCATED);
        assert_true(frames <= 2);
        fclose(g);
    }
    rewind(f);
    assert_err(relay_codec_frame_read(f, &buf, 3), RELAY_ETOOBIG);
    fclose(f);
    relay_codec_buf_fini(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buffer_frames_roundtrip),
        cmocka_unit_test(buffer_frames_reject_bad_prefixes),
        cmocka_unit_test(file_frames),
    };
    relay_log_set_level(RELAY_LOG_OFF);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
