#!/usr/bin/env bash
# Reproduces the figures of docs/BENCHMARKS.md on this machine, all on loopback (targets 6,
# 14a and 14b in network namespaces they create; need root). Usage: scripts/bench.sh
# [TARGET...]  (1–12, 14 and 15; all by default; 8 is the drone's JPEG encoders, 9 the HTTP
# port (9a, 9b, 9c: its three targets), 10 data and messages, 11 named streams (11a, 11b), 12
# tokens and TLS (with a perf profile when perf is there), 14 quality layers and pacing (14a
# slow link at half the top layer's bitrate, pacing on vs off; 14b a quarter, layers on, then
# the shaping lifted and put back; 14c 200 viewers, layers off vs on; 14d the drone's cost per
# layer), 15 a two-level tree of relays). RUNS=3 sets the repeats whose medians are reported.
# The ports (loopback) can be moved with DRONE_PORT, CACHE_PORT, HTTP_PORT, META_PORT and
# TREE_PORT, e.g. when another copy is running.
# For a quick smoke run of 11 and 12: VIEWERS_DIV=10 divides their viewer counts, WINDOW=3
# shortens their 20 s windows, PERF_SECONDS=3 the profile (10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
VIEWERS_DIV=${VIEWERS_DIV:-1}
WINDOW=${WINDOW:-20}
PERF_SECONDS=${PERF_SECONDS:-10}
T=target/release
DRONE=127.0.0.1:${DRONE_PORT:-29999}
CACHE=127.0.0.1:${CACHE_PORT:-29998}
HTTP=127.0.0.1:${HTTP_PORT:-29980}
META=127.0.0.1:${META_PORT:-29970}
targets=()
for t in "${@:-1 2 3 4 5 6 7 8 9 10 11 12 14 15}"; do
  for u in $t; do
    case $u in
      9) targets+=(9a 9b 9c) ;;
      11) targets+=(11a 11b) ;;
      14) targets+=(14a 14b 14c 14d) ;;
      *) targets+=("$u") ;;
    esac
  done
done

cargo build --release --bins -q
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

