/* Test helpers for the sink tests: deterministic trajectories and temporary directories. */
#ifndef RLY_SINK_TEST_UTIL_H
#define RLY_SINK_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay/data.h"
#include "relay/sink.h"

static inline uint64_t tu_rand(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ull;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* tu_float returns a finite float: mostly random bit patterns (any exponent), sometimes simple. */
static inline float tu_float(uint64_t *s)
{
    uint64_t r = tu_rand(s);
    if (r % 4 == 0)
        return (float)((int)(r >> 8) % 2000 - 1000) / 8.0f;
    uint32_t bits = (uint32_t)(r >> 16);
    float f;
    memcpy(&f, &bits, 4);
    if (!isfinite(f))
        f = 1.5f;
    return f;
}

/* tu_fill_elems fills n elements of dtype with deterministic values. */
static inline void tu_fill_elems(void *dst, relay_dtype dt, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t r = tu_rand(s);
        switch (dt) {
        case RELAY_F32:
            ((float *)dst)[i] = tu_float(s);
            break;
        case RELAY_F64:
            ((double *)dst)[i] = (double)tu_float(s) * 1.0000001;
            break;
        case RELAY_I32:
            ((int32_t *)dst)[i] = (int32_t)(uint32_t)r;
            break;
        case RELAY_I64:
            ((int64_t *)dst)[i] = (int64_t)r;
            break;
        case RELAY_U8:
            ((uint8_t *)dst)[i] = (uint8_t)r;
            break;
        default:
            ((uint8_t *)dst)[i] = (uint8_t)(r & 1);
            break;
        }
    }
}

/* tu_make builds a trajectory of len steps for spec with values derived from seed. */
static inline relay_traj *tu_make(const relay_step_spec *spec, uint32_t len, uint64_t seed)
{
    relay_traj *t = relay_traj_new(spec, len ? len : 1, 0);
    if (!t)
        return NULL;
    uint64_t s = seed;
    t->actor = relay_id_from_seed(seed % 3, seed % 3);
    t->env_id = (int64_t)(seed % 5) - 1;
    snprintf(t->env_label, sizeof t->env_label, "%s", seed % 2 ? "Cart,Pole \"v1\"" : "plain");
    t->episode = (int64_t)seed * 7;
    t->policy_version = (int64_t)(tu_rand(&s) % 100);
    size_t ob, ab, mb;
    relay_step_spec_bytes(spec, &ob, &ab, &mb);
    uint8_t obs[4096], act[4096], mask[4096];
    float aux[RELAY_MAX_AUX];
    int64_t ts0 = 1700000000000000000ll + (int64_t)seed * 1000003;
    for (uint32_t i = 0; i < len; i++) {
        tu_fill_elems(obs, spec->obs_dtype, ob / relay_dtype_size(spec->obs_dtype), &s);
        tu_fill_elems(act, spec->act_dtype, ab / relay_dtype_size(spec->act_dtype), &s);
        if (mb)
            tu_fill_elems(mask, spec->mask_dtype, mb / relay_dtype_size(spec->mask_dtype), &s);
        for (uint32_t j = 0; j < spec->n_aux; j++)
            aux[j] = tu_float(&s);
        uint64_t r = tu_rand(&s);
        if (relay_traj_push(t, obs, act, mb ? mask : NULL, tu_float(&s), i + 1 == len && r % 2,
                            i + 1 == len && !(r % 2), aux, ts0 + (int64_t)i * 1000) != RELAY_OK) {
            relay_traj_free(t);
            return NULL;
        }
    }
    t->start_ns = ts0;
    t->end_ns = ts0 + (int64_t)(len ? len - 1 : 0) * 1000;
    return t;
}

/* tu_spec fills a spec: obs f32 [2,2], act act_dt [2], optional bool mask [3], aux logp/value. */
static inline relay_step_spec tu_spec(relay_dtype act_dt, bool mask, uint32_t n_aux)
{
    relay_step_spec s;
    memset(&s, 0, sizeof s);
    s.obs_dtype = RELAY_F32;
    s.obs_rank = 2;
    s.obs_shape[0] = 2;
    s.obs_shape[1] = 2;
    s.act_dtype = act_dt;
    s.act_rank = 1;
    s.act_shape[0] = 2;
    if (mask) {
        s.mask_dtype = RELAY_BOOL;
        s.mask_rank = 1;
        s.mask_shape[0] = 3;
    }
    static const char *names[] = {"logp", "value", "adv", "ret"};
    s.n_aux = n_aux;
    for (uint32_t j = 0; j < n_aux && j < 4; j++)
        snprintf(s.aux_names[j], RELAY_AUX_NAME_MAX, "%s", names[j]);
    return s;
}

/* tu_tmpdir creates a fresh temporary directory and writes its path into buf. */
static inline int tu_tmpdir(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/relay-sink-test-XXXXXX");
    return mkdtemp(buf) ? 0 : -1;
}

/* tu_rmtree removes a temporary directory tree created by the tests. */
static inline void tu_rmtree(const char *dir)
{
    char cmd[600];
    if (strncmp(dir, "/tmp/relay-sink-test-", 21) != 0)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* tu_read_all reads a whole stream into a malloc'd NUL-terminated buffer. */
static inline char *tu_read_all(FILE *f, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    if (!b)
        return NULL;
    size_t k;
    while ((k = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n < 2) {
            char *p = realloc(b, cap * 2);
            if (!p) {
                free(b);
                return NULL;
            }
            b = p;
            cap *= 2;
        }
    }
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

#endif
