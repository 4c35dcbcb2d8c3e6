/*
 * V-trace (IMPALA, Espeholt et al. 2018) targets for a filled rollout: the off-policy correction
 * distributed training can select instead of plain GAE when trajectories lag the learner.
 * Importance weights compare the learner's current policy with the behaviour log-probabilities the
 * actors recorded; values are the behaviour critic's (recorded by the actors), bootstraps as in
 * GAE (termination 0, truncation final_value, the column's last row last_values[e]).
 *   rho_t = min(rho_bar, pi/mu), c_t = lambda * min(c_bar, pi/mu)
 *   vs_t - V_t = rho_t d_t + gamma c_t (vs_{t+1} - V_{t+1}),  d_t = r_t + gamma V_{t+1} - V_t
 *   advantage_t = rho_t (r_t + gamma vs_{t+1} - V_t),  return_t = vs_t
 * Learner thread only; uses the policy's forward workspace in chunks of its max batch.
 */
#include <math.h>

#include "core/log.h"
#include "learn/dist.h"
#include "learn/learn_internal.h"

relay_err rly_vtrace(relay_rollout *r, relay_policy *p, const float *last_values, float gamma,
                     float lambda, float rho_bar, float c_bar)
{
    if (!r || !p || !last_values || !relay_rollout_full(r)) {
        rly_error("learn", "vtrace: NULL argument or rollout not full");
        return RELAY_EINVAL;
    }
    uint32_t T = r->n_steps, N = r->n_envs, D = r->obs_dim;
    size_t n = (size_t)T * N;
    /* target log-probabilities, written into adv (overwritten below) */
    float *tlp = r->adv;
    uint32_t k = p->spec.discrete ? p->spec.n_actions : p->spec.act_dim;
    for (size_t off = 0; off < n; off += p->max_batch) {
        uint32_t m = (uint32_t)(n - off < p->max_batch ? n - off : p->max_batch);
        const float *x = rly_policy_normalize(p, r->obs + off * D, m, p->xbuf);
        const float *out;
        rly_policy_forward(p, x, m, &out, NULL);
        for (uint32_t b = 0; b < m; b++) {
            size_t i = off + b;
            if (p->spec.discrete) {
                const uint8_t *mask = r->has_mask ? r->mask + i * k : NULL;
                rly_cat_logprobs(out + (size_t)b * k, mask, k, p->lpbuf);
                tlp[i] = p->lpbuf[r->act_i[i]];
            } else {
                tlp[i] = rly_gauss_logp(r->act_f + i * k, out + (size_t)b * k,
                                        p->params + p->log_std_off, k);
            }
        }
    }
    for (uint32_t e = 0; e < N; e++) {
        float acc = 0.0f, vs_next = 0.0f;
        for (uint32_t t = T; t-- > 0;) {
            size_t i = (size_t)t * N + e;
            float ratio = expf(fminf(tlp[i] - r->logp[i], 20.0f));
            float rho = fminf(rho_bar, ratio), c = lambda * fminf(c_bar, ratio);
            bool last = t + 1 == T;
            float nv, nvs;
            bool cont;
            if (r->term[i]) {
                nv = nvs = 0.0f;
                cont = false;
            } else if (r->trunc[i]) {
                nv = nvs = r->final_value[i];
                cont = false;
            } else if (last) {
                nv = nvs = last_values[e];
                cont = false;
            } else {
                nv = r->value[i + N];
                nvs = vs_next;
                cont = true;
            }
            float v = r->value[i];
            acc = rho * (r->reward[i] + gamma * nv - v) + (cont ? gamma * c * acc : 0.0f);
            float vs = v + acc;
            r->adv[i] = rho * (r->reward[i] + gamma * nvs - v);
            r->ret[i] = vs;
            vs_next = vs;
        }
    }
    r->finished = true;
    return RELAY_OK;
}
