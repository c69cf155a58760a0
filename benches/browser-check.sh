#!/usr/bin/env bash
# Loads the demo site (www/) in headless Chromium and reports every request the browser made,
# with its status, from epollo's access log; fails if any subresource failed. Also saves a
# screenshot of each page. Then, while wrk loads the server (if wrk is installed), screenshots
# the live loop-statistics page (--stats /_stats). Needs `chromium` (apt-get install chromium).
# Loopback only; bounded in time.
#
#   benches/browser-check.sh [SCREENSHOT.png]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SHOT=${1:-$REPO/target/browser-check.png}
cd "$REPO"
command -v chromium >/dev/null || { echo "browser-check: chromium not found (apt-get install chromium)" >&2; exit 1; }
cargo build --release -q
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
RUST_LOG=info target/release/epollo www --port 0 --stats /_stats >"$WORK/out" 2>"$WORK/log" &
PID=$!
for _ in $(seq 100); do grep -q "serving" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/.* at //p' "$WORK/out")
[ -n "$URL" ] || { echo "browser-check: epollo did not start" >&2; cat "$WORK/log" >&2; exit 1; }
mkdir -p "$(dirname "$SHOT")"
shoot() { # shoot URL PNG [VIRTUAL_MS]
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$WORK/profile" --window-size=1100,1400 --virtual-time-budget="${3:-3000}" \
    --screenshot="$2" "$1" >/dev/null 2>&1 || true
}
for page in "" "docs/" "docs/walkthrough/" "docs/walkthrough/lt-vs-et.html" "docs/from-python.html"; do
  name=${page//\//-}; name=${name%.html}; name=${name%-}
  shoot "$URL$page" "${SHOT%.png}${name:+-$name}.png"
done
# The live statistics page, while the loop is busy: wrk for 12 s (RUST_LOG=info logs each
# request, which is fine here: the page is what we look at).
if command -v wrk >/dev/null; then
  timeout 30 wrk -t1 -c50 -d12s "${URL}index.html" >"$WORK/wrk" 2>&1 &
  WRK=$!
  sleep 5 # let the page's history fill with a few busy seconds
  shoot "${URL}_stats" "${SHOT%.png}-stats.png" 5000
  wait "$WRK" || true
  grep -E "Requests/sec" "$WORK/wrk" | sed 's/^/wrk (during the stats screenshot): /'
else
  shoot "${URL}_stats" "${SHOT%.png}-stats.png" 5000
  echo "wrk not found: the stats page was shot with the server idle"
fi
curl -fsS "${URL}_stats/metrics" 2>/dev/null | grep -E '^epollo_(requests|wakeups)_total' | sed 's/^/metrics: /' || true
kill "$PID"; wait "$PID" 2>/dev/null || true
echo "requests the browser made (from epollo's access log):"
grep -v 'index.html HTTP/1.1" 200' "$WORK/log" | grep -o '"[A-Z]* [^"]*" [0-9]* [0-9]*B' | sed 's/^/  /'
failed=$(grep -o '"[A-Z]* [^"]*" [45][0-9][0-9]' "$WORK/log" | grep -v 'favicon.ico' || true)
if [ -n "$failed" ]; then
  echo "browser-check: FAILED subresources:"; echo "$failed"; exit 1
fi
echo "browser-check: every request succeeded; screenshots: ${SHOT%.png}*.png"
