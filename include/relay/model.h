/*
 * Policy models: ONNX import of MLP graphs, batched float32 inference, ONNX export of Relay MLPs,
 * model bundles (ONNX bytes + observation/action metadata) and hot-reload handles.
 *
 * A relay_model is immutable after creation except for its own scratch workspace, which only
 * relay_model_forward uses: call relay_model_forward from one thread at a time per model, or
 * give each thread its own relay_model_ws and call relay_model_forward_ws (safe concurrently).
 * Forward passes never allocate once the workspace is large enough for the batch.
 *
 * See docs/MODEL.md for the supported ONNX subset, limits and file layouts.
 */
#ifndef RELAY_MODEL_H
#define RELAY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/data.h"
#include "relay/err.h"
#include "relay/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RELAY_MODEL_MAX_ONNX_BYTES is the largest ONNX model Relay parses (256 MiB). */
#define RELAY_MODEL_MAX_ONNX_BYTES (256u << 20)
/* RELAY_MODEL_MAX_NODES is the most graph nodes one model may have. */
#define RELAY_MODEL_MAX_NODES 1024
/* RELAY_MODEL_MAX_WIDTH is the widest per-sample feature vector any value may have. */
#define RELAY_MODEL_MAX_WIDTH 65536
/* RELAY_MODEL_MAX_BATCH is the largest batch one forward call accepts. */
#define RELAY_MODEL_MAX_BATCH (1 << 20)
/* RELAY_MODEL_MAX_LAYERS is the most dense layers a relay_mlp_desc may have. */
#define RELAY_MODEL_MAX_LAYERS 64

/* relay_model is a compiled, immutable inference plan plus the ONNX bytes it came from. */
typedef struct relay_model relay_model;

/* relay_model_ws is a per-thread scratch workspace for relay_model_forward_ws. */
typedef struct relay_model_ws relay_model_ws;

/* relay_activation names the element-wise (or row-wise, for softmax) function after a layer. */
typedef enum relay_activation {
    RELAY_ACT_NONE = 0,
    RELAY_ACT_RELU = 1,
    RELAY_ACT_TANH = 2,
    RELAY_ACT_SIGMOID = 3,
    RELAY_ACT_SOFTMAX = 4
} relay_activation;

/* relay_kernel selects the compute kernels of a model (AUTO picks AVX2/FMA when the CPU has it). */
typedef enum relay_kernel {
    RELAY_KERNEL_AUTO = 0,
    RELAY_KERNEL_GENERIC = 1,
    RELAY_KERNEL_AVX2 = 2
} relay_kernel;

/* relay_model_from_onnx parses and compiles an ONNX model; bytes are copied (caller keeps them). */
RELAY_API relay_err relay_model_from_onnx(const void *bytes, size_t len, relay_model **out);

/* relay_model_load_onnx reads an .onnx file and compiles it like relay_model_from_onnx. */
RELAY_API relay_err relay_model_load_onnx(const char *path, relay_model **out);

/* relay_model_free frees a model and its own workspace; NULL is a no-op. */
RELAY_API void relay_model_free(relay_model *m);

/* relay_model_in_dim returns the per-sample input width (product of the non-batch input dims). */
RELAY_API uint32_t relay_model_in_dim(const relay_model *m);

/* relay_model_out_dim returns the per-sample output width. */
RELAY_API uint32_t relay_model_out_dim(const relay_model *m);

/* relay_model_input_shape copies the non-batch input dims into shape (up to max) and returns the
 * rank. */
RELAY_API uint32_t relay_model_input_shape(const relay_model *m, int64_t *shape, uint32_t max);

/* relay_model_onnx returns a view of the model's ONNX bytes (valid while the model lives). */
RELAY_API const uint8_t *relay_model_onnx(const relay_model *m, size_t *len);

/* relay_model_output_is_softmax reports whether the model's output comes from a softmax. */
RELAY_API bool relay_model_output_is_softmax(const relay_model *m);

/* relay_model_set_kernel picks the kernels (RELAY_EUNSUPPORTED if the CPU lacks AVX2/FMA). */
RELAY_API relay_err relay_model_set_kernel(relay_model *m, relay_kernel k);

/* relay_model_kernel returns the kernels in use (GENERIC or AVX2). */
RELAY_API relay_kernel relay_model_kernel(const relay_model *m);

