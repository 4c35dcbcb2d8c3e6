#!/usr/bin/env bash
# `relay train` features of issue 12: hyperparameter flags and config sections, config.json that
# repeats a run exactly, checkpoints (--save-every) and --resume, and the friction items.
set -euo pipefail
relay="$1"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$out"
fail() { echo "FAIL: $*"; exit 1; }

# --- hyperparameters: flags land in config.json, which repeats the run bit for bit ---------------
"$relay" train --seed 5 --steps 3000 --out r1 --quiet --learning-rate 5e-4 --net-arch 32,32 \
  --n-epochs 3 --activation relu --gamma 0.95 --normalize-obs true > r1.txt || [ $? -eq 3 ]
python3 - r1/config.json <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
p = c["ppo"]
assert p["learning_rate"] == 5e-4 and p["net_arch"] == "32,32" and p["n_epochs"] == 3, p
assert p["activation"] == "relu" and p["gamma"] == 0.95 and p["normalize_obs"] is True, p
assert p["n_steps"] == 32 and p["batch_size"] == 256, p   # zoo values kept
assert "reinforce" not in c
PY
"$relay" train --config r1/config.json --out r2 --quiet > r2.txt || [ $? -eq 3 ]
cmp r1/policy.onnx r2/policy.onnx || fail "--config RUN/config.json did not repeat the run"
# a config section sets values too; flags override it
printf '{"train": {"steps": 1024, "algo": "reinforce"}, "reinforce": {"n_steps": 64, "gamma": 0.9}}\n' > c.json
"$relay" train --config c.json --out r3 --quiet --gamma 0.8 > /dev/null || [ $? -eq 3 ]
grep -q '"n_steps":	64' r3/config.json || fail "reinforce.n_steps not applied"
grep -q '"gamma":	0.8' r3/config.json || fail "--gamma did not override the config"
# bad values: exit 2 and the message names the key
set +e
msg=$("$relay" train --gamma 1.5 --out bad1 2>&1); [ $? -eq 2 ] || fail "--gamma 1.5 accepted"
grep -q -- "--gamma" <<< "$msg" || fail "no flag in: $msg"
msg=$("$relay" train --net-arch 64,x --out bad2 2>&1); [ $? -eq 2 ] || fail "--net-arch 64,x accepted"
printf '{"ppo": {"clip_range": -1}}\n' > bad.json
msg=$("$relay" train --config bad.json --out bad3 2>&1); [ $? -eq 2 ] || fail "clip_range -1 accepted"
grep -q "ppo.clip_range" <<< "$msg" || fail "no key in: $msg"
set -e
# --- evaluation during training; exit 0 when the budget is spent without a target -----------------
"$relay" train --seed 1 --steps 6000 --eval-every 5 --eval-episodes 3 --out ev --quiet > ev.txt \
  || fail "budget spent with no target set must exit 0 (got $?)"
head -1 ev/metrics.csv | grep -q ',eval_mean_return,eval_std_return$' || fail "no eval columns"
n=$(awk -F, 'NR > 1 && $15 != "nan"' ev/metrics.csv | wc -l)
[ "$n" -ge 4 ] || fail "only $n evaluated rows"
[ -s ev/policy.onnx ] && [ -s ev/policy_last.onnx ] || fail "policy.onnx / policy_last.onnx missing"
grep -q 'class="eval"' ev/learning_curve.svg || fail "no eval curve in the SVG"
grep -q 'class="target"' ev/learning_curve.svg || fail "no target line in the SVG"
set +e
"$relay" train --steps 1024 --target 10000 --out t3 --quiet > /dev/null; rc=$?
set -e
[ $rc -eq 3 ] || fail "a missed --target must exit 3 (got $rc)"

# --- --out never moves runs/latest; default run directories do --------------------------------
"$relay" train --steps 512 --eval-every 0 --quiet > /dev/null || true
[ -L runs/latest ] || fail "default run did not create runs/latest"
before=$(readlink runs/latest)
"$relay" train --steps 512 --out runs/mine --quiet > /dev/null || true
[ "$(readlink runs/latest)" = "$before" ] || fail "--out runs/mine moved runs/latest"

