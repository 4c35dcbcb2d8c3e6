#!/usr/bin/python3
"""request_action from Python vs the same loop in C (bench/agent/bench_request.c).

The Python loop mirrors bench_agent_request exactly: 64 actors sharing one 4-64-64-2 tanh policy
(model_mode shared, published once with update_model), CartPole-like fixed observations, rewards
1.0, max_traj_length 200; configurations routers 1 and 2 with sinks off, routers 2 with the memory
sink; calls of all 64 actors at once and of one actor per call.  Prints medians over RUNS runs of
SECONDS each, then runs the C program with the same arguments (if built) and prints the ratio
Python/C of actions per second.  It also measures the Python wrapper's own cost per call, with
the librelay call replaced by a stub, so the overhead is not buried in the machine's noise.

usage: /usr/bin/python3 bench/python/bench_request.py [--build build] [--seconds 1] [--runs 5]
"""
import argparse
import os
import re
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def policy_bytes(relay):
    rng = np.random.default_rng(0)
    sizes = [4, 64, 64, 2]
    ws = [rng.normal(scale=1 / np.sqrt(i), size=(o, i)) for i, o in zip(sizes, sizes[1:])]
    return relay.mlp_to_onnx(ws, [np.zeros(o) for o in sizes[1:]], ["tanh", "tanh", None])


def run_calls(agent, ids, batch, seconds, obs, rewards, out):
    lat = []
    i = 0
    n = len(ids)
    t_end = time.perf_counter() + seconds
    now = time.perf_counter
    req = agent.request_action
    if batch == n:
        while True:
            t0 = now()
            req(ids, obs, rewards=rewards, out=out)
            t1 = now()
            lat.append(t1 - t0)
            if t1 >= t_end:
                break
    else:
        rows = [ids[k:k + 1] for k in range(n)]
        obs1 = [obs[k:k + 1] for k in range(n)]
        rew1 = [rewards[k:k + 1] for k in range(n)]
        out1 = out[:1]
        while True:
            t0 = now()
            req(rows[i], obs1[i], rewards=rew1[i], out=out1)
            t1 = now()
            lat.append(t1 - t0)
            i = (i + 1) % n
            if t1 >= t_end:
                break
    lat = np.array(lat)
    return len(lat) * batch / lat.sum(), np.percentile(lat, 50) * 1e6, np.percentile(lat, 99) * 1e6


def bench_config(relay, model, routers, memory, seconds, runs):
    rows = []
    with relay.Agent({"routers": routers, "model_mode": "shared", "max_traj_length": 200,
                      "env": "CartPole-v1", "sinks": {"memory": {"enabled": memory}}}) as agent:
        ids = agent.new_actors(64)
        agent.update_model(model)
        obs = np.array([[0.01 * ((i * 7 + k * 3) % 11 - 5) for k in range(4)]
                        for i in range(64)], np.float32)
        rewards = np.ones(64, np.float32)
        out = np.empty((64, 1), np.float32)
        for batch in (64, 1):
            run_calls(agent, ids, batch, 0.2, obs, rewards, out)  # warm-up
            res = [run_calls(agent, ids, batch, seconds, obs, rewards, out) for _ in range(runs)]
            rate, p50, p99 = (float(np.median([r[k] for r in res])) for k in range(3))
            rows.append(((routers, "memory" if memory else "off", batch), rate, p50, p99))
            print("python routers=%d sink=%-6s batch=%2d  %8.3f M actions/s  %8.3f K calls/s  "
                  "p50 %7.1f us  p99 %7.1f us" % (routers, "memory" if memory else "off", batch,
                                                   rate / 1e6, rate / batch / 1e3, p50, p99),
                  flush=True)
    return rows


def wrapper_overhead(relay, model):
    """CPU seconds per request_action call spent in Python with the C call stubbed out."""
    import relay.agent as ra
    with relay.Agent({"routers": 1, "model_mode": "shared", "env": "CartPole-v1"}) as agent:
        ids = agent.new_actors(64)
        agent.update_model(model)
        obs = np.zeros((64, 4), np.float32)
        rewards = np.ones(64, np.float32)
        out = np.empty((64, 1), np.float32)
        agent.request_action(ids, obs, rewards=rewards, out=out)  # sizes cached

        class Stub:
            def __getattr__(self, name):
                return getattr(relay.lib, name)

            @staticmethod
            def relay_agent_request_action(*args):
                return 0

        real = ra.lib
        ra.lib = Stub()
        try:
            res = {}
            for label, kw in (("ids+obs+rewards+out", {"rewards": rewards, "out": out}),
                              ("ids+obs (allocates out)", {})):
                best = []
                for _ in range(5):
                    n = 20000
                    t0 = time.thread_time()  # CPU time: robust to a loaded machine
                    for _ in range(n):
                        agent.request_action(ids, obs, **kw)
                    best.append((time.thread_time() - t0) / n)
                res[label] = float(np.median(best))
        finally:
            ra.lib = real
    # cost of one cffi call of the same signature (the part of the stub's price the C side
    # pays anyway) is not subtracted: the numbers are an upper bound of the wrapper's cost
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("RELAY_LIB", os.path.join(args.build, "src", "librelay.so"))
    sys.path.insert(0, os.path.join(ROOT, "python"))
    import relay
    model = relay.Model(policy_bytes(relay), env="CartPole-v1")
    print("# commit %s, load %s" % (
        subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True).stdout.strip(), open("/proc/loadavg").read().split()[:3]))
    py = {}
    for routers, memory in ((1, False), (2, False), (2, True)):
        for key, rate, p50, p99 in bench_config(relay, model, routers, memory, args.seconds,
                                                args.runs):
            py[key] = (rate, p50, p99)
    for label, sec in wrapper_overhead(relay, model).items():
        print("python wrapper cost per call, C call stubbed (%s): %.2f us" % (label, sec * 1e6))
    exe = os.path.join(args.build, "bench", "agent", "bench_agent_request")
    if not os.path.exists(exe):
        print("(C bench %s not built: no comparison)" % exe)
        return
    out = subprocess.run([exe, str(args.seconds), str(args.runs)], capture_output=True,
                         text=True).stdout
    pat = re.compile(r"routers=(\d+) sink=(\w+)\s+batch=\s*(\d+)\s+([\d.]+) M actions/s.*?"
                     r"p50\s+([\d.]+) us\s+p99\s+([\d.]+) us")
    for line in out.splitlines():
        m = pat.search(line)
        if not m:
            continue
        key = (int(m.group(1)), m.group(2), int(m.group(3)))
        c_rate, c_p50 = float(m.group(4)) * 1e6, float(m.group(5))
        print("C      routers=%d sink=%-6s batch=%2d  %8.3f M actions/s  p50 %7.1f us" % (
            key + (c_rate / 1e6, c_p50)))
        if key in py:
            p = py[key]
            print("       python/C actions/s %.0f%%, p50 difference %.1f us" % (
                100 * p[0] / c_rate, p[1] - c_p50))


if __name__ == "__main__":
    main()
