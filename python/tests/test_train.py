"""relay.train: the built-in C loop (as `relay train`) and a NumPy CartPole written here,
vectorised, trained from Python to a mean return of 475."""
import json
import os

import numpy as np
import pytest

import relay
from numpy_cartpole import NumpyCartPole  # a user's own vectorised env, in NumPy


class SingleCartPole:
    """One CartPole (the single-env protocol) built on NumpyCartPole."""

    observation_space = relay.Box(-np.inf, np.inf, (4,))
    action_space = relay.Discrete(2)

    def __init__(self):
        self.v = NumpyCartPole(1)

    def reset(self, seed=None):
        obs, info = self.v.reset(seed=seed)
        return obs[0], info

    def step(self, action):
        x, x_dot, theta, theta_dot = self.v.state[0]
        obs, r, te, tr, _ = self.v.step(np.array([action]))
        return obs[0], float(r[0]), bool(te[0]), bool(tr[0]), {}


def _run_files(out):
    for f in ("config.json", "metrics.csv", "learning_curve.svg", "policy.onnx"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f


def test_train_builtin_c_env(tmp_path):
    out = str(tmp_path / "c")
    seen = []
    res = relay.train("CartPole-v1", steps=8192, seed=2, target=1e9, out=out, routers=1,
                      callback=lambda m: seen.append(m["steps"]) or True)
    assert res["stop_reason"] == "step budget spent" and not res["target_reached"]
    assert res["steps"] >= 8192 and res["updates"] >= 1 and res["out_dir"] == out
    assert seen and max(seen) <= res["steps"]
    _run_files(out)
    assert json.load(open(os.path.join(out, "config.json")))["train"]["seed"] == 2
    assert res["metrics"]["steps"][-1] == res["steps"]
    # hyperparameters reach the C driver (config.json records the effective values)
    out = str(tmp_path / "hp")
    res = relay.train("CartPole-v1", steps=2048, target=1e9, out=out, learning_rate=1e-3,
                      n_steps=64, net_arch=[32, 32], lr_linear=False, eval_every=0)
    saved = json.load(open(os.path.join(out, "config.json")))
    assert saved["ppo"]["net_arch"] == "32,32" and saved["ppo"]["n_steps"] == 64
    assert saved["ppo"]["learning_rate"] == pytest.approx(1e-3)
    assert saved["ppo"]["lr_schedule"] == "constant"
    with pytest.raises(relay.ConfigError):
        relay.train("CartPole-v1", steps=64, out=str(tmp_path / "bad"), gamma=2.0)
    # a callback returning False stops the run
    res = relay.train("CartPole-v1", steps=10 ** 8, target=1e9, out=str(tmp_path / "s"),
                      callback=lambda m: m["updates"] < 2)
    assert res["stop_reason"] == "interrupted" and res["updates"] >= 2


@pytest.mark.heavy
def test_numpy_cartpole_trains_to_475(tmp_path):
    """The acceptance test: a Python-written vectorised CartPole solved from Python."""
    out = str(tmp_path / "py")
    res = relay.train(NumpyCartPole(16), zoo="CartPole-v1", n_envs=16, seed=0,
                      steps=400_000, target=475, out=out)
    assert res["target_reached"], res
    assert res["mean_return_100"] >= 475 and res["episodes"] >= 100
    _run_files(out)
    # the exported policy plays the Python env well from Python
    pol = relay.load_policy(os.path.join(out, "policy.onnx"), env="CartPole-v1")
    env = NumpyCartPole(8)
    obs, _ = env.reset(seed=123)
    total = np.zeros(8)
    alive = np.ones(8, bool)
    for _ in range(500):
        obs, r, te, tr, _ = env.step(pol(obs))
        total += r * alive
        alive &= ~(te | tr)
    assert total.mean() >= 400, total


def test_single_env_and_factory(tmp_path):
    res = relay.train(SingleCartPole(), steps=2048, n_steps=64, batch_size=64, n_epochs=2,
                      out=str(tmp_path / "one"))
    assert res["steps"] >= 2048 and res["updates"] >= 1
    res = relay.train(SingleCartPole, n_envs=4, steps=2048, n_steps=64, batch_size=64,
                      out=str(tmp_path / "four"), net_arch=[32], activation="relu",
                      algo="reinforce")
    assert res["updates"] >= 1 and res["stop_reason"] == "step budget spent"
    with pytest.raises(TypeError, match="bogus"):
        relay.train(SingleCartPole(), bogus=1)
    # an earlier run's directory is refused, for Python and C environments alike
    with pytest.raises(relay.AlreadyExists, match="already holds a run"):
        relay.train(SingleCartPole(), steps=64, out=str(tmp_path / "one"))
    with pytest.raises(relay.AlreadyExists, match="already holds a run"):
        relay.train("CartPole-v1", steps=64, out=str(tmp_path / "one"))


class Reach:
    """A continuous toy env: move a point toward 0 with actions in [-1, 1]; 50-step episodes."""

    observation_space = relay.Box(-10.0, 10.0, (2,))
    action_space = relay.Box(-1.0, 1.0, (1,))

    def __init__(self):
        self.rng = np.random.default_rng(0)
        self.actions = []

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.x = self.rng.uniform(-2, 2)
        self.t = 0
        return np.array([self.x, 0.0], np.float32), {}

    def step(self, action):
        a = float(np.asarray(action).reshape(-1)[0])
        self.actions.append(a)
        self.x += 0.1 * a
        self.t += 1
        return np.array([self.x, self.t / 50], np.float32), -abs(self.x), False, self.t >= 50, {}


def test_continuous_python_env(tmp_path):
    env = Reach()
    res = relay.train(env, steps=4096, n_steps=256, batch_size=64, n_epochs=4,
                      out=str(tmp_path / "reach"))
    assert res["updates"] == 16 and res["episodes"] >= 80
    acts = np.array(env.actions)
    assert acts.min() >= -1.0 and acts.max() <= 1.0  # the env sees actions clipped to its box
    assert acts.std() > 0.05  # and they are sampled, not constant
    _run_files(str(tmp_path / "reach"))
    pol = relay.load_policy(str(tmp_path / "reach" / "policy.onnx"), env=env)
    a = pol(np.zeros((3, 2), np.float32))
    assert a.shape == (3, 1) and (np.abs(a) <= 1).all()


def test_vecenv_and_evaluate(cartpole_model):
    env = relay.make("CartPole-v1", 4, seed=7)
    obs, _ = env.reset()
    assert obs.shape == (4, 4) and obs.dtype == np.float32
    ended = 0
    for _ in range(200):
        obs, r, te, tr, info = env.step(np.ones(4, np.int64))  # always push right: falls fast
        if (te | tr).any():
            ended += int((te | tr).sum())
            fo = info["final_observation"]
            assert all((fo[i] is None) == (not (te | tr)[i]) for i in range(4))
    assert ended >= 4 and (r == 1).all()
    res = relay.evaluate(cartpole_model, "CartPole-v1", episodes=10, num_envs=4)
    assert res["episodes"] == 10 and len(res["returns"]) == 10
    assert res["min_return"] <= res["mean_return"] <= res["max_return"]
    # a Python env and a plain callable policy work the same way
    res = relay.evaluate(lambda o: np.zeros(len(o), np.int64), NumpyCartPole(2), episodes=4)
    assert res["episodes"] == 4 and res["max_return"] < 100
    with pytest.raises(relay.NotFound):
        relay.make("NoSuchEnv-v0")


@pytest.mark.heavy
def test_attach_learner_own_loop(tmp_path):
    """A user's own loop over a Python env, trained by a learner attached to the agent."""
    n = 8
    updates = []
    with relay.Agent({"model_mode": "shared", "routers": 1}) as agent:
        with pytest.raises(TypeError):
            agent.attach_learner()
        learner, ids = agent.attach_learner(
            observation_space=relay.Box(-np.inf, np.inf, (4,)), action_space=relay.Discrete(2),
            n_actors=n, policy_lag=1, seed=3, zoo="CartPole-v1", total_timesteps=60_000,
            on_update=lambda st: updates.append(st["updates"]))
        assert ids.shape == (n, 16) and learner.n_steps == 32
        learner.wait_version(0, timeout=30)
        env = NumpyCartPole(n)
        obs, _ = env.reset(seed=3)
        rew = np.zeros(n, np.float32)
        for _ in range(20_000):
            act = agent.request_action(ids, obs, rewards=rew)
            obs, r, te, tr, info = env.step(act[:, 0].astype(np.int64))
            rew = r.copy()
            done = te | tr
            if done.any():
                fo = np.stack([info["final_observation"][i] for i in np.flatnonzero(done)])
                agent.end_episodes(ids[done], rewards=r[done], truncated=tr[done] & ~te[done],
                                   final_obs=fo)
                rew[done] = 0.0
            if learner.stats()["done"]:
                break
        st = learner.stats()
        assert st["error"] == 0 and st["updates"] >= 20 and updates, st
        assert st["mean_return_100"] > 60, st  # learning, from a start of about 20
        assert agent.get_model_version(ids).min() >= 1
        learner.export_onnx(str(tmp_path / "own.onnx"))
        learner.save_checkpoint(str(tmp_path / "own.ckpt"))
        assert os.path.getsize(tmp_path / "own.ckpt") > 0
        res = relay.evaluate(str(tmp_path / "own.onnx"), "CartPole-v1", episodes=8)
        assert res["episodes"] == 8
        learner.stop()
    with pytest.raises(relay.StateError):
        learner.stats()
    with relay.Agent() as agent:  # independent model mode: refused with the reason
        with pytest.raises(relay.ConfigError, match="shared"):
            agent.attach_learner(env="CartPole-v1")


def test_truncated_episode_endings(cartpole_model):
    with relay.Agent({"routers": 1}) as agent:
        ids = agent.new_actors(3, model=cartpole_model, env="CartPole-v1")
        obs = np.zeros((3, 4), np.float32)
        agent.request_action(ids, obs)
        agent.request_action(ids, obs, rewards=np.ones(3))
        agent.flag_last_action(ids, rewards=np.full(3, 2.0), terminated=[True, False, True],
                               truncated=[False, True, True], final_obs=np.ones((3, 4)))
        agent.flush()
        trajs = {t.actor: t for t in agent.drain_trajectories()}
        flags = [(bool(trajs[relay.format_id(i)].terminated[-1]),
                  bool(trajs[relay.format_id(i)].truncated[-1])) for i in ids]
        # terminated wins over truncated, as in Gymnasium
        assert flags == [(True, False), (False, True), (True, False)]
        agent.request_action(ids, obs)
        with pytest.raises(relay.ShapeError):
            agent.end_episodes(ids, truncated=np.ones(3, bool), final_obs=np.ones(5))
        agent.end_episodes(ids, truncated=np.ones(3, bool))
        with pytest.raises(relay.StateError):
            agent.end_episodes(ids[:1])  # no open episode any more
