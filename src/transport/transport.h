/*
 * rly_tp: the one transport interface between a training server and actor processes. Both sides
 * use it; implementations plug in behind a table of operations (NATS JetStream in nats.c; other
 * buses implement the same table). Payloads are opaque bytes here: Relay's envelopes (see
 * batch.h for the trajectory batch layout, docs/PROTOCOL.md for the subjects and headers).
 *
 * Ownership and threads: the creator owns an rly_tp and closes it from the thread that opened
 * it. Publishing, fetching and acknowledging may be called from one thread at a time each (the
 * actor process's publisher thread, the server's consumer thread). Callbacks (acks, model
 * versions, control requests, connection events) run on the implementation's own threads: they
 * must not block for long and must not call rly_tp_close.
 */
#ifndef RLY_TRANSPORT_TRANSPORT_H
#define RLY_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/codec.h"
#include "relay/err.h"
#include "transport/infer_wire.h"

/* RLY_TP_RUN_MAX bounds a run name (letters, digits, '-' and '_'), including the NUL. */
#define RLY_TP_RUN_MAX 64
/* RLY_TP_MSGID_MAX bounds a message id ("<producer-uuid>:<batch-seq>"), including the NUL. */
#define RLY_TP_MSGID_MAX 64

/* rly_tp_config says where to connect and how; strings are borrowed for rly_tp_open only. */
typedef struct rly_tp_config {
    const char *url;         /* "nats://host:port" (comma-separated for several servers) */
    const char *run;         /* run name: subjects, stream and bucket names derive from it */
    const char *client_name; /* shown by the server's monitoring (may be NULL) */
    /* Credentials (any may be NULL): user/password, token, or an nkey seed file; TLS CA file. */
    const char *user, *password, *token, *nkey_seed_file, *tls_ca_file;
    bool tls;                   /* require TLS */
    uint32_t max_inflight;      /* unacknowledged trajectory publishes (0: 256) */
    int64_t ack_timeout_ns;     /* publish acknowledgement timeout (0: 5 s) */
    int64_t connect_timeout_ns; /* first connection: how long to keep retrying (0: 5 s) */
    uint64_t stream_max_bytes;  /* server: trajectory stream size limit (0: 1 GiB) */
    int replicas;               /* server: stream and bucket replicas (0: 1) */
    int64_t dedup_window_ns;    /* server: stream duplicate window (0: 2 min) */
    /* brokerless transports (zmq): the server binds the url, actor processes connect */
    bool bind;
    /* CURVE (zmq): own secret key file; client: the server's public key file; server: the file
       of allowed client public keys (Z85, one a line; see relay keygen) */
    const char *curve_secret_file, *curve_server_public_file, *curve_clients_file;
    /* brokerless server: connections each bound socket admits at once (0: the default); the
       ZAP handler refuses a handshake while more are open, counted and logged */
    uint32_t max_connections;
} rly_tp_config;

/* RLY_TP_MAX_CONNECTIONS_DEFAULT is the zmq server's connection cap per bound socket. */
#define RLY_TP_MAX_CONNECTIONS_DEFAULT 256u
/* RLY_TP_MAX_CONNECTIONS_MAX bounds rly_tp_config.max_connections. */
#define RLY_TP_MAX_CONNECTIONS_MAX 65536u

/* rly_tp_ack_fn reports the fate of one trajectory publish (RELAY_OK = stored by the bus). */
typedef void (*rly_tp_ack_fn)(void *ctx, uint64_t batch_seq, relay_err result);

/* rly_tp_model_fn receives one model version's bytes (borrowed for the call). */
typedef void (*rly_tp_model_fn)(void *ctx, int64_t version, const void *data, size_t len);

/* rly_tp_conn_fn reports connection changes: connected true on (re)connect, false on loss. */
typedef void (*rly_tp_conn_fn)(void *ctx, bool connected);

/*
 * rly_tp_serve_fn answers one control request (bytes borrowed); it fills reply (reply->len = 0
 * sends an empty reply).
 */
typedef relay_err (*rly_tp_serve_fn)(void *ctx, const void *req, size_t len,
                                     relay_codec_buf *reply);

