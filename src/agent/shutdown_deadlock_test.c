/*
 * relay_agent_shutdown with an attached learner that publishes while the shutdown runs (regression
 * test for a deadlock, fixed in 0a81edb). The cycle was: shutdown holds the agent's `life` and
 * `lock` while stop_runtime waits for the sink worker to drain; the sink worker waits on the
 * learner's full queue (5 s per trajectory); the learner thread waits for `lock` in its publish.
 *
 * The test builds that state deterministically: the learner thread is held in the user's on_update
 * callback (between updates, so it consumes nothing) until the shutdown holds `lock` and the
 * learner's queue is full; then, still on the learner thread, it publishes (rly_agent_publish, the
 * path of relay actors' network thread), which must give up with RELAY_ESHUTDOWN. Released, the
 * learner takes the full queue, updates and publishes through its own on_publish while the sink
 * worker still holds trajectories for it, so the shutdown cannot finish unless that publish gives
 * up too. A watchdog thread aborts with the phase reached if the shutdown does not return.
 */
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "agent/agent_internal.h"
#include "core/clock.h"
#include "learn/learner.h"
#include "relay/learner.h"
#include "relay/relay.h"

/* the learner's intake (the default capacity: relay_agent_attach_learner leaves queue_cap 0) for
   one stream */
#define LEARNER_QUEUE ((int)RLY_LEARNER_QUEUE_DEFAULT(1))
/* rows (one per trajectory) the first update needs: relay_learner_n_steps for CartPole-v1 */
#define FIRST_ROWS 32
/* trajectories made while the learner is held: a full queue, a second full queue once the learner
   takes the first, and more still in the sink worker after that */
#define HELD_TRAJS (2 * LEARNER_QUEUE + 40)

typedef struct {
    relay_agent *a;
    relay_learner *l;
    atomic_int updates;    /* on_update calls */
    atomic_bool held;      /* the learner thread is in the first on_update */
    atomic_bool shut_done; /* relay_agent_shutdown returned */
    atomic_bool second_during_shutdown;
    atomic_int publish_err; /* rly_agent_publish from the held learner thread */
    atomic_int phase;       /* for the watchdog's message */
    atomic_bool finished;
} fixture;

static const char *phase_name[] = {
    "first update",
    "trajectories while the learner is held",
    "shutdown with the learner held (waiting for the shutdown to hold the lock and a full queue)",
    "publish from the learner thread during shutdown",
    "shutdown after the learner was released",
    "done",
};

static double watchdog_s(void)
{
    return test_sanitized() ? 180.0 : 60.0;
}

static void *watchdog(void *arg)
{
    fixture *f = arg;
    int64_t deadline = rly_now_ns() + (int64_t)(watchdog_s() * 1e9);
    while (!atomic_load(&f->finished)) {
        if (rly_now_ns() > deadline) {
            fprintf(stderr,
                    "shutdown_deadlock_test: no progress after %.0f s in phase \"%s\": the agent "
                    "shutdown / sink worker / learner publish cycle deadlocked\n",
                    watchdog_s(), phase_name[atomic_load(&f->phase)]);
            abort();
        }
        rly_sleep_ns(50 * RLY_NS_PER_MS);
    }
    return NULL;
}

/* shutdown_holds_lock: a shutdown has begun and holds `life` and `lock` (nobody else takes `lock`
   in this test while the learner is held: the main thread is in relay_agent_shutdown). */
static bool shutdown_holds_lock(relay_agent *a)
{
    if (!atomic_load(&a->stopping))
        return false;
    if (pthread_rwlock_tryrdlock(&a->life) == 0) {
        pthread_rwlock_unlock(&a->life);
        return false;
    }
    if (rly_mutex_trylock(&a->lock)) {
        rly_mutex_unlock(&a->lock);
        return false;
    }
    return true;
}

