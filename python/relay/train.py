"""relay.train: PPO/REINFORCE on a built-in C environment (the whole loop in C, as `relay train`)
or on a Python environment (stepped in batches from Python; policy, rollout and updates in C).
"""
import json
import math
import os
import time

import numpy as np

from ._ffi import ffi, lib
from .agent import default_config
from .envs import SyncVectorEnv, builtin_def, env_spaces, fill_c_space, is_discrete
from .errors import ERRORS, check, clear_detail, install_log_capture

# Keys of the "train" section of `relay train --config` (src/cli/train_run.c).
TRAIN_KEYS = ("env", "algo", "actors", "envs_per_actor", "steps", "seed", "target", "out",
              "sink", "max_seconds", "policy_lag", "eval_every", "eval_episodes", "save_every")

# Keys of the "ppo" / "reinforce" sections of `relay train --config` (src/cli/hparams.c).
C_HP_KEYS = ("learning_rate", "lr_schedule", "n_steps", "batch_size", "n_epochs", "gamma",
             "gae_lambda", "clip_range", "clip_range_schedule", "clip_range_vf", "ent_coef",
             "vf_coef", "max_grad_norm", "target_kl", "normalize_advantage", "adam_eps",
             "net_arch", "activation", "shared_net", "log_std_init", "normalize_obs", "clip_obs",
             "norm_reward", "clip_reward")

# relay_ppo_config fields settable by keyword for Python environments (SB3 names).
PPO_KEYS = ("n_envs", "n_steps", "batch_size", "n_epochs", "gamma", "gae_lambda",
            "learning_rate", "lr_linear", "clip_range", "clip_linear", "clip_range_vf",
            "ent_coef", "vf_coef", "max_grad_norm", "target_kl", "normalize_advantage",
            "adam_eps", "normalize_reward", "clip_reward")
POLICY_KEYS = ("net_arch", "activation", "shared", "log_std_init", "normalize_obs", "clip_obs")

METRICS_HEADER = ("update,steps,wall_s,sps,mean_return_100,episodes,policy_loss,value_loss,"
                  "entropy,approx_kl,clip_fraction,explained_variance,learning_rate,version")

_DEFAULT_TARGETS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MountainCar-v0": -110.0,
                    "Pendulum-v1": -250.0}


def _metrics_dict(m):
    return {k: float(getattr(m, k)) if k not in ("epochs_run", "gradient_steps")
            else int(getattr(m, k)) for k, _ in ffi.typeof("relay_ppo_metrics").fields}


def _result_dict(r):
    return {
        "steps": int(r.steps), "episodes": int(r.episodes), "updates": int(r.updates),
        "version": int(r.version), "mean_return_100": float(r.mean_return_100),
        "target": float(r.target), "seconds": float(r.seconds),
        "steps_per_second": float(r.steps_per_second), "target_reached": bool(r.target_reached),
        "stop_reason": ffi.string(r.stop_reason).decode(),
        "out_dir": ffi.string(r.out_dir).decode(), "last_update": _metrics_dict(r.last),
    }


def read_metrics(out_dir):
    """Load a run directory's metrics.csv as a NumPy structured array (one row per update)."""
    path = os.path.join(out_dir, "metrics.csv")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    data = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="ascii")
    return np.atleast_1d(data)


def train(env="CartPole-v1", algo="ppo", *, progress=False, callback=None, **hyperparameters):
    """Train a policy; returns a dict of final metrics and writes the usual run directory.

    env: a built-in environment name ("CartPole-v1", ...) or plug-in .so path -- the whole loop
    then runs in C, exactly as `relay train` (keywords: the "train" keys actors,
    envs_per_actor, steps or total_timesteps, seed, target, out, sink, max_seconds, policy_lag,
    eval_every, eval_episodes, save_every; the hyperparameters of C_HP_KEYS (learning_rate,
    n_steps, net_arch, ...; a value not given keeps the zoo's); agent configuration keys such
    as routers) -- or a Python environment: a vectorised env
    (has num_envs), a single Gymnasium-style env, or a zero-argument factory of single envs
    (then n_envs copies are made).  Python envs take the PPO hyperparameters of PPO_KEYS and
    POLICY_KEYS, zoo="<env name>" to start from rl-baselines3-zoo values, steps, seed, target
    and out.

    callback(metrics_dict) is called after every update (Python envs) or about every 5 ms
    (C envs); returning False stops training.  Ctrl-C stops training, writes the run files and
    raises KeyboardInterrupt.  The returned dict holds steps, episodes, updates, version,
    mean_return_100, target, seconds, steps_per_second, target_reached, stop_reason, out_dir,
    last_update (losses) and metrics (metrics.csv as a structured array).
    """
    install_log_capture()
    if "total_timesteps" in hyperparameters:
        hyperparameters["steps"] = hyperparameters.pop("total_timesteps")
    if isinstance(env, (str, os.PathLike)) and builtin_def(os.fspath(env)) is not None:
        return _train_c(os.fspath(env), algo, progress, callback, hyperparameters)
    if isinstance(env, str):
        raise ERRORS[7](7, "train", "unknown environment \"%s\"" % env)
    return _train_python(env, algo, progress, callback, hyperparameters)


