/* rly_pool: arrival-ordered trajectory FIFO packed into rollouts (see pool.h). */
#include "learn/pool.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

#define MOD "learner"
#define EPS_CAP 4096

relay_err rly_pool_init(rly_pool *p, rly_fate_fn fate, void *ctx)
{
    memset(p, 0, sizeof *p);
    p->fate = fate;
    p->fate_ctx = ctx;
    p->eps_cap = EPS_CAP;
    p->eps = calloc(p->eps_cap, sizeof *p->eps);
    return p->eps ? RELAY_OK : RELAY_ENOMEM;
}

static rly_pool_piece *at(const rly_pool *p, uint32_t i)
{
    return &p->q[(p->head + i) % p->cap];
}

static void report(rly_pool *p, uint64_t tag, rly_fate f, uint32_t rows)
{
    if (p->fate)
        p->fate(p->fate_ctx, tag, f, rows);
}

void rly_pool_fini(rly_pool *p)
{
    for (uint32_t i = 0; i < p->len; i++) {
        rly_pool_piece *x = at(p, i);
        report(p, x->tag, RLY_FATE_UNUSED, x->t->len - x->off);
        relay_traj_free(x->t);
    }
    free(p->q);
    free(p->eps);
    memset(p, 0, sizeof *p);
}

static uint64_t mix(relay_id a, int64_t env)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)env;
    for (int i = 0; i < 16; i++)
        h = (h ^ a.bytes[i]) * 1099511628211ull;
    return h;
}

bool rly_pool_episode(rly_pool *p, const relay_traj *t, float *ret)
{
    if (!t->len)
        return false;
    uint32_t mask = p->eps_cap - 1, i = (uint32_t)mix(t->actor, t->env_id) & mask;
    rly_pool_ep *e = NULL;
    for (uint32_t k = 0; k < p->eps_cap; k++, i = (i + 1) & mask) {
        rly_pool_ep *c = &p->eps[i];
        if (!c->used || (c->env_id == t->env_id && relay_id_eq(c->actor, t->actor))) {
            e = c;
            break;
        }
    }
    if (!e) { /* table full of sources: start over (returns of open episodes are lost) */
        memset(p->eps, 0, p->eps_cap * sizeof *p->eps);
        e = &p->eps[(uint32_t)mix(t->actor, t->env_id) & mask];
    }
    if (!e->used || t->episode > e->episode) {
        e->used = true;
        e->actor = t->actor;
        e->env_id = t->env_id;
        e->episode = t->episode;
        e->open = true;
        e->sum = 0;
    } else if (t->episode < e->episode || !e->open) {
        return false;
    }
    for (uint32_t r = 0; r < t->len; r++)
        e->sum += t->reward[r];
    uint32_t last = t->len - 1;
    int cut = -1;
    for (uint32_t a = 0; a < t->spec.n_aux; a++)
        if (!strcmp(t->spec.aux_names[a], "cut"))
            cut = (int)a;
    bool was_cut = cut >= 0 && t->aux[(size_t)last * t->spec.n_aux + (size_t)cut] != 0.0f;
    if (!(t->terminated[last] || (t->truncated[last] && !was_cut)))
        return false;
    e->open = false;
    *ret = (float)e->sum;
    return true;
}

static int aux_index(const relay_step_spec *s, const char *name)
{
    for (uint32_t i = 0; i < s->n_aux; i++)
        if (!strcmp(s->aux_names[i], name))
            return (int)i;
    return -1;
}

