//! `Connection`: the per-connection state machine, and all socket I/O.
//!
//! This file holds the states and the reading half; `connection/writing.rs` holds the writing
//! half (sending, finishing a response, lingering), `connection/answer.rs` decides the answer to
//! a request, and `connection/outgoing.rs` assembles answers into one output batch.
//!
//! Where this sits in the loop: the reactor calls [`Connection::on_readable`] or
//! [`Connection::on_writable`] when epoll reports the socket, and [`Connection::on_deadline`]
//! when its deadline passes. Afterwards it asks [`Connection::interest`] (to reregister if it
//! changed) and [`Connection::close_reason`] (to free the slot).
//!
//! ```text
//!  accept ──► Reading ──(head parsed, or head rejected)──► Writing
//!                ▲                                           │
//!                └────────(response sent, keep-alive)────────┤
//!                                                            │ refusal sent
//!                                                            ├──────────────► Lingering
//!                                                            ▼                   │ client EOF, 2 s
//!  (EOF, I/O error, deadline, shutdown: from any state) ──► Closed ◄─────────────┘
//! ```
//!
//! # Design notes
//! Each state owns its data: the response being sent lives inside `State::Writing`, so going
//! back to `Reading` drops it and nothing can be forgotten in a reset. The input buffer and the
//! count of body bytes still to discard live on the connection, because they outlive one
//! request (pipelined heads wait there while a response is written).
//!
//! **Eager progress** (as darkhttpd does): after a head is parsed we write the response in the
//! same call, and after a response we parse any head already buffered, so a small response
//! costs no extra epoll round trip and pipelined requests are served without waiting for
//! another event. Answers to pipelined requests are *batched*: the heads and small bodies of
//! every complete request in the buffer go into one output buffer and leave in one `write`.
//!
//! **Level-triggered fairness**: a large file goes out at most [`crate::limits::SENDFILE_CHUNK_BYTES`] per
//! call; the socket stays registered for writability, so epoll calls us again next pass, after
//! everyone else has had a turn.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Instant, SystemTime};

use crate::config::Config;
use crate::files::Root;
use crate::request::{self, Parsed, Reject, Request};
use crate::response::{Persistence, Status};
use crate::sys::epoll::Interest;

mod answer;
mod outgoing;
mod writing;
use outgoing::Outgoing;

/// What a handler needs from the reactor for one pass.
pub struct Context<'a> {
    /// The time this loop pass began (taken once per pass).
    pub now: Instant,
    /// The wall-clock time of the same moment, for comparing with file times.
    pub wall_clock: SystemTime,
    /// The `Date` header value for this second.
    pub date: &'a str,
    /// The server's configuration.
    pub config: &'a Config,
    /// The served folder.
    pub root: &'a Root,
    /// Whether a shutdown has begun: every response then closes its connection.
    pub shutting_down: bool,
}

/// Which deadline a connection is waiting on; follows from its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlineKind {
    /// Waiting for the first byte of a request (keep-alive idle, or a fresh connection).
    Idle,
    /// A request head (or the body we discard) has started but not finished arriving.
    Header,
    /// A response is pending and the client is not reading it.
    Send,
    /// We closed our side after a refusal and are draining what the client still sends.
    Linger,
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side (EOF).
    PeerClosed,
    /// The last response was sent and the client asked to close.
    Done,
    /// The client wanted keep-alive, but the connection has served `--max-requests`.
    RequestQuota,
    /// A deadline passed.
    Deadline(DeadlineKind),
    /// The request head was refused with this status.
    Rejected(Status),
    /// A socket or file error of this kind.
    Io(io::ErrorKind),
    /// The server is shutting down (the connection was idle, or its last answer is sent).
    Shutdown,
}

