//! Step 0 of the tour: the smallest epoll loop that answers HTTP correctly enough to measure,
//! in one screen.
//!
//! One thread, one epoll set, level-triggered. The listening socket and every client socket
//! are in the set. Each pass waits for readiness, then, for each ready socket: the listener
//! accepts everything waiting; a client gets one `recv` and, for each request that ends in it
//! (each blank line; a read with none still gets one), the answer (a 1 KiB page and its head);
//! what the socket did not take waits for the socket to be writable again (its interest
//! switches to `OUT`), so a slow reader costs nothing and receives every byte.
//! `benches/wrk.sh` runs it beside epollo as the measuring stick: the cost of a request when a
//! server does nothing but the system calls.
//!
//! Run it: `cargo run --release --example minimal_loop` (`-- --close`: close each connection
//! after its answer; `-- --trace`: one line per system call, in epollo's `--trace` format),
//! then `curl -i http://127.0.0.1:PORT/` with the port it prints.
//!
//! # What epollo adds to it, and why
//!
//! | What this loop lacks | Why a real server needs it | Where epollo does it |
//! |---|---|---|
//! | A read is assumed to hold whole requests (one answer per blank line) | heads come in pieces, split anywhere, even inside the blank line | `connection/mod.rs` (the state machine), `connection/serving.rs` |
//! | Any bytes are taken as a request | the right status for a bad one (RFC 9110/9112) | `http/request.rs` |
//! | One fixed answer | files under a root, with no way out of it (no `..`, no symlink escapes) | `site/files.rs`, `site/mod.rs` |
//! | A `HashMap` by descriptor number | a closed socket's number is reused at once: a late event must not reach the new one | `reactor/slab.rs` (slots with generations) |
//! | No time limit | a client that says nothing holds its socket for ever | `connection/deadline.rs`, the sweep in `reactor/mod.rs` |
//! | Closes at once after a closing answer | unread request bytes make the kernel reset the connection and destroy the answer | lingering close, `connection/mod.rs` |
//! | Opens nothing | a file opened, stat'ed and read per request costs more than the answer | `site/cache.rs`, kept fresh by inotify |
//! | Level-triggered only | edge-triggered needs a ready list, or a connection that stopped early never runs again | `reactor/mod.rs`, `connection/readiness.rs` |
//! | Accepts until it fails | at the connection cap or out of descriptors, a registered listener spins the loop | `reactor/listening.rs`, `reactor/admission.rs` |
//! | Stops by being killed | finish the answers in flight on SIGTERM, reopen the log on SIGHUP | `reactor/control.rs`, `reactor/signals.rs` |

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use epollo::sys::epoll::{Events, Interest, Poller, Token, Trigger};
use epollo::sys::{accept4, listen, send};

/// The listener's token; connections are numbered from 1.
const LISTENER: Token = Token(0);

/// One client: its socket, and the part of its answer the socket has not taken yet.
struct Client {
    /// The socket.
    stream: TcpStream,
    /// Bytes still to send (empty: waiting for a request).
    pending: Vec<u8>,
    /// Whether it is registered for writability (it has bytes the socket did not take).
    writing: bool,
}

fn main() -> io::Result<()> {
    let close = std::env::args().any(|arg| arg == "--close");
    let trace = std::env::args().any(|arg| arg == "--trace");
    let answer = answer(close);
    // Accepted only once the request is there (TCP_DEFER_ACCEPT), as epollo does by default.
    let defer = epollo::limits::DEFAULT_DEFER_ACCEPT_SECS;
    let addr = "127.0.0.1:0".parse().expect("an address");
    let listener = listen(addr, 4096, false, defer)?;
    println!(
        "minimal_loop listening on http://{}/",
        listener.local_addr()?
    );
    serve(&listener, &answer, close, Trace::new(trace))
}

/// `--trace`: one line per system call, `SECONDS WHAT key=value …`, as epollo writes them.
struct Trace(Option<Instant>);

impl Trace {
    fn new(on: bool) -> Trace {
        Trace(on.then(Instant::now))
    }

