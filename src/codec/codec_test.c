/* Tests for the envelope and message codec: round trips, tampering, limits, bombs, keys. */
#include "test_util.h"

#include <lz4.h>
#include <math.h>
#include <string.h>
#include <zstd.h>

#include "codec/codec_internal.h"
#include "relay.pb-c.h"
#include "relay/codec.h"
#include "relay/log.h"

static const char *const hex_key =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

uint32_t rly_crc32c_soft(uint32_t crc, const void *data, size_t n);

static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static relay_codec *make_codec(relay_compression comp, bool encrypt)
{
    relay_codec_options o;
    relay_codec_options_default(&o);
    o.compression = comp;
    o.zstd_level = 3;
    o.encrypt = encrypt;
    if (encrypt) {
        assert_ok(relay_codec_key_from_hex(hex_key, o.key));
        o.has_key = true;
    }
    relay_codec *c = NULL;
    assert_ok(relay_codec_new(&o, &c));
    return c;
}

static relay_step_spec spec_of(relay_dtype obs, relay_dtype act, relay_dtype mask)
{
    relay_step_spec s;
    memset(&s, 0, sizeof s);
    s.obs_dtype = obs;
    s.obs_rank = 2;
    s.obs_shape[0] = 2;
    s.obs_shape[1] = 3;
    s.act_dtype = act;
    s.act_rank = 1;
    s.act_shape[0] = 2;
    s.mask_dtype = mask;
    if (mask != RELAY_DTYPE_INVALID) {
        s.mask_rank = 1;
        s.mask_shape[0] = 4;
    }
    s.n_aux = 2;
    strcpy(s.aux_names[0], "logp");
    strcpy(s.aux_names[1], "value");
    return s;
}

/* make_traj fills a trajectory with pseudo-random column bytes and identity fields. */
static relay_traj *make_traj(const relay_step_spec *s, uint32_t n)
{
    relay_traj *t = relay_traj_new(s, n, n + 10);
    assert_non_null(t);
    t->actor = relay_id_from_seed(5, n);
    t->env_id = 7;
    strcpy(t->env_label, "cartpole/7");
    t->episode = 1234;
    t->policy_version = -3;
    size_t ob, ab, mb;
    relay_step_spec_bytes(s, &ob, &ab, &mb);
    uint8_t obs[256], act[256], mask[256];
    for (uint32_t i = 0; i < n; i++) {
        for (size_t k = 0; k < ob; k++)
            obs[k] = (uint8_t)rnd();
        for (size_t k = 0; k < ab; k++)
            act[k] = (uint8_t)rnd();
        for (size_t k = 0; k < mb; k++)
            mask[k] = (uint8_t)rnd();
        /* bool columns hold 0/1 */
        if (s->obs_dtype == RELAY_BOOL)
            for (size_t k = 0; k < ob; k++)
                obs[k] &= 1;
        float aux[2] = {(float)(rnd() % 1000) / 7.0f, -(float)i};
        assert_ok(relay_traj_push(t, obs, act, mb ? mask : NULL, (float)(rnd() % 100) / 3.0f,
                                  i == n - 1, i % 7 == 3, aux, 1700000000000000000LL + i * 1000));
    }
    return t;
}

static void assert_traj_equal(const relay_traj *a, const relay_traj *b)
{
    assert_true(relay_step_spec_eq(&a->spec, &b->spec));
    assert_true(relay_id_eq(a->actor, b->actor));
    assert_int_equal(a->env_id, b->env_id);
    assert_string_equal(a->env_label, b->env_label);
    assert_int_equal(a->episode, b->episode);
    assert_int_equal(a->policy_version, b->policy_version);
    assert_int_equal(a->start_ns, b->start_ns);
    assert_int_equal(a->end_ns, b->end_ns);
    assert_int_equal(a->max_len, b->max_len);
    assert_int_equal(a->len, b->len);
    size_t ob, ab, mb, n = a->len;
    relay_step_spec_bytes(&a->spec, &ob, &ab, &mb);
    if (!n)
        return;
    assert_memory_equal(a->obs, b->obs, n * ob);
    assert_memory_equal(a->act, b->act, n * ab);
    if (mb)
        assert_memory_equal(a->mask, b->mask, n * mb);
    assert_memory_equal(a->reward, b->reward, n * sizeof(float));
    assert_memory_equal(a->terminated, b->terminated, n);
    assert_memory_equal(a->truncated, b->truncated, n);
    if (a->spec.n_aux)
        assert_memory_equal(a->aux, b->aux, n * a->spec.n_aux * sizeof(float));
    assert_memory_equal(a->ts, b->ts, n * sizeof(int64_t));
}