def _train_c(env, algo, progress, callback, hp):
    agent_keys = default_config()
    cfg = {"train": {"env": env, "algo": algo}}
    section = "reinforce" if algo == "reinforce" else "ppo"
    # the Python-env spellings of relay.train, translated to the C driver's keys
    aliases = {"lr_linear": ("lr_schedule", lambda v: "linear" if v else "constant"),
               "clip_linear": ("clip_range_schedule", lambda v: "linear" if v else "constant"),
               "shared": ("shared_net", bool),
               "net_arch": ("net_arch", lambda v: v if isinstance(v, str)
                            else ",".join(str(int(w)) for w in v))}
    for k, v in hp.items():
        if k in aliases:
            k, conv = aliases[k]
            v = conv(v)
        if k in TRAIN_KEYS:
            cfg["train"][k] = v
        elif k in C_HP_KEYS:
            cfg.setdefault(section, {})[k] = v
        elif k in agent_keys:
            cfg[k] = v
        else:
            raise TypeError("relay.train: %r is not a key of the built-in training driver "
                            "(train keys: %s; hyperparameters: %s; or an agent configuration "
                            "key)" % (k, ", ".join(TRAIN_KEYS), ", ".join(C_HP_KEYS)))
    state = {"exc": None}

    def onerror(exc_type, exc, tb):
        state["exc"] = exc
        return False

    def poll(now, user):
        if callback is not None and callback(_result_dict(now)) is False:
            return False
        return True

    cb = ffi.callback("relay_train_poll_fn", poll, onerror=onerror)
    res = ffi.new("relay_train_result *")
    clear_detail()
    err = lib.relay_train_run(json.dumps(cfg).encode(), bool(progress), cb, ffi.NULL, res)
    if state["exc"] is not None:
        raise state["exc"]
    check(err, "train")
    out = _result_dict(res)
    out["metrics"] = read_metrics(out["out_dir"])
    return out


def ppo_config(hp, zoo=None, algo="ppo", what="train"):
    """A relay_ppo_config from keyword hyperparameters (popped from hp; others raise TypeError).

    Starts from the rl-baselines3-zoo values of zoo (an env name) when it has some, else from
    SB3's defaults.  The network architecture is set, the spaces are not (policy.obs_dim 0).
    Returns (cfg, zoo or None when the zoo has no entry).
    """
    if algo not in ("ppo", "reinforce"):
        raise ERRORS[22](22, what, "algo must be \"ppo\" or \"reinforce\", not %r" % algo)
    cfg = ffi.new("relay_ppo_config *")
    lib.relay_ppo_config_default(cfg)
    if zoo and lib.relay_ppo_config_zoo(cfg, str(zoo).encode()) != 0:
        lib.relay_ppo_config_default(cfg)
        zoo = None
    cfg.algo = 1 if algo == "reinforce" else 0
    policy_hp = {k: hp.pop(k) for k in POLICY_KEYS if k in hp}
    if "norm_reward" in hp:  # the spelling of relay train's config
        hp["normalize_reward"] = hp.pop("norm_reward")
    for k in list(hp):
        if k not in PPO_KEYS or k == "n_envs":
            raise TypeError("%s: unknown hyperparameter %r (known: %s)"
                            % (what, k, ", ".join(PPO_KEYS[1:] + POLICY_KEYS)))
        setattr(cfg, k, hp.pop(k))
    if "net_arch" in policy_hp:
        arch = list(policy_hp.pop("net_arch"))
        if not 0 < len(arch) <= 4:
            raise ERRORS[22](22, what, "net_arch needs 1 to 4 hidden layers")
        cfg.policy.n_hidden = len(arch)
        for i, width in enumerate(arch):
            cfg.policy.hidden[i] = int(width)
    if "activation" in policy_hp:
        act = policy_hp.pop("activation")
        if act not in ("tanh", "relu"):
            raise ERRORS[22](22, what, "activation must be \"tanh\" or \"relu\"")
        cfg.policy.activation = 1 if act == "relu" else 0
    for k, v in policy_hp.items():
        setattr(cfg.policy, k, v)
    cfg.policy.obs_dim = 0
    return cfg, zoo


