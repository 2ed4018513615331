#!/usr/bin/env bash
# Soak test, run on demand (not in CI): a release drone and cache-server on loopback, VIEWERS
# viewers that join and leave continuously, one viewer that says hello and never reads, and
# the drone restarted every RESTART_EVERY seconds (alternately killed with SIGKILL and stopped
# with SIGTERM). The cache-server's RSS and open fds are sampled every SAMPLE_EVERY seconds
# into a CSV. At the end it says whether anything crashed and whether RSS and fds stayed flat
# (the mean of the last tenth of the run within 10% of the mean of its second tenth: minute 2
# against minute 10 of the default 10 minutes).
#
#   scripts/soak.sh                    # 10 minutes
#   DURATION=120 scripts/soak.sh       # shorter
#
# Exit code 0 when there were no crashes, no viewer errors, and RSS and fds were flat.
set -euo pipefail
# shellcheck disable=SC2086 # DRONE_ARGS is a list of words
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
VIEWERS=${VIEWERS:-200}
RESTART_EVERY=${RESTART_EVERY:-120}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
# Light frames: the point is churn and restarts for a long time, not throughput.
DRONE_ARGS=${DRONE_ARGS:---source test --width 320 --height 240 --fps 15}
OUT=${OUT:-target/soak/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"

echo "soak: building release binaries"
cargo build --release --quiet -p drone --bin drone -p cache-server --bin cache-server \
  --example soak_viewers
BIN=target/release
SOAK_VIEWERS=$BIN/examples/soak_viewers

# On any exit, kill what is still running of what this script started (its own jobs only).
cleanup() {
  local pid
  for pid in $(jobs -p); do
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to 30 s for a line matching $2 in log $1; prints its addr= field.
wait_for_addr() {
  local log=$1 needle=$2 i
  for ((i = 0; i < 300; i++)); do
    if grep -q "$needle" "$log" 2>/dev/null; then
      grep "$needle" "$log" | tail -n 1 | grep -o 'addr=[0-9.:]*' | cut -d= -f2
      return 0
    fi
    sleep 0.1
  done
  echo "soak: no '$needle' in $log" >&2
  return 1
}

drone_runs=0
drone_pid=
start_drone() {
  local listen=$1
  drone_runs=$((drone_runs + 1))
  local log=$OUT/drone-$drone_runs.log
  $BIN/drone --listen "$listen" $DRONE_ARGS 2>"$log" &
  drone_pid=$!
  wait_for_addr "$log" "drone serving" >/dev/null
}

crashes=0
note_crash() {
  echo "soak: CRASH: $*" | tee -a "$OUT/crashes.txt"
  crashes=$((crashes + 1))
}

# The drone's first start picks a free port; every restart reuses it.
$BIN/drone --listen 127.0.0.1:0 $DRONE_ARGS 2>"$OUT/drone-0.log" &
drone_pid=$!
DRONE_ADDR=$(wait_for_addr "$OUT/drone-0.log" "drone serving")

$BIN/cache-server --upstream "$DRONE_ADDR" --listen 127.0.0.1:0 --http off --summary-every 10 \
  2>"$OUT/cache-server.log" &
cache_pid=$!
CACHE_ADDR=$(wait_for_addr "$OUT/cache-server.log" "serving viewers")
echo "soak: drone $DRONE_ADDR, cache-server $CACHE_ADDR (pid $cache_pid), $VIEWERS viewers," \
  "${DURATION}s, drone restart every ${RESTART_EVERY}s; output in $OUT"

$SOAK_VIEWERS "$CACHE_ADDR" "$VIEWERS" "$DURATION" >"$OUT/viewers.json" 2>"$OUT/viewers.log" &
viewers_pid=$!

echo "t_s,rss_kb,fds,threads,viewers_logged" >"$OUT/samples.csv"
sample() {
  local t=$1
  if ! kill -0 "$cache_pid" 2>/dev/null; then
    note_crash "cache-server (pid $cache_pid) is gone at ${t}s"
    return 1
  fi
  local rss threads fds viewers
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$cache_pid/status")
  threads=$(awk '/^Threads:/ {print $2}' "/proc/$cache_pid/status")
  fds=$(find "/proc/$cache_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  viewers=$(grep -o '[0-9]* viewers, out' "$OUT/cache-server.log" | tail -n 1 | cut -d' ' -f1)
  echo "$t,$rss,$fds,$threads,${viewers:-}" >>"$OUT/samples.csv"
}

restarts=0
start=$SECONDS
next_sample=0
next_restart=$RESTART_EVERY
while true; do
  t=$((SECONDS - start))
  ((t > DURATION)) && break
  # Sampled while the viewers run (they stop at DURATION).
  if ((t >= next_sample && t < DURATION)); then
    sample "$t" || break
    next_sample=$((next_sample + SAMPLE_EVERY))
  fi
  if ((t >= next_restart && t < DURATION)); then
    restarts=$((restarts + 1))
    if ((restarts % 2 == 1)); then
      kill -KILL "$drone_pid"
      wait "$drone_pid" 2>/dev/null || true
    else
      kill -TERM "$drone_pid"
      status=0
      wait "$drone_pid" || status=$?
      ((status == 0)) || note_crash "drone exited with $status on SIGTERM (restart $restarts)"
    fi
    echo "soak: ${t}s: drone restart $restarts ($( ((restarts % 2 == 1)) && echo SIGKILL || echo SIGTERM))"
    sleep 2 # the drone stays away a little while, as a real restart would
    start_drone "$DRONE_ADDR"
    next_restart=$((next_restart + RESTART_EVERY))
  fi
  sleep 1
done

status=0
wait "$viewers_pid" || status=$?
((status == 0)) || echo "soak: viewers reported errors (exit $status)"
viewer_errors=$status

kill -TERM "$cache_pid" 2>/dev/null || true
status=0
wait "$cache_pid" || status=$?
((status == 0)) || note_crash "cache-server exited with $status on SIGTERM"
kill -TERM "$drone_pid"
status=0
wait "$drone_pid" || status=$?
((status == 0)) || note_crash "drone exited with $status on SIGTERM"
if grep -l "panicked" "$OUT"/*.log; then note_crash "a panic in the logs above"; fi

# Flatness: mean of the second tenth of the run against the mean of the last tenth.
flat() {
  local column=$1
  awk -F, -v c="$column" -v d="$DURATION" 'NR > 1 {
      if ($1 >= d * 0.1 && $1 <= d * 0.2) { a += $c; na++ }
      if ($1 >= d * 0.9) { b += $c; nb++ }
    }
    END {
      if (!na || !nb) { print "unknown (too few samples)"; exit 1 }
      a /= na; b /= nb; change = (b - a) / a * 100
      printf "%s: %.0f -> %.0f (%+.1f%%) %s\n", (c == 2 ? "RSS kB" : "fds"), a, b, change,
        (change <= 10 && change >= -10) ? "flat" : "NOT FLAT"
      exit !(change <= 10 && change >= -10)
    }' "$OUT/samples.csv"
}
rss_ok=0
fds_ok=0
rss_line=$(flat 2) || rss_ok=1
fds_line=$(flat 3) || fds_ok=1

{
  echo "soak summary ($(date -u +%Y-%m-%dT%H:%MZ), ${DURATION}s, $VIEWERS viewers, $restarts drone restarts)"
  echo "crashes: $crashes"
  echo "viewers: $(cat "$OUT/viewers.json")"
  echo "never-reading viewer dropped by the server: $(grep -c 'took no frame' "$OUT/cache-server.log" || true) times"
  echo "upstream lost/back: $(grep -c 'upstream lost' "$OUT/cache-server.log" || true)/$(grep -c 'upstream back' "$OUT/cache-server.log" || true)"
  echo "$rss_line"
  echo "$fds_line"
  echo "samples: $OUT/samples.csv"
} | tee "$OUT/summary.txt"

((crashes == 0 && viewer_errors == 0 && rss_ok == 0 && fds_ok == 0))
