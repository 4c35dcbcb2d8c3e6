/*
 * The NATS JetStream implementation of rly_tp (nats.c 3.4). Names for run R (docs/PROTOCOL.md):
 *   stream RELAY_R_TRAJ, subject relay.R.traj     trajectory batches (file storage, dedup window)
 *   durable pull consumer "server"                 the training server's position in the stream
 *   KV bucket RELAY_R_MODEL, key "latest"          the newest model envelope (late joiners)
 *   subject relay.R.model                          core-NATS broadcast of each new model
 *   subject relay.R.control                        request/reply control (handshake, stats)
 *   subject relay.R.infer                          request/reply central inference (a server's
 *                                                  inference thread reads a sync subscription)
 * Threads: nats.c runs its own I/O and callback threads; the ack handler, the model broadcast
 * handler and the control handler run there. A model thread of ours re-reads the KV entry after
 * a reconnect and once a second, so a broadcast missed while disconnected is never lost.
 */
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/thread.h"
#include "transport/infer_srv.h"
#include "transport/nats_wire.h"
#include "transport/transport.h"

#define MOD "nats"
#define NAME_MAX_ 160
#define FETCH_BATCH_MAX 1024 /* the consumer's MaxRequestBatch */

typedef struct tp_nats {
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    char run[RLY_TP_RUN_MAX];
    char stream[NAME_MAX_], subj_traj[NAME_MAX_], subj_model[NAME_MAX_], subj_ctl[NAME_MAX_];
    char subj_inf[NAME_MAX_];
    char bucket[NAME_MAX_];
    rly_tp_config cfg;
    int64_t ack_timeout_ns;

    rly_tp_ack_fn ack;
    rly_tp_conn_fn conn;
    void *cb_ctx;

    /* server side: our own pull requests (see traj_fetch) */
    natsSubscription *pull;   /* sync subscription on pull_pre + "*" */
    char pull_pre[NAME_MAX_]; /* "_INBOX.<nuid>.": a request's reply is this + its number */
    char subj_next[NAME_MAX_ + 64];
    uint64_t pull_id;
    kvStore *kv;
    natsSubscription *ctl_sub;
    rly_tp_serve_fn serve;
    void *serve_ctx;

    /* model watch */
    natsSubscription *model_sub;
    rly_tp_model_fn model_fn;
    void *model_ctx;
    rly_mutex model_mu; /* serialises model_fn calls and newest_seen */
    rly_mutex kv_mu;    /* guards kv (the bucket handle) */
    int64_t newest_seen;
    rly_thread model_th;
    bool model_th_running;
    atomic_bool stop;
    atomic_bool reconnected;
    atomic_bool closing;
    atomic_bool closed; /* set by the closed callback: no callback runs after it */

    /* central inference (server): sync subscription read by the inference thread */
    natsSubscription *inf_sub;
    rly_thread inf_th;
    bool inf_running;
    atomic_bool inf_stop;
    rly_isrv isrv;
    natsMsg **inf_msg; /* [max_batch] requests of the batch being gathered */
} tp_nats;

static relay_err map_status(natsStatus s)
{
    switch (s) {
    case NATS_OK:
        return RELAY_OK;
    case NATS_TIMEOUT:
        return RELAY_ETIMEDOUT;
    case NATS_NO_RESPONDERS:
    case NATS_NOT_FOUND:
        return RELAY_ENOTFOUND;
    case NATS_CONNECTION_AUTH_FAILED:
    case NATS_NOT_PERMITTED:
        return RELAY_EAUTH;
    case NATS_NO_MEMORY:
        return RELAY_ENOMEM;
    case NATS_MAX_PAYLOAD:
        return RELAY_ETOOBIG;
    case NATS_NO_SERVER:
    case NATS_CONNECTION_CLOSED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_STALE_CONNECTION:
    case NATS_NOT_YET_CONNECTED:
        return RELAY_ECLOSED;
    default:
        return RELAY_EIO;
    }
}

/* ---- connection ------------------------------------------------------------------------------ */

static void on_disconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    tp_nats *t = closure;
    if (atomic_load(&t->closing))
        return;
    rly_warn(MOD, "disconnected from NATS; reconnecting");
    if (t->conn)
        t->conn(t->cb_ctx, false);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    (void)nc;
    tp_nats *t = closure;
    rly_info(MOD, "reconnected to NATS");
    atomic_store(&t->reconnected, true);
    if (t->conn)
        t->conn(t->cb_ctx, true);
}

static void on_closed(natsConnection *nc, void *closure)
{
    (void)nc;
    tp_nats *t = closure;
    atomic_store(&t->closed, true);
}

static void infer_stop(tp_nats *t);

/*
 * nats_close tears down in an order that nats.c 3.4 needs:
 * - pending asynchronous publishes first: each ends within its MaxWait (acknowledged, or timed
 *   out by the library's timer) and its ack handler runs on the library's thread with t, so
 *   we wait for all of them before anything is freed;
 * - our subscriptions next, in three steps: natsConn_processMsg looks a message's subscription
 *   up, lets go of the connection's subscription lock and only then locks the subscription,
 *   holding no reference, so a subscription destroyed while its messages arrive can be freed
 *   under the reader thread. Unsubscribing makes the connection forget it (we still hold it),
 *   a flush round trip gets the reader past every message sent before the server saw the
 *   UNSUB, and only then is it destroyed;
 * - then the bucket, the JetStream context and the connection.
 */
