/* Distributed set-up shared by `relay server` and `relay actors` (see dist.h). */
#include "cli/dist.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/config.h"
#include "relay/env.h"

void rly_dist_config_default(rly_dist_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->run, sizeof c->run, "default");
    snprintf(c->env, sizeof c->env, "CartPole-v1");
    c->max_inflight = 256;
    c->spool_bytes = 64ull << 20;
    c->batch_bytes = 96 * 1024;
    c->batch_ms = 5;
    c->replicas = 1;
    c->stream_bytes = 1ull << 30;
    c->infer_timeout_ms = 5000;
    c->infer_batch = 1024;
    c->infer_wait_us = 100;
}

/* copy_str copies a JSON string member into dst; false (with a message) if it is not one. */
static bool copy_str(const cJSON *obj, const char *name, char *dst, size_t cap, FILE *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v)
        return true;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) {
        fprintf(err, "config: transport.%s must be a string of at most %zu bytes\n", name, cap - 1);
        return false;
    }
    snprintf(dst, cap, "%s", v->valuestring);
    return true;
}

static bool copy_uint(const cJSON *obj, const char *name, uint64_t lo, uint64_t hi, uint64_t *dst,
                      FILE *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v)
        return true;
    if (!cJSON_IsNumber(v) || v->valuedouble < (double)lo || v->valuedouble > (double)hi ||
        v->valuedouble != (double)(uint64_t)v->valuedouble) {
        fprintf(err, "config: transport.%s must be an integer in %llu..%llu\n", name,
                (unsigned long long)lo, (unsigned long long)hi);
        return false;
    }
    *dst = (uint64_t)v->valuedouble;
    return true;
}

static bool env_str(const char *var, char *dst, size_t cap, FILE *err)
{
    const char *v = getenv(var);
    if (!v || !*v)
        return true;
    if (strlen(v) >= cap) {
        fprintf(err, "environment: %s is longer than %zu bytes\n", var, cap - 1);
        return false;
    }
    snprintf(dst, cap, "%s", v);
    return true;
}

