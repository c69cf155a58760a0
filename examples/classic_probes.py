#!/usr/bin/env python3
"""Probes: each failure of the classic epoll server (examples/classic_epoll_server.py),
reproduced against a fresh copy of it, and the same probe against epollo.

Run: python3 examples/classic_probes.py [--epollo PATH] [--strace] [PROBE ...]
Prints one line per probe and server: `PROBE SERVER: fails|holds (what was seen)`.
With --strace, the classic server runs under `strace -f` and the last lines of its trace are
shown after each probe. tests/classic.rs runs this and checks every line.
"""

import concurrent.futures
import http.client
import re
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSIC = os.path.join(HERE, "classic_epoll_server.py")
BIG = 8 * 1024 * 1024


def make_root():
    root = tempfile.mkdtemp(prefix="classic-probe-")
    www = os.path.join(root, "a", "b", "www")
    os.makedirs(www)
    with open(os.path.join(www, "hello.txt"), "w") as f:
        f.write("hello\n")
    with open(os.path.join(www, "big.bin"), "wb") as f:
        f.write(b"x" * BIG)
    with open(os.path.join(root, "secret.txt"), "w") as f:
        f.write("TOP-SECRET\n")
    return root, www


class Server:
    """One server process on a fresh root; `kind` is "classic" or "epollo"."""

    def __init__(self, kind, epollo, strace):
        self.kind = kind
        self.root, self.www = make_root()
        if kind == "classic":
            cmd = [sys.executable, CLASSIC, self.www, "0"]
        else:
            cmd = [epollo, self.www, "--port", "0", "--access-log", "off"]
        self.strace_log = None
        if strace and kind == "classic":
            self.strace_log = os.path.join(self.root, "strace.txt")
            cmd = ["strace", "-f", "-qq", "-e", "trace=network,epoll_wait,epoll_ctl,close",
                   "-o", self.strace_log] + cmd
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        self.port = int(line.strip().rstrip("/").rsplit(":", 1)[1])

    def alive(self):
        return self.proc.poll() is None

    def server_pid(self):
        """The server's pid (under strace, strace's child), or None once it has gone."""
        pid = self.proc.pid
        if self.strace_log:
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    return int(f.read().split()[0])
            except (OSError, IndexError, ValueError):
                return None
        return pid

    def cpu_seconds(self):
        pid = self.server_pid()
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def connect(self, timeout=3.0):
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def stop(self):
        if self.alive():
            child = self.server_pid()
            if self.strace_log and child:
                os.kill(child, 9)
            self.proc.kill()
        _, err = self.proc.communicate(timeout=10)
        trace = ""
        if self.strace_log and os.path.exists(self.strace_log):
            with open(self.strace_log) as f:
                trace = "".join(f.readlines()[-8:])
        shutil.rmtree(self.root, ignore_errors=True)
        return err.decode(errors="replace"), trace


def died(s):
    """Whether the server's process ends soon (within 2 s for the classic one: a loaded
    machine is slow; epollo is asked again by the probe itself)."""
    until = time.time() + (2.0 if s.kind == "classic" else 0.3)
    while time.time() < until:
        if not s.alive():
            return True
        time.sleep(0.05)
    return False


def read_answer(sock, wait=1.0):
    """Everything the server sends within `wait` seconds of quiet (or until it closes)."""
    sock.settimeout(wait)
    got = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return got


def status_lines(data):
    """The status lines in what a server sent (a body may run straight into the next one)."""
    return re.findall(rb"(?i)http/1\.[01] \d{3}[^\r]*", data)


# Each probe returns (failed, what was seen).

def first_disconnect(s):
    c = s.connect()
    c.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    read_answer(c, 0.3)
    c.close()
    if died(s):
        return True, "the server died when its first client left"
    c = s.connect()
    c.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    return not read_answer(c), "a second client was served"


def bare_crlf(s):
    c = s.connect()
    c.sendall(b"\r\n")
    answer = read_answer(c, 0.5)
    if died(s):
        return True, "a bare CRLF killed the server"
    if not answer:
        return False, "ignored it (RFC 9112 allows an empty line before a request), still serving"
    return False, f"answered {status_lines(answer)[:1]}, still serving"


def tls_hello(s):
    c = s.connect()
    hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(200, 232))
    c.sendall(hello)
    read_answer(c, 0.5)
    if died(s):
        return True, "a TLS hello (not UTF-8) killed the server"
    return False, "refused it, still serving"


