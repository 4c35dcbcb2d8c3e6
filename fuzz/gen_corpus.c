/*
 * Writes the seed corpus of every fuzz target: valid encodings of each message kind under every
 * compression x encryption option, plus broken variants (truncated, flipped, bad header).
 * Usage: fuzz_gen_corpus DIR   (writes DIR/envelope, DIR/traj, DIR/bundle, DIR/frame).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static const char *root;
static int count;

static void put(const char *target, const char *name, const void *a, size_t na, const void *b,
                size_t nb)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || (na && fwrite(a, 1, na, f) != na) || (nb && fwrite(b, 1, nb, f) != nb)) {
        perror(path);
        exit(1);
    }
    fclose(f);
    count++;
}

static relay_traj *sample_traj(relay_dtype obs, bool mask, uint32_t n)
{
    relay_step_spec s;
    memset(&s, 0, sizeof s);
    s.obs_dtype = obs;
    s.obs_rank = 1;
    s.obs_shape[0] = 4;
    s.act_dtype = RELAY_I32;
    if (mask) {
        s.mask_dtype = RELAY_U8;
        s.mask_rank = 1;
        s.mask_shape[0] = 2;
    }
    s.n_aux = 2;
    strcpy(s.aux_names[0], "logp");
    strcpy(s.aux_names[1], "value");
    relay_traj *t = relay_traj_new(&s, n ? n : 1, 500);
    if (!t)
        exit(1);
    t->actor = relay_id_from_seed(1, n);
    t->env_id = n % 3 ? 2 : -1;
    strcpy(t->env_label, "CartPole-v1");
    t->episode = 3;
    t->policy_version = 9;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t o[32];
        for (int k = 0; k < 32; k++)
            o[k] = obs == RELAY_BOOL ? (i + k) & 1 : (uint8_t)(i * 13 + k);
        int32_t a = (int32_t)(i % 2);
        uint8_t mk[2] = {1, (uint8_t)(i & 1)};
        float aux[2] = {-0.5f, (float)i};
        if (relay_traj_push(t, o, &a, mask ? mk : NULL, 1.0f, i + 1 == n, false, aux, 1000 + i) !=
            RELAY_OK)
            exit(1);
    }
    return t;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    mkdir(root, 0755);
    relay_log_set_level(RELAY_LOG_OFF);
    static const char *const cname[] = {"none", "lz4", "zstd"};
    relay_codec_buf buf = {0}, frames = {0};
    static uint8_t onnx[3000];
    for (size_t i = 0; i < sizeof onnx; i++)
        onnx[i] = (uint8_t)(i % 17);
    relay_id ids[2] = {relay_id_from_seed(4, 0), relay_id_from_seed(4, 1)};

    /* every message kind as a relay_msg */
    relay_msg msgs[10];
    memset(msgs, 0, sizeof msgs);
    relay_traj *traj = sample_traj(RELAY_F32, true, 20);
    msgs[0].kind = RELAY_MSG_TRAJECTORY;
    msgs[0].traj = traj;
    msgs[1].kind = RELAY_MSG_ACTION;
    int64_t shape[1] = {4};
    static float obs4[4] = {0.1f, 0.2f, 0.3f, 0.4f};
    static int32_t act1 = 1;
    relay_tensor_view(&msgs[1].action.obs, RELAY_F32, 1, shape, obs4);
    relay_tensor_view(&msgs[1].action.act, RELAY_I32, 0, NULL, &act1);
    msgs[1].action.n_aux = 1;
    strcpy(msgs[1].action.aux[0].name, "logp");
    msgs[2].kind = RELAY_MSG_MODEL_BUNDLE;
    relay_model_bundle *b = &msgs[2].bundle;
    b->onnx = onnx;
    b->onnx_len = sizeof onnx;
    b->version = 4;
    strcpy(b->name, "ppo_pi");
    strcpy(b->input_name, "input");
    strcpy(b->output_name, "output");
    b->obs_space.dim = 4;
    b->obs_space.has_bounds = true;
    b->act_space.discrete = true;
    b->act_space.n = 2;
    b->act_space.dim = 1;
    msgs[3].kind = RELAY_MSG_HANDSHAKE;
    strcpy(msgs[3].handshake.client_id, "client");
    msgs[3].handshake.actors = ids;
    msgs[3].handshake.n_actors = 2;
    msgs[4].kind = RELAY_MSG_MODEL_VERSION_REQUEST;
    msgs[4].actor = ids[0];
    msgs[5].kind = RELAY_MSG_MODEL_VERSION_REPLY;
    msgs[5].actor = ids[1];
    msgs[5].version = 8;
    msgs[6].kind = RELAY_MSG_MODEL_UPDATE;
    msgs[6].bundle = *b;
    msgs[7].kind = RELAY_MSG_SHUTDOWN;
    strcpy(msgs[7].text, "bye");
    msgs[8].kind = RELAY_MSG_FLAG_LAST_ACTION;
    msgs[8].flag.actor = ids[0];
    msgs[8].flag.reward = 1;
    msgs[8].flag.env_id = 3;
    msgs[9].kind = RELAY_MSG_ACTOR_STATS;
    strcpy(msgs[9].stats.client_id, "relay-actors-42");
    msgs[9].stats.env_steps = 123456;
    msgs[9].stats.episodes = 700;
    msgs[9].stats.trajectories = 900;
    msgs[9].stats.trajectories_acked = 880;
    msgs[9].stats.batches_sent = 90;
    msgs[9].stats.batches_acked = 88;
    msgs[9].stats.spool_batches = 2;
    msgs[9].stats.spool_bytes = 190000;
    msgs[9].stats.model_version = 31;
    msgs[9].stats.actors = 4;
    msgs[9].stats.n_routers = 3;
    msgs[9].stats.router_queue_depth[1] = 5;
    msgs[9].stats.uptime_s = 12.5;
    msgs[9].stats.cpu_s = 3.25;
    msgs[9].stats.rss_bytes = 25u << 20;

    for (int comp = 0; comp < 3; comp++) {
        for (int enc = 0; enc < 2; enc++) {
            relay_codec_options o;
            relay_codec_options_default(&o);
            o.compression = (relay_compression)comp;
            o.encrypt = enc;
            o.has_key = true;
            relay_codec_key_from_hex(FUZZ_KEY_HEX, o.key);
            relay_codec *c = NULL;
            if (relay_codec_new(&o, &c) != RELAY_OK)
                return 1;
            for (int k = 0; k < 10; k++) {
                if (relay_codec_encode_msg(c, &msgs[k], &buf) != RELAY_OK)
                    return 1;
                char name[128];
                uint8_t mode = 0;
                snprintf(name, sizeof name, "%s-%s-%s", relay_msg_kind_name(msgs[k].kind),
                         cname[comp], enc ? "enc" : "plain");
                put("envelope", name, &mode, 1, buf.data, buf.len);
                if (k == 0 || k == 2 || k == 3 || k == 9) {
                    /* broken variants, with the CRC repaired (mode 1) to reach deeper checks */
                    mode = 1;
                    snprintf(name, sizeof name, "%s-%s-%s-trunc", relay_msg_kind_name(msgs[k].kind),
                             cname[comp], enc ? "enc" : "plain");
                    put("envelope", name, &mode, 1, buf.data, buf.len - 5);
                    buf.data[buf.len / 2] ^= 0x20;
                    snprintf(name, sizeof name, "%s-%s-%s-flip", relay_msg_kind_name(msgs[k].kind),
                             cname[comp], enc ? "enc" : "plain");
                    put("envelope", name, &mode, 1, buf.data, buf.len);
                    buf.data[buf.len / 2] ^= 0x20;
                }
                relay_codec_frame_append(&frames, buf.data, buf.len);
            }
            relay_codec_free(c);
        }
    }
    put("frame", "all-kinds-all-options", frames.data, frames.len, NULL, 0);
    put("frame", "truncated", frames.data, frames.len / 3, NULL, 0);
    uint8_t badvarint[12] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1};
    put("frame", "bad-varint", badvarint, sizeof badvarint, NULL, 0);
    put("envelope", "empty", NULL, 0, NULL, 0);
    put("envelope", "header-only", "\x01RLYE\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00", 17,
        NULL, 0);

    /* raw protobuf payloads for the traj and bundle targets (none, plaintext: strip header) */
    relay_codec *plain = NULL;
    relay_codec_options o;
    relay_codec_options_default(&o);
    o.compression = RELAY_COMPRESS_NONE;
    if (relay_codec_new(&o, &plain) != RELAY_OK)
        return 1;
    const relay_dtype dts[] = {RELAY_F32, RELAY_F64, RELAY_I32, RELAY_I64, RELAY_U8, RELAY_BOOL};
    for (int d = 0; d < 6; d++) {
        for (int mask = 0; mask < 2; mask++) {
            relay_traj *t = sample_traj(dts[d], mask, (uint32_t)(d * 3 + mask));
            if (relay_codec_encode_traj(plain, t, &buf) != RELAY_OK)
                return 1;
            char name[64];
            snprintf(name, sizeof name, "traj-%s-%s-%u", relay_dtype_name(dts[d]),
                     mask ? "mask" : "nomask", t->len);
            put("traj", name, buf.data + RELAY_ENVELOPE_HEADER, buf.len - RELAY_ENVELOPE_HEADER,
                NULL, 0);
            relay_traj_free(t);
        }
    }
    for (int k = 0; k < 10; k++) {
        if (relay_codec_encode_msg(plain, &msgs[k], &buf) != RELAY_OK)
            return 1;
        uint8_t sel = (uint8_t)(msgs[k].kind - 1);
        put("bundle", relay_msg_kind_name(msgs[k].kind), &sel, 1, buf.data + RELAY_ENVELOPE_HEADER,
            buf.len - RELAY_ENVELOPE_HEADER);
        if (k == 0) {
            put("traj", "traj-truncated-payload", buf.data + RELAY_ENVELOPE_HEADER,
                (buf.len - RELAY_ENVELOPE_HEADER) / 2, NULL, 0);
            /* a trajectory payload offered to the bundle target: kind mismatch */
            uint8_t bsel = 2;
            put("bundle", "traj-as-bundle", &bsel, 1, buf.data + RELAY_ENVELOPE_HEADER,
                buf.len - RELAY_ENVELOPE_HEADER);
        }
    }
    relay_codec_free(plain);
    relay_traj_free(traj);
    relay_codec_buf_fini(&buf);
    relay_codec_buf_fini(&frames);
    printf("wrote %d corpus files under %s\n", count, root);
    return 0;
}
