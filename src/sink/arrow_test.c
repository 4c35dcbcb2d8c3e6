/*
 * Integration test: write a Relay Arrow file, read it back with Apache Arrow JS
 * (tests/arrow/check.js, installing npm's apache-arrow when missing) and compare the schema,
 * the row count and every value with what was written.
 */
#include "test_util.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>

#include "sink/sink_test_util.h"

static const char *src_dir(void)
{
    const char *s = getenv("RELAY_SOURCE_DIR");
    return s ? s : ".";
}

static bool have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* ensure_node_modules installs tests/arrow's packages once (serialised with flock). */
static void ensure_node_modules(void)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd '%s/tests/arrow' && (test -d node_modules/apache-arrow || "
             "flock .npm-lock sh -c 'test -d node_modules/apache-arrow || "
             "npm install --no-audit --no-fund --ignore-scripts >&2')",
             src_dir());
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("npm install in tests/arrow failed (exit %d)", rc);
}

static cJSON *run_check(const char *file)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "node '%s/tests/arrow/check.js' '%s'", src_dir(), file);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len;
    char *text = tu_read_all(p, &len);
    int rc = pclose(p);
    assert_non_null(text);
    if (rc != 0)
        fail_msg("check.js exited with %d", WEXITSTATUS(rc));
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static int64_t jint(const cJSON *v)
{
    if (cJSON_IsString(v))
        return strtoll(v->valuestring, NULL, 10);
    assert_true(cJSON_IsNumber(v));
    return (int64_t)v->valuedouble;
}

static float jf32(const cJSON *v)
{
    assert_true(cJSON_IsNumber(v));
    return (float)v->valuedouble;
}

static void assert_f32_same(float a, float b)
{
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    if (x != y)
        fail_msg("float %.9g (0x%08x) != %.9g (0x%08x)", a, x, b, y);
}

static const cJSON *field(const cJSON *fields, int i)
{
    const cJSON *f = cJSON_GetArrayItem(fields, i);
    assert_non_null(f);
    return f;
}

static void check_field(const cJSON *f, const char *name, int type_id, int bits, int list)
{
    assert_string_equal(cJSON_GetObjectItem(f, "name")->valuestring, name);
    const cJSON *t = cJSON_GetObjectItem(f, "type");
    assert_int_equal(jint(cJSON_GetObjectItem(t, "typeId")), type_id);
    if (bits)
        assert_int_equal(jint(cJSON_GetObjectItem(t, "bitWidth")), bits);
    if (list)
        assert_int_equal(jint(cJSON_GetObjectItem(t, "listSize")), list);
}

static const char *meta(const cJSON *f, const char *key)
{
    const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(f, "metadata"), key);
    return m ? m->valuestring : NULL;
}