static void nats_close(void *impl)
{
    tp_nats *t = impl;
    if (!t)
        return;
    atomic_store(&t->stop, true);
    if (t->model_th_running)
        rly_thread_join(t->model_th);
    infer_stop(t);
    atomic_store(&t->closing, true); /* traj_publish refuses from here on */
    if (t->js) {
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.MaxWait = t->ack_timeout_ns / RLY_NS_PER_MS + 1000;
        if (js_PublishAsyncComplete(t->js, &po) != NATS_OK)
            rly_warn(MOD, "closing with publishes still unacknowledged");
    }
    natsSubscription *subs[] = {t->model_sub, t->ctl_sub, t->pull, t->inf_sub};
    size_t nsubs = sizeof subs / sizeof subs[0];
    bool unsubscribed = false;
    for (size_t i = 0; i < nsubs; i++)
        if (subs[i] && natsSubscription_Unsubscribe(subs[i]) == NATS_OK)
            unsubscribed = true;
    if (unsubscribed && t->nc && natsConnection_Status(t->nc) == NATS_CONN_STATUS_CONNECTED)
        (void)natsConnection_FlushTimeout(t->nc, 1000);
    for (size_t i = 0; i < nsubs; i++)
        natsSubscription_Destroy(subs[i]);
    t->model_sub = t->ctl_sub = t->pull = t->inf_sub = NULL;
    if (t->kv)
        kvStore_Destroy(t->kv);
    if (t->js)
        jsCtx_Destroy(t->js);
    if (t->nc) {
        natsConnection_Close(t->nc);
        /* connection callbacks run on the library's thread: wait for the last one (closed) */
        for (int i = 0; i < 500 && !atomic_load(&t->closed); i++)
            rly_sleep_ns(RLY_NS_PER_MS);
        natsConnection_Destroy(t->nc);
    }
    natsOptions_Destroy(t->opts);
    rly_mutex_fini(&t->model_mu);
    rly_mutex_fini(&t->kv_mu);
    rly_isrv_fini(&t->isrv);
    free(t->inf_msg);
    free(t);
}

static relay_err set_callbacks(void *impl, rly_tp_ack_fn ack, rly_tp_conn_fn conn, void *ctx)
{
    tp_nats *t = impl;
    t->ack = ack;
    t->conn = conn;
    t->cb_ctx = ctx;
    return RELAY_OK;
}

/* ---- trajectories: publisher ----------------------------------------------------------------- */

static void on_pub_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    tp_nats *t = closure;
    const char *seq_s = NULL;
    uint64_t seq = 0;
    if (natsMsgHeader_Get(msg, "Relay-Batch-Seq", &seq_s) == NATS_OK && seq_s)
        seq = strtoull(seq_s, NULL, 10);
    relay_err r = RELAY_OK;
    if (pae) {
        r = pae->Err == NATS_TIMEOUT ? RELAY_ETIMEDOUT : RELAY_EIO;
        if (pae->ErrCode)
            rly_warn(MOD, "publish of batch %llu refused: %s (code %d)", (unsigned long long)seq,
                     pae->ErrText ? pae->ErrText : "?", (int)pae->ErrCode);
    } else if (!pa) {
        r = RELAY_EIO;
    }
    natsMsg_Destroy(msg);
    if (t->ack)
        t->ack(t->cb_ctx, seq, r);
}

static relay_err traj_publish(void *impl, const char *msg_id, uint64_t batch_seq, const void *data,
                              size_t len, int64_t timeout_ns)
{
    tp_nats *t = impl;
    if (atomic_load(&t->closing) || natsConnection_Status(t->nc) != NATS_CONN_STATUS_CONNECTED)
        return RELAY_ECLOSED;
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, t->subj_traj, NULL, data, (int)len);
    char seq_s[24];
    snprintf(seq_s, sizeof seq_s, "%llu", (unsigned long long)batch_seq);
    if (s == NATS_OK && msg_id[0])
        s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Relay-Batch-Seq", seq_s);
    if (s != NATS_OK) {
        natsMsg_Destroy(m);
        return map_status(s);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = t->ack_timeout_ns / 1000000;
    int64_t deadline = rly_now_ns() + (timeout_ns > 0 ? timeout_ns : 0);
    for (;;) {
        s = js_PublishMsgAsync(t->js, &m, &po);
        if (s == NATS_OK)
            return RELAY_OK; /* the library owns m now */
        if (s != NATS_TIMEOUT || rly_now_ns() >= deadline)
            break;
        if (natsConnection_Status(t->nc) != NATS_CONN_STATUS_CONNECTED) {
            s = NATS_CONNECTION_DISCONNECTED;
            break;
        }
    }
    natsMsg_Destroy(m);
    return s == NATS_TIMEOUT ? RELAY_EFULL : map_status(s);
}

