"""Helpers of the observability integration tests: start `relay train` with metrics on a free
loopback port, fetch URLs, wait for conditions, and stop every process we started by PID."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    """Returns a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url, timeout=5):
    """GETs url and returns the body as text."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")


def wait_for(cond, timeout, what, interval=0.1):
    """Polls cond() until it returns a true value (returned) or raises after timeout seconds."""
    deadline = time.monotonic() + timeout
    last_err = None
    while time.monotonic() < deadline:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_err = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_err})")


class Procs:
    """Processes started by a test; stop_all() kills them by PID (TERM, then KILL)."""

    def __init__(self):
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="relay-obs-")

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, **kw)
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:  # show what the processes said before their logs are removed
            for name in sorted(os.listdir(self.tmp)):
                if name.endswith(".log"):
                    with open(os.path.join(self.tmp, name), errors="replace") as f:
                        print(f"---- {name} (last 3000 bytes)\n{f.read()[-3000:]}")
        self.stop_all()


def start_train(procs, relay, extra, seconds):
    """Starts `relay train` with metrics on 127.0.0.1:0; returns (proc, base_url, run_dir, log)."""
    run = os.path.join(procs.tmp, "run")
    log_path = os.path.join(procs.tmp, "train.log")
    log = open(log_path, "w")
    argv = [relay, "train", "--out", run, "--metrics-addr", "127.0.0.1:0", "--target", "100000", "--steps", "1000000000",
            "--max-seconds", str(seconds)] + extra
    p = procs.start(argv, stdout=log, stderr=subprocess.STDOUT)
    url_file = os.path.join(run, "metrics_url")

    def ready():
        if p.poll() is not None:
            raise AssertionError(f"relay train exited early ({p.returncode}): {open(log_path).read()}")
        if os.path.exists(url_file):
            u = open(url_file).read().strip()
            return u if u.startswith("http://127.0.0.1:") else None
        return None

    url = wait_for(ready, 20, "relay train to publish its metrics URL")
    return p, url, run, log_path


def parse_metrics(text):
    """Parses Prometheus text into {series (name plus labels): float}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        out[key] = float(val)
    return out
