/*
 * The ZeroMQ implementation of rly_tp (libzmq 4.3), brokerless: the training server binds, actor
 * processes connect. Endpoints for url tcp://HOST:PORT (docs/DISTRIBUTED.md, docs/PROTOCOL.md):
 *   tcp://HOST:PORT     server ROUTER <- actors' DEALER: trajectory batches, acks, control,
 *                       model requests (one header frame + payload frames per message)
 *   tcp://HOST:PORT+1   server PUB -> actors' SUB: each new model ("M") and status ("S")
 *   tcp://HOST:PORT+2   server ROUTER <- actors' DEALERs: central inference (infer_wire.h), one
 *                       frame each way; bound only once the server serves inference
 * For ipc://PATH the PUB socket is at ipc://PATH.pub, inference at ipc://PATH.infer.
 *
 * ZeroMQ keeps no stream: the server numbers deliveries itself (1, 2, ... from the position given
 * to traj_consume) and the transport says durable = false, so the server acknowledges a batch only
 * once a checkpoint covers it; actors resend what was not acknowledged (after a reconnect or an
 * acknowledgement timeout) and the server's seen table refuses the duplicates.
 *
 * CURVE: with a secret key the server's sockets are CURVE servers and a ZAP handler (on
 * inproc://zeromq.zap.01 in the transport's context) admits only the public keys listed in the
 * allowed-clients file; clients give the server's public key and their own secret key.
 *
 * Connection cap: every server socket has a ZAP domain, so every handshake (CURVE or NULL) asks
 * the ZAP handler, which refuses it (status 500) while more than max_connections connections
 * are open on that socket, counted from the socket monitors' ACCEPTED / DISCONNECTED events.
 *
 * Threads: one I/O thread per transport owns every socket. API calls reach it through an inproc
 * PAIR command socket (serialised by cmd_mu) and wait on condition variables for replies. The ack,
 * connection, model and control callbacks run on the I/O thread. Central inference has its own
 * thread on the server (rly-zmq-infer: its ROUTER, the batch callback) and, on the client, one
 * DEALER per calling thread (made on that thread's first request, closed by zmq_close_impl), so
 * concurrent requests from router workers never share a socket or wait on the I/O thread.
 */

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "core/clock.h"
#include "core/log.h"
#include "core/thread.h"
#include "transport/infer_srv.h"
#include "transport/transport.h"
#include "transport/zmq_wire.h"

#define MOD "zmq"
#define EP_MAX 600
#define QCAP 1024  /* deliveries waiting for the server's consumer */
#define WAITERS 16 /* concurrent requests of one client */
#define INFLIGHT_MAX 65536
/* libzmq drops a peer whose frame exceeds the limit plus this slack (ZMQ_MAXMSGSIZE); frames
   between the limit and that are read and refused by name */
#define FRAME_SLACK (16u << 20)

/* the server's bound sockets, each with its own connection cap (conn_gate) */
enum { G_MAIN, G_PUB, G_INF, G_N };
static const char *const gate_domain[G_N] = {"relay", "relay-models", "relay-infer"};
static const char *const gate_what[G_N] = {"trajectories and control", "models", "inference"};

typedef struct zdel {
    zmq_msg_t rid, data;
    uint64_t batch_seq;
} zdel;

typedef struct waiter {
    bool used, done;
    uint64_t id;
    uint8_t status;
    zmq_msg_t parts[3];
    int n_parts;
} waiter;

typedef struct inflight {
    uint64_t batch_seq;
    int64_t deadline;
} inflight;

typedef struct tp_zmq {
    bool server;
    char ep_main[EP_MAX], ep_pub[EP_MAX], ep_inf[EP_MAX], ep_cmd[64], ep_mon[64];
    rly_tp_config cfg;
    int64_t ack_timeout_ns;
    void *ctx;
    void *cmd_tx; /* API side of the command pipe (cmd_mu) */
    rly_mutex cmd_mu;
    rly_mutex cb_mu;
    struct cb_cmd_ *cb_slot_k, *cb_slot_w, *cb_slot_c;
    rly_thread th;
    bool th_running;
    atomic_bool stop;

    /* CURVE */
    bool curve;
    char secret[41], public_[41], server_pub[41];
    uint8_t (*allowed)[32];
    size_t n_allowed;

    /* callbacks: set through the command pipe, read by the I/O thread only */
    rly_tp_ack_fn ack;
    rly_tp_conn_fn conn;
    void *cb_ctx;

    /* server: deliveries */
    rly_mutex qmu;
    rly_cond qcv;
    zdel *q[QCAP];
    size_t q_head, q_n;
    atomic_bool consuming;
    uint64_t next_seq; /* I/O thread after consume */
    rly_tp_serve_fn serve;
    void *serve_ctx;
    /* server: latest model and status (mmu) */
    rly_mutex mmu;
    uint8_t *model, *status;
    size_t model_len, status_len;
    int64_t model_version;
    uint64_t status_gen;
    /* server: counters */
    atomic_ullong malformed, refused_keys, accepted_keys, batches_in, conns, bad_handshakes;
    atomic_ullong oversized, cap_refused;
    /* server: open TCP/IPC connections per bound socket, from the monitors (I/O thread only):
       open_fd[fd] has bit 1 << gate set while that socket's connection fd is open */
    uint32_t max_conns;
    uint8_t *open_fd;
    size_t n_open_fd;
    uint32_t n_open[G_N];
    char ep_mon_pub[64], ep_mon_inf[64];

    /* client */
    rly_mutex wmu; /* waiters, inflight, connected */
    rly_cond wcv;
    waiter w[WAITERS];
    uint64_t next_req;
    inflight *infl;
    size_t n_infl, max_infl;
    bool connected, ever_connected, auth_failed, at_cap;
    rly_tp_model_fn model_fn; /* I/O thread (set by the 'W' command) */
    void *model_ctx;
    atomic_bool watching;
    int64_t known_version; /* I/O thread */
    uint64_t known_status;

    /* central inference: server thread and its sockets' state; client per-thread DEALERs */
    uint64_t gen;  /* tells this transport's per-thread sockets from an earlier one's */
    rly_mutex imu; /* isocks */
    void **isocks;
    size_t n_isocks, cap_isocks;
    void *inf_router; /* the inference thread's */
    rly_thread inf_th;
    bool inf_running;
    atomic_bool inf_stop;
    rly_isrv isrv;
    zmq_msg_t *inf_rid, *inf_msg; /* [max_batch] messages of the batch being gathered */
} tp_zmq;

/* ---- helpers --------------------------------------------------------------------------------- */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void rly_zw_header(uint8_t *h, uint8_t kind, uint8_t status, uint64_t corr)
{
    memset(h, 0, RLY_ZW_HEADER);
    h[0] = 'R';
    h[1] = 'Z';
    h[2] = RLY_ZW_VERSION;
    h[3] = kind;
    h[4] = status;
    put64(h + 8, corr);
}

relay_err rly_zw_parse(const void *data, size_t len, rly_zw_hdr *out)
{
    const uint8_t *h = data;
    if (len != RLY_ZW_HEADER)
        return len < RLY_ZW_HEADER ? RELAY_ETRUNCATED : RELAY_EFORMAT;
    if (h[0] != 'R' || h[1] != 'Z')
        return RELAY_EFORMAT;
    if (h[2] != RLY_ZW_VERSION)
        return RELAY_EVERSION;
    if (h[3] < RLY_ZW_TRAJ || h[3] > RLY_ZW_MODEL_REP || h[5] || h[6] || h[7])
        return RELAY_EFORMAT;
    out->kind = h[3];
    out->status = h[4];
    out->corr = get64(h + 8);
    return RELAY_OK;
}

/* recv_all reads every part of one message into parts (at most max; extra parts are counted). */
static int recv_all(void *sock, zmq_msg_t *parts, int max, int *total)
{
    int n = 0, t = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        bool more = zmq_msg_more(&m);
        if (n < max)
            parts[n++] = m;
        else
            zmq_msg_close(&m);
        t++;
        if (!more)
            break;
    }
    *total = t;
    return n;
}

static void close_parts(zmq_msg_t *parts, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
}

static int send_buf(void *sock, const void *data, size_t len, bool more)
{
    return zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

/* cb_cmd carries callback pointers to the I/O thread ('K', 'W', 'C'): the caller stores it in
   t->cb_slot[op] under cb_mu, then sends the one-byte command; the I/O thread takes it under
   cb_mu (the mutex also orders everything the caller did before, e.g. a codec it used). */
typedef struct cb_cmd_ {
    void (*fn)(void);
    void (*fn2)(void);
    void *ctx;
} cb_cmd;

static relay_err cmd_send(tp_zmq *t, const void *const *data, const size_t *len, int n);

/* cb_put stores c for command op and sends the command (API threads). */
static relay_err cb_put(tp_zmq *t, char op, cb_cmd c)
{
    rly_mutex_lock(&t->cb_mu);
    cb_cmd **slot = op == 'K' ? &t->cb_slot_k : op == 'W' ? &t->cb_slot_w : &t->cb_slot_c;
    if (!*slot)
        *slot = malloc(sizeof **slot);
    if (*slot)
        **slot = c;
    bool ok = *slot != NULL;
    rly_mutex_unlock(&t->cb_mu);
    if (!ok)
        return RELAY_ENOMEM;
    const void *d[1] = {op == 'K' ? "K" : op == 'W' ? "W" : "C"};
    size_t l[1] = {1};
    return cmd_send(t, d, l, 1);
}

/* cb_take reads the callbacks stored for op (I/O thread); false when none. */
static bool cb_take(tp_zmq *t, char op, cb_cmd *out)
{
    rly_mutex_lock(&t->cb_mu);
    cb_cmd *slot = op == 'K' ? t->cb_slot_k : op == 'W' ? t->cb_slot_w : t->cb_slot_c;
    if (slot)
        *out = *slot;
    rly_mutex_unlock(&t->cb_mu);
    return slot != NULL;
}

/* cmd_send sends a command of n parts from any API thread. */
static relay_err cmd_send(tp_zmq *t, const void *const *data, const size_t *len, int n)
{
    rly_mutex_lock(&t->cmd_mu);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = send_buf(t->cmd_tx, data[i], len[i], i + 1 < n);
    rly_mutex_unlock(&t->cmd_mu);
    return rc == 0 ? RELAY_OK : RELAY_ECLOSED;
}

static void warn_malformed(tp_zmq *t, const char *why)
{
    unsigned long long n = atomic_fetch_add(&t->malformed, 1) + 1;
    if (n <= 10 || n % 1000 == 0)
        rly_warn(MOD, "refused a malformed message (%s); %llu so far", why, n);
}

/* ---- key files ------------------------------------------------------------------------------- */

/* read_key reads the first non-comment line of path: a 40-character Z85 key. */
static relay_err read_key(const char *path, char out[41])
{
    FILE *f = fopen(path, "r");
    if (!f) {
        rly_error(MOD, "cannot read key file %s: %s", path, strerror(errno));
        return RELAY_ECONFIG;
    }
    char line[256];
    relay_err e = RELAY_EFORMAT;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (!n || line[0] == '#')
            continue;
        uint8_t bin[32];
        if (n == 40 && zmq_z85_decode(bin, line)) {
            memcpy(out, line, 41);
            e = RELAY_OK;
        }
        break;
    }
    fclose(f);
    if (e)
        rly_error(MOD, "key file %s: expected a 40-character Z85 key (see relay keygen)", path);
    return e;
}

