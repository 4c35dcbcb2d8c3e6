/*
 * Integration test: write a Relay Arrow file pair (steps + trajectory table), read both back with
 * Apache Arrow JS (tests/arrow/check.js, installing npm's apache-arrow when missing) and compare
 * the schemas, the row counts and every value with what was written.
 */
#include "test_util.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
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

static const char *schema_meta(const cJSON *j, const char *key)
{
    const cJSON *m =
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "schema"), "metadata"), key);
    assert_non_null(m);
    return m->valuestring;
}

/* traj_path_of writes the trajectory table's path for a steps file path ending in ".arrow". */
static void traj_path_of(char *out, size_t n, const char *steps)
{
    size_t len = strlen(steps);
    assert_true(len > 6 && strcmp(steps + len - 6, ".arrow") == 0);
    snprintf(out, n, "%.*s.traj.arrow", (int)(len - 6), steps);
}

static double traj_return(const relay_traj *t)
{
    double r = 0;
    for (uint32_t i = 0; i < t->len; i++)
        r += t->reward[i];
    return r;
}

static void id_hex(const relay_traj *t, char hex[33])
{
    for (int b = 0; b < 16; b++)
        snprintf(hex + 2 * b, 3, "%02x", t->actor.bytes[b]);
}

#define CELL(cols, name, row) cJSON_GetArrayItem(cJSON_GetObjectItem(cols, name), (int)(row))

/* check_traj_row compares row r of the trajectory table with t (first_step as given). */
static void check_traj_row(const cJSON *cols, int r, const relay_traj *t, uint32_t first)
{
    char hex[33];
    id_hex(t, hex);
    assert_int_equal(jint(CELL(cols, "traj", r)), r);
    assert_string_equal(CELL(cols, "actor_id", r)->valuestring, hex);
    assert_int_equal(jint(CELL(cols, "env_id", r)), t->env_id);
    assert_string_equal(CELL(cols, "env_label", r)->valuestring, t->env_label);
    assert_int_equal(jint(CELL(cols, "episode", r)), t->episode);
    assert_int_equal(jint(CELL(cols, "policy_version", r)), t->policy_version);
    assert_int_equal(jint(CELL(cols, "traj_start_ns", r)), t->start_ns);
    assert_int_equal(jint(CELL(cols, "traj_end_ns", r)), t->end_ns);
    assert_int_equal(jint(CELL(cols, "length", r)), t->len);
    assert_int_equal(jint(CELL(cols, "first_step", r)), first);
    const cJSON *ret = CELL(cols, "return", r);
    assert_true(cJSON_IsNumber(ret));
    if (ret->valuedouble != traj_return(t))
        fail_msg("return %.17g != %.17g", ret->valuedouble, traj_return(t));
}

/* check_step_row compares row r of the steps table with step i of t (traj row idx). */
static void check_step_row(const cJSON *cols, int r, const relay_traj *t, uint32_t i, int idx,
                           bool mask)
{
    assert_int_equal(jint(CELL(cols, "traj", r)), idx);
    assert_int_equal(jint(CELL(cols, "step", r)), i);
    assert_int_equal(jint(CELL(cols, "timestamp_ns", r)), t->ts[i]);
    const cJSON *o = CELL(cols, "obs", r);
    assert_int_equal(cJSON_GetArraySize(o), 4);
    for (int k = 0; k < 4; k++)
        assert_f32_same(jf32(cJSON_GetArrayItem(o, k)), ((float *)t->obs)[i * 4 + k]);
    const cJSON *a = CELL(cols, "act", r);
    assert_int_equal(cJSON_GetArraySize(a), 2);
    for (int k = 0; k < 2; k++) {
        if (t->spec.act_dtype == RELAY_I32)
            assert_int_equal(jint(cJSON_GetArrayItem(a, k)), ((int32_t *)t->act)[i * 2 + k]);
        else
            assert_f32_same(jf32(cJSON_GetArrayItem(a, k)), ((float *)t->act)[i * 2 + k]);
    }
    if (mask) {
        const cJSON *m = CELL(cols, "mask", r);
        assert_int_equal(cJSON_GetArraySize(m), 3);
        for (int k = 0; k < 3; k++)
            assert_int_equal(cJSON_IsTrue(cJSON_GetArrayItem(m, k)), t->mask[i * 3 + k] != 0);
    }
    assert_f32_same(jf32(CELL(cols, "reward", r)), t->reward[i]);
    assert_int_equal(cJSON_IsTrue(CELL(cols, "terminated", r)), t->terminated[i] != 0);
    assert_int_equal(cJSON_IsTrue(CELL(cols, "truncated", r)), t->truncated[i] != 0);
    for (uint32_t j = 0; j < t->spec.n_aux; j++) {
        char name[40];
        snprintf(name, sizeof name, "aux.%s", t->spec.aux_names[j]);
        assert_f32_same(jf32(CELL(cols, name, r)), t->aux[i * t->spec.n_aux + j]);
    }
}

