/*
 * bench_zmq: trajectory throughput of the ZeroMQ transport against raw libzmq and, in the same
 * run, the NATS JetStream transport. Every message is one trajectory batch holding one 200-step
 * CartPole trajectory envelope (LZ4, as `relay actors` sends them).
 *   bench_zmq [RUNS=3] [SECONDS=2] [NATS_URL]
 * Cases (medians of RUNS runs of SECONDS each, messages/s and MB/s of message bytes):
 *   raw zmq PUSH/PULL   libzmq alone, tcp loopback, the same bytes, no acks
 *   rly_tp zmq          Relay's path: traj_publish (bounded window) -> ROUTER -> traj_fetch ->
 *                       header parse -> traj_ack -> ack callback, tcp loopback
 *   rly_tp nats         the same calls over NATS JetStream (file storage) at NATS_URL
 * bench/transport/run_zmq.sh starts a private nats-server and runs it.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "core/clock.h"
#include "core/thread.h"
#include "relay/codec.h"
#include "transport/batch.h"
#include "transport/transport.h"

#define STEPS 200

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* batch_bytes makes one batch of one 200-step CartPole trajectory envelope. */
static void batch_bytes(relay_codec_buf *batch)
{
    relay_step_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.obs_dtype = RELAY_F32;
    sp.obs_rank = 1;
    sp.obs_shape[0] = 4;
    sp.act_dtype = RELAY_I32;
    sp.n_aux = 2;
    snprintf(sp.aux_names[0], sizeof sp.aux_names[0], "logp");
    snprintf(sp.aux_names[1], sizeof sp.aux_names[1], "value");
    relay_traj *t = relay_traj_new(&sp, STEPS, 0);
    uint64_t x = 7;
    for (int s = 0; s < STEPS; s++) {
        float obs[4], aux[2];
        for (int k = 0; k < 4; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            obs[k] = (float)((double)(x >> 40) / (double)(1 << 24) - 0.5);
        }
        int32_t act = (int32_t)(x >> 63);
        aux[0] = -0.69f + obs[0] * 0.01f;
        aux[1] = 10.0f + obs[1];
        relay_traj_push(t, obs, &act, NULL, 1.0f, s == STEPS - 1, false, aux,
                        1700000000000000000ll + s * 1000);
    }
    relay_codec_options o;
    relay_codec_options_default(&o);
    o.compression = RELAY_COMPRESS_LZ4;
    relay_codec *c = NULL;
    relay_codec_buf env = {0};
    if (relay_codec_new(&o, &c) || relay_codec_encode_traj(c, t, &env) ||
        rly_batch_begin(batch, relay_id_from_seed(1, 2), 1) ||
        rly_batch_add(batch, env.data, env.len)) {
        fprintf(stderr, "bench_zmq: cannot build the batch\n");
        exit(1);
    }
    relay_codec_buf_fini(&env);
    relay_codec_free(c);
    relay_traj_free(t);
}

static int free_port_pair(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
        socklen_t l = sizeof a;
        if (bind(fd, (struct sockaddr *)&a, sizeof a) ||
            getsockname(fd, (struct sockaddr *)&a, &l)) {
            close(fd);
            continue;
        }
        int p = ntohs(a.sin_port);
        close(fd);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        a.sin_port = htons((uint16_t)(p + 1));
        int ok = p < 65534 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok)
            return p;
    }
    fprintf(stderr, "bench_zmq: no free port pair\n");
    exit(1);
}

/* ---- raw libzmq PUSH/PULL -------------------------------------------------------------------- */

typedef struct raw_rx {
    void *pull;
    uint64_t got;
    double t0, t1;
} raw_rx;

static void *raw_recv(void *arg)
{
    raw_rx *r = arg;
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (;;) {
        if (zmq_msg_recv(&m, r->pull, 0) < 0)
            break;
        if (zmq_msg_size(&m) == 0)
            break;
        if (!r->got++)
            r->t0 = now_s();
    }
    r->t1 = now_s();
    zmq_msg_close(&m);
    return NULL;
}