static relay_err read_allowed(tp_zmq *t, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        rly_error(MOD, "cannot read allowed-clients file %s: %s", path, strerror(errno));
        return RELAY_ECONFIG;
    }
    char line[256];
    relay_err e = RELAY_OK;
    int lineno = 0;
    while (!e && fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        if (!n || line[0] == '#')
            continue;
        if (t->n_allowed >= 100000) {
            rly_error(MOD, "%s: more than 100000 keys", path);
            e = RELAY_ETOOBIG;
            break;
        }
        uint8_t(*a)[32] = realloc(t->allowed, (t->n_allowed + 1) * sizeof *a);
        if (!a) {
            e = RELAY_ENOMEM;
            break;
        }
        t->allowed = a;
        if (n != 40 || !zmq_z85_decode(t->allowed[t->n_allowed], line)) {
            rly_error(MOD, "%s line %d: expected a 40-character Z85 public key", path, lineno);
            e = RELAY_ECONFIG;
            break;
        }
        t->n_allowed++;
    }
    fclose(f);
    return e;
}

relay_err rly_tp_zmq_keygen(char public_z85[41], char secret_z85[41])
{
    return zmq_curve_keypair(public_z85, secret_z85) == 0 ? RELAY_OK : RELAY_EUNSUPPORTED;
}

static int set_curve(tp_zmq *t, void *sock)
{
    int one = 1, rc = 0;
    if (!t->curve)
        return 0;
    if (t->server) {
        rc |= zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        rc |= zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, t->secret, 40);
    } else {
        rc |= zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, t->server_pub, 40);
        rc |= zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, t->public_, 40);
        rc |= zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, t->secret, 40);
    }
    return rc;
}

/* set_domain names a server socket's ZAP domain: every handshake on it (CURVE or NULL) asks the
   ZAP handler, which checks the key (CURVE) and the socket's connection cap */
static int set_domain(void *sock, int gate)
{
    return zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, gate_domain[gate], strlen(gate_domain[gate]));
}

/* gate_event applies one monitor event of a bound socket: ACCEPTED opens fd, DISCONNECTED closes
   it (libzmq reports the fd as the value of both; I/O thread). */
static void gate_event(tp_zmq *t, int gate, uint16_t ev, uint32_t fd)
{
    uint8_t bit = (uint8_t)(1u << gate);
    if (ev == ZMQ_EVENT_ACCEPTED) {
        if (fd >= (1u << 24))
            return; /* not a descriptor this process can have: never counted */
        if (fd >= t->n_open_fd) {
            size_t n = t->n_open_fd ? t->n_open_fd : 1024;
            while (n <= fd)
                n *= 2;
            uint8_t *m = realloc(t->open_fd, n);
            if (!m)
                return; /* untracked: it does not count against the cap */
            memset(m + t->n_open_fd, 0, n - t->n_open_fd);
            t->open_fd = m;
            t->n_open_fd = n;
        }
        if (!(t->open_fd[fd] & bit)) {
            t->open_fd[fd] |= bit;
            t->n_open[gate]++;
        }
    } else if (ev == ZMQ_EVENT_DISCONNECTED && fd < t->n_open_fd && (t->open_fd[fd] & bit)) {
        t->open_fd[fd] &= (uint8_t)~bit;
        t->n_open[gate]--;
    }
}

/* monitor_read reads one monitor event (event id, value); false when none is queued. */
static bool monitor_read(void *mon, uint16_t *ev, uint32_t *value)
{
    zmq_msg_t p[2];
    int total = 0, n = recv_all(mon, p, 2, &total);
    bool ok = n >= 1 && zmq_msg_size(&p[0]) >= 6;
    *ev = 0;
    *value = 0;
    if (ok) {
        const uint8_t *d = zmq_msg_data(&p[0]);
        *ev = (uint16_t)(d[0] | d[1] << 8);
        *value = (uint32_t)d[2] | (uint32_t)d[3] << 8 | (uint32_t)d[4] << 16 | (uint32_t)d[5] << 24;
    }
    close_parts(p, n);
    return n >= 1 && (ok || total > 0);
}

/* server_monitor applies every queued event of one bound socket's monitor (I/O thread): the
   connection counts of its gate; for the main socket also connections and failed handshakes. */
static void server_monitor(tp_zmq *t, void *mon, int gate)
{
    uint16_t ev = 0;
    uint32_t value = 0;
    for (int k = 0; k < 4096 && monitor_read(mon, &ev, &value); k++) {
        gate_event(t, gate, ev, value);
        if (gate != G_MAIN)
            continue;
        if (ev == ZMQ_EVENT_ACCEPTED)
            atomic_fetch_add(&t->conns, 1);
        else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
                 ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                 (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value != 500)) {
            /* (status 500 is a connection refused at the cap, counted by the ZAP handler) */
            unsigned long long n = atomic_fetch_add(&t->bad_handshakes, 1) + 1;
            if (n <= 10 || n % 1000 == 0)
                rly_warn(MOD,
                         "a connection failed its handshake (not ZMTP, or refused); %llu so "
                         "far",
                         n);
        }
    }
}

/* zap_answer handles one ZAP request (I/O thread, after the monitors are drained): refuses a
   connection beyond its socket's cap (status 500), then admits listed CURVE keys only. */
static void zap_answer(tp_zmq *t, void *zap)
{
    zmq_msg_t p[8];
    int total = 0, n = recv_all(zap, p, 8, &total);
    if (n < 2) {
        close_parts(p, n);
        return;
    }
    int gate = G_MAIN;
    for (int g = 0; n >= 3 && g < G_N; g++)
        if (zmq_msg_size(&p[2]) == strlen(gate_domain[g]) &&
            !memcmp(zmq_msg_data(&p[2]), gate_domain[g], strlen(gate_domain[g])))
            gate = g;
    /* the connection asking is among the open ones (its ACCEPTED event came first) */
    bool full = t->n_open[gate] > t->max_conns;
    bool ok = false;
    if (full) {
        unsigned long long k = atomic_fetch_add(&t->cap_refused, 1) + 1;
        if (k <= 10 || k % 1000 == 0)
            rly_warn(MOD,
                     "refused a connection to %s (%s): %u connections open, the cap is %u "
                     "(transport.max_connections, relay server --max-connections); %llu "
                     "refused so far",
                     gate == G_MAIN  ? t->ep_main
                     : gate == G_PUB ? t->ep_pub
                                     : t->ep_inf,
                     gate_what[gate], t->n_open[gate], t->max_conns, k);
    } else if (!t->curve) {
        ok = n >= 6 && zmq_msg_size(&p[5]) == 4 && !memcmp(zmq_msg_data(&p[5]), "NULL", 4);
    } else {
        if (n >= 7 && zmq_msg_size(&p[5]) == 5 && !memcmp(zmq_msg_data(&p[5]), "CURVE", 5) &&
            zmq_msg_size(&p[6]) == 32) {
            for (size_t i = 0; i < t->n_allowed && !ok; i++)
                ok = !memcmp(t->allowed[i], zmq_msg_data(&p[6]), 32);
        }
        if (ok)
            atomic_fetch_add(&t->accepted_keys, 1);
        else {
            unsigned long long k = atomic_fetch_add(&t->refused_keys, 1) + 1;
            if (k <= 10 || k % 1000 == 0)
                rly_warn(MOD, "refused a client key that is not in the allowed list (%llu so far)",
                         k);
        }
    }
    const char *code = ok ? "200" : full ? "500" : "400";
    const char *text = ok ? "OK" : full ? "connection cap reached" : "unknown key";
    send_buf(zap, "1.0", 3, true);
    zmq_send(zap, zmq_msg_data(&p[1]), zmq_msg_size(&p[1]), ZMQ_SNDMORE);
    send_buf(zap, code, 3, true);
    send_buf(zap, text, strlen(text), true);
    send_buf(zap, "", 0, true);
    send_buf(zap, "", 0, false);
    close_parts(p, n);
}

/* ---- server I/O thread ----------------------------------------------------------------------- */

