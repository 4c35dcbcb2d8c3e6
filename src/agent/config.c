/*
 * Agent configuration: defaults, a JSON loader (libcjson) and a JSON writer, all driven by one
 * table of keys, so the documented keys, the loader and the effective-config writer never drift.
 */
#include "agent/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/log.h"
#include "obs/obs.h"
#include "relay/sink.h"

#define MOD "config"

static const char *const backpressure_names[] = {"block", "drop_oldest", NULL};
static const char *const model_mode_names[] = {"independent", "shared", NULL};
static const char *const log_names[] = {"debug", "info", "warn", "error", "off", NULL};

#define OFF(f) offsetof(relay_config, f)
#define SZ(f) sizeof(((relay_config *)0)->f)

static const rly_cfg_key agent_keys[] = {
    {"routers", RLY_CFG_U32, OFF(routers), SZ(routers), 1, RELAY_MAX_ROUTERS, NULL},
    {"seed", RLY_CFG_U64, OFF(seed), SZ(seed), 0, UINT64_MAX, NULL},
    {"max_traj_length", RLY_CFG_U32, OFF(max_traj_length), SZ(max_traj_length), 0, 100000000, NULL},
    {"model_mode", RLY_CFG_ENUM_BOOL, OFF(shared_model), SZ(shared_model), 0, 1, model_mode_names},
    {"model_path", RLY_CFG_STR, OFF(model_path), SZ(model_path), 0, 0, NULL},
    {"env", RLY_CFG_STR, OFF(env), SZ(env), 0, 0, NULL},
    /* Queues are allocated up front (about 64 bytes a slot): 2^22 slots is about 256 MiB. */
    {"dispatcher.intake_capacity", RLY_CFG_U32, OFF(intake_capacity), SZ(intake_capacity), 2,
     1u << 22, NULL},
    {"dispatcher.pending_capacity", RLY_CFG_U32, OFF(pending_capacity), SZ(pending_capacity), 1,
     1u << 30, NULL},
    {"dispatcher.tick_ms", RLY_CFG_U32, OFF(tick_ms), SZ(tick_ms), 1, 60000, NULL},
    {"dispatcher.retry_initial_ms", RLY_CFG_U32, OFF(retry_initial_ms), SZ(retry_initial_ms), 1,
     600000, NULL},
    {"dispatcher.retry_max_ms", RLY_CFG_U32, OFF(retry_max_ms), SZ(retry_max_ms), 1, 3600000, NULL},
    {"router_queue_capacity", RLY_CFG_U32, OFF(router_queue_capacity), SZ(router_queue_capacity), 2,
     1u << 22, NULL},
    {"trajectory.buffer_capacity", RLY_CFG_U32, OFF(buffer_capacity), SZ(buffer_capacity), 1,
     1u << 24, NULL},
    {"trajectory.backpressure", RLY_CFG_ENUM_BOOL, OFF(drop_oldest), SZ(drop_oldest), 0, 1,
     backpressure_names},
    {"sinks.memory.enabled", RLY_CFG_BOOL, OFF(sink_memory), SZ(sink_memory), 0, 1, NULL},
    {"sinks.memory.per_actor", RLY_CFG_U32, OFF(memory_per_actor), SZ(memory_per_actor), 1,
     1u << 24, NULL},
    {"sinks.arrow.enabled", RLY_CFG_BOOL, OFF(sink_arrow), SZ(sink_arrow), 0, 1, NULL},
    {"sinks.arrow.batch_rows", RLY_CFG_U32, OFF(arrow_batch_rows), SZ(arrow_batch_rows), 1,
     1u << 24, NULL}, /* the Arrow sink's own limit */
    {"sinks.csv.enabled", RLY_CFG_BOOL, OFF(sink_csv), SZ(sink_csv), 0, 1, NULL},
    {"sinks.binary.enabled", RLY_CFG_BOOL, OFF(sink_binary), SZ(sink_binary), 0, 1, NULL},
    {"sinks.rotate_bytes", RLY_CFG_U64, OFF(rotate_bytes), SZ(rotate_bytes), 0, UINT64_MAX, NULL},
    {"sinks.dir", RLY_CFG_STR, OFF(sink_dir), SZ(sink_dir), 0, 0, NULL},
    {"sinks.run_name", RLY_CFG_STR, OFF(run_name), SZ(run_name), 0, 0, NULL},
    {"timeouts.request_ms", RLY_CFG_U32, OFF(request_timeout_ms), SZ(request_timeout_ms), 1,
     86400000, NULL},
    {"timeouts.shutdown_ms", RLY_CFG_U32, OFF(shutdown_timeout_ms), SZ(shutdown_timeout_ms), 1,
     86400000, NULL},
    {"log_level", RLY_CFG_STR_ENUM, OFF(log_level), SZ(log_level), 0, 0, log_names},
    {"metrics_addr", RLY_CFG_STR, OFF(metrics_addr), SZ(metrics_addr), 0, 0, NULL},
    {"dispatcher.ttl_ms.RequestInference", RLY_CFG_U32, OFF(ttl_ms[0]), sizeof(uint32_t), 1,
     86400000, NULL},
    {"dispatcher.ttl_ms.ModelVersion", RLY_CFG_U32, OFF(ttl_ms[1]), sizeof(uint32_t), 1, 86400000,
     NULL},
    {"dispatcher.ttl_ms.FlagLastInference", RLY_CFG_U32, OFF(ttl_ms[2]), sizeof(uint32_t), 1,
     86400000, NULL},
    {"dispatcher.ttl_ms.ModelHandshake", RLY_CFG_U32, OFF(ttl_ms[3]), sizeof(uint32_t), 1, 86400000,
     NULL},
    {"dispatcher.ttl_ms.SendTrajectory", RLY_CFG_U32, OFF(ttl_ms[4]), sizeof(uint32_t), 1, 86400000,
     NULL},
    {"dispatcher.ttl_ms.ModelUpdate", RLY_CFG_U32, OFF(ttl_ms[5]), sizeof(uint32_t), 1, 86400000,
     NULL},
    {"dispatcher.ttl_ms.Shutdown", RLY_CFG_U32, OFF(ttl_ms[6]), sizeof(uint32_t), 1, 86400000,
     NULL},
    {"dispatcher.ttl_ms.RunEnv", RLY_CFG_U32, OFF(ttl_ms[7]), sizeof(uint32_t), 1, 86400000, NULL},
    {"dispatcher.send_timeout_ms", RLY_CFG_U32, OFF(send_timeout_ms), SZ(send_timeout_ms), 1,
     86400000, NULL},
    {"workers", RLY_CFG_U32, OFF(workers), SZ(workers), 0, 1024, NULL},
};

