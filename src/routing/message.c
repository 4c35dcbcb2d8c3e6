/* Protocol names, default time-to-live table, and discarding undeliverable messages. */
#include "routing/message.h"

#include "core/clock.h"

static const char *const proto_names[RLY_PROTO_COUNT] = {
    "RequestInference", "ModelVersion", "FlagLastInference", "ModelHandshake",
    "SendTrajectory",   "ModelUpdate",  "Shutdown",          "RunEnv",
};

/* The seed's per-protocol retry time-to-live, in seconds. */
static const int ttl_seconds[RLY_PROTO_COUNT] = {10, 15, 20, 30, 30, 60, 60, 30};

const char *rly_proto_name(int proto)
{
    if (proto < 0 || proto >= RLY_PROTO_COUNT)
        return "Unknown";
    return proto_names[proto];
}

int64_t rly_proto_default_ttl_ns(int proto)
{
    if (proto < 0 || proto >= RLY_PROTO_COUNT)
        return 10 * RLY_NS_PER_S;
    return ttl_seconds[proto] * RLY_NS_PER_S;
}

void rly_msg_discard(rly_msg *m, relay_err err)
{
    if (m->reply) {
        rly_reply_fail(m->reply, err);
        m->reply = NULL;
    }
    if (m->payload && m->payload_free)
        m->payload_free(m->payload);
    m->payload = NULL;
}