static void server_reply(void *router, const zmq_msg_t *rid, uint8_t kind, uint8_t status,
                         uint64_t corr, const void *const *data, const size_t *len, int n)
{
    uint8_t h[RLY_ZW_HEADER];
    rly_zw_header(h, kind, status, corr);
    zmq_send(router, zmq_msg_data((zmq_msg_t *)rid), zmq_msg_size((zmq_msg_t *)rid), ZMQ_SNDMORE);
    send_buf(router, h, sizeof h, n > 0);
    for (int i = 0; i < n; i++)
        send_buf(router, data[i], len[i], i + 1 < n);
}

/* model_reply answers a model request (or publishes on PUB when router is NULL). */
static void send_model(tp_zmq *t, void *sock, const zmq_msg_t *rid, uint64_t corr, bool status)
{
    rly_mutex_lock(&t->mmu);
    uint8_t meta[16];
    put64(meta, (uint64_t)t->model_version);
    put64(meta + 8, t->status_gen);
    if (rid) {
        const void *d[3] = {meta, t->model, t->status};
        size_t l[3] = {16, t->model_len, t->status_len};
        server_reply(sock, rid, RLY_ZW_MODEL_REP, 0, corr, d, l, 3);
    } else if (status) {
        send_buf(sock, "S", 1, true);
        send_buf(sock, meta, 16, true);
        send_buf(sock, t->status, t->status_len, false);
    } else {
        send_buf(sock, "M", 1, true);
        send_buf(sock, meta, 16, true);
        send_buf(sock, t->model, t->model_len, false);
    }
    rly_mutex_unlock(&t->mmu);
}

static void server_in(tp_zmq *t, void *router)
{
    zmq_msg_t p[4];
    int total = 0, n = recv_all(router, p, 4, &total);
    if (n < 1)
        return;
    rly_zw_hdr h;
    relay_err e =
        n >= 2 ? rly_zw_parse(zmq_msg_data(&p[1]), zmq_msg_size(&p[1]), &h) : RELAY_ETRUNCATED;
    if (e) {
        warn_malformed(t, relay_strerror(e));
        close_parts(p, n);
        return;
    }
    size_t big = 0;
    for (int i = 2; i < n; i++)
        if (zmq_msg_size(&p[i]) > big)
            big = zmq_msg_size(&p[i]);
    if (big > RLY_ZW_MAX_PAYLOAD) {
        unsigned long long k = atomic_fetch_add(&t->oversized, 1) + 1;
        if (k <= 10 || k % 1000 == 0)
            rly_warn(MOD,
                     "refused a frame of %zu bytes: the limit is %u bytes (64 MiB + 4 KiB; "
                     "frames above %u bytes make libzmq drop the sender); %llu so far",
                     big, RLY_ZW_MAX_PAYLOAD, RLY_ZW_MAX_PAYLOAD + FRAME_SLACK, k);
        if (h.kind == RLY_ZW_TRAJ) /* the actor drops it: resending cannot help */
            server_reply(router, &p[0], RLY_ZW_ACK, RLY_ZW_REFUSED, h.corr, NULL, NULL, 0);
        close_parts(p, n);
        return;
    }
    if (h.kind == RLY_ZW_TRAJ && total == 3) {
        zdel *d = malloc(sizeof *d);
        if (!d) {
            server_reply(router, &p[0], RLY_ZW_ACK, RLY_ZW_RETRY, h.corr, NULL, NULL, 0);
            close_parts(p, n);
            return;
        }
        d->rid = p[0];
        d->data = p[2];
        d->batch_seq = h.corr;
        zmq_msg_close(&p[1]);
        atomic_fetch_add(&t->batches_in, 1);
        rly_mutex_lock(&t->qmu);
        t->q[(t->q_head + t->q_n) % QCAP] = d; /* the poll loop reads only when there is room */
        t->q_n++;
        rly_cond_broadcast(&t->qcv);
        rly_mutex_unlock(&t->qmu);
        return;
    }
    if (h.kind == RLY_ZW_CTL_REQ && total == 3) {
        relay_codec_buf rep = {0};
        uint8_t status = RLY_ZW_NO_HANDLER;
        if (t->serve) {
            relay_err se = t->serve(t->serve_ctx, zmq_msg_data(&p[2]), zmq_msg_size(&p[2]), &rep);
            status = se ? RLY_ZW_ERROR : RLY_ZW_OK;
            if (se)
                rep.len = 0;
        }
        const void *d[1] = {rep.data ? (const void *)rep.data : ""};
        size_t l[1] = {rep.len};
        server_reply(router, &p[0], RLY_ZW_CTL_REP, status, h.corr, d, l, 1);
        relay_codec_buf_fini(&rep);
    } else if (h.kind == RLY_ZW_MODEL_REQ && total == 3 && zmq_msg_size(&p[2]) == 8) {
        send_model(t, router, &p[0], h.corr, false);
    } else {
        warn_malformed(t, "unexpected kind or part count");
    }
    close_parts(p, n);
}

static void server_cmd(tp_zmq *t, void *cmd, void *router, void *pub)
{
    zmq_msg_t p[4];
    int total = 0, n = recv_all(cmd, p, 4, &total);
    if (n < 1)
        return;
    char op = zmq_msg_size(&p[0]) ? *(char *)zmq_msg_data(&p[0]) : 0;
    if (op == 'A' && n == 3) {
        zmq_send(router, zmq_msg_data(&p[1]), zmq_msg_size(&p[1]), ZMQ_SNDMORE);
        zmq_send(router, zmq_msg_data(&p[2]), zmq_msg_size(&p[2]), 0);
    } else if (op == 'C') {
        cb_cmd c;
        if (cb_take(t, 'C', &c)) {
            t->serve = (rly_tp_serve_fn)c.fn;
            t->serve_ctx = c.ctx;
        }
    } else if (op == 'M') {
        send_model(t, pub, NULL, 0, false);
    } else if (op == 'S') {
        send_model(t, pub, NULL, 0, true);
    } else if (op == 'Q') {
        atomic_store(&t->stop, true);
    }
    close_parts(p, n);
}

/* ---- open and close -------------------------------------------------------------------------- */

typedef struct io_sockets {
    void *cmd, *a, *b, *zap, *mon;
    void *mon_pub, *mon_inf; /* server: monitors of the PUB and inference sockets */
} io_sockets;

/* the I/O threads take their sockets from here (created by open on the opening thread, then
   handed over: ZeroMQ allows moving a socket between threads with a full memory barrier) */
typedef struct io_start {
    tp_zmq *t;
    io_sockets s;
} io_start;

/* server_monitors drains the three bound sockets' monitors (I/O thread). */
static void server_monitors(tp_zmq *t, const io_sockets *s)
{
    server_monitor(t, s->mon, G_MAIN);
    server_monitor(t, s->mon_pub, G_PUB);
    server_monitor(t, s->mon_inf, G_INF);
}

static void *server_loop(void *arg)
{
    io_start *st = arg;
    tp_zmq *t = st->t;
    io_sockets s = st->s;
    free(st);
    while (!atomic_load(&t->stop)) {
        zmq_pollitem_t it[6] = {{s.cmd, 0, ZMQ_POLLIN, 0},
                                {s.mon, 0, ZMQ_POLLIN, 0},
                                {s.mon_pub, 0, ZMQ_POLLIN, 0},
                                {s.mon_inf, 0, ZMQ_POLLIN, 0},
                                {s.zap, 0, ZMQ_POLLIN, 0}};
        int n = 5;
        rly_mutex_lock(&t->qmu);
        bool room = t->q_n < QCAP;
        rly_mutex_unlock(&t->qmu);
        if (atomic_load(&t->consuming) && room)
            it[n++] = (zmq_pollitem_t){s.a, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(it, n, 50) < 0 && zmq_errno() == ETERM)
            break;
        if ((it[1].revents | it[2].revents | it[3].revents) & ZMQ_POLLIN)
            server_monitors(t, &s);
        for (int i = 0; i < n; i++) {
            if (!(it[i].revents & ZMQ_POLLIN) || i == 1 || i == 2 || i == 3)
                continue;
            if (it[i].socket == s.cmd)
                server_cmd(t, s.cmd, s.a, s.b);
            else if (it[i].socket == s.zap)
                for (int k = 0; k < 256; k++) {
                    /* every connection asking was accepted before it asked: count it first */
                    server_monitors(t, &s);
                    uint32_t ev = 0;
                    size_t el = sizeof ev;
                    if (zmq_getsockopt(s.zap, ZMQ_EVENTS, &ev, &el) != 0 || !(ev & ZMQ_POLLIN))
                        break;
                    zap_answer(t, s.zap);
                }
            else
                for (int k = 0; k < 64; k++) { /* a burst, bounded by the queue */
                    rly_mutex_lock(&t->qmu);
                    room = t->q_n < QCAP;
                    rly_mutex_unlock(&t->qmu);
                    uint32_t ev = 0;
                    size_t el = sizeof ev;
                    if (!room || zmq_getsockopt(s.a, ZMQ_EVENTS, &ev, &el) != 0 ||
                        !(ev & ZMQ_POLLIN))
                        break;
                    server_in(t, s.a);
                }
        }
    }
    int linger = 500;
    zmq_setsockopt(s.a, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s.b, ZMQ_LINGER, &linger, sizeof linger);
    zmq_socket_monitor(s.a, NULL, 0);
    zmq_socket_monitor(s.b, NULL, 0);
    zmq_close(s.a);
    zmq_close(s.b);
    zmq_close(s.cmd);
    zmq_close(s.zap);
    zmq_close(s.mon);
    zmq_close(s.mon_pub);
    zmq_close(s.mon_inf);
    return NULL;
}

/* ---- client I/O thread ----------------------------------------------------------------------- */

static waiter *find_waiter(tp_zmq *t, uint64_t id)
{
    for (int i = 0; i < WAITERS; i++)
        if (t->w[i].used && t->w[i].id == id)
            return &t->w[i];
    return NULL;
}

