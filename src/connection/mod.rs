//! `Connection`: the per-connection state machine, its one deadline rule, and all socket I/O
//! for a request: reading heads, and sending answers with `send` and `sendfile`. Beside it:
//! `body.rs` reads past request bodies, `spares.rs` lends busy connections their buffers, and
//! `lingering.rs` holds the last state, draining a client after a closing answer.
//!
//! Where this sits in the loop: the reactor calls [`Connection::on_readable`] or
//! [`Connection::on_writable`] when epoll reports the socket, and [`Connection::on_deadline`]
//! when its deadline passes. Afterwards it asks [`Connection::interest`]: `None` means the
//! connection closed (free the slot); a change means reregister.
//!
//! ```text
//!  accept ──► Idle ──(first byte)──► Reading ──(head parsed, or refused)──► Writing
//!              ▲                        ▲                                     │
//!              │                        └──(sent; next request already here)──┤
//!              └───────────────(sent, keep-alive, nothing pending)────────────┤
//!                                                                             │ closing answer
//!                                                                             ├──► Lingering
//!                                                                             ▼        │
//!  (EOF, I/O error, deadline, shutdown: from any state) ────────────────────► Closed ◄─┘
//! ```
//!
//! # Design notes
//! **Each state owns its data**: the answer being sent lives inside `State::Writing`, so
//! going back to reading drops it and nothing can be forgotten in a reset. The input buffer
//! and the count of body bytes still to discard live on the connection, because they outlive
//! one request (pipelined heads wait there while an answer is written).
//!
//! **One deadline rule.** `Connection::time_allowed` derives the deadline from the state,
//! and every transition re-arms it (so do writes that make progress). Idle waits for the
//! keep-alive timeout (a brand-new connection, for the header timeout); Reading starts on a
//! head's first byte and is not extended by later bytes (slowloris); Writing allows the send
//! timeout since the last progress; Lingering allows a short drain.
//!
//! **Eager progress** (as darkhttpd does): after a head is parsed we write the answer in the
//! same call, and after an answer we parse any head already buffered, so a small answer costs
//! no extra epoll round trip and pipelined requests are served without waiting for another
//! event. Answers to pipelined requests are *batched* into one [`Outgoing`] and leave in one
//! `send`.
//!
//! **Fairness**: a large file goes out at most [`crate::limits::SENDFILE_CHUNK_BYTES`] per
//! call. Level-triggered, the socket stays registered for writability, so epoll calls us
//! again next pass, after everyone else has had a turn; edge-triggered, the reactor's ready
//! list does the same (see `readiness.rs` for how a connection tells that it may go on).
//!
//! **Instruments**: every read, write and transition is counted in the worker's statistics
//! and, with `--trace`, written as a line named after its system call (`recv`, `send`,
//! `sendfile`); the fault-injection flags cap each read and write where it is made.

use std::cell::RefCell;
use std::io::{self, Read};
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::sendfile::sendfile;

use crate::config::Config;
use crate::http::request::{self, Parsed, Persistence, Reject, Request};
use crate::http::response::Exchange;
use crate::http::{Method, Outgoing, Reply, Status};
use crate::limits::{LINGER_TIMEOUT, RequestLimits, SENDFILE_CHUNK_BYTES};
use crate::site::{self, Site};
use crate::study::Study;
use crate::study::stats::Count;
use crate::sys::{self, epoll::Interest};
use crate::trace_conn;

mod body;
mod lingering;
mod readiness;
mod spares;
#[cfg(test)]
mod tests;

use body::{Discard, Discarding};
use readiness::Readiness;
pub use spares::{SparePool, Spares};

