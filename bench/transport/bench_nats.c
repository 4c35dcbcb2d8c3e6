/*
 * bench_nats: distributed training's bus costs, measured against a running nats-server.
 *   bench_nats throughput URL [SECONDS]   trajectories (200-step CartPole) through JetStream:
 *       raw nats.c async publish + pull/ack of the same bytes, then Relay's path (encode, batch,
 *       rly_tp publish with acks, fetch, batch parse, decode every trajectory, ack), same run.
 *   bench_nats broadcast URL [VERSIONS]   model broadcast: from the server's publish until each of
 *       4 actor processes decoded the envelope and compiled both networks (p50/p99/max).
 * bench/transport/run.sh starts a private nats-server and runs both.
 */
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/thread.h"
#include "relay/codec.h"
#include "relay/model.h"
#include "transport/batch.h"
#include "transport/transport.h"

#define STEPS 200
#define CHECK(x)                                                                                   \
    do {                                                                                           \
        relay_err e_ = (x);                                                                        \
        if (e_) {                                                                                  \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, relay_strerror(e_));        \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static relay_traj *cartpole_traj(uint64_t seed)
{
    relay_step_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.obs_dtype = RELAY_F32;
    sp.obs_rank = 1;
    sp.obs_shape[0] = 4;
    sp.act_dtype = RELAY_I32;
    sp.act_rank = 1;
    sp.act_shape[0] = 1;
    sp.n_aux = 4;
    const char *names[4] = {"logp", "value", "bootstrap", "cut"};
    for (int i = 0; i < 4; i++)
        snprintf(sp.aux_names[i], sizeof sp.aux_names[i], "%s", names[i]);
    relay_traj *t = relay_traj_new(&sp, STEPS, 0);
    uint64_t x = seed * 2654435761u + 1;
    for (int s = 0; s < STEPS; s++) {
        float obs[4], aux[4];
        for (int k = 0; k < 4; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            obs[k] = (float)((double)(x >> 40) / (double)(1 << 24) - 0.5);
        }
        int32_t act = (int32_t)(x >> 63);
        aux[0] = -0.69f + obs[0] * 0.01f;
        aux[1] = 10.0f + obs[1];
        aux[2] = 0;
        aux[3] = 0;
        relay_traj_push(t, obs, &act, NULL, 1.0f, s == STEPS - 1, false, aux,
                        1700000000000000000ll + s * 1000);
    }
    t->policy_version = 3;
    return t;
}

/* ---- raw nats.c JetStream ------------------------------------------------------------------- */

static atomic_long raw_acked;

static void raw_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *c)
{
    (void)js;
    (void)pa;
    (void)c;
    if (!pae)
        atomic_fetch_add(&raw_acked, 1);
    natsMsg_Destroy(msg);
}

typedef struct raw_cons {
    jsCtx *js;
    long want;
    long got;
    double end;
} raw_cons;

static void *raw_consumer(void *arg)
{
    raw_cons *c = arg;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = "BENCH_RAW";
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.MaxAckPending = 65536;
    if (js_PullSubscribe(&sub, c->js, "bench.raw", "raw", NULL, &so, &jerr) != NATS_OK) {
        fprintf(stderr, "raw pull subscribe failed (%d)\n", (int)jerr);
        exit(1);
    }
    while (c->got < c->want) {
        natsMsgList list = {0};
        if (natsSubscription_Fetch(&list, sub, 256, 1000, &jerr) == NATS_OK) {
            for (int i = 0; i < list.Count; i++)
                natsMsg_Ack(list.Msgs[i], NULL);
            c->got += list.Count;
        }
        natsMsgList_Destroy(&list);
    }
    c->end = now_s();
    natsSubscription_Destroy(sub);
    return NULL;
}

