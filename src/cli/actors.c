/*
 * `relay actors`: an actor process of distributed training. An agent (dispatcher, routers,
 * actors stepping environments) whose finished trajectories leave through the transport and
 * whose models arrive from it as ModelUpdate messages through the RouterDispatcher
 * (rly_agent_publish), exactly like an in-process update.
 *
 * Delivery: trajectories are encoded once into batches (~96 KB), numbered 1, 2, 3, ... and kept
 * in a bounded spool until the bus acknowledges them; unacknowledged batches are resent after a
 * reconnect or an acknowledgement timeout with the same id, so the bus's deduplication window and
 * the server's seen table make resends harmless. When the spool is full the oldest batch is
 * dropped and counted (never silently).
 *
 * Threads: the agent's sink worker hands trajectories to `consume` (bounded hand-over queue);
 * the publisher thread batches, spools and publishes; nats.c threads run the acknowledgement
 * and model callbacks; the main thread waits for the end and prints the accounting.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "cli/actors_obs.h"
#include "cli/cli.h"
#include "cli/args.h"
#include "cli/dist.h"
#include "cli/infer.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/thread.h"
#include "learn/learner.h"
#include "obs/obs.h"
#include "relay/env.h"
#include "relay/relay.h"
#include "transport/batch.h"

#define HANDOFF_CAP 4096

typedef struct spool_ent {
    uint64_t seq;
    uint8_t *data;
    size_t len;
    uint32_t count;
    uint32_t sends; /* publishes so far (> 1: resent) */
    bool inflight, acked;
} spool_ent;

typedef struct actors {
    rly_dist_config dc;
    const relay_env_def *env;
    rly_policy_desc desc;
    uint32_t n_actors, envs_per_actor, routers, n_steps, wait_s, max_seconds, drain_s;
    uint64_t seed;
    char ledger_path[512];
    bool quiet;
    char metrics_addr[272]; /* --metrics-addr (the agent's config metrics_addr) */
    rly_actors_obs obs;     /* load reports to the server, publisher series */
    bool obs_on;

    relay_agent *agent;
    relay_id *ids;
    rly_tp *tp;
    relay_id producer;

    /* hand-over from the sink worker */
    rly_mutex hmu;
    rly_cond h_nonempty, h_space;
    relay_traj *hq[HANDOFF_CAP];
    uint32_t h_head, h_len;
    bool h_closed;

    /* spool (publisher thread + ack callbacks) */
    rly_mutex smu;
    spool_ent **spool;
    size_t n_spool, cap_spool;
    uint64_t spool_bytes;
    uint64_t next_seq;
    FILE *ledger;

    /* counters */
    atomic_ullong trajs_made, trajs_acked, trajs_dropped, batches_sent, batches_acked, resends,
        publish_errors, models_applied, models_refused;
    atomic_llong version;
    atomic_llong created_ns;
    atomic_bool started, finished, finish_claimed, reconnected;
    char finish_reason[128];

    rly_infer_client *infer; /* --remote-inference: actors ask the server for actions */

    relay_codec *enc;   /* publisher thread */
    relay_codec *model; /* model callbacks (serialised by the transport) */
    rly_thread pub_th;
    bool pub_running;
} actors;

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void usage(FILE *f)
{
    fprintf(
        f, "usage: relay actors --nats URL | --zmq URL [options]\n"
           "  --nats URL            NATS server(s), e.g. nats://127.0.0.1:4222 (or transport.url)\n"
           "  --zmq URL             a `relay server --zmq` at tcp://HOST:PORT or ipc://PATH\n"
           "  --run NAME            run name, as given to relay server (default: default)\n"
           "  --env E               environment (default CartPole-v1; must match the server's)\n"
           "  --actors N            actors in this process (default 1)\n"
           "  --envs-per-actor M    environment copies per actor (default 8)\n"
           "  --routers R           routers (default 1)\n"
           "  --n-steps K           steps per env per policy version (default: the zoo's n_steps)\n"
           "  --seed S              seed of this process's actors (default: from the pid)\n"
           "  --wait S              seconds to wait for a server's first model (default 120)\n"
           "  --max-seconds S       stop after S seconds\n"
           "  --ledger FILE         append \"<batch id>,<trajectories>\" for every acked batch\n"
           "  --remote-inference    ask the server for actions (central inference; or config\n"
           "                        transport.inference \"remote\"); default 2 routers\n"
           "  --infer-timeout-ms T  central inference: a request fails after T ms (default 5000)\n"
           "  --config FILE         JSON with a \"transport\" section (credentials, key, limits)\n"
           "  --metrics-addr A      /metrics and a dashboard on HOST:PORT (a bare PORT binds\n"
           "                        127.0.0.1; other hosts only when written out)\n"
           "  --quiet               no progress lines\n");
}

