/*
 * Lifecycle: the shutdown order.
 *  1. stop intake: further sends fail with RELAY_ESHUTDOWN;
 *  2. the dispatcher handles everything already queued, finishes migrations in flight, delivers
 *     pending messages of assigned actors and fails the rest (RELAY_ESHUTDOWN on their replies);
 *  3. it delivers Shutdown to every actor, so each can flush;
 *  4. it stops every router (each after everything queued before) and then itself;
 *  5. every thread is joined.
 * Bounded by the configured timeout; calling it again returns the first call's result.
 */
#include "coord/coordinator.h"
#include "core/clock.h"
#include "core/log.h"

relay_err rly_coord_shutdown(rly_coord *c)
{
    if (!c)
        return RELAY_EINVAL;
    rly_mutex_lock(&c->lock);
    if (c->lifecycle) {
        relay_err done = c->shutdown_result;
        rly_mutex_unlock(&c->lock);
        return done;
    }
    c->lifecycle = 1;
    rly_dispatcher_close(c->disp);
    rly_msg m = {.kind = RLY_KIND_CTL_SHUTDOWN};
    m.reply = rly_reply_new();
    relay_err e = m.reply ? rly_dispatcher_control(c->disp, &m) : RELAY_ENOMEM;
    if (e == RELAY_OK) {
        e = rly_reply_wait(m.reply, c->cfg.shutdown_timeout_ns, NULL, NULL);
        rly_reply_release(m.reply);
    } else if (m.reply) {
        rly_reply_release(m.reply);
        rly_reply_release(m.reply);
    }
    if (e == RELAY_OK) {
        rly_dispatcher_join(c->disp);
        for (uint32_t i = 0; i < c->n_routers; i++)
            rly_router_join(c->routers[i]);
    } else {
        rly_error("lifecycle", "shutdown did not complete: %s", relay_strerror(e));
    }
    c->lifecycle = 2;
    c->shutdown_result = e;
    rly_mutex_unlock(&c->lock);
    return e;
}
