#!/usr/bin/env bash
# Render the HTML report of the newest deploy in a real headless browser (Debian's
# chromium-headless-shell, or chromium) and save a screenshot to look at. Run after
# bench/deploy_rollback.sh (which leaves a rolled-back deploy in bench/out/deploy), or pass
# a report.html. Not part of CI.
set -euo pipefail
cd "$(dirname "$0")/.."
html=${1:-$(ls -t bench/out/deploy/.tidemark/deploy/bench/runs/*/report.html | head -1)}
out=${2:-bench/out/report.png}
browser=$(command -v chromium-headless-shell || command -v chromium || true)
[ -n "$browser" ] || { echo "no chromium: apt-get install chromium-headless-shell" >&2; exit 1; }
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --window-size=1100,${HEIGHT:-1500} --screenshot="$PWD/$out" "file://$(realpath "$html")" 2>/dev/null
echo "$out"
