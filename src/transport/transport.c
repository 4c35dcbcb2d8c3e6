/* rly_tp: the transport interface's dispatch to an implementation's table of operations. */
#include "transport/transport.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define MOD "transport"

struct rly_tp {
    const rly_tp_ops *ops;
    void *impl;
};

void rly_tp_config_init(rly_tp_config *c)
{
    if (!c)
        return;
    memset(c, 0, sizeof *c);
    c->run = "default";
}

bool rly_tp_run_name_ok(const char *run)
{
    if (!run || !*run)
        return false;
    size_t n = 0;
    for (const char *p = run; *p; p++, n++) {
        char ch = *p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
        if (!ok || n + 1 >= RLY_TP_RUN_MAX)
            return false;
    }
    return true;
}

relay_err rly_tp_new_impl(const rly_tp_ops *ops, void *impl, rly_tp **out)
{
    rly_tp *tp = calloc(1, sizeof *tp);
    if (!tp)
        return RELAY_ENOMEM;
    tp->ops = ops;
    tp->impl = impl;
    *out = tp;
    return RELAY_OK;
}

relay_err rly_tp_open(const rly_tp_config *c, rly_tp **out)
{
    if (!c || !out || !c->url) {
        rly_error(MOD, "open: NULL argument or no url");
        return RELAY_EINVAL;
    }
    *out = NULL;
    if (!rly_tp_run_name_ok(c->run)) {
        rly_error(MOD, "run name \"%s\" is not 1..%d letters, digits, '-' or '_'",
                  c->run ? c->run : "(null)", RLY_TP_RUN_MAX - 1);
        return RELAY_ECONFIG;
    }
    if (!strncmp(c->url, "nats://", 7) || !strncmp(c->url, "tls://", 6))
        return rly_tp_nats_open(c, out);
    if (!strncmp(c->url, "tcp://", 6) || !strncmp(c->url, "ipc://", 6))
        return rly_tp_zmq_open(c, out);
    rly_error(MOD, "url \"%s\": unknown scheme (expected nats://, tls://, tcp:// or ipc://)",
              c->url);
    return RELAY_ECONFIG;
}

void rly_tp_close(rly_tp *tp)
{
    if (!tp)
        return;
    tp->ops->close(tp->impl);
    free(tp);
}

const char *rly_tp_name(const rly_tp *tp)
{
    return tp ? tp->ops->name : "none";
}

bool rly_tp_durable(const rly_tp *tp)
{
    return tp && tp->ops->durable;
}

relay_err rly_tp_set_callbacks(rly_tp *tp, rly_tp_ack_fn ack, rly_tp_conn_fn conn, void *ctx)
{
    return tp ? tp->ops->set_callbacks(tp->impl, ack, conn, ctx) : RELAY_EINVAL;
}

relay_err rly_tp_traj_publish(rly_tp *tp, const char *msg_id, uint64_t batch_seq, const void *data,
                              size_t len, int64_t timeout_ns)
{
    if (!tp || !msg_id || (!data && len))
        return RELAY_EINVAL;
    return tp->ops->traj_publish(tp->impl, msg_id, batch_seq, data, len, timeout_ns);
}

relay_err rly_tp_traj_consume(rly_tp *tp, uint64_t start_seq)
{
    return tp ? tp->ops->traj_consume(tp->impl, start_seq ? start_seq : 1) : RELAY_EINVAL;
}

relay_err rly_tp_traj_fetch(rly_tp *tp, rly_tp_delivery *out, size_t max, size_t *n,
                            int64_t timeout_ns)
{
    if (!tp || !out || !n || !max)
        return RELAY_EINVAL;
    *n = 0;
    return tp->ops->traj_fetch(tp->impl, out, max, n, timeout_ns);
}

relay_err rly_tp_traj_ack(rly_tp *tp, rly_tp_delivery *d, bool ok)
{
    return tp && d ? tp->ops->traj_ack(tp->impl, d, ok) : RELAY_EINVAL;
}

void rly_tp_traj_release(rly_tp *tp, rly_tp_delivery *d)
{
    if (tp && d && d->handle)
        tp->ops->traj_release(tp->impl, d);
}

relay_err rly_tp_model_publish(rly_tp *tp, int64_t version, const void *data, size_t len)
{
    return tp && data ? tp->ops->model_publish(tp->impl, version, data, len) : RELAY_EINVAL;
}

relay_err rly_tp_model_latest(rly_tp *tp, relay_codec_buf *out, int64_t *version)
{
    return tp && out ? tp->ops->model_latest(tp->impl, out, version) : RELAY_EINVAL;
}

relay_err rly_tp_model_watch(rly_tp *tp, rly_tp_model_fn fn, void *ctx)
{
    return tp && fn ? tp->ops->model_watch(tp->impl, fn, ctx) : RELAY_EINVAL;
}

relay_err rly_tp_control_serve(rly_tp *tp, rly_tp_serve_fn fn, void *ctx)
{
    return tp && fn ? tp->ops->control_serve(tp->impl, fn, ctx) : RELAY_EINVAL;
}

relay_err rly_tp_control_request(rly_tp *tp, const void *req, size_t len, relay_codec_buf *reply,
                                 int64_t timeout_ns)
{
    if (!tp || (!req && len) || !reply)
        return RELAY_EINVAL;
    return tp->ops->control_request(tp->impl, req, len, reply, timeout_ns);
}

relay_err rly_tp_raw_publish(rly_tp *tp, const char *msg_id, const void *data, size_t len)
{
    if (!tp || (!data && len))
        return RELAY_EINVAL;
    return tp->ops->raw_publish(tp->impl, msg_id, data, len);
}

relay_err rly_tp_status_publish(rly_tp *tp, const void *data, size_t len)
{
    return tp ? tp->ops->status_publish(tp->impl, data, len) : RELAY_EINVAL;
}

relay_err rly_tp_infer_serve(rly_tp *tp, const rly_tp_infer_opts *o, rly_tp_infer_fn fn, void *ctx)
{
    if (!tp || !fn)
        return RELAY_EINVAL;
    return tp->ops->infer_serve(tp->impl, o, fn, ctx);
}

relay_err rly_tp_infer_request(rly_tp *tp, const void *req, size_t len, void *reply, size_t cap,
                               size_t *reply_len, int64_t timeout_ns)
{
    if (!tp || !req || len < 16 || !reply || !reply_len)
        return RELAY_EINVAL;
    return tp->ops->infer_request(tp->impl, req, len, reply, cap, reply_len, timeout_ns);
}

void rly_tp_infer_stats_get(rly_tp *tp, rly_tp_infer_stats *out)
{
    memset(out, 0, sizeof *out);
    if (tp)
        tp->ops->infer_stats(tp->impl, out);
}
