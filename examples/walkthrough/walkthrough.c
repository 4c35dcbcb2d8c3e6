/*
 * The RelayRL README walkthrough, in C: start an agent, create actors, load a model, request
 * actions in a loop, end episodes with a final reward, update the model, scale, inspect the
 * recorded trajectories, shut down.
 *
 * Usage: relay_walkthrough [MODEL_DIR_OR_ONNX]   (without a model it builds a tiny one)
 * Exit status 0 on success; every failing call prints relay_strerror and exits 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/relay.h"

#define CHECK(call)                                                                                \
    do {                                                                                           \
        relay_err e_ = (call);                                                                     \
        if (e_ != RELAY_OK) {                                                                      \
            fprintf(stderr, "%s failed: %s\n", #call, relay_strerror(e_));                         \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* tiny_model builds a 4 -> 16 -> 2 tanh policy for CartPole-shaped observations. */
static relay_bundle *tiny_model(void)
{
    uint32_t sizes[3] = {4, 16, 2};
    float w0[16 * 4], b0[16] = {0}, w1[2 * 16], b1[2] = {0};
    for (int i = 0; i < 64; i++)
        w0[i] = (float)((i * 37) % 11 - 5) / 10.0f;
    for (int i = 0; i < 32; i++)
        w1[i] = (float)((i * 17) % 7 - 3) / 10.0f;
    const float *ws[2] = {w0, w1}, *bs[2] = {b0, b1};
    relay_activation acts[2] = {RELAY_ACT_TANH, RELAY_ACT_NONE};
    relay_mlp_desc d = {2, sizes, acts, ws, bs};
    uint8_t *onnx;
    size_t len;
    CHECK(relay_mlp_to_onnx(&d, &onnx, &len));
    relay_model_meta meta = {0};
    meta.obs.dtype = RELAY_F32;
    meta.obs.rank = 1;
    meta.obs.shape[0] = 4;
    meta.act.discrete = true;
    meta.act.n = 2;
    meta.act.dtype = RELAY_I32;
    relay_bundle *b;
    CHECK(relay_bundle_new(onnx, len, &meta, &b));
    free(onnx);
    return b;
}

int main(int argc, char **argv)
{
    relay_bundle *model = NULL;
    if (argc > 1)
        CHECK(relay_bundle_load(argv[1], &model));
    else
        model = tiny_model();

    /* 1. Configure and start: 2 routers, trajectories kept in memory. */
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.routers = 2;
    snprintf(cfg.env, sizeof cfg.env, "CartPole-v1");
    relay_agent *agent;
    CHECK(relay_agent_new(&cfg, &agent));
    CHECK(relay_agent_start(agent));

    /* 2. Actors with the model. */
    enum { N = 4 };
    relay_id ids[N];
    relay_actor_options opt = {.model = model};
    CHECK(relay_agent_new_actors(agent, N, &opt, ids));
    char text[RELAY_ID_STRLEN + 1];
    printf("actors: %s ...\n", relay_id_format(ids[0], text));

    /* 3. Interact: observations in, actions out, rewards credited to the previous action. */
    const relay_env_def *env = relay_env_find("CartPole-v1");
    relay_vecenv *venv;
    CHECK(relay_vecenv_new(env, N, 42, &venv));
    float obs[N * 4], actions[N], rewards[N] = {0}, final_obs[N * 4];
    bool term[N], trunc[N];
    relay_vecenv_reset(venv, obs);
    int episodes = 0;
    for (int step = 0; step < 200; step++) {
        CHECK(relay_agent_request_action(agent, ids, N, obs, NULL, rewards, actions, NULL));
        int32_t acts[N];
        for (int i = 0; i < N; i++)
            acts[i] = (int32_t)actions[i];
        relay_vecenv_step(venv, acts, obs, rewards, term, trunc, final_obs);
        for (int i = 0; i < N; i++)
            if (term[i] || trunc[i]) {
                /* 4. End the episode with its final reward. */
                CHECK(relay_agent_flag_last_action(agent, &ids[i], 1, &rewards[i]));
                rewards[i] = 0;
                episodes++;
            }
    }
    printf("episodes finished: %d\n", episodes);

    /* 5. Update the model of every actor; versions go up by one. */
    CHECK(relay_agent_update_model(agent, model, NULL, 0));
    int64_t versions[N];
    CHECK(relay_agent_get_model_version(agent, ids, N, versions));
    printf("model versions: %lld %lld %lld %lld\n", (long long)versions[0], (long long)versions[1],
           (long long)versions[2], (long long)versions[3]);

    /* 6. Scale out and back in while keeping every actor. */
    CHECK(relay_agent_scale_throughput(agent, 2));
    CHECK(relay_agent_scale_throughput(agent, -2));

    /* 7. Collect the recorded trajectories. */
    CHECK(relay_agent_flush(agent));
    relay_traj *trajs[256];
    size_t n = 0;
    CHECK(relay_agent_drain_trajectories(agent, trajs, 256, &n));
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        total += relay_traj_return(trajs[i]);
        relay_traj_free(trajs[i]);
    }
    printf("trajectories: %zu, mean return %.1f\n", n, n ? total / (double)n : 0.0);

    /* 8. Shut down: actors flush, sinks close, threads join. */
    CHECK(relay_agent_shutdown(agent));
    relay_agent_free(agent);
    relay_vecenv_free(venv);
    relay_bundle_free(model);
    return episodes > 0 && n > 0 ? 0 : 1;
}
