#!/usr/bin/env bash
# Installs the Debian packages Tessera needs, only those that are missing.
# Usage: scripts/install-deps.sh build|test|bench
# build: what `make run` needs. test: also the test tools (cmocka, clang for
# fuzzing, chromium and node for the browser test).
set -euo pipefail
what=${1:-build}
pkgs=(build-essential cmake pkg-config libjwt-dev libsodium-dev libjansson-dev libssl-dev
      libsqlite3-dev libpq-dev)
if [ "$what" = bench ]; then
  pkgs+=(jq gnuplot-nox postgresql)
fi
if [ "$what" = test ]; then
  pkgs+=(libcmocka-dev clang libclang-rt-14-dev chromium postgresql cppcheck)
  command -v node >/dev/null 2>&1 || pkgs+=(nodejs)
  command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
