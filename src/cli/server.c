/*
 * `relay server`: the training server of distributed training. It is the in-process learner
 * behind a transport instead of an agent: a consumer feeds rly_learner_push_tagged from the
 * run's trajectory stream, and the learner's publish callback puts each new version on the bus.
 *
 * Exactly-once learning over at-least-once delivery (docs/DISTRIBUTED.md):
 *   - the bus drops resends inside its deduplication window (Nats-Msg-Id = batch id);
 *   - rly_seen refuses a batch taken in before at another stream position;
 *   - the learner consumes trajectories in stream order, so its cursor (first row not learned)
 *     is a stream position; a checkpoint stores the learner state, the cursor, the seen table and
 *     the ledger length together, and a restarted server replays the stream from the cursor.
 * The ledger (ledger.csv) records the fate of every trajectory id up to the cursor: learned,
 * stale, discarded, rejected, duplicate, unused.
 *
 * Threads: the main thread consumes (fetch, decode, check, push, ack) and owns the seen table
 * and the decoding codec; the learner thread runs updates, the publish callback (its own codec),
 * the fate callback and checkpoints; nats.c threads answer control requests. `mu` guards what the
 * learner thread and the main thread share (message map, seen table while saving, counters).
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_support.h"
#include "cli/args.h"
#include "cli/dist.h"
#include "cli/files.h"
#include "cli/server_obs.h"
#include "cli/hparams.h"

#include <cjson/cJSON.h>
#include "core/clock.h"
#include "core/log.h"
#include "core/thread.h"
#include "learn/learner.h"
#include "obs/obs.h"
#include "relay/env.h"
#include "relay/relay.h"
#include "cli/infer.h"
#include "transport/batch.h"
#include "transport/seen.h"

#define TAG_BITS 20
#define TAG_IDX_MASK ((UINT64_C(1) << TAG_BITS) - 1)
#define FETCH_MAX 64

static const char *const fate_names[] = {"learned", "stale",    "discarded",
                                         "unused",  "rejected", "duplicate"};

typedef struct msg_ent {
    uint64_t seq;
    relay_id producer;
    uint64_t batch;
    bool known; /* false: the batch header could not be read */
} msg_ent;

typedef struct fate_ent {
    uint64_t tag;
    uint8_t fate;
    uint32_t rows;
} fate_ent;

typedef struct held_ent {
    rly_tp_delivery d;
    bool ok;
} held_ent;

typedef struct server {
    /* options */
    rly_dist_config dc;
    char out[RELAY_PATH_MAX];
    char algo[16];
    rly_hparams hp; /* hyperparameter flags (cli/hparams.h), over the zoo's values */
    float target;
    uint64_t steps;
    uint32_t ckpt_every, max_lag, width, max_seconds;
    bool ckpt_set; /* --checkpoint-every given */
    int replicas;  /* 0: the config's */
    bool vtrace;   /* --correction vtrace */
    bool quiet;
    bool no_inference;       /* --no-inference: do not serve central inference */
    rly_infer_server *infer; /* central inference (cli/infer.h), NULL when not served */
    char metrics_addr[256];
    rly_server_obs *obs; /* --metrics-addr: NULL when off */

    const relay_env_def *env;
    relay_codec *codec;     /* main thread: decoding */
    relay_codec *pub_codec; /* learner thread: encoding models */
    relay_codec_buf pub_buf;
    rly_tp *tp;
    rly_learner *learner;

    rly_mutex mu;
    rly_seen seen;
    msg_ent *msgs; /* ordered by seq; entries below the cursor are pruned at checkpoints */
    size_t n_msgs, cap_msgs;
    fate_ent *pend; /* learner thread: fates not yet in the ledger */
    size_t n_pend, cap_pend;
    uint64_t counts[6];      /* trajectories per fate, ledger-covered plus pending */
    uint64_t rejected_msgs;  /* whole messages that could not be read */
    uint64_t lag_sum, lag_n; /* behaviour-policy lag of trajectories taken in, this update */
    int64_t lag_max;

    FILE *ledger;
    uint64_t ledger_bytes;
    FILE *metrics;
    double *curve_x, *curve_y;
    size_t n_curve, cap_curve;
    rly_progress progress;

    /* non-durable transports (zmq): deliveries held until a checkpoint covers them (main
       thread), and the first stream position not covered by the last checkpoint */
    bool durable;
    bool learner_stopped; /* training finished: fates are recorded by the main thread */
    struct held_ent *held;
    size_t n_held, cap_held;
    atomic_ullong committed;
    /* non-durable restart: the batch partly learned before it (it comes again elsewhere) */
    bool resume_by_id;
    relay_id resume_producer;
    uint64_t resume_batch;

    /* consumer position */
    uint64_t last_seq;
    uint64_t resume_seq, resume_idx;
    uint32_t resume_row;

    atomic_llong version;
    atomic_uint clients; /* hellos answered */
    /* actor processes that said hello and not yet goodbye (guarded by mu) */
    char (*active)[RELAY_TEXT_MAX];
    size_t n_active, cap_active;
    int64_t last_goodbye_ns;
    /* a model the bus did not take (disconnected): the main thread retries it */
    uint8_t *unsent_model;
    size_t unsent_len;
    int64_t unsent_version;
    char path_ckpt[RELAY_PATH_MAX + 32];
} server;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: relay server --nats URL | --zmq URL [options]\n"
        "  --nats URL            NATS server(s), e.g. nats://127.0.0.1:4222 (or transport.url)\n"
        "  --zmq URL             ZeroMQ, brokerless: bind tcp://HOST:PORT (models on PORT+1)\n"
        "                        or ipc://PATH; CURVE keys in the config (see relay keygen)\n"
        "  --run NAME            run name: stream, bucket and subject names (default: default)\n"
        "  --env E               environment the actors step (default CartPole-v1)\n"
        "  --algo ppo|reinforce  learner (default ppo)\n"
        "  --out DIR             run directory (default runs/<run>); a restarted server resumes\n"
        "                        from DIR/checkpoint.bin\n"
        "  --target R            stop when the mean of the last 100 returns reaches R\n"
        "  --steps N             stop after N learned environment steps\n"
        "  --checkpoint-every N  updates between checkpoints (default 5)\n"
        "  --max-version-lag K   drop trajectories more than K versions old (default 1)\n"
        "  --width W             rollout columns per update (default: the zoo's n_envs)\n"
        "  --max-seconds S       stop after S seconds\n"
        "  --infer-batch N       central inference: rows per batched forward pass (default 1024)\n"
        "  --infer-wait-us U     central inference: wait for more requests (default 100 us)\n"
        "  --no-inference        do not serve central inference (relay actors --remote-inference)\n"
        "  --max-connections N   ZeroMQ: connections each port admits at once (default 256,\n"
        "                        at most 65536); handshakes beyond are refused and counted\n"
        "  --config FILE         JSON with a \"transport\" section (credentials, key, limits)\n"
        "  --metrics-addr A      serve Prometheus /metrics and the run's dashboard on HOST:PORT\n"
        "                        (a bare PORT binds 127.0.0.1; other hosts only when named)\n"
        "  --quiet               no progress line\n"
        "  --learning-rate, --n-steps, ..., --norm-reward true: the hyperparameters of relay\n"
        "                        train (relay train --help), over the zoo's values\n"
        "Credentials come from the config file or RELAY_NATS_USER/_PASSWORD/_TOKEN/_CREDS;\n"
        "RELAY_KEY (64 hex) encrypts and authenticates every model and trajectory.\n");
}

