#!/usr/bin/env bash
# Runs every libFuzzer target built in a build directory for a while.
#
#   scripts/fuzz.sh BUILD_DIR SECONDS
#
# For each executable BUILD_DIR/fuzz_<name>, copies the seed corpus
# fuzz/corpus/<name>/ (an empty one if there is none) into a temporary
# directory, so the tree's corpus never changes, and fuzzes over it for
# SECONDS. Prints each target's executions and rate; crash, timeout and
# OOM inputs are kept in BUILD_DIR/fuzz-artifacts/. Exits non-zero if no
# target was found or any target failed. Targets run one after another.
set -euo pipefail

if [ $# -ne 2 ] || ! [[ $2 =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 BUILD_DIR SECONDS" >&2
  exit 2
fi
build=$(cd "$1" && pwd)
secs=$2
root=$(cd "$(dirname "$0")/.." && pwd)
artifacts="$build/fuzz-artifacts"
mkdir -p "$artifacts"

work=$(mktemp -d "${TMPDIR:-/tmp}/tessera-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

stat_of() { # stat_of LOG KEY: the value of libFuzzer's final stat::KEY
  sed -n "s/^stat::$2: *\([0-9]*\).*/\1/p" "$1" | tail -n 1
}

found=0
failed=()
for bin in "$build"/fuzz_*; do
  [ -f "$bin" ] && [ -x "$bin" ] || continue
  found=$((found + 1))
  target=$(basename "$bin")
  name=${target#fuzz_}
  corpus="$work/$name"
  mkdir -p "$corpus"
  if [ -d "$root/fuzz/corpus/$name" ]; then
    cp -R "$root/fuzz/corpus/$name/." "$corpus/"
  else
    echo "fuzz: $target: no fuzz/corpus/$name/, starting from an empty corpus"
  fi
  n_seeds=$(find "$corpus" -type f | wc -l)
  log="$work/$target.log"
  rc=0
  # The outer timeout only guards against a target that ignores
  # -max_total_time (a hang outside libFuzzer's per-input -timeout).
  timeout --kill-after=10 $((secs + 120)) "$bin" "$corpus" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$target-" >"$log" 2>&1 || rc=$?
  execs=$(stat_of "$log" number_of_executed_units)
  rate=$(stat_of "$log" average_exec_per_sec)
  units=$(find "$corpus" -type f | wc -l)
  if [ $rc -eq 0 ] && [ -n "$execs" ]; then
    echo "fuzz: $target: ok, ${execs} execs (${rate:-?}/s) in ${secs}s, corpus ${n_seeds} -> ${units}"
  else
    echo "fuzz: $target: FAILED (exit $rc) after ${execs:-?} execs; log tail:"
    tail -n 40 "$log" | sed 's/^/    /'
    echo "fuzz: $target: artifacts in $artifacts/"
    failed+=("$target")
  fi
done

if [ $found -eq 0 ]; then
  echo "fuzz: no fuzz_* executables in $build (configure with -DTESSERA_FUZZ=ON)" >&2
  exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of $found target(s) failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: all $found target(s) ok"
