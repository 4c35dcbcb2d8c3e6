"""The Agent API surface: lifecycle, actors, request_action with NumPy, episodes, models,
scaling, run_env, trajectories from the memory sink, stats, and the GIL during blocking calls."""
import threading
import time
import uuid

import numpy as np
import pytest

import relay


@pytest.fixture
def agent():
    with relay.Agent({"routers": 2, "env": "CartPole-v1"}) as a:
        yield a


def test_config_dict_path_and_overrides(tmp_path):
    p = tmp_path / "agent.json"
    p.write_text('{"routers": 3, "seed": 9}')
    with relay.Agent(str(p), seed=11) as a:
        assert a.config["routers"] == 3
        assert a.config["seed"] == 11
        assert a.num_routers == 3
    with relay.Agent({"dispatcher": {"tick_ms": 20}, "sinks": {"memory": {"per_actor": 5}}}) as a:
        assert a.config["dispatcher"]["tick_ms"] == 20
        assert a.config["sinks"]["memory"]["per_actor"] == 5
    d = relay.default_config()
    assert d["routers"] == 1 and d["sinks"]["memory"]["enabled"] is True


def test_context_manager_closes(cartpole_model):
    a = relay.Agent()
    with a:
        a.new_actors(1, model=cartpole_model, env="CartPole-v1")
    with pytest.raises(relay.StateError):
        a.new_actors(1)
    a.close()  # idempotent


def test_actors_ids_rename_remove(agent, cartpole_model):
    ids = agent.new_actors(3, model=cartpole_model, env="CartPole-v1")
    assert ids.shape == (3, 16) and ids.dtype == np.uint8
    got = agent.actor_ids()
    assert sorted(map(bytes, got)) == sorted(map(bytes, ids))
    assert agent.obs_dim(ids[0]) == 4 and agent.act_dim(ids[0]) == 1
    one = agent.new_actor(model=cartpole_model, env="CartPole-v1")
    assert one.shape == (16,)
    # ids given by the caller, as text, UUID or bytes
    want = [str(uuid.uuid4()), uuid.uuid4()]
    mine = agent.new_actors(2, model=cartpole_model, env="CartPole-v1", ids=want)
    assert relay.format_id(mine[0]) == want[0]
    assert relay.format_id(mine[1]) == str(want[1])
    new = uuid.uuid4()
    agent.set_actor_id(want[0], new)
    obs = np.zeros((1, 4), np.float32)
    assert agent.request_action([new], obs).shape == (1, 1)
    with pytest.raises(relay.NotFound):
        agent.request_action(want[0], obs)
    agent.remove_actor(new)
    agent.remove_actors(ids[:2])
    assert len(agent.actor_ids()) == 3
    with pytest.raises(relay.NotFound):
        agent.remove_actor(new)


def test_request_action_numpy(agent, cartpole_model):
    ids = agent.new_actors(64, model=cartpole_model, env="CartPole-v1")
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(64, 4)).astype(np.float32)
    acts = agent.request_action(ids, obs)
    assert acts.shape == (64, 1) and acts.dtype == np.float32
    assert set(np.unique(acts)) <= {0.0, 1.0}
    # out= is filled in place; masks (bool or uint8) and rewards are accepted
    out = np.full((64, 1), -1, np.float32)
    mask = np.zeros((64, 2), bool)
    mask[:, 1] = True
    r = agent.request_action(ids, obs, mask=mask, rewards=np.ones(64), out=out)
    assert r is out and (out == 1).all()  # only action 1 allowed
    mask = np.zeros((64, 2), np.uint8)
    mask[:, 0] = 1
    assert (agent.request_action(ids, obs.astype(np.float64), mask=mask) == 0).all()
    # wrong shapes are relay.ShapeError naming the sizes
    with pytest.raises(relay.ShapeError, match="256"):
        agent.request_action(ids, obs[:10])
    with pytest.raises(relay.ShapeError):
        agent.request_action(ids, obs, mask=np.ones((64, 3), bool))
    with pytest.raises(relay.ShapeError):
        agent.request_action(ids, obs, rewards=np.ones(3))
    with pytest.raises(relay.ShapeError):
        agent.request_action(ids, obs, out=np.empty((64, 1), np.float64))