def apply_spaces(cfg, obs_space, act_space):
    """Fill cfg.policy's spaces from Python spaces, keeping its architecture."""
    arch = {k: getattr(cfg.policy, k) for k in ("n_hidden", "activation", "shared",
                                                  "log_std_init", "normalize_obs", "clip_obs")}
    hidden = [cfg.policy.hidden[i] for i in range(4)]
    so, sa = ffi.new("relay_space *"), ffi.new("relay_space *")
    fill_c_space(obs_space, so)
    fill_c_space(act_space, sa)
    clear_detail()
    check(lib.relay_policy_spec_from_spaces(ffi.addressof(cfg.policy), so, sa), "spaces")
    for k, v in arch.items():
        if k == "n_hidden" and not v:
            continue
        if k == "clip_obs" and v <= 0:
            continue
        setattr(cfg.policy, k, v)
    if arch["n_hidden"]:
        for i in range(4):
            cfg.policy.hidden[i] = hidden[i]


# ---- Python environments ----------------------------------------------------------------------


def _vectorise(env, n_envs):
    if hasattr(env, "num_envs"):
        return env
    if isinstance(env, type) or (callable(env) and not hasattr(env, "step")):
        return SyncVectorEnv([env() for _ in range(n_envs or 8)])
    if hasattr(env, "step") and hasattr(env, "reset"):
        return SyncVectorEnv([env])
    raise TypeError("env must be a built-in name, a Gymnasium-style env, a vectorised env or a "
                    "factory of envs")


def _final_obs(info, i):
    if not isinstance(info, dict):
        return None
    for key in ("final_observation", "final_obs"):
        fo = info.get(key)
        if fo is not None:
            row = fo[i]
            return None if row is None else np.asarray(row, np.float32).ravel()
    return None


def _svg(path, title, xs, ys):
    """A small line chart of ys against xs (learning_curve.svg)."""
    w, h, m = 640, 400, 50
    pts = ""
    if len(xs) >= 1:
        x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y0, y1 = min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1
        pts = " ".join("%.1f,%.1f" % (m + (x - x0) / (x1 - x0) * (w - 2 * m),
                                      h - m - (y - y0) / (y1 - y0) * (h - 2 * m))
                       for x, y in zip(xs, ys))
        labels = ('<text x="%d" y="%d" font-size="11">%.4g</text>'
                  '<text x="%d" y="%d" font-size="11">%.4g</text>'
                  '<text x="%d" y="%d" font-size="11">%.4g steps</text>'
                  % (4, h - m, y0, 4, m, y1, w - m - 60, h - m + 20, x1))
    else:
        labels = ""
    with open(path, "w") as f:
        f.write('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">'
                '<rect width="100%%" height="100%%" fill="white"/>'
                '<text x="%d" y="20" font-size="14">%s</text>'
                '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>'
                '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>%s'
                '<polyline fill="none" stroke="steelblue" stroke-width="2" points="%s"/></svg>\n'
                % (w, h, m, title.replace("&", "&amp;").replace("<", "&lt;"), m, h - m, w - m,
                   h - m, m, m, m, h - m, labels, pts))


