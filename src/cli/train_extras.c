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
#define BLOB_MAGIC 0x56524352u  /* "RCRV": curves only (checkpoints before exact resume) */
#define BLOB_MAGIC2 0x32524352u /* "RCR2": sections (below) */
#define SEC_CURVES 1u           /* u64 n_curve, u64 n_eval, f64 best, the four curves */
#define SEC_BEST 2u             /* the bytes of policy.onnx (best evaluated policy) */
#define SEC_ACTORS 3u           /* the actors' snapshots (train_snap.h) */

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

/* write_policy exports p to out/name; keep (may be NULL) receives the bytes (malloc'd). */
static relay_err write_policy(const relay_policy *p, const char *out, const char *name,
                              uint8_t **keep, size_t *keep_len)
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
    if (!e && keep) {
        free(*keep);
        *keep = b;
        *keep_len = n;
        return e;
    }
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
    free(x->best_onnx);
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

/* put_sec appends section tag (u32), len (u64) and the bytes at *o. */
static void put_sec(uint8_t *b, size_t *o, uint32_t tag, const void *data, size_t len)
{
    uint64_t l = len;
    memcpy(b + *o, &tag, 4);
    memcpy(b + *o + 4, &l, 8);
    if (len)
        memcpy(b + *o + 12, data, len);
    *o += 12 + len;
}

/* make_blob serialises the checkpoint's caller blob (host order): magic, then the sections
   curves, best policy (when policy.onnx holds it) and actor snapshots (when given). */
static uint8_t *make_blob(const rly_train_extras *x, const double *cs, const double *cr, size_t nc,
                          const uint8_t *acts, size_t acts_len, size_t *len)
{
    size_t curves = 8 + 8 + 8 + 2 * (nc + x->n_eval) * sizeof(double);
    bool best = x->best_written && x->best_onnx;
    size_t n = 4 + 12 + curves + (best ? 12 + x->best_len : 0) + (acts ? 12 + acts_len : 0);
    uint8_t *b = malloc(n);
    if (!b)
        return NULL;
    uint32_t magic = BLOB_MAGIC2;
    uint64_t a = nc, e = x->n_eval;
    memcpy(b, &magic, 4);
    uint32_t tag = SEC_CURVES;
    uint64_t cl = curves;
    memcpy(b + 4, &tag, 4);
    memcpy(b + 8, &cl, 8);
    size_t o = 16;
    memcpy(b + o, &a, 8);
    memcpy(b + o + 8, &e, 8);
    memcpy(b + o + 16, &x->best, 8);
    o += 24;
    put_f64s(b, &o, cs, nc);
    put_f64s(b, &o, cr, nc);
    put_f64s(b, &o, x->eval_steps, x->n_eval);
    put_f64s(b, &o, x->eval_returns, x->n_eval);
    if (best)
        put_sec(b, &o, SEC_BEST, x->best_onnx, x->best_len);
    if (acts)
        put_sec(b, &o, SEC_ACTORS, acts, acts_len);
    *len = o;
    return b;
}

