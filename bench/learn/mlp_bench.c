/* MLP throughput: 4-64-64-2 tanh forward, and forward+backward of a PPO minibatch (256). */
#include <stdio.h>
#include <time.h>

#include "learn/learn_internal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void)
{
    relay_ppo_config cfg;
    relay_ppo_config_zoo(&cfg, "CartPole-v1");
    cfg.policy.obs_dim = 4;
    cfg.policy.discrete = true;
    cfg.policy.n_actions = 2;
    cfg.policy.act_dim = 1;
    relay_ppo *p;
    if (relay_ppo_new(&cfg, &p))
        return 1;
    relay_policy *pol = relay_ppo_policy(p);
    enum { B = 256 };
    static float obs[B * 4], adv[B], ret[B], lpo[B], vo[B];
    static int32_t act[B];
    for (int i = 0; i < B * 4; i++)
        obs[i] = (float)((i * 37) % 100) / 50.0f - 1.0f;
    for (int i = 0; i < B; i++) {
        act[i] = i & 1;
        adv[i] = (float)(i % 7) - 3.0f;
        ret[i] = 1.0f;
        lpo[i] = -0.69f;
    }
    const char *isa = rly_gemm_uses_avx2() ? "avx2+fma" : "portable";
    for (int bs = 1; bs <= B; bs *= 16) {
        int iters = 2000000 / bs;
        float *v = vo;
        double t0 = now_s();
        for (int i = 0; i < iters; i++)
            relay_policy_act(pol, obs, (uint32_t)bs, NULL, false, act, NULL, lpo, v);
        double dt = now_s() - t0;
        printf("%s act (pi+vf forward + sampling) batch %3d: %.1f ns/sample\n", isa, bs,
               dt / iters / bs * 1e9);
    }
    for (int i = 0; i < B; i++)
        lpo[i] = -0.69f;
    int iters = 4000;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) {
        rly_loss_out lo;
        rly_ppo_loss_grad(p, B, obs, act, NULL, lpo, adv, ret, vo, 0.2f, &lo);
        rly_adam_step(&p->adam, pol->params, pol->grads, 1e-5f);
    }
    double dt = now_s() - t0;
    printf("%s PPO minibatch 256 forward+backward+adam: %.1f us (%.2f GFLOP/s)\n", isa,
           dt / iters * 1e6,
           3.0 * 2 * B * (4 * 64 + 64 * 64 + 64 * 2 + 4 * 64 + 64 * 64 + 64) / (dt / iters) * 1e-9);
    relay_ppo_free(p);
    return 0;
}
