/* Tests for tensors, actions and columnar trajectories. */
#include "test_util.h"

#include <string.h>

#include "relay/data.h"

static relay_step_spec cartpole_spec(bool with_mask)
{
    relay_step_spec s;
    memset(&s, 0, sizeof s);
    s.obs_dtype = RELAY_F32;
    s.obs_rank = 1;
    s.obs_shape[0] = 4;
    s.act_dtype = RELAY_I32;
    s.act_rank = 0;
    if (with_mask) {
        s.mask_dtype = RELAY_F32;
        s.mask_rank = 1;
        s.mask_shape[0] = 2;
    }
    s.n_aux = 2;
    strcpy(s.aux_names[0], "logp");
    strcpy(s.aux_names[1], "value");
    return s;
}

static void dtype_sizes_and_names(void **state)
{
    const relay_dtype all[] = {RELAY_F32, RELAY_F64, RELAY_I32, RELAY_I64, RELAY_U8, RELAY_BOOL};
    const size_t sizes[] = {4, 8, 4, 8, 1, 1};
    const char *names[] = {"f32", "f64", "i32", "i64", "u8", "bool"};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(relay_dtype_size(all[i]), sizes[i]);
        assert_string_equal(relay_dtype_name(all[i]), names[i]);
        assert_true(relay_dtype_valid(all[i]));
    }
    assert_int_equal(relay_dtype_size(RELAY_DTYPE_INVALID), 0);
    assert_int_equal(relay_dtype_size((relay_dtype)77), 0);
    assert_string_equal(relay_dtype_name((relay_dtype)77), "invalid");
    assert_false(relay_dtype_valid(RELAY_DTYPE_INVALID));
}

static void tensor_init_copy_view(void **state)
{
    relay_tensor t, c, v;
    int64_t shape[3] = {2, 3, 4};
    assert_ok(relay_tensor_init(&t, RELAY_F64, 3, shape));
    assert_int_equal(t.nbytes, 2 * 3 * 4 * 8);
    assert_int_equal(relay_tensor_numel(&t), 24);
    assert_true(t.owns);
    for (int i = 0; i < 24; i++) {
        assert_true(((double *)t.data)[i] == 0.0);
        ((double *)t.data)[i] = i * 0.5;
    }
    assert_ok(relay_tensor_copy(&c, &t));
    assert_ptr_not_equal(c.data, t.data);
    assert_memory_equal(c.data, t.data, t.nbytes);
    assert_int_equal(c.rank, 3);
    assert_int_equal(c.shape[2], 4);
    assert_ok(relay_tensor_view(&v, RELAY_F64, 3, shape, t.data));
    assert_false(v.owns);
    assert_ptr_equal(v.data, t.data);
    relay_tensor_fini(&v); /* must not free t.data */
    assert_null(v.data);
    assert_true(((double *)t.data)[3] == 1.5);
    relay_tensor_fini(&c);
    relay_tensor_fini(&t);
    relay_tensor_fini(&t); /* zeroed: no-op */

    relay_tensor s;
    assert_ok(relay_tensor_init(&s, RELAY_BOOL, 0, NULL));
    assert_int_equal(relay_tensor_numel(&s), 1);
    assert_int_equal(s.nbytes, 1);
    relay_tensor_fini(&s);
}