const rly_cfg_key *rly_agent_config_keys(size_t *n)
{
    *n = sizeof agent_keys / sizeof agent_keys[0];
    return agent_keys;
}

void relay_config_default(relay_config *c)
{
    if (!c)
        return;
    memset(c, 0, sizeof *c);
    c->routers = 1;
    c->max_traj_length = 1000;
    c->intake_capacity = 65536;
    c->pending_capacity = 65536;
    c->tick_ms = 50;
    c->retry_initial_ms = 100;
    c->retry_max_ms = 800;
    static const uint32_t ttl_s[8] = {10, 15, 20, 30, 30, 60, 60, 30};
    for (int i = 0; i < 8; i++)
        c->ttl_ms[i] = ttl_s[i] * 1000;
    c->router_queue_capacity = 16384;
    c->buffer_capacity = 1024;
    c->sink_memory = true;
    c->memory_per_actor = 1000;
    c->arrow_batch_rows = RELAY_ARROW_BATCH_ROWS_DEFAULT;
    snprintf(c->sink_dir, sizeof c->sink_dir, "trajectories");
    c->request_timeout_ms = 10000;
    c->shutdown_timeout_ms = 30000;
    c->send_timeout_ms = 5000;
    snprintf(c->log_level, sizeof c->log_level, "warn");
}

/* ---- generic table engine ------------------------------------------------------------------ */

