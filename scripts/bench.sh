#!/usr/bin/env bash
# Reproduces the figures of docs/BENCHMARKS.md on this machine, all on loopback (targets 6,
# 14a and 14b in network namespaces they create; need root). Usage: scripts/bench.sh
# [TARGET...]  (1–10 and 14; all by default; 8 is the drone's JPEG encoders, 9 the HTTP port
# (9a, 9b, 9c: its three targets), 10 data and messages, 14 quality layers and pacing (14a
# slow link at half the top layer's bitrate, pacing on vs off; 14b a quarter, layers on, then
# the shaping lifted and put back; 14c 200 viewers, layers off vs on; 14d the drone's cost per
# layer)). RUNS=3 sets the repeats whose medians are reported. The ports (loopback) can be
# moved with DRONE_PORT, CACHE_PORT, HTTP_PORT and META_PORT, e.g. when another copy is
# running.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
T=target/release
DRONE=127.0.0.1:${DRONE_PORT:-29999}
CACHE=127.0.0.1:${CACHE_PORT:-29998}
HTTP=127.0.0.1:${HTTP_PORT:-29980}
META=127.0.0.1:${META_PORT:-29970}
targets=()
for t in "${@:-1 2 3 4 5 6 7 8 9 10 14}"; do
  for u in $t; do
    case $u in
      9) targets+=(9a 9b 9c) ;;
      14) targets+=(14a 14b 14c 14d) ;;
      *) targets+=("$u") ;;
    esac
  done
done

cargo build --release --bins -q
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

DPID= CPID= FPID=
stop() {
  for pid in $FPID $CPID $DPID; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true; DPID= CPID= FPID=
}
trap stop EXIT
# start [cache-server flags…]: test-pattern drone (640x480, q80, 30 fps; extra flags in the
# array DRONE_FLAGS) → cache-server, with its HTTP port on $HTTP.
DRONE_FLAGS=()
start() {
  stop
  $T/drone --listen $DRONE --source test "${DRONE_FLAGS[@]}" >/dev/null 2>/tmp/dronecast-bench-drone.log &
  DPID=$!
  for _ in $(seq 200); do grep -q "drone serving" /tmp/dronecast-bench-drone.log && break; sleep 0.05; done
  $T/cache-server --upstream $DRONE --listen $CACHE --http $HTTP "$@" 2>/tmp/dronecast-bench-cache.log &
  CPID=$!
  # Readiness: the cache-server logs its upstream connection ("back" if its first dial came
  # before the drone listened).
  for _ in $(seq 200); do grep -qE "upstream (connected|back)" /tmp/dronecast-bench-cache.log && return; sleep 0.05; done
  echo "cache-server did not connect upstream; the drone's and its logs end:" >&2
  tail -n 5 /tmp/dronecast-bench-drone.log /tmp/dronecast-bench-cache.log >&2; exit 1
}
# start_with_data: as start, with the drone taking 1 KiB of JSON for every frame (fed at its
# 30 fps over UDP by relay-bench feed) and viewer messages (written to /dev/null).
start_with_data() {
  DRONE_FLAGS=(--meta-from "udp:$META" --messages-to stdout)
  start "$@"
  DRONE_FLAGS=()
  $T/relay-bench feed --udp $META --bytes 1024 --rate 30 &
  FPID=$!
}
# The layers of target 14: the full test pattern and a 320x240 layer at quality 50.
LAYERS=640x480,small=320x240@50
bench() { $T/relay-bench --server $CACHE --server-pid "$CPID" "$@"; }
http_bench() { $T/relay-bench --http --server $HTTP --server-pid "$CPID" "$@"; }

