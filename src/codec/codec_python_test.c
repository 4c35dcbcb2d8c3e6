/* Interop test: Debian's stock python3-protobuf reads what we write and we read what it writes. */
#include "test_util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "relay/codec.h"
#include "relay/log.h"

static void python_reads_and_writes_envelopes(void **state)
{
    if (access("/usr/bin/python3", X_OK) != 0 || system("command -v protoc >/dev/null 2>&1") != 0 ||
        system("/usr/bin/python3 -c 'import google.protobuf' 2>/dev/null") != 0) {
        skip(); /* needs protobuf-compiler and python3-protobuf */
    }
    const char *src = getenv("RELAY_SOURCE_DIR");
    assert_non_null(src);
    relay_codec_options o;
    relay_codec_options_default(&o);
    o.compression = RELAY_COMPRESS_NONE;
    relay_codec *c = NULL;
    unsetenv("RELAY_KEY");
    assert_ok(relay_codec_new(&o, &c));

    relay_step_spec s;
    memset(&s, 0, sizeof s);
    s.obs_dtype = RELAY_F32;
    s.obs_rank = 1;
    s.obs_shape[0] = 4;
    s.act_dtype = RELAY_I32;
    s.n_aux = 2;
    strcpy(s.aux_names[0], "logp");
    strcpy(s.aux_names[1], "value");
    relay_traj *t = relay_traj_new(&s, 5, 10);
    for (int i = 0; i < 16; i++)
        t->actor.bytes[i] = (uint8_t)i;
    strcpy(t->env_label, "py-env");
    t->episode = 7;
    t->policy_version = 3;
    for (int i = 0; i < 5; i++) {
        float obs[4] = {i + 0.0f, i + 0.25f, i + 0.5f, i + 0.75f};
        int32_t a = i % 2;
        float aux[2] = {-(float)i, 2.0f * i};
        assert_ok(relay_traj_push(t, obs, &a, NULL, i + 1.0f, i == 4, false, aux, 100 + i));
    }
    char in_path[] = "/tmp/relay-codec-py-in-XXXXXX", out_path[] = "/tmp/relay-codec-py-out-XXXXXX";
    int fd1 = mkstemp(in_path), fd2 = mkstemp(out_path);
    assert_true(fd1 >= 0 && fd2 >= 0);
    close(fd2);
    FILE *f = fdopen(fd1, "wb");
    relay_codec_buf buf = {0};
    assert_ok(relay_codec_encode_traj(c, t, &buf));
    assert_ok(relay_codec_frame_write(f, buf.data, buf.len));
    relay_msg m;
    memset(&m, 0, sizeof m);
    m.kind = RELAY_MSG_FLAG_LAST_ACTION;
    m.flag.reward = 2.5f;
    strcpy(m.flag.env_label, "lbl");
    assert_ok(relay_codec_encode_msg(c, &m, &buf));
    assert_ok(relay_codec_frame_write(f, buf.data, buf.len));
    fclose(f);

    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 %s/src/codec/stock_protobuf_check.py %s/proto/relay.proto %s %s",
             src, src, in_path, out_path);
    assert_int_equal(system(cmd), 0);

    f = fopen(out_path, "rb");
    assert_non_null(f);
    assert_ok(relay_codec_frame_read(f, &buf, 1 << 20));
    relay_traj *p = NULL;
    assert_ok(relay_codec_decode_traj(c, buf.data, buf.len, &p));
    assert_int_equal(p->len, 3);
    assert_int_equal(p->spec.obs_dtype, RELAY_F64);
    assert_int_equal(p->spec.act_dtype, RELAY_I64);
    assert_string_equal(p->spec.aux_names[0], "value");
    assert_true(((double *)p->obs)[5] == 5.5);
    assert_int_equal(((int64_t *)p->act)[0], 3);
    assert_true(p->reward[2] == 0.75f);
    assert_int_equal(p->terminated[2], 1);
    assert_true(p->aux[1] == 8.0f);
    assert_int_equal(p->ts[2], 7);
    assert_int_equal(p->env_id, 4);
    assert_string_equal(p->env_label, "from-python");
    assert_int_equal(p->actor.bytes[0], 16);
    relay_traj_free(p);
    assert_ok(relay_codec_frame_read(f, &buf, 1 << 20));
    assert_ok(relay_codec_decode_msg(c, buf.data, buf.len, &m));
    assert_int_equal(m.kind, RELAY_MSG_SHUTDOWN);
    assert_string_equal(m.text, "py");
    relay_msg_fini(&m);
    assert_err(relay_codec_frame_read(f, &buf, 1 << 20), RELAY_EEMPTY);
    fclose(f);
    unlink(in_path);
    unlink(out_path);
    relay_codec_buf_fini(&buf);
    relay_traj_free(t);
    relay_codec_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(python_reads_and_writes_envelopes),
    };
    relay_log_set_level(RELAY_LOG_OFF);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
