"""cffi ABI-mode binding of librelay.so: the declarations of include/relay/*.h that Python uses.

The declarations below mirror the C headers by hand (ABI mode needs no compiler).  Structs whose
layout Python reads or writes are checked against the C compiler's layout by
python/tests/test_layout.py, so a header change that is not mirrored here fails `make test`.
Structs that Python only passes through (relay_config) are allocated as large opaque buffers so
that fields added on the C side never overflow them.
"""
import os

import cffi

CDEF = r"""
typedef int relay_err;
const char *relay_strerror(relay_err err);
const char *relay_errname(relay_err err);

typedef int relay_log_level;
void relay_log_set_level(relay_log_level level);
relay_log_level relay_log_get_level(void);
typedef void (*relay_log_fn)(relay_log_level level, const char *module, const char *text,
                             void *user);
void relay_log_set_sink(relay_log_fn fn, void *user);
int relay_log_level_parse(const char *name);

typedef struct relay_id { uint8_t bytes[16]; } relay_id;
relay_id relay_id_new(void);
char *relay_id_format(relay_id id, char out[37]);
relay_err relay_id_parse(const char *text, relay_id *out);

typedef enum relay_dtype { RELAY_DTYPE_INVALID = 0, RELAY_F32 = 1, RELAY_F64 = 2, RELAY_I32 = 3,
                           RELAY_I64 = 4, RELAY_U8 = 5, RELAY_BOOL = 6 } relay_dtype;

typedef struct relay_step_spec {
    relay_dtype obs_dtype;
    uint32_t obs_rank;
    int64_t obs_shape[8];
    relay_dtype act_dtype;
    uint32_t act_rank;
    int64_t act_shape[8];
    relay_dtype mask_dtype;
    uint32_t mask_rank;
    int64_t mask_shape[8];
    uint32_t n_aux;
    char aux_names[8][24];
} relay_step_spec;

typedef struct relay_traj {
    relay_id actor;
    int64_t env_id;
    char env_label[64];
    int64_t episode;
    int64_t policy_version;
    int64_t start_ns, end_ns;
    uint32_t max_len;
    uint32_t len, cap;
    relay_step_spec spec;
    uint8_t *obs;
    uint8_t *act;
    uint8_t *mask;
    float *reward;
    uint8_t *terminated;
    uint8_t *truncated;
    float *aux;
    int64_t *ts;
    size_t row_obs_, row_act_, row_mask_;
    bool row_cached_;
} relay_traj;
void relay_traj_free(relay_traj *t);
void relay_step_spec_bytes(const relay_step_spec *s, size_t *obs, size_t *act, size_t *mask);

typedef struct relay_space {
    bool discrete;
    int32_t n;
    uint32_t dim;
    float low[256];
    float high[256];
} relay_space;

typedef struct relay_env_def {
    uint32_t abi_version;
    const char *name;
    size_t state_size;
    int32_t max_episode_steps;
    void (*spaces)(relay_space *obs, relay_space *act);
    void (*reset)(void *state, uint64_t seed, float *obs);
    void (*step)(void *state, const void *action, float *obs, float *reward, bool *terminated);
    uint32_t flags;
} relay_env_def;
const relay_env_def *relay_env_find(const char *name);
relay_err relay_env_resolve(const char *name, const relay_env_def **out);
const relay_env_def *relay_env_builtin(size_t i);

typedef struct relay_vecenv relay_vecenv;
relay_err relay_vecenv_new(const relay_env_def *def, uint32_t n, uint64_t seed, relay_vecenv **out);
void relay_vecenv_free(relay_vecenv *v);
void relay_vecenv_reset(relay_vecenv *v, float *obs);
void relay_vecenv_step(relay_vecenv *v, const void *actions, float *obs, float *rewards,
                       bool *terminated, bool *truncated, float *final_obs);

typedef struct relay_model relay_model;
relay_err relay_model_forward(relay_model *m, const float *in, int batch, float *out);
uint32_t relay_model_in_dim(const relay_model *m);
uint32_t relay_model_out_dim(const relay_model *m);
bool relay_model_output_is_softmax(const relay_model *m);

typedef struct relay_space_desc {
    bool discrete;
    int64_t n;
    relay_dtype dtype;
    uint32_t rank;
    int64_t shape[8];
    uint32_t n_bounds;
    float *low;
    float *high;
} relay_space_desc;
typedef struct relay_model_meta {
    int64_t version;
    relay_space_desc obs;
    relay_space_desc act;
} relay_model_meta;

typedef int relay_activation;
typedef struct relay_mlp_desc {
    uint32_t n_layers;
    const uint32_t *sizes;
    const relay_activation *activations;
    const float *const *weights;
    const float *const *biases;
} relay_mlp_desc;
relay_err relay_mlp_to_onnx(const relay_mlp_desc *d, uint8_t **bytes, size_t *len);

typedef struct relay_bundle relay_bundle;
relay_err relay_bundle_new(const void *onnx, size_t len, const relay_model_meta *meta,
                           relay_bundle **out);
relay_err relay_bundle_load(const char *path, relay_bundle **out);
relay_err relay_bundle_save(const relay_bundle *b, const char *dir);
void relay_bundle_free(relay_bundle *b);
relay_model *relay_bundle_model(const relay_bundle *b);
const relay_model_meta *relay_bundle_meta(const relay_bundle *b);

typedef struct relay_config relay_config;
void relay_config_default(relay_config *cfg);
relay_err relay_config_load_json(relay_config *cfg, const char *path);
relay_err relay_config_parse_json(relay_config *cfg, const char *json);
relay_err relay_config_to_json(const relay_config *cfg, char **json);

typedef struct relay_agent relay_agent;
relay_err relay_agent_new(const relay_config *cfg, relay_agent **out);
relay_err relay_agent_start(relay_agent *a);
relay_err relay_agent_shutdown(relay_agent *a);
relay_err relay_agent_restart(relay_agent *a);
void relay_agent_free(relay_agent *a);

typedef struct relay_actor_options {
    const relay_bundle *model;
    const char *env;
    uint32_t max_traj_length;
    uint64_t seed;
    bool deterministic;
    const relay_id *id;
    const relay_model *value_model;
} relay_actor_options;

relay_err relay_agent_new_actors(relay_agent *a, uint32_t count, const relay_actor_options *opt,
                                 relay_id *ids);
relay_err relay_agent_remove_actor(relay_agent *a, relay_id id);
relay_err relay_agent_remove_actors(relay_agent *a, const relay_id *ids, size_t n);
relay_err relay_agent_set_actor_id(relay_agent *a, relay_id cur, relay_id next);
size_t relay_agent_actor_ids(relay_agent *a, relay_id *ids, size_t max);
uint32_t relay_agent_obs_dim(relay_agent *a, relay_id id);
uint32_t relay_agent_act_dim(relay_agent *a, relay_id id);
relay_err relay_agent_request_action(relay_agent *a, const relay_id *ids, size_t n,
                                     const float *obs, const uint8_t *masks,
                                     const float *rewards, float *actions, relay_err *errs);
relay_err relay_agent_flag_last_action(relay_agent *a, const relay_id *ids, size_t n,
                                       const float *rewards);
relay_err relay_agent_end_episodes(relay_agent *a, const relay_id *ids, size_t n,
                                   const float *rewards, const bool *truncated,
                                   const float *final_obs);
relay_err relay_agent_update_model(relay_agent *a, const relay_bundle *b, const relay_id *ids,
                                   size_t n);
relay_err relay_agent_get_model_version(relay_agent *a, const relay_id *ids, size_t n,
                                        int64_t *versions);
relay_err relay_agent_scale_throughput(relay_agent *a, int32_t delta);
uint32_t relay_agent_num_routers(relay_agent *a);
relay_err relay_agent_run_env(relay_agent *a, relay_id id, const char *env, uint32_t n_envs,
                              uint64_t steps, bool wait);
relay_err relay_agent_drain_trajectories(relay_agent *a, relay_traj **out, size_t max, size_t *n);
relay_err relay_agent_flush(relay_agent *a);

typedef struct relay_agent_stats {
    uint64_t env_steps, inferences, episodes, trajectories;
    uint64_t batched_inferences;
    uint64_t dispatched, pending, expired, rejected;
    uint64_t buffered_dropped, buffered_blocked;
    uint32_t sinks_open;
    uint64_t sink_errors;
    uint32_t actors, routers;
} relay_agent_stats;
void relay_agent_get_stats(relay_agent *a, relay_agent_stats *out);

typedef int relay_hidden_act;
typedef int relay_algo;
typedef struct relay_policy_spec {
    uint32_t obs_dim;
    bool discrete;
    uint32_t n_actions;
    uint32_t act_dim;
    float act_low[256];
    float act_high[256];
    uint32_t n_hidden;
    uint32_t hidden[4];
    relay_hidden_act activation;
    bool shared;
    float log_std_init;
    bool normalize_obs;
    float clip_obs;
} relay_policy_spec;
relay_err relay_policy_spec_from_spaces(relay_policy_spec *s, const relay_space *obs,
                                        const relay_space *act);
typedef struct relay_policy relay_policy;
relay_err relay_policy_act(relay_policy *p, const float *obs, uint32_t n, const uint8_t *mask,
                           bool deterministic, void *actions, float *env_actions, float *logp,
                           float *values);
relay_err relay_policy_value(relay_policy *p, const float *obs, uint32_t n, float *values);

typedef struct relay_rollout relay_rollout;
relay_err relay_rollout_new(const relay_policy_spec *spec, uint32_t n_envs, uint32_t n_steps,
                            relay_rollout **out);
void relay_rollout_free(relay_rollout *r);
void relay_rollout_clear(relay_rollout *r);
bool relay_rollout_full(const relay_rollout *r);
relay_err relay_rollout_add(relay_rollout *r, const float *obs, const void *actions,
                            const uint8_t *masks, const float *logp, const float *values,
                            const float *rewards, const bool *terminated, const bool *truncated,
                            const float *final_values);
relay_err relay_rollout_finish(relay_rollout *r, const float *last_values, float gamma,
                               float gae_lambda);

typedef struct relay_ppo_config {
    relay_algo algo;
    uint32_t n_envs;
    uint32_t n_steps;
    uint32_t batch_size;
    uint32_t n_epochs;
    float gamma, gae_lambda;
    float learning_rate;
    bool lr_linear;
    float clip_range;
    bool clip_linear;
    float clip_range_vf;
    float ent_coef, vf_coef;
    float max_grad_norm;
    float target_kl;
    bool normalize_advantage;
    float adam_eps;
    bool normalize_reward;
    float clip_reward;
    uint64_t total_timesteps;
    uint64_t seed;
    relay_policy_spec policy;
} relay_ppo_config;
void relay_ppo_config_default(relay_ppo_config *c);
relay_err relay_ppo_config_zoo(relay_ppo_config *c, const char *env_name);

typedef struct relay_ppo_metrics {
    float policy_loss, value_loss, entropy, approx_kl, clip_fraction;
    float explained_variance, learning_rate, clip_range, grad_norm;
    uint32_t epochs_run;
    uint32_t gradient_steps;
} relay_ppo_metrics;
typedef struct relay_ppo relay_ppo;
relay_err relay_ppo_new(const relay_ppo_config *cfg, relay_ppo **out);
void relay_ppo_free(relay_ppo *p);
relay_policy *relay_ppo_policy(relay_ppo *p);
relay_err relay_ppo_update(relay_ppo *p, relay_rollout *r, relay_ppo_metrics *m);
relay_err relay_ppo_normalize_rewards(relay_ppo *p, relay_rollout *r);

typedef struct relay_learner relay_learner;
typedef struct relay_learner_stats {
    uint64_t steps;
    uint64_t steps_received;
    uint64_t steps_stale;
    uint64_t episodes;
    uint32_t updates;
    int64_t version;
    float mean_return_100;
    float last_return;
    double seconds;
    double steps_per_second;
    bool done;
    relay_err error;
    relay_ppo_metrics last;
} relay_learner_stats;
typedef void (*relay_learner_update_fn)(const relay_learner_stats *st, void *user);
typedef struct relay_learner_options {
    const char *env;
    const relay_space *obs_space;
    const relay_space *act_space;
    const relay_ppo_config *ppo;
    uint32_t n_actors;
    uint32_t policy_lag;
    uint64_t seed;
    const char *resume_path;
    relay_learner_update_fn on_update;
    void *user;
} relay_learner_options;
relay_err relay_agent_attach_learner(relay_agent *a, const relay_learner_options *o,
                                     relay_id *ids, relay_learner **out);
void relay_learner_get_stats(relay_learner *l, relay_learner_stats *out);
relay_err relay_learner_wait_version(relay_learner *l, int64_t v, uint32_t timeout_ms);
uint32_t relay_learner_n_steps(relay_learner *l);
relay_err relay_learner_save_checkpoint(relay_learner *l, const char *path);
relay_err relay_learner_export_onnx(relay_learner *l, const char *path);
void relay_learner_stop(relay_learner *l);

typedef struct relay_train_result {
    uint64_t steps;
    uint64_t episodes;
    uint32_t updates;
    int64_t version;
    float mean_return_100;
    float target;
    double seconds;
    double steps_per_second;
    bool target_reached;
    char stop_reason[32];
    char out_dir[512];
    relay_ppo_metrics last;
} relay_train_result;
typedef bool (*relay_train_poll_fn)(const relay_train_result *now, void *user);
relay_err relay_train_run(const char *config_json, bool progress, relay_train_poll_fn poll,
                          void *user, relay_train_result *result);
relay_err relay_policy_export_onnx(const relay_policy *p, uint8_t **bytes, size_t *len);

void free(void *p);
"""