/* ---- models ---------------------------------------------------------------------------------- */

static bool space_fits(const relay_bundle_space *b, const relay_space *s)
{
    return b->discrete == s->discrete && b->dim == s->dim && (!s->discrete || b->n == s->n);
}

/* apply_model installs a decoded bundle on every actor (model callback thread). */
static void apply_model(actors *a, relay_model_bundle *b)
{
    relay_space os, as;
    memset(&os, 0, sizeof os);
    memset(&as, 0, sizeof as);
    a->env->spaces(&os, &as);
    int64_t cur = atomic_load(&a->version), made = atomic_load(&a->created_ns);
    if (b->version == cur && b->created_ns <= made)
        return; /* already acting on it */
    if (b->created_ns < made && b->version < cur)
        return; /* an older message arriving late */
    if (!space_fits(&b->obs_space, &os) || !space_fits(&b->act_space, &as) || !b->value_onnx_len ||
        (!as.discrete && b->n_log_std != as.dim)) {
        rly_warn("actors", "model version %lld does not fit %s; ignored", (long long)b->version,
                 a->env->name);
        atomic_fetch_add(&a->models_refused, 1);
        return;
    }
    relay_model *pi = NULL, *vf = NULL;
    relay_err e = relay_model_from_onnx(b->onnx, b->onnx_len, &pi);
    if (!e)
        e = relay_model_from_onnx(b->value_onnx, b->value_onnx_len, &vf);
    /* policy outputs: logits [n_actions], or a Gaussian's mean [act_dim] (optionally followed
       by its log std, [mean | log std]); critic: one value */
    uint32_t out = pi ? relay_model_out_dim(pi) : 0;
    bool out_ok = a->desc.discrete ? out == a->desc.n_actions
                                   : out == a->desc.act_dim || out == 2 * a->desc.act_dim;
    if (!e &&
        (relay_model_in_dim(pi) != a->desc.obs_dim || relay_model_in_dim(vf) != a->desc.obs_dim ||
         !out_ok || relay_model_out_dim(vf) != 1))
        e = RELAY_ESHAPE;
    if (e) {
        rly_warn("actors", "model version %lld refused: %s", (long long)b->version,
                 relay_strerror(e));
        relay_model_free(pi);
        relay_model_free(vf);
        atomic_fetch_add(&a->models_refused, 1);
        return;
    }
    e = rly_agent_publish(a->agent, b->version, pi, vf, b->n_log_std ? b->log_std : NULL,
                          b->n_log_std);
    if (e) {
        rly_warn("actors", "installing model version %lld failed: %s", (long long)b->version,
                 relay_strerror(e));
        return;
    }
    atomic_store(&a->version, b->version);
    atomic_store(&a->created_ns, b->created_ns);
    atomic_fetch_add(&a->models_applied, 1);
}

static void on_model(void *ctx, int64_t version, const void *data, size_t len)
{
    (void)version;
    actors *a = ctx;
    if (len == 0)
        return; /* a cleared status */
    relay_msg m;
    relay_err e = relay_codec_decode_msg(a->model, data, len, &m);
    if (e) {
        rly_warn("actors", "model message refused: %s", relay_strerror(e));
        atomic_fetch_add(&a->models_refused, 1);
        return;
    }
    if (m.kind == RELAY_MSG_MODEL_UPDATE || m.kind == RELAY_MSG_MODEL_BUNDLE) {
        if (atomic_load(&a->started))
            apply_model(a, &m.bundle);
    } else if (m.kind == RELAY_MSG_SHUTDOWN && !atomic_exchange(&a->finish_claimed, true)) {
        /* the status arrives by broadcast and from the bucket: the first one is kept */
        snprintf(a->finish_reason, sizeof a->finish_reason, "%s", m.text);
        atomic_store(&a->finished, true);
    }
    relay_msg_fini(&m);
}

/* ---- spool and publishing -------------------------------------------------------------------- */

