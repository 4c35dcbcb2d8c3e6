/* Tests of the observability layer: histograms, exposition text, addresses and the HTTP server. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "obs/obs.h"
#include "test_util.h"

/* http_get sends raw request bytes to 127.0.0.1:port and returns the response (malloc'd). */
static char *http_raw(uint16_t port, const char *req, size_t req_len)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    size_t off = 0;
    while (off < req_len) {
        ssize_t n = send(fd, req + off, req_len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break; /* the server may close early on an oversized request */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break;
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static char *http_get(uint16_t port, const char *path)
{
    char req[512];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    return http_raw(port, req, (size_t)n);
}

static void test_hist(void **state)
{
    (void)state;
    rly_obs_hist h;
    double b[] = {1, 2, 4};
    assert_ok(rly_obs_hist_init(&h, b, 3));
    double bad[] = {2, 1};
    assert_err(rly_obs_hist_init(&h, bad, 2), RELAY_EINVAL);
    assert_ok(rly_obs_hist_init(&h, b, 3));
    rly_obs_hist_observe(&h, 0.5);
    rly_obs_hist_observe(&h, 2.0); /* le="2" includes 2 */
    rly_obs_hist_observe(&h, 3.0);
    rly_obs_hist_observe(&h, 100.0);
    rly_obs_hist_observe(&h, NAN);
    assert_int_equal(rly_obs_hist_count(&h), 4);
    rly_obs_out *o = rly_obs_out_new();
    rly_obs_hist_write(o, "relay_x", "A test.", "k=\"v\"", &h);
    const char *t = rly_obs_out_text(o, NULL);
    assert_non_null(strstr(t, "# TYPE relay_x histogram\n"));
    assert_non_null(strstr(t, "relay_x_bucket{k=\"v\",le=\"1\"} 1\n"));
    assert_non_null(strstr(t, "relay_x_bucket{k=\"v\",le=\"2\"} 2\n"));
    assert_non_null(strstr(t, "relay_x_bucket{k=\"v\",le=\"4\"} 3\n"));
    assert_non_null(strstr(t, "relay_x_bucket{k=\"v\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(t, "relay_x_sum{k=\"v\"} 105.5\n"));
    assert_non_null(strstr(t, "relay_x_count{k=\"v\"} 4\n"));
    rly_obs_out_free(o);
    assert_ok(rly_obs_hist_init_exp(&h, 1, 2, 10));
    assert_true(h.bounds[9] == 512);
    assert_err(rly_obs_hist_init_exp(&h, 1, 2, RLY_OBS_HIST_MAX + 1), RELAY_EINVAL);
}

static void test_text(void **state)
{
    (void)state;
    rly_obs_out *o = rly_obs_out_new();
    rly_obs_metric(o, "relay_a_total", "counter", "Things.", 3);
    rly_obs_sample(o, "relay_b", "x=\"1\"", NAN);
    rly_obs_sample(o, "relay_b", NULL, INFINITY);
    rly_obs_sample(o, "relay_b", "", 0.25);
    rly_obs_sample_u64(o, "relay_c", NULL, UINT64_C(18446744073709551615));
    char esc[64];
    assert_string_equal(rly_obs_label_escape("a\"b\\c\nd", esc, sizeof esc), "a\\\"b\\\\c\\nd");
    /* growth past the initial buffer */
    for (int i = 0; i < 5000; i++)
        rly_obs_sample(o, "relay_many", "i=\"x\"", i);
    size_t len;
    const char *t = rly_obs_out_text(o, &len);
    assert_true(len > 16384);
    assert_non_null(strstr(t, "# HELP relay_a_total Things.\n# TYPE relay_a_total counter\n"
                              "relay_a_total 3\nrelay_b{x=\"1\"} NaN\nrelay_b +Inf\nrelay_b 0.25\n"
                              "relay_c 18446744073709551615\n"));
    assert_non_null(strstr(t, "relay_many{i=\"x\"} 4999\n"));
    rly_obs_out_free(o);
}

static void test_addr(void **state)
{
    (void)state;
    char host[64], err[256];
    uint16_t port;
    assert_ok(rly_obs_parse_addr("9100", host, sizeof host, &port, err, sizeof err));
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 9100);
    assert_ok(rly_obs_parse_addr(":0", host, sizeof host, &port, err, sizeof err));
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 0);
    assert_ok(rly_obs_parse_addr("0.0.0.0:80", host, sizeof host, &port, err, sizeof err));
    assert_string_equal(host, "0.0.0.0");
    assert_ok(rly_obs_parse_addr("[::1]:8080", host, sizeof host, &port, err, sizeof err));
    assert_string_equal(host, "::1");
    assert_int_equal(port, 8080);
    assert_ok(rly_obs_parse_addr("localhost:1", host, sizeof host, &port, err, sizeof err));
    const char *bad[] = {"",       "host:",   "host:65536", "host:-1",          "h:12x",
                         "::1:80", "[::1]80", "a b:80",     "127.0.0.1:999999", "x:+5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_err(rly_obs_parse_addr(bad[i], host, sizeof host, &port, err, sizeof err),
                   RELAY_EINVAL);
        assert_non_null(strstr(err, "bad metrics address"));
    }
    assert_err(rly_obs_parse_addr(NULL, host, sizeof host, &port, NULL, 0), RELAY_EINVAL);
}

