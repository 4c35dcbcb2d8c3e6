/* Histograms, the Prometheus text writer, process series and address parsing. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "obs/obs.h"

#define MOD "obs"

/* ---- histograms ------------------------------------------------------------------------------ */

relay_err rly_obs_hist_init(rly_obs_hist *h, const double *bounds, uint32_t n)
{
    if (!h || (n && !bounds) || n > RLY_OBS_HIST_MAX)
        return RELAY_EINVAL;
    for (uint32_t i = 1; i < n; i++)
        if (!(bounds[i] > bounds[i - 1]))
            return RELAY_EINVAL;
    memset(h, 0, sizeof *h);
    h->n_bounds = n;
    for (uint32_t i = 0; i < n; i++)
        h->bounds[i] = bounds[i];
    for (uint32_t i = 0; i <= RLY_OBS_HIST_MAX; i++)
        atomic_init(&h->counts[i], 0);
    atomic_init(&h->sum_bits, 0);
    return RELAY_OK;
}

relay_err rly_obs_hist_init_exp(rly_obs_hist *h, double start, double factor, uint32_t n)
{
    if (!(start > 0) || !(factor > 1) || n > RLY_OBS_HIST_MAX)
        return RELAY_EINVAL;
    double b[RLY_OBS_HIST_MAX];
    for (uint32_t i = 0; i < n; i++)
        b[i] = start * pow(factor, (double)i);
    return rly_obs_hist_init(h, b, n);
}

relay_err rly_obs_hist_init_lin(rly_obs_hist *h, double start, double width, uint32_t n)
{
    if (!(width > 0) || n > RLY_OBS_HIST_MAX)
        return RELAY_EINVAL;
    double b[RLY_OBS_HIST_MAX];
    for (uint32_t i = 0; i < n; i++)
        b[i] = start + width * (double)i;
    return rly_obs_hist_init(h, b, n);
}

static double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

void rly_obs_hist_observe(rly_obs_hist *h, double v)
{
    if (isnan(v))
        return;
    uint32_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old,
                                                  double_to_bits(bits_to_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

uint64_t rly_obs_hist_count(const rly_obs_hist *h)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i <= h->n_bounds; i++)
        n += atomic_load_explicit(&((rly_obs_hist *)h)->counts[i], memory_order_relaxed);
    return n;
}

/* ---- text output ----------------------------------------------------------------------------- */

struct rly_obs_out {
    char *buf;
    size_t len, cap;
    bool failed; /* out of memory: the rest is dropped */
};

rly_obs_out *rly_obs_out_new(void)
{
    rly_obs_out *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->cap = 16384;
    o->buf = malloc(o->cap);
    if (!o->buf) {
        free(o);
        return NULL;
    }
    o->buf[0] = '\0';
    return o;
}

void rly_obs_out_free(rly_obs_out *o)
{
    if (!o)
        return;
    free(o->buf);
    free(o);
}

const char *rly_obs_out_text(const rly_obs_out *o, size_t *len)
{
    if (len)
        *len = o->len;
    return o->buf;
}

