/* Hyperparameters: every key through flags and config round-trips; bad values name the key. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli/hparams.h"

/* One non-default value per flag, in table order (every key of the table must appear). */
static const char *const flag_values[][2] = {
    {"--learning-rate", "0.00123"},
    {"--lr-schedule", "constant"},
    {"--n-steps", "48"},
    {"--batch-size", "96"},
    {"--n-epochs", "7"},
    {"--gamma", "0.97"},
    {"--gae-lambda", "0.9"},
    {"--clip-range", "0.3"},
    {"--clip-range-schedule", "constant"},
    {"--clip-range-vf", "0.25"},
    {"--ent-coef", "0.01"},
    {"--vf-coef", "0.75"},
    {"--max-grad-norm", "0.8"},
    {"--target-kl", "0.02"},
    {"--normalize-advantage", "false"},
    {"--adam-eps", "1e-7"},
    {"--net-arch", "32,16,8"},
    {"--activation", "relu"},
    {"--shared-net", "true"},
    {"--log-std-init", "-0.5"},
    {"--normalize-obs", "true"},
    {"--clip-obs", "5"},
    {"--norm-reward", "true"},
    {"--clip-reward", "7.5"},
};
#define N_FLAGS (sizeof flag_values / sizeof flag_values[0])

typedef struct cfg {
    int pad; /* the section sits at a non-zero offset, as in rly_train_config */
    rly_hparams ppo;
} cfg;

static void zoo(relay_ppo_config *c)
{
    assert_ok(relay_ppo_config_zoo(c, "CartPole-v1"));
}

static void every_key_round_trips(void **state)
{
    (void)state;
    assert_int_equal(rly_hparams_n_keys(), N_FLAGS);
    /* flags -> hparams -> applied over the zoo's config */
    char *argv[2 * N_FLAGS + 1];
    argv[0] = "relay";
    for (size_t i = 0; i < N_FLAGS; i++) {
        argv[1 + 2 * i] = (char *)flag_values[i][0];
        argv[2 + 2 * i] = (char *)flag_values[i][1];
    }
    int argc = 1 + 2 * (int)N_FLAGS;
    rly_argp p = {.prog = "relay train", .err = stderr};
    rly_hparams h;
    memset(&h, 0, sizeof h);
    for (int i = 1; i < argc; i++)
        assert_int_equal(rly_hparams_flag(&h, &p, argc, argv, &i), 1);
    assert_int_equal(h.set, (1ull << N_FLAGS) - 1);
    relay_ppo_config a;
    zoo(&a);
    assert_ok(rly_hparams_apply(&h, "ppo", &a));
    assert_float_equal(a.learning_rate, 0.00123f, 0);
    assert_false(a.lr_linear);
    assert_int_equal(a.n_steps, 48);
    assert_int_equal(a.batch_size, 96);
    assert_int_equal(a.n_epochs, 7);
    assert_float_equal(a.gamma, 0.97f, 0);
    assert_float_equal(a.clip_range_vf, 0.25f, 0);
    assert_float_equal(a.target_kl, 0.02f, 0);
    assert_false(a.normalize_advantage);
    assert_int_equal(a.policy.n_hidden, 3);
    assert_int_equal(a.policy.hidden[2], 8);
    assert_int_equal(a.policy.activation, RELAY_HIDDEN_RELU);
    assert_true(a.policy.shared);
    assert_true(a.policy.normalize_obs);
    assert_float_equal(a.policy.clip_obs, 5.0f, 0);
    assert_float_equal(a.policy.log_std_init, -0.5f, 0);
    assert_true(a.normalize_reward);
    assert_float_equal(a.clip_reward, 7.5f, 0);

    /* effective values -> config.json -> parsed back -> applied over a fresh zoo config */
    cfg c1;
    memset(&c1, 0, sizeof c1);
    rly_hparams_from_ppo(&c1.ppo, &a);
    size_t nk = rly_hparams_n_keys();
    rly_cfg_key *keys = calloc(nk, sizeof *keys);
    rly_hparams_cfg_keys("ppo", offsetof(cfg, ppo), keys);
    cJSON *root = cJSON_CreateObject();
    assert_ok(rly_cfg_to_json(&c1, keys, nk, root));
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    assert_non_null(strstr(text, "\"learning_rate\":\t0.00123")); /* shortest exact decimal */
    cfg c2;
    memset(&c2, 0, sizeof c2);
    assert_ok(rly_cfg_parse(&c2, keys, nk, text));
    rly_hparams_mark_json(&c2.ppo, text, "ppo");
    assert_int_equal(c2.ppo.set, (1ull << N_FLAGS) - 1);
    relay_ppo_config b;
    zoo(&b);
    assert_ok(rly_hparams_apply(&c2.ppo, "ppo", &b));
    assert_memory_equal(&a, &b, sizeof a); /* every field, bit for bit */
    free(text);
    free(keys);
}

