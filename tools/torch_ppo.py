#!/usr/bin/python3
"""PyTorch PPO on CartPole-v1 with the rl-baselines3-zoo hyperparameters, as a speed reference.

A self-contained re-implementation of Stable-Baselines3's PPO semantics (no SB3, no Gymnasium:
neither is installable here) used by bench/train/run.sh to compare wall time and env steps with
`relay train`. Hyperparameters (zoo, CartPole-v1): 8 envs, n_steps 32, batch 256, 20 epochs,
gamma 0.98, gae_lambda 0.8, learning rate linear from 1e-3, clip range linear from 0.2,
ent_coef 0, vf_coef 0.5, max_grad_norm 0.5, Adam eps 1e-5, separate 64-64 tanh policy and value
MLPs with orthogonal init (gains sqrt(2) hidden, 0.01 policy head, 1 value head), per-minibatch
advantage normalisation, GAE with bootstrapping of time-limit truncations.

Stops when the mean return of the last 100 episodes reaches --target (475) after at least 100
episodes, or when --steps (100 000) env steps are spent. Prints one line on stdout:

  CartPole-v1: target reached after N steps, U updates, W s (S steps/s); mean return (last 100) R
  over E episodes; torch T threads

Usage: /usr/bin/python3 tools/torch_ppo.py [--seed S] [--steps N] [--target R] [--threads T]
"""

import argparse
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn


class CartPoleVec:
    """N independent CartPole-v1 environments (Gymnasium's equations, Euler integration).

    Terminated when |x| > 2.4 or |theta| > 12 degrees, truncated at 500 steps; reward 1 per
    step; resets draw each state variable uniformly from [-0.05, 0.05]. Like SB3's VecEnv, a
    finished env is reset at once: step() returns the first observation of the new episode and
    the last observation of the finished one separately.
    """

    GRAVITY = 9.8
    MASS_CART = 1.0
    MASS_POLE = 0.1
    TOTAL_MASS = MASS_CART + MASS_POLE
    HALF_LENGTH = 0.5
    POLE_MASS_LENGTH = MASS_POLE * HALF_LENGTH
    FORCE_MAG = 10.0
    TAU = 0.02
    THETA_LIMIT = 12 * 2 * math.pi / 360
    X_LIMIT = 2.4
    MAX_STEPS = 500

    def __init__(self, n, seed):
        self.n = n
        self.rng = np.random.default_rng(seed)
        self.state = self.rng.uniform(-0.05, 0.05, size=(n, 4))
        self.t = np.zeros(n, dtype=np.int64)

    def obs(self):
        return self.state.astype(np.float32)

    def step(self, action):
        """Steps every env; returns (obs, reward, terminated, truncated, last_obs)."""
        x, x_dot, th, th_dot = self.state.T
        force = np.where(action == 1, self.FORCE_MAG, -self.FORCE_MAG)
        cos_t = np.cos(th)
        sin_t = np.sin(th)
        temp = (force + self.POLE_MASS_LENGTH * th_dot * th_dot * sin_t) / self.TOTAL_MASS
        th_acc = (self.GRAVITY * sin_t - cos_t * temp) / (
            self.HALF_LENGTH * (4.0 / 3.0 - self.MASS_POLE * cos_t * cos_t / self.TOTAL_MASS))
        x_acc = temp - self.POLE_MASS_LENGTH * th_acc * cos_t / self.TOTAL_MASS
        x = x + self.TAU * x_dot
        x_dot = x_dot + self.TAU * x_acc
        th = th + self.TAU * th_dot
        th_dot = th_dot + self.TAU * th_acc
        self.state = np.stack([x, x_dot, th, th_dot], axis=1)
        self.t += 1
        terminated = (np.abs(x) > self.X_LIMIT) | (np.abs(th) > self.THETA_LIMIT)
        truncated = (self.t >= self.MAX_STEPS) & ~terminated
        reward = np.ones(self.n, dtype=np.float32)
        last_obs = self.state.astype(np.float32)
        done = terminated | truncated
        if done.any():
            k = int(done.sum())
            self.state[done] = self.rng.uniform(-0.05, 0.05, size=(k, 4))
            self.t[done] = 0
        return self.obs(), reward, terminated, truncated, last_obs


def mlp(sizes, gain):
    """A tanh MLP (64-64 hidden), orthogonally initialised with `gain`, biases zero."""
    layers = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        nn.init.orthogonal_(lin.weight, gain=gain)
        nn.init.zeros_(lin.bias)
        layers += [lin, nn.Tanh()]
    return nn.Sequential(*layers)


def head(n_in, n_out, gain):
    lin = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(lin.weight, gain=gain)
    nn.init.zeros_(lin.bias)
    return lin