def test_episodes_trajectories_and_stats(agent, cartpole_model):
    ids = agent.new_actors(4, model=cartpole_model, env="CartPole-v1")
    obs = np.ones((4, 4), np.float32) * 0.01
    for t in range(5):
        agent.request_action(ids, obs * t, rewards=np.full(4, 1.0) if t else None)
    agent.flag_last_action(ids, rewards=np.full(4, 2.0))
    with pytest.raises(relay.StateError):  # no open episode any more
        agent.flag_last_action(ids, truncated=True)
    agent.flush()
    trajs = agent.drain_trajectories()
    assert len(trajs) == 4
    t = trajs[0]
    assert len(t) == 5 and t.obs.shape == (5, 4) and t.obs.dtype == np.float32
    assert t.act.dtype == np.int32 and t.reward.dtype == np.float32
    assert t.terminated[-1] and not t.terminated[:-1].any()
    assert t.reward.sum() == pytest.approx(1.0 * 4 + 2.0)
    assert "logp" in t.aux and t.aux["logp"].shape == (5,)
    assert t.actor in {relay.format_id(i) for i in ids}
    np.testing.assert_allclose(t.obs[2], 0.02, rtol=1e-6)
    assert agent.drain_trajectories() == []
    st = agent.stats()
    assert st["actors"] == 4 and st["routers"] == 2
    assert st["inferences"] == 20 and st["episodes"] == 4 and st["trajectories"] == 4


def test_models_versions_scaling_run_env(agent, cartpole_model):
    ids = agent.new_actors(2, model=cartpole_model, env="CartPole-v1")
    assert list(agent.get_model_version(ids)) == [0, 0]
    with open(cartpole_model, "rb") as f:
        onnx = f.read()
    agent.update_model(relay.Model(onnx, env="CartPole-v1"))
    assert list(agent.get_model_version(ids)) == [1, 1]
    agent.update_model(relay.Model(cartpole_model, env="CartPole-v1"), ids=ids[:1])
    assert list(agent.get_model_version(ids)) == [2, 1]
    agent.scale_throughput(1)
    assert agent.num_routers == 3
    agent.scale_throughput(-2)
    assert agent.num_routers == 1
    with pytest.raises(relay.InvalidArgument):
        agent.scale_throughput(0)
    agent.run_env(ids[0], n_envs=4, steps=50)
    assert agent.stats()["env_steps"] == 200
    agent.restart()
    assert len(agent.actor_ids()) == 2


def test_model_and_load_policy(cartpole_model, tmp_path):
    m = relay.Model(cartpole_model, env="CartPole-v1")
    assert (m.in_dim, m.out_dim, m.discrete, m.n_actions) == (4, 2, True, 2)
    m.save(str(tmp_path / "bundle"))
    assert relay.Model(str(tmp_path / "bundle")).discrete
    pol = relay.load_policy(cartpole_model, env="CartPole-v1")
    obs = np.random.default_rng(1).normal(size=(16, 4)).astype(np.float32)
    a = pol(obs)
    assert a.shape == (16,) and set(np.unique(a)) <= {0, 1}
    np.testing.assert_array_equal(a, m.forward(obs).argmax(axis=1))
    assert pol(obs[0]) == a[0]
    bundle_pol = relay.load_policy(str(tmp_path / "bundle"))
    np.testing.assert_array_equal(bundle_pol(obs), a)
    with pytest.raises(relay.ShapeError):
        m.forward(np.zeros(3))


def test_mlp_to_onnx_matches_numpy():
    rng = np.random.default_rng(3)
    w1, b1 = rng.normal(size=(8, 4)), rng.normal(size=8)
    w2, b2 = rng.normal(size=(2, 8)), rng.normal(size=2)
    onnx = relay.mlp_to_onnx([w1, w2], [b1, b2], ["tanh", None])
    m = relay.Model(onnx, env="CartPole-v1")
    x = rng.normal(size=(5, 4)).astype(np.float32)
    want = np.tanh(x @ w1.T + b1) @ w2.T + b2
    np.testing.assert_allclose(m.forward(x), want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError):
        relay.mlp_to_onnx([w1, w1])


def test_export_torch_mlp_optional():
    try:
        import torch
    except ImportError:
        with pytest.raises(ImportError, match="PyTorch"):
            relay.export_torch_mlp(None, 4)
        return
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    onnx = relay.export_torch_mlp(net, 4)
    m = relay.Model(onnx, env="CartPole-v1")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_allclose(m.forward(x), net(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_gil_released_during_blocking_call(agent, cartpole_model):
    ids = agent.new_actors(1, model=cartpole_model, env="CartPole-v1")
    count = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.02)
        before = count[0]
        agent.run_env(ids[0], n_envs=8, steps=20000)  # blocks in C for a while
        during = count[0] - before
    finally:
        stop.set()
        t.join()
    assert during > 1000  # the other thread ran while the main thread was inside librelay


def test_threads_share_an_agent(agent, cartpole_model):
    ids = agent.new_actors(8, model=cartpole_model, env="CartPole-v1")
    errors = []

    def worker(k):
        try:
            mine = ids[2 * k:2 * k + 2]
            for _ in range(200):
                agent.request_action(mine, np.zeros((2, 4), np.float32))
        except Exception as exc:  # reported below
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert agent.stats()["inferences"] == 8 * 200
