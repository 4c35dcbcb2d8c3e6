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
echo "train features test passed"
