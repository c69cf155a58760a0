#!/usr/bin/env bash
# Load-test epollo with wrk and, if nginx is installed, compare it with nginx
# serving the same files under the same conditions.
#
#   benches/wrk.sh                          # 10 s per scenario, 10000 idle conns
#   DURATION=3s IDLE_CONNS=2000 benches/wrk.sh
#   SKIP_BUILD=1 benches/wrk.sh             # use the existing target/release/epollo
#   EPOLLO_BIN=/path/to/epollo benches/wrk.sh   # benchmark another binary (no build)
#   SCENARIOS="ka_1k pipe16_1k" benches/wrk.sh  # a subset of the scenarios
#   STRACE=0 benches/wrk.sh                 # skip the system-call counts
#   VARIANTS="et notrace" benches/wrk.sh    # also epollo --epoll et, and a build without
#                                           # the trace feature (trace points compiled out)
#   VARIANTS="bin:/tmp/old/epollo" ...      # also another binary (an older commit), same run
#   VARIANTS="reno" benches/wrk.sh          # also epollo --congestion reno (lwan sets reno on
#                                           # its listener; the others use the system's)
#   CEILING=0 benches/wrk.sh                # skip the ceiling (examples/minimal_loop.rs) runs
#   RUNS=3 benches/wrk.sh                   # each scenario 3 times: medians, with min-max
#   PEERS="h2o lighttpd" benches/wrk.sh     # which peers run beside nginx (when installed)
#
# Beside req/s it reports, for each server in the same run: p99 latency (wrk --latency),
# server CPU time per request (utime+stime from /proc/PID/stat over the wrk run, its forked
# workers included), both pinned cores' busy time per request (what server, client and kernel
# spent together: the figure to judge large files by), and system
# calls per request for the 1 KiB keep-alive case (strace -f -c attached for a separate short
# run, since strace slows the server). epollo runs twice: with its file cache, and with
# --no-cache.
#
# The ceiling: examples/minimal_loop.rs, an epoll loop that answers every request with fixed bytes
# (one recv, one send, nothing else), runs the 1 KiB scenarios too. It shows what wrk -t1 on
# one core can drive here: where epollo is close to it, the load generator, not epollo, is
# the limit, and a req/s ratio to nginx cannot grow further on this machine.
#
# Only 127.0.0.1 is used. Every step has a time limit; the script stops by itself.
# The server is pinned to CPU 0 and wrk to CPU 1 when taskset and 2+ CPUs exist.
set -euo pipefail

DURATION=${DURATION:-10s}
RUNS=${RUNS:-1} # RUNS=3: each scenario three times; the tables give medians (and min-max)
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
SERVER_CPU=0
CLIENT_CPU=1
if command -v taskset >/dev/null && taskset -c $SERVER_CPU true 2>/dev/null && taskset -c $CLIENT_CPU true 2>/dev/null; then
  SERVER_PIN=(taskset -c $SERVER_CPU)
  CLIENT_PIN=(taskset -c $CLIENT_CPU)
  PINNING="server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU (taskset)"
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
VARIANTS=${VARIANTS:-}
if [[ " $VARIANTS " == *" notrace "* ]]; then
  # The same code with every trace point compiled out: what --trace costs when it is off.
  cargo build --release --no-default-features --target-dir "$REPO/target/notrace"
fi
[[ -x $EPOLLO ]] || die "$EPOLLO not found; build failed?"
CEILING=${CEILING:-1}
CEILING_BIN=""
if ((CEILING)); then
  cargo build --release --example minimal_loop >/dev/null 2>&1
  CEILING_BIN=$REPO/target/release/examples/minimal_loop
  [[ -x $CEILING_BIN ]] || { note "could not build examples/minimal_loop.rs; skipping the ceiling"; CEILING=0; }
fi

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
declare -A RPS XFER NON2XX SOCKERR IDLE_DELTA IDLE_OPEN IDLE_FDS P99 CPU_US SYSCALLS SERVER_BUSY CLIENT_BUSY
declare -A CPU_RUNS RPS_RUNS CPU_RANGE CORES_US CORES_RUNS
# SCENARIOS="ka_1k ka_10m" benches/wrk.sh runs a subset.
read -r -a SCENARIOS <<<"${SCENARIOS:-ka_1k pipe16_1k close_1k c1000_1k ka_100k ka_10m nf_404}"
STRACE=${STRACE:-1}
command -v strace >/dev/null || STRACE=0
WRK_ARGS_ka_1k="-c100|/index.html"
WRK_ARGS_pipe16_1k="-c100|/index.html||pipeline"
WRK_ARGS_nf_404="-c100|/missing.html"
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