/// What a handler needs from the reactor for one pass.
pub struct Context<'a> {
    /// The time this loop pass began (taken once per pass).
    pub now: Instant,
    /// The wall-clock time of the same moment, for comparing with file times.
    pub wall_clock: SystemTime,
    /// The `Date` header value for this second.
    pub date: &'a str,
    /// The served folder and the configuration.
    pub site: &'a Site,
    /// Whether a shutdown has begun: every answer then closes its connection.
    pub shutting_down: bool,
    /// The server's spare buffers.
    pub spares: &'a RefCell<SparePool>,
    /// The worker's counters and trace.
    pub study: &'a Study,
}

/// Which deadline a connection is waiting on; follows from its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlineKind {
    /// Waiting for the first byte of a request (keep-alive idle, or a fresh connection).
    Idle,
    /// A request head (or the body we discard) has started but not finished arriving.
    Header,
    /// An answer is pending and the client is not reading it.
    Send,
    /// We closed our side after a closing answer and are draining what the client sends.
    Linger,
}

impl DeadlineKind {
    /// The name trace lines use.
    pub fn name(self) -> &'static str {
        match self {
            DeadlineKind::Idle => "idle",
            DeadlineKind::Header => "header",
            DeadlineKind::Send => "send",
            DeadlineKind::Linger => "linger",
        }
    }

    /// The statistics counter for this kind firing.
    pub fn count(self) -> Count {
        match self {
            DeadlineKind::Idle => Count::DeadlineIdle,
            DeadlineKind::Header => Count::DeadlineHeader,
            DeadlineKind::Send => Count::DeadlineSend,
            DeadlineKind::Linger => Count::DeadlineLinger,
        }
    }
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side (EOF).
    PeerClosed,
    /// The last answer was sent and the client asked to close.
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
    /// Waiting for the first byte of a request; interest: readable.
    Idle,
    /// Part of a request head (or of a body to discard) is here; interest: readable.
    Reading,
    /// Sending one answer or a batch of them; interest: writable.
    Writing {
        /// The answers, assembled before any byte was sent (boxed: most connections are idle,
        /// and an idle one should not carry room for a batch).
        out: Box<Outgoing>,
        /// `None`: back to reading when all is sent; `Some`: the connection ends, for this
        /// reason.
        close_after: Option<CloseReason>,
    },
    /// Our side is shut down after a closing answer; reading and discarding what the client
    /// still sends until it closes too (see `lingering.rs`). Interest: readable.
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
            State::Idle => "idle",
            State::Reading => "reading",
            State::Writing { .. } => "writing",
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
    /// A request body still to be read and thrown away before the next head.
    discard: Discard,
    /// Requests answered on this connection so far.
    requests: u64,
    /// When the current state has lasted too long (see [`Connection::time_allowed`]).
    deadline: Instant,
    /// The buffers this connection uses while it is busy, from the server's pool
    /// ([`SparePool`]); given back when it goes idle, so an idle connection holds none.
    spares: Option<Box<Spares>>,
    /// What the last reads and writes said of the socket (see `readiness.rs`).
    readiness: Readiness,
}

impl<S: Read + AsFd> Connection<S> {
    /// A freshly accepted connection, waiting for its first request.
    pub fn new(
        id: u64,
        stream: S,
        peer: SocketAddr,
        now: Instant,
        config: &Config,
    ) -> Connection<S> {
        let mut connection = Connection {
            id,
            peer,
            stream,
            state: State::Idle,
            discard: Discard::Nothing,
            requests: 0,
            deadline: now,
            spares: None,
            readiness: Readiness::default(),
        };
        connection.arm_deadline(now, config);
        connection
    }

