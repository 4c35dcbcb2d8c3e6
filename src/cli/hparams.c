/* Hyperparameter table of `relay train`: config sections "ppo"/"reinforce" and their flags. */
#include "cli/hparams.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "core/log.h"

#define MOD "train"

typedef enum hp_type { HP_F32, HP_U32, HP_BOOL, HP_ENUM, HP_ARCH } hp_type;

/* hp_key is one hyperparameter: its key, flag, field, range and help line. */
typedef struct hp_key {
    const char *key, *flag;
    hp_type type;
    size_t off, size;
    double min, max; /* inclusive range, or exclusive at min when min_open */
    bool min_open;
    const char *const *names; /* HP_ENUM choices */
    const char *help;
} hp_key;

static const char *const schedules[] = {"constant", "linear", NULL};
static const char *const activations[] = {"tanh", "relu", NULL};
static const char *const bools[] = {"false", "true", NULL};

#define F(f) offsetof(rly_hparams, f), sizeof(((rly_hparams *)0)->f)

static const hp_key hp_keys[] = {
    {"learning_rate", "--learning-rate", HP_F32, F(learning_rate), 0, 10, true, NULL,
     "Adam step size (> 0)"},
    {"lr_schedule", "--lr-schedule", HP_ENUM, F(lr_schedule), 0, 0, false, schedules,
     "constant | linear (anneal to 0 over the budget)"},
    {"n_steps", "--n-steps", HP_U32, F(n_steps), 1, 1u << 20, false, NULL,
     "rows per environment per update"},
    {"batch_size", "--batch-size", HP_U32, F(batch_size), 1, 1u << 24, false, NULL,
     "minibatch size (PPO)"},
    {"n_epochs", "--n-epochs", HP_U32, F(n_epochs), 1, 10000, false, NULL,
     "passes over each rollout (PPO)"},
    {"gamma", "--gamma", HP_F32, F(gamma), 0, 1, false, NULL, "discount factor in [0, 1]"},
    {"gae_lambda", "--gae-lambda", HP_F32, F(gae_lambda), 0, 1, false, NULL,
     "GAE lambda in [0, 1]"},
    {"clip_range", "--clip-range", HP_F32, F(clip_range), 0, 10, true, NULL,
     "PPO ratio clip (> 0)"},
    {"clip_range_schedule", "--clip-range-schedule", HP_ENUM, F(clip_range_schedule), 0, 0, false,
     schedules, "constant | linear"},
    {"clip_range_vf", "--clip-range-vf", HP_F32, F(clip_range_vf), 0, 1e6, false, NULL,
     "value clip (0: off)"},
    {"ent_coef", "--ent-coef", HP_F32, F(ent_coef), 0, 1e3, false, NULL, "entropy coefficient"},
    {"vf_coef", "--vf-coef", HP_F32, F(vf_coef), 0, 1e3, false, NULL, "value-loss coefficient"},
    {"max_grad_norm", "--max-grad-norm", HP_F32, F(max_grad_norm), 0, 1e9, false, NULL,
     "gradient-norm clip (0: off)"},
    {"target_kl", "--target-kl", HP_F32, F(target_kl), 0, 1e3, false, NULL,
     "early stop when approx KL > 1.5 x this (0: off)"},
    {"normalize_advantage", "--normalize-advantage", HP_BOOL, F(normalize_advantage), 0, 1, false,
     NULL, "true | false"},
    {"adam_eps", "--adam-eps", HP_F32, F(adam_eps), 0, 1, true, NULL, "Adam epsilon (> 0)"},
    {"net_arch", "--net-arch", HP_ARCH, F(net_arch), 0, 0, false, NULL,
     "hidden widths, e.g. 64,64 (up to 4 layers of 1..1024)"},
    {"activation", "--activation", HP_ENUM, F(activation), 0, 0, false, activations, "tanh | relu"},
    {"shared_net", "--shared-net", HP_BOOL, F(shared_net), 0, 1, false, NULL,
     "true: one trunk for policy and value"},
    {"log_std_init", "--log-std-init", HP_F32, F(log_std_init), -20, 5, false, NULL,
     "initial log std (continuous actions)"},
    {"normalize_obs", "--normalize-obs", HP_BOOL, F(normalize_obs), 0, 1, false, NULL,
     "running observation normalisation"},
    {"clip_obs", "--clip-obs", HP_F32, F(clip_obs), 0, 1e6, true, NULL,
     "clip normalised observations to +-this"},
    {"norm_reward", "--norm-reward", HP_BOOL, F(norm_reward), 0, 1, false, NULL,
     "scale rewards by the std of the discounted return (VecNormalize)"},
    {"clip_reward", "--clip-reward", HP_F32, F(clip_reward), 0, 1e6, false, NULL,
     "clip normalised rewards to +-this (0: off)"},
};
#undef F

