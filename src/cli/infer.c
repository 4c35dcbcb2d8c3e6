/* Central inference: the actor side's hook and the server's batch callback (infer.h). */
#include "cli/infer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/select.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/thread.h"

#define MOD "infer"

/* ---- client ---------------------------------------------------------------------------------- */

struct rly_infer_client {
    rly_tp *tp;
    int64_t timeout_ns;
    rly_remote_infer hook;
    _Atomic uint64_t next_id, failures;
};

typedef struct thread_bufs {
    uint8_t *req, *rep;
    size_t req_cap, rep_cap;
} thread_bufs;

static pthread_key_t bufs_key;
static pthread_once_t bufs_once = PTHREAD_ONCE_INIT;

static void bufs_free(void *p)
{
    thread_bufs *b = p;
    free(b->req);
    free(b->rep);
    free(b);
}

static void bufs_key_init(void)
{
    pthread_key_create(&bufs_key, bufs_free);
}

/* bufs_get returns this thread's buffers with room for req/rep bytes (grown, never shrunk). */
static thread_bufs *bufs_get(size_t req, size_t rep)
{
    pthread_once(&bufs_once, bufs_key_init);
    thread_bufs *b = pthread_getspecific(bufs_key);
    if (!b) {
        if (!(b = calloc(1, sizeof *b)))
            return NULL;
        if (pthread_setspecific(bufs_key, b) != 0) {
            free(b);
            return NULL;
        }
    }
    if (req > b->req_cap) {
        uint8_t *n = realloc(b->req, req);
        if (!n)
            return NULL;
        b->req = n;
        b->req_cap = req;
    }
    if (rep > b->rep_cap) {
        uint8_t *n = realloc(b->rep, rep);
        if (!n)
            return NULL;
        b->rep = n;
        b->rep_cap = rep;
    }
    return b;
}

static relay_err fail(rly_infer_client *c, relay_err e, const char *fmt, const char *detail)
{
    uint64_t n = atomic_fetch_add_explicit(&c->failures, 1, memory_order_relaxed);
    if (n < 5 || (n & (n - 1)) == 0) /* the first few, then at powers of two */
        rly_error(MOD, fmt, detail, relay_errname(e), (unsigned long long)n + 1);
    return e;
}

static relay_err client_forward(void *ctx, const rly_policy_desc *d, rly_remote_rows *rr)
{
    rly_infer_client *c = ctx;
    uint32_t na = d->discrete ? d->n_actions : 0, ad = d->discrete ? 1 : d->act_dim;
    uint32_t width = d->discrete ? 1 : ad;
    size_t need = rly_iw_req_size(rr->n, d->obs_dim, na, ad, rr->deterministic, rr->masks != NULL);
    if (need == 0)
        return fail(c, RELAY_ETOOBIG,
                    "central inference: %s request beyond the wire limits (%s; failure %llu)", "a");
    size_t rep = rly_iw_rep_size(rr->n, width);
    if (rep < RLY_IW_HDR + RLY_IW_TEXT_MAX)
        rep = RLY_IW_HDR + RLY_IW_TEXT_MAX;
    thread_bufs *b = bufs_get(need, rep);
    if (!b)
        return RELAY_ENOMEM;
    uint64_t id = atomic_fetch_add_explicit(&c->next_id, 1, memory_order_relaxed) + 1;
    size_t len = 0, rlen = 0;
    relay_err e = rly_iw_req_encode(b->req, b->req_cap, &len, id, rr->n, d->obs_dim, na, ad,
                                    rr->deterministic, rr->rand, rr->obs, rr->masks);
    if (e)
        return e;
    e = rly_tp_infer_request(c->tp, b->req, len, b->rep, b->rep_cap, &rlen, c->timeout_ns);
    if (e == RELAY_ETIMEDOUT)
        return fail(c, e,
                    "central inference: no reply from the server in time%s (%s; failure %llu): "
                    "is `relay server` running?",
                    "");
    if (e == RELAY_ECLOSED)
        return fail(c, e, "central inference: no inference server reachable%s (%s; failure %llu)",
                    "");
    if (e)
        return fail(c, e, "central inference: request failed%s (%s; failure %llu)", "");
    rly_iw_rep rp;
    if (rly_iw_rep_decode(b->rep, rlen, &rp) != RELAY_OK || rp.id != id)
        return fail(c, RELAY_EFORMAT, "central inference: malformed reply%s (%s; failure %llu)",
                    "");
    if (rp.status != RELAY_OK) {
        char text[RLY_IW_TEXT_MAX + 1];
        memcpy(text, rp.text, rp.text_len);
        text[rp.text_len] = 0;
        return fail(c, rp.status,
                    "central inference: the server refused the request: %s (%s; "
                    "failure %llu)",
                    text);
    }
    if (rp.rows != rr->n || rp.width != width)
        return fail(c, RELAY_EFORMAT, "central inference: reply shape differs%s (%s; failure %llu)",
                    "");
    if (d->discrete)
        memcpy(rr->acts_i, rp.actions, (size_t)rr->n * 4);
    else
        memcpy(rr->acts_f, rp.actions, (size_t)rr->n * width * 4);
    memcpy(rr->logp, rp.logp, (size_t)rr->n * 4);
    memcpy(rr->values, rp.value, (size_t)rr->n * 4);
    rr->version = rp.version;
    return RELAY_OK;
}