def split_request(s):
    c = s.connect()
    c.sendall(b"GET /hello.txt HTTP/1.1\r\n")
    time.sleep(0.3)
    c.sendall(b"Host: t\r\n\r\n")
    lines = status_lines(read_answer(c, 1.0))
    return len(lines) != 1, f"{len(lines)} answers to one request in two packets"


def pipelined(s):
    c = s.connect()
    c.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
    lines = status_lines(read_answer(c, 1.0))
    return len(lines) != 2, f"{len(lines)} answers to two pipelined requests"


def traversal(s):
    c = s.connect()
    c.sendall(b"GET /../../../secret.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    answer = read_answer(c, 1.0)
    leaked = b"TOP-SECRET" in answer
    first = status_lines(answer)[:1]
    return leaked, "served a file outside the root" if leaked else f"refused: {first}"


def slow_reader(s):
    slow = s.connect()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")  # and never read
    time.sleep(0.5)
    other = s.connect(timeout=3.0)
    other.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    started = time.time()
    answer = read_answer(other, 3.0)
    waited = time.time() - started
    if b"hello" not in answer:
        return True, f"another client got nothing in {waited:.1f} s"
    return False, "another client was served at once"


def status_line(s):
    c = s.connect()
    c.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    first = read_answer(c, 0.5).split(b"\r\n", 1)[0]
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=3)
    try:
        conn.request("GET", "/hello.txt")
        conn.getresponse().read()
    except http.client.BadStatusLine:
        return True, f"{first!r}: Python's http.client raises BadStatusLine"
    return False, f"{first!r}"


def head_body(s):
    c = s.connect()
    c.sendall(b"HEAD /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    answer = read_answer(c, 0.5)
    body = answer.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in answer else b""
    return bool(body), f"HEAD got {len(body)} bytes of body"


def content_type(s):
    c = s.connect()
    c.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    head = read_answer(c, 0.5).split(b"\r\n\r\n", 1)[0].lower()
    has = b"\r\ncontent-type:" in head
    return not has, "no Content-Type" if not has else "Content-Type sent"


def rst_spin(s):
    c = s.connect()
    time.sleep(0.2)  # registered, nothing sent yet
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()  # a reset
    time.sleep(0.2)
    before = s.cpu_seconds()
    time.sleep(1.0)
    busy = s.cpu_seconds() - before
    # A spinning loop takes a whole core (less on a busy machine); a quiet one, none.
    return busy > 0.1, f"{busy:.2f} s of CPU in the 1 s after a client reset"


PROBES = [
    ("first-disconnect", first_disconnect),
    ("bare-crlf", bare_crlf),
    ("tls-hello", tls_hello),
    ("split-request", split_request),
    ("pipelined", pipelined),
    ("traversal", traversal),
    ("slow-reader", slow_reader),
    ("status-line", status_line),
    ("head-body", head_body),
    ("content-type", content_type),
    ("rst-spin", rst_spin),
]


def main():
    args = sys.argv[1:]
    epollo = None
    strace = "--strace" in args
    if "--epollo" in args:
        epollo = args[args.index("--epollo") + 1]
    wanted = [a for a in args if a in dict(PROBES)]
    runs = [(name, probe, kind) for name, probe in PROBES if not wanted or name in wanted
            for kind in ["classic"] + (["epollo"] if epollo else [])]
    # Each probe has servers of its own: run them side by side, report in order.
    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        reports = list(pool.map(lambda run: run_probe(*run, epollo, strace), runs))
    for report in reports:
        print(report, flush=True)


def run_probe(name, probe, kind, epollo, strace):
    """Runs one probe against a fresh server of `kind`; returns its report."""
    server = Server(kind, epollo, strace)
    try:
        failed, seen = probe(server)
    except OSError as e:
        failed, seen = True, f"the client saw {e.__class__.__name__}: {e}"
    dead = not server.alive()
    err, trace = server.stop()
    report = f"{name} {kind}: {'fails' if failed else 'holds'} ({seen})"
    if trace:
        report += "\n  strace, last lines:\n" + "".join("    " + l for l in trace.splitlines(True))
    last_error = [l for l in err.splitlines() if l.strip()][-1:]
    if kind == "classic" and dead and last_error:
        report += f"\n  the classic server's last words: {last_error[0]}"
    return report


if __name__ == "__main__":
    main()
