/* Model lifetime, workspaces and the forward pass over the compiled plan. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "model/model_int.h"
#include "onnx_subset.pb-c.h"

#define LOG RLY_MODEL_LOG

float *rly_aligned_floats(size_t n)
{
    size_t bytes = (n ? n : 1) * sizeof(float);
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

relay_err rly_read_file(const char *path, size_t max, uint8_t **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        rly_error(LOG, "cannot open '%s': %s", path, strerror(errno));
        return errno == ENOENT ? RELAY_ENOTFOUND : RELAY_EIO;
    }
    relay_err e = RELAY_OK;
    uint8_t *buf = NULL;
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        rly_error(LOG, "cannot size '%s'", path);
        e = RELAY_EIO;
    } else if ((size_t)sz > max) {
        rly_error(LOG, "'%s' is %ld bytes (limit %zu)", path, sz, max);
        e = RELAY_ETOOBIG;
    } else if (!(buf = malloc((size_t)sz + 1))) {
        e = RELAY_ENOMEM;
    } else if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
        rly_error(LOG, "cannot read '%s'", path);
        e = RELAY_EIO;
    }
    fclose(f);
    if (e) {
        free(buf);
        return e;
    }
    buf[sz] = 0;
    *data = buf;
    *len = (size_t)sz;
    return RELAY_OK;
}

relay_err rly_model_prepare_narrow(relay_model *m)
{
    for (uint32_t i = 0; i < m->n_ops; i++) {
        rly_op *op = &m->ops[i];
        if (op->kind != RLY_OP_DENSE || op->m > RLY_NARROW_MAX || op->wt)
            continue;
        op->kpad = (op->k + 7) & ~7u;
        op->wt = rly_aligned_floats((size_t)RLY_NARROW_MAX * op->kpad);
        if (!op->wt) {
            rly_error(LOG, "cannot allocate %u transposed weights", RLY_NARROW_MAX * op->kpad);
            return RELAY_ENOMEM;
        }
        /* m <= 4 < 16: one panel, [k][16]; columns j >= m of wt stay zero. */
        for (uint32_t j = 0; j < op->m; j++)
            for (uint32_t k = 0; k < op->k; k++)
                op->wt[(size_t)j * op->kpad + k] = op->w[(size_t)k * RLY_PANEL + j];
    }
    return RELAY_OK;
}

void rly_model_free_plan(relay_model *m)
{
    for (uint32_t i = 0; i < m->n_ops; i++) {
        free(m->ops[i].w);
        free(m->ops[i].b);
        free(m->ops[i].wt);
    }
    free(m->ops);
    m->ops = NULL;
    m->n_ops = 0;
}

relay_err relay_model_from_onnx(const void *bytes, size_t len, relay_model **out)
{
    if (!out)
        return RELAY_EINVAL;
    *out = NULL;
    if (!bytes || len == 0) {
        rly_error(LOG, "empty ONNX model");
        return bytes || len == 0 ? RELAY_EFORMAT : RELAY_EINVAL;
    }
    if (len > RELAY_MODEL_MAX_ONNX_BYTES) {
        rly_error(LOG, "ONNX model of %zu bytes exceeds the limit of %u", len,
                  RELAY_MODEL_MAX_ONNX_BYTES);
        return RELAY_ETOOBIG;
    }
    relay_model *m = calloc(1, sizeof *m);
    if (!m)
        return RELAY_ENOMEM;
    m->onnx = malloc(len);
    if (!m->onnx) {
        free(m);
        return RELAY_ENOMEM;
    }
    memcpy(m->onnx, bytes, len);
    m->onnx_len = len;
    Onnx__ModelProto *mp = onnx__model_proto__unpack(NULL, len, m->onnx);
    if (!mp) {
        rly_error(LOG, "ONNX model does not decode as a protobuf ModelProto");
        relay_model_free(m);
        return RELAY_EFORMAT;
    }
    relay_err e = rly_model_compile(m, mp);
    onnx__model_proto__free_unpacked(mp, NULL);
    if (!e)
        e = rly_model_prepare_narrow(m);
    if (e) {
        relay_model_free(m);
        return e;
    }
    m->kern = *rly_kernels_get(RELAY_KERNEL_AUTO);
    *out = m;
    return RELAY_OK;
}

relay_err relay_model_load_onnx(const char *path, relay_model **out)
{
    if (!path || !out)
        return RELAY_EINVAL;
    uint8_t *data;
    size_t len;
    relay_err e = rly_read_file(path, RELAY_MODEL_MAX_ONNX_BYTES, &data, &len);
    if (e)
        return e;
    e = relay_model_from_onnx(data, len, out);
    free(data);
    return e;
}

void relay_model_free(relay_model *m)
{
    if (!m)
        return;
    rly_model_free_plan(m);
    free(m->ws.buf);
    free(m->onnx);
    free(m);
}

uint32_t relay_model_in_dim(const relay_model *m)
{
    return m ? m->in_dim : 0;
}

uint32_t relay_model_out_dim(const relay_model *m)
{
    return m ? m->out_dim : 0;
}

uint32_t relay_model_input_shape(const relay_model *m, int64_t *shape, uint32_t max)
{
    if (!m)
        return 0;
    for (uint32_t i = 0; i < m->in_rank && i < max; i++)
        shape[i] = m->in_shape[i];
    return m->in_rank;
}

