/* relay eval: the printed statistics equal an independent replay of the same episodes. */
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_support.h"
#include "relay/env.h"
#include "relay/model.h"

static char tmpdir[64];

static int setup(void **state)
{
    strcpy(tmpdir, "/tmp/relay_cli_eval_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A hand-made linear CartPole controller: logit1 - logit0 = 2 (w . obs). */
static const float ctrl_w[4] = {0.0f, 0.1f, 1.0f, 0.5f};

static void write_linear(const char *path, uint32_t in, uint32_t out, const float *w,
                         uint8_t **bytes_out, size_t *len_out)
{
    uint32_t sizes[2] = {in, out};
    const float *ws[1] = {w};
    relay_mlp_desc d = {.n_layers = 1, .sizes = sizes, .weights = ws};
    uint8_t *bytes = NULL;
    size_t len = 0;
    assert_ok(relay_mlp_to_onnx(&d, &bytes, &len));
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, len, f), len);
    fclose(f);
    if (bytes_out) {
        *bytes_out = bytes;
        *len_out = len;
    } else {
        free(bytes);
    }
}

typedef struct result {
    int rc;
    char out[2048], err[2048];
} result;

static void run(result *r, int argc, const char **argv)
{
    char *ob = NULL, *eb = NULL;
    size_t on = 0, en = 0;
    FILE *o = open_memstream(&ob, &on), *e = open_memstream(&eb, &en);
    assert_non_null(o);
    assert_non_null(e);
    r->rc = rly_cli_eval_io(argc, (char **)argv, o, e);
    fclose(o);
    fclose(e);
    snprintf(r->out, sizeof r->out, "%s", ob);
    snprintf(r->err, sizeof r->err, "%s", eb);
    free(ob);
    free(eb);
}

static double field(const result *r, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s ", key);
    const char *p = strstr(r->out, pat);
    if (!p)
        fail_msg("no '%s' in output:\n%s", key, r->out);
    return atof(p + strlen(pat));
}

/* replay runs the controller (or constant action when w is NULL) like eval does. */
static void replay(const char *env, uint64_t seed, int episodes, const float *w, double *mean,
                   double *sd, double *lo, double *hi)
{
    const relay_env_def *def = relay_env_find(env);
    relay_space os, as;
    def->spaces(&os, &as);
    relay_vecenv *v;
    assert_ok(relay_vecenv_new(def, 1, seed, &v));
    float obs[8];
    relay_vecenv_reset(v, obs);
    double rets[64], ret = 0;
    int done = 0;
    while (done < episodes) {
        float r;
        bool term, trunc;
        if (as.discrete) {
            float z = 0;
            for (int i = 0; i < 4; i++)
                z += w[i] * obs[i];
            int32_t a = z > -z ? 1 : 0;
            relay_vecenv_step(v, &a, obs, &r, &term, &trunc, NULL);
        } else {
            float a = 0.0f;
            relay_vecenv_step(v, &a, obs, &r, &term, &trunc, NULL);
        }
        ret += r;
        if (term || trunc) {
            rets[done++] = ret;
            ret = 0;
        }
    }
    double m = 0, s = 0;
    *lo = *hi = rets[0];
    for (int i = 0; i < done; i++) {
        m += rets[i];
        *lo = fmin(*lo, rets[i]);
        *hi = fmax(*hi, rets[i]);
    }
    m /= done;
    for (int i = 0; i < done; i++)
        s += (rets[i] - m) * (rets[i] - m);
    *mean = m;
    *sd = sqrt(s / done);
    relay_vecenv_free(v);
}

static void eval_matches_replay(void **state)
{
    char path[128];
    snprintf(path, sizeof path, "%s/policy.onnx", tmpdir);
    float w[8];
    for (int i = 0; i < 4; i++) {
        w[i] = -ctrl_w[i]; /* row 0: logit of action 0 */
        w[4 + i] = ctrl_w[i];
    }
    write_linear(path, 4, 2, w, NULL, NULL);
    result r;
    const char *argv[] = {"eval",        "--model",    path, "--env",
                          "CartPole-v1", "--episodes", "12", "--seed=5"};
    run(&r, 8, argv);
    assert_int_equal(r.rc, 0);
    double mean, sd, lo, hi;
    replay("CartPole-v1", 5, 12, ctrl_w, &mean, &sd, &lo, &hi);
    assert_int_equal((int)field(&r, "episodes"), 12);
    assert_float_equal(field(&r, "mean_return"), mean, 1e-3);
    assert_float_equal(field(&r, "std_return"), sd, 1e-3);
    assert_float_equal(field(&r, "min_return"), lo, 1e-3);
    assert_float_equal(field(&r, "max_return"), hi, 1e-3);
    assert_non_null(strstr(r.out, "policy deterministic"));
    assert_true(mean > 100); /* the controller balances, unlike a random policy (~22) */

    /* the same weights as a bundle directory, with its version shown */
    char dir[128];
    snprintf(dir, sizeof dir, "%s/bundle", tmpdir);
    uint8_t *bytes;
    size_t len;
    write_linear(path, 4, 2, w, &bytes, &len);
    relay_model_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.version = 7;
    meta.obs.dtype = RELAY_F32;
    meta.obs.rank = 1;
    meta.obs.shape[0] = 4;
    meta.act.discrete = true;
    meta.act.n = 2;
    meta.act.dtype = RELAY_I32;
    relay_bundle *b = NULL;
    assert_ok(relay_bundle_new(bytes, len, &meta, &b));
    assert_ok(relay_bundle_save(b, dir));
    relay_bundle_free(b);
    free(bytes);
    const char *argv2[] = {"eval",       "--model", dir,      "--env", "CartPole-v1",
                           "--episodes", "12",      "--seed", "5"};
    run(&r, 9, argv2);
    assert_int_equal(r.rc, 0);
    assert_non_null(strstr(r.out, "(version 7)"));
    assert_float_equal(field(&r, "mean_return"), mean, 1e-3);

    /* stochastic: still runs the requested episodes */
    const char *argv3[] = {"eval",        "--model",    path, "--env",
                           "CartPole-v1", "--episodes", "5",  "--stochastic"};
    run(&r, 8, argv3);
    assert_int_equal(r.rc, 0);
    assert_int_equal((int)field(&r, "episodes"), 5);
    assert_non_null(strstr(r.out, "policy stochastic"));
}

