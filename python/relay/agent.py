"""relay.Agent: the agent API of include/relay/relay.h over NumPy arrays.

Actor ids are NumPy arrays of 16-byte UUIDs: shape (n, 16), dtype uint8 (one row per actor), the
exact memory layout of relay_id[n], so they are passed to librelay without conversion.  Every
call also accepts a str / uuid.UUID / 16-byte bytes id or a list of them.
"""
import json
import os
import threading
import uuid

import numpy as np

from ._ffi import CONFIG_BYTES, ffi, lib
from .errors import ERRORS, check, clear_detail, install_log_capture, set_detail, take_detail
from .model import Model, as_model

_U8 = np.dtype(np.uint8)
_F32 = np.dtype(np.float32)
_ID_ARR = ffi.typeof("relay_id[]")
_FLOAT_ARR = ffi.typeof("float[]")
_FLOAT_ARR_W = ffi.typeof("float *")  # the same buffer, but checked writable (out)

_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.int64, 5: np.uint8, 6: np.bool_}


def as_ids(ids):
    """Return ids as a C-contiguous (n, 16) uint8 array (no copy when it already is one)."""
    if isinstance(ids, np.ndarray):
        if ids.dtype == np.uint8 and ids.ndim == 2 and ids.shape[1] == 16 and \
                ids.flags.c_contiguous:
            return ids
        arr = np.ascontiguousarray(ids, dtype=np.uint8)
        if arr.ndim == 1 and arr.shape[0] == 16:
            return arr.reshape(1, 16)
        if arr.ndim != 2 or arr.shape[1] != 16:
            raise ValueError("actor ids must have shape (n, 16), not %s" % (arr.shape,))
        return arr
    if isinstance(ids, (str, bytes, uuid.UUID)):
        ids = [ids]
    out = np.empty((len(ids), 16), dtype=np.uint8)
    for i, one in enumerate(ids):
        if isinstance(one, str):
            one = uuid.UUID(one).bytes
        elif isinstance(one, uuid.UUID):
            one = one.bytes
        elif isinstance(one, np.ndarray):
            one = one.astype(np.uint8).tobytes()
        if len(one) != 16:
            raise ValueError("an actor id is 16 bytes, a UUID or its text form")
        out[i] = np.frombuffer(one, dtype=np.uint8)
    return out


def format_id(one):
    """Return the canonical text form of one actor id (a row of an ids array, bytes or UUID)."""
    return str(uuid.UUID(bytes=as_ids(one)[0].tobytes()))


def _interruptible(call, on_interrupt):
    """Run call() (a blocking librelay call, GIL released) so Ctrl-C can stop it.

    On the main thread the call runs on a helper thread while the main thread waits in short
    slices, so KeyboardInterrupt is delivered: on_interrupt() then makes the call return, the
    helper is joined, and KeyboardInterrupt propagates.  Elsewhere call() runs directly.
    """
    if threading.current_thread() is not threading.main_thread():
        return call()
    box = {}

    def run():
        try:
            box["value"] = call()
        except BaseException as exc:  # re-raised on the caller's thread
            box["exc"] = exc
        box["detail"] = take_detail()

    t = threading.Thread(target=run, name="relay-blocking-call", daemon=True)
    t.start()
    try:
        while t.is_alive():
            t.join(0.05)
    except KeyboardInterrupt:
        on_interrupt()
        t.join()
        raise
    set_detail(box.get("detail"))
    if "exc" in box:
        raise box["exc"]
    return box.get("value")


class Trajectory:
    """One trajectory drained from the memory sink: identity fields and NumPy step columns."""

    __slots__ = ("actor", "env_id", "env_label", "episode", "policy_version", "start_ns",
                 "end_ns", "obs", "act", "mask", "reward", "terminated", "truncated", "aux", "ts")

    def __len__(self):
        return len(self.reward)

    def __repr__(self):
        return "Trajectory(actor=%s, episode=%d, len=%d, return=%.3f)" % (
            self.actor, self.episode, len(self), float(self.reward.sum()))