static int enum_index(const char *const *names, const char *s)
{
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

static relay_err bad(const char *key, const char *why)
{
    rly_error(MOD, "invalid value for \"%s\": %s", key, why);
    return RELAY_ECONFIG;
}

/* set_value stores one JSON value into the field described by k. */
static relay_err set_value(void *base, const rly_cfg_key *k, const cJSON *v)
{
    char *field = (char *)base + k->offset;
    char why[160];
    switch (k->type) {
    case RLY_CFG_U64:
        if (cJSON_IsString(v)) {
            /* 64-bit values above 2^53 do not survive a JSON number: they travel as strings. */
            const char *t = v->valuestring;
            size_t len = strlen(t);
            bool digits = len > 0 && len <= 20;
            for (size_t i = 0; i < len && digits; i++)
                digits = t[i] >= '0' && t[i] <= '9';
            errno = 0;
            unsigned long long u = digits ? strtoull(t, NULL, 10) : 0;
            if (!digits || errno == ERANGE || u < k->min || u > k->max) {
                snprintf(why, sizeof why,
                         "expected an integer in [%llu, %llu] (a number, or decimal digits in a "
                         "string), got \"%.40s\"",
                         (unsigned long long)k->min, (unsigned long long)k->max, t);
                return bad(k->name, why);
            }
            *(uint64_t *)field = u;
            return RELAY_OK;
        }
        if (cJSON_IsNumber(v) && fabs(v->valuedouble) >= RLY_CFG_EXACT_MAX + 1.0) {
            snprintf(why, sizeof why,
                     "%.17g is above 2^53 - 1 = 9007199254740991, where JSON numbers lose "
                     "precision; write it as a string of decimal digits",
                     v->valuedouble);
            return bad(k->name, why);
        }
        /* fall through */
    case RLY_CFG_U32: {
        if (!cJSON_IsNumber(v))
            return bad(k->name, "expected a number");
        double d = v->valuedouble;
        if (d < 0 || d >= RLY_CFG_EXACT_MAX + 1.0 || d != (double)(uint64_t)d ||
            d < (double)k->min || d > (double)k->max) {
            snprintf(why, sizeof why, "expected an integer in [%llu, %llu], got %g",
                     (unsigned long long)k->min, (unsigned long long)k->max, d);
            return bad(k->name, why);
        }
        if (k->type == RLY_CFG_U32)
            *(uint32_t *)field = (uint32_t)d;
        else
            *(uint64_t *)field = (uint64_t)d;
        return RELAY_OK;
    }
    case RLY_CFG_F32: {
        if (!cJSON_IsNumber(v))
            return bad(k->name, "expected a number");
        *(float *)field = (float)v->valuedouble;
        return RELAY_OK;
    }
    case RLY_CFG_BOOL:
        if (!cJSON_IsBool(v))
            return bad(k->name, "expected true or false");
        *(bool *)field = cJSON_IsTrue(v);
        return RELAY_OK;
    case RLY_CFG_STR:
    case RLY_CFG_STR_ENUM: {
        if (!cJSON_IsString(v))
            return bad(k->name, "expected a string");
        if (strlen(v->valuestring) >= k->size)
            return bad(k->name, "string too long");
        if (k->type == RLY_CFG_STR_ENUM && enum_index(k->names, v->valuestring) < 0) {
            snprintf(why, sizeof why, "unknown choice \"%s\"", v->valuestring);
            return bad(k->name, why);
        }
        memcpy(field, v->valuestring, strlen(v->valuestring) + 1);
        return RELAY_OK;
    }
    case RLY_CFG_ENUM_BOOL: {
        if (!cJSON_IsString(v))
            return bad(k->name, "expected a string");
        int i = enum_index(k->names, v->valuestring);
        if (i < 0) {
            snprintf(why, sizeof why, "unknown choice \"%s\" (expected \"%s\" or \"%s\")",
                     v->valuestring, k->names[0], k->names[1]);
            return bad(k->name, why);
        }
        *(bool *)field = i == 1;
        return RELAY_OK;
    }
    }
    return RELAY_EINTERNAL;
}

static const rly_cfg_key *find_key(const rly_cfg_key *keys, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].name, path) == 0)
            return &keys[i];
    return NULL;
}

/* has_prefix reports whether some key lives under "path." (so path is an object). */
static bool is_section(const rly_cfg_key *keys, size_t n, const char *path)
{
    size_t len = strlen(path);
    for (size_t i = 0; i < n; i++)
        if (strncmp(keys[i].name, path, len) == 0 && keys[i].name[len] == '.')
            return true;
    return false;
}

