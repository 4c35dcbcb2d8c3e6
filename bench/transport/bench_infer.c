/*
 * Central inference benchmark (docs/PERFORMANCE.md): P actor processes (fork) with A actors each
 * step CartPole through an agent (run_env, trajectories recorded) and get every action from an
 * inference server in the parent process over ZeroMQ on loopback (relay actors
 * --remote-inference's path: the actor hook, rly_tp_infer_request, the server's batcher and one
 * forward pass of a 4-64-64-2 tanh policy and a 4-64-64-1 critic per batch). Then the same
 * processes with local inference (each actor process runs the model itself) for comparison.
 *
 * usage: bench_infer [--procs 2] [--actors 32] [--envs 1] [--seconds 5] [--batch 1024]
 *                    [--wait-us 100] [--routers 2] [--url tcp://127.0.0.1:PORT]
 *                    [--mode both|remote|local] [--close early|wait]
 * Output, one line per mode:
 *   bench_infer remote: 64 actors in 2 processes x 1 envs: N actions/s, request p50 X us p99 Y us,
 *   server batches mean B rows (largest M)
 */
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/infer.h"
#include "core/clock.h"
#include "core/rng.h"

#define HBUCKETS 100000 /* request latency histogram: 1 us buckets up to 100 ms */

static uint32_t P = 2, A = 32, E = 1, SECONDS = 5, BATCH = 1024, WAIT_US = 100, ROUTERS = 2;
static bool WAIT_ALWAYS = false; /* --close wait: batches close only at --batch rows or --wait-us */
static char URL[256] = "";

