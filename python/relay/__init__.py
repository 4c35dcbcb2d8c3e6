"""Relay from Python: agents, actors and NumPy request_action; training on built-in C or Python
environments; policy inference.  A cffi (ABI mode) binding of librelay.so; see docs/PYTHON.md.

    import relay
    with relay.Agent({"routers": 2}) as agent:
        ids = agent.new_actors(64, model="runs/latest/policy.onnx", env="CartPole-v1")
        actions = agent.request_action(ids, obs)        # obs: float32 [64 x 4]
    result = relay.train("CartPole-v1")                 # the whole loop in C, like `relay train`
    policy = relay.load_policy(result["out_dir"] + "/policy.onnx", env="CartPole-v1")
    relay.evaluate(policy, "CartPole-v1", episodes=100)  # {"mean_return": ..., ...}
"""
from ._ffi import LIB_PATH, ffi, lib
from .agent import Agent, Learner, Trajectory, as_ids, default_config, format_id
from .envs import Box, Discrete, SyncVectorEnv, VecEnv, builtin_envs, env_spaces, make
from .evaluate import evaluate
from .errors import *  # noqa: F401,F403  (Error and one subclass per relay_err)
from .errors import ERRORS, Error
from .model import Model, Policy, load_policy, mlp_to_onnx
from .torch_export import export_torch_mlp
from .train import read_metrics, train

__version__ = "0.1.0"


def set_log_level(level):
    """Set librelay's log level: "debug", "info", "warn", "error" or "off"."""
    v = lib.relay_log_level_parse(level.encode())
    if v < 0:
        raise ValueError("log level must be debug, info, warn, error or off")
    lib.relay_log_set_level(v)