/// The state machine (see the diagram in the module docs).
enum State {
    /// Waiting for (the rest of) a request head; interest: readable.
    Reading,
    /// Sending a response (or a batch of them); interest: writable.
    Writing(Outgoing),
    /// Our side is shut down after a closing answer; reading and discarding what the client
    /// still sends until it closes too, so the kernel does not reset the connection (and
    /// destroy our answer) because of unread data. Interest: readable.
    Lingering {
        /// Why the connection ends, once the lingering is over.
        reason: CloseReason,
        /// Bytes thrown away so far.
        discarded: u64,
    },
    /// Finished; the reactor frees the slot in the same pass.
    Closed(CloseReason),
}

impl State {
    /// A short name for logs.
    fn name(&self) -> &'static str {
        match self {
            State::Reading => "reading",
            State::Writing(_) => "writing",
            State::Lingering { .. } => "lingering",
            State::Closed(_) => "closed",
        }
    }
}

/// One client connection: its socket, input buffer, state and deadline.
pub struct Connection<S> {
    /// A number for log lines (`conn=N`), unique for the server's life.
    id: u64,
    /// The client's address, for the access log.
    peer: SocketAddr,
    /// The socket (a `TcpStream` in the server; a `UnixStream` in unit tests).
    stream: S,
    /// Where we are in the state machine.
    state: State,
    /// Bytes read but not yet parsed: part of a head, or pipelined heads.
    inbuf: Vec<u8>,
    /// Bytes of a request body still to be read and thrown away before the next head.
    discard_remaining: u64,
    /// Requests answered on this connection so far.
    requests: u64,
    /// When this connection's current deadline passes; its kind follows from the state.
    deadline: Instant,
}

impl<S: Read + AsFd> Connection<S> {
    /// A freshly accepted connection, waiting for its first request.
    ///
    /// A client that sends nothing at all is closed silently after the header timeout.
    pub fn new(
        id: u64,
        stream: S,
        peer: SocketAddr,
        now: Instant,
        config: &Config,
    ) -> Connection<S> {
        Connection {
            id,
            peer,
            stream,
            state: State::Reading,
            inbuf: Vec::new(),
            discard_remaining: 0,
            requests: 0,
            deadline: now + config.header_timeout,
        }
    }

    /// The socket, for (de)registration.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The readiness this state waits for; `None` once closed. A pure function of the state.
    pub fn interest(&self) -> Option<Interest> {
        match self.state {
            State::Reading | State::Lingering { .. } => Some(Interest::Readable),
            State::Writing(_) => Some(Interest::Writable),
            State::Closed(_) => None,
        }
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        match self.state {
            State::Closed(reason) => Some(reason),
            _ => None,
        }
    }

    /// When the current deadline passes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Which deadline applies now.
    pub fn deadline_kind(&self) -> DeadlineKind {
        match self.state {
            State::Reading if self.is_idle() => DeadlineKind::Idle,
            State::Reading | State::Closed(_) => DeadlineKind::Header,
            State::Writing(_) => DeadlineKind::Send,
            State::Lingering { .. } => DeadlineKind::Linger,
        }
    }

    /// Reading, with nothing of a next request buffered or pending.
    fn is_idle(&self) -> bool {
        matches!(self.state, State::Reading) && !self.request_pending()
    }

    /// Whether part of a next request (head bytes, or a body to discard) has arrived.
    fn request_pending(&self) -> bool {
        !self.inbuf.is_empty() || self.discard_remaining > 0
    }

    /// The socket is readable (or hung up, or has an error): read once, then make progress.
    ///
    /// `scratch` is the server's one read buffer, shared by all connections: bytes are read
    /// there and only what arrived is copied into this connection's input buffer, so a
    /// connection holding a partial head costs its size, not a whole read buffer.
    pub fn on_readable(&mut self, ctx: &Context, scratch: &mut [u8]) {
        match self.state {
            State::Reading => self.read_once(ctx, scratch),
            State::Lingering { .. } => return self.linger(ctx, scratch),
            _ => {}
        }
        self.make_progress(ctx);
    }

