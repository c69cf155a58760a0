//! `Connection`: the per-connection state machine, and the only file that changes a
//! connection's state. Its handlers are called by the reactor; each reads or writes through
//! an I/O leaf (`socket.rs`), which makes one system call and reports it to the narrator, and
//! moves the state on from the outcome. The helpers beside it decide but never move:
//! `serving.rs` turns buffered heads into a batch of answers (through the router),
//! `writing.rs` sends a batch piece by piece, `outgoing.rs` is the batch, `body.rs` reads
//! past request bodies, `buffers.rs` lends busy connections their buffers, `readiness.rs`
//! keeps what the last read and write said of the socket, `deadline.rs` holds the deadline.
//!
//! Where this sits in the loop: the reactor calls [`Connection::on_readable`] (or, split in
//! two, [`Connection::receive`] then [`Connection::serve_received`]) or
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
//!                                                                             │        │
//!                                            --live: an event stream's head sent       │
//!                                                                             ├──► Streaming
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
//! timeout since the last progress; Lingering allows a short drain; Streaming sends a
//! heartbeat when quiet.
//!
//! **Eager progress** (as darkhttpd does): after a head is parsed we write the answer in the
//! same call, and after an answer we parse any head already buffered, so a small answer costs
//! no extra epoll round trip and pipelined requests are served without waiting for another
//! event. Answers to pipelined requests are *batched* into one [`Outgoing`] and leave in one
//! `send`.
//!
//! **Fairness**: a large file goes out one bounded `sendfile` per turn
//! ([`crate::limits::sendfile_step`]). Level-triggered, the socket stays registered for
//! writability, so epoll calls us again next pass, after everyone else has had a turn;
//! edge-triggered, the reactor's ready list does the same (see `readiness.rs` for how a
//! connection tells that it may go on).

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime};
use std::{io, mem};

use std::cell::RefCell;

use crate::config::Config;
use crate::http::Status;
use crate::limits::{
    LINGER_MAX_BYTES, LINGER_TIMEOUT, LIVE_HEARTBEAT, LIVE_MAX_PENDING_BYTES, SILENT_RECLAIM_AFTER,
};
use crate::live::stream::StreamSlots;
use crate::logs::AccessLog;
use crate::site::Site;
use crate::study::Study;
use crate::study::narrator;
use crate::sys::epoll::Interest;

mod body;
mod buffers;
mod deadline;
pub mod outgoing;
mod readiness;
mod serving;
mod socket;
#[cfg(test)]
mod tests;
mod writing;

use body::Discard;
pub use buffers::{BufferPool, Buffers};
use deadline::Deadline;
pub use deadline::DeadlineKind;
use outgoing::Outgoing;
use readiness::Readiness;
use serving::Served;
use socket::{Caller, Received, Wrote};
use writing::Batch;

/// What a heartbeat is: an SSE comment line, which the browser ignores.
const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// What a handler needs from the reactor for one pass.
pub struct Context<'a> {
    /// The time this loop pass began (taken once per pass).
    pub now: Instant,
    /// The wall-clock time of the same moment, for comparing with file times.
    pub wall_clock: SystemTime,
    /// The `Date` header value for this second.
    pub date: &'a str,
    /// The configuration (timeouts, limits, faults).
    pub config: &'a Config,
    /// The served folder and the configuration.
    pub site: &'a Site,
    /// Whether a shutdown has begun: every answer then closes its connection.
    pub shutting_down: bool,
    /// The server's spare buffers.
    pub buffers: &'a RefCell<BufferPool>,
    /// The worker's counters and trace.
    pub study: &'a Study,
    /// The worker's access log.
    pub access_log: &'a AccessLog,
    /// `--live`: the event streams open, and their bounds.
    pub streams: &'a StreamSlots,
    /// Most bytes of a long file body one `sendfile` offers (`limits::sendfile_step`, from
    /// the connections' congestion control).
    pub sendfile_step: usize,
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
    /// A request body was malformed or too large (the status it would have earned) after
    /// its request was answered: closed with no second answer.
    BrokenBody(Status),
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
    /// still sends until it closes too (see `after_closing_answer`). Interest: readable.
    Lingering {
        /// Why the connection ends, once the lingering is over.
        reason: CloseReason,
        /// Bytes thrown away so far.
        discarded: u64,
    },
    /// `--live`: an open event stream to a browser tab (see `send_event`). Interest:
    /// readable while nothing waits (to notice the tab closing), writable while events do.
    Streaming {
        /// Event bytes not yet taken by the socket.
        pending: Vec<u8>,
    },
    /// Finished; the reactor frees the slot in the same pass.
    Closed(CloseReason),
}