/* fix_crc recomputes an envelope's CRC after a test changed its bytes. */
static void fix_crc(uint8_t *p, size_t len)
{
    uint32_t crc = relay_crc32c(0, p, RLY_ENV_OFF_CRC);
    crc = relay_crc32c(crc, p + RELAY_ENVELOPE_HEADER, len - RELAY_ENVELOPE_HEADER);
    for (int i = 0; i < 4; i++)
        p[RLY_ENV_OFF_CRC + i] = (uint8_t)(crc >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void crc32c_known_values(void **state)
{
    assert_int_equal(relay_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(rly_crc32c_soft(0, "123456789", 9), 0xE3069283u);
    uint8_t zeros[32] = {0};
    assert_int_equal(relay_crc32c(0, zeros, 32), 0x8A9136AAu);
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)rnd();
    for (size_t off = 0; off < 9; off++) {
        for (size_t n = 0; n + off <= sizeof buf; n += 37) {
            uint32_t a = relay_crc32c(0, buf + off, n);
            assert_int_equal(a, rly_crc32c_soft(0, buf + off, n));
            /* incremental == one shot */
            uint32_t b =
                relay_crc32c(relay_crc32c(0, buf + off, n / 3), buf + off + n / 3, n - n / 3);
            assert_int_equal(a, b);
        }
    }
}

static void key_parsing(void **state)
{
    uint8_t k[32];
    assert_ok(relay_codec_key_from_hex(hex_key, k));
    assert_int_equal(k[0], 0);
    assert_int_equal(k[31], 0x1f);
    assert_ok(relay_codec_key_from_hex(
        "FFEEDDCCBBAA99887766554433221100ffeeddccbbaa99887766554433221100", k));
    assert_int_equal(k[0], 0xff);
    assert_err(relay_codec_key_from_hex("abcd", k), RELAY_EFORMAT);
    assert_err(relay_codec_key_from_hex(
                   "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", k),
               RELAY_EFORMAT);

    /* encryption without any key is a configuration error */
    unsetenv("RELAY_KEY");
    relay_codec_options o;
    relay_codec_options_default(&o);
    o.encrypt = true;
    relay_codec *c = NULL;
    assert_err(relay_codec_new(&o, &c), RELAY_ECONFIG);
    assert_null(c);
    setenv("RELAY_KEY", "not-hex", 1);
    assert_err(relay_codec_new(&o, &c), RELAY_ECONFIG);

    /* $RELAY_KEY interoperates with the same key given in the options */
    setenv("RELAY_KEY", hex_key, 1);
    assert_ok(relay_codec_new(&o, &c));
    unsetenv("RELAY_KEY");
    relay_codec *d = make_codec(RELAY_COMPRESS_NONE, true);
    relay_step_spec s = spec_of(RELAY_F32, RELAY_I32, RELAY_DTYPE_INVALID);
    relay_traj *t = make_traj(&s, 5), *back = NULL;
    relay_codec_buf buf = {0};
    assert_ok(relay_codec_encode_traj(c, t, &buf));
    assert_ok(relay_codec_decode_traj(d, buf.data, buf.len, &back));
    assert_traj_equal(t, back);
    relay_traj_free(back);
    relay_traj_free(t);
    relay_codec_buf_fini(&buf);
    relay_codec_free(c);
    relay_codec_free(d);

    o.encrypt = false;
    o.compression = RELAY_COMPRESS_ZSTD;
    o.zstd_level = 99;
    assert_err(relay_codec_new(&o, &c), RELAY_ECONFIG);
    relay_codec_options_default(&o);
    o.limits.max_rank = 9;
    assert_err(relay_codec_new(&o, &c), RELAY_ECONFIG);
}

static const relay_compression comps[] = {RELAY_COMPRESS_NONE, RELAY_COMPRESS_LZ4,
                                          RELAY_COMPRESS_ZSTD};

static void traj_roundtrip_every_option(void **state)
{
    relay_step_spec s = spec_of(RELAY_F32, RELAY_I32, RELAY_F32);
    /* a compressible trajectory: slowly varying floats */
    relay_traj *t = relay_traj_new(&s, 200, 0);
    assert_non_null(t);
    for (int i = 0; i < 200; i++) {
        float obs[6] = {0.01f * i, 0, 1, 0, 0.5f, 0};
        int32_t act[2] = {i % 2, 0};
        float aux[2] = {-0.69f, 1.0f};
        assert_ok(relay_traj_push(t, obs, act, NULL, 1.0f, i == 199, false, aux, i));
    }
    relay_traj *rnd_t = make_traj(&s, 50);
    relay_traj *empty = relay_traj_new(&s, 1, 0);
    relay_traj *cases[] = {t, rnd_t, empty};
    for (size_t ci = 0; ci < 3; ci++) {
        for (int enc = 0; enc < 2; enc++) {
            relay_codec *c = make_codec(comps[ci], enc);
            for (size_t k = 0; k < 3; k++) {
                relay_codec_buf buf = {0};
                assert_ok(relay_codec_encode_traj(c, cases[k], &buf));
                assert_int_equal(buf.data[RLY_ENV_OFF_FLAGS], enc ? 1 : 0);
                if (k == 0) /* compressible: the chosen compression is really used */
                    assert_int_equal(buf.data[RLY_ENV_OFF_COMPRESSION], comps[ci]);
                relay_msg_kind kind;
                size_t total;
                assert_ok(relay_codec_peek(buf.data, buf.len, &kind, &total));
                assert_int_equal(kind, RELAY_MSG_TRAJECTORY);
                assert_int_equal(total, buf.len);
                relay_traj *back = NULL;
                assert_ok(relay_codec_decode_traj(c, buf.data, buf.len, &back));
                assert_traj_equal(cases[k], back);
                relay_traj_free(back);
                /* a second decode into a reused trajectory gives the same result */
                relay_step_spec other = spec_of(RELAY_U8, RELAY_F64, RELAY_DTYPE_INVALID);
                relay_traj *reuse = relay_traj_new(&other, 2, 0);
                assert_ok(relay_codec_decode_traj_into(c, buf.data, buf.len, reuse));
                assert_traj_equal(cases[k], reuse);
                assert_ok(relay_codec_decode_traj_into(c, buf.data, buf.len, reuse));
                assert_traj_equal(cases[k], reuse);
                relay_traj_free(reuse);
                relay_codec_buf_fini(&buf);
            }
            relay_codec_free(c);
        }
    }
    relay_traj_free(t);
    relay_traj_free(rnd_t);
    relay_traj_free(empty);
}

static void traj_roundtrip_every_dtype(void **state)
{
    const relay_dtype all[] = {RELAY_F32, RELAY_F64, RELAY_I32, RELAY_I64, RELAY_U8, RELAY_BOOL};
    relay_codec *c = make_codec(RELAY_COMPRESS_LZ4, false);
    for (size_t i = 0; i < 6; i++) {
        relay_step_spec s = spec_of(all[i], all[(i + 1) % 6], all[(i + 2) % 6]);
        relay_traj *t = make_traj(&s, 17), *back = NULL;
        relay_codec_buf buf = {0};
        assert_ok(relay_codec_encode_traj(c, t, &buf));
        assert_ok(relay_codec_decode_traj(c, buf.data, buf.len, &back));
        assert_int_equal(back->spec.obs_dtype, all[i]);
        assert_traj_equal(t, back);
        relay_traj_free(back);
        relay_traj_free(t);

        /* the Action message carries tensors of every dtype too */
        relay_msg m, d;
        memset(&m, 0, sizeof m);
        m.kind = RELAY_MSG_ACTION;
        int64_t shape[3] = {2, 1, 3};
        assert_ok(relay_tensor_init(&m.action.obs, all[i], 3, shape));
        assert_ok(relay_tensor_init(&m.action.act, all[(i + 3) % 6], 0, NULL));
        for (size_t k = 0; k < m.action.obs.nbytes; k++)
            ((uint8_t *)m.action.obs.data)[k] = all[i] == RELAY_BOOL ? k & 1 : (uint8_t)rnd();
        ((uint8_t *)m.action.act.data)[0] = 1;
        m.action.reward = 2.5f;
        m.action.truncated = true;
        m.action.n_aux = 1;
        strcpy(m.action.aux[0].name, "logp");
        m.action.aux[0].value = -1.25f;
        m.action.actor = relay_id_from_seed(9, i);
        m.action.timestamp_ns = -5;
        assert_ok(relay_codec_encode_msg(c, &m, &buf));
        assert_ok(relay_codec_decode_msg(c, buf.data, buf.len, &d));
        assert_int_equal(d.kind, RELAY_MSG_ACTION);
        assert_int_equal(d.action.obs.dtype, all[i]);
        assert_int_equal(d.action.obs.rank, 3);
        assert_int_equal(d.action.obs.shape[2], 3);
        assert_memory_equal(d.action.obs.data, m.action.obs.data, m.action.obs.nbytes);
        assert_int_equal(d.action.act.dtype, all[(i + 3) % 6]);
        assert_int_equal(d.action.act.rank, 0);
        assert_int_equal(d.action.mask.dtype, RELAY_DTYPE_INVALID);
        assert_true(d.action.reward == 2.5f);
        assert_true(d.action.truncated);
        assert_false(d.action.terminated);
        assert_true(relay_action_aux(&d.action, "logp", 0) == -1.25f);
        assert_true(relay_id_eq(d.action.actor, m.action.actor));
        assert_int_equal(d.action.timestamp_ns, -5);
        relay_msg_fini(&d);
        relay_action_fini(&m.action);
        relay_codec_buf_fini(&buf);
    }
    relay_codec_free(c);
}

static void fill_bundle(relay_model_bundle *b, uint8_t *onnx, size_t n)
{
    memset(b, 0, sizeof *b);
    for (size_t i = 0; i < n; i++)
        onnx[i] = (uint8_t)(i * 31 + 7);
    b->onnx = onnx;
    b->onnx_len = n;
    b->version = 12;
    b->created_ns = 99;
    strcpy(b->name, "ppo_pi");
    strcpy(b->input_name, "input");
    strcpy(b->output_name, "logits");
    b->obs_space.dim = 4;
    b->obs_space.has_bounds = true;
    for (int i = 0; i < 4; i++) {
        b->obs_space.low[i] = -1.0f - i;
        b->obs_space.high[i] = 1.0f + i;
    }
    b->act_space.discrete = true;
    b->act_space.n = 2;
    b->act_space.dim = 1;
}

static void bundle_equal(const relay_model_bundle *a, const relay_model_bundle *b)
{
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->created_ns, b->created_ns);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->input_name, b->input_name);
    assert_string_equal(a->output_name, b->output_name);
    assert_int_equal(a->onnx_len, b->onnx_len);
    assert_memory_equal(a->onnx, b->onnx, a->onnx_len);
    assert_int_equal(a->obs_space.dim, b->obs_space.dim);
    assert_int_equal(a->obs_space.has_bounds, b->obs_space.has_bounds);
    assert_memory_equal(a->obs_space.low, b->obs_space.low, 4 * sizeof(float));
    assert_memory_equal(a->obs_space.high, b->obs_space.high, 4 * sizeof(float));
    assert_true(b->act_space.discrete);
    assert_int_equal(b->act_space.n, a->act_space.n);
    assert_false(b->act_space.has_bounds);
}

