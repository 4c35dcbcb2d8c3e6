/*
 * Codec throughput for a 200-step CartPole trajectory (obs 4 x f32, action i32, reward, flags,
 * 2 aux values, timestamps) under every compression x encryption option: encode and decode
 * (into a reused trajectory) trajectories/s and MB/s of column data, median of RUNS runs.
 * Usage: bench_codec_traj [runs=5] [seconds_per_run=0.3]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "relay/codec.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static relay_traj *cartpole_traj(void)
{
    relay_step_spec s;
    memset(&s, 0, sizeof s);
    s.obs_dtype = RELAY_F32;
    s.obs_rank = 1;
    s.obs_shape[0] = 4;
    s.act_dtype = RELAY_I32;
    s.n_aux = 2;
    strcpy(s.aux_names[0], "logp");
    strcpy(s.aux_names[1], "value");
    relay_traj *t = relay_traj_new(&s, 200, 500);
    t->actor = relay_id_from_seed(1, 1);
    t->env_id = 0;
    strcpy(t->env_label, "CartPole-v1");
    float x = 0, v = 0, th = 0.01f, w = 0;
    unsigned seed = 12345;
    for (int i = 0; i < 200; i++) {
        seed = seed * 1103515245u + 12345u;
        int32_t a = (seed >> 16) & 1;
        /* rough CartPole dynamics: realistic, mostly incompressible float mantissas */
        w += (a ? 0.15f : -0.15f) + 0.3f * sinf(th);
        th += 0.02f * w;
        v += a ? 0.2f : -0.2f;
        x += 0.02f * v;
        float obs[4] = {x, v, th, w};
        float aux[2] = {-0.69f + 0.001f * (float)((seed >> 8) & 255), 10.0f - 0.05f * i};
        relay_traj_push(t, obs, &a, NULL, 1.0f, i == 199, false, aux,
                        1700000000000000000LL + 20000LL * i);
    }
    return t;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    double secs = argc > 2 ? atof(argv[2]) : 0.3;
    if (runs < 1 || runs > 99)
        runs = 5;
    relay_traj *t = cartpole_traj();
    relay_traj *back = relay_traj_new(&t->spec, 200, 0);
    size_t ob, ab, mb;
    relay_step_spec_bytes(&t->spec, &ob, &ab, &mb);
    size_t raw = t->len * (ob + ab + mb + sizeof(float) + 2 + t->spec.n_aux * sizeof(float) +
                           sizeof(int64_t));
    printf("# 200-step CartPole trajectory, %zu bytes of column data; median of %d runs x %.2fs\n",
           raw, runs, secs);
    printf("%-6s %-9s %8s %12s %10s %12s %10s\n", "comp", "crypto", "env_B", "enc_traj/s",
           "enc_MB/s", "dec_traj/s", "dec_MB/s");
    const char *names[] = {"none", "lz4", "zstd3"};
    for (int comp = 0; comp < 3; comp++) {
        for (int enc = 0; enc < 2; enc++) {
            relay_codec_options o;
            relay_codec_options_default(&o);
            o.compression = (relay_compression)comp;
            o.encrypt = enc;
            o.has_key = true;
            for (int i = 0; i < RELAY_KEY_BYTES; i++)
                o.key[i] = (uint8_t)i;
            relay_codec *c = NULL;
            if (relay_codec_new(&o, &c) != RELAY_OK)
                return 1;
            relay_codec_buf buf = {0};
            double er[99], dr[99];
            for (int r = 0; r < runs; r++) {
                long n = 0;
                double t0 = now(), t1;
                do {
                    for (int k = 0; k < 64; k++)
                        if (relay_codec_encode_traj(c, t, &buf) != RELAY_OK)
                            return 1;
                    n += 64;
                } while ((t1 = now()) - t0 < secs);
                er[r] = n / (t1 - t0);
                n = 0;
                t0 = now();
                do {
                    for (int k = 0; k < 64; k++)
                        if (relay_codec_decode_traj_into(c, buf.data, buf.len, back) != RELAY_OK)
                            return 1;
                    n += 64;
                } while ((t1 = now()) - t0 < secs);
                dr[r] = n / (t1 - t0);
            }
            qsort(er, runs, sizeof er[0], cmp_d);
            qsort(dr, runs, sizeof dr[0], cmp_d);
            double e = er[runs / 2], d = dr[runs / 2];
            printf("%-6s %-9s %8zu %12.0f %10.1f %12.0f %10.1f\n", names[comp],
                   enc ? "xchacha" : "-", buf.len, e, e * raw / 1e6, d, d * raw / 1e6);
            relay_codec_buf_fini(&buf);
            relay_codec_free(c);
        }
    }
    relay_traj_free(back);
    relay_traj_free(t);
    return 0;
}