const uint8_t *relay_model_onnx(const relay_model *m, size_t *len)
{
    if (len)
        *len = m ? m->onnx_len : 0;
    return m ? m->onnx : NULL;
}

bool relay_model_output_is_softmax(const relay_model *m)
{
    return m && m->out_softmax;
}

relay_err relay_model_set_kernel(relay_model *m, relay_kernel k)
{
    if (!m || (k != RELAY_KERNEL_AUTO && k != RELAY_KERNEL_GENERIC && k != RELAY_KERNEL_AVX2))
        return RELAY_EINVAL;
    const rly_kernels *kt = rly_kernels_get(k);
    if (!kt) {
        rly_warn(LOG, "AVX2/FMA kernels are not available on this CPU");
        return RELAY_EUNSUPPORTED;
    }
    m->kern = *kt;
    return RELAY_OK;
}

relay_kernel relay_model_kernel(const relay_model *m)
{
    return m ? m->kern.id : RELAY_KERNEL_AUTO;
}

/* slot_stride returns the floats one workspace slot takes for batch rows (64-byte multiple). */
static size_t slot_stride(const relay_model *m, int batch)
{
    size_t n = (size_t)batch * m->max_width;
    return (n + 15) & ~(size_t)15;
}

static relay_err ws_grow(relay_model_ws *ws, const relay_model *m, int batch)
{
    size_t need = slot_stride(m, batch) * m->n_slots;
    if (need <= ws->cap)
        return RELAY_OK;
    float *buf = rly_aligned_floats(need);
    if (!buf) {
        rly_error(LOG, "cannot allocate a workspace of %zu floats", need);
        return RELAY_ENOMEM;
    }
    free(ws->buf);
    ws->buf = buf;
    ws->cap = need;
    return RELAY_OK;
}

relay_model_ws *relay_model_ws_new(void)
{
    return calloc(1, sizeof(relay_model_ws));
}

void relay_model_ws_free(relay_model_ws *ws)
{
    if (!ws)
        return;
    free(ws->buf);
    free(ws);
}

relay_err relay_model_ws_reserve(relay_model_ws *ws, const relay_model *m, int max_batch)
{
    if (!ws || !m || max_batch < 1 || max_batch > RELAY_MODEL_MAX_BATCH)
        return RELAY_EINVAL;
    return ws_grow(ws, m, max_batch);
}

relay_err relay_model_reserve(relay_model *m, int max_batch)
{
    if (!m)
        return RELAY_EINVAL;
    return relay_model_ws_reserve(&m->ws, m, max_batch);
}

static void run_plan(const relay_model *m, float *ws, const float *in, int batch, float *out)
{
    const size_t stride = slot_stride(m, batch);
    const rly_kernels *k = &m->kern;
    for (uint32_t i = 0; i < m->n_ops; i++) {
        const rly_op *op = &m->ops[i];
        const float *x = op->src == RLY_BUF_IN    ? in
                         : op->src == RLY_BUF_OUT ? out
                                                  : ws + (size_t)op->src * stride;
        float *y = op->dst == RLY_BUF_OUT ? out : ws + (size_t)op->dst * stride;
        const size_t count = (size_t)batch * op->m;
        switch (op->kind) {
        case RLY_OP_DENSE:
            k->dense(op, x, batch, y);
            if (op->act == RELAY_ACT_SOFTMAX)
                k->softmax(y, batch, op->m);
            break;
        case RLY_OP_BIAS:
            for (int r = 0; r < batch; r++)
                for (uint32_t j = 0; j < op->m; j++)
                    y[(size_t)r * op->m + j] = x[(size_t)r * op->m + j] + op->b[j];
            break;
        case RLY_OP_ADD: {
            const float *x2 = op->src2 == RLY_BUF_IN    ? in
                              : op->src2 == RLY_BUF_OUT ? out
                                                        : ws + (size_t)op->src2 * stride;
            for (size_t j = 0; j < count; j++)
                y[j] = x[j] + x2[j];
            break;
        }
        case RLY_OP_ACT:
            if (y != x)
                memcpy(y, x, count * sizeof(float));
            if (op->act == RELAY_ACT_SOFTMAX)
                k->softmax(y, batch, op->m);
            else
                k->act(op->act, y, count);
            break;
        case RLY_OP_COPY:
            memcpy(y, x, count * sizeof(float));
            break;
        }
    }
}

relay_err relay_model_forward_ws(const relay_model *m, relay_model_ws *ws, const float *in,
                                 int batch, float *out)
{
    if (!m || !ws || !in || !out)
        return RELAY_EINVAL;
    if (batch < 1 || batch > RELAY_MODEL_MAX_BATCH) {
        rly_warn(LOG, "forward: batch %d outside [1, %d]", batch, RELAY_MODEL_MAX_BATCH);
        return RELAY_EINVAL;
    }
    relay_err e = ws_grow(ws, m, batch);
    if (e)
        return e;
    run_plan(m, ws->buf, in, batch, out);
    return RELAY_OK;
}

relay_err relay_model_forward(relay_model *m, const float *in, int batch, float *out)
{
    if (!m)
        return RELAY_EINVAL;
    return relay_model_forward_ws(m, &m->ws, in, batch, out);
}
