/*
 * Command-line argument helpers shared by every `relay` subcommand: option matching
 * (`--name VALUE` and `--name=VALUE`) and numeric parsing with range checks and one wording for
 * every error. Pure functions: no state, no allocation; messages go to p->err (the caller owns
 * it), prefixed with p->prog. Any thread may call them.
 *
 * Usage (a subcommand's loop):
 *
 *     rly_argp p = {.prog = "relay train", .err = stderr};
 *     for (int i = 1; i < argc; i++) {
 *         const char *v;
 *         int r;
 *         if ((r = rly_arg_match(&p, argc, argv, &i, "--routers", &v)) != 0) {
 *             if (r < 0 || !rly_arg_u32(&p, "--routers", v, 1, RLY_MAX_ROUTERS, &routers))
 *                 return 2;
 *         } else ...
 *         else
 *             return rly_arg_unknown(&p, argv[i]);
 *     }
 *
 * Messages (exit status 2 by convention, see docs/CLI.md):
 *     relay train: --max-seconds: "abc" is not a number
 *     relay train: --routers: 100000 is above the maximum 4096
 *     relay train: --actors: 0 is below the minimum 1
 *     relay train: --seed needs a value
 *     relay train: unknown option "--foo" (relay train --help lists the options)
 * Integers are decimal only, without sign for unsigned types, leading/trailing spaces or other
 * trailing characters ("1e9", "0x10", " 5", "5s" are refused); doubles accept anything strtod
 * accepts except NaN and infinities.
 */
#ifndef RLY_CLI_ARGS_H
#define RLY_CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* rly_argp names the program for messages ("relay train") and where they go (NULL: stderr). */
typedef struct rly_argp {
    const char *prog;
    FILE *err;
} rly_argp;

/*
 * rly_arg_match tests whether argv[*i] is option `name` (`--name VALUE` or `--name=VALUE`). Returns
 * 0 if not, 1 with *val set (advancing *i past a separate value), -1 after printing
 * "NAME needs a value" when the value is missing (an empty `--name=` counts as missing).
 */
int rly_arg_match(const rly_argp *p, int argc, char **argv, int *i, const char *name,
                  const char **val);

/* rly_arg_u64 parses text as a decimal integer in [min, max] into *out; false (message) if not. */
bool rly_arg_u64(const rly_argp *p, const char *flag, const char *text, uint64_t min, uint64_t max,
                 uint64_t *out);

/* rly_arg_u32 is rly_arg_u64 for a uint32_t destination (max is capped at UINT32_MAX). */
bool rly_arg_u32(const rly_argp *p, const char *flag, const char *text, uint32_t min, uint32_t max,
                 uint32_t *out);

/* rly_arg_i64 parses text as a signed decimal integer in [min, max] into *out. */
bool rly_arg_i64(const rly_argp *p, const char *flag, const char *text, int64_t min, int64_t max,
                 int64_t *out);

/* rly_arg_double parses text as a finite number in [min, max] into *out. */
bool rly_arg_double(const rly_argp *p, const char *flag, const char *text, double min, double max,
                    double *out);

/* rly_arg_float is rly_arg_double for a float destination (values must fit a finite float). */
bool rly_arg_float(const rly_argp *p, const char *flag, const char *text, float min, float max,
                   float *out);

/* rly_arg_choice sets *index to the position of text in the NULL-terminated names, or prints
 * "FLAG must be one of a, b, c (not "x")" and returns false. */
bool rly_arg_choice(const rly_argp *p, const char *flag, const char *text, const char *const *names,
                    int *index);

/* rly_arg_unknown prints "unknown option ..." (or "unexpected argument ...") and returns 2. */
int rly_arg_unknown(const rly_argp *p, const char *arg);

/* rly_arg_fail prints "PROG: " followed by the formatted message and a newline; returns 2. */
int rly_arg_fail(const rly_argp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
