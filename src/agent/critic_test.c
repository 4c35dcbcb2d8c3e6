/*
 * Actors made from a model bundle use the bundle's critic (value.onnx / relay_bundle_set_value)
 * or an explicit relay_actor_options.value_model: the trajectory's "value" column is V(obs) and a
 * cut row's "bootstrap" is V(next obs), both equal to a direct forward of the value model. Without
 * a critic both stay 0. Bundles keep their critic through save/load and blobs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "relay/relay.h"
#include "test_models.h"
#include "test_util.h"

/* value_onnx makes a 4 -> 16 -> 1 tanh critic with fixed non-trivial weights. */
static void value_onnx(uint8_t **onnx, size_t *len, float scale)
{
    uint32_t sizes[3] = {4, 16, 1};
    float w0[64], b0[16], w1[16], b1[1] = {0.3f};
    for (int i = 0; i < 64; i++)
        w0[i] = scale * (float)((i * 37) % 17 - 8) / 8.0f;
    for (int i = 0; i < 16; i++) {
        b0[i] = 0.05f * (float)(i - 8);
        w1[i] = (float)((i * 11) % 7 - 3) / 3.0f;
    }
    const float *ws[2] = {w0, w1}, *bs[2] = {b0, b1};
    relay_activation act[2] = {RELAY_ACT_TANH, RELAY_ACT_NONE};
    relay_mlp_desc d = {
        .n_layers = 2, .sizes = sizes, .activations = act, .weights = ws, .biases = bs};
    assert_ok(relay_mlp_to_onnx(&d, onnx, len));
}

static int aux_index(const relay_traj *t, const char *name)
{
    for (uint32_t i = 0; i < t->spec.n_aux; i++)
        if (!strcmp(t->spec.aux_names[i], name))
            return (int)i;
    return -1;
}

/* run_and_check runs 2 CartPole envs for 300 vector steps on a new actor made with opt and checks
   every row's value (and each cut row's bootstrap) against vf; vf NULL: both must be 0. */
static void run_and_check(bool shared, const char *model_path, const relay_actor_options *opt,
                          relay_model *vf)
{
    relay_config cfg;
    relay_config_default(&cfg);
    cfg.routers = 1;
    cfg.shared_model = shared;
    cfg.max_traj_length = 16; /* many cut rows, bootstrapped with V(next obs) */
    snprintf(cfg.env, sizeof cfg.env, "CartPole-v1");
    if (model_path)
        snprintf(cfg.model_path, sizeof cfg.model_path, "%s", model_path);
    relay_agent *a = NULL;
    assert_ok(relay_agent_new(&cfg, &a));
    assert_ok(relay_agent_start(a));
    relay_id id;
    assert_ok(relay_agent_new_actor(a, opt, &id));
    assert_ok(relay_agent_run_env(a, id, NULL, 2, 300, true));
    assert_ok(relay_agent_flush(a));
    relay_traj *ts[512];
    size_t n = 0;
    assert_ok(relay_agent_drain_trajectories(a, ts, 512, &n));
    assert_true(n > 10);
    size_t rows = 0, cuts = 0, nonzero = 0;
    for (size_t k = 0; k < n; k++) {
        relay_traj *t = ts[k];
        int iv = aux_index(t, "value"), ib = aux_index(t, "bootstrap"), ic = aux_index(t, "cut");
        assert_true(iv >= 0 && ib >= 0 && ic >= 0);
        uint32_t na = t->spec.n_aux;
        for (uint32_t r = 0; r < t->len; r++) {
            const float *obs = (const float *)t->obs + (size_t)r * 4;
            float v = t->aux[(size_t)r * na + (uint32_t)iv], want = 0;
            if (vf)
                assert_ok(relay_model_forward(vf, obs, 1, &want));
            assert_float_equal(v, want, 1e-6 * (1 + (want < 0 ? -want : want)));
            nonzero += v != 0;
            rows++;
        }
        /* a cut piece's last row bootstraps with V(first obs of the next piece of this env) */
        uint32_t last = t->len - 1;
        if (t->len && t->aux[(size_t)last * na + (uint32_t)ic] != 0) {
            for (size_t j = k + 1; j < n; j++)
                if (ts[j]->env_id == t->env_id && ts[j]->episode == t->episode && ts[j]->len) {
                    float want = 0;
                    if (vf)
                        assert_ok(relay_model_forward(vf, (const float *)ts[j]->obs, 1, &want));
                    float b = t->aux[(size_t)last * na + (uint32_t)ib];
                    assert_float_equal(b, want, 1e-6 * (1 + (want < 0 ? -want : want)));
                    cuts++;
                    break;
                }
        }
    }
    print_message("%s%s: %zu rows, %zu non-zero values, %zu cut bootstraps checked\n",
                  shared ? "shared" : "independent", vf ? "" : " (no critic)", rows, nonzero, cuts);
    assert_true(rows >= 600);
    assert_true(cuts > 10);
    if (vf)
        assert_true(nonzero == rows);
    else
        assert_int_equal(nonzero, 0);
    for (size_t k = 0; k < n; k++)
        relay_traj_free(ts[k]);
    relay_agent_free(a);
}

