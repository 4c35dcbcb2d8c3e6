/* metrics.csv: one line per learner update, flushed as it is written. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    fprintf(f, ",%lld\n", (long long)r->version);
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