def _train_python(env, algo, progress, callback, hp):
    hp = dict(hp)
    venv = _vectorise(env, hp.get("n_envs"))
    n = int(venv.num_envs)
    obs_space, act_space = env_spaces(venv)
    discrete = is_discrete(act_space)

    zoo = hp.pop("zoo", None) or getattr(getattr(env, "spec", None), "id", None)
    steps = hp.pop("steps", None)
    seed = int(hp.pop("seed", 0))
    target = hp.pop("target", None)
    out_dir = hp.pop("out", None)
    max_seconds = float(hp.pop("max_seconds", 0) or 0)
    if "n_envs" in hp and int(hp["n_envs"]) != n:
        raise ERRORS[22](22, "train", "n_envs=%s but the vectorised env has %d envs"
                         % (hp["n_envs"], n))
    hp.pop("n_envs", None)
    cfg, zoo = ppo_config(hp, zoo=zoo, algo=algo, what="relay.train")
    cfg.n_envs = n
    cfg.seed = seed
    if steps:
        cfg.total_timesteps = int(steps)
    apply_spaces(cfg, obs_space, act_space)
    if target is None:
        target = _DEFAULT_TARGETS.get(zoo, math.inf) if zoo else math.inf
    n_steps = int(cfg.n_steps)
    obs_dim = int(cfg.policy.obs_dim)
    act_dim = int(cfg.policy.act_dim)

    ppo_p = ffi.new("relay_ppo **")
    check(lib.relay_ppo_new(cfg, ppo_p), "train")
    ppo = ffi.gc(ppo_p[0], lib.relay_ppo_free)
    roll_p = ffi.new("relay_rollout **")
    check(lib.relay_rollout_new(ffi.addressof(cfg.policy), n, n_steps, roll_p), "train")
    roll = ffi.gc(roll_p[0], lib.relay_rollout_free)
    policy = lib.relay_ppo_policy(ppo)

    if out_dir is None:
        base = out_dir = "runs/%s-s%d-%d" % (zoo or type(env).__name__, seed, int(time.time()))
        k = 2
        while os.path.exists(out_dir):
            out_dir = "%s-%d" % (base, k)
            k += 1
    if os.path.exists(os.path.join(out_dir, "config.json")):  # as relay_train_run does
        raise ERRORS[8](8, "train", "run directory %s already holds a run; choose another out"
                        % out_dir)
    os.makedirs(out_dir, exist_ok=True)
    run_cfg = {"env": zoo or type(env).__name__, "algo": algo, "n_envs": n, "seed": seed,
               "target": target, "total_timesteps": int(cfg.total_timesteps),
               "ppo": {k: (getattr(cfg, k) if not isinstance(getattr(cfg, k), float)
                           else float(getattr(cfg, k))) for k in PPO_KEYS if k != "n_envs"},
               "policy": {"hidden": [int(cfg.policy.hidden[i])
                                     for i in range(cfg.policy.n_hidden)],
                          "activation": "relu" if cfg.policy.activation == 1 else "tanh",
                          "shared": bool(cfg.policy.shared),
                          "normalize_obs": bool(cfg.policy.normalize_obs)}}
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(run_cfg, f, indent=2, default=float)
    metrics_f = open(os.path.join(out_dir, "metrics.csv"), "w")
    metrics_f.write(METRICS_HEADER + "\n")

    # Per-step buffers, reused (nothing is allocated per step but what the env returns).
    actions = np.empty(n, np.int32) if discrete else np.empty((n, act_dim), np.float32)
    env_actions = None if discrete else np.empty((n, act_dim), np.float32)
    logp = np.empty(n, np.float32)
    values = np.empty(n, np.float32)
    final_values = np.zeros(n, np.float32)
    last_values = np.empty(n, np.float32)
    p_act = ffi.from_buffer(actions, require_writable=True)
    p_env = ffi.NULL if discrete else ffi.from_buffer("float[]", env_actions,
                                                      require_writable=True)
    p_logp = ffi.from_buffer("float[]", logp, require_writable=True)
    p_val = ffi.from_buffer("float[]", values, require_writable=True)
    p_fin = ffi.from_buffer("float[]", final_values, require_writable=True)
    p_last = ffi.from_buffer("float[]", last_values, require_writable=True)
    step_actions = actions if discrete else env_actions
    fin_row = np.empty((1, obs_dim), np.float32)
    p_fin_row = ffi.from_buffer("float[]", fin_row, require_writable=True)
    one_val = ffi.new("float[1]")
    metrics = ffi.new("relay_ppo_metrics *")

    obs, _ = venv.reset(seed=seed)
    obs = np.ascontiguousarray(obs, np.float32).reshape(n, obs_dim)
    ep_ret = np.zeros(n, np.float64)
    recent = []  # returns of finished episodes
    episodes = 0
    steps_done = 0
    updates = 0
    curve_x, curve_y = [], []
    t0 = time.perf_counter()
    why = "step budget spent"
    last_print = t0
    total = int(cfg.total_timesteps)
    mean100 = float("nan")
    try:
        while steps_done < total:
            lib.relay_rollout_clear(roll)
            for _ in range(n_steps):
                p_obs = ffi.from_buffer("float[]", obs)
                check(lib.relay_policy_act(policy, p_obs, n, ffi.NULL, False, p_act, p_env,
                                           p_logp, p_val), "policy_act")
                nobs, rew, term, trunc, info = venv.step(step_actions)
                nobs = np.ascontiguousarray(nobs, np.float32).reshape(n, obs_dim)
                rew = np.ascontiguousarray(rew, np.float32)
                term = np.ascontiguousarray(term, np.bool_)
                trunc = np.ascontiguousarray(trunc, np.bool_)
                ep_ret += rew
                done = term | trunc
                if trunc.any():
                    for i in np.flatnonzero(trunc & ~term):
                        fo = _final_obs(info, i)
                        fin_row[0] = fo if fo is not None else obs[i]
                        lib.relay_policy_value(policy, p_fin_row, 1, one_val)
                        final_values[i] = one_val[0]
                check(lib.relay_rollout_add(roll, p_obs, p_act, ffi.NULL, p_logp, p_val,
                                            ffi.from_buffer("float[]", rew),
                                            ffi.from_buffer("bool[]", term),
                                            ffi.from_buffer("bool[]", trunc), p_fin),
                      "rollout_add")
                if done.any():
                    for i in np.flatnonzero(done):
                        recent.append(float(ep_ret[i]))
                        ep_ret[i] = 0.0
                        final_values[i] = 0.0
                    episodes += int(done.sum())
                    if len(recent) > 100:
                        del recent[:-100]
                obs = nobs
            steps_done += n * n_steps
            lib.relay_policy_value(policy, ffi.from_buffer("float[]", obs), n, p_last)
            check(lib.relay_ppo_normalize_rewards(ppo, roll), "normalize_rewards")
            check(lib.relay_rollout_finish(roll, p_last, cfg.gamma, cfg.gae_lambda),
                  "rollout_finish")
            check(lib.relay_ppo_update(ppo, roll, metrics), "ppo_update")
            updates += 1
            wall = time.perf_counter() - t0
            mean100 = float(np.mean(recent)) if recent else float("nan")
            m = metrics
            metrics_f.write("%d,%d,%.6g,%.6g,%.6g,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%d\n" % (
                updates, steps_done, wall, steps_done / wall if wall > 0 else 0, mean100,
                episodes, m.policy_loss, m.value_loss, m.entropy, m.approx_kl, m.clip_fraction,
                m.explained_variance, m.learning_rate, updates))
            if recent:
                curve_x.append(steps_done)
                curve_y.append(mean100)
            if progress and time.perf_counter() - last_print >= 1.0:
                last_print = time.perf_counter()
                print("relay.train: %d/%d steps, mean return %.1f over %d episodes, %.0f steps/s"
                      % (steps_done, total, mean100, episodes, steps_done / wall),
                      flush=True)
            if episodes >= 100 and mean100 >= target:
                why = "target reached"
                break
            if callback is not None and callback({
                    "steps": steps_done, "episodes": episodes, "updates": updates,
                    "mean_return_100": mean100, "seconds": wall,
                    "last_update": _metrics_dict(metrics)}) is False:
                why = "interrupted"
                break
            if max_seconds and wall > max_seconds:
                why = "time limit"
                break
    except KeyboardInterrupt:
        why = "interrupted"
        raise
    finally:
        metrics_f.close()
        wall = time.perf_counter() - t0
        onnx = ffi.new("uint8_t **")
        ln = ffi.new("size_t *")
        if lib.relay_policy_export_onnx(policy, onnx, ln) == 0:
            with open(os.path.join(out_dir, "policy.onnx"), "wb") as f:
                f.write(ffi.buffer(onnx[0], ln[0]))
            lib.free(onnx[0])
        _svg(os.path.join(out_dir, "learning_curve.svg"),
             "%s %s: mean return of the last 100 episodes" % (run_cfg["env"], algo),
             curve_x, curve_y)
    return {
        "steps": steps_done, "episodes": episodes, "updates": updates, "version": updates,
        "mean_return_100": mean100, "target": float(target), "seconds": wall,
        "steps_per_second": steps_done / wall if wall > 0 else 0.0,
        "target_reached": episodes >= 100 and mean100 >= target, "stop_reason": why,
        "out_dir": out_dir, "last_update": _metrics_dict(metrics),
        "metrics": read_metrics(out_dir),
    }
