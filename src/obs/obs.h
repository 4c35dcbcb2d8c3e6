/*
 * rly_obs: observability. Prometheus text exposition, a live dashboard page and a JSON feed,
 * served over HTTP by libmicrohttpd (one internal event-loop thread, no hand-written HTTP).
 *
 * Ownership and threads:
 *  - rly_obs_hist is embedded by whoever observes values (any thread; observing never allocates
 *    and never locks: a few relaxed atomic adds).
 *  - rly_obs_server is owned by the thread that created it (rly_obs_server_new/_free). Collectors,
 *    curve points and settings may be added from any thread. The server's own thread
 * (libmicrohttpd) calls the collectors at scrape time, one scrape at a time, with the server's
 * collector lock held: a collector must not call rly_obs_server_* itself and should only read
 * counters.
 *  - rly_obs_out is a growable text buffer that belongs to the scrape in progress; collectors
 *    append series to it with rly_obs_family / rly_obs_sample / rly_obs_hist_write.
 *
 * Hooking a subcommand (relay train, relay server, relay actors):
 *     const char *addr = NULL;                            // from --metrics-addr HOST:PORT
 *     rly_obs_server *srv = NULL;
 *     if (addr && rly_obs_cli_start(addr, "relay server", &srv) != RELAY_OK) return 2;
 *     rly_obs_server_add_collector(srv, my_collect, my_ctx); // NULL srv: no-op
 *     rly_obs_server_set_run(srv, "CartPole-v1 ppo", 475.0);  // dashboard title and target line
 *     rly_obs_curve_add(srv, steps, mean_return, eval_return_or_NAN); // once per update
 *     ...
 *     rly_obs_server_remove_collector(srv, my_collect, my_ctx); // before my_ctx dies
 *     rly_obs_server_free(srv);
 * An agent created with config `metrics_addr` owns its own server (rly_agent_obs returns it) and
 * registers its routing/actor/sink series itself; docs/OBSERVABILITY.md lists every series.
 */
#ifndef RLY_OBS_OBS_H
#define RLY_OBS_OBS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/err.h"

/* ---- histograms ------------------------------------------------------------------------------ */

/* RLY_OBS_HIST_MAX is the largest number of finite bucket bounds a histogram may have. */
#define RLY_OBS_HIST_MAX 24

/* rly_obs_hist is a fixed-bucket histogram (cumulative on output); embed it, init it once. */
typedef struct rly_obs_hist {
    uint32_t n_bounds;
    double bounds[RLY_OBS_HIST_MAX]; /* ascending upper bounds; +Inf is implicit */
    _Atomic uint64_t counts[RLY_OBS_HIST_MAX + 1];
    _Atomic uint64_t sum_bits; /* a double, added with a CAS loop */
} rly_obs_hist;

/* rly_obs_hist_init sets n ascending bounds (n <= RLY_OBS_HIST_MAX, else RELAY_EINVAL). */
relay_err rly_obs_hist_init(rly_obs_hist *h, const double *bounds, uint32_t n);

/* rly_obs_hist_init_exp sets n bounds start, start*factor, ... (factor > 1). */
relay_err rly_obs_hist_init_exp(rly_obs_hist *h, double start, double factor, uint32_t n);

/* rly_obs_hist_init_lin sets n bounds start, start+width, ... (width > 0). */
relay_err rly_obs_hist_init_lin(rly_obs_hist *h, double start, double width, uint32_t n);

/* rly_obs_hist_observe records v (any thread, lock-free, no allocation; NaN is ignored). */
void rly_obs_hist_observe(rly_obs_hist *h, double v);

/* rly_obs_hist_count returns how many values were observed (racy snapshot). */
uint64_t rly_obs_hist_count(const rly_obs_hist *h);

/* ---- exposition output (used by collectors) -------------------------------------------------- */

/* rly_obs_out is the text of one scrape being built (opaque; owned by the scrape). */
typedef struct rly_obs_out rly_obs_out;

/* rly_obs_family writes the # HELP and # TYPE lines of a family (type: counter|gauge|histogram). */
void rly_obs_family(rly_obs_out *o, const char *name, const char *type, const char *help);

/*
 * rly_obs_sample writes one sample `name{labels} value`; labels is the inside of the braces
 * (e.g. `router="3"`, values escaped by the caller with rly_obs_label_escape) or NULL/"".
 */
void rly_obs_sample(rly_obs_out *o, const char *name, const char *labels, double value);

/* rly_obs_sample_u64 is rly_obs_sample for an exact integer value. */
void rly_obs_sample_u64(rly_obs_out *o, const char *name, const char *labels, uint64_t value);

/* rly_obs_metric writes a whole single-sample family: HELP, TYPE and one unlabelled sample. */
void rly_obs_metric(rly_obs_out *o, const char *name, const char *type, const char *help,
                    double value);

/* rly_obs_hist_write writes a histogram family (HELP/TYPE unless help is NULL) from h. */
void rly_obs_hist_write(rly_obs_out *o, const char *name, const char *help, const char *labels,
                        const rly_obs_hist *h);

/* rly_obs_label_escape copies s into buf (cap bytes) escaping \, " and newline; returns buf. */
char *rly_obs_label_escape(const char *s, char *buf, size_t cap);

/* rly_obs_out_text returns the text written so far (NUL-terminated) and its length in *len. */
const char *rly_obs_out_text(const rly_obs_out *o, size_t *len);