static relay_err raw_publish(void *impl, const char *msg_id, const void *data, size_t len)
{
    tp_nats *t = impl;
    natsMsg *m = NULL;
    natsStatus s = natsMsg_Create(&m, t->subj_traj, NULL, data, (int)len);
    if (s == NATS_OK && msg_id && msg_id[0])
        s = natsMsgHeader_Set(m, "Nats-Msg-Id", msg_id);
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    if (s == NATS_OK)
        s = js_PublishMsg(&pa, t->js, m, NULL, &jerr);
    jsPubAck_Destroy(pa);
    natsMsg_Destroy(m);
    return map_status(s);
}

/* ---- trajectories: consumer (server) --------------------------------------------------------- */

static relay_err ensure_stream(tp_nats *t)
{
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[1] = {t->subj_traj};
    sc.Name = t->stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    sc.MaxBytes = (int64_t)(t->cfg.stream_max_bytes ? t->cfg.stream_max_bytes : (1ull << 30));
    sc.Duplicates = t->cfg.dedup_window_ns ? t->cfg.dedup_window_ns : 120 * RLY_NS_PER_S;
    sc.Replicas = t->cfg.replicas > 0 ? t->cfg.replicas : 1;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_AddStream(&si, t->js, &sc, NULL, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr) {
        s = js_UpdateStream(&si, t->js, &sc, NULL, &jerr);
        if (s != NATS_OK) {
            rly_warn(MOD, "stream %s exists with another configuration (code %d); using it",
                     t->stream, (int)jerr);
            s = NATS_OK;
        }
    }
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK) {
        rly_error(MOD, "creating stream %s failed: %s (JetStream code %d)", t->stream,
                  natsStatus_GetText(s), (int)jerr);
        return map_status(s);
    }
    return RELAY_OK;
}

static relay_err traj_consume(void *impl, uint64_t start_seq)
{
    tp_nats *t = impl;
    relay_err e = ensure_stream(t);
    if (e)
        return e;
    if (t->pull) {
        /* deliveries of an earlier request may still arrive: see nats_close */
        natsSubscription_Unsubscribe(t->pull);
        if (natsConnection_Status(t->nc) == NATS_CONN_STATUS_CONNECTED)
            (void)natsConnection_FlushTimeout(t->nc, 1000);
        natsSubscription_Destroy(t->pull);
        t->pull = NULL;
    }
    jsErrCode jerr = 0;
    /* the durable consumer restarts at start_seq: drop any previous position */
    (void)js_DeleteConsumer(t->js, t->stream, "server", NULL, &jerr);
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "server";
    cc.AckPolicy = js_AckExplicit;
    cc.DeliverPolicy = start_seq > 1 ? js_DeliverByStartSequence : js_DeliverAll;
    cc.OptStartSeq = start_seq > 1 ? start_seq : 0;
    cc.AckWait = 30 * RLY_NS_PER_S;
    cc.MaxAckPending = 65536;
    cc.MaxRequestBatch = FETCH_BATCH_MAX;
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_AddConsumer(&ci, t->js, t->stream, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK) {
        rly_error(MOD, "creating consumer on %s failed: %s (JetStream code %d)", t->stream,
                  natsStatus_GetText(s), (int)jerr);
        return map_status(s);
    }
    natsInbox *inbox = NULL;
    s = natsInbox_Create(&inbox);
    if (s == NATS_OK) {
        char subj[NAME_MAX_ + 2];
        snprintf(t->pull_pre, sizeof t->pull_pre, "%s.", (const char *)inbox);
        snprintf(subj, sizeof subj, "%s*", t->pull_pre);
        natsInbox_Destroy(inbox);
        s = natsConnection_SubscribeSync(&t->pull, t->nc, subj);
    }
    /* bounded by the requests' batches; a slow-consumer drop would only delay redelivery */
    if (s == NATS_OK)
        s = natsSubscription_SetPendingLimits(t->pull, -1, -1);
    if (s != NATS_OK) {
        rly_error(MOD, "subscribing for %s deliveries failed: %s", t->stream,
                  natsStatus_GetText(s));
        natsSubscription_Destroy(t->pull);
        t->pull = NULL;
        return map_status(s);
    }
    return RELAY_OK;
}

/* fetch_take files one message of the pull subscription. A delivery (acked on "$JS.ACK...")
   becomes out[*k], whichever request brought it. A status ends the request it answers (its
   subject is that request's reply): true when it ends the current one, with *why RELAY_OK
   (404 nothing left, 408 expired) or the error it ended with. */
