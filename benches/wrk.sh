#!/usr/bin/env bash
# Load-test epollo with wrk and, if nginx is installed, compare it with nginx
# serving the same files under the same conditions.
#
#   benches/wrk.sh                          # 10 s per scenario, 10000 idle conns
#   DURATION=3s IDLE_CONNS=2000 benches/wrk.sh
#   SKIP_BUILD=1 benches/wrk.sh             # use the existing target/release/epollo
#   EPOLLO_BIN=/path/to/epollo benches/wrk.sh   # benchmark another binary (no build)
#
# Only 127.0.0.1 is used. Every step has a time limit; the script stops by itself.
# The server is pinned to CPU 0 and wrk to CPU 1 when taskset and 2+ CPUs exist.
set -euo pipefail

DURATION=${DURATION:-10s}
IDLE_CONNS=${IDLE_CONNS:-10000}
SKIP_BUILD=${SKIP_BUILD:-0}
EPOLLO_BIN=${EPOLLO_BIN:-}

# Room for c1000 and the idle test (both servers and the clients inherit this).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

die() { echo "wrk.sh: $*" >&2; exit 1; }
note() { echo "wrk.sh: $*" >&2; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(git -C "$SCRIPT_DIR" rev-parse --show-toplevel 2>/dev/null || (cd "$SCRIPT_DIR/.." && pwd))
cd "$REPO"

command -v wrk >/dev/null || die "wrk not found (apt-get install wrk)"
command -v python3 >/dev/null || die "python3 not found (needed for the idle test and port picking)"

# Seconds in DURATION, to bound each wrk run with timeout(1).
if [[ $DURATION =~ ^([0-9]+)(s|m|h)?$ ]]; then
  case ${BASH_REMATCH[2]} in
    m) DUR_SECS=$((10#${BASH_REMATCH[1]} * 60)) ;;
    h) DUR_SECS=$((10#${BASH_REMATCH[1]} * 3600)) ;;
    *) DUR_SECS=$((10#${BASH_REMATCH[1]})) ;;
  esac
else
  die "DURATION must look like 10s, 2m or 30 (got '$DURATION')"
fi
[[ $IDLE_CONNS =~ ^[0-9]+$ ]] || die "IDLE_CONNS must be a number"
MAX_CONNS=20000
((IDLE_CONNS + 1000 > MAX_CONNS)) && MAX_CONNS=$((IDLE_CONNS + 1000))
if (($(ulimit -n) < IDLE_CONNS + 100)); then
  note "warning: ulimit -n is $(ulimit -n), lower than IDLE_CONNS=$IDLE_CONNS; the idle test will fall short"
fi

# ---------------------------------------------------------------- cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/epollo-bench.XXXXXX")
PIDS=()
cleanup() {
  local pid
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in ${PIDS[@]+"${PIDS[@]}"}; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # stop_pid PID: TERM, wait up to 5 s, then KILL
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- pinning
SERVER_PIN=()
CLIENT_PIN=()
if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null && taskset -c 1 true 2>/dev/null; then
  SERVER_PIN=(taskset -c 0)
  CLIENT_PIN=(taskset -c 1)
  PINNING="server on CPU 0, wrk on CPU 1 (taskset)"
else
  PINNING="none (taskset missing or fewer than 2 CPUs usable)"
fi

# ---------------------------------------------------------------- files
ROOT=$WORK/root
mkdir -p "$ROOT"
printf '%-1024s' '<!doctype html><meta charset="utf-8"><title>epollo bench</title><p>A page of exactly 1024 bytes.</p>' >"$ROOT/index.html"
head -c 102400 /dev/urandom >"$ROOT/100k.bin"
head -c $((10 * 1024 * 1024)) /dev/urandom >"$ROOT/10m.bin"
[[ $(stat -c %s "$ROOT/index.html") == 1024 ]] || die "index.html is not 1024 bytes"
# nginx may run as another user; let anyone read the test root.
chmod 755 "$WORK" "$ROOT"
chmod 644 "$ROOT"/*

# ---------------------------------------------------------------- build
if [[ -n $EPOLLO_BIN ]]; then
  EPOLLO=$EPOLLO_BIN
else
  [[ $SKIP_BUILD == 1 ]] || cargo build --release
  EPOLLO=$REPO/target/release/epollo
fi
[[ -x $EPOLLO ]] || die "$EPOLLO not found; build failed?"

# ---------------------------------------------------------------- header
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "no-commit")
if [[ -n $(git status --porcelain 2>/dev/null) ]]; then COMMIT="$COMMIT (dirty tree)"; fi
NGINX=$(command -v nginx 2>/dev/null || true)
[[ -z $NGINX && -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx

echo "== epollo wrk benchmark"
echo "date:      $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit:    $COMMIT"
echo "kernel:    $(uname -sr), $(nproc) CPUs, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)"
echo "wrk:       $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}')"
if [[ -n $NGINX ]]; then
  echo "nginx:     $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
else
  echo "nginx:     not found (epollo figures only)"
fi
echo "pinning:   $PINNING"
echo "duration:  $DURATION per scenario; idle test: $IDLE_CONNS connections"
echo "root:      1024 B index.html, 100 KiB 100k.bin, 10 MiB 10m.bin"
echo

# ---------------------------------------------------------------- helpers
declare -A RPS XFER NON2XX SOCKERR IDLE_DELTA IDLE_OPEN IDLE_FDS
# SCENARIOS="ka_1k ka_10m" benches/wrk.sh runs a subset.
read -r -a SCENARIOS <<<"${SCENARIOS:-ka_1k close_1k c1000_1k ka_100k ka_10m}"
WRK_ARGS_ka_1k="-c100|/index.html"
WRK_ARGS_close_1k="-c100|/index.html|Connection: close"
WRK_ARGS_c1000_1k="-c1000|/index.html"
WRK_ARGS_ka_100k="-c50|/100k.bin"
WRK_ARGS_ka_10m="-c10|/10m.bin"

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fd_count() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

wait_port() { # wait_port PORT PID: up to 10 s for a TCP connect to succeed
  local port=$1 pid=$2
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 1
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

run_wrk() { # run_wrk SERVER BASE_URL SCENARIO
  local server=$1 base=$2 sc=$3 spec conns path hdr out rc=0
  spec=WRK_ARGS_$sc
  IFS='|' read -r conns path hdr <<<"${!spec}"
  local cmd=(wrk -t1 "$conns" -d"$DURATION" --timeout 10s)
  [[ -n $hdr ]] && cmd+=(-H "$hdr")
  cmd+=("$base$path")
  out=$WORK/wrk.$server.$sc.txt
  echo "-- $server $sc"
  echo "\$ ${CLIENT_PIN[*]:+${CLIENT_PIN[*]} }$(printf '%q ' "${cmd[@]}")"
  timeout $((DUR_SECS + 60)) ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} "${cmd[@]}" >"$out" 2>&1 || rc=$?
  sed 's/^/    /' "$out"
  ((rc == 0)) || echo "    (wrk exited with status $rc)"
  RPS[$server:$sc]=$(awk '/^Requests\/sec:/{print $2}' "$out")
  XFER[$server:$sc]=$(awk '/^Transfer\/sec:/{print $2}' "$out")
  NON2XX[$server:$sc]=$(awk -F': *' '/Non-2xx or 3xx responses/{print $2}' "$out")
  SOCKERR[$server:$sc]=$(awk -F': *' '/Socket errors/{print $2}' "$out")
  : "${RPS[$server:$sc]:=0}" "${XFER[$server:$sc]:=-}"
  sleep 1 # let closed connections drain between runs
}

cat >"$WORK/idle.py" <<'PY'
# Open N keep-alive connections, make one request on each, hold them idle.
# Prints one "ready ..." line, then sleeps; exits by itself within 60 s.
import resource, socket, sys, time

n, host, port, path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.monotonic()
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft != resource.RLIM_INFINITY and soft < n + 64:
    want = n + 64 if hard == resource.RLIM_INFINITY else min(n + 64, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        pass
req = ("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode()

def response(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before end of headers")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise ConnectionError("status: %r" % head.split(b"\r\n", 1)[0])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk

socks, failed, streak, first_err = [], 0, 0, ""
for _ in range(n):
    if time.monotonic() - t0 > 40 or streak >= 20:
        break
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, port))
        s.sendall(req)
        response(s)
    except (OSError, ValueError) as e:
        failed, streak = failed + 1, streak + 1
        first_err = first_err or repr(e)
        s.close()
        continue
    streak = 0
    socks.append(s)
print("ready open=%d failed=%d secs=%.1f%s" % (len(socks), failed, time.monotonic() - t0,
      (" first_error=" + first_err) if first_err else ""), flush=True)
while time.monotonic() - t0 < 58:
    time.sleep(0.2)
PY

idle_test() { # idle_test SERVER PID PORT
  local server=$1 pid=$2 port=$3 out=$WORK/idle.$1.txt cpid rss0 rss1 fd0 fd1 open line=""
  echo "-- $server idle_10k: $IDLE_CONNS idle keep-alive connections"
  rss0=$(rss_kb "$pid")
  fd0=$(fd_count "$pid")
  ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} python3 "$WORK/idle.py" "$IDLE_CONNS" 127.0.0.1 "$port" /index.html >"$out" 2>&1 &
  cpid=$!
  PIDS+=("$cpid")
  for _ in $(seq 600); do # up to 60 s
    line=$(awk '/^ready /{print; exit}' "$out")
    [[ -n $line ]] && break
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $line ]]; then
    echo "    idle client failed:"
    sed 's/^/    /' "$out"
    stop_pid "$cpid"
    return 0
  fi
  sleep 1
  rss1=$(rss_kb "$pid")
  fd1=$(fd_count "$pid")
  stop_pid "$cpid"
  open=$(sed -n 's/^ready open=\([0-9]*\).*/\1/p' <<<"$line")
  IDLE_OPEN[$server]=${open:-0}
  IDLE_DELTA[$server]=$((rss1 - rss0))
  IDLE_FDS[$server]=$((fd1 - fd0))
  echo "    client: $line"
  echo "    server VmRSS: ${rss0} kB before, ${rss1} kB with connections held, delta $((rss1 - rss0)) kB"
  echo "    server open fds: $fd0 before, $fd1 held"
  if ((${open:-0} > 0)); then
    echo "    per connection: $(((rss1 - rss0) * 1024 / open)) bytes"
  fi
  sleep 2 # let the server see the closes
}

bench_server() { # bench_server NAME PID PORT
  local name=$1 pid=$2 port=$3 sc
  idle_test "$name" "$pid" "$port"
  for sc in "${SCENARIOS[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "    $name died; skipping the remaining scenarios"; return 0; }
    run_wrk "$name" "http://127.0.0.1:$port" "$sc"
  done
}

# ---------------------------------------------------------------- epollo
echo "== epollo"
EP_OUT=$WORK/epollo.stdout
EP_ERR=$WORK/epollo.stderr
EP_CMD=("$EPOLLO" "$ROOT" --bind 127.0.0.1 --port 0 --keep-alive-timeout 60 --max-connections "$MAX_CONNS")
echo "\$ RUST_LOG=warn ${SERVER_PIN[*]:+${SERVER_PIN[*]} }$(printf '%q ' "${EP_CMD[@]}")"
RUST_LOG=warn ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "${EP_CMD[@]}" >"$EP_OUT" 2>"$EP_ERR" &
EP_PID=$!
PIDS+=("$EP_PID")
EP_URL=""
for _ in $(seq 100); do # up to 10 s
  EP_URL=$(sed -n 's|^epollo: serving .* at \(http://[^ ]*\)$|\1|p' "$EP_OUT" | head -n1)
  [[ -n $EP_URL ]] && break
  kill -0 "$EP_PID" 2>/dev/null || break
  sleep 0.1
done
if [[ -z $EP_URL ]]; then
  echo "epollo exited or did not print its 'serving' line within 10 s. stdout:" >&2
  cat "$EP_OUT" >&2
  echo "stderr:" >&2
  tail -n 20 "$EP_ERR" >&2
  exit 1
fi
EP_HOSTPORT=${EP_URL#http://}
EP_HOSTPORT=${EP_HOSTPORT%%/*}
EP_PORT=${EP_HOSTPORT##*:}
echo "epollo pid $EP_PID at $EP_URL"
bench_server epollo "$EP_PID" "$EP_PORT"
stop_pid "$EP_PID"
if [[ -s $EP_ERR ]]; then
  echo "epollo stderr (last 10 lines):"
  tail -n 10 "$EP_ERR" | sed 's/^/    /'
fi
echo

# ---------------------------------------------------------------- nginx
HAVE_NGINX=0
if [[ -n $NGINX ]]; then
  echo "== nginx"
  NG=$WORK/nginx
  mkdir -p "$NG"
  NG_PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  cat >"$NG/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $NG/nginx.pid;
error_log $NG/error.log warn;

events {
    worker_connections $MAX_CONNS;
}

http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    keepalive_timeout 60s;

    types {
        text/html html;
        application/octet-stream bin;
    }
    default_type application/octet-stream;

    client_body_temp_path $NG/client_body;
    proxy_temp_path $NG/proxy;
    fastcgi_temp_path $NG/fastcgi;
    uwsgi_temp_path $NG/uwsgi;
    scgi_temp_path $NG/scgi;

    server {
        listen 127.0.0.1:$NG_PORT;
        server_name localhost;
        root $ROOT;
    }
}
EOF
  NG_CMD=("$NGINX" -p "$NG" -e "$NG/error.log" -c "$NG/nginx.conf")
  echo "\$ ${SERVER_PIN[*]:+${SERVER_PIN[*]} }$(printf '%q ' "${NG_CMD[@]}")"
  echo "  (config: master_process off, worker_connections $MAX_CONNS, sendfile on, tcp_nopush on, keepalive_timeout 60s, keepalive_requests 10000, access_log off)"
  ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "${NG_CMD[@]}" >"$NG/stdout" 2>&1 &
  NG_PID=$!
  PIDS+=("$NG_PID")
  if wait_port "$NG_PORT" "$NG_PID"; then
    HAVE_NGINX=1
    echo "nginx pid $NG_PID at http://127.0.0.1:$NG_PORT/"
    bench_server nginx "$NG_PID" "$NG_PORT"
  else
    echo "nginx did not start; skipping it. Output:"
    cat "$NG/stdout" "$NG/error.log" 2>/dev/null | tail -n 20 | sed 's/^/    /'
  fi
  stop_pid "$NG_PID"
  echo
fi

# ---------------------------------------------------------------- summary
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }

echo "== summary ($DURATION per scenario, wrk -t1; commit $COMMIT)"
if ((HAVE_NGINX)); then
  printf '%-10s | %14s | %14s | %6s | %12s | %12s\n' scenario "epollo req/s" "nginx req/s" ratio "epollo xfer" "nginx xfer"
  printf '%s\n' "-----------+----------------+----------------+--------+--------------+-------------"
  for sc in "${SCENARIOS[@]}"; do
    printf '%-10s | %14s | %14s | %6s | %10s/s | %10s/s\n' "$sc" \
      "${RPS[epollo:$sc]:-0}" "${RPS[nginx:$sc]:-0}" \
      "$(ratio "${RPS[epollo:$sc]:-0}" "${RPS[nginx:$sc]:-0}")" \
      "${XFER[epollo:$sc]:--}" "${XFER[nginx:$sc]:--}"
  done
  printf '%-10s | %14s | %14s | %6s |\n' "idle_10k" \
    "${IDLE_DELTA[epollo]:-?} kB" "${IDLE_DELTA[nginx]:-?} kB" \
    "$(ratio "${IDLE_DELTA[epollo]:-0}" "${IDLE_DELTA[nginx]:-0}")"
  echo "ratio = epollo / nginx (req/s: higher is better for epollo; idle_10k RSS delta: lower is better)"
else
  [[ -z $NGINX ]] && echo "nginx not found; epollo only."
  printf '%-10s | %14s | %12s\n' scenario "epollo req/s" "epollo xfer"
  printf '%s\n' "-----------+----------------+-------------"
  for sc in "${SCENARIOS[@]}"; do
    printf '%-10s | %14s | %10s/s\n' "$sc" "${RPS[epollo:$sc]:-0}" "${XFER[epollo:$sc]:--}"
  done
  printf '%-10s | %14s |\n' "idle_10k" "${IDLE_DELTA[epollo]:-?} kB"
fi
for server in epollo nginx; do
  if [[ -n ${IDLE_OPEN[$server]:-} ]]; then
    echo "idle_10k $server: ${IDLE_OPEN[$server]} of $IDLE_CONNS connections held, VmRSS ${IDLE_DELTA[$server]} kB more, open fds ${IDLE_FDS[$server]} more"
  fi
done
problems=0
for key in "${!RPS[@]}"; do
  if [[ -n ${NON2XX[$key]:-} || -n ${SOCKERR[$key]:-} ]]; then
    problems=1
    echo "note: $key: ${NON2XX[$key]:+non-2xx/3xx responses: ${NON2XX[$key]}  }${SOCKERR[$key]:+socket errors: ${SOCKERR[$key]}}"
  fi
done
((problems)) || echo "no non-2xx/3xx responses and no socket errors reported by wrk."
