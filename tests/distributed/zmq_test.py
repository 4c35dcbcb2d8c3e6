#!/usr/bin/python3
"""Distributed training over ZeroMQ (brokerless, CURVE), end to end, with faults.

usage: zmq_test.py RELAY_BIN SCENARIO
SCENARIO: train | kill_server | kill_actor | curve | hostile | python | drain_crash | launcher

Each scenario picks free 127.0.0.1 ports, starts a `relay server --zmq` and `relay actors --zmq`
processes, bounds its time and stops everything it started by PID, also on failure. Accounting is
checked from the ledgers as in nats_test.py: every trajectory id an actor process saw
acknowledged appears in the server's ledger.csv exactly once, and none is learned twice.
"""
import os
import signal
import socket
import subprocess
import sys
import time

import zmq
from zmq.utils import monitor as zmq_monitor

from harness import *  # noqa: F401,F403 (processes, ports, ledgers)

RELAY, SCENARIO = sys.argv[1], sys.argv[2]


def keygen(prefix):
    r = subprocess.run([RELAY, "keygen", os.path.join(TMP, prefix)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert oct(os.stat(os.path.join(TMP, prefix + ".key")).st_mode & 0o777) == "0o600"
    return os.path.join(TMP, prefix)


def read_z85(path):
    with open(path) as f:
        return [l.strip() for l in f if l.strip() and not l.startswith("#")][0].encode()


def curve_configs(n_clients):
    """Server key, n client keys (all allowed); returns (server config, [client configs])."""
    srv = keygen("server")
    clients = [keygen("client%d" % i) for i in range(n_clients)]
    allowed = os.path.join(TMP, "allowed.txt")
    with open(allowed, "w") as f:
        f.write("# allowed actor processes\n")
        for c in clients:
            f.write(read_z85(c + ".pub").decode() + "\n")
    scfg = os.path.join(TMP, "server.json")
    with open(scfg, "w") as f:
        f.write('{"transport": {"curve_secret_file": "%s.key", "curve_clients_file": "%s"}}\n'
                % (srv, allowed))
    ccfgs = []
    for i, c in enumerate(clients):
        path = os.path.join(TMP, "client%d.json" % i)
        with open(path, "w") as f:
            f.write('{"transport": {"curve_secret_file": "%s.key", '
                    '"curve_server_public_file": "%s.pub"}}\n' % (c, srv))
        ccfgs.append(path)
    return srv, scfg, ccfgs


def server_args(url, out, *extra):
    # the target ends the run; the step budget (4x the zoo's) only stops a run that learns badly,
    # which a loaded machine's stale trajectories can make happen within the zoo's budget
    return [RELAY, "server", "--zmq", url, "--out", out, "--target", TARGET, "--steps", "400000",
            "--quiet"] + list(extra)


def actor_args(url, i, *extra):
    return [RELAY, "actors", "--zmq", url, "--quiet", "--seed", str(100 + i), "--ledger",
            os.path.join(TMP, "acked%d.csv" % i), "--wait", "60"] + list(extra)


def scenario_train():
    """CartPole by a CURVE server and 2 CURVE actor processes."""
    url = "tcp://127.0.0.1:%d" % free_port_pair()
    _, scfg, ccfgs = curve_configs(2)
    out = os.path.join(TMP, "run")
    srv = start(server_args(url, out, "--config", scfg), "server")
    time.sleep(0.3)
    acts = [start(actor_args(url, i, "--config", ccfgs[i]), "actors%d" % i) for i in range(2)]
    rc = wait_exit(srv, 200)
    assert rc == 0, "server exit %d:\n%s" % (rc, read_log("server"))
    for a in acts:
        assert wait_exit(a, 30) == 0, read_log(a.name)
        assert "0 dropped, 0 unacknowledged" in read_log(a.name), read_log(a.name)
    for f in ("metrics.csv", "policy.onnx", "ledger.csv", "checkpoint.bin"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    assert "target reached" in read_log("server")
    check_ledgers(out, 2)


def scenario_kill_server():
    """kill -9 of the server mid-run, restart: actors resend, nothing learned twice."""
    url = "tcp://127.0.0.1:%d" % free_port_pair()
    _, scfg, ccfgs = curve_configs(2)
    out = os.path.join(TMP, "run")
    srv = start(server_args(url, out, "--config", scfg), "server")
    time.sleep(0.3)
    acts = [start(actor_args(url, i, "--config", ccfgs[i]), "actors%d" % i) for i in range(2)]
    wait_for(lambda: updates(out) >= KILL_AT or srv.poll() is not None, "a few updates", 120)
    assert srv.poll() is None, "server ended before it could be killed:\n" + read_log("server")
    srv.send_signal(signal.SIGKILL)
    srv.wait()
    log("server killed after", updates(out), "updates")
    time.sleep(1.0)
    srv2 = start(server_args(url, out, "--config", scfg), "server2")
    rc = wait_exit(srv2, 200)
    assert rc == 0, "restarted server exit %d:\n%s" % (rc, read_log("server2"))
    assert "resumed from" in read_log("server2"), read_log("server2")
    for a in acts:
        assert wait_exit(a, 40) == 0, read_log(a.name)
    fates, acked = check_ledgers(out, 2)
    resent = sum(int(l.split(" resent")[0].split()[-1]) for a in acts
                 for l in read_log(a.name).splitlines() if " resent" in l)
    log("batches resent by the actors:", resent)


def scenario_kill_actor():
    """kill -9 of one actor process: its unacknowledged batches are simply never acked."""
    url = "tcp://127.0.0.1:%d" % free_port_pair()
    out = os.path.join(TMP, "run")
    srv = start(server_args(url, out), "server")
    time.sleep(0.3)
    acts = [start(actor_args(url, i), "actors%d" % i) for i in range(2)]
    wait_for(lambda: updates(out) >= KILL_AT or srv.poll() is not None, "a few updates", 120)
    acts[0].send_signal(signal.SIGKILL)
    acts[0].wait()
    log("actor process 0 killed after", updates(out), "updates")
    rc = wait_exit(srv, 200)
    assert rc == 0, "server exit %d:\n%s" % (rc, read_log("server"))
    assert wait_exit(acts[1], 30) == 0, read_log("actors1")
    check_ledgers(out, 2)


def scenario_curve():
    """Unknown client key and wrong server key: nothing in, nothing out; counted."""
    url = "tcp://127.0.0.1:%d" % free_port_pair()
    srv_prefix, scfg, ccfgs = curve_configs(1)
    out = os.path.join(TMP, "run")
    srv = start(server_args(url, out, "--config", scfg, "--max-seconds", "60"), "server")
    time.sleep(0.3)
    # an actor process whose key is not in the allowed list
    stranger = keygen("stranger")
    bad = os.path.join(TMP, "stranger.json")
    with open(bad, "w") as f:
        f.write('{"transport": {"curve_secret_file": "%s.key", '
                '"curve_server_public_file": "%s.pub"}}\n' % (stranger, srv_prefix))
    a = start(actor_args(url, 7, "--config", bad), "stranger_actor")
    assert wait_exit(a, 30) != 0, read_log("stranger_actor")
    assert "CURVE" in read_log("stranger_actor"), read_log("stranger_actor")
    # an actor process that trusts another server key
    other = keygen("other")
    wrong = os.path.join(TMP, "wrong_server.json")
    with open(wrong, "w") as f:
        f.write('{"transport": {"curve_secret_file": "%s.key", '
                '"curve_server_public_file": "%s.pub"}}\n' % (os.path.join(TMP, "client0"), other))
    a = start(actor_args(url, 8, "--config", wrong), "wrong_server_actor")
    assert wait_exit(a, 30) != 0, read_log("wrong_server_actor")
    # a foreign client with an unknown key: its requests get no answer, its batches go nowhere
    ctx = zmq.Context()
    pub, sec = zmq.curve_keypair()
    d = ctx.socket(zmq.DEALER)
    d.curve_serverkey = read_z85(srv_prefix + ".pub")
    d.curve_publickey, d.curve_secretkey = pub, sec
    d.linger = 0
    d.connect(url)
    hdr = b"RZ\x01\x05\x00\x00\x00\x00" + (1).to_bytes(8, "little")
    for parts in ([hdr, (2**64 - 1).to_bytes(8, "little")],
                  [b"RZ\x01\x01\x00\x00\x00\x00" + (1).to_bytes(8, "little"), b"x" * 1000]):
        try:
            d.send_multipart(parts, zmq.DONTWAIT)
        except zmq.Again:
            pass  # no connection to queue on once the handshake was refused: nothing sent
    s = ctx.socket(zmq.SUB)
    s.curve_serverkey = read_z85(srv_prefix + ".pub")
    s.curve_publickey, s.curve_secretkey = pub, sec
    s.linger = 0
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.connect(url.rsplit(":", 1)[0] + ":%d" % (int(url.rsplit(":", 1)[1]) + 1))
    poller = zmq.Poller()
    poller.register(d, zmq.POLLIN)
    poller.register(s, zmq.POLLIN)
    # the good actor trains meanwhile; the stranger sees no reply and no model
    good = start(actor_args(url, 0, "--config", ccfgs[0]), "actors0")
    wait_for(lambda: updates(out) >= 3 or srv.poll() is not None, "updates from the good actor", 60)
    got = dict(poller.poll(2000))
    assert not got, "a client with an unknown key received something"
    d.close()
    s.close()
    ctx.term()
    rc = wait_exit(srv, 200)
    assert rc in (0, 3), "server exit %d:\n%s" % (rc, read_log("server"))
    wait_exit(good, 30)
    fates, _ = check_ledgers(out, 1)
    assert fates["rejected"] == 0, fates  # the stranger's batch never reached the server
    slog = read_log("server")
    assert "client keys refused" in slog and "not in the allowed list" in slog, slog


def scenario_hostile():
    """Malformed, truncated, oversized frames and a flood of connections in the middle of a run
    of 2 actor processes: the flood beyond the connection cap is refused and counted (every flood
    peer's own monitor says whether it was admitted or refused), training goes on under it."""
    port = free_port_pair()
    url = "tcp://127.0.0.1:%d" % port
    out = os.path.join(TMP, "run")
    cap = 16
    srv = start(server_args(url, out, "--max-connections", str(cap)), "server")
    time.sleep(0.3)
    acts = [start(actor_args(url, i), "actors%d" % i) for i in range(2)]
    wait_for(lambda: updates(out) >= 2 or srv.poll() is not None, "training to start", 120)
    assert srv.poll() is None, "server exited early:\n" + read_log("server")
    # the actors pause while the hostile traffic goes in (on a loaded machine the run could
    # otherwise reach its target before the flood is up) and resume once the flood is held
    for a in acts:
        a.send_signal(signal.SIGSTOP)
    ctx = zmq.Context()
    d = ctx.socket(zmq.DEALER)
    d.linger = 1000
    d.connect(url)
    good_hdr = b"RZ\x01\x01\x00\x00\x00\x00" + (9).to_bytes(8, "little")
    malformed = [
        [b"garbage"],                                                # one short frame
        [b"XX\x01\x01\x00\x00\x00\x00" + bytes(8), b"data"],         # bad magic
        [b"RZ\x01\x01\x00\x00\x00"],                                 # truncated header
        [b"RZ\x09\x01\x00\x00\x00\x00" + bytes(8), b"data"],         # unknown version
        [b"RZ\x01\x63\x00\x00\x00\x00" + bytes(8), b"data"],         # unknown kind
        [good_hdr],                                                  # batch frame missing
        [good_hdr, b"a", b"b"],                                      # one frame too many
        [b"RZ\x01\x05\x00\x00\x00\x00" + bytes(8), b"short"],        # model request, bad body
    ]
    for m in malformed:
        d.send_multipart(m)
    # unreadable batches inside a well-formed frame: recorded as rejected in the ledger
    for body in (b"RLYB" + bytes(10), b"\xff" * 100, b"RLYB\x01" + bytes(31) + b"\xff" * 50):
        d.send_multipart([good_hdr, body])
    # an oversized frame: refused by name (the limit is 64 MiB + 4 KiB), acknowledged REFUSED
    d.send_multipart([good_hdr, b"\0" * (65 << 20)])
    # far above the limit: libzmq drops the connection (ZMQ_MAXMSGSIZE, limit + 16 MiB)
    big = ctx.socket(zmq.DEALER)
    big.linger = 2000
    big.connect(url)
    big.send_multipart([good_hdr, b"\0" * (90 << 20)])
    assert d.poll(20000), "no answer to the oversized batch:\n" + read_log("server")
    ack = d.recv_multipart()
    assert ack[0][3] == 2 and ack[0][4] == 1, ack  # ACK, REFUSED
    # an oversized central inference request: an error reply naming the limit (64 MiB)
    inf = ctx.socket(zmq.DEALER)
    inf.linger = 0
    inf.connect("tcp://127.0.0.1:%d" % (port + 2))
    inf.send(b"\0" * (65 << 20))
    assert inf.poll(20000), "no answer to the oversized inference request"
    rep = inf.recv()
    assert b"exceeds the limit of %d bytes" % (64 << 20) in rep, rep[:200]
    inf.close()
    # a flood of connections on both ports, far beyond the cap, held for a while. Connected in
    # waves that each finish their handshakes first: 200 connects at once overflow the listen
    # backlog, and a dropped SYN is retried only a second later, possibly after the flood closed.
    # Each flood peer's monitor counts what the server told it: admitted or refused at the cap.
    flood, mons = [], []
    seen = {"ok": 0, "refused": 0, "other": 0}
    hs_events = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH |
                 zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)

    def drain_flood_monitors(waiting, timeout_ms):
        poller = zmq.Poller()
        for m in mons:
            poller.register(m, zmq.POLLIN)
        for m, _ in poller.poll(timeout_ms):
            while m.poll(0):
                ev = zmq_monitor.recv_monitor_message(m)
                if ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    seen["ok"] += 1
                elif ev["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH and ev["value"] == 500:
                    seen["refused"] += 1
                else:
                    seen["other"] += 1
                waiting.discard(m)

    for wave in range(5):
        waiting = set()
        for i in range(wave * 40, wave * 40 + 40):
            c = ctx.socket(zmq.DEALER if i % 4 else zmq.SUB)
            c.linger = 0
            m = c.get_monitor_socket(hs_events)
            c.connect(url if i % 4 else "tcp://127.0.0.1:%d" % (port + 1))
            flood.append(c)
            mons.append(m)
            waiting.add(m)
        deadline = time.time() + 60
        while waiting and time.time() < deadline and srv.poll() is None:
            drain_flood_monitors(waiting, 200)
        assert not waiting, "%d flood peers had no handshake answer; %s\n%s" % (
            len(waiting), seen, read_log("server"))
    # every flood peer was answered: at most cap per port admitted, the rest refused
    assert seen["ok"] <= 2 * cap and seen["refused"] >= 200 - 2 * cap, seen
    # and peers that are not ZeroMQ at all
    raw = [socket.create_connection(("127.0.0.1", port), 2) for _ in range(50)]
    for r in raw:
        try:
            r.sendall(b"\xff\x00\x00\x00\x00\x00\x00\x00\x07\x7f garbage that is not ZMTP")
        except OSError:
            pass
        r.close()
    # training goes on while the flood is held open
    at_flood = updates(out)
    for a in acts:
        a.send_signal(signal.SIGCONT)
    wait_for(lambda: updates(out) >= at_flood + 5 or srv.poll() is not None,
             "learning during the flood", 120)
    assert srv.poll() is None or srv.returncode == 0, "server died:\n" + read_log("server")
    log("updates: %d when the flood began, %d while it was held" % (at_flood, updates(out)))
    drain_flood_monitors(set(), 0)
    for c, m in zip(flood, mons):
        c.disable_monitor()
        m.close()
        c.close()
    big.close()
    d.close()
    ctx.term()
    rc = wait_exit(srv, 200)
    assert rc == 0, "server exit %d:\n%s" % (rc, read_log("server"))
    for a in acts:
        assert wait_exit(a, 30) == 0, read_log(a.name)
        assert "0 dropped, 0 unacknowledged" in read_log(a.name), read_log(a.name)
    fates, _ = check_ledgers(out, 2)
    assert fates["rejected"] >= 3, fates
    assert "target reached" in read_log("server")
    slog = read_log("server")
    assert "malformed" in slog, slog
    assert "the limit is %d bytes" % ((64 << 20) + 4096) in slog, slog
    assert "the cap is %d" % cap in slog, slog
    n = [l for l in slog.splitlines() if "malformed messages refused" in l]
    assert n and int(n[-1].split("closed: ")[1].split()[0]) >= len(malformed), slog
    bad = int(n[-1].split("keys refused, ")[1].split()[0])
    conns = int(n[-1].split("(of ")[1].split()[0])
    big_n = int(n[-1].split("connections), ")[1].split()[0])
    refused = int(n[-1].split("oversized frames refused, ")[1].split()[0])
    log("malformed:", n[-1].split("closed: ")[1].split()[0], "failed handshakes:", bad,
        "connections:", conns, "oversized:", big_n, "refused at the cap:", refused)
    # 50 non-ZMTP peers (one closing before libzmq read its bytes counts as a plain disconnect,
    # not a failed handshake); of the 200 flood peers at most cap per port were admitted
    assert bad >= 10 and conns >= 50, n[-1]
    assert big_n >= 1, n[-1]
    # the server counted every refusal its flood peers saw (refused peers retry and are refused
    # again, so both counts pass 200 - 2 * cap)
    log("flood peers' handshakes: %s" % seen)
    assert refused >= seen["refused"] >= 200 - 2 * cap, (n[-1], seen)


def scenario_drain_crash():
    """The shutdown window: once training is finished the server still takes batches in (the
    drain) and acknowledges them. kill -9 right after an acknowledgement: the acknowledged
    trajectories must already be in ledger.csv and in the checkpoint (a restarted server keeps
    them); a batch not acknowledged is sent again to the restarted server. Every acknowledged id
    ends up in the ledger exactly once."""
    import zmq_probe
    pb = zmq_probe.load_pb(TMP)
    url = "tcp://127.0.0.1:%d" % free_port_pair()
    out = os.path.join(TMP, "run")
    srv = start(server_args(url, out), "server")
    time.sleep(0.3)
    probe = zmq_probe.Probe(pb, url)
    # said hello: the server's drain waits for this probe's goodbye (it never comes)
    assert probe.hello() is not None, "no hello reply:\n" + read_log("server")
    act = start(actor_args(url, 0), "actors0")
    state = [None]

    def finished():
        state[0] = probe.model_state()
        return bool(state[0] and state[0][1]) or srv.poll() is not None

    wait_for(finished, "training to finish", 200)
    assert srv.poll() is None, "server left its drain early:\n" + read_log("server")
    assert wait_exit(act, 30) == 0, read_log("actors0")
    version = state[0][0]
    log("training finished at version", version, "; the server drains")
    a, b = probe.make_batch(version), probe.make_batch(version)
    probe.send(a)
    probe.send(b)
    st = probe.wait_ack(a, 20)
    assert st == 0, "batch %d: ack %r\n%s" % (a, st, read_log("server"))
    srv.send_signal(signal.SIGKILL)  # right after the acknowledgement
    srv.wait()
    probe.poll_acks(0.2)
    log("server killed in its drain; acks:", dict(probe.acks))
    with open(os.path.join(out, "ledger.csv")) as f:
        ids = [l.split(",")[0] for l in f]
    for k in range(3):
        assert ids.count("%s:%d" % (probe.batch_id(a), k)) == 1, \
            "acknowledged trajectory %s:%d is not in the ledger after kill -9" % (
                probe.batch_id(a), k)
    # the next server resumes from the checkpoint and keeps what was acknowledged
    srv2 = start(server_args(url, out), "server2")
    wait_for(lambda: "resumed from" in read_log("server2") or srv2.poll() is not None,
             "the restarted server", 60)
    resend = [q for q in (a, b) if probe.acks.get(q) != 0]
    log("resending", resend)
    for q in resend:
        probe.send(q)
    for q in resend:
        assert probe.wait_ack(q, 60) == 0, "resent batch %d: no ack\n%s" % (q, read_log("server2"))
    probe.goodbye()
    probe.write_acked(os.path.join(TMP, "acked1.csv"))
    probe.close()
    act2 = start(actor_args(url, 2), "actors2")
    rc = wait_exit(srv2, 200)
    assert rc == 0, "restarted server exit %d:\n%s" % (rc, read_log("server2"))
    wait_exit(act2, 30)
    fates, acked = check_ledgers(out, 3)
    assert acked >= 6, acked


def scenario_launcher():
    """relay train --distributed 2 --zmq: server and 2 actor processes without a broker, in one
    command that stops what it started."""
    out = os.path.join(TMP, "run")
    p = start([RELAY, "train", "--distributed", "2", "--zmq", "--out", out, "--target", TARGET],
              "launcher")
    rc = wait_exit(p, 200)
    text = read_log("launcher")
    assert rc == 0, "relay train --distributed 2 --zmq exit %d:\n%s" % (rc, text)
    assert "no broker" in text and "target reached" in text, text
    assert text.count("0 dropped, 0 unacknowledged") == 2, text  # both actor processes drained
    assert "failed handshakes" not in text, text  # the launcher's readiness check is not a peer
    for f in ("metrics.csv", "policy.onnx", "ledger.csv", "checkpoint.bin", "config.json"):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    fates = {}
    with open(os.path.join(out, "ledger.csv")) as f:
        for line in f:
            fate = line.strip().split(",")[2]
            fates[fate] = fates.get(fate, 0) + 1
    log("ledger fates:", fates)
    assert fates.get("learned", 0) > 0 and not fates.get("duplicate"), fates
    # nothing left running: no server (its run directory) nor actors (the run, train<pid>)
    for pat in ("--out " + out, "--run train%d " % p.pid):
        left = subprocess.run(["pgrep", "-f", "--", pat], capture_output=True, text=True)
        assert not left.stdout.strip(), "processes left behind (%s): %s" % (pat, left.stdout)


def scenario_python():
    """A foreign client (examples/python_zmq, Python + pyzmq + protobuf, CURVE) trains CartPole."""
    url = "tcp://127.0.0.1:%d" % free_port_pair()
    srv_prefix, scfg, ccfgs = curve_configs(1)
    out = os.path.join(TMP, "run")
    srv = start(server_args(url, out, "--config", scfg), "server")
    time.sleep(0.3)
    src = os.path.dirname(os.path.dirname(HERE))
    client = start(["/usr/bin/python3", os.path.join(src, "examples", "python_zmq",
                                                     "relay_zmq_client.py"),
                    url, os.path.join(src, "proto"), "--seconds", "150",
                    "--curve-secret", os.path.join(TMP, "client0.key"),
                    "--curve-server", srv_prefix + ".pub"], "pyclient")
    rc = wait_exit(srv, 200)
    assert rc == 0, "server exit %d:\n%s\n%s" % (rc, read_log("server"), read_log("pyclient"))
    assert wait_exit(client, 30) == 0, read_log("pyclient")
    last = [l for l in read_log("pyclient").splitlines() if l.startswith("producer ")][-1]
    log(last)
    producer = last.split()[1].rstrip(";")
    sent = int(last.split("batches sent ")[1].split(",")[0])
    acked = int(last.split("acked ")[1].split(";")[0])
    assert sent > 0 and acked == sent, last
    learned = 0
    with open(os.path.join(out, "ledger.csv")) as f:
        for line in f:
            tid, seq, fate, rows = line.strip().split(",")
            assert tid.startswith(producer), line  # the only producer
            learned += fate == "learned"
    assert learned > 0
    assert "target reached" in read_log("server")


run(globals(), SCENARIO)
