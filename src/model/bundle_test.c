/* Model bundles: metadata JSON, directory save/load, bare .onnx loading and the byte blob. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay/log.h"
#include "relay/model.h"
#include "test_util.h"

static char g_src[1024];

static void make_meta(relay_model_meta *m, int64_t version)
{
    memset(m, 0, sizeof *m);
    m->version = version;
    m->obs.dtype = RELAY_F32;
    m->obs.rank = 1;
    m->obs.shape[0] = 4;
    m->obs.n_bounds = 4;
    m->obs.low = malloc(4 * sizeof(float));
    m->obs.high = malloc(4 * sizeof(float));
    for (int i = 0; i < 4; i++) {
        m->obs.low[i] = -(float)(i + 1);
        m->obs.high[i] = i == 2 ? INFINITY : (float)(i + 1) * 0.5f;
    }
    m->act.discrete = true;
    m->act.dtype = RELAY_I32;
    m->act.n = 2;
}

static void check_meta(const relay_model_meta *m, int64_t version)
{
    assert_int_equal(m->version, version);
    assert_false(m->obs.discrete);
    assert_int_equal(m->obs.dtype, RELAY_F32);
    assert_int_equal(m->obs.rank, 1);
    assert_int_equal(m->obs.shape[0], 4);
    assert_int_equal(m->obs.n_bounds, 4);
    for (int i = 0; i < 4; i++) {
        assert_true(m->obs.low[i] == -(float)(i + 1));
        if (i == 2)
            assert_true(isinf(m->obs.high[i]) && m->obs.high[i] > 0);
        else
            assert_true(m->obs.high[i] == (float)(i + 1) * 0.5f);
    }
    assert_true(m->act.discrete);
    assert_int_equal(m->act.dtype, RELAY_I32);
    assert_int_equal(m->act.n, 2);
}

static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static relay_bundle *fixture_bundle(int64_t version)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/tests/data/model/mlp_4_64_64_2_tanh_op17.onnx", g_src);
    size_t len;
    uint8_t *onnx = read_all(p, &len);
    relay_model_meta meta;
    make_meta(&meta, version);
    relay_bundle *b;
    assert_ok(relay_bundle_new(onnx, len, &meta, &b));
    relay_model_meta_fini(&meta);
    free(onnx);
    return b;
}

static void same_outputs(relay_model *a, relay_model *b)
{
    float x[3 * 4], ya[3 * 2], yb[3 * 2];
    for (int i = 0; i < 12; i++)
        x[i] = (float)i * 0.3f - 1.5f;
    assert_ok(relay_model_forward(a, x, 3, ya));
    assert_ok(relay_model_forward(b, x, 3, yb));
    assert_memory_equal(ya, yb, sizeof ya);
}

static void test_meta_json(void **state)
{
    (void)state;
    relay_model_meta m, back;
    make_meta(&m, 42);
    char *js;
    assert_ok(relay_model_meta_to_json(&m, &js));
    assert_non_null(strstr(js, "\"discrete\""));
    assert_ok(relay_model_meta_from_json(js, strlen(js), &back));
    check_meta(&back, 42);
    free(js);
    relay_model_meta_fini(&back);
    relay_model_meta_fini(&m);
    relay_log_set_level(RELAY_LOG_OFF);
    static const char *bad[] = {
        "{",
        "[]",
        "{\"format\":\"x\",\"format_version\":1,\"version\":1}",
        "{\"format\":\"relay.model\",\"format_version\":1,\"version\":1}",
        "{\"format\":\"relay.model\",\"format_version\":1,\"version\":1,\"observation\":{\"kind\":"
        "\"box\",\"dtype\":\"f32\",\"shape\":[4]},\"action\":{\"kind\":\"discrete\",\"dtype\":"
        "\"i32\",\"shape\":[]}}",
        "{\"format\":\"relay.model\",\"format_version\":1,\"version\":1,\"observation\":{\"kind\":"
        "\"box\",\"dtype\":\"q8\",\"shape\":[4]},\"action\":{\"kind\":\"box\",\"dtype\":"
        "\"f32\",\"shape\":[2]}}",
        "{\"format\":\"relay.model\",\"format_version\":1,\"version\":1,\"observation\":{\"kind\":"
        "\"box\",\"dtype\":\"f32\",\"shape\":[4],\"low\":[1,2],\"high\":[1]},\"action\":{\"kind\":"
        "\"box\",\"dtype\":\"f32\",\"shape\":[2]}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_err(relay_model_meta_from_json(bad[i], strlen(bad[i]), &back), RELAY_EFORMAT);
    const char *v2 = "{\"format\":\"relay.model\",\"format_version\":2,\"version\":1}";
    assert_err(relay_model_meta_from_json(v2, strlen(v2), &back), RELAY_EVERSION);
    relay_log_set_level(RELAY_LOG_WARN);
}

static void test_dir_roundtrip(void **state)
{
    (void)state;
    relay_bundle *b = fixture_bundle(7);
    char dir[] = "/tmp/relay_bundle_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[64];
    snprintf(sub, sizeof sub, "%s/v7", dir);
    assert_ok(relay_bundle_save(b, sub));
    relay_bundle *c;
    assert_ok(relay_bundle_load(sub, &c));
    check_meta(relay_bundle_meta(c), 7);
    same_outputs(relay_bundle_model(b), relay_bundle_model(c));
    /* A bare .onnx file: spaces come from the graph. */
    char p[1200];
    snprintf(p, sizeof p, "%s/model.onnx", sub);
    relay_bundle *d;
    assert_ok(relay_bundle_load(p, &d));
    const relay_model_meta *dm = relay_bundle_meta(d);
    assert_int_equal(dm->version, 0);
    assert_false(dm->obs.discrete);
    assert_int_equal(dm->obs.rank, 1);
    assert_int_equal(dm->obs.shape[0], 4);
    assert_false(dm->act.discrete);
    assert_int_equal(dm->act.shape[0], 2);
    relay_model *taken = relay_bundle_take_model(d);
    assert_non_null(taken);
    assert_null(relay_bundle_model(d));
    relay_model_free(taken);
    relay_bundle_free(d);
    snprintf(p, sizeof p, "%s/tests/data/model/mlp_8_32_16_4_relu_softmax_op13.onnx", g_src);
    assert_ok(relay_bundle_load(p, &d));
    assert_true(relay_bundle_meta(d)->act.discrete);
    assert_int_equal(relay_bundle_meta(d)->act.n, 4);
    relay_bundle_free(d);
    /* Missing pieces. */
    relay_log_set_level(RELAY_LOG_OFF);
    snprintf(p, sizeof p, "%s/model.onnx", sub);
    unlink(p);
    assert_err(relay_bundle_load(sub, &d), RELAY_ENOTFOUND);
    assert_err(relay_bundle_load("/nonexistent/bundle", &d), RELAY_ENOTFOUND);
    relay_log_set_level(RELAY_LOG_WARN);
    snprintf(p, sizeof p, "%s/metadata.json", sub);
    unlink(p);
    rmdir(sub);
    rmdir(dir);
    relay_bundle_free(b);
    relay_bundle_free(c);
}

