/* Actor snapshots of `relay train`: a two-slot store per actor and the checkpoint section. */
#include "cli/train_snap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/thread.h"

#define MOD "train"
#define SECTION "checkpoint section \"actor snapshots\""

typedef struct slot {
    int64_t version; /* -1: empty */
    uint8_t *buf;
    size_t len, cap;
} slot;

typedef struct actor_snaps {
    rly_train_snaps *owner;
    slot s[2];
} actor_snaps;

struct rly_train_snaps {
    rly_mutex mu;
    rly_cond cv;
    uint32_t n;
    actor_snaps *a;
};

relay_err rly_train_snaps_new(uint32_t n_actors, rly_train_snaps **out)
{
    *out = NULL;
    rly_train_snaps *s = calloc(1, sizeof *s);
    if (!s || !(s->a = calloc(n_actors ? n_actors : 1, sizeof *s->a))) {
        free(s);
        return RELAY_ENOMEM;
    }
    s->n = n_actors;
    for (uint32_t i = 0; i < n_actors; i++) {
        s->a[i].owner = s;
        s->a[i].s[0].version = s->a[i].s[1].version = -1;
    }
    rly_mutex_init(&s->mu);
    rly_cond_init(&s->cv);
    *out = s;
    return RELAY_OK;
}

void rly_train_snaps_free(rly_train_snaps *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n; i++) {
        free(s->a[i].s[0].buf);
        free(s->a[i].s[1].buf);
    }
    free(s->a);
    rly_cond_fini(&s->cv);
    rly_mutex_fini(&s->mu);
    free(s);
}

void *rly_train_snaps_ctx(rly_train_snaps *s, uint32_t i)
{
    return s && i < s->n ? &s->a[i] : NULL;
}

void rly_train_snaps_on_pause(void *ctx, int64_t v, const uint8_t *snap, size_t len)
{
    actor_snaps *a = ctx;
    rly_train_snaps *s = a->owner;
    rly_mutex_lock(&s->mu);
    slot *d = &a->s[v & 1];
    if (d->cap < len) {
        uint8_t *nb = realloc(d->buf, len); /* once per actor and slot: sizes do not change */
        if (!nb) {
            d->version = -1;
            rly_mutex_unlock(&s->mu);
            rly_warn(MOD, "out of memory keeping an actor snapshot; the next checkpoint has none");
            return;
        }
        d->buf = nb;
        d->cap = len;
    }
    memcpy(d->buf, snap, len);
    d->len = len;
    d->version = v;
    rly_cond_broadcast(&s->cv);
    rly_mutex_unlock(&s->mu);
}

/* all_have is true when every actor holds version v (mutex held). */
static bool all_have(const rly_train_snaps *s, int64_t v)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (s->a[i].s[v & 1].version != v)
            return false;
    return true;
}

bool rly_train_snaps_wait(rly_train_snaps *s, int64_t v, int64_t timeout_ns)
{
    if (!s || v < 0)
        return false;
    int64_t deadline = rly_now_ns() + timeout_ns;
    rly_mutex_lock(&s->mu);
    bool ok;
    while (!(ok = all_have(s, v)))
        if (!rly_cond_wait_until(&s->cv, &s->mu, deadline) && !(ok = all_have(s, v)))
            break;
    rly_mutex_unlock(&s->mu);
    return ok;
}

static void put(uint8_t **p, const void *src, size_t n)
{
    memcpy(*p, src, n);
    *p += n;
}

relay_err rly_train_snaps_encode(rly_train_snaps *s, int64_t v, const char *env,
                                 uint32_t envs_per_actor, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!s || v < 0)
        return RELAY_ENOTFOUND;
    uint32_t nl = (uint32_t)strlen(env);
    rly_mutex_lock(&s->mu);
    if (!all_have(s, v)) {
        rly_mutex_unlock(&s->mu);
        return RELAY_ENOTFOUND;
    }
    size_t n = 4 + 4 + 8 + 4 + nl;
    for (uint32_t i = 0; i < s->n; i++)
        n += 8 + s->a[i].s[v & 1].len;
    uint8_t *b = malloc(n);
    if (!b) {
        rly_mutex_unlock(&s->mu);
        return RELAY_ENOMEM;
    }
    uint8_t *p = b;
    put(&p, &s->n, 4);
    put(&p, &envs_per_actor, 4);
    put(&p, &v, 8);
    put(&p, &nl, 4);
    put(&p, env, nl);
    for (uint32_t i = 0; i < s->n; i++) {
        const slot *d = &s->a[i].s[v & 1];
        uint64_t l = d->len;
        put(&p, &l, 8);
        put(&p, d->buf, d->len);
    }
    rly_mutex_unlock(&s->mu);
    *out = b;
    *len = n;
    return RELAY_OK;
}

relay_err rly_train_snaps_decode(const uint8_t *buf, size_t len, int64_t version, const char *env,
                                 uint32_t actors, uint32_t envs_per_actor, const uint8_t **snaps,
                                 size_t *lens)
{
    uint32_t na = 0, epa = 0, nl = 0;
    int64_t v = -1;
    if (len < 20) {
        rly_error(MOD, "%s is truncated (%zu bytes)", SECTION, len);
        return RELAY_ETRUNCATED;
    }
    memcpy(&na, buf, 4);
    memcpy(&epa, buf + 4, 4);
    memcpy(&v, buf + 8, 8);
    memcpy(&nl, buf + 16, 4);
    if (nl > len - 20) {
        rly_error(MOD, "%s is truncated (env name of %u bytes)", SECTION, nl);
        return RELAY_ETRUNCATED;
    }
    if (nl != strlen(env) || memcmp(buf + 20, env, nl) != 0 || na != actors ||
        epa != envs_per_actor) {
        rly_error(MOD,
                  "%s was written for %u actors x %u envs of %.*s; this run has %u x %u of %s "
                  "(resume with the same --env, --actors and --envs-per-actor)",
                  SECTION, na, epa, (int)(nl < 200 ? nl : 200), (const char *)(buf + 20), actors,
                  envs_per_actor, env);
        return RELAY_ESHAPE;
    }
    if (v != version) {
        rly_error(MOD, "%s holds version %lld, the learner's checkpoint version %lld", SECTION,
                  (long long)v, (long long)version);
        return RELAY_EFORMAT;
    }
    size_t off = 20 + nl;
    for (uint32_t i = 0; i < na; i++) {
        uint64_t l = 0;
        if (len - off < 8 || (memcpy(&l, buf + off, 8), l > len - off - 8)) {
            rly_error(MOD, "%s is truncated at actor %u", SECTION, i);
            return RELAY_ETRUNCATED;
        }
        off += 8;
        int64_t sv = -1;
        if (rly_actor_snapshot_version(buf + off, (size_t)l, &sv) != RELAY_OK || sv != v) {
            rly_error(MOD, "%s: the snapshot of actor %u is malformed (or of version %lld)",
                      SECTION, i, (long long)sv);
            return RELAY_EFORMAT;
        }
        snaps[i] = buf + off;
        lens[i] = (size_t)l;
        off += (size_t)l;
    }
    if (off != len) {
        rly_error(MOD, "%s has %zu trailing bytes", SECTION, len - off);
        return RELAY_EFORMAT;
    }
    return RELAY_OK;
}