static bool fetch_take(tp_nats *t, natsMsg *m, const char *reply, rly_tp_delivery *out, size_t *k,
                       relay_err *why)
{
    const char *st = NULL;
    if (natsMsgHeader_Get(m, "Status", &st) == NATS_OK && st) {
        int code = atoi(st);
        const char *subj = natsMsg_GetSubject(m);
        bool end = reply && subj && !strcmp(subj, reply) && code >= 400;
        if (end) {
            *why = RELAY_OK;
            if (code == 503) {
                *why = RELAY_ENOTFOUND; /* no consumer: the bus lost it */
            } else if (code != 404 && code != 408) {
                const char *desc = NULL;
                natsMsgHeader_Get(m, "Description", &desc);
                rly_debug(MOD, "fetch from %s: status %d %s", t->stream, code, desc ? desc : "");
                *why = RELAY_EIO;
            }
        }
        natsMsg_Destroy(m);
        return end;
    }
    const char *ack = natsMsg_GetReply(m);
    if (!ack || strncmp(ack, "$JS.ACK.", 8)) {
        natsMsg_Destroy(m);
        return false;
    }
    rly_tp_delivery *d = &out[(*k)++];
    memset(d, 0, sizeof *d);
    d->handle = m;
    d->data = (const uint8_t *)natsMsg_GetData(m);
    int dl = natsMsg_GetDataLength(m);
    d->len = dl > 0 ? (size_t)dl : 0;
    if (rly_nw_ack_meta(ack, strlen(ack), &d->delivered, &d->seq) != RELAY_OK)
        rly_debug(MOD, "delivery with an unreadable ack subject (no sequence): %.80s", ack);
    const char *id = NULL;
    if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id && strlen(id) < sizeof d->msg_id)
        strcpy(d->msg_id, id);
    return false;
}

/* traj_fetch sends the consumer a pull request of its own (nats.c 3.4's natsSubscription_Fetch
   can write past the end of its message array when deliveries of an earlier request are still
   queued: it compares its count with the request's reduced batch). Deliveries that arrive after
   a request ended on our side are returned by the next call before any new request. */
static relay_err traj_fetch(void *impl, rly_tp_delivery *out, size_t max, size_t *n,
                            int64_t timeout_ns)
{
    tp_nats *t = impl;
    *n = 0;
    if (!t->pull)
        return RELAY_ESTATE;
    if (max > FETCH_BATCH_MAX)
        max = FETCH_BATCH_MAX;
    size_t k = 0;
    int queued = 0, bytes = 0;
    natsSubscription_GetPending(t->pull, &queued, &bytes);
    for (; queued > 0 && k < max; queued--) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, t->pull, 1) != NATS_OK || !m)
            break;
        relay_err why;
        (void)fetch_take(t, m, NULL, out, &k, &why);
    }
    if (k > 0 || max == 0) {
        *n = k;
        return RELAY_OK;
    }
    /* the server ends the request (408) shortly before we stop waiting for it */
    int64_t wait = timeout_ns > RLY_NS_PER_MS ? timeout_ns : RLY_NS_PER_MS;
    int64_t expires = wait >= 20 * RLY_NS_PER_MS ? wait - 10 * RLY_NS_PER_MS : wait / 2;
    char reply[sizeof t->pull_pre + 24], req[96];
    snprintf(reply, sizeof reply, "%s%llu", t->pull_pre, (unsigned long long)++t->pull_id);
    int rl = snprintf(req, sizeof req, "{\"batch\":%zu,\"expires\":%lld}", max, (long long)expires);
    natsStatus s = natsConnection_PublishRequest(t->nc, t->subj_next, reply, req, rl);
    if (s != NATS_OK) {
        rly_debug(MOD, "fetch request: %s", natsStatus_GetText(s));
        return map_status(s);
    }
    int64_t deadline = rly_now_ns() + wait;
    relay_err e = RELAY_OK;
    while (k < max) {
        int64_t left = deadline - rly_now_ns();
        if (left <= 0)
            break;
        natsMsg *m = NULL;
        int64_t ms = left / RLY_NS_PER_MS;
        s = natsSubscription_NextMsg(&m, t->pull, ms > 0 ? ms : 1);
        if (s == NATS_TIMEOUT)
            break;
        if (s != NATS_OK) {
            e = map_status(s);
            break;
        }
        if (fetch_take(t, m, reply, out, &k, &e))
            break;
    }
    *n = k;
    return k > 0 ? RELAY_OK : e;
}

static relay_err traj_ack(void *impl, rly_tp_delivery *d, bool ok)
{
    tp_nats *t = impl;
    natsMsg *m = d->handle;
    if (!m)
        return RELAY_EINVAL;
    const char *ack = natsMsg_GetReply(m);
    natsStatus s = natsConnection_PublishString(t->nc, ack, ok ? "+ACK" : "+TERM");
    natsMsg_Destroy(m);
    d->handle = NULL;
    d->data = NULL;
    return map_status(s);
}

static void traj_release(void *impl, rly_tp_delivery *d)
{
    (void)impl;
    natsMsg_Destroy(d->handle); /* redelivered after the consumer's ack wait */
    d->handle = NULL;
    d->data = NULL;
}

/* ---- models ---------------------------------------------------------------------------------- */