static void on_ack(void *ctx, uint64_t seq, relay_err result)
{
    actors *a = ctx;
    rly_mutex_lock(&a->smu);
    for (size_t i = 0; i < a->n_spool; i++) {
        spool_ent *s = a->spool[i];
        if (s->seq != seq || s->acked)
            continue;
        if (result == RELAY_OK) {
            s->acked = true;
            s->inflight = false;
            atomic_fetch_add(&a->batches_acked, 1);
            atomic_fetch_add(&a->trajs_acked, s->count);
            if (a->ledger) {
                char id[RLY_TP_MSGID_MAX];
                rly_batch_msg_id(a->producer, s->seq, id, sizeof id);
                fprintf(a->ledger, "%s,%u\n", id, s->count);
            }
        } else if (s->inflight) {
            s->inflight = false; /* resent by the publisher */
            atomic_fetch_add(&a->publish_errors, 1);
        }
        break;
    }
    rly_mutex_unlock(&a->smu);
}

static void on_conn(void *ctx, bool connected)
{
    actors *a = ctx;
    if (connected)
        atomic_store(&a->reconnected, true);
}

/* spool_trim_locked frees acked batches at the head and drops the oldest past the limit. */
static void spool_trim_locked(actors *a)
{
    size_t k = 0;
    while (k < a->n_spool && a->spool[k]->acked) {
        a->spool_bytes -= a->spool[k]->len;
        free(a->spool[k]->data);
        free(a->spool[k]);
        k++;
    }
    while (k < a->n_spool && a->spool_bytes > a->dc.spool_bytes) {
        spool_ent *s = a->spool[k++];
        a->spool_bytes -= s->len;
        if (!s->acked) {
            atomic_fetch_add(&a->trajs_dropped, s->count);
            rly_warn("actors", "spool full (%llu bytes): dropped batch %llu (%u trajectories)",
                     (unsigned long long)a->dc.spool_bytes, (unsigned long long)s->seq, s->count);
        }
        free(s->data);
        free(s);
    }
    if (k) {
        memmove(a->spool, a->spool + k, (a->n_spool - k) * sizeof *a->spool);
        a->n_spool -= k;
    }
}

static relay_err spool_add(actors *a, relay_codec_buf *b, uint64_t seq)
{
    spool_ent *s = calloc(1, sizeof *s);
    if (!s)
        return RELAY_ENOMEM;
    s->seq = seq;
    s->len = b->len;
    s->count = rly_batch_count(b);
    s->data = malloc(b->len);
    if (!s->data) {
        free(s);
        return RELAY_ENOMEM;
    }
    memcpy(s->data, b->data, b->len);
    rly_mutex_lock(&a->smu);
    if (a->n_spool == a->cap_spool) {
        size_t cap = a->cap_spool ? 2 * a->cap_spool : 256;
        spool_ent **n = realloc(a->spool, cap * sizeof *n);
        if (!n) {
            rly_mutex_unlock(&a->smu);
            free(s->data);
            free(s);
            return RELAY_ENOMEM;
        }
        a->spool = n;
        a->cap_spool = cap;
    }
    a->spool[a->n_spool++] = s;
    a->spool_bytes += s->len;
    spool_trim_locked(a);
    rly_mutex_unlock(&a->smu);
    return RELAY_OK;
}

/* spool_send publishes every batch that is neither acked nor in flight, oldest first. */
static void spool_send(actors *a)
{
    if (atomic_exchange(&a->reconnected, false)) {
        rly_mutex_lock(&a->smu);
        for (size_t i = 0; i < a->n_spool; i++)
            a->spool[i]->inflight = false; /* their acks may be lost: resend (dedup by id) */
        rly_mutex_unlock(&a->smu);
    }
    for (;;) {
        rly_mutex_lock(&a->smu);
        spool_trim_locked(a);
        spool_ent *s = NULL;
        for (size_t i = 0; i < a->n_spool; i++)
            if (!a->spool[i]->acked && !a->spool[i]->inflight) {
                s = a->spool[i];
                break;
            }
        if (!s) {
            rly_mutex_unlock(&a->smu);
            return;
        }
        s->inflight = true;
        /* the bytes stay alive while publishing: entries are freed only by this thread */
        uint8_t *data = s->data;
        size_t len = s->len;
        uint64_t seq = s->seq;
        rly_mutex_unlock(&a->smu);
        char id[RLY_TP_MSGID_MAX];
        rly_batch_msg_id(a->producer, seq, id, sizeof id);
        relay_err e = rly_tp_traj_publish(a->tp, id, seq, data, len, 0);
        if (!e) {
            atomic_fetch_add(&a->batches_sent, 1);
            rly_mutex_lock(&a->smu);
            if (s->sends++ > 0)
                atomic_fetch_add(&a->resends, 1);
            rly_mutex_unlock(&a->smu);
            continue;
        }
        rly_mutex_lock(&a->smu);
        s->inflight = false;
        if (e == RELAY_ETOOBIG) { /* above the bus's message limit (logged): never sendable */
            s->acked = true;
            atomic_fetch_add(&a->trajs_dropped, s->count);
            rly_warn("actors",
                     "batch %llu (%u trajectories, %zu bytes) dropped: too big for the bus",
                     (unsigned long long)seq, s->count, len);
            rly_mutex_unlock(&a->smu);
            continue;
        }
        rly_mutex_unlock(&a->smu);
        return; /* window full or disconnected: try again later */
    }
}