def _column(ptr, n, dtype, rank, shape):
    if ptr == ffi.NULL or not n:
        dims = tuple(int(shape[i]) for i in range(rank))
        return np.zeros((n,) + dims, dtype=_DTYPES.get(int(dtype), np.uint8))
    dt = np.dtype(_DTYPES[int(dtype)])
    dims = tuple(int(shape[i]) for i in range(rank))
    count = n * int(np.prod(dims, dtype=np.int64)) if dims else n
    raw = ffi.buffer(ptr, count * dt.itemsize)
    return np.frombuffer(raw, dtype=dt).copy().reshape((n,) + dims)


def _traj_from_c(t):
    out = Trajectory()
    out.actor = str(uuid.UUID(bytes=bytes(ffi.buffer(t.actor.bytes, 16))))
    out.env_id = int(t.env_id)
    out.env_label = ffi.string(t.env_label).decode()
    out.episode = int(t.episode)
    out.policy_version = int(t.policy_version)
    out.start_ns, out.end_ns = int(t.start_ns), int(t.end_ns)
    n = int(t.len)
    s = t.spec
    out.obs = _column(t.obs, n, s.obs_dtype, s.obs_rank, s.obs_shape)
    out.act = _column(t.act, n, s.act_dtype, s.act_rank, s.act_shape)
    out.mask = _column(t.mask, n, s.mask_dtype, s.mask_rank, s.mask_shape) \
        if s.mask_dtype and t.mask != ffi.NULL else None
    out.reward = np.frombuffer(ffi.buffer(t.reward, 4 * n), np.float32).copy() if n else \
        np.zeros(0, np.float32)
    out.terminated = np.frombuffer(ffi.buffer(t.terminated, n), np.uint8).astype(bool) if n \
        else np.zeros(0, bool)
    out.truncated = np.frombuffer(ffi.buffer(t.truncated, n), np.uint8).astype(bool) if n \
        else np.zeros(0, bool)
    out.ts = np.frombuffer(ffi.buffer(t.ts, 8 * n), np.int64).copy() if n else \
        np.zeros(0, np.int64)
    naux = int(s.n_aux)
    aux = np.frombuffer(ffi.buffer(t.aux, 4 * n * naux), np.float32).reshape(n, naux) \
        if n and naux else np.zeros((n, naux), np.float32)
    out.aux = {ffi.string(s.aux_names[k]).decode(): aux[:, k].copy() for k in range(naux)}
    return out


def _unknown_keys(d, ref, prefix=""):
    bad = []
    for k, v in d.items():
        if not isinstance(ref, dict) or k not in ref:
            bad.append(prefix + k)
        elif isinstance(v, dict):
            bad.extend(_unknown_keys(v, ref[k], prefix + k + "."))
    return bad