static void eval_continuous_clips_mean(void **state)
{
    char path[128];
    snprintf(path, sizeof path, "%s/pendulum.onnx", tmpdir);
    const float zero[3] = {0, 0, 0};
    write_linear(path, 3, 1, zero, NULL, NULL);
    result r;
    const char *argv[] = {"eval", "--model", path, "--env", "Pendulum-v1", "--episodes", "3"};
    run(&r, 7, argv);
    assert_int_equal(r.rc, 0);
    double mean, sd, lo, hi;
    replay("Pendulum-v1", 0, 3, NULL, &mean, &sd, &lo, &hi);
    assert_float_equal(field(&r, "mean_return"), mean, 1e-2);
    assert_float_equal(field(&r, "min_return"), lo, 1e-2);
    assert_float_equal(field(&r, "mean_length"), 200.0, 1e-9);
    /* sampling needs a log std the plain mean model does not have */
    const char *argv2[] = {"eval", "--model", path, "--env", "Pendulum-v1", "--stochastic"};
    run(&r, 6, argv2);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "log std"));
}

static void eval_rejects_bad_arguments(void **state)
{
    char path[128], missing[128];
    snprintf(path, sizeof path, "%s/policy4.onnx", tmpdir);
    snprintf(missing, sizeof missing, "%s/nope.onnx", tmpdir);
    float w[8] = {0};
    write_linear(path, 4, 2, w, NULL, NULL);
    struct {
        int argc;
        const char *argv[8];
        const char *msg;
    } cases[] = {
        {1, {"eval"}, "required"},
        {3, {"eval", "--env", "CartPole-v1"}, "required"},
        {2, {"eval", "--model"}, "needs a value"},
        {5, {"eval", "--model", path, "--env", "NoSuchEnv-v0"}, "unknown environment"},
        {5, {"eval", "--model", missing, "--env", "CartPole-v1"}, "cannot open model"},
        {5, {"eval", "--model", path, "--env", "Acrobot-v1"}, "inputs"},
        {5, {"eval", "--model", path, "--env", "Pendulum-v1"}, "inputs"},
        {7, {"eval", "--model", path, "--env", "CartPole-v1", "--episodes", "0"}, "--episodes"},
        {7, {"eval", "--model", path, "--env", "CartPole-v1", "--episodes", "7x"}, "--episodes"},
        {7, {"eval", "--model", path, "--env", "CartPole-v1", "--seed", "-1"}, "--seed"},
        {6,
         {"eval", "--model", path, "--env", "CartPole-v1", "--fast"},
         "unknown option \"--fast\""},
        {5, {"eval", "--model", tmpdir, "--env", "CartPole-v1"}, "cannot load bundle"},
        {7,
         {"eval", "--model", path, "--env", "CartPole-v1", "--max-episode-steps", "0"},
         "--max-episode-steps: 0 is below the minimum 1"},
        {7,
         {"eval", "--model", path, "--env", "CartPole-v1", "--episodes", "1e9"},
         "not an integer"},
        {6, {"eval", "--model", path, "--env", "CartPole-v1", "stray"}, "unexpected argument"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result r;
        run(&r, cases[i].argc, cases[i].argv);
        if (r.rc != 2 || !strstr(r.err, cases[i].msg))
            fail_msg("case %zu: rc %d, stderr: %s", i, r.rc, r.err);
        assert_string_equal(r.out, "");
    }
    /* a model with the wrong number of outputs */
    snprintf(path, sizeof path, "%s/policy3out.onnx", tmpdir);
    float w3[12] = {0};
    write_linear(path, 4, 3, w3, NULL, NULL);
    result r;
    const char *argv[] = {"eval", "--model", path, "--env", "CartPole-v1"};
    run(&r, 5, argv);
    assert_int_equal(r.rc, 2);
    assert_non_null(strstr(r.err, "outputs"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(eval_matches_replay),
        cmocka_unit_test(eval_continuous_clips_mean),
        cmocka_unit_test(eval_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
