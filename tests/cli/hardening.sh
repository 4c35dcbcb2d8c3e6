#!/usr/bin/env bash
# Adversarial checks of the `relay` executable (issue 15): every subcommand against a table of bad
# arguments (exit status and a message naming the problem), run directories that cannot take a
# run, a full disk, 64-bit seeds through config.json, signals at start-up and a closed stdout.
set -uo pipefail
relay="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
cases=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# ---- bad arguments: exit status | message fragment | arguments (one case per line) ----------
touch "$tmp/afile"
printf '{"routers": 2} trailing' > "$tmp/garbage.json"
printf '{"seed": 1, "train": {"seed": 2}}' > "$tmp/twoseeds.json"
printf '{"seed": 18446744073709551615}' > "$tmp/bigseed.json"
while IFS='|' read -r want msg args; do
  [ -z "$want" ] && continue
  # shellcheck disable=SC2086
  out=$(eval "\"$relay\" $args" 2>&1 > /dev/null)
  got=$?
  cases=$((cases + 1))
  if [ "$got" != "$want" ] || ! grep -qF -- "$msg" <<< "$out"; then
    fail "relay $args: exit $got (want $want), stderr: $out (want: $msg)"
  fi
done <<TABLE
2|unknown command "frobnicate"|frobnicate
2|usage: relay <command>|
2|--max-seconds: "abc" is not a number|train --max-seconds abc
2|--max-seconds: 4294967297 is above the maximum 2592000|train --max-seconds 4294967297
2|--routers: 100000 is above the maximum 4096|train --routers 100000
2|--routers: 0 is below the minimum 1|train --routers 0
2|--actors: 0 is below the minimum 1|train --actors 0
2|--actors: 4097 is above the maximum 4096|train --actors 4097
2|--envs-per-actor: 65536 is above the maximum 4096|train --actors 1 --envs-per-actor 65536
2|= 65536 environments is above the maximum 16384|train --actors 16 --envs-per-actor 4096
2|--seed: 18446744073709551616 is above the maximum 18446744073709551615|train --seed 18446744073709551616
2|--seed: -1 is below the minimum 0|train --seed -1
2|--steps: "1e6" is not an integer|train --steps 1e6
2|--target: "nan" is not a finite number|train --target nan
2|--actors needs a value|train --actors
2|--env needs a value|train --env=
2|unknown option "--frob"|train --frob 3
2|unexpected argument "stray"|train stray
2|--algo must be one of ppo or reinforce (not "sac")|train --algo sac
2|--sink must be one of none, arrow, csv or binary (not "parquet")|train --sink parquet
2|unknown environment "NoSuchEnv-v9"|train --env NoSuchEnv-v9
2|cannot open|train --config $tmp/missing.json
2|malformed JSON|train --config $tmp/garbage.json
2|disagree|train --config $tmp/twoseeds.json
2|write it as a string|train --config $tmp/bigseed.json
2|exists and is not a directory|train --out $tmp/afile
2|--model and --env (or --run) are required|eval
2|--episodes: 0 is below the minimum 1|eval --model x --env CartPole-v1 --episodes 0
2|--episodes: "1e9" is not an integer|eval --model x --env CartPole-v1 --episodes 1e9
2|--seed: "abc" is not a number|eval --model x --env CartPole-v1 --seed abc
2|--max-episode-steps: 0 is below the minimum 1|eval --model x --env CartPole-v1 --max-episode-steps 0
2|unknown option "--fast"|eval --model x --env CartPole-v1 --fast
2|cannot open model|eval --model $tmp/nope.onnx --env CartPole-v1
2|a FILE to inspect is required|inspect
2|--rows: -1 is below the minimum 0|inspect $tmp/afile --rows -1
2|--rows: "1e9" is not an integer|inspect $tmp/afile --rows 1e9
2|--rows: 1000001 is above the maximum 1000000|inspect $tmp/afile --rows 1000001
2|unknown option "--bogus"|inspect $tmp/afile --bogus
2|one FILE at a time|inspect $tmp/afile $tmp/afile
1|No such file or directory|inspect $tmp/missing.arrow
2|--steps: "abc" is not a number|server --nats nats://127.0.0.1:9 --steps abc
2|--algo must be one of ppo or reinforce (not "sac")|server --nats nats://127.0.0.1:9 --algo sac
2|--correction must be one of ppo or vtrace (not "x")|server --nats nats://127.0.0.1:9 --correction x
2|--replicas: 6 is above the maximum 5|server --nats nats://127.0.0.1:9 --replicas 6
2|--nats URL or --zmq URL is required|server
2|unknown option "--frob"|server --frob 3
2|--routers: 300 is above the maximum 256|actors --nats nats://127.0.0.1:9 --routers=300
2|--actors: 0 is below the minimum 1|actors --nats nats://127.0.0.1:9 --actors 0
2|--wait needs a value|actors --nats nats://127.0.0.1:9 --wait
2|unknown option "--bogus"|actors --bogus
TABLE

