/*
 * PPO time-to-solve: trains env (default CartPole-v1) with the zoo hyperparameters on seeds
 * 1..S and stops each run when the mean return of the last 100 episodes reaches the target.
 * Usage: bench_learn_ppo [env] [seeds] [target] [max_timesteps]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "relay/env.h"
#include "relay/learn.h"

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct run {
    double cpu0, solved_cpu;
    float target;
    int verbose;
    double solved_s;
    unsigned long long solved_steps;
} run;

static bool on_update(const relay_train_stats *s, void *user)
{
    run *r = user;
    if (r->verbose && s->updates % 20 == 0)
        fprintf(stderr, "  t=%llu ep=%llu avg100=%.1f ent=%.3f kl=%.4f ev=%.3f %.2fs\n",
                (unsigned long long)s->timesteps, (unsigned long long)s->episodes,
                s->mean_return_100, s->update.entropy, s->update.approx_kl,
                s->update.explained_variance, s->seconds);
    if (s->episodes >= 100 && s->mean_return_100 >= r->target) {
        r->solved_s = s->seconds;
        r->solved_cpu = cpu_s() - r->cpu0;
        r->solved_steps = s->timesteps;
        return false;
    }
    return true;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "CartPole-v1";
    int seeds = argc > 2 ? atoi(argv[2]) : 5;
    float target = argc > 3 ? (float)atof(argv[3]) : 475.0f;
    const relay_env_def *def = relay_env_find(name);
    relay_ppo_config cfg;
    if (!def || relay_ppo_config_zoo(&cfg, name) != RELAY_OK) {
        fprintf(stderr, "unknown env %s\n", name);
        return 2;
    }
    if (argc > 4)
        cfg.total_timesteps = strtoull(argv[4], NULL, 10);
    double times[64], cpus[64];
    int solved = 0;
    if (seeds > 64)
        seeds = 64;
    printf("env %s, target avg100 >= %.1f, budget %llu steps\n", name, target,
           (unsigned long long)cfg.total_timesteps);
    printf("seed  solved  steps     wall_s    cpu_s  final_avg100\n");
    for (int s = 1; s <= seeds; s++) {
        cfg.seed = (uint64_t)s;
        run r = {.target = target, .verbose = getenv("VERBOSE") != NULL, .solved_s = -1};
        r.cpu0 = cpu_s();
        relay_train_stats st;
        relay_err e = relay_ppo_train(def, &cfg, on_update, &r, &st, NULL);
        if (e) {
            fprintf(stderr, "train failed: %s\n", relay_strerror(e));
            return 1;
        }
        bool ok = r.solved_s >= 0;
        solved += ok;
        times[s - 1] = ok ? r.solved_s : st.seconds;
        cpus[s - 1] = ok ? r.solved_cpu : cpu_s() - r.cpu0;
        printf("%4d  %6s  %7llu  %7.2f  %7.2f  %.1f\n", s, ok ? "yes" : "no",
               (unsigned long long)st.timesteps, times[s - 1], cpus[s - 1], st.mean_return_100);
        fflush(stdout);
    }
    qsort(times, (size_t)seeds, sizeof times[0], cmp);
    qsort(cpus, (size_t)seeds, sizeof cpus[0], cmp);
    printf("solved %d/%d, wall median %.2f s, worst %.2f s; cpu median %.2f s, worst %.2f s\n",
           solved, seeds, times[seeds / 2], times[seeds - 1], cpus[seeds / 2], cpus[seeds - 1]);
    return solved == seeds ? 0 : 1;
}