/* spool_pending counts batches not yet acknowledged (any thread; frees nothing). */
static size_t spool_pending(actors *a)
{
    size_t n = 0;
    rly_mutex_lock(&a->smu);
    for (size_t i = 0; i < a->n_spool; i++)
        n += !a->spool[i]->acked;
    rly_mutex_unlock(&a->smu);
    return n;
}

/* snapshot reports the publisher's counters to actors_obs (any thread). */
static void snapshot(void *ctx, rly_pub_snapshot *p)
{
    actors *a = ctx;
    memset(p, 0, sizeof *p);
    p->trajs_made = atomic_load(&a->trajs_made);
    p->trajs_acked = atomic_load(&a->trajs_acked);
    p->trajs_dropped = atomic_load(&a->trajs_dropped);
    p->batches_sent = atomic_load(&a->batches_sent);
    p->batches_acked = atomic_load(&a->batches_acked);
    p->resends = atomic_load(&a->resends);
    p->publish_errors = atomic_load(&a->publish_errors);
    p->models_applied = atomic_load(&a->models_applied);
    p->models_refused = atomic_load(&a->models_refused);
    p->version = atomic_load(&a->version);
    rly_mutex_lock(&a->smu);
    for (size_t i = 0; i < a->n_spool; i++)
        if (!a->spool[i]->acked) {
            p->spool_batches++;
            p->spool_bytes += a->spool[i]->len;
        }
    rly_mutex_unlock(&a->smu);
}

/* consume (sink worker thread) hands a finished trajectory to the publisher. */
static void consume(void *ctx, relay_traj *t)
{
    actors *a = ctx;
    rly_mutex_lock(&a->hmu);
    while (a->h_len == HANDOFF_CAP && !a->h_closed)
        rly_cond_wait(&a->h_space, &a->hmu);
    if (a->h_closed) {
        rly_mutex_unlock(&a->hmu);
        atomic_fetch_add(&a->trajs_dropped, 1);
        relay_traj_free(t);
        return;
    }
    a->hq[(a->h_head + a->h_len) % HANDOFF_CAP] = t;
    a->h_len++;
    rly_cond_broadcast(&a->h_nonempty);
    rly_mutex_unlock(&a->hmu);
    atomic_fetch_add(&a->trajs_made, 1);
}

static void *publisher(void *arg)
{
    actors *a = arg;
    relay_codec_buf batch = {0}, env = {0};
    int64_t oldest = 0;
    bool done = false;
    while (!done) {
        relay_traj *t = NULL;
        rly_mutex_lock(&a->hmu);
        if (a->h_len == 0 && !a->h_closed)
            rly_cond_wait_until(&a->h_nonempty, &a->hmu, rly_now_ns() + RLY_NS_PER_MS);
        if (a->h_len) {
            t = a->hq[a->h_head];
            a->h_head = (a->h_head + 1) % HANDOFF_CAP;
            a->h_len--;
            rly_cond_broadcast(&a->h_space);
        } else if (a->h_closed) {
            done = true;
        }
        rly_mutex_unlock(&a->hmu);
        if (t) {
            if (rly_batch_count(&batch) == 0) {
                rly_batch_begin(&batch, a->producer, a->next_seq);
                oldest = rly_now_ns();
            }
            relay_err e = relay_codec_encode_traj(a->enc, t, &env);
            if (!e)
                e = rly_batch_add(&batch, env.data, env.len);
            if (e) {
                rly_warn("actors", "a trajectory could not be encoded: %s; dropped",
                         relay_strerror(e));
                atomic_fetch_add(&a->trajs_dropped, 1);
            }
            relay_traj_free(t);
        }
        uint32_t n = rly_batch_count(&batch);
        bool seal = n > 0 && (batch.len >= a->dc.batch_bytes || done ||
                              rly_now_ns() - oldest >= (int64_t)a->dc.batch_ms * RLY_NS_PER_MS ||
                              n >= RLY_BATCH_MAX_COUNT - 1);
        if (seal) {
            if (spool_add(a, &batch, a->next_seq) != RELAY_OK) {
                atomic_fetch_add(&a->trajs_dropped, n);
                rly_warn("actors", "out of memory: batch of %u trajectories dropped", n);
            }
            a->next_seq++;
            batch.len = 0;
        }
        if (!t || seal)
            spool_send(a);
    }
    relay_codec_buf_fini(&batch);
    relay_codec_buf_fini(&env);
    return NULL;
}

