/*
 * Fuzz target: length-delimited stream framing, over a buffer and over a FILE, with every frame
 * body handed to the message decoder.
 */
#include <stdio.h>

#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relay_codec *c = fuzz_codec();
    size_t off = 0;
    for (;;) {
        const uint8_t *msg;
        size_t n, used;
        relay_err e = relay_codec_frame_parse(data + off, size - off, 1 << 20, &msg, &n, &used);
        if (e != RELAY_OK)
            break;
        if (used == 0 || used > size - off || msg + n != data + off + used)
            abort();
        relay_msg m;
        if (relay_codec_decode_msg(c, msg, n, &m) == RELAY_OK)
            relay_msg_fini(&m);
        off += used;
    }
    FILE *f = fmemopen((void *)data, size, "rb");
    if (!f)
        return 0;
    relay_codec_buf buf = {0};
    size_t frames = 0;
    while (relay_codec_frame_read(f, &buf, 1 << 20) == RELAY_OK)
        frames++;
    (void)frames;
    relay_codec_buf_fini(&buf);
    fclose(f);
    return 0;
}