static void deliver_model_parts(tp_zmq *t, const zmq_msg_t *meta, const zmq_msg_t *model,
                                const zmq_msg_t *status)
{
    if (!t->model_fn || zmq_msg_size((zmq_msg_t *)meta) != 16)
        return;
    const uint8_t *m = zmq_msg_data((zmq_msg_t *)meta);
    int64_t version = (int64_t)get64(m);
    uint64_t sgen = get64(m + 8);
    if (model && zmq_msg_size((zmq_msg_t *)model) && version > t->known_version) {
        t->known_version = version;
        t->model_fn(t->model_ctx, version, zmq_msg_data((zmq_msg_t *)model),
                    zmq_msg_size((zmq_msg_t *)model));
    }
    if (status && zmq_msg_size((zmq_msg_t *)status) && sgen != t->known_status) {
        t->known_status = sgen;
        t->model_fn(t->model_ctx, -1, zmq_msg_data((zmq_msg_t *)status),
                    zmq_msg_size((zmq_msg_t *)status));
    }
}

static void client_in(tp_zmq *t, void *dealer)
{
    zmq_msg_t p[4];
    int total = 0, n = recv_all(dealer, p, 4, &total);
    if (n < 1)
        return;
    rly_zw_hdr h;
    if (rly_zw_parse(zmq_msg_data(&p[0]), zmq_msg_size(&p[0]), &h)) {
        warn_malformed(t, "reply header");
        close_parts(p, n);
        return;
    }
    if (h.kind == RLY_ZW_ACK) {
        bool known = false;
        rly_mutex_lock(&t->wmu);
        for (size_t i = 0; i < t->n_infl; i++)
            if (t->infl[i].batch_seq == h.corr) {
                t->infl[i] = t->infl[--t->n_infl];
                known = true;
                break;
            }
        rly_cond_broadcast(&t->wcv);
        rly_mutex_unlock(&t->wmu);
        (void)known; /* a late ack after a reconnect still reports the batch as stored */
        if (t->ack)
            t->ack(t->cb_ctx, h.corr, h.status == RLY_ZW_RETRY ? RELAY_EAGAIN : RELAY_OK);
        close_parts(p, n);
        return;
    }
    if (h.kind == RLY_ZW_MODEL_REP && h.corr == 0) { /* the watcher's own re-request */
        if (n == 4)
            deliver_model_parts(t, &p[1], &p[2], &p[3]);
        close_parts(p, n);
        return;
    }
    rly_mutex_lock(&t->wmu);
    waiter *w = find_waiter(t, h.corr);
    if (w && !w->done) {
        w->status = h.status;
        w->n_parts = n - 1;
        for (int i = 1; i < n; i++)
            w->parts[i - 1] = p[i];
        n = 1;
        w->done = true;
        rly_cond_broadcast(&t->wcv);
    }
    rly_mutex_unlock(&t->wmu);
    close_parts(p, n);
}

static void client_sub(tp_zmq *t, void *sub)
{
    zmq_msg_t p[3];
    int total = 0, n = recv_all(sub, p, 3, &total);
    if (n == 3 && total == 3 && zmq_msg_size(&p[0]) == 1) {
        char topic = *(char *)zmq_msg_data(&p[0]);
        if (topic == 'M')
            deliver_model_parts(t, &p[1], &p[2], NULL);
        else if (topic == 'S')
            deliver_model_parts(t, &p[1], NULL, &p[2]);
    }
    close_parts(p, n);
}

static void request_model(void *dealer, int64_t known)
{
    uint8_t h[RLY_ZW_HEADER], v[8];
    rly_zw_header(h, RLY_ZW_MODEL_REQ, 0, 0);
    put64(v, (uint64_t)known);
    send_buf(dealer, h, sizeof h, true);
    send_buf(dealer, v, sizeof v, false);
}

static void client_monitor(tp_zmq *t, void *mon, void *dealer)
{
    uint16_t ev = 0;
    uint32_t value = 0;
    if (!monitor_read(mon, &ev, &value) || !ev)
        return;
    bool up = false, down = false, cap = false;
    rly_mutex_lock(&t->wmu);
    if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        up = t->ever_connected; /* a reconnect */
        t->connected = t->ever_connected = true;
        t->at_cap = false;
        t->n_infl = 0; /* their acks may be lost: the caller resends after conn(true) */
    } else if (ev == ZMQ_EVENT_DISCONNECTED && t->connected) {
        t->connected = false;
        down = true;
    } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && value == 500) {
        /* the server is at its connection cap: libzmq tries again (reconnect interval) */
        cap = !t->at_cap;
        t->at_cap = true;
    } else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH || ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
        t->auth_failed = true;
        rly_warn(MOD, "the server refused the CURVE handshake (check the keys)");
    }
    rly_cond_broadcast(&t->wcv);
    rly_mutex_unlock(&t->wmu);
    if (cap)
        rly_warn(MOD,
                 "the server at %s refused the connection: it is at its connection cap (its "
                 "transport.max_connections); retrying",
                 t->ep_main);
    if (down) {
        rly_warn(MOD, "disconnected from %s; reconnecting", t->ep_main);
        if (t->conn)
            t->conn(t->cb_ctx, false);
    }
    if (up) {
        rly_info(MOD, "reconnected to %s", t->ep_main);
        if (t->model_fn)
            request_model(dealer, t->known_version);
        if (t->conn)
            t->conn(t->cb_ctx, true);
    }
}

static void client_cmd(tp_zmq *t, void *cmd, void *dealer)
{
    zmq_msg_t p[3];
    int total = 0, n = recv_all(cmd, p, 3, &total);
    if (n < 1)
        return;
    char op = zmq_msg_size(&p[0]) ? *(char *)zmq_msg_data(&p[0]) : 0;
    if (op == 'F' && n >= 2) { /* forward the remaining parts (payload moved, not copied) */
        for (int i = 1; i < n; i++)
            zmq_msg_send(&p[i], dealer, i + 1 < n ? ZMQ_SNDMORE : 0);
        zmq_msg_close(&p[0]);
        return;
    }
    cb_cmd c;
    bool has_cb = (op == 'W' || op == 'K') && cb_take(t, op, &c);
    if (op == 'W' && has_cb) {
        t->model_fn = (rly_tp_model_fn)c.fn;
        t->model_ctx = c.ctx;
        request_model(dealer, t->known_version);
    } else if (op == 'K' && has_cb) {
        t->ack = (rly_tp_ack_fn)c.fn;
        t->conn = (rly_tp_conn_fn)c.fn2;
        t->cb_ctx = c.ctx;
    } else if (op == 'Q')
        atomic_store(&t->stop, true);
    close_parts(p, n);
}

static void client_timeouts(tp_zmq *t)
{
    int64_t now = rly_now_ns();
    uint64_t expired[64];
    size_t k = 0;
    rly_mutex_lock(&t->wmu);
    for (size_t i = 0; i < t->n_infl && k < 64;) {
        if (t->infl[i].deadline <= now) {
            expired[k++] = t->infl[i].batch_seq;
            t->infl[i] = t->infl[--t->n_infl];
        } else {
            i++;
        }
    }
    if (k)
        rly_cond_broadcast(&t->wcv);
    rly_mutex_unlock(&t->wmu);
    for (size_t i = 0; i < k; i++)
        if (t->ack)
            t->ack(t->cb_ctx, expired[i], RELAY_ETIMEDOUT);
}

static void *client_loop(void *arg)
{
    io_start *st = arg;
    tp_zmq *t = st->t;
    io_sockets s = st->s;
    free(st);
    int64_t next_tick = 0;
    unsigned ticks = 0;
    while (!atomic_load(&t->stop)) {
        zmq_pollitem_t it[4] = {{s.cmd, 0, ZMQ_POLLIN, 0},
                                {s.a, 0, ZMQ_POLLIN, 0},
                                {s.b, 0, ZMQ_POLLIN, 0},
                                {s.mon, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 4, 20) < 0 && zmq_errno() == ETERM)
            break;
        if (it[3].revents & ZMQ_POLLIN)
            client_monitor(t, s.mon, s.a);
        if (it[0].revents & ZMQ_POLLIN)
            for (int k = 0; k < 256; k++) {
                uint32_t ev = 0;
                size_t el = sizeof ev;
                if (zmq_getsockopt(s.cmd, ZMQ_EVENTS, &ev, &el) || !(ev & ZMQ_POLLIN))
                    break;
                client_cmd(t, s.cmd, s.a);
            }
        if (it[1].revents & ZMQ_POLLIN)
            for (int k = 0; k < 256; k++) {
                uint32_t ev = 0;
                size_t el = sizeof ev;
                if (zmq_getsockopt(s.a, ZMQ_EVENTS, &ev, &el) || !(ev & ZMQ_POLLIN))
                    break;
                client_in(t, s.a);
            }
        if (it[2].revents & ZMQ_POLLIN)
            client_sub(t, s.b);
        int64_t now = rly_now_ns();
        if (now >= next_tick) {
            next_tick = now + 100 * RLY_NS_PER_MS;
            client_timeouts(t);
            if (t->model_fn && ++ticks % 10 == 0 && t->connected)
                request_model(s.a, t->known_version); /* a broadcast missed is never lost */
        }
    }
    int linger = 200;
    zmq_setsockopt(s.a, ZMQ_LINGER, &linger, sizeof linger);
    zmq_socket_monitor(s.a, NULL, 0);
    zmq_close(s.a);
    zmq_close(s.b);
    zmq_close(s.cmd);
    zmq_close(s.mon);
    return NULL;
}

/* ---- central inference ----------------------------------------------------------------------- */

static _Atomic uint64_t zmq_gens; /* transports opened so far (per-thread socket keys) */

