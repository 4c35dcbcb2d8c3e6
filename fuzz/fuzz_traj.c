/*
 * Fuzz target: trajectory decoding. The input is a raw relay.v1.Message payload; it is sealed in
 * a valid envelope and decoded both into a new trajectory and into a reused one.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relay_codec *c = fuzz_codec();
    static relay_codec_buf env;
    static relay_traj *reuse;
    if (!reuse) {
        relay_step_spec s = {
            .obs_dtype = RELAY_F32, .obs_rank = 1, .obs_shape = {4}, .act_dtype = RELAY_I32};
        reuse = relay_traj_new(&s, 4, 0);
        if (!reuse)
            abort();
    }
    if (rly_envelope_seal(c, RELAY_MSG_TRAJECTORY, data, size, &env) != RELAY_OK)
        return 0;
    relay_traj *t = NULL;
    if (relay_codec_decode_traj(c, env.data, env.len, &t) == RELAY_OK) {
        fuzz_check_traj(t);
        relay_codec_buf out = {0};
        if (relay_codec_encode_traj(c, t, &out) != RELAY_OK)
            abort();
        relay_traj *back = NULL;
        if (relay_codec_decode_traj(c, out.data, out.len, &back) != RELAY_OK ||
            back->len != t->len || !relay_step_spec_eq(&back->spec, &t->spec))
            abort();
        relay_traj_free(back);
        relay_codec_buf_fini(&out);
        relay_traj_free(t);
    }
    if (relay_codec_decode_traj_into(c, env.data, env.len, reuse) == RELAY_OK)
        fuzz_check_traj(reuse);
    else if (reuse->len != 0)
        abort();
    return 0;
}