static void arrow_files_read_back_in_apache_arrow_js(void **state)
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
    t[3]->env_label[0] = '\0'; /* an empty string */
    relay_sink_config cfg = {
        .kind = RELAY_SINK_ARROW, .dir = dir, .run_name = "run", .batch_rows = 7};
    relay_sink *s;
    assert_ok(relay_sink_open(&cfg, &s));
    assert_ok(relay_sink_write_batch(s, t, 3));
    assert_ok(relay_sink_flush(s)); /* a short batch in the middle */
    assert_ok(relay_sink_write_batch(s, t + 3, NT - 3));
    /* A trajectory with another spec is refused without harming the files. */
    relay_step_spec other = tu_spec(RELAY_F32, false, 1);
    relay_traj *odd = tu_make(&other, 3, 9);
    assert_err(relay_sink_write_batch(s, &odd, 1), RELAY_ESHAPE);
    relay_traj_free(odd);
    relay_sink_stats st;
    relay_sink_stats_get(s, &st);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.trajs, NT);
    char path[512], tpath[512];
    assert_ok(relay_sink_path(s, path, sizeof path));
    assert_ok(relay_sink_close(s));
    char want[512];
    snprintf(want, sizeof want, "%s/run.arrow", dir);
    assert_string_equal(path, want);
    traj_path_of(tpath, sizeof tpath, path);

    /* The trajectory table: one row per trajectory, including the empty one. */
    cJSON *jt = run_check(tpath);
    assert_int_equal(jint(cJSON_GetObjectItem(jt, "numRows")), NT);
    /* Trajectory rows go out with the step batches that first reference them: 3 (with the first
     * 7-row batch), then 2 and 1 (with the two batches after the flush). */
    assert_int_equal(jint(cJSON_GetObjectItem(jt, "numBatches")), 3);
    assert_string_equal(schema_meta(jt, "relay.format"), "2");
    assert_string_equal(schema_meta(jt, "relay.table"), "trajectories");
    const cJSON *tf = cJSON_GetObjectItem(cJSON_GetObjectItem(jt, "schema"), "fields");
    assert_int_equal(cJSON_GetArraySize(tf), 11);
    check_field(field(tf, 0), "traj", 2, 32, 0);
    check_field(field(tf, 1), "actor_id", 15, 0, 0);
    assert_string_equal(meta(field(tf, 1), "relay.kind"), "uuid");
    check_field(field(tf, 2), "env_id", 2, 64, 0);
    check_field(field(tf, 3), "env_label", 5, 0, 0);
    check_field(field(tf, 4), "episode", 2, 64, 0);
    check_field(field(tf, 5), "policy_version", 2, 64, 0);
    check_field(field(tf, 6), "traj_start_ns", 2, 64, 0);
    check_field(field(tf, 7), "traj_end_ns", 2, 64, 0);
    check_field(field(tf, 8), "length", 2, 32, 0);
    check_field(field(tf, 9), "first_step", 2, 32, 0);
    check_field(field(tf, 10), "return", 3, 0, 0);
    const cJSON *tcols = cJSON_GetObjectItem(jt, "columns");
    for (int i = 0; i < NT; i++)
        check_traj_row(tcols, i, t[i], 0);

    /* The steps table: one row per step, joined to the trajectory table by traj. */
    cJSON *j = run_check(path);
    uint32_t total = 0;
    for (int i = 0; i < NT; i++)
        total += lens[i];
    assert_int_equal(jint(cJSON_GetObjectItem(j, "numRows")), total);
    /* 5+0+13 = 18 rows -> 7,7,4 (flush); 1+9+4 = 14 -> 7,7. */
    assert_int_equal(jint(cJSON_GetObjectItem(j, "numBatches")), 5);
    assert_string_equal(schema_meta(j, "relay.format"), "2");
    assert_string_equal(schema_meta(j, "relay.table"), "steps");
    const cJSON *fields = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "schema"), "fields");
    assert_int_equal(cJSON_GetArraySize(fields), 11);
    check_field(field(fields, 0), "traj", 2, 32, 0);
    check_field(field(fields, 1), "step", 2, 32, 0);
    check_field(field(fields, 2), "timestamp_ns", 2, 64, 0);
    check_field(field(fields, 3), "obs", 16, 0, 4);
    assert_string_equal(meta(field(fields, 3), "relay.shape"), "[2,2]");
    assert_string_equal(meta(field(fields, 3), "relay.dtype"), "f32");
    check_field(field(fields, 4), "act", 16, 0, 2);
    assert_string_equal(meta(field(fields, 4), "relay.dtype"), "i32");
    check_field(field(fields, 5), "mask", 16, 0, 3);
    assert_string_equal(meta(field(fields, 5), "relay.dtype"), "bool");
    check_field(field(fields, 6), "reward", 3, 0, 0);
    check_field(field(fields, 7), "terminated", 6, 0, 0);
    check_field(field(fields, 8), "truncated", 6, 0, 0);
    check_field(field(fields, 9), "aux.logp", 3, 0, 0);
    check_field(field(fields, 10), "aux.value", 3, 0, 0);
    const cJSON *child =
        cJSON_GetObjectItem(cJSON_GetObjectItem(field(fields, 4), "type"), "child");
    check_field(child, "item", 2, 32, 0);
    const cJSON *cols = cJSON_GetObjectItem(j, "columns");
    uint32_t row = 0;
    for (int ti = 0; ti < NT; ti++)
        for (uint32_t i = 0; i < t[ti]->len; i++, row++)
            check_step_row(cols, (int)row, t[ti], i, ti, true);
    assert_int_equal(row, total);
    cJSON_Delete(j);
    cJSON_Delete(jt);
    for (int i = 0; i < NT; i++)
        relay_traj_free(t[i]);
    tu_rmtree(dir);
}

