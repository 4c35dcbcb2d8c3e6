/* Tests for the MLP, kernels, Adam, clipping and the PPO loss against PyTorch fixtures. */
#include "test_util.h"

#include <math.h>
#include <string.h>

#include "learn/learn_internal.h"

#define MAXT 32

typedef struct fixture {
    int n;
    char name[MAXT][32];
    float *v[MAXT];
    size_t len[MAXT];
} fixture;

static void fixture_load(fixture *f, const char *file)
{
    memset(f, 0, sizeof *f);
    const char *root = getenv("RELAY_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/data/learn/%s", root ? root : ".", file);
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot open fixture %s (run tools/gen_learn_fixtures.py)", path);
    char name[32];
    int c;
    while ((c = fgetc(fp)) != EOF) {
        if (c == '#') {
            while ((c = fgetc(fp)) != EOF && c != '\n')
                ;
            continue;
        }
        if (c == '\n' || c == ' ')
            continue;
        ungetc(c, fp);
        size_t len;
        assert_int_equal(fscanf(fp, "%31s %zu", name, &len), 2);
        assert_true(f->n < MAXT);
        memcpy(f->name[f->n], name, sizeof name);
        f->v[f->n] = malloc((len ? len : 1) * sizeof(float));
        f->len[f->n] = len;
        for (size_t i = 0; i < len; i++)
            assert_int_equal(fscanf(fp, "%f", &f->v[f->n][i]), 1);
        f->n++;
    }
    fclose(fp);
}

static const float *fx(const fixture *f, const char *name, size_t *len)
{
    if (len)
        *len = 0;
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->name[i], name)) {
            if (len)
                *len = f->len[i];
            return f->v[i];
        }
    fail_msg("fixture has no tensor %s", name);
    return NULL;
}

static void fixture_free(fixture *f)
{
    for (int i = 0; i < f->n; i++)
        free(f->v[i]);
}

/* Agreement within 1e-5 relative plus an absolute floor. */
static void assert_close(const float *got, const float *want, size_t n, float abs_floor,
                         const char *what)
{
    for (size_t i = 0; i < n; i++) {
        float tol = 1e-5f * fabsf(want[i]) + abs_floor;
        if (!(fabsf(got[i] - want[i]) <= tol))
            fail_msg("%s[%zu]: got %.9g want %.9g (tol %.3g)", what, i, got[i], want[i], tol);
    }
}

static void run_mlp_fixture(const char *file)
{
    fixture f;
    fixture_load(&f, file);
    size_t nl = 0;
    const float *szf = fx(&f, "sizes", &nl);
    uint32_t sizes[8];
    for (size_t i = 0; i < nl; i++)
        sizes[i] = (uint32_t)szf[i];
    uint32_t layers = (uint32_t)nl - 1;
    relay_hidden_act act = (relay_hidden_act)fx(&f, "act", NULL)[0];
    size_t nx = 0, np = 0;
    const float *x = fx(&f, "x", &nx);
    const float *params = fx(&f, "params", &np);
    uint32_t n = (uint32_t)(nx / sizes[0]);
    uint32_t out = sizes[layers];
    for (int pass = 0; pass < 2; pass++) {
        rly_gemm_set_portable(pass == 1);
        rly_mlp m;
        assert_ok(rly_mlp_init(&m, sizes, layers, act, false, n + 3, true));
        assert_int_equal(m.n_params, np);
        float *p = malloc(np * sizeof(float)), *g = malloc(np * sizeof(float));
        memcpy(p, params, np * sizeof(float));
        rly_mlp_bind(&m, p, g);
        const float *y = rly_mlp_forward(&m, x, n);
        assert_close(y, fx(&f, "y", NULL), (size_t)n * out, 1e-6f, "y");
        const float *t = fx(&f, "target", NULL);
        float *dout = malloc((size_t)n * out * sizeof(float));
        float *dx = malloc(nx * sizeof(float));
        double loss = 0;
        for (size_t i = 0; i < (size_t)n * out; i++) {
            loss += (double)(y[i] - t[i]) * (y[i] - t[i]);
            dout[i] = 2.0f * (y[i] - t[i]) / (float)(n * out);
        }
        loss /= (double)n * out;
        float lossf = (float)loss;
        assert_close(&lossf, fx(&f, "loss", NULL), 1, 1e-6f, "loss");
        rly_mlp_backward(&m, dout, n, dx, false);
        assert_close(g, fx(&f, "grads", NULL), np, 2e-6f, "grads");
        assert_close(dx, fx(&f, "dx", NULL), nx, 2e-6f, "dx");
        free(dout);
        free(dx);
        free(p);
        free(g);
        rly_mlp_fini(&m);
    }
    rly_gemm_set_portable(false);
    fixture_free(&f);
}