DPID= CPID= FPID= BPID= LPIDS=()
stop() {
  for pid in $BPID $FPID "${LPIDS[@]}" $CPID $DPID; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true; DPID= CPID= FPID= BPID= LPIDS=()
}
trap stop EXIT
# start [cache-server flags…]: test-pattern drone (640x480, q80, 30 fps; extra flags in the
# array DRONE_FLAGS) → cache-server, with its HTTP port on $HTTP. The cache-server's
# --upstream values are the array UPSTREAMS (by default the drone once, as its default stream).
DRONE_FLAGS=()
UPSTREAMS=()
start() {
  stop
  $T/drone --listen $DRONE --source test "${DRONE_FLAGS[@]}" >/dev/null 2>/tmp/dronecast-bench-drone.log &
  DPID=$!
  for _ in $(seq 200); do grep -q "drone serving" /tmp/dronecast-bench-drone.log && break; sleep 0.05; done
  local upstreams=() u wanted=0
  for u in "${UPSTREAMS[@]:-$DRONE}"; do upstreams+=(--upstream "$u"); wanted=$((wanted + 1)); done
  $T/cache-server "${upstreams[@]}" --listen $CACHE --http $HTTP "$@" 2>/tmp/dronecast-bench-cache.log &
  CPID=$!
  # Readiness: the cache-server logs each upstream connection ("back" if its first dial came
  # before the drone listened).
  for _ in $(seq 200); do
    [ "$(grep -cE "upstream (connected|back)" /tmp/dronecast-bench-cache.log)" -ge $wanted ] && return
    sleep 0.05
  done
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
# viewers N: N divided by VIEWERS_DIV (targets 11 and 12).
viewers() { echo $(($1 / VIEWERS_DIV > 0 ? $1 / VIEWERS_DIV : 1)); }
# server_cpu FILE: the server CPU of the last table in FILE (the median's, after several runs).
server_cpu() { grep -o 'server  *cpu [0-9.]*' "$1" | tail -n 1 | awk '{ print $3 }' || true; }
# Target 11: ONE test-pattern drone, and a cache-server with ten upstreams s0…s9 that all dial
# it: 10 upstream connections and 10 independent cached streams, while the drone encodes each
# frame once (its own cost stays that of one drone, whatever the split of the viewers).
TEN_STREAMS=(s0 s1 s2 s3 s4 s5 s6 s7 s8 s9)
# Target 12: a self-signed certificate for 127.0.0.1 made (once) by relay-bench, and a token.
TLS_DIR=target/bench-tls
TOKEN=bench-token

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
    11a|11b)
        # 11a and 11b load the same ten-stream cache-server, so that they differ only in how
        # the viewers are spread: all on s0, or 100 (1000 in all) on each of the ten.
        UPSTREAMS=(); for s in "${TEN_STREAMS[@]}"; do UPSTREAMS+=("$s=$DRONE"); done
        n=$(viewers 1000)
        if [ "$t" = 11a ]; then
          echo "## 11a. 1 stream × $n viewers (of 10 streams relayed)"; start
          bench --stream s0 --viewers "$n" --duration "$WINDOW" --warmup 3 --repeat "$RUNS"
        else
          echo "## 11b. 10 streams × $((n / 10)) viewers"; start
          bench --stream "$(IFS=,; echo "${TEN_STREAMS[*]}")" --viewers "$((n / 10 * 10))" \
            --duration "$WINDOW" --warmup 3 --repeat "$RUNS"
        fi
        UPSTREAMS=() ;;
    12) # Tokens and TLS: the same cache-server plain, then with TLS on its ports and a token;
        # its viewers dial with --tls --tls-pin and give the token. The drone's link stays plain.
        pin=$($T/relay-bench cert $TLS_DIR 2>/dev/null)
        secure=(--tls-cert $TLS_DIR/cert.pem --tls-key $TLS_DIR/key.pem --token $TOKEN)
        for count in 200 1000; do
          n=$(viewers "$count")
          echo "## 12. $n viewers, plain"; start
          bench --viewers "$n" --duration "$WINDOW" --warmup 3 --repeat "$RUNS" | tee /tmp/dronecast-bench-plain.txt
          echo "## 12. $n viewers, TLS and a token"; start "${secure[@]}"
          bench --tls --tls-pin "$pin" --token $TOKEN --viewers "$n" --duration "$WINDOW" --warmup 3 \
            --repeat "$RUNS" | tee /tmp/dronecast-bench-tls.txt
          plain=$(server_cpu /tmp/dronecast-bench-plain.txt) tls=$(server_cpu /tmp/dronecast-bench-tls.txt)
          ratio=$(awk -v p="${plain:-0}" -v t="${tls:-0}" 'BEGIN { if (p > 0) printf "%.2f", t / p; else print "-" }')
          echo "## 12. $n viewers: cache-server CPU ${plain:--}% plain, ${tls:--}% with TLS: TLS/plain = $ratio"
        done
        # The same 1000 TLS viewers, but only one in ten decrypts (and measures fps and age);
        # the other 900 discard their ciphertext in the kernel unread and report a rate from
        # their bytes. The server encrypts for all 1000 as before; what this removes is the
        # load generator's own decryption, which on this machine takes the cores the server
        # needs (the run above). It measures the server, not a whole deployment.
        n=$(viewers 1000)
        echo "## 12. $n viewers, TLS and a token, one viewer in ten decrypting"; start "${secure[@]}"
        bench --tls --tls-pin "$pin" --token $TOKEN --viewers "$n" --decrypt-every 10 --duration "$WINDOW" \
          --warmup 3 --repeat "$RUNS"
        # Where the TLS server's time goes: perf samples the cache-server for PERF_SECONDS
        # while 1000 TLS viewers watch (from about 6 s after they start joining: handshakes and
        # warm-up done). Recorded with -g, but release builds keep no frame pointers, so the
        # call chains are shallow: the report lists each function's own share. perf comes
        # from Debian's linux-perf; where it cannot be installed, this part is skipped.
        command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null 2>&1 || true
        if command -v perf >/dev/null; then
          n=$(viewers 1000)
          echo "## 12. profile of the cache-server under $n TLS viewers (perf, $PERF_SECONDS s)"
          start "${secure[@]}"
          $T/relay-bench --server $CACHE --tls --tls-pin "$pin" --token $TOKEN --viewers "$n" --warmup 3 \
            --duration $((PERF_SECONDS + 10)) >/dev/null &
          BPID=$!
          sleep 6
          perf record -q -g -o /tmp/dronecast-bench-perf.data -p "$CPID" -- sleep "$PERF_SECONDS" 2>/dev/null
          perf report -q -i /tmp/dronecast-bench-perf.data --stdio --no-children -g none \
            --percent-limit 0.5 2>/dev/null | head -n 60
          wait "$BPID" || true; BPID=
        else
          echo "## 12. no profile: perf is not installed and apt-get could not install linux-perf"
        fi ;;
    15) echo "## 15. two-level tree: drone → relay → 3 relays, 50 viewers on each of the 4 relays"
        # Level 1 is the usual cache-server; level 2 three more, each with level 1 as its
        # upstream. The four relay-bench runs (one per relay) overlap in time, so every relay
        # carries its viewers while the ages are measured; one line of JSON each.
        start
        for i in 1 2 3; do
          $T/cache-server --upstream $CACHE --listen "127.0.0.1:$((${TREE_PORT:-29990} + i))" --http off \
            2>"/tmp/dronecast-bench-l2-$i.log" &
          LPIDS+=($!)
        done
        for i in 1 2 3; do
          for _ in $(seq 200); do grep -qE "upstream (connected|back)" "/tmp/dronecast-bench-l2-$i.log" && break; sleep 0.05; done
        done
        bench --viewers 50 --duration 20 --repeat "$RUNS" --json >/tmp/dronecast-bench-l1.json &
        waits=($!)
        for i in 1 2 3; do
          $T/relay-bench --server "127.0.0.1:$((${TREE_PORT:-29990} + i))" --server-pid "${LPIDS[$((i - 1))]}" \
            --viewers 50 --duration 20 --repeat "$RUNS" --json >"/tmp/dronecast-bench-l2-$i.json" &
          waits+=($!)
        done
        wait "${waits[@]}"
        echo "level 1: $(tail -n 1 /tmp/dronecast-bench-l1.json)"
        for i in 1 2 3; do echo "level 2, relay $i: $(tail -n 1 "/tmp/dronecast-bench-l2-$i.json")"; done ;;
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
