/*
 * Central inference for `relay server` and `relay actors` (docs/DISTRIBUTED.md, PROTOCOL.md
 * section 12).
 *
 * rly_infer_client (actor processes) implements the actor layer's rly_remote_infer hook over a
 * transport: router workers call it concurrently; each thread keeps its own request and reply
 * buffers (made on its first call, freed when the thread ends), so a request allocates nothing.
 *
 * rly_infer_server (training server) answers the transport's batches with one forward pass of
 * the newest policy and critic. The learner thread hands it each new version
 * (rly_infer_server_publish, a one-slot mailbox under a mutex); the transport's inference thread
 * takes it at the start of a batch and is the only one to run the models. Its batch buffers grow
 * to the largest batch and are then reused.
 */
#ifndef RLY_CLI_INFER_H
#define RLY_CLI_INFER_H

#include "actor/actor.h"
#include "transport/transport.h"

typedef struct rly_infer_client rly_infer_client;

/* rly_infer_client_new makes a client on tp (borrowed; outlives the client). */
relay_err rly_infer_client_new(rly_tp *tp, int64_t timeout_ns, rly_infer_client **out);

/* rly_infer_client_hook returns the hook to give actors (valid while the client lives). */
const rly_remote_infer *rly_infer_client_hook(rly_infer_client *c);

/* rly_infer_client_failures returns how many requests failed so far. */
uint64_t rly_infer_client_failures(rly_infer_client *c);

/* rly_infer_client_free frees c (no actor may still use its hook). */
void rly_infer_client_free(rly_infer_client *c);

typedef struct rly_infer_server rly_infer_server;

/* rly_infer_server_new makes a server for policies described by desc. */
relay_err rly_infer_server_new(const rly_policy_desc *desc, rly_infer_server **out);

/*
 * rly_infer_server_publish makes (pi, vf, log_std) version the one to serve; it takes pi and vf
 * (vf may be NULL: values 0). Called from any thread.
 */
void rly_infer_server_publish(rly_infer_server *s, int64_t version, relay_model *pi,
                              relay_model *vf, const float *log_std, uint32_t n_log_std);

/* rly_infer_server_start serves inference on tp's inference endpoint with batches bounded by o. */
relay_err rly_infer_server_start(rly_infer_server *s, rly_tp *tp, const rly_tp_infer_opts *o);

/* rly_infer_server_free frees s (after the transport serving it is closed). */
void rly_infer_server_free(rly_infer_server *s);

#endif
