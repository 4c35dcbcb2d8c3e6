#!/usr/bin/env bash
# Reward normalisation in `relay train` (--norm-reward / ppo.norm_reward, --clip-reward): config.json
# records it, metrics.csv keeps raw returns, checkpoints carry it across --resume, Pendulum learns
# with it, and bad values are refused naming the key.
set -euo pipefail
relay="$1"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$out"
fail() { echo "FAIL: $*"; exit 1; }
# Pendulum must reach mean return -250 (exit 3 when a given --target is missed); sanitizers check
# the plumbing only, not the learning
steps=100000 learn=(--target -250)
[ -n "${RELAY_SANITIZED:-}" ] && steps=8192 learn=()
"$relay" train --env Pendulum-v1 --seed 1 --steps "$steps" --norm-reward true --clip-reward 5 \
  --eval-every 0 --out p --quiet "${learn[@]}" > p.txt || { cat p.txt; fail "Pendulum with --norm-reward: exit $?"; }
cat p.txt
/usr/bin/python3 - p "$steps" <<'PY'
import csv, json, sys
run, steps = sys.argv[1], int(sys.argv[2])
c = json.load(open(run + "/config.json"))
assert c["ppo"]["norm_reward"] is True and c["ppo"]["clip_reward"] == 5, c["ppo"]
rows = list(csv.DictReader(open(run + "/metrics.csv")))
first = float(rows[0]["mean_return_100"])
last = float(rows[-1]["mean_return_100"])
# raw returns: an untrained Pendulum policy scores about -1200 (normalised rewards would sum to
# a few tens), and the value loss is on the normalised scale (raw returns would give thousands)
assert first < -500, first
assert float(rows[0]["value_loss"]) < 50, rows[0]["value_loss"]
print("norm_reward: first %.1f, last row %.1f after %s updates" % (first, last, rows[-1]["update"]))
PY
# checkpoints carry the reward statistics; --resume continues (the run's config keeps norm_reward)
"$relay" train --env CartPole-v1 --seed 3 --steps 2048 --norm-reward true --save-every 2 \
  --eval-every 0 --out c --quiet > /dev/null || fail "CartPole --norm-reward --save-every: exit $?"
set +e
"$relay" train --resume c --steps 4096 --quiet > c2.txt 2>&1; rc=$?
set -e
# (the resumed run's config.json names a target, so a missed one is exit 3)
[ $rc -eq 0 ] || [ $rc -eq 3 ] || { cat c2.txt; fail "resume: exit $rc"; }
[ "$(tail -1 c/metrics.csv | cut -d, -f2)" -ge 4096 ] || fail "resumed run did not continue"
# bad values name the flag or section.key, exit 2
set +e
msg=$("$relay" train --clip-reward -1 --out bad1 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--clip-reward" <<< "$msg" || fail "--clip-reward -1: exit $rc: $msg"
msg=$("$relay" train --norm-reward maybe --out bad2 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--norm-reward" <<< "$msg" || fail "--norm-reward maybe: exit $rc: $msg"
printf '{"ppo": {"clip_reward": -2}}\n' > b3.json
msg=$("$relay" train --config b3.json --out bad3 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "ppo.clip_reward" <<< "$msg" || fail "ppo.clip_reward -2: exit $rc: $msg"
printf '{"train": {"algo": "reinforce"}, "reinforce": {"norm_reward": "yes"}}\n' > b4.json
msg=$("$relay" train --config b4.json --out bad4 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "reinforce.norm_reward" <<< "$msg" || fail "reinforce.norm_reward: exit $rc: $msg"
set -e
echo "norm reward test passed"