relay_err rly_pool_push(rly_pool *p, relay_traj *t, uint64_t tag)
{
    if (p->len == p->cap) {
        uint32_t nc = p->cap ? 2 * p->cap : 64;
        rly_pool_piece *nq = malloc(nc * sizeof *nq);
        if (!nq)
            return RELAY_ENOMEM;
        for (uint32_t i = 0; i < p->len; i++)
            nq[i] = *at(p, i);
        free(p->q);
        p->q = nq;
        p->cap = nc;
        p->head = 0;
    }
    rly_pool_piece *x = &p->q[(p->head + p->len) % p->cap];
    *x = (rly_pool_piece){.t = t,
                          .tag = tag,
                          .off = 0,
                          .a_logp = aux_index(&t->spec, "logp"),
                          .a_value = aux_index(&t->spec, "value"),
                          .a_boot = aux_index(&t->spec, "bootstrap"),
                          .a_cut = aux_index(&t->spec, "cut")};
    p->len++;
    p->rows += t->len;
    p->next_tag = tag + 1;
    return RELAY_OK;
}

void rly_pool_skip(rly_pool *p, uint64_t tag)
{
    p->next_tag = tag + 1;
}

static float aux_at(const relay_traj *t, uint32_t row, int col)
{
    return col < 0 ? 0.0f : t->aux[(size_t)row * t->spec.n_aux + (size_t)col];
}

relay_err rly_pool_fill(rly_pool *p, relay_rollout *ro, uint32_t n_envs, uint32_t n_steps,
                        uint32_t obs_dim, bool discrete, uint32_t act_dim, uint32_t n_actions,
                        float *last_values)
{
    if (p->rows < (uint64_t)n_envs * n_steps)
        return RELAY_EEMPTY;
    size_t ob = (size_t)obs_dim * sizeof(float);
    size_t ab = discrete ? sizeof(int32_t) : (size_t)act_dim * sizeof(float);
    size_t mb = n_actions;
    for (uint32_t e = 0; e < n_envs; e++) {
        for (uint32_t taken = 0; taken < n_steps; taken++) {
            rly_pool_piece *x = at(p, 0);
            const relay_traj *t = x->t;
            uint32_t r = x->off;
            bool last_row = taken + 1 == n_steps;
            bool piece_end = r + 1 == t->len;
            bool term = t->terminated[r];
            /* every piece is self-contained: its end is a termination or a truncation */
            bool trunc = !term && piece_end;
            float boot = aux_at(t, r, x->a_boot);
            if (trunc && !t->truncated[r])
                boot = aux_at(t, r, x->a_value); /* no successor recorded: V(s) stands in */
            const float *obs = (const float *)(t->obs + (size_t)r * ob);
            const void *act = t->act + (size_t)r * ab;
            const uint8_t *mask = t->mask ? t->mask + (size_t)r * mb : NULL;
            relay_err err =
                relay_rollout_add_env(ro, e, obs, act, mask, aux_at(t, r, x->a_logp),
                                      aux_at(t, r, x->a_value), t->reward[r], term, trunc, boot);
            if (err)
                return err;
            if (last_row)
                last_values[e] = term ? 0.0f : trunc ? boot : aux_at(t, r + 1, x->a_value);
            x->off++;
            p->rows--;
            if (x->off == t->len) {
                report(p, x->tag, RLY_FATE_LEARNED, t->len);
                relay_traj_free(x->t);
                p->head = (p->head + 1) % p->cap;
                p->len--;
            }
        }
    }
    return RELAY_OK;
}

uint64_t rly_pool_purge(rly_pool *p, int64_t min_version, uint64_t *trajs)
{
    uint64_t rows = 0, n = 0;
    uint32_t w = 0, len = p->len;
    for (uint32_t i = 0; i < len; i++) {
        rly_pool_piece x = *at(p, i);
        if (x.t->policy_version < min_version) {
            uint32_t left = x.t->len - x.off;
            rows += left;
            n++;
            p->rows -= left;
            report(p, x.tag, RLY_FATE_STALE, left);
            relay_traj_free(x.t);
        } else {
            *at(p, w++) = x;
        }
    }
    p->len = w;
    if (trajs)
        *trajs = n;
    return rows;
}

void rly_pool_cursor(const rly_pool *p, uint64_t *tag, uint32_t *row)
{
    if (p->len) {
        *tag = at(p, 0)->tag;
        *row = at(p, 0)->off;
    } else {
        *tag = p->next_tag;
        *row = 0;
    }
}
