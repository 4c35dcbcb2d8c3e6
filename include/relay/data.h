/*
 * Relay's plain data types: tensors, actions (one step) and trajectories (columnar runs of steps).
 *
 * A trajectory stores its steps column by column in contiguous buffers (observations [T x obs],
 * actions [T x act], masks, rewards, flags, auxiliary values, timestamps), so sinks and codecs
 * move whole columns and recording a step never allocates once the capacity is reserved.
 * relay_action is a row: either an owned copy or a view into a trajectory.
 */
#ifndef RELAY_DATA_H
#define RELAY_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/err.h"
#include "relay/export.h"
#include "relay/id.h"

#ifdef __cplusplus
extern "C" {
#endif

/* relay_dtype names an element type; values are stable (used on the wire and in files). */
typedef enum relay_dtype {
    RELAY_DTYPE_INVALID = 0,
    RELAY_F32 = 1,
    RELAY_F64 = 2,
    RELAY_I32 = 3,
    RELAY_I64 = 4,
    RELAY_U8 = 5,
    RELAY_BOOL = 6
} relay_dtype;

/* RELAY_MAX_RANK is the largest tensor rank Relay accepts. */
#define RELAY_MAX_RANK 8
/* RELAY_MAX_AUX is the most auxiliary named values one step may carry. */
#define RELAY_MAX_AUX 8
/* RELAY_AUX_NAME_MAX is the longest auxiliary value name, including the NUL. */
#define RELAY_AUX_NAME_MAX 24
/* RELAY_LABEL_MAX is the longest environment label, including the NUL. */
#define RELAY_LABEL_MAX 64

/* relay_dtype_size returns the size in bytes of one element of dtype (0 if invalid). */
RELAY_API size_t relay_dtype_size(relay_dtype dtype);

/* relay_dtype_name returns "f32", "f64", "i32", "i64", "u8", "bool" or "invalid". */
RELAY_API const char *relay_dtype_name(relay_dtype dtype);

/* relay_dtype_valid reports whether dtype is one of the element types above. */
RELAY_API bool relay_dtype_valid(relay_dtype dtype);

/*
 * relay_shape_nbytes computes the byte size of a dense array of dtype and shape into *out;
 * RELAY_EDTYPE (invalid dtype), RELAY_ESHAPE (rank > 8, NULL shape or negative dimension) or
 * RELAY_ETOOBIG (element count or byte size overflows) otherwise.
 */
RELAY_API relay_err relay_shape_nbytes(relay_dtype dtype, uint32_t rank, const int64_t *shape,
                                       size_t *out);

/* relay_tensor is a dense, contiguous, little-endian n-d array; it owns data iff owns is true. */
typedef struct relay_tensor {
    relay_dtype dtype;
    uint32_t rank;
    int64_t shape[RELAY_MAX_RANK];
    void *data;
    size_t nbytes;
    bool owns;
} relay_tensor;

/* relay_tensor_init allocates a zeroed tensor of the given dtype and shape (rank <= 8). */
RELAY_API relay_err relay_tensor_init(relay_tensor *t, relay_dtype dtype, uint32_t rank,
                                      const int64_t *shape);

/* relay_tensor_view wraps caller-owned data without copying; the caller keeps data alive. */
RELAY_API relay_err relay_tensor_view(relay_tensor *t, relay_dtype dtype, uint32_t rank,
                                      const int64_t *shape, void *data);

/* relay_tensor_copy makes dst an owned deep copy of src. */
RELAY_API relay_err relay_tensor_copy(relay_tensor *dst, const relay_tensor *src);

/* relay_tensor_fini frees owned data and zeroes t; a zeroed or view tensor is fine. */
RELAY_API void relay_tensor_fini(relay_tensor *t);

/* relay_tensor_numel returns the element count (product of the shape; 1 for rank 0). */
RELAY_API int64_t relay_tensor_numel(const relay_tensor *t);

/* relay_aux is one auxiliary named value of a step (e.g. "logp", "value"). */
typedef struct relay_aux {
    char name[RELAY_AUX_NAME_MAX];
    float value;
} relay_aux;

/* relay_action is one step: what was seen, what was done, and what came of it. */
typedef struct relay_action {
    relay_tensor obs;
    relay_tensor act;
    relay_tensor mask; /* dtype RELAY_DTYPE_INVALID when absent */
    float reward;
    bool terminated;
    bool truncated;
    uint32_t n_aux;
    relay_aux aux[RELAY_MAX_AUX];
    relay_id actor;
    int64_t timestamp_ns; /* Unix epoch nanoseconds */
} relay_action;

/* relay_action_fini frees the action's owned tensors. */
RELAY_API void relay_action_fini(relay_action *a);

/* relay_action_aux returns the auxiliary value called name, or def if absent. */
RELAY_API float relay_action_aux(const relay_action *a, const char *name, float def);

/* relay_step_spec describes the per-step columns of a trajectory; all steps share it. */
typedef struct relay_step_spec {
    relay_dtype obs_dtype;
    uint32_t obs_rank;
    int64_t obs_shape[RELAY_MAX_RANK];
    relay_dtype act_dtype;
    uint32_t act_rank;
    int64_t act_shape[RELAY_MAX_RANK];
    relay_dtype mask_dtype; /* RELAY_DTYPE_INVALID: no mask column */
    uint32_t mask_rank;
    int64_t mask_shape[RELAY_MAX_RANK];
    uint32_t n_aux;
    char aux_names[RELAY_MAX_AUX][RELAY_AUX_NAME_MAX];
} relay_step_spec;

/* relay_step_spec_bytes returns the per-step byte sizes of the obs, act and mask columns. */
RELAY_API void relay_step_spec_bytes(const relay_step_spec *s, size_t *obs, size_t *act,
                                     size_t *mask);

/*
 * relay_step_spec_validate checks dtypes, ranks, shapes (no overflow), n_aux <= RELAY_MAX_AUX and
 * NUL-terminated aux names; it logs and returns the first problem found.
 */
RELAY_API relay_err relay_step_spec_validate(const relay_step_spec *s);

/* relay_step_spec_eq reports whether two specs describe the same columns. */
RELAY_API bool relay_step_spec_eq(const relay_step_spec *a, const relay_step_spec *b);

/* relay_traj is a trajectory: identity fields plus len steps stored column by column. */
typedef struct relay_traj {
    relay_id actor;
    int64_t env_id;                  /* -1 when the actor has no vectorised env */
    char env_label[RELAY_LABEL_MAX]; /* "" when none */
    int64_t episode;
    int64_t policy_version;
    int64_t start_ns, end_ns; /* Unix epoch nanoseconds of the first and last step */
    uint32_t max_len;         /* 0 = unlimited */
    uint32_t len, cap;
    relay_step_spec spec;
    uint8_t *obs;        /* [cap x obs bytes] */
    uint8_t *act;        /* [cap x act bytes] */
    uint8_t *mask;       /* [cap x mask bytes] or NULL */
    float *reward;       /* [cap] */
    uint8_t *terminated; /* [cap] 0/1 */
    uint8_t *truncated;  /* [cap] 0/1 */
    float *aux;          /* [cap x n_aux] */
    int64_t *ts;         /* [cap] Unix epoch nanoseconds */
    /* Per-step byte sizes of obs/act/mask, cached by relay_traj_reserve (private). */
    size_t row_obs_, row_act_, row_mask_;
    bool row_cached_;
} relay_traj;

/*
 * relay_traj_new allocates an empty trajectory for spec with room for cap steps (max_len 0 = none);
 * NULL when spec is invalid (see relay_step_spec_validate) or memory runs out.
 */
RELAY_API relay_traj *relay_traj_new(const relay_step_spec *spec, uint32_t cap, uint32_t max_len);

/* relay_traj_free frees t and its columns; NULL is a no-op. */
RELAY_API void relay_traj_free(relay_traj *t);

/* relay_traj_reserve grows the columns to hold at least cap steps. */
RELAY_API relay_err relay_traj_reserve(relay_traj *t, uint32_t cap);

/*
 * relay_traj_push appends one step, copying obs/act/mask (mask may be NULL) and aux (n_aux values
 * in spec order; NULL = zeros; a NULL mask with a mask column records ones, i.e. all allowed).
 * Returns RELAY_EFULL, without appending, once len == max_len: the caller emits
 * the trajectory (marked truncated) and starts a new one.
 */
RELAY_API relay_err relay_traj_push(relay_traj *t, const void *obs, const void *act,
                                    const void *mask, float reward, bool terminated, bool truncated,
                                    const float *aux, int64_t ts_ns);

/* relay_traj_clear drops all steps but keeps the columns and identity fields. */
RELAY_API void relay_traj_clear(relay_traj *t);

/* relay_traj_get_action fills a with views into step i of t (no copies; valid while t is). */
RELAY_API relay_err relay_traj_get_action(const relay_traj *t, uint32_t i, relay_action *a);

/* relay_traj_return returns the sum of rewards of t. */
RELAY_API double relay_traj_return(const relay_traj *t);

/* relay_traj_clone returns a deep copy of t, or NULL when out of memory. */
RELAY_API relay_traj *relay_traj_clone(const relay_traj *t);

#ifdef __cplusplus
}
#endif
#endif
