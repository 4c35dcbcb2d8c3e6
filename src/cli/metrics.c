/* metrics.csv: one line per learner update, flushed as it is written. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_support.h"
#include "core/log.h"

#define MOD "cli"

struct rly_metrics_csv {
    FILE *f;
    bool failed;
};

void rly_metrics_row_from_stats(rly_metrics_row *r, const rly_learner_stats *st)
{
    memset(r, 0, sizeof *r);
    r->update = st->updates;
    r->steps = st->steps_consumed;
    r->wall_s = st->wall_s;
    r->sps = st->sps;
    r->mean_return_100 = st->episodes ? st->mean_return_100 : NAN;
    r->episodes = st->episodes;
    r->m = st->last;
    r->version = st->version;
    r->eval_mean = r->eval_std = NAN;
}

/* keep_until rewrites path without the rows of updates after `updates` (written after the
   checkpoint a run resumes from, so they are about to be written again). */
static relay_err keep_until(const char *path, uint32_t updates)
{
    FILE *in = fopen(path, "rb");
    if (!in)
        return RELAY_OK;
    char tmp[4096 + 16];
    snprintf(tmp, sizeof tmp, "%.4096s.tmp", path);
    FILE *out = fopen(tmp, "wb");
    if (!out) {
        fclose(in);
        rly_error(MOD, "cannot rewrite %s", path);
        return RELAY_EIO;
    }
    char line[4096];
    bool first = true, ok = true;
    while (fgets(line, sizeof line, in)) {
        if (!first && strtoul(line, NULL, 10) > updates)
            continue;
        first = false;
        ok = fputs(line, out) >= 0 && ok;
    }
    ok = !ferror(in) && ok;
    fclose(in);
    ok = fclose(out) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        rly_error(MOD, "cannot rewrite %s", path);
        return RELAY_EIO;
    }
    return RELAY_OK;
}

relay_err rly_metrics_csv_open_append(const char *path, uint32_t updates, rly_metrics_csv **out)
{
    if (!path || !out)
        return RELAY_EINVAL;
    *out = NULL;
    relay_err e = keep_until(path, updates);
    if (e)
        return e;
    FILE *probe = fopen(path, "rb");
    long size = 0;
    if (probe) {
        if (fseek(probe, 0, SEEK_END) == 0)
            size = ftell(probe);
        fclose(probe);
    }
    if (size <= 0)
        return rly_metrics_csv_open(path, out);
    rly_metrics_csv *w = calloc(1, sizeof *w);
    if (!w)
        return RELAY_ENOMEM;
    w->f = fopen(path, "a");
    if (!w->f) {
        rly_error(MOD, "cannot append to %s", path);
        free(w);
        return RELAY_EIO;
    }
    *out = w;
    return RELAY_OK;
}

relay_err rly_metrics_csv_open(const char *path, rly_metrics_csv **out)
{
    if (!path || !out) {
        rly_error(MOD, "metrics_csv_open: NULL argument");
        return RELAY_EINVAL;
    }
    *out = NULL;
    rly_metrics_csv *w = calloc(1, sizeof *w);
    if (!w)
        return RELAY_ENOMEM;
    w->f = fopen(path, "w");
    if (!w->f) {
        rly_error(MOD, "cannot create %s", path);
        free(w);
        return RELAY_EIO;
    }
    if (fputs(RLY_METRICS_HEADER "\n", w->f) < 0 || fflush(w->f) != 0) {
        rly_error(MOD, "cannot write %s", path);
        fclose(w->f);
        free(w);
        return RELAY_EIO;
    }
    *out = w;
    return RELAY_OK;
}

/* put_float writes v with %.*g, or "nan"/"inf"/"-inf" so every reader parses it. */
static void put_float(FILE *f, double v, int digits)
{
    if (isnan(v))
        fputs("nan", f);
    else if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", f);
    else
        fprintf(f, "%.*g", digits, v);
}

relay_err rly_metrics_csv_write(rly_metrics_csv *w, const rly_metrics_row *r)
{
    if (!w || !r) {
        rly_error(MOD, "metrics_csv_write: NULL argument");
        return RELAY_EINVAL;
    }
    FILE *f = w->f;
    fprintf(f, "%u,%llu,", r->update, (unsigned long long)r->steps);
    put_float(f, r->wall_s, 6);
    fputc(',', f);
    put_float(f, r->sps, 6);
    fputc(',', f);
    put_float(f, r->mean_return_100, 6);
    fprintf(f, ",%llu", (unsigned long long)r->episodes);
    const float v[] = {r->m.policy_loss,  r->m.value_loss,    r->m.entropy,
                       r->m.approx_kl,    r->m.clip_fraction, r->m.explained_variance,
                       r->m.learning_rate};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        fputc(',', f);
        put_float(f, v[i], 6);
    }
    fprintf(f, ",%lld,", (long long)r->version);
    put_float(f, r->eval_mean, 6);
    fputc(',', f);
    put_float(f, r->eval_std, 6);
    fputc('\n', f);
    if (ferror(f) || fflush(f) != 0) {
        if (!w->failed)
            rly_error(MOD, "writing metrics.csv failed");
        w->failed = true;
        return RELAY_EIO;
    }
    return RELAY_OK;
}

relay_err rly_metrics_csv_close(rly_metrics_csv *w)
{
    if (!w)
        return RELAY_OK;
    bool bad = w->failed || ferror(w->f);
    if (fclose(w->f) != 0)
        bad = true;
    free(w);
    return bad ? RELAY_EIO : RELAY_OK;
}