static relay_model *tiny_model(uint32_t in, uint32_t out)
{
    static const float w[8] = {0};
    const float *ws[1] = {w};
    uint32_t sizes[2] = {in, out};
    relay_mlp_desc d = {.n_layers = 1, .sizes = sizes, .weights = ws};
    relay_model *m = NULL;
    assert_ok(relay_model_from_mlp(&d, &m));
    return m;
}

static void on_update(const relay_learner_stats *st, void *user)
{
    (void)st;
    fixture *f = user;
    int n = atomic_fetch_add(&f->updates, 1) + 1;
    if (n == 2) {
        atomic_store(&f->second_during_shutdown,
                     atomic_load(&f->a->stopping) && !atomic_load(&f->shut_done));
        return;
    }
    if (n != 1)
        return;
    atomic_store(&f->held, true);
    /* hold the learner thread until the shutdown holds the lock and the sink worker has filled
       the learner's queue (it then waits on it, with more trajectories to hand over) */
    for (;;) {
        relay_learner_stats s;
        relay_learner_get_stats(f->l, &s);
        if (shutdown_holds_lock(f->a) && s.steps_received >= FIRST_ROWS + LEARNER_QUEUE)
            break;
        rly_sleep_ns(RLY_NS_PER_MS);
    }
    atomic_store(&f->phase, 3);
    /* the relay network thread's publish, from the thread the shutdown is waiting for */
    relay_err e = rly_agent_publish(f->a, 1000, tiny_model(4, 2), tiny_model(4, 1), NULL, 0);
    atomic_store(&f->publish_err, (int)e);
    atomic_store(&f->phase, 4);
}

/* step makes one trajectory of one row: an action, then the episode's end */
static void step(relay_agent *a, relay_id *id)
{
    float obs[4] = {0.01f, -0.02f, 0.03f, 0.04f}, act[1];
    assert_ok(relay_agent_request_action(a, id, 1, obs, NULL, NULL, act, NULL));
    assert_ok(relay_agent_end_episodes(a, id, 1, NULL, NULL, NULL));
}

static void shutdown_with_learner_publishing(void **state)
{
    (void)state;
    static fixture f;
    memset(&f, 0, sizeof f);
    atomic_store(&f.publish_err, -1);
    pthread_t wd;
    assert_int_equal(pthread_create(&wd, NULL, watchdog, &f), 0);

    relay_config cfg;
    relay_config_default(&cfg);
    cfg.shared_model = true;
    assert_ok(relay_agent_new(&cfg, &f.a));
    assert_ok(relay_agent_start(f.a));
    /* any version is acceptable: the learner's second update uses what was queued while held */
    relay_learner_options o = {.env = "CartPole-v1",
                               .n_actors = 1,
                               .seed = 7,
                               .policy_lag = 1000000,
                               .on_update = on_update,
                               .user = &f};
    relay_id id[1];
    assert_ok(relay_agent_attach_learner(f.a, &o, id, &f.l));
    assert_int_equal(relay_learner_n_steps(f.l), FIRST_ROWS);

    /* exactly one update's rows: the learner's queue is empty when it is held after the update */
    for (int i = 0; i < FIRST_ROWS; i++)
        step(f.a, id);
    assert_ok(relay_agent_flush(f.a));
    while (!atomic_load(&f.held))
        rly_sleep_ns(RLY_NS_PER_MS);

    atomic_store(&f.phase, 1);
    for (int i = 0; i < HELD_TRAJS; i++)
        step(f.a, id);

    atomic_store(&f.phase, 2);
    assert_ok(relay_agent_shutdown(f.a));
    atomic_store(&f.shut_done, true);
    atomic_store(&f.phase, 5);

    assert_int_equal(atomic_load(&f.publish_err), RELAY_ESHUTDOWN);
    /* the learner's own publish (second update) ran while the shutdown waited for it */
    assert_true(atomic_load(&f.updates) >= 2);
    assert_true(atomic_load(&f.second_during_shutdown));
    relay_agent_free(f.a); /* frees the learner */

    atomic_store(&f.finished, true);
    pthread_join(wd, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shutdown_with_learner_publishing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
