#!/usr/bin/env bash
# Fails when an #include arrow points the wrong way between modules.
# Allowed dependencies (module -> modules it may include):
set -euo pipefail
cd "$(dirname "$0")/.."
declare -A allow=(
  [core]="core"
  [proto]="core proto"
  [spatial]="core spatial"
  [bus]="core bus"
  [store]="core store"
  [sim]="core proto spatial bus store sim"
  [game]="core proto spatial bus store sim game"
  [gw]="core proto spatial bus store gw"
  [bots]="core proto bots"
  [main]="core proto spatial bus store sim game gw bots main"
)
bad=0
for dir in src/*/; do
  m=$(basename "$dir")
  ok=${allow[$m]:-}
  if [ -z "$ok" ]; then echo "check-includes: module $m has no rule"; bad=1; continue; fi
  while IFS=: read -r file _ line; do
    inc=$(sed -n 's/^#include "\([a-z]*\)[_.].*/\1/p' <<<"$line")
    [ -z "$inc" ] && continue
    case " $ok " in *" $inc "*) ;; *) echo "check-includes: $file includes a $inc header (not allowed from $m)"; bad=1;; esac
  done < <(grep -Hn '^#include "' "$dir"*.[ch] 2>/dev/null || true)
done
[ $bad -eq 0 ] && echo "check-includes: ok"
exit $bad
