#!/usr/bin/python3
"""Central inference end to end: `relay actors --remote-inference` against `relay server`.

usage: infer_test.py RELAY_BIN SCENARIO
SCENARIO: zmq_train | nats_train | zmq_kill

zmq_train / nats_train: a server and 2 actor processes that ask the server for every action
learn CartPole (target return reached) and the server reports the requests it batched.
zmq_kill: the server is killed (SIGKILL) while actors wait on it; the actors' requests end with a
clear error (RELAY_ETIMEDOUT / RELAY_ECLOSED) within their timeout instead of hanging.
Everything runs on 127.0.0.1 in a temporary directory; every process started here is stopped by
PID, also on failure.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

RELAY, SCENARIO = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
SANITIZED = bool(os.environ.get("RELAY_SANITIZED"))
TARGET = "120" if SANITIZED else "475"
NATS = shutil.which("nats-server") or "/usr/bin/nats-server"
T0 = time.monotonic()
procs = []


def log(*a):
    print("[%6.1f]" % (time.monotonic() - T0), *a, flush=True)


def free_ports(k):
    """A port P with P .. P+k-1 free on 127.0.0.1."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + k > 65535:
            continue
        try:
            socks = []
            for i in range(1, k):
                s2 = socket.socket()
                socks.append(s2)
                s2.bind(("127.0.0.1", p + i))
            for s2 in socks:
                s2.close()
            return p
        except OSError:
            for s2 in socks:
                s2.close()
    raise AssertionError("no free ports")


def start(args, name):
    f = open(os.path.join(TMP, name + ".log"), "ab")
    e = dict(os.environ)
    if "TSAN_OPTIONS" in e:
        e["TSAN_OPTIONS"] += " suppressions=" + os.path.join(HERE, "zmq.tsan.supp")
    p = subprocess.Popen(args, stdout=f, stderr=subprocess.STDOUT, env=e)
    procs.append(p)
    return p


def text(name):
    with open(os.path.join(TMP, name + ".log"), errors="replace") as f:
        return f.read()


def wait(p, secs, what):
    try:
        return p.wait(timeout=secs)
    except subprocess.TimeoutExpired:
        raise AssertionError(what + " did not end within %d s" % secs)


def train(url, server_extra):
    out = os.path.join(TMP, "run")
    srv = start([RELAY, "server"] + url + ["--out", out, "--target", TARGET, "--steps", "400000",
                 "--infer-batch", "256", "--infer-wait-us", "200", "--quiet"] + server_extra,
                "server")
    time.sleep(0.5)
    acts = [start([RELAY, "actors"] + url + ["--actors", "4", "--envs-per-actor", "8",
                   "--remote-inference", "--infer-timeout-ms", "5000", "--seed", str(11 + i),
                   "--quiet"], "actors%d" % i) for i in range(2)]
    rc = wait(srv, 200, "relay server")
    for i, a in enumerate(acts):
        wait(a, 60, "relay actors %d" % i)
    s = text("server")
    log(s.strip().splitlines()[-2:])
    assert rc == 0 and "target reached" in s, "the server did not learn CartPole:\n" + s
    m = re.search(r"central inference: (\d+) requests, (\d+) actions in (\d+) batches", s)
    assert m and int(m.group(2)) > 10000, "the server served no central inference:\n" + s
    for i in range(2):
        t = text("actors%d" % i)
        assert "central inference: 0 requests failed" in t, t


def zmq_kill():
    port = free_ports(3)
    url = ["--zmq", "tcp://127.0.0.1:%d" % port]
    srv = start([RELAY, "server"] + url + ["--out", os.path.join(TMP, "run"), "--steps",
                 "10000000", "--quiet"], "server")
    time.sleep(0.5)
    # a per-version quota the actors never use up: they are still asking for actions when the
    # server dies (with the zoo's quota a slow, e.g. sanitized, server leaves them paused until
    # its next version, which never comes, so no request is made and nothing can fail)
    act = start([RELAY, "actors"] + url + ["--actors", "4", "--envs-per-actor", "4",
                 "--remote-inference", "--infer-timeout-ms", "1000", "--n-steps", "1000000",
                 "--quiet"], "actors")
    # actors acting through the server: the server has learned from their trajectories
    metrics = os.path.join(TMP, "run", "metrics.csv")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if os.path.exists(metrics) and len(open(metrics).read().splitlines()) >= 3:
            break
        time.sleep(0.2)
    assert act.poll() is None, "relay actors ended early:\n" + text("actors")
    srv.send_signal(signal.SIGKILL)
    wait(srv, 10, "killed server")
    log("server killed")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not re.search(r"central inference: no (reply|inference)",
                                                        text("actors")):
        time.sleep(0.2)
    t = text("actors")
    assert re.search(r"central inference: (no reply from the server in time|no inference server "
                     r"reachable) .*RELAY_E(TIMEDOUT|CLOSED)", t), "no clear error:\n" + t
    log("actors reported:", [l for l in t.splitlines() if "central inference" in l][:1])
    act.send_signal(signal.SIGTERM)
    wait(act, 30, "relay actors after SIGTERM")


TMP = tempfile.mkdtemp(prefix="relay-infer-")
ok = False
try:
    if SCENARIO == "zmq_train":
        train(["--zmq", "tcp://127.0.0.1:%d" % free_ports(3)], [])
    elif SCENARIO == "nats_train":
        port = free_ports(1)
        nats = start([NATS, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd",
                      os.path.join(TMP, "js")], "nats")
        time.sleep(0.5)
        train(["--nats", "nats://127.0.0.1:%d" % port], [])
    elif SCENARIO == "zmq_kill":
        zmq_kill()
    else:
        raise SystemExit("unknown scenario " + SCENARIO)
    ok = True
finally:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if ok:
        shutil.rmtree(TMP, ignore_errors=True)
    else:
        print("logs kept in", TMP)
        for n in sorted(os.listdir(TMP)):
            if n.endswith(".log"):
                print("----", n)
                print(text(n[:-4])[-3000:])
log("PASS" if ok else "FAIL")
