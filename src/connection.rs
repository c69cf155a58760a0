//! `Connection`: the per-connection state machine, and all socket I/O.
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
//!                                                            ▼
//!  (EOF, I/O error, deadline, shutdown: from any state) ──► Closed
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
//! **Level-triggered fairness**: a large file goes out at most [`SENDFILE_CHUNK_BYTES`] per
//! call; the socket stays registered for writability, so epoll calls us again next pass, after
//! everyone else has had a turn.

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::sendfile::sendfile;

use crate::config::Config;
use crate::files::{self, Resolved, Root, StaticFile};
use crate::limits::{INLINE_FILE_MAX_BYTES, MAX_BATCH_BYTES, SENDFILE_CHUNK_BYTES};
use crate::request::{self, Method, Parsed, Reject, Request};
use crate::response::{Head, Persistence, Status, status_page};
use crate::sys::{self, epoll::Interest};

/// What a handler needs from the reactor for one pass.
pub struct Context<'a> {
    /// The time this loop pass began (taken once per pass).
    pub now: Instant,
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
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed its side (EOF).
    PeerClosed,
    /// The last response was sent and the connection was not to be kept.
    Done,
    /// A deadline passed.
    Deadline(DeadlineKind),
    /// The request head was refused with this status.
    Rejected(Status),
    /// A socket or file error of this kind.
    Io(io::ErrorKind),
    /// The server is shutting down and the connection was idle.
    Shutdown,
}

/// The state machine (see the diagram in the module docs).
enum State {
    /// Waiting for (the rest of) a request head; interest: readable.
    Reading,
    /// Sending a response (or a batch of them); interest: writable.
    Writing(Outgoing),
    /// Finished; the reactor frees the slot in the same pass.
    Closed(CloseReason),
}

impl State {
    /// A short name for logs.
    fn name(&self) -> &'static str {
        match self {
            State::Reading => "reading",
            State::Writing(_) => "writing",
            State::Closed(_) => "closed",
        }
    }
}

/// One or more responses on their way out: buffered bytes, then at most one file body.
struct Outgoing {
    /// Heads and small bodies, in order.
    bytes: Vec<u8>,
    /// How much of `bytes` the socket has taken.
    // INVARIANT: written <= bytes.len()
    written: usize,
    /// A large file body that follows `bytes`, sent with sendfile.
    file: Option<FileBody>,
    /// `None`: back to reading when done; `Some`: close with this reason when done.
    close_after: Option<CloseReason>,
    /// Access-log records for the responses in this batch (only kept when info is enabled).
    log: Vec<AccessRecord>,
}

/// A file being sent with sendfile.
struct FileBody {
    /// The open file.
    file: File,
    /// Where the next sendfile starts.
    offset: i64,
    /// Bytes still to send; the `Content-Length` promised them.
    remaining: u64,
}

/// What the access-log line of one response needs.
struct AccessRecord {
    /// The request line (or the start of a refused head).
    line: String,
    /// The status sent.
    status: Status,
    /// Bytes in the response, head included.
    bytes: u64,
    /// When the head was parsed.
    started: Instant,
}

impl Outgoing {
    /// An empty batch.
    fn new() -> Outgoing {
        Outgoing {
            bytes: Vec::new(),
            written: 0,
            file: None,
            close_after: None,
            log: Vec::new(),
        }
    }

