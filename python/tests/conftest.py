"""pytest set-up: import relay from this source tree (python/) unless RELAY_PY_INSTALLED is set,
skip everything under the sanitizer configurations, and share a trained CartPole model."""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if not os.environ.get("RELAY_PY_INSTALLED"):
    sys.path.insert(0, os.path.dirname(HERE))

# `make test-asan` / `make test-tsan` set RELAY_SANITIZED: librelay.so is then instrumented and
# needs its sanitizer runtime loaded before Python starts (LD_PRELOAD of libasan/libtsan into the
# interpreter, which then reports CPython's own allocations), so these tests run in the release
# configuration only.
# With nothing collected pytest exits with status 5, which CTest reports as skipped.
SANITIZED = bool(os.environ.get("RELAY_SANITIZED"))
if SANITIZED:
    collect_ignore_glob = ["test_*.py"]
    sys.stderr.write("relay python tests: skipped under RELAY_SANITIZED (release build only)\n")


@pytest.fixture(scope="session")
def cartpole_model(tmp_path_factory):
    """Path of a CartPole-v1 policy.onnx from a short relay.train run (weak but valid)."""
    import relay
    out = tmp_path_factory.mktemp("model") / "run"
    res = relay.train("CartPole-v1", steps=4096, seed=1, out=str(out), target=1e9)
    assert res["stop_reason"] == "step budget spent"
    return str(out / "policy.onnx")
