/*
 * Shared by `relay server` and `relay actors`: the distributed configuration (flags, the config
 * file's "transport" section, environment variables for secrets), the codec and the transport
 * built from it, and the model message both sides exchange. Single-threaded set-up code; the
 * objects it creates are owned by the caller.
 */
#ifndef RLY_CLI_DIST_H
#define RLY_CLI_DIST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/args.h"
#include "relay/codec.h"
#include "relay/env.h"
#include "relay/model.h"
#include "transport/transport.h"

/* rly_dist_config is what both processes need to reach each other. */
typedef struct rly_dist_config {
    char url[512];
    char run[RLY_TP_RUN_MAX];
    char env[256];
    /* credentials: the config file or RELAY_NATS_USER / _PASSWORD / _TOKEN / _CREDS / _CA */
    char user[128], password[256], token[256], creds_file[512], ca_file[512];
    bool tls;
    /* envelope: a key (config "transport.key" or RELAY_KEY, 64 hex chars) encrypts everything */
    bool has_key;
    uint8_t key[RELAY_KEY_BYTES];
    uint32_t max_inflight; /* actors: unacknowledged batches */
    uint64_t spool_bytes;  /* actors: bytes held for resend */
    uint32_t batch_bytes;  /* actors: target batch size */
    uint32_t batch_ms;     /* actors: oldest trajectory waits at most this long */
    int replicas;          /* server: stream replicas */
    uint64_t stream_bytes; /* server: stream size limit */
    bool server;           /* set by `relay server`: brokerless transports bind */
    /* ZeroMQ CURVE (config transport.curve_*): own secret key; the server's public key
       (actors); the allowed client public keys (server) */
    char curve_secret[512], curve_server_public[512], curve_clients[512];
    uint32_t max_connections; /* zmq server: connections per bound socket (0: default 256) */
    /* central inference (docs/DISTRIBUTED.md): actors ask the server for actions
       (transport.inference "remote"); a request fails after infer_timeout_ms; the server's
       batches hold up to infer_batch rows and wait up to infer_wait_us for more */
    bool remote_inference;
    uint32_t infer_timeout_ms, infer_batch, infer_wait_us;
} rly_dist_config;

/* rly_dist_config_default fills c with defaults (run "default", 256 in flight, 64 MiB spool). */
void rly_dist_config_default(rly_dist_config *c);

/*
 * rly_dist_config_load reads the "transport" section of a JSON config file (path may be NULL),
 * then the environment variables; errors name the key or variable (message on err).
 */
relay_err rly_dist_config_load(rly_dist_config *c, const char *path, FILE *err);

/* rly_dist_args holds the transport-related command-line values of relay server / relay actors
 * (NULL when the flag was not given); they override the config file and the environment. */
typedef struct rly_dist_args {
    const char *config, *url, *run, *env;
} rly_dist_args;

/*
 * rly_dist_arg_match tests whether argv[*i] is one of the transport flags (--nats, --zmq, --run,
 * --env, --config) and stores its value in a; returns like rly_arg_match (0 not one of them,
 * 1 matched, -1 value missing after printing why).
 */
int rly_dist_arg_match(const rly_argp *p, int argc, char **argv, int *i, rly_dist_args *a);

/*
 * rly_dist_config_from_args loads a's config file (rly_dist_config_load), applies the flags,
 * checks that a URL is set and resolves the environment into *env; on error it prints
 * "PROG: what is wrong" on err and returns RELAY_EINVAL.
 */
relay_err rly_dist_config_from_args(rly_dist_config *c, const rly_dist_args *a, const char *prog,
                                    FILE *err, const relay_env_def **env);

/* rly_dist_open_codec creates the envelope codec (encrypting when a key is set). */
relay_err rly_dist_open_codec(const rly_dist_config *c, relay_codec **out);

/* rly_dist_open_transport connects (client name given) and reports failures on err. */
relay_err rly_dist_open_transport(const rly_dist_config *c, const char *client, FILE *err,
                                  rly_tp **out);

/*
 * rly_dist_encode_model makes the model message of version: a ModelUpdate envelope whose bundle
 * holds the policy ONNX, the critic ONNX, log std and the env's spaces.
 */
relay_err rly_dist_encode_model(relay_codec *codec, const char *env_name, int64_t version,
                                const uint8_t *pi, size_t pi_len, const uint8_t *vf, size_t vf_len,
                                const float *log_std, uint32_t n_log_std, relay_codec_buf *out);

#endif