    /// The socket is writable (or hung up, or has an error): continue the response.
    pub fn on_writable(&mut self, ctx: &Context) {
        self.make_progress(ctx);
    }

    /// The deadline passed: a late head gets 408, anything else is closed silently.
    pub fn on_deadline(&mut self, ctx: &Context) {
        let kind = self.deadline_kind();
        log::debug!("conn={} deadline passed kind={kind:?}", self.id);
        if let State::Lingering { reason, .. } = self.state {
            self.set_state(State::Closed(reason), ctx);
        } else if kind == DeadlineKind::Header && matches!(self.state, State::Reading) {
            let mut out = Outgoing::new();
            let status = Status::REQUEST_TIMEOUT;
            out.push_status(ctx, status, false, Persistence::Close);
            out.close_after = Some(CloseReason::Deadline(kind));
            out.record(ctx.now, || first_line_for_log(&self.inbuf), status);
            self.set_state(State::Writing(out), ctx);
            self.make_progress(ctx);
        } else {
            self.set_state(State::Closed(CloseReason::Deadline(kind)), ctx);
        }
    }

    /// A shutdown began: an idle connection closes now; others finish their current request.
    pub fn begin_shutdown(&mut self, ctx: &Context) {
        if self.is_idle() {
            self.set_state(State::Closed(CloseReason::Shutdown), ctx);
        }
    }

