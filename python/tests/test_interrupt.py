"""Ctrl-C during a blocking call raises KeyboardInterrupt promptly and leaves things usable."""
import os
import signal
import threading
import time

import numpy as np
import pytest

import relay


def _sigint_after(seconds):
    t = threading.Timer(seconds, os.kill, args=(os.getpid(), signal.SIGINT))
    t.start()
    return t


def test_ctrl_c_interrupts_run_env_and_agent_stays_usable(cartpole_model):
    with relay.Agent({"routers": 2}) as agent:
        ids = agent.new_actors(2, model=cartpole_model, env="CartPole-v1")
        timer = _sigint_after(0.3)
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            agent.run_env(ids[0], n_envs=4, steps=10 ** 12)  # would run for days
        timer.join()
        assert time.monotonic() - t0 < 10
        # the agent still works: actors, models and requests
        assert len(agent.actor_ids()) == 2
        acts = agent.request_action(ids, np.zeros((2, 4), np.float32))
        assert acts.shape == (2, 1)
        agent.run_env(ids[1], n_envs=2, steps=10)
        assert agent.get_model_version(ids)[0] == 0


def test_ctrl_c_interrupts_train(tmp_path):
    timer = _sigint_after(0.5)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        relay.train("CartPole-v1", steps=10 ** 9, target=1e9, out=str(tmp_path / "run"))
    timer.join()
    assert time.monotonic() - t0 < 10
    assert os.path.getsize(tmp_path / "run" / "policy.onnx") > 0  # the run still wrote its files
    # and Python's SIGINT handling is intact afterwards
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_interrupts_python_env_training(tmp_path):
    from test_train import NumpyCartPole
    timer = _sigint_after(0.5)
    with pytest.raises(KeyboardInterrupt):
        relay.train(NumpyCartPole(8), zoo="CartPole-v1", n_envs=8, steps=10 ** 9, target=1e9,
                    out=str(tmp_path / "py"))
    timer.join()
    assert os.path.getsize(tmp_path / "py" / "policy.onnx") > 0
    assert os.path.getsize(tmp_path / "py" / "metrics.csv") > 0