impl State {
    /// Where the statistics count this state in [`crate::study::stats::STATES`] (a closed
    /// connection is not counted).
    fn gauge(&self) -> Option<usize> {
        match self {
            State::Idle => Some(0),
            State::Reading => Some(1),
            State::Writing { .. } => Some(2),
            State::Lingering { .. } => Some(3),
            State::Streaming { .. } => Some(4),
            State::Closed(_) => None,
        }
    }

    /// A short name for logs.
    fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Reading => "reading",
            State::Writing { .. } => "writing",
            State::Lingering { .. } => "lingering",
            State::Streaming { .. } => "streaming",
            State::Closed(_) => "closed",
        }
    }
}

/// The client's address in 20 bytes where `SocketAddr` takes 32: an idle keep-alive
/// connection is little more than its `Connection`, so this is a sixth of it. (IPv6 flow and
/// scope ids are not kept; nothing uses them.)
#[derive(Clone, Copy, Debug)]
struct Peer {
    /// The address.
    ip: IpAddr,
    /// The port.
    port: u16,
}

impl Peer {
    /// As a socket address.
    fn addr(self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }
}

/// One client connection: its socket, input buffer, state and deadline.
pub struct Connection<S> {
    /// A number for log lines (`conn=N`), unique for the server's life.
    id: u64,
    /// The client's address, for the access log.
    peer: Peer,
    /// The socket (a `TcpStream` in the server; a `UnixStream` in unit tests).
    stream: S,
    /// Where we are in the state machine.
    state: State,
    /// A request body still to be read and thrown away before the next head.
    discard: Discard,
    /// Requests answered on this connection so far (counting stops at `u32::MAX`).
    requests: u32,
    /// When the current state has lasted too long (see [`Connection::time_allowed`]).
    deadline: Deadline,
    /// The buffers this connection uses while it is busy, from the server's pool
    /// ([`BufferPool`]); given back when it goes idle, so an idle connection holds none.
    buffers: Option<Box<Buffers>>,
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
            peer: Peer {
                ip: peer.ip(),
                port: peer.port(),
            },
            stream,
            state: State::Idle,
            discard: Discard::Nothing,
            requests: 0,
            deadline: Deadline::at(now),
            buffers: None,
            readiness: Readiness::default(),
        };
        connection.arm_deadline(now, config);
        connection
    }

    /// The socket, for (de)registration.
    pub fn stream(&self) -> &S {
        &self.stream
    }

    /// The socket, taken from a closed connection so that the reactor closes it itself (and
    /// traces the `close`).
    pub fn into_stream(self) -> S {
        self.stream
    }

    /// The number log and trace lines call it by.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Where the statistics count the current state (`None` once closed).
    pub fn gauge(&self) -> Option<usize> {
        self.state.gauge()
    }

    /// The readiness this state waits for; `None` once closed. A pure function of the state.
    pub fn interest(&self) -> Option<Interest> {
        match self.state {
            State::Idle | State::Reading | State::Lingering { .. } => Some(Interest::Readable),
            State::Streaming { ref pending } if pending.is_empty() => Some(Interest::Readable),
            State::Streaming { .. } => Some(Interest::Writable),
            State::Writing { .. } => Some(Interest::Writable),
            State::Closed(_) => None,
        }
    }

    /// Whether this is a `--live` event stream.
    pub fn is_streaming(&self) -> bool {
        matches!(self.state, State::Streaming { .. })
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer.addr()
    }

    /// Whether this connection may be closed to make room for a new client when the server
    /// is full, and in which order (lowest first):
    /// 0. a keep-alive connection waiting for its next request with nothing of it received,
    ///    longest idle first (all have the same keep-alive timeout, so the earliest deadline
    ///    is the longest idle). Closing it is always safe: HTTP/1.1 clients retry a request
    ///    that meets a closed keep-alive connection;
    /// 1. a connection that has sent nothing at all for [`SILENT_RECLAIM_AFTER`], oldest
    ///    first: a client about to speak has spoken by then (a browser's unused preconnect
    ///    opens another when it needs one);
    /// 2. a `--live` event stream, oldest first: the tab reconnects by itself.
    pub fn reclaim_rank(&self, now: Instant, config: &Config) -> Option<(u8, u64)> {
        match self.state {
            State::Idle if self.requests > 0 => Some((0, self.deadline.0)),
            // A new connection's deadline is the header timeout after it was accepted.
            State::Idle
                if self.deadline() + SILENT_RECLAIM_AFTER <= now + config.timeouts.header =>
            {
                Some((1, self.deadline.0))
            }
            State::Streaming { .. } => Some((2, self.id)),
            _ => None,
        }
    }

    /// Whether bytes the client sent wait unread in the socket (one peek). A connection
    /// [`Connection::reclaim_rank`] calls idle may have a request arriving that the loop has
    /// not read yet (its event comes later in the pass, or a read stopped at `--max-read`):
    /// the reactor asks this before closing it to make room.
    pub fn bytes_waiting(&self, study: &Study) -> bool {
        let by = Caller { id: self.id, study };
        socket::bytes_waiting(&self.stream, &by)
    }

    /// When the current deadline passes.
    pub fn deadline(&self) -> Instant {
        self.deadline.instant()
    }

    /// Which deadline applies now; `None` once closed.
    pub fn deadline_kind(&self) -> Option<DeadlineKind> {
        match self.state {
            State::Idle => Some(DeadlineKind::Idle),
            State::Reading => Some(DeadlineKind::Header),
            State::Writing { .. } => Some(DeadlineKind::Send),
            State::Lingering { .. } => Some(DeadlineKind::Linger),
            State::Streaming { .. } => Some(DeadlineKind::Heartbeat),
            State::Closed(_) => None,
        }
    }

    /// The one deadline rule: how long the current state may last.
    fn time_allowed(&self, config: &Config) -> Duration {
        match self.state {
            // A client that connects and says nothing at all gets the header timeout.
            State::Idle if self.requests == 0 => config.timeouts.header,
            State::Idle => config.timeouts.keep_alive,
            State::Reading => config.timeouts.header,
            State::Writing { .. } => config.timeouts.send,
            State::Lingering { .. } => LINGER_TIMEOUT,
            State::Streaming { .. } => LIVE_HEARTBEAT,
            State::Closed(_) => Duration::ZERO,
        }
    }

    /// Sets the deadline from the state: on every transition, and on send progress.
    fn arm_deadline(&mut self, now: Instant, config: &Config) {
        self.deadline = Deadline::at(now).after(self.time_allowed(config));
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
        if self.receive(ctx, scratch) {
            self.serve_received(ctx);
        }
    }

    /// The first half of [`Connection::on_readable`]: reads once. Returns whether the
    /// connection waits on a request, so that what arrived must now be answered with
    /// [`Connection::serve_received`]. The reactor calls that only after every read of the
    /// loop pass and one look at the file cache's change events, so that a request read after
    /// a file changed is never answered from the cache's old copy (the request may have been
    /// sent after the change, even when the event that woke us came before it).
    pub fn receive(&mut self, ctx: &Context, scratch: &mut [u8]) -> bool {
        narrator::serving(self.id);
        match self.state {
            State::Idle | State::Reading => {
                self.read_request_bytes(ctx, scratch);
                let awaits = matches!(self.state, State::Idle | State::Reading);
                self.readiness.set(Readiness::RECEIVED, awaits);
                awaits
            }
            State::Lingering { .. } => {
                self.linger(ctx, scratch);
                false
            }
            State::Streaming { .. } => {
                self.watch_stream(ctx, scratch);
                false
            }
            _ => true,
        }
    }

    /// The second half of [`Connection::on_readable`]: answers what has arrived.
    pub fn serve_received(&mut self, ctx: &Context) {
        narrator::serving(self.id);
        self.readiness.set(Readiness::RECEIVED, false);
        self.make_progress(ctx);
    }

    /// The socket is writable (or hung up, or has an error): continue the answer.
    pub fn on_writable(&mut self, ctx: &Context) {
        narrator::serving(self.id);
        self.make_progress(ctx);
    }

    /// The deadline passed: a late head gets 408, anything else (a late body included: its
    /// head is answered already) is closed silently.
    pub fn on_deadline(&mut self, ctx: &Context) {
        narrator::serving(self.id);
        log::debug!(
            "conn={} deadline passed kind={:?}",
            self.id,
            self.deadline_kind()
        );
        match self.state {
            State::Lingering { reason, .. } => self.set_state(State::Closed(reason), ctx),
            State::Streaming { .. } => self.heartbeat(ctx),
            // The head was answered and only its body is late: no second answer.
            State::Reading if !matches!(self.discard, Discard::Nothing) => {
                log::debug!("conn={} request body too slow: closing", self.id);
                let next =
                    self.after_closing_answer(CloseReason::Deadline(DeadlineKind::Header), ctx);
                self.set_state(next, ctx);
            }
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

    /// A shutdown began: an idle connection (or an event stream) closes now; others finish
    /// their current request.
    pub fn begin_shutdown(&mut self, ctx: &Context) {
        narrator::serving(self.id);
        if let State::Idle | State::Streaming { .. } = self.state {
            self.set_state(State::Closed(CloseReason::Shutdown), ctx);
        }
    }

    /// Runs the state machine until it has to wait for the socket: parse what is buffered,
    /// write what is pending, and go round again while an answer completes.
    fn make_progress(&mut self, ctx: &Context) {
        loop {
            let advanced = match self.state {
                State::Idle | State::Reading => self.serve(ctx),
                State::Writing { .. } => self.write_pending(ctx),
                State::Streaming { .. } => self.write_events(ctx),
                State::Lingering { .. } | State::Closed(_) => false,
            };
            if !advanced {
                return;
            }
        }
    }

    // ----- Reading -------------------------------------------------------------------------

    /// Who makes this connection's system calls, for the narrator.
    fn caller<'c>(&self, ctx: &Context<'c>) -> Caller<'c> {
        Caller {
            id: self.id,
            study: ctx.study,
        }
    }

    /// One `recv` into `scratch` (at most `--max-read` bytes), with what it says of the
    /// socket's readiness noted. A short read says the socket is drained, as `EAGAIN` does.
    fn recv_into(&mut self, ctx: &Context, scratch: &mut [u8]) -> Received {
        let offered = ctx
            .config
            .faults
            .max_read
            .map_or(scratch.len(), |cap| cap.min(scratch.len()));
        let fd = self.stream.as_fd().as_raw_fd();
        let by = self.caller(ctx);
        let received = socket::receive(&mut self.stream, fd, &mut scratch[..offered], &by);
        match received {
            Received::Bytes(bytes) => self.note_read(bytes, offered),
            Received::WouldBlock => self.readiness.set(Readiness::READ_BLOCKED, true),
            Received::Eof | Received::Failed(_) => {}
        }
        received
    }

    /// Reads once into the input buffer. Under level triggering one read per event is enough:
    /// if more is waiting, epoll reports the socket again next pass.
    fn read_request_bytes(&mut self, ctx: &Context, scratch: &mut [u8]) {
        match self.recv_into(ctx, scratch) {
            Received::Bytes(bytes) => {
                self.buffers(ctx).inbuf.extend_from_slice(&scratch[..bytes]);
                if let State::Idle = self.state {
                    // The first byte of a new head starts the header deadline.
                    self.set_state(State::Reading, ctx);
                }
            }
            Received::Eof => self.set_state(State::Closed(CloseReason::PeerClosed), ctx),
            Received::WouldBlock => {}
            Received::Failed(e) => self.fail(e, ctx),
        }
    }

    /// Lingering: reads and throws away what a client sends after our closing answer, until
    /// it closes, sends too much, or the linger deadline passes.
    fn linger(&mut self, ctx: &Context, scratch: &mut [u8]) {
        let State::Lingering { reason, .. } = self.state else {
            return;
        };
        match self.recv_into(ctx, scratch) {
            Received::Bytes(bytes) => {
                if let State::Lingering { discarded, .. } = &mut self.state {
                    *discarded += bytes as u64;
                    if *discarded > LINGER_MAX_BYTES {
                        self.set_state(State::Closed(reason), ctx);
                    }
                }
            }
            Received::Eof => self.set_state(State::Closed(reason), ctx),
            Received::WouldBlock => {}
            Received::Failed(e) => self.fail(e, ctx),
        }
    }

    /// Streaming: the socket is readable. A tab sends nothing after its request, so this is
    /// the tab closing (EOF), or bytes we throw away.
    fn watch_stream(&mut self, ctx: &Context, scratch: &mut [u8]) {
        match self.recv_into(ctx, scratch) {
            Received::Eof => self.set_state(State::Closed(CloseReason::PeerClosed), ctx),
            Received::Failed(e) => self.fail(e, ctx),
            Received::Bytes(_) | Received::WouldBlock => {}
        }
    }

    // ----- Answering -----------------------------------------------------------------------

    /// Answers what the input buffer holds. Returns whether it switched to `Writing`.
    fn serve(&mut self, ctx: &Context) -> bool {
        if !self.request_pending() {
            if matches!(self.state, State::Reading) {
                self.set_state(State::Idle, ctx); // a discarded body ended exactly here
            }
            return false; // nothing to parse (and no buffers taken for it)
        }
        match self.serve_buffered(ctx) {
            Served::Batch { out, close_after } => {
                self.set_state(State::Writing { out, close_after }, ctx);
                true
            }
            Served::Nothing(Some(reason)) => {
                let next = self.after_closing_answer(reason, ctx);
                self.set_state(next, ctx);
                false
            }
            Served::Nothing(None) => {
                if matches!(self.state, State::Reading) && !self.request_pending() {
                    self.set_state(State::Idle, ctx); // a discarded body ended exactly here
                }
                false
            }
        }
    }

    // ----- Writing -------------------------------------------------------------------------

    /// Sends what is pending. Returns whether the answer finished (and the state moved
    /// on); `false` means wait for the socket, or yield to others after a file chunk.
    fn write_pending(&mut self, ctx: &Context) -> bool {
        match self.send_batch(ctx) {
            Batch::Sent => self.finish_response(ctx),
            Batch::Wait => false,
            Batch::PeerGone => {
                self.set_state(State::Closed(CloseReason::PeerClosed), ctx);
                false
            }
            Batch::Failed(e) => {
                self.fail(e, ctx);
                false
            }
        }
    }

    /// Everything is sent: log it, then read the next request, stream, linger, or close.
    fn finish_response(&mut self, ctx: &Context) -> bool {
        let State::Writing { out, close_after } = &self.state else {
            return false;
        };
        outgoing::log_answers(self.id, self.peer.addr(), ctx, out, "");
        let close_after = *close_after;
        let becomes_stream = out.event_stream && !ctx.shutting_down;
        let next = match close_after {
            // --live: the head of an event stream is sent; the stream stays open.
            Some(_) if becomes_stream => State::Streaming {
                pending: Vec::new(),
            },
            Some(reason) => self.after_closing_answer(reason, ctx),
            // An answer begun before the shutdown promised keep-alive; there is no next
            // request to wait for now (but the client may be sending one: linger).
            None if ctx.shutting_down && self.inbuf().is_empty() => {
                self.after_closing_answer(CloseReason::Shutdown, ctx)
            }
            None if self.request_pending() => State::Reading,
            None => State::Idle,
        };
        let keeps_going = matches!(next, State::Idle | State::Reading);
        if keeps_going {
            log::debug!("conn={} keep-alive reuse", self.id);
        }
        self.set_state(next, ctx);
        keeps_going
    }

    /// The state after an answer that ends the connection: `Lingering` if the client may
    /// have sent (or may still send) bytes we did not read, our side shut down so that the
    /// client sees the answer end; `Closed` otherwise.
    ///
    /// Closing over unread bytes makes the kernel send a reset, which can destroy our answer
    /// in the client's receive queue (seen with `--max-read 1`): so we read and throw away
    /// what the client still sends, for at most [`LINGER_TIMEOUT`] (nginx's "lingering
    /// close").
    fn after_closing_answer(&self, reason: CloseReason, ctx: &Context) -> State {
        // A refusal leaves the rest of the request unread; an answer that ends a connection
        // the client wanted to keep may cross requests it pipelined.
        let cut_short = matches!(
            reason,
            CloseReason::Rejected(_)
                | CloseReason::BrokenBody(_)
                | CloseReason::Deadline(_)
                | CloseReason::RequestQuota
                | CloseReason::Shutdown
        );
        // Unread bytes may also wait in the socket, not yet read into our buffer: only a
        // last read that came back short (or `EAGAIN`) says the socket was empty.
        let socket_drained = self.readiness.has(Readiness::READ_BLOCKED);
        if !cut_short && !self.request_pending() && socket_drained {
            return State::Closed(reason);
        }
        socket::shut_write(&self.stream, &self.caller(ctx));
        State::Lingering {
            reason,
            discarded: 0,
        }
    }

    // ----- Streaming (--live) --------------------------------------------------------------

    /// Queues one event for the tab and sends what the socket takes. A tab that stopped
    /// reading (more than [`LIVE_MAX_PENDING_BYTES`] waiting) is closed; it reconnects by
    /// itself when it wakes.
    pub fn send_event(&mut self, ctx: &Context, event: &[u8]) {
        narrator::serving(self.id);
        let State::Streaming { pending } = &mut self.state else {
            return;
        };
        if pending.len() + event.len() > LIVE_MAX_PENDING_BYTES {
            let reason = CloseReason::Io(io::ErrorKind::WouldBlock);
            return self.set_state(State::Closed(reason), ctx);
        }
        pending.extend_from_slice(event);
        self.write_events(ctx);
    }

    /// The heartbeat deadline passed: a comment line keeps the stream (and any proxy on the
    /// way) alive, and finds out whether the tab is still there.
    fn heartbeat(&mut self, ctx: &Context) {
        self.send_event(ctx, HEARTBEAT); // counted by the sweep, as a deadline of its kind
        if matches!(self.state, State::Streaming { .. }) {
            self.arm_deadline(ctx.now, ctx.config);
        }
    }

    /// Sends pending event bytes. Returns `false`: a stream never moves on to another state
    /// by writing (only by closing).
    fn write_events(&mut self, ctx: &Context) -> bool {
        let by = self.caller(ctx);
        while let State::Streaming { pending } = &mut self.state
            && !pending.is_empty()
        {
            match socket::send(&self.stream, pending, false, &by) {
                Wrote::Done(sent) | Wrote::Partial(sent) | Wrote::Capped(sent) => {
                    pending.drain(..sent);
                }
                Wrote::WouldBlock => {
                    self.readiness.set(Readiness::WRITE_BLOCKED, true);
                    return false;
                }
                Wrote::Failed(e) => {
                    self.fail(e, ctx);
                    return false;
                }
            }
        }
        false
    }

    // ----- Ending --------------------------------------------------------------------------

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

    /// The one place the state changes (a test checks that no other file assigns it), so
    /// `--trace` shows every transition; it re-arms the deadline for the new state, gives
    /// back a stream's slot when the stream ends, and the buffers when the connection goes
    /// idle.
    fn set_state(&mut self, next: State, ctx: &Context) {
        let previous = mem::replace(&mut self.state, next);
        // A stream's slot was taken when its request was answered: give it back when the
        // stream ends, or when its head never became a stream (cut short, or a shutdown).
        let was_stream = match &previous {
            State::Streaming { .. } => true,
            State::Writing { out, .. } => out.event_stream,
            _ => false,
        };
        if was_stream && !matches!(self.state, State::Streaming { .. }) {
            ctx.streams.closed(self.peer.ip);
        }
        let names = (previous.name(), self.state.name());
        let gauges = (previous.gauge(), self.state.gauge());
        ctx.study.moved(self.id, names, gauges);
        if let (State::Writing { out, .. }, State::Closed(reason)) = (&previous, &self.state)
            && !out.is_sent()
        {
            // Closed mid-answer: the log still gets a line per request, marked.
            outgoing::log_answers(
                self.id,
                self.peer.addr(),
                ctx,
                out,
                &format!(" aborted={reason:?}"),
            );
        }
        if let State::Closed(reason) = self.state {
            log::debug!("conn={} closed reason={reason:?}", self.id);
        }
        if let State::Writing { mut out, .. } = previous
            && let Some(buffers) = &mut self.buffers
        {
            out.recycle(); // the emptied batch serves the next answer
            buffers.out = Some(out);
        }
        if matches!(self.state, State::Idle | State::Closed(_)) {
            self.give_back_buffers(ctx);
        }
        self.arm_deadline(ctx.now, ctx.config);
    }
}