static double raw_rate(const char *url, const uint8_t *payload, size_t len, long n, double *mbs)
{
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = 256;
    jo.PublishAsync.AckHandler = raw_ack;
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK ||
        natsConnection_JetStream(&js, nc, &jo) != NATS_OK) {
        fprintf(stderr, "cannot connect to %s\n", url);
        exit(1);
    }
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subj[1] = {"bench.raw"};
    sc.Name = "BENCH_RAW";
    sc.Subjects = subj;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    jsErrCode jerr = 0;
    js_DeleteStream(js, "BENCH_RAW", NULL, &jerr);
    if (js_AddStream(NULL, js, &sc, NULL, &jerr) != NATS_OK) {
        fprintf(stderr, "raw stream: %d\n", (int)jerr);
        exit(1);
    }
    raw_cons c = {.js = js, .want = n};
    rly_thread th;
    double t0 = now_s();
    rly_thread_start(&th, raw_consumer, &c, "raw-cons");
    char id[64];
    for (long i = 0; i < n; i++) {
        natsMsg *m = NULL;
        natsMsg_Create(&m, "bench.raw", NULL, (const char *)payload, (int)len);
        snprintf(id, sizeof id, "raw-%ld", i);
        natsMsgHeader_Set(m, "Nats-Msg-Id", id);
        while (js_PublishMsgAsync(js, &m, NULL) != NATS_OK)
            ;
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    js_PublishAsyncComplete(js, &po);
    rly_thread_join(th);
    double dt = c.end - t0;
    js_DeleteStream(js, "BENCH_RAW", NULL, &jerr);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    *mbs = (double)n * (double)len / dt / 1e6;
    return (double)n / dt;
}

/* ---- Relay's path --------------------------------------------------------------------------- */

static atomic_long relay_acked;

static void on_ack(void *ctx, uint64_t seq, relay_err r)
{
    (void)ctx;
    (void)seq;
    if (!r)
        atomic_fetch_add(&relay_acked, 1);
}

typedef struct relay_cons {
    const char *url;
    long want_trajs;
    long got;
    double end;
} relay_cons;

static void *relay_consumer(void *arg)
{
    relay_cons *c = arg;
    rly_tp_config tc;
    rly_tp_config_init(&tc);
    tc.url = c->url;
    tc.run = "benchrelay";
    rly_tp *tp = NULL;
    CHECK(rly_tp_open(&tc, &tp));
    CHECK(rly_tp_traj_consume(tp, 1));
    relay_codec *codec = NULL;
    CHECK(relay_codec_new(NULL, &codec));
    rly_tp_delivery ds[64];
    while (c->got < c->want_trajs) {
        size_t n = 0;
        rly_tp_traj_fetch(tp, ds, 64, &n, 1000000000);
        for (size_t i = 0; i < n; i++) {
            rly_batch_hdr h;
            if (rly_batch_parse(ds[i].data, ds[i].len, 1 << 26, &h) == RELAY_OK) {
                size_t off = 0;
                const uint8_t *env;
                size_t el;
                while (rly_batch_next(ds[i].data, ds[i].len, &off, &env, &el) == RELAY_OK) {
                    relay_traj *t = NULL;
                    if (relay_codec_decode_traj(codec, env, el, &t) == RELAY_OK) {
                        relay_traj_free(t);
                        c->got++;
                    }
                }
            }
            rly_tp_traj_ack(tp, &ds[i], true);
        }
    }
    c->end = now_s();
    relay_codec_free(codec);
    rly_tp_close(tp);
    return NULL;
}

