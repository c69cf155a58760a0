//! `Connection`: the per-connection state machine and its one deadline rule. The request's
//! path through it has a file per step: `reading.rs` (`recv` into the input buffer),
//! `answering.rs` (parse heads, decide and batch answers), `writing.rs` (`send` and
//! `sendfile`, then finish the answer). Beside them: `body.rs` reads past request bodies,
//! `spares.rs` lends busy connections their buffers, `readiness.rs` keeps what the last read
//! and write said of the socket, and `lingering.rs` holds the last state, draining a client
//! after a closing answer.
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

use std::cell::{Cell, RefCell};
use std::io::{self, Read};
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime};

use crate::config::Config;
use crate::http::{Outgoing, Status};
use crate::limits::{LINGER_TIMEOUT, LIVE_HEARTBEAT, SILENT_RECLAIM_AFTER};
use crate::logs::format::LogEntry;
use crate::logs::{AccessLog, Answered};
use crate::site::Site;
use crate::study::Study;
use crate::study::stats::Count;
use crate::sys::epoll::Interest;
use crate::trace_conn;

mod answering;
mod body;
mod lingering;
mod readiness;
mod reading;
mod spares;
mod streaming;
#[cfg(test)]
mod tests;
mod writing;

use body::Discard;
use readiness::Readiness;
pub use spares::{SparePool, Spares};
pub use streaming::StreamSlots;

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
    /// The worker's access log.
    pub access_log: &'a AccessLog,
    /// `--live`: the event streams open, and their bounds.
    pub streams: &'a StreamSlots,
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
    /// An event stream has been quiet for a while: time for a heartbeat (not a close).
    Heartbeat,
}

