/*
 * relay_vecenv: n copies of one environment stepped in lockstep with Gymnasium's TimeLimit
 * (truncated when the episode reaches max_episode_steps) and auto-reset in the same call.
 *
 * Generic path: one state block per env (state_size rounded up to 16 bytes), def->step per env.
 * CartPole-v1 fast path: the four state variables are kept as structure-of-arrays and stepped by
 * one loop the compiler vectorises; it shares rly_cartpole_advance with the scalar step so both
 * paths produce identical bits. Resets (rare) go through a second, scalar pass.
 */
#include <math.h>
#include <string.h>

#include "core/log.h"
#include "env/builtin.h"
#include "env/env_internal.h"

/* Largest vecenv: keeps every n * dim product far from overflow. */
#define VEC_MAX_ENVS (1u << 24)

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) &&                             \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
/* An AVX2 clone of the batch loop (selected at load time); no FMA, so the bits are unchanged. */
#define VEC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VEC_CLONES
#endif

struct relay_vecenv {
    const relay_env_def *def;
    uint32_t n;
    uint32_t obs_dim;
    uint32_t act_dim;
    int32_t n_actions; /* discrete action count, 0 for continuous */
    int32_t max_steps; /* 0 = no time limit */
    bool discrete;
    bool cartpole; /* structure-of-arrays fast path */
    bool started;
    bool warned;
    uint64_t seed;
    uint64_t invalid;
    size_t stride;
    unsigned char *states; /* generic path: n * stride bytes */
    int32_t *steps;        /* elapsed steps of the current episode */
    uint64_t *episodes;    /* episodes started so far, per env */
    float *act_low;
    float *act_high;
    float *act_scratch;
    float *cp; /* fast path: x[n] | x_dot[n] | theta[n] | theta_dot[n] */
};

static void *alloc_zero(size_t size)
{
    size_t rounded = (size + 63u) & ~(size_t)63u;
    void *p = aligned_alloc(64, rounded == 0 ? 64 : rounded);
    if (p != NULL)
        memset(p, 0, rounded == 0 ? 64 : rounded);
    return p;
}

relay_err relay_vecenv_new(const relay_env_def *def, uint32_t n, uint64_t seed, relay_vecenv **out)
{
    if (out == NULL) {
        rly_error("env", "relay_vecenv_new: out is NULL");
        return RELAY_EINVAL;
    }
    *out = NULL;
    if (n == 0) {
        rly_error("env", "relay_vecenv_new: n must be > 0");
        return RELAY_EINVAL;
    }
    if (n > VEC_MAX_ENVS) {
        rly_error("env", "relay_vecenv_new: n %u exceeds the limit %u", n, VEC_MAX_ENVS);
        return RELAY_ETOOBIG;
    }
    relay_space *sp = calloc(2, sizeof *sp);
    if (sp == NULL)
        return RELAY_ENOMEM;
    relay_err e =
        rly_env_def_check(def, def && def->name ? def->name : "relay_vecenv_new", &sp[0], &sp[1]);
    if (e != RELAY_OK) {
        free(sp);
        return e;
    }
    relay_vecenv *v = calloc(1, sizeof *v);
    if (v == NULL) {
        free(sp);
        return RELAY_ENOMEM;
    }
    v->def = def;
    v->n = n;
    v->seed = seed;
    v->obs_dim = sp[0].dim;
    v->act_dim = sp[1].dim;
    v->discrete = sp[1].discrete;
    v->n_actions = sp[1].discrete ? sp[1].n : 0;
    v->max_steps = def->max_episode_steps;
    v->cartpole = def == &rly_env_cartpole;
    v->stride = (def->state_size + 15u) & ~(size_t)15u;
    v->steps = alloc_zero((size_t)n * sizeof *v->steps);
    v->episodes = alloc_zero((size_t)n * sizeof *v->episodes);
    v->act_low = alloc_zero(v->act_dim * sizeof(float));
    v->act_high = alloc_zero(v->act_dim * sizeof(float));
    v->act_scratch = alloc_zero(v->act_dim * sizeof(float));
    bool ok = v->steps && v->episodes && v->act_low && v->act_high && v->act_scratch;
    if (ok && v->cartpole) {
        v->cp = alloc_zero((size_t)n * 4u * sizeof(float));
        ok = v->cp != NULL;
    } else if (ok) {
        if ((size_t)n > SIZE_MAX / v->stride) {
            ok = false;
        } else {
            v->states = alloc_zero((size_t)n * v->stride);
            ok = v->states != NULL;
        }
    }
    if (ok) {
        memcpy(v->act_low, sp[1].low, v->act_dim * sizeof(float));
        memcpy(v->act_high, sp[1].high, v->act_dim * sizeof(float));
    }
    free(sp);
    if (!ok) {
        rly_error("env", "relay_vecenv_new: out of memory for %u x %s", n, def->name);
        relay_vecenv_free(v);
        return RELAY_ENOMEM;
    }
    *out = v;
    return RELAY_OK;
}