/* ---- ledger and message map ------------------------------------------------------------------ */

static msg_ent *find_msg(server *s, uint64_t seq)
{
    size_t lo = 0, hi = s->n_msgs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->msgs[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n_msgs && s->msgs[lo].seq == seq ? &s->msgs[lo] : NULL;
}

static relay_err add_msg(server *s, uint64_t seq, const rly_batch_hdr *h)
{
    rly_mutex_lock(&s->mu);
    relay_err e = RELAY_OK;
    if (s->n_msgs == s->cap_msgs) {
        size_t cap = s->cap_msgs ? 2 * s->cap_msgs : 256;
        msg_ent *m = realloc(s->msgs, cap * sizeof *m);
        if (!m)
            e = RELAY_ENOMEM;
        else {
            s->msgs = m;
            s->cap_msgs = cap;
        }
    }
    if (!e) {
        msg_ent *m = &s->msgs[s->n_msgs++];
        memset(m, 0, sizeof *m);
        m->seq = seq;
        if (h) {
            m->producer = h->producer;
            m->batch = h->seq;
            m->known = true;
        }
    }
    rly_mutex_unlock(&s->mu);
    return e;
}

/* on_fate (learner thread) keeps a trajectory's fate until a checkpoint covers it. */
static void on_fate(void *ctx, uint64_t tag, rly_fate fate, uint32_t rows)
{
    server *s = ctx;
    if (s->n_pend == s->cap_pend) {
        size_t cap = s->cap_pend ? 2 * s->cap_pend : 1024;
        fate_ent *p = realloc(s->pend, cap * sizeof *p);
        if (!p) {
            rly_error("server", "out of memory keeping the ledger");
            return;
        }
        s->pend = p;
        s->cap_pend = cap;
    }
    s->pend[s->n_pend++] = (fate_ent){tag, (uint8_t)fate, rows};
    rly_server_obs_fate(s->obs, fate);
    rly_mutex_lock(&s->mu);
    if ((unsigned)fate < 6)
        s->counts[fate]++;
    rly_mutex_unlock(&s->mu);
}

/* flush_ledger writes the fates of tags below limit to ledger.csv (learner thread). */
static relay_err flush_ledger(server *s, uint64_t limit)
{
    size_t w = 0;
    bool io_ok = true;
    rly_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_pend; i++) {
        fate_ent *f = &s->pend[i];
        if (f->tag >= limit) {
            s->pend[w++] = *f;
            continue;
        }
        uint64_t seq = f->tag >> TAG_BITS, idx = f->tag & TAG_IDX_MASK;
        const msg_ent *m = find_msg(s, seq);
        char id[96];
        if (m && m->known) {
            char mid[RLY_TP_MSGID_MAX];
            rly_batch_msg_id(m->producer, m->batch, mid, sizeof mid);
            if (f->fate == RLY_FATE_DUPLICATE)
                snprintf(id, sizeof id, "%s:*", mid);
            else
                snprintf(id, sizeof id, "%s:%llu", mid, (unsigned long long)idx);
        } else {
            snprintf(id, sizeof id, "msg%llu", (unsigned long long)seq);
        }
        int n = fprintf(s->ledger, "%s,%llu,%s,%u\n", id, (unsigned long long)seq,
                        f->fate < 6 ? fate_names[f->fate] : "?", f->rows);
        if (n < 0)
            io_ok = false;
        else
            s->ledger_bytes += (uint64_t)n;
    }
    s->n_pend = w;
    /* messages wholly below the limit are no longer needed */
    uint64_t lim_seq = limit >> TAG_BITS;
    size_t k = 0;
    while (k < s->n_msgs && s->msgs[k].seq < lim_seq)
        k++;
    if (k) {
        memmove(s->msgs, s->msgs + k, (s->n_msgs - k) * sizeof *s->msgs);
        s->n_msgs -= k;
    }
    rly_mutex_unlock(&s->mu);
    if (fflush(s->ledger) != 0 || fsync(fileno(s->ledger)) != 0)
        io_ok = false;
    if (!io_ok) {
        rly_error("server", "writing %s/ledger.csv failed: %s", s->out, strerror(errno));
        return RELAY_EIO;
    }
    return RELAY_OK;
}

/* ---- checkpoint ------------------------------------------------------------------------------ */

#define BLOB_MAGIC 0x31565253u /* "SRV1" */

