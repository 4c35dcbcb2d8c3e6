/* Train PPO on your own environment loop: a corridor walk (reach x = 10 within 40 steps). */
#include <stdio.h>
#include <stdlib.h>

#include "relay/learner.h"
#include "relay/relay.h"

#define N 8 /* environment copies, one actor each */
#define CHECK(call)                                                                                \
    do {                                                                                           \
        relay_err e_ = (call);                                                                     \
        if (e_) {                                                                                  \
            fprintf(stderr, "%s: %s\n", #call, relay_strerror(e_));                                \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static void on_update(const relay_learner_stats *st, void *user)
{
    (void)user;
    if (st->updates % 20 == 0)
        printf("update %u: %llu steps, mean return %.2f\n", st->updates,
               (unsigned long long)st->steps, st->mean_return_100);
}

int main(void)
{
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.shared_model = true; /* the learner's models go to every actor */
    relay_agent *agent;
    CHECK(relay_agent_new(&cfg, &agent));
    CHECK(relay_agent_start(agent));
    relay_space obs_space = {.dim = 2}, act_space = {.discrete = true, .n = 2, .dim = 1};
    relay_ppo_config ppo;
    relay_ppo_config_default(&ppo);
    ppo.n_steps = 32, ppo.batch_size = 64, ppo.n_epochs = 4, ppo.learning_rate = 3e-3f;
    ppo.total_timesteps = 60000;
    relay_learner_options lo = {.obs_space = &obs_space,
                                .act_space = &act_space,
                                .ppo = &ppo,
                                .n_actors = N,
                                .policy_lag = 1,
                                .seed = 1,
                                .on_update = on_update};
    relay_id ids[N];
    relay_learner *learner;
    CHECK(relay_agent_attach_learner(agent, &lo, ids, &learner));
    float x[N] = {0}, obs[N * 2], act[N], rew[N] = {0}, fin[N * 2], end_rew[N];
    int t[N] = {0};
    relay_learner_stats st;
    for (relay_learner_get_stats(learner, &st); !st.done && !st.error;
         relay_learner_get_stats(learner, &st)) {
        for (int i = 0; i < N; i++)
            obs[2 * i] = x[i] / 10.0f, obs[2 * i + 1] = 1.0f;
        CHECK(relay_agent_request_action(agent, ids, N, obs, NULL, rew, act, NULL));
        relay_id ended[N];
        bool trunc[N];
        int n_end = 0;
        for (int i = 0; i < N; i++) { /* the user's environment step */
            x[i] += act[i] > 0.5f ? 1.0f : (x[i] > 0 ? -1.0f : 0.0f);
            rew[i] = x[i] >= 10 ? 1.0f : -0.05f;
            bool term = x[i] >= 10, tr = ++t[i] >= 40 && !term;
            if (!term && !tr)
                continue;
            fin[2 * n_end] = x[i] / 10.0f, fin[2 * n_end + 1] = 1.0f;
            ended[n_end] = ids[i], trunc[n_end] = tr, end_rew[n_end++] = rew[i];
            x[i] = 0, t[i] = 0, rew[i] = 0; /* reset; the final reward goes with the ending */
        }
        if (n_end)
            CHECK(relay_agent_end_episodes(agent, ended, n_end, end_rew, trunc, fin));
    }
    printf("done: %u updates, %llu episodes, mean return %.2f (best possible 0.55)\n", st.updates,
           (unsigned long long)st.episodes, st.mean_return_100);
    CHECK(relay_learner_export_onnx(learner, "own_loop_policy.onnx"));
    relay_agent_free(agent);
    return st.mean_return_100 > 0.3f ? 0 : 1;
}