void relay_vecenv_free(relay_vecenv *v)
{
    if (v == NULL)
        return;
    free(v->states);
    free(v->steps);
    free(v->episodes);
    free(v->act_low);
    free(v->act_high);
    free(v->act_scratch);
    free(v->cp);
    free(v);
}

uint32_t relay_vecenv_num(const relay_vecenv *v)
{
    return v ? v->n : 0;
}

const relay_env_def *relay_vecenv_def(const relay_vecenv *v)
{
    return v ? v->def : NULL;
}

uint64_t relay_vecenv_invalid_actions(const relay_vecenv *v)
{
    return v ? v->invalid : 0;
}

/* reset_one starts env i's next episode and writes its first observation to o. */
static void reset_one(relay_vecenv *v, uint32_t i, float *o)
{
    uint64_t seed = relay_env_episode_seed(v->seed + i, v->episodes[i]++);
    v->steps[i] = 0;
    if (v->cartpole) {
        uint64_t rng;
        float s[4];
        rly_cartpole_reset_values(seed, &rng, s);
        for (int k = 0; k < 4; k++) {
            v->cp[(size_t)k * v->n + i] = s[k];
            o[k] = s[k];
        }
    } else {
        v->def->reset(v->states + (size_t)i * v->stride, seed, o);
    }
}

void relay_vecenv_reset(relay_vecenv *v, float *obs)
{
    if (v == NULL || obs == NULL) {
        rly_error("env", "relay_vecenv_reset: vecenv and obs must be given");
        return;
    }
    for (uint32_t i = 0; i < v->n; i++)
        reset_one(v, i, obs + (size_t)i * v->obs_dim);
    v->started = true;
}

static void note_invalid(relay_vecenv *v, uint32_t i, double value)
{
    v->invalid++;
    if (!v->warned) {
        v->warned = true;
        rly_warn("env",
                 "%s: env %u got invalid action %g (discrete actions are clamped to [0, n), NaN "
                 "becomes 0 clipped to the bounds); further ones are only counted",
                 v->def->name, i, value);
    }
}

/* cartpole_loop steps every env of the fast path and returns nonzero if any episode ended. */
static inline unsigned cartpole_loop(uint32_t n, float *restrict px, float *restrict pxd,
                                     float *restrict pth, float *restrict pthd,
                                     int32_t *restrict steps, int32_t limit,
                                     const int32_t *restrict act, float *restrict obs,
                                     float *restrict rew, bool *restrict term, bool *restrict trunc,
                                     unsigned *restrict bad)
{
    unsigned ended = 0, badacc = 0;
    for (uint32_t i = 0; i < n; i++) {
        int32_t a = act[i];
        badacc |= (unsigned)((uint32_t)a > 1u);
        float force = a >= 1 ? RLY_CP_FORCE : -RLY_CP_FORCE;
        float x = px[i], xd = pxd[i], th = pth[i], thd = pthd[i];
        bool t = rly_cartpole_advance(&x, &xd, &th, &thd, force);
        int32_t k = steps[i] + 1;
        bool tr = k >= limit;
        px[i] = x;
        pxd[i] = xd;
        pth[i] = th;
        pthd[i] = thd;
        steps[i] = k;
        obs[4 * (size_t)i + 0] = x;
        obs[4 * (size_t)i + 1] = xd;
        obs[4 * (size_t)i + 2] = th;
        obs[4 * (size_t)i + 3] = thd;
        rew[i] = 1.0f;
        term[i] = t;
        trunc[i] = tr;
        ended |= (unsigned)(t | tr);
    }
    *bad = badacc;
    return ended;
}

/* cartpole_batch is cartpole_loop compiled once per target (AVX2 and baseline). */
VEC_CLONES static unsigned cartpole_batch(uint32_t n, float *restrict px, float *restrict pxd,
                                          float *restrict pth, float *restrict pthd,
                                          int32_t *restrict steps, int32_t limit,
                                          const int32_t *restrict act, float *restrict obs,
                                          float *restrict rew, bool *restrict term,
                                          bool *restrict trunc, unsigned *restrict bad)
{
    return cartpole_loop(n, px, pxd, pth, pthd, steps, limit, act, obs, rew, term, trunc, bad);
}

