#!/usr/bin/env bash
# Store benchmarks (issue 3): flush throughput (rows/s) for 10k and 100k
# dirty players and logins/s with the cache cold and warm, on SQLite and on
# a temporary PostgreSQL started here (initdb + pg_ctl in a temporary
# folder, as the user postgres when run as root, a free loopback port;
# stopped and deleted on exit). JSON lines on stdout, also saved under
# bench/results/. Usage: scripts/bench-store.sh [build-dir]
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
bin=$build/bench_store
[ -x "$bin" ] || { echo "bench-store: $bin not built" >&2; exit 1; }
mkdir -p bench/results
out=bench/results/store-$(date +%Y%m%d-%H%M%S).jsonl
pin() { if command -v taskset >/dev/null; then taskset -c "$1" "${@:2}"; else "${@:2}"; fi; }

pgbin=${TS_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)}
tmp=""
as_pg=()
stop_pg() {
  if [ -n "$tmp" ]; then
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
  fi
}
trap stop_pg EXIT INT TERM

start_pg() {
  tmp=$(mktemp -d /tmp/tessera-pgbench-XXXXXX)
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$tmp"; as_pg=(runuser -u postgres --); fi
  "${as_pg[@]}" "$pgbin/initdb" -D "$tmp/data" -U tessera --auth=trust -E UTF8 --no-locale \
    >"$tmp/initdb.log" 2>&1 || { cat "$tmp/initdb.log" >&2; return 1; }
  port=55432
  while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
  # The server on core 1, the benchmark on core 0 (DECISIONS.md's setup).
  pin 1 "${as_pg[@]}" "$pgbin/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -o \
    "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$tmp -c max_wal_size=4GB" \
    start >/dev/null || { cat "$tmp/server.log" >&2; return 1; }
}

# A fresh database per run (called in $(...): no state may live in here).
pg_url() {
  "$pgbin/createdb" -h 127.0.0.1 -p "$port" -U tessera "bench_$1"
  echo "postgresql://tessera@127.0.0.1:$port/bench_$1"
}

# Started here, not inside the pipeline below (a subshell), so that the
# EXIT trap sees $tmp and stops the server.
have_pg=0
if [ -n "$pgbin" ] && [ -x "$pgbin/initdb" ] && start_pg; then have_pg=1; fi
{
  for players in 10000 100000; do
    echo "# SQLite, $players dirty players" >&2
    pin 0 "$bin" --backend sqlite --players "$players"
  done
  if [ $have_pg -eq 1 ]; then
    for players in 10000 100000; do
      echo "# PostgreSQL, $players dirty players" >&2
      pin 0 "$bin" --backend postgres --players "$players" --url "$(pg_url "$players")"
    done
  else
    echo "# PostgreSQL not available: scripts/install-deps.sh test installs it" >&2
  fi
} | tee "$out"
echo "results: $out" >&2