static void bundle_and_control_roundtrip(void **state)
{
    static uint8_t onnx[5000];
    for (size_t ci = 0; ci < 3; ci++) {
        for (int enc = 0; enc < 2; enc++) {
            relay_codec *c = make_codec(comps[ci], enc);
            relay_codec_buf buf = {0};
            relay_model_bundle b, back;
            fill_bundle(&b, onnx, sizeof onnx);
            assert_ok(relay_codec_encode_bundle(c, &b, &buf));
            assert_ok(relay_codec_decode_bundle(c, buf.data, buf.len, &back));
            assert_true(back.owns_onnx);
            bundle_equal(&b, &back);
            relay_model_bundle_fini(&back);
            /* a bundle blob is not a trajectory */
            relay_traj *t = NULL;
            assert_err(relay_codec_decode_traj(c, buf.data, buf.len, &t), RELAY_EFORMAT);
            assert_null(t);

            relay_msg m, d;
            memset(&m, 0, sizeof m);
            m.kind = RELAY_MSG_MODEL_UPDATE;
            m.bundle = b;
            m.actor = relay_id_from_seed(1, 1);
            assert_ok(relay_codec_encode_msg(c, &m, &buf));
            assert_ok(relay_codec_decode_msg(c, buf.data, buf.len, &d));
            assert_int_equal(d.kind, RELAY_MSG_MODEL_UPDATE);
            assert_true(relay_id_eq(d.actor, m.actor));
            bundle_equal(&b, &d.bundle);
            relay_msg_fini(&d);

            relay_id ids[3] = {relay_id_from_seed(2, 0), relay_id_from_seed(2, 1),
                               relay_id_from_seed(2, 2)};
            memset(&m, 0, sizeof m);
            m.kind = RELAY_MSG_HANDSHAKE;
            strcpy(m.handshake.client_id, "client-A");
            m.handshake.actors = ids;
            m.handshake.n_actors = 3;
            m.handshake.requested_version = -1;
            assert_ok(relay_codec_encode_msg(c, &m, &buf));
            assert_ok(relay_codec_decode_msg(c, buf.data, buf.len, &d));
            assert_int_equal(d.kind, RELAY_MSG_HANDSHAKE);
            assert_string_equal(d.handshake.client_id, "client-A");
            assert_int_equal(d.handshake.n_actors, 3);
            assert_memory_equal(d.handshake.actors, ids, sizeof ids);
            assert_int_equal(d.handshake.requested_version, -1);
            relay_msg_fini(&d);

            memset(&m, 0, sizeof m);
            m.kind = RELAY_MSG_MODEL_VERSION_REQUEST;
            m.actor = ids[1];
            assert_ok(relay_codec_encode_msg(c, &m, &buf));
            assert_ok(relay_codec_decode_msg(c, buf.data, buf.len, &d));
            assert_int_equal(d.kind, RELAY_MSG_MODEL_VERSION_REQUEST);
            assert_true(relay_id_eq(d.actor, ids[1]));
            relay_msg_fini(&d);

            m.kind = RELAY_MSG_MODEL_VERSION_REPLY;
            m.version = 77;
            assert_ok(relay_codec_encode_msg(c, &m, &buf));
            assert_ok(relay_codec_decode_msg(c, buf.data, buf.len, &d));
            assert_int_equal(d.kind, RELAY_MSG_MODEL_VERSION_REPLY);
            assert_int_equal(d.version, 77);
            assert_true(relay_id_eq(d.actor, ids[1]));
            relay_msg_fini(&d);

            memset(&m, 0, sizeof m);
            m.kind = RELAY_MSG_SHUTDOWN;
            strcpy(m.text, "scale in");
            assert_ok(relay_codec_encode_msg(c, &m, &buf));
            assert_ok(relay_codec_decode_msg(c, buf.data, buf.len, &d));
            assert_int_equal(d.kind, RELAY_MSG_SHUTDOWN);
            assert_string_equal(d.text, "scale in");
            relay_msg_fini(&d);

            memset(&m, 0, sizeof m);
            m.kind = RELAY_MSG_FLAG_LAST_ACTION;
            m.flag.actor = ids[2];
            m.flag.reward = -7.5f;
            m.flag.env_id = -1;
            strcpy(m.flag.env_label, "lab");
            assert_ok(relay_codec_encode_msg(c, &m, &buf));
            assert_ok(relay_codec_decode_msg(c, buf.data, buf.len, &d));
            assert_int_equal(d.kind, RELAY_MSG_FLAG_LAST_ACTION);
            assert_true(relay_id_eq(d.flag.actor, ids[2]));
            assert_true(d.flag.reward == -7.5f);
            assert_int_equal(d.flag.env_id, -1);
            assert_string_equal(d.flag.env_label, "lab");
            relay_msg_fini(&d);

            relay_codec_buf_fini(&buf);
            relay_codec_free(c);
        }
    }
}