echo "# $(date -u +%FT%TZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# drone, cache-server and relay-bench all share these cores"
for t in "${targets[@]}"; do
  case $t in
    1) echo "## 1. 1000 viewers"; start; bench --viewers 1000 --duration 20 --warmup 3 --repeat "$RUNS" ;;
    2) echo "## 2. 200 viewers"; start; bench --viewers 200 --duration 20 --repeat "$RUNS" ;;
    3) echo "## 3. capacity sweep"; start
       $T/relay-bench sweep --server $CACHE --server-pid "$CPID" --counts 1000,1500,2000,2500,3000,4000 --duration 10 ;;
    4) echo "## 4a. 100 viewers, none stalled"; start; bench --viewers 100 --duration 20 --repeat "$RUNS"
       echo "## 4b. 100 viewers and one that never reads"; start; bench --viewers 100 --stalled 1 --duration 20 --repeat "$RUNS"
       echo "## 4c. the same over 60 s, for RSS"; start; bench --viewers 100 --stalled 1 --duration 60 --intervals 6 ;;
    5) echo "## 5. joining one by one"; start; bench --viewers 100 --join-interval-ms 20 --duration 5 --repeat "$RUNS" ;;
    6) echo "## 6. slow link (half the stream's bitrate), low watermark on vs off (before pacing)"; stop
       for _ in $(seq "$RUNS"); do $T/relay-bench slowlink --compare lowat --pacing off --duration 60 --intervals 6; done ;;
    7) echo "## 7. frame header micro-benchmarks"; cargo bench -q -p framing --bench header 2>/dev/null | grep -E "^[a-z].*|time:" ;;
    8) echo "## 8. JPEG encoders (drone), 640x480 q80"; stop
       cargo bench -q -p drone --bench encode 2>/dev/null | grep -E "^[a-z].*|time:|thrpt:" ;;
    9a) echo "## 9a. 200 viewers: dronecast, then HTTP (CPU ratio)"
       start; bench --viewers 200 --duration 20 --repeat "$RUNS"
       start; http_bench --viewers 200 --duration 20 --repeat "$RUNS" ;;
    9b) echo "## 9b. 1000 HTTP viewers"; start; http_bench --viewers 1000 --duration 20 --warmup 3 --repeat "$RUNS" ;;
    9c) echo "## 9c. 100 HTTP viewers, none stalled"; start; http_bench --viewers 100 --duration 20 --repeat "$RUNS"
       echo "## 9c. 100 HTTP viewers and one that sends its GET and never reads"
       start; http_bench --viewers 100 --stalled 1 --duration 20 --repeat "$RUNS"
       echo "## 9c. the same over 60 s, for RSS"; start; http_bench --viewers 100 --stalled 1 --duration 60 --intervals 6 ;;
    10) echo "## 10a. 200 viewers, no data, no messages"; start; bench --viewers 200 --duration 20 --repeat "$RUNS"
        echo "## 10b. 200 viewers, 1 KiB of JSON on every frame, a message per viewer a second"
        start_with_data; bench --viewers 200 --duration 20 --messages-per-second 1 --repeat "$RUNS" ;;
    14a) echo "## 14a. slow link at half the top layer's bitrate, layers off: pacing on, then off"; stop
        for _ in $(seq "$RUNS"); do $T/relay-bench slowlink --rate-kbit 8000 --duration 60 --intervals 6; done ;;
    14b) echo "## 14b. slow link at a quarter, layers on (viewer on auto): then lifted, then back"; stop
        for _ in $(seq "$RUNS"); do
          $T/relay-bench slowlink --rate-kbit 4000 --layers "$LAYERS" --duration 60 --intervals 6
        done ;;
    14c) echo "## 14c. 200 viewers: drone without layers (CPU ratio against the next two)"
        start; bench --viewers 200 --duration 20 --repeat "$RUNS"
        echo "## 14c. 200 viewers: drone with --layers $LAYERS, viewers' hello without layers (top)"
        DRONE_FLAGS=(--layers "$LAYERS"); start; bench --viewers 200 --duration 20 --repeat "$RUNS"
        echo "## 14c. the same, viewers on auto (the relay's choice; on loopback, the top)"
        start; DRONE_FLAGS=(); bench --viewers 200 --duration 20 --repeat "$RUNS" --layer auto ;;
    14d) echo "## 14d. what a layer costs the drone"; stop
        cargo bench -q -p drone --bench layers 2>/dev/null | grep -E "^[a-z].*|time:|thrpt:" ;;
  esac
done