typedef struct ctr {
    int calls;
} ctr;

static void collect(void *ctx, rly_obs_out *o)
{
    ctr *c = ctx;
    c->calls++;
    rly_obs_metric(o, "relay_test_calls_total", "counter", "Scrapes seen.", c->calls);
}

static void test_server(void **state)
{
    (void)state;
    rly_obs_server_config cfg = {.addr = "127.0.0.1:0", .curve_capacity = 16};
    rly_obs_server *s = NULL;
    assert_ok(rly_obs_server_new(&cfg, &s));
    uint16_t port = rly_obs_server_port(s);
    assert_true(port > 0);
    char url[128];
    rly_obs_server_url(s, url, sizeof url);
    assert_non_null(strstr(url, "http://127.0.0.1:"));
    ctr c = {0};
    assert_ok(rly_obs_server_add_collector(s, collect, &c));
    char *r = http_get(port, "/metrics");
    assert_non_null(strstr(r, "HTTP/1.1 200"));
    assert_non_null(strstr(r, "text/plain; version=0.0.4"));
    assert_non_null(strstr(r, "relay_test_calls_total 1\n"));
    assert_non_null(strstr(r, "relay_process_resident_memory_bytes "));
    assert_non_null(strstr(r, "relay_process_cpu_seconds_total{mode=\"user\"} "));
    free(r);
    rly_obs_server_remove_collector(s, collect, &c);
    r = http_get(port, "/metrics");
    assert_null(strstr(r, "relay_test_calls_total"));
    free(r);
    r = http_get(port, "/");
    assert_non_null(strstr(r, "200 OK"));
    assert_non_null(strstr(r, "<canvas id=\"curve\">"));
    assert_null(strstr(r, "http://cdn"));
    free(r);
    r = http_get(port, "/nope");
    assert_non_null(strstr(r, "404"));
    free(r);
    r = http_get(port, "/api/curve?since=abc");
    assert_non_null(strstr(r, "400"));
    free(r);
    const char post[] = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    r = http_raw(port, post, sizeof post - 1);
    assert_non_null(strstr(r, "405"));
    free(r);
    /* oversized request headers are refused, the server keeps serving */
    size_t big = 100000;
    char *huge = malloc(big + 64);
    int n = snprintf(huge, 64, "GET /metrics HTTP/1.1\r\nX-Big: ");
    memset(huge + n, 'a', big);
    memcpy(huge + n + big, "\r\n\r\n", 4);
    r = http_raw(port, huge, (size_t)n + big + 4);
    assert_null(strstr(r, "200 OK"));
    free(r);
    free(huge);
    r = http_raw(port, "GARBAGE\r\n\r\n", 11);
    assert_null(strstr(r, "200 OK"));
    free(r);
    /* the curve: title, target, points, incremental reads, thinning keeps the newest */
    rly_obs_server_set_run(s, "Cart\"Pole", 475);
    for (int i = 0; i < 10; i++)
        rly_obs_curve_add(s, 100.0 * i, i, i == 5 ? 42 : NAN);
    r = http_get(port, "/api/curve");
    assert_non_null(strstr(r, "\"title\":\"Cart\\\"Pole\""));
    assert_non_null(strstr(r, "\"target\":475"));
    assert_non_null(strstr(r, "[500,5,42]"));
    assert_non_null(strstr(r, "[900,9,null]"));
    free(r);
    r = http_get(port, "/api/curve?since=8");
    assert_non_null(strstr(r, "\"first\":8"));
    assert_null(strstr(r, "[700,7,null]"));
    assert_non_null(strstr(r, "[800,8,null]"));
    free(r);
    for (int i = 10; i < 40; i++)
        rly_obs_curve_add(s, 100.0 * i, i, NAN);
    r = http_get(port, "/api/curve");
    assert_non_null(strstr(r, "[3900,39,null]"));
    assert_null(strstr(r, "\"gen\":0"));
    const char *tot = strstr(r, "\"total\":");
    assert_non_null(tot);
    assert_true(atoi(tot + 8) <= 16 && atoi(tot + 8) >= 8);
    free(r);
    r = http_get(port, "/healthz");
    assert_non_null(strstr(r, "ok"));
    free(r);
    /* the same port cannot be bound twice: a clear error, not a crash */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    rly_obs_server_config cfg2 = {.addr = addr};
    rly_obs_server *s2 = NULL;
    assert_err(rly_obs_server_new(&cfg2, &s2), RELAY_EIO);
    assert_null(s2);
    cfg2.addr = "nonsense:x";
    assert_err(rly_obs_server_new(&cfg2, &s2), RELAY_EINVAL);
    rly_obs_server_free(s);
    rly_obs_server_free(NULL);
    /* NULL servers are no-ops for the hooks subcommands call unconditionally */
    rly_obs_curve_add(NULL, 1, 2, 3);
    rly_obs_server_set_run(NULL, "x", 1);
    assert_ok(rly_obs_server_add_collector(NULL, collect, &c));
    rly_obs_server_remove_collector(NULL, collect, &c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_addr),
        cmocka_unit_test(test_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