# Structs Python reads or writes field by field (checked by tests/test_layout.py).
CHECKED_STRUCTS = (
    "relay_id", "relay_step_spec", "relay_traj", "relay_space", "relay_env_def",
    "relay_space_desc", "relay_model_meta", "relay_actor_options", "relay_agent_stats",
    "relay_mlp_desc", "relay_learner_stats", "relay_learner_options", "relay_policy_spec", "relay_ppo_config", "relay_ppo_metrics", "relay_train_result",
)

# relay_config is passed through only; this many bytes are allocated for it (the C struct is
# about 2.2 KiB; tests/test_layout.py checks it still fits).
CONFIG_BYTES = 1 << 16

ffi = cffi.FFI()
ffi.cdef(CDEF)


def _candidates():
    env = os.environ.get("RELAY_LIB")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "_lib", "librelay.so")  # copied in by `pip install ./python`
    # Used from the source tree: python/relay -> <repo>/build/src/librelay.so
    yield os.path.join(here, "..", "..", "build", "src", "librelay.so")
    yield "librelay.so.0"  # installed system-wide


def _load():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path + " (missing)")
            continue
        try:
            return ffi.dlopen(path), path
        except OSError as exc:
            tried.append("%s (%s)" % (path, exc))
    raise ImportError("relay: cannot load librelay.so; set RELAY_LIB to its path. Tried: "
                      + "; ".join(tried))


lib, LIB_PATH = _load()
