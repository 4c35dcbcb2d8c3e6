/*
 * bench_obs_overhead: what serving metrics costs the actor loop. One agent with `metrics_addr`
 * runs 64 actors x 16 CartPole envs (4-64-64-2 tanh policy, trajectories recorded) on 2 routers,
 * continuously; a scraper thread plays Prometheus plus an open dashboard (GET /metrics and GET
 * /api/curve over HTTP) every PERIOD seconds. Measurement windows alternate scraper off / on
 * (off, on, off, on, ...) so each ratio compares neighbouring windows of the same agent on a noisy
 * machine. Prints per side env steps/s (median, min, max) and process CPU ns per env step without
 * the scraper thread's own CPU (the client is not part of the cost; the server thread is), the
 * median on/off ratios of both, and the median scrape latency and size. On a loaded shared machine
 * the CPU ratio is the steadier of the two.
 *
 * Usage: bench_obs_overhead [WINDOW_S=2.0 [PAIRS=7 [PERIOD_S=1.0]]]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "bench_common.h"
#include "obs/obs.h"

#define MAX_PAIRS 64
#define ACTORS 64

typedef struct scraper {
    uint16_t port;
    double period;
    _Atomic bool on, stop;
    pthread_t th;
    clockid_t cpu_clock; /* the scraper thread's CPU clock */
    double lat[4096];
    size_t n_lat;
    size_t bytes;
} scraper;

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* get fetches path from 127.0.0.1:port and returns the response size (0 on failure). */
static size_t get(uint16_t port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t total = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        char req[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n",
                         path);
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL) == n) {
            char buf[65536];
            for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, 5000) <= 0)
                    break;
                ssize_t k = recv(fd, buf, sizeof buf, 0);
                if (k <= 0)
                    break;
                total += (size_t)k;
            }
        }
    }
    close(fd);
    return total;
}

static void *scrape_main(void *arg)
{
    scraper *s = arg;
    double next = bench_now();
    while (!atomic_load(&s->stop)) {
        if (!atomic_load(&s->on)) {
            sleep_s(0.01);
            next = bench_now();
            continue;
        }
        double t0 = bench_now();
        size_t b = get(s->port, "/metrics");
        b += get(s->port, "/api/curve?since=0");
        double t1 = bench_now();
        if (s->n_lat < sizeof s->lat / sizeof s->lat[0])
            s->lat[s->n_lat++] = t1 - t0;
        s->bytes = b;
        next += s->period;
        while (!atomic_load(&s->stop) && atomic_load(&s->on) && bench_now() < next)
            sleep_s(0.005);
    }
    return NULL;
}

/* thread_cpu returns the CPU seconds of the thread with clock c. */
static double thread_cpu(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t env_steps(relay_agent *a)
{
    relay_agent_stats st;
    relay_agent_get_stats(a, &st);
    return st.env_steps;
}

int main(int argc, char **argv)
{
    double window = argc > 1 ? atof(argv[1]) : 2.0;
    int pairs = argc > 2 ? atoi(argv[2]) : 7;
    double period = argc > 3 ? atof(argv[3]) : 1.0;
    if (!(window > 0) || pairs < 1 || pairs > MAX_PAIRS || !(period > 0)) {
        fprintf(stderr, "usage: bench_obs_overhead [WINDOW_S>0 [PAIRS 1..%d [PERIOD_S>0]]]\n",
                MAX_PAIRS);
        return 2;
    }
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.routers = 2;
    cfg.max_traj_length = 200;
    cfg.sink_memory = false;
    snprintf(cfg.env, sizeof cfg.env, "CartPole-v1");
    snprintf(cfg.metrics_addr, sizeof cfg.metrics_addr, "127.0.0.1:0");
    relay_agent *a = NULL;
    BENCH_CHECK(relay_agent_new(&cfg, &a));
    BENCH_CHECK(relay_agent_start(a));
    relay_bundle *model = bench_policy();
    relay_actor_options opt = {.model = model};
    relay_id ids[ACTORS];
    BENCH_CHECK(relay_agent_new_actors(a, ACTORS, &opt, ids));
    for (int i = 0; i < ACTORS; i++)
        BENCH_CHECK(relay_agent_run_env(a, ids[i], NULL, 16, 0, false)); /* until shutdown */
    rly_obs_server *srv = rly_agent_obs(a);
    for (int i = 0; i < 200; i++) /* a learning curve as long as a real run's */
        rly_obs_curve_add(srv, i * 1000.0, i * 0.5, NAN);
    scraper sc = {.port = rly_obs_server_port(srv), .period = period};
    pthread_create(&sc.th, NULL, scrape_main, &sc);
    pthread_getcpuclockid(sc.th, &sc.cpu_clock);
    bench_print_loadavg("start");
    printf("64 actors x 16 envs, 2 routers; windows of %.2f s, %d pairs, scrape every %.2f s\n",
           window, pairs, period);
    sleep_s(0.5); /* warm-up */
    double rate[2][MAX_PAIRS], ratio[MAX_PAIRS], cpu[2][MAX_PAIRS], cpu_ratio[MAX_PAIRS];
    for (int p = 0; p < pairs; p++) {
        for (int k = 0; k < 2; k++) {
            atomic_store(&sc.on, k == 1);
            sleep_s(0.1);
            uint64_t n0 = env_steps(a);
            double t0 = bench_now(), c0 = bench_cpu() - thread_cpu(sc.cpu_clock);
            sleep_s(window);
            uint64_t n1 = env_steps(a);
            double c1 = bench_cpu() - thread_cpu(sc.cpu_clock);
            rate[k][p] = (double)(n1 - n0) / (bench_now() - t0);
            cpu[k][p] = n1 > n0 ? (c1 - c0) * 1e9 / (double)(n1 - n0) : 0;
        }
        ratio[p] = rate[1][p] / rate[0][p];
        cpu_ratio[p] = cpu[0][p] > 0 ? cpu[1][p] / cpu[0][p] : 1;
    }
    atomic_store(&sc.stop, true);
    pthread_join(sc.th, NULL);
    for (int k = 0; k < 2; k++) {
        double lo = rate[k][0], hi = rate[k][0];
        for (int p = 0; p < pairs; p++) {
            lo = rate[k][p] < lo ? rate[k][p] : lo;
            hi = rate[k][p] > hi ? rate[k][p] : hi;
        }
        printf("scraper %-3s %8.3f M env steps/s (min %.3f max %.3f)  cpu %6.1f ns/step\n",
               k ? "on" : "off", bench_median(rate[k], (size_t)pairs) / 1e6, lo / 1e6, hi / 1e6,
               bench_median(cpu[k], (size_t)pairs));
    }
    double r = bench_median(ratio, (size_t)pairs);
    printf("on/off ratio (median of %d neighbouring pairs): rate %.4f (slowdown %.2f%%), cpu per "
           "step %.4f\n",
           pairs, r, (1.0 - r) * 100.0, bench_median(cpu_ratio, (size_t)pairs));
    if (sc.n_lat)
        printf("scrape (/metrics + /api/curve): median %.2f ms, %zu scrapes, %zu bytes each\n",
               bench_median(sc.lat, sc.n_lat) * 1e3, sc.n_lat, sc.bytes);
    bench_print_loadavg("end");
    BENCH_CHECK(relay_agent_shutdown(a));
    relay_agent_free(a);
    relay_bundle_free(model);
    return 0;
}
