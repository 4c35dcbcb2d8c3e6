#!/usr/bin/env bash
# `relay train --resume` ends bit-identical to an uninterrupted run with the same seed (built-in
# environments): the same policy.onnx / policy_last.onnx bytes and the same metrics.csv rows
# (wall_s and sps excluded), after an interruption by --max-updates or by kill -9. Also: the
# metrics row of the update that reaches the target is written; mismatched snapshot sections are
# refused naming the section; a plug-in without RELAY_ENV_PLAIN_STATE resumes learner-exact.
set -euo pipefail
relay="$1"
plugin="$2" # a plug-in without RELAY_ENV_PLAIN_STATE (misbehave_plugin.so, harmless mode)
out=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$out"; }
trap cleanup EXIT
cd "$out"
fail() { echo "FAIL: $*"; exit 1; }
unset RELAY_TEST_MISBEHAVE

# same RUN_A RUN_B: identical policies and metrics rows (columns 3 and 4 are wall_s and sps)
same() {
  cmp "$1/policy.onnx" "$2/policy.onnx" || fail "$1 vs $2: policy.onnx differs"
  cmp "$1/policy_last.onnx" "$2/policy_last.onnx" || fail "$1 vs $2: policy_last.onnx differs"
  cut -d, -f1,2,5- "$1/metrics.csv" > "$1.rows"
  cut -d, -f1,2,5- "$2/metrics.csv" > "$2.rows"
  diff "$1.rows" "$2.rows" > /dev/null || { diff "$1.rows" "$2.rows" | head; fail "$1 vs $2: metrics.csv rows differ"; }
}
run() { "$relay" train --quiet "$@" > /dev/null 2>> log.txt || [ $? -eq 3 ]; }

# --- CartPole, 3 actors on 2 routers: --max-updates then --resume ---------------------------------
common=(--seed 7 --steps 12000 --actors 3 --eval-every 4 --eval-episodes 3 --save-every 5 --target 100000)
run "${common[@]}" --out full
run "${common[@]}" --out part --max-updates 17
[ "$(tail -1 part/metrics.csv | cut -d, -f1)" = 17 ] || fail "--max-updates 17 did not stop at update 17"
run --resume part
same full part
# a resume of a resume: interrupt twice
run "${common[@]}" --out twice --max-updates 8
run --resume twice --max-updates 26
run --resume twice
same full twice

# interrupt SIGNAL DIR ROWS: train DIR (30,000 steps) in the background and send SIGNAL once it has
# a checkpoint and more than ROWS metrics rows
interrupt() {
  "$relay" train "${common[@]}" --steps 30000 --out "$2" --quiet > /dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 3000); do
    [ -s "$2/checkpoint.ckpt" ] && [ -s "$2/metrics.csv" ] && [ "$(wc -l < "$2/metrics.csv")" -gt "$3" ] && break
    sleep 0.01
  done
  kill "-$1" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=
  [ -s "$2/checkpoint.ckpt" ] || fail "no checkpoint before kill -$1"
}

# --- kill -9 after a checkpoint, then --resume ------------------------------------------------------
interrupt KILL killed 22
run --resume killed
run "${common[@]}" --steps 30000 --out full30
same full30 killed

# --- SIGTERM (a graceful interrupt: the final checkpoint, or the previous one when the stop cut an
#     update short), then --resume -----------------------------------------------------------------
interrupt TERM termed 15
run --resume termed
same full30 termed

# --- continuous actions (Pendulum-v1, Gaussian sampling RNG) ------------------------------------
pc=(--env Pendulum-v1 --seed 3 --steps 12288 --eval-every 2 --eval-episodes 2 --save-every 1)
run "${pc[@]}" --out pfull
run "${pc[@]}" --out ppart --max-updates 2
run --resume ppart
same pfull ppart

# --- the update that reaches the target has its metrics row; the stop does not depend on timing --
"$relay" train --seed 2 --steps 200000 --target 100 --eval-every 0 --out tgt --quiet > tgt.txt
grep -q "target reached" tgt.txt || fail "target not reached: $(cat tgt.txt)"
up=$(sed -n 's/.*steps, \([0-9]*\) updates.*/\1/p' tgt.txt)
last=$(tail -1 tgt/metrics.csv)
[ "$(cut -d, -f1 <<< "$last")" = "$up" ] || fail "the last metrics row is not update $up: $last"
awk -F, '{ exit !($5 >= 100) }' <<< "$last" || fail "the last row does not reach the target: $last"
"$relay" train --seed 2 --steps 200000 --target 100 --eval-every 0 --out tgt2 --quiet > /dev/null
same tgt tgt2

# --- with a trajectory sink, the resumed run writes its own files next to the first ones ----------
run --steps 4096 --sink arrow --save-every 2 --max-updates 3 --eval-every 0 --out sunk
run --resume sunk
[ -s sunk/trajectories/run.arrow ] && [ -s sunk/trajectories/run-resume3.arrow ] \
  || fail "trajectory files of the resumed run: $(ls sunk/trajectories)"

# --- a snapshot section that does not fit the run is refused, naming it -----------------------------
set +e
msg=$("$relay" train --resume part --actors 2 --steps 30000 --quiet 2>&1); rc=$?
set -e
[ $rc -eq 2 ] || fail "resume with other --actors: exit $rc ($msg)"
grep -q 'checkpoint section "actor snapshots"' <<< "$msg" || fail "section not named: $msg"

# --- a plug-in without RELAY_ENV_PLAIN_STATE: learner-exact resume, said so ------------------------
"$relay" train --env "$plugin" --steps 4096 --save-every 2 --max-updates 3 --eval-every 0 --out plug --quiet > /dev/null 2>&1 || true
set +e
msg=$("$relay" train --resume plug --quiet 2>&1); rc=$?
set -e
[ $rc -eq 0 ] || [ $rc -eq 3 ] || fail "plug-in resume: exit $rc ($msg)"
grep -q "not bit-identical" <<< "$msg" || fail "plug-in resume did not say it is not exact: $msg"
echo "resume exact test passed"