/* ---- set-up ---------------------------------------------------------------------------------- */

static int parse_args(actors *a, int argc, char **argv)
{
    rly_dist_args da = {0};
    const rly_argp p = {.prog = "relay actors", .err = stderr};
    bool remote = false, routers_set = false;
    uint32_t timeout_ms = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v;
        int r = 0;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(f, "--quiet")) {
            a->quiet = true;
            continue;
        }
        if (!strcmp(f, "--remote-inference")) {
            remote = true;
            continue;
        }
#define OPT(name) ((r = rly_arg_match(&p, argc, argv, &i, name, &v)) != 0)
        if ((r = rly_dist_arg_match(&p, argc, argv, &i, &da)) != 0)
            ;
        else if (OPT("--metrics-addr")) {
            if (r > 0 && rly_obs_cli_check_addr(v, "relay actors", a->metrics_addr,
                                                sizeof a->metrics_addr) != RELAY_OK)
                return 2;
        } else if (OPT("--ledger")) {
            if (r > 0 && strlen(v) >= sizeof a->ledger_path)
                return rly_arg_fail(&p, "--ledger: path longer than %zu bytes",
                                    sizeof a->ledger_path - 1);
            if (r > 0)
                snprintf(a->ledger_path, sizeof a->ledger_path, "%s", v);
        } else if (OPT("--actors")) {
            if (r > 0 && !rly_arg_u32(&p, "--actors", v, 1, 4096, &a->n_actors))
                return 2;
        } else if (OPT("--envs-per-actor")) {
            if (r > 0 && !rly_arg_u32(&p, "--envs-per-actor", v, 1, 4096, &a->envs_per_actor))
                return 2;
        } else if (OPT("--routers")) {
            if (r > 0 && !rly_arg_u32(&p, "--routers", v, 1, 256, &a->routers))
                return 2;
            routers_set = true;
        } else if (OPT("--infer-timeout-ms")) {
            if (r > 0 && !rly_arg_u32(&p, "--infer-timeout-ms", v, 1, 600000, &timeout_ms))
                return 2;
        } else if (OPT("--n-steps")) {
            if (r > 0 && !rly_arg_u32(&p, "--n-steps", v, 1, 1u << 20, &a->n_steps))
                return 2;
        } else if (OPT("--seed")) {
            if (r > 0 && !rly_arg_u64(&p, "--seed", v, 0, UINT64_MAX, &a->seed))
                return 2;
        } else if (OPT("--wait")) {
            if (r > 0 && !rly_arg_u32(&p, "--wait", v, 1, 86400, &a->wait_s))
                return 2;
        } else if (OPT("--max-seconds")) {
            if (r > 0 && !rly_arg_u32(&p, "--max-seconds", v, 1, 100000000, &a->max_seconds))
                return 2;
        } else
            return rly_arg_unknown(&p, f);
#undef OPT
        if (r < 0)
            return 2; /* rly_arg_match said the value is missing */
    }
    if (rly_dist_config_from_args(&a->dc, &da, "relay actors", stderr, &a->env) != RELAY_OK)
        return 2;
    if (remote)
        a->dc.remote_inference = true;
    if (timeout_ms)
        a->dc.infer_timeout_ms = timeout_ms;
    /* central inference: a router's actors step together with one request; two routers (each
       on its own worker) keep one request in flight while the other router steps its envs */
    if (a->dc.remote_inference && !routers_set)
        a->routers = a->n_actors < 2 ? 1 : 2;
    return -1;
}

