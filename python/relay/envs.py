"""Environments from Python: Gymnasium-style spaces without Gymnasium, built-in env spaces, and
a synchronous vectoriser for single environments.

Protocol (Gymnasium's, duck-typed; gymnasium itself is not needed):
  env.observation_space, env.action_space: Discrete-like (has .n) or Box-like (.shape, .low,
  .high); env.reset(seed=None) -> (obs, info); env.step(action) -> (obs, reward, terminated,
  truncated, info).
A vectorised env additionally has num_envs; reset returns obs [num_envs x ...]; step takes
actions [num_envs] (discrete) or [num_envs x act_dim] and returns arrays; an env whose episode
ends is reset within the same step (its returned obs starts the next episode) and, optionally,
info["final_observation"] (or info["final_obs"]) holds the last observation of the ended
episode, per env (rows of envs that did not end are ignored).
"""
import numpy as np

from ._ffi import ffi, lib
from .errors import check, clear_detail


class Discrete:
    """A discrete space of n actions {0, ..., n-1} (Gymnasium's Discrete, duck-typed)."""

    def __init__(self, n):
        self.n = int(n)
        self.shape = ()
        self.discrete = True

    def __repr__(self):
        return "Discrete(%d)" % self.n


class Box:
    """A float32 box [low, high] of a given shape (Gymnasium's Box, duck-typed)."""

    def __init__(self, low, high, shape=None):
        shape = tuple(shape) if shape is not None else np.shape(low)
        self.low = np.broadcast_to(np.asarray(low, np.float32), shape).copy()
        self.high = np.broadcast_to(np.asarray(high, np.float32), shape).copy()
        self.shape = shape
        self.discrete = False

    @property
    def n(self):
        raise AttributeError("a Box space has no n")

    def __repr__(self):
        return "Box(shape=%s)" % (self.shape,)


def is_discrete(space):
    """True for a Discrete-like space (it has an integer n and no non-scalar shape)."""
    if hasattr(space, "discrete"):
        return bool(space.discrete)
    return hasattr(space, "n") and not getattr(space, "shape", ())


def _from_c_space(s):
    if s.discrete:
        return Discrete(s.n)
    dim = int(s.dim)
    low = np.frombuffer(ffi.buffer(s.low, 4 * dim), np.float32).copy()
    high = np.frombuffer(ffi.buffer(s.high, 4 * dim), np.float32).copy()
    return Box(low, high, (dim,))


def builtin_def(name):
    """Return the relay_env_def of a built-in (or plug-in .so) environment, or None."""
    out = ffi.new("relay_env_def **")
    clear_detail()
    if lib.relay_env_resolve(name.encode(), out) != 0:
        return None
    return out[0]


def builtin_envs():
    """Names of the built-in C environments."""
    names, i = [], 0
    while True:
        d = lib.relay_env_builtin(i)
        if d == ffi.NULL:
            return names
        names.append(ffi.string(d.name).decode())
        i += 1


def env_spaces(env):
    """(observation_space, action_space) of an env name or an env object."""
    if isinstance(env, str):
        d = builtin_def(env)
        if d is None:
            from .errors import ERRORS
            raise ERRORS[7](7, "env", "unknown environment \"%s\"" % env)
        o, a = ffi.new("relay_space *"), ffi.new("relay_space *")
        d.spaces(o, a)
        return _from_c_space(o), _from_c_space(a)
    obs = getattr(env, "single_observation_space", None) or env.observation_space
    act = getattr(env, "single_action_space", None) or env.action_space
    return obs, act


def fill_c_space(space, out):
    """Write a Python space into a relay_space struct."""
    if is_discrete(space):
        out.discrete = True
        out.n = int(space.n)
        out.dim = 1
        return
    shape = tuple(getattr(space, "shape", ()) or ())
    dim = int(np.prod(shape)) if shape else 1
    if dim > 256:
        from .errors import ERRORS
        raise ERRORS[15](15, "space", "%d elements; the limit is 256 (RELAY_ENV_MAX_DIM)" % dim)
    out.discrete = False
    out.n = 0
    out.dim = dim
    low = np.broadcast_to(np.asarray(getattr(space, "low", -np.inf), np.float32), shape).ravel()
    high = np.broadcast_to(np.asarray(getattr(space, "high", np.inf), np.float32), shape).ravel()
    for i in range(dim):
        out.low[i] = float(low[i])
        out.high[i] = float(high[i])