#define N_KEYS (sizeof hp_keys / sizeof hp_keys[0])

uint32_t rly_hparams_n_keys(void)
{
    return (uint32_t)N_KEYS;
}

void rly_hparams_cfg_keys(const char *section, size_t base, rly_cfg_key *out)
{
    static char names[2][N_KEYS][48];
    int s = strcmp(section, "reinforce") == 0 ? 1 : 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        const hp_key *k = &hp_keys[i];
        snprintf(names[s][i], sizeof names[s][i], "%s.%s", s ? "reinforce" : "ppo", k->key);
        rly_cfg_key *c = &out[i];
        memset(c, 0, sizeof *c);
        c->name = names[s][i];
        c->offset = base + k->off;
        c->size = k->size;
        switch (k->type) {
        case HP_F32:
            c->type = RLY_CFG_F32;
            break;
        case HP_U32:
            c->type = RLY_CFG_U32;
            c->min = (uint64_t)k->min;
            c->max = (uint64_t)k->max;
            break;
        case HP_BOOL:
            c->type = RLY_CFG_BOOL;
            break;
        case HP_ENUM:
            c->type = RLY_CFG_STR_ENUM;
            c->names = k->names;
            break;
        case HP_ARCH:
            c->type = RLY_CFG_STR;
            break;
        }
    }
}

void rly_hparams_mark_json(rly_hparams *h, const char *json, const char *section)
{
    cJSON *root = cJSON_Parse(json);
    const cJSON *sec = root ? cJSON_GetObjectItemCaseSensitive(root, section) : NULL;
    for (size_t i = 0; sec && i < N_KEYS; i++)
        if (cJSON_GetObjectItemCaseSensitive(sec, hp_keys[i].key))
            h->set |= 1ull << i;
    cJSON_Delete(root);
}

/* parse_arch reads "64,64" into widths; false with a reason when malformed. */
static bool parse_arch(const char *s, uint32_t *n, uint32_t *w, const char **why)
{
    *n = 0;
    if (!*s)
        return true; /* no hidden layer: a linear policy */
    const char *p = s;
    for (;;) {
        char *end;
        if (*p < '0' || *p > '9') {
            *why = "expected comma-separated widths such as 64,64";
            return false;
        }
        unsigned long v = strtoul(p, &end, 10);
        if (v < 1 || v > RELAY_LEARN_MAX_WIDTH) {
            *why = "each width must be in 1..1024";
            return false;
        }
        if (*n == RELAY_LEARN_MAX_HIDDEN) {
            *why = "at most 4 hidden layers";
            return false;
        }
        w[(*n)++] = (uint32_t)v;
        if (*end == '\0')
            return true;
        if (*end != ',') {
            *why = "expected comma-separated widths such as 64,64";
            return false;
        }
        p = end + 1;
    }
}

/* check_value validates key i of h; why receives the reason. */
static bool check_value(const rly_hparams *h, size_t i, char *why, size_t cap)
{
    const hp_key *k = &hp_keys[i];
    const char *field = (const char *)h + k->off;
    if (k->type == HP_F32) {
        float v = *(const float *)field;
        if (!isfinite(v) || (k->min_open ? !(v > k->min) : !(v >= k->min)) || !(v <= k->max)) {
            snprintf(why, cap, "%g is outside %s%g, %g]", (double)v, k->min_open ? "(" : "[",
                     k->min, k->max);
            return false;
        }
    } else if (k->type == HP_U32) {
        uint32_t v = *(const uint32_t *)field;
        if (v < k->min || v > k->max) {
            snprintf(why, cap, "%u is outside [%g, %g]", v, k->min, k->max);
            return false;
        }
    } else if (k->type == HP_ARCH) {
        uint32_t n, w[RELAY_LEARN_MAX_HIDDEN];
        const char *r = NULL;
        if (!parse_arch(field, &n, w, &r)) {
            snprintf(why, cap, "\"%s\": %s", field, r);
            return false;
        }
    }
    return true;
}