static void step_cartpole(relay_vecenv *v, const int32_t *actions, float *obs, float *rewards,
                          bool *terminated, bool *truncated, float *final_obs)
{
    uint32_t n = v->n;
    unsigned bad = 0;
    int32_t limit = v->max_steps > 0 ? v->max_steps : INT32_MAX;
    float *px = v->cp, *pxd = v->cp + n, *pth = v->cp + 2 * (size_t)n,
          *pthd = v->cp + 3 * (size_t)n;
    unsigned ended;
    /* Below one vector's width the plain inlined loop beats the dispatched, vectorised one. */
    if (n < 8)
        ended = cartpole_loop(n, px, pxd, pth, pthd, v->steps, limit, actions, obs, rewards,
                              terminated, truncated, &bad);
    else
        ended = cartpole_batch(n, px, pxd, pth, pthd, v->steps, limit, actions, obs, rewards,
                               terminated, truncated, &bad);
    if (bad) {
        for (uint32_t i = 0; i < n; i++)
            if ((uint32_t)actions[i] > 1u)
                note_invalid(v, i, actions[i]);
    }
    if (!ended)
        return;
    for (uint32_t i = 0; i < n; i++) {
        if (terminated[i] | truncated[i]) {
            float *o = obs + 4 * (size_t)i;
            if (final_obs != NULL)
                memcpy(final_obs + 4 * (size_t)i, o, 4 * sizeof(float));
            reset_one(v, i, o);
        }
    }
}

static void step_generic(relay_vecenv *v, const void *actions, float *obs, float *rewards,
                         bool *terminated, bool *truncated, float *final_obs)
{
    const relay_env_def *def = v->def;
    for (uint32_t i = 0; i < v->n; i++) {
        const void *a;
        int32_t ai;
        if (v->discrete) {
            ai = ((const int32_t *)actions)[i];
            if (ai < 0 || ai >= v->n_actions) {
                note_invalid(v, i, ai);
                ai = ai < 0 ? 0 : v->n_actions - 1;
            }
            a = &ai;
        } else {
            const float *src = (const float *)actions + (size_t)i * v->act_dim;
            for (uint32_t d = 0; d < v->act_dim; d++) {
                float x = src[d];
                if (isnan(x)) {
                    note_invalid(v, i, x);
                    x = 0.0f;
                }
                x = x < v->act_low[d] ? v->act_low[d] : x;
                x = x > v->act_high[d] ? v->act_high[d] : x;
                v->act_scratch[d] = x;
            }
            a = v->act_scratch;
        }
        float *o = obs + (size_t)i * v->obs_dim;
        bool term = false;
        def->step(v->states + (size_t)i * v->stride, a, o, &rewards[i], &term);
        int32_t k = ++v->steps[i];
        bool tr = v->max_steps > 0 && k >= v->max_steps;
        terminated[i] = term;
        truncated[i] = tr;
        if (term || tr) {
            if (final_obs != NULL)
                memcpy(final_obs + (size_t)i * v->obs_dim, o, v->obs_dim * sizeof(float));
            reset_one(v, i, o);
        }
    }
}

void relay_vecenv_step(relay_vecenv *v, const void *actions, float *obs, float *rewards,
                       bool *terminated, bool *truncated, float *final_obs)
{
    if (v == NULL || actions == NULL || obs == NULL || rewards == NULL || terminated == NULL ||
        truncated == NULL) {
        rly_error("env", "relay_vecenv_step: vecenv, actions, obs, rewards, terminated and "
                         "truncated must be given");
        return;
    }
    if (!v->started)
        relay_vecenv_reset(v, obs); /* stepping before reset starts the first episodes */
    if (v->cartpole)
        step_cartpole(v, actions, obs, rewards, terminated, truncated, final_obs);
    else
        step_generic(v, actions, obs, rewards, terminated, truncated, final_obs);
}

/* ---- snapshots ------------------------------------------------------------------------------ */

#define SNAP_MAGIC 0x53455652u /* "RVES" */
#define SNAP_HEAD 48u          /* magic, n, state_size, kind, seed, invalid, name_len + name */

bool rly_env_plain_state(const relay_env_def *def)
{
    return def && def->abi_version >= 2 && (def->flags & RELAY_ENV_PLAIN_STATE) != 0;
}

/* state_bytes is the size of the env states part of a snapshot. */
static size_t state_bytes(const relay_vecenv *v)
{
    return v->cartpole ? (size_t)v->n * 4u * sizeof(float) : (size_t)v->n * v->def->state_size;
}

static size_t name_len(const relay_vecenv *v)
{
    size_t k = strlen(v->def->name);
    return k > 255 ? 255 : k;
}

size_t rly_vecenv_snapshot_size(const relay_vecenv *v)
{
    if (!v || (!v->cartpole && !rly_env_plain_state(v->def)))
        return 0;
    return SNAP_HEAD + name_len(v) + (size_t)v->n * (sizeof(int32_t) + sizeof(uint64_t)) +
           state_bytes(v);
}

