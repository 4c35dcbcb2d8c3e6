#!/usr/bin/python3
"""Relay vs PyTorch CPU (1 thread) forward latency for the same MLP, side by side.

usage: /usr/bin/python3 bench/model/torch_compare.py [BUILD_DIR] [--batch 1] [--runs 5]

Builds 4-64-64-2 and 8-256-256-4 tanh MLPs in PyTorch, exports each to ONNX (opset 17), runs
PyTorch (torch.no_grad, 1 thread) and Relay's bench_model_forward on that same ONNX file, and
prints ns/sample for both and the speed-up (PyTorch time / Relay time). Medians of --runs runs;
each PyTorch run times about 0.2 s of calls (thread CPU time, like the Relay program).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import torch


def torch_ns_per_sample(net, batch, runs):
    x = torch.randn(batch, net[0].in_features)
    with torch.no_grad():
        for _ in range(200):
            net(x)
        res = []
        for _ in range(runs):
            n = 0
            t0 = time.thread_time_ns()
            while True:
                for _ in range(16):
                    net(x)
                n += 16
                t1 = time.thread_time_ns()
                if t1 - t0 >= 200_000_000:
                    break
            res.append((t1 - t0) / (n * batch))
    res.sort()
    return res[len(res) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    bench = os.path.join(a.build, "bench", "model", "bench_model_forward")
    if not os.path.exists(bench):
        sys.exit("missing %s: build the bench_model_forward target first" % bench)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("%-12s %6s %14s %14s %8s" % ("model", "batch", "torch ns/smp", "relay ns/smp", "ratio"))
    for sizes in ([4, 64, 64, 2], [8, 256, 256, 4]):
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(torch.nn.Tanh())
        net = torch.nn.Sequential(*layers).eval()
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.onnx")
            torch.onnx.export(net, torch.randn(1, sizes[0]), path, opset_version=17,
                              input_names=["obs"], output_names=["out"],
                              dynamic_axes={"obs": {0: "batch"}, "out": {0: "batch"}})
            out = subprocess.run([bench, "--onnx", path, "--batch", str(a.batch), "--runs",
                                  str(a.runs)], check=True, capture_output=True, text=True).stdout
        relay = float(re.search(r"ns_per_sample=([0-9.]+)", out).group(1))
        t = torch_ns_per_sample(net, a.batch, a.runs)
        print("%-12s %6d %14.1f %14.1f %7.1fx" % ("-".join(map(str, sizes)), a.batch, t, relay,
                                                 t / relay))


if __name__ == "__main__":
    main()
