/*
 * Fuzz target: central inference frames (src/transport/infer_wire.h), the request decoder the
 * server's inference thread runs on network bytes, and the reply decoder actor processes run.
 * A request that decodes must re-encode to the same bytes; every view must lie inside the input.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "transport/infer_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const uint8_t *p, size_t n, const uint8_t *data, size_t size)
{
    if (n && (p < data || p + n > data + size))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rly_iw_req q;
    char why[RLY_IW_TEXT_MAX + 1];
    if (rly_iw_req_decode(data, size, &q, why, sizeof why) == RELAY_OK) {
        size_t nr = (size_t)q.rows * q.draws * 8, no = (size_t)q.rows * q.obs_dim * 4;
        inside(q.rand, nr, data, size);
        inside(q.obs, no, data, size);
        if (q.mask)
            inside(q.mask, (size_t)q.rows * q.n_actions, data, size);
        double *rand = malloc(nr ? nr : 1);
        float *obs = malloc(no);
        uint8_t *again = malloc(size);
        if (!rand || !obs || !again)
            abort();
        memcpy(rand, q.rand, nr);
        memcpy(obs, q.obs, no);
        size_t len = 0;
        if (rly_iw_req_encode(again, size, &len, q.id, q.rows, q.obs_dim, q.n_actions, q.act_dim,
                              q.deterministic, rand, obs, q.mask) != RELAY_OK ||
            len != size || memcmp(again, data, size) != 0)
            abort();
        free(rand);
        free(obs);
        free(again);
    }
    rly_iw_rep r;
    if (rly_iw_rep_decode(data, size, &r) == RELAY_OK) {
        if (r.status == RELAY_OK) {
            inside(r.actions, (size_t)r.rows * r.width * 4, data, size);
            inside(r.value, (size_t)r.rows * 4, data, size);
        } else {
            inside((const uint8_t *)r.text, r.text_len, data, size);
        }
    }
    return 0;
}
