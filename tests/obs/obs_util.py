"""Helpers of the observability integration tests: start `relay train` with metrics on a free
loopback port, fetch URLs, wait for conditions, and stop every process we started by PID."""
import json
import os
import select
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


class DevTools:
    """A DevTools protocol client over the pipe pair (fd 3: commands in, fd 4: events out)."""

    def __init__(self, to_browser, from_browser):
        self.w, self.r = to_browser, from_browser
        self.next_id = 0
        self.buf = b""

    def call(self, method, params=None, session=None, timeout=20):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                m = json.loads(raw)
                if m.get("id") == self.next_id:
                    if "error" in m:
                        raise AssertionError(f"{method}: {m['error']}")
                    return m["result"]
            ready, _, _ = select.select([self.r], [], [], max(0.0, deadline - time.monotonic()))
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise AssertionError("chromium closed the DevTools pipe")
                self.buf += chunk
        raise AssertionError(f"no answer to {method} within {timeout} s")


def start_chromium(procs, chromium, size="1280,1000"):
    """Starts headless Chromium driven over --remote-debugging-pipe; returns its DevTools."""
    cmd_r, cmd_w = os.pipe()  # we write commands, chromium reads fd 3
    ev_r, ev_w = os.pipe()    # chromium writes fd 4, we read
    profile = os.path.join(procs.tmp, "profile")
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--remote-debugging-pipe", f"--window-size={size}", "about:blank"]
    clog = open(os.path.join(procs.tmp, "chromium.log"), "w")

    def child_fds():  # runs before close_fds: fds 3 and 4 are in pass_fds so they survive
        a, b = os.dup(cmd_r), os.dup(ev_w)
        os.dup2(a, 3)
        os.dup2(b, 4)

    procs.start(argv, stdout=clog, stderr=clog, pass_fds=(3, 4), preexec_fn=child_fds)
    os.close(cmd_r)
    os.close(ev_w)
    return DevTools(cmd_w, ev_r)
