#!/usr/bin/env bash
# usage: bench/run.sh [SECS] [CONNS]
# Side-by-side benchmarks of pagi-server against the anchors with the shared scripts (server
# pinned to CPU 0, load on CPU 1): HTTP/1.1 hello-world (hyper, nginx, granian, uvicorn,
# hypercorn), the same over TLS (hyper + tokio-rustls, the shared test certificate), WebSocket
# echo (tokio-tungstenite, granian, uvicorn), HTTP/2 hello-world over h2c (hyper, nginx, granian),
# then the memory of idle keep-alive connections and worker scaling (bench/workers.sh). BENCH_DIR points at the shared bench scripts
# (default ../shared/bench); BENCH_ONLY=hyper limits the anchors.
set -euo pipefail
cd "$(dirname "$0")/.."
bench=${BENCH_DIR:-../shared/bench}
secs=${1:-8}; conns=${2:-64}
"$bench/setup.sh"
cargo build --release -q
"$bench/h1.sh" "$secs" "$conns" \
  "pagi=http://127.0.0.1:18100/ target/release/pagi-server --listen 127.0.0.1:18100 --log-level warn"
cert=$HOME/.cache/pagi-bench/cert.pem key=$HOME/.cache/pagi-bench/key.pem
"$bench/tls.sh" "$secs" "$conns" \
  "pagi=https://127.0.0.1:18101/ target/release/pagi-server --listen https://127.0.0.1:18101 --ssl-cert $cert --ssl-key $key --log-level warn"
"$bench/ws.sh" "$secs" "$conns" 64 \
  "pagi=ws://127.0.0.1:18102/ target/release/pagi-server --listen 127.0.0.1:18102 --log-level warn"
"$bench/h2.sh" 100000 \
  "pagi=http://127.0.0.1:18103/ target/release/pagi-server --listen 127.0.0.1:18103 --log-level warn --threads 1"
port=18110
ulimit -n 20000 2>/dev/null || true
taskset -c 0 target/release/pagi-server --listen 127.0.0.1:$port --log-level warn --max-connections 0 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
python3 "$bench/idle_mem.py" "$pid" 127.0.0.1 $port 5000
kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
trap - EXIT
bench/workers.sh "$secs" "$conns"
