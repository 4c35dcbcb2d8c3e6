"""`pip install ./python` works offline (Debian's setuptools, no build isolation, no index) and
the installed package carries its own librelay.so."""
import os
import subprocess
import sys

import pytest

PKG = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


@pytest.mark.heavy
def test_pip_install_offline(tmp_path):
    target = tmp_path / "site"
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                        "--no-build-isolation", "--no-index", "--target", str(target), PKG],
                       capture_output=True, text=True, env=env, timeout=240)
    if r.returncode != 0 and "No module named pip" in r.stderr:
        pytest.skip("pip is not installed")
    assert r.returncode == 0, r.stderr
    assert (target / "relay" / "_lib" / "librelay.so").exists()
    env.pop("RELAY_LIB", None)
    env["PYTHONPATH"] = str(target)
    code = ("import relay, numpy as np; print(relay.LIB_PATH); "
            "print(relay.evaluate(lambda o: np.zeros(len(o), int), 'CartPole-v1', episodes=2)"
            "['episodes'])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=str(tmp_path), timeout=60)
    assert r.returncode == 0, r.stderr
    lib_path, episodes = r.stdout.split()
    assert lib_path.startswith(str(target)) and episodes == "2"
