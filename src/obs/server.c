/*
 * The HTTP endpoint: libmicrohttpd with one internal epoll thread. Requests are served from that
 * thread; a scrape runs the registered collectors one after the other under the collector lock.
 * Limits (connections, idle timeout, request memory) come from rly_obs_server_config.
 */
#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/thread.h"
#include "obs/obs.h"

#define MOD "obs"
#define MAX_COLLECTORS 32

extern const unsigned char rly_obs_dashboard_html[];
extern const size_t rly_obs_dashboard_html_len;

typedef struct collector {
    rly_obs_collect_fn fn;
    void *ctx;
} collector;

typedef struct curve_pt {
    double steps, mean, eval;
} curve_pt;

struct rly_obs_server {
    struct MHD_Daemon *d;
    char host[256];
    uint16_t port;
    rly_mutex coll_lock; /* collectors; held for a whole scrape */
    collector colls[MAX_COLLECTORS];
    size_t n_colls;
    rly_mutex curve_lock; /* curve points, title, target */
    curve_pt *pts;
    uint32_t n_pts, cap_pts;
    uint64_t gen; /* bumped when points are thinned out */
    char title[256];
    double target;
};

/* ---- handlers -------------------------------------------------------------------------------- */

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned status, const char *type,
                                void *buf, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, buf, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *text)
{
    return send_buf(c, status, "text/plain; charset=utf-8", (void *)text, strlen(text),
                    MHD_RESPMEM_PERSISTENT);
}

void rly_obs_scrape(rly_obs_server *s, rly_obs_out *o)
{
    rly_mutex_lock(&s->coll_lock);
    for (size_t i = 0; i < s->n_colls; i++)
        s->colls[i].fn(s->colls[i].ctx, o);
    rly_mutex_unlock(&s->coll_lock);
    rly_obs_process_collect(NULL, o);
}

static enum MHD_Result serve_metrics(rly_obs_server *s, struct MHD_Connection *c)
{
    rly_obs_out *o = rly_obs_out_new();
    if (!o)
        return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
    rly_obs_scrape(s, o);
    size_t len;
    char *text = (char *)rly_obs_out_text(o, &len);
    /* hand the buffer over to the response (it frees it) */
    char *buf = malloc(len ? len : 1);
    if (buf)
        memcpy(buf, text, len);
    rly_obs_out_free(o);
    if (!buf)
        return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
    return send_buf(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", buf, len,
                    MHD_RESPMEM_MUST_FREE);
}

/* json_num appends a JSON number or null. */
static int json_num(char *b, size_t cap, double v)
{
    if (!isfinite(v))
        return snprintf(b, cap, "null");
    return snprintf(b, cap, "%.9g", v);
}

/* json_str appends s as a JSON string. */
static size_t json_str(char *b, size_t cap, const char *s)
{
    size_t j = 0;
    if (j < cap)
        b[j++] = '"';
    for (; *s && j + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            b[j++] = '\\';
            b[j++] = (char)ch;
        } else if (ch < 0x20) {
            j += (size_t)snprintf(b + j, cap - j, "\\u%04x", ch);
        } else {
            b[j++] = (char)ch;
        }
    }
    if (j < cap)
        b[j++] = '"';
    return j;
}

