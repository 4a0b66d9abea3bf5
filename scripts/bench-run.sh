#!/usr/bin/env bash
# One workload step (shared/bench/WORKLOADS.md) against a fresh server:
# `tessera serve` sized for it (`tessera bots --print-server-args`) pinned
# to core 0, `tessera bots` pinned to core 1, the server stopped afterwards.
# Writes bench/results/<workload>-<N><tag>.json and prints the bots' summary
# (with --server-pid it includes the server's RSS growth per connection:
# RSS at the window's end - RSS of the ready server before any bot
# connected, over N; JSON server.rss_growth_bytes_per_client).
#
#   scripts/bench-run.sh BUILD_DIR WORKLOAD N [extra bots flags...]
# Environment:
#   BENCH_RAMP, BENCH_DURATION  bots --ramp / --duration (defaults: the bots')
#   BENCH_DATA                  server data directory to use (kept); default a
#                               fresh temporary one (removed). W6 "warm": run
#                               twice with the same BENCH_DATA.
#   BENCH_TAG                   suffix for the result file name
#   BENCH_SECRET                JWT secret shared by server and bots
# Benchmarks never fail on speed: exit status 0 unless the step could not run.
set -euo pipefail
build=${1:?usage: scripts/bench-run.sh BUILD_DIR WORKLOAD N [bots flags]}
wl=${2:?workload}
n=${3:?N}
shift 3
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
secret=${BENCH_SECRET:-bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')}
tag=${BENCH_TAG:-}
data=${BENCH_DATA:-}
tmp=""
if [ -z "$data" ]; then tmp=$(mktemp -d /tmp/tessera-bench.XXXXXX); data=$tmp; fi
mkdir -p "$data"
pin0=() pin1=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then pin0=(taskset -c 0) pin1=(taskset -c 1); fi
port=""
for _ in $(seq 100); do
  p=$((20000 + RANDOM % 10000))
  if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then port=$p; break; fi
done
[ -n "$port" ] || { echo "bench-run: no free port" >&2; exit 1; }

args=$("$build/tessera" bots --workload "$wl" --clients "$n" --jwt-secret "$secret" --print-server-args)
# shellcheck disable=SC2086 # the printed flags are meant to split
"${pin0[@]}" "$build/tessera" serve $args --port "$port" --data-dir "$data" --log-level warn \
  2>"$out/$wl-$n$tag.server.log" &
spid=$!
cleanup() {
  kill -TERM "$spid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  [ -z "$tmp" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$spid" 2>/dev/null || { tail -20 "$out/$wl-$n$tag.server.log" >&2; exit 1; }
  sleep 0.1
done
flags=()
[ -z "${BENCH_RAMP:-}" ] || flags+=(--ramp "$BENCH_RAMP")
[ -z "${BENCH_DURATION:-}" ] || flags+=(--duration "$BENCH_DURATION")
f="$out/$wl-$n$tag.json"
echo "== $wl N=$n$tag: server $args --port $port" >&2
"${pin1[@]}" "$build/tessera" bots --workload "$wl" --clients "$n" --jwt-secret "$secret" \
  --target "127.0.0.1:$port" --server-pid "$spid" --json "$f" --quiet "${flags[@]}" "$@" || true
[ -s "$f" ] || { echo "bench-run: no result for $wl N=$n" >&2; exit 1; }
echo "result: $f" >&2
