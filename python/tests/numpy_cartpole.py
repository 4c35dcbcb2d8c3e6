"""A vectorised CartPole-v1 written in NumPy (Gymnasium's equations): the Python env of
test_train.py and bench/python/bench_train.py."""
import math

import numpy as np

import relay


class NumpyCartPole:
    """num_envs CartPole-v1 copies in NumPy (Gymnasium's equations, Euler steps, 500-step limit),
    with same-step auto-reset and info["final_observation"] like relay's vecenv."""

    def __init__(self, num_envs=16):
        self.num_envs = num_envs
        self.single_observation_space = relay.Box(-np.inf, np.inf, (4,))
        self.single_action_space = relay.Discrete(2)
        self.observation_space = self.single_observation_space
        self.action_space = self.single_action_space
        self.rng = np.random.default_rng(0)
        self.state = np.zeros((num_envs, 4))
        self.t = np.zeros(num_envs, np.int64)

    def reset(self, seed=None):
        self.rng = np.random.default_rng(seed)
        self.state = self.rng.uniform(-0.05, 0.05, (self.num_envs, 4))
        self.t[:] = 0
        return self.state.astype(np.float32), {}

    def step(self, action):
        x, x_dot, theta, theta_dot = self.state.T
        force = np.where(np.asarray(action).reshape(-1) == 1, 10.0, -10.0)
        cos, sin = np.cos(theta), np.sin(theta)
        temp = (force + 0.05 * theta_dot ** 2 * sin) / 1.1
        theta_acc = (9.8 * sin - cos * temp) / (0.5 * (4.0 / 3.0 - 0.1 * cos ** 2 / 1.1))
        x_acc = temp - 0.05 * theta_acc * cos / 1.1
        x = x + 0.02 * x_dot
        x_dot = x_dot + 0.02 * x_acc
        theta = theta + 0.02 * theta_dot
        theta_dot = theta_dot + 0.02 * theta_acc
        self.state = np.stack([x, x_dot, theta, theta_dot], axis=1)
        self.t += 1
        terminated = (np.abs(x) > 2.4) | (np.abs(theta) > 12 * 2 * math.pi / 360)
        truncated = (self.t >= 500) & ~terminated
        done = terminated | truncated
        obs = self.state.astype(np.float32)
        final = None
        if done.any():
            final = [None] * self.num_envs
            for i in np.flatnonzero(done):
                final[i] = obs[i].copy()
            k = int(done.sum())
            self.state[done] = self.rng.uniform(-0.05, 0.05, (k, 4))
            self.t[done] = 0
            obs = self.state.astype(np.float32)
        return obs, np.ones(self.num_envs, np.float32), terminated, truncated, \
            {"final_observation": final}