    /// The socket, for (de)registration.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The number log and trace lines call it by.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The state's name, as the statistics count it.
    pub fn state_name(&self) -> &'static str {
        self.state.name()
    }

    /// The readiness this state waits for; `None` once closed. A pure function of the state.
    pub fn interest(&self) -> Option<Interest> {
        match self.state {
            State::Idle | State::Reading | State::Lingering { .. } => Some(Interest::Readable),
            State::Writing { .. } => Some(Interest::Writable),
            State::Closed(_) => None,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// For a keep-alive connection waiting for its next request with nothing of it received
    /// (which may be closed to make room for a new client): its deadline. Every such
    /// connection has the same keep-alive timeout, so the earliest deadline is the one that
    /// has been idle longest.
    pub fn reclaimable(&self) -> Option<Instant> {
        match self.state {
            State::Idle if self.requests > 0 => Some(self.deadline),
            _ => None,
        }
    }

    /// When the current deadline passes.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Which deadline applies now; `None` once closed.
    pub fn deadline_kind(&self) -> Option<DeadlineKind> {
        match self.state {
            State::Idle => Some(DeadlineKind::Idle),
            State::Reading => Some(DeadlineKind::Header),
            State::Writing { .. } => Some(DeadlineKind::Send),
            State::Lingering { .. } => Some(DeadlineKind::Linger),
            State::Closed(_) => None,
        }
    }

    /// The one deadline rule: how long the current state may last.
    fn time_allowed(&self, config: &Config) -> Duration {
        match self.state {
            // A client that connects and says nothing at all gets the header timeout.
            State::Idle if self.requests == 0 => config.header_timeout,
            State::Idle => config.keep_alive_timeout,
            State::Reading => config.header_timeout,
            State::Writing { .. } => config.send_timeout,
            State::Lingering { .. } => LINGER_TIMEOUT,
            State::Closed(_) => Duration::ZERO,
        }
    }

    /// Sets the deadline from the state: on every transition, and on send progress.
    fn arm_deadline(&mut self, now: Instant, config: &Config) {
        self.deadline = now + self.time_allowed(config);
    }

    /// Whether part of a next request (head bytes, or a body to discard) has arrived.
    fn request_pending(&self) -> bool {
        !self.inbuf().is_empty() || !matches!(self.discard, Discard::Nothing)
    }

    /// The socket is readable (or hung up, or has an error): read once, then make progress.
    ///
    /// `scratch` is the server's one read buffer, shared by all connections: bytes are read
    /// there and only what arrived is copied into this connection's input buffer, so a
    /// connection holding a partial head costs its size, not a whole read buffer.
    pub fn on_readable(&mut self, ctx: &Context, scratch: &mut [u8]) {
        match self.state {
            State::Idle | State::Reading => self.read_once(ctx, scratch),
            State::Lingering { .. } => return self.linger(ctx, scratch),
            _ => {}
        }
        self.make_progress(ctx);
    }

    /// The socket is writable (or hung up, or has an error): continue the answer.
    pub fn on_writable(&mut self, ctx: &Context) {
        self.make_progress(ctx);
    }

    /// The deadline passed: a late head gets 408, anything else is closed silently.
    pub fn on_deadline(&mut self, ctx: &Context) {
        log::debug!(
            "conn={} deadline passed kind={:?}",
            self.id,
            self.deadline_kind()
        );
        match self.state {
            State::Lingering { reason, .. } => self.set_state(State::Closed(reason), ctx),
            State::Reading => {
                let mut out = Box::<Outgoing>::default();
                self.push_refusal(&mut out, ctx, Status::REQUEST_TIMEOUT);
                let close_after = Some(CloseReason::Deadline(DeadlineKind::Header));
                self.set_state(State::Writing { out, close_after }, ctx);
                self.make_progress(ctx);
            }
            State::Idle => self.set_state(
                State::Closed(CloseReason::Deadline(DeadlineKind::Idle)),
                ctx,
            ),
            State::Writing { .. } => self.set_state(
                State::Closed(CloseReason::Deadline(DeadlineKind::Send)),
                ctx,
            ),
            State::Closed(_) => {}
        }
    }

    /// A shutdown began: an idle connection closes now; others finish their current request.
    pub fn begin_shutdown(&mut self, ctx: &Context) {
        if let State::Idle = self.state {
            self.set_state(State::Closed(CloseReason::Shutdown), ctx);
        }
    }

    /// Reads once into the input buffer. Under level triggering one read per event is enough:
    /// if more is waiting, epoll reports the socket again next pass.
    fn read_once(&mut self, ctx: &Context, scratch: &mut [u8]) {
        let Some(bytes_read) = self.recv(ctx, scratch) else {
            return;
        };
        match bytes_read {
            0 => self.set_state(State::Closed(CloseReason::PeerClosed), ctx),
            bytes_read => {
                log::trace!("conn={} read {bytes_read} bytes", self.id);
                let inbuf = &mut self.spares(ctx).inbuf;
                inbuf.extend_from_slice(&scratch[..bytes_read]);
                if let State::Idle = self.state {
                    // The first byte of a new head starts the header deadline.
                    self.set_state(State::Reading, ctx);
                }
            }
        }
    }

    /// One `recv` into `scratch` (at most `--max-read` bytes), counted and traced. Returns the
    /// bytes read (0: EOF), or `None` when there was nothing (`EAGAIN`, `EINTR`) or the
    /// connection failed.
    fn recv(&mut self, ctx: &Context, scratch: &mut [u8]) -> Option<usize> {
        let offered = ctx
            .site
            .config
            .faults
            .max_read
            .map_or(scratch.len(), |cap| cap.min(scratch.len()));
        let (id, fd) = (self.id, self.stream.as_fd().as_raw_fd());
        match self.stream.read(&mut scratch[..offered]) {
            Ok(bytes_read) => {
                ctx.study.counters.bump(Count::Reads);
                trace_conn!(ctx.study.trace, id, "recv fd={fd} conn={id} n={bytes_read}");
                self.note_read(bytes_read, offered);
                Some(bytes_read)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ctx.study.counters.bump(Count::ReadsEagain);
                trace_conn!(ctx.study.trace, id, "recv fd={fd} conn={id} EAGAIN");
                log::trace!("conn={} read would block", self.id);
                self.readiness.read_blocked = true;
                None
            }
            // EINTR: the socket is still readable; the next pass (or the ready list) reads.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            Err(e) => {
                trace_conn!(
                    ctx.study.trace,
                    id,
                    "recv fd={fd} conn={id} error={}",
                    e.kind()
                );
                self.fail(e, ctx);
                None
            }
        }
    }

    /// Runs the state machine until it has to wait for the socket: parse what is buffered,
    /// write what is pending, and go round again while an answer completes.
    fn make_progress(&mut self, ctx: &Context) {
        loop {
            let advanced = match self.state {
                State::Idle | State::Reading => self.serve_buffered(ctx),
                State::Writing { .. } => self.write_pending(ctx),
                State::Lingering { .. } | State::Closed(_) => false,
            };
            if !advanced {
                return;
            }
        }
    }

    /// Parses every complete head in the buffer and batches their answers. Returns whether
    /// it switched to `Writing`.
    fn serve_buffered(&mut self, ctx: &Context) -> bool {
        if !self.request_pending() {
            if matches!(self.state, State::Reading) {
                self.set_state(State::Idle, ctx); // a discarded body ended exactly here
            }
            return false; // nothing to parse (and no buffers taken for it)
        }
        let limits = &ctx.site.config.request_limits;
        let spares = self.spares(ctx);
        let mut out = spares.out.take().unwrap_or_default();
        let mut close_after = None;
        let mut answered = 0;
        while close_after.is_none() && out.has_room() {
            close_after = match self.discard_buffered_body() {
                Discarding::Waiting => break,
                Discarding::Refused { status, head } => {
                    Some(self.refuse_body(&mut out, ctx, status, head))
                }
                Discarding::Gone => match self.parse(ctx, limits) {
                    Parsed::Partial => break,
                    Parsed::Complete { request, head_len } => {
                        if answered > 0 {
                            ctx.study.counters.bump(Count::Pipelined);
                        }
                        self.spares(ctx).inbuf.drain(..head_len);
                        self.discard = Discard::after(&request, limits);
                        let ending = self.respond(&mut out, ctx, &request);
                        self.give_back(request);
                        ending
                    }
                    Parsed::Reject(reject) => Some(self.refuse(&mut out, ctx, reject)),
                },
            };
            answered += 1;
        }
        if answered == 0 {
            if let Some(spares) = &mut self.spares {
                spares.out = Some(out); // unused: keep it for the next answer
            }
            if matches!(self.state, State::Reading) && !self.request_pending() {
                self.set_state(State::Idle, ctx); // a discarded body ended exactly here
            }
            return false;
        }
        if out.cut_short {
            close_after = Some(CloseReason::Io(io::ErrorKind::UnexpectedEof));
        } else if out.ends_with_close {
            close_after = close_after.or(Some(CloseReason::Done));
        }
        self.set_state(State::Writing { out, close_after }, ctx);
        true
    }

    /// Parses the head at the start of the input buffer, reusing the spare target buffer.
    fn parse(&mut self, ctx: &Context, limits: &RequestLimits) -> Parsed {
        self.spares(ctx);
        let spares = self.spares.as_mut().expect("invariant: just taken");
        request::parse_reusing(&spares.inbuf, limits, &mut spares.target)
    }

    /// Appends the answer to one parsed request; returns why the connection ends after it,
    /// if it does.
    fn respond(
        &mut self,
        out: &mut Outgoing,
        ctx: &Context,
        request: &Request,
    ) -> Option<CloseReason> {
        self.requests += 1;
        let ending = self.ending(ctx, request);
        let persistence = match ending {
            Some(_) => Persistence::Close,
            None => request.persistence,
        };
        ctx.study.counters.bump(Count::Requests);
        let config = &ctx.site.config;
        let reply = match config.stats_path {
            Some(_) => ctx
                .study
                .answer(config, request, ctx.site.cache.borrow().counts(), ctx.now),
            None => None,
        }
        .unwrap_or_else(|| site::answer(ctx.site, request, ctx.wall_clock));
        let head_only = request.method == Method::Head;
        let exchange = exchange(ctx, head_only, request.minor_version == 1, persistence);
        out.push(reply, &exchange, || request.line());
        ending
    }

    /// The one close decision for an answer: shutting down, the request quota, or the
    /// client's wish ends the connection after it.
    fn ending(&self, ctx: &Context, request: &Request) -> Option<CloseReason> {
        if ctx.shutting_down {
            Some(CloseReason::Shutdown)
        } else if self.requests >= ctx.site.config.max_requests_per_connection {
            Some(CloseReason::RequestQuota)
        } else if !request.persistence.keeps_alive() {
            Some(CloseReason::Done)
        } else {
            None
        }
    }

    /// Appends the answer to a refused head, which always closes the connection.
    fn refuse(&mut self, out: &mut Outgoing, ctx: &Context, reject: Reject) -> CloseReason {
        log::debug!(
            "conn={} refused head status={} why={:?}",
            self.id,
            reject.status.0,
            reject.why
        );
        self.push_refusal(out, ctx, reject.status);
        CloseReason::Rejected(reject.status)
    }

    /// Appends the answer to a malformed or oversized request body; it closes the
    /// connection, since we no longer know where the next request starts.
    fn refuse_body(
        &mut self,
        out: &mut Outgoing,
        ctx: &Context,
        status: Status,
        head_only: bool,
    ) -> CloseReason {
        log::debug!("conn={} refused body status={}", self.id, status.0);
        let exchange = exchange(ctx, head_only, true, Persistence::Close);
        out.push(Reply::error(status), &exchange, || "(request body)".into());
        CloseReason::Rejected(status)
    }

    /// Appends a closing error answer to a head we could not serve (refused, or late). A
    /// response to HEAD has no content (RFC 9110 §9.3.2), refusals included.
    fn push_refusal(&self, out: &mut Outgoing, ctx: &Context, status: Status) {
        let head_only = request::names_head(self.inbuf());
        let exchange = exchange(ctx, head_only, true, Persistence::Close);
        out.push(Reply::error(status), &exchange, || {
            first_line_for_log(self.inbuf())
        });
    }

    /// Sends what is pending. Returns whether the answer finished (and the state moved
    /// on); `false` means wait for the socket, or yield to others after a file chunk.
    fn write_pending(&mut self, ctx: &Context) -> bool {
        let mut pumped = false;
        loop {
            let State::Writing { out, .. } = &mut self.state else {
                return false;
            };
            if out.is_sent() {
                return self.finish_response(ctx);
            }
            if out.written == out.bytes.len() && out.stream.is_some() {
                if pumped {
                    // One bounded step of a stream per event: the socket is still writable,
                    // so epoll reports us again next pass, after everyone else.
                    return false;
                }
                out.pump();
                pumped = true;
                continue;
            }
            let sending_file = out.written == out.bytes.len();
            let syscall = if sending_file { "sendfile" } else { "send" };
            let (id, fd) = (self.id, self.stream.as_fd().as_raw_fd());
            let max_write = ctx.site.config.faults.max_write;
            match send_some(&self.stream, out, max_write) {
                Ok(sent) => {
                    log::trace!("conn={} wrote {} bytes", self.id, sent.bytes);
                    let short = sent.bytes < sent.offered;
                    count_write(ctx, sending_file, sent.bytes, short);
                    let note = if short { " short" } else { "" };
                    trace_conn!(
                        ctx.study.trace,
                        id,
                        "{syscall} fd={fd} conn={id} n={}{note}",
                        sent.bytes
                    );
                    let done = out.is_sent();
                    self.arm_deadline(ctx.now, &ctx.site.config);
                    if short && !done {
                        // The send buffer is full: the next call would only say EAGAIN.
                        self.readiness.write_blocked = true;
                        return false;
                    }
                    if sending_file && !done {
                        return false; // yield: after everyone else (epoll, or the ready list)
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ctx.study.counters.bump(Count::WritesEagain);
                    trace_conn!(ctx.study.trace, id, "{syscall} fd={fd} conn={id} EAGAIN");
                    log::trace!("conn={} write would block", self.id);
                    self.readiness.write_blocked = true;
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    trace_conn!(
                        ctx.study.trace,
                        id,
                        "{syscall} fd={fd} conn={id} error={}",
                        e.kind()
                    );
                    self.fail(e, ctx);
                    return false;
                }
            }
        }
    }

    /// Everything is sent: log it, then read the next request, or close.
    fn finish_response(&mut self, ctx: &Context) -> bool {
        let State::Writing { out, close_after } = &mut self.state else {
            return false;
        };
        out.log_access(self.id, self.peer, "");
        let close_after = *close_after;
        let next = match close_after {
            Some(reason) => self.linger_or_close(reason),
            // An answer begun before the shutdown promised keep-alive; there is no next
            // request to wait for now (but the client may be sending one: linger).
            None if ctx.shutting_down && self.inbuf().is_empty() => {
                self.linger_or_close(CloseReason::Shutdown)
            }
            None if self.request_pending() => State::Reading,
            None => State::Idle,
        };
        let keeps_going = matches!(next, State::Idle | State::Reading);
        if keeps_going {
            ctx.study.counters.bump(Count::KeepAliveReuses);
            log::debug!("conn={} keep-alive reuse", self.id);
        }
        self.set_state(next, ctx);
        keeps_going
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

    /// The one place the state changes, so `RUST_LOG=trace` shows every transition; it
    /// re-arms the deadline for the new state.
    fn set_state(&mut self, next: State, ctx: &Context) {
        let previous = mem::replace(&mut self.state, next);
        let (from, to) = (previous.name(), self.state.name());
        log::trace!("conn={} {from} -> {to}", self.id);
        ctx.study.counters.moved(Some(from), Some(to));
        let id = self.id;
        trace_conn!(ctx.study.trace, id, "state conn={id} {from} -> {to}");
        if let (State::Writing { out, .. }, State::Closed(reason)) = (&previous, &self.state)
            && !out.is_sent()
        {
            // Closed mid-answer: the log still gets a line per request, marked.
            out.log_access(self.id, self.peer, &format!(" aborted={reason:?}"));
        }
        if let State::Closed(reason) = self.state {
            log::debug!("conn={} closed reason={reason:?}", self.id);
        }
        if let State::Writing { mut out, .. } = previous
            && let Some(spares) = &mut self.spares
        {
            out.recycle(); // the emptied batch serves the next answer
            spares.out = Some(out);
        }
        if matches!(self.state, State::Idle | State::Closed(_)) {
            self.give_back_spares(ctx);
        }
        self.arm_deadline(ctx.now, &ctx.site.config);
    }
}

/// How an answer is to be serialised in this pass.
fn exchange<'a>(
    ctx: &'a Context,
    head_only: bool,
    http11: bool,
    persistence: Persistence,
) -> Exchange<'a> {
    Exchange {
        head_only,
        http11,
        persistence,
        started: ctx.now,
        date: ctx.date,
        config: &ctx.site.config,
    }
}

