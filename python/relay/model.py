"""relay.Model (a model bundle: ONNX bytes + spaces) and relay.load_policy (inference)."""
import os

import numpy as np

from ._ffi import ffi, lib
from .errors import check, clear_detail


class Model:
    """A policy model bundle (relay_bundle): from ONNX bytes, an .onnx file or a bundle dir.

    The spaces come from the bundle's metadata.json or, for bare ONNX, are inferred (discrete
    actions when the output is a softmax).  Immutable; safe to share between threads.
    """

    def __init__(self, source, env=None):
        out = ffi.new("relay_bundle **")
        clear_detail()
        if env is not None and isinstance(source, (str, os.PathLike)) and \
                os.path.isfile(source):
            with open(source, "rb") as f:
                source = f.read()
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
            keep = []
            meta = _meta_for(env, keep) if env is not None else ffi.NULL
            check(lib.relay_bundle_new(data, len(data), meta, out), "Model(onnx bytes)")
        elif isinstance(source, (str, os.PathLike)):
            check(lib.relay_bundle_load(os.fsencode(source), out), "Model(%s)" % (source,))
        else:
            raise TypeError("a model is ONNX bytes or a path, not %s" % type(source).__name__)
        self._b = ffi.gc(out[0], lib.relay_bundle_free)
        meta = lib.relay_bundle_meta(self._b)
        m = lib.relay_bundle_model(self._b)
        self.in_dim = lib.relay_model_in_dim(m)
        self.out_dim = lib.relay_model_out_dim(m)
        self.version = int(meta.version)
        self.discrete = bool(meta.act.discrete)
        self.n_actions = int(meta.act.n) if self.discrete else 0
        self.softmax = bool(lib.relay_model_output_is_softmax(m))

    def save(self, directory):
        """Write model.onnx and metadata.json into directory."""
        clear_detail()
        check(lib.relay_bundle_save(self._b, os.fsencode(directory)), "Model.save")

    def forward(self, obs):
        """Run the network: obs [batch x in_dim] -> float32 [batch x out_dim] (raw outputs).

        Uses the model's own workspace: one thread at a time per Model.
        """
        obs = np.ascontiguousarray(obs, dtype=np.float32)
        batch = obs.size // self.in_dim if self.in_dim else 0
        if batch * self.in_dim != obs.size or batch == 0:
            from .errors import ERRORS
            raise ERRORS[20](20, "forward", "obs has %d floats, not a multiple of %d"
                             % (obs.size, self.in_dim))
        out = np.empty((batch, self.out_dim), dtype=np.float32)
        clear_detail()
        check(lib.relay_model_forward(lib.relay_bundle_model(self._b),
                                      ffi.from_buffer("float[]", obs), batch,
                                      ffi.from_buffer("float[]", out, require_writable=True)),
              "forward")
        return out


def _space_desc(space, d, keep):
    from .envs import is_discrete
    if is_discrete(space):
        d.discrete = True
        d.n = int(space.n)
        d.dtype = 3  # RELAY_I32
        d.rank = 0
        return
    shape = tuple(space.shape) or (1,)
    d.discrete = False
    d.dtype = 1  # RELAY_F32
    d.rank = len(shape)
    for i, k in enumerate(shape):
        d.shape[i] = int(k)
    low = getattr(space, "low", None)
    if low is not None:
        lo = np.ascontiguousarray(np.broadcast_to(low, shape), np.float32).ravel()
        hi = np.ascontiguousarray(np.broadcast_to(space.high, shape), np.float32).ravel()
        if np.isfinite(lo).all() and np.isfinite(hi).all():
            keep.extend([lo, hi])
            d.n_bounds = lo.size
            d.low = ffi.cast("float *", ffi.from_buffer(lo))
            d.high = ffi.cast("float *", ffi.from_buffer(hi))


def _meta_for(env, keep):
    """A relay_model_meta describing env's spaces (env: a name or a Gymnasium-style env)."""
    from .envs import env_spaces
    obs, act = env_spaces(env)
    meta = ffi.new("relay_model_meta *")
    keep.append(meta)
    _space_desc(obs, meta.obs, keep)
    _space_desc(act, meta.act, keep)
    return meta


_ACTS = {None: 0, "none": 0, "relu": 1, "tanh": 2, "sigmoid": 3, "softmax": 4}