/* decode_is_safe decodes and, when decoding succeeds, checks the result equals want. */
static relay_err decode_check(relay_codec *c, const uint8_t *p, size_t n, const relay_traj *want)
{
    relay_traj *t = NULL;
    relay_err e = relay_codec_decode_traj(c, p, n, &t);
    if (e == RELAY_OK) {
        assert_non_null(want);
        assert_traj_equal(want, t);
        relay_traj_free(t);
    } else {
        assert_null(t);
    }
    return e;
}

static void tampering_is_detected(void **state)
{
    relay_step_spec s = spec_of(RELAY_F32, RELAY_I32, RELAY_DTYPE_INVALID);
    relay_traj *t = make_traj(&s, test_sanitized() ? 6 : 20);
    for (size_t ci = 0; ci < 3; ci++) {
        for (int enc = 0; enc < 2; enc++) {
            relay_codec *c = make_codec(comps[ci], enc);
            relay_codec_buf buf = {0};
            assert_ok(relay_codec_encode_traj(c, t, &buf));
            uint8_t *copy = malloc(buf.len);
            for (size_t i = 0; i < buf.len; i++) {
                for (int bit = 0; bit < 8; bit += 3) {
                    memcpy(copy, buf.data, buf.len);
                    copy[i] ^= (uint8_t)(1u << bit);
                    relay_err e = decode_check(c, copy, buf.len, NULL);
                    if (e == RELAY_OK)
                        fail_msg("flipping bit %d of byte %zu was not detected", bit, i);
                    /* with the CRC repaired, encryption must still catch body changes */
                    if (enc && i >= RELAY_ENVELOPE_HEADER) {
                        fix_crc(copy, buf.len);
                        assert_err(decode_check(c, copy, buf.len, NULL), RELAY_EAUTH);
                    }
                }
            }
            /* with the CRC repaired, header changes are caught by their own checks or the tag */
            memcpy(copy, buf.data, buf.len);
            copy[RLY_ENV_OFF_KIND] = RELAY_MSG_ACTION;
            fix_crc(copy, buf.len);
            assert_err(decode_check(c, copy, buf.len, NULL), enc ? RELAY_EAUTH : RELAY_EFORMAT);
            free(copy);
            relay_codec_buf_fini(&buf);
            relay_codec_free(c);
        }
    }
    relay_traj_free(t);
}

static void wrong_key_and_plaintext(void **state)
{
    relay_step_spec s = spec_of(RELAY_F32, RELAY_I32, RELAY_DTYPE_INVALID);
    relay_traj *t = make_traj(&s, 8);
    relay_codec *enc = make_codec(RELAY_COMPRESS_ZSTD, true);
    relay_codec_options o;
    relay_codec_options_default(&o);
    o.encrypt = true;
    o.has_key = true;
    assert_ok(relay_codec_key_from_hex(hex_key, o.key));
    o.key[5] ^= 0x40;
    relay_codec *other = NULL;
    assert_ok(relay_codec_new(&o, &other));
    unsetenv("RELAY_KEY");
    relay_codec *nokey = make_codec(RELAY_COMPRESS_NONE, false);

    relay_codec_buf buf = {0};
    assert_ok(relay_codec_encode_traj(enc, t, &buf));
    assert_err(decode_check(other, buf.data, buf.len, NULL), RELAY_EAUTH);
    assert_err(decode_check(nokey, buf.data, buf.len, NULL), RELAY_EAUTH);
    assert_ok(decode_check(enc, buf.data, buf.len, t));
    /* a codec that encrypts refuses plaintext (no downgrade) */
    assert_ok(relay_codec_encode_traj(nokey, t, &buf));
    assert_err(decode_check(enc, buf.data, buf.len, NULL), RELAY_EAUTH);
    /* two encodings of the same message use different nonces */
    relay_codec_buf b2 = {0};
    assert_ok(relay_codec_encode_traj(enc, t, &buf));
    assert_ok(relay_codec_encode_traj(enc, t, &b2));
    assert_int_equal(buf.len, b2.len);
    assert_memory_not_equal(buf.data + RELAY_ENVELOPE_HEADER, b2.data + RELAY_ENVELOPE_HEADER,
                            RELAY_ENVELOPE_NONCE);
    relay_codec_buf_fini(&b2);
    relay_codec_buf_fini(&buf);
    relay_codec_free(enc);
    relay_codec_free(other);
    relay_codec_free(nokey);
    relay_traj_free(t);
}