relay_err rly_dist_config_load(rly_dist_config *c, const char *path, FILE *err)
{
    if (path) {
        char *text = NULL;
        relay_err e = rly_cfg_read_file(path, &text);
        if (e) {
            fprintf(err, "config: cannot read %s: %s\n", path, relay_strerror(e));
            return e;
        }
        const char *end = NULL;
        cJSON *root = cJSON_ParseWithOpts(text, &end, true);
        free(text);
        if (!root || !cJSON_IsObject(root)) {
            fprintf(err, "config: %s is not a JSON object\n", path);
            cJSON_Delete(root);
            return RELAY_EFORMAT;
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "transport");
        bool ok = true;
        if (t && !cJSON_IsObject(t)) {
            fprintf(err, "config: \"transport\" must be an object\n");
            ok = false;
        }
        if (t && ok) {
            char keyhex[80] = "";
            uint64_t inflight = c->max_inflight, spool = c->spool_bytes, bb = c->batch_bytes,
                     bms = c->batch_ms, rep = (uint64_t)c->replicas, sb = c->stream_bytes,
                     ito = c->infer_timeout_ms, ib = c->infer_batch, iw = c->infer_wait_us,
                     mc = c->max_connections;
            char inference[16] = "";
            ok =
                copy_str(t, "url", c->url, sizeof c->url, err) &&
                copy_str(t, "run", c->run, sizeof c->run, err) &&
                copy_str(t, "user", c->user, sizeof c->user, err) &&
                copy_str(t, "password", c->password, sizeof c->password, err) &&
                copy_str(t, "token", c->token, sizeof c->token, err) &&
                copy_str(t, "creds_file", c->creds_file, sizeof c->creds_file, err) &&
                copy_str(t, "ca_file", c->ca_file, sizeof c->ca_file, err) &&
                copy_str(t, "key", keyhex, sizeof keyhex, err) &&
                copy_str(t, "curve_secret_file", c->curve_secret, sizeof c->curve_secret, err) &&
                copy_str(t, "curve_server_public_file", c->curve_server_public,
                         sizeof c->curve_server_public, err) &&
                copy_str(t, "curve_clients_file", c->curve_clients, sizeof c->curve_clients, err) &&
                copy_uint(t, "max_inflight", 1, 65536, &inflight, err) &&
                copy_uint(t, "spool_bytes", 1 << 20, 1ull << 36, &spool, err) &&
                copy_uint(t, "batch_bytes", 1024, 8 << 20, &bb, err) &&
                copy_uint(t, "batch_ms", 0, 10000, &bms, err) &&
                copy_uint(t, "replicas", 1, 5, &rep, err) &&
                copy_uint(t, "stream_bytes", 1 << 20, 1ull << 44, &sb, err) &&
                copy_str(t, "inference", inference, sizeof inference, err) &&
                copy_uint(t, "infer_timeout_ms", 1, 600000, &ito, err) &&
                copy_uint(t, "infer_batch", 1, 4096, &ib, err) &&
                copy_uint(t, "infer_wait_us", 0, 1000000, &iw, err) &&
                copy_uint(t, "max_connections", 1, RLY_TP_MAX_CONNECTIONS_MAX, &mc, err);
            if (ok && inference[0]) {
                if (!strcmp(inference, "remote") || !strcmp(inference, "local")) {
                    c->remote_inference = !strcmp(inference, "remote");
                } else {
                    fprintf(err, "config: transport.inference must be \"local\" or \"remote\"\n");
                    ok = false;
                }
            }
            const cJSON *tls = cJSON_GetObjectItemCaseSensitive(t, "tls");
            if (ok && tls) {
                if (!cJSON_IsBool(tls)) {
                    fprintf(err, "config: transport.tls must be true or false\n");
                    ok = false;
                } else {
                    c->tls = cJSON_IsTrue(tls);
                }
            }
            if (ok && keyhex[0]) {
                if (relay_codec_key_from_hex(keyhex, c->key) != RELAY_OK) {
                    fprintf(err, "config: transport.key must be 64 hex characters\n");
                    ok = false;
                } else {
                    c->has_key = true;
                }
            }
            c->max_inflight = (uint32_t)inflight;
            c->spool_bytes = spool;
            c->batch_bytes = (uint32_t)bb;
            c->batch_ms = (uint32_t)bms;
            c->replicas = (int)rep;
            c->stream_bytes = sb;
            c->infer_timeout_ms = (uint32_t)ito;
            c->infer_batch = (uint32_t)ib;
            c->infer_wait_us = (uint32_t)iw;
            c->max_connections = (uint32_t)mc;
        }
        cJSON_Delete(root);
        if (!ok)
            return RELAY_ECONFIG;
    }
    if (!env_str("RELAY_NATS_USER", c->user, sizeof c->user, err) ||
        !env_str("RELAY_NATS_PASSWORD", c->password, sizeof c->password, err) ||
        !env_str("RELAY_NATS_TOKEN", c->token, sizeof c->token, err) ||
        !env_str("RELAY_NATS_CREDS", c->creds_file, sizeof c->creds_file, err) ||
        !env_str("RELAY_NATS_CA", c->ca_file, sizeof c->ca_file, err))
        return RELAY_ECONFIG;
    const char *k = getenv("RELAY_KEY");
    if (k && *k && !c->has_key) {
        if (relay_codec_key_from_hex(k, c->key) != RELAY_OK) {
            fprintf(err, "environment: RELAY_KEY must be 64 hex characters\n");
            return RELAY_ECONFIG;
        }
        c->has_key = true;
    }
    if (!rly_tp_run_name_ok(c->run)) {
        fprintf(err, "run name \"%s\" must be 1..%d letters, digits, '-' or '_'\n", c->run,
                RLY_TP_RUN_MAX - 1);
        return RELAY_ECONFIG;
    }
    return RELAY_OK;
}

int rly_dist_arg_match(const rly_argp *p, int argc, char **argv, int *i, rly_dist_args *a)
{
    static const char *const names[] = {"--nats", "--zmq", "--run", "--env", "--config"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const char *v = NULL;
        int r = rly_arg_match(p, argc, argv, i, names[k], &v);
        if (r <= 0) {
            if (r < 0)
                return r;
            continue;
        }
        const char **slot[] = {&a->url, &a->url, &a->run, &a->env, &a->config};
        *slot[k] = v;
        return 1;
    }
    return 0;
}

relay_err rly_dist_config_from_args(rly_dist_config *c, const rly_dist_args *a, const char *prog,
                                    FILE *err, const relay_env_def **env)
{
    if (rly_dist_config_load(c, a->config, err) != RELAY_OK)
        return RELAY_EINVAL;
    if (a->url)
        snprintf(c->url, sizeof c->url, "%s", a->url);
    if (a->run) {
        if (!rly_tp_run_name_ok(a->run)) {
            fprintf(err, "%s: --run \"%s\" must be 1..63 letters, digits, - or _\n", prog, a->run);
            return RELAY_EINVAL;
        }
        snprintf(c->run, sizeof c->run, "%s", a->run);
    }
    if (a->env)
        snprintf(c->env, sizeof c->env, "%s", a->env);
    if (!c->url[0]) {
        fprintf(err, "%s: --nats URL or --zmq URL is required (or transport.url in --config)\n",
                prog);
        return RELAY_EINVAL;
    }
    if (relay_env_resolve(c->env, env) != RELAY_OK) {
        fprintf(err, "%s: unknown environment \"%s\"\n", prog, c->env);
        return RELAY_EINVAL;
    }
    return RELAY_OK;
}

