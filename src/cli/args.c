/* Shared parsing of command-line options and numbers (see args.h for the messages). */
#include "cli/args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static FILE *err_of(const rly_argp *p)
{
    return p && p->err ? p->err : stderr;
}

static const char *prog_of(const rly_argp *p)
{
    return p && p->prog ? p->prog : "relay";
}

int rly_arg_fail(const rly_argp *p, const char *fmt, ...)
{
    FILE *f = err_of(p);
    fprintf(f, "%s: ", prog_of(p));
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    return 2;
}

int rly_arg_match(const rly_argp *p, int argc, char **argv, int *i, const char *name,
                  const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        if (a[n + 1] == '\0') {
            rly_arg_fail(p, "%s needs a value", name);
            return -1;
        }
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        rly_arg_fail(p, "%s needs a value", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

/* digits_only: text is [-]?[0-9]+ (sign only when allowed). */
static bool digits_only(const char *s, bool sign)
{
    if (sign && *s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

/* not_integer explains why text is not a plain decimal integer. */
static bool not_integer(const rly_argp *p, const char *flag, const char *text, bool sign)
{
    if (!*text)
        rly_arg_fail(p, "%s: an empty value is not a number", flag);
    else if (!sign && text[0] == '-' && digits_only(text + 1, false))
        rly_arg_fail(p, "%s: %s is below the minimum 0", flag, text);
    else {
        char *end;
        errno = 0;
        (void)strtod(text, &end);
        if (end != text && *end == '\0' && !isspace((unsigned char)text[0]))
            rly_arg_fail(p, "%s: \"%s\" is not an integer (write it in decimal digits)", flag,
                         text);
        else
            rly_arg_fail(p, "%s: \"%s\" is not a number", flag, text);
    }
    return false;
}

bool rly_arg_u64(const rly_argp *p, const char *flag, const char *text, uint64_t min, uint64_t max,
                 uint64_t *out)
{
    if (!text || !digits_only(text, false))
        return not_integer(p, flag, text ? text : "", false);
    errno = 0;
    unsigned long long v = strtoull(text, NULL, 10);
    if (errno == ERANGE || v > max) {
        rly_arg_fail(p, "%s: %s is above the maximum %llu", flag, text, (unsigned long long)max);
        return false;
    }
    if (v < min) {
        rly_arg_fail(p, "%s: %s is below the minimum %llu", flag, text, (unsigned long long)min);
        return false;
    }
    *out = v;
    return true;
}

bool rly_arg_u32(const rly_argp *p, const char *flag, const char *text, uint32_t min, uint32_t max,
                 uint32_t *out)
{
    uint64_t v;
    if (!rly_arg_u64(p, flag, text, min, max, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

bool rly_arg_i64(const rly_argp *p, const char *flag, const char *text, int64_t min, int64_t max,
                 int64_t *out)
{
    if (!text || !digits_only(text, true))
        return not_integer(p, flag, text ? text : "", true);
    errno = 0;
    long long v = strtoll(text, NULL, 10);
    if ((errno == ERANGE && v > 0) || v > max) {
        rly_arg_fail(p, "%s: %s is above the maximum %lld", flag, text, (long long)max);
        return false;
    }
    if (errno == ERANGE || v < min) {
        rly_arg_fail(p, "%s: %s is below the minimum %lld", flag, text, (long long)min);
        return false;
    }
    *out = v;
    return true;
}

bool rly_arg_double(const rly_argp *p, const char *flag, const char *text, double min, double max,
                    double *out)
{
    if (!text || !*text || isspace((unsigned char)text[0])) {
        rly_arg_fail(p, "%s: \"%s\" is not a number", flag, text ? text : "");
        return false;
    }
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end) {
        rly_arg_fail(p, "%s: \"%s\" is not a number", flag, text);
        return false;
    }
    if (!isfinite(v)) {
        rly_arg_fail(p, "%s: \"%s\" is not a finite number", flag, text);
        return false;
    }
    if (v > max) {
        rly_arg_fail(p, "%s: %s is above the maximum %g", flag, text, max);
        return false;
    }
    if (v < min) {
        rly_arg_fail(p, "%s: %s is below the minimum %g", flag, text, min);
        return false;
    }
    *out = v;
    return true;
}

bool rly_arg_float(const rly_argp *p, const char *flag, const char *text, float min, float max,
                   float *out)
{
    double v;
    if (!rly_arg_double(p, flag, text, min, max, &v))
        return false;
    *out = (float)v;
    return true;
}

bool rly_arg_choice(const rly_argp *p, const char *flag, const char *text, const char *const *names,
                    int *index)
{
    for (int i = 0; names[i]; i++)
        if (text && strcmp(text, names[i]) == 0) {
            *index = i;
            return true;
        }
    FILE *f = err_of(p);
    fprintf(f, "%s: %s must be one of ", prog_of(p), flag);
    for (int i = 0; names[i]; i++)
        fprintf(f, "%s%s", i ? (names[i + 1] ? ", " : " or ") : "", names[i]);
    fprintf(f, " (not \"%s\")\n", text ? text : "");
    return false;
}

int rly_arg_unknown(const rly_argp *p, const char *arg)
{
    if (arg[0] == '-')
        return rly_arg_fail(p, "unknown option \"%s\" (%s --help lists the options)", arg,
                            prog_of(p));
    return rly_arg_fail(p, "unexpected argument \"%s\" (%s --help lists the options)", arg,
                        prog_of(p));
}
