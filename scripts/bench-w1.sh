#!/usr/bin/env bash
# W1 ladder (shared/bench/WORKLOADS.md): for N = 250, 500, 1000, ... start a
# fresh server sized for N (`tessera bots --print-server-args`), pinned to
# core 0, run `tessera bots` pinned to core 1, stop the server, and stop at
# the first step that is not sustained. Writes bench/results/w1-N.json per
# step, bench/results/w1-ladder.md (table) and w1-ladder.png (gnuplot).
#
#   scripts/bench-w1.sh BUILD_DIR
# Environment:
#   BENCH_RAMP, BENCH_DURATION  seconds per step (default 10 and 30)
#   BENCH_LADDER                the N values (default "250 500 1000 ... 64000")
#   BENCH_SECRET                JWT secret shared by server and bots (default random)
#   TESSERA_SERVE, TESSERA_BOTS commands to use instead of "BUILD_DIR/tessera serve"
#                               and "BUILD_DIR/tessera bots"
# Benchmarks never fail on speed: the exit status is 0 unless a step could
# not run at all.
set -euo pipefail
build=${1:?usage: scripts/bench-w1.sh BUILD_DIR}
cd "$(dirname "$0")/.."
ramp=${BENCH_RAMP:-10}
duration=${BENCH_DURATION:-30}
ladder=${BENCH_LADDER:-"250 500 1000 2000 4000 8000 16000 32000 64000"}
secret=${BENCH_SECRET:-bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}
serve=${TESSERA_SERVE:-$build/tessera serve}
bots=${TESSERA_BOTS:-$build/tessera bots}
out=bench/results
mkdir -p "$out"

if ! $bots --help >/dev/null 2>&1; then
  echo "bench-w1: '$bots --help' fails: is 'tessera bots' wired into src/main/main.c?" >&2
  exit 1
fi
# Pinning prefixes (arrays, not a function: the server's pid must be $!,
# and taskset execs the command in its own process).
pin0=() pin1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0=(taskset -c 0) pin1=(taskset -c 1); fi
json() { jq -r "$2" "$1"; }

# A free port below the ephemeral range, so the bots' own ports never clash.
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 10000))
    if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return; fi
  done
  echo "bench-w1: no free port" >&2; exit 1
}

spid=""
stop_server() {
  [ -n "$spid" ] || return 0
  kill -TERM "$spid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  spid=""
}
trap stop_server EXIT INT TERM

rows=()
last_ok=0
for n in $ladder; do
  port=$(free_port)
  # shellcheck disable=SC2046 # the printed flags are meant to split
  args=$($bots --workload w1 --clients "$n" --jwt-secret "$secret" --print-server-args)
  echo "== W1 N=$n: server $args --port $port" >&2
  # shellcheck disable=SC2086
  "${pin0[@]}" $serve $args --port "$port" --log-level warn 2>"$out/w1-$n.server.log" &
  spid=$!
  ready=0
  for _ in $(seq 100); do
    if curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.1
  done
  if [ $ready -ne 1 ]; then
    echo "bench-w1: the server for N=$n did not become ready; its log:" >&2
    tail -20 "$out/w1-$n.server.log" >&2
    exit 1
  fi
  f="$out/w1-$n.json"
  # shellcheck disable=SC2086
  "${pin1[@]}" $bots --workload w1 --clients "$n" --jwt-secret "$secret" --target "127.0.0.1:$port" \
    --server-pid "$spid" --ramp "$ramp" --duration "$duration" --json "$f" >&2 || true
  stop_server
  if [ ! -s "$f" ]; then
    echo "bench-w1: no result for N=$n" >&2
    exit 1
  fi
  ok=$(json "$f" .sustained)
  rows+=("$(jq -r --arg n "$n" '[$n,
      (if .server.cpu_pct then (.server.cpu_pct * 10 | round / 10) else "-" end),
      (if .server.cpu_us_per_client_tick then (.server.cpu_us_per_client_tick * 100 | round / 100) else "-" end),
      (if .server.rss_kb_end then (.server.rss_kb_end / 1024 * 10 | round / 10) else "-" end),
      (.updates_per_client_s.mean | . * 100 | round / 100),
      (.updates_per_client_s.min | . * 100 | round / 100),
      (.bytes_per_client_s.mean | round),
      (.ack_latency_ms.p50 | . * 10 | round / 10),
      (.ack_latency_ms.p99 | . * 10 | round / 10),
      (.entity_updates_per_s | round),
      (.bots.cpu_pct | round),
      (.errors.total),
      (if .sustained then "yes" else "no" end)] | @tsv' "$f")")
  if [ "$ok" != "true" ]; then break; fi
  last_ok=$n
done

md="$out/w1-ladder.md"
{
  echo "# W1 ladder ($(date -u +%Y-%m-%dT%H:%MZ), ramp ${ramp} s, window ${duration} s, server on core 0, bots on core 1)"
  echo
  echo "Last sustained N: **$last_ok**"
  echo
  echo "| N | server CPU % | CPU us per client-tick | RSS MiB | updates/s per client (mean) | (min) | bytes/s per client | ack p50 ms | ack p99 ms | entity updates/s | bots CPU % | errors | sustained |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for r in "${rows[@]}"; do echo "| ${r//$'\t'/ | } |"; done
} >"$md"
cat "$md"

# The plot: updates/s per client and ack latency p99 against N.
if ! command -v gnuplot >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq gnuplot-nox >/dev/null)
  elif command -v sudo >/dev/null; then
    sudo apt-get install -y -qq gnuplot-nox >/dev/null
  fi
fi
if command -v gnuplot >/dev/null; then
  dat=$(mktemp)
  for r in "${rows[@]}"; do
    IFS=$'\t' read -r n _ _ _ upd _ _ _ p99 _ <<<"$r"
    echo "$n $upd $p99"
  done >"$dat"
  gnuplot <<EOF
set terminal pngcairo size 900,520 noenhanced
set output "$out/w1-ladder.png"
set title "W1 ladder: last sustained N = $last_ok"
set logscale x 2
set xlabel "clients (N)"
set ylabel "STATE updates/s per client"
set y2label "ack latency p99 (ms)"
set yrange [0:22]
set y2range [0:*]
set ytics nomirror
set y2tics
set key bottom left
set grid
plot "$dat" using 1:2 with linespoints lw 2 title "updates/s per client (mean)", \
     "$dat" using 1:3 axes x1y2 with linespoints lw 2 title "ack latency p99 (ms)", \
     19 with lines dt 2 title "sustained: >= 19 updates/s"
EOF
  rm -f "$dat"
  echo "plot: $out/w1-ladder.png" >&2
else
  echo "bench-w1: gnuplot not available; no plot" >&2
fi