static void put64(relay_codec_buf *b, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        b->data[b->len++] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* checkpoint saves learner + cursor + ledger length + seen table (learner thread or stopped). */
static relay_err checkpoint(server *s, uint64_t cursor_tag, uint32_t cursor_row)
{
    relay_err e = flush_ledger(s, cursor_tag);
    if (e)
        return e;
    relay_codec_buf b = {0};
    e = relay_codec_buf_reserve(&b, 8 * 12);
    if (e)
        return e;
    put64(&b, BLOB_MAGIC);
    put64(&b, cursor_tag);
    put64(&b, cursor_row);
    put64(&b, s->ledger_bytes);
    rly_mutex_lock(&s->mu);
    /* counts of fates still pending (after the cursor) are not saved: a replay recounts them */
    uint64_t saved[6];
    memcpy(saved, s->counts, sizeof saved);
    for (size_t i = 0; i < s->n_pend; i++)
        if (s->pend[i].fate < 6)
            saved[s->pend[i].fate]--;
    for (int i = 0; i < 6; i++)
        put64(&b, saved[i]);
    put64(&b, s->rejected_msgs);
    e = rly_seen_save(&s->seen, &b);
    rly_mutex_unlock(&s->mu);
    if (!e)
        e = rly_learner_checkpoint_save(s->learner, s->path_ckpt, b.data, b.len);
    relay_codec_buf_fini(&b);
    if (!e) /* deliveries before the cursor's position are covered: they may be acknowledged */
        atomic_store(&s->committed, cursor_tag >> TAG_BITS);
    if (e)
        rly_error("server", "checkpoint %s failed: %s", s->path_ckpt, relay_strerror(e));
    return e;
}

static relay_err restore(server *s, const uint8_t *p, size_t len)
{
    if (len < 8 * 11 || get64(p) != BLOB_MAGIC) {
        rly_error("server", "checkpoint %s: server state missing or of another format",
                  s->path_ckpt);
        return RELAY_EFORMAT;
    }
    uint64_t tag = get64(p + 8);
    s->resume_seq = tag >> TAG_BITS;
    s->resume_idx = tag & TAG_IDX_MASK;
    s->resume_row = (uint32_t)get64(p + 16);
    s->ledger_bytes = get64(p + 24);
    for (int i = 0; i < 6; i++)
        s->counts[i] = get64(p + 32 + 8 * i);
    s->rejected_msgs = get64(p + 80);
    size_t used = 0;
    relay_err e = rly_seen_load(&s->seen, p + 88, len - 88, &used);
    if (e) {
        rly_error("server", "checkpoint %s: seen table unreadable", s->path_ckpt);
        return e;
    }
    if (!s->durable && s->resume_seq) {
        /* nothing is replayed: actors resend every batch not covered, at new positions */
        rly_seen_entry en;
        if ((s->resume_idx || s->resume_row) && rly_seen_find_seq(&s->seen, s->resume_seq, &en)) {
            s->resume_by_id = true;
            s->resume_producer = en.producer;
            s->resume_batch = en.batch;
        }
        e = rly_seen_forget_from(&s->seen, s->resume_seq);
    }
    return e;
}

/* ---- central inference ----------------------------------------------------------------------- */

/* start_inference serves central inference (cli/infer.h); a failure leaves training running. */
static void start_inference(server *s)
{
    rly_policy_desc d;
    rly_tp_infer_opts o = {.max_batch = s->dc.infer_batch,
                           .max_wait_ns = (int64_t)s->dc.infer_wait_us * 1000};
    relay_err e = rly_policy_desc_from_env(&d, s->env);
    if (!e)
        e = rly_infer_server_new(&d, &s->infer);
    if (!e && (e = rly_infer_server_start(s->infer, s->tp, &o))) {
        rly_infer_server_free(s->infer);
        s->infer = NULL;
    }
    if (e)
        fprintf(stderr, "relay server: central inference not served (%s); training goes on\n",
                relay_strerror(e));
}

/* report_inference prints the central inference counters (when anything was asked). */
static void report_inference(server *s)
{
    rly_tp_infer_stats st;
    rly_tp_infer_stats_get(s->tp, &st);
    if (!s->infer || (!st.requests && !st.rejected))
        return;
    fprintf(stderr,
            "relay server: central inference: %llu requests, %llu actions in %llu batches (mean "
            "%.1f rows, largest %u), %llu refused as malformed, %llu failed\n",
            (unsigned long long)st.requests, (unsigned long long)st.rows,
            (unsigned long long)st.batches, st.batches ? (double)st.rows / (double)st.batches : 0.0,
            st.max_rows, (unsigned long long)st.rejected, (unsigned long long)st.failed);
}

/* ---- learner callbacks ----------------------------------------------------------------------- */

static relay_err publish(void *ctx, int64_t version, relay_model *pi, relay_model *vf,
                         const float *log_std, uint32_t n_log_std)
{
    server *s = ctx;
    size_t pl = 0, vl = 0;
    const uint8_t *pb = relay_model_onnx(pi, &pl), *vb = relay_model_onnx(vf, &vl);
    relay_err e = rly_dist_encode_model(s->pub_codec, s->env->name, version, pb, pl, vb, vl,
                                        log_std, n_log_std, &s->pub_buf);
    bool encoded = !e;
    /* central inference serves the new version before actors hear of it */
    if (s->infer)
        rly_infer_server_publish(s->infer, version, pi, vf, log_std, n_log_std);
    else {
        relay_model_free(pi);
        relay_model_free(vf);
    }
    if (!e)
        e = rly_tp_model_publish(s->tp, version, s->pub_buf.data, s->pub_buf.len);
    rly_mutex_lock(&s->mu);
    free(s->unsent_model);
    s->unsent_model = NULL;
    if (e && encoded && (s->unsent_model = malloc(s->pub_buf.len))) {
        memcpy(s->unsent_model, s->pub_buf.data, s->pub_buf.len);
        s->unsent_len = s->pub_buf.len;
        s->unsent_version = version;
    }
    rly_mutex_unlock(&s->mu);
    if (e)
        rly_warn("server", "publishing version %lld failed: %s (retried until the bus takes it)",
                 (long long)version, relay_strerror(e));
    atomic_store(&s->version, version);
    return RELAY_OK;
}

static void on_update(void *ctx, const rly_learner_stats *st)
{
    server *s = ctx;
    /* the target ends training right after this update, on the learner thread: no update is
       started and then cancelled by the stop (a torn update cannot be checkpointed, and the
       drain acknowledges only what a checkpoint covers) */
    if (st->episodes >= 100 && st->mean_return_100 >= s->target)
        rly_learner_end(s->learner);
    rly_server_obs_update(s->obs, st);
    rly_mutex_lock(&s->mu);
    double lag_mean = s->lag_n ? (double)s->lag_sum / (double)s->lag_n : 0.0;
    int64_t lag_max = s->lag_max;
    uint64_t stale = s->counts[RLY_FATE_STALE], dup = s->counts[RLY_FATE_DUPLICATE],
             rej = s->counts[RLY_FATE_REJECTED] + s->rejected_msgs;
    s->lag_sum = s->lag_n = 0;
    s->lag_max = 0;
    rly_mutex_unlock(&s->mu);
    if (s->metrics) {
        rly_metrics_row r;
        rly_metrics_row_from_stats(&r, st);
        fprintf(s->metrics,
                "%u,%llu,%.3f,%.1f,%.3f,%llu,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%lld,%.3f,%lld,"
                "%llu,%llu,%llu\n",
                r.update, (unsigned long long)r.steps, r.wall_s, r.sps, (double)r.mean_return_100,
                (unsigned long long)r.episodes, (double)r.m.policy_loss, (double)r.m.value_loss,
                (double)r.m.entropy, (double)r.m.approx_kl, (double)r.m.clip_fraction,
                (double)r.m.explained_variance, (double)r.m.learning_rate, (long long)r.version,
                lag_mean, (long long)lag_max, (unsigned long long)stale, (unsigned long long)dup,
                (unsigned long long)rej);
        fflush(s->metrics);
    }
    if (st->episodes) {
        if (s->n_curve == s->cap_curve) {
            size_t cap = s->cap_curve ? 2 * s->cap_curve : 256;
            double *x = realloc(s->curve_x, cap * sizeof *x);
            if (x)
                s->curve_x = x;
            double *y = realloc(s->curve_y, cap * sizeof *y);
            if (y)
                s->curve_y = y;
            if (x && y)
                s->cap_curve = cap;
        }
        if (s->n_curve < s->cap_curve) {
            s->curve_x[s->n_curve] = (double)st->steps_consumed;
            s->curve_y[s->n_curve++] = st->mean_return_100;
        }
    }
    if (s->ckpt_every && st->updates % s->ckpt_every == 0)
        checkpoint(s, st->cursor_tag, st->cursor_row);
    if (!s->quiet) {
        rly_progress_info pi = {.steps = st->steps_consumed,
                                .total_steps = s->steps,
                                .sps = st->sps,
                                .mean_return = st->episodes ? st->mean_return_100 : NAN,
                                .episodes = st->episodes,
                                .version = st->version,
                                .elapsed_s = st->wall_s};
        rly_progress_update(&s->progress, &pi, false);
    }
}

/* retry_model publishes a model the bus refused earlier (main thread). */
static void retry_model(server *s)
{
    rly_mutex_lock(&s->mu);
    uint8_t *m = s->unsent_model;
    size_t len = s->unsent_len;
    int64_t v = s->unsent_version;
    s->unsent_model = NULL;
    rly_mutex_unlock(&s->mu);
    if (!m)
        return;
    relay_err e = rly_tp_model_publish(s->tp, v, m, len);
    rly_mutex_lock(&s->mu);
    if (e && !s->unsent_model) {
        s->unsent_model = m; /* still refused and not superseded: keep it */
        m = NULL;
    }
    rly_mutex_unlock(&s->mu);
    if (!e)
        rly_info("server", "version %lld published after a retry", (long long)v);
    free(m);
}

/* ---- control --------------------------------------------------------------------------------- */

static relay_err serve(void *ctx, const void *req, size_t len, relay_codec_buf *reply)
{
    server *s = ctx;
    relay_codec *c = NULL;
    relay_err e = rly_dist_open_codec(&s->dc, &c);
    relay_msg m;
    if (!e)
        e = relay_codec_decode_msg(c, req, len, &m);
    if (e) {
        relay_codec_free(c);
        rly_warn("server", "control request refused: %s", relay_strerror(e));
        return e;
    }
    relay_msg r;
    memset(&r, 0, sizeof r);
    if (m.kind == RELAY_MSG_HANDSHAKE) {
        atomic_fetch_add(&s->clients, 1);
        rly_info("server", "hello from %s (%u actors)", m.handshake.client_id,
                 m.handshake.n_actors);
        rly_server_obs_hello(s->obs, m.handshake.client_id);
        rly_mutex_lock(&s->mu);
        bool known = false;
        for (size_t i = 0; i < s->n_active && !known; i++)
            known = !strcmp(s->active[i], m.handshake.client_id);
        if (!known && s->n_active < 4096) {
            if (s->n_active == s->cap_active) {
                size_t cap = s->cap_active ? 2 * s->cap_active : 16;
                char(*n)[RELAY_TEXT_MAX] = realloc(s->active, cap * sizeof *n);
                if (n) {
                    s->active = n;
                    s->cap_active = cap;
                }
            }
            if (s->n_active < s->cap_active)
                memcpy(s->active[s->n_active++], m.handshake.client_id, RELAY_TEXT_MAX);
        }
        rly_mutex_unlock(&s->mu);
        r.kind = RELAY_MSG_MODEL_VERSION_REPLY;
        r.version = atomic_load(&s->version);
    } else if (m.kind == RELAY_MSG_SHUTDOWN) {
        /* goodbye: an actor process drained its spool and leaves */
        rly_mutex_lock(&s->mu);
        for (size_t i = 0; i < s->n_active; i++)
            if (!strcmp(s->active[i], m.text)) {
                memcpy(s->active[i], s->active[--s->n_active], RELAY_TEXT_MAX);
                break;
            }
        s->last_goodbye_ns = rly_now_ns();
        rly_mutex_unlock(&s->mu);
        rly_info("server", "goodbye from %s", m.text);
        rly_server_obs_goodbye(s->obs, m.text);
        r.kind = RELAY_MSG_MODEL_VERSION_REPLY;
        r.version = atomic_load(&s->version);
    } else if (m.kind == RELAY_MSG_ACTOR_STATS) {
        /* an actor process's load report (validated by the codec): kept for /metrics */
        rly_server_obs_report(s->obs, &m.stats);
        r.kind = RELAY_MSG_MODEL_VERSION_REPLY;
        r.version = atomic_load(&s->version);
    } else if (m.kind == RELAY_MSG_MODEL_VERSION_REQUEST) {
        r.kind = RELAY_MSG_MODEL_VERSION_REPLY;
        r.actor = m.actor;
        r.version = atomic_load(&s->version);
    } else {
        e = RELAY_EUNSUPPORTED;
    }
    relay_msg_fini(&m);
    if (!e)
        e = relay_codec_encode_msg(c, &r, reply);
    relay_codec_free(c);
    return e;
}

/* ---- consumer -------------------------------------------------------------------------------- */

static void mark(server *s, uint64_t tag, rly_fate fate)
{
    if (s->learner_stopped) { /* the learner thread is joined: pend is the main thread's */
        on_fate(s, tag, fate, 0);
        return;
    }
    while (rly_learner_push_mark(s->learner, tag, fate) == RELAY_EFULL && !stop_signal)
        ;
}

/* slice drops the first rows of t (a trajectory partly learned before a restart). */
static relay_traj *slice(relay_traj *t, uint32_t from)
{
    if (from >= t->len) {
        relay_traj_free(t);
        return NULL;
    }
    relay_traj *n = relay_traj_new(&t->spec, t->len - from, t->max_len);
    if (!n) {
        relay_traj_free(t);
        return NULL;
    }
    n->actor = t->actor;
    n->env_id = t->env_id;
    memcpy(n->env_label, t->env_label, sizeof n->env_label);
    n->episode = t->episode;
    n->policy_version = t->policy_version;
    n->start_ns = t->start_ns;
    n->end_ns = t->end_ns;
    size_t ob, ab, mb;
    relay_step_spec_bytes(&t->spec, &ob, &ab, &mb);
    for (uint32_t r = from; r < t->len; r++) {
        if (relay_traj_push(n, t->obs + r * ob, t->act + r * ab, t->mask ? t->mask + r * mb : NULL,
                            t->reward[r], t->terminated[r], t->truncated[r],
                            t->aux + (size_t)r * t->spec.n_aux, t->ts[r]) != RELAY_OK) {
            relay_traj_free(n);
            relay_traj_free(t);
            return NULL;
        }
    }
    relay_traj_free(t);
    return n;
}

/* process takes one delivery in; returns false when the delivery must be terminated. With
   drain set (training finished), its trajectories are recorded as unused instead of learned. */
static bool process(server *s, const rly_tp_delivery *d, bool drain)
{
    uint64_t base = d->seq << TAG_BITS;
    rly_batch_hdr h;
    relay_err e = rly_batch_parse(d->data, d->len, 64u << 20, &h);
    char want[RLY_TP_MSGID_MAX];
    if (!e) {
        rly_batch_msg_id(h.producer, h.seq, want, sizeof want);
        if (d->msg_id[0] && strcmp(d->msg_id, want) != 0) {
            rly_warn("server", "message %llu: id %s does not match its batch %s",
                     (unsigned long long)d->seq, d->msg_id, want);
            e = RELAY_EFORMAT;
            rly_server_obs_reject(s->obs, RLY_REJECT_BATCH_ID);
        } else {
            rly_server_obs_batch(s->obs);
        }
    } else {
        rly_server_obs_reject(s->obs, RLY_REJECT_BATCH_UNREADABLE);
    }
    if (e) {
        add_msg(s, d->seq, NULL);
        rly_mutex_lock(&s->mu);
        s->rejected_msgs++;
        rly_mutex_unlock(&s->mu);
        mark(s, base, RLY_FATE_REJECTED);
        return false;
    }
    add_msg(s, d->seq, &h);
    rly_mutex_lock(&s->mu);
    rly_seen_verdict v = rly_seen_check(&s->seen, h.producer, h.seq, d->seq);
    rly_mutex_unlock(&s->mu);
    if (v == RLY_SEEN_DUPLICATE) {
        rly_info("server", "batch %s (message %llu) was taken in before: not learned again", want,
                 (unsigned long long)d->seq);
        mark(s, base, RLY_FATE_DUPLICATE);
        return true;
    }
    size_t off = 0;
    const uint8_t *env;
    size_t env_len;
    int64_t cur = atomic_load(&s->version);
    bool resumed = s->durable ? d->seq == s->resume_seq
                              : s->resume_by_id && relay_id_eq(h.producer, s->resume_producer) &&
                                    h.seq == s->resume_batch;
    if (resumed && !s->durable)
        s->resume_by_id = false;
    for (uint64_t i = 0; rly_batch_next(d->data, d->len, &off, &env, &env_len) == RELAY_OK; i++) {
        if (resumed && i < s->resume_idx)
            continue; /* learned before the restart */
        if (drain) {
            mark(s, base | i, RLY_FATE_UNUSED);
            continue;
        }
        relay_traj *t = NULL;
        e = relay_codec_decode_traj(s->codec, env, env_len, &t);
        if (e) {
            rly_server_obs_reject(s->obs, RLY_REJECT_TRAJ_UNDECODABLE);
            mark(s, base | i, RLY_FATE_REJECTED);
            continue;
        }
        if (resumed && i == s->resume_idx && s->resume_row) {
            if (!(t = slice(t, s->resume_row)))
                continue;
        }
        rly_mutex_lock(&s->mu);
        int64_t lag = cur - t->policy_version;
        s->lag_sum += (uint64_t)(lag > 0 ? lag : 0);
        s->lag_n++;
        if (lag > s->lag_max)
            s->lag_max = lag;
        rly_mutex_unlock(&s->mu);
        rly_server_obs_traj(s->obs, lag);
        for (;;) {
            e = rly_learner_push_tagged(s->learner, t, base | i);
            if (e != RELAY_EFULL || stop_signal)
                break;
        }
        if (e) {
            relay_traj_free(t);
            if (e == RELAY_ESHUTDOWN)
                return true;
            if (e != RELAY_EFULL)
                rly_server_obs_reject(s->obs, RLY_REJECT_TRAJ_REFUSED);
            mark(s, base | i, e == RELAY_EFULL ? RLY_FATE_UNUSED : RLY_FATE_REJECTED);
        }
    }
    return true;
}

/* settle acknowledges d now (a durable bus, or now set) or holds it until a checkpoint covers
   its stream position (main thread). */
static void settle(server *s, rly_tp_delivery *d, bool ok, bool now)
{
    if (s->durable || now) {
        rly_tp_traj_ack(s->tp, d, ok);
        return;
    }
    if (s->n_held == s->cap_held) {
        size_t cap = s->cap_held ? 2 * s->cap_held : 1024;
        held_ent *h = realloc(s->held, cap * sizeof *h);
        if (!h) {
            rly_warn("server", "out of memory holding acknowledgements: acknowledging now");
            rly_tp_traj_ack(s->tp, d, ok);
            return;
        }
        s->held = h;
        s->cap_held = cap;
    }
    s->held[s->n_held++] = (held_ent){*d, ok};
}

/* release_held acknowledges held deliveries before stream position upto (all: every one);
   with ack false they are freed unacknowledged (their producers send them again). */
static void release_held(server *s, uint64_t upto, bool ack)
{
    size_t k = 0;
    while (k < s->n_held && s->held[k].d.seq < upto) {
        if (ack)
            rly_tp_traj_ack(s->tp, &s->held[k].d, s->held[k].ok);
        else
            rly_tp_traj_release(s->tp, &s->held[k].d);
        k++;
    }
    if (k) {
        memmove(s->held, s->held + k, (s->n_held - k) * sizeof *s->held);
        s->n_held -= k;
    }
}

/* commit_all writes every fate known so far to the ledger and a checkpoint that covers it (the
   learner stopped; a non-durable transport's finished drain): what is acknowledged afterwards
   stays in ledger.csv even if the server dies, and a resumed server keeps it. */
static relay_err commit_all(server *s, const rly_learner_stats *st)
{
    relay_err e = flush_ledger(s, UINT64_MAX);
    if (!e)
        e = checkpoint(s, st->cursor_tag, st->cursor_row);
    return e;
}

/* ---- main ------------------------------------------------------------------------------------ */

static int parse_args(server *s, int argc, char **argv)
{
    rly_dist_args da = {0};
    static const char *const algos[] = {"ppo", "reinforce", NULL};
    static const char *const corrections[] = {"ppo", "vtrace", NULL};
    const rly_argp p = {.prog = "relay server", .err = stderr};
    uint32_t infer_batch = 0, infer_wait = UINT32_MAX, max_conns = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r = 0, k;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            s->quiet = true;
            continue;
        }
        if (!strcmp(a, "--no-inference")) {
            s->no_inference = true;
            continue;
        }
#define OPT(name) ((r = rly_arg_match(&p, argc, argv, &i, name, &v)) != 0)
        if ((r = rly_dist_arg_match(&p, argc, argv, &i, &da)) != 0)
            ;
        else if ((r = rly_hparams_flag(&s->hp, &p, argc, argv, &i)) != 0)
            ;
        else if (OPT("--metrics-addr")) {
            if (r > 0 && rly_obs_cli_check_addr(v, "relay server", s->metrics_addr,
                                                sizeof s->metrics_addr) != RELAY_OK)
                return 2;
        } else if (OPT("--out")) {
            if (r > 0 && strlen(v) >= sizeof s->out)
                return rly_arg_fail(&p, "--out: path longer than %zu bytes", sizeof s->out - 1);
            if (r > 0)
                snprintf(s->out, sizeof s->out, "%s", v);
        } else if (OPT("--algo")) {
            if (r > 0 && !rly_arg_choice(&p, "--algo", v, algos, &k))
                return 2;
            if (r > 0)
                snprintf(s->algo, sizeof s->algo, "%s", algos[k]);
        } else if (OPT("--target")) {
            if (r > 0 && !rly_arg_float(&p, "--target", v, -FLT_MAX, FLT_MAX, &s->target))
                return 2;
        } else if (OPT("--steps")) {
            if (r > 0 && !rly_arg_u64(&p, "--steps", v, 1, UINT64_C(1) << 50, &s->steps))
                return 2;
        } else if (OPT("--checkpoint-every")) {
            if (r > 0 && !rly_arg_u32(&p, "--checkpoint-every", v, 0, 1000000, &s->ckpt_every))
                return 2;
            s->ckpt_set = r > 0;
        } else if (OPT("--max-version-lag")) {
            if (r > 0 && !rly_arg_u32(&p, "--max-version-lag", v, 0, 1000, &s->max_lag))
                return 2;
        } else if (OPT("--correction")) {
            if (r > 0 && !rly_arg_choice(&p, "--correction", v, corrections, &k))
                return 2;
            s->vtrace = r > 0 && k == 1;
        } else if (OPT("--replicas")) {
            uint32_t x = 0;
            if (r > 0 && !rly_arg_u32(&p, "--replicas", v, 1, 5, &x))
                return 2;
            s->replicas = (int)x;
        } else if (OPT("--width")) {
            if (r > 0 && !rly_arg_u32(&p, "--width", v, 1, 4096, &s->width))
                return 2;
        } else if (OPT("--max-seconds")) {
            if (r > 0 && !rly_arg_u32(&p, "--max-seconds", v, 1, 100000000, &s->max_seconds))
                return 2;
        } else if (OPT("--infer-batch")) {
            if (r > 0 && !rly_arg_u32(&p, "--infer-batch", v, 1, RLY_IW_MAX_ROWS, &infer_batch))
                return 2;
        } else if (OPT("--infer-wait-us")) {
            if (r > 0 && !rly_arg_u32(&p, "--infer-wait-us", v, 0, 1000000, &infer_wait))
                return 2;
        } else if (OPT("--max-connections")) {
            if (r > 0 &&
                !rly_arg_u32(&p, "--max-connections", v, 1, RLY_TP_MAX_CONNECTIONS_MAX, &max_conns))
                return 2;
        } else
            return rly_arg_unknown(&p, a);
#undef OPT
        if (r < 0)
            return 2; /* rly_arg_match said the value is missing */
    }
    if (rly_dist_config_from_args(&s->dc, &da, "relay server", stderr, &s->env) != RELAY_OK)
        return 2;
    if (s->replicas)
        s->dc.replicas = s->replicas;
    if (infer_batch)
        s->dc.infer_batch = infer_batch;
    if (infer_wait != UINT32_MAX)
        s->dc.infer_wait_us = infer_wait;
    if (max_conns)
        s->dc.max_connections = max_conns;
    if (!s->out[0])
        snprintf(s->out, sizeof s->out, "runs/%s", s->dc.run);
    return -1;
}

