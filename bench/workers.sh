#!/usr/bin/env bash
# usage: bench/workers.sh [SECS] [CONNS]
# Worker scaling: HTTP/1.1 keep-alive hello-world with wrk (2 threads) against one process
# (--threads 1) and against --workers 2 (--threads 1 each). Nothing is pinned: on a 2-core
# machine the load generator shares the cores with the server, so read the result as a scaling
# ratio on this machine, not as the server's capacity.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-8}; conns=${2:-64}
cargo build --release -q --bin pagi-server
port=18120
run() {
  local name=$1; shift
  target/release/pagi-server --listen 127.0.0.1:$port --log-level warn --threads 1 "$@" &
  local pid=$!
  for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  sleep 0.5
  local out; out=$(wrk -t2 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/" 2>&1)
  kill -TERM $pid; wait $pid 2>/dev/null || true
  printf '%-12s rps=%-10s %s\n' "$name" "$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
    "$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr '\n' ' ')"
}
run "1 process"
run "2 workers" --workers 2
