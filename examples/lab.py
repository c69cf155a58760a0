#!/usr/bin/env python3
"""Labs: run a scenario against epollo, see its --trace and strace interleaved (each trace line
right after the system call it describes), answer a question about it, and compare with what
the run itself shows.

Run:   python3 examples/lab.py [LAB ...]         (interactive: asks, then checks your answer)
       python3 examples/lab.py --check [LAB ...] (no questions: checks each lab's expected
                                                  answer against a fresh run; tests/labs.rs)
Needs: strace, and epollo built (cargo build; or --epollo PATH).

The labs, in order: one-request, keep-alive, max-read, slow-reader, lt-vs-et, live-stats,
shutdown, classic-crashes. Each answer is worked out from the run, so a lab can never drift from epollo:
--check fails if the run no longer gives the answer the lab expects.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FILTER = ("trace=epoll_wait,epoll_ctl,accept4,recvfrom,sendto,sendfile,shutdown,close,read,write,"
          "openat2,statx,readlink,pread64,inotify_add_watch,getdents64,newfstatat")
GET = b"GET /hello.txt HTTP/1.1\r\nHost: lab\r\n\r\n"
STATS = {}  # the last run's statistics, for the live-stats lab


class Run:
    """epollo on a fresh root, under strace, with --trace."""

    def __init__(self, epollo, flags):
        self.dir = tempfile.mkdtemp(prefix="epollo-lab-")
        root = os.path.join(self.dir, "www")
        os.makedirs(root)
        with open(os.path.join(root, "hello.txt"), "w") as f:
            f.write("hello from the lab\n")
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.write(b"x" * (256 * 1024))
        self.log = os.path.join(self.dir, "strace.txt")
        cmd = ["strace", "-f", "-qq", "-s", "200", "-e", FILTER, "-o", self.log, epollo, root,
               "--port", "0", "--trace", "--workers", "1", "--access-log", "off"] + flags
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        self.port = int(re.search(r":(\d+)/", line).group(1))

    def client(self, rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(("127.0.0.1", self.port))
        s.settimeout(5)
        return s

    def server_pid(self):
        with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
            return int(f.read().split()[0])

    def finish(self, signal_first=None):
        """Stops the server (with `signal_first`, e.g. SIGTERM, and waits), returns the
        interleaved lines: system calls, and `> trace line` right after each."""
        if signal_first:
            os.kill(self.server_pid(), signal_first)
            self.proc.wait(timeout=10)
        else:
            time.sleep(0.3)
            os.kill(self.server_pid(), signal.SIGKILL)
            self.proc.wait(timeout=10)
        lines = []
        with open(self.log) as f:
            for raw in f:
                line = raw.split(None, 1)[1].rstrip() if raw[0].isdigit() else raw.rstrip()
                m = re.match(r'write\(2, "(.*?)(\\n)?"\.*, \d+\)', line)
                if m:
                    text = m.group(1).encode().decode("unicode_escape")
                    if re.match(r"\d+\.\d+ ", text):
                        lines.append("    > " + text.split(" ", 1)[1])
                    continue
                if line.startswith("write("):
                    continue
                lines.append(line)
        shutil.rmtree(self.dir, ignore_errors=True)
        return lines


def recv_all(s, n):
    got = b""
    while len(got) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def answer_of(s):
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    return head + recv_all(s, length)


def traced(lines, word):
    return [l for l in lines if l.startswith("    > " + word)]


# ------------------------------------------------------------------ the labs
# Each: (name, flags, play(run) -> signal or None, question, answer(lines) -> str, expected)

def play_one_request(run):
    c = run.client()
    c.sendall(GET)
    answer_of(c)
    c.close()


def play_keep_alive(run):
    c = run.client()
    for _ in range(2):
        c.sendall(GET)
        answer_of(c)
        time.sleep(0.2)
    c.close()


def play_max_read(run):
    c = run.client()
    c.sendall(GET)
    answer_of(c)
    c.close()


def play_slow_reader(run):
    c = run.client(rcvbuf=4096)
    c.sendall(b"GET /big.bin HTTP/1.1\r\nHost: lab\r\n\r\n")
    time.sleep(0.3)  # the socket fills
    got = answer_of(c)
    assert len(got) > 256 * 1024
    c.close()


def play_shutdown(run):
    c = run.client()
    c.sendall(GET)
    answer_of(c)
    return signal.SIGTERM


def play_stats(run):
    c = run.client()
    for _ in range(200):
        c.sendall(GET)
        answer_of(c)
    stats = run.client()
    stats.sendall(b"GET /_stats/json HTTP/1.1\r\nHost: lab\r\n\r\n")
    run.stats = answer_of(stats).split(b"\r\n\r\n", 1)[1].decode()


def second_request_calls(lines):
    recvs = [i for i, l in enumerate(lines) if l.startswith("recvfrom(") and '"GET ' in l]
    i = recvs[1]
    j = next(k for k in range(i, len(lines)) if lines[k].startswith("sendto("))
    woke = next(lines[k] for k in range(i - 1, -1, -1) if not lines[k].startswith("    >"))
    calls = [woke] + [l for l in lines[i:j + 1] if not l.startswith("    >")]
    return " ".join(l.split("(")[0] for l in calls)


LABS = [
    ("one-request", [], play_one_request,
     "How many epoll_ctl calls did the connection's whole life take (count the ADD, MOD and DEL)?",
     lambda lines: str(len([l for l in traced(lines, "epoll_ctl") if "conn=1" in l])),
     "2"),
    ("keep-alive", [], play_keep_alive,
     "Which system calls, in order, did the second request on the connection cost, from the "
     "wait that woke the loop to the answer? (names separated by spaces)",
     second_request_calls,
     "epoll_wait recvfrom read sendto"),
    ("max-read", ["--max-read", "1"], play_max_read,
     "With --max-read 1, how many recv calls returned a byte of the 38-byte request?",
     lambda lines: str(len([l for l in traced(lines, "recv ") if l.endswith(" n=1")])),
     "38"),
    ("slow-reader", ["--sndbuf", "4096"], play_slow_reader,
     "The socket filled (a short sendfile). For which readiness is the connection registered "
     "next, level-triggered (the flags at the end of the next epoll_ctl line)?",
     lambda lines: next(l.rsplit("conn=1 ", 1)[1] for l in lines[next(
         i for i, l in enumerate(lines) if l.startswith("    > sendfile") and l.endswith(" short")):]
         if l.startswith("    > epoll_ctl")),
     "OUT"),
    ("lt-vs-et", ["--epoll", "et", "--sndbuf", "4096"], play_slow_reader,
     "The same slow download, edge-triggered. How many epoll_ctl MOD calls did it take?",
     lambda lines: str(len(traced(lines, "epoll_ctl MOD"))),
     "0"),
    ("live-stats", ["--stats", "/_stats"], play_stats,
     "200 requests on one keep-alive connection, then the statistics (/_stats/json, which the "
     "live page at /_stats draws). How many keep_alive_reuses do they count?",
     lambda lines: str(json.loads(STATS["last"])["counters"]["keep_alive_reuses"]),
     "199"),
    ("shutdown", [], play_shutdown,
     "SIGTERM arrived. Which token's event woke the loop for it (the word after token=)?",
     lambda lines: next(re.search(r"token=(\S+)", l).group(1) for l in lines[next(
         i for i, l in enumerate(lines) if "signal=SIGTERM" in l) - 3:] if l.startswith("    > event")),
     "control"),
]


def classic_crashes(_epollo):
    """The classic teaching server, crashed three ways (examples/classic_probes.py)."""
    out = subprocess.run([sys.executable, os.path.join(HERE, "classic_probes.py"),
                          "first-disconnect", "bare-crlf", "tls-hello"],
                         capture_output=True, text=True, timeout=120).stdout
    return out.splitlines()


CLASSIC = ("classic-crashes", "The classic server's first client leaves. Which errno ends it "
           "(the name in the 'last words')?",
           lambda lines: re.search(r"\[Errno \d+\] ([^'\n]+)",
                                   "\n".join(lines)).group(1).strip(),
           "Bad file descriptor")


def main():
    args = sys.argv[1:]
    check = "--check" in args
    epollo = os.path.join(REPO, "target", "debug", "epollo")
    if "--epollo" in args:
        epollo = args[args.index("--epollo") + 1]
    wanted = [a for a in args if not a.startswith("--") and a != epollo]
    failures = 0
    labs = [(name, q, ans, exp, flags, play) for name, flags, play, q, ans, exp in LABS]
    labs.append((CLASSIC[0], CLASSIC[1], CLASSIC[2], CLASSIC[3], None, None))
    for name, question, answer, expected, flags, play in labs:
        if wanted and name not in wanted:
            continue
        if play is None:
            lines = classic_crashes(epollo)
        else:
            run = Run(epollo, flags)
            lines = run.finish(play(run))
            STATS["last"] = getattr(run, "stats", "{}")
        got = answer(lines)
        if check:
            ok = got == expected
            failures += not ok
            print(f"lab {name}: expected {expected!r}, the run gave {got!r}: {'ok' if ok else 'WRONG'}")
            continue
        print(f"\n=== lab {name} {' '.join(flags or [])}\n")
        start = next((i for i, l in enumerate(lines) if l.startswith("epoll_ctl(")), 0)
        print("\n".join(lines[start:]))  # from the loop's first registration
        print(f"\nQ: {question}")
        try:
            mine = input("your answer: ").strip()
        except EOFError:
            mine = None  # no one to ask (stdin closed): just show the answer
        if mine is None:
            print(f"\nthe answer: this run shows {got!r}")
            continue
        verdict = "right" if mine.lower() == got.lower() else "not quite"
        print(f"{verdict}: this run shows {got!r}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
