/* metrics.csv, learning_curve.svg and the progress line: written files parse, values survive. */
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli_support.h"

#define PY "/usr/bin/python3"

static char tmpdir[64];

static int setup(void **state)
{
    strcpy(tmpdir, "/tmp/relay_cli_out_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static bool have_python(void)
{
    return access(PY, X_OK) == 0;
}

/* run_py runs a python3 program (text) with arguments; returns its exit status. */
static int run_py(const char *prog, const char *args)
{
    char path[128], cmd[512];
    snprintf(path, sizeof path, "%s/check.py", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(prog, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, PY " '%s' %s", path, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const char csv_check[] =
    "import csv, math, sys\n"
    "want = ['update','steps','wall_s','sps','mean_return_100','episodes','policy_loss',\n"
    "        'value_loss','entropy','approx_kl','clip_fraction','explained_variance',\n"
    "        'learning_rate','version','eval_mean_return','eval_std_return']\n"
    "rows = list(csv.reader(open(sys.argv[1])))\n"
    "assert rows[0] == want, rows[0]\n"
    "body = rows[1:]\n"
    "assert len(body) == int(sys.argv[2]), len(body)\n"
    "for i, r in enumerate(body):\n"
    "    assert len(r) == len(want), r\n"
    "    v = [float(x) for x in r]\n"
    "    assert int(r[0]) == i + 1 and int(r[1]) == 256 * (i + 1), r\n"
    "    assert int(r[13]) == i + 1\n"
    "    assert abs(v[6] - (-0.01 * (i + 1))) < 1e-6, v[6]\n"
    "assert math.isnan(float(body[0][4])) and math.isnan(float(body[0][11]))\n"
    "assert abs(float(body[-1][4]) - 42.5) < 1e-9\n";

static void metrics_csv_roundtrip(void **state)
{
    char path[128];
    snprintf(path, sizeof path, "%s/metrics.csv", tmpdir);
    rly_metrics_csv *w = NULL;
    assert_ok(rly_metrics_csv_open(path, &w));
    for (uint32_t i = 1; i <= 3; i++) {
        rly_learner_stats st;
        memset(&st, 0, sizeof st);
        st.updates = i;
        st.steps_consumed = 256 * i;
        st.wall_s = 0.5 * i;
        st.sps = 512;
        st.episodes = i == 1 ? 0 : 10 * i;
        st.mean_return_100 = 42.5f;
        st.version = i;
        st.last.policy_loss = -0.01f * (float)i;
        st.last.explained_variance = i == 1 ? NAN : 0.5f;
        st.last.learning_rate = 1e-3f;
        rly_metrics_row r;
        rly_metrics_row_from_stats(&r, &st);
        assert_ok(rly_metrics_csv_write(w, &r));
    }
    assert_ok(rly_metrics_csv_close(w));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, RLY_METRICS_HEADER "\n");
    if (!have_python())
        skip();
    char args[160];
    snprintf(args, sizeof args, "'%s' 3", path);
    assert_int_equal(run_py(csv_check, args), 0);
}

static void metrics_csv_errors(void **state)
{
    rly_metrics_csv *w = NULL;
    assert_err(rly_metrics_csv_open("/nonexistent-dir/x/metrics.csv", &w), RELAY_EIO);
    assert_null(w);
    assert_err(rly_metrics_csv_open(NULL, &w), RELAY_EINVAL);
    assert_err(rly_metrics_csv_write(NULL, NULL), RELAY_EINVAL);
    assert_ok(rly_metrics_csv_close(NULL));
}

static void nice_ticks_are_round(void **state)
{
    double t[16];
    const double cases[][2] = {{0, 60000}, {-12.5, 500}, {3, 3}, {0, 1}, {0.001, 0.0173}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = rly_nice_ticks(cases[c][0], cases[c][1], 8, t);
        assert_true(n >= 2 && n <= 8);
        assert_true(t[0] <= cases[c][0] && t[n - 1] >= cases[c][1]);
        double step = t[1] - t[0];
        double mant = step / pow(10.0, floor(log10(step)));
        assert_true(fabs(mant - 1) < 1e-6 || fabs(mant - 2) < 1e-6 || fabs(mant - 2.5) < 1e-6 ||
                    fabs(mant - 5) < 1e-6);
        for (size_t i = 1; i < n; i++)
            assert_float_equal(t[i] - t[i - 1], step, step * 1e-6);
    }
    assert_int_equal(rly_nice_ticks(0, NAN, 8, t), 0);
}

static const char svg_check[] =
    "import sys, xml.etree.ElementTree as ET\n"
    "ns = '{http://www.w3.org/2000/svg}'\n"
    "root = ET.parse(sys.argv[1]).getroot()\n"
    "assert root.tag == ns + 'svg', root.tag\n"
    "W, H = float(root.get('width')), float(root.get('height'))\n"
    "texts = {t.get('class'): t for t in root.iter(ns + 'text') if t.get('class')}\n"
    "assert texts['title'].text == sys.argv[2], texts['title'].text\n"
    "assert 'steps' in texts['xlabel'].text and 'return' in texts['ylabel'].text\n"
    "groups = {g.get('class'): g for g in root.iter(ns + 'g')}\n"
    "assert len(list(groups['xticks'])) >= 3 and len(list(groups['yticks'])) >= 3\n"
    "lines = list(root.iter(ns + 'polyline'))\n"
    "n = int(sys.argv[3])\n"
    "if n == 0:\n"
    "    assert not lines and texts['nodata'].text == 'no data'\n"
    "else:\n"
    "    pts = [tuple(map(float, p.split(','))) for p in lines[0].get('points').split()]\n"
    "    assert len(pts) == n, len(pts)\n"
    "    assert all(0 <= x <= W and 0 <= y <= H for x, y in pts)\n"
    "    xs = [x for x, _ in pts]\n"
    "    assert xs == sorted(xs)\n"
    "    assert pts[-1][1] < pts[0][1]  # rising curve: larger returns are higher up\n";

static void svg_is_well_formed(void **state)
{
    if (!have_python())
        skip();
    char path[128], args[256];
    snprintf(path, sizeof path, "%s/learning_curve.svg", tmpdir);
    double x[50], y[50];
    for (int i = 0; i < 50; i++) {
        x[i] = 1024.0 * (i + 1);
        y[i] = 20 + 480 * (1 - exp(-i / 12.0));
    }
    const char *title = "PPO <CartPole-v1> & 'friends'";
    assert_ok(rly_svg_learning_curve(path, title, x, y, 50));
    snprintf(args, sizeof args, "'%s' \"%s\" 50", path, title);
    assert_int_equal(run_py(svg_check, args), 0);
    /* non-finite points are skipped */
    y[7] = NAN;
    x[9] = INFINITY;
    assert_ok(rly_svg_learning_curve(path, "t", x, y, 50));
    snprintf(args, sizeof args, "'%s' t 48", path);
    assert_int_equal(run_py(svg_check, args), 0);
    /* no data still gives a valid chart */
    assert_ok(rly_svg_learning_curve(path, "empty", NULL, NULL, 0));
    snprintf(args, sizeof args, "'%s' empty 0", path);
    assert_int_equal(run_py(svg_check, args), 0);
    assert_err(rly_svg_learning_curve("/nonexistent-dir/x.svg", "t", x, y, 3), RELAY_EIO);
    assert_err(rly_svg_learning_curve(path, "t", NULL, y, 3), RELAY_EINVAL);
}

static void progress_lines(void **state)
{
    rly_progress_info in = {.steps = 12345,
                            .total_steps = 100000,
                            .sps = 4321.7,
                            .mean_return = 123.45f,
                            .episodes = 17,
                            .version = 3,
                            .elapsed_s = 65.2};
    char buf[256];
    size_t n = rly_progress_format(&in, buf, sizeof buf);
    assert_int_equal(n, strlen(buf));
    assert_non_null(strstr(buf, "12.3k/100.0k"));
    assert_non_null(strstr(buf, "(12%)"));
    assert_non_null(strstr(buf, "4322 steps/s"));
    assert_non_null(strstr(buf, "return 123.4")); /* 123.45f is 123.4499... */
    assert_non_null(strstr(buf, "(17 ep)"));
    assert_non_null(strstr(buf, "v3"));
    assert_non_null(strstr(buf, "1:05"));
    in.mean_return = NAN;
    in.total_steps = 0;
    rly_progress_format(&in, buf, sizeof buf);
    assert_non_null(strstr(buf, "return -"));
    assert_null(strstr(buf, "%"));
    /* plain output: whole lines, rate-limited unless forced */
    FILE *f = tmpfile();
    assert_non_null(f);
    rly_progress p;
    rly_progress_init(&p, f, 60.0);
    assert_false(p.tty);
    assert_true(rly_progress_update(&p, &in, false));
    assert_false(rly_progress_update(&p, &in, false));
    assert_true(rly_progress_update(&p, &in, true));
    rly_progress_finish(&p, &in); /* same update as the last line: not repeated */
    in.steps += 1000;
    rly_progress_finish(&p, &in); /* a newer update: printed */
    rewind(f);
    int lines = 0;
    while (fgets(buf, sizeof buf, f)) {
        assert_non_null(strchr(buf, '\n'));
        assert_null(strchr(buf, '\r'));
        lines++;
    }
    assert_int_equal(lines, 3);
    fclose(f);
    /* terminal output: \r-rewritten, padded over a longer previous line, newline at the end */
    f = tmpfile();
    rly_progress_init(&p, f, 0.0);
    p.tty = true;
    in.steps = 123456789;
    assert_true(rly_progress_update(&p, &in, true));
    size_t long_len = p.last_len;
    in.steps = 5;
    assert_true(rly_progress_update(&p, &in, true));
    rly_progress_finish(&p, &in);
    long size = ftell(f);
    rewind(f);
    char all[1024];
    size_t got = fread(all, 1, sizeof all - 1, f);
    all[got] = 0;
    fclose(f);
    assert_int_equal((long)got, size);
    assert_int_equal(all[0], '\r');
    assert_int_equal(all[got - 1], '\n');
    assert_null(memchr(all, '\n', got - 1));
    /* the second line overwrote the first completely */
    char *second = strchr(all + 1, '\r');
    assert_non_null(second);
    char *third = strchr(second + 1, '\r');
    assert_non_null(third);
    assert_int_equal((size_t)(third - second - 1), long_len);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_csv_roundtrip), cmocka_unit_test(metrics_csv_errors),
        cmocka_unit_test(nice_ticks_are_round),  cmocka_unit_test(svg_is_well_formed),
        cmocka_unit_test(progress_lines),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