class SyncVectorEnv:
    """Steps a list of single Gymnasium-style envs in lockstep with same-step auto-reset."""

    def __init__(self, envs):
        self.envs = list(envs)
        self.num_envs = len(self.envs)
        self.single_observation_space = self.envs[0].observation_space
        self.single_action_space = self.envs[0].action_space
        self.observation_space = self.single_observation_space
        self.action_space = self.single_action_space
        self._seeds = None

    def reset(self, seed=None):
        obs = []
        for i, e in enumerate(self.envs):
            o, _ = e.reset(seed=None if seed is None else seed + i)
            obs.append(np.asarray(o, np.float32).ravel())
        return np.stack(obs), {}

    def step(self, actions):
        n = self.num_envs
        obs, rew = [], np.empty(n, np.float32)
        term, trunc = np.zeros(n, bool), np.zeros(n, bool)
        final = [None] * n
        for i, e in enumerate(self.envs):
            o, r, te, tr, _ = e.step(actions[i])
            rew[i], term[i], trunc[i] = r, te, tr
            o = np.asarray(o, np.float32).ravel()
            if te or tr:
                final[i] = o
                o, _ = e.reset()
                o = np.asarray(o, np.float32).ravel()
            obs.append(o)
        return np.stack(obs), rew, term, trunc, {"final_observation": final}


class VecEnv:
    """num_envs copies of a built-in (or plug-in) C environment, stepped in lockstep from Python
    (relay_vecenv): the vectorised protocol above, over NumPy arrays, with no per-env Python.

    Env i is seeded with seed + i on reset; an env that ends is reset within the step and
    info["final_observation"] holds the ended episodes' last observations (rows of the others
    are left as they were).  One thread at a time per VecEnv.
    """

    def __init__(self, name, num_envs=1, seed=0):
        d = builtin_def(name)
        if d is None:
            from .errors import ERRORS
            raise ERRORS[7](7, "VecEnv", "unknown environment \"%s\"" % name)
        self.name = ffi.string(d.name).decode()
        self.num_envs = int(num_envs)
        self.single_observation_space, self.single_action_space = env_spaces(name)
        self.observation_space = self.single_observation_space
        self.action_space = self.single_action_space
        self._seed = int(seed)
        self._def = d
        self._v = None
        self._make(self._seed)
        self.obs_dim = int(np.prod(self.single_observation_space.shape))
        self.discrete = is_discrete(self.single_action_space)
        self.act_dim = 1 if self.discrete else int(np.prod(self.single_action_space.shape))
        n = self.num_envs
        self._obs = np.zeros((n, self.obs_dim), np.float32)
        self._final = np.zeros((n, self.obs_dim), np.float32)
        self._rew = np.zeros(n, np.float32)
        self._term = np.zeros(n, np.bool_)
        self._trunc = np.zeros(n, np.bool_)

    def _make(self, seed):
        out = ffi.new("relay_vecenv **")
        clear_detail()
        check(lib.relay_vecenv_new(self._def, self.num_envs, seed, out), "VecEnv")
        self._v = ffi.gc(out[0], lib.relay_vecenv_free)

    def reset(self, seed=None):
        """Reset every env (seed: reseed env i with seed + i) -> (obs [n x obs_dim], {})."""
        if seed is not None and int(seed) != self._seed:
            self._seed = int(seed)
            self._make(self._seed)
        lib.relay_vecenv_reset(self._v, ffi.from_buffer("float[]", self._obs,
                                                        require_writable=True))
        return self._obs.copy(), {}

    def step(self, actions):
        """Step every env -> (obs, rewards, terminated, truncated, info), fresh arrays."""
        if self.discrete:
            act = np.ascontiguousarray(np.asarray(actions).reshape(self.num_envs), np.int32)
        else:
            act = np.ascontiguousarray(np.asarray(actions, np.float32).reshape(
                self.num_envs, self.act_dim))
        self._final[:] = np.nan
        lib.relay_vecenv_step(self._v, ffi.from_buffer(act),
                              ffi.from_buffer("float[]", self._obs, require_writable=True),
                              ffi.from_buffer("float[]", self._rew, require_writable=True),
                              ffi.from_buffer("bool[]", self._term, require_writable=True),
                              ffi.from_buffer("bool[]", self._trunc, require_writable=True),
                              ffi.from_buffer("float[]", self._final, require_writable=True))
        done = self._term | self._trunc
        final = [self._final[i].copy() if done[i] else None for i in range(self.num_envs)] \
            if done.any() else None
        return (self._obs.copy(), self._rew.copy(), self._term.copy(), self._trunc.copy(),
                {"final_observation": final})


def make(name, num_envs=1, seed=0):
    """A VecEnv of a built-in (or plug-in .so) environment: relay.make("CartPole-v1", 16)."""
    return VecEnv(name, num_envs, seed)
