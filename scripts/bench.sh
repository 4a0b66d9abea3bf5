#!/usr/bin/env bash
# `make bench`: runs the benchmarks and prints their figures (JSON lines,
# Markdown tables, a PNG plot), saved under bench/results/: the simulation
# core, the store, and a W1 ladder with `tessera bots`. Benchmarks never
# fail on speed.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
mkdir -p bench/results
out=bench/results/sim-$(date +%Y%m%d-%H%M%S).jsonl
pin() { if command -v taskset >/dev/null; then taskset -c 0 "$@"; else "$@"; fi; }
{
  echo "# 2,000 NPCs in the default world, one shard (the issue-2 figure)" >&2
  pin "$build/bench_sim" --entities 2000 --ticks 400 --world 2048
  echo "# 2,000 NPCs over 2 shards" >&2
  pin "$build/bench_sim" --entities 2000 --ticks 400 --world 2048 --shards 2
  echo "# W1-like: 1,000 players + 2,000 NPCs, AOI and encoding included" >&2
  pin "$build/bench_sim" --entities 2000 --players 1000 --ticks 200 --world 2048
  echo "# W3-like: 2,000 players milling within 50 units of the centre (crowd AOI)" >&2
  pin "$build/bench_sim" --entities 0 --players 2000 --ticks 200 --world 1253 --hotspot 50
  echo "# M1: 1,000,000 entities, movement + re-index + collision" >&2
  pin "$build/bench_sim" --entities 1000000 --ticks 200 --world 32768
} | tee "$out"
echo "results: $out"
echo "# store: flush throughput and logins/s, SQLite and PostgreSQL" >&2
scripts/bench-store.sh "$build"
echo "# W1 ladder (server on core 0, bots on core 1; short steps)" >&2
BENCH_RAMP=${BENCH_RAMP:-5} BENCH_DURATION=${BENCH_DURATION:-10} \
  BENCH_LADDER=${BENCH_LADDER:-"250 500 1000 2000 4000 8000"} scripts/bench-w1.sh "$build"
cat bench/results/w1-ladder.md