#define CHECK(call)                                                                                \
    do {                                                                                           \
        relay_err e_ = (call);                                                                     \
        if (e_) {                                                                                  \
            fprintf(stderr, "bench_infer: %s: %s\n", #call, relay_strerror(e_));                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static relay_model *mlp(uint32_t out, uint64_t seed)
{
    uint32_t sizes[4] = {4, 64, 64, out};
    float *w[3], *b[3];
    rly_rng r;
    rly_rng_seed(&r, seed);
    for (int l = 0; l < 3; l++) {
        size_t n = (size_t)sizes[l] * sizes[l + 1];
        w[l] = malloc(n * sizeof(float));
        b[l] = calloc(sizes[l + 1], sizeof(float));
        for (size_t i = 0; i < n; i++)
            w[l][i] = (float)(rly_rng_uniform(&r) - 0.5) * 0.5f;
    }
    const float *ws[3] = {w[0], w[1], w[2]}, *bs[3] = {b[0], b[1], b[2]};
    relay_activation act[3] = {RELAY_ACT_TANH, RELAY_ACT_TANH, RELAY_ACT_NONE};
    relay_mlp_desc d = {
        .n_layers = 3, .sizes = sizes, .activations = act, .weights = ws, .biases = bs};
    relay_model *m = NULL;
    CHECK(relay_model_from_mlp(&d, &m));
    for (int l = 0; l < 3; l++) {
        free(w[l]);
        free(b[l]);
    }
    return m;
}

/* sched_totals sums the CPU time and the run-queue wait (runnable, waiting for a CPU) of this
   process's live threads, in ns (/proc/self/task/T/schedstat; zeros where unavailable). */
static void sched_totals(uint64_t *run, uint64_t *wait)
{
    *run = *wait = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        FILE *f = fopen(path, "r");
        unsigned long long r = 0, w = 0;
        if (f && fscanf(f, "%llu %llu", &r, &w) == 2) {
            *run += r;
            *wait += w;
        }
        if (f)
            fclose(f);
    }
    closedir(d);
}

/* ---- actor process ------------------------------------------------------------------------- */

typedef struct timed {
    const rly_remote_infer *inner;
    rly_remote_infer hook;
    _Atomic uint64_t requests;
    _Atomic uint32_t hist[HBUCKETS];
} timed;

static relay_err timed_forward(void *ctx, const rly_policy_desc *d, rly_remote_rows *rows)
{
    timed *t = ctx;
    int64_t t0 = rly_now_ns();
    relay_err e = t->inner->forward(t->inner->ctx, d, rows);
    int64_t us = (rly_now_ns() - t0) / 1000;
    atomic_fetch_add_explicit(&t->hist[us < HBUCKETS ? us : HBUCKETS - 1], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->requests, 1, memory_order_relaxed);
    return e;
}

static void drop(void *ctx, relay_traj *t)
{
    (void)ctx;
    relay_traj_free(t);
}

typedef struct report {
    uint64_t steps, requests;
    uint64_t run_ns, wait_ns; /* the process's threads: on a CPU, waiting for one */
    double seconds;
    uint32_t hist[HBUCKETS];
} report;

static void actor_process(int fd, bool remote, uint32_t idx)
{
    static timed tm;
    static report rep;
    rly_tp *tp = NULL;
    rly_infer_client *ic = NULL;
    if (remote) {
        rly_tp_config c;
        rly_tp_config_init(&c);
        c.url = URL;
        c.connect_timeout_ns = 10 * RLY_NS_PER_S;
        CHECK(rly_tp_open(&c, &tp));
        CHECK(rly_infer_client_new(tp, 10 * RLY_NS_PER_S, &ic));
        tm.inner = rly_infer_client_hook(ic);
        tm.hook.forward = timed_forward;
        tm.hook.ctx = &tm;
    }
    const relay_env_def *env = NULL;
    CHECK(relay_env_resolve("CartPole-v1", &env));
    rly_policy_desc desc;
    CHECK(rly_policy_desc_from_env(&desc, env));
    relay_config ac;
    relay_config_default(&ac);
    ac.shared_model = true;
    /* remote: a router's actors step together with one request (relay actors' default: 2
       routers); local: one router and worker per process (2 processes on 2 cores) */
    ac.routers = remote ? ROUTERS : 1;
    ac.workers = remote ? ROUTERS : 1;
    ac.sink_memory = false;
    relay_agent *ag = NULL;
    CHECK(relay_agent_new(&ac, &ag));
    CHECK(rly_agent_set_consumer(ag, drop, NULL));
    CHECK(relay_agent_start(ag));
    CHECK(rly_agent_publish(ag, 1, mlp(2, 1), mlp(1, 2), NULL, 0));
    for (uint32_t i = 0; i < A; i++) {
        relay_id id;
        CHECK(rly_agent_new_actor_remote(ag, &desc, 100 * idx + i + 1, 0, remote ? &tm.hook : NULL,
                                         &id));
        CHECK(rly_agent_run_env_quota(ag, id, env, E, 7919 * (100 * idx + i), 0, NULL));
    }
    rly_sleep_ns(RLY_NS_PER_S); /* warm-up */
    relay_agent_stats s0, s1;
    relay_agent_get_stats(ag, &s0);
    uint64_t r0 = atomic_load(&tm.requests);
    uint32_t *h0 = calloc(HBUCKETS, sizeof *h0);
    for (int i = 0; i < HBUCKETS; i++)
        h0[i] = atomic_load(&tm.hist[i]);
    uint64_t run0, wait0, run1, wait1;
    sched_totals(&run0, &wait0);
    int64_t t0 = rly_now_ns();
    rly_sleep_ns((int64_t)SECONDS * RLY_NS_PER_S);
    relay_agent_get_stats(ag, &s1);
    sched_totals(&run1, &wait1);
    rep.run_ns = run1 - run0;
    rep.wait_ns = wait1 - wait0;
    rep.seconds = (double)(rly_now_ns() - t0) / 1e9;
    rep.steps = s1.env_steps - s0.env_steps;
    rep.requests = atomic_load(&tm.requests) - r0;
    for (int i = 0; i < HBUCKETS; i++)
        rep.hist[i] = atomic_load(&tm.hist[i]) - h0[i];
    const uint8_t *p = (const uint8_t *)&rep;
    for (size_t off = 0; off < sizeof rep;) {
        ssize_t n = write(fd, p + off, sizeof rep - off);
        if (n <= 0)
            _exit(1);
        off += (size_t)n;
    }
    relay_agent_shutdown(ag);
    relay_agent_free(ag);
    rly_tp_close(tp);
    rly_infer_client_free(ic);
    _exit(0);
}

/* ---- parent ---------------------------------------------------------------------------------- */

static double pct(const uint64_t *h, uint64_t total, double q)
{
    uint64_t want = (uint64_t)(q * (double)total), acc = 0;
    for (int i = 0; i < HBUCKETS; i++) {
        acc += h[i];
        if (acc > want)
            return i + 0.5;
    }
    return HBUCKETS;
}

static void run(bool remote)
{
    rly_tp *srv = NULL;
    rly_infer_server *is = NULL;
    if (remote) {
        rly_tp_config c;
        rly_tp_config_init(&c);
        c.url = URL;
        c.bind = true;
        CHECK(rly_tp_open(&c, &srv));
        rly_policy_desc desc = {.obs_dim = 4, .discrete = true, .n_actions = 2, .act_dim = 1};
        CHECK(rly_infer_server_new(&desc, &is));
        rly_infer_server_publish(is, 1, mlp(2, 1), mlp(1, 2), NULL, 0);
        rly_tp_infer_opts o = {
            .max_batch = BATCH, .max_wait_ns = (int64_t)WAIT_US * 1000, .wait_always = WAIT_ALWAYS};
        CHECK(rly_infer_server_start(is, srv, &o));
    }
    int fds[16];
    pid_t pids[16];
    fflush(NULL);
    for (uint32_t i = 0; i < P; i++) {
        int pf[2];
        if (pipe(pf) != 0)
            exit(1);
        pids[i] = fork();
        if (pids[i] == 0) {
            close(pf[0]);
            actor_process(pf[1], remote, i);
        }
        close(pf[1]);
        fds[i] = pf[0];
    }
    static report rep;
    static uint64_t hist[HBUCKETS];
    memset(hist, 0, sizeof hist);
    double steps = 0, requests = 0, a_run = 0, a_wait = 0;
    /* the server's threads over about the actors' window (after their 1 s warm-up) */
    rly_sleep_ns(RLY_NS_PER_S);
    uint64_t srun0, swait0, srun1, swait1;
    rly_tp_infer_stats st0 = {0}, st1 = {0};
    sched_totals(&srun0, &swait0);
    if (remote)
        rly_tp_infer_stats_get(srv, &st0);
    for (uint32_t i = 0; i < P; i++) {
        uint8_t *p = (uint8_t *)&rep;
        size_t off = 0;
        while (off < sizeof rep) {
            ssize_t n = read(fds[i], p + off, sizeof rep - off);
            if (n <= 0) {
                fprintf(stderr, "bench_infer: actor process %u failed\n", i);
                exit(1);
            }
            off += (size_t)n;
        }
        close(fds[i]);
        steps += (double)rep.steps / rep.seconds;
        requests += (double)rep.requests;
        a_run += (double)rep.run_ns;
        a_wait += (double)rep.wait_ns;
        if (i == 0) {
            sched_totals(&srun1, &swait1);
            if (remote)
                rly_tp_infer_stats_get(srv, &st1);
        }
        for (int k = 0; k < HBUCKETS; k++)
            hist[k] += rep.hist[k];
    }
    for (uint32_t i = 0; i < P; i++)
        waitpid(pids[i], NULL, 0);
    if (remote) {
        rly_tp_infer_stats st;
        rly_tp_infer_stats_get(srv, &st);
        printf("bench_infer remote: %u actors in %u processes x %u envs: %.0f actions/s, request "
               "p50 %.0f us p99 %.0f us, server batches mean %.1f rows (largest %u; batch %u, "
               "wait %u us)\n",
               P * A, P, E, steps, pct(hist, (uint64_t)requests, 0.5),
               pct(hist, (uint64_t)requests, 0.99),
               st.batches ? (double)st.rows / (double)st.batches : 0.0, st.max_rows, BATCH,
               WAIT_US);
        printf("bench_infer remote: batches closed early (every client in) %.1f%%, server mean "
               "gather %.1f us, forward+replies %.1f us per batch (close: %s)\n",
               st.batches ? 100.0 * (double)st.closed_early / (double)st.batches : 0.0,
               st.batches ? (double)st.gather_ns / 1e3 / (double)st.batches : 0.0,
               st.batches ? (double)st.serve_ns / 1e3 / (double)st.batches : 0.0,
               WAIT_ALWAYS ? "wait" : "early");
        double sreq = (double)(st1.requests - st0.requests);
        printf("bench_infer remote: per request: actor processes %.1f us on a CPU, %.1f us "
               "runnable waiting for one; server %.1f us on a CPU, %.1f us waiting (all threads)\n",
               requests ? a_run / 1e3 / requests : 0.0, requests ? a_wait / 1e3 / requests : 0.0,
               sreq > 0 ? (double)(srun1 - srun0) / 1e3 / sreq : 0.0,
               sreq > 0 ? (double)(swait1 - swait0) / 1e3 / sreq : 0.0);
        printf("bench_infer remote: server batch sizes (rows <=1,2,4,..): ");
        for (int i = 0; i < RLY_TP_INFER_BUCKETS; i++)
            printf("%llu%s", (unsigned long long)st.hist[i],
                   i + 1 < RLY_TP_INFER_BUCKETS ? " " : "\n");
        rly_tp_close(srv);
        rly_infer_server_free(is);
    } else {
        printf("bench_infer local: %u actors in %u processes x %u envs: %.0f actions/s (each "
               "process runs the model itself; per action %.2f us on a CPU, %.2f us waiting)\n",
               P * A, P, E, steps, steps ? a_run / 1e3 / (steps * SECONDS) : 0.0,
               steps ? a_wait / 1e3 / (steps * SECONDS) : 0.0);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *mode = "both";
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *f = argv[i], *v = argv[i + 1];
        if (!strcmp(f, "--procs"))
            P = (uint32_t)atoi(v);
        else if (!strcmp(f, "--actors"))
            A = (uint32_t)atoi(v);
        else if (!strcmp(f, "--envs"))
            E = (uint32_t)atoi(v);
        else if (!strcmp(f, "--seconds"))
            SECONDS = (uint32_t)atoi(v);
        else if (!strcmp(f, "--batch"))
            BATCH = (uint32_t)atoi(v);
        else if (!strcmp(f, "--wait-us"))
            WAIT_US = (uint32_t)atoi(v);
        else if (!strcmp(f, "--url"))
            snprintf(URL, sizeof URL, "%s", v);
        else if (!strcmp(f, "--routers"))
            ROUTERS = (uint32_t)atoi(v);
        else if (!strcmp(f, "--mode"))
            mode = v;
        else if (!strcmp(f, "--close"))
            WAIT_ALWAYS = !strcmp(v, "wait");
        else {
            fprintf(stderr, "bench_infer: unknown option %s\n", f);
            return 2;
        }
    }
    if (P < 1 || P > 16 || A < 1 || A > 256 || E < 1 || SECONDS < 1) {
        fprintf(stderr, "bench_infer: --procs 1..16, --actors 1..256, --envs >= 1\n");
        return 2;
    }
    if (!URL[0])
        snprintf(URL, sizeof URL, "ipc:///tmp/relay-bench-infer-%d", (int)getpid());
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(mode, "local"))
        run(true);
    if (strcmp(mode, "remote"))
        run(false);
    return 0;
}
