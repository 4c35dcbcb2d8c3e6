/*
 * Integration test: write a Relay CSV file, read it back with /usr/bin/python3's csv module
 * (src/sink/csv_check.py) and compare the header, the row count and every cell exactly (floats
 * must parse back to the identical f32 bits).
 */
#include "test_util.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <sys/wait.h>

#include "sink/sink_test_util.h"

static const char *python(void)
{
    return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : NULL;
}

static cJSON *run_check(const char *file)
{
    const char *src = getenv("RELAY_SOURCE_DIR");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s '%s/src/sink/csv_check.py' '%s'", python(), src ? src : ".",
             file);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *text = tu_read_all(p, NULL);
    int rc = pclose(p);
    assert_non_null(text);
    if (rc != 0)
        fail_msg("csv_check.py exited with %d", WEXITSTATUS(rc));
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static const char *cell(const cJSON *rows, int r, int c)
{
    const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(rows, r), c);
    assert_non_null(v);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static void assert_bits(const cJSON *f32, int r, int c, float want)
{
    const cJSON *v = cJSON_GetArrayItem(cJSON_GetArrayItem(f32, r), c);
    assert_non_null(v);
    assert_true(cJSON_IsNumber(v));
    uint32_t w;
    memcpy(&w, &want, 4);
    if ((uint32_t)v->valuedouble != w)
        fail_msg("row %d col %d: python read bits 0x%08x, wrote %.9g (0x%08x)", r, c,
                 (uint32_t)v->valuedouble, want, w);
}

static void assert_int_cell(const cJSON *rows, int r, int c, int64_t want)
{
    const char *s = cell(rows, r, c);
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end || v != want)
        fail_msg("row %d col %d: '%s' != %lld", r, c, s, (long long)want);
}

static void csv_reads_back_exactly_in_python(void **state)
{
    if (!python())
        skip();
    char dir[256];
    assert_int_equal(tu_tmpdir(dir, sizeof dir), 0);
    relay_step_spec spec = tu_spec(RELAY_I32, true, 2);
    enum { NT = 5 };
    uint32_t lens[NT] = {40, 0, 25, 1, 60};
    relay_traj *t[NT];
    for (int i = 0; i < NT; i++) {
        t[i] = tu_make(&spec, lens[i], 7 + (uint64_t)i);
        assert_non_null(t[i]);
    }
    /* Awkward floats on top of the random bit patterns. */
    float special[] = {0.0f,        -0.0f,        1e-45f, 3.4028235e38f, 0.1f,
                       1.0f / 3.0f, 123456789.0f, -1e-7f, 16777216.0f,   1e10f};
    for (size_t k = 0; k < sizeof special / sizeof special[0]; k++)
        ((float *)t[0]->obs)[k] = special[k];
    relay_sink_config cfg = {
        .kind = RELAY_SINK_CSV, .dir = dir, .run_name = "run", .buffer_bytes = 4096};
    relay_sink *s;
    assert_ok(relay_sink_open(&cfg, &s));
    assert_ok(relay_sink_write_batch(s, t, NT));
    char path[512];
    assert_ok(relay_sink_path(s, path, sizeof path));
    assert_ok(relay_sink_close(s));

    cJSON *j = run_check(path);
    const cJSON *hdr = cJSON_GetObjectItem(j, "header");
    const char *want_hdr[] = {
        "actor_id",    "env_id",     "env_label",    "episode",  "policy_version", "traj_start_ns",
        "traj_end_ns", "step",       "timestamp_ns", "obs_0",    "obs_1",          "obs_2",
        "obs_3",       "act_0",      "act_1",        "mask_0",   "mask_1",         "mask_2",
        "reward",      "terminated", "truncated",    "aux.logp", "aux.value"};
    int ncol = (int)(sizeof want_hdr / sizeof want_hdr[0]);
    assert_int_equal(cJSON_GetArraySize(hdr), ncol);
    for (int c = 0; c < ncol; c++)
        assert_string_equal(cJSON_GetArrayItem(hdr, c)->valuestring, want_hdr[c]);
    const cJSON *rows = cJSON_GetObjectItem(j, "rows");
    const cJSON *f32 = cJSON_GetObjectItem(j, "f32");
    int r = 0;
    for (int ti = 0; ti < NT; ti++) {
        const relay_traj *tr = t[ti];
        char id[RELAY_ID_STRLEN + 1];
        relay_id_format(tr->actor, id);
        for (uint32_t i = 0; i < tr->len; i++, r++) {
            assert_string_equal(cell(rows, r, 0), id);
            assert_int_cell(rows, r, 1, tr->env_id);
            assert_string_equal(cell(rows, r, 2), tr->env_label);
            assert_int_cell(rows, r, 3, tr->episode);
            assert_int_cell(rows, r, 4, tr->policy_version);
            assert_int_cell(rows, r, 5, tr->start_ns);
            assert_int_cell(rows, r, 6, tr->end_ns);
            assert_int_cell(rows, r, 7, i);
            assert_int_cell(rows, r, 8, tr->ts[i]);
            for (int k = 0; k < 4; k++)
                assert_bits(f32, r, 9 + k, ((float *)tr->obs)[i * 4 + k]);
            for (int k = 0; k < 2; k++)
                assert_int_cell(rows, r, 13 + k, ((int32_t *)tr->act)[i * 2 + k]);
            for (int k = 0; k < 3; k++)
                assert_int_cell(rows, r, 15 + k, tr->mask[i * 3 + k] != 0);
            assert_bits(f32, r, 18, tr->reward[i]);
            assert_int_cell(rows, r, 19, tr->terminated[i] != 0);
            assert_int_cell(rows, r, 20, tr->truncated[i] != 0);
            assert_bits(f32, r, 21, tr->aux[i * 2]);
            assert_bits(f32, r, 22, tr->aux[i * 2 + 1]);
        }
    }
    assert_int_equal(cJSON_GetArraySize(rows), r);
    cJSON_Delete(j);
    for (int i = 0; i < NT; i++)
        relay_traj_free(t[i]);
    tu_rmtree(dir);
}

static void f64_columns_round_trip(void **state)
{
    if (!python())
        skip();
    char dir[256];
    assert_int_equal(tu_tmpdir(dir, sizeof dir), 0);
    relay_step_spec spec = tu_spec(RELAY_F64, false, 0);
    relay_traj *t = tu_make(&spec, 20, 3);
    relay_sink_config cfg = {.kind = RELAY_SINK_CSV, .dir = dir, .run_name = "f64"};
    relay_sink *s;
    assert_ok(relay_sink_open(&cfg, &s));
    assert_ok(relay_sink_write_batch(s, &t, 1));
    char path[512];
    assert_ok(relay_sink_path(s, path, sizeof path));
    assert_ok(relay_sink_close(s));
    cJSON *j = run_check(path);
    const cJSON *rows = cJSON_GetObjectItem(j, "rows");
    assert_int_equal(cJSON_GetArraySize(rows), 20);
    for (int r = 0; r < 20; r++)
        for (int k = 0; k < 2; k++) {
            double want = ((double *)t->act)[r * 2 + k];
            double got = strtod(cell(rows, r, 13 + k), NULL);
            assert_memory_equal(&got, &want, sizeof got);
        }
    cJSON_Delete(j);
    relay_traj_free(t);
    tu_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(csv_reads_back_exactly_in_python),
        cmocka_unit_test(f64_columns_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