static void mlp_matches_torch_tanh(void **state)
{
    run_mlp_fixture("mlp_tanh.txt");
}

static void mlp_matches_torch_relu(void **state)
{
    run_mlp_fixture("mlp_relu.txt");
}

static void mlp_matches_torch_wide(void **state)
{
    run_mlp_fixture("mlp_wide.txt");
}

static void gemm_matches_naive(void **state)
{
    rly_rng rng;
    rly_rng_seed(&rng, 11);
    const uint32_t shapes[][3] = {{1, 1, 1},   {3, 2, 64},  {7, 16, 5},  {9, 33, 17},
                                  {64, 64, 4}, {4, 64, 13}, {13, 8, 64}, {5, 71, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        uint32_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc((size_t)M * K * sizeof(float)), *B = malloc((size_t)K * N * 4);
        float *C = malloc((size_t)M * N * 4), *R = malloc((size_t)M * N * 4), *bias = malloc(N * 4);
        for (size_t i = 0; i < (size_t)M * K; i++)
            A[i] = (float)rly_rng_normal(&rng);
        for (size_t i = 0; i < (size_t)K * N; i++)
            B[i] = (float)rly_rng_normal(&rng);
        for (uint32_t i = 0; i < N; i++)
            bias[i] = (float)rly_rng_normal(&rng);
        for (int mode = 0; mode < 8; mode++) {
            bool trans = mode & 1, acc = mode & 2, portable = mode & 4;
            rly_gemm_set_portable(portable);
            size_t sam = trans ? 1 : K, sak = trans ? M : 1;
            for (size_t i = 0; i < (size_t)M * N; i++)
                C[i] = R[i] = (float)i * 0.01f;
            for (uint32_t m = 0; m < M; m++)
                for (uint32_t n = 0; n < N; n++) {
                    double sum = acc ? R[(size_t)m * N + n] : bias[n];
                    for (uint32_t k = 0; k < K; k++)
                        sum += (double)A[m * sam + k * sak] * B[(size_t)k * N + n];
                    R[(size_t)m * N + n] = (float)sum;
                }
            rly_gemm(M, N, K, A, sam, sak, B, N, C, N, acc ? NULL : bias, acc);
            for (size_t i = 0; i < (size_t)M * N; i++)
                if (fabsf(C[i] - R[i]) > 1e-4f * (1 + fabsf(R[i])))
                    fail_msg("shape %ux%ux%u mode %d [%zu]: %g vs %g", M, N, K, mode, i, C[i],
                             R[i]);
        }
        free(A);
        free(B);
        free(C);
        free(R);
        free(bias);
    }
    rly_gemm_set_portable(false);
}

static void tanh_is_accurate(void **state)
{
    enum { N = 20001 };
    static float x[N], in[N];
    for (int pass = 0; pass < 2; pass++) {
        rly_gemm_set_portable(pass == 1);
        for (int i = 0; i < N; i++)
            in[i] = (float)(-12.0 + 24.0 * i / (N - 1));
        in[N / 2] = 0.0f;
        in[0] = -100.0f;
        in[1] = 1e-20f;
        memcpy(x, in, sizeof x);
        rly_tanh_inplace(x, N);
        for (int i = 0; i < N; i++) {
            double want = tanh((double)in[i]);
            if (fabs(x[i] - want) > 4e-7 * fabs(want) + 1e-30)
                fail_msg("tanh(%.9g) = %.9g want %.9g", in[i], x[i], want);
        }
    }
    rly_gemm_set_portable(false);
}

static void orthogonal_init_is_orthogonal(void **state)
{
    rly_rng rng;
    const uint32_t shapes[][2] = {{4, 64}, {64, 64}, {64, 2}, {64, 1}, {7, 5}};
    static float w[64 * 64], w2[64 * 64];
    for (size_t s = 0; s < 5; s++) {
        uint32_t in = shapes[s][0], out = shapes[s][1];
        float gain = s == 2 ? 0.01f : 1.41421356f;
        rly_rng_seed(&rng, 3);
        rly_orthogonal(w, in, out, gain, &rng);
        rly_rng_seed(&rng, 3);
        rly_orthogonal(w2, in, out, gain, &rng);
        assert_memory_equal(w, w2, (size_t)in * out * sizeof(float));
        /* The smaller Gram matrix must be gain^2 * I. W^T (stored) is [in x out]. */
        bool rows = out <= in; /* W's rows (= stored columns) are orthonormal */
        uint32_t nv = rows ? out : in, len = rows ? in : out;
        for (uint32_t a = 0; a < nv; a++)
            for (uint32_t b = 0; b < nv; b++) {
                double d = 0;
                for (uint32_t i = 0; i < len; i++)
                    d += rows ? (double)w[i * out + a] * w[i * out + b]
                              : (double)w[a * out + i] * w[b * out + i];
                double want = a == b ? (double)gain * gain : 0.0;
                if (fabs(d - want) > 1e-5 * gain * gain)
                    fail_msg("shape %ux%u gram[%u][%u] = %g want %g", in, out, a, b, d, want);
            }
    }
}

static void adam_and_clip_match_torch(void **state)
{
    fixture f;
    fixture_load(&f, "adam_clip.txt");
    size_t n = 0;
    const float *p0 = fx(&f, "p0", &n);
    float *p = malloc(n * sizeof(float));
    memcpy(p, p0, n * sizeof(float));
    rly_adam a;
    assert_ok(rly_adam_init(&a, n, 0.9f, 0.999f, 1e-5f));
    for (int s = 0; s < 3; s++) {
        char gname[8], pname[8];
        snprintf(gname, sizeof gname, "g%d", s);
        snprintf(pname, sizeof pname, "p%d", s + 1);
        rly_adam_step(&a, p, fx(&f, gname, NULL), 1e-3f);
        assert_close(p, fx(&f, pname, NULL), n, 1e-7f, pname);
    }
    rly_adam_fini(&a);
    float *g = malloc(n * sizeof(float));
    memcpy(g, fx(&f, "clip_in", NULL), n * sizeof(float));
    float norm = rly_clip_grad_norm(g, n, fx(&f, "clip_max", NULL)[0]);
    assert_close(&norm, fx(&f, "clip_norm", NULL), 1, 0, "norm");
    assert_close(g, fx(&f, "clip_out", NULL), n, 1e-7f, "clip_out");
    /* Below the threshold nothing changes. */
    memcpy(g, fx(&f, "clip_in", NULL), n * sizeof(float));
    rly_clip_grad_norm(g, n, 1e6f);
    assert_memory_equal(g, fx(&f, "clip_in", NULL), n * sizeof(float));
    free(g);
    free(p);
    fixture_free(&f);
}

static void run_ppo_fixture(const char *file)
{
    fixture f;
    fixture_load(&f, file);
    const float *c = fx(&f, "config", NULL);
    relay_ppo_config cfg;
    relay_ppo_config_default(&cfg);
    relay_policy_spec *s = &cfg.policy;
    s->obs_dim = (uint32_t)c[0];
    s->discrete = c[1] != 0;
    if (s->discrete)
        s->n_actions = (uint32_t)c[2];
    else
        s->act_dim = (uint32_t)c[2];
    s->n_hidden = (uint32_t)c[3];
    for (uint32_t i = 0; i < s->n_hidden; i++)
        s->hidden[i] = (uint32_t)c[4 + i];
    const float *rest = c + 4 + s->n_hidden;
    s->shared = rest[0] != 0;
    float clip = rest[1];
    cfg.clip_range_vf = rest[2];
    cfg.ent_coef = rest[3];
    cfg.vf_coef = rest[4];
    size_t nb = 0;
    const float *act_f = fx(&f, "act", &nb);
    cfg.n_envs = 1;
    cfg.n_steps = (uint32_t)(s->discrete ? nb : nb / s->act_dim);
    cfg.batch_size = cfg.n_steps;
    uint32_t n = cfg.n_steps;
    relay_ppo *p;
    assert_ok(relay_ppo_new(&cfg, &p));
    relay_policy *pol = relay_ppo_policy(p);
    size_t np = 0;
    const float *params = fx(&f, "params", &np);
    assert_int_equal(relay_policy_num_params(pol), np);
    assert_ok(relay_policy_set_params(pol, params, np));
    int32_t acts_i[64];
    uint8_t mask[64 * 8];
    const float *act = act_f;
    if (s->discrete) {
        for (uint32_t i = 0; i < n; i++)
            acts_i[i] = (int32_t)act_f[i];
        size_t nm = 0;
        const float *mf = fx(&f, "mask", &nm);
        for (size_t i = 0; i < nm; i++)
            mask[i] = (uint8_t)mf[i];
    }
    float adv[64];
    memcpy(adv, fx(&f, "adv", NULL), n * sizeof(float));
    for (int pass = 0; pass < 2; pass++) {
        rly_gemm_set_portable(pass == 1);
        float a2[64];
        memcpy(a2, adv, sizeof a2);
        rly_loss_out lo;
        rly_ppo_loss_grad(p, n, fx(&f, "x", NULL), s->discrete ? (void *)acts_i : (void *)act,
                          s->discrete ? mask : NULL, fx(&f, "logp_old", NULL), a2,
                          fx(&f, "ret", NULL), fx(&f, "val_old", NULL), clip, &lo);
        assert_close(&lo.policy_loss, fx(&f, "policy_loss", NULL), 1, 1e-6f, "policy_loss");
        assert_close(&lo.value_loss, fx(&f, "value_loss", NULL), 1, 1e-6f, "value_loss");
        assert_close(&lo.entropy, fx(&f, "entropy", NULL), 1, 1e-6f, "entropy");
        assert_close(&lo.approx_kl, fx(&f, "approx_kl", NULL), 1, 1e-6f, "approx_kl");
        assert_close(&lo.clip_fraction, fx(&f, "clip_fraction", NULL), 1, 0, "clip_fraction");
        assert_close(&lo.loss, fx(&f, "loss", NULL), 1, 1e-6f, "loss");
        assert_close(pol->grads, fx(&f, "grads", NULL), np, 2e-6f, "grads");
    }
    rly_gemm_set_portable(false);
    relay_ppo_free(p);
    fixture_free(&f);
}

static void ppo_loss_matches_torch_discrete_masked(void **state)
{
    run_ppo_fixture("ppo_discrete.txt");
}

static void ppo_loss_matches_torch_continuous_shared(void **state)
{
    run_ppo_fixture("ppo_continuous_shared.txt");
}

static void params_roundtrip_and_layout(void **state)
{
    relay_policy_spec s;
    relay_space os = {.discrete = false, .dim = 3}, as = {.discrete = false, .dim = 2};
    as.low[0] = as.low[1] = -2;
    as.high[0] = as.high[1] = 2;
    assert_ok(relay_policy_spec_from_spaces(&s, &os, &as));
    s.log_std_init = -0.5f;
    for (int shared = 0; shared < 2; shared++) {
        s.shared = shared;
        relay_policy *a, *b;
        assert_ok(relay_policy_new(&s, 4, 1, &a));
        assert_ok(relay_policy_new(&s, 4, 2, &b));
        size_t n = relay_policy_num_params(a);
        relay_param_info info[16];
        uint32_t nt = relay_policy_param_info(a, info, 16);
        assert_int_equal(nt, shared ? 9 : 13);
        size_t covered = 0;
        for (uint32_t i = 0; i < nt; i++) {
            assert_int_equal(info[i].offset, covered);
            covered += (size_t)info[i].rows * info[i].cols;
        }
        assert_int_equal(covered, n);
        assert_string_equal(info[nt - 1].name, "log_std");
        assert_string_equal(info[0].name, shared ? "trunk.0.weight" : "pi.0.weight");
        float *pa = malloc(n * sizeof(float)), *pb = malloc(n * sizeof(float));
        assert_ok(relay_policy_get_params(a, pa, n));
        assert_float_equal(pa[n - 1], -0.5f, 0);
        assert_ok(relay_policy_get_params(b, pb, n));
        assert_memory_not_equal(pa, pb, n * sizeof(float));
        assert_err(relay_policy_get_params(a, pa, n - 1), RELAY_ESHAPE);
        assert_ok(relay_policy_set_params(b, pa, n));
        pa[0] = NAN;
        assert_err(relay_policy_set_params(b, pa, n), RELAY_EINVAL);
        /* Same weights, deterministic acting: same actions and values. */
        float obs[8] = {0.1f, -0.2f, 0.3f, 1, 2, 3, 0.5f, 0.5f};
        float aa[4], ab[4], va[2], vb[2], ea[4];
        assert_ok(relay_policy_act(a, obs, 2, NULL, true, aa, ea, NULL, va));
        assert_ok(relay_policy_act(b, obs, 2, NULL, true, ab, NULL, NULL, vb));
        assert_memory_equal(aa, ab, sizeof aa);
        assert_memory_equal(va, vb, sizeof va);
        assert_err(relay_policy_act(a, obs, 5, NULL, true, aa, NULL, NULL, NULL), RELAY_ETOOBIG);
        assert_err(relay_policy_act(a, NULL, 1, NULL, true, aa, NULL, NULL, NULL), RELAY_EINVAL);
        free(pa);
        free(pb);
        relay_policy_free(a);
        relay_policy_free(b);
    }
    relay_policy_free(NULL);
    s.n_hidden = 9;
    relay_policy *bad;
    assert_err(relay_policy_new(&s, 4, 1, &bad), RELAY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gemm_matches_naive),
        cmocka_unit_test(tanh_is_accurate),
        cmocka_unit_test(mlp_matches_torch_tanh),
        cmocka_unit_test(mlp_matches_torch_relu),
        cmocka_unit_test(mlp_matches_torch_wide),
        cmocka_unit_test(orthogonal_init_is_orthogonal),
        cmocka_unit_test(adam_and_clip_match_torch),
        cmocka_unit_test(ppo_loss_matches_torch_discrete_masked),
        cmocka_unit_test(ppo_loss_matches_torch_continuous_shared),
        cmocka_unit_test(params_roundtrip_and_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
