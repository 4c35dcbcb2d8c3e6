"""relay.evaluate: run a policy for a number of episodes and report the returns."""
import numpy as np

from .envs import SyncVectorEnv, VecEnv, builtin_def
from .model import load_policy


def evaluate(policy, env="CartPole-v1", episodes=100, num_envs=8, seed=0, max_steps=None):
    """Mean/std/min/max return of policy over episodes finished episodes.

    policy: a relay Policy (load_policy), a path to one (.onnx or bundle), or any callable
    obs [n x obs_dim] -> actions [n]/[n x act_dim].  env: a built-in name (stepped in C through
    relay.VecEnv, num_envs at a time), a vectorised Python env, or a single one.  Each env is
    seeded with seed + i and runs its share of the episodes (episodes / num_envs), so short
    episodes are not favoured; max_steps (default: 1000 x episodes) bounds the vector steps.
    Returns {"mean_return", "std_return", "min_return", "max_return", "episodes", "returns",
    "lengths"}.
    """
    if isinstance(env, str):
        if builtin_def(env) is None:
            from .errors import ERRORS
            raise ERRORS[7](7, "evaluate", "unknown environment \"%s\"" % env)
        venv = VecEnv(env, num_envs, seed)
    elif hasattr(env, "num_envs"):
        venv = env
    else:
        venv = SyncVectorEnv([env])
    if not callable(policy) or isinstance(policy, (str, bytes)):
        policy = load_policy(policy, env=venv)
    n = int(venv.num_envs)
    obs, _ = venv.reset(seed=seed)
    # Env i contributes quota[i] episodes (the quotas sum to episodes), so short episodes are not
    # over-represented the way "the first episodes to finish" would be.
    quota = np.array([episodes // n + (1 if i < episodes % n else 0) for i in range(n)])
    ret = np.zeros(n)
    length = np.zeros(n, np.int64)
    returns, lengths = [], []
    limit = max_steps if max_steps is not None else 1000 * episodes
    for _ in range(int(limit)):
        obs, r, term, trunc, _ = venv.step(policy(np.asarray(obs, np.float32)))
        ret += np.asarray(r, np.float64)
        length += 1
        done = np.asarray(term) | np.asarray(trunc)
        for i in np.flatnonzero(done):
            if quota[i] > 0:
                quota[i] -= 1
                returns.append(float(ret[i]))
                lengths.append(int(length[i]))
            ret[i] = 0.0
            length[i] = 0
        if len(returns) >= episodes:
            break
    r = np.array(returns)
    return {"mean_return": float(r.mean()) if r.size else float("nan"),
            "std_return": float(r.std()) if r.size else float("nan"),
            "min_return": float(r.min()) if r.size else float("nan"),
            "max_return": float(r.max()) if r.size else float("nan"),
            "episodes": int(r.size), "returns": r, "lengths": np.array(lengths)}


__all__ = ["evaluate"]