static relay_err open_kv(tp_nats *t, bool create)
{
    if (t->kv)
        return RELAY_OK;
    natsStatus s = js_KeyValue(&t->kv, t->js, t->bucket);
    if (s == NATS_OK)
        return RELAY_OK;
    if (!create)
        return RELAY_ENOMODEL;
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = t->bucket;
    kc.History = 1;
    kc.StorageType = js_FileStorage;
    kc.Replicas = t->cfg.replicas > 0 ? t->cfg.replicas : 1;
    s = js_CreateKeyValue(&t->kv, t->js, &kc);
    if (s != NATS_OK) {
        rly_error(MOD, "creating bucket %s failed: %s", t->bucket, natsStatus_GetText(s));
        return map_status(s);
    }
    return RELAY_OK;
}

static relay_err model_publish_locked(void *impl, int64_t version, const void *data, size_t len)
{
    tp_nats *t = impl;
    relay_err e = open_kv(t, true);
    if (e)
        return e;
    /* broadcast first (latency), then store for late joiners */
    natsMsg *m = NULL;
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)version);
    natsStatus s = natsMsg_Create(&m, t->subj_model, NULL, data, (int)len);
    if (s == NATS_OK)
        s = natsMsgHeader_Set(m, "Relay-Version", v);
    if (s == NATS_OK)
        s = natsConnection_PublishMsg(t->nc, m);
    natsMsg_Destroy(m);
    if (s == NATS_OK)
        natsConnection_Flush(t->nc);
    uint64_t rev = 0;
    natsStatus ks = kvStore_Put(&rev, t->kv, "latest", data, (int)len);
    if (ks != NATS_OK) {
        rly_warn(MOD, "storing model version %lld failed: %s", (long long)version,
                 natsStatus_GetText(ks));
        /* the bucket may have moved (a cluster node died): bind it again on the next try */
        kvStore_Destroy(t->kv);
        t->kv = NULL;
        return map_status(ks);
    }
    return map_status(s);
}

static relay_err status_publish_locked(void *impl, const void *data, size_t len)
{
    tp_nats *t = impl;
    relay_err e = open_kv(t, true);
    if (e)
        return e;
    natsStatus s;
    if (!data) {
        s = kvStore_Delete(t->kv, "status");
        return s == NATS_OK || s == NATS_NOT_FOUND ? RELAY_OK : map_status(s);
    }
    uint64_t rev = 0;
    s = kvStore_Put(&rev, t->kv, "status", data, (int)len);
    if (s == NATS_OK)
        s = natsConnection_Publish(t->nc, t->subj_model, data, (int)len);
    if (s == NATS_OK)
        natsConnection_FlushTimeout(t->nc, 1000);
    return map_status(s);
}

static relay_err kv_read_locked(tp_nats *t, const char *key, relay_codec_buf *out, int64_t *version)
{
    relay_err e = open_kv(t, false);
    if (e)
        return e;
    kvEntry *en = NULL;
    natsStatus s = kvStore_Get(&en, t->kv, key);
    if (s != NATS_OK) {
        return s == NATS_NOT_FOUND ? RELAY_ENOMODEL : map_status(s);
    }
    int n = kvEntry_ValueLen(en);
    if (n < 0 || (e = relay_codec_buf_reserve(out, (size_t)n + 1))) {
        kvEntry_Destroy(en);
        return e ? e : RELAY_EFORMAT;
    }
    memcpy(out->data, kvEntry_Value(en), (size_t)n);
    out->len = (size_t)n;
    if (version)
        *version = (int64_t)kvEntry_Revision(en);
    kvEntry_Destroy(en);
    return RELAY_OK;
}

/* The bucket handle is shared by the learner thread (publish), the main thread (retries,
   status, handshake) and the model thread (re-reads): kv_mu serialises its use. */
static relay_err kv_read(tp_nats *t, const char *key, relay_codec_buf *out, int64_t *version)
{
    rly_mutex_lock(&t->kv_mu);
    relay_err e = kv_read_locked(t, key, out, version);
    rly_mutex_unlock(&t->kv_mu);
    return e;
}

static relay_err model_publish(void *impl, int64_t version, const void *data, size_t len)
{
    tp_nats *t = impl;
    rly_mutex_lock(&t->kv_mu);
    relay_err e = model_publish_locked(impl, version, data, len);
    rly_mutex_unlock(&t->kv_mu);
    return e;
}

static relay_err status_publish(void *impl, const void *data, size_t len)
{
    tp_nats *t = impl;
    rly_mutex_lock(&t->kv_mu);
    relay_err e = status_publish_locked(impl, data, len);
    rly_mutex_unlock(&t->kv_mu);
    return e;
}

static relay_err model_latest(void *impl, relay_codec_buf *out, int64_t *version)
{
    return kv_read(impl, "latest", out, version);
}

static void deliver_model(tp_nats *t, int64_t version, const void *data, size_t len)
{
    rly_mutex_lock(&t->model_mu);
    t->model_fn(t->model_ctx, version, data, len);
    rly_mutex_unlock(&t->model_mu);
}

