/* Tests of the agent's metrics: config key metrics_addr, the collector while routers step actors.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/agent.h"
#include "obs/obs.h"
#include "relay/relay.h"
#include "test_util.h"

/* value_of returns the value of the sample line starting with `series ` in text, or -1. */
static double value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return atof(p + n + 1);
    return -1;
}

static char *scrape(rly_obs_server *s)
{
    rly_obs_out *o = rly_obs_out_new();
    assert_non_null(o);
    rly_obs_scrape(s, o);
    size_t len;
    char *t = strdup(rly_obs_out_text(o, &len));
    rly_obs_out_free(o);
    return t;
}

/* http_metrics fetches /metrics from 127.0.0.1:port (the real HTTP path). */
static char *http_metrics(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    size_t cap = 1 << 18, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0 || len + 1 >= cap)
            break;
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return buf;
}

static void metrics_while_running(void **state)
{
    (void)state;
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.routers = 2;
    cfg.sink_memory = false;
    snprintf(cfg.metrics_addr, sizeof cfg.metrics_addr, "127.0.0.1:0");
    relay_agent *a = NULL;
    assert_ok(relay_agent_new(&cfg, &a));
    rly_obs_server *s = rly_agent_obs(a);
    assert_non_null(s);
    char *t = scrape(s); /* before start: no runtime yet, still valid output */
    assert_true(value_of(t, "relay_actors") == 0);
    free(t);
    assert_ok(relay_agent_start(a));
    relay_id ids[4];
    relay_actor_options opt = {.env = "CartPole-v1"};
    assert_ok(relay_agent_new_actors(a, 4, &opt, ids));
    /* actors without a model cannot step: they report version -1 and no forward passes */
    t = http_metrics(rly_obs_server_port(s));
    assert_non_null(strstr(t, "200 OK"));
    assert_true(value_of(t, "relay_actors") == 4);
    assert_true(value_of(t, "relay_routers") == 2);
    assert_true(value_of(t, "relay_actor_policy_version_min") == -1);
    assert_true(value_of(t, "relay_dispatcher_pending_messages") == 0);
    assert_non_null(strstr(t, "relay_inference_batch_size_bucket{le=\"+Inf\"} 0\n"));
    assert_non_null(strstr(t, "# TYPE relay_dispatcher_dispatched_total counter\n"));
    free(t);
    /* routers count an actor once their thread adopted it: wait for 2 + 2 */
    for (int i = 0;; i++) {
        t = scrape(s);
        bool settled = value_of(t, "relay_router_actors{router=\"1\"}") == 2 &&
                       value_of(t, "relay_router_actors{router=\"2\"}") == 2;
        free(t);
        if (settled)
            break;
        assert_true(i < 500); /* 5 s */
        usleep(10000);
    }
    /* scrapes race with routers taking actors away: remove half, scale, scrape in between */
    for (int i = 0; i < 20; i++) {
        t = scrape(s);
        assert_true(value_of(t, "relay_actors") >= 2);
        free(t);
        if (i == 5)
            assert_ok(relay_agent_remove_actors(a, ids, 2));
        if (i == 10)
            assert_ok(relay_agent_scale_throughput(a, 1));
        if (i == 15)
            assert_ok(relay_agent_scale_throughput(a, -1));
    }
    t = scrape(s);
    assert_true(value_of(t, "relay_actors") == 2);
    assert_true(value_of(t, "relay_routers") == 2);
    free(t);
    assert_ok(relay_agent_shutdown(a));
    t = scrape(s); /* after shutdown the series are still served (routers gone) */
    assert_true(value_of(t, "relay_actors") == 2);
    assert_null(strstr(t, "relay_router_actors{"));
    free(t);
    relay_agent_free(a);
}

static void bad_metrics_addr(void **state)
{
    (void)state;
    relay_config cfg;
    relay_config_default(&cfg);
    snprintf(cfg.metrics_addr, sizeof cfg.metrics_addr, "127.0.0.1:99999");
    relay_agent *a = NULL;
    assert_err(relay_agent_new(&cfg, &a), RELAY_ECONFIG);
    snprintf(cfg.metrics_addr, sizeof cfg.metrics_addr, "127.0.0.1:0");
    assert_ok(relay_agent_new(&cfg, &a));
    char busy[64];
    snprintf(busy, sizeof busy, "127.0.0.1:%u", rly_obs_server_port(rly_agent_obs(a)));
    relay_config cfg2 = cfg;
    snprintf(cfg2.metrics_addr, sizeof cfg2.metrics_addr, "%s", busy);
    relay_agent *b = NULL;
    assert_err(relay_agent_new(&cfg2, &b), RELAY_EIO); /* port taken: a clear error */
    assert_null(b);
    relay_agent_free(a);
    relay_config off;
    relay_config_default(&off);
    assert_ok(relay_agent_new(&off, &a));
    assert_null(rly_agent_obs(a));
    relay_agent_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(metrics_while_running),
        cmocka_unit_test(bad_metrics_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