static enum MHD_Result serve_curve(rly_obs_server *s, struct MHD_Connection *c)
{
    const char *since_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
    unsigned long since = 0;
    if (since_s) {
        char *end;
        since = strtoul(since_s, &end, 10);
        if (end == since_s || *end)
            return send_text(c, MHD_HTTP_BAD_REQUEST, "since must be a non-negative integer\n");
    }
    rly_mutex_lock(&s->curve_lock);
    uint32_t first = since <= s->n_pts ? (uint32_t)since : s->n_pts;
    size_t cap = 1024 + (size_t)(s->n_pts - first) * 80;
    char *b = malloc(cap);
    if (!b) {
        rly_mutex_unlock(&s->curve_lock);
        return send_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
    }
    size_t n = (size_t)snprintf(b, cap, "{\"gen\":%llu,\"first\":%u,\"total\":%u,\"title\":",
                                (unsigned long long)s->gen, first, s->n_pts);
    n += json_str(b + n, cap - n, s->title);
    n += (size_t)snprintf(b + n, cap - n, ",\"target\":");
    n += (size_t)json_num(b + n, cap - n, s->target);
    n += (size_t)snprintf(b + n, cap - n, ",\"points\":[");
    for (uint32_t i = first; i < s->n_pts && n + 100 < cap; i++) {
        n += (size_t)snprintf(b + n, cap - n, "%s[", i > first ? "," : "");
        n += (size_t)json_num(b + n, cap - n, s->pts[i].steps);
        b[n++] = ',';
        n += (size_t)json_num(b + n, cap - n, s->pts[i].mean);
        b[n++] = ',';
        n += (size_t)json_num(b + n, cap - n, s->pts[i].eval);
        b[n++] = ']';
    }
    rly_mutex_unlock(&s->curve_lock);
    n += (size_t)snprintf(b + n, cap - n, "]}\n");
    return send_buf(c, MHD_HTTP_OK, "application/json", b, n, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    rly_obs_server *s = cls;
    (void)version;
    (void)upload;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        if (*upload_size)
            *upload_size = 0; /* the body is ignored; the connection is closed after the reply */
        return send_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are served\n");
    }
    if (!*con_cls) {
        *con_cls = s; /* first call: headers are in; answer once any body has been skipped */
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0; /* a GET body is read and discarded */
        return MHD_YES;
    }
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(s, c);
    if (strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0)
        return send_buf(c, MHD_HTTP_OK, "text/html; charset=utf-8", (void *)rly_obs_dashboard_html,
                        rly_obs_dashboard_html_len, MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/api/curve") == 0)
        return serve_curve(s, c);
    if (strcmp(url, "/healthz") == 0)
        return send_text(c, MHD_HTTP_OK, "ok\n");
    return send_text(c, MHD_HTTP_NOT_FOUND, "not found: try /, /metrics or /api/curve\n");
}

/* ---- lifecycle --------------------------------------------------------------------------------
 */

relay_err rly_obs_server_new(const rly_obs_server_config *cfg, rly_obs_server **out)
{
    if (!cfg || !out)
        return RELAY_EINVAL;
    *out = NULL;
    char err[320];
    char host[256];
    uint16_t port;
    relay_err e = rly_obs_parse_addr(cfg->addr, host, sizeof host, &port, err, sizeof err);
    if (e) {
        rly_error(MOD, "%s", err);
        return e;
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, NULL, &hints, &ai);
    if (gai != 0 || !ai) {
        rly_error(MOD, "metrics address %s: cannot resolve host %s: %s", cfg->addr, host,
                  gai_strerror(gai));
        return RELAY_EINVAL;
    }
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof sa);
    memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
    bool v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (v6)
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&sa)->sin_port = htons(port);

    rly_obs_server *s = calloc(1, sizeof *s);
    if (!s)
        return RELAY_ENOMEM;
    s->cap_pts = cfg->curve_capacity ? cfg->curve_capacity : 4096;
    if (s->cap_pts < 16)
        s->cap_pts = 16;
    s->pts = calloc(s->cap_pts, sizeof *s->pts);
    if (!s->pts) {
        free(s);
        return RELAY_ENOMEM;
    }
    s->target = NAN;
    snprintf(s->host, sizeof s->host, "%s", host);
    rly_mutex_init(&s->coll_lock);
    rly_mutex_init(&s->curve_lock);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | (v6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)(cfg->max_conns ? cfg->max_conns : 64),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(cfg->timeout_s ? cfg->timeout_s : 10),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(cfg->conn_memory ? cfg->conn_memory : 32 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned int)128, MHD_OPTION_END);
    if (!s->d) {
        rly_error(MOD,
                  "cannot serve metrics on %s (host %s, port %u): address in use, not local, "
                  "or not permitted",
                  cfg->addr, host, port);
        rly_obs_server_free(s);
        return RELAY_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di && di->port ? di->port : port;
    *out = s;
    return RELAY_OK;
}

void rly_obs_server_free(rly_obs_server *s)
{
    if (!s)
        return;
    if (s->d)
        MHD_stop_daemon(s->d);
    rly_mutex_fini(&s->coll_lock);
    rly_mutex_fini(&s->curve_lock);
    free(s->pts);
    free(s);
}

uint16_t rly_obs_server_port(const rly_obs_server *s)
{
    return s ? s->port : 0;
}