/// What one `send` or `sendfile` did.
struct Sent {
    /// Bytes written.
    bytes: usize,
    /// Bytes offered: fewer written means the socket's send buffer filled.
    offered: usize,
}

/// Counts one write that made progress.
fn count_write(ctx: &Context, by_sendfile: bool, bytes: usize, short: bool) {
    let counters = &ctx.study.counters;
    counters.bump(Count::Writes);
    if short {
        counters.bump(Count::WritesShort);
    }
    let kind = if by_sendfile {
        Count::BytesSendfile
    } else {
        Count::BytesCopied
    };
    counters.add(kind, bytes as u64);
}

/// Sends the next piece of `out`: buffered bytes if any are left, else one sendfile chunk;
/// at most `max_write` bytes (`--max-write`) if set.
///
/// The `?`s hand every error, `WouldBlock` included, to `write_pending`, which matches
/// `WouldBlock` and `Interrupted` as control flow (STYLE §8) before treating the rest as fatal.
/// A departed peer gives `BrokenPipe` rather than killing us: `sys::send` passes
/// `MSG_NOSIGNAL`, and Rust programs ignore SIGPIPE anyway.
fn send_some(stream: &impl AsFd, out: &mut Outgoing, max_write: Option<usize>) -> io::Result<Sent> {
    let cap = max_write.unwrap_or(usize::MAX);
    if out.written < out.bytes.len() {
        let pending = &out.bytes[out.written..];
        let offered = pending.len().min(cap);
        // MSG_MORE when more follows (a file body, or the rest of a capped write), so head
        // and body share packets.
        let more = out.file.is_some() || offered < pending.len();
        let bytes = sys::send(stream, &pending[..offered], more)?;
        out.written += bytes;
        return Ok(Sent { bytes, offered });
    }
    let body = out
        .file
        .as_mut()
        .expect("invariant: is_sent() was false, so a file body remains");
    let offered = (body.remaining.min(SENDFILE_CHUNK_BYTES as u64) as usize).min(cap);
    match sendfile(
        stream.as_fd(),
        body.file.as_fd(),
        Some(&mut body.offset),
        offered,
    )? {
        0 => {
            log::warn!("a file shrank while being sent; closing its connection");
            Err(io::ErrorKind::UnexpectedEof.into())
        }
        bytes => {
            body.remaining -= bytes as u64;
            Ok(Sent { bytes, offered })
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