/* relay_model_reserve grows the model's own workspace to hold batches of up to max_batch. */
RELAY_API relay_err relay_model_reserve(relay_model *m, int max_batch);

/*
 * relay_model_forward computes out[batch x out_dim] from in[batch x in_dim] (row-major float32)
 * using the model's own workspace, grown first if batch exceeds it (no allocation otherwise).
 * Not safe to call concurrently on the same model: use relay_model_forward_ws for that.
 */
RELAY_API relay_err relay_model_forward(relay_model *m, const float *in, int batch, float *out);

/* relay_model_ws_new returns an empty workspace, grown on demand by relay_model_forward_ws. */
RELAY_API relay_model_ws *relay_model_ws_new(void);

/* relay_model_ws_free frees a workspace; NULL is a no-op. */
RELAY_API void relay_model_ws_free(relay_model_ws *ws);

/* relay_model_ws_reserve grows ws so that m can run batches of up to max_batch without allocating.
 */
RELAY_API relay_err relay_model_ws_reserve(relay_model_ws *ws, const relay_model *m, int max_batch);

/* relay_model_forward_ws is relay_model_forward with a caller-owned workspace; m is only read. */
RELAY_API relay_err relay_model_forward_ws(const relay_model *m, relay_model_ws *ws,
                                           const float *in, int batch, float *out);

/*
 * relay_mlp_desc describes a dense MLP: n_layers layers mapping sizes[i] -> sizes[i + 1].
 * weights[i] is row-major [sizes[i+1]][sizes[i]] (PyTorch nn.Linear layout, out x in);
 * biases[i] has sizes[i+1] entries (biases may be NULL, or biases[i] NULL, for zero bias).
 */
typedef struct relay_mlp_desc {
    uint32_t n_layers;
    const uint32_t *sizes;               /* n_layers + 1 entries */
    const relay_activation *activations; /* n_layers entries; NULL = none everywhere */
    const float *const *weights;         /* n_layers pointers */
    const float *const *biases;          /* n_layers pointers, or NULL */
} relay_mlp_desc;

/* relay_mlp_to_onnx serialises d as an ONNX model (opset 17, IR 8); *bytes is malloc'd, caller
 * frees. */
RELAY_API relay_err relay_mlp_to_onnx(const relay_mlp_desc *d, uint8_t **bytes, size_t *len);

/* relay_model_from_mlp builds a model from d (through its ONNX form, so export and import agree).
 */
RELAY_API relay_err relay_model_from_mlp(const relay_mlp_desc *d, relay_model **out);

/* relay_space_desc describes an observation or action space of a model bundle. */
typedef struct relay_space_desc {
    bool discrete;                 /* true: one integer in [0, n) */
    int64_t n;                     /* number of discrete choices (discrete only) */
    relay_dtype dtype;             /* element type, e.g. RELAY_F32 or RELAY_I32 */
    uint32_t rank;                 /* rank of shape (0 for a scalar) */
    int64_t shape[RELAY_MAX_RANK]; /* per-sample shape, no batch dimension */
    uint32_t n_bounds;             /* 0: unbounded; 1: same bound everywhere; else numel */
    float *low;                    /* n_bounds entries (owned by the enclosing meta) */
    float *high;
} relay_space_desc;

/* relay_model_meta is the metadata of a model bundle. */
typedef struct relay_model_meta {
    int64_t version; /* policy version, increasing */
    relay_space_desc obs;
    relay_space_desc act;
} relay_model_meta;

/* relay_model_meta_fini frees the bounds arrays of meta and zeroes it. */
RELAY_API void relay_model_meta_fini(relay_model_meta *meta);

/* relay_model_meta_to_json renders meta as a JSON object string (malloc'd, caller frees). */
RELAY_API relay_err relay_model_meta_to_json(const relay_model_meta *meta, char **json);

/* relay_model_meta_from_json parses JSON text of length len into meta (caller runs _fini). */
RELAY_API relay_err relay_model_meta_from_json(const char *json, size_t len,
                                               relay_model_meta *meta);

/* relay_bundle is a policy model with its metadata and ONNX bytes, and optionally a value model
   (critic, obs -> V(s)) that actors made from the bundle use for the value column and bootstraps.
 */
typedef struct relay_bundle relay_bundle;