static void truncation_at_every_length(void **state)
{
    relay_step_spec s = spec_of(RELAY_F32, RELAY_I32, RELAY_U8);
    relay_traj *t = make_traj(&s, 12);
    for (size_t ci = 0; ci < 3; ci++) {
        for (int enc = 0; enc < 2; enc++) {
            relay_codec *c = make_codec(comps[ci], enc);
            relay_codec_buf buf = {0};
            assert_ok(relay_codec_encode_traj(c, t, &buf));
            for (size_t n = 0; n < buf.len; n++)
                assert_err(decode_check(c, buf.data, n, NULL), RELAY_ETRUNCATED);
            /* trailing garbage is rejected too */
            assert_ok(relay_codec_buf_reserve(&buf, buf.len + 1));
            buf.data[buf.len] = 0;
            assert_err(decode_check(c, buf.data, buf.len + 1, NULL), RELAY_EFORMAT);
            assert_ok(decode_check(c, buf.data, buf.len, t));
            relay_codec_buf_fini(&buf);
            relay_codec_free(c);
        }
    }
    relay_traj_free(t);
}

static void header_checks(void **state)
{
    relay_step_spec s = spec_of(RELAY_F32, RELAY_I32, RELAY_DTYPE_INVALID);
    relay_traj *t = make_traj(&s, 4);
    relay_codec *c = make_codec(RELAY_COMPRESS_NONE, false);
    relay_codec_buf buf = {0};
    assert_ok(relay_codec_encode_traj(c, t, &buf));
    uint8_t *p = malloc(buf.len);
#define MUTATE(stmt, want)                                                                         \
    do {                                                                                           \
        memcpy(p, buf.data, buf.len);                                                              \
        stmt;                                                                                      \
        fix_crc(p, buf.len);                                                                       \
        assert_err(decode_check(c, p, buf.len, NULL), want);                                       \
    } while (0)
    MUTATE(p[0] = 'X', RELAY_EFORMAT);
    MUTATE(p[RLY_ENV_OFF_VERSION] = 2, RELAY_EVERSION);
    MUTATE(p[RLY_ENV_OFF_FLAGS] = 0x80, RELAY_EFORMAT);
    MUTATE(p[RLY_ENV_OFF_COMPRESSION] = 3, RELAY_EFORMAT);
    MUTATE(p[RLY_ENV_OFF_KIND] = 0, RELAY_EFORMAT);
    MUTATE(p[RLY_ENV_OFF_KIND] = 10, RELAY_EFORMAT);
    MUTATE(put32(p + RLY_ENV_OFF_STORED, 0xFFFFFFF0u), RELAY_ETOOBIG);
    MUTATE(put32(p + RLY_ENV_OFF_ORIGINAL, 0x7FFFFFFFu), RELAY_ETOOBIG);
    MUTATE(put32(p + RLY_ENV_OFF_ORIGINAL, (uint32_t)(buf.len - 21)), RELAY_EFORMAT);
    /* the CRC itself: any change is ECHECKSUM */
    memcpy(p, buf.data, buf.len);
    p[RLY_ENV_OFF_CRC + 2] ^= 0x10;
    assert_err(decode_check(c, p, buf.len, NULL), RELAY_ECHECKSUM);
    /* an encrypted flag on a short body has no room for the tag */
    memcpy(p, buf.data, buf.len);
    p[RLY_ENV_OFF_FLAGS] = 1;
    put32(p + RLY_ENV_OFF_STORED, 2);
    fix_crc(p, RELAY_ENVELOPE_HEADER + RELAY_ENVELOPE_NONCE + 2);
    assert_err(decode_check(c, p, RELAY_ENVELOPE_HEADER + RELAY_ENVELOPE_NONCE + 2, NULL),
               RELAY_EFORMAT);
#undef MUTATE
    free(p);
    /* limits smaller than the message: the declared size alone is refused */
    relay_codec_options o;
    relay_codec_options_default(&o);
    o.compression = RELAY_COMPRESS_NONE;
    o.limits.max_message_bytes = buf.len - 1;
    relay_codec *small = NULL;
    assert_ok(relay_codec_new(&o, &small));
    assert_err(decode_check(small, buf.data, buf.len, NULL), RELAY_ETOOBIG);
    relay_codec_buf b2 = {0};
    assert_err(relay_codec_encode_traj(small, t, &b2), RELAY_ETOOBIG);
    relay_codec_free(small);
    relay_codec_buf_fini(&buf);
    relay_codec_free(c);
    relay_traj_free(t);
}

/* seal_raw wraps arbitrary payload bytes as if compressed with comp, declaring original. */
static void seal_raw(relay_codec_buf *out, uint8_t comp, const void *payload, size_t n,
                     uint32_t original)
{
    assert_ok(relay_codec_buf_reserve(out, RELAY_ENVELOPE_HEADER + n));
    uint8_t *p = out->data;
    memcpy(p, "RLYE", 4);
    p[4] = RELAY_ENVELOPE_VERSION;
    p[5] = 0;
    p[6] = comp;
    p[7] = RELAY_MSG_TRAJECTORY;
    put32(p + 8, (uint32_t)n);
    put32(p + 12, original);
    memcpy(p + RELAY_ENVELOPE_HEADER, payload, n);
    out->len = RELAY_ENVELOPE_HEADER + n;
    fix_crc(p, out->len);
}