int rly_hparams_flag(rly_hparams *h, const rly_argp *p, int argc, char **argv, int *i)
{
    for (size_t k = 0; k < N_KEYS; k++) {
        const hp_key *key = &hp_keys[k];
        const char *v;
        int r = rly_arg_match(p, argc, argv, i, key->flag, &v);
        if (r == 0)
            continue;
        if (r < 0)
            return -1;
        char *field = (char *)h + key->off;
        int idx;
        switch (key->type) {
        case HP_F32:
            if (!rly_arg_float(p, key->flag, v, (float)key->min, (float)key->max, (float *)field))
                return -1;
            if (key->min_open && !(*(float *)field > key->min)) {
                rly_arg_fail(p, "%s: %s must be above %g", key->flag, v, key->min);
                return -1;
            }
            break;
        case HP_U32:
            if (!rly_arg_u32(p, key->flag, v, (uint32_t)key->min, (uint32_t)key->max,
                             (uint32_t *)field))
                return -1;
            break;
        case HP_BOOL:
            if (!rly_arg_choice(p, key->flag, v, bools, &idx))
                return -1;
            *(bool *)field = idx == 1;
            break;
        case HP_ENUM:
            if (!rly_arg_choice(p, key->flag, v, key->names, &idx))
                return -1;
            snprintf(field, key->size, "%s", v);
            break;
        case HP_ARCH: {
            uint32_t n, w[RELAY_LEARN_MAX_HIDDEN];
            const char *why = NULL;
            if (strlen(v) >= key->size || !parse_arch(v, &n, w, &why)) {
                rly_arg_fail(p, "%s: \"%s\": %s", key->flag, v, why ? why : "too long");
                return -1;
            }
            snprintf(field, key->size, "%s", v);
            break;
        }
        }
        h->set |= 1ull << k;
        return 1;
    }
    return 0;
}

void rly_hparams_merge(rly_hparams *dst, const rly_hparams *src)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (src->set & (1ull << i)) {
            memcpy((char *)dst + hp_keys[i].off, (const char *)src + hp_keys[i].off,
                   hp_keys[i].size);
            dst->set |= 1ull << i;
        }
}

#define IS(f) (h->set & (1ull << key_index(#f)))

static size_t key_index(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(hp_keys[i].key, name))
            return i;
    return 63;
}

