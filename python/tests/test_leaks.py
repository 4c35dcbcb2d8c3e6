"""1,000 agent create/start/free cycles do not grow the process (RSS bound)."""
import gc

import numpy as np
import pytest

import relay


def _rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _cycle(model):
    with relay.Agent({"routers": 1}) as a:
        ids = a.new_actors(2, model=model, env="CartPole-v1")
        a.request_action(ids, np.zeros((2, 4), np.float32))
        a.flag_last_action(ids)
        a.flush()
        a.drain_trajectories()


@pytest.mark.heavy
def test_agent_cycles_do_not_leak(cartpole_model):
    model = relay.Model(cartpole_model, env="CartPole-v1")
    for _ in range(100):  # warm-up: allocator arenas, thread stacks, caches
        _cycle(model)
    gc.collect()
    before = _rss_kib()
    for _ in range(1000):
        _cycle(model)
    gc.collect()
    grown = _rss_kib() - before
    # A leak of even one 4 KiB page per cycle would show as 4 MB; allow allocator noise.
    assert grown < 3 * 1024, "RSS grew by %d KiB over 1000 agent cycles" % grown
