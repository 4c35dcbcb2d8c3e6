#!/usr/bin/env bash
# Starts a private nats-server (JetStream, file store in a temporary directory, free loopback
# port), runs bench_nats throughput and broadcast against it, then distributed CartPole against
# in-process training (5 runs each, medians), and stops everything it started.
#   usage: bench/transport/run.sh [BUILD_DIR] [RUNS]
set -euo pipefail
build=${1:-build}
runs=${2:-5}
bin="$build/bench/transport/bench_nats"
relay="$build/src/cli/relay"
tmp=$(mktemp -d /tmp/relay-bench-nats-XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$port" -sd "$tmp/store" >"$tmp/nats.log" 2>&1 &
nats=$!
trap 'kill $nats 2>/dev/null; wait $nats 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
url="nats://127.0.0.1:$port"
echo "# commit $(git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" throughput "$url" 5
"$bin" broadcast "$url" 300
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
: >"$tmp/in.txt"
: >"$tmp/dist.txt"
for i in $(seq "$runs"); do
  "$relay" train --out "$tmp/in$i" --quiet >/dev/null 2>&1 || true
  tail -1 "$tmp/in$i/metrics.csv" | cut -d, -f3 >>"$tmp/in.txt"
  "$relay" train --distributed 2 --out "$tmp/d$i" >/dev/null 2>&1 || true
  tail -1 "$tmp/d$i/metrics.csv" | cut -d, -f3 >>"$tmp/dist.txt"
done
echo "CartPole-v1 to 475, learner wall seconds at the last update, median of $runs:" \
     "in-process relay train $(median <"$tmp/in.txt") s ($(tr '\n' ' ' <"$tmp/in.txt"))," \
     "distributed (1 server + 2 actor processes + nats-server) $(median <"$tmp/dist.txt") s" \
     "($(tr '\n' ' ' <"$tmp/dist.txt"))"
