#!/usr/bin/env python3
"""Save-to-paint delay of live reload: epollo --live beside live-server and browser-sync.

For each server, a headless Chromium (driven over the DevTools protocol on
--remote-debugging-pipe) opens the page; the script saves a file and notes the wall-clock
time; the page notes, in a requestAnimationFrame callback, when it first paints the change:
  - css:  a stylesheet saved with a new colour; painted when the computed colour changes
          (a swap in place: epollo and live-server; browser-sync injects CSS too);
  - html: the page saved with a new heading; painted at the first frame of the new document.
Both times are wall-clock milliseconds on the same machine. Prints the median and range of
TRIALS saves per server and kind.

Run: benches/live-paint.py [TRIALS]   (needs chromium; live-server and browser-sync from npm
are measured when installed: npm install -g live-server browser-sync)
"""

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIALS = int(sys.argv[1]) if len(sys.argv) > 1 else 10

PAGE = """<!doctype html><html><head><link rel="stylesheet" href="style.css"></head>
<body><h1 id="h">{heading}</h1><script>
(function () {{
  // The first frame of this document: when an HTML save is painted.
  requestAnimationFrame(function () {{ window.firstFrameAt = performance.timeOrigin + performance.now(); }});
  // Every frame: when the heading's colour changes (a CSS save) is painted.
  var seen = null;
  function watch() {{
    var colour = getComputedStyle(document.getElementById('h')).color;
    if (seen !== null && colour !== seen) {{ window.restyledAt = performance.timeOrigin + performance.now(); }}
    seen = colour;
    requestAnimationFrame(watch);
  }}
  requestAnimationFrame(watch);
}})();
</script></body></html>
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """Headless Chromium over the DevTools pipe (NUL-separated JSON on fds 3 and 4)."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="live-paint-chromium-")
        # The shell hands Chromium our pipes as descriptors 3 (commands) and 4 (answers).
        flags = ("--headless --no-sandbox --disable-gpu --no-first-run "
                 "--disable-background-networking --remote-debugging-pipe "
                 f"--user-data-dir={self.profile}")
        self.proc = subprocess.Popen(
            ["sh", "-c", f"exec chromium {flags} 3<&0 4>&1 1>/dev/null 2>/dev/null"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.to_chrome = self.proc.stdin.fileno()
        self.from_chrome = self.proc.stdout.fileno()
        self.next_id = 1
        self.buffer = b""

    def call(self, method, params=None, session=None):
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.next_id += 1
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.from_chrome, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium went away")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == msg["id"]:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def open(self, url):
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        return self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]

    def eval(self, session, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                           session)
        return result["result"].get("value")

    def wait(self, session, expression, patience=10.0):
        until = time.time() + patience
        while time.time() < until:
            value = self.eval(session, expression)
            if value:
                return value
            time.sleep(0.005)
        return None

    def close(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


def start(name, root, port):
    if name == "epollo":
        binary = os.path.join(REPO, "target", "release", "epollo")
        cmd = [binary, root, "--port", str(port), "--live", "--access-log", "off"]
    elif name == "live-server":
        cmd = ["live-server", root, f"--port={port}", "--no-browser", "--quiet"]
    else:
        cmd = ["browser-sync", "start", "--server", root, "--files", root, "--port", str(port),
               "--no-open", "--no-notify", "--no-ui", "--logLevel", "silent"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    until = time.time() + 20
    while time.time() < until:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


def measure(name, browser):
    root = tempfile.mkdtemp(prefix=f"live-paint-{name}-")
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write(PAGE.format(heading="0"))
    with open(os.path.join(root, "style.css"), "w") as f:
        f.write("h1 { color: rgb(0, 0, 0); }")
    port = free_port()
    proc = start(name, root, port)
    results = {"css": [], "html": []}
    try:
        session = browser.open(f"http://127.0.0.1:{port}/")
        browser.wait(session, "window.firstFrameAt")
        time.sleep(1.0)  # the reload client connects (each server has its own)
        for trial in range(1, TRIALS + 1):
            for kind in ("css", "html"):
                browser.eval(session, "window.restyledAt = undefined")
                if kind == "css":
                    body = f"h1 {{ color: rgb({trial}, {trial}, 0); }}"
                    path, probe = "style.css", "window.restyledAt"
                else:
                    body = PAGE.format(heading=str(trial))
                    path = "index.html"
                    probe = f"document.getElementById('h') && document.getElementById('h').textContent === '{trial}' && window.firstFrameAt"
                saved = time.time() * 1000
                with open(os.path.join(root, path), "w") as f:
                    f.write(body)
                painted = browser.wait(session, probe)
                if painted:
                    results[kind].append(painted - saved)
                time.sleep(0.4)  # let each server's own wait and watchers settle
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(root, ignore_errors=True)
    return results


def main():
    if not shutil.which("chromium"):
        sys.exit("live-paint: chromium not found (apt-get install chromium)")
    servers = ["epollo"] + [s for s in ("live-server", "browser-sync") if shutil.which(s)]
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=REPO, check=True)
    print(f"save-to-paint, ms: median (min-max) of {TRIALS} saves each")
    for name in servers:
        browser = Browser()
        try:
            results = measure(name, browser)
        finally:
            browser.close()
        line = [f"{name:13}"]
        for kind in ("css", "html"):
            got = results[kind]
            if got:
                line.append(f"{kind} {statistics.median(got):6.0f} ({min(got):.0f}-{max(got):.0f}, n={len(got)})")
            else:
                line.append(f"{kind} never painted")
        print("  ".join(line))


if __name__ == "__main__":
    main()
