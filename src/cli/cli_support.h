/*
 * Helpers of the `relay` command-line tool: the metrics.csv writer, the learning_curve.svg
 * plotter, the live progress line and the `relay eval` subcommand. See docs/CLI.md.
 */
#ifndef RLY_CLI_SUPPORT_H
#define RLY_CLI_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "learn/learner.h"
#include "relay/err.h"
#include "relay/learn.h"

/* ---- metrics.csv ---------------------------------------------------------------------------- */

/* RLY_METRICS_HEADER is the first line of metrics.csv (column names, comma-separated). */
#define RLY_METRICS_HEADER                                                                         \
    "update,steps,wall_s,sps,mean_return_100,episodes,policy_loss,value_loss,entropy,approx_kl,"   \
    "clip_fraction,explained_variance,learning_rate,version,eval_mean_return,eval_std_return"

/* rly_metrics_row is one line of metrics.csv (one learner update). */
typedef struct rly_metrics_row {
    uint32_t update;
    uint64_t steps; /* env steps consumed by updates so far */
    double wall_s;
    double sps;
    float mean_return_100; /* NaN (written "nan") before the first finished episode */
    uint64_t episodes;
    relay_ppo_metrics m;
    int64_t version;
    double eval_mean, eval_std; /* deterministic evaluation at this update; NaN when none ran */
} rly_metrics_row;

/* rly_metrics_row_from_stats fills r from a learner stats snapshot. */
void rly_metrics_row_from_stats(rly_metrics_row *r, const rly_learner_stats *st);

/* rly_metrics_csv writes metrics.csv, one flushed line per row. */
typedef struct rly_metrics_csv rly_metrics_csv;

/* rly_metrics_csv_open creates (truncates) path and writes the header; RELAY_EIO on failure. */
relay_err rly_metrics_csv_open(const char *path, rly_metrics_csv **out);

/* rly_metrics_csv_open_append continues an existing path (a run resumed after `updates`
   updates: later rows are dropped first); the header is written only into an empty file. */
relay_err rly_metrics_csv_open_append(const char *path, uint32_t updates, rly_metrics_csv **out);

/* rly_metrics_csv_write appends one row and flushes it; RELAY_EIO on a write error. */
relay_err rly_metrics_csv_write(rly_metrics_csv *w, const rly_metrics_row *r);

/* rly_metrics_csv_close closes the file (reporting a final write error); NULL is a no-op. */
relay_err rly_metrics_csv_close(rly_metrics_csv *w);

/* ---- learning_curve.svg --------------------------------------------------------------------- */

/*
 * rly_svg_learning_curve writes an SVG line chart of returns[i] against steps[i] (n points, any
 * n including 0; non-finite points are skipped) with ticked, labelled axes and a title (XML
 * escaped). RELAY_EINVAL on NULL arguments, RELAY_EIO when the file cannot be written.
 */
relay_err rly_svg_learning_curve(const char *path, const char *title, const double *steps,
                                 const double *returns, size_t n);

/* rly_svg_extra adds an evaluation series (points with a line) and a target line to a curve. */
typedef struct rly_svg_extra {
    const double *eval_steps, *eval_returns;
    size_t n_eval;
    double target; /* NaN or infinite: no target line */
} rly_svg_extra;

/* rly_svg_learning_curve_ex is rly_svg_learning_curve with the extras of x (may be NULL). */
relay_err rly_svg_learning_curve_ex(const char *path, const char *title, const double *steps,
                                    const double *returns, size_t n, const rly_svg_extra *x);

/* rly_nice_ticks picks at most max_ticks round tick values covering [lo, hi]; returns the count. */
size_t rly_nice_ticks(double lo, double hi, size_t max_ticks, double *ticks);

/* ---- progress line -------------------------------------------------------------------------- */

/* rly_progress_info is what one progress line shows. */
typedef struct rly_progress_info {
    uint64_t steps;
    uint64_t total_steps; /* 0 = unknown */
    double sps;
    float mean_return; /* NaN: no finished episode yet */
    uint64_t episodes;
    int64_t version;
    double elapsed_s;
} rly_progress_info;

/* rly_progress prints progress: a \r-rewritten line on a terminal, periodic lines otherwise. */
typedef struct rly_progress {
    FILE *out;
    bool tty;
    int64_t interval_ns; /* minimum time between two prints */
    int64_t last_ns;     /* monotonic time of the last print (0 = never) */
    size_t last_len;     /* length of the line on screen (tty) */
    /* counters of the last line printed: a final plain line for the same update is not repeated */
    uint64_t last_steps, last_episodes;
    int64_t last_version;
    bool printed;
} rly_progress;

/* rly_progress_init prints to out; tty chosen by isatty(); interval_s between plain lines. */
void rly_progress_init(rly_progress *p, FILE *out, double interval_s);

/* rly_progress_format writes one progress line (no newline) into buf and returns its length. */
size_t rly_progress_format(const rly_progress_info *info, char *buf, size_t cap);

/* rly_progress_update prints info if the interval has passed (or force); returns true if printed.
 */
bool rly_progress_update(rly_progress *p, const rly_progress_info *info, bool force);

/* rly_progress_finish prints info one last time and ends the line. */
void rly_progress_finish(rly_progress *p, const rly_progress_info *info);

/* ---- relay eval ----------------------------------------------------------------------------- */

/*
 * rly_cli_eval implements `relay eval` (argv[0] = "eval"): prints the return statistics of
 * --episodes greedy (or --stochastic) episodes of --model on --env. Returns the exit code:
 * 0 success, 1 runtime failure, 2 bad arguments (unknown option, missing value, bad number,
 * unknown env, unloadable model, model sizes that do not fit the env).
 */
int rly_cli_eval(int argc, char **argv);

/* rly_cli_eval_io is rly_cli_eval writing results to out and errors to err. */
int rly_cli_eval_io(int argc, char **argv, FILE *out, FILE *err);

#endif