char *rly_obs_server_url(const rly_obs_server *s, char *buf, size_t cap)
{
    if (!s) {
        snprintf(buf, cap, "(none)");
        return buf;
    }
    bool v6 = strchr(s->host, ':') != NULL;
    snprintf(buf, cap, "http://%s%s%s:%u/", v6 ? "[" : "", s->host, v6 ? "]" : "", s->port);
    return buf;
}

relay_err rly_obs_server_add_collector(rly_obs_server *s, rly_obs_collect_fn fn, void *ctx)
{
    if (!s)
        return RELAY_OK;
    if (!fn)
        return RELAY_EINVAL;
    rly_mutex_lock(&s->coll_lock);
    relay_err e = RELAY_OK;
    if (s->n_colls == MAX_COLLECTORS)
        e = RELAY_EFULL;
    else
        s->colls[s->n_colls++] = (collector){fn, ctx};
    rly_mutex_unlock(&s->coll_lock);
    if (e)
        rly_error(MOD, "more than %d metric collectors", MAX_COLLECTORS);
    return e;
}

void rly_obs_server_remove_collector(rly_obs_server *s, rly_obs_collect_fn fn, void *ctx)
{
    if (!s)
        return;
    rly_mutex_lock(&s->coll_lock);
    for (size_t i = 0; i < s->n_colls; i++) {
        if (s->colls[i].fn == fn && s->colls[i].ctx == ctx) {
            memmove(&s->colls[i], &s->colls[i + 1], (s->n_colls - i - 1) * sizeof s->colls[0]);
            s->n_colls--;
            break;
        }
    }
    rly_mutex_unlock(&s->coll_lock);
}

void rly_obs_server_set_run(rly_obs_server *s, const char *title, double target)
{
    if (!s)
        return;
    rly_mutex_lock(&s->curve_lock);
    snprintf(s->title, sizeof s->title, "%s", title ? title : "");
    s->target = target;
    rly_mutex_unlock(&s->curve_lock);
}

void rly_obs_curve_add(rly_obs_server *s, double steps, double mean_return, double eval_return)
{
    if (!s)
        return;
    rly_mutex_lock(&s->curve_lock);
    if (s->n_pts == s->cap_pts) {
        /* keep every other point (the newest always survives): the whole run stays visible */
        uint32_t j = 0;
        for (uint32_t i = (s->n_pts - 1) & 1u; i < s->n_pts; i += 2)
            s->pts[j++] = s->pts[i];
        s->n_pts = j;
        s->gen++;
    }
    s->pts[s->n_pts++] = (curve_pt){steps, mean_return, eval_return};
    rly_mutex_unlock(&s->curve_lock);
}

void rly_obs_cli_announce(const rly_obs_server *s, const char *prog)
{
    char url[300];
    rly_obs_server_url(s, url, sizeof url);
    fprintf(stderr, "%s: metrics on %smetrics, dashboard on %s\n", prog, url, url);
}

relay_err rly_obs_cli_check_addr(const char *addr, const char *prog, char *dst, size_t cap)
{
    char err[320];
    char host[256];
    uint16_t port;
    relay_err e = rly_obs_parse_addr(addr, host, sizeof host, &port, err, sizeof err);
    if (!e && strlen(addr) >= cap) {
        snprintf(err, sizeof err, "bad metrics address: longer than %zu characters", cap - 1);
        e = RELAY_EINVAL;
    }
    if (e) {
        fprintf(stderr, "%s: --metrics-addr: %s\n", prog, err);
        return e;
    }
    snprintf(dst, cap, "%s", addr);
    return RELAY_OK;
}

relay_err rly_obs_cli_start(const char *addr, const char *prog, rly_obs_server **out)
{
    char err[320];
    char host[256];
    uint16_t port;
    *out = NULL;
    relay_err e = rly_obs_parse_addr(addr, host, sizeof host, &port, err, sizeof err);
    if (e) {
        fprintf(stderr, "%s: --metrics-addr: %s\n", prog, err);
        return e;
    }
    rly_obs_server_config cfg = {.addr = addr};
    e = rly_obs_server_new(&cfg, out);
    if (e) {
        fprintf(stderr, "%s: --metrics-addr %s: cannot listen on %s port %u (%s)\n", prog, addr,
                host, port, relay_strerror(e));
        return e;
    }
    rly_obs_cli_announce(*out, prog);
    return RELAY_OK;
}
