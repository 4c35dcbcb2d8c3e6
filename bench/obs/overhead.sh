#!/usr/bin/env bash
# Overhead of observability on `relay train` and on the actor loop, side by side:
#
#   bench/obs/overhead.sh BASE_BUILD NEW_BUILD [ROUNDS=5] [STEPS=300000]
#
# BASE_BUILD is a build of a commit without the metrics code (e.g. `git archive <commit>` built in
# /tmp), NEW_BUILD this tree's build. Each round runs, one after the other (never in parallel):
#   train base       BASE/relay train (no metrics)
#   train new        NEW/relay train (metrics off)
#   train new+scrape NEW/relay train --metrics-addr 127.0.0.1:0, scraped every second like
#                    Prometheus plus an open dashboard (curl /metrics and /api/curve)
#   loop base / new  bench_agent_actor_loop case c (64 actors x 16 envs, 2 routers), both builds
# and prints per side the median steps/s and CPU microseconds per env step (user + system of the
# whole process; steadier than wall time on a loaded machine), and the median ratio of each to the
# base of the same round.
set -u
base=$1
new=$2
rounds=${3:-5}
steps=${4:-300000}
tmp=$(mktemp -d)
scraper=""
cleanup() { [ -n "$scraper" ] && kill "$scraper" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
echo "# overhead.sh: commit $(git rev-parse --short HEAD 2>/dev/null), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

result() { # prints "steps/s cpu_us_per_step" from the run's output and /usr/bin/time
  local sps n cpu
  sps=$(sed -n 's/.*s (\([0-9.]*\) steps\/s).*/\1/p' "$tmp/out.txt")
  n=$(sed -n 's/.* after \([0-9]*\) steps.*/\1/p' "$tmp/out.txt")
  cpu=$(tail -1 "$tmp/time.txt")
  awk -v s="$sps" -v n="$n" -v c="$cpu" 'BEGIN { split(c, t, " "); printf "%s %.3f\n", s, (t[1] + t[2]) * 1e6 / n }'
}

train() { # $1 relay binary, $2.. extra args
  local relay=$1; shift
  rm -rf "$tmp/run"
  /usr/bin/time -o "$tmp/time.txt" -f "%U %S" "$relay" train --steps "$steps" --target 1000000000 \
    --seed 1 --sink none --quiet --out "$tmp/run" "$@" > "$tmp/out.txt" 2> "$tmp/err.txt"
  result
}

train_scraped() {
  rm -rf "$tmp/run"
  /usr/bin/time -o "$tmp/time.txt" -f "%U %S" "$new/src/cli/relay" train --steps "$steps" \
    --target 1000000000 --seed 1 --sink none --quiet --out "$tmp/run" \
    --metrics-addr 127.0.0.1:0 > "$tmp/out.txt" 2> "$tmp/err.txt" &
  local pid=$!
  ( while kill -0 "$pid" 2>/dev/null; do
      if [ -s "$tmp/run/metrics_url" ]; then
        u=$(cat "$tmp/run/metrics_url")
        curl -s -o /dev/null "${u}metrics"; curl -s -o /dev/null "${u}api/curve?since=0"
      fi
      sleep 1
    done ) &
  scraper=$!
  wait "$pid"
  kill "$scraper" 2>/dev/null; wait "$scraper" 2>/dev/null; scraper=""
  result
}

loop() { # $1 build dir; prints "M steps/s cpu_ns_per_step" of case c, sinks off
  BENCH_CASE=c "$1/bench/agent/bench_agent_actor_loop" 1 3 "$tmp" 2>/dev/null |
    sed -n 's/.*sinks=off .* \([0-9.]*\) M steps\/s.*cpu *\([0-9.]*\) ns\/step.*/\1 \2/p' | head -1
}

declare -a tb tn ts lb ln
for r in $(seq 1 "$rounds"); do
  tb[$r]=$(train "$base/src/cli/relay")
  tn[$r]=$(train "$new/src/cli/relay")
  ts[$r]=$(train_scraped)
  lb[$r]=$(loop "$base")
  ln[$r]=$(loop "$new")
  echo "round $r: train steps/s + cpu us/step: base ${tb[$r]} | new ${tn[$r]} | new+scrape ${ts[$r]};" \
       "actor loop M steps/s + cpu ns/step: base ${lb[$r]} | new ${ln[$r]}; load $(cut -d' ' -f1 /proc/loadavg)"
done
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
col() { # $1 array name, $2 field: prints that field of every round
  local -n arr=$1
  for r in $(seq 1 "$rounds"); do echo "${arr[$r]}" | awk -v f="$2" '{print $f}'; done
}
ratio() { # $1 numerator array, $2 denominator array, $3 field: median of per-round ratios
  paste <(col "$1" "$3") <(col "$2" "$3") | awk '$2 > 0 {print $1 / $2}' | median
}
report() { # $1 label, $2 array, $3 reference array (or "")
  local line
  line=$(printf "%-22s median %10s /s  cpu %8s per step" "$1" "$(col "$2" 1 | median)" "$(col "$2" 2 | median)")
  [ -n "$3" ] && line="$line   ratio to base: rate $(ratio "$2" "$3" 1), cpu/step $(ratio "$2" "$3" 2)"
  echo "$line"
}
report "train base" tb ""
report "train new" tn tb
report "train new+scrape" ts tb
echo "train new+scrape vs new: rate $(ratio ts tn 1), cpu/step $(ratio ts tn 2)"
report "actor loop base (M)" lb ""
report "actor loop new (M)" ln lb