static void decompression_bombs(void **state)
{
    relay_codec *c = make_codec(RELAY_COMPRESS_NONE, false);
    size_t big = 1 << 20;
    uint8_t *zeros = calloc(1, big);
    size_t cap = ZSTD_compressBound(big);
    uint8_t *z = malloc(cap);
    relay_codec_buf buf = {0};

    /* zstd frame that declares its real (large) size, envelope declares 100 */
    size_t zn = ZSTD_compress(z, cap, zeros, big, 3);
    assert_false(ZSTD_isError(zn));
    seal_raw(&buf, RELAY_COMPRESS_ZSTD, z, zn, 100);
    assert_err(decode_check(c, buf.data, buf.len, NULL), RELAY_ECOMPRESS);

    /* zstd frame without a content size: the output bound stops it */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    ZSTD_inBuffer in = {zeros, big, 0};
    ZSTD_outBuffer outb = {z, cap, 0};
    size_t r = ZSTD_compressStream2(cc, &outb, &in, ZSTD_e_end);
    assert_int_equal(r, 0);
    ZSTD_freeCCtx(cc);
    assert_int_equal(ZSTD_getFrameContentSize(z, outb.pos), ZSTD_CONTENTSIZE_UNKNOWN);
    seal_raw(&buf, RELAY_COMPRESS_ZSTD, z, outb.pos, 100);
    assert_err(decode_check(c, buf.data, buf.len, NULL), RELAY_ECOMPRESS);
    /* and declaring more than the frame holds fails as well */
    seal_raw(&buf, RELAY_COMPRESS_ZSTD, z, outb.pos, (uint32_t)big + 10);
    assert_err(decode_check(c, buf.data, buf.len, NULL), RELAY_ECOMPRESS);

    /* LZ4 block expanding past the declared size */
    int ln = LZ4_compress_default((const char *)zeros, (char *)z, (int)big, (int)cap);
    assert_true(ln > 0);
    seal_raw(&buf, RELAY_COMPRESS_LZ4, z, (size_t)ln, 100);
    assert_err(decode_check(c, buf.data, buf.len, NULL), RELAY_ECOMPRESS);
    seal_raw(&buf, RELAY_COMPRESS_LZ4, z, (size_t)ln, (uint32_t)big + 1);
    assert_err(decode_check(c, buf.data, buf.len, NULL), RELAY_ECOMPRESS);
    /* garbage that is not compressed data at all */
    seal_raw(&buf, RELAY_COMPRESS_ZSTD, "garbage!", 8, 100);
    assert_err(decode_check(c, buf.data, buf.len, NULL), RELAY_ECOMPRESS);
    seal_raw(&buf, RELAY_COMPRESS_LZ4, "\xff\xff\xff\xff", 4, 100);
    assert_err(decode_check(c, buf.data, buf.len, NULL), RELAY_ECOMPRESS);

    /* the right declared size decodes (1 MiB of zeros is not a valid Message: EFORMAT, later) */
    seal_raw(&buf, RELAY_COMPRESS_ZSTD, z, zn, 0);
    zn = ZSTD_compress(z, cap, zeros, big, 3);
    seal_raw(&buf, RELAY_COMPRESS_ZSTD, z, zn, (uint32_t)big);
    assert_err(decode_check(c, buf.data, buf.len, NULL), RELAY_EFORMAT);
    free(zeros);
    free(z);
    relay_codec_buf_fini(&buf);
    relay_codec_free(c);
}

/* seal_pb packs a hand-built Message and seals it with the codec's options. */
static void seal_pb(relay_codec *c, const Relay__V1__Message *m, relay_codec_buf *out)
{
    size_t n = relay__v1__message__get_packed_size(m);
    uint8_t *p = malloc(n + 1);
    relay__v1__message__pack(m, p);
    assert_ok(rly_envelope_seal(c, (relay_msg_kind)m->body_case, p, n, out));
    free(p);
}