static void test_blob(void **state)
{
    (void)state;
    relay_bundle *b = fixture_bundle(11);
    uint8_t *blob;
    size_t len;
    assert_ok(relay_bundle_to_blob(b, &blob, &len));
    assert_memory_equal(blob, "RLYB", 4);
    assert_int_equal(blob[4], 1);
    relay_bundle *c;
    assert_ok(relay_bundle_from_blob(blob, len, &c));
    check_meta(relay_bundle_meta(c), 11);
    same_outputs(relay_bundle_model(b), relay_bundle_model(c));
    relay_bundle_free(c);
    relay_log_set_level(RELAY_LOG_OFF);
    for (size_t cut = 0; cut < len; cut += 1 + len / 50) {
        relay_err e = relay_bundle_from_blob(blob, cut, &c);
        assert_true(e == RELAY_ETRUNCATED || e == RELAY_EFORMAT);
        assert_null(c);
    }
    uint8_t *big = malloc(len + 1);
    memcpy(big, blob, len);
    big[len] = 0;
    assert_err(relay_bundle_from_blob(big, len + 1, &c), RELAY_EFORMAT);
    free(big);
    blob[4] = 2;
    assert_err(relay_bundle_from_blob(blob, len, &c), RELAY_EVERSION);
    blob[4] = 1;
    blob[0] = 'X';
    assert_err(relay_bundle_from_blob(blob, len, &c), RELAY_EFORMAT);
    blob[0] = 'R';
    blob[8] = 0xff;
    blob[9] = 0xff;
    blob[10] = 0xff;
    assert_err(relay_bundle_from_blob(blob, len, &c), RELAY_ETOOBIG);
    relay_log_set_level(RELAY_LOG_WARN);
    free(blob);
    relay_bundle_free(b);
}

static void test_meta_mismatch(void **state)
{
    (void)state;
    char p[1200];
    snprintf(p, sizeof p, "%s/tests/data/model/mlp_4_64_64_2_tanh_op17.onnx", g_src);
    size_t len;
    uint8_t *onnx = read_all(p, &len);
    relay_model_meta meta;
    make_meta(&meta, 1);
    meta.obs.shape[0] = 5; /* model input is 4 wide */
    relay_bundle *b;
    relay_log_set_level(RELAY_LOG_OFF);
    assert_err(relay_bundle_new(onnx, len, &meta, &b), RELAY_ESHAPE);
    assert_err(relay_bundle_new(onnx, len / 2, &meta, &b), RELAY_EFORMAT);
    relay_log_set_level(RELAY_LOG_WARN);
    relay_model_meta_fini(&meta);
    free(onnx);
}

int main(void)
{
    const char *src = getenv("RELAY_SOURCE_DIR");
    snprintf(g_src, sizeof g_src, "%s", src ? src : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meta_json),
        cmocka_unit_test(test_dir_roundtrip),
        cmocka_unit_test(test_blob),
        cmocka_unit_test(test_meta_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
