#!/usr/bin/env bash
# Smoke test of `relay train` end to end (actors on routers -> data plane -> learner -> ModelUpdate):
# a seeded CartPole run must really learn (mean return of the last 100 episodes >= 150 within a
# small budget), write every run file, and produce a policy that `relay eval` scores >= 150.
set -euo pipefail
relay="$1"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$relay" train --seed 3 --steps 60000 --target 150 --out "$out/run" --sink arrow --quiet > "$out/train.txt"
cat "$out/train.txt"
grep -q "target reached" "$out/train.txt" || { echo "FAIL: did not reach mean return 150"; exit 1; }
for f in config.json metrics.csv learning_curve.svg policy.onnx trajectories/run.arrow; do
  [ -s "$out/run/$f" ] || { echo "FAIL: missing $f"; exit 1; }
done
"$relay" eval --model "$out/run/policy.onnx" --env CartPole-v1 --episodes 20 > "$out/eval.txt"
cat "$out/eval.txt"
mean=$(awk '$1 == "mean_return" {print $2}' "$out/eval.txt")
awk -v m="$mean" 'BEGIN { exit !(m >= 150) }' || { echo "FAIL: eval mean return $mean < 150"; exit 1; }
"$relay" inspect "$out/run/trajectories/run.arrow" > "$out/inspect.txt"
grep -qi "rows" "$out/inspect.txt" || { echo "FAIL: inspect printed no row count"; exit 1; }
# SIGINT is a graceful shutdown: the run stops, and its Arrow file is complete and readable.
"$relay" train --seed 4 --steps 100000000 --target 100000 --out "$out/sig" --sink arrow --quiet > "$out/sig.txt" &
pid=$!
for _ in $(seq 1 200); do [ -s "$out/sig/metrics.csv" ] && [ "$(wc -l < "$out/sig/metrics.csv")" -gt 3 ] && break; sleep 0.05; done
kill -INT "$pid"
wait "$pid" || { echo "FAIL: interrupted run exited with an error"; exit 1; }
grep -q "interrupted" "$out/sig.txt" || { echo "FAIL: run did not report the interruption"; cat "$out/sig.txt"; exit 1; }
"$relay" inspect "$out/sig/trajectories/run.arrow" > /dev/null || { echo "FAIL: Arrow file invalid after SIGINT"; exit 1; }
[ -s "$out/sig/policy.onnx" ] || { echo "FAIL: no policy after SIGINT"; exit 1; }
# Bad input is a clear error with exit status 2, never a crash.
set +e
"$relay" train --env NoSuchEnv-v9 > /dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: bad env"; exit 1; }
"$relay" train --actors zero > /dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: bad number"; exit 1; }
"$relay" inspect "$out/run/config.json" > /dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: inspect non-data"; exit 1; }
"$relay" frobnicate > /dev/null 2>&1; [ $? -eq 2 ] || { echo "FAIL: unknown command"; exit 1; }
echo "train smoke test passed"
