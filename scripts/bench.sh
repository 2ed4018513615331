#!/usr/bin/env bash
# Reproduces the figures of docs/BENCHMARKS.md on this machine, all on loopback (target 6 in
# network namespaces it creates; needs root). Usage: scripts/bench.sh [TARGET...]  (1–8; all
# by default; 8 is the drone's JPEG encoders). RUNS=3 sets the repeats whose medians are
# reported.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
T=target/release
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(1 2 3 4 5 6 7 8)

cargo build --release --bins -q
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

DPID= CPID=
stop() { [ -n "$CPID" ] && kill "$CPID" 2>/dev/null; [ -n "$DPID" ] && kill "$DPID" 2>/dev/null; wait 2>/dev/null || true; DPID= CPID=; }
trap stop EXIT
# start [cache-server flags…]: test-pattern drone (640x480, q80, 30 fps) → cache-server.
start() {
  stop
  $T/drone --listen 127.0.0.1:29999 --source test 2>/tmp/dronecast-bench-drone.log &
  DPID=$!
  $T/cache-server --upstream 127.0.0.1:29999 --listen 127.0.0.1:29998 --http 127.0.0.1:29980 "$@" 2>/tmp/dronecast-bench-cache.log &
  CPID=$!
  # Readiness: the cache-server logs its upstream connection.
  for _ in $(seq 200); do grep -q "upstream connected" /tmp/dronecast-bench-cache.log && return; sleep 0.05; done
  echo "cache-server did not connect upstream" >&2; exit 1
}
bench() { $T/relay-bench --server 127.0.0.1:29998 --server-pid "$CPID" "$@"; }

echo "# $(date -u +%FT%TZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# drone, cache-server and relay-bench all share these cores"
for t in "${targets[@]}"; do
  case $t in
    1) echo "## 1. 1000 viewers"; start; bench --viewers 1000 --duration 20 --warmup 3 --repeat "$RUNS" ;;
    2) echo "## 2. 200 viewers"; start; bench --viewers 200 --duration 20 --repeat "$RUNS" ;;
    3) echo "## 3. capacity sweep"; start
       $T/relay-bench sweep --server 127.0.0.1:29998 --server-pid "$CPID" --counts 1000,1500,2000,2500,3000,4000 --duration 10 ;;
    4) echo "## 4a. 100 viewers, none stalled"; start; bench --viewers 100 --duration 20 --repeat "$RUNS"
       echo "## 4b. 100 viewers and one that never reads"; start; bench --viewers 100 --stalled 1 --duration 20 --repeat "$RUNS"
       echo "## 4c. the same over 60 s, for RSS"; start; bench --viewers 100 --stalled 1 --duration 60 --intervals 6 ;;
    5) echo "## 5. joining one by one"; start; bench --viewers 100 --join-interval-ms 20 --duration 5 --repeat "$RUNS" ;;
    6) echo "## 6. slow link (half the stream's bitrate)"; stop
       for _ in $(seq "$RUNS"); do $T/relay-bench slowlink --duration 60 --intervals 6; done ;;
    7) echo "## 7. frame header micro-benchmarks"; cargo bench -q -p framing --bench header 2>/dev/null | grep -E "^[a-z].*|time:" ;;
    8) echo "## 8. JPEG encoders (drone), 640x480 q80"; stop
       cargo bench -q -p drone --bench encode 2>/dev/null | grep -E "^[a-z].*|time:|thrpt:" ;;
  esac
done