def mlp_to_onnx(weights, biases=None, activations=None):
    """Serialise a dense MLP as ONNX bytes (opset 17) that relay.Model loads.

    weights[i] is [out x in] (PyTorch nn.Linear layout), biases[i] [out] (None: zero), and
    activations[i] one of None, "relu", "tanh", "sigmoid", "softmax" after layer i.
    """
    ws = [np.ascontiguousarray(w, np.float32) for w in weights]
    if not ws or any(w.ndim != 2 for w in ws):
        raise ValueError("weights must be a non-empty list of 2-d arrays [out x in]")
    sizes = [ws[0].shape[1]] + [w.shape[0] for w in ws]
    for i, w in enumerate(ws):
        if w.shape[1] != sizes[i]:
            raise ValueError("layer %d takes %d inputs, the previous layer gives %d"
                             % (i, w.shape[1], sizes[i]))
    bs = [None if biases is None or biases[i] is None else
          np.ascontiguousarray(biases[i], np.float32) for i in range(len(ws))]
    for i, b in enumerate(bs):
        if b is not None and b.shape != (sizes[i + 1],):
            raise ValueError("bias %d must have %d entries" % (i, sizes[i + 1]))
    acts = list(activations) if activations is not None else [None] * len(ws)
    if len(acts) != len(ws) or any(a not in _ACTS for a in acts):
        raise ValueError("activations: one of None, relu, tanh, sigmoid, softmax per layer")
    d = ffi.new("relay_mlp_desc *")
    c_sizes = ffi.new("uint32_t[]", sizes)
    c_acts = ffi.new("relay_activation[]", [_ACTS[a] for a in acts])
    c_w = ffi.new("float *[]", [ffi.cast("float *", ffi.from_buffer(w)) for w in ws])
    c_b = ffi.new("float *[]", [ffi.NULL if b is None else ffi.cast("float *", ffi.from_buffer(b))
                                for b in bs])
    d.n_layers = len(ws)
    d.sizes, d.activations, d.weights, d.biases = c_sizes, c_acts, c_w, c_b
    out, ln = ffi.new("uint8_t **"), ffi.new("size_t *")
    clear_detail()
    check(lib.relay_mlp_to_onnx(d, out, ln), "mlp_to_onnx")
    try:
        return bytes(ffi.buffer(out[0], ln[0]))
    finally:
        lib.free(out[0])


def as_model(model, env=None):
    """Return model as a relay.Model (bytes and paths are loaded, with env's spaces if given)."""
    return model if isinstance(model, Model) else Model(model, env=env)


class Policy:
    """A loaded policy: policy(obs) -> actions (see load_policy)."""

    def __init__(self, model, discrete, low=None, high=None):
        self.model = model
        self.discrete = discrete
        self.low = None if low is None else np.asarray(low, np.float32)
        self.high = None if high is None else np.asarray(high, np.float32)
        self._lock = __import__("threading").Lock()

    def __call__(self, obs):
        """Map observations [batch x obs_dim] (or one [obs_dim]) to actions.

        Discrete: int64 argmax of the logits/probabilities; continuous: the mean action,
        clipped to the bounds when they are known.  A single observation gives one action.
        """
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.ndim == 1
        with self._lock:
            out = self.model.forward(obs.reshape(1, -1) if single else obs)
        if self.discrete:
            act = out.argmax(axis=1)
        else:
            act = out[:, : out.shape[1] // 2] if self.low is not None and \
                out.shape[1] == 2 * self.low.size else out
            if self.low is not None:
                act = np.clip(act, self.low, self.high)
        return act[0] if single else act


def load_policy(path, env=None, discrete=None):
    """Load a policy (.onnx file or bundle directory) for inference from Python.

    Whether actions are discrete is taken from discrete if given, else from env's action space
    (a name such as "CartPole-v1", or an object with Gymnasium-style action_space), else from
    the bundle (metadata.json, or a softmax output).  Returns a callable policy(obs) -> actions.
    """
    m = Model(path)
    low = high = None
    if discrete is None and env is not None:
        from .envs import env_spaces
        _, act = env_spaces(env)
        discrete = act.discrete
        if not discrete:
            low, high = act.low, act.high
    if discrete is None:
        discrete = m.discrete
    return Policy(m, bool(discrete), low, high)