/* infer_send_reply sends one reply frame to the peer rid names (rid is consumed). */
static void infer_send_reply(void *router, zmq_msg_t *rid, const void *data, size_t len)
{
    if (zmq_msg_send(rid, router, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(rid);
        return;
    }
    zmq_send(router, data, len, ZMQ_DONTWAIT); /* a peer gone or full: its request times out */
}

/* infer_recv takes one request (identity + one frame) if one is queued; false when none is. */
static bool infer_recv(tp_zmq *t, void *router)
{
    rly_isrv *s = &t->isrv;
    size_t k = s->n;
    zmq_msg_t *rid = &t->inf_rid[k], *msg = &t->inf_msg[k];
    zmq_msg_init(rid);
    if (zmq_msg_recv(rid, router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(rid);
        return false;
    }
    zmq_msg_init(msg);
    bool extra = false;
    if (!zmq_msg_more(rid) || zmq_msg_recv(msg, router, 0) < 0) {
        extra = true; /* no payload frame */
    } else if (zmq_msg_more(msg)) {
        extra = true;
        zmq_msg_t drop;
        zmq_msg_init(&drop);
        while (zmq_msg_recv(&drop, router, 0) >= 0 && zmq_msg_more(&drop))
            ;
        zmq_msg_close(&drop);
    }
    size_t elen = 0;
    relay_err e;
    if (extra) {
        /* a request is exactly one frame: answer with a format error (add counts the reject) */
        e = rly_isrv_add(s, "", 0, &elen);
    } else {
        e = rly_isrv_add(s, zmq_msg_data(msg), zmq_msg_size(msg), &elen);
    }
    if (e) {
        infer_send_reply(router, rid, s->err, elen);
        zmq_msg_close(msg);
        return true;
    }
    /* the client: its routing id (FNV-1a) */
    const uint8_t *id = zmq_msg_data(rid);
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < zmq_msg_size(rid); i++)
        h = (h ^ id[i]) * UINT64_C(1099511628211);
    rly_isrv_note_peer(s, h);
    return true; /* kept as item k until the batch is answered */
}

/* infer_wait waits until router may have a request or left_ns pass: poll(2) on its ZMQ_FD with
   a nanosecond timeout (zmq_poll counts milliseconds). */
static void infer_wait(void *router, int fd, int64_t left_ns)
{
    uint32_t ev = 0;
    size_t el = sizeof ev;
    if (zmq_getsockopt(router, ZMQ_EVENTS, &ev, &el) == 0 && (ev & ZMQ_POLLIN))
        return;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    struct timespec ts = {.tv_sec = (time_t)(left_ns / RLY_NS_PER_S),
                          .tv_nsec = (long)(left_ns % RLY_NS_PER_S)};
    ppoll(&p, 1, &ts, NULL);
}

static void infer_answer(tp_zmq *t, void *router)
{
    rly_isrv *s = &t->isrv;
    rly_isrv_run(s);
    for (size_t i = 0; i < s->n; i++) {
        size_t len;
        const uint8_t *r = rly_isrv_reply(s, i, &len);
        infer_send_reply(router, &t->inf_rid[i], r, len);
        zmq_msg_close(&t->inf_msg[i]);
    }
    rly_isrv_clear(s);
}

static void *infer_loop(void *arg)
{
    tp_zmq *t = arg;
    void *router = t->inf_router;
    zmq_pollitem_t pi = {router, 0, ZMQ_POLLIN, 0};
    int64_t wait = rly_isrv_wait_ns(&t->isrv);
    int fd = -1;
    size_t fl = sizeof fd;
    zmq_getsockopt(router, ZMQ_FD, &fd, &fl);
#ifdef PR_SET_TIMERSLACK
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); /* sub-ms batch waits end on time (1 us slack) */
#endif
    while (!atomic_load_explicit(&t->inf_stop, memory_order_relaxed)) {
        if (zmq_poll(&pi, 1, 100) <= 0)
            continue;
        int64_t deadline = rly_now_ns() + wait;
        for (;;) {
            while (!rly_isrv_full(&t->isrv) && infer_recv(t, router))
                ;
            /* closed: full, or every client that can ask is in (no more can come) */
            if (rly_isrv_full(&t->isrv) || t->isrv.n == 0 || rly_isrv_complete(&t->isrv))
                break;
            int64_t left = deadline - rly_now_ns();
            if (left <= 0)
                break;
            infer_wait(router, fd, left);
        }
        if (t->isrv.n)
            infer_answer(t, router);
    }
    return NULL;
}