# ---- run directories ---------------------------------------------------------------------------
run() { "$relay" train --steps 2048 --quiet "$@"; }
run --out "$tmp/r1" --seed 18446744073709551615 > /dev/null
[ $? -eq 0 ] || fail "first run into r1"
before=$(md5sum "$tmp/r1/policy.onnx")
out=$(run --out "$tmp/r1" 2>&1 > /dev/null); st=$?
[ $st -eq 2 ] && grep -q "already holds a run" <<< "$out" || fail "second run into r1: exit $st: $out"
[ "$(md5sum "$tmp/r1/policy.onnx")" = "$before" ] || fail "second run changed r1's files"
# A file sink that cannot open fails before training, naming the directory.
mkdir -p "$tmp/r2" && touch "$tmp/r2/trajectories"
out=$(run --out "$tmp/r2" --sink arrow 2>&1 > /dev/null); st=$?
[ $st -eq 2 ] && grep -q "trajectories exists and is not a directory" <<< "$out" \
  || fail "trajectories file: exit $st: $out"
# A sink that cannot open (malformed RELAY_KEY for the binary sink): exit 1 before training, and
# no half run is left behind, so the same --out works afterwards.
out=$(RELAY_KEY=zz run --out "$tmp/r5" --sink binary 2>&1 > /dev/null); st=$?
[ $st -eq 1 ] && grep -q "binary sink cannot write in $tmp/r5/trajectories" <<< "$out" \
  || fail "bad RELAY_KEY: exit $st: $out"
[ -e "$tmp/r5" ] && fail "bad RELAY_KEY left $tmp/r5 behind"
run --out "$tmp/r5" > /dev/null; [ $? -eq 0 ] || fail "retry into r5 after a failed start"
# An Arrow batch size the sink cannot take is refused by the configuration itself.
printf '{"sinks": {"arrow": {"batch_rows": 67108864}}}' > "$tmp/rows.json"
out=$(run --out "$tmp/r6" --config "$tmp/rows.json" --sink arrow 2>&1 > /dev/null); st=$?
[ $st -eq 2 ] && grep -q "sinks.arrow.batch_rows" <<< "$out" || fail "batch_rows: exit $st: $out"
# Full disk (a 4 KiB file size limit): exit 1 naming the file, never a cut policy.onnx.
out=$( (trap '' XFSZ; ulimit -f 4; run --out "$tmp/r3") 2>&1 > /dev/null); st=$?
[ $st -eq 1 ] && grep -q "cannot write $tmp/r3/policy.onnx" <<< "$out" || fail "full disk: exit $st: $out"
[ -e "$tmp/r3/policy.onnx" ] && fail "full disk left a partial policy.onnx"
ls "$tmp/r3" | grep -q '\.tmp$' && fail "full disk left a temporary file"