impl DeadlineKind {
    /// The name trace lines use.
    pub fn name(self) -> &'static str {
        match self {
            DeadlineKind::Idle => "idle",
            DeadlineKind::Header => "header",
            DeadlineKind::Send => "send",
            DeadlineKind::Linger => "linger",
            DeadlineKind::Heartbeat => "heartbeat",
        }
    }

    /// The statistics counter for this kind firing.
    pub fn count(self) -> Count {
        match self {
            DeadlineKind::Idle => Count::DeadlineIdle,
            DeadlineKind::Header => Count::DeadlineHeader,
            DeadlineKind::Send => Count::DeadlineSend,
            DeadlineKind::Linger => Count::DeadlineLinger,
            DeadlineKind::Heartbeat => Count::Heartbeats,
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
    /// still sends until it closes too (see `lingering.rs`). Interest: readable.
    Lingering {
        /// Why the connection ends, once the lingering is over.
        reason: CloseReason,
        /// Bytes thrown away so far.
        discarded: u64,
    },
    /// `--live`: an open event stream to a browser tab (see `streaming.rs`). Interest:
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

/// A moment as nanoseconds since the first one taken (8 bytes where `Instant` takes 16;
/// 584 years of range).
#[derive(Clone, Copy, Debug)]
struct Deadline(u64);

/// The moment `Deadline`s count from: a minute before it is first needed, so that a `now`
/// taken just before (the loop's first pass, a test's start) is not clamped up to it.
static DEADLINE_EPOCH: LazyLock<Instant> = LazyLock::new(|| {
    let now = Instant::now();
    now.checked_sub(Duration::from_secs(60)).unwrap_or(now)
});

thread_local! {
    /// The last moment converted, and what it gave: every transition in a loop pass arms its
    /// deadline from the same `now`, so one conversion serves the whole pass.
    static LAST_CONVERTED: Cell<Option<(Instant, Deadline)>> = const { Cell::new(None) };
}

impl Deadline {
    /// `moment`, or the epoch if it is earlier (only an already-passed deadline can be).
    fn at(moment: Instant) -> Deadline {
        if let Some((last, deadline)) = LAST_CONVERTED.get()
            && last == moment
        {
            return deadline;
        }
        let since = moment.saturating_duration_since(*DEADLINE_EPOCH);
        let deadline = Deadline(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX));
        LAST_CONVERTED.set(Some((moment, deadline)));
        deadline
    }

    /// `allowed` later.
    fn after(self, allowed: Duration) -> Deadline {
        let nanos = allowed
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(allowed.subsec_nanos()));
        Deadline(self.0.saturating_add(nanos))
    }

    /// As an `Instant`.
    fn instant(self) -> Instant {
        *DEADLINE_EPOCH + Duration::from_nanos(self.0)
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
            peer: Peer {
                ip: peer.ip(),
                port: peer.port(),
            },
            stream,
            state: State::Idle,
            discard: Discard::Nothing,
            requests: 0,
            deadline: Deadline::at(now),
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
                if self.deadline() + SILENT_RECLAIM_AFTER <= now + config.header_timeout =>
            {
                Some((1, self.deadline.0))
            }
            State::Streaming { .. } => Some((2, self.id)),
            _ => None,
        }
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
            State::Idle if self.requests == 0 => config.header_timeout,
            State::Idle => config.keep_alive_timeout,
            State::Reading => config.header_timeout,
            State::Writing { .. } => config.send_timeout,
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
            self.answer_received(ctx);
        }
    }

    /// The first half of [`Connection::on_readable`]: reads once. Returns whether the
    /// connection waits on a request, so that what arrived must now be answered with
    /// [`Connection::answer_received`]. The reactor calls that only after every read of the
    /// loop pass and one look at the file cache's change events, so that a request read after
    /// a file changed is never answered from the cache's old copy (the request may have been
    /// sent after the change, even when the event that woke us came before it).
    pub fn receive(&mut self, ctx: &Context, scratch: &mut [u8]) -> bool {
        match self.state {
            State::Idle | State::Reading => {
                self.read_once(ctx, scratch);
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
    pub fn answer_received(&mut self, ctx: &Context) {
        self.readiness.set(Readiness::RECEIVED, false);
        self.make_progress(ctx);
    }

    /// The socket is writable (or hung up, or has an error): continue the answer.
    pub fn on_writable(&mut self, ctx: &Context) {
        self.make_progress(ctx);
    }

    /// The deadline passed: a late head gets 408, anything else (a late body included: its
    /// head is answered already) is closed silently.
    pub fn on_deadline(&mut self, ctx: &Context) {
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
                let next = self.linger_or_close(CloseReason::Deadline(DeadlineKind::Header));
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
        if let State::Idle | State::Streaming { .. } = self.state {
            self.set_state(State::Closed(CloseReason::Shutdown), ctx);
        }
    }

    /// Runs the state machine until it has to wait for the socket: parse what is buffered,
    /// write what is pending, and go round again while an answer completes.
    fn make_progress(&mut self, ctx: &Context) {
        loop {
            let advanced = match self.state {
                State::Idle | State::Reading => self.serve_buffered(ctx),
                State::Writing { .. } => self.write_pending(ctx),
                State::Streaming { .. } => self.write_events(ctx),
                State::Lingering { .. } | State::Closed(_) => false,
            };
            if !advanced {
                return;
            }
        }
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
        let (from, to) = (previous.name(), self.state.name());
        log::trace!("conn={} {from} -> {to}", self.id);
        ctx.study
            .counters
            .moved(previous.gauge(), self.state.gauge());
        let id = self.id;
        trace_conn!(ctx.study.trace, id, "state conn={id} {from} -> {to}");
        if let (State::Writing { out, .. }, State::Closed(reason)) = (&previous, &self.state)
            && !out.is_sent()
        {
            // Closed mid-answer: the log still gets a line per request, marked.
            log_answers(
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

/// Hands the records of a batch of answers to the access log; `note` marks a batch cut
/// short.
pub(super) fn log_answers(id: u64, peer: SocketAddr, ctx: &Context, out: &Outgoing, note: &str) {
    for (record, total_bytes, body_bytes) in out.records_as_sent() {
        let fields = record.fields.as_deref();
        let entry = LogEntry {
            peer,
            time: ctx.wall_clock,
            line: &record.line,
            status: record.status.0,
            body_bytes,
            referer: fields.and_then(|f| f.referer.as_deref()),
            user_agent: fields.and_then(|f| f.user_agent.as_deref()),
            forwarded_for: fields.and_then(|f| f.forwarded_for.as_deref()),
            forwarded: fields.and_then(|f| f.forwarded.as_deref()),
            duration_ms: record.started.elapsed().as_secs_f64() * 1000.0,
        };
        ctx.access_log.write(&Answered {
            id,
            entry,
            total_bytes,
            note,
        });
    }
}