relay_err rly_infer_client_new(rly_tp *tp, int64_t timeout_ns, rly_infer_client **out)
{
    rly_infer_client *c = calloc(1, sizeof *c);
    if (!c)
        return RELAY_ENOMEM;
    c->tp = tp;
    c->timeout_ns = timeout_ns > 0 ? timeout_ns : 5 * RLY_NS_PER_S;
    c->hook.forward = client_forward;
    c->hook.ctx = c;
    *out = c;
    return RELAY_OK;
}

const rly_remote_infer *rly_infer_client_hook(rly_infer_client *c)
{
    return &c->hook;
}

uint64_t rly_infer_client_failures(rly_infer_client *c)
{
    return atomic_load_explicit(&c->failures, memory_order_relaxed);
}

void rly_infer_client_free(rly_infer_client *c)
{
    free(c);
}

/* ---- server ---------------------------------------------------------------------------------- */

typedef struct model_set {
    relay_model *pi, *vf;
    float log_std[RELAY_ENV_MAX_DIM];
    int64_t version;
} model_set;

struct rly_infer_server {
    rly_policy_desc desc;
    rly_mutex mu;
    model_set *pending; /* newest published, not yet taken (mu) */
    model_set *cur;     /* inference thread */
    relay_model_ws *ws;
    float *obs, *out, *val;
    size_t cap_rows;
    uint32_t od; /* policy output width */
};

static void set_free(model_set *m)
{
    if (!m)
        return;
    relay_model_free(m->pi);
    relay_model_free(m->vf);
    free(m);
}

relay_err rly_infer_server_new(const rly_policy_desc *desc, rly_infer_server **out)
{
    rly_infer_server *s = calloc(1, sizeof *s);
    if (!s)
        return RELAY_ENOMEM;
    s->desc = *desc;
    rly_mutex_init(&s->mu);
    if (!(s->ws = relay_model_ws_new())) {
        free(s);
        return RELAY_ENOMEM;
    }
    *out = s;
    return RELAY_OK;
}

void rly_infer_server_publish(rly_infer_server *s, int64_t version, relay_model *pi,
                              relay_model *vf, const float *log_std, uint32_t n_log_std)
{
    model_set *m = calloc(1, sizeof *m);
    if (!m) {
        relay_model_free(pi);
        relay_model_free(vf);
        return;
    }
    m->pi = pi;
    m->vf = vf;
    m->version = version;
    for (uint32_t i = 0; log_std && i < n_log_std && i < RELAY_ENV_MAX_DIM; i++)
        m->log_std[i] = log_std[i];
    rly_mutex_lock(&s->mu);
    model_set *old = s->pending;
    s->pending = m;
    rly_mutex_unlock(&s->mu);
    set_free(old);
}

static bool grow_rows(rly_infer_server *s, size_t rows)
{
    if (rows <= s->cap_rows)
        return true;
    size_t od = s->od ? s->od : 1;
    float *o = realloc(s->obs, rows * s->desc.obs_dim * sizeof(float));
    if (o)
        s->obs = o;
    float *p = realloc(s->out, rows * od * sizeof(float));
    if (p)
        s->out = p;
    float *v = realloc(s->val, rows * sizeof(float));
    if (v)
        s->val = v;
    if (!o || !p || !v)
        return false;
    s->cap_rows = rows;
    return true;
}

/* item_fits checks a request against the served policy (writes why when it does not). */
static bool item_fits(const rly_infer_server *s, rly_tp_infer_item *it)
{
    const rly_policy_desc *d = &s->desc;
    const rly_iw_req *q = &it->req;
    if (q->obs_dim != d->obs_dim) {
        snprintf(it->why, sizeof it->why, "observations of %u elements, the served policy takes %u",
                 q->obs_dim, d->obs_dim);
        return false;
    }
    if (d->discrete ? (q->n_actions != d->n_actions) : (q->n_actions || q->act_dim != d->act_dim)) {
        snprintf(it->why, sizeof it->why,
                 "action space of %u actions / %u dimensions, the served policy has %u / %u",
                 q->n_actions, q->act_dim, d->discrete ? d->n_actions : 0,
                 d->discrete ? 1 : d->act_dim);
        return false;
    }
    return true;
}