/* out_printf appends formatted text, growing the buffer. */
static void out_printf(rly_obs_out *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *b = realloc(o->buf, cap);
        if (!b) {
            o->failed = true;
            o->buf[o->len] = '\0';
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
}

void rly_obs_family(rly_obs_out *o, const char *name, const char *type, const char *help)
{
    out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* fmt_value writes v the way the exposition format spells it (Go-style NaN/+Inf/-Inf). */
static const char *fmt_value(double v, char *buf, size_t cap)
{
    if (isnan(v))
        return "NaN";
    if (isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    if (v == floor(v) && fabs(v) < 1e15)
        snprintf(buf, cap, "%.0f", v);
    else
        snprintf(buf, cap, "%.9g", v);
    return buf;
}

void rly_obs_sample(rly_obs_out *o, const char *name, const char *labels, double value)
{
    char vb[48];
    const char *v = fmt_value(value, vb, sizeof vb);
    if (labels && labels[0])
        out_printf(o, "%s{%s} %s\n", name, labels, v);
    else
        out_printf(o, "%s %s\n", name, v);
}

void rly_obs_sample_u64(rly_obs_out *o, const char *name, const char *labels, uint64_t value)
{
    if (labels && labels[0])
        out_printf(o, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
    else
        out_printf(o, "%s %llu\n", name, (unsigned long long)value);
}

void rly_obs_metric(rly_obs_out *o, const char *name, const char *type, const char *help,
                    double value)
{
    rly_obs_family(o, name, type, help);
    rly_obs_sample(o, name, NULL, value);
}

void rly_obs_hist_write(rly_obs_out *o, const char *name, const char *help, const char *labels,
                        const rly_obs_hist *h)
{
    if (help)
        rly_obs_family(o, name, "histogram", help);
    char series[160], lab[256];
    const char *sep = labels && labels[0] ? "," : "";
    const char *base = labels ? labels : "";
    uint64_t cum = 0;
    snprintf(series, sizeof series, "%s_bucket", name);
    for (uint32_t i = 0; i <= h->n_bounds; i++) {
        cum += atomic_load_explicit(&((rly_obs_hist *)h)->counts[i], memory_order_relaxed);
        char vb[48];
        const char *le = i < h->n_bounds ? fmt_value(h->bounds[i], vb, sizeof vb) : "+Inf";
        snprintf(lab, sizeof lab, "%s%sle=\"%s\"", base, sep, le);
        rly_obs_sample_u64(o, series, lab, cum);
    }
    snprintf(series, sizeof series, "%s_sum", name);
    rly_obs_sample(
        o, series, base,
        bits_to_double(atomic_load_explicit(&((rly_obs_hist *)h)->sum_bits, memory_order_relaxed)));
    snprintf(series, sizeof series, "%s_count", name);
    rly_obs_sample_u64(o, series, base, cum);
}

char *rly_obs_label_escape(const char *s, char *buf, size_t cap)
{
    size_t j = 0;
    if (!cap)
        return buf;
    for (; s && *s && j + 2 < cap; s++) {
        if (*s == '\\' || *s == '"') {
            buf[j++] = '\\';
            buf[j++] = *s;
        } else if (*s == '\n') {
            buf[j++] = '\\';
            buf[j++] = 'n';
        } else {
            buf[j++] = *s;
        }
    }
    buf[j] = '\0';
    return buf;
}

/* ---- process series ----------------------------------------------------------------------------
 */

/* read_small reads a /proc file into buf (NUL-terminated); returns the length or -1. */
static long read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (long)n;
}

void rly_obs_process_collect(void *ctx, rly_obs_out *o)
{
    (void)ctx;
    char buf[1024];
    long page = sysconf(_SC_PAGESIZE);
    unsigned long long size = 0, resident = 0;
    if (read_small("/proc/self/statm", buf, sizeof buf) > 0 &&
        sscanf(buf, "%llu %llu", &size, &resident) == 2) {
        rly_obs_metric(o, "relay_process_resident_memory_bytes", "gauge",
                       "Resident set size of the process in bytes.",
                       (double)resident * (double)page);
        rly_obs_metric(o, "relay_process_virtual_memory_bytes", "gauge",
                       "Virtual memory size of the process in bytes.", (double)size * (double)page);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        double user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
        double sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
        rly_obs_family(o, "relay_process_cpu_seconds_total", "counter",
                       "CPU time consumed by the process in seconds, by mode.");
        rly_obs_sample(o, "relay_process_cpu_seconds_total", "mode=\"user\"", user);
        rly_obs_sample(o, "relay_process_cpu_seconds_total", "mode=\"system\"", sys);
    }
    if (read_small("/proc/self/stat", buf, sizeof buf) > 0) {
        /* field 20 is num_threads; skip past the ")" that ends the command name */
        const char *p = strrchr(buf, ')');
        long threads = 0;
        int field = 2;
        for (; p && *p && field < 20; p++)
            if (*p == ' ')
                field++;
        if (p && sscanf(p, "%ld", &threads) == 1)
            rly_obs_metric(o, "relay_process_threads", "gauge", "Threads of the process.",
                           (double)threads);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    rly_obs_metric(o, "relay_scrape_timestamp_seconds", "gauge",
                   "Wall-clock time of this scrape in seconds since the epoch.",
                   (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
}

/* ---- addresses ---------------------------------------------------------------------------------
 */

static relay_err addr_fail(char *err, size_t cap, const char *addr, const char *why)
{
    if (err && cap)
        snprintf(err, cap, "bad metrics address \"%.200s\": %s", addr ? addr : "(null)", why);
    return RELAY_EINVAL;
}

relay_err rly_obs_parse_addr(const char *addr, char *host, size_t cap, uint16_t *port, char *err,
                             size_t err_cap)
{
    if (!addr || !host || !port || cap < 2)
        return addr_fail(err, err_cap, addr, "missing");
    size_t len = strlen(addr);
    if (len == 0)
        return addr_fail(err, err_cap, addr, "empty (expected HOST:PORT or PORT)");
    if (len > 255)
        return addr_fail(err, err_cap, addr, "longer than 255 characters");
    const char *p;
    size_t hlen;
    const char *hstart = addr;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return addr_fail(err, err_cap, addr, "an IPv6 address needs the form [ADDR]:PORT");
        hstart = addr + 1;
        hlen = (size_t)(close - hstart);
        p = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon && strchr(addr, ':') != colon)
            return addr_fail(err, err_cap, addr, "write IPv6 hosts in brackets: [ADDR]:PORT");
        if (colon) {
            hlen = (size_t)(colon - addr);
            p = colon + 1;
        } else {
            hlen = 0;
            p = addr;
        }
    }
    if (*p == '\0')
        return addr_fail(err, err_cap, addr, "missing port");
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return addr_fail(err, err_cap, addr, "the port must be a number 0-65535");
    errno = 0;
    unsigned long v = strtoul(p, NULL, 10);
    if (errno || v > 65535 || strlen(p) > 5)
        return addr_fail(err, err_cap, addr, "the port must be a number 0-65535");
    if (hlen == 0) {
        snprintf(host, cap, "%s", RLY_OBS_DEFAULT_HOST);
    } else {
        if (hlen >= cap)
            return addr_fail(err, err_cap, addr, "host name too long");
        for (size_t i = 0; i < hlen; i++) {
            unsigned char c = (unsigned char)hstart[i];
            if (!(isalnum(c) || c == '.' || c == '-' || c == ':' || c == '_'))
                return addr_fail(err, err_cap, addr, "the host has an invalid character");
        }
        memcpy(host, hstart, hlen);
        host[hlen] = '\0';
    }
    *port = (uint16_t)v;
    return RELAY_OK;
}
