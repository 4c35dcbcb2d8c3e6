/* Tests for the shared option and number parser of the relay subcommands. */
#include "cli/args.h"

#include <stdlib.h>
#include <string.h>

#include "test_util.h"

static char *msg;
static size_t msg_len;

/* argp returns a parser context that writes into a fresh in-memory buffer. */
static rly_argp argp(void)
{
    free(msg);
    msg = NULL;
    FILE *f = open_memstream(&msg, &msg_len);
    assert_non_null(f);
    return (rly_argp){.prog = "relay test", .err = f};
}

/* said closes the buffer and checks it holds exactly want (plus the newline). */
static void said(rly_argp *p, const char *want)
{
    fclose(p->err);
    p->err = NULL;
    char line[512];
    snprintf(line, sizeof line, "relay test: %s\n", want);
    assert_string_equal(msg, line);
}

/* silent closes the buffer and checks nothing was printed. */
static void silent(rly_argp *p)
{
    fclose(p->err);
    p->err = NULL;
    assert_string_equal(msg, "");
}

static void test_u64(void **state)
{
    (void)state;
    uint64_t v = 7;
    rly_argp p = argp();
    assert_true(rly_arg_u64(&p, "--steps", "18446744073709551615", 0, UINT64_MAX, &v));
    assert_true(v == UINT64_MAX);
    assert_true(rly_arg_u64(&p, "--steps", "0", 0, 10, &v));
    assert_true(v == 0);
    silent(&p);

    struct {
        const char *text, *want;
    } bad[] = {
        {"abc", "--x: \"abc\" is not a number"},
        {"", "--x: an empty value is not a number"},
        {"-1", "--x: -1 is below the minimum 0"},
        {"1e9", "--x: \"1e9\" is not an integer (write it in decimal digits)"},
        {"0x10", "--x: \"0x10\" is not an integer (write it in decimal digits)"},
        {" 5", "--x: \" 5\" is not a number"},
        {"5s", "--x: \"5s\" is not a number"},
        {"+5", "--x: \"+5\" is not an integer (write it in decimal digits)"},
        {"18446744073709551616", "--x: 18446744073709551616 is above the maximum 4096"},
        {"100000", "--x: 100000 is above the maximum 4096"},
        {"0", "--x: 0 is below the minimum 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = argp();
        v = 42;
        assert_false(rly_arg_u64(&p, "--x", bad[i].text, 1, 4096, &v));
        assert_true(v == 42);
        said(&p, bad[i].want);
    }
}

static void test_u32_no_truncation(void **state)
{
    (void)state;
    uint32_t v = 3;
    rly_argp p = argp();
    assert_false(rly_arg_u32(&p, "--max-seconds", "4294967297", 0, UINT32_MAX, &v));
    said(&p, "--max-seconds: 4294967297 is above the maximum 4294967295");
    assert_int_equal(v, 3);
    p = argp();
    assert_true(rly_arg_u32(&p, "--max-seconds", "4294967295", 0, UINT32_MAX, &v));
    assert_true(v == UINT32_MAX);
    fclose(p.err);
}

static void test_i64_double_float(void **state)
{
    (void)state;
    int64_t i = 0;
    rly_argp p = argp();
    assert_true(rly_arg_i64(&p, "--n", "-9223372036854775808", INT64_MIN, INT64_MAX, &i));
    assert_true(i == INT64_MIN);
    fclose(p.err);
    p = argp();
    assert_false(rly_arg_i64(&p, "--n", "-5", -4, 4, &i));
    said(&p, "--n: -5 is below the minimum -4");
    p = argp();
    assert_false(rly_arg_i64(&p, "--n", "99999999999999999999", -4, 4, &i));
    said(&p, "--n: 99999999999999999999 is above the maximum 4");
    p = argp();
    assert_false(rly_arg_i64(&p, "--n", "-99999999999999999999", -4, 4, &i));
    said(&p, "--n: -99999999999999999999 is below the minimum -4");

    double d = 0;
    p = argp();
    assert_true(rly_arg_double(&p, "--lr", "3e-4", 0, 1, &d));
    assert_true(d == 3e-4);
    fclose(p.err);
    const char *nonfinite[] = {"nan", "inf", "-inf", "1e999"};
    for (int k = 0; k < 4; k++) {
        p = argp();
        assert_false(rly_arg_double(&p, "--lr", nonfinite[k], -1e300, 1e300, &d));
        char want[64];
        snprintf(want, sizeof want, "--lr: \"%s\" is not a finite number", nonfinite[k]);
        said(&p, want);
    }
    p = argp();
    assert_false(rly_arg_double(&p, "--lr", "2", 0, 1, &d));
    said(&p, "--lr: 2 is above the maximum 1");
    p = argp();
    assert_false(rly_arg_double(&p, "--lr", "0.1x", 0, 1, &d));
    said(&p, "--lr: \"0.1x\" is not a number");
    float f = 0;
    p = argp();
    assert_false(rly_arg_float(&p, "--target", "1e39", -3.4e38f, 3.4e38f, &f));
    said(&p, "--target: 1e39 is above the maximum 3.4e+38");
    p = argp();
    assert_true(rly_arg_float(&p, "--target", "-250.5", -1e9f, 1e9f, &f));
    assert_true(f == -250.5f);
    fclose(p.err);
}

static void test_match_choice_unknown(void **state)
{
    (void)state;
    char *argv[] = {"train", "--seed", "5", "--out=dir", "--env", "--env=", "--seeds", NULL};
    int argc = 7, i = 1;
    const char *v = NULL;
    rly_argp p = argp();
    assert_int_equal(rly_arg_match(&p, argc, argv, &i, "--seed", &v), 1);
    assert_string_equal(v, "5");
    assert_int_equal(i, 2);
    i = 3;
    assert_int_equal(rly_arg_match(&p, argc, argv, &i, "--seed", &v), 0);
    assert_int_equal(rly_arg_match(&p, argc, argv, &i, "--out", &v), 1);
    assert_string_equal(v, "dir");
    assert_int_equal(i, 3);
    i = 6;
    assert_int_equal(rly_arg_match(&p, argc, argv, &i, "--seed", &v), 0); /* --seeds */
    silent(&p);
    i = 5;
    p = argp();
    assert_int_equal(rly_arg_match(&p, argc, argv, &i, "--env", &v), -1);
    said(&p, "--env needs a value");
    char *last[] = {"train", "--env"};
    i = 1;
    p = argp();
    assert_int_equal(rly_arg_match(&p, 2, last, &i, "--env", &v), -1);
    said(&p, "--env needs a value");

    const char *const sinks[] = {"none", "arrow", "csv", NULL};
    int k = -1;
    p = argp();
    assert_true(rly_arg_choice(&p, "--sink", "csv", sinks, &k));
    assert_int_equal(k, 2);
    assert_false(rly_arg_choice(&p, "--sink", "parquet", sinks, &k));
    said(&p, "--sink must be one of none, arrow or csv (not \"parquet\")");
    p = argp();
    assert_int_equal(rly_arg_unknown(&p, "--foo"), 2);
    said(&p, "unknown option \"--foo\" (relay test --help lists the options)");
    p = argp();
    assert_int_equal(rly_arg_unknown(&p, "stray"), 2);
    said(&p, "unexpected argument \"stray\" (relay test --help lists the options)");
    free(msg);
    msg = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64),
        cmocka_unit_test(test_u32_no_truncation),
        cmocka_unit_test(test_i64_double_float),
        cmocka_unit_test(test_match_choice_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
