#!/usr/bin/env bash
# Starts a private nats-server (JetStream, file store in a temporary directory, free loopback
# port) and runs bench_zmq: raw libzmq PUSH/PULL vs the ZeroMQ transport vs the NATS transport,
# same bytes, same run. Stops everything it started.
#   usage: bench/transport/run_zmq.sh [BUILD_DIR] [RUNS] [SECONDS]
set -euo pipefail
build=${1:-build}
runs=${2:-5}
secs=${3:-2}
bin="$build/bench/transport/bench_zmq"
tmp=$(mktemp -d /tmp/relay-bench-zmq-XXXXXX)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
nats-server -js -a 127.0.0.1 -p "$port" -sd "$tmp/store" >"$tmp/nats.log" 2>&1 &
nats=$!
trap 'kill $nats 2>/dev/null; wait $nats 2>/dev/null; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
echo "# commit $(git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin" "$runs" "$secs" "nats://127.0.0.1:$port"
