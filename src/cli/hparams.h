/*
 * Algorithm hyperparameters of `relay train`: the "ppo" and "reinforce" config sections and their
 * command-line flags (SB3/CleanRL names: --learning-rate, --n-steps, --batch-size, --n-epochs,
 * --gamma, --gae-lambda, --clip-range, --ent-coef, --vf-coef, --max-grad-norm, --target-kl,
 * --net-arch 64,64, --activation, --normalize-obs, --norm-reward, ...). One table drives the config
 * keys, the flags, validation (errors name the key or flag) and config.json. A value not given
 * keeps the zoo's default for the environment; config.json records every effective value, so `relay
 * train --config RUN/config.json` repeats the run. Pure data and functions; any thread.
 */
#ifndef RLY_CLI_HPARAMS_H
#define RLY_CLI_HPARAMS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/config.h"
#include "cli/args.h"
#include "relay/learn.h"

/* rly_hparams holds one section's values; bit i of `set` says key i was given. */
typedef struct rly_hparams {
    uint64_t set;
    float learning_rate;
    char lr_schedule[16]; /* constant | linear */
    uint32_t n_steps, batch_size, n_epochs;
    float gamma, gae_lambda;
    float clip_range;
    char clip_range_schedule[16]; /* constant | linear */
    float clip_range_vf;          /* 0: off */
    float ent_coef, vf_coef;
    float max_grad_norm; /* 0: off */
    float target_kl;     /* 0: off */
    bool normalize_advantage;
    float adam_eps;
    char net_arch[64];   /* hidden widths, "64,64" */
    char activation[16]; /* tanh | relu */
    bool shared_net;     /* one trunk for policy and value heads */
    float log_std_init;
    bool normalize_obs;
    float clip_obs;
    bool norm_reward;  /* VecNormalize-style reward scaling */
    float clip_reward; /* 0: off */
} rly_hparams;

/* rly_hparams_n_keys is the number of hyperparameters (keys per section, flags). */
uint32_t rly_hparams_n_keys(void);

/*
 * rly_hparams_cfg_keys writes the config keys of section ("ppo" or "reinforce") for an
 * rly_hparams at byte offset base inside the config struct into out[rly_hparams_n_keys()]
 * (names point into static storage).
 */
void rly_hparams_cfg_keys(const char *section, size_t base, rly_cfg_key *out);

/* rly_hparams_mark_json sets the `set` bits of h for the keys present in json's section. */
void rly_hparams_mark_json(rly_hparams *h, const char *json, const char *section);

/*
 * rly_hparams_flag tries argv[*i] as a hyperparameter flag: 0 if it is not one, 1 when parsed
 * into h (and marked set), -1 after printing an error naming the flag.
 */
int rly_hparams_flag(rly_hparams *h, const rly_argp *p, int argc, char **argv, int *i);

/* rly_hparams_merge copies the keys set in src over dst (and marks them set there). */
void rly_hparams_merge(rly_hparams *dst, const rly_hparams *src);

/*
 * rly_hparams_apply validates the set keys of h (errors logged naming section.key) and applies
 * them over c (the zoo's configuration). RELAY_ECONFIG when a value is invalid.
 */
relay_err rly_hparams_apply(const rly_hparams *h, const char *section, relay_ppo_config *c);

/* rly_hparams_from_ppo fills h with every effective value of c (all keys set). */
void rly_hparams_from_ppo(rly_hparams *h, const relay_ppo_config *c);

/* rly_hparams_usage prints the hyperparameter flags for --help. */
void rly_hparams_usage(FILE *f);

#endif
