/*
 * nats_inject: publishes hostile messages on a run's trajectory subject for the distributed tests.
 * usage: nats_inject URL RUN MODE [COUNT]
 * MODE: garbage | truncated | badmagic | hugecount | bigframe | replay | plaintext | wrongenv
 * Prints "published N" and exits 0 when every message was stored by the bus.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relay/codec.h"
#include "relay/data.h"
#include "transport/batch.h"
#include "transport/transport.h"

static relay_traj *make_traj(uint32_t obs_dim, uint32_t len)
{
    relay_step_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.obs_dtype = RELAY_F32;
    sp.obs_rank = 1;
    sp.obs_shape[0] = obs_dim;
    sp.act_dtype = RELAY_I32;
    sp.act_rank = 1;
    sp.act_shape[0] = 1;
    sp.n_aux = 4;
    snprintf(sp.aux_names[0], sizeof sp.aux_names[0], "logp");
    snprintf(sp.aux_names[1], sizeof sp.aux_names[1], "value");
    snprintf(sp.aux_names[2], sizeof sp.aux_names[2], "bootstrap");
    snprintf(sp.aux_names[3], sizeof sp.aux_names[3], "cut");
    relay_traj *t = relay_traj_new(&sp, len, 0);
    float obs[64] = {0}, aux[4] = {-0.69f, 0, 0, 0};
    int32_t act = 0;
    for (uint32_t i = 0; t && i < len; i++)
        relay_traj_push(t, obs, &act, NULL, 1.0f, i + 1 == len, false, aux, 0);
    return t;
}

/* publish retries until the stream exists (the server creates it) or 15 s pass. */
static int publish(rly_tp *tp, const char *id, const void *data, size_t len)
{
    for (int i = 0; i < 150; i++) {
        if (rly_tp_raw_publish(tp, id, data, len) == RELAY_OK)
            return 1;
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: nats_inject URL RUN MODE [COUNT]\n");
        return 2;
    }
    const char *mode = argv[3];
    int count = argc > 4 ? atoi(argv[4]) : 1;
    rly_tp_config c;
    rly_tp_config_init(&c);
    c.url = argv[1];
    c.run = argv[2];
    c.user = getenv("RELAY_NATS_USER");
    c.password = getenv("RELAY_NATS_PASSWORD");
    rly_tp *tp = NULL;
    if (rly_tp_open(&c, &tp) != RELAY_OK)
        return 1;
    relay_codec_options o;
    relay_codec_options_default(&o);
    relay_codec *codec = NULL;
    if (relay_codec_new(&o, &codec) != RELAY_OK) /* plaintext; RELAY_KEY (if set) encrypts */
        return 1;
    relay_codec_buf b = {0}, env = {0};
    relay_id producer = relay_id_new();
    int ok = 0;
    for (int k = 0; k < count; k++) {
        char id[RLY_TP_MSGID_MAX];
        rly_batch_msg_id(producer, (uint64_t)k + 1, id, sizeof id);
        relay_traj *t = make_traj(!strcmp(mode, "wrongenv") ? 3 : 4, 5);
        relay_codec_encode_traj(codec, t, &env);
        relay_traj_free(t);
        rly_batch_begin(&b, producer, (uint64_t)k + 1);
        rly_batch_add(&b, env.data, env.len);
        const char *mid = id;
        if (!strcmp(mode, "garbage")) {
            for (size_t i = 0; i < b.len; i++)
                b.data[i] = (uint8_t)(i * 131 + 7);
        } else if (!strcmp(mode, "truncated")) {
            b.len -= env.len / 2;
        } else if (!strcmp(mode, "badmagic")) {
            b.data[0] = 'X';
        } else if (!strcmp(mode, "hugecount")) {
            b.data[35] = 0x7f;
        } else if (!strcmp(mode, "bigframe")) {
            b.len = RLY_BATCH_HEADER;
            b.data[32] = 1; /* one frame declaring 1 GiB */
            uint8_t v[5] = {0x80, 0x80, 0x80, 0x80, 0x04};
            memcpy(b.data + b.len, v, 5);
            b.len += 5;
        } else if (!strcmp(mode, "replay")) {
            mid = NULL; /* same batch twice, past the bus's dedup (no id): the seen table */
            ok += publish(tp, mid, b.data, b.len);
        }
        ok += publish(tp, mid, b.data, b.len);
    }
    printf("published %d\n", ok);
    relay_codec_buf_fini(&b);
    relay_codec_buf_fini(&env);
    relay_codec_free(codec);
    rly_tp_close(tp);
    return 0;
}