static void throughput(const char *url, double seconds)
{
    relay_codec *codec = NULL;
    CHECK(relay_codec_new(NULL, &codec));
    enum { POOL = 64 };
    relay_traj *trajs[POOL];
    for (int i = 0; i < POOL; i++)
        trajs[i] = cartpole_traj((uint64_t)i);
    relay_codec_buf env = {0}, batch = {0};
    relay_id producer = relay_id_new();
    /* one batch to size the raw comparison */
    CHECK(rly_batch_begin(&batch, producer, 1));
    size_t per_batch = 0;
    while (batch.len < 96 * 1024) {
        CHECK(relay_codec_encode_traj(codec, trajs[per_batch % POOL], &env));
        CHECK(rly_batch_add(&batch, env.data, env.len));
        per_batch++;
    }
    printf("batch: %zu trajectories of %d steps, %zu bytes (%zu bytes per trajectory)\n", per_batch,
           STEPS, batch.len, batch.len / per_batch);
    /* calibrate the message count on the raw path */
    long n = 200;
    double mbs_raw = 0, rate_raw = raw_rate(url, batch.data, batch.len, n, &mbs_raw);
    n = (long)(rate_raw * seconds);
    if (n < 200)
        n = 200;
    rate_raw = raw_rate(url, batch.data, batch.len, n, &mbs_raw);
    printf("raw nats.c JetStream (async publish + pull/ack), %ld messages: %.0f msgs/s, %.0f MB/s "
           "= %.0f trajectories/s equivalent\n",
           n, rate_raw, mbs_raw, rate_raw * (double)per_batch);

    /* Relay: encode + batch + publish with acks; consumer parses, decodes, acks */
    rly_tp_config tc;
    rly_tp_config_init(&tc);
    tc.url = url;
    tc.run = "benchrelay";
    tc.max_inflight = 256;
    rly_tp *tp = NULL;
    CHECK(rly_tp_open(&tc, &tp));
    CHECK(rly_tp_set_callbacks(tp, on_ack, NULL, NULL));
    {
        rly_tp *srv = NULL; /* a fresh stream for this run */
        CHECK(rly_tp_open(&tc, &srv));
        CHECK(rly_tp_traj_consume(srv, 1));
        rly_tp_close(srv);
    }
    relay_cons c = {.url = url, .want_trajs = n * (long)per_batch};
    rly_thread th;
    double t0 = now_s();
    rly_thread_start(&th, relay_consumer, &c, "relay-cons");
    size_t bytes = 0;
    for (long b = 0; b < n; b++) {
        CHECK(rly_batch_begin(&batch, producer, (uint64_t)b + 100));
        for (size_t k = 0; k < per_batch; k++) {
            CHECK(relay_codec_encode_traj(codec, trajs[(b * per_batch + k) % POOL], &env));
            CHECK(rly_batch_add(&batch, env.data, env.len));
        }
        char id[RLY_TP_MSGID_MAX];
        rly_batch_msg_id(producer, (uint64_t)b + 100, id, sizeof id);
        relay_err e;
        while ((e = rly_tp_traj_publish(tp, id, (uint64_t)b + 100, batch.data, batch.len,
                                        1000000000)) == RELAY_EFULL)
            ;
        CHECK(e);
        bytes += batch.len;
    }
    rly_thread_join(th);
    double dt = c.end - t0;
    double rate = (double)c.got / dt;
    printf("relay (encode, batch, publish+ack, fetch, parse, decode, ack), %ld messages: %.0f "
           "trajectories/s, %.0f msgs/s, %.0f MB/s; %.0f%% of raw\n",
           n, rate, (double)n / dt, (double)bytes / dt / 1e6, 100.0 * ((double)n / dt) / rate_raw);
    rly_tp_close(tp);
    for (int i = 0; i < POOL; i++)
        relay_traj_free(trajs[i]);
    relay_codec_buf_fini(&env);
    relay_codec_buf_fini(&batch);
    relay_codec_free(codec);
}

/* ---- model broadcast ------------------------------------------------------------------------ */

#define PROCS 4
#define MAXV 1024

typedef struct shared {
    atomic_int ready;
    int64_t got[PROCS][MAXV]; /* CLOCK_REALTIME ns when installed */
} shared;

typedef struct child {
    relay_codec *codec;
    shared *sh;
    int idx;
} child;