static void arrow_file_reads_back_in_apache_arrow_js(void **state)
{
    if (!have_tool("node") || !have_tool("npm"))
        skip();
    ensure_node_modules();
    char dir[256];
    assert_int_equal(tu_tmpdir(dir, sizeof dir), 0);
    relay_step_spec spec = tu_spec(RELAY_I32, true, 2);
    enum { NT = 6 };
    uint32_t lens[NT] = {5, 0, 13, 1, 9, 4};
    relay_traj *t[NT];
    for (int i = 0; i < NT; i++) {
        t[i] = tu_make(&spec, lens[i], 100 + (uint64_t)i);
        assert_non_null(t[i]);
    }
    relay_sink_config cfg = {
        .kind = RELAY_SINK_ARROW, .dir = dir, .run_name = "run", .batch_rows = 7};
    relay_sink *s;
    assert_ok(relay_sink_open(&cfg, &s));
    assert_ok(relay_sink_write_batch(s, t, 3));
    assert_ok(relay_sink_flush(s)); /* a short batch in the middle */
    assert_ok(relay_sink_write_batch(s, t + 3, NT - 3));
    /* A trajectory with another spec is refused without harming the file. */
    relay_step_spec other = tu_spec(RELAY_F32, false, 1);
    relay_traj *odd = tu_make(&other, 3, 9);
    assert_err(relay_sink_write_batch(s, &odd, 1), RELAY_ESHAPE);
    relay_traj_free(odd);
    relay_sink_stats st;
    relay_sink_stats_get(s, &st);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.trajs, NT);
    char path[512];
    assert_ok(relay_sink_path(s, path, sizeof path));
    assert_ok(relay_sink_close(s));

    cJSON *j = run_check(path);
    uint32_t total = 0;
    for (int i = 0; i < NT; i++)
        total += lens[i];
    assert_int_equal(jint(cJSON_GetObjectItem(j, "numRows")), total);
    /* 5+0+13 = 18 rows -> 7,7,4 (flush); 1+9+4 = 14 -> 7,7. */
    assert_int_equal(jint(cJSON_GetObjectItem(j, "numBatches")), 5);
    const cJSON *sch = cJSON_GetObjectItem(j, "schema");
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(sch, "metadata"), "relay.format")->valuestring,
        "1");
    const cJSON *fields = cJSON_GetObjectItem(sch, "fields");
    assert_int_equal(cJSON_GetArraySize(fields), 17);
    check_field(field(fields, 0), "actor_id", 15, 0, 0);
    check_field(field(fields, 1), "env_id", 2, 64, 0);
    check_field(field(fields, 2), "env_label", 5, 0, 0);
    check_field(field(fields, 3), "episode", 2, 64, 0);
    check_field(field(fields, 4), "policy_version", 2, 64, 0);
    check_field(field(fields, 5), "traj_start_ns", 2, 64, 0);
    check_field(field(fields, 6), "traj_end_ns", 2, 64, 0);
    check_field(field(fields, 7), "step", 2, 32, 0);
    check_field(field(fields, 8), "timestamp_ns", 2, 64, 0);
    check_field(field(fields, 9), "obs", 16, 0, 4);
    assert_string_equal(meta(field(fields, 9), "relay.shape"), "[2,2]");
    assert_string_equal(meta(field(fields, 9), "relay.dtype"), "f32");
    check_field(field(fields, 10), "act", 16, 0, 2);
    assert_string_equal(meta(field(fields, 10), "relay.dtype"), "i32");
    check_field(field(fields, 11), "mask", 16, 0, 3);
    assert_string_equal(meta(field(fields, 11), "relay.dtype"), "bool");
    check_field(field(fields, 12), "reward", 3, 0, 0);
    check_field(field(fields, 13), "terminated", 6, 0, 0);
    check_field(field(fields, 14), "truncated", 6, 0, 0);
    check_field(field(fields, 15), "aux.logp", 3, 0, 0);
    check_field(field(fields, 16), "aux.value", 3, 0, 0);
    const cJSON *child =
        cJSON_GetObjectItem(cJSON_GetObjectItem(field(fields, 10), "type"), "child");
    check_field(child, "item", 2, 32, 0);

    const cJSON *cols = cJSON_GetObjectItem(j, "columns");