/* relay_bundle_new compiles onnx bytes and copies meta (deep) into a new bundle. */
RELAY_API relay_err relay_bundle_new(const void *onnx, size_t len, const relay_model_meta *meta,
                                     relay_bundle **out);

/* relay_bundle_load reads a bundle from a directory (model.onnx + metadata.json, optional
   value.onnx critic) or an .onnx file (no critic). */
RELAY_API relay_err relay_bundle_load(const char *path, relay_bundle **out);

/* relay_bundle_save writes model.onnx, metadata.json and value.onnx (when b has a critic; a stale
   one is removed otherwise) into dir (created if missing). */
RELAY_API relay_err relay_bundle_save(const relay_bundle *b, const char *dir);

/* relay_bundle_to_blob serialises b into one byte blob (malloc'd, caller frees; see MODEL.md). */
RELAY_API relay_err relay_bundle_to_blob(const relay_bundle *b, uint8_t **blob, size_t *len);

/* relay_bundle_from_blob parses a blob made by relay_bundle_to_blob (bytes are copied). */
RELAY_API relay_err relay_bundle_from_blob(const void *blob, size_t len, relay_bundle **out);

/* relay_bundle_free frees a bundle and its model; NULL is a no-op. */
RELAY_API void relay_bundle_free(relay_bundle *b);

/* relay_bundle_model returns the bundle's model (owned by the bundle). */
RELAY_API relay_model *relay_bundle_model(const relay_bundle *b);

/* relay_bundle_meta returns the bundle's metadata (owned by the bundle). */
RELAY_API const relay_model_meta *relay_bundle_meta(const relay_bundle *b);

/*
 * relay_bundle_set_value compiles onnx (len bytes) as b's value model, replacing any: it must map
 * the policy's observation width to 1 output (RELAY_ESHAPE, logged, otherwise). NULL/0 removes it.
 */
RELAY_API relay_err relay_bundle_set_value(relay_bundle *b, const void *onnx, size_t len);

/* relay_bundle_value returns b's value model (owned by b), or NULL when b has none. */
RELAY_API relay_model *relay_bundle_value(const relay_bundle *b);

/* relay_bundle_take_model moves the model out of b (b keeps its metadata; caller frees the model).
 */
RELAY_API relay_model *relay_bundle_take_model(relay_bundle *b);

/*
 * relay_model_handle publishes successive model versions to many reader threads.
 * Readers never block: acquire pins the current version (a reference count), forward with it,
 * and release it; a version is freed when it has been replaced and its last reader released it.
 */
typedef struct relay_model_handle relay_model_handle;

/* relay_model_ref is a reader's pinned model version (treat priv_ as opaque). */
typedef struct relay_model_ref {
    const relay_model *model; /* NULL when nothing is pinned */
    int64_t version;
    void *priv_;
} relay_model_ref;

/* relay_model_handle_new creates an empty handle (acquire fails with RELAY_ENOMODEL until publish).
 */
RELAY_API relay_err relay_model_handle_new(relay_model_handle **out);

/* relay_model_handle_free frees the handle and its current version; no reader may still hold a ref.
 */
RELAY_API void relay_model_handle_free(relay_model_handle *h);

/*
 * relay_model_handle_publish makes m (with its version number) current; the handle owns m on
 * success, the caller keeps it on failure. Writers are serialised; readers are never blocked.
 */
RELAY_API relay_err relay_model_handle_publish(relay_model_handle *h, relay_model *m,
                                               int64_t version);

/* relay_model_handle_acquire pins the current version into ref; RELAY_ENOMODEL if none published.
 */
RELAY_API relay_err relay_model_handle_acquire(relay_model_handle *h, relay_model_ref *ref);

/* relay_model_handle_release unpins ref (a no-op if ref pins nothing) and clears it. */
RELAY_API void relay_model_handle_release(relay_model_handle *h, relay_model_ref *ref);

/*
 * relay_model_handle_refresh re-pins ref to the current version if a newer one was published;
 * it costs one atomic load when ref is already current. Returns true when ref changed.
 */
RELAY_API bool relay_model_handle_refresh(relay_model_handle *h, relay_model_ref *ref);

/* relay_model_handle_version returns the version number of the current model (-1 if none). */
RELAY_API int64_t relay_model_handle_version(relay_model_handle *h);

#ifdef __cplusplus
}
#endif
#endif