static void on_model(void *ctx, int64_t version, const void *data, size_t len)
{
    (void)version;
    child *c = ctx;
    relay_msg m;
    if (relay_codec_decode_msg(c->codec, data, len, &m) != RELAY_OK)
        return;
    relay_model *pi = NULL, *vf = NULL;
    if (m.kind == RELAY_MSG_MODEL_UPDATE && m.bundle.version >= 0 && m.bundle.version < MAXV &&
        relay_model_from_onnx(m.bundle.onnx, m.bundle.onnx_len, &pi) == RELAY_OK &&
        relay_model_from_onnx(m.bundle.value_onnx, m.bundle.value_onnx_len, &vf) == RELAY_OK &&
        !c->sh->got[c->idx][m.bundle.version])
        c->sh->got[c->idx][m.bundle.version] = real_ns();
    relay_model_free(pi);
    relay_model_free(vf);
    relay_msg_fini(&m);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void broadcast(const char *url, int versions)
{
    if (versions > MAXV - 1)
        versions = MAXV - 1;
    shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    memset(sh, 0, sizeof *sh);
    rly_tp_config tc;
    rly_tp_config_init(&tc);
    tc.url = url;
    tc.run = "benchcast";
    pid_t kids[PROCS];
    for (int i = 0; i < PROCS; i++) {
        if ((kids[i] = fork()) == 0) {
            child c = {.sh = sh, .idx = i};
            rly_tp *tp = NULL;
            CHECK(relay_codec_new(NULL, &c.codec));
            CHECK(rly_tp_open(&tc, &tp));
            CHECK(rly_tp_model_watch(tp, on_model, &c));
            atomic_fetch_add(&sh->ready, 1);
            while (!sh->got[i][versions])
                usleep(1000);
            rly_tp_close(tp);
            relay_codec_free(c.codec);
            _exit(0);
        }
    }
    while (atomic_load(&sh->ready) < PROCS)
        usleep(1000);
    usleep(200000);
    /* a 4-64-64-2 policy and a 4-64-64-1 critic, as CartPole's */
    uint32_t sz_pi[4] = {4, 64, 64, 2}, sz_vf[4] = {4, 64, 64, 1};
    relay_activation acts[3] = {RELAY_ACT_TANH, RELAY_ACT_TANH, RELAY_ACT_NONE};
    float *w = calloc(64 * 64 + 64, sizeof(float));
    uint64_t x = 12345;
    for (int i = 0; i < 64 * 64 + 64; i++) { /* incompressible, like trained weights */
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = (float)((double)(x >> 40) / (double)(1 << 24) - 0.5) * 0.2f;
    }
    const float *wp[3] = {w, w, w}, *bp[3] = {w, w, w};
    relay_mlp_desc dp = {
        .n_layers = 3, .sizes = sz_pi, .activations = acts, .weights = wp, .biases = bp};
    relay_mlp_desc dv = dp;
    dv.sizes = sz_vf;
    uint8_t *pi = NULL, *vf = NULL;
    size_t pl = 0, vl = 0;
    CHECK(relay_mlp_to_onnx(&dp, &pi, &pl));
    CHECK(relay_mlp_to_onnx(&dv, &vf, &vl));
    rly_tp *srv = NULL;
    CHECK(rly_tp_open(&tc, &srv));
    relay_codec *codec = NULL;
    CHECK(relay_codec_new(NULL, &codec));
    relay_codec_buf buf = {0};
    int64_t *pub = calloc((size_t)versions + 1, sizeof *pub);
    for (int v = 1; v <= versions; v++) {
        relay_msg m;
        memset(&m, 0, sizeof m);
        m.kind = RELAY_MSG_MODEL_UPDATE;
        m.bundle.version = v;
        m.bundle.created_ns = real_ns();
        m.bundle.onnx = pi;
        m.bundle.onnx_len = pl;
        m.bundle.value_onnx = vf;
        m.bundle.value_onnx_len = vl;
        m.bundle.obs_space.dim = 4;
        m.bundle.act_space = (relay_bundle_space){.discrete = true, .n = 2, .dim = 1};
        CHECK(relay_codec_encode_msg(codec, &m, &buf));
        pub[v] = real_ns();
        CHECK(rly_tp_model_publish(srv, v, buf.data, buf.len));
        usleep(20000);
    }
    for (int i = 0; i < PROCS; i++)
        waitpid(kids[i], NULL, 0);
    int64_t *lat = calloc((size_t)versions, sizeof *lat);
    int n = 0, missing = 0;
    for (int v = 1; v <= versions; v++) {
        int64_t worst = 0;
        for (int i = 0; i < PROCS; i++) {
            if (!sh->got[i][v]) {
                missing++;
                continue;
            }
            if (sh->got[i][v] - pub[v] > worst)
                worst = sh->got[i][v] - pub[v];
        }
        lat[n++] = worst;
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    printf("model broadcast (%zu-byte envelope) to %d actor processes, %d versions, until every "
           "process installed it: p50 %.3f ms, p99 %.3f ms, max %.3f ms; %d deliveries missed "
           "(then read from the KV bucket)\n",
           buf.len, PROCS, versions, (double)lat[n / 2] / 1e6, (double)lat[n * 99 / 100] / 1e6,
           (double)lat[n - 1] / 1e6, missing);
    free(lat);
    free(pub);
    free(w);
    free(pi);
    free(vf);
    relay_codec_buf_fini(&buf);
    relay_codec_free(codec);
    rly_tp_close(srv);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_nats throughput|broadcast URL [N]\n");
        return 2;
    }
    if (!strcmp(argv[1], "throughput"))
        throughput(argv[2], argc > 3 ? atof(argv[3]) : 5.0);
    else if (!strcmp(argv[1], "broadcast"))
        broadcast(argv[2], argc > 3 ? atoi(argv[3]) : 300);
    else
        return 2;
    return 0;
}
