#!/usr/bin/env python3
"""The classic epoll server, in the shape courses teach it, bugs included.

This is the pattern that tutorials and course notes start from, written out in epollo's own
words so that each of its failures can be shown (examples/classic_probes.py does, and
www/docs/from-python.html sets each one beside what epollo does instead). Do not serve with it.

Run: python3 examples/classic_epoll_server.py ROOT [PORT]   (PORT 0: any free port)
"""

import re
import select
import socket
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "www"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 8081

server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", PORT))
server.listen(5)
print(f"classic server on http://127.0.0.1:{server.getsockname()[1]}/", flush=True)

epoll = select.epoll()
epoll.register(server.fileno(), select.EPOLLIN)  # level-triggered
sockets = {}  # fd -> socket

while True:
    for fd, event in epoll.poll():  # no timeout
        if fd == server.fileno():
            conn, _ = server.accept()  # accepted sockets stay blocking
            epoll.register(conn.fileno(), select.EPOLLIN)
            sockets[conn.fileno()] = conn
        elif event == select.EPOLLIN:  # equality, not a bit test
            conn = sockets[fd]
            data = conn.recv(1024)  # one read
            if not data:
                conn.close()
                epoll.unregister(fd)  # after close(): EBADF
                del sockets[fd]
                continue
            text = data.decode("utf-8")  # each chunk taken as a whole request
            method, target = re.match(r"(\S+) (\S+)", text.split("\r\n")[0]).groups()
            try:
                with open(ROOT + target, "rb") as f:  # no check on the path
                    body = f.read()  # the whole file, in memory
                head = b"http/1.1 200 ok \r\ncontent-length: %d\r\n\r\n" % len(body)
            except OSError:
                body = b"not found"
                head = b"http/1.1 404 not found\r\ncontent-length: 9\r\n\r\n"
            conn.send(head + body)  # one blocking send, result ignored
