#!/usr/bin/env bash
# With --live, any number of tabs of a site load and reload. Opens TABS
# tabs (default 12) of one page in one headless Chromium (over the DevTools HTTP endpoint),
# checks that every tab loaded, changes the page, and checks that every tab reloaded; prints
# how many event streams the tabs opened (one: the tabs share it). Needs `chromium`
# (apt-get install chromium). Loopback only; bounded in time.
#
#   benches/live-tabs.sh [TABS]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TABS=${1:-12}
cd "$REPO"
command -v chromium >/dev/null || { echo "live-tabs: chromium not found (apt-get install chromium)" >&2; exit 1; }
cargo build --release -q
WORK=$(mktemp -d)
trap 'kill "$PID" "$BROWSER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
mkdir "$WORK/site"
echo '<!doctype html><html><body><p>version 1</p></body></html>' >"$WORK/site/index.html"
RUST_LOG=info target/release/epollo "$WORK/site" --port 0 --live >"$WORK/out" 2>"$WORK/log" &
PID=$!
for _ in $(seq 100); do grep -q "serving" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's/.* at //p' "$WORK/out")
DEVTOOLS=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
chromium --headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$WORK/profile" --remote-debugging-port="$DEVTOOLS" about:blank >/dev/null 2>&1 &
BROWSER=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$DEVTOOLS/json/version" >/dev/null && break; sleep 0.1; done
pages() { grep -cE '"GET / HTTP/1.1" (200|304)' "$WORK/log" || true; }
streams() { grep -c '"GET /__epollo/live HTTP/1.1" 200' "$WORK/log" || true; }
wait_for() { # wait_for COUNT WHAT: until `pages` reaches COUNT, at most 20 s
  for _ in $(seq 200); do [ "$(pages)" -ge "$1" ] && return 0; sleep 0.1; done
  echo "live-tabs: $2: $(pages) of $1 page loads after 20 s" >&2; return 1
}
for _ in $(seq "$TABS"); do
  curl -sf -X PUT "http://127.0.0.1:$DEVTOOLS/json/new?$URL" >/dev/null
done
wait_for "$TABS" "tabs loading"
sleep 1 # let the tabs settle on one leader (a measurement window, not synchronisation)
echo '<!doctype html><html><body><p>version 2</p></body></html>' >"$WORK/site/index.html"
wait_for $((2 * TABS)) "tabs reloading"
echo "live-tabs: $TABS tabs loaded and reloaded; event streams opened: $(streams)"
