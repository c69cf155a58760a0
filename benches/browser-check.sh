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

# ------------------------------------------------------------------ live reload (--live)
# A page that reports what it shows: on each load, `/report?load=vN&loads=K` (K counts loads
# in this tab); whenever its paragraph's colour changes without a load, `/report?color=…`.
# The reports are 404s, read from epollo's access log. Each change must show within 500 ms.
echo
echo "live reload in headless Chromium (--live):"
LIVE=$WORK/live
mkdir -p "$LIVE"
cat >"$LIVE/style.css" <<'CSS'
p { color: rgb(255, 0, 0); }
CSS
page() { # page VERSION: the test page showing VERSION
  cat <<HTML
<!doctype html><html><head><link rel="stylesheet" href="style.css"></head><body>
<p id="v">$1</p>
<script>
var loads = Number(sessionStorage.getItem("loads") || 0) + 1;
sessionStorage.setItem("loads", loads);
var p = document.getElementById("v");
fetch("/report?load=" + p.textContent + "&loads=" + loads);
var color = getComputedStyle(p).color;
setInterval(function () {
  var now = getComputedStyle(p).color;
  if (now !== color) { color = now; fetch("/report?color=" + encodeURIComponent(now) + "&loads=" + loads); }
}, 20);
</script>
</body></html>
HTML
}
page v1 >"$LIVE/index.html"
RUST_LOG=warn target/release/epollo "$LIVE" --port 0 --live --access-log "$WORK/live.log" >"$WORK/live.out" 2>"$WORK/live.err" &
LPID=$!
for _ in $(seq 100); do grep -q "serving" "$WORK/live.out" 2>/dev/null && break; sleep 0.1; done
LURL=$(sed -n 's/.* at //p' "$WORK/live.out")
timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$WORK/profile-live" --remote-debugging-port=0 "$LURL" >/dev/null 2>&1 &
CPID=$!
wait_report() { # wait_report PATTERN: up to 10 s for the page to report PATTERN
  for _ in $(seq 1000); do grep -q "$1" "$WORK/live.log" 2>/dev/null && return 0; sleep 0.01; done
  return 1
}
now_ms() { date +%s%3N; }
live_failed=0
step() { # step NAME PATTERN: time from now until the page reports PATTERN
  local name=$1 pattern=$2 start=$3 took
  if wait_report "$pattern"; then
    took=$(($(now_ms) - start))
    echo "  $name: the page showed it after $took ms"
    ((took <= 500)) || { echo "  $name: slower than 500 ms"; live_failed=1; }
  else
    echo "  $name: the page never showed it"; live_failed=1
  fi
}
if wait_report "load=v1&loads=1"; then
  start=$(now_ms); page v2 >"$LIVE/index.html"
  step "HTML edit (written in place)" "load=v2&loads=2" "$start"
  start=$(now_ms); echo 'p { color: rgb(0, 0, 255); }' >"$LIVE/style.css"
  step "CSS edit (no reload: loads stays 2)" "color=rgb(0%2C%200%2C%20255)&loads=2" "$start"
  start=$(now_ms); page v3 >"$LIVE/index.html.tmp"; mv "$LIVE/index.html.tmp" "$LIVE/index.html"
  step "editor-style save (temporary file, then rename)" "load=v3&loads=3" "$start"
  grep -q "loads=3" "$WORK/live.log" && ! grep -q "load=v2&loads=3" "$WORK/live.log" \
    || { echo "  the CSS edit reloaded the page"; live_failed=1; }
else
  echo "  the page never loaded in Chromium"; live_failed=1
fi
kill "$CPID" "$LPID" 2>/dev/null || true
wait "$CPID" "$LPID" 2>/dev/null || true
((live_failed == 0)) || { echo "browser-check: live reload FAILED"; cat "$WORK/live.log"; exit 1; }
echo "browser-check: live reload works"
