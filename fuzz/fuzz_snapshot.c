/*
 * Fuzz target for the exact-resume snapshots read back from a checkpoint's caller blob: vecenv
 * snapshots (src/env/vecenv.c, rly_vecenv_restore), the "actor snapshots" section
 * (src/cli/train_snap.c, rly_train_snaps_decode) and the actor snapshot tag. A decoded section's
 * pieces are fed to the vecenv decoder too, as the actor does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor.h"
#include "cli/train_snap.h"
#include "relay/log.h"
#include "env/env_internal.h"

static relay_vecenv *venv(const char *name)
{
    relay_vecenv *v = NULL;
    if (relay_vecenv_new(relay_env_find(name), 2, 1, &v) != RELAY_OK)
        abort();
    float obs[16];
    relay_vecenv_reset(v, obs);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static relay_vecenv *cp, *pd;
    if (!cp) {
        relay_log_set_level(RELAY_LOG_OFF);
        cp = venv("CartPole-v1");
        pd = venv("Pendulum-v1");
    }
    (void)rly_vecenv_restore(cp, data, size);
    (void)rly_vecenv_restore(pd, data, size);
    int64_t v;
    (void)rly_actor_snapshot_version(data, size, &v);
    const uint8_t *snaps[2];
    size_t lens[2];
    if (rly_train_snaps_decode(data, size, 5, "CartPole-v1", 2, 2, snaps, lens) == RELAY_OK) {
        for (int i = 0; i < 2; i++) {
            if (snaps[i] < data || snaps[i] + lens[i] > data + size)
                abort();
            if (rly_actor_snapshot_version(snaps[i], lens[i], &v) != RELAY_OK || v != 5)
                abort();
        }
    }
    return 0;
}
