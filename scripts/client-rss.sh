#!/usr/bin/env bash
# The headless client's memory over a long run (docs/RELIABILITY.md, "Client memory"): a
# release test-pattern drone on loopback (640x480, 30 fps), a release headless client watching
# it for DURATION seconds, the client's RSS read from /proc every SAMPLE_EVERY seconds. Prints
# the samples, then whether every sample after the first SETTLE seconds is within ±10% of
# their mean, then the client's report.
#
#   scripts/client-rss.sh                  # 10 minutes
#   DURATION=120 scripts/client-rss.sh     # shorter
#
# Exit code 0 when the client exited 0 and its RSS stayed flat.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-600}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
SETTLE=${SETTLE:-60}
OUT=${OUT:-target/client-rss}
mkdir -p "$OUT"

cargo build --release --quiet -p drone --bin drone -p client --bin client
BIN=target/release

# On any exit, stop what this script started (its own jobs only).
cleanup() {
  local pid
  for pid in $(jobs -p); do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The drone picks a free loopback port and logs it with its readiness line.
$BIN/drone --listen 127.0.0.1:0 --source test 2>"$OUT/drone.log" &
addr=
for ((i = 0; i < 300; i++)); do
  addr=$(grep -o 'drone serving.*addr=[0-9.:]*' "$OUT/drone.log" | grep -o '[0-9.]*:[0-9]*$' || true)
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "client-rss: the drone did not start; see $OUT/drone.log" >&2; exit 1; }

$BIN/client "$addr" --headless --timeout "$DURATION" --json >"$OUT/report.json" \
  2>"$OUT/client.log" &
client=$!
echo "# $(date -u +%FT%TZ), $(nproc) cores; drone at $addr; client pid $client, ${DURATION} s"
echo "# t_s rss_kib"

start=$SECONDS
samples=()
for ((t = 0; t < DURATION; t += SAMPLE_EVERY)); do
  while ((SECONDS - start < t)); do sleep 0.2; done
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$client/status" 2>/dev/null) || break
  echo "$t $rss"
  if ((t >= SETTLE)); then samples+=("$rss"); fi
done

status=0
wait "$client" || status=$?
echo "# client exit code $status; report: $(cat "$OUT/report.json")"

if ((${#samples[@]} == 0)); then
  echo "client-rss: no samples after the first ${SETTLE} s" >&2
  exit 1
fi
printf '%s\n' "${samples[@]}" | awk -v settle="$SETTLE" '
  { v[NR] = $1; sum += $1; if (NR == 1 || $1 < min) min = $1; if ($1 > max) max = $1 }
  END {
    mean = sum / NR
    flat = (max <= mean * 1.1 && min >= mean * 0.9)
    printf "# after %d s: %d samples, min %d KiB, max %d KiB, mean %.0f KiB, spread %+.1f%% / %+.1f%%: %s\n",
      settle, NR, min, max, mean, (min - mean) * 100 / mean, (max - mean) * 100 / mean,
      flat ? "flat" : "NOT flat"
    exit flat ? 0 : 1
  }' || status=1
exit "$status"