static relay_err walk(void *base, const rly_cfg_key *keys, size_t n, const cJSON *obj,
                      const char *prefix)
{
    for (const cJSON *it = obj->child; it; it = it->next) {
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", it->string);
        const rly_cfg_key *k = find_key(keys, n, path);
        if (k) {
            relay_err e = set_value(base, k, it);
            if (e)
                return e;
        } else if (cJSON_IsObject(it) && is_section(keys, n, path)) {
            relay_err e = walk(base, keys, n, it, path);
            if (e)
                return e;
        } else {
            rly_warn(MOD, "unknown configuration key \"%s\" (ignored)", path);
        }
    }
    return RELAY_OK;
}

relay_err rly_cfg_parse(void *base, const rly_cfg_key *keys, size_t n, const char *json)
{
    if (!base || !json)
        return RELAY_EINVAL;
    /* The whole text must be one JSON value: trailing garbage is an error, not ignored. */
    cJSON *root = cJSON_ParseWithOpts(json, NULL, true);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json ? (size_t)(at - json) : 0;
        rly_error(MOD, "malformed JSON at byte %zu near: %.40s", off, at ? at : "?");
        return RELAY_EFORMAT;
    }
    relay_err e = RELAY_OK;
    if (!cJSON_IsObject(root)) {
        rly_error(MOD, "the configuration must be a JSON object");
        e = RELAY_ECONFIG;
    } else {
        e = walk(base, keys, n, root, "");
    }
    cJSON_Delete(root);
    return e;
}

relay_err rly_cfg_read_file(const char *path, char **text)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        rly_error(MOD, "cannot open %s: %s", path, strerror(errno));
        return RELAY_EIO;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (16u << 20)) {
                free(buf);
                fclose(f);
                rly_error(MOD, "%s is larger than 16 MiB", path);
                return RELAY_ETOOBIG;
            }
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return RELAY_ENOMEM;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096)
            break;
    }
    bool err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        rly_error(MOD, "cannot read %s", path);
        return RELAY_EIO;
    }
    buf[len] = '\0';
    *text = buf;
    return RELAY_OK;
}

/* ensure_path returns the object at "a.b" of path "a.b.c", creating it. */
static cJSON *ensure_parent(cJSON *root, const char *name, const char **leaf)
{
    cJSON *cur = root;
    char part[128];
    const char *p = name;
    const char *dot;
    while ((dot = strchr(p, '.'))) {
        size_t l = (size_t)(dot - p) < sizeof part - 1 ? (size_t)(dot - p) : sizeof part - 1;
        memcpy(part, p, l);
        part[l] = '\0';
        cJSON *next = cJSON_GetObjectItemCaseSensitive(cur, part);
        if (!next)
            next = cJSON_AddObjectToObject(cur, part);
        cur = next;
        p = dot + 1;
    }
    *leaf = p;
    return cur;
}

/* short_float returns the shortest decimal that reads back as f exactly (3e-4, not 0.000300000014),
   so config.json stays readable and still round-trips bit for bit. */
static double short_float(float f)
{
    char buf[32];
    for (int prec = 6; isfinite(f) && prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f)
            return d;
    }
    return (double)f;
}

relay_err rly_cfg_to_json(const void *base, const rly_cfg_key *keys, size_t n, cJSON *root)
{
    for (size_t i = 0; i < n; i++) {
        const rly_cfg_key *k = &keys[i];
        const char *leaf;
        cJSON *parent = ensure_parent(root, k->name, &leaf);
        if (!parent)
            return RELAY_ENOMEM;
        const char *field = (const char *)base + k->offset;
        switch (k->type) {
        case RLY_CFG_U32:
            cJSON_AddNumberToObject(parent, leaf, *(const uint32_t *)field);
            break;
        case RLY_CFG_U64: {
            uint64_t u = *(const uint64_t *)field;
            char text[24];
            snprintf(text, sizeof text, "%llu", (unsigned long long)u);
            /* Raw digits: cJSON would print a double with 15 significant digits. */
            if (u <= RLY_CFG_EXACT_MAX)
                cJSON_AddRawToObject(parent, leaf, text);
            else
                cJSON_AddStringToObject(parent, leaf, text);
            break;
        }
        case RLY_CFG_F32:
            cJSON_AddNumberToObject(parent, leaf, short_float(*(const float *)field));
            break;
        case RLY_CFG_BOOL:
            cJSON_AddBoolToObject(parent, leaf, *(const bool *)field);
            break;
        case RLY_CFG_STR:
        case RLY_CFG_STR_ENUM:
            cJSON_AddStringToObject(parent, leaf, field);
            break;
        case RLY_CFG_ENUM_BOOL:
            cJSON_AddStringToObject(parent, leaf, k->names[*(const bool *)field ? 1 : 0]);
            break;
        }
    }
    return RELAY_OK;
}