    /// Whether another pipelined response may join this batch.
    fn has_room(&self) -> bool {
        self.close_after.is_none() && self.file.is_none() && self.bytes.len() < MAX_BATCH_BYTES
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
            State::Reading => Some(Interest::Readable),
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
        }
    }

    /// Reading, with nothing of a next request buffered or pending.
    fn is_idle(&self) -> bool {
        matches!(self.state, State::Reading) && self.inbuf.is_empty() && self.discard_remaining == 0
    }

    /// The socket is readable (or hung up, or has an error): read once, then make progress.
    ///
    /// `scratch` is the server's one read buffer, shared by all connections: bytes are read
    /// there and only what arrived is copied into this connection's input buffer, so a
    /// connection holding a partial head costs its size, not a whole read buffer.
    pub fn on_readable(&mut self, ctx: &Context, scratch: &mut [u8]) {
        if matches!(self.state, State::Reading) {
            self.read_once(ctx, scratch);
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
        if kind == DeadlineKind::Header && matches!(self.state, State::Reading) {
            let mut out = Outgoing::new();
            self.append_status(
                &mut out,
                ctx,
                Status::REQUEST_TIMEOUT,
                false,
                Persistence::Close,
            );
            out.close_after = Some(CloseReason::Deadline(kind));
            self.record(&mut out, ctx, "-".into(), Status::REQUEST_TIMEOUT);
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
                State::Closed(_) => false,
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
            let out = match request::parse(&self.inbuf) {
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
        let persistence = self.persistence(ctx, request);
        let head_only = request.method == Method::Head;
        let status = match request.method {
            Method::Get | Method::Head => {
                match files::resolve(ctx.root, &request.target, &ctx.config.index) {
                    Ok(Resolved::File(file)) => {
                        self.append_file(out, ctx, file, head_only, persistence)
                    }
                    Ok(Resolved::Redirect(location)) => {
                        let mut head = Head::new(Status::MOVED_PERMANENTLY, 0, persistence);
                        head.location = Some(&location);
                        self.append_page(out, ctx, head, head_only)
                    }
                    Err(status) => self.append_status(out, ctx, status, head_only, persistence),
                }
            }
            Method::Other(_) => {
                self.append_status(out, ctx, Status::METHOD_NOT_ALLOWED, false, persistence)
            }
        };
        if !persistence.keeps_alive() && out.close_after.is_none() {
            out.close_after = Some(CloseReason::Done);
        }
        self.record(out, ctx, request.line(), status);
    }

    /// Whether this response keeps the connection: the client's wish, unless we are shutting
    /// down or the connection has served its quota.
    fn persistence(&self, ctx: &Context, request: &Request) -> Persistence {
        let quota_reached = self.requests >= ctx.config.max_requests_per_connection;
        if ctx.shutting_down || quota_reached {
            Persistence::Close
        } else {
            request.persistence
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
        self.append_status(out, ctx, reject.status, false, Persistence::Close);
        out.close_after = Some(CloseReason::Rejected(reject.status));
        let line = first_line_for_log(&self.inbuf);
        self.record(out, ctx, line, reject.status);
    }

    /// Appends a file's head and, unless HEAD, its body: small files are copied into the
    /// buffer so the response leaves in one write; large ones follow by sendfile.
    fn append_file(
        &self,
        out: &mut Outgoing,
        ctx: &Context,
        file: StaticFile,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let mut head = Head::new(Status::OK, file.len, persistence);
        head.content_type = Some(&file.content_type);
        head.last_modified = file.modified;
        head.write_to(&mut out.bytes, ctx.date);
        if head_only || file.len == 0 {
            return Status::OK;
        }
        if file.len <= INLINE_FILE_MAX_BYTES {
            self.inline_file(out, file);
        } else {
            out.file = Some(FileBody {
                file: file.file,
                offset: 0,
                remaining: file.len,
            });
        }
        Status::OK
    }

    /// Copies a small file into the output buffer. Reading a regular file blocks briefly
    /// (see `files.rs`). If it shrank since we looked, the promised length cannot be kept:
    /// the client gets what there is and the connection closes after it.
    fn inline_file(&self, out: &mut Outgoing, mut file: StaticFile) {
        let start = out.bytes.len();
        out.bytes.resize(start + file.len as usize, 0);
        let mut filled = 0;
        while filled < file.len as usize {
            match file.file.read(&mut out.bytes[start + filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("conn={} reading a file failed: {e}", self.id);
                    break;
                }
            }
        }
        if filled < file.len as usize {
            log::warn!(
                "conn={} file shrank while being read; closing after a short body",
                self.id
            );
            out.bytes.truncate(start + filled);
            out.close_after = Some(CloseReason::Io(io::ErrorKind::UnexpectedEof));
        }
    }

    /// Appends a status page (error or redirect body) with the given status.
    fn append_status(
        &self,
        out: &mut Outgoing,
        ctx: &Context,
        status: Status,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let mut head = Head::new(status, 0, persistence);
        head.allow = status == Status::METHOD_NOT_ALLOWED;
        self.append_page(out, ctx, head, head_only)
    }

    /// Appends `head` with the small HTML page for its status as the body.
    fn append_page(
        &self,
        out: &mut Outgoing,
        ctx: &Context,
        mut head: Head,
        head_only: bool,
    ) -> Status {
        let page = status_page(head.status);
        head.content_length = page.len() as u64;
        head.content_type = Some("text/html; charset=utf-8");
        head.write_to(&mut out.bytes, ctx.date);
        if !head_only {
            out.bytes.extend_from_slice(page.as_bytes());
        }
        head.status
    }

    /// Remembers an access-log record for the response just appended (if info is enabled).
    fn record(&self, out: &mut Outgoing, ctx: &Context, line: String, status: Status) {
        if log::log_enabled!(log::Level::Info) {
            let already: u64 = out.log.iter().map(|r| r.bytes).sum();
            let file_bytes = out.file.as_ref().map_or(0, |f| f.remaining);
            let bytes = out.bytes.len() as u64 + file_bytes - already;
            out.log.push(AccessRecord {
                line,
                status,
                bytes,
                started: ctx.now,
            });
        }
    }

    /// Sends pending bytes, then the file body. Returns whether the response finished (and
    /// the state moved on); `false` means wait for the socket or yield to others.
    fn write_pending(&mut self, ctx: &Context) -> bool {
        loop {
            let State::Writing(out) = &mut self.state else {
                return false;
            };
            let result = if out.written < out.bytes.len() {
                // MSG_MORE when a file body follows, so head and body share packets.
                let sent = sys::send(&self.stream, &out.bytes[out.written..], out.file.is_some());
                if let Ok(n) = sent {
                    out.written += n;
                }
                sent
            } else if let Some(body) = out.file.as_mut().filter(|body| body.remaining > 0) {
                let chunk = body.remaining.min(SENDFILE_CHUNK_BYTES as u64) as usize;
                match sendfile(
                    self.stream.as_fd(),
                    body.file.as_fd(),
                    Some(&mut body.offset),
                    chunk,
                ) {
                    // The file is shorter than the Content-Length we promised.
                    Ok(0) => Err(io::Error::from(Errno::ENODATA)),
                    Ok(n) => {
                        body.remaining -= n as u64;
                        Ok(n)
                    }
                    Err(errno) => Err(io::Error::from(errno)),
                }
            } else {
                return self.finish_response(ctx);
            };
            match result {
                Ok(bytes_sent) => {
                    log::trace!("conn={} wrote {bytes_sent} bytes", self.id);
                    self.deadline = ctx.now + ctx.config.send_timeout;
                    if self.sent_a_file_chunk() {
                        return false; // yield: epoll calls us again next pass (level-triggered)
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    log::trace!("conn={} write would block", self.id);
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(Errno::ENODATA as i32) => {
                    log::warn!("conn={} file shrank while being sent; closing", self.id);
                    self.fail(io::ErrorKind::UnexpectedEof.into(), ctx);
                    return false;
                }
                Err(e) => {
                    self.fail(e, ctx);
                    return false;
                }
            }
        }
    }

    /// Whether the last write was a sendfile chunk that left more to send.
    fn sent_a_file_chunk(&self) -> bool {
        match &self.state {
            State::Writing(out) => {
                out.written == out.bytes.len()
                    && out.file.as_ref().is_some_and(|body| body.remaining > 0)
            }
            _ => false,
        }
    }

    /// Everything is sent: log it, then read the next request or close.
    fn finish_response(&mut self, ctx: &Context) -> bool {
        let State::Writing(out) = std::mem::replace(&mut self.state, State::Reading) else {
            return false;
        };
        self.state = State::Writing(Outgoing::new()); // placeholder so set_state logs "writing ->"
        for record in &out.log {
            self.log_access(record, "");
        }
        if let Some(reason) = out.close_after {
            self.set_state(State::Closed(reason), ctx);
            return false;
        }
        if ctx.shutting_down && self.inbuf.is_empty() {
            // A response that began before the shutdown promised keep-alive; now it is done,
            // and there is no next request to wait for.
            self.set_state(State::Closed(CloseReason::Shutdown), ctx);
            return false;
        }
        if self.inbuf.is_empty() {
            self.inbuf = Vec::new(); // an idle connection holds no buffer
            self.deadline = ctx.now + ctx.config.keep_alive_timeout;
        } else {
            self.deadline = ctx.now + ctx.config.header_timeout;
        }
        log::debug!("conn={} keep-alive reuse", self.id);
        self.set_state(State::Reading, ctx);
        true
    }

    /// Writes one access-log line.
    fn log_access(&self, record: &AccessRecord, note: &str) {
        log::info!(
            "conn={} peer={} {:?} {} {}B {:.1}ms{note}",
            self.id,
            self.peer,
            record.line,
            record.status.0,
            record.bytes,
            record.started.elapsed().as_secs_f64() * 1000.0
        );
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
        if let State::Writing(out) = previous {
            // Closed mid-response: the log still gets a line per request, marked.
            if let State::Closed(reason) = self.state {
                for record in &out.log {
                    self.log_access(record, &format!(" aborted={reason:?}"));
                }
            }
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

/// How long until `deadline`, or zero if it has passed.
pub fn time_until(deadline: Instant, now: Instant) -> Duration {
    deadline.saturating_duration_since(now)
}