static void on_model_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    tp_nats *t = closure;
    const char *v = NULL;
    int64_t version = -1;
    if (natsMsgHeader_Get(msg, "Relay-Version", &v) == NATS_OK && v)
        version = strtoll(v, NULL, 10);
    int n = natsMsg_GetDataLength(msg);
    deliver_model(t, version, natsMsg_GetData(msg), n > 0 ? (size_t)n : 0);
    natsMsg_Destroy(msg);
}

/* model_thread re-reads the stored model after reconnects and every second. */
static void *model_thread(void *arg)
{
    tp_nats *t = arg;
    relay_codec_buf buf = {0};
    uint64_t last_rev = 0, last_status = 0;
    int64_t next = 0;
    while (!atomic_load(&t->stop)) {
        int64_t now = rly_now_ns();
        if (atomic_exchange(&t->reconnected, false) || now >= next) {
            next = now + RLY_NS_PER_S;
            int64_t rev = 0;
            if (kv_read(t, "latest", &buf, &rev) == RELAY_OK && (uint64_t)rev != last_rev) {
                last_rev = (uint64_t)rev;
                deliver_model(t, -1, buf.data, buf.len);
            }
            if (kv_read(t, "status", &buf, &rev) == RELAY_OK && (uint64_t)rev != last_status) {
                last_status = (uint64_t)rev;
                deliver_model(t, -1, buf.data, buf.len);
            }
        }
        rly_sleep_ns(20 * 1000000);
    }
    relay_codec_buf_fini(&buf);
    return NULL;
}

static relay_err model_watch(void *impl, rly_tp_model_fn fn, void *ctx)
{
    tp_nats *t = impl;
    if (t->model_sub)
        return RELAY_ESTATE;
    t->model_fn = fn;
    t->model_ctx = ctx;
    natsStatus s = natsConnection_Subscribe(&t->model_sub, t->nc, t->subj_model, on_model_msg, t);
    if (s != NATS_OK) {
        return map_status(s);
    }
    natsSubscription_SetPendingLimits(t->model_sub, 64, 256 * 1024 * 1024);
    relay_err e = rly_thread_start(&t->model_th, model_thread, t, "rly-nats-model");
    if (e)
        return e;
    t->model_th_running = true;
    return RELAY_OK;
}

/* ---- control --------------------------------------------------------------------------------- */

static void on_ctl_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    tp_nats *t = closure;
    const char *reply_to = natsMsg_GetReply(msg);
    relay_codec_buf reply = {0};
    int n = natsMsg_GetDataLength(msg);
    relay_err e = t->serve(t->serve_ctx, natsMsg_GetData(msg), n > 0 ? (size_t)n : 0, &reply);
    if (reply_to && reply_to[0]) {
        if (e)
            reply.len = 0;
        (void)natsConnection_Publish(nc, reply_to, reply.data, (int)reply.len);
    }
    relay_codec_buf_fini(&reply);
    natsMsg_Destroy(msg);
}

static relay_err control_serve(void *impl, rly_tp_serve_fn fn, void *ctx)
{
    tp_nats *t = impl;
    if (t->ctl_sub)
        return RELAY_ESTATE;
    t->serve = fn;
    t->serve_ctx = ctx;
    natsStatus s = natsConnection_Subscribe(&t->ctl_sub, t->nc, t->subj_ctl, on_ctl_msg, t);
    if (s != NATS_OK) {
        return map_status(s);
    }
    return RELAY_OK;
}

static relay_err control_request(void *impl, const void *req, size_t len, relay_codec_buf *reply,
                                 int64_t timeout_ns)
{
    tp_nats *t = impl;
    natsMsg *r = NULL;
    int64_t ms = timeout_ns / 1000000;
    natsStatus s = natsConnection_Request(&r, t->nc, t->subj_ctl, req, (int)len, ms > 0 ? ms : 1);
    if (s != NATS_OK) {
        return map_status(s);
    }
    int n = natsMsg_GetDataLength(r);
    relay_err e = relay_codec_buf_reserve(reply, (size_t)(n > 0 ? n : 0) + 1);
    if (!e) {
        if (n > 0)
            memcpy(reply->data, natsMsg_GetData(r), (size_t)n);
        reply->len = n > 0 ? (size_t)n : 0;
    }
    natsMsg_Destroy(r);
    return e;
}

/* ---- central inference ----------------------------------------------------------------------- */

static void infer_reply(tp_nats *t, natsMsg *m, const void *data, size_t len)
{
    const char *to = natsMsg_GetReply(m);
    if (to && to[0])
        (void)natsConnection_Publish(t->nc, to, data, (int)len);
}

/* infer_take adds one request message to the batch (or answers it with an error). */
static void infer_take(tp_nats *t, natsMsg *m)
{
    rly_isrv *s = &t->isrv;
    size_t k = s->n, elen = 0;
    int n = natsMsg_GetDataLength(m);
    relay_err e = rly_isrv_add(s, natsMsg_GetData(m), n > 0 ? (size_t)n : 0, &elen);
    if (e) {
        infer_reply(t, m, s->err, elen);
        natsMsg_Destroy(m);
        return;
    }
    t->inf_msg[k] = m;
}

