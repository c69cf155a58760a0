#!/usr/bin/env bash
# Loads the demo site (www/) in headless Chromium and reports every request the browser made,
# with its status, from epollo's access log; fails if any subresource failed. Also saves a
# screenshot. Needs `chromium` (apt-get install chromium). Loopback only; bounded in time.
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
RUST_LOG=info target/release/epollo www --port 0 >"$WORK/out" 2>"$WORK/log" &
PID=$!
for _ in $(seq 100); do grep -q "serving" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/.* at //p' "$WORK/out")
[ -n "$URL" ] || { echo "browser-check: epollo did not start" >&2; cat "$WORK/log" >&2; exit 1; }
mkdir -p "$(dirname "$SHOT")"
for page in "" "docs/"; do
  timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$WORK/profile" --window-size=1100,1400 --virtual-time-budget=3000 \
    --screenshot="${SHOT%.png}${page:+-docs}.png" "$URL$page" >/dev/null 2>&1 || true
done
kill "$PID"; wait "$PID" 2>/dev/null || true
echo "requests the browser made (from epollo's access log):"
grep -o '"[A-Z]* [^"]*" [0-9]* [0-9]*B' "$WORK/log" | sed 's/^/  /'
failed=$(grep -o '"[A-Z]* [^"]*" [45][0-9][0-9]' "$WORK/log" | grep -v 'favicon.ico' || true)
if [ -n "$failed" ]; then
  echo "browser-check: FAILED subresources:"; echo "$failed"; exit 1
fi
echo "browser-check: every request succeeded; screenshots: ${SHOT%.png}*.png"
