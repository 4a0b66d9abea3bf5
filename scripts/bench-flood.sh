#!/usr/bin/env bash
# Does one hostile client hurt everyone else? W1 with N bots (server on
# core 0, bots on core 1) twice: alone, then while bench/flood.py floods
# the server with INPUT records (reconnecting whenever it is closed). Prints
# the bots' ack latency, their slowest update rate and the server's tick
# p99 for both runs. A benchmark: it reports, it never fails on speed.
#
#   scripts/bench-flood.sh BUILD_DIR     (FLOOD_CLIENTS=500 FLOOD_SECONDS=20)
set -euo pipefail
build=${1:?usage: scripts/bench-flood.sh BUILD_DIR}
cd "$(dirname "$0")/.."
n=${FLOOD_CLIENTS:-500}
secs=${FLOOD_SECONDS:-20}
secret=flood-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
out=bench/results
mkdir -p "$out"
data=$(mktemp -d /tmp/tessera-flood.XXXXXX)
port=$((30000 + RANDOM % 10000))
pin0=() pin1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0=(taskset -c 0) pin1=(taskset -c 1); fi
# shellcheck disable=SC2046
"${pin0[@]}" "$build/tessera" serve $("$build/tessera" bots --workload w1 --clients "$n" --print-server-args) \
  --jwt-secret "$secret" --port "$port" --data-dir "$data" --log-level warn 2>"$data/server.log" &
srv=$!
trap 'kill $srv 2>/dev/null; wait $srv 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

tick_p99() { # p99 bucket of tessera_tick_seconds between two scrapes
  curl -s "http://127.0.0.1:$port/metrics" | sed -n 's/^tessera_tick_seconds_bucket{shard="[0-9]*",le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p' |
    awk '{c[$1]+=$2} END {for (k in c) print k, c[k]}' | sort -g; }
p99_between() { join <(echo "$1") <(echo "$2") | awk '{d=$3-$2; le[NR]=$1; v[NR]=d; tot=d} END {
  for (i=1;i<=NR;i++) if (v[i] >= 0.99*tot) {print le[i]; exit} }'; }

run() { # run LABEL [flood]
  local before after
  before=$(tick_p99)
  if [ "${2:-}" = flood ]; then "${pin1[@]}" python3 bench/flood.py "$port" "$((secs + 8))" > "$data/flood.txt" & fl=$!; fi
  "${pin1[@]}" "$build/tessera" bots --workload w1 --clients "$n" --ramp 5 --duration "$secs" \
    --target "127.0.0.1:$port" --jwt-secret "$secret" --server-pid "$srv" --quiet --name-prefix "$1" \
    --json "$out/flood-$1.json" > "$data/$1.txt" 2>&1
  [ "${2:-}" = flood ] && wait "$fl" && cat "$data/flood.txt"
  after=$(tick_p99)
  printf '%-6s ack p50 %6.1f ms  p99 %6.1f ms  updates/s min %5.2f  server tick p99 <= %s s  errors %s\n' "$1" \
    "$(jq -r ".ack_latency_ms.p50" "$out/flood-$1.json")" \
    "$(jq -r ".ack_latency_ms.p99" "$out/flood-$1.json")" \
    "$(jq -r ".updates_per_client_s.min" "$out/flood-$1.json")" \
    "$(p99_between "$before" "$after")" "$(jq -r '.errors.total' "$out/flood-$1.json")"
  grep -E "ack latency|updates/s|sustained" "$data/$1.txt" | sed 's/^/         /'
}
run calm
run flood flood
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^tessera_(inputs_rejected_total\{reason="rate_limited"\}|ws_closes_total\{code="1008"\})'