static void *infer_loop(void *arg)
{
    tp_nats *t = arg;
    rly_isrv *s = &t->isrv;
    int64_t wait = rly_isrv_wait_ns(s);
    while (!atomic_load_explicit(&t->inf_stop, memory_order_relaxed)) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, t->inf_sub, 100) != NATS_OK || !m)
            continue;
        infer_take(t, m);
        int64_t deadline = rly_now_ns() + wait;
        while (!rly_isrv_full(s)) {
            int pending = 0, bytes = 0;
            natsSubscription_GetPending(t->inf_sub, &pending, &bytes);
            if (pending > 0) {
                m = NULL;
                if (natsSubscription_NextMsg(&m, t->inf_sub, 1) == NATS_OK && m)
                    infer_take(t, m);
                continue;
            }
            int64_t left = deadline - rly_now_ns();
            if (left <= 0 || s->n == 0)
                break;
            if (left >= RLY_NS_PER_MS) {
                m = NULL;
                if (natsSubscription_NextMsg(&m, t->inf_sub, left / RLY_NS_PER_MS) == NATS_OK && m)
                    infer_take(t, m);
            } else {
                rly_sleep_ns(left < 20000 ? left : 20000);
            }
        }
        if (s->n) {
            rly_isrv_run(s);
            for (size_t i = 0; i < s->n; i++) {
                size_t len;
                const uint8_t *r = rly_isrv_reply(s, i, &len);
                infer_reply(t, t->inf_msg[i], r, len);
                natsMsg_Destroy(t->inf_msg[i]);
            }
            rly_isrv_clear(s);
        }
    }
    return NULL;
}

static relay_err infer_serve(void *impl, const rly_tp_infer_opts *o, rly_tp_infer_fn fn, void *ctx)
{
    tp_nats *t = impl;
    if (t->inf_running)
        return RELAY_EBUSY;
    relay_err e = rly_isrv_init(&t->isrv, o, fn, ctx);
    if (e)
        return e;
    if (!(t->inf_msg = calloc(t->isrv.cap, sizeof *t->inf_msg)))
        return RELAY_ENOMEM;
    natsStatus st = natsConnection_SubscribeSync(&t->inf_sub, t->nc, t->subj_inf);
    if (st == NATS_OK)
        st = natsSubscription_SetPendingLimits(t->inf_sub, 65536, 256 * 1024 * 1024);
    if (st != NATS_OK) {
        rly_error(MOD, "cannot serve inference on %s: %s", t->subj_inf, natsStatus_GetText(st));
        return map_status(st);
    }
    natsConnection_Flush(t->nc);
    atomic_store(&t->inf_stop, false);
    if ((e = rly_thread_start(&t->inf_th, infer_loop, t, "rly-nats-infer")))
        return e;
    t->inf_running = true;
    rly_info(MOD, "serving central inference on %s (batches up to %u rows, wait %lld us)",
             t->subj_inf, t->isrv.o.max_batch, (long long)(t->isrv.o.max_wait_ns / 1000));
    return RELAY_OK;
}

static void infer_stop(tp_nats *t)
{
    if (t->inf_running) {
        atomic_store(&t->inf_stop, true);
        rly_thread_join(t->inf_th);
        t->inf_running = false;
        for (size_t i = 0; i < t->isrv.n; i++)
            natsMsg_Destroy(t->inf_msg[i]);
        rly_isrv_clear(&t->isrv);
    }
    /* inf_sub goes with the others in nats_close (unsubscribe, flush, destroy) */
}

static relay_err infer_request(void *impl, const void *req, size_t len, void *reply, size_t cap,
                               size_t *reply_len, int64_t timeout_ns)
{
    tp_nats *t = impl;
    natsMsg *r = NULL;
    int64_t ms = (timeout_ns > 0 ? timeout_ns : 5 * RLY_NS_PER_S) / RLY_NS_PER_MS;
    natsStatus s = natsConnection_Request(&r, t->nc, t->subj_inf, req, (int)len, ms > 0 ? ms : 1);
    if (s != NATS_OK)
        return s == NATS_NO_RESPONDERS ? RELAY_ECLOSED : map_status(s);
    int n = natsMsg_GetDataLength(r);
    relay_err e = RELAY_OK;
    if (n < 0 || (size_t)n > cap)
        e = RELAY_ETOOBIG;
    else {
        memcpy(reply, natsMsg_GetData(r), (size_t)n);
        *reply_len = (size_t)n;
    }
    natsMsg_Destroy(r);
    return e;
}

static void infer_stats(void *impl, rly_tp_infer_stats *out)
{
    tp_nats *t = impl;
    if (t->inf_running)
        rly_isrv_stats(&t->isrv, out);
    else
        memset(out, 0, sizeof *out);
}

/* ---- open ------------------------------------------------------------------------------------ */

static const rly_tp_ops nats_ops = {
    .name = "nats",
    .durable = true,
    .close = nats_close,
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
    .infer_serve = infer_serve,
    .infer_request = infer_request,
    .infer_stats = infer_stats,
    .raw_publish = raw_publish,
    .status_publish = status_publish,
};

