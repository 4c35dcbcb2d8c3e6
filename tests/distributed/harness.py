"""Process and accounting harness shared by the distributed tests (nats_test.py, zmq_test.py).

Importing it creates the test's temporary directory (TMP) and starts its clock; run() calls one
scenario, stops every process started through start() by PID (SIGTERM, then SIGKILL after 10 s),
prints the processes' logs on failure, removes TMP and exits 0 or 1. Nothing here contacts an
address outside 127.0.0.1.
"""
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SANITIZED = bool(os.environ.get("RELAY_SANITIZED"))
TARGET = "120" if SANITIZED else "475"
# updates before a fault is injected (sanitized builds reach their lower target sooner)
KILL_AT = 12 if SANITIZED else 50
T0 = time.monotonic()
DEADLINE = T0 + (600 if SANITIZED else 240)
TMP = tempfile.mkdtemp(prefix="relay-dist-")

procs = []  # every process started, stopped at exit


def log(*a):
    print("[%6.1f]" % (time.monotonic() - T0), *a, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_pair():
    """A port P with P and P+1 both free (e.g. a ROUTER and a PUB socket)."""
    for _ in range(50):
        p = free_port()
        if p >= 65534:
            continue
        try:
            with socket.socket() as s2:
                s2.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise AssertionError("no free port pair")


def start(args, name, env=None):
    """Starts args with output in TMP/name.log; the process is stopped at exit."""
    f = open(os.path.join(TMP, name + ".log"), "ab")
    e = dict(os.environ)
    e.update(env or {})
    if "TSAN_OPTIONS" in e:  # libzmq is not instrumented: see zmq.tsan.supp
        e["TSAN_OPTIONS"] += " suppressions=" + os.path.join(HERE, "zmq.tsan.supp")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=e, cwd=TMP)
    p.name = name
    procs.append(p)
    return p


def read_log(name):
    try:
        with open(os.path.join(TMP, name + ".log"), "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def stop_all():
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.send_signal(signal.SIGCONT)  # a paused (SIGSTOP) process takes it once continued
    t = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(max(0.1, t - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_for(pred, what, timeout):
    end = min(time.monotonic() + timeout, DEADLINE)
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def wait_exit(p, timeout):
    try:
        return p.wait(max(1, min(timeout, DEADLINE - time.monotonic())))
    except subprocess.TimeoutExpired:
        raise AssertionError("%s did not exit in time" % p.name)


def wait_listen(port, what, timeout=20):
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            return False

    wait_for(up, what, timeout)


def updates(out):
    """Learner updates written to out/metrics.csv so far."""
    try:
        with open(os.path.join(out, "metrics.csv")) as f:
            return max(0, sum(1 for _ in f) - 1)
    except FileNotFoundError:
        return 0


def check_ledgers(out, n_actor_procs, expect_learned=True):
    """Every id an actor process saw acked (TMP/ackedI.csv) is in out/ledger.csv exactly once
    (learned, stale, discarded or unused); no id is learned twice. Returns (fates, acked)."""
    fates = collections.Counter()
    seen = {}
    dup_lines = 0
    with open(os.path.join(out, "ledger.csv")) as f:
        for line in f:
            tid, seq, fate, rows = line.strip().split(",")
            fates[fate] += 1
            if fate in ("duplicate", "rejected"):
                continue
            if tid in seen:
                dup_lines += 1
                log("id recorded twice:", tid, seen[tid], fate)
            seen[tid] = fate
    acked = missing = 0
    for i in range(n_actor_procs):
        path = os.path.join(TMP, "acked%d.csv" % i)
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                bid, count = line.strip().split(",")
                for k in range(int(count)):
                    acked += 1
                    if "%s:%d" % (bid, k) not in seen:
                        missing += 1
    log("ledger:", dict(fates), "acked ids:", acked, "missing:", missing, "recorded twice:",
        dup_lines)
    assert dup_lines == 0, "a trajectory id was recorded (learned) twice"
    assert missing == 0, "%d acknowledged trajectories are not accounted for" % missing
    if expect_learned:
        assert fates["learned"] > 0
    return fates, acked


def run(scenarios, name):
    """Runs scenarios["scenario_" + name], cleans up, and exits with the result."""
    ok = False
    try:
        fn = scenarios.get("scenario_" + name)
        if fn is None:
            raise AssertionError("unknown scenario " + name)
        fn()
        ok = True
        log("PASS", name)
    finally:
        stop_all()
        if not ok:
            for n in sorted(os.listdir(TMP)):
                if n.endswith(".log"):
                    print("==== %s ====" % n)
                    print(read_log(n[:-4])[-4000:])
        shutil.rmtree(TMP, ignore_errors=True)
    sys.exit(0 if ok else 1)
