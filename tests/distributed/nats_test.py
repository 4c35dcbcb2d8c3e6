#!/usr/bin/python3
"""Distributed training over NATS JetStream, end to end, with faults.

usage: nats_test.py RELAY_BIN INJECT_BIN SCENARIO
SCENARIO: train | kill_server | kill_nats | kill_actor | auth | key | hostile | cluster | node

Each scenario starts its own nats-server (JetStream, file store in a temporary directory) on a
free 127.0.0.1 port, a `relay server` and `relay actors` processes, bounds its time, and stops
everything it started by PID, also on failure. Accounting is checked from the ledgers: every
trajectory id an actor process saw acknowledged appears in the server's ledger.csv exactly once
(learned, stale, discarded or unused), and no id is learned twice.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

from harness import *  # noqa: F401,F403 (processes, ports, ledgers)

RELAY, INJECT, SCENARIO = sys.argv[1], sys.argv[2], sys.argv[3]

NATS = shutil.which("nats-server") or "/usr/bin/nats-server"


class Nats:
    def __init__(self, port, store, extra=(), name="nats", conf=None):
        self.port, self.store, self.extra, self.name, self.conf = port, store, list(extra), name, conf
        self.url = "nats://127.0.0.1:%d" % port
        self.start()

    def start(self):
        if self.conf:
            args = [NATS, "-c", self.conf]
        else:
            args = [NATS, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.store]
        self.p = start(args + self.extra, self.name)
        wait_listen(self.port, "nats-server to listen")

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()


def server_args(nats, out, *extra):
    # the target ends the run; the step budget (4x the zoo's) only stops a run that learns badly
    return [RELAY, "server", "--nats", nats.url, "--run", "t", "--out", out, "--target", TARGET,
            "--steps", "400000", "--quiet"] + list(extra)


def actor_args(nats, i, *extra):
    return [RELAY, "actors", "--nats", nats.url, "--run", "t", "--quiet", "--seed", str(100 + i),
            "--ledger", os.path.join(TMP, "acked%d.csv" % i), "--wait", "120"] + list(extra)


def run_training(nats, out, n_actors=2, server_extra=(), actor_extra=(), env=None):
    srv = start(server_args(nats, out, *server_extra), "server", env)
    acts = [start(actor_args(nats, i, *actor_extra), "actors%d" % i, env) for i in range(n_actors)]
    return srv, acts


def scenario_train():
    nats = Nats(free_port(), os.path.join(TMP, "store"))
    out = os.path.join(TMP, "run")
    srv, acts = run_training(nats, out)
    rc = wait_exit(srv, 200)
    assert rc == 0, "server exit %d:\n%s" % (rc, read_log("server"))
    for a in acts:
        assert wait_exit(a, 30) == 0, read_log(a.name)
    for f in ("config.json", "metrics.csv", "learning_curve.svg", "policy.onnx", "ledger.csv",
              "checkpoint.bin"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    assert "target reached" in read_log("server")
    fates, acked = check_ledgers(out, 2)
    for i in range(2):
        assert "0 dropped, 0 unacknowledged" in read_log("actors%d" % i), read_log("actors%d" % i)


def scenario_kill_server():
    nats = Nats(free_port(), os.path.join(TMP, "store"))
    out = os.path.join(TMP, "run")
    srv, acts = run_training(nats, out, server_extra=("--checkpoint-every", "2"))
    wait_for(lambda: updates(out) >= KILL_AT + 10 or srv.poll() is not None, "a few updates", 120)
    assert srv.poll() is None, "server ended before it could be killed:\n" + read_log("server")
    srv.send_signal(signal.SIGKILL)
    srv.wait()
    log("server killed after", updates(out), "updates")
    time.sleep(1.0)
    srv2 = start(server_args(nats, out, "--checkpoint-every", "2"), "server2")
    rc = wait_exit(srv2, 200)
    assert rc == 0, "restarted server exit %d:\n%s" % (rc, read_log("server2"))
    assert "resumed from" in read_log("server2"), read_log("server2")
    for a in acts:
        assert wait_exit(a, 30) == 0, read_log(a.name)
    check_ledgers(out, 2)


def scenario_kill_nats():
    nats = Nats(free_port(), os.path.join(TMP, "store"))
    out = os.path.join(TMP, "run")
    srv, acts = run_training(nats, out)
    wait_for(lambda: updates(out) >= KILL_AT or srv.poll() is not None, "a few updates", 120)
    assert srv.poll() is None, "server ended before nats could be killed"
    nats.kill()
    log("nats-server killed after", updates(out), "updates")
    time.sleep(1.5)
    nats.start()
    log("nats-server restarted")
    rc = wait_exit(srv, 200)
    assert rc == 0, "server exit %d:\n%s" % (rc, read_log("server"))
    for a in acts:
        assert wait_exit(a, 40) == 0, read_log(a.name)
        assert "0 dropped, 0 unacknowledged" in read_log(a.name), read_log(a.name)
    check_ledgers(out, 2)


def scenario_kill_actor():
    nats = Nats(free_port(), os.path.join(TMP, "store"))
    out = os.path.join(TMP, "run")
    srv, acts = run_training(nats, out)
    wait_for(lambda: updates(out) >= KILL_AT or srv.poll() is not None, "a few updates", 120)
    acts[0].send_signal(signal.SIGKILL)
    acts[0].wait()
    log("actor process 0 killed after", updates(out), "updates")
    rc = wait_exit(srv, 200)
    assert rc == 0, "server exit %d:\n%s" % (rc, read_log("server"))
    assert wait_exit(acts[1], 30) == 0, read_log("actors1")
    check_ledgers(out, 2)


def scenario_auth():
    conf = os.path.join(TMP, "nats.conf")
    with open(conf, "w") as f:
        f.write('authorization { user: "relay", password: "s3cret" }\n')
    nats = Nats(free_port(), os.path.join(TMP, "store"), ["-c", conf])
    wrong = {"RELAY_NATS_USER": "relay", "RELAY_NATS_PASSWORD": "wrong"}
    a = start(actor_args(nats, 0), "bad_actor", wrong)
    assert wait_exit(a, 30) == 4, read_log("bad_actor")
    assert "authorization failed" in read_log("bad_actor"), read_log("bad_actor")
    s = start(server_args(nats, os.path.join(TMP, "bad")), "bad_server", wrong)
    assert wait_exit(s, 30) != 0
    assert "authorization failed" in read_log("bad_server"), read_log("bad_server")
    assert not os.path.exists(os.path.join(TMP, "acked0.csv")) or \
        os.path.getsize(os.path.join(TMP, "acked0.csv")) == 0
    # the right credentials, from a config file (never the command line)
    cfg = os.path.join(TMP, "relay.json")
    with open(cfg, "w") as f:
        f.write('{"transport": {"user": "relay", "password": "s3cret"}}\n')
    out = os.path.join(TMP, "run")
    srv, acts = run_training(nats, out, n_actors=1, server_extra=("--config", cfg),
                             actor_extra=("--config", cfg))
    assert wait_exit(srv, 200) == 0, read_log("server")
    check_ledgers(out, 1)


def make_tls_files():
    """A throw-away CA and a server certificate for 127.0.0.1 signed by it (openssl)."""
    def ossl(*args):
        r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, timeout=60,
                           cwd=TMP)
        assert r.returncode == 0, "openssl %s: %s" % (args[0], r.stderr)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=relay test CA",
         "-keyout", "ca.key", "-out", "ca.pem")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "srv.key",
         "-out", "srv.csr")
    with open(os.path.join(TMP, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-extfile", "san.ext", "-out", "srv.pem")
    # a second CA that did not sign the server: a client trusting only it must refuse
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=other CA",
         "-keyout", "other.key", "-out", "other.pem")
    return [os.path.join(TMP, n) for n in ("ca.pem", "srv.pem", "srv.key", "other.pem")]


def scenario_tls():
    """TLS to nats-server: a CA-verified connection trains; an untrusted CA and a plain-text
    client are refused with a clear error and publish nothing."""
    ca, cert, key, other = make_tls_files()
    nats = Nats(free_port(), os.path.join(TMP, "store"),
                ["--tls", "--tlscert", cert, "--tlskey", key])
    bad = os.path.join(TMP, "untrusted.json")
    with open(bad, "w") as f:
        f.write('{"transport": {"tls": true, "ca_file": "%s"}}\n' % other)
    a = start(actor_args(nats, 0, "--config", bad), "untrusted_actor")
    assert wait_exit(a, 30) == 4, read_log("untrusted_actor")
    assert "TLS handshake failed" in read_log("untrusted_actor"), read_log("untrusted_actor")
    s = start(server_args(nats, os.path.join(TMP, "plain")), "plain_server")
    assert wait_exit(s, 30) != 0, read_log("plain_server")
    assert "cannot connect" in read_log("plain_server"), read_log("plain_server")
    assert not os.path.exists(os.path.join(TMP, "acked0.csv")) or \
        os.path.getsize(os.path.join(TMP, "acked0.csv")) == 0
    # the CA from the environment for one side, from the config file for the other
    good = os.path.join(TMP, "tls.json")
    with open(good, "w") as f:
        f.write('{"transport": {"tls": true, "ca_file": "%s"}}\n' % ca)
    out = os.path.join(TMP, "run")
    srv = start(server_args(nats, out, "--config", good), "server")
    act = start(actor_args(nats, 0, "--nats", "tls://127.0.0.1:%d" % nats.port), "actors0",
                {"RELAY_NATS_CA": ca})
    assert wait_exit(srv, 200) == 0, read_log("server")
    assert wait_exit(act, 30) == 0, read_log("actors0")
    assert "target reached" in read_log("server")
    check_ledgers(out, 1)


def scenario_key():
    k1 = "11" * 32
    k2 = "22" * 32
    nats = Nats(free_port(), os.path.join(TMP, "store"))
    out = os.path.join(TMP, "run")
    srv = start(server_args(nats, out), "server", {"RELAY_KEY": k1})
    # an actor without the key cannot read the model; one with another key neither
    nokey = start(actor_args(nats, 5), "nokey_actor")
    assert wait_exit(nokey, 60) != 0, read_log("nokey_actor")
    assert "cannot be read" in read_log("nokey_actor"), read_log("nokey_actor")
    badkey = start(actor_args(nats, 6), "badkey_actor", {"RELAY_KEY": k2})
    assert wait_exit(badkey, 60) != 0
    # plaintext and wrongly keyed trajectories are rejected, counted; the server keeps going
    plain = {k: v for k, v in os.environ.items() if k != "RELAY_KEY"}
    r = subprocess.run([INJECT, nats.url, "t", "plaintext", "5"], capture_output=True, text=True,
                       timeout=30, env=plain)
    assert "published 5" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([INJECT, nats.url, "t", "plaintext", "5"], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, RELAY_KEY=k2))
    assert "published 5" in r.stdout, r.stdout + r.stderr
    good = start(actor_args(nats, 0), "actors0", {"RELAY_KEY": k1})
    assert wait_exit(srv, 200) == 0, read_log("server")
    fates, _ = check_ledgers(out, 1)
    assert fates["rejected"] >= 10, fates
    assert wait_exit(good, 30) == 0


def scenario_hostile():
    nats = Nats(free_port(), os.path.join(TMP, "store"))
    out = os.path.join(TMP, "run")
    srv = start(server_args(nats, out), "server")
    injected = 0
    for mode in ("garbage", "truncated", "badmagic", "hugecount", "bigframe", "wrongenv",
                 "replay"):
        r = subprocess.run([INJECT, nats.url, "t", mode, "3"], capture_output=True, text=True,
                           timeout=30)
        want = 6 if mode == "replay" else 3
        assert r.returncode == 0 and "published %d" % want in r.stdout, \
            mode + r.stdout + r.stderr
        injected += want
    log("injected", injected, "hostile messages")
    acts = [start(actor_args(nats, i), "actors%d" % i) for i in range(2)]
    rc = wait_exit(srv, 200)
    assert rc == 0, "server exit %d:\n%s" % (rc, read_log("server"))
    fates, _ = check_ledgers(out, 2)
    # 5 unreadable kinds x 3 messages + 3 wrong-env trajectories rejected; 3 replays refused
    assert fates["rejected"] >= 18, fates
    assert fates["duplicate"] >= 3, fates
    for a in acts:
        wait_exit(a, 30)


def scenario_cluster():
    """3 nodes (routes), stream replicas 3; actors on different nodes; one node killed."""
    ports = [free_port() for _ in range(3)]
    cports = [free_port() for _ in range(3)]
    routes = ", ".join("nats-route://127.0.0.1:%d" % p for p in cports)
    nodes = []
    for i in range(3):
        conf = os.path.join(TMP, "n%d.conf" % i)
        with open(conf, "w") as f:
            f.write("server_name: n%d\nlisten: 127.0.0.1:%d\n"
                    "jetstream { store_dir: \"%s\" }\n"
                    "cluster { name: relay, listen: 127.0.0.1:%d, routes: [%s] }\n"
                    % (i, ports[i], os.path.join(TMP, "store%d" % i), cports[i], routes))
        nodes.append(Nats(ports[i], None, name="nats%d" % i, conf=conf))
    # JetStream needs a metadata leader before streams can be made (~0.3 s idle, longer loaded)
    wait_for(lambda: any("metadata leader" in read_log("nats%d" % i) for i in range(3)),
             "the cluster's metadata leader", 60)
    out = os.path.join(TMP, "run")
    srv = start(server_args(nodes[0], out, "--replicas", "3"), "server")
    acts = [start(actor_args(nodes[1 + i], i), "actors%d" % i) for i in range(2)]
    wait_for(lambda: updates(out) >= KILL_AT or srv.poll() is not None, "a few updates", 150)
    assert srv.poll() is None, "server ended before the node could be killed:\n" + read_log("server")
    nodes[2].kill()
    log("node n2 (actor 1's node) killed after", updates(out), "updates")
    rc = wait_exit(srv, 240)
    assert rc == 0, "server exit %d:\n%s" % (rc, read_log("server"))
    for a in acts:
        assert wait_exit(a, 40) == 0, read_log(a.name)
        assert "0 dropped, 0 unacknowledged" in read_log(a.name), read_log(a.name)
    check_ledgers(out, 2)


def ensure_node_client():
    """examples/node_nats_client with its npm packages (installed once, under flock); None
    when node or npm is absent (the test is then skipped)."""
    if not shutil.which("node") or not shutil.which("npm"):
        return None
    d = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "examples", "node_nats_client")
    want = ("nats", "protobufjs")
    if not all(os.path.isdir(os.path.join(d, "node_modules", m)) for m in want):
        cmd = "flock .npm-lock sh -c 'test -d node_modules/nats -a -d node_modules/protobufjs " \
              "|| npm install --no-audit --no-fund --ignore-scripts >&2'"
        r = subprocess.run(cmd, shell=True, cwd=d, timeout=300)
        assert r.returncode == 0, "npm install in %s failed (exit %d)" % (d, r.returncode)
    return d


def scenario_node():
    """A foreign actor process in Node.js (npm's nats + protobufjs, examples/node_nats_client)
    written from docs/PROTOCOL.md trains CartPole alone; its acknowledged ids are all in the
    server's ledger exactly once, and the server's counts add up."""
    d = ensure_node_client()
    if d is None:
        print("SKIP: node or npm not installed")
        sys.exit(77)
    nats = Nats(free_port(), os.path.join(TMP, "store"))
    out = os.path.join(TMP, "run")
    srv = start(server_args(nats, out), "server")
    src = os.path.dirname(os.path.dirname(d))
    acked_path = os.path.join(TMP, "acked0.csv")
    client = start(["node", os.path.join(d, "relay_nats_client.js"), nats.url,
                    os.path.join(src, "proto"), "--run", "t", "--seconds", "180",
                    "--ledger", acked_path], "nodeclient")
    rc = wait_exit(srv, 200)
    assert rc == 0, "server exit %d:\n%s\n%s" % (rc, read_log("server"), read_log("nodeclient"))
    assert wait_exit(client, 30) == 0, read_log("nodeclient")
    clog = read_log("nodeclient")
    assert "server status: training finished: target reached" in clog, clog
    last = [l for l in clog.splitlines() if l.startswith("producer ")][-1]
    log(last)
    producer = last.split()[1].rstrip(";")
    sent = int(last.split("batches sent ")[1].split(",")[0])
    acked = int(last.split(", acked ")[1].split(";")[0])
    trajs = int(last.split("trajectories ")[1].split(",")[0])
    assert sent > 0 and acked == sent, last
    assert int(last.split("versions applied ")[1]) > 1, "no new model was installed: " + last
    fates, acked_ids = check_ledgers(out, 1)
    assert acked_ids == trajs, "%d trajectories sent, %d acknowledged ids" % (trajs, acked_ids)
    with open(os.path.join(out, "ledger.csv")) as f:
        ids = [line.split(",")[0] for line in f]
    assert all(i.startswith(producer + ":") for i in ids), "an id from another producer"
    # every trajectory it sent is recorded once, and the server's summary says the same
    assert len(ids) == trajs and sum(fates.values()) == trajs, (len(ids), trajs, dict(fates))
    slog = read_log("server")
    assert "target reached" in slog, slog
    summary = "trajectories: %d learned, %d stale, %d discarded, %d unused, %d rejected" % (
        fates["learned"], fates["stale"], fates["discarded"], fates["unused"], fates["rejected"])
    assert summary in slog, summary + "\n" + slog
    assert updates(out) > 0


run(globals(), SCENARIO)