# cpu_ticks PID: user + system clock ticks of PID and its descendants so far (a server that
# forks its worker, as lwan and nginx do, is counted whole).
cpu_ticks() {
  local pid=$1 total child
  # After the last ')': the name in parentheses may hold spaces (lwan's is "lwan job").
  total=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')
  total=${total:-0}
  for child in $(pgrep -P "$pid" 2>/dev/null); do
    total=$((total + $(cpu_ticks "$child")))
  done
  echo "$total"
}

# core_ticks N: "busy total" clock ticks of CPU N so far (busy = all but idle and iowait).
core_ticks() {
  awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}
# busy_pct "BUSY0 TOTAL0" "BUSY1 TOTAL1": the share of the interval the core was busy.
busy_pct() {
  awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " ")
    if (y[2] > x[2]) printf "%.0f%%", 100 * (y[1] - x[1]) / (y[2] - x[2]); else print "-" }'
}

cat >"$WORK/pipeline.lua" <<'LUA'
-- 16 requests per write, as a pipelining client sends them (from wrk's own example).
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, wrk.path) end
  req = table.concat(r)
end
request = function() return req end
LUA

run_wrk() { # run_wrk SERVER BASE_URL SCENARIO PID
  local server=$1 base=$2 sc=$3 pid=$4 spec conns path hdr script out rc=0 t0 t1 requests
  spec=WRK_ARGS_$sc
  IFS='|' read -r conns path hdr script <<<"${!spec}"
  local cmd=(wrk -t1 "$conns" -d"$DURATION" --timeout 10s --latency)
  [[ -n $hdr ]] && cmd+=(-H "$hdr")
  [[ -n $script ]] && cmd+=(-s "$WORK/$script.lua")
  cmd+=("$base$path")
  out=$WORK/wrk.$server.$sc.txt
  echo "-- $server $sc"
  echo "\$ ${CLIENT_PIN[*]:+${CLIENT_PIN[*]} }$(printf '%q ' "${cmd[@]}")"
  t0=$(cpu_ticks "$pid")
  local s0 c0 s1 c1
  s0=$(core_ticks $SERVER_CPU) c0=$(core_ticks $CLIENT_CPU)
  timeout $((DUR_SECS + 60)) ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} "${cmd[@]}" >"$out" 2>&1 || rc=$?
  t1=$(cpu_ticks "$pid")
  s1=$(core_ticks $SERVER_CPU) c1=$(core_ticks $CLIENT_CPU)
  if ((${#SERVER_PIN[@]})); then
    # Pinned: which side ran out of CPU. A wrk core near 100% with the server's core not
    # means the client, not the server, set this figure.
    SERVER_BUSY[$server:$sc]=$(busy_pct "$s0" "$s1")
    CLIENT_BUSY[$server:$sc]=$(busy_pct "$c0" "$c1")
    echo "    cores busy: server (CPU $SERVER_CPU) ${SERVER_BUSY[$server:$sc]}, wrk (CPU $CLIENT_CPU) ${CLIENT_BUSY[$server:$sc]}"
  fi
  sed 's/^/    /' "$out"
  ((rc == 0)) || echo "    (wrk exited with status $rc)"
  requests=$(awk '/requests in/{print $1}' "$out")
  CPU_US[$server:$sc]=$(awk -v t="$((t1 - t0))" -v n="${requests:-0}" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / hz / n; else print "-" }')
  P99[$server:$sc]=$(awk '$1 == "99%" {print $2}' "$out")
  RPS[$server:$sc]=$(awk '/^Requests\/sec:/{print $2}' "$out")
  XFER[$server:$sc]=$(awk '/^Transfer\/sec:/{print $2}' "$out")
  NON2XX[$server:$sc]=$(awk -F': *' '/Non-2xx or 3xx responses/{print $2}' "$out")
  SOCKERR[$server:$sc]=$(awk -F': *' '/Socket errors/{print $2}' "$out")
  : "${RPS[$server:$sc]:=0}" "${XFER[$server:$sc]:=-}"
  # Both cores' busy time per request (server, wrk, and the kernel's work on either): what
  # a large file costs in all, where the server's share alone can move work to the client.
  CORES_US[$server:$sc]=$(awk -v a="$s0" -v b="$s1" -v c="$c0" -v d="$c1" -v n="${requests:-0}" \
    -v hz="$(getconf CLK_TCK)" 'BEGIN { split(a, w, " "); split(b, x, " "); split(c, y, " ")
      split(d, z, " "); if (n > 0) printf "%.2f", (x[1] - w[1] + z[1] - y[1]) * 1e6 / hz / n
      else print "-" }')
  CORES_RUNS[$server:$sc]+="${CORES_US[$server:$sc]} "
  CPU_RUNS[$server:$sc]+="${CPU_US[$server:$sc]} "
  RPS_RUNS[$server:$sc]+="${RPS[$server:$sc]} "
  sleep 1 # let closed connections drain between runs
}

median_of() { # median_of VALUES...: the median (the lower middle for an even count)
  printf '%s\n' "$@" | grep -v '^-$' | sort -g | awk '{v[NR]=$1} END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'
}

settle_runs() { # settle_runs SERVER SCENARIO: medians of the runs, and the CPU range
  local key=$1:$2
  # shellcheck disable=SC2086 # the lists are space-separated numbers
  CPU_US[$key]=$(median_of ${CPU_RUNS[$key]})
  # shellcheck disable=SC2086
  CORES_US[$key]=$(median_of ${CORES_RUNS[$key]})
  # shellcheck disable=SC2086
  RPS[$key]=$(median_of ${RPS_RUNS[$key]})
  CPU_RANGE[$key]=$(printf '%s\n' ${CPU_RUNS[$key]} | grep -v '^-$' | sort -g | awk 'NR == 1 {min = $1} {max = $1} END { if (NR > 1) printf "%s-%s", min, max }')
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

count_syscalls() { # count_syscalls NAME PID PORT: system calls per request, 1 KiB keep-alive
  local name=$1 pid=$2 port=$3 out=$WORK/strace.$1.txt wout=$WORK/strace-wrk.$1.txt spid calls requests
  ((STRACE)) || return 0
  echo "-- $name syscalls per request (strace -f -c -p $pid over wrk -t1 -c100 -d3s /index.html)"
  strace -f -c -p "$pid" -o "$out" 2>/dev/null &
  spid=$!
  sleep 1
  timeout 60 ${CLIENT_PIN[@]+"${CLIENT_PIN[@]}"} wrk -t1 -c100 -d3s "http://127.0.0.1:$port/index.html" >"$wout" 2>&1 || true
  kill -INT "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
  calls=$(awk '$NF == "total" {print $4 + 0}' "$out")
  requests=$(awk '/requests in/{print $1}' "$wout")
  SYSCALLS[$name]=$(awk -v c="${calls:-0}" -v n="${requests:-0}" 'BEGIN { if (n > 0) printf "%.2f", c / n; else print "-" }')
  sed 's/^/    /' "$out" | head -n 12
  echo "    $calls calls for $requests requests: ${SYSCALLS[$name]} per request"
  sleep 1
}

bench_server() { # bench_server NAME PID PORT [SCENARIO...]
  local name=$1 pid=$2 port=$3 sc
  shift 3
  local scenarios=("$@")
  ((${#scenarios[@]})) || scenarios=("${SCENARIOS[@]}")
  [[ $name != epollo && $name != nginx ]] || idle_test "$name" "$pid" "$port"
  for sc in "${scenarios[@]}"; do
    for ((run = 1; run <= RUNS; run++)); do
      kill -0 "$pid" 2>/dev/null || { echo "    $name died; skipping the remaining scenarios"; return 0; }
      run_wrk "$name" "http://127.0.0.1:$port" "$sc" "$pid"
    done
    settle_runs "$name" "$sc"
  done
  count_syscalls "$name" "$pid" "$port"
}

# ---------------------------------------------------------------- epollo
run_epollo() { # run_epollo NAME [FLAG...]: start, benchmark, stop
  local name=$1 out=$WORK/$1.stdout err=$WORK/$1.stderr url="" pid hostport port
  shift
  local cmd=("${EPOLLO_RUN_BIN:-$EPOLLO}" "$ROOT" --bind 127.0.0.1 --port 0 --keep-alive-timeout 60 --max-connections "$MAX_CONNS" --max-connections-per-ip "$MAX_CONNS" "$@")
  echo "== $name"
  echo "\$ RUST_LOG=warn ${SERVER_PIN[*]:+${SERVER_PIN[*]} }$(printf '%q ' "${cmd[@]}")"
  RUST_LOG=warn ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "${cmd[@]}" >"$out" 2>"$err" &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 100); do # up to 10 s
    url=$(sed -n 's|^epollo: serving .* at \(http://[^ ]*\)$|\1|p' "$out" | head -n1)
    [[ -n $url ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z $url ]]; then
    echo "epollo exited or did not print its 'serving' line within 10 s. stdout:" >&2
    cat "$out" >&2
    echo "stderr:" >&2
    tail -n 20 "$err" >&2
    exit 1
  fi
  hostport=${url#http://}
  hostport=${hostport%%/*}
  port=${hostport##*:}
  echo "$name pid $pid at $url"
  if [[ $name == epollo_nocache ]]; then
    bench_server "$name" "$pid" "$port" $(printf '%s\n' "${SCENARIOS[@]}" | grep -E '^(ka_1k|pipe16_1k|nf_404)$')
  elif [[ $name != epollo ]]; then # a variant: every scenario, no idle test
    bench_server "$name" "$pid" "$port" "${SCENARIOS[@]}"
  else
    bench_server "$name" "$pid" "$port"
  fi
  stop_pid "$pid"
  if [[ -s $err ]]; then
    echo "$name stderr (last 10 lines):"
    tail -n 10 "$err" | sed 's/^/    /'
  fi
  echo
}
run_epollo epollo
run_epollo epollo_nocache --no-cache
for variant in $VARIANTS; do
  case $variant in
    et) run_epollo epollo_et --epoll et ;;
    reno) run_epollo epollo_reno --congestion reno ;;
    notrace) EPOLLO_RUN_BIN=$REPO/target/notrace/release/epollo run_epollo epollo_notrace ;;
    bin:*) EPOLLO_RUN_BIN=${variant#bin:} run_epollo epollo_bin ;;
    *) die "unknown variant $variant (et, reno, notrace, bin:PATH)" ;;
  esac
done

# ---------------------------------------------------------------- nginx
HAVE_NGINX=0
if [[ -n $NGINX ]]; then
  echo "== nginx"
  NG=$WORK/nginx
  mkdir -p "$NG"
  NG_OPEN_FILE_CACHE=""
  # NGINX_OPEN_FILE_CACHE=1: give nginx a file cache too (off by default, as in nginx).
  [[ ${NGINX_OPEN_FILE_CACHE:-0} == 1 ]] && NG_OPEN_FILE_CACHE="open_file_cache max=1000; open_file_cache_valid 60s;"
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
    $NG_OPEN_FILE_CACHE

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
  echo "  (config: master_process off, worker_connections $MAX_CONNS, sendfile on, tcp_nopush on, keepalive_timeout 60s, keepalive_requests 10000, access_log off${NG_OPEN_FILE_CACHE:+, $NG_OPEN_FILE_CACHE})"
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

# ---------------------------------------------------------------- peers
# h2o and lighttpd (Debian packages) and lwan (LWAN_BIN=/path/to/lwan, built by hand), each
# with one thread or process and no access log, their configs in benches/; each runs only if
# present. PEERS="h2o" benches/wrk.sh runs a subset; PEERS="" none.
PEERS=${PEERS-h2o lighttpd lwan}
PEERS_RAN=()
run_peer() { # run_peer NAME CONFIG-TEMPLATE COMMAND...: fill in the config, start, bench, stop
  local name=$1 template=$2 dir=$WORK/$1 port pid
  shift 2
  mkdir -p "$dir"
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  if [[ -n $template ]]; then
    sed -e "s|@ROOT@|$ROOT|g" -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" "$template" >"$dir/conf"
  fi
  local cmd=()
  for word in "$@"; do cmd+=("${word//@CONF@/$dir/conf}"); done
  for i in "${!cmd[@]}"; do cmd[$i]=${cmd[$i]//@PORT@/$port}; cmd[$i]=${cmd[$i]//@ROOT@/$ROOT}; done
  echo "== $name"
  echo "\$ ${SERVER_PIN[*]:+${SERVER_PIN[*]} }$(printf '%q ' "${cmd[@]}")"
  (cd "$dir" && exec ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "${cmd[@]}") >"$dir/stdout" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  if wait_port "$port" "$pid"; then
    PEERS_RAN+=("$name")
    bench_server "$name" "$pid" "$port"
  else
    echo "$name did not start; skipping it. Output:"
    cat "$dir/stdout" "$dir/error.log" 2>/dev/null | tail -n 20 | sed 's/^/    /'
  fi
  stop_pid "$pid"
  echo
}
for peer in $PEERS; do
  case $peer in
    h2o) command -v h2o >/dev/null && run_peer h2o benches/h2o.conf h2o -c @CONF@ ;;
    lighttpd) command -v lighttpd >/dev/null && run_peer lighttpd benches/lighttpd.conf lighttpd -D -f @CONF@ ;;
    lwan) [[ -x ${LWAN_BIN:-} ]] && run_peer lwan "" "$LWAN_BIN" -r @ROOT@ -l 127.0.0.1:@PORT@ ;;
    *) note "unknown peer $peer" ;;
  esac
done

# ---------------------------------------------------------------- ceiling
run_ceiling() { # run_ceiling NAME [--close] SCENARIO...: start the ceiling server, run, stop
  local name=$1 flag=$2 out=$WORK/$1.stdout pid port=""
  shift 2
  echo "== $name (examples/minimal_loop.rs $flag)"
  ${SERVER_PIN[@]+"${SERVER_PIN[@]}"} "$CEILING_BIN" $flag >"$out" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 50); do
    port=$(sed -n 's|^minimal_loop listening on http://127.0.0.1:\([0-9]*\)/$|\1|p' "$out")
    [[ -n $port ]] && break
    sleep 0.1
  done
  [[ -n $port ]] || { echo "    the ceiling server did not start"; return 0; }
  local sc
  for sc in "$@"; do run_wrk ceiling "http://127.0.0.1:$port" "$sc" "$pid"; done
  [[ $flag == --close ]] || count_syscalls ceiling "$pid" "$port"
  stop_pid "$pid"
  echo
}
if ((CEILING)); then
  mapfile -t CEIL_KA < <(printf '%s\n' "${SCENARIOS[@]}" | grep -E '^(ka_1k|pipe16_1k|c1000_1k)$')
  ((${#CEIL_KA[@]})) && run_ceiling ceiling "" "${CEIL_KA[@]}"
  [[ " ${SCENARIOS[*]} " == *" close_1k "* ]] && run_ceiling ceiling_close --close close_1k
fi

# ---------------------------------------------------------------- summary
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "-" }'; }

echo "== summary ($DURATION per scenario, wrk -t1; commit $COMMIT)"
printf '%-10s | %12s | %12s | %12s | %6s | %6s | %9s | %9s | %9s | %9s\n' scenario "epollo req/s" "no-cache" "nginx req/s" ratio "nc/ng" "ep p99" "ng p99" "ep CPU/req" "ng CPU/req"
printf '%s\n' "-----------+--------------+--------------+--------------+--------+--------+-----------+-----------+-----------+----------"
for sc in "${SCENARIOS[@]}"; do
  printf '%-10s | %12s | %12s | %12s | %6s | %6s | %9s | %9s | %7sus | %7sus\n' "$sc" \
    "${RPS[epollo:$sc]:-0}" "${RPS[epollo_nocache:$sc]:--}" "${RPS[nginx:$sc]:--}" \
    "$(ratio "${RPS[epollo:$sc]:-0}" "${RPS[nginx:$sc]:-0}")" \
    "$(ratio "${RPS[epollo_nocache:$sc]:-0}" "${RPS[nginx:$sc]:-0}")" \
    "${P99[epollo:$sc]:--}" "${P99[nginx:$sc]:--}" \
    "${CPU_US[epollo:$sc]:--}" "${CPU_US[nginx:$sc]:--}"
done
printf '%-10s | %12s | %12s | %12s | %6s |\n' "idle_10k" \
  "${IDLE_DELTA[epollo]:-?} kB" "" "${IDLE_DELTA[nginx]:-?} kB" \
  "$(ratio "${IDLE_DELTA[epollo]:-0}" "${IDLE_DELTA[nginx]:-0}")"
echo "syscalls per request (1 KiB keep-alive, -c100, strace -f -c): epollo ${SYSCALLS[epollo]:--}, epollo --no-cache ${SYSCALLS[epollo_nocache]:--}, nginx ${SYSCALLS[nginx]:--}"
echo "ratio = epollo / nginx, nc/ng = epollo --no-cache / nginx (req/s: higher is better; idle_10k RSS delta: lower is better)"
if ((${#SERVER_PIN[@]})); then
  echo "cores busy during each run, server core / wrk core (wrk near 100% and the server not: wrk set the figure):"
  for sc in "${SCENARIOS[@]}"; do
    printf '  %-10s | epollo %4s / %4s | nginx %4s / %4s%s\n' "$sc" \
      "${SERVER_BUSY[epollo:$sc]:--}" "${CLIENT_BUSY[epollo:$sc]:--}" \
      "${SERVER_BUSY[nginx:$sc]:--}" "${CLIENT_BUSY[nginx:$sc]:--}" \
      "${SERVER_BUSY[ceiling:$sc]:+ | ceiling ${SERVER_BUSY[ceiling:$sc]} / ${CLIENT_BUSY[ceiling:$sc]}}"
  done
fi
if ((CEILING)); then
  echo "ceiling (examples/minimal_loop.rs: fixed bytes, one recv and one send per read, one answer per request in it; what wrk -t1 can drive here):"
  for sc in ka_1k pipe16_1k c1000_1k close_1k; do
    [[ -n ${RPS[ceiling:$sc]:-} ]] || continue
    printf '  %-10s | %12s req/s | %7sus CPU/req | p99 %9s | epollo reaches %s of it, nginx %s\n' "$sc" \
      "${RPS[ceiling:$sc]}" "${CPU_US[ceiling:$sc]:--}" "${P99[ceiling:$sc]:--}" \
      "$(ratio "${RPS[epollo:$sc]:-0}" "${RPS[ceiling:$sc]:-0}")" "$(ratio "${RPS[nginx:$sc]:-0}" "${RPS[ceiling:$sc]:-0}")"
  done
  echo "  syscalls per request (1 KiB keep-alive): ceiling ${SYSCALLS[ceiling]:--}"
fi
for variant in $VARIANTS; do
  variant=${variant%%:*}
  echo "variant epollo_$variant (req/s, ratio to nginx, CPU per request; syscalls per 1 KiB keep-alive request: ${SYSCALLS[epollo_$variant]:--}):"
  for sc in "${SCENARIOS[@]}"; do
    printf '  %-10s | %12s | %6s | %7sus   (default build: %s, %sus)\n' "$sc" "${RPS[epollo_$variant:$sc]:-0}" \
      "$(ratio "${RPS[epollo_$variant:$sc]:-0}" "${RPS[nginx:$sc]:-0}")" "${CPU_US[epollo_$variant:$sc]:--}" \
      "${RPS[epollo:$sc]:-0}" "${CPU_US[epollo:$sc]:--}"
  done
done
EVERY=(epollo)
[[ -n ${RPS[epollo_et:${SCENARIOS[0]}]:-} ]] && EVERY+=(epollo_et)
[[ -n ${RPS[epollo_reno:${SCENARIOS[0]}]:-} ]] && EVERY+=(epollo_reno)
EVERY+=(nginx ${PEERS_RAN[@]+"${PEERS_RAN[@]}"})
echo "every server, per scenario (median of $RUNS run(s)): req/s, server CPU us per request (min-max),"
echo "  both cores' busy us per request (server + wrk + the kernel on either), p99 (last run), limit"
echo "  (limit: the core near 100% when the other is not; peers that ran: ${PEERS_RAN[*]:-none})"
echo "  (TCP congestion control: the system's, $(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null || echo unknown),"
echo "  for all but lwan, which sets reno on its listener, and epollo_reno, which is epollo --congestion reno)"
for sc in "${SCENARIOS[@]}"; do
  line=$(printf '  %-10s' "$sc")
  for server in "${EVERY[@]}"; do
    [[ -n ${RPS[$server:$sc]:-} ]] || continue
    limit=-
    if [[ -n ${SERVER_BUSY[$server:$sc]:-} ]]; then
      limit=$(awk -v s="${SERVER_BUSY[$server:$sc]%\%}" -v c="${CLIENT_BUSY[$server:$sc]%\%}" \
        'BEGIN { if (c >= 95 && s < 95) print "wrk"; else if (s >= 95) print "server"; else print "neither" }')
    fi
    line+=$(printf ' | %s %s req/s %sus%s cores %sus %s %s' "$server" "${RPS[$server:$sc]}" \
      "${CPU_US[$server:$sc]:--}" "${CPU_RANGE[$server:$sc]:+ (${CPU_RANGE[$server:$sc]})}" \
      "${CORES_US[$server:$sc]:--}" "${P99[$server:$sc]:--}" "$limit")
  done
  echo "$line"
done
line="  syscalls per 1 KiB keep-alive request:"
for server in "${EVERY[@]}"; do line+=" $server ${SYSCALLS[$server]:--}"; done
echo "$line"
[[ -z $NGINX ]] && echo "nginx not found; epollo only."
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