relay_err relay_config_parse_json(relay_config *cfg, const char *json)
{
    if (!cfg || !json)
        return RELAY_EINVAL;
    relay_config tmp = *cfg;
    relay_err e = rly_cfg_parse(&tmp, agent_keys, sizeof agent_keys / sizeof agent_keys[0], json);
    if (e == RELAY_OK)
        e = rly_config_validate(&tmp);
    if (e == RELAY_OK)
        *cfg = tmp; /* nothing changes unless everything is valid */
    return e;
}

relay_err relay_config_load_json(relay_config *cfg, const char *path)
{
    if (!cfg || !path)
        return RELAY_EINVAL;
    char *text = NULL;
    relay_err e = rly_cfg_read_file(path, &text);
    if (e)
        return e;
    e = relay_config_parse_json(cfg, text);
    if (e)
        rly_error(MOD, "configuration %s rejected: %s", path, relay_strerror(e));
    free(text);
    return e;
}

relay_err relay_config_to_json(const relay_config *cfg, char **json)
{
    if (!cfg || !json)
        return RELAY_EINVAL;
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return RELAY_ENOMEM;
    relay_err e = rly_cfg_to_json(cfg, agent_keys, sizeof agent_keys / sizeof agent_keys[0], root);
    if (e == RELAY_OK) {
        *json = cJSON_Print(root);
        if (!*json)
            e = RELAY_ENOMEM;
    }
    cJSON_Delete(root);
    return e;
}

relay_err rly_config_validate(const relay_config *c)
{
    /* Every numeric key's documented range holds for a relay_config filled in C too, not only
       for one read from JSON. */
    for (size_t i = 0; i < sizeof agent_keys / sizeof agent_keys[0]; i++) {
        const rly_cfg_key *k = &agent_keys[i];
        if (k->type != RLY_CFG_U32 && k->type != RLY_CFG_U64)
            continue;
        const char *field = (const char *)c + k->offset;
        uint64_t v = k->type == RLY_CFG_U32 ? *(const uint32_t *)field : *(const uint64_t *)field;
        if (v < k->min || v > k->max) {
            char why[128];
            snprintf(why, sizeof why, "%llu is outside [%llu, %llu]", (unsigned long long)v,
                     (unsigned long long)k->min, (unsigned long long)k->max);
            return bad(k->name, why);
        }
    }
    if (c->routers == 0)
        return bad("routers", "at least one router is required");
    if (c->routers > RELAY_MAX_ROUTERS)
        return bad("routers", "at most 4096 routers (RELAY_MAX_ROUTERS)");
    if (c->workers > 1024)
        return bad("workers", "at most 1024 worker threads");
    if (c->retry_initial_ms > c->retry_max_ms)
        return bad("dispatcher.retry_initial_ms", "must not exceed dispatcher.retry_max_ms");
    if ((c->sink_arrow || c->sink_csv || c->sink_binary) && c->sink_dir[0] == '\0')
        return bad("sinks.dir", "a directory is required when a file sink is enabled");
    if (c->metrics_addr[0]) {
        char host[256], err[320];
        uint16_t port;
        if (rly_obs_parse_addr(c->metrics_addr, host, sizeof host, &port, err, sizeof err))
            return bad("metrics_addr", err);
    }
    if (relay_log_level_parse(c->log_level) < 0)
        return bad("log_level", "expected debug, info, warn, error or off");
    return RELAY_OK;
}