static double raw_run(const relay_codec_buf *b, double seconds)
{
    char ep[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", free_port_pair());
    void *ctx = zmq_ctx_new();
    void *pull = zmq_socket(ctx, ZMQ_PULL), *push = zmq_socket(ctx, ZMQ_PUSH);
    zmq_bind(pull, ep);
    zmq_connect(push, ep);
    raw_rx r = {.pull = pull};
    rly_thread th;
    rly_thread_start(&th, raw_recv, &r, "raw-rx");
    double end = now_s() + seconds;
    while (now_s() < end)
        for (int i = 0; i < 256; i++)
            zmq_send(push, b->data, b->len, 0);
    zmq_send(push, "", 0, 0);
    rly_thread_join(th);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    return r.got > 1 ? (double)(r.got - 1) / (r.t1 - r.t0) : 0;
}

/* ---- rly_tp ---------------------------------------------------------------------------------- */

typedef struct tp_run {
    rly_tp *srv;
    atomic_bool stop;
    atomic_ullong acked, fetched;
} tp_run;

static void on_ack(void *ctx, uint64_t seq, relay_err r)
{
    (void)seq;
    tp_run *t = ctx;
    if (!r)
        atomic_fetch_add(&t->acked, 1);
}

static void *consumer(void *arg)
{
    tp_run *t = arg;
    rly_tp_delivery ds[64];
    while (!atomic_load(&t->stop)) {
        size_t n = 0;
        if (rly_tp_traj_fetch(t->srv, ds, 64, &n, 50 * 1000000) != RELAY_OK)
            continue;
        for (size_t i = 0; i < n; i++) {
            rly_batch_hdr h;
            if (rly_batch_parse(ds[i].data, ds[i].len, 64u << 20, &h) != RELAY_OK)
                fprintf(stderr, "bench_zmq: a batch did not parse\n");
            rly_tp_traj_ack(t->srv, &ds[i], true);
        }
        atomic_fetch_add(&t->fetched, n);
    }
    return NULL;
}

static double tp_run_once(const char *url, const char *run, const relay_codec_buf *b,
                          double seconds)
{
    rly_tp_config c;
    rly_tp_config_init(&c);
    c.url = url;
    c.run = run;
    c.bind = true;
    c.max_inflight = 1024;
    tp_run t = {0};
    rly_tp *cli = NULL;
    if (rly_tp_open(&c, &t.srv) || rly_tp_traj_consume(t.srv, 1)) {
        fprintf(stderr, "bench_zmq: cannot open the server side of %s\n", url);
        exit(1);
    }
    c.bind = false;
    if (rly_tp_open(&c, &cli)) {
        fprintf(stderr, "bench_zmq: cannot open the client side of %s\n", url);
        exit(1);
    }
    rly_tp_set_callbacks(cli, on_ack, NULL, &t);
    rly_thread th;
    rly_thread_start(&th, consumer, &t, "consumer");
    char id[RLY_TP_MSGID_MAX];
    uint64_t seq = 0;
    double t0 = now_s(), end = t0 + seconds;
    /* warm up: the first acks */
    while (now_s() < end) {
        seq++;
        snprintf(id, sizeof id, "b%llu", (unsigned long long)seq);
        if (rly_tp_traj_publish(cli, id, seq, b->data, b->len, 1000000000) != RELAY_OK)
            seq--;
    }
    uint64_t sent = seq;
    while (atomic_load(&t.acked) < sent && now_s() < end + 10)
        rly_sleep_ns(1000000);
    double el = now_s() - t0;
    uint64_t acked = atomic_load(&t.acked);
    atomic_store(&t.stop, true);
    rly_thread_join(th);
    rly_tp_close(cli);
    rly_tp_close(t.srv);
    return (double)acked / el;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 3;
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    const char *nats = argc > 3 ? argv[3] : NULL;
    if (runs < 1 || runs > 50 || seconds <= 0 || seconds > 60) {
        fprintf(stderr, "usage: bench_zmq [RUNS 1..50] [SECONDS] [NATS_URL]\n");
        return 2;
    }
    relay_codec_buf b = {0};
    batch_bytes(&b);
    double raw[50], zq[50], nt[50];
    for (int r = 0; r < runs; r++) {
        raw[r] = raw_run(&b, seconds);
        char url[64], run[32];
        snprintf(url, sizeof url, "tcp://127.0.0.1:%d", free_port_pair());
        zq[r] = tp_run_once(url, "bench", &b, seconds);
        if (nats) {
            snprintf(run, sizeof run, "benchzmq%d_%d", (int)getpid(), r);
            nt[r] = tp_run_once(nats, run, &b, seconds);
        }
        fprintf(stderr, "run %d: raw %.0f/s, zmq %.0f/s%s", r + 1, raw[r], zq[r], nats ? "" : "\n");
        if (nats)
            fprintf(stderr, ", nats %.0f/s\n", nt[r]);
    }
    double mraw = median(raw, runs), mz = median(zq, runs), mn = nats ? median(nt, runs) : 0;
    printf("message: 1 batch = 1 CartPole trajectory of %d steps, %zu bytes (LZ4); medians of %d "
           "runs x %.1f s\n",
           STEPS, b.len, runs, seconds);
    printf("| case | messages/s | MB/s | vs raw zmq |\n|---|---|---|---|\n");
    printf("| raw libzmq PUSH/PULL (tcp loopback, no acks) | %.0f | %.1f | 100%% |\n", mraw,
           mraw * (double)b.len / 1e6);
    printf("| rly_tp zmq (DEALER/ROUTER, acked) | %.0f | %.1f | %.0f%% |\n", mz,
           mz * (double)b.len / 1e6, 100 * mz / mraw);
    if (nats)
        printf("| rly_tp nats (JetStream file storage, acked) | %.0f | %.1f | %.0f%% |\n", mn,
               mn * (double)b.len / 1e6, 100 * mn / mraw);
    relay_codec_buf_fini(&b);
    return 0;
}