relay_err rly_hparams_apply(const rly_hparams *h, const char *section, relay_ppo_config *c)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        char why[160];
        if ((h->set & (1ull << i)) && !check_value(h, i, why, sizeof why)) {
            rly_error(MOD, "%s.%s (%s): %s", section, hp_keys[i].key, hp_keys[i].flag, why);
            return RELAY_ECONFIG;
        }
    }
    if (IS(learning_rate))
        c->learning_rate = h->learning_rate;
    if (IS(lr_schedule))
        c->lr_linear = strcmp(h->lr_schedule, "linear") == 0;
    if (IS(n_steps))
        c->n_steps = h->n_steps;
    if (IS(batch_size))
        c->batch_size = h->batch_size;
    if (IS(n_epochs))
        c->n_epochs = h->n_epochs;
    if (IS(gamma))
        c->gamma = h->gamma;
    if (IS(gae_lambda))
        c->gae_lambda = h->gae_lambda;
    if (IS(clip_range))
        c->clip_range = h->clip_range;
    if (IS(clip_range_schedule))
        c->clip_linear = strcmp(h->clip_range_schedule, "linear") == 0;
    if (IS(clip_range_vf))
        c->clip_range_vf = h->clip_range_vf;
    if (IS(ent_coef))
        c->ent_coef = h->ent_coef;
    if (IS(vf_coef))
        c->vf_coef = h->vf_coef;
    if (IS(max_grad_norm))
        c->max_grad_norm = h->max_grad_norm;
    if (IS(target_kl))
        c->target_kl = h->target_kl;
    if (IS(normalize_advantage))
        c->normalize_advantage = h->normalize_advantage;
    if (IS(adam_eps))
        c->adam_eps = h->adam_eps;
    if (IS(net_arch)) {
        const char *why;
        (void)parse_arch(h->net_arch, &c->policy.n_hidden, c->policy.hidden, &why);
    }
    if (IS(activation))
        c->policy.activation =
            strcmp(h->activation, "relu") == 0 ? RELAY_HIDDEN_RELU : RELAY_HIDDEN_TANH;
    if (IS(shared_net))
        c->policy.shared = h->shared_net;
    if (IS(log_std_init))
        c->policy.log_std_init = h->log_std_init;
    if (IS(normalize_obs))
        c->policy.normalize_obs = h->normalize_obs;
    if (IS(clip_obs))
        c->policy.clip_obs = h->clip_obs;
    if (IS(norm_reward))
        c->normalize_reward = h->norm_reward;
    if (IS(clip_reward))
        c->clip_reward = h->clip_reward;
    if (c->policy.shared && c->policy.n_hidden == 0) {
        rly_error(MOD,
                  "%s.shared_net (--shared-net) needs at least one hidden layer in "
                  "%s.net_arch (--net-arch)",
                  section, section);
        return RELAY_ECONFIG;
    }
    return RELAY_OK;
}

void rly_hparams_from_ppo(rly_hparams *h, const relay_ppo_config *c)
{
    memset(h, 0, sizeof *h);
    h->set = (N_KEYS >= 64) ? ~0ull : (1ull << N_KEYS) - 1;
    h->learning_rate = c->learning_rate;
    snprintf(h->lr_schedule, sizeof h->lr_schedule, "%s", c->lr_linear ? "linear" : "constant");
    h->n_steps = c->n_steps;
    h->batch_size = c->batch_size;
    h->n_epochs = c->n_epochs;
    h->gamma = c->gamma;
    h->gae_lambda = c->gae_lambda;
    h->clip_range = c->clip_range;
    snprintf(h->clip_range_schedule, sizeof h->clip_range_schedule, "%s",
             c->clip_linear ? "linear" : "constant");
    h->clip_range_vf = c->clip_range_vf > 0 ? c->clip_range_vf : 0;
    h->ent_coef = c->ent_coef;
    h->vf_coef = c->vf_coef;
    h->max_grad_norm = c->max_grad_norm > 0 ? c->max_grad_norm : 0;
    h->target_kl = c->target_kl > 0 ? c->target_kl : 0;
    h->normalize_advantage = c->normalize_advantage;
    h->adam_eps = c->adam_eps;
    size_t o = 0;
    h->net_arch[0] = '\0';
    for (uint32_t i = 0; i < c->policy.n_hidden && o < sizeof h->net_arch; i++)
        o += (size_t)snprintf(h->net_arch + o, sizeof h->net_arch - o, "%s%u", i ? "," : "",
                              c->policy.hidden[i]);
    snprintf(h->activation, sizeof h->activation, "%s",
             c->policy.activation == RELAY_HIDDEN_RELU ? "relu" : "tanh");
    h->shared_net = c->policy.shared;
    h->log_std_init = c->policy.log_std_init;
    h->normalize_obs = c->policy.normalize_obs;
    h->clip_obs = c->policy.clip_obs;
    h->norm_reward = c->normalize_reward;
    h->clip_reward = c->clip_reward > 0 ? c->clip_reward : 0;
}

void rly_hparams_usage(FILE *f)
{
    fprintf(f, "Hyperparameters (config sections \"ppo\"/\"reinforce\"; default: the zoo's):\n");
    for (size_t i = 0; i < N_KEYS; i++)
        fprintf(f, "  %-24s %s\n", hp_keys[i].flag, hp_keys[i].help);
}