    /// Reads once into the input buffer. Under level triggering one read per event is enough:
    /// if more is waiting, epoll reports the socket again next pass.
    fn read_once(&mut self, ctx: &Context, scratch: &mut [u8]) {
        let was_idle = self.is_idle();
        match self.stream.read(scratch) {
            Ok(0) => self.set_state(State::Closed(CloseReason::PeerClosed), ctx),
            Ok(bytes_read) => {
                log::trace!("conn={} read {bytes_read} bytes", self.id);
                self.inbuf.extend_from_slice(&scratch[..bytes_read]);
                if was_idle {
                    // The first byte of a new head starts the header deadline; later bytes
                    // do not extend it, so a client trickling bytes cannot hold the slot.
                    self.deadline = ctx.now + ctx.config.header_timeout;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                log::trace!("conn={} read would block", self.id)
            }
            // EINTR: level triggering reports the socket again on the next pass.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => self.fail(e, ctx),
        }
    }

    /// Runs the state machine until it has to wait for the socket: parse what is buffered,
    /// write what is pending, and go round again while a response completes.
    fn make_progress(&mut self, ctx: &Context) {
        loop {
            let advanced = match self.state {
                State::Reading => self.serve_buffered(ctx),
                State::Writing(_) => self.write_pending(ctx),
                State::Lingering { .. } | State::Closed(_) => false,
            };
            if !advanced {
                return;
            }
        }
    }

    /// Parses every complete head in the buffer and batches their responses. Returns whether
    /// it switched to `Writing`.
    fn serve_buffered(&mut self, ctx: &Context) -> bool {
        let mut batch: Option<Outgoing> = None;
        while self.discard_buffered_body() {
            let out = match request::parse(&self.inbuf, &ctx.config.request_limits) {
                Parsed::Partial => break,
                Parsed::Complete { request, head_len } => {
                    self.inbuf.drain(..head_len);
                    self.discard_remaining = request.body_len;
                    let out = batch.get_or_insert_with(Outgoing::new);
                    self.respond(out, ctx, &request);
                    out
                }
                Parsed::Reject(reject) => {
                    let out = batch.get_or_insert_with(Outgoing::new);
                    self.refuse(out, ctx, reject);
                    out
                }
            };
            if !out.has_room() {
                break;
            }
        }
        match batch {
            Some(out) => {
                self.set_state(State::Writing(out), ctx);
                true
            }
            None => false,
        }
    }

    /// Throws away body bytes that are already buffered. Returns whether the body is gone,
    /// so the next head can be parsed (body bytes are never parsed as a request).
    fn discard_buffered_body(&mut self) -> bool {
        let buffered = self.inbuf.len() as u64;
        let dropped = self.discard_remaining.min(buffered);
        self.inbuf.drain(..dropped as usize);
        self.discard_remaining -= dropped;
        self.discard_remaining == 0
    }

    /// Appends the response to one parsed request.
    fn respond(&mut self, out: &mut Outgoing, ctx: &Context, request: &Request) {
        self.requests += 1;
        let (persistence, ending) = self.persistence(ctx, request);
        let status = answer::answer(out, ctx, request, persistence);
        if let Some(reason) = ending
            && out.close_after.is_none()
        {
            out.close_after = Some(reason);
        }
        out.record(ctx.now, || request.line(), status);
    }

    /// Whether this response keeps the connection: the client's wish, unless we are shutting
    /// down or the connection has served its quota. With the reason it ends, if it does.
    fn persistence(&self, ctx: &Context, request: &Request) -> (Persistence, Option<CloseReason>) {
        if ctx.shutting_down {
            (Persistence::Close, Some(CloseReason::Shutdown))
        } else if self.requests >= ctx.config.max_requests_per_connection {
            (Persistence::Close, Some(CloseReason::RequestQuota))
        } else if !request.persistence.keeps_alive() {
            (Persistence::Close, Some(CloseReason::Done))
        } else {
            (request.persistence, None)
        }
    }

    /// Appends the answer to a refused head, which always closes the connection.
    fn refuse(&mut self, out: &mut Outgoing, ctx: &Context, reject: Reject) {
        log::debug!(
            "conn={} refused head status={} why={:?}",
            self.id,
            reject.status.0,
            reject.why
        );
        out.push_status(ctx, reject.status, false, Persistence::Close);
        out.close_after = Some(CloseReason::Rejected(reject.status));
        out.record(ctx.now, || first_line_for_log(&self.inbuf), reject.status);
    }

    /// A connection-fatal I/O error: close, logging the everyday kinds quietly.
    fn fail(&mut self, error: io::Error, ctx: &Context) {
        let kind = error.kind();
        match kind {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => {
                log::debug!("conn={} i/o error: {error}", self.id)
            }
            _ => log::warn!("conn={} i/o error: {error}", self.id),
        }
        self.set_state(State::Closed(CloseReason::Io(kind)), ctx);
    }

    /// The one place the state changes, so `RUST_LOG=trace` shows every transition.
    fn set_state(&mut self, next: State, ctx: &Context) {
        let previous = std::mem::replace(&mut self.state, next);
        log::trace!(
            "conn={} {} -> {}",
            self.id,
            previous.name(),
            self.state.name()
        );
        if let (State::Writing(out), State::Closed(reason)) = (&previous, &self.state)
            && !out.is_sent()
        {
            // Closed mid-response: the log still gets a line per request, marked.
            out.log_access(self.id, self.peer, &format!(" aborted={reason:?}"));
        }
        if let State::Writing(_) = self.state {
            self.deadline = ctx.now + ctx.config.send_timeout;
        }
        if let State::Closed(reason) = self.state {
            log::debug!("conn={} closed reason={reason:?}", self.id);
        }
    }
}

/// The start of the first line of a refused head, for the access log.
fn first_line_for_log(buf: &[u8]) -> String {
    /// Enough of a line to recognise it without flooding the log.
    const MAX_LOGGED: usize = 200;
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
        .min(MAX_LOGGED);
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const BIG_LEN: usize = 2 * 1024 * 1024;

    /// A temporary root with a small and a large file, and a configuration.
    struct Fixture {
        dir: PathBuf,
        root: Root,
        config: Config,
    }

    impl Fixture {
        fn new() -> Fixture {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::SeqCst);
            let dir = std::env::temp_dir().join(format!("epollo-conn-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("a.txt"), "aaa").unwrap();
            std::fs::write(dir.join("big.bin"), vec![7u8; BIG_LEN]).unwrap();
            let root = Root::open(&dir, false).unwrap();
            Fixture {
                dir,
                root,
                config: Config::default(),
            }
        }

        fn ctx(&self, now: Instant) -> Context<'_> {
            Context {
                now,
                wall_clock: SystemTime::now(),
                date: "Sun, 06 Nov 1994 08:49:37 GMT",
                config: &self.config,
                root: &self.root,
                shutting_down: false,
            }
        }

        /// A connection over one end of a socket pair; the other end plays the client.
        fn connection(&self) -> (Connection<UnixStream>, UnixStream) {
            let (server, client) = UnixStream::pair().unwrap();
            server.set_nonblocking(true).unwrap();
            client.set_nonblocking(true).unwrap();
            let peer = SocketAddr::from(([127, 0, 0, 1], 9));
            (
                Connection::new(1, server, peer, Instant::now(), &self.config),
                client,
            )
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Everything the client end can read right now.
    fn drain(client: &mut UnixStream) -> String {
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 65536];
        loop {
            match client.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn statuses(text: &str) -> Vec<&str> {
        text.match_indices("HTTP/1.1 ")
            .map(|(i, _)| &text[i + 9..i + 12])
            .collect()
    }

    const GET_A: &[u8] = b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n";

    #[test]
    fn a_head_arriving_byte_by_byte_is_answered_once_complete() {
        let fixture = Fixture::new();
        let ctx = fixture.ctx(Instant::now());
        let (mut conn, mut client) = fixture.connection();
        let mut scratch = [0u8; 1024];
        for (i, byte) in GET_A.iter().enumerate() {
            client.write_all(&[*byte]).unwrap();
            conn.on_readable(&ctx, &mut scratch);
            let answer = drain(&mut client);
            if i + 1 < GET_A.len() {
                assert!(answer.is_empty(), "answered after {} bytes", i + 1);
            } else {
                assert!(
                    answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\naaa")
                );
            }
        }
        assert_eq!(
            conn.interest(),
            Some(Interest::Readable),
            "back to reading (keep-alive)"
        );
        assert_eq!(conn.deadline_kind(), DeadlineKind::Idle);
    }

    #[test]
    fn pipelined_heads_are_answered_in_one_pass_and_in_order() {
        let fixture = Fixture::new();
        let ctx = fixture.ctx(Instant::now());
        let (mut conn, mut client) = fixture.connection();
        client.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /missing HTTP/1.1\r\nHost: t\r\n\r\nHEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        conn.on_readable(&ctx, &mut [0u8; 4096]);
        let answer = drain(&mut client);
        assert_eq!(statuses(&answer), ["200", "404", "200"]);
        assert_eq!(conn.interest(), Some(Interest::Readable));
    }

    #[test]
    fn a_body_is_discarded_not_parsed_as_a_request() {
        let fixture = Fixture::new();
        let ctx = fixture.ctx(Instant::now());
        let (mut conn, mut client) = fixture.connection();
        let fake = "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n";
        let first = format!(
            "GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            fake.len()
        );
        client.write_all(first.as_bytes()).unwrap();
        client.write_all(&fake.as_bytes()[..10]).unwrap();
        conn.on_readable(&ctx, &mut [0u8; 4096]);
        assert_eq!(statuses(&drain(&mut client)), ["200"]);
        client.write_all(&fake.as_bytes()[10..]).unwrap();
        client.write_all(GET_A).unwrap();
        conn.on_readable(&ctx, &mut [0u8; 4096]);
        assert_eq!(
            statuses(&drain(&mut client)),
            ["200"],
            "the body's fake request was not answered"
        );
    }

    #[test]
    fn a_large_file_goes_out_in_chunks_as_the_socket_allows() {
        let fixture = Fixture::new();
        let ctx = fixture.ctx(Instant::now());
        let (mut conn, mut client) = fixture.connection();
        client
            .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        conn.on_readable(&ctx, &mut [0u8; 4096]);
        let mut received = drain(&mut client).into_bytes();
        let mut rounds = 0;
        while conn.interest() == Some(Interest::Writable) {
            conn.on_writable(&ctx);
            received.extend(drain(&mut client).into_bytes());
            rounds += 1;
            assert!(rounds < 10_000, "no progress");
        }
        let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(received.len() - head_end, BIG_LEN);
        assert!(received[head_end..].iter().all(|&b| b == 7));
        assert!(rounds > 0, "a 2 MB body takes several chunks");
        assert_eq!(conn.interest(), Some(Interest::Readable));
    }

    #[test]
    fn each_close_reason() {
        let fixture = Fixture::new();
        let ctx = fixture.ctx(Instant::now());
        let mut scratch = [0u8; 4096];

        let (mut conn, client) = fixture.connection();
        drop(client);
        conn.on_readable(&ctx, &mut scratch);
        assert_eq!(conn.close_reason(), Some(CloseReason::PeerClosed));

        let (mut conn, mut client) = fixture.connection();
        client.write_all(b"GARBAGE\r\n\r\n").unwrap();
        conn.on_readable(&ctx, &mut scratch);
        // A refusal lingers: our side is shut, and leftovers are drained until the client
        // closes (or the linger deadline passes).
        assert_eq!(conn.deadline_kind(), DeadlineKind::Linger);
        assert_eq!(conn.interest(), Some(Interest::Readable));
        assert!(drain(&mut client).contains("Connection: close"));
        client.write_all(b"leftover bytes").unwrap();
        conn.on_readable(&ctx, &mut scratch);
        assert_eq!(conn.close_reason(), None, "still lingering");
        drop(client);
        conn.on_readable(&ctx, &mut scratch);
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Rejected(Status::BAD_REQUEST))
        );

        let (mut conn, mut client) = fixture.connection();
        client
            .write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        conn.on_readable(&ctx, &mut scratch);
        assert_eq!(conn.close_reason(), Some(CloseReason::Done));

        let (mut conn, mut client) = fixture.connection();
        client.write_all(b"GET /a.txt HTTP/1.1\r\n").unwrap();
        conn.on_readable(&ctx, &mut scratch);
        assert_eq!(conn.deadline_kind(), DeadlineKind::Header);
        let later = Instant::now() + Duration::from_secs(60);
        conn.on_deadline(&fixture.ctx(later));
        assert_eq!(statuses(&drain(&mut client)), ["408"]);
        assert_eq!(conn.deadline_kind(), DeadlineKind::Linger);
        conn.on_deadline(&fixture.ctx(later + Duration::from_secs(60)));
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Deadline(DeadlineKind::Header))
        );

        let (mut conn, _client) = fixture.connection();
        conn.on_deadline(&ctx);
        assert_eq!(
            conn.close_reason(),
            Some(CloseReason::Deadline(DeadlineKind::Idle))
        );

        let (mut conn, _client) = fixture.connection();
        conn.begin_shutdown(&ctx);
        assert_eq!(conn.close_reason(), Some(CloseReason::Shutdown));
    }

    #[test]
    fn trickled_bytes_do_not_move_the_header_deadline() {
        let fixture = Fixture::new();
        let start = Instant::now();
        let (mut conn, mut client) = fixture.connection();
        client.write_all(b"GET").unwrap();
        conn.on_readable(&fixture.ctx(start), &mut [0u8; 64]);
        let deadline = conn.deadline();
        client.write_all(b" /a.txt").unwrap();
        conn.on_readable(&fixture.ctx(start + Duration::from_secs(5)), &mut [0u8; 64]);
        assert_eq!(conn.deadline(), deadline);
    }
}