# ---- seeds: exact in config.json, and --config RUN/config.json repeats RUN ---------------------
grep -q '"seed":[[:space:]]*"18446744073709551615"' "$tmp/r1/config.json" || fail "seed not exact in config.json"
run --out "$tmp/r1b" --config "$tmp/r1/config.json" > /dev/null
cmp -s "$tmp/r1/policy.onnx" "$tmp/r1b/policy.onnx" || fail "--config RUN/config.json gave another policy"
run --out "$tmp/r4" --seed 9007199254740993 > /dev/null
grep -q '"seed":[[:space:]]*"9007199254740993"' "$tmp/r4/config.json" || fail "2^53+1 seed not exact"

# ---- signals: SIGTERM at any moment leaves a valid run (or none); exit 0 -----------------------
for delay in 0 0.01 0.05 0.3; do
  "$relay" train --steps 100000000 --target 100000 --out "$tmp/s$delay" --sink arrow --quiet \
    > "$tmp/s$delay.txt" 2> "$tmp/s$delay.err" &
  pid=$!
  sleep "$delay"
  kill -TERM "$pid"
  wait "$pid"; st=$?
  # 0 (stopped gracefully); 143 only when the signal came before main() installed its handler,
  # in which case nothing was written yet.
  if [ $st -eq 143 ] && [ ! -e "$tmp/s$delay" ]; then :; elif [ $st -ne 0 ]; then
    fail "SIGTERM after ${delay}s: exit $st ($(cat "$tmp/s$delay.err"))"
  fi
  if [ -e "$tmp/s$delay/trajectories/run.arrow" ]; then
    "$relay" inspect "$tmp/s$delay/trajectories/run.arrow" > /dev/null 2>&1 \
      || fail "SIGTERM after ${delay}s: invalid Arrow file"
  fi
  if [ -e "$tmp/s$delay/config.json" ]; then
    [ -s "$tmp/s$delay/policy.onnx" ] || fail "SIGTERM after ${delay}s: no policy.onnx"
  fi
done

# ---- a closed stdout (SIGPIPE) does not cut the run --------------------------------------------
"$relay" train --steps 2048 --out "$tmp/p" --quiet | true
st=${PIPESTATUS[0]}
[ $st -eq 0 ] || fail "closed stdout: exit $st"
[ -s "$tmp/p/policy.onnx" ] && [ -s "$tmp/p/metrics.csv" ] || fail "closed stdout: files missing"

# ---- environments that misbehave (plug-in fixture, second argument) ----------------------------
plugin="${2:-}"
if [ -n "$plugin" ]; then
  for how in "nan_reward|returned a non-finite reward" "inf_obs|returned a non-finite observation" \
             "huge_reward|returns that are not finite"; do
    mode=${how%%|*}; msg=${how#*|}
    out=$(RELAY_TEST_MISBEHAVE=$mode "$relay" train --env "$plugin" --steps 50000 \
          --out "$tmp/m-$mode" --quiet 2>&1 > /dev/null); st=$?
    [ $st -eq 1 ] && grep -q "Misbehave-v0.*$msg\|$msg" <<< "$out" || fail "train $mode: exit $st: $out"
    [ -e "$tmp/m-$mode/policy.onnx" ] && fail "train $mode wrote a policy trained on bad values"
  done
  out=$(RELAY_TEST_MISBEHAVE=endless "$relay" eval --model "$tmp/r1/policy.onnx" --env "$plugin" \
        --episodes 2 --max-episode-steps 50 2>&1); st=$?
  [ $st -eq 0 ] && grep -q "capped_episodes 2" <<< "$out" && grep -q "mean_length 50.00" <<< "$out" \
    || fail "eval of an endless env: exit $st: $out"
  out=$(RELAY_TEST_MISBEHAVE=nan_reward "$relay" eval --model "$tmp/r1/policy.onnx" \
        --env "$plugin" --episodes 2 2>&1 > /dev/null); st=$?
  [ $st -eq 1 ] && grep -q "Misbehave-v0 returned a non-finite reward" <<< "$out" \
    || fail "eval of a NaN env: exit $st: $out"
fi

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "cli hardening test passed ($cases bad-argument cases)"