# --- checkpoints: kill -9, then --resume continues the run ---------------------------------------
"$relay" train --seed 2 --steps 3000000 --target 100000 --save-every 5 --out k --quiet > k.txt 2>&1 &
pid=$!
for _ in $(seq 1 1500); do
  [ -s k/checkpoint.ckpt ] && [ -s k/metrics.csv ] && [ "$(wc -l < k/metrics.csv)" -gt 12 ] && break
  sleep 0.02
done
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
[ -s k/checkpoint.ckpt ] || fail "no checkpoint before kill -9"
cp -r k kc
set +e
"$relay" train --resume k --steps 20000 --quiet > k2.txt 2>&1; rc=$?
set -e
[ $rc -eq 3 ] || { cat k2.txt; fail "resumed run: exit $rc"; }
python3 - k/metrics.csv <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
ups = [int(r["update"]) for r in rows]
assert ups == list(range(1, len(ups) + 1)), ups   # no gap, no duplicate across the resume
assert int(rows[-1]["steps"]) >= 20000, rows[-1]
PY
# a corrupt checkpoint is refused with a message (exit 2), the run directory left as it was
printf '\x42' | dd of=kc/checkpoint.ckpt bs=1 seek=200 conv=notrunc 2>/dev/null
set +e
msg=$("$relay" train --resume kc --steps 20000 --quiet 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "corrupt checkpoint: exit $rc"
grep -q "checksum" <<< "$msg" || fail "corrupt checkpoint message: $msg"
mkdir nock && cp ev/config.json nock/
set +e
msg=$("$relay" train --resume nock --quiet 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "--resume without a checkpoint: exit $rc"
# --- friction items -------------------------------------------------------------------------------
# relay eval --run DIR takes env and model from the run; a run directory is accepted as --model
"$relay" eval --run ev --episodes 2 > e1.txt || fail "eval --run"
grep -q "env CartPole-v1" e1.txt || fail "eval --run did not take the env from the run"
"$relay" eval --model ev --episodes 2 > /dev/null || fail "eval --model RUN_DIR"
# Gaussian policies export their log std, so --stochastic works for Pendulum
"$relay" train --env Pendulum-v1 --steps 4096 --out pend > /dev/null 2> pend.err || true
"$relay" eval --run pend --stochastic --episodes 2 > e2.txt || fail "Pendulum --stochastic refused"
grep -q "policy stochastic" e2.txt || fail "Pendulum eval not stochastic"
# ... and its last progress line is printed once (plain output)
dups=$(grep '^steps' pend.err | sed 's/ | [0-9:]*$//; s/ | [0-9.k]* steps\/s//' | uniq -d | wc -l)
[ "$dups" -eq 0 ] || { cat pend.err; fail "a progress line was printed twice"; }
# a budget below one update: no absurd percentage
"$relay" train --steps 1 --out tiny > /dev/null 2> tiny.err || true
grep -q "rounded up to whole updates) (100%)" tiny.err || { cat tiny.err; fail "tiny budget progress"; }
grep -q "[0-9]\{4,\}%" tiny.err && fail "absurd percentage"
# inspect separates the episodes left unfinished at shutdown
"$relay" train --steps 2048 --sink arrow --out ins --quiet > /dev/null || true
"$relay" inspect ins/trajectories/run.arrow > ins.txt || fail "inspect"
grep -q "finished, [0-9]* unfinished" ins.txt || { cat ins.txt; fail "inspect: no unfinished count"; }
# --init-model warm-starts the policy from a policy.onnx (the resumed run k learned for 20 K steps)
"$relay" train --seed 5 --steps 4096 --eval-every 0 --init-model k/policy_last.onnx --out warm --quiet > /dev/null || true
first=$(awk -F, 'NR > 1 && $5 != "nan" { print $5; exit }' warm/metrics.csv)
awk -v m="$first" 'BEGIN { exit !(m > 50) }' || fail "warm start: first mean return $first"
set +e
msg=$("$relay" train --init-model k/policy_last.onnx --net-arch 32 --out warm2 --quiet 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "--init-model of another architecture: exit $rc"
grep -q "does not fit" <<< "$msg" || fail "--init-model mismatch message: $msg"
echo "train features test passed"