static relay_err infer_serve(void *impl, const rly_tp_infer_opts *o, rly_tp_infer_fn fn, void *ctx)
{
    tp_zmq *t = impl;
    if (!t->server)
        return RELAY_EINVAL;
    if (t->inf_running)
        return RELAY_EBUSY;
    relay_err e = rly_isrv_init(&t->isrv, o, fn, ctx);
    if (e)
        return e;
    t->inf_rid = calloc(t->isrv.cap, sizeof *t->inf_rid);
    t->inf_msg = calloc(t->isrv.cap, sizeof *t->inf_msg);
    void *r = zmq_socket(t->ctx, ZMQ_ROUTER);
    if (!t->inf_rid || !t->inf_msg || !r) {
        if (r)
            zmq_close(r);
        return RELAY_ENOMEM;
    }
    /* requests above RLY_IW_MAX_BYTES get an error reply naming the limit (infer_wire.c) */
    int64_t maxmsg = (int64_t)RLY_IW_MAX_BYTES + FRAME_SLACK;
    int zero = 0, hwm = 100000, hs = 5000;
    zmq_setsockopt(r, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(r, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(r, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(r, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
    if (set_curve(t, r) != 0 || set_domain(r, G_INF) != 0 ||
        zmq_socket_monitor(r, t->ep_mon_inf, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0 ||
        zmq_bind(r, t->ep_inf) != 0) {
        rly_error(MOD, "cannot serve inference on %s: %s", t->ep_inf, zmq_strerror(zmq_errno()));
        zmq_close(r);
        return RELAY_EIO;
    }
    t->inf_router = r;
    atomic_store(&t->inf_stop, false);
    if ((e = rly_thread_start(&t->inf_th, infer_loop, t, "rly-zmq-infer"))) {
        zmq_close(r);
        t->inf_router = NULL;
        return e;
    }
    t->inf_running = true;
    rly_info(MOD, "serving central inference on %s (batches up to %u rows, wait %lld us)",
             t->ep_inf, t->isrv.o.max_batch, (long long)(t->isrv.o.max_wait_ns / 1000));
    return RELAY_OK;
}

/* infer_stop ends the inference thread and closes every inference socket (before ctx_term). */
static void infer_stop(tp_zmq *t)
{
    if (t->inf_running) {
        atomic_store(&t->inf_stop, true);
        rly_thread_join(t->inf_th);
        t->inf_running = false;
        for (size_t i = 0; i < t->isrv.n; i++) {
            zmq_msg_close(&t->inf_rid[i]);
            zmq_msg_close(&t->inf_msg[i]);
        }
        rly_isrv_clear(&t->isrv);
        rly_tp_infer_stats st;
        rly_isrv_stats(&t->isrv, &st);
        if (st.rejected)
            rly_warn(MOD, "inference: %llu malformed or oversized requests refused",
                     (unsigned long long)st.rejected);
    }
    if (t->inf_router) {
        zmq_socket_monitor(t->inf_router, NULL, 0);
        zmq_close(t->inf_router);
        t->inf_router = NULL;
    }
    rly_mutex_lock(&t->imu);
    for (size_t i = 0; i < t->n_isocks; i++)
        zmq_close(t->isocks[i]);
    t->n_isocks = 0;
    rly_mutex_unlock(&t->imu);
}

/* A thread's inference DEALERs, keyed by transport generation (a few transports at a time). */
#define TLS_SOCKS 4
static _Thread_local struct {
    uint64_t gen;
    void *sock;
} tls_inf[TLS_SOCKS];

static void *thread_sock(tp_zmq *t)
{
    for (int i = 0; i < TLS_SOCKS; i++)
        if (tls_inf[i].gen == t->gen)
            return tls_inf[i].sock;
    void *d = zmq_socket(t->ctx, ZMQ_DEALER);
    if (!d)
        return NULL;
    int zero = 0, one = 1;
    int64_t maxmsg = (int64_t)RLY_IW_MAX_BYTES;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(d, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (set_curve(t, d) != 0 || zmq_connect(d, t->ep_inf) != 0) {
        rly_error(MOD, "cannot connect to the inference endpoint %s: %s", t->ep_inf,
                  zmq_strerror(zmq_errno()));
        zmq_close(d);
        return NULL;
    }
    rly_mutex_lock(&t->imu);
    bool ok = true;
    if (t->n_isocks == t->cap_isocks) {
        size_t cap = t->cap_isocks ? t->cap_isocks * 2 : 16;
        void **nb = realloc(t->isocks, cap * sizeof *nb);
        if (nb) {
            t->isocks = nb;
            t->cap_isocks = cap;
        } else {
            ok = false;
        }
    }
    if (ok)
        t->isocks[t->n_isocks++] = d;
    rly_mutex_unlock(&t->imu);
    if (!ok) {
        zmq_close(d);
        return NULL;
    }
    int slot = 0; /* replace the oldest entry (its transport keeps and closes the socket) */
    for (int i = 1; i < TLS_SOCKS; i++)
        if (tls_inf[i].gen < tls_inf[slot].gen)
            slot = i;
    tls_inf[slot].gen = t->gen;
    tls_inf[slot].sock = d;
    return d;
}

static long ms_left(int64_t deadline)
{
    int64_t left = deadline - rly_now_ns();
    if (left <= 0)
        return 0;
    return (long)((left + RLY_NS_PER_MS - 1) / RLY_NS_PER_MS);
}

static relay_err infer_request(void *impl, const void *req, size_t len, void *reply, size_t cap,
                               size_t *reply_len, int64_t timeout_ns)
{
    tp_zmq *t = impl;
    if (t->server)
        return RELAY_EINVAL;
    void *d = thread_sock(t);
    if (!d)
        return RELAY_EIO;
    uint64_t id;
    memcpy(&id, (const uint8_t *)req + 8, 8);
    int64_t deadline = rly_now_ns() + (timeout_ns > 0 ? timeout_ns : 5 * RLY_NS_PER_S);
    /* with ZMQ_IMMEDIATE a send waits for a live connection: none means no server there */
    for (;;) {
        if (zmq_send(d, req, len, ZMQ_DONTWAIT) >= 0)
            break;
        if (zmq_errno() != EAGAIN)
            return RELAY_EIO;
        zmq_pollitem_t pi = {d, 0, ZMQ_POLLOUT, 0};
        long ms = ms_left(deadline);
        if (ms == 0)
            return RELAY_ECLOSED;
        zmq_poll(&pi, 1, ms < 50 ? ms : 50);
    }
    for (;;) {
        zmq_pollitem_t pi = {d, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&pi, 1, ms_left(deadline));
        if (rc < 0)
            return zmq_errno() == ETERM ? RELAY_ECLOSED : RELAY_EIO;
        if (rc == 0)
            return RELAY_ETIMEDOUT;
        int n = zmq_recv(d, reply, cap, ZMQ_DONTWAIT);
        if (n < 0)
            continue;
        int more = 0;
        size_t ml = sizeof more;
        zmq_getsockopt(d, ZMQ_RCVMORE, &more, &ml);
        while (more) { /* a well-behaved server sends one frame: drop the rest */
            zmq_recv(d, NULL, 0, 0);
            zmq_getsockopt(d, ZMQ_RCVMORE, &more, &ml);
        }
        uint64_t rid = 0;
        if (n >= 16)
            memcpy(&rid, (const uint8_t *)reply + 8, 8);
        if (n >= 16 && (size_t)n <= cap && rid != id)
            continue; /* a late reply to an earlier request that timed out */
        if ((size_t)n > cap)
            return RELAY_ETOOBIG;
        *reply_len = (size_t)n;
        return RELAY_OK;
    }
}

static void infer_stats(void *impl, rly_tp_infer_stats *out)
{
    tp_zmq *t = impl;
    if (t->inf_running)
        rly_isrv_stats(&t->isrv, out);
    else
        memset(out, 0, sizeof *out);
}

/* ---- operations ------------------------------------------------------------------------------ */

static void zmq_close_impl(void *impl)
{
    tp_zmq *t = impl;
    if (!t)
        return;
    /* inference first: the I/O thread's thread owns the PAIR that reads the inference router's
       monitor, and a monitor event sent once that PAIR is closed blocks libzmq's I/O thread with
       the monitor's lock held, so unmonitoring the router afterwards would hang */
    infer_stop(t);
    if (t->th_running) {
        const void *d[1] = {"Q"};
        size_t l[1] = {1};
        cmd_send(t, d, l, 1);
        atomic_store(&t->stop, true);
        rly_thread_join(t->th);
    }
    if (t->cmd_tx)
        zmq_close(t->cmd_tx);
    if (t->ctx)
        zmq_ctx_term(t->ctx);
    if (t->server) {
        unsigned long long mal = atomic_load(&t->malformed), ref = atomic_load(&t->refused_keys),
                           bad = atomic_load(&t->bad_handshakes), big = atomic_load(&t->oversized),
                           cap = atomic_load(&t->cap_refused);
        if (mal || ref || bad || big || cap)
            rly_warn(MOD,
                     "server transport closed: %llu malformed messages refused, %llu client "
                     "keys refused, %llu failed handshakes (of %llu connections), %llu "
                     "oversized frames refused, %llu connections refused at the cap of %u",
                     mal, ref, bad, (unsigned long long)atomic_load(&t->conns), big, cap,
                     t->max_conns);
    }
    for (size_t i = 0; i < t->q_n; i++) {
        zdel *d = t->q[(t->q_head + i) % QCAP];
        zmq_msg_close(&d->rid);
        zmq_msg_close(&d->data);
        free(d);
    }
    for (int i = 0; i < WAITERS; i++)
        if (t->w[i].used && t->w[i].done)
            close_parts(t->w[i].parts, t->w[i].n_parts);
    free(t->model);
    free(t->status);
    free(t->allowed);
    free(t->infl);
    free(t->open_fd);
    rly_mutex_fini(&t->cmd_mu);
    rly_mutex_fini(&t->cb_mu);
    free(t->cb_slot_k);
    free(t->cb_slot_w);
    free(t->cb_slot_c);
    rly_mutex_fini(&t->qmu);
    rly_cond_fini(&t->qcv);
    rly_mutex_fini(&t->mmu);
    rly_mutex_fini(&t->wmu);
    rly_cond_fini(&t->wcv);
    rly_mutex_fini(&t->imu);
    free(t->isocks);
    rly_isrv_fini(&t->isrv);
    free(t->inf_rid);
    free(t->inf_msg);
    memset(t->secret, 0, sizeof t->secret);
    free(t);
}

static relay_err set_callbacks(void *impl, rly_tp_ack_fn ack, rly_tp_conn_fn conn, void *ctx)
{
    tp_zmq *t = impl;
    if (t->server)
        return RELAY_OK; /* the server side publishes nothing that is acknowledged */
    return cb_put(t, 'K', (cb_cmd){(void (*)(void))ack, (void (*)(void))conn, ctx});
}

static relay_err traj_publish(void *impl, const char *msg_id, uint64_t batch_seq, const void *data,
                              size_t len, int64_t timeout_ns)
{
    (void)msg_id; /* the batch header carries the id */
    tp_zmq *t = impl;
    if (t->server)
        return RELAY_EUNSUPPORTED;
    if (len > RLY_ZW_MAX_PAYLOAD) {
        rly_error(MOD, "batch %llu of %zu bytes is above the frame limit of %u bytes",
                  (unsigned long long)batch_seq, len, RLY_ZW_MAX_PAYLOAD);
        return RELAY_ETOOBIG;
    }
    int64_t deadline = rly_now_ns() + (timeout_ns > 0 ? timeout_ns : 0);
    rly_mutex_lock(&t->wmu);
    for (;;) {
        if (!t->connected) {
            rly_mutex_unlock(&t->wmu);
            return RELAY_ECLOSED;
        }
        if (t->n_infl < t->max_infl)
            break;
        if (!rly_cond_wait_until(&t->wcv, &t->wmu, deadline)) {
            rly_mutex_unlock(&t->wmu);
            return RELAY_EFULL;
        }
    }
    size_t i = 0;
    while (i < t->n_infl && t->infl[i].batch_seq != batch_seq)
        i++;
    if (i == t->n_infl)
        t->n_infl++;
    t->infl[i] = (inflight){batch_seq, rly_now_ns() + t->ack_timeout_ns};
    rly_mutex_unlock(&t->wmu);
    uint8_t h[RLY_ZW_HEADER];
    rly_zw_header(h, RLY_ZW_TRAJ, 0, batch_seq);
    const void *d[3] = {"F", h, data};
    size_t l[3] = {1, sizeof h, len};
    return cmd_send(t, d, l, 3);
}

static relay_err raw_publish(void *impl, const char *msg_id, const void *data, size_t len)
{
    (void)msg_id;
    tp_zmq *t = impl;
    if (t->server)
        return RELAY_EUNSUPPORTED;
    uint8_t h[RLY_ZW_HEADER];
    rly_zw_header(h, RLY_ZW_TRAJ, 0, 0);
    const void *d[3] = {"F", h, data ? data : ""};
    size_t l[3] = {1, sizeof h, len};
    return cmd_send(t, d, l, 3);
}

static relay_err traj_consume(void *impl, uint64_t start_seq)
{
    tp_zmq *t = impl;
    if (!t->server)
        return RELAY_EUNSUPPORTED;
    t->next_seq = start_seq ? start_seq : 1;
    atomic_store(&t->consuming, true);
    return RELAY_OK;
}

static relay_err traj_fetch(void *impl, rly_tp_delivery *out, size_t max, size_t *n,
                            int64_t timeout_ns)
{
    tp_zmq *t = impl;
    if (!atomic_load(&t->consuming))
        return RELAY_ESTATE;
    int64_t deadline = rly_now_ns() + (timeout_ns > 0 ? timeout_ns : 0);
    rly_mutex_lock(&t->qmu);
    while (!t->q_n && rly_cond_wait_until(&t->qcv, &t->qmu, deadline))
        ;
    size_t k = 0;
    while (k < max && t->q_n) {
        zdel *d = t->q[t->q_head];
        t->q_head = (t->q_head + 1) % QCAP;
        t->q_n--;
        rly_tp_delivery *o = &out[k++];
        memset(o, 0, sizeof *o);
        o->seq = t->next_seq++; /* the consumer thread is the only reader */
        o->delivered = 1;
        o->data = zmq_msg_data(&d->data);
        o->len = zmq_msg_size(&d->data);
        o->handle = d;
    }
    rly_mutex_unlock(&t->qmu);
    *n = k;
    return RELAY_OK;
}

static relay_err traj_ack(void *impl, rly_tp_delivery *d, bool ok)
{
    tp_zmq *t = impl;
    zdel *z = d->handle;
    if (!z)
        return RELAY_EINVAL;
    (void)ok; /* refused batches are acknowledged too: their fate is in the ledger */
    uint8_t h[RLY_ZW_HEADER];
    rly_zw_header(h, RLY_ZW_ACK, ok ? RLY_ZW_OK : RLY_ZW_REFUSED, z->batch_seq);
    const void *p[3] = {"A", zmq_msg_data(&z->rid), h};
    size_t l[3] = {1, zmq_msg_size(&z->rid), sizeof h};
    relay_err e = cmd_send(t, p, l, 3);
    zmq_msg_close(&z->rid);
    zmq_msg_close(&z->data);
    free(z);
    d->handle = NULL;
    d->data = NULL;
    return e;
}

static void traj_release(void *impl, rly_tp_delivery *d)
{
    (void)impl;
    zdel *z = d->handle;
    zmq_msg_close(&z->rid);
    zmq_msg_close(&z->data);
    free(z);
    d->handle = NULL;
    d->data = NULL;
}

static relay_err store(tp_zmq *t, uint8_t **dst, size_t *dst_len, const void *data, size_t len)
{
    uint8_t *c = NULL;
    if (len && !(c = malloc(len)))
        return RELAY_ENOMEM;
    if (len)
        memcpy(c, data, len);
    free(*dst);
    *dst = c;
    *dst_len = len;
    (void)t;
    return RELAY_OK;
}

static relay_err model_publish(void *impl, int64_t version, const void *data, size_t len)
{
    tp_zmq *t = impl;
    if (!t->server)
        return RELAY_EUNSUPPORTED;
    rly_mutex_lock(&t->mmu);
    relay_err e = store(t, &t->model, &t->model_len, data, len);
    if (!e)
        t->model_version = version;
    rly_mutex_unlock(&t->mmu);
    if (e)
        return e;
    const void *d[1] = {"M"};
    size_t l[1] = {1};
    return cmd_send(t, d, l, 1);
}

static relay_err status_publish(void *impl, const void *data, size_t len)
{
    tp_zmq *t = impl;
    if (!t->server)
        return RELAY_EUNSUPPORTED;
    rly_mutex_lock(&t->mmu);
    relay_err e = store(t, &t->status, &t->status_len, data, data ? len : 0);
    t->status_gen++;
    rly_mutex_unlock(&t->mmu);
    if (e || !data)
        return e;
    const void *d[1] = {"S"};
    size_t l[1] = {1};
    return cmd_send(t, d, l, 1);
}

/* request sends one request and waits for its reply parts (client side). */
static relay_err request(tp_zmq *t, uint8_t kind, const void *body, size_t len, int64_t timeout_ns,
                         waiter *got)
{
    if (t->server)
        return RELAY_EUNSUPPORTED;
    rly_mutex_lock(&t->wmu);
    if (!t->connected) {
        rly_mutex_unlock(&t->wmu);
        return RELAY_ENOTFOUND;
    }
    waiter *w = NULL;
    for (int i = 0; i < WAITERS && !w; i++)
        if (!t->w[i].used)
            w = &t->w[i];
    if (!w) {
        rly_mutex_unlock(&t->wmu);
        return RELAY_EBUSY;
    }
    memset(w, 0, sizeof *w);
    w->used = true;
    w->id = ++t->next_req;
    uint64_t id = w->id;
    rly_mutex_unlock(&t->wmu);
    uint8_t h[RLY_ZW_HEADER];
    rly_zw_header(h, kind, 0, id);
    const void *d[3] = {"F", h, body ? body : ""};
    size_t l[3] = {1, sizeof h, len};
    relay_err e = cmd_send(t, d, l, 3);
    int64_t deadline = rly_now_ns() + (timeout_ns > 0 ? timeout_ns : RLY_NS_PER_S);
    rly_mutex_lock(&t->wmu);
    while (!e && !w->done && rly_cond_wait_until(&t->wcv, &t->wmu, deadline))
        ;
    if (!e && !w->done)
        e = RELAY_ETIMEDOUT;
    if (!e) {
        *got = *w;
    } else if (w->done) {
        close_parts(w->parts, w->n_parts);
    }
    w->used = false;
    rly_mutex_unlock(&t->wmu);
    return e;
}

static relay_err copy_part(zmq_msg_t *m, relay_codec_buf *out)
{
    size_t n = zmq_msg_size(m);
    relay_err e = relay_codec_buf_reserve(out, n + 1);
    if (!e) {
        if (n)
            memcpy(out->data, zmq_msg_data(m), n);
        out->len = n;
    }
    return e;
}

static relay_err model_latest(void *impl, relay_codec_buf *out, int64_t *version)
{
    tp_zmq *t = impl;
    uint8_t v[8];
    put64(v, (uint64_t)-1);
    waiter w;
    relay_err e = request(t, RLY_ZW_MODEL_REQ, v, sizeof v, 2 * RLY_NS_PER_S, &w);
    if (e)
        return e == RELAY_ENOTFOUND ? RELAY_ENOMODEL : e;
    if (w.n_parts != 3 || zmq_msg_size(&w.parts[0]) != 16)
        e = RELAY_EFORMAT;
    else if (!zmq_msg_size(&w.parts[1]))
        e = RELAY_ENOMODEL;
    else {
        e = copy_part(&w.parts[1], out);
        if (version)
            *version = (int64_t)get64(zmq_msg_data(&w.parts[0]));
    }
    close_parts(w.parts, w.n_parts);
    return e;
}

static relay_err model_watch(void *impl, rly_tp_model_fn fn, void *ctx)
{
    tp_zmq *t = impl;
    if (t->server)
        return RELAY_EUNSUPPORTED;
    if (atomic_exchange(&t->watching, true))
        return RELAY_ESTATE;
    return cb_put(t, 'W', (cb_cmd){(void (*)(void))fn, NULL, ctx});
}

static relay_err control_serve(void *impl, rly_tp_serve_fn fn, void *ctx)
{
    tp_zmq *t = impl;
    if (!t->server)
        return RELAY_EUNSUPPORTED;
    return cb_put(t, 'C', (cb_cmd){(void (*)(void))fn, NULL, ctx});
}

static relay_err control_request(void *impl, const void *req, size_t len, relay_codec_buf *reply,
                                 int64_t timeout_ns)
{
    tp_zmq *t = impl;
    waiter w;
    relay_err e = request(t, RLY_ZW_CTL_REQ, req, len, timeout_ns, &w);
    if (e)
        return e;
    if (w.status == RLY_ZW_NO_HANDLER)
        e = RELAY_ENOTFOUND;
    else if (w.n_parts != 1)
        e = RELAY_EFORMAT;
    else if (w.status == RLY_ZW_ERROR)
        reply->len = 0;
    else
        e = copy_part(&w.parts[0], reply);
    close_parts(w.parts, w.n_parts);
    return e;
}

static const rly_tp_ops zmq_ops = {
    .name = "zmq",
    .durable = false,
    .close = zmq_close_impl,
    .set_callbacks = set_callbacks,
    .traj_publish = traj_publish,
    .traj_consume = traj_consume,
    .traj_fetch = traj_fetch,
    .traj_ack = traj_ack,
    .traj_release = traj_release,
    .model_publish = model_publish,
    .model_latest = model_latest,
    .model_watch = model_watch,
    .control_serve = control_serve,
    .control_request = control_request,
    .raw_publish = raw_publish,
    .status_publish = status_publish,
    .infer_serve = infer_serve,
    .infer_request = infer_request,
    .infer_stats = infer_stats,
};

/* endpoints derives the main and PUB endpoints from url (tcp://HOST:PORT or ipc://PATH). */
static relay_err endpoints(tp_zmq *t, const char *url)
{
    if (strlen(url) + 8 >= EP_MAX) {
        rly_error(MOD, "url \"%s\" is longer than %d bytes", url, EP_MAX - 8);
        return RELAY_ECONFIG;
    }
    snprintf(t->ep_main, sizeof t->ep_main, "%s", url);
    if (!strncmp(url, "ipc://", 6)) {
        snprintf(t->ep_pub, sizeof t->ep_pub, "%s.pub", url);
        snprintf(t->ep_inf, sizeof t->ep_inf, "%s.infer", url);
        return RELAY_OK;
    }
    const char *colon = strrchr(url + 6, ':');
    char *end = NULL;
    unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
    if (!colon || !end || *end || port == 0 || port >= 65534) {
        rly_error(MOD,
                  "url \"%s\": expected tcp://HOST:PORT with PORT in 1..65533 (PORT+1 carries "
                  "models, PORT+2 central inference)",
                  url);
        return RELAY_ECONFIG;
    }
    snprintf(t->ep_pub, sizeof t->ep_pub, "%.*s:%lu", (int)(colon - url), url, port + 1);
    snprintf(t->ep_inf, sizeof t->ep_inf, "%.*s:%lu", (int)(colon - url), url, port + 2);
    return RELAY_OK;
}

static relay_err setup_curve(tp_zmq *t, const rly_tp_config *c)
{
    if (!c->curve_secret_file) {
        if (c->curve_server_public_file || c->curve_clients_file) {
            rly_error(MOD, "CURVE needs a secret key file (transport.curve_secret_file)");
            return RELAY_ECONFIG;
        }
        return RELAY_OK;
    }
    if (!zmq_has("curve")) {
        rly_error(MOD, "this libzmq has no CURVE support");
        return RELAY_EUNSUPPORTED;
    }
    t->curve = true;
    relay_err e = read_key(c->curve_secret_file, t->secret);
    if (e)
        return e;
    if (zmq_curve_public(t->public_, t->secret) != 0) {
        rly_error(MOD, "%s: not a CURVE secret key", c->curve_secret_file);
        return RELAY_ECONFIG;
    }
    if (t->server) {
        if (!c->curve_clients_file) {
            rly_error(MOD, "a CURVE server needs the file of allowed client public keys "
                           "(transport.curve_clients_file)");
            return RELAY_ECONFIG;
        }
        return read_allowed(t, c->curve_clients_file);
    }
    if (!c->curve_server_public_file) {
        rly_error(MOD, "a CURVE client needs the server's public key file "
                       "(transport.curve_server_public_file)");
        return RELAY_ECONFIG;
    }
    return read_key(c->curve_server_public_file, t->server_pub);
}

/* monitor_pair connects a PAIR to a socket monitor's endpoint (connecting before the monitor
   binds is fine: inproc) */
static void *monitor_pair(tp_zmq *t, const char *ep)
{
    void *m = zmq_socket(t->ctx, ZMQ_PAIR);
    int unlimited = 0; /* a flood must not drop ACCEPTED/DISCONNECTED events (the counts) */
    if (m)
        zmq_setsockopt(m, ZMQ_RCVHWM, &unlimited, sizeof unlimited);
    if (m && zmq_connect(m, ep) != 0) {
        zmq_close(m);
        return NULL;
    }
    return m;
}

static relay_err open_server(tp_zmq *t, io_sockets *s)
{
    int hwm = 0;
    /* the ZAP handler admits every connection: the cap on each socket, and CURVE keys */
    s->zap = zmq_socket(t->ctx, ZMQ_REP);
    if (!s->zap || zmq_bind(s->zap, "inproc://zeromq.zap.01") != 0) {
        rly_error(MOD, "ZAP handler: %s", zmq_strerror(zmq_errno()));
        return RELAY_EIO;
    }
    s->a = zmq_socket(t->ctx, ZMQ_ROUTER);
    s->b = zmq_socket(t->ctx, ZMQ_PUB);
    if (!s->a || !s->b)
        return RELAY_EIO;
    int64_t maxmsg = (int64_t)RLY_ZW_MAX_PAYLOAD + FRAME_SLACK;
    zmq_setsockopt(s->a, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    int64_t pubmax = 4096; /* subscribers send only subscriptions */
    zmq_setsockopt(s->b, ZMQ_MAXMSGSIZE, &pubmax, sizeof pubmax);
    zmq_setsockopt(s->a, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s->a, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s->b, ZMQ_SNDHWM, &hwm, sizeof hwm);
    int hs = 5000;
    zmq_setsockopt(s->a, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
    zmq_setsockopt(s->b, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs);
    if (set_curve(t, s->a) || set_curve(t, s->b) || set_domain(s->a, G_MAIN) ||
        set_domain(s->b, G_PUB)) {
        rly_error(MOD, "CURVE options: %s", zmq_strerror(zmq_errno()));
        return RELAY_ECONFIG;
    }
    s->mon = monitor_pair(t, t->ep_mon);
    s->mon_pub = monitor_pair(t, t->ep_mon_pub);
    s->mon_inf = monitor_pair(t, t->ep_mon_inf); /* its socket comes with infer_serve */
    if (!s->mon || !s->mon_pub || !s->mon_inf ||
        zmq_socket_monitor(
            s->a, t->ep_mon,
            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0 ||
        zmq_socket_monitor(s->b, t->ep_mon_pub, ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0) {
        rly_error(MOD, "socket monitor: %s", zmq_strerror(zmq_errno()));
        return RELAY_EIO;
    }
    if (zmq_bind(s->a, t->ep_main) != 0) {
        rly_error(MOD, "cannot bind %s: %s", t->ep_main, zmq_strerror(zmq_errno()));
        return RELAY_ECLOSED;
    }
    if (zmq_bind(s->b, t->ep_pub) != 0) {
        rly_error(MOD, "cannot bind %s (models): %s", t->ep_pub, zmq_strerror(zmq_errno()));
        return RELAY_ECLOSED;
    }
    return RELAY_OK;
}

static relay_err open_client(tp_zmq *t, io_sockets *s)
{
    s->a = zmq_socket(t->ctx, ZMQ_DEALER);
    s->b = zmq_socket(t->ctx, ZMQ_SUB);
    s->mon = zmq_socket(t->ctx, ZMQ_PAIR);
    if (!s->a || !s->b || !s->mon)
        return RELAY_EIO;
    int hwm = 0, ivl = 100, ivl_max = 1000;
    zmq_setsockopt(s->a, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s->a, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s->a, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s->a, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    zmq_setsockopt(s->b, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(s->b, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    zmq_setsockopt(s->b, ZMQ_SUBSCRIBE, "", 0);
    if (set_curve(t, s->a) || set_curve(t, s->b)) {
        rly_error(MOD, "CURVE options: %s", zmq_strerror(zmq_errno()));
        return RELAY_ECONFIG;
    }
    if (zmq_socket_monitor(s->a, t->ep_mon,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0 ||
        zmq_connect(s->mon, t->ep_mon) != 0) {
        rly_error(MOD, "socket monitor: %s", zmq_strerror(zmq_errno()));
        return RELAY_EIO;
    }
    if (zmq_connect(s->a, t->ep_main) != 0 || zmq_connect(s->b, t->ep_pub) != 0) {
        rly_error(MOD, "cannot connect to %s: %s", t->ep_main, zmq_strerror(zmq_errno()));
        return RELAY_ECONFIG;
    }
    return RELAY_OK;
}

relay_err rly_tp_zmq_open(const rly_tp_config *c, rly_tp **out)
{
    tp_zmq *t = calloc(1, sizeof *t);
    if (!t)
        return RELAY_ENOMEM;
    rly_mutex_init(&t->cmd_mu);
    rly_mutex_init(&t->cb_mu);
    rly_mutex_init(&t->qmu);
    rly_cond_init(&t->qcv);
    rly_mutex_init(&t->mmu);
    rly_mutex_init(&t->wmu);
    rly_cond_init(&t->wcv);
    rly_mutex_init(&t->imu);
    t->gen = atomic_fetch_add(&zmq_gens, 1) + 1;
    t->server = c->bind;
    t->cfg = *c;
    t->model_version = -1;
    t->known_version = -1;
    t->ack_timeout_ns = c->ack_timeout_ns > 0 ? c->ack_timeout_ns : 30 * RLY_NS_PER_S;
    t->max_infl = c->max_inflight ? c->max_inflight : 256;
    if (t->max_infl > INFLIGHT_MAX)
        t->max_infl = INFLIGHT_MAX;
    snprintf(t->ep_cmd, sizeof t->ep_cmd, "inproc://rly-cmd-%p", (void *)t);
    snprintf(t->ep_mon, sizeof t->ep_mon, "inproc://rly-mon-%p", (void *)t);
    snprintf(t->ep_mon_pub, sizeof t->ep_mon_pub, "inproc://rly-mon-pub-%p", (void *)t);
    snprintf(t->ep_mon_inf, sizeof t->ep_mon_inf, "inproc://rly-mon-inf-%p", (void *)t);
    t->max_conns = c->max_connections ? c->max_connections : RLY_TP_MAX_CONNECTIONS_DEFAULT;
    io_sockets s = {0};
    io_start *st = NULL;
    relay_err e = endpoints(t, c->url);
    if (!e && t->server && t->max_conns > RLY_TP_MAX_CONNECTIONS_MAX) {
        rly_error(MOD, "max_connections %u is above the limit %u", t->max_conns,
                  RLY_TP_MAX_CONNECTIONS_MAX);
        e = RELAY_ECONFIG;
    }
    if (!e)
        e = setup_curve(t, c);
    if (!e && !t->server && !(t->infl = calloc(t->max_infl, sizeof *t->infl)))
        e = RELAY_ENOMEM;
    if (!e && !(t->ctx = zmq_ctx_new()))
        e = RELAY_EIO;
    if (!e) {
        s.cmd = zmq_socket(t->ctx, ZMQ_PAIR);
        t->cmd_tx = zmq_socket(t->ctx, ZMQ_PAIR);
        int hwm = 0;
        if (s.cmd && t->cmd_tx) {
            zmq_setsockopt(s.cmd, ZMQ_RCVHWM, &hwm, sizeof hwm);
            zmq_setsockopt(t->cmd_tx, ZMQ_SNDHWM, &hwm, sizeof hwm);
        }
        if (!s.cmd || !t->cmd_tx || zmq_bind(s.cmd, t->ep_cmd) || zmq_connect(t->cmd_tx, t->ep_cmd))
            e = RELAY_EIO;
    }
    if (!e)
        e = t->server ? open_server(t, &s) : open_client(t, &s);
    if (!e && !(st = malloc(sizeof *st)))
        e = RELAY_ENOMEM;
    if (!e) {
        st->t = t;
        st->s = s;
        e = rly_thread_start(&t->th, t->server ? server_loop : client_loop, st,
                             t->server ? "rly-zmq-server" : "rly-zmq-client");
        if (e)
            free(st);
        else
            t->th_running = true;
    }
    if (e) {
        if (!t->th_running) {
            void *socks[7] = {s.cmd, s.a, s.b, s.zap, s.mon, s.mon_pub, s.mon_inf};
            int zero = 0;
            for (int i = 0; i < 7; i++)
                if (socks[i]) {
                    zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
                    zmq_close(socks[i]);
                }
            if (t->cmd_tx) {
                zmq_setsockopt(t->cmd_tx, ZMQ_LINGER, &zero, sizeof zero);
            }
        }
        zmq_close_impl(t);
        return e;
    }
    if (!t->server) {
        /* wait for the first handshake: refused keys end at once, silence after the timeout */
        int64_t deadline =
            rly_now_ns() + (c->connect_timeout_ns > 0 ? c->connect_timeout_ns : 5 * RLY_NS_PER_S);
        rly_mutex_lock(&t->wmu);
        while (!t->connected && !t->auth_failed && rly_cond_wait_until(&t->wcv, &t->wmu, deadline))
            ;
        bool ok = t->connected, auth = t->auth_failed, full = t->at_cap;
        rly_mutex_unlock(&t->wmu);
        if (!ok) {
            rly_error(MOD, "cannot connect to %s: %s", c->url,
                      auth       ? "the server refused our CURVE key"
                      : full     ? "the server is at its connection cap (transport.max_connections)"
                      : t->curve ? "no server answered (with CURVE: check the server's public key)"
                                 : "no server answered");
            zmq_close_impl(t);
            return auth ? RELAY_EAUTH : full ? RELAY_EBUSY : RELAY_ECLOSED;
        }
    }
    if ((e = rly_tp_new_impl(&zmq_ops, t, out))) {
        zmq_close_impl(t);
        return e;
    }
    return RELAY_OK;
}