relay_err rly_vecenv_save(const relay_vecenv *v, uint8_t *buf, size_t cap)
{
    size_t need = rly_vecenv_snapshot_size(v);
    if (need == 0)
        return v ? RELAY_EUNSUPPORTED : RELAY_EINVAL;
    if (!buf || cap < need)
        return RELAY_EINVAL;
    uint32_t head[4] = {SNAP_MAGIC, v->n, (uint32_t)v->def->state_size,
                        (v->cartpole ? 1u : 0u) | (v->started ? 2u : 0u)};
    uint64_t nl = name_len(v);
    uint8_t *p = buf;
    memcpy(p, head, sizeof head);
    memcpy(p + 16, &v->seed, 8);
    memcpy(p + 24, &v->invalid, 8);
    memcpy(p + 32, &nl, 8);
    memset(p + 40, 0, 8);
    p += SNAP_HEAD;
    memcpy(p, v->def->name, nl);
    p += nl;
    memcpy(p, v->steps, (size_t)v->n * sizeof *v->steps);
    p += (size_t)v->n * sizeof *v->steps;
    memcpy(p, v->episodes, (size_t)v->n * sizeof *v->episodes);
    p += (size_t)v->n * sizeof *v->episodes;
    if (v->cartpole) {
        memcpy(p, v->cp, state_bytes(v));
    } else {
        for (uint32_t i = 0; i < v->n; i++)
            memcpy(p + (size_t)i * v->def->state_size, v->states + (size_t)i * v->stride,
                   v->def->state_size);
    }
    return RELAY_OK;
}

relay_err rly_vecenv_restore(relay_vecenv *v, const uint8_t *buf, size_t len)
{
    if (!v || !buf)
        return RELAY_EINVAL;
    size_t need = rly_vecenv_snapshot_size(v);
    if (need == 0) {
        rly_error("env", "%s cannot be restored from a snapshot (no RELAY_ENV_PLAIN_STATE)",
                  v->def->name);
        return RELAY_EUNSUPPORTED;
    }
    uint32_t head[4];
    uint64_t nl = 0;
    if (len >= SNAP_HEAD) {
        memcpy(head, buf, sizeof head);
        memcpy(&nl, buf + 32, 8);
    }
    if (len < SNAP_HEAD || head[0] != SNAP_MAGIC) {
        rly_error("env", "environment snapshot: not a vecenv snapshot (%zu bytes)", len);
        return RELAY_EFORMAT;
    }
    if (nl != name_len(v) || len < SNAP_HEAD + nl ||
        memcmp(buf + SNAP_HEAD, v->def->name, (size_t)nl) != 0) {
        rly_error("env", "environment snapshot: it is of another environment (this one is %s)",
                  v->def->name);
        return RELAY_ESHAPE;
    }
    if (head[1] != v->n || head[2] != v->def->state_size ||
        (head[3] & 1u) != (v->cartpole ? 1u : 0u)) {
        rly_error("env",
                  "environment snapshot of %s: %u copies with %u-byte states, this vecenv has %u "
                  "with %zu",
                  v->def->name, head[1], head[2], v->n, v->def->state_size);
        return RELAY_ESHAPE;
    }
    if (len != need) {
        rly_error("env", "environment snapshot of %s: %zu bytes, expected %zu", v->def->name, len,
                  need);
        return len < need ? RELAY_ETRUNCATED : RELAY_EFORMAT;
    }
    const uint8_t *p = buf + SNAP_HEAD + nl;
    const int32_t *steps = (const int32_t *)(const void *)p;
    for (uint32_t i = 0; i < v->n; i++) {
        int32_t k;
        memcpy(&k, steps + i, sizeof k);
        if (k < 0 || (v->max_steps > 0 && k >= v->max_steps)) {
            rly_error("env", "environment snapshot of %s: env %u has elapsed steps %d (limit %d)",
                      v->def->name, i, k, v->max_steps);
            return RELAY_EFORMAT;
        }
    }
    memcpy(&v->seed, buf + 16, 8);
    memcpy(&v->invalid, buf + 24, 8);
    v->started = (head[3] & 2u) != 0;
    memcpy(v->steps, p, (size_t)v->n * sizeof *v->steps);
    p += (size_t)v->n * sizeof *v->steps;
    memcpy(v->episodes, p, (size_t)v->n * sizeof *v->episodes);
    p += (size_t)v->n * sizeof *v->episodes;
    if (v->cartpole) {
        memcpy(v->cp, p, state_bytes(v));
    } else {
        for (uint32_t i = 0; i < v->n; i++)
            memcpy(v->states + (size_t)i * v->stride, p + (size_t)i * v->def->state_size,
                   v->def->state_size);
    }
    return RELAY_OK;
}