static void save(rly_train_extras *x, rly_learner *l, int64_t version, const double *cs,
                 const double *cr, size_t nc)
{
    int64_t t0 = rly_now_ns();
    char path[RELAY_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", x->out, RLY_TRAIN_CKPT_NAME);
    size_t len = 0, al = 0;
    uint8_t *acts = NULL;
    if (x->snaps &&
        rly_train_snaps_encode(x->snaps, version, x->env_name, x->envs_per_actor, &acts, &al) &&
        !x->warned_snaps) {
        x->warned_snaps = true;
        rly_warn(MOD,
                 "checkpoint of version %lld without the actors' snapshots (not every actor "
                 "paused at it): a resume from it is learner-exact, not bit-identical",
                 (long long)version);
    }
    uint8_t *blob = make_blob(x, cs, cr, nc, acts, al, &len);
    free(acts);
    relay_err e = blob ? rly_learner_checkpoint_save(l, path, blob, len) : RELAY_ENOMEM;
    free(blob);
    if (e == RELAY_ESTATE)
        e = RELAY_OK; /* a stop cancelled an update part way: the previous checkpoint stays */
    if (e && !x->error)
        x->error = e;
    x->ckpt_seconds += (double)(rly_now_ns() - t0) * 1e-9;
    x->ckpts++;
}

void rly_train_extras_eval(rly_train_extras *x, rly_learner *l, const rly_learner_stats *st,
                           rly_metrics_row *row)
{
    if (x->ev && st->updates % x->eval_every == 0) {
        relay_policy *p = rly_learner_current_policy(l);
        double sd, m = p ? evaluate(x, p, st->steps_consumed, &sd) : NAN;
        row->eval_mean = m;
        row->eval_std = sd;
        if (isfinite(m) && m > x->best) {
            x->best = m;
            relay_err e = write_policy(p, x->out, "policy.onnx", &x->best_onnx, &x->best_len);
            if (!e)
                x->best_written = true;
            else if (!x->error)
                x->error = e;
        }
    }
}

void rly_train_extras_save_due(rly_train_extras *x, rly_learner *l, const rly_learner_stats *st,
                               const double *cs, const double *cr, size_t nc)
{
    if (x->save_every && st->updates % x->save_every == 0)
        save(x, l, st->version, cs, cr, nc);
}

/* restore_curves reads the curves (nc, ne, best, arrays) of b[0..len). */
static relay_err restore_curves(rly_train_extras *x, const uint8_t *b, size_t len, double **steps,
                                double **returns, size_t *n)
{
    uint64_t nc, ne;
    if (len < 24) {
        rly_warn(MOD, "the checkpoint's learning curve is malformed; the curve restarts here");
        return RELAY_OK;
    }
    memcpy(&nc, b, 8);
    memcpy(&ne, b + 8, 8);
    if (nc > (len - 24) / 16 || ne > (len - 24) / 16 || 24 + 16 * (nc + ne) != len) {
        rly_warn(MOD, "the checkpoint's learning curve is malformed; the curve restarts here");
        return RELAY_OK;
    }
    memcpy(&x->best, b + 16, 8);
    double *cs = malloc((nc ? nc : 1) * sizeof *cs), *cr = malloc((nc ? nc : 1) * sizeof *cr);
    double *es = malloc((ne ? ne : 1) * sizeof *es), *er = malloc((ne ? ne : 1) * sizeof *er);
    if (!cs || !cr || !es || !er) {
        free(cs);
        free(cr);
        free(es);
        free(er);
        return RELAY_ENOMEM;
    }
    const uint8_t *p = b + 24;
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

relay_err rly_train_extras_resume(rly_train_extras *x, rly_learner *l, double **steps,
                                  double **returns, size_t *n, const uint8_t **acts,
                                  size_t *acts_len)
{
    *steps = *returns = NULL;
    *n = 0;
    *acts = NULL;
    *acts_len = 0;
    const uint8_t *b;
    size_t len;
    relay_err e = rly_learner_resume_extra(l, &b, &len);
    if (e || len == 0)
        return e;
    uint32_t magic = 0;
    if (len >= 4)
        memcpy(&magic, b, 4);
    if (magic == BLOB_MAGIC) /* before exact resume: the curves only */
        return restore_curves(x, b + 4, len - 4, steps, returns, n);
    if (magic != BLOB_MAGIC2) {
        rly_warn(MOD, "the checkpoint holds no learning curve; the curve restarts here");
        return RELAY_OK;
    }
    static const char *const names[] = {"", "curves", "best policy", "actor snapshots"};
    size_t off = 4;
    while (off < len) {
        uint32_t tag = 0;
        uint64_t sl = 0;
        if (len - off < 12 ||
            (memcpy(&tag, b + off, 4), memcpy(&sl, b + off + 4, 8), sl > len - off - 12)) {
            rly_error(MOD, "checkpoint section \"%s\" is truncated",
                      len - off >= 4 && tag >= 1 && tag <= 3 ? names[tag] : "?");
            return RELAY_ETRUNCATED;
        }
        const uint8_t *d = b + off + 12;
        off += 12 + (size_t)sl;
        if (tag == SEC_CURVES) {
            if ((e = restore_curves(x, d, (size_t)sl, steps, returns, n)) != RELAY_OK)
                return e;
        } else if (tag == SEC_BEST) {
            uint8_t *c = malloc(sl ? (size_t)sl : 1);
            if (!c)
                return RELAY_ENOMEM;
            memcpy(c, d, (size_t)sl);
            free(x->best_onnx);
            x->best_onnx = c;
            x->best_len = (size_t)sl;
        } else if (tag == SEC_ACTORS) {
            *acts = d;
            *acts_len = (size_t)sl;
        } /* other tags: from a newer Relay, skipped */
    }
    if (x->best_onnx && x->best_written) {
        /* policy.onnx may have been replaced after the checkpoint (a later evaluation or the
           interrupted run's final one): it holds the best policy as of the checkpoint again */
        char path[RELAY_PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/policy.onnx", x->out);
        if ((e = write_atomic(path, x->best_onnx, x->best_len)) != RELAY_OK)
            return e;
    } else {
        free(x->best_onnx);
        x->best_onnx = NULL;
        x->best_len = 0;
    }
    return RELAY_OK;
}

relay_err rly_train_extras_finish(rly_train_extras *x, rly_learner *l, int64_t version,
                                  uint64_t steps, const double *cs, const double *cr, size_t nc)
{
    relay_policy *p = rly_learner_current_policy(l);
    if (!p)
        return RELAY_ESTATE;
    if (x->save_every)
        save(x, l, version, cs, cr, nc);
    relay_err e = write_policy(p, x->out, "policy_last.onnx", NULL, NULL);
    if (x->ev) {
        double sd, m = evaluate(x, p, steps, &sd);
        if (isfinite(m) && m > x->best) {
            x->best = m;
            x->best_written = false; /* the last policy is the best: write it below */
        }
    }
    if (!x->best_written) {
        relay_err we = write_policy(p, x->out, "policy.onnx", NULL, NULL);
        if (!e)
            e = we;
    }
    return e ? e : x->error;
}