/* rly_tp_delivery is one fetched trajectory message; valid until acked or released. */
typedef struct rly_tp_delivery {
    uint64_t seq;                  /* position in the run's trajectory stream (1-based) */
    uint64_t delivered;            /* times the bus delivered it (1 = first time) */
    char msg_id[RLY_TP_MSGID_MAX]; /* the publisher's id ("" when absent or too long) */
    const uint8_t *data;
    size_t len;
    void *handle; /* implementation's message */
} rly_tp_delivery;

/*
 * Central inference (infer_wire.h, docs/PROTOCOL.md section 12). The server's transport gathers
 * requests from every connected actor process into a batch (closed at max_batch rows, or
 * max_wait_ns after its first request), calls rly_tp_infer_fn once per batch on its inference
 * thread, and sends each request its reply. Malformed or oversized requests never reach fn: they
 * get an error reply naming the limit and are counted.
 */
typedef struct rly_tp_infer_item {
    rly_iw_req req;   /* decoded and size-checked (bytes valid during the call) */
    uint32_t width;   /* action values per row: 1 (discrete index) or act_dim */
    relay_err status; /* fn: RELAY_OK, or why this request failed (then `why`) */
    char why[RLY_IW_TEXT_MAX + 1];
    int64_t version;     /* fn: model version used */
    void *actions;       /* fn fills [rows * width] i32 (discrete) or f32 (continuous) */
    float *logp, *value; /* fn fills [rows] each */
} rly_tp_infer_item;

/* rly_tp_infer_fn serves one batch of n requests holding rows rows in all. */
typedef void (*rly_tp_infer_fn)(void *ctx, rly_tp_infer_item *items, size_t n, uint32_t rows);

/*
 * rly_tp_infer_opts bounds a batch. A batch also closes, before max_wait_ns, as soon as every
 * client that asked in the previous batch (and every newcomer) has a request in it: each client
 * (a DEALER per actor-process thread) waits for its reply before it asks again, so no more can
 * come. Transports that cannot tell clients apart (NATS) wait for max_batch or max_wait_ns.
 */
typedef struct rly_tp_infer_opts {
    uint32_t max_batch; /* rows per batch, 1..RLY_IW_MAX_ROWS (0: 1024); a request is never split */
    int64_t max_wait_ns; /* wait for more after a batch's first request (< 0: 100 us) */
    bool wait_always;    /* never close early (benchmarks: the behaviour before early closing) */
} rly_tp_infer_opts;

/* RLY_TP_INFER_BUCKETS: batches are counted by rows <= 1, 2, 4, ..., 4096, more. */
#define RLY_TP_INFER_BUCKETS 14

/* rly_tp_infer_stats are the server's inference counters (racy snapshot). */
typedef struct rly_tp_infer_stats {
    uint64_t requests, rows, batches;
    uint64_t closed_early; /* batches closed because every client was in */
    uint64_t gather_ns;    /* summed: first request of a batch to its close */
    uint64_t serve_ns;     /* summed: the batch callback and laying out the replies */
    uint64_t rejected;     /* malformed or oversized requests refused */
    uint64_t failed;       /* requests fn failed (no model yet, shape mismatch, ...) */
    uint64_t hist[RLY_TP_INFER_BUCKETS];
    uint32_t max_rows; /* largest batch */
} rly_tp_infer_stats;