static void bundle_critic_round_trips(void **state)
{
    (void)state;
    relay_bundle *b = NULL;
    assert_ok(test_bias_bundle(4, 2, 2, NULL, &b));
    assert_null(relay_bundle_value(b));
    uint8_t *onnx;
    size_t len;
    value_onnx(&onnx, &len, 1.0f);
    assert_ok(relay_bundle_set_value(b, onnx, len));
    assert_non_null(relay_bundle_value(b));
    /* a critic of the wrong shape is refused and the old one kept */
    relay_bundle *wide = NULL;
    assert_ok(test_bias_bundle(4, 2, 2, NULL, &wide));
    size_t wl;
    const uint8_t *wb = relay_model_onnx(relay_bundle_model(wide), &wl); /* 4 -> 2 */
    assert_err(relay_bundle_set_value(b, wb, wl), RELAY_ESHAPE);
    assert_non_null(relay_bundle_value(b));
    float obs[4] = {0.1f, -0.2f, 0.03f, 0.4f}, v0, v1;
    assert_ok(relay_model_forward(relay_bundle_value(b), obs, 1, &v0));
    assert_true(v0 != 0);
    /* directory: value.onnx written, read back; removed again when the critic is dropped */
    char dir[] = "/tmp/relay_critic_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_ok(relay_bundle_save(b, dir));
    relay_bundle *c = NULL;
    assert_ok(relay_bundle_load(dir, &c));
    assert_non_null(relay_bundle_value(c));
    assert_ok(relay_model_forward(relay_bundle_value(c), obs, 1, &v1));
    assert_memory_equal(&v0, &v1, sizeof v0);
    relay_bundle_free(c);
    /* blob: flag 1 and the critic's bytes after the policy's */
    uint8_t *blob;
    size_t bl;
    assert_ok(relay_bundle_to_blob(b, &blob, &bl));
    assert_int_equal(blob[6], 1);
    assert_ok(relay_bundle_from_blob(blob, bl, &c));
    assert_ok(relay_model_forward(relay_bundle_value(c), obs, 1, &v1));
    assert_memory_equal(&v0, &v1, sizeof v0);
    relay_bundle_free(c);
    for (size_t cut = bl - 1; cut > bl - 40; cut--)
        assert_int_not_equal(relay_bundle_from_blob(blob, cut, &c), RELAY_OK);
    free(blob);
    assert_ok(relay_bundle_set_value(b, NULL, 0));
    assert_null(relay_bundle_value(b));
    assert_ok(relay_bundle_to_blob(b, &blob, &bl));
    assert_int_equal(blob[6], 0); /* a bundle without critic keeps the old blob layout */
    free(blob);
    assert_ok(relay_bundle_save(b, dir));
    char p[96];
    snprintf(p, sizeof p, "%s/value.onnx", dir);
    assert_int_not_equal(access(p, F_OK), 0);
    snprintf(p, sizeof p, "rm -rf %s", dir);
    assert_int_equal(system(p), 0);
    relay_bundle_free(b);
    relay_bundle_free(wide);
    free(onnx);
}

static void actors_use_the_bundle_critic(void **state)
{
    (void)state;
    relay_bundle *b = NULL;
    assert_ok(test_bias_bundle(4, 2, 2, NULL, &b));
    uint8_t *onnx;
    size_t len;
    value_onnx(&onnx, &len, 1.0f);
    relay_model *vf = NULL;
    assert_ok(relay_model_from_onnx(onnx, len, &vf));
    /* no critic: value and bootstrap are 0 */
    relay_actor_options opt = {.model = b, .seed = 7};
    run_and_check(false, NULL, &opt, NULL);
    /* an explicit value model */
    opt.value_model = vf;
    run_and_check(false, NULL, &opt, vf);
    /* the bundle's own critic (independent mode, per-actor bundle) */
    assert_ok(relay_bundle_set_value(b, onnx, len));
    opt.value_model = NULL;
    run_and_check(false, NULL, &opt, vf);
    /* model_path = a bundle directory with value.onnx: independent and shared actors */
    char dir[] = "/tmp/relay_critic_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_ok(relay_bundle_save(b, dir));
    relay_actor_options seeded = {.seed = 9};
    run_and_check(false, dir, &seeded, vf);
    run_and_check(true, dir, &seeded, vf);
    /* a critic that does not fit the actor is refused */
    relay_bundle *wide = NULL;
    assert_ok(test_bias_bundle(4, 2, 2, NULL, &wide));
    relay_config cfg;
    relay_config_default(&cfg);
    snprintf(cfg.env, sizeof cfg.env, "CartPole-v1");
    relay_agent *a = NULL;
    assert_ok(relay_agent_new(&cfg, &a));
    assert_ok(relay_agent_start(a));
    relay_id id;
    relay_actor_options bad = {.model = b, .value_model = relay_bundle_model(wide)};
    assert_err(relay_agent_new_actor(a, &bad, &id), RELAY_ESHAPE);
    relay_actor_options no_policy = {.value_model = vf};
    assert_err(relay_agent_new_actor(a, &no_policy, &id), RELAY_EINVAL);
    relay_agent_free(a);
    char p[96];
    snprintf(p, sizeof p, "rm -rf %s", dir);
    assert_int_equal(system(p), 0);
    relay_model_free(vf);
    relay_bundle_free(b);
    relay_bundle_free(wide);
    free(onnx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bundle_critic_round_trips),
        cmocka_unit_test(actors_use_the_bundle_critic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