/* rly_obs_out_new / rly_obs_out_free create and free a standalone buffer (tests, tools). */
rly_obs_out *rly_obs_out_new(void);
/* rly_obs_out_free frees o; NULL is a no-op. */
void rly_obs_out_free(rly_obs_out *o);

/* rly_obs_process_collect writes relay_process_* series (RSS, CPU seconds, threads, start). */
void rly_obs_process_collect(void *ctx, rly_obs_out *o);

/* ---- addresses ------------------------------------------------------------------------------- */

/* RLY_OBS_DEFAULT_HOST is where a bare port binds: loopback only. */
#define RLY_OBS_DEFAULT_HOST "127.0.0.1"

/*
 * rly_obs_parse_addr splits "HOST:PORT", "[V6]:PORT", ":PORT" or "PORT" (host defaults to
 * 127.0.0.1; port 0 picks a free one) into host (cap bytes) and *port. RELAY_EINVAL with the
 * reason in err (err_cap bytes, may be NULL) on anything else.
 */
relay_err rly_obs_parse_addr(const char *addr, char *host, size_t cap, uint16_t *port, char *err,
                             size_t err_cap);

/* ---- the server ------------------------------------------------------------------------------ */

/* rly_obs_collect_fn appends series to o at scrape time (server thread, collector lock held). */
typedef void (*rly_obs_collect_fn)(void *ctx, rly_obs_out *o);

/* rly_obs_server_config configures a server; zeros mean the defaults in brackets. */
typedef struct rly_obs_server_config {
    const char *addr;        /* see rly_obs_parse_addr (required) */
    uint32_t max_conns;      /* simultaneous connections [64]; more are refused at accept */
    uint32_t timeout_s;      /* idle connection timeout [10 s]: slow clients are dropped */
    size_t conn_memory;      /* per-connection request memory [32 KiB]: bigger headers -> 431 */
    uint32_t curve_capacity; /* learning-curve points kept [4096]; older ones are thinned out */
} rly_obs_server_config;

/* rly_obs_server is a running HTTP endpoint (opaque). */
typedef struct rly_obs_server rly_obs_server;

/*
 * rly_obs_server_new binds cfg->addr and starts serving GET /metrics (Prometheus text 0.0.4),
 * / (the dashboard), /api/curve?since=N (JSON) and /healthz. The process series are always
 * included. RELAY_EINVAL: bad address; RELAY_EIO: cannot bind (logged with the reason).
 */
relay_err rly_obs_server_new(const rly_obs_server_config *cfg, rly_obs_server **out);

/* rly_obs_server_free stops the server (waits for its thread) and frees it; NULL is a no-op. */
void rly_obs_server_free(rly_obs_server *s);

/* rly_obs_server_port returns the bound TCP port (useful after asking for port 0). */
uint16_t rly_obs_server_port(const rly_obs_server *s);

/* rly_obs_server_url writes "http://HOST:PORT/" into buf (cap bytes) and returns buf. */
char *rly_obs_server_url(const rly_obs_server *s, char *buf, size_t cap);

/* rly_obs_server_add_collector registers fn(ctx) for every scrape; RELAY_EFULL beyond 32. */
relay_err rly_obs_server_add_collector(rly_obs_server *s, rly_obs_collect_fn fn, void *ctx);

/* rly_obs_server_remove_collector unregisters fn/ctx; waits for a scrape in progress to end. */
void rly_obs_server_remove_collector(rly_obs_server *s, rly_obs_collect_fn fn, void *ctx);

/* rly_obs_server_set_run sets the dashboard title and target return (NaN: no target line). */
void rly_obs_server_set_run(rly_obs_server *s, const char *title, double target);

/*
 * rly_obs_curve_add appends a learning-curve point: env steps, mean return (NaN if none yet) and
 * an eval return (NaN if none). Never allocates (fixed ring; when full, every other point is
 * dropped so the whole run stays visible). NULL s is a no-op.
 */
void rly_obs_curve_add(rly_obs_server *s, double steps, double mean_return, double eval_return);

/* rly_obs_scrape builds the /metrics text into o exactly as a scrape would (tests, tools). */
void rly_obs_scrape(rly_obs_server *s, rly_obs_out *o);

/*
 * rly_obs_cli_start is the one helper every subcommand calls for --metrics-addr ADDR: it starts a
 * server on addr and prints "<prog>: metrics on http://HOST:PORT/metrics, dashboard on
 * http://HOST:PORT/" to stderr. On failure it prints why (naming the address) and returns the
 * error; the caller exits with status 2.
 */
relay_err rly_obs_cli_start(const char *addr, const char *prog, rly_obs_server **out);

/*
 * rly_obs_cli_check_addr validates a --metrics-addr value and copies it into dst (cap bytes), e.g.
 * a relay_config's metrics_addr, so the agent starts the server; on a bad value it prints
 * "<prog>: --metrics-addr: <reason>" to stderr and returns RELAY_EINVAL (exit status 2).
 */
relay_err rly_obs_cli_check_addr(const char *addr, const char *prog, char *dst, size_t cap);

/* rly_obs_cli_announce prints the URLs of s for prog to stderr (as rly_obs_cli_start does). */
void rly_obs_cli_announce(const rly_obs_server *s, const char *prog);

#endif