relay_err rly_dist_open_codec(const rly_dist_config *c, relay_codec **out)
{
    relay_codec_options o;
    relay_codec_options_default(&o);
    o.compression = RELAY_COMPRESS_LZ4;
    if (c->has_key) {
        o.has_key = true;
        o.encrypt = true;
        memcpy(o.key, c->key, RELAY_KEY_BYTES);
    }
    relay_err e = relay_codec_new(&o, out);
    memset(o.key, 0, sizeof o.key);
    return e;
}

relay_err rly_dist_open_transport(const rly_dist_config *c, const char *client, FILE *err,
                                  rly_tp **out)
{
    if (!c->url[0]) {
        fprintf(err, "no bus address: give --nats URL or --zmq URL (or transport.url in the "
                     "config)\n");
        return RELAY_ECONFIG;
    }
    rly_tp_config tc;
    rly_tp_config_init(&tc);
    tc.url = c->url;
    tc.run = c->run;
    tc.client_name = client;
    tc.user = c->user[0] ? c->user : NULL;
    tc.password = c->password[0] ? c->password : NULL;
    tc.token = c->token[0] ? c->token : NULL;
    tc.nkey_seed_file = c->creds_file[0] ? c->creds_file : NULL;
    tc.tls_ca_file = c->ca_file[0] ? c->ca_file : NULL;
    tc.tls = c->tls;
    tc.max_inflight = c->max_inflight;
    tc.replicas = c->replicas;
    tc.stream_max_bytes = c->stream_bytes;
    tc.bind = c->server;
    tc.curve_secret_file = c->curve_secret[0] ? c->curve_secret : NULL;
    tc.curve_server_public_file = c->curve_server_public[0] ? c->curve_server_public : NULL;
    tc.curve_clients_file = c->curve_clients[0] ? c->curve_clients : NULL;
    tc.max_connections = c->max_connections;
    relay_err e = rly_tp_open(&tc, out);
    bool zmq = !strncmp(c->url, "tcp://", 6) || !strncmp(c->url, "ipc://", 6);
    if (e == RELAY_EAUTH)
        fprintf(err, "cannot connect to %s: authorization failed (check the %s)\n", c->url,
                zmq ? "CURVE keys"
                : c->tls || c->ca_file[0] || !strncmp(c->url, "tls://", 6)
                    ? "NATS credentials and the TLS CA"
                    : "NATS credentials");
    else if (e == RELAY_EBUSY && zmq && !c->server)
        fprintf(err, "cannot connect to %s: the server is at its connection cap\n", c->url);
    else if (e)
        fprintf(err, "cannot connect to %s: %s\n", c->url, relay_strerror(e));
    return e;
}

static void space_to_bundle(const relay_space *s, relay_bundle_space *b)
{
    memset(b, 0, sizeof *b);
    b->discrete = s->discrete;
    b->n = s->n;
    b->dim = s->dim;
    if (!s->discrete) {
        b->has_bounds = true;
        memcpy(b->low, s->low, s->dim * sizeof(float));
        memcpy(b->high, s->high, s->dim * sizeof(float));
    }
}

relay_err rly_dist_encode_model(relay_codec *codec, const char *env_name, int64_t version,
                                const uint8_t *pi, size_t pi_len, const uint8_t *vf, size_t vf_len,
                                const float *log_std, uint32_t n_log_std, relay_codec_buf *out)
{
    const relay_env_def *env = NULL;
    relay_err e = relay_env_resolve(env_name, &env);
    if (e)
        return e;
    relay_space os, as;
    memset(&os, 0, sizeof os);
    memset(&as, 0, sizeof as);
    env->spaces(&os, &as);
    relay_msg m;
    memset(&m, 0, sizeof m);
    m.kind = RELAY_MSG_MODEL_UPDATE;
    relay_model_bundle *b = &m.bundle;
    b->version = version;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    b->created_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    snprintf(b->name, sizeof b->name, "%.40s", env->name);
    space_to_bundle(&os, &b->obs_space);
    space_to_bundle(&as, &b->act_space);
    b->onnx = (uint8_t *)pi;
    b->onnx_len = pi_len;
    b->value_onnx = (uint8_t *)vf;
    b->value_onnx_len = vf_len;
    if (n_log_std > RELAY_BUNDLE_MAX_DIM)
        return RELAY_ETOOBIG;
    b->n_log_std = n_log_std;
    if (n_log_std)
        memcpy(b->log_std, log_std, n_log_std * sizeof(float));
    return relay_codec_encode_msg(codec, &m, out);
}
