#!/usr/bin/env bash
# End-to-end browser test of the web client.
# Usage: scripts/test-browser.sh TESSERA_BIN
#
# Installs the node dependencies of tests/browser if missing (playwright-core
# only; browsers are never downloaded: Debian's /usr/bin/chromium is used),
# runs the client library's unit test (tests/browser/protocol.test.mjs),
# starts `TESSERA_BIN serve` on a free port with 2 shards and 200 NPCs
# serving web/, waits for /healthz, runs tests/browser/browser.test.mjs
# against it, and always stops the server. The last line is
# `N passed, N failed`; the exit status is non-zero on any failure.
#
# Environment: TESSERA_SCREENSHOT (default build/browser-screenshot.png),
# CHROMIUM (default /usr/bin/chromium), TESSERA_SERVE_ARGS (extra flags
# for `tessera serve`), BROWSER_TEST_LOG (server log, default a temp file).
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
if [ -z "$bin" ]; then
  echo "usage: $0 TESSERA_BIN" >&2
  exit 2
fi
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "test-browser: $bin is not an executable" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
tests="$here/tests/browser"
export TESSERA_SCREENSHOT=${TESSERA_SCREENSHOT:-$here/build/browser-screenshot.png}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

passed=0
failed=0
server_pid=""
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tessera-browser.XXXXXX")
log=${BROWSER_TEST_LOG:-$tmp/server.log}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null
    for _ in $(seq 1 50); do
      kill -0 "$server_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  server_pid=""
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ] && exit 0
  exit 1
}

# Adds the counts of a test's last line ("N passed, N failed") to the total;
# a test that ends without that line counts as one failure.
tally() {
  local out=$1 line p f
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
  if [ -z "$line" ]; then
    failed=$((failed + 1))
    return
  fi
  p=${line%% passed*}
  f=${line#*, }
  f=${f%% failed}
  passed=$((passed + p))
  failed=$((failed + f))
}

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test-browser: $tool not found (scripts/install-deps.sh test installs it)" >&2
    failed=$((failed + 1))
    finish
  fi
done
if [ ! -x "$CHROMIUM" ]; then
  echo "test-browser: $CHROMIUM not found (scripts/install-deps.sh test installs chromium)" >&2
  failed=$((failed + 1))
  finish
fi

# 1. Node dependencies (playwright-core), from the lock file.
if [ ! -f "$tests/node_modules/playwright-core/package.json" ]; then
  echo "== npm ci (tests/browser)"
  if ! (cd "$tests" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "test-browser: npm ci failed" >&2
    failed=$((failed + 1))
    finish
  fi
fi

# 2. The client library's unit test (no server needed).
echo "== client library unit test"
timeout -k 5 60 node "$tests/protocol.test.mjs" | tee "$tmp/unit.out"
tally "$tmp/unit.out"

# True when GET /healthz answers 200 (bash's /dev/tcp: no curl needed).
healthz() {
  local status=""
  { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null || return 1
  printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  IFS= read -r -t 1 status <&3
  exec 3<&- 3>&-
  case "$status" in "HTTP/1."?" 200"*) return 0 ;; esac
  return 1
}

# 3. A server on a free port.
port=$(node -e '
  const s = require("net").createServer();
  s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')
url="http://127.0.0.1:$port"
echo "== starting $bin serve on $url"
# shellcheck disable=SC2086
"$bin" serve --port "$port" --shards 2 --npcs 200 --web-root "$here/web" ${TESSERA_SERVE_ARGS:-} \
  >"$log" 2>&1 &
server_pid=$!
ready=0
for _ in $(seq 1 100); do
  if ! kill -0 "$server_pid" 2>/dev/null; then break; fi
  if healthz; then
    ready=1
    break
  fi
  sleep 0.1
done
if [ "$ready" -ne 1 ]; then
  if kill -0 "$server_pid" 2>/dev/null; then
    echo "test-browser: the server did not answer $url/healthz within 10 s; its log:" >&2
  else
    echo "test-browser: the server exited before answering $url/healthz; its log:" >&2
  fi
  tail -n 30 "$log" >&2
  failed=$((failed + 1))
  finish
fi

# 4. The browser test (bounded: 60 s inside, killed at 75 s from outside).
echo "== browser test"
EXPECT_SHARDS=2 timeout -k 5 75 node "$tests/browser.test.mjs" "$url" | tee "$tmp/browser.out"
tally "$tmp/browser.out"
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "test-browser: the server exited during the test; its log:" >&2
  tail -n 30 "$log" >&2
  failed=$((failed + 1))
  server_pid=""
fi
if [ "$failed" -ne 0 ]; then
  echo "== server log (last 30 lines)"
  tail -n 30 "$log"
fi
finish