/* rly_tp_ops is the table an implementation provides (every entry required). */
typedef struct rly_tp_ops {
    const char *name;
    /* durable: the bus keeps acknowledged batches (a restarted server replays them); when false
       the server acknowledges a batch only once a checkpoint covers it */
    bool durable;
    void (*close)(void *impl);
    relay_err (*set_callbacks)(void *impl, rly_tp_ack_fn ack, rly_tp_conn_fn conn, void *ctx);
    relay_err (*traj_publish)(void *impl, const char *msg_id, uint64_t batch_seq, const void *data,
                              size_t len, int64_t timeout_ns);
    relay_err (*traj_consume)(void *impl, uint64_t start_seq);
    relay_err (*traj_fetch)(void *impl, rly_tp_delivery *out, size_t max, size_t *n,
                            int64_t timeout_ns);
    relay_err (*traj_ack)(void *impl, rly_tp_delivery *d, bool ok);
    void (*traj_release)(void *impl, rly_tp_delivery *d);
    relay_err (*model_publish)(void *impl, int64_t version, const void *data, size_t len);
    relay_err (*model_latest)(void *impl, relay_codec_buf *out, int64_t *version);
    relay_err (*model_watch)(void *impl, rly_tp_model_fn fn, void *ctx);
    relay_err (*control_serve)(void *impl, rly_tp_serve_fn fn, void *ctx);
    relay_err (*control_request)(void *impl, const void *req, size_t len, relay_codec_buf *reply,
                                 int64_t timeout_ns);
    relay_err (*raw_publish)(void *impl, const char *msg_id, const void *data, size_t len);
    relay_err (*status_publish)(void *impl, const void *data, size_t len);
    relay_err (*infer_serve)(void *impl, const rly_tp_infer_opts *o, rly_tp_infer_fn fn, void *ctx);
    relay_err (*infer_request)(void *impl, const void *req, size_t len, void *reply, size_t cap,
                               size_t *reply_len, int64_t timeout_ns);
    void (*infer_stats)(void *impl, rly_tp_infer_stats *out);
} rly_tp_ops;

/* rly_tp is an open transport (opaque). */
typedef struct rly_tp rly_tp;

/* rly_tp_config_init fills c with defaults (no url, run "default"). */
void rly_tp_config_init(rly_tp_config *c);

/* rly_tp_run_name_ok reports whether run is a valid run name (1..63 of [A-Za-z0-9_-]). */
bool rly_tp_run_name_ok(const char *run);

/*
 * rly_tp_open connects to c->url (the scheme picks the implementation: nats:// or tls:// for
 * NATS JetStream, tcp:// or ipc:// for ZeroMQ, where c->bind says the server side),
 * retrying refused connections until connect_timeout_ns; authentication failures end at once
 * with RELAY_EAUTH, an unreachable bus with RELAY_ECLOSED.
 */
relay_err rly_tp_open(const rly_tp_config *c, rly_tp **out);

/* rly_tp_close disconnects and frees tp (pending deliveries are released); NULL is a no-op. */
void rly_tp_close(rly_tp *tp);

/* rly_tp_name returns the implementation's name ("nats"). */
const char *rly_tp_name(const rly_tp *tp);

/* rly_tp_durable reports whether acknowledged batches survive a server restart on the bus. */
bool rly_tp_durable(const rly_tp *tp);

/* rly_tp_set_callbacks installs the acknowledgement and connection callbacks (before use). */
relay_err rly_tp_set_callbacks(rly_tp *tp, rly_tp_ack_fn ack, rly_tp_conn_fn conn, void *ctx);

/*
 * rly_tp_traj_publish sends one trajectory batch asynchronously with msg_id as its deduplication
 * id; its result arrives through the ack callback with batch_seq. It waits up to timeout_ns for
 * room when max_inflight publishes are unacknowledged (then RELAY_EFULL); RELAY_ECLOSED while
 * disconnected. The bytes are copied.
 */
relay_err rly_tp_traj_publish(rly_tp *tp, const char *msg_id, uint64_t batch_seq, const void *data,
                              size_t len, int64_t timeout_ns);

/*
 * rly_tp_traj_consume (server) creates the run's trajectory stream if needed and (re)creates the
 * durable consumer so that delivery starts at stream position start_seq (1 = the beginning).
 */
relay_err rly_tp_traj_consume(rly_tp *tp, uint64_t start_seq);

/*
 * rly_tp_traj_fetch (server) waits up to timeout_ns for up to max messages in stream order;
 * *n = 0 with RELAY_OK when none came. Each delivery must be passed to rly_tp_traj_ack.
 */
relay_err rly_tp_traj_fetch(rly_tp *tp, rly_tp_delivery *out, size_t max, size_t *n,
                            int64_t timeout_ns);

/*
 * rly_tp_traj_ack (server) acknowledges d (ok) or terminates it (not ok: never redelivered) and
 * releases it.
 */