#define COL(name) cJSON_GetObjectItem(cols, name)
    uint32_t row = 0;
    for (int ti = 0; ti < NT; ti++) {
        const relay_traj *tr = t[ti];
        char hex[33];
        for (int b = 0; b < 16; b++)
            snprintf(hex + 2 * b, 3, "%02x", tr->actor.bytes[b]);
        for (uint32_t i = 0; i < tr->len; i++, row++) {
            assert_string_equal(cJSON_GetArrayItem(COL("actor_id"), (int)row)->valuestring, hex);
            assert_int_equal(jint(cJSON_GetArrayItem(COL("env_id"), (int)row)), tr->env_id);
            assert_string_equal(cJSON_GetArrayItem(COL("env_label"), (int)row)->valuestring,
                                tr->env_label);
            assert_int_equal(jint(cJSON_GetArrayItem(COL("episode"), (int)row)), tr->episode);
            assert_int_equal(jint(cJSON_GetArrayItem(COL("policy_version"), (int)row)),
                             tr->policy_version);
            assert_int_equal(jint(cJSON_GetArrayItem(COL("traj_start_ns"), (int)row)),
                             tr->start_ns);
            assert_int_equal(jint(cJSON_GetArrayItem(COL("traj_end_ns"), (int)row)), tr->end_ns);
            assert_int_equal(jint(cJSON_GetArrayItem(COL("step"), (int)row)), i);
            assert_int_equal(jint(cJSON_GetArrayItem(COL("timestamp_ns"), (int)row)), tr->ts[i]);
            const cJSON *o = cJSON_GetArrayItem(COL("obs"), (int)row);
            assert_int_equal(cJSON_GetArraySize(o), 4);
            for (int k = 0; k < 4; k++)
                assert_f32_same(jf32(cJSON_GetArrayItem(o, k)), ((float *)tr->obs)[i * 4 + k]);
            const cJSON *a = cJSON_GetArrayItem(COL("act"), (int)row);
            for (int k = 0; k < 2; k++)
                assert_int_equal(jint(cJSON_GetArrayItem(a, k)), ((int32_t *)tr->act)[i * 2 + k]);
            const cJSON *m = cJSON_GetArrayItem(COL("mask"), (int)row);
            for (int k = 0; k < 3; k++)
                assert_int_equal(cJSON_IsTrue(cJSON_GetArrayItem(m, k)), tr->mask[i * 3 + k] != 0);
            assert_f32_same(jf32(cJSON_GetArrayItem(COL("reward"), (int)row)), tr->reward[i]);
            assert_int_equal(cJSON_IsTrue(cJSON_GetArrayItem(COL("terminated"), (int)row)),
                             tr->terminated[i] != 0);
            assert_int_equal(cJSON_IsTrue(cJSON_GetArrayItem(COL("truncated"), (int)row)),
                             tr->truncated[i] != 0);
            assert_f32_same(jf32(cJSON_GetArrayItem(COL("aux.logp"), (int)row)), tr->aux[i * 2]);
            assert_f32_same(jf32(cJSON_GetArrayItem(COL("aux.value"), (int)row)),
                            tr->aux[i * 2 + 1]);
        }
    }
#undef COL
    cJSON_Delete(j);
    for (int i = 0; i < NT; i++)
        relay_traj_free(t[i]);
    tu_rmtree(dir);
}

static void rotated_files_each_read_back(void **state)
{
    if (!have_tool("node") || !have_tool("npm"))
        skip();
    ensure_node_modules();
    char dir[256];
    assert_int_equal(tu_tmpdir(dir, sizeof dir), 0);
    relay_step_spec spec = tu_spec(RELAY_F32, false, 0);
    relay_sink_config cfg = {.kind = RELAY_SINK_ARROW,
                             .dir = dir,
                             .run_name = "rot",
                             .batch_rows = 16,
                             .rotate_bytes = 2000};
    relay_sink *s;
    assert_ok(relay_sink_open(&cfg, &s));
    uint32_t rows = 0;
    for (int i = 0; i < 10; i++) {
        relay_traj *t = tu_make(&spec, 10, (uint64_t)i);
        rows += t->len;
        assert_ok(relay_sink_write_batch(s, &t, 1));
        relay_traj_free(t);
    }
    relay_sink_stats st;
    assert_ok(relay_sink_close(s));
    (void)st;
    uint32_t seen = 0;
    int files = 0;
    for (int k = 0; k < 100; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/rot.%05d.arrow", dir, k);
        if (access(path, F_OK) != 0)
            break;
        files++;
        cJSON *j = run_check(path);
        seen += (uint32_t)jint(cJSON_GetObjectItem(j, "numRows"));
        cJSON_Delete(j);
    }
    assert_true(files >= 2);
    assert_int_equal(seen, rows);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arrow_file_reads_back_in_apache_arrow_js),
        cmocka_unit_test(rotated_files_each_read_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