static relay_err configure(tp_nats *t, const rly_tp_config *c)
{
    natsStatus s = natsOptions_Create(&t->opts);
    if (s == NATS_OK)
        s = natsOptions_SetURL(t->opts, c->url);
    if (s == NATS_OK && c->client_name)
        s = natsOptions_SetName(t->opts, c->client_name);
    if (s == NATS_OK && (c->user || c->password))
        s = natsOptions_SetUserInfo(t->opts, c->user ? c->user : "",
                                    c->password ? c->password : "");
    if (s == NATS_OK && c->token)
        s = natsOptions_SetToken(t->opts, c->token);
    if (s == NATS_OK && c->nkey_seed_file)
        s = natsOptions_SetUserCredentialsFromFiles(t->opts, c->nkey_seed_file, NULL);
    if (s == NATS_OK && (c->tls || !strncmp(c->url, "tls://", 6)))
        s = natsOptions_SetSecure(t->opts, true);
    if (s == NATS_OK && c->tls_ca_file)
        s = natsOptions_LoadCATrustedCertificates(t->opts, c->tls_ca_file);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(t->opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectWait(t->opts, 100);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectBufSize(t->opts, 0); /* we spool ourselves */
    if (s == NATS_OK)
        s = natsOptions_SetTimeout(t->opts, 2000);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(t->opts, on_disconnected, t);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(t->opts, on_reconnected, t);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(t->opts, on_closed, t);
    if (s != NATS_OK) {
        rly_error(MOD, "connection options: %s (%s)", natsStatus_GetText(s),
                  nats_GetLastError(NULL));
        return s == NATS_NO_MEMORY ? RELAY_ENOMEM : RELAY_ECONFIG;
    }
    return RELAY_OK;
}

relay_err rly_tp_nats_open(const rly_tp_config *c, rly_tp **out)
{
    tp_nats *t = calloc(1, sizeof *t);
    if (!t)
        return RELAY_ENOMEM;
    rly_mutex_init(&t->model_mu);
    rly_mutex_init(&t->kv_mu);
    t->cfg = *c;
    snprintf(t->run, sizeof t->run, "%s", c->run);
    snprintf(t->stream, sizeof t->stream, "RELAY_%s_TRAJ", c->run);
    snprintf(t->bucket, sizeof t->bucket, "RELAY_%s_MODEL", c->run);
    snprintf(t->subj_traj, sizeof t->subj_traj, "relay.%s.traj", c->run);
    snprintf(t->subj_model, sizeof t->subj_model, "relay.%s.model", c->run);
    snprintf(t->subj_ctl, sizeof t->subj_ctl, "relay.%s.control", c->run);
    snprintf(t->subj_inf, sizeof t->subj_inf, "relay.%s.infer", c->run);
    snprintf(t->subj_next, sizeof t->subj_next, "$JS.API.CONSUMER.MSG.NEXT.%s.server", t->stream);
    t->ack_timeout_ns = c->ack_timeout_ns > 0 ? c->ack_timeout_ns : 5 * RLY_NS_PER_S;
    relay_err e = configure(t, c);
    if (e) {
        nats_close(t);
        return e;
    }
    int64_t deadline =
        rly_now_ns() + (c->connect_timeout_ns > 0 ? c->connect_timeout_ns : 5 * RLY_NS_PER_S);
    natsStatus s;
    for (;;) {
        s = natsConnection_Connect(&t->nc, t->opts);
        if (s == NATS_OK)
            break;
        const char *why = nats_GetLastError(NULL);
        bool auth = s == NATS_CONNECTION_AUTH_FAILED || (why && strstr(why, "uthorization"));
        /* a server certificate that the configured CA does not verify: the peer's identity is
           refused, like wrong credentials (exit 4), and no retry can fix it */
        bool tls = s == NATS_SSL_ERROR;
        if (auth || tls || s != NATS_NO_SERVER || rly_now_ns() >= deadline) {
            rly_error(MOD, "cannot connect to %s: %s%s%s", c->url,
                      auth  ? "authorization failed (check the NATS credentials)"
                      : tls ? "TLS handshake failed (check transport.ca_file / RELAY_NATS_CA)"
                            : natsStatus_GetText(s),
                      why && !auth ? ": " : "", why && !auth ? why : "");
            nats_close(t);
            return auth || tls ? RELAY_EAUTH : RELAY_ECLOSED;
        }
        rly_sleep_ns(100 * 1000000);
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = c->max_inflight ? c->max_inflight : 256;
    jo.PublishAsync.AckHandler = on_pub_ack;
    jo.PublishAsync.AckHandlerClosure = t;
    jo.PublishAsync.StallWait = 50;
    jo.Wait = 5000;
    s = natsConnection_JetStream(&t->js, t->nc, &jo);
    if (s != NATS_OK) {
        rly_error(MOD, "JetStream context: %s", natsStatus_GetText(s));
        nats_close(t);
        return map_status(s);
    }
    if ((e = rly_tp_new_impl(&nats_ops, t, out))) {
        nats_close(t);
        return e;
    }
    return RELAY_OK;
}