/* Rotated file pairs each read back, and joining every pair's steps to its own trajectory table
 * gives back every step of every trajectory exactly once, also for trajectories split by a
 * rotation (their second part gets a trajectory row with first_step > 0 in the next pair). */
static void rotated_file_pairs_each_read_back(void **state)
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
    enum { NT = 10, LEN = 10 };
    relay_traj *t[NT];
    for (int i = 0; i < NT; i++) {
        t[i] = tu_make(&spec, LEN, (uint64_t)i);
        assert_non_null(t[i]);
        assert_ok(relay_sink_write_batch(s, &t[i], 1));
    }
    relay_sink_stats st;
    relay_sink_stats_get(s, &st);
    assert_ok(relay_sink_close(s));
    int seen[NT][LEN];
    memset(seen, 0, sizeof seen);
    int files = 0, continued = 0;
    for (int k = 0; k < 100; k++) {
        char path[512], tpath[512];
        snprintf(path, sizeof path, "%s/rot.%05d.arrow", dir, k);
        snprintf(tpath, sizeof tpath, "%s/rot.%05d.traj.arrow", dir, k);
        if (access(path, F_OK) != 0) {
            assert_int_not_equal(access(tpath, F_OK), 0); /* no trajectory table alone */
            break;
        }
        files++;
        cJSON *jt = run_check(tpath), *js = run_check(path);
        const cJSON *tc = cJSON_GetObjectItem(jt, "columns"),
                    *sc = cJSON_GetObjectItem(js, "columns");
        int nt = (int)jint(cJSON_GetObjectItem(jt, "numRows"));
        int ns = (int)jint(cJSON_GetObjectItem(js, "numRows"));
        /* The trajectories here are identified by episode (seed * 7). */
        int which[NT * 2];
        assert_true(nt <= NT * 2);
        for (int r = 0; r < nt; r++) {
            int64_t ep = jint(CELL(tc, "episode", r));
            assert_true(ep % 7 == 0 && ep / 7 < NT);
            which[r] = (int)(ep / 7);
            uint32_t first = (uint32_t)jint(CELL(tc, "first_step", r));
            continued += first > 0;
            check_traj_row(tc, r, t[which[r]], first);
        }
        for (int r = 0; r < ns; r++) {
            int idx = (int)jint(CELL(sc, "traj", r));
            assert_true(idx >= 0 && idx < nt);
            int step = (int)jint(CELL(sc, "step", r));
            assert_true(step >= jint(CELL(tc, "first_step", idx)) && step < LEN);
            check_step_row(sc, r, t[which[idx]], (uint32_t)step, idx, false);
            seen[which[idx]][step]++;
        }
        cJSON_Delete(jt);
        cJSON_Delete(js);
    }
    assert_true(files >= 2);
    /* Both tables of every pair count as files (the last pair was opened by the close). */
    assert_true(st.files % 2 == 0 && st.files >= 2 * (uint64_t)(files - 1));
    assert_true(continued >= 1);
    for (int i = 0; i < NT; i++)
        for (int k = 0; k < LEN; k++)
            assert_int_equal(seen[i][k], 1);
    for (int i = 0; i < NT; i++)
        relay_traj_free(t[i]);
    tu_rmtree(dir);
}