static void message_validation(void **state)
{
    relay_codec *c = make_codec(RELAY_COMPRESS_NONE, false);
    relay_codec_buf buf = {0};
    int64_t oshape[1] = {4};
    float obs[3 * 4] = {0};
    int32_t act[3] = {0};
    float rew[3] = {1, 2, 3};
    uint8_t flags[3] = {0, 0, 1};
    int64_t ts[3] = {1, 2, 3};
    Relay__V1__ColumnSpec co = RELAY__V1__COLUMN_SPEC__INIT, ca = RELAY__V1__COLUMN_SPEC__INIT;
    co.dtype = RELAY__V1__DTYPE__DTYPE_F32;
    co.n_shape = 1;
    co.shape = oshape;
    ca.dtype = RELAY__V1__DTYPE__DTYPE_I32;
    Relay__V1__StepSpec sp = RELAY__V1__STEP_SPEC__INIT;
    sp.obs = &co;
    sp.act = &ca;
    Relay__V1__Trajectory tr = RELAY__V1__TRAJECTORY__INIT;
    tr.len = 3;
    tr.spec = &sp;
    tr.obs = (ProtobufCBinaryData){sizeof obs, (uint8_t *)obs};
    tr.act = (ProtobufCBinaryData){sizeof act, (uint8_t *)act};
    tr.n_reward = 3;
    tr.reward = rew;
    tr.terminated = (ProtobufCBinaryData){3, flags};
    tr.truncated = (ProtobufCBinaryData){3, flags};
    tr.n_timestamps_ns = 3;
    tr.timestamps_ns = ts;
    Relay__V1__Message m = RELAY__V1__MESSAGE__INIT;
    m.body_case = RELAY__V1__MESSAGE__BODY_TRAJECTORY;
    m.trajectory = &tr;
    relay_traj *t = NULL;

    seal_pb(c, &m, &buf); /* the valid baseline decodes */
    assert_ok(relay_codec_decode_traj(c, buf.data, buf.len, &t));
    assert_int_equal(t->len, 3);
    assert_int_equal(t->terminated[2], 1);
    assert_true(relay_traj_return(t) == 6.0);
    relay_traj_free(t);

#define EXPECT(stmt, undo, want)                                                                   \
    do {                                                                                           \
        stmt;                                                                                      \
        seal_pb(c, &m, &buf);                                                                      \
        assert_err(relay_codec_decode_traj(c, buf.data, buf.len, &t), want);                       \
        assert_null(t);                                                                            \
        undo;                                                                                      \
    } while (0)
    EXPECT(tr.obs.len -= 4, tr.obs.len += 4, RELAY_EFORMAT);
    EXPECT(tr.n_reward = 2, tr.n_reward = 3, RELAY_EFORMAT);
    EXPECT(tr.n_timestamps_ns = 2, tr.n_timestamps_ns = 3, RELAY_EFORMAT);
    EXPECT(flags[0] = 2, flags[0] = 0, RELAY_EFORMAT);
    EXPECT(tr.len = 4, tr.len = 3, RELAY_EFORMAT);
    EXPECT(tr.max_len = 2, tr.max_len = 0, RELAY_EFORMAT);
    EXPECT(co.dtype = 9, co.dtype = RELAY__V1__DTYPE__DTYPE_F32, RELAY_EFORMAT);
    EXPECT(co.dtype = 0, co.dtype = RELAY__V1__DTYPE__DTYPE_F32, RELAY_EFORMAT);
    EXPECT(oshape[0] = -4, oshape[0] = 4, RELAY_EFORMAT);
    EXPECT(tr.spec = NULL, tr.spec = &sp, RELAY_EFORMAT);
    EXPECT(sp.act = NULL, sp.act = &ca, RELAY_EFORMAT);
    uint8_t id5[5] = {1, 2, 3, 4, 5};
    EXPECT(tr.actor_id = ((ProtobufCBinaryData){5, id5}), tr.actor_id.len = 0, RELAY_EFORMAT);
    char longlabel[100];
    memset(longlabel, 'a', 99);
    longlabel[99] = 0;
    EXPECT(tr.env_label = longlabel, tr.env_label = NULL, RELAY_ETOOBIG);
    int64_t big9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    EXPECT((co.n_shape = 9, co.shape = big9), (co.n_shape = 1, co.shape = oshape), RELAY_ETOOBIG);
    int64_t huge[2] = {INT64_MAX / 2, 4};
    EXPECT((co.n_shape = 2, co.shape = huge), (co.n_shape = 1, co.shape = oshape), RELAY_ETOOBIG);
    char *names[9] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
    EXPECT((sp.n_aux_names = 9, sp.aux_names = names), sp.n_aux_names = 0, RELAY_ETOOBIG);
    tr.env_label = (char *)"";

    /* codec limits: steps, elements and rank are enforced on decode */
    relay_codec_options o;
    relay_codec_options_default(&o);
    o.compression = RELAY_COMPRESS_NONE;
    o.limits.max_steps = 2;
    relay_codec *lim = NULL;
    seal_pb(c, &m, &buf);
    assert_ok(relay_codec_new(&o, &lim));
    assert_err(relay_codec_decode_traj(lim, buf.data, buf.len, &t), RELAY_ETOOBIG);
    relay_codec_free(lim);
    o.limits = relay_codec_limits_default();
    o.limits.max_elements = 11; /* obs column has 12 */
    assert_ok(relay_codec_new(&o, &lim));
    assert_err(relay_codec_decode_traj(lim, buf.data, buf.len, &t), RELAY_ETOOBIG);
    relay_codec_free(lim);
    o.limits = relay_codec_limits_default();
    o.limits.max_rank = 0;
    assert_ok(relay_codec_new(&o, &lim));
    assert_err(relay_codec_decode_traj(lim, buf.data, buf.len, &t), RELAY_ETOOBIG);
    relay_codec_free(lim);

    /* a Message whose body is unset, and bytes that are not protobuf */
    Relay__V1__Message none = RELAY__V1__MESSAGE__INIT;
    seal_pb(c, &none, &buf);
    relay_msg out;
    assert_err(relay_codec_decode_msg(c, buf.data, buf.len, &out), RELAY_EFORMAT);
    assert_ok(rly_envelope_seal(c, RELAY_MSG_SHUTDOWN, (const uint8_t *)"\xff\xff\xff", 3, &buf));
    assert_err(relay_codec_decode_msg(c, buf.data, buf.len, &out), RELAY_EFORMAT);

    /* handshake limits and id sizes */
    ProtobufCBinaryData ids[3] = {{16, (uint8_t *)"0123456789abcdef"},
                                  {16, (uint8_t *)"0123456789abcdef"},
                                  {15, (uint8_t *)"0123456789abcde"}};
    Relay__V1__Handshake hs = RELAY__V1__HANDSHAKE__INIT;
    hs.n_actor_ids = 3;
    hs.actor_ids = ids;
    Relay__V1__Message mh = RELAY__V1__MESSAGE__INIT;
    mh.body_case = RELAY__V1__MESSAGE__BODY_HANDSHAKE;
    mh.handshake = &hs;
    seal_pb(c, &mh, &buf);
    assert_err(relay_codec_decode_msg(c, buf.data, buf.len, &out), RELAY_EFORMAT);
    o.limits = relay_codec_limits_default();
    o.limits.max_actors = 2;
    assert_ok(relay_codec_new(&o, &lim));
    assert_err(relay_codec_decode_msg(lim, buf.data, buf.len, &out), RELAY_ETOOBIG);
    relay_codec_free(lim);
    /* space bounds must match dim */
    float lo[3] = {0, 0, 0};
    Relay__V1__Space sp2 = RELAY__V1__SPACE__INIT;
    sp2.dim = 4;
    sp2.n_low = sp2.n_high = 3;
    sp2.low = sp2.high = lo;
    Relay__V1__ModelBundle mb = RELAY__V1__MODEL_BUNDLE__INIT;
    mb.obs_space = &sp2;
    Relay__V1__Message mm = RELAY__V1__MESSAGE__INIT;
    mm.body_case = RELAY__V1__MESSAGE__BODY_MODEL_BUNDLE;
    mm.model_bundle = &mb;
    seal_pb(c, &mm, &buf);
    relay_model_bundle b;
    assert_err(relay_codec_decode_bundle(c, buf.data, buf.len, &b), RELAY_EFORMAT);
    sp2.dim = 300;
    seal_pb(c, &mm, &buf);
    assert_err(relay_codec_decode_bundle(c, buf.data, buf.len, &b), RELAY_ETOOBIG);
#undef EXPECT
    relay_codec_buf_fini(&buf);
    relay_codec_free(c);
}

