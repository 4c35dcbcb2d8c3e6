#!/usr/bin/python3
"""Training benchmarks of the Python package, recorded in docs/PERFORMANCE.md.

1. relay.train("CartPole-v1") (the whole loop in C through relay_train_run) against the
   `relay train` executable, alternating per seed so both see the same machine load.  Same
   seeds give the same number of steps (training is deterministic), so the times compare the
   same work.
2. A NumPy CartPole written in Python (python/tests/numpy_cartpole.py), vectorised, trained
   with relay.train from Python (policy, rollout and PPO update in C; env steps in NumPy) with
   the rl-baselines3-zoo CartPole hyperparameters, with 16 envs and with the zoo's 8 envs.
3. With --torch and PyTorch importable: tools/torch_ppo.py (the PyTorch PPO baseline, the same
   zoo hyperparameters, 8 envs) per seed.  Debian's python3-torch is not installed by
   scripts/install-deps (an optional bench dependency); without it this part is skipped and
   docs/PERFORMANCE.md quotes the baseline's recorded times.

Prints one row per run (wall s, CPU s of the process, steps, solved) and medians.
usage: /usr/bin/python3 bench/python/bench_train.py [--build build] [--seeds "1 2 3 4 5"]
       [--skip-c] [--skip-py] [--torch]
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def cpu_self():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_cli(exe, seed, out):
    c0, t0 = cpu_children(), time.perf_counter()
    p = subprocess.run([exe, "train", "--quiet", "--seed", str(seed), "--out", out],
                       capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, cpu_children() - c0
    m = re.search(r"(target reached|step budget spent) after (\d+) steps, \d+ updates, "
                  r"([\d.]+) s", p.stdout)
    return (wall, cpu, int(m.group(2)) if m else -1, bool(m and m.group(1) == "target reached"),
            float(m.group(3)) if m else float("nan"))


def run_py_c(relay, seed, out):
    c0, t0 = cpu_self(), time.perf_counter()
    r = relay.train("CartPole-v1", seed=seed, out=out)
    return (time.perf_counter() - t0, cpu_self() - c0, r["steps"], r["target_reached"],
            r["seconds"])


def run_py_env(relay, env_cls, n_envs, seed, out):
    c0, t0 = cpu_self(), time.perf_counter()
    r = relay.train(env_cls(n_envs), zoo="CartPole-v1", n_envs=n_envs, seed=seed,
                    steps=400_000, target=475, out=out)
    return time.perf_counter() - t0, cpu_self() - c0, r["steps"], r["target_reached"]


def run_torch(seed):
    c0, t0 = cpu_children(), time.perf_counter()
    p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tools", "torch_ppo.py"),
                        "--seed", str(seed)], capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, cpu_children() - c0
    m = re.search(r"(target reached|step budget spent) after (\d+) steps.*?([\d.]+) s", p.stdout)
    return wall, cpu, int(m.group(2)) if m else -1, bool(m and m.group(1) == "target reached")


def summary(name, rows):
    w = [r[0] for r in rows]
    print("%-34s median wall %.2f s (min %.2f, max %.2f), median cpu %.2f s, median steps %d, "
          "solved %d/%d" % (name, np.median(w), min(w), max(w), np.median([r[1] for r in rows]),
                            int(np.median([r[2] for r in rows])), sum(r[3] for r in rows),
                            len(rows)), flush=True)
    return float(np.median(w))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seeds", default="1 2 3 4 5")
    ap.add_argument("--skip-c", action="store_true")
    ap.add_argument("--skip-py", action="store_true")
    ap.add_argument("--torch", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("RELAY_LIB", os.path.join(args.build, "src", "librelay.so"))
    sys.path.insert(0, os.path.join(ROOT, "python"))
    sys.path.insert(0, os.path.join(ROOT, "python", "tests"))  # numpy_cartpole.py
    import relay
    from numpy_cartpole import NumpyCartPole
    seeds = [int(s) for s in args.seeds.split()]
    exe = os.path.join(args.build, "src", "cli", "relay")
    print("# commit %s, load %s" % (
        subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                       text=True).stdout.strip(), " ".join(open("/proc/loadavg").read().split()[:3])))
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_c:
            cli, py = [], []
            for s in seeds:
                for first in ("cli", "py") if s % 2 else ("py", "cli"):
                    if first == "cli":
                        cli.append(run_cli(exe, s, os.path.join(tmp, "cli%d" % s)))
                        r = cli[-1]
                    else:
                        py.append(run_py_c(relay, s, os.path.join(tmp, "py%d" % s)))
                        r = py[-1]
                    print("seed %d %-4s wall %.2f s cpu %.2f s steps %d solved %s learner %.2f s"
                          % ((s, first) + r), flush=True)
            a = summary("relay train (CLI)", cli)
            b = summary("relay.train('CartPole-v1') (Python)", py)
            la = float(np.median([r[4] for r in cli]))
            lb = float(np.median([r[4] for r in py]))
            print("relay.train / relay train: median wall %.3f, median learner time %.3f "
                  "(%.2f s / %.2f s), median cpu %.3f" % (
                      b / a, lb / la, lb, la,
                      np.median([r[1] for r in py]) / np.median([r[1] for r in cli])))
        if not args.skip_py:
            for n_envs in (16, 8):
                rows = []
                for s in seeds:
                    rows.append(run_py_env(relay, NumpyCartPole, n_envs, s,
                                           os.path.join(tmp, "np%d-%d" % (n_envs, s))))
                    print("seed %d numpy cartpole x%d: wall %.2f s cpu %.2f s steps %d solved %s"
                          % ((s, n_envs) + rows[-1]), flush=True)
                summary("NumPy CartPole x%d from Python" % n_envs, rows)
        if args.torch:
            try:
                import torch  # noqa: F401
            except ImportError:
                print("torch is not importable (Debian python3-torch not installed): skipped")
                return
            rows = [run_torch(s) for s in seeds]
            summary("PyTorch PPO baseline (tools/torch_ppo.py)", rows)


if __name__ == "__main__":
    main()
