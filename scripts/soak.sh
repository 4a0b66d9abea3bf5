#!/usr/bin/env bash
# `make soak`: W1 at N clients for a long run (not in CI), sampling the
# server every SOAK_SAMPLE_S seconds: RSS, open descriptors, tick time p99
# over the interval (from /metrics), sessions, and at the end the bots'
# summary (errors, latency). Goal (issue 4): RSS growth under 5% after
# warm-up, no descriptor leak, no crash.
#
#   scripts/soak.sh BUILD_DIR
# Environment: SOAK_SECONDS (3600), SOAK_CLIENTS (2000), SOAK_SAMPLE_S (60),
#              SOAK_WARMUP_S (120).
set -euo pipefail
build=${1:?usage: scripts/soak.sh BUILD_DIR}
cd "$(dirname "$0")/.."
secs=${SOAK_SECONDS:-3600}
n=${SOAK_CLIENTS:-2000}
every=${SOAK_SAMPLE_S:-60}
warm=${SOAK_WARMUP_S:-120}
secret=soak-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
out=bench/results
mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
csv=$out/soak-$stamp.csv
data=$(mktemp -d /tmp/tessera-soak.XXXXXX)
port=$((20000 + RANDOM % 10000))
pin0=() pin1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0=(taskset -c 0) pin1=(taskset -c 1); fi

# shellcheck disable=SC2046
"${pin0[@]}" "$build/tessera" serve $("$build/tessera" bots --workload w1 --clients "$n" --print-server-args) \
  --jwt-secret "$secret" --port "$port" --data-dir "$data" --log-level warn 2>"$data/server.log" &
srv=$!
cleanup() { kill "$srv" 2>/dev/null || true; wait "$srv" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

"${pin1[@]}" "$build/tessera" bots --workload w1 --clients "$n" --ramp 20 --duration "$secs" \
  --target "127.0.0.1:$port" --jwt-secret "$secret" --server-pid "$srv" --quiet \
  --json "$out/soak-$stamp.json" > "$out/soak-$stamp.txt" 2>&1 &
bots=$!

# p99 of tessera_tick_seconds between two scrapes (bucket deltas)
tick_buckets() { curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^tessera_tick_seconds_bucket{shard="[0-9]*",le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p' |
  awk '{c[$1]+=$2} END {for (k in c) print k, c[k]}' | sort -g; }
p99_between() { join <(echo "$1") <(echo "$2") | awk '{d=$3-$2; le[NR]=$1; v[NR]=d; tot=d} END {
  for (i=1;i<=NR;i++) if (v[i] >= 0.99*tot) {print le[i]; exit} }'; }

echo "elapsed_s,rss_kib,fds,sessions,tick_p99_le_s,alive" > "$csv"
start=$(date +%s)
prev=$(tick_buckets)
while kill -0 "$bots" 2>/dev/null; do
  sleep "$every"
  kill -0 "$bots" 2>/dev/null || break # the run is over: its teardown is no sample
  now=$(date +%s)
  alive=1; kill -0 "$srv" 2>/dev/null || alive=0
  [ $alive -eq 1 ] || { echo "$((now-start)),,,,,0" >> "$csv"; break; }
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$srv/status")
  fds=$(ls "/proc/$srv/fd" | wc -l)
  sess=$(curl -s "http://127.0.0.1:$port/metrics" | awk '/^tessera_ws_sessions / {print $2}')
  cur=$(tick_buckets)
  p99=$(p99_between "$prev" "$cur")
  prev=$cur
  echo "$((now-start)),$rss,$fds,$sess,$p99,1" | tee -a "$csv"
done
wait "$bots" || true
cat "$out/soak-$stamp.txt"
awk -F, -v w="$warm" 'NR>1 && $6==1 && $1>=w {if (!a) a=$2; b=$2; f0=f0?f0:$3; f1=$3}
  END {if (a) printf "soak: RSS %d -> %d KiB after warm-up (%+.1f%%), descriptors %d -> %d\n", a, b, 100*(b-a)/a, f0, f1}' "$csv"
grep -q ',0$' "$csv" && { echo "soak: the server died"; exit 1; }
echo "soak: samples in $csv"