static void serve_batch(void *ctx, rly_tp_infer_item *items, size_t n, uint32_t rows)
{
    rly_infer_server *s = ctx;
    rly_mutex_lock(&s->mu);
    model_set *m = s->pending;
    s->pending = NULL;
    rly_mutex_unlock(&s->mu);
    if (m) {
        set_free(s->cur);
        s->cur = m;
        s->od = relay_model_out_dim(m->pi);
        s->cap_rows = 0; /* output width may differ: re-grow */
    }
    model_set *cur = s->cur;
    const rly_policy_desc *d = &s->desc;
    if (!cur) {
        for (size_t i = 0; i < n; i++) {
            items[i].status = RELAY_ENOMODEL;
            snprintf(items[i].why, sizeof items[i].why, "no model published yet");
        }
        return;
    }
    if (!grow_rows(s, rows)) {
        for (size_t i = 0; i < n; i++)
            items[i].status = RELAY_ENOMEM;
        return;
    }
    /* gather the rows of fitting requests into one matrix */
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        rly_tp_infer_item *it = &items[i];
        if (!item_fits(s, it)) {
            it->status = RELAY_ESHAPE;
            continue;
        }
        it->status = RELAY_OK;
        memcpy(s->obs + at * d->obs_dim, it->req.obs, (size_t)it->req.rows * d->obs_dim * 4);
        at += it->req.rows;
    }
    if (at == 0)
        return;
    relay_err e = relay_model_forward_ws(cur->pi, s->ws, s->obs, (int)at, s->out);
    if (!e && cur->vf)
        e = relay_model_forward_ws(cur->vf, s->ws, s->obs, (int)at, s->val);
    else if (!e)
        memset(s->val, 0, at * sizeof(float));
    size_t row = 0;
    uint32_t od = s->od;
    for (size_t i = 0; i < n; i++) {
        rly_tp_infer_item *it = &items[i];
        if (it->status != RELAY_OK)
            continue;
        if (e) {
            it->status = e;
            snprintf(it->why, sizeof it->why, "forward pass failed: %s", relay_strerror(e));
            continue;
        }
        it->version = cur->version;
        const rly_iw_req *q = &it->req;
        size_t base = row;
        row += q->rows;
        for (uint32_t r = 0; r < q->rows && it->status == RELAY_OK; r++) {
            const float *o = s->out + (base + r) * od;
            float lp = 0.0f;
            if (d->discrete) {
                double u = 0.0;
                if (q->draws)
                    memcpy(&u, q->rand + (size_t)r * 8, 8);
                int32_t act = 0;
                const uint8_t *mask = q->mask ? q->mask + (size_t)r * q->n_actions : NULL;
                if (rly_select_categorical_u(o, mask, d->n_actions, q->deterministic, u, &act,
                                             &lp) != RELAY_OK) {
                    it->status = RELAY_EINVAL;
                    snprintf(it->why, sizeof it->why,
                             "the action mask of row %u forbids every action", r);
                    break;
                }
                memcpy((int32_t *)it->actions + r, &act, 4);
            } else {
                double eps[RLY_SELECT_MAX_DIM];
                if (q->draws)
                    memcpy(eps, q->rand + (size_t)r * q->draws * 8, (size_t)q->draws * 8);
                const float *ls = od == 2 * d->act_dim ? o + d->act_dim : cur->log_std;
                rly_select_gaussian_eps(o, ls, d->act_dim, q->draws ? eps : NULL, NULL, NULL,
                                        (float *)it->actions + (size_t)r * d->act_dim, NULL, &lp);
            }
            it->logp[r] = lp;
            it->value[r] = s->val[base + r];
        }
    }
}

relay_err rly_infer_server_start(rly_infer_server *s, rly_tp *tp, const rly_tp_infer_opts *o)
{
    return rly_tp_infer_serve(tp, o, serve_batch, s);
}

void rly_infer_server_free(rly_infer_server *s)
{
    if (!s)
        return;
    set_free(s->pending);
    set_free(s->cur);
    relay_model_ws_free(s->ws);
    free(s->obs);
    free(s->out);
    free(s->val);
    rly_mutex_fini(&s->mu);
    free(s);
}
