/*
 * Routed messages: an actor id, a protocol, and an owned payload.
 *
 * A message is a 56-byte value copied through bounded queues. It owns `payload` (freed with
 * `payload_free`, which may be NULL for payloads that need no freeing) and the completer's
 * reference of `reply` (may be NULL). Ownership rule for every send in the routing layer: on
 * success the routing layer owns the message and guarantees it ends in exactly one of
 * (a) delivered to its actor, whose handler then owns payload and reply, or (b) discarded with
 * rly_msg_discard(), which completes the reply with an error and frees the payload. On failure
 * the caller still owns it.
 */
#ifndef RLY_ROUTING_MESSAGE_H
#define RLY_ROUTING_MESSAGE_H

#include <stdint.h>

#include "core/id.h"
#include "core/reply.h"
#include "relay/err.h"

/* rly_proto lists the actor-addressed protocols (the seed's RoutingProtocol). */
typedef enum rly_proto {
    RLY_REQUEST_INFERENCE = 0,   /* payload: observation/mask/reward; reply -> action */
    RLY_MODEL_VERSION = 1,       /* reply -> int64 version, -1 = no model */
    RLY_FLAG_LAST_INFERENCE = 2, /* the seed's FlagLastInference (relay_agent_flag_last_action): arg
                                    = final reward bits */
    RLY_MODEL_HANDSHAKE = 3,     /* ask for an initial model */
    RLY_SEND_TRAJECTORY = 4,     /* payload: trajectory + timestamp */
    RLY_MODEL_UPDATE = 5,        /* payload: model bytes; arg: version */
    RLY_SHUTDOWN = 6,            /* flush and stop */
    RLY_RUN_ENV = 7, /* Relay extension: step an env on the actor's router; reply at end */
    RLY_PROTO_COUNT = 8
} rly_proto;

/* rly_msg_kind separates actor messages from the routing layer's own control traffic. */
typedef enum rly_msg_kind {
    RLY_KIND_DATA = 0,        /* an actor message (proto says which) */
    RLY_KIND_ADOPT = 1,       /* router: take ownership of actor slot (payload) */
    RLY_KIND_MIGRATE_OUT = 2, /* router: hand the actor back for a move */
    RLY_KIND_DETACH = 3,      /* router: remove the actor (it flushes), reply -> slot */
    RLY_KIND_STOP = 4,        /* router: exit after everything before this */
    RLY_KIND_CTL_ROUTER_ADD = 16,
    RLY_KIND_CTL_ROUTER_REMOVE = 17,
    RLY_KIND_CTL_ACTOR_ADD = 18,
    RLY_KIND_CTL_ACTOR_MOVE = 19,
    RLY_KIND_CTL_ACTOR_REMOVE = 20,
    RLY_KIND_CTL_SHUTDOWN = 21,
    RLY_KIND_CTL_BARRIER = 22, /* completes its reply once everything before it is handled */
    RLY_KIND_EV_HANDOVER = 32, /* router -> dispatcher: migrated actor's slot (payload) */
    RLY_KIND_EV_REMOVED = 33,  /* router -> dispatcher: removed actor's slot, reply to complete */
} rly_msg_kind;

/* Flag bits of rly_msg.flags. */
#define RLY_MSG_RESERVED 0x1u /* holds a pending-table reservation taken at send time */
#define RLY_MSG_REQUEUED 0x2u /* re-dispatched after a misroute */
#define RLY_MSG_HELD 0x4u     /* dispatcher: held because its (assigned) router was full */

/* u32 of RLY_KIND_CTL_ACTOR_REMOVE / RLY_KIND_DETACH: hand the actor back without detach(). */
#define RLY_REMOVE_KEEP 1u

typedef struct rly_msg {
    relay_id actor;
    uint8_t proto; /* rly_proto */
    uint8_t kind;  /* rly_msg_kind */
    uint16_t flags;
    uint32_t u32; /* small argument: router id for control messages, env id, ... */
    int64_t arg;  /* version, sequence number, reward bits, ... */
    void *payload;
    void (*payload_free)(void *);
    rly_reply *reply;
} rly_msg;

_Static_assert(sizeof(rly_msg) == 56, "rly_msg must stay one cache line with its queue header");

/* rly_proto_name returns the protocol's name as in the seed, e.g. "RequestInference". */
const char *rly_proto_name(int proto);

/* rly_proto_default_ttl_ns returns the seed's time-to-live for pending messages of proto. */
int64_t rly_proto_default_ttl_ns(int proto);

/* rly_msg_discard ends an undeliverable message: fails its reply with err and frees its payload. */
void rly_msg_discard(rly_msg *m, relay_err err);

/* rly_msg_data builds an actor message for proto with an owned payload and reply (both optional).
 */
static inline rly_msg rly_msg_data(relay_id actor, rly_proto proto, int64_t arg, void *payload,
                                   void (*payload_free)(void *), rly_reply *reply)
{
    rly_msg m = {.actor = actor,
                 .proto = (uint8_t)proto,
                 .kind = RLY_KIND_DATA,
                 .arg = arg,
                 .payload = payload,
                 .payload_free = payload_free,
                 .reply = reply};
    return m;
}

#endif