static void tensor_rejects_bad_shapes(void **state)
{
    relay_tensor t;
    int64_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_err(relay_tensor_init(&t, RELAY_F32, 9, shape), RELAY_ESHAPE);
    assert_ok(relay_tensor_init(&t, RELAY_F32, 8, shape));
    relay_tensor_fini(&t);
    assert_err(relay_tensor_init(&t, RELAY_DTYPE_INVALID, 1, shape), RELAY_EDTYPE);
    assert_err(relay_tensor_init(&t, (relay_dtype)42, 1, shape), RELAY_EDTYPE);
    int64_t neg[2] = {3, -1};
    assert_err(relay_tensor_init(&t, RELAY_U8, 2, neg), RELAY_ESHAPE);
    int64_t huge[3] = {INT64_MAX, 2, 2};
    assert_err(relay_tensor_init(&t, RELAY_U8, 3, huge), RELAY_ETOOBIG);
    int64_t big[4] = {1 << 20, 1 << 20, 1 << 20, 1 << 20};
    assert_err(relay_tensor_init(&t, RELAY_F64, 4, big), RELAY_ETOOBIG);
    assert_err(relay_tensor_init(&t, RELAY_U8, 1, NULL), RELAY_ESHAPE);
    assert_err(relay_tensor_view(&t, RELAY_U8, 1, shape, NULL), RELAY_EINVAL);
    size_t n = 0;
    int64_t ok[2] = {5, 7};
    assert_ok(relay_shape_nbytes(RELAY_I64, 2, ok, &n));
    assert_int_equal(n, 5 * 7 * 8);
}

static void spec_validate_and_eq(void **state)
{
    relay_step_spec a = cartpole_spec(true), b = cartpole_spec(true);
    assert_ok(relay_step_spec_validate(&a));
    assert_true(relay_step_spec_eq(&a, &b));
    size_t o, ac, m;
    relay_step_spec_bytes(&a, &o, &ac, &m);
    assert_int_equal(o, 16);
    assert_int_equal(ac, 4);
    assert_int_equal(m, 8);
    b.obs_shape[0] = 5;
    assert_false(relay_step_spec_eq(&a, &b));
    b = cartpole_spec(true);
    strcpy(b.aux_names[1], "val");
    assert_false(relay_step_spec_eq(&a, &b));
    b = cartpole_spec(false);
    assert_false(relay_step_spec_eq(&a, &b));
    relay_step_spec_bytes(&b, NULL, NULL, &m);
    assert_int_equal(m, 0);
    b = cartpole_spec(false);
    b.act_rank = 9;
    assert_err(relay_step_spec_validate(&b), RELAY_ESHAPE);
    b = cartpole_spec(false);
    b.obs_dtype = (relay_dtype)9;
    assert_err(relay_step_spec_validate(&b), RELAY_EDTYPE);
    b = cartpole_spec(false);
    b.n_aux = RELAY_MAX_AUX + 1;
    assert_err(relay_step_spec_validate(&b), RELAY_ETOOBIG);
    b = cartpole_spec(false);
    memset(b.aux_names[0], 'x', RELAY_AUX_NAME_MAX);
    assert_err(relay_step_spec_validate(&b), RELAY_EINVAL);
    assert_null(relay_traj_new(&b, 4, 0));
}

static void traj_push_get_and_grow(void **state)
{
    relay_step_spec s = cartpole_spec(true);
    relay_traj *t = relay_traj_new(&s, 2, 0);
    assert_non_null(t);
    assert_int_equal(t->env_id, -1);
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        float obs[4] = {(float)i, i + 0.25f, i + 0.5f, i + 0.75f};
        int32_t act = i % 2;
        float mask[2] = {1.0f, (float)(i % 3)};
        float aux[2] = {-(float)i, 2.0f * i};
        assert_ok(relay_traj_push(t, obs, &act, i % 5 ? mask : NULL, 1.0f + i, i == N - 1, false,
                                  aux, 1000 + i));
    }
    assert_int_equal(t->len, N);
    assert_true(t->cap >= N);
    assert_int_equal(t->start_ns, 1000);
    assert_int_equal(t->end_ns, 1000 + N - 1);
    assert_true(relay_traj_return(t) == N + N * (N - 1) / 2.0);
    for (uint32_t i = 0; i < N; i++) {
        relay_action a;
        assert_ok(relay_traj_get_action(t, i, &a));
        assert_int_equal(a.obs.dtype, RELAY_F32);
        assert_int_equal(a.obs.shape[0], 4);
        assert_true(((float *)a.obs.data)[1] == i + 0.25f);
        assert_int_equal(*(int32_t *)a.act.data, (int32_t)(i % 2));
        assert_int_equal(a.act.rank, 0);
        float want_mask = i % 5 ? (float)(i % 3) : 1.0f; /* NULL mask -> all ones */
        assert_true(((float *)a.mask.data)[1] == want_mask);
        assert_true(a.reward == 1.0f + i);
        assert_int_equal(a.terminated, i == N - 1);
        assert_true(relay_action_aux(&a, "logp", 99.0f) == -(float)i);
        assert_true(relay_action_aux(&a, "value", 99.0f) == 2.0f * i);
        assert_true(relay_action_aux(&a, "nope", 99.0f) == 99.0f);
        assert_int_equal(a.timestamp_ns, 1000 + i);
        relay_action_fini(&a); /* views: must not free the trajectory's columns */
    }
    relay_action a;
    assert_err(relay_traj_get_action(t, N, &a), RELAY_EINVAL);
    relay_traj_clear(t);
    assert_int_equal(t->len, 0);
    assert_true(t->cap >= N);
    relay_traj_free(t);
    relay_traj_free(NULL);
}

