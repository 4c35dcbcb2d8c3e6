/* relay_train_run: bad configurations are named errors, poll stops a run, the run files exist. */
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relay/relay.h"
#include "relay/train.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/relay_train_run_XXXXXX");
    relay_log_set_level(RELAY_LOG_OFF);
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_bad_config(void **state)
{
    (void)state;
    relay_train_result res;
    assert_err(relay_train_run("{\"train\": {\"env\": \"NoSuchEnv-v9\"}}", false, NULL, NULL, &res),
               RELAY_ENOTFOUND);
    assert_err(relay_train_run("{\"train\": {\"actors\": 0}}", false, NULL, NULL, &res),
               RELAY_ECONFIG);
    assert_err(relay_train_run("{\"train\": {\"algo\": \"dqn\"}}", false, NULL, NULL, &res),
               RELAY_ECONFIG);
    assert_err(relay_train_run("{not json", false, NULL, NULL, &res), RELAY_EFORMAT);
}

typedef struct poll_state {
    int calls;
    uint32_t last_updates;
} poll_state;

/* stop_after_updates lets the run go until 3 updates happened. */
static bool stop_after_updates(const relay_train_result *now, void *user)
{
    poll_state *ps = user;
    ps->calls++;
    ps->last_updates = now->updates;
    return now->updates < 3;
}

static void test_poll_stops_and_files_written(void **state)
{
    (void)state;
    char json[256];
    snprintf(json, sizeof json,
             "{\"train\": {\"out\": \"%s/run\", \"seed\": 5, \"steps\": 10000000, \"target\": "
             "100000}}",
             tmpdir);
    poll_state ps = {0};
    relay_train_result res;
    assert_ok(relay_train_run(json, false, stop_after_updates, &ps, &res));
    assert_true(ps.calls > 0);
    assert_string_equal(res.stop_reason, "interrupted");
    assert_true(res.updates >= 3);
    assert_true(res.steps > 0);
    assert_false(res.target_reached);
    assert_true(res.target == 100000.0f);
    char path[256];
    snprintf(path, sizeof path, "%s/run", tmpdir);
    assert_string_equal(res.out_dir, path);
    const char *files[] = {"config.json", "metrics.csv", "learning_curve.svg", "policy.onnx"};
    for (size_t i = 0; i < 4; i++) {
        struct stat sb;
        snprintf(path, sizeof path, "%s/run/%s", tmpdir, files[i]);
        assert_int_equal(stat(path, &sb), 0);
        assert_true(sb.st_size > 0);
    }
}

static void test_budget_spent(void **state)
{
    (void)state;
    char json[256];
    snprintf(json, sizeof json,
             "{\"routers\": 1, \"train\": {\"out\": \"%s/b\", \"actors\": 1, \"steps\": 4096, "
             "\"target\": 100000}}",
             tmpdir);
    relay_train_result res;
    assert_ok(relay_train_run(json, false, NULL, NULL, &res));
    assert_string_equal(res.stop_reason, "step budget spent");
    assert_true(res.steps >= 4096);
    assert_true(res.version >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_poll_stops_and_files_written),
        cmocka_unit_test(test_budget_spent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