/* handshake says hello and waits for the first model; RELAY_ETIMEDOUT after wait_s. */
static relay_err handshake(actors *a)
{
    relay_msg hello;
    memset(&hello, 0, sizeof hello);
    hello.kind = RELAY_MSG_HANDSHAKE;
    snprintf(hello.handshake.client_id, sizeof hello.handshake.client_id, "relay-actors-%d",
             (int)getpid());
    hello.handshake.requested_version = -1;
    relay_codec_buf req = {0}, rep = {0}, model = {0};
    relay_err e = relay_codec_encode_msg(a->enc, &hello, &req);
    int64_t deadline = rly_now_ns() + (int64_t)a->wait_s * RLY_NS_PER_S, next_note = 0;
    bool said_hello = false;
    while (!e) {
        if (!said_hello) {
            relay_err r = rly_tp_control_request(a->tp, req.data, req.len, &rep, RLY_NS_PER_S);
            said_hello = r == RELAY_OK;
        }
        int64_t rev;
        relay_err r = rly_tp_model_latest(a->tp, &model, &rev);
        if (!r) {
            relay_msg m;
            r = relay_codec_decode_msg(a->model, model.data, model.len, &m);
            if (r) {
                fprintf(stderr,
                        "relay actors: the published model cannot be read (%s): check RELAY_KEY\n",
                        relay_strerror(r));
                e = r;
                break;
            }
            if (m.kind == RELAY_MSG_MODEL_UPDATE) {
                atomic_store(&a->started, true);
                apply_model(a, &m.bundle);
                relay_msg_fini(&m);
                if (atomic_load(&a->models_applied))
                    break;
                e = RELAY_ESHAPE;
                fprintf(stderr, "relay actors: the server's model does not fit %s\n", a->env->name);
                break;
            }
            relay_msg_fini(&m);
        }
        int64_t now = rly_now_ns();
        if (stop_signal) {
            e = RELAY_ECANCELED;
            break;
        }
        if (now >= deadline) {
            fprintf(stderr, "relay actors: no model from a server on run \"%s\" after %u s\n",
                    a->dc.run, a->wait_s);
            e = RELAY_ETIMEDOUT;
            break;
        }
        if (now >= next_note) {
            fprintf(stderr,
                    "relay actors: waiting for a training server on run \"%s\" to publish a "
                    "model...\n",
                    a->dc.run);
            next_note = now + 5 * RLY_NS_PER_S;
        }
        rly_sleep_ns(100 * RLY_NS_PER_MS);
    }
    relay_codec_buf_fini(&req);
    relay_codec_buf_fini(&rep);
    relay_codec_buf_fini(&model);
    return e;
}