static void unset_keys_keep_the_zoo(void **state)
{
    (void)state;
    rly_hparams h;
    memset(&h, 0, sizeof h);
    rly_hparams_mark_json(&h, "{\"ppo\": {\"gamma\": 0.5}, \"reinforce\": {\"n_steps\": 3}}",
                          "ppo");
    h.gamma = 0.5f;
    relay_ppo_config a, z;
    zoo(&a);
    zoo(&z);
    assert_ok(rly_hparams_apply(&h, "ppo", &a));
    z.gamma = 0.5f;
    assert_memory_equal(&a, &z, sizeof a);
}

/* flag_error runs one flag and returns what it printed (static buffer). */
static const char *flag_error(const char *flag, const char *value)
{
    static char out[512];
    FILE *f = tmpfile();
    assert_non_null(f);
    rly_argp p = {.prog = "relay train", .err = f};
    char *argv[] = {"relay", (char *)flag, (char *)value};
    int i = 1;
    rly_hparams h;
    memset(&h, 0, sizeof h);
    assert_int_equal(rly_hparams_flag(&h, &p, value ? 3 : 2, argv, &i), -1);
    rewind(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

static void bad_values_name_the_key(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"--learning-rate", "0"},   {"--learning-rate", "abc"}, {"--n-steps", "0"},
        {"--batch-size", "-4"},     {"--n-epochs", "1.5"},      {"--gamma", "1.5"},
        {"--gae-lambda", "-0.1"},   {"--clip-range", "0"},      {"--ent-coef", "-1"},
        {"--net-arch", "64,,64"},   {"--net-arch", "2000"},     {"--net-arch", "8,8,8,8,8"},
        {"--activation", "gelu"},   {"--normalize-obs", "yes"}, {"--lr-schedule", "cosine"},
        {"--adam-eps", "0"},        {"--target-kl", "nan"},     {"--clip-obs", "0"},
        {"--norm-reward", "maybe"}, {"--clip-reward", "-1"},    {"--clip-reward", "inf"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *msg = flag_error(bad[i][0], bad[i][1]);
        if (!strstr(msg, bad[i][0]))
            fail_msg("%s %s: message \"%s\" does not name the flag", bad[i][0], bad[i][1], msg);
    }
    assert_non_null(strstr(flag_error("--gamma", NULL), "needs a value"));
    /* config values are checked when applied, naming section.key */
    rly_hparams h;
    memset(&h, 0, sizeof h);
    h.gamma = 2.0f;
    h.set = 1ull << 5; /* gamma */
    relay_ppo_config c;
    zoo(&c);
    assert_err(rly_hparams_apply(&h, "ppo", &c), RELAY_ECONFIG);
    memset(&h, 0, sizeof h);
    strcpy(h.net_arch, "");
    h.shared_net = true;
    h.set = (1ull << 16) | (1ull << 18); /* net_arch, shared_net */
    assert_err(rly_hparams_apply(&h, "reinforce", &c), RELAY_ECONFIG);
    memset(&h, 0, sizeof h);
    h.clip_reward = -3.0f;
    h.set = 1ull << 23; /* clip_reward */
    assert_err(rly_hparams_apply(&h, "reinforce", &c), RELAY_ECONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_key_round_trips),
        cmocka_unit_test(unset_keys_keep_the_zoo),
        cmocka_unit_test(bad_values_name_the_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
