/*
 * Fuzz target: model bundle blobs and the other control messages. Byte 0 picks the message kind
 * written in the envelope; the rest is a raw relay.v1.Message payload sealed in a valid envelope.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    relay_codec *c = fuzz_codec();
    static relay_codec_buf env;
    relay_msg_kind kind = (relay_msg_kind)(1 + data[0] % 9);
    if (rly_envelope_seal(c, kind, data + 1, size - 1, &env) != RELAY_OK)
        return 0;
    relay_model_bundle b;
    if (relay_codec_decode_bundle(c, env.data, env.len, &b) == RELAY_OK) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < b.onnx_len; i++)
            sink ^= b.onnx[i];
        (void)sink;
        relay_model_bundle_fini(&b);
    }
    relay_msg m;
    if (relay_codec_decode_msg(c, env.data, env.len, &m) == RELAY_OK) {
        if (m.kind != kind)
            abort();
        if (m.kind == RELAY_MSG_HANDSHAKE) {
            volatile uint8_t sink = 0;
            for (uint32_t i = 0; i < m.handshake.n_actors; i++)
                sink ^= m.handshake.actors[i].bytes[15];
            (void)sink;
        }
        relay_codec_buf out = {0};
        if (relay_codec_encode_msg(c, &m, &out) != RELAY_OK)
            abort();
        relay_codec_buf_fini(&out);
        relay_msg_fini(&m);
    }
    return 0;
}
