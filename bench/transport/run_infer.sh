#!/usr/bin/env bash
# Central inference A/B (docs/PERFORMANCE.md): runs bench_infer in rounds, each round every
# configuration once (interleaved, so the shared machine's load falls on all of them alike), and
# prints each run and the medians per configuration. Configurations are bench_infer argument
# strings; a configuration may start with BIN= to use another build's bench_infer.
#   usage: bench/transport/run_infer.sh [BUILD_DIR] [ROUNDS] [SECONDS] -- CONFIG...
#   e.g.   bench/transport/run_infer.sh build 5 3 -- "--close wait" "--close early" \
#            "--close early --envs 8"
set -euo pipefail
build=${1:-build}
rounds=${2:-5}
secs=${3:-3}
shift 3 || true
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- "--close wait" "--close early"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$(mktemp /tmp/relay-bench-infer-XXXXXX)
trap 'rm -f "$out"' EXIT
echo "# commit $(git rev-parse --short HEAD), $(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
    for i in $(seq $#); do
        cfg=${!i}
        bin="$build/bench/transport/bench_infer"
        case $cfg in BIN=*) bin=${cfg%% *}; bin=${bin#BIN=}; cfg=${cfg#* } ;; esac
        # shellcheck disable=SC2086
        res=$("$bin" --seconds "$secs" --url "tcp://127.0.0.1:$port" --mode remote $cfg)
        line=$(echo "$res" | head -1)
        echo "round $r [$i] $cfg: ${line#bench_infer remote: }"
        echo "$res" | sed -n '2,4p' | sed 's/^bench_infer remote: /    /'
        echo "$i $line" >>"$out"
    done
done
echo "# load after $(cut -d' ' -f1-3 /proc/loadavg)"
for i in $(seq $#); do
    /usr/bin/python3 - "$out" "$i" "${!i}" <<'EOF'
import re, statistics, sys
path, idx, cfg = sys.argv[1], sys.argv[2], sys.argv[3]
rows = [l for l in open(path) if l.split(" ", 1)[0] == idx]
def col(pat):
    return [float(re.search(pat, l).group(1)) for l in rows]
aps, p50, p99, mb = (col(r"([0-9]+) actions/s"), col(r"p50 ([0-9]+) us"),
                     col(r"p99 ([0-9]+) us"), col(r"mean ([0-9.]+) rows"))
print("median of %d [%s] %s: %.0f actions/s, p50 %.0f us, p99 %.0f us, mean batch %.1f rows"
      % (len(rows), idx, cfg, statistics.median(aps), statistics.median(p50),
         statistics.median(p99), statistics.median(mb)))
EOF
done