static float default_target(const char *env)
{
    if (!strcmp(env, "CartPole-v1"))
        return 475.0f;
    if (!strcmp(env, "Acrobot-v1"))
        return -100.0f;
    if (!strcmp(env, "MountainCar-v0"))
        return -110.0f;
    if (!strcmp(env, "Pendulum-v1"))
        return -250.0f;
    return INFINITY;
}

/* write_file writes path atomically and durably (fsync before rename); errors name the file. */
static relay_err write_file(const char *path, const void *data, size_t len)
{
    int err = rly_cli_write_atomic(path, data, len, true);
    if (err) {
        fprintf(stderr, "relay server: cannot write %s: %s\n", path, strerror(err));
        return RELAY_EIO;
    }
    return RELAY_OK;
}

static relay_err write_config(server *s)
{
    char path[RELAY_PATH_MAX + 32], text[8192];
    snprintf(path, sizeof path, "%s/config.json", s->out);
    /* the effective hyperparameters (s->hp holds all of them), as relay train records them */
    char *hp_json = NULL;
    rly_cfg_key keys[64];
    uint32_t nk = rly_hparams_n_keys();
    cJSON *sec = cJSON_CreateObject();
    if (nk <= 64 && sec) {
        rly_hparams_cfg_keys("ppo", 0, keys);
        for (uint32_t i = 0; i < nk; i++)
            keys[i].name = strchr(keys[i].name, '.') + 1; /* keys inside the section */
        if (rly_cfg_to_json(&s->hp, keys, nk, sec) == RELAY_OK)
            hp_json = cJSON_PrintUnformatted(sec);
    }
    cJSON_Delete(sec);
    int n =
        snprintf(text, sizeof text,
                 "{\n  \"mode\": \"server\",\n  \"env\": \"%s\",\n  \"algo\": \"%s\",\n"
                 "  \"target\": %.6g,\n  \"steps\": %llu,\n  \"checkpoint_every\": %u,\n"
                 "  \"max_version_lag\": %u,\n  \"correction\": \"%s\",\n  \"width\": %u,\n"
                 "  \"%s\": %s,\n"
                 "  \"transport\": {\"url\": \"%s\", \"run\": \"%s\", \"encrypted\": %s}\n}\n",
                 s->env->name, s->algo, (double)s->target, (unsigned long long)s->steps,
                 s->ckpt_every, s->max_lag, s->vtrace ? "vtrace" : "ppo", s->width, s->algo,
                 hp_json ? hp_json : "{}", s->dc.url, s->dc.run, s->dc.has_key ? "true" : "false");
    free(hp_json);
    return n > 0 && (size_t)n < sizeof text ? write_file(path, text, (size_t)n) : RELAY_EIO;
}

