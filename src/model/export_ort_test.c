/*
 * Export interoperability: Relay MLPs exported to ONNX must give the same outputs in
 * onnxruntime (onnxruntime-node, CPU) as in Relay. Installs tests/node's npm package on first use.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/model.h"
#include "test_util.h"

static char g_node_dir[1024];
static char g_tmp[64];

static uint32_t g_seed = 99;

static float frand(void)
{
    g_seed = g_seed * 1664525u + 1013904223u;
    return (float)((g_seed >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static int setup(void **state)
{
    (void)state;
    if (system("command -v node >/dev/null 2>&1") != 0) {
        fprintf(stderr, "node is not installed\n");
        return 0;
    }
    char p[1200];
    struct stat st;
    snprintf(p, sizeof p, "%s/node_modules/onnxruntime-node/package.json", g_node_dir);
    if (stat(p, &st) != 0) {
        char cmd[1400];
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && npm install --ignore-scripts --no-audit --no-fund >&2", g_node_dir);
        fprintf(stderr, "installing onnxruntime-node: %s\n", cmd);
        if (system(cmd) != 0)
            fprintf(stderr, "npm install failed\n");
    }
    snprintf(g_tmp, sizeof g_tmp, "/tmp/relay_ort_XXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void check_mlp(uint32_t n_layers, const uint32_t *sizes, const relay_activation *acts,
                      int batch)
{
    const float *ws[8], *bs[8];
    float *wbuf[8], *bbuf[8];
    for (uint32_t i = 0; i < n_layers; i++) {
        wbuf[i] = malloc(sizeof(float) * sizes[i] * sizes[i + 1]);
        bbuf[i] = malloc(sizeof(float) * sizes[i + 1]);
        for (uint32_t j = 0; j < sizes[i] * sizes[i + 1]; j++)
            wbuf[i][j] = frand() * 0.7f;
        for (uint32_t j = 0; j < sizes[i + 1]; j++)
            bbuf[i][j] = frand() * 0.3f;
        ws[i] = wbuf[i];
        bs[i] = bbuf[i];
    }
    relay_mlp_desc d = {n_layers, sizes, acts, ws, bs};
    uint8_t *onnx;
    size_t len;
    assert_ok(relay_mlp_to_onnx(&d, &onnx, &len));
    relay_model *m;
    assert_ok(relay_model_from_onnx(onnx, len, &m));
    const uint32_t in = sizes[0], out = sizes[n_layers];
    float *x = malloc(sizeof(float) * batch * in), *y = malloc(sizeof(float) * batch * out);
    float *ort = calloc((size_t)batch * out, sizeof(float));
    for (uint32_t i = 0; i < batch * in; i++)
        x[i] = frand() * 2.5f;
    assert_ok(relay_model_forward(m, x, batch, y));

    char mp[128], ip[128], op[128], cmd[1800], line[256] = "";
    snprintf(mp, sizeof mp, "%s/model.onnx", g_tmp);
    snprintf(ip, sizeof ip, "%s/in.f32", g_tmp);
    snprintf(op, sizeof op, "%s/out.f32", g_tmp);
    write_file(mp, onnx, len);
    write_file(ip, x, sizeof(float) * batch * in);
    snprintf(cmd, sizeof cmd, "node '%s/ort_check.js' '%s' '%s' %d %u '%s'", g_node_dir, mp, ip,
             batch, in, op);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(line, sizeof line, p))
        line[0] = 0;
    int rc = pclose(p);
    if (rc != 0)
        fail_msg("onnxruntime check failed (%d): %s", rc, cmd);
    char want[128];
    snprintf(want, sizeof want, "ok input=input output=output dims=%dx%u", batch, out);
    if (strncmp(line, want, strlen(want)) != 0)
        fail_msg("node printed '%s', want '%s'", line, want);
    FILE *f = fopen(op, "rb");
    assert_non_null(f);
    assert_int_equal(fread(ort, sizeof(float), (size_t)batch * out, f), (size_t)batch * out);
    fclose(f);
    for (uint32_t i = 0; i < batch * out; i++) {
        float tol = 1e-5f * (fabsf(ort[i]) > 1 ? fabsf(ort[i]) : 1);
        if (!(fabsf(y[i] - ort[i]) <= tol))
            fail_msg("sizes %u-%u: relay[%u] = %.9g, onnxruntime = %.9g", sizes[0], sizes[1], i,
                     y[i], ort[i]);
    }
    free(x);
    free(y);
    free(ort);
    free(onnx);
    relay_model_free(m);
    for (uint32_t i = 0; i < n_layers; i++) {
        free(wbuf[i]);
        free(bbuf[i]);
    }
}

static void test_onnxruntime_matches(void **state)
{
    (void)state;
    if (system("command -v node >/dev/null 2>&1") != 0)
        skip();
    static const uint32_t s1[] = {4, 64, 64, 2};
    static const relay_activation a1[] = {RELAY_ACT_TANH, RELAY_ACT_TANH, RELAY_ACT_NONE};
    check_mlp(3, s1, a1, 9);
    static const uint32_t s2[] = {8, 32, 16, 4};
    static const relay_activation a2[] = {RELAY_ACT_RELU, RELAY_ACT_RELU, RELAY_ACT_SOFTMAX};
    check_mlp(3, s2, a2, 5);
    static const uint32_t s3[] = {3, 5, 1};
    static const relay_activation a3[] = {RELAY_ACT_SIGMOID, RELAY_ACT_SIGMOID};
    check_mlp(2, s3, a3, 1);
    static const uint32_t s4[] = {6, 20};
    static const relay_activation a4[] = {RELAY_ACT_NONE};
    check_mlp(1, s4, a4, 17);
}

int main(void)
{
    const char *src = getenv("RELAY_SOURCE_DIR");
    snprintf(g_node_dir, sizeof g_node_dir, "%s/tests/node", src ? src : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_onnxruntime_matches),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
