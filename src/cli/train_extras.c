/* Evaluation during training, best/last policy files and checkpoints of `relay train`. */
#include "cli/train_extras.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "relay/relay.h"

#define MOD "train"
#define BLOB_MAGIC 0x56524352u /* "RCRV": curves of a run, the checkpoint's caller blob */

/* write_atomic writes path through a temporary file renamed into place. */
static relay_err write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[RELAY_PATH_MAX + 96];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rly_error(MOD, "cannot write %s: %s", path, strerror(errno));
        return RELAY_EIO;
    }
    bool ok = fwrite(data, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        rly_error(MOD, "cannot write %s: %s", path, strerror(errno ? errno : EIO));
        unlink(tmp);
        return RELAY_EIO;
    }
    return RELAY_OK;
}

static relay_err write_policy(const relay_policy *p, const char *out, const char *name)
{
    char path[RELAY_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", out, name);
    uint8_t *b = NULL;
    size_t n = 0;
    relay_err e = rly_policy_export_onnx(p, RLY_CHAIN_PI, &b, &n);
    if (e)
        rly_error(MOD, "cannot export %s: %s", path, relay_strerror(e));
    else
        e = write_atomic(path, b, n);
    free(b);
    return e;
}

relay_err rly_train_extras_init(rly_train_extras *x, const char *out, const relay_env_def *env,
                                uint32_t eval_every, uint32_t eval_episodes, uint32_t save_every,
                                uint64_t seed)
{
    memset(x, 0, sizeof *x);
    x->out = out;
    x->eval_every = eval_every;
    x->save_every = save_every;
    x->best = -INFINITY;
    /* evaluation envs never share seeds with the training envs (seed * 1000003 + i) */
    x->eval_seed = (seed ^ 0x5eedE7A1ULL) * 0x9E3779B97F4A7C15ULL + 0xe7a1;
    if (eval_every)
        return rly_train_evaluator_new(env, eval_episodes, &x->ev);
    return RELAY_OK;
}

void rly_train_extras_fini(rly_train_extras *x)
{
    rly_train_evaluator_free(x->ev);
    free(x->eval_steps);
    free(x->eval_returns);
    memset(x, 0, sizeof *x);
}

/* evaluate runs one evaluation of p and records it; returns the mean (NaN on failure). */
static double evaluate(rly_train_extras *x, relay_policy *p, uint64_t steps, double *std)
{
    int64_t t0 = rly_now_ns();
    double mean = NAN;
    *std = NAN;
    /* the same episodes every time, so evaluations compare policies, not luck */
    relay_err e = rly_train_evaluate(x->ev, p, x->eval_seed, &mean, std);
    x->eval_seconds += (double)(rly_now_ns() - t0) * 1e-9;
    x->evals++;
    if (e) {
        rly_error(MOD, "evaluation failed: %s", relay_strerror(e));
        return NAN;
    }
    if (x->n_eval == x->cap_eval) {
        size_t cap = x->cap_eval ? 2 * x->cap_eval : 64;
        double *a = realloc(x->eval_steps, cap * sizeof *a);
        if (a)
            x->eval_steps = a;
        double *b = a ? realloc(x->eval_returns, cap * sizeof *b) : NULL;
        if (b)
            x->eval_returns = b;
        if (a && b)
            x->cap_eval = cap;
    }
    if (x->n_eval < x->cap_eval) {
        x->eval_steps[x->n_eval] = (double)steps;
        x->eval_returns[x->n_eval] = mean;
        x->n_eval++;
    }
    return mean;
}

/* put_f64s appends n doubles to the blob at *o. */
static void put_f64s(uint8_t *blob, size_t *o, const double *v, size_t n)
{
    if (n == 0)
        return;
    memcpy(blob + *o, v, n * sizeof *v);
    *o += n * sizeof *v;
}

/* make_blob serialises the curves: magic, n_curve, n_eval, best, curve, eval (host order). */
static uint8_t *make_blob(const rly_train_extras *x, const double *cs, const double *cr, size_t nc,
                          size_t *len)
{
    size_t n = 4 + 8 + 8 + 8 + 2 * (nc + x->n_eval) * sizeof(double);
    uint8_t *b = malloc(n);
    if (!b)
        return NULL;
    uint32_t magic = BLOB_MAGIC;
    uint64_t a = nc, e = x->n_eval;
    size_t o = 0;
    memcpy(b, &magic, 4);
    memcpy(b + 4, &a, 8);
    memcpy(b + 12, &e, 8);
    memcpy(b + 20, &x->best, 8);
    o = 28;
    put_f64s(b, &o, cs, nc);
    put_f64s(b, &o, cr, nc);
    put_f64s(b, &o, x->eval_steps, x->n_eval);
    put_f64s(b, &o, x->eval_returns, x->n_eval);
    *len = o;
    return b;
}

static void save(rly_train_extras *x, rly_learner *l, const double *cs, const double *cr, size_t nc)
{
    int64_t t0 = rly_now_ns();
    char path[RELAY_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", x->out, RLY_TRAIN_CKPT_NAME);
    size_t len = 0;
    uint8_t *blob = make_blob(x, cs, cr, nc, &len);
    relay_err e = blob ? rly_learner_checkpoint_save(l, path, blob, len) : RELAY_ENOMEM;
    free(blob);
    if (e && !x->error)
        x->error = e;
    x->ckpt_seconds += (double)(rly_now_ns() - t0) * 1e-9;
    x->ckpts++;
}

void rly_train_extras_on_update(rly_train_extras *x, rly_learner *l, const rly_learner_stats *st,
                                rly_metrics_row *row, const double *cs, const double *cr, size_t nc)
{
    if (x->ev && st->updates % x->eval_every == 0) {
        relay_policy *p = rly_learner_current_policy(l);
        double sd, m = p ? evaluate(x, p, st->steps_consumed, &sd) : NAN;
        row->eval_mean = m;
        row->eval_std = sd;
        if (isfinite(m) && m > x->best) {
            x->best = m;
            relay_err e = write_policy(p, x->out, "policy.onnx");
            if (!e)
                x->best_written = true;
            else if (!x->error)
                x->error = e;
        }
    }
    if (x->save_every && st->updates % x->save_every == 0)
        save(x, l, cs, cr, nc);
}

relay_err rly_train_extras_resume(rly_train_extras *x, rly_learner *l, double **steps,
                                  double **returns, size_t *n)
{
    *steps = *returns = NULL;
    *n = 0;
    const uint8_t *b;
    size_t len;
    relay_err e = rly_learner_resume_extra(l, &b, &len);
    if (e || len == 0)
        return e;
    uint32_t magic;
    uint64_t nc, ne;
    if (len < 28 || (memcpy(&magic, b, 4), magic != BLOB_MAGIC)) {
        rly_warn(MOD, "the checkpoint holds no learning curve; the curve restarts here");
        return RELAY_OK;
    }
    memcpy(&nc, b + 4, 8);
    memcpy(&ne, b + 12, 8);
    if (nc > (len - 28) / 16 || ne > (len - 28) / 16 || 28 + 16 * (nc + ne) != len) {
        rly_warn(MOD, "the checkpoint's learning curve is malformed; the curve restarts here");
        return RELAY_OK;
    }
    memcpy(&x->best, b + 20, 8);
    double *cs = malloc((nc ? nc : 1) * sizeof *cs), *cr = malloc((nc ? nc : 1) * sizeof *cr);
    double *es = malloc((ne ? ne : 1) * sizeof *es), *er = malloc((ne ? ne : 1) * sizeof *er);
    if (!cs || !cr || !es || !er) {
        free(cs);
        free(cr);
        free(es);
        free(er);
        return RELAY_ENOMEM;
    }
    const uint8_t *p = b + 28;
    if (nc) {
        memcpy(cs, p, nc * 8);
        memcpy(cr, p + nc * 8, nc * 8);
    }
    if (ne) {
        memcpy(es, p + 2 * nc * 8, ne * 8);
        memcpy(er, p + 2 * nc * 8 + ne * 8, ne * 8);
    }
    free(x->eval_steps);
    free(x->eval_returns);
    x->eval_steps = es;
    x->eval_returns = er;
    x->n_eval = x->cap_eval = ne;
    x->best_written = isfinite(x->best); /* policy.onnx of the interrupted run holds it */
    *steps = cs;
    *returns = cr;
    *n = nc;
    return RELAY_OK;
}

relay_err rly_train_extras_finish(rly_train_extras *x, rly_learner *l, uint64_t steps,
                                  const double *cs, const double *cr, size_t nc)
{
    relay_policy *p = rly_learner_current_policy(l);
    if (!p)
        return RELAY_ESTATE;
    relay_err e = write_policy(p, x->out, "policy_last.onnx");
    if (x->ev) {
        double sd, m = evaluate(x, p, steps, &sd);
        if (isfinite(m) && m > x->best) {
            x->best = m;
            x->best_written = false; /* the last policy is the best: write it below */
        }
    }
    if (!x->best_written) {
        relay_err we = write_policy(p, x->out, "policy.onnx");
        if (!e)
            e = we;
    }
    if (x->save_every)
        save(x, l, cs, cr, nc);
    return e ? e : x->error;
}