/* A fixed path "x.arrow" pairs with "x.traj.arrow"; a device path takes both tables. */
static void fixed_paths_pair_up(void **state)
{
    char dir[256];
    assert_int_equal(tu_tmpdir(dir, sizeof dir), 0);
    relay_step_spec spec = tu_spec(RELAY_F32, false, 1);
    relay_traj *t = tu_make(&spec, 3, 1);
    char path[512], tpath[512];
    snprintf(path, sizeof path, "%s/fixed.arrow", dir);
    snprintf(tpath, sizeof tpath, "%s/fixed.traj.arrow", dir);
    const char *paths[2] = {path, "/dev/null"};
    for (int k = 0; k < 2; k++) {
        relay_sink_config cfg = {.kind = RELAY_SINK_ARROW, .path = paths[k]};
        relay_sink *s;
        assert_ok(relay_sink_open(&cfg, &s));
        assert_ok(relay_sink_write_batch(s, &t, 1));
        relay_sink_stats st;
        relay_sink_stats_get(s, &st);
        assert_int_equal(st.files, 2);
        assert_ok(relay_sink_close(s));
    }
    struct stat sb;
    assert_int_equal(stat(tpath, &sb), 0);
    assert_true(sb.st_size > 100);
    assert_int_not_equal(access("/dev/null.traj.arrow", F_OK), 0);
    relay_traj_free(t);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(arrow_files_read_back_in_apache_arrow_js),
        cmocka_unit_test(rotated_file_pairs_each_read_back),
        cmocka_unit_test(fixed_paths_pair_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