class ActorCritic(nn.Module):
    """Separate policy and value networks (SB3 MlpPolicy's default for PPO)."""

    def __init__(self, obs_dim, n_actions, hidden=(64, 64)):
        super().__init__()
        sizes = [obs_dim] + list(hidden)
        self.pi_body = mlp(sizes, math.sqrt(2))
        self.vf_body = mlp(sizes, math.sqrt(2))
        self.pi_head = head(hidden[-1], n_actions, 0.01)
        self.vf_head = head(hidden[-1], 1, 1.0)

    def logits(self, obs):
        return self.pi_head(self.pi_body(obs))

    def value(self, obs):
        return self.vf_head(self.vf_body(obs)).squeeze(-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--target", type=float, default=475.0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    n_envs, n_steps, batch_size, n_epochs = 8, 32, 256, 20
    gamma, gae_lambda = 0.98, 0.8
    lr0, clip0 = 1e-3, 0.2
    ent_coef, vf_coef, max_grad_norm = 0.0, 0.5, 0.5

    torch.set_num_threads(args.threads)
    # Argument validation in torch.distributions costs time and changes nothing here.
    torch.distributions.Distribution.set_default_validate_args(False)
    torch.manual_seed(args.seed)
    env = CartPoleVec(n_envs, args.seed)
    model = ActorCritic(4, 2)
    opt = torch.optim.Adam(model.parameters(), lr=lr0, eps=1e-5)

    buf_obs = torch.zeros(n_steps, n_envs, 4)
    buf_act = torch.zeros(n_steps, n_envs, dtype=torch.int64)
    buf_rew = torch.zeros(n_steps, n_envs)
    buf_start = torch.zeros(n_steps, n_envs)
    buf_val = torch.zeros(n_steps, n_envs)
    buf_logp = torch.zeros(n_steps, n_envs)

    ep_ret = np.zeros(n_envs)
    returns100 = []
    episodes = 0
    steps = 0
    updates = 0
    why = "step budget spent"

    t0 = time.perf_counter()
    obs = torch.from_numpy(env.obs())
    episode_start = torch.ones(n_envs)
    solved = False
    while steps < args.steps and not solved:
        # ---- collect n_steps x n_envs transitions with the current policy ----
        with torch.no_grad():
            for t in range(n_steps):
                logits = model.logits(obs)
                dist = torch.distributions.Categorical(logits=logits)
                act = dist.sample()
                logp = dist.log_prob(act)
                val = model.value(obs)
                nobs, rew, term, trunc, last = env.step(act.numpy())
                steps += n_envs
                ep_ret += rew
                rew_t = torch.tensor(rew)  # a copy: the bootstrap below must not reach ep_ret
                if trunc.any():  # bootstrap time-limit truncations with V(last observation)
                    idx = np.nonzero(trunc)[0]
                    v_last = model.value(torch.from_numpy(last[idx]))
                    rew_t[torch.from_numpy(idx)] += gamma * v_last
                buf_obs[t] = obs
                buf_act[t] = act
                buf_rew[t] = rew_t
                buf_start[t] = episode_start
                buf_val[t] = val
                buf_logp[t] = logp
                done = term | trunc
                for i in np.nonzero(done)[0]:
                    returns100.append(ep_ret[i])
                    ep_ret[i] = 0.0
                    episodes += 1
                if len(returns100) > 100:
                    del returns100[: len(returns100) - 100]
                obs = torch.from_numpy(nobs)
                episode_start = torch.from_numpy(done.astype(np.float32))
                if episodes >= 100 and sum(returns100) / len(returns100) >= args.target:
                    solved = True
                    why = "target reached"
                    break
            if solved:
                break  # stopped mid-rollout: no update on a partial rollout
            # ---- GAE(lambda), bootstrapping from V(next obs) unless the episode ended ----
            last_val = model.value(obs)
            adv = torch.zeros(n_steps, n_envs)
            gae = torch.zeros(n_envs)
            for t in reversed(range(n_steps)):
                if t == n_steps - 1:
                    not_done = 1.0 - episode_start
                    next_val = last_val
                else:
                    not_done = 1.0 - buf_start[t + 1]
                    next_val = buf_val[t + 1]
                delta = buf_rew[t] + gamma * next_val * not_done - buf_val[t]
                gae = delta + gamma * gae_lambda * not_done * gae
                adv[t] = gae
            ret = adv + buf_val

        # ---- n_epochs of minibatch PPO with linearly decaying lr and clip range ----
        progress = 1.0 - steps / args.steps
        lr = lr0 * progress
        clip = clip0 * progress
        for g in opt.param_groups:
            g["lr"] = lr
        b_obs = buf_obs.reshape(-1, 4)
        b_act = buf_act.reshape(-1)
        b_logp = buf_logp.reshape(-1)
        b_adv = adv.reshape(-1)
        b_ret = ret.reshape(-1)
        n = n_steps * n_envs
        for _ in range(n_epochs):
            perm = torch.randperm(n)
            for s in range(0, n, batch_size):
                mb = perm[s:s + batch_size]
                dist = torch.distributions.Categorical(logits=model.logits(b_obs[mb]))
                logp = dist.log_prob(b_act[mb])
                entropy = dist.entropy()
                v = model.value(b_obs[mb])
                a = b_adv[mb]
                if len(mb) > 1:
                    a = (a - a.mean()) / (a.std() + 1e-8)
                ratio = torch.exp(logp - b_logp[mb])
                pg_loss = -torch.min(a * ratio, a * torch.clamp(ratio, 1 - clip, 1 + clip)).mean()
                v_loss = nn.functional.mse_loss(b_ret[mb], v)
                loss = pg_loss - ent_coef * entropy.mean() + vf_coef * v_loss
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                opt.step()
        updates += 1

    wall = time.perf_counter() - t0
    mean100 = sum(returns100) / len(returns100) if returns100 else float("nan")
    print(f"CartPole-v1: {why} after {steps} steps, {updates} updates, {wall:.2f} s "
          f"({steps / wall:.0f} steps/s); mean return (last 100) {mean100:.1f} over {episodes} "
          f"episodes; torch {torch.__version__} {torch.get_num_threads()} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