/* ActorStats: a round trip, and absurd values refused on decode (and on encode) with the limit. */
static void actor_stats_roundtrip_and_limits(void **state)
{
    (void)state;
    relay_codec *c = make_codec(RELAY_COMPRESS_ZSTD, true);
    relay_codec_buf buf = {0};
    relay_msg m, d;
    memset(&m, 0, sizeof m);
    m.kind = RELAY_MSG_ACTOR_STATS;
    relay_actor_stats *st = &m.stats;
    strcpy(st->client_id, "relay-actors-7");
    st->env_steps = 1000;
    st->episodes = 9;
    st->trajectories = 20;
    st->trajectories_acked = 19;
    st->trajectories_dropped = 1;
    st->batches_sent = 5;
    st->batches_acked = 4;
    st->batches_resent = 1;
    st->spool_batches = 1;
    st->spool_bytes = 4096;
    st->model_version = 12;
    st->actors = 3;
    st->n_routers = RELAY_STATS_MAX_ROUTERS;
    for (uint32_t i = 0; i < st->n_routers; i++)
        st->router_queue_depth[i] = i * 3;
    st->uptime_s = 2.5;
    st->cpu_s = 1.25;
    st->rss_bytes = 1u << 24;
    assert_ok(relay_codec_encode_msg(c, &m, &buf));
    assert_ok(relay_codec_decode_msg(c, buf.data, buf.len, &d));
    assert_int_equal(d.kind, RELAY_MSG_ACTOR_STATS);
    assert_string_equal(d.stats.client_id, "relay-actors-7");
    assert_int_equal(d.stats.env_steps, 1000);
    assert_int_equal(d.stats.trajectories_dropped, 1);
    assert_int_equal(d.stats.batches_resent, 1);
    assert_int_equal(d.stats.spool_bytes, 4096);
    assert_int_equal(d.stats.model_version, 12);
    assert_int_equal(d.stats.n_routers, RELAY_STATS_MAX_ROUTERS);
    assert_int_equal(d.stats.router_queue_depth[255], 255 * 3);
    assert_true(d.stats.uptime_s == 2.5 && d.stats.cpu_s == 1.25);
    assert_int_equal(d.stats.rss_bytes, 1u << 24);
    relay_msg_fini(&d);
    assert_string_equal(relay_msg_kind_name(RELAY_MSG_ACTOR_STATS), "actor_stats");

    /* the encoder refuses what the decoder would refuse */
    st->n_routers = RELAY_STATS_MAX_ROUTERS + 1;
    assert_err(relay_codec_encode_msg(c, &m, &buf), RELAY_ETOOBIG);
    st->n_routers = 1;
    st->env_steps = RELAY_STATS_MAX_COUNT + 1;
    assert_err(relay_codec_encode_msg(c, &m, &buf), RELAY_ETOOBIG);
    st->env_steps = 1;
    st->uptime_s = NAN;
    assert_err(relay_codec_encode_msg(c, &m, &buf), RELAY_EFORMAT);
    st->uptime_s = 1;
    memset(st->client_id, 'x', sizeof st->client_id);
    assert_err(relay_codec_encode_msg(c, &m, &buf), RELAY_EINVAL);

    /* hand-built reports with absurd values are refused on decode */
    uint32_t depths[RELAY_STATS_MAX_ROUTERS + 1] = {0};
    Relay__V1__ActorStats ps = RELAY__V1__ACTOR_STATS__INIT;
    ps.client_id = "p";
    Relay__V1__Message pm = RELAY__V1__MESSAGE__INIT;
    pm.body_case = RELAY__V1__MESSAGE__BODY_ACTOR_STATS;
    pm.actor_stats = &ps;
    seal_pb(c, &pm, &buf);
    assert_ok(relay_codec_decode_msg(c, buf.data, buf.len, &d));
    assert_int_equal(d.stats.model_version, 0);
    relay_msg_fini(&d);
    ps.n_router_queue_depth = RELAY_STATS_MAX_ROUTERS + 1;
    ps.router_queue_depth = depths;
    seal_pb(c, &pm, &buf);
    assert_err(relay_codec_decode_msg(c, buf.data, buf.len, &d), RELAY_ETOOBIG);
    ps.n_router_queue_depth = 0;
    ps.batches_resent = UINT64_MAX;
    seal_pb(c, &pm, &buf);
    assert_err(relay_codec_decode_msg(c, buf.data, buf.len, &d), RELAY_ETOOBIG);
    ps.batches_resent = 0;
    ps.model_version = -5;
    seal_pb(c, &pm, &buf);
    assert_err(relay_codec_decode_msg(c, buf.data, buf.len, &d), RELAY_EFORMAT);
    ps.model_version = 0;
    ps.cpu_seconds = -1;
    seal_pb(c, &pm, &buf);
    assert_err(relay_codec_decode_msg(c, buf.data, buf.len, &d), RELAY_EFORMAT);
    ps.cpu_seconds = INFINITY;
    seal_pb(c, &pm, &buf);
    assert_err(relay_codec_decode_msg(c, buf.data, buf.len, &d), RELAY_EFORMAT);
    ps.cpu_seconds = 0;
    char long_id[RELAY_TEXT_MAX + 1];
    memset(long_id, 'y', RELAY_TEXT_MAX);
    long_id[RELAY_TEXT_MAX] = 0;
    ps.client_id = long_id;
    seal_pb(c, &pm, &buf);
    assert_err(relay_codec_decode_msg(c, buf.data, buf.len, &d), RELAY_ETOOBIG);
    relay_codec_buf_fini(&buf);
    relay_codec_free(c);
}

static void encode_rejects_bad_input(void **state)
{
    relay_codec *c = make_codec(RELAY_COMPRESS_LZ4, false);
    relay_codec_buf buf = {0};
    relay_msg m;
    memset(&m, 0, sizeof m);
    m.kind = (relay_msg_kind)42;
    assert_err(relay_codec_encode_msg(c, &m, &buf), RELAY_EINVAL);
    m.kind = RELAY_MSG_TRAJECTORY;
    assert_err(relay_codec_encode_msg(c, &m, &buf), RELAY_EINVAL);
    m.kind = RELAY_MSG_ACTION; /* zeroed tensors have an invalid dtype */
    assert_err(relay_codec_encode_msg(c, &m, &buf), RELAY_EDTYPE);
    relay_step_spec s = spec_of(RELAY_F32, RELAY_I32, RELAY_DTYPE_INVALID);
    relay_traj *t = make_traj(&s, 3);
    memset(t->env_label, 'x', RELAY_LABEL_MAX);
    assert_err(relay_codec_encode_traj(c, t, &buf), RELAY_EINVAL);
    relay_traj_free(t);
    assert_err(relay_codec_encode_traj(c, NULL, &buf), RELAY_EINVAL);
    assert_string_equal(relay_msg_kind_name(RELAY_MSG_FLAG_LAST_ACTION), "flag_last_action");
    assert_string_equal(relay_msg_kind_name((relay_msg_kind)99), "none");
    relay_codec_buf_fini(&buf);
    relay_codec_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crc32c_known_values),
        cmocka_unit_test(key_parsing),
        cmocka_unit_test(traj_roundtrip_every_option),
        cmocka_unit_test(traj_roundtrip_every_dtype),
        cmocka_unit_test(bundle_and_control_roundtrip),
        cmocka_unit_test(tampering_is_detected),
        cmocka_unit_test(wrong_key_and_plaintext),
        cmocka_unit_test(truncation_at_every_length),
        cmocka_unit_test(header_checks),
        cmocka_unit_test(decompression_bombs),
        cmocka_unit_test(message_validation),
        cmocka_unit_test(encode_rejects_bad_input),
        cmocka_unit_test(actor_stats_roundtrip_and_limits),
    };
    relay_log_set_level(RELAY_LOG_OFF);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