int rly_cli_server(int argc, char **argv)
{
    server *s = calloc(1, sizeof *s);
    if (!s)
        return 1;
    rly_dist_config_default(&s->dc);
    snprintf(s->algo, sizeof s->algo, "ppo");
    s->target = NAN;
    s->ckpt_every = 5;
    s->max_lag = 1;
    rly_mutex_init(&s->mu);
    int rc = parse_args(s, argc, argv);
    if (rc >= 0)
        goto out_early;
    rc = 1;
    if (isnan(s->target))
        s->target = default_target(s->env->name);
    int merr = rly_cli_mkdirs(s->out);
    if (merr != 0) {
        fprintf(stderr, "relay server: cannot create %s: %s\n", s->out, strerror(merr));
        goto out_early;
    }
    char obs_title[300];
    snprintf(obs_title, sizeof obs_title, "%s %s (distributed, run %s)", s->env->name, s->algo,
             s->dc.run);
    if (rly_server_obs_new(s->metrics_addr, s->env->name, obs_title, (double)s->target, &s->obs) !=
        RELAY_OK) {
        rc = 2;
        goto out_early;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    snprintf(s->path_ckpt, sizeof s->path_ckpt, "%s/checkpoint.bin", s->out);
    bool resume = access(s->path_ckpt, F_OK) == 0;
    relay_err e = rly_seen_init(&s->seen, 0);
    if (!e)
        e = rly_dist_open_codec(&s->dc, &s->codec);
    if (!e)
        e = rly_dist_open_codec(&s->dc, &s->pub_codec);
    if (e) {
        fprintf(stderr, "relay server: %s\n", relay_strerror(e));
        goto out;
    }
    s->dc.server = true;
    if ((e = rly_dist_open_transport(&s->dc, "relay-server", stderr, &s->tp)))
        goto out;
    s->durable = rly_tp_durable(s->tp);
    if (!s->no_inference)
        start_inference(s);
    if (!s->durable && !s->ckpt_set)
        s->ckpt_every = 1; /* acknowledgements wait for checkpoints: keep them frequent */

    rly_learner_config lc;
    if ((e = rly_learner_config_init(&lc, s->env, 8)))
        goto out;
    uint32_t width = s->width ? s->width : (lc.ppo.n_envs ? lc.ppo.n_envs : 8);
    s->width = width;
    if ((e = rly_learner_config_init(&lc, s->env, width)))
        goto out;
    lc.pooled = true;
    lc.policy_lag = s->max_lag;
    lc.vtrace = s->vtrace;
    lc.ppo.algo = strcmp(s->algo, "reinforce") == 0 ? RELAY_ALGO_REINFORCE : RELAY_ALGO_PPO;
    if ((e = rly_hparams_apply(&s->hp, s->algo, &lc.ppo)))
        goto out;
    lc.n_steps = lc.ppo.n_steps;
    rly_hparams_from_ppo(&s->hp, &lc.ppo); /* every effective value, for config.json */
    if (s->steps)
        lc.ppo.total_timesteps = s->steps;
    else
        s->steps = lc.ppo.total_timesteps;
    lc.publish = publish;
    lc.publish_ctx = s;
    lc.on_update = on_update;
    lc.on_update_ctx = s;
    lc.on_fate = on_fate;
    lc.on_fate_ctx = s;
    rly_server_obs_learner(s->obs, &lc);
    lc.queue_cap = 4096;
    lc.resume_path = resume ? s->path_ckpt : NULL;

    char path[RELAY_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/ledger.csv", s->out);
    s->ledger = fopen(path, resume ? "r+" : "w");
    if (!s->ledger) {
        fprintf(stderr, "relay server: cannot open %s: %s\n", path, strerror(errno));
        e = RELAY_EIO;
        goto out;
    }
    snprintf(path, sizeof path, "%s/metrics.csv", s->out);
    s->metrics = fopen(path, resume ? "a" : "w");
    if (!s->metrics) {
        fprintf(stderr, "relay server: cannot open %s: %s\n", path, strerror(errno));
        e = RELAY_EIO;
        goto out;
    }
    if (!resume)
        fprintf(s->metrics, "%s,lag_mean,lag_max,stale_total,duplicates_total,rejected_total\n",
                RLY_METRICS_HEADER);
    if ((e = write_config(s)))
        goto out;
    atomic_store(&s->version, -1);
    /* a new run (or a resumed one) is not finished */
    rly_tp_status_publish(s->tp, NULL, 0);
    if ((e = rly_learner_new(&lc, &s->learner))) {
        fprintf(stderr, "relay server: cannot start the learner%s: %s\n",
                resume ? " from its checkpoint" : "", relay_strerror(e));
        goto out;
    }
    rly_server_obs_start(s->obs, s->learner);
    if (resume) {
        const uint8_t *blob = NULL;
        size_t blen = 0;
        if ((e = rly_learner_resume_extra(s->learner, &blob, &blen)) ||
            (e = restore(s, blob, blen)))
            goto out;
        if (ftruncate(fileno(s->ledger), (off_t)s->ledger_bytes) != 0 ||
            fseek(s->ledger, (long)s->ledger_bytes, SEEK_SET) != 0) {
            fprintf(stderr, "relay server: cannot rewind ledger.csv: %s\n", strerror(errno));
            e = RELAY_EIO;
            goto out;
        }
        s->last_seq = s->resume_seq ? s->resume_seq - 1 : 0;
        fprintf(stderr,
                "relay server: resumed from %s (stream position %llu, trajectory %llu, row %u)\n",
                s->path_ckpt, (unsigned long long)s->resume_seq, (unsigned long long)s->resume_idx,
                s->resume_row);
    }
    /* JetStream may still be electing its leaders (a cluster just started): retry a while */
    for (int tries = 0;; tries++) {
        /* a non-durable transport numbers what comes after the cursor's batch afresh */
        uint64_t start = s->resume_seq ? s->resume_seq + (s->durable ? 0 : 1) : 1;
        e = rly_tp_traj_consume(s->tp, start);
        if (!e || tries >= 240 || stop_signal)
            break;
        if (tries % 20 == 0)
            fprintf(stderr, "relay server: JetStream not ready (%s); retrying\n",
                    relay_strerror(e));
        rly_sleep_ns(500 * RLY_NS_PER_MS);
    }
    if (e || (e = rly_tp_control_serve(s->tp, serve, s))) {
        fprintf(stderr, "relay server: cannot consume trajectories: %s\n", relay_strerror(e));
        goto out;
    }
    if (!s->quiet) {
        rly_progress_init(&s->progress, stderr, 1.0);
        fprintf(stderr,
                "relay server: %s, %s, run %s on %s, width %u, target %.1f, budget %llu steps, "
                "run directory %s\n",
                s->env->name, s->algo, s->dc.run, s->dc.url, width, (double)s->target,
                (unsigned long long)s->steps, s->out);
    }
    rly_tp_delivery ds[FETCH_MAX];
    int64_t t0 = rly_now_ns();
    const char *why = "interrupted";
    rly_learner_stats st;
    uint32_t fetch_errors = 0;
    while (!stop_signal) {
        size_t n = 0;
        e = rly_tp_traj_fetch(s->tp, ds, FETCH_MAX, &n, 200 * RLY_NS_PER_MS);
        if (e && e != RELAY_ETIMEDOUT) {
            if (fetch_errors++ % 10 == 0)
                rly_warn("server", "fetch: %s", relay_strerror(e));
            rly_sleep_ns(100 * RLY_NS_PER_MS);
            if (fetch_errors % 20 == 0) {
                /* the bus lost our consumer (restart without its state): make it again where
                   we are; redeliveries of what we already handled are skipped by position */
                rly_warn("server", "re-creating the consumer at stream position %llu",
                         (unsigned long long)s->last_seq + 1);
                rly_tp_traj_consume(s->tp, s->last_seq + 1);
            }
        } else {
            fetch_errors = 0;
        }
        retry_model(s);
        for (size_t i = 0; i < n; i++) {
            bool ok = true;
            if (ds[i].seq > s->last_seq) { /* older ones are redeliveries of handled messages */
                s->last_seq = ds[i].seq;
                ok = process(s, &ds[i], false);
            }
            settle(s, &ds[i], ok, false);
        }
        release_held(s, atomic_load(&s->committed), true);
        rly_learner_stats_get(s->learner, &st);
        if (st.error) {
            why = "learner error";
            break;
        }
        if (st.done) { /* the target (on_update ends the learner right after that update) or
                          the step budget: stopping now cancels no update */
            why = st.episodes >= 100 && st.mean_return_100 >= s->target ? "target reached"
                                                                        : "step budget spent";
            break;
        }
        if (s->max_seconds && rly_now_ns() - t0 > (int64_t)s->max_seconds * RLY_NS_PER_S) {
            why = "time limit";
            break;
        }
    }
    if (strcmp(why, "interrupted") != 0 && strcmp(why, "learner error") != 0) {
        /* tell the actors, then account for what they still send: recorded, not learned */
        relay_msg m;
        memset(&m, 0, sizeof m);
        m.kind = RELAY_MSG_SHUTDOWN;
        snprintf(m.text, sizeof m.text, "training finished: %s", why);
        /* its own buffer: pub_buf belongs to the learner thread, which may still publish */
        relay_codec_buf sb = {0};
        if (relay_codec_encode_msg(s->codec, &m, &sb) == RELAY_OK)
            rly_tp_status_publish(s->tp, sb.data, sb.len);
        relay_codec_buf_fini(&sb);
        /* no more updates: once the learner has stopped, every trajectory handed to it has its
           fate (learned up to the cursor, unused after it) and what comes now is recorded here.
           The actors wait for their acks before saying goodbye. A non-durable transport (the
           bus keeps nothing to replay) acknowledges only what the ledger and a checkpoint
           already cover, so a crash in the drain loses no acknowledged trajectory; a batch not
           acknowledged yet is sent again by its actor to the next server. */
        rly_learner_stop(s->learner);
        s->learner_stopped = true;
        rly_learner_stats_get(s->learner, &st);
        bool committed_all = s->durable || commit_all(s, &st) == RELAY_OK;
        release_held(s, UINT64_MAX, committed_all);
        /* until every actor process that said hello said goodbye (it sends its goodbye after
           its spool drained) and the stream is quiet; a process that died never says goodbye,
           so 10 quiet seconds also end the drain, and 30 s in all */
        int64_t start = rly_now_ns(), last_msg = start, hard_stop = start + 30 * RLY_NS_PER_S;
        for (;;) {
            int64_t now = rly_now_ns();
            rly_mutex_lock(&s->mu);
            size_t active = s->n_active;
            rly_mutex_unlock(&s->mu);
            int64_t quiet = now - last_msg;
            if (stop_signal || now >= hard_stop || (active == 0 && quiet >= RLY_NS_PER_S / 2) ||
                quiet >= 10 * RLY_NS_PER_S)
                break;
            size_t n = 0;
            rly_tp_traj_fetch(s->tp, ds, FETCH_MAX, &n, 200 * RLY_NS_PER_MS);
            bool oks[FETCH_MAX];
            for (size_t i = 0; i < n; i++) {
                oks[i] = true;
                if (ds[i].seq > s->last_seq) {
                    s->last_seq = ds[i].seq;
                    oks[i] = process(s, &ds[i], true);
                }
            }
            bool covered = s->durable || !n || commit_all(s, &st) == RELAY_OK;
            for (size_t i = 0; i < n; i++) {
                if (covered)
                    settle(s, &ds[i], oks[i], true);
                else
                    rly_tp_traj_release(s->tp, &ds[i]); /* not recorded: the actor resends */
            }
            if (n)
                last_msg = rly_now_ns();
        }
    }
    rly_learner_stop(s->learner);
    rly_learner_stats_get(s->learner, &st);
    /* the final checkpoint covers what the last update learned */
    checkpoint(s, st.cursor_tag, st.cursor_row);
    if (!s->quiet) {
        rly_progress_info pi = {.steps = st.steps_consumed,
                                .total_steps = s->steps,
                                .sps = st.sps,
                                .mean_return = st.episodes ? st.mean_return_100 : NAN,
                                .episodes = st.episodes,
                                .version = st.version,
                                .elapsed_s = st.wall_s};
        rly_progress_finish(&s->progress, &pi);
    }
    uint8_t *onnx = NULL;
    size_t len = 0;
    relay_err we = rly_learner_export_onnx(s->learner, &onnx, &len);
    if (!we) {
        snprintf(path, sizeof path, "%s/policy.onnx", s->out);
        we = write_file(path, onnx, len);
    }
    free(onnx);
    char title[RELAY_PATH_MAX + 64];
    snprintf(title, sizeof title, "%s %s (distributed): mean return of the last 100 episodes",
             s->env->name, s->algo);
    snprintf(path, sizeof path, "%s/learning_curve.svg", s->out);
    if (!we)
        we = rly_svg_learning_curve(path, title, s->curve_x, s->curve_y, s->n_curve);
    rly_server_obs_stop(s->obs);
    rly_learner_free(s->learner); /* queued trajectories are reported as unused */
    s->learner = NULL;
    flush_ledger(s, UINT64_MAX);
    /* covered by the final checkpoint: acknowledged; the rest is sent again to a resumed
       server (interrupted) */
    release_held(s, atomic_load(&s->committed), true);
    release_held(s, UINT64_MAX, false);
    rly_mutex_lock(&s->mu);
    fprintf(stderr,
            "relay server: %s; %llu updates, version %lld, mean return %.1f; trajectories: "
            "%llu learned, %llu stale, %llu discarded, %llu unused, %llu rejected (+%llu "
            "unreadable messages), %llu duplicate batches\n",
            why, (unsigned long long)st.updates, (long long)st.version, (double)st.mean_return_100,
            (unsigned long long)s->counts[RLY_FATE_LEARNED],
            (unsigned long long)s->counts[RLY_FATE_STALE],
            (unsigned long long)s->counts[RLY_FATE_DISCARDED],
            (unsigned long long)s->counts[RLY_FATE_UNUSED],
            (unsigned long long)s->counts[RLY_FATE_REJECTED], (unsigned long long)s->rejected_msgs,
            (unsigned long long)s->counts[RLY_FATE_DUPLICATE]);
    rly_mutex_unlock(&s->mu);
    e = st.error ? st.error : we;
    if (e)
        rc = 1;
    else if (!strcmp(why, "target reached"))
        rc = 0;
    else if (!strcmp(why, "interrupted"))
        rc = 130;
    else
        rc = isfinite(s->target) ? 3 : 0; /* budget or time spent with a target set and missed */
out:
    if (e && rc == 1 && e != RELAY_EAUTH)
        fprintf(stderr, "relay server: stopped: %s\n", relay_strerror(e));
    if (e == RELAY_EAUTH)
        rc = 4;
    rly_server_obs_stop(s->obs);
    rly_learner_free(s->learner);
    release_held(s, UINT64_MAX, false);
    if (s->tp)
        report_inference(s);
    rly_tp_close(s->tp);
    rly_infer_server_free(s->infer);
    relay_codec_free(s->codec);
    relay_codec_free(s->pub_codec);
    relay_codec_buf_fini(&s->pub_buf);
    rly_seen_fini(&s->seen);
    if (s->ledger)
        fclose(s->ledger);
    if (s->metrics)
        fclose(s->metrics);
out_early:
    rly_server_obs_free(s->obs);
    free(s->held);
    free(s->msgs);
    free(s->pend);
    free(s->unsent_model);
    free(s->active);
    free(s->curve_x);
    free(s->curve_y);
    rly_mutex_fini(&s->mu);
    free(s);
    return rc;
}
