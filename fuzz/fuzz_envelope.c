/*
 * Fuzz target: the envelope decoder. Byte 0 picks a mode: even = the rest is an envelope as is;
 * odd = the CRC of the rest is repaired first, so mutations reach decryption, decompression and
 * the protobuf decoder instead of stopping at the checksum.
 */
#include <string.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    relay_codec *c = fuzz_codec();
    uint8_t mode = data[0];
    data++;
    size--;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if ((mode & 1) && size >= RELAY_ENVELOPE_HEADER) {
        uint32_t crc = relay_crc32c(0, copy, RLY_ENV_OFF_CRC);
        crc = relay_crc32c(crc, copy + RELAY_ENVELOPE_HEADER, size - RELAY_ENVELOPE_HEADER);
        for (int i = 0; i < 4; i++)
            copy[RLY_ENV_OFF_CRC + i] = (uint8_t)(crc >> (8 * i));
    }
    relay_msg m;
    if (relay_codec_decode_msg(c, copy, size, &m) == RELAY_OK) {
        if (m.kind == RELAY_MSG_TRAJECTORY)
            fuzz_check_traj(m.traj);
        /* whatever decodes must encode again */
        relay_codec_buf out = {0};
        if (relay_codec_encode_msg(c, &m, &out) != RELAY_OK)
            abort();
        relay_codec_buf_fini(&out);
        relay_msg_fini(&m);
    }
    relay_msg_kind kind;
    size_t total;
    (void)relay_codec_peek(copy, size, &kind, &total);
    free(copy);
    return 0;
}