relay_err rly_tp_traj_ack(rly_tp *tp, rly_tp_delivery *d, bool ok);

/*
 * rly_tp_traj_release (server) frees d without acknowledging it (the bus or the producer sends
 * it again later).
 */
void rly_tp_traj_release(rly_tp *tp, rly_tp_delivery *d);

/* rly_tp_model_publish (server) stores version's bytes as the run's latest model. */
relay_err rly_tp_model_publish(rly_tp *tp, int64_t version, const void *data, size_t len);

/*
 * rly_tp_status_publish (server) stores the run's status envelope (e.g. a Shutdown when training
 * is finished) and broadcasts it to model watchers; data NULL clears it (a new run starts).
 */
relay_err rly_tp_status_publish(rly_tp *tp, const void *data, size_t len);

/* rly_tp_model_latest reads the latest model into out (RELAY_ENOMODEL when none was published). */
relay_err rly_tp_model_latest(rly_tp *tp, relay_codec_buf *out, int64_t *version);

/*
 * rly_tp_model_watch calls fn with the latest model (if any), then with every new one, and with
 * the run's status envelope when one is published; fn tells them apart by the envelope's kind.
 */
relay_err rly_tp_model_watch(rly_tp *tp, rly_tp_model_fn fn, void *ctx);

/* rly_tp_control_serve (server) answers control requests with fn from now on. */
relay_err rly_tp_control_serve(rly_tp *tp, rly_tp_serve_fn fn, void *ctx);

/*
 * rly_tp_control_request sends req to the server and waits up to timeout_ns for its reply
 * (RELAY_ENOTFOUND when no server listens, RELAY_ETIMEDOUT when none answered in time).
 */
relay_err rly_tp_control_request(rly_tp *tp, const void *req, size_t len, relay_codec_buf *reply,
                                 int64_t timeout_ns);

/* rly_tp_raw_publish publishes bytes on the trajectory subject synchronously (tests, tools). */
relay_err rly_tp_raw_publish(rly_tp *tp, const char *msg_id, const void *data, size_t len);

/*
 * rly_tp_infer_serve (server) starts serving central inference with fn (called on the
 * transport's inference thread, one batch at a time); RELAY_EBUSY when already serving,
 * RELAY_EIO when the inference endpoint cannot be bound.
 */
relay_err rly_tp_infer_serve(rly_tp *tp, const rly_tp_infer_opts *o, rly_tp_infer_fn fn, void *ctx);

/*
 * rly_tp_infer_request (actor process) sends one encoded request (infer_wire.h) and waits up to
 * timeout_ns for its reply, copied into reply (cap bytes). Safe from many threads at once (each
 * thread has its own connection state, made on its first call). RELAY_ETIMEDOUT when no reply
 * came in time (the server is gone or overloaded), RELAY_ECLOSED when no inference server can be
 * reached, RELAY_ETOOBIG when the reply exceeds cap; a reply's own status is the caller's to read.
 */
relay_err rly_tp_infer_request(rly_tp *tp, const void *req, size_t len, void *reply, size_t cap,
                               size_t *reply_len, int64_t timeout_ns);

/* rly_tp_infer_stats_get copies the server's inference counters (zeros when not serving). */
void rly_tp_infer_stats_get(rly_tp *tp, rly_tp_infer_stats *out);

/* rly_tp_new_impl wraps an implementation (used by implementations' open functions). */
relay_err rly_tp_new_impl(const rly_tp_ops *ops, void *impl, rly_tp **out);

/* rly_tp_nats_open opens the NATS JetStream implementation (see rly_tp_open). */
relay_err rly_tp_nats_open(const rly_tp_config *c, rly_tp **out);

/* rly_tp_zmq_open opens the ZeroMQ implementation (see rly_tp_open and zmq.c). */
relay_err rly_tp_zmq_open(const rly_tp_config *c, rly_tp **out);

/* rly_tp_zmq_keygen makes a CURVE key pair (40-character Z85 strings plus NUL). */
relay_err rly_tp_zmq_keygen(char public_z85[41], char secret_z85[41]);

#endif