int rly_cli_actors(int argc, char **argv)
{
    actors *a = calloc(1, sizeof *a);
    if (!a)
        return 1;
    rly_dist_config_default(&a->dc);
    a->n_actors = 1;
    a->envs_per_actor = 8;
    a->routers = 1;
    a->wait_s = 120;
    a->drain_s = 10;
    a->seed = (uint64_t)getpid() * 7919u + (uint64_t)time(NULL);
    a->next_seq = 1;
    atomic_store(&a->version, -1);
    rly_mutex_init(&a->hmu);
    rly_mutex_init(&a->smu);
    rly_cond_init(&a->h_nonempty);
    rly_cond_init(&a->h_space);
    int rc = parse_args(a, argc, argv);
    if (rc >= 0)
        goto out_early;
    rc = 1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rly_policy_desc_from_env(&a->desc, a->env);
    if (!a->n_steps) {
        rly_learner_config lc;
        rly_learner_config_init(&lc, a->env, 1);
        a->n_steps = lc.n_steps ? lc.n_steps : lc.ppo.n_steps;
    }
    a->producer = relay_id_new();
    if (a->ledger_path[0] && !(a->ledger = fopen(a->ledger_path, "a"))) {
        fprintf(stderr, "relay actors: cannot open %s: %s\n", a->ledger_path, strerror(errno));
        goto out_early;
    }
    relay_err e = rly_dist_open_codec(&a->dc, &a->enc);
    if (!e)
        e = rly_dist_open_codec(&a->dc, &a->model);
    if (e) {
        fprintf(stderr, "relay actors: %s\n", relay_strerror(e));
        goto out;
    }
    char client[64];
    snprintf(client, sizeof client, "relay-actors-%d", (int)getpid());
    if ((e = rly_dist_open_transport(&a->dc, client, stderr, &a->tp)))
        goto out;
    rly_tp_set_callbacks(a->tp, on_ack, on_conn, a);

    relay_config ac;
    relay_config_default(&ac);
    ac.shared_model = true;
    ac.max_traj_length = a->n_steps;
    ac.routers = a->routers;
    ac.seed = a->seed;
    ac.sink_memory = false;
    if (a->dc.remote_inference) {
        ac.workers = a->routers;
        if ((e = rly_infer_client_new(a->tp, (int64_t)a->dc.infer_timeout_ms * RLY_NS_PER_MS,
                                      &a->infer)))
            goto out;
    }
    snprintf(ac.metrics_addr, sizeof ac.metrics_addr, "%s", a->metrics_addr);
    if ((e = relay_agent_new(&ac, &a->agent)) ||
        (e = rly_agent_set_consumer(a->agent, consume, a)) || (e = relay_agent_start(a->agent))) {
        fprintf(stderr, "relay actors: cannot start the agent: %s\n", relay_strerror(e));
        if (a->metrics_addr[0])
            fprintf(stderr, "relay actors: (is --metrics-addr %s free and local?)\n",
                    a->metrics_addr);
        goto out;
    }
    relay_codec *obs_codec = NULL;
    if ((e = rly_dist_open_codec(&a->dc, &obs_codec))) {
        fprintf(stderr, "relay actors: %s\n", relay_strerror(e));
        goto out;
    }
    rly_actors_obs_init(&a->obs, a->agent, obs_codec, client, snapshot, a);
    a->obs_on = true;
    if (rly_agent_obs(a->agent))
        rly_obs_cli_announce(rly_agent_obs(a->agent), "relay actors");
    if ((e = handshake(a)))
        goto out;
    if ((e = rly_tp_model_watch(a->tp, on_model, a))) {
        fprintf(stderr, "relay actors: cannot watch models: %s\n", relay_strerror(e));
        goto out;
    }
    if ((e = rly_thread_start(&a->pub_th, publisher, a, "rly-publisher")))
        goto out;
    a->pub_running = true;
    a->ids = calloc(a->n_actors, sizeof *a->ids);
    if (!a->ids) {
        e = RELAY_ENOMEM;
        goto out;
    }
    for (uint32_t i = 0; !e && i < a->n_actors; i++)
        e = rly_agent_new_actor_remote(a->agent, &a->desc, a->seed * 1000003ULL + i + 1, a->n_steps,
                                       a->infer ? rly_infer_client_hook(a->infer) : NULL,
                                       &a->ids[i]);
    for (uint32_t i = 0; !e && i < a->n_actors; i++)
        e = rly_agent_run_env_quota(a->agent, a->ids[i], a->env, a->envs_per_actor,
                                    a->seed * 1000003ULL + (uint64_t)i * a->envs_per_actor,
                                    a->n_steps, NULL);
    if (e) {
        fprintf(stderr, "relay actors: cannot start the actors: %s\n", relay_strerror(e));
        goto out;
    }
    if (!a->quiet)
        fprintf(stderr,
                "relay actors: %u actors x %u envs of %s on run \"%s\", model version %lld\n",
                a->n_actors, a->envs_per_actor, a->env->name, a->dc.run,
                (long long)atomic_load(&a->version));
    int64_t t0 = rly_now_ns(), next_line = t0 + 5 * RLY_NS_PER_S;
    const char *why = "interrupted";
    while (!stop_signal) {
        rly_sleep_ns(20 * RLY_NS_PER_MS);
        rly_actors_obs_tick(&a->obs, a->tp);
        int64_t now = rly_now_ns();
        if (atomic_load(&a->finished)) {
            why = a->finish_reason;
            break;
        }
        if (a->max_seconds && now - t0 >= (int64_t)a->max_seconds * RLY_NS_PER_S) {
            why = "time limit";
            break;
        }
        if (!a->quiet && now >= next_line) {
            next_line = now + 5 * RLY_NS_PER_S;
            fprintf(stderr,
                    "relay actors: version %lld, %llu trajectories made, %llu acked, %zu batches "
                    "spooled\n",
                    (long long)atomic_load(&a->version),
                    (unsigned long long)atomic_load(&a->trajs_made),
                    (unsigned long long)atomic_load(&a->trajs_acked), spool_pending(a));
        }
    }
    /* stop stepping (partial trajectories are flushed to consume), then drain the spool */
    atomic_store(&a->started, false);
    relay_agent_shutdown(a->agent);
    rly_mutex_lock(&a->hmu);
    a->h_closed = true;
    rly_cond_broadcast(&a->h_nonempty);
    rly_cond_broadcast(&a->h_space);
    rly_mutex_unlock(&a->hmu);
    rly_thread_join(a->pub_th);
    a->pub_running = false;
    int64_t drain_until = rly_now_ns() + (int64_t)a->drain_s * RLY_NS_PER_S;
    while (spool_pending(a) && rly_now_ns() < drain_until && stop_signal != SIGKILL) {
        spool_send(a);
        rly_sleep_ns(20 * RLY_NS_PER_MS);
    }
    /* goodbye: the server stops draining the stream once every actor process said it */
    relay_msg bye;
    memset(&bye, 0, sizeof bye);
    bye.kind = RELAY_MSG_SHUTDOWN;
    snprintf(bye.text, sizeof bye.text, "relay-actors-%d", (int)getpid());
    relay_codec_buf req = {0}, rep = {0};
    if (relay_codec_encode_msg(a->enc, &bye, &req) == RELAY_OK)
        rly_tp_control_request(a->tp, req.data, req.len, &rep, RLY_NS_PER_S);
    relay_codec_buf_fini(&req);
    relay_codec_buf_fini(&rep);
    size_t left = spool_pending(a);
    uint64_t unsent = 0;
    rly_mutex_lock(&a->smu);
    for (size_t i = 0; i < a->n_spool; i++)
        if (!a->spool[i]->acked)
            unsent += a->spool[i]->count;
    rly_mutex_unlock(&a->smu);
    fprintf(stderr,
            "relay actors: %s; trajectories: %llu made, %llu acked, %llu dropped, %llu "
            "unacknowledged at exit (%zu batches); %llu batches sent, %llu acked, %llu resent, "
            "%llu send errors; %llu models applied, %llu refused\n",
            why, (unsigned long long)atomic_load(&a->trajs_made),
            (unsigned long long)atomic_load(&a->trajs_acked),
            (unsigned long long)atomic_load(&a->trajs_dropped), (unsigned long long)unsent, left,
            (unsigned long long)atomic_load(&a->batches_sent),
            (unsigned long long)atomic_load(&a->batches_acked),
            (unsigned long long)atomic_load(&a->resends),
            (unsigned long long)atomic_load(&a->publish_errors),
            (unsigned long long)atomic_load(&a->models_applied),
            (unsigned long long)atomic_load(&a->models_refused));
    if (a->infer)
        fprintf(stderr, "relay actors: central inference: %llu requests failed\n",
                (unsigned long long)rly_infer_client_failures(a->infer));
    rc = stop_signal ? 130 : 0;
out:
    if (e == RELAY_EAUTH)
        rc = 4;
    else if (e && rc != 130)
        rc = e == RELAY_ECANCELED ? 130 : 1;
    if (a->pub_running) {
        rly_mutex_lock(&a->hmu);
        a->h_closed = true;
        rly_cond_broadcast(&a->h_nonempty);
        rly_cond_broadcast(&a->h_space);
        rly_mutex_unlock(&a->hmu);
        rly_thread_join(a->pub_th);
    }
    atomic_store(&a->started, false); /* models arriving from now on are ignored */
    if (a->infer && a->agent)
        relay_agent_shutdown(a->agent); /* no actor asks the transport for actions any more */
    rly_tp_close(a->tp);                /* no callback runs after this */
    rly_infer_client_free(a->infer);
    if (a->obs_on)
        rly_actors_obs_fini(&a->obs);
    relay_agent_free(a->agent);
    for (uint32_t i = 0; i < a->h_len; i++)
        relay_traj_free(a->hq[(a->h_head + i) % HANDOFF_CAP]);
    for (size_t i = 0; i < a->n_spool; i++) {
        free(a->spool[i]->data);
        free(a->spool[i]);
    }
    free(a->spool);
    free(a->ids);
    relay_codec_free(a->enc);
    relay_codec_free(a->model);
    if (a->ledger)
        fclose(a->ledger);
out_early:
    rly_mutex_fini(&a->hmu);
    rly_mutex_fini(&a->smu);
    rly_cond_fini(&a->h_nonempty);
    rly_cond_fini(&a->h_space);
    free(a);
    return rc;
}
