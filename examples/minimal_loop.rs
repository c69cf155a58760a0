//! Step 0 of the tour: the smallest epoll loop that answers HTTP, in one screen.
//!
//! One thread, one epoll set, level-triggered. The listening socket and every client socket
//! are in the set. Each pass waits for readiness, then, for each ready socket: the listener
//! accepts everything waiting; a client socket gets one `recv` and, if it said anything, one
//! `send` of a fixed answer (a 1 KiB page and its head). That is the whole loop, and it is
//! already fast: `benches/wrk.sh` runs it beside epollo as the measuring stick, the cost of a
//! request when a server does nothing but the system calls.
//!
//! Run it: `cargo run --release --example minimal_loop` (add `-- --close` to close each
//! connection after its answer), then `curl -i http://127.0.0.1:PORT/` with the port it
//! prints.
//!
//! # What it does not do, and which part of epollo does it
//!
//! | What a real server needs | Where epollo does it |
//! |---|---|
//! | Read a request that arrives in pieces, answer each pipelined request once | `connection/mod.rs` (the state machine), `connection/serving.rs` |
//! | Parse the request, refuse bad ones with the right status | `http/request.rs` |
//! | Serve files safely under a root (no `..`, no symlink escapes) | `site/files.rs` |
//! | Send a large file without copying it, a piece at a time | `connection/writing.rs` (`sendfile`) |
//! | A client that stops reading: wait for writability, not block | `connection/mod.rs` (`Writing`), `reactor/mod.rs` (interest changes) |
//! | Time out slow and idle clients | `connection/deadline.rs`, the sweep in `reactor/mod.rs` |
//! | Too many clients, or out of descriptors: stop accepting without spinning | `reactor/listening.rs`, `reactor/admission.rs` |
//! | Stop cleanly on SIGTERM, reopen the log on SIGHUP | `reactor/control.rs`, `reactor/signals.rs` |
//! | Edge-triggered mode, with its ready list | `reactor/mod.rs`, `connection/readiness.rs` |
//! | See every system call the loop makes | `study/narrator.rs` (`--trace`), `study/stats.rs` |
//!
//! The bugs this loop has on purpose (a client that sends nothing holds its socket for ever;
//! a half-written answer is dropped; a request split in two gets two answers) are each one of
//! those rows.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};

use epollo::sys::epoll::{Events, Interest, Poller, Token, Trigger};
use epollo::sys::{accept4, listen, send};

/// The listener's token; connections are numbered from 1.
const LISTENER: Token = Token(0);

fn main() -> io::Result<()> {
    let close = std::env::args().any(|arg| arg == "--close");
    let answer = answer(close);
    let listener = listen("127.0.0.1:0".parse().expect("an address"), 4096, false)?;
    println!(
        "minimal_loop listening on http://{}/",
        listener.local_addr()?
    );
    serve(&listener, &answer, close)
}

/// The fixed answer: a head like epollo's for a 1 KiB `text/html` page, and the page.
fn answer(close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nServer: minimal_loop\r\n\
         Content-Type: text/html; charset=utf-8\r\nETag: \"400-1764583200\"\r\n\
         Content-Length: 1024\r\nLast-Modified: Tue, 01 Dec 2026 10:00:00 GMT\r\n\
         Accept-Ranges: bytes\r\nX-Content-Type-Options: nosniff\r\n\
         Vary: Accept-Encoding\r\n{connection}\r\n"
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(&[b'x'; 1024]);
    answer
}

/// The loop: accept what the listener has, answer what each readable socket sent.
fn serve(listener: &TcpListener, answer: &[u8], close: bool) -> io::Result<()> {
    let poller = Poller::new()?;
    let level = Interest::Readable.bits(Trigger::Level);
    poller.register(listener, LISTENER, level)?;
    let mut connections: HashMap<u64, TcpStream> = HashMap::new();
    let mut next = 1;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0; 16 * 1024];
    loop {
        // 1. Wait until something is ready (no timeout: nothing here ever times out).
        match poller.wait(&mut events, None, 1024) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            // 2. The listener: accept until the kernel's queue is empty (accept4 says EAGAIN).
            if event.token == LISTENER {
                while let Ok((stream, _)) = accept4(listener) {
                    poller.register(&stream, Token(next), level)?;
                    connections.insert(next, stream);
                    next += 1;
                }
                continue;
            }
            // 3. A client: one read; an answer if it sent anything; close on EOF or error.
            let Some(mut stream) = connections.get(&event.token.0) else {
                continue;
            };
            let done = match stream.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => send(&stream, answer, close).is_err() || close,
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            };
            if done {
                // Dropping the stream closes it, which also takes it out of the epoll set.
                connections.remove(&event.token.0);
            }
        }
    }
}