    fn line(&self, what: std::fmt::Arguments) {
        if let Some(start) = self.0 {
            // One write per line, as epollo does, so lines never come apart.
            let line = format!("{:.6} {what}\n", start.elapsed().as_secs_f64());
            let _ = io::Write::write_all(&mut io::stderr().lock(), line.as_bytes());
        }
    }
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

/// The loop: accept what the listener has, answer what each readable socket sent, go on
/// with what a writable socket could not take before.
fn serve(listener: &TcpListener, answer: &[u8], close: bool, trace: Trace) -> io::Result<()> {
    let poller = Poller::new()?;
    poller.register(listener, LISTENER, Interest::Readable.bits(Trigger::Level))?;
    let mut clients: HashMap<u64, Client> = HashMap::new();
    let mut next = 1;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0; 16 * 1024];
    loop {
        // 1. Wait until something is ready (no timeout: nothing here ever times out).
        match poller.wait(&mut events, None, 1024) {
            Ok(()) => trace.line(format_args!("epoll_wait ready={}", events.len())),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            // 2. The listener: accept until the kernel's queue is empty (accept4 says EAGAIN).
            if event.token == LISTENER {
                while let Ok((stream, peer)) = accept4(listener) {
                    let fd = stream.as_raw_fd();
                    trace.line(format_args!("accept4 fd={fd} conn={next} peer={peer}"));
                    poller.register(
                        &stream,
                        Token(next),
                        Interest::Readable.bits(Trigger::Level),
                    )?;
                    let (pending, writing) = (Vec::new(), false);
                    clients.insert(
                        next,
                        Client {
                            stream,
                            pending,
                            writing,
                        },
                    );
                    next += 1;
                }
                continue;
            }
            // 3. A client: read a request, or go on sending; close on EOF or an error.
            let id = event.token.0;
            let Some(client) = clients.get_mut(&id) else {
                continue;
            };
            let done = match client.pending.is_empty() {
                true => read_then_answer(client, id, &mut buf, answer, &trace),
                false => write_pending(client, id, &trace),
            };
            let keep = match done {
                Ok(Step::Wait) => continue,
                // A closing answer closes once it is all sent.
                Ok(Step::Answered) => !close || !client.pending.is_empty(),
                Ok(Step::Closed) | Err(_) => false,
            };
            // Wait for the next request, or for room to send the rest: one `epoll_ctl`, and
            // only when that changes (most answers leave in one `send`).
            let writing = !client.pending.is_empty();
            if keep && writing != client.writing {
                let interest = if writing {
                    Interest::Writable
                } else {
                    Interest::Readable
                };
                poller.reregister(&client.stream, event.token, interest.bits(Trigger::Level))?;
                client.writing = writing;
            } else if !keep {
                // Closing the socket also takes it out of the epoll set.
                trace.line(format_args!(
                    "close fd={} conn={id}",
                    client.stream.as_raw_fd()
                ));
                clients.remove(&id);
            }
        }
    }
}

/// What one step for a client came to.
enum Step {
    /// Nothing changed (no bytes yet, or the socket is still full).
    Wait,
    /// The answer is queued (and as much of it sent as the socket took).
    Answered,
    /// The client closed its side.
    Closed,
}

/// One `recv`; queue one answer per request that ends in it (a pipelining client sends several
/// in one write), and send what the socket takes.
fn read_then_answer(
    client: &mut Client,
    id: u64,
    buf: &mut [u8],
    answer: &[u8],
    trace: &Trace,
) -> io::Result<Step> {
    let fd = client.stream.as_raw_fd();
    match client.stream.read(buf) {
        Ok(0) => {
            trace.line(format_args!("recv fd={fd} conn={id} n=0"));
            Ok(Step::Closed)
        }
        Ok(n) => {
            trace.line(format_args!("recv fd={fd} conn={id} n={n}"));
            let requests = buf[..n].windows(4).filter(|w| w == b"\r\n\r\n").count();
            for _ in 0..requests.max(1) {
                client.pending.extend_from_slice(answer);
            }
            write_pending(client, id, trace)?;
            Ok(Step::Answered)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Step::Wait),
        Err(e) => Err(e),
    }
}

/// One `send` of what is pending; a short one leaves the rest for the next writable event.
fn write_pending(client: &mut Client, id: u64, trace: &Trace) -> io::Result<Step> {
    let fd = client.stream.as_raw_fd();
    match send(&client.stream, &client.pending, false) {
        Ok(n) => {
            let short = if n < client.pending.len() {
                " short"
            } else {
                ""
            };
            trace.line(format_args!("send fd={fd} conn={id} n={n}{short}"));
            client.pending.drain(..n);
            Ok(Step::Answered)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Step::Wait),
        Err(e) => Err(e),
    }
}