def _config_buffer(config, overrides, check_keys=True):
    if check_keys and (isinstance(config, dict) or overrides):
        ref = _config_buffer(None, None, False)[2]
        bad = _unknown_keys(dict(config or {}) if isinstance(config, dict) else {}, ref) + \
            _unknown_keys(overrides or {}, ref)
        if bad:
            raise ERRORS[22](22, "config", "unknown configuration key%s %s (docs/CONFIG.md)"
                             % ("s" if len(bad) > 1 else "", ", ".join(sorted(bad))))
    buf = ffi.new("uint64_t[]", CONFIG_BYTES // 8)
    cfg = ffi.cast("relay_config *", buf)
    lib.relay_config_default(cfg)
    clear_detail()
    if isinstance(config, (str, bytes, os.PathLike)):
        check(lib.relay_config_load_json(cfg, os.fsencode(config)), "config file %s" % (config,))
    elif isinstance(config, dict):
        check(lib.relay_config_parse_json(cfg, json.dumps(config).encode()), "config")
    elif config is not None:
        raise TypeError("config must be a dict, a path to a JSON file, or None")
    if overrides:
        check(lib.relay_config_parse_json(cfg, json.dumps(overrides).encode()), "config")
    return buf, cfg, (config_to_dict(cfg) if not check_keys else None)


def config_to_dict(cfg):
    """Return a relay_config as the dict of its JSON form (every key)."""
    text = ffi.new("char **")
    check(lib.relay_config_to_json(cfg, text), "config_to_json")
    try:
        return json.loads(ffi.string(text[0]).decode())
    finally:
        lib.free(text[0])


def default_config():
    """Return every agent configuration key with its default value (docs/CONFIG.md)."""
    return _config_buffer(None, None, False)[2]


def _learner_stats(st):
    from .train import _metrics_dict
    out = {k: (float(getattr(st, k)) if t.type.cname in ("float", "double") else
               bool(getattr(st, k)) if t.type.cname == "_Bool" else int(getattr(st, k)))
           for k, t in ffi.typeof("relay_learner_stats").fields if k != "last"}
    out["last_update"] = _metrics_dict(st.last)
    return out


class Learner:
    """A learner attached to an agent (Agent.attach_learner); owned and freed by the agent."""

    def __init__(self, agent):
        self._agent = agent
        self._l = None
        self._cb = None

    def _handle(self):
        if self._l is None:
            raise ERRORS[29](29, "learner", "the agent that owned this learner is closed")
        return self._l

    def stats(self):
        """The learner's counters (steps, episodes, updates, version, mean_return_100, ...)."""
        st = ffi.new("relay_learner_stats *")
        lib.relay_learner_get_stats(self._handle(), st)
        return _learner_stats(st)

    @property
    def n_steps(self):
        """Rows per actor that make one update."""
        return lib.relay_learner_n_steps(self._handle())

    def wait_version(self, version, timeout=30.0):
        """Block (GIL released) until the policy version is >= version; relay.Timeout after."""
        clear_detail()
        check(lib.relay_learner_wait_version(self._handle(), int(version),
                                             int(timeout * 1000)), "wait_version")

    def save_checkpoint(self, path):
        """Write the complete learner state to path (resume with attach_learner(resume=))."""
        clear_detail()
        check(lib.relay_learner_save_checkpoint(self._handle(), os.fsencode(path)),
              "save_checkpoint")

    def export_onnx(self, path):
        """Write the newest policy network to path as ONNX."""
        clear_detail()
        check(lib.relay_learner_export_onnx(self._handle(), os.fsencode(path)), "export_onnx")

    def stop(self):
        """Stop training (later trajectories are dropped); idempotent."""
        lib.relay_learner_stop(self._handle())


class Agent:
    """A Relay agent: routers, actors, sinks (relay_agent).

    Agent(config=None, start=True, **keys): config is a dict of configuration keys
    (docs/CONFIG.md), a path to a JSON file, or None for the defaults; extra keyword arguments
    override top-level keys.  Use it as a context manager (shut down and freed on exit).

    Thread safety: every method may be called from any thread (librelay's calls are
    thread-safe); close() must not race with other calls on the same agent.  Blocking calls
    release the GIL.
    """

    def __init__(self, config=None, start=True, **keys):
        """Create (and by default start) an agent; unknown keys raise relay.ConfigError."""
        install_log_capture()
        self._cfgbuf, cfg, _ = _config_buffer(config, keys)
        self.config = config_to_dict(cfg)
        out = ffi.new("relay_agent **")
        check(lib.relay_agent_new(cfg, out), "Agent")
        self._a = out[0]
        self._lock = threading.Lock()
        self._widths = {}  # id bytes -> (obs_dim, act_dim, n_actions or None)
        self._totals = {}  # ids bytes -> (obs total, act total, mask total or None, act_dim)
        self._ptrs = {}  # id(array) -> (array, cdata): recent request_action buffers
        self._learners = []  # attached learners (their callbacks must outlive the agent)
        self._last_ids = None  # (ids array, its bytes, cdata, sizes) of the last request
        if start:
            self.start()

    # ---- lifecycle -------------------------------------------------------------------------
    def _handle(self):
        a = self._a
        if a is None:
            raise ERRORS[29](29, "agent", "the agent is closed")
        return a

    def start(self):
        """Open the sinks and start the routers (done by the constructor unless start=False)."""
        clear_detail()
        check(lib.relay_agent_start(self._handle()), "start")

    def shutdown(self):
        """Flush every actor, drain trajectories into the sinks and stop all threads."""
        clear_detail()
        check(lib.relay_agent_shutdown(self._handle()), "shutdown")

    def restart(self):
        """Shut the runtime down and start it again; actors and models survive."""
        clear_detail()
        check(lib.relay_agent_restart(self._handle()), "restart")

    def close(self):
        """Shut down (if running) and free the agent (and its learner); idempotent."""
        a, self._a = self._a, None
        if a is not None:
            lib.relay_agent_free(a)
        for learner in getattr(self, "_learners", ()):
            learner._l = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # ---- actors ----------------------------------------------------------------------------
    def new_actors(self, count=1, model=None, env=None, seed=0, deterministic=False,
                   max_traj_length=0, ids=None):
        """Create count actors; returns their ids as a (count, 16) uint8 array.

        model: a relay.Model, ONNX bytes, or a path (.onnx file or bundle directory; a bare
        ONNX model takes env's spaces); None uses the configured model_path.  env: environment name or plug-in path (spaces and run_env);
        None uses the configured env.  ids: ids to use instead of fresh random ones.
        """
        a = self._handle()
        m = as_model(model, env) if model is not None else None
        opt = ffi.new("relay_actor_options *")
        keep = []
        if m is not None:
            opt.model = m._b
        if env is not None:
            keep.append(ffi.new("char[]", os.fsencode(env)))
            opt.env = keep[-1]
        opt.max_traj_length = max_traj_length
        opt.seed = seed
        opt.deterministic = bool(deterministic)
        out = np.empty((count, 16), dtype=np.uint8)
        if ids is not None:
            want = as_ids(ids)
            if len(want) != count:
                raise ValueError("ids has %d rows for %d actors" % (len(want), count))
            for i in range(count):  # one actor per given id
                opt.id = ffi.cast("relay_id *", ffi.from_buffer(want[i]))
                clear_detail()
                check(lib.relay_agent_new_actors(a, 1, opt, ffi.cast("relay_id *",
                                                                     ffi.from_buffer(out[i]))),
                      "new_actors")
        else:
            clear_detail()
            check(lib.relay_agent_new_actors(a, count, opt,
                                             ffi.from_buffer("relay_id[]", out)), "new_actors")
        n_actions = self._n_actions(m, env)
        with self._lock:
            self._totals.clear()
            self._last_ids = None
            for i in range(count):
                rid = ffi.cast("relay_id *", ffi.from_buffer(out[i]))[0]
                self._widths[out[i].tobytes()] = (lib.relay_agent_obs_dim(a, rid),
                                                  lib.relay_agent_act_dim(a, rid), n_actions)
        return out

    def new_actor(self, **kw):
        """Create one actor (keywords as new_actors); returns its id as a (16,) uint8 array."""
        return self.new_actors(1, **kw)[0]

    def _n_actions(self, m, env):
        if m is not None:
            return m.n_actions if m.discrete else None
        name = env if env is not None else self.config.get("env") or None
        if name:
            from .envs import env_spaces
            try:
                obs, act = env_spaces(name)
                return int(act.n) if act.discrete else None
            except Exception:
                return None
        if self.config.get("model_path"):
            try:
                m = Model(self.config["model_path"])
                return m.n_actions if m.discrete else None
            except Exception:
                return None
        return None

    def remove_actor(self, actor):
        """Remove actors (one id or many) after flushing their partial trajectories."""
        ids = as_ids(actor)
        clear_detail()
        err = lib.relay_agent_remove_actors(self._handle(), ffi.from_buffer("relay_id[]", ids),
                                            len(ids))
        with self._lock:
            self._totals.clear()
            self._last_ids = None
            for row in ids:
                self._widths.pop(row.tobytes(), None)
        check(err, "remove_actor")

    remove_actors = remove_actor

    def set_actor_id(self, current, new):
        """Rename an actor; its model, data and future stamps move with it."""
        cur, nxt = as_ids(current), as_ids(new)
        clear_detail()
        check(lib.relay_agent_set_actor_id(self._handle(),
                                           ffi.cast("relay_id *", ffi.from_buffer(cur))[0],
                                           ffi.cast("relay_id *", ffi.from_buffer(nxt))[0]),
              "set_actor_id")
        with self._lock:
            self._totals.clear()
            self._last_ids = None
            w = self._widths.pop(cur[0].tobytes(), None)
            if w is not None:
                self._widths[nxt[0].tobytes()] = w

    def actor_ids(self):
        """Return the ids of every actor, sorted, as an (n, 16) uint8 array."""
        a = self._handle()
        while True:
            n = lib.relay_agent_actor_ids(a, ffi.NULL, 0)
            out = np.empty((n, 16), dtype=np.uint8)
            got = lib.relay_agent_actor_ids(a, ffi.from_buffer("relay_id[]", out), n)
            if got <= n:
                return out[:got]

    def obs_dim(self, actor):
        """Observation width of an actor (0 if unknown)."""
        return lib.relay_agent_obs_dim(self._handle(), ffi.cast("relay_id *", ffi.from_buffer(
            as_ids(actor)))[0])

    def act_dim(self, actor):
        """Action width request_action writes for an actor (1 for discrete; 0 if unknown)."""
        return lib.relay_agent_act_dim(self._handle(), ffi.cast("relay_id *", ffi.from_buffer(
            as_ids(actor)))[0])

    # ---- acting ----------------------------------------------------------------------------
    def _sizes(self, ids):
        key = ids.tobytes()
        got = self._totals.get(key)
        if got is not None:
            return got
        a = self._handle()
        o = ac = mk = 0
        mask_ok = True
        act0 = None
        for row in ids:
            w = self._widths.get(row.tobytes())
            if w is None:
                rid = ffi.cast("relay_id *", ffi.from_buffer(row))[0]
                w = (lib.relay_agent_obs_dim(a, rid), lib.relay_agent_act_dim(a, rid), None)
                if w[0] == 0:
                    raise ERRORS[7](7, "request_action", "unknown actor %s" % format_id(row))
            o += w[0]
            ac += w[1]
            act0 = w[1] if act0 is None or act0 == w[1] else -1
            if w[2] is None:
                mask_ok = False
            else:
                mk += w[2]
        got = (o, ac, mk if mask_ok else None, 0 if act0 is None else act0)
        with self._lock:
            if len(self._totals) > 1024:
                self._totals.clear()
            self._last_ids = None
            self._totals[key] = got
        return got

    def _ptr(self, arr, ctype):
        """cdata pointing into arr; the last few arrays' pointers are cached (arrays kept alive
        by the cache, so their memory cannot move), which saves an ffi.from_buffer per call."""
        cache = self._ptrs
        hit = cache.get(id(arr))
        if hit is not None and hit[0] is arr:
            return hit[1]
        p = ffi.from_buffer(ctype, arr, require_writable=ctype is _FLOAT_ARR_W)
        if len(cache) >= 8:
            cache.clear()
        cache[id(arr)] = (arr, p)
        return p

    def request_action(self, ids, obs, mask=None, rewards=None, out=None):
        """Ask actors for actions: obs [n x obs_dim] float32 (rows packed per actor).

        mask: [n x n_actions] (bool or uint8, 1 = allowed) or None; rewards: [n] credited to
        each actor's previous action, or None.  Returns actions as float32 [n x act_dim]
        (discrete: the action index), written into out when given.  Arrays that are already
        C-contiguous with the right dtype are passed to librelay without copying.
        """
        if type(ids) is not np.ndarray or ids.dtype is not _U8 or ids.ndim != 2:
            ids = as_ids(ids)
        n = ids.shape[0]
        key = ids.tobytes()
        last = self._last_ids
        if last is not None and last[0] is ids and last[1] == key:
            idp, sizes = last[2], last[3]
        else:
            ids = np.ascontiguousarray(ids)
            sizes = self._sizes(ids)
            idp = ffi.from_buffer(_ID_ARR, ids)
            self._last_ids = (ids, key, idp, sizes)
        o_tot, a_tot, m_tot, act_dim = sizes
        if type(obs) is not np.ndarray or obs.dtype is not _F32 or not obs.flags.c_contiguous:
            obs = np.ascontiguousarray(obs, dtype=np.float32)
        if obs.size != o_tot:
            raise ERRORS[20](20, "request_action", "obs has %d floats, the %d actors need %d"
                             % (obs.size, n, o_tot))
        mptr = ffi.NULL
        if mask is not None:
            if m_tot is None:
                raise ERRORS[18](18, "request_action",
                                 "a mask needs discrete actors with a known number of actions")
            mask = np.ascontiguousarray(mask)
            if mask.dtype == np.bool_:
                mask = mask.view(np.uint8)
            elif mask.dtype != np.uint8:
                mask = mask.astype(np.uint8)
            if mask.size != m_tot:
                raise ERRORS[20](20, "request_action", "mask has %d entries, the actors need %d"
                                 % (mask.size, m_tot))
            mptr = ffi.from_buffer("uint8_t[]", mask)
        rptr = ffi.NULL
        if rewards is not None:
            if type(rewards) is not np.ndarray or rewards.dtype is not _F32 or \
                    not rewards.flags.c_contiguous:
                rewards = np.ascontiguousarray(rewards, dtype=np.float32)
            if rewards.size != n:
                raise ERRORS[20](20, "request_action", "rewards has %d entries for %d actors"
                                 % (rewards.size, n))
            rptr = self._ptr(rewards, _FLOAT_ARR)
        if out is None:
            out = np.empty((n, act_dim) if act_dim >= 0 else (a_tot,), dtype=np.float32)
            optr = ffi.from_buffer(_FLOAT_ARR, out, require_writable=True)
        else:
            if type(out) is not np.ndarray or out.dtype is not _F32 or \
                    not out.flags.c_contiguous or out.size != a_tot or not out.flags.writeable:
                raise ERRORS[20](20, "request_action", "out must be a writable C-contiguous "
                                 "float32 array with %d entries" % a_tot)
            optr = self._ptr(out, _FLOAT_ARR_W)
        err = lib.relay_agent_request_action(self._handle(), idp, n, self._ptr(obs, _FLOAT_ARR),
                                             mptr, rptr, optr, ffi.NULL)
        if err:
            check(err, "request_action")
        return out

    def flag_last_action(self, ids, rewards=None, terminated=None, truncated=False,
                         final_obs=None):
        """End each actor's episode with a final reward (None: 0), Gymnasium-style.

        terminated / truncated: bools or [n] arrays (terminated None: the rows not truncated);
        a row that is truncated and not terminated is a time-limit end, which an attached learner bootstraps with V(final_obs row) (final_obs
        [n x obs_dim], or None: V of the last observation acted on); every other row terminated.
        relay.StateError for an actor with no open episode.
        """
        ids = as_ids(ids)
        n = len(ids)
        rptr = ffi.NULL
        if rewards is not None:
            rewards = np.ascontiguousarray(rewards, dtype=np.float32)
            if rewards.size != n:
                raise ERRORS[20](20, "flag_last_action", "rewards has %d entries for %d actors"
                                 % (rewards.size, n))
            rptr = ffi.from_buffer("float[]", rewards)
        trunc = np.broadcast_to(np.asarray(truncated, dtype=bool), (n,))
        if terminated is not None:
            trunc = trunc & ~np.broadcast_to(np.asarray(terminated, dtype=bool), (n,))
        clear_detail()
        if not trunc.any():
            check(lib.relay_agent_flag_last_action(self._handle(),
                                                   ffi.from_buffer("relay_id[]", ids), n, rptr),
                  "flag_last_action")
            return
        trunc = np.ascontiguousarray(trunc)
        fptr = ffi.NULL
        if final_obs is not None:
            o_tot = self._sizes(ids)[0]
            final_obs = np.ascontiguousarray(final_obs, dtype=np.float32)
            if final_obs.size != o_tot:
                raise ERRORS[20](20, "flag_last_action", "final_obs has %d floats, the %d "
                                 "actors need %d" % (final_obs.size, n, o_tot))
            fptr = ffi.from_buffer("float[]", final_obs)
        check(lib.relay_agent_end_episodes(self._handle(), ffi.from_buffer("relay_id[]", ids),
                                           n, rptr, ffi.from_buffer("bool[]", trunc), fptr),
              "flag_last_action")

    def end_episodes(self, ids, rewards=None, truncated=None, final_obs=None):
        """relay_agent_end_episodes: end episodes; truncated [n] marks time-limit ends."""
        self.flag_last_action(ids, rewards, truncated=truncated if truncated is not None
                              else False, final_obs=final_obs)

    end_episode = end_episodes

    # ---- learner ---------------------------------------------------------------------------
    def attach_learner(self, env=None, observation_space=None, action_space=None, n_actors=1,
                       policy_lag=0, seed=0, resume=None, on_update=None, algo="ppo", zoo=None,
                       **hyperparameters):
        """Attach a PPO/REINFORCE learner for your own environment loop; returns (learner, ids).

        The agent must use "model_mode": "shared".  n_actors actors are created (ids, one per
        environment copy); drive them with request_action(ids, obs, rewards=previous rewards)
        and end_episodes(...); the learner trains on their trajectories on its own thread and
        sends each new policy to every actor.  env: a built-in name (spaces and zoo settings),
        or give observation_space and action_space (Gymnasium-style).  Hyperparameters as for
        relay.train (SB3 names, net_arch, ..., total_timesteps; zoo="<env>" starts from the
        zoo's values);
        none given: the zoo's for env, SB3's otherwise.  on_update(stats dict) runs on the
        learner thread after every update (keep it short; it takes the GIL).
        """
        from .envs import fill_c_space
        from .train import ppo_config
        a = self._handle()
        keep = []
        o = ffi.new("relay_learner_options *")
        if env is not None:
            keep.append(ffi.new("char[]", os.fsencode(env)))
            o.env = keep[-1]
        elif observation_space is not None and action_space is not None:
            so, sa = ffi.new("relay_space *"), ffi.new("relay_space *")
            fill_c_space(observation_space, so)
            fill_c_space(action_space, sa)
            keep += [so, sa]
            o.obs_space, o.act_space = so, sa
        else:
            raise TypeError("attach_learner: give env, or observation_space and action_space")
        hp = dict(hyperparameters)
        total = hp.pop("total_timesteps", None) or hp.pop("steps", None)
        if hp or zoo or algo != "ppo" or total:
            cfg, _ = ppo_config(hp, zoo=zoo or env, algo=algo, what="attach_learner")
            if total:
                cfg.total_timesteps = int(total)
            keep.append(cfg)
            o.ppo = cfg
        o.n_actors = n_actors
        o.policy_lag = policy_lag
        o.seed = seed
        if resume is not None:
            keep.append(ffi.new("char[]", os.fsencode(resume)))
            o.resume_path = keep[-1]
        learner = Learner(self)
        if on_update is not None:
            def cb(st, user):
                on_update(_learner_stats(st))
            learner._cb = ffi.callback("relay_learner_update_fn", cb)
            o.on_update = learner._cb
        ids = np.empty((n_actors, 16), dtype=np.uint8)
        out = ffi.new("relay_learner **")
        clear_detail()
        check(lib.relay_agent_attach_learner(a, o, ffi.from_buffer("relay_id[]", ids), out),
              "attach_learner")
        learner._l = out[0]
        self._learners.append(learner)  # keeps the callback alive as long as the agent
        with self._lock:
            self._totals.clear()
            self._last_ids = None
            for row in ids:
                rid = ffi.cast("relay_id *", ffi.from_buffer(row))[0]
                self._widths[row.tobytes()] = (
                    lib.relay_agent_obs_dim(a, rid), lib.relay_agent_act_dim(a, rid),
                    self._space_n_actions(env, action_space))
        return learner, ids

    def _space_n_actions(self, env, action_space):
        from .envs import env_spaces, is_discrete
        space = env_spaces(env)[1] if env is not None else action_space
        return int(space.n) if is_discrete(space) else None

    # ---- models ----------------------------------------------------------------------------
    def update_model(self, model, ids=None):
        """Send a model (relay.Model, ONNX bytes or a path) to actors (None: all of them)."""
        m = as_model(model)
        if ids is None:
            idp, n = ffi.NULL, 0
        else:
            ids = as_ids(ids)
            idp, n = ffi.from_buffer("relay_id[]", ids), len(ids)
        clear_detail()
        check(lib.relay_agent_update_model(self._handle(), m._b, idp, n), "update_model")

    def get_model_version(self, ids):
        """Return each actor's model version as an int64 array (-1: no model)."""
        ids = as_ids(ids)
        out = np.empty(len(ids), dtype=np.int64)
        clear_detail()
        check(lib.relay_agent_get_model_version(self._handle(),
                                                ffi.from_buffer("relay_id[]", ids), len(ids),
                                                ffi.from_buffer("int64_t[]", out)),
              "get_model_version")
        return out

    # ---- scaling, environments, data -------------------------------------------------------
    def scale_throughput(self, delta):
        """Add (delta > 0) or remove (delta < 0) routers."""
        clear_detail()
        check(lib.relay_agent_scale_throughput(self._handle(), int(delta)), "scale_throughput")

    @property
    def num_routers(self):
        """The current router count."""
        return lib.relay_agent_num_routers(self._handle())

    def run_env(self, actor, env=None, n_envs=1, steps=0, wait=True):
        """Make an actor step n_envs copies of env for steps vector steps on its router.

        With wait the call blocks (GIL released) until the run ends; Ctrl-C stops the run by
        restarting the runtime (actors and models survive) and raises KeyboardInterrupt.
        """
        a = self._handle()
        rid = ffi.cast("relay_id *", ffi.from_buffer(as_ids(actor)))[0]
        envp = ffi.new("char[]", os.fsencode(env)) if env is not None else ffi.NULL

        def call():
            clear_detail()
            return lib.relay_agent_run_env(a, rid, envp, n_envs, steps, bool(wait))

        if not wait:
            check(call(), "run_env")
            return
        err = _interruptible(call, lambda: lib.relay_agent_restart(a))
        check(err, "run_env")

    def drain_trajectories(self, max_count=1 << 20):
        """Move trajectories out of the memory sink; returns a list of relay.Trajectory."""
        a = self._handle()
        out = []
        batch = min(max_count, 4096)
        arr = ffi.new("relay_traj *[]", batch)
        n = ffi.new("size_t *")
        while len(out) < max_count:
            clear_detail()
            check(lib.relay_agent_drain_trajectories(a, arr, min(batch, max_count - len(out)),
                                                     n), "drain_trajectories")
            for i in range(n[0]):
                try:
                    out.append(_traj_from_c(arr[i]))
                finally:
                    lib.relay_traj_free(arr[i])
            if n[0] < batch:
                break
        return out

    def flush(self):
        """Wait until every trajectory emitted so far has reached the sinks (Ctrl-C aborts the
        wait only)."""
        a = self._handle()
        err = _interruptible(lambda: lib.relay_agent_flush(a), lambda: None)
        check(err, "flush")

    def stats(self):
        """Return the agent's counters (relay_agent_stats) as a dict."""
        st = ffi.new("relay_agent_stats *")
        lib.relay_agent_get_stats(self._handle(), st)
        return {k: int(getattr(st, k)) for k, _ in ffi.typeof("relay_agent_stats").fields}