static void traj_enforces_max_len(void **state)
{
    relay_step_spec s = cartpole_spec(false);
    relay_traj *t = relay_traj_new(&s, 100, 5);
    assert_non_null(t);
    assert_int_equal(t->cap, 5);
    float obs[4] = {0};
    int32_t act = 1;
    for (int i = 0; i < 5; i++)
        assert_ok(relay_traj_push(t, obs, &act, NULL, 1, false, false, NULL, i));
    assert_err(relay_traj_push(t, obs, &act, NULL, 1, false, true, NULL, 9), RELAY_EFULL);
    assert_int_equal(t->len, 5);
    assert_int_equal(t->end_ns, 4);
    assert_err(relay_traj_push(t, NULL, &act, NULL, 1, false, false, NULL, 9), RELAY_EFULL);
    relay_traj_clear(t);
    assert_ok(relay_traj_push(t, obs, &act, NULL, 1, false, false, NULL, 9));
    assert_err(relay_traj_push(t, NULL, &act, NULL, 1, false, false, NULL, 9), RELAY_EINVAL);
    relay_traj_free(t);
}

static void traj_clone_is_deep(void **state)
{
    relay_step_spec s = cartpole_spec(true);
    relay_traj *t = relay_traj_new(&s, 4, 50);
    assert_non_null(t);
    t->actor = relay_id_from_seed(1, 2);
    t->env_id = 3;
    strcpy(t->env_label, "cartpole-3");
    t->episode = 17;
    t->policy_version = 42;
    for (int i = 0; i < 10; i++) {
        float obs[4] = {(float)i, 0, 0, 0};
        int32_t act = i;
        float aux[2] = {0.5f, (float)i};
        assert_ok(relay_traj_push(t, obs, &act, NULL, 0.5f, false, i == 9, aux, i * 10));
    }
    relay_traj *c = relay_traj_clone(t);
    assert_non_null(c);
    assert_int_equal(c->len, 10);
    assert_int_equal(c->max_len, 50);
    assert_true(relay_id_eq(c->actor, t->actor));
    assert_string_equal(c->env_label, "cartpole-3");
    assert_int_equal(c->episode, 17);
    assert_int_equal(c->policy_version, 42);
    assert_true(relay_step_spec_eq(&c->spec, &t->spec));
    assert_memory_equal(c->obs, t->obs, 10 * 16);
    assert_memory_equal(c->aux, t->aux, 10 * 2 * sizeof(float));
    assert_memory_equal(c->ts, t->ts, 10 * sizeof(int64_t));
    assert_int_equal(c->truncated[9], 1);
    assert_ptr_not_equal(c->obs, t->obs);
    ((float *)t->obs)[0] = 123.0f;
    assert_true(((float *)c->obs)[0] == 0.0f);
    relay_traj_free(t);
    relay_traj_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dtype_sizes_and_names),     cmocka_unit_test(tensor_init_copy_view),
        cmocka_unit_test(tensor_rejects_bad_shapes), cmocka_unit_test(spec_validate_and_eq),
        cmocka_unit_test(traj_push_get_and_grow),    cmocka_unit_test(traj_enforces_max_len),
        cmocka_unit_test(traj_clone_is_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
