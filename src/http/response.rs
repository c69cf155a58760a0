//! A request's answer as a plain value ([`Reply`]), and the one place it becomes bytes: the
//! output batch [`Outgoing`], which serialises heads, applies HEAD, adds the configured
//! headers and keeps the access-log record.
//!
//! Where this sits in the loop: `site::answer` decides a `Reply` for each parsed request; the
//! connection appends it here with [`Outgoing::push`], then sends what `Outgoing` holds
//! (`bytes` by `send`, then at most one `file` by `sendfile`). Answers to pipelined requests
//! are pushed into the same batch, so they leave together in as few writes as the socket
//! allows. Nothing here touches a socket.
//!
//! # Design notes
//! Only this module assembles headers, so `Date`, `Server`, `Content-Length` and `Connection`
//! cannot drift between the file path and the error path, and `--header`/`--cors` reach every
//! answer without any answer having to remember them. HEAD takes the same path as GET and
//! [`Outgoing::push`] drops the body at the very last step, so their heads are identical by
//! construction. Framing follows RFC 9110 §8.6: every body has a length known in advance, so
//! every answer but 204 and 304 (which have no content) carries `Content-Length`.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

use super::request::{LogFields, Persistence};
use super::status::{Status, status_page};
use crate::config::Config;
use crate::limits::{INLINE_FILE_MAX_BYTES, MAX_BATCH_BYTES};
use crate::util::date::imf_fixdate;

/// The answer to one request, decided before any byte is written.
#[derive(Debug)]
pub struct Reply {
    /// The status line's code.
    pub status: Status,
    /// Header fields that vary between answers (the fixed ones are added when serialising).
    pub fields: Fields,
    /// The content a GET gets (HEAD gets its length, and no content).
    pub body: Body,
}

/// The header fields that vary between answers; `None`/`false` leaves a field out.
#[derive(Debug, Default)]
pub struct Fields {
    /// `Content-Type`.
    pub content_type: Option<Text>,
    /// `Content-Encoding` of a precompressed sibling.
    pub content_encoding: Option<&'static str>,
    /// `Content-Range` of a 206 or 416.
    pub content_range: Option<String>,
    /// `ETag`.
    pub etag: Option<Text>,
    /// `Last-Modified` (left out if the date format cannot express it).
    pub last_modified: Option<SystemTime>,
    /// `Location` of a redirect.
    pub location: Option<String>,
    /// `Allow: GET, HEAD, OPTIONS` (on 405 and OPTIONS).
    pub allow: bool,
    /// `Retry-After: 1` (on a 503 for a busy moment).
    pub retry_after: bool,
    /// A file's content: `Accept-Ranges: bytes` and `X-Content-Type-Options: nosniff`.
    pub file_content: bool,
    /// `Vary: Accept`: the answer depends on `Accept` (a listing, as HTML or JSON), so no
    /// cache hands the one to a client that asked for the other.
    pub vary_accept: bool,
    /// An answer about a file (200, 206, 304): `Cache-Control` from `--cache-control`, and
    /// `Vary: Accept-Encoding`, since a sibling may be chosen (or appear) for another client.
    pub cacheable: bool,
    /// The serialised field lines of all of the above for this answer, made once by the file
    /// cache for a whole file ([`content_field_lines`]); copied instead of serialising.
    pub prepared: Option<Rc<[u8]>>,
}

/// A header value: a constant, or text shared with the file cache, so that answering from
/// the cache copies no string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Text {
    /// Known at compile time.
    Static(&'static str),
    /// Shared (with the cache, or between the answers to one request).
    Shared(Rc<str>),
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Text::Static(text) => text,
            Text::Shared(text) => text,
        }
    }
}

impl From<&'static str> for Text {
    fn from(text: &'static str) -> Text {
        Text::Static(text)
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text::Shared(text.into())
    }
}

impl From<Rc<str>> for Text {
    fn from(text: Rc<str>) -> Text {
        Text::Shared(text)
    }
}

/// Where a file's bytes are: an open file, or a copy in memory (small files in the cache).
/// Both are shared, so a cached file serves many answers at once.
#[derive(Clone, Debug)]
pub enum Content {
    /// An open file, read (or sent with `sendfile`) at an offset; never moved.
    File(Rc<File>),
    /// The whole file's bytes.
    Memory(Rc<[u8]>),
    /// A file's content with bytes inserted at one place (`--live`'s reload script), sent
    /// without copying the file: its part before, the inserted bytes, its part after.
    Spliced(Rc<Splice>),
}

/// Content with bytes inserted: `original[..at]`, then `insert`, then `original[at..]`.
#[derive(Debug)]
pub struct Splice {
    /// The file's own content (never itself spliced).
    pub original: Content,
    /// Where in `original` the bytes go.
    pub at: u64,
    /// The bytes inserted.
    pub insert: &'static [u8],
}

/// What follows a file body in a batch: the rest of a spliced answer, after its first part
/// went by `sendfile`.
pub struct After {
    /// Bytes sent after the file body (the inserted ones).
    pub bytes: Vec<u8>,
    /// Another file body after those (the file's part after the insertion).
    pub file: Option<FileBody>,
}

/// Content made a piece at a time, so that no single loop pass does unbounded work for it
/// (a listing of a huge directory). The connection asks for the next piece only once the
/// previous one has been sent, so a client that does not read pins one piece, not the page.
pub trait Produce {
    /// Does a bounded step of work and appends what it made (possibly nothing yet) to `out`.
    /// Returns `true` once the content is complete.
    fn produce(&mut self, out: &mut Vec<u8>) -> bool;

    /// Whether a step now would do work; `false`: wait for a later loop pass (a listing
    /// waits for its turn at the budget all listings share). The connection checks that its
    /// client is still there before each step it lets happen.
    fn may_step(&self) -> bool {
        true
    }
}

impl fmt::Debug for dyn Produce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Produce")
    }
}

/// The content of an answer.
#[derive(Debug)]
pub enum Body {
    /// No content (204, 304).
    Empty,
    /// Content we generated or assembled: a status page, a listing, multipart ranges.
    Bytes(Vec<u8>),
    /// `len` bytes of a file's content from `offset`: copied into the batch when small,
    /// otherwise sent with `sendfile`.
    File {
        /// The file, open or in memory.
        content: Content,
        /// Where the content starts.
        offset: u64,
        /// How many bytes; the `Content-Length` promises them.
        len: u64,
    },
    /// Content of a length not known in advance, made piece by piece: sent with the chunked
    /// coding to HTTP/1.1 clients, and delimited by closing the connection for HTTP/1.0.
    Stream(Box<dyn Produce>),
}

impl Body {
    /// The content length, if known in advance.
    pub fn known_len(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Bytes(bytes) => Some(bytes.len() as u64),
            Body::File { len, .. } => Some(*len),
            Body::Stream(_) => None,
        }
    }
}

impl Reply {
    /// An error (or any status without a resource of its own) with its small HTML page.
    pub fn error(status: Status) -> Reply {
        let fields = Fields {
            allow: status == Status::METHOD_NOT_ALLOWED,
            ..Fields::default()
        };
        Reply::error_with(status, fields)
    }

    /// A permanent redirect to `location`, with a status page for old clients.
    pub fn redirect(location: String) -> Reply {
        let fields = Fields {
            location: Some(location),
            ..Fields::default()
        };
        Reply::error_with(Status::MOVED_PERMANENTLY, fields)
    }

    /// 204 to OPTIONS, saying which methods we serve.
    pub fn options() -> Reply {
        let fields = Fields {
            allow: true,
            ..Fields::default()
        };
        Reply {
            status: Status::NO_CONTENT,
            fields,
            body: Body::Empty,
        }
    }

    /// An HTML page we generated.
    pub fn html(status: Status, html: String, fields: Fields) -> Reply {
        Reply::html_body(status, Body::Bytes(html.into_bytes()), fields)
    }

    /// An HTML page we generate, given as a body (a listing comes as a stream).
    pub fn html_body(status: Status, body: Body, mut fields: Fields) -> Reply {
        fields.content_type = Some(Text::Static(HTML));
        Reply {
            status,
            fields,
            body,
        }
    }

    /// 304: the cached copy is still good; `fields` are the validators to send along.
    pub fn not_modified(fields: Fields) -> Reply {
        Reply {
            status: Status::NOT_MODIFIED,
            fields,
            body: Body::Empty,
        }
    }

    /// `fields` with the status page for `status` as the body.
    pub fn error_with(status: Status, fields: Fields) -> Reply {
        Reply::html(status, status_page(status), fields)
    }
}

/// The `Content-Type` of every page we generate.
const HTML: &str = "text/html; charset=utf-8";

/// The head of one part of a `multipart/byteranges` body (RFC 9110 §14.6), with the CRLF and
/// boundary line that open it.
pub fn multipart_part_head(boundary: &str, content_type: &str, content_range: &str) -> String {
    format!(
        "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {content_range}\r\n\r\n"
    )
}

/// The line that closes a `multipart/byteranges` body.
pub fn multipart_end(boundary: &str) -> String {
    format!("\r\n--{boundary}--\r\n")
}

/// What serialising one answer needs besides the `Reply`.
pub struct Exchange<'a> {
    /// A HEAD request: the head only.
    pub head_only: bool,
    /// Keep an access-log record of this answer (the log wants them).
    pub log_records: bool,
    /// The request was HTTP/1.1, so content of unknown length can go chunked.
    pub http11: bool,
    /// The `Connection` header.
    pub persistence: Persistence,
    /// When the request's head was parsed, for the access log.
    pub started: Instant,
    /// The `Date` value of this second.
    pub date: &'a str,
    /// `--header`, `--cors` and `--cache-control`.
    pub config: &'a Config,
}

/// Heads and small bodies in one buffer, then at most one file body sent with `sendfile`.
/// `Outgoing::default()` is an empty batch.
#[derive(Default)]
pub struct Outgoing {
    /// Heads and small bodies, in order.
    pub bytes: Vec<u8>,
    /// How much of `bytes` the socket has taken.
    // INVARIANT: written <= bytes.len()
    pub written: usize,
    /// Bytes of this batch the socket has taken in all (heads, bodies, file content,
    /// stream chunks), for the access log.
    pub sent: u64,
    /// A large file body that follows `bytes`.
    pub file: Option<FileBody>,
    /// A file shrank while it was copied in: the promised length cannot be kept, so the
    /// connection must close after what there is.
    pub cut_short: bool,
    /// Content made piece by piece, sent after `bytes` (then nothing else joins the batch).
    pub stream: Option<StreamBody>,
    /// What follows `file` (a spliced answer's rest; then nothing else joins the batch).
    pub after: Option<Box<After>>,
    /// The content is delimited by the connection's close (a stream to an HTTP/1.0 client).
    pub ends_with_close: bool,
    /// `--live`: this answer opens an event stream; once its head is sent the connection
    /// becomes a stream (`State::Streaming`) instead of reading the next request.
    pub event_stream: bool,
    /// Access-log records of the answers in this batch (kept only when info is enabled).
    log: Vec<AccessRecord>,
    /// Bytes of this batch already attributed to a log record.
    logged_bytes: u64,
}

/// Content being made piece by piece.
pub struct StreamBody {
    /// What makes the pieces.
    producer: Box<dyn Produce>,
    /// Whether each piece is framed as a chunk (HTTP/1.1) or sent as it is (HTTP/1.0).
    chunked: bool,
    /// A reused buffer for one piece.
    piece: Vec<u8>,
}

/// A file body being sent with `sendfile`.
pub struct FileBody {
    /// The open file (shared with the cache, which is why `sendfile` is given the offset).
    pub file: Rc<File>,
    /// Where the next `sendfile` starts.
    pub offset: i64,
    /// Bytes still to send; the `Content-Length` promised them.
    pub remaining: u64,
    /// `TCP_CORK` is set on the socket for this body (see `connection/writing.rs`).
    pub corked: bool,
}

/// What the access-log line of one answer needs.
pub struct AccessRecord {
    /// The request line (or the start of a refused head).
    pub line: String,
    /// The status sent.
    pub status: Status,
    /// Bytes in the answer, head included.
    pub bytes: u64,
    /// Bytes of content (head excluded), as the common log format's `%b` counts them.
    pub body_bytes: u64,
    /// When the head was parsed.
    pub started: Instant,
    /// The request fields the access log's format wants, if it wants any.
    pub fields: Option<Box<LogFields>>,
}

impl Outgoing {
    /// Empties the batch for another use, keeping its buffers' allocations.
    pub fn recycle(&mut self) {
        let mut bytes = std::mem::take(&mut self.bytes);
        let mut log = std::mem::take(&mut self.log);
        bytes.clear();
        log.clear();
        // Every other field starts as a new batch's does: none can be forgotten here.
        *self = Outgoing {
            bytes,
            log,
            ..Outgoing::default()
        };
    }

    /// Whether another pipelined answer may join this batch: not after a file body or a cut
    /// one, and not past the batch size limit.
    pub fn has_room(&self) -> bool {
        !self.cut_short
            && self.file.is_none()
            && self.stream.is_none()
            && self.after.is_none()
            && self.bytes.len() < MAX_BATCH_BYTES
    }

    /// Whether everything, file body included, has been sent.
    pub fn is_sent(&self) -> bool {
        self.written == self.bytes.len()
            && self.file.as_ref().is_none_or(|body| body.remaining == 0)
            && self.stream.is_none()
            && self.after.is_none()
    }

    /// Once the bytes and the file body are sent, moves on to what follows them; returns
    /// whether there was something.
    pub fn advance(&mut self) -> bool {
        let file_sent = self.file.as_ref().is_none_or(|body| body.remaining == 0);
        if self.written < self.bytes.len() || !file_sent {
            return false;
        }
        let Some(after) = self.after.take() else {
            return false;
        };
        self.bytes.clear();
        self.bytes.extend_from_slice(&after.bytes);
        self.written = 0;
        self.file = after.file;
        true
    }

    /// Appends one answer: its head, then (unless HEAD) its content; and its access-log
    /// record, whose `line` is only formatted when info logging is on.
    pub fn push(&mut self, reply: Reply, exchange: &Exchange, line: impl FnOnce() -> String) {
        let before = self.bytes.len();
        write_head(&mut self.bytes, &reply, exchange);
        let head_len = (self.bytes.len() - before) as u64;
        if matches!(reply.body, Body::Stream(_)) && !exchange.http11 {
            // The head said `Connection: close` (HEAD included): keep to it.
            self.ends_with_close = true;
        }
        if !exchange.head_only {
            match reply.body {
                Body::Empty => {}
                Body::Bytes(bytes) => self.bytes.extend_from_slice(&bytes),
                Body::File {
                    content: Content::File(file),
                    offset,
                    len,
                } => self.push_file(file, offset, len),
                Body::File {
                    content: Content::Memory(bytes),
                    offset,
                    len,
                } => self.push_memory(&bytes, offset, len),
                Body::File {
                    content: Content::Spliced(splice),
                    offset,
                    len,
                } => self.push_spliced(&splice, offset, len),
                Body::Stream(producer) => {
                    self.stream = Some(StreamBody {
                        producer,
                        chunked: exchange.http11,
                        piece: Vec::new(),
                    });
                }
            }
        }
        if exchange.log_records {
            self.record(exchange.started, line, reply.status, head_len);
        }
    }

    /// The access-log records of the answers in this batch.
    pub fn records(&self) -> &[AccessRecord] {
        &self.log
    }

    /// Each answer's record with what was really sent of it: its bytes (head included) and
    /// its content bytes, as the access log counts them (nginx's `$bytes_sent` and
    /// `$body_bytes_sent`). An answer cut short (the client left mid-download) counts what
    /// the socket took, not what was queued; the last answer also counts what was sent
    /// beyond what was queued for it (a listing's content, made as it was sent).
    pub fn records_as_sent(&self) -> impl Iterator<Item = (&AccessRecord, u64, u64)> {
        let last = self.log.len().saturating_sub(1);
        let enumerated = self.log.iter().enumerate();
        enumerated.scan(self.sent, move |left, (index, record)| {
            let bytes = match index == last {
                true => *left,
                false => record.bytes.min(*left),
            };
            *left -= bytes;
            let head = record.bytes - record.body_bytes;
            Some((record, bytes, bytes.saturating_sub(head)))
        })
    }

    /// Gives the last answer's record the request fields the access log wants.
    pub fn attach_log_fields(&mut self, fields: Option<Box<LogFields>>) {
        if let Some(record) = self.log.last_mut() {
            record.fields = fields;
        }
    }

    /// `--live`: appends the head of a Server-Sent Events stream (and the client's retry
    /// delay); the connection then stays open for events, delimited by its close.
    pub fn push_event_stream(&mut self, exchange: &Exchange, line: impl FnOnce() -> String) {
        let head = format!(
            "HTTP/1.1 200 OK\r\nDate: {}\r\nServer: epollo\r\nContent-Type: text/event-stream\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\nretry: 1000\n\n",
            exchange.date
        );
        self.bytes.extend_from_slice(head.as_bytes());
        self.event_stream = true;
        if exchange.log_records {
            self.record(exchange.started, line, Status::OK, head.len() as u64);
        }
    }

    /// Appends `len` bytes of `content` (not spliced) from `offset`.
    fn push_content(&mut self, content: &Content, offset: u64, len: u64) {
        match content {
            Content::File(file) => self.push_file(Rc::clone(file), offset, len),
            Content::Memory(bytes) => self.push_memory(bytes, offset, len),
            Content::Spliced(_) => debug_assert!(false, "a splice's original is not spliced"),
        }
    }

    /// Appends `len` bytes from `offset` of a spliced content: of the three parts (before,
    /// inserted, after), the ones the window covers. Once the part before has gone to
    /// `sendfile`, the rest waits in `after`; nothing of the file is copied that would not be
    /// copied without the splice.
    fn push_spliced(&mut self, splice: &Splice, offset: u64, len: u64) {
        let (at, inserted) = (splice.at, splice.insert.len() as u64);
        let end = offset.saturating_add(len);
        let (from, to) = (offset.min(at), end.min(at));
        if to > from {
            self.push_content(&splice.original, from, to - from);
        }
        let (from, to) = (
            offset.clamp(at, at + inserted),
            end.clamp(at, at + inserted),
        );
        let insert = &splice.insert[(from - at) as usize..(to - at) as usize];
        let (from, to) = (offset.max(at + inserted), end.max(at + inserted));
        let rest = (from - inserted, to - from);
        match (&self.file, &splice.original) {
            (Some(_), Content::File(file)) => {
                let file = (rest.1 > 0).then(|| FileBody {
                    file: Rc::clone(file),
                    offset: i64::try_from(rest.0).unwrap_or(i64::MAX),
                    remaining: rest.1,
                    corked: false,
                });
                let bytes = insert.to_vec();
                self.after = Some(Box::new(After { bytes, file }));
            }
            _ => {
                self.bytes.extend_from_slice(insert);
                if rest.1 > 0 {
                    self.push_content(&splice.original, rest.0, rest.1);
                }
            }
        }
    }

    /// Appends `len` bytes of a file held in memory from `offset`.
    fn push_memory(&mut self, bytes: &[u8], offset: u64, len: u64) {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
        self.bytes
            .extend_from_slice(&bytes[start..end.min(bytes.len())]);
    }

    /// Appends `len` bytes of `file` from `offset`: copied into the buffer when small (so
    /// the answer leaves in one write), otherwise queued for `sendfile`.
    fn push_file(&mut self, file: Rc<File>, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        if len > INLINE_FILE_MAX_BYTES {
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            self.file = Some(FileBody {
                file,
                offset,
                remaining: len,
                corked: false,
            });
            return;
        }
        // Reading a regular file blocks briefly (see site/files.rs).
        let start = self.bytes.len();
        self.bytes.resize(start + len as usize, 0);
        let mut filled = 0;
        while filled < len as usize {
            match file.read_at(&mut self.bytes[start + filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("reading a file failed: {e}");
                    break;
                }
            }
        }
        if filled < len as usize {
            log::warn!("a file shrank while being read; closing after a short body");
            self.bytes.truncate(start + filled);
            self.cut_short = true;
        }
    }

    /// Whether the stream's next step would do work now (see [`Produce::may_step`]).
    pub fn stream_may_step(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|stream| stream.producer.may_step())
    }

    /// Once everything else is sent, makes the stream's next piece into `bytes` (one bounded
    /// step of work), framed as a chunk when chunked; the last piece ends the stream.
    pub fn pump(&mut self) {
        let Some(stream) = &mut self.stream else {
            return;
        };
        debug_assert_eq!(self.written, self.bytes.len(), "the earlier bytes are sent");
        self.bytes.clear();
        self.written = 0;
        stream.piece.clear();
        let done = stream.producer.produce(&mut stream.piece);
        if stream.chunked && !stream.piece.is_empty() {
            let _ = write!(self.bytes, "{:x}\r\n", stream.piece.len());
            self.bytes.extend_from_slice(&stream.piece);
            self.bytes.extend_from_slice(b"\r\n");
        } else {
            self.bytes.extend_from_slice(&stream.piece);
        }
        if done {
            if stream.chunked {
                self.bytes.extend_from_slice(b"0\r\n\r\n");
            }
            self.stream = None;
        }
    }

    /// Remembers an access-log record for the answer just appended.
    fn record(
        &mut self,
        started: Instant,
        line: impl FnOnce() -> String,
        status: Status,
        head_len: u64,
    ) {
        let after = self.after.as_ref().map_or(0, |after| {
            after.bytes.len() as u64 + after.file.as_ref().map_or(0, |body| body.remaining)
        });
        let file_bytes = self.file.as_ref().map_or(0, |body| body.remaining) + after;
        let total = self.bytes.len() as u64 + file_bytes;
        let bytes = total - self.logged_bytes;
        self.logged_bytes = total;
        self.log.push(AccessRecord {
            line: line(),
            status,
            bytes,
            body_bytes: bytes.saturating_sub(head_len),
            started,
            fields: None,
        });
    }
}

/// The `Server` field line, with the blank `Date` line's end before it.
const SERVER_LINE: &[u8] =
    concat!("\r\nServer: epollo/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes();

/// Appends the serialised head of `reply` (status line, headers, blank line) to `out`.
///
/// The field lines between `Server` and `Connection` describe the content; a cached file's
/// are made once ([`content_field_lines`]) and copied from `Fields::prepared`. Everything is
/// appended as bytes: no formatting machinery on the path every answer takes.
pub fn write_head(out: &mut Vec<u8>, reply: &Reply, exchange: &Exchange) {
    let status = reply.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status.0));
    out.push(b' ');
    out.extend_from_slice(status.reason().as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(exchange.date.as_bytes());
    out.extend_from_slice(SERVER_LINE);
    let mut persistence = exchange.persistence;
    match &reply.fields.prepared {
        // That the two agree is tested in `site` (a check here would allocate).
        Some(prepared) => out.extend_from_slice(prepared),
        None => {
            let delimited = write_content_fields(out, reply, exchange.http11, exchange.config);
            if !delimited {
                // HTTP/1.0 has no chunked coding: the close of the connection ends the content.
                persistence = Persistence::Close;
            }
        }
    }
    match persistence {
        Persistence::KeepAlive => {}
        Persistence::KeepAliveHttp10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// The field lines [`write_head`] writes between `Server` and `Connection` for `reply` of a
/// known length: what the file cache keeps, per file, in `Fields::prepared`.
pub fn content_field_lines(reply: &Reply, config: &Config) -> Vec<u8> {
    let mut lines = Vec::with_capacity(256);
    write_content_fields(&mut lines, reply, true, config);
    lines
}

/// Writes the field lines that describe `reply`'s content and its validators, then the
/// configured ones. Returns `false` if the content can only be delimited by closing the
/// connection (unknown length, and no chunked coding for HTTP/1.0).
fn write_content_fields(out: &mut Vec<u8>, reply: &Reply, http11: bool, config: &Config) -> bool {
    let (status, fields) = (reply.status, &reply.fields);
    let optional = [
        ("Content-Type", fields.content_type.as_deref()),
        ("Content-Encoding", fields.content_encoding),
        ("Content-Range", fields.content_range.as_deref()),
        ("ETag", fields.etag.as_deref()),
        ("Location", fields.location.as_deref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            push_field(out, name, value);
        }
    }
    let mut delimited = true;
    match reply.body.known_len() {
        _ if matches!(status, Status::NO_CONTENT | Status::NOT_MODIFIED) => {}
        Some(len) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, len);
            out.extend_from_slice(b"\r\n");
        }
        None if http11 => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        None => delimited = false,
    }
    if let Some(modified) = fields.last_modified.and_then(imf_fixdate) {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "Last-Modified: {modified}\r\n");
    }
    if fields.retry_after {
        out.extend_from_slice(b"Retry-After: 1\r\n");
    }
    if fields.file_content {
        out.extend_from_slice(b"Accept-Ranges: bytes\r\nX-Content-Type-Options: nosniff\r\n");
    }
    if fields.cacheable {
        if let Some(cache_control) = &config.cache_control {
            push_field(out, "Cache-Control", cache_control);
        }
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    if fields.vary_accept {
        out.extend_from_slice(b"Vary: Accept\r\n");
    }
    if fields.allow {
        out.extend_from_slice(b"Allow: GET, HEAD, OPTIONS\r\n");
    }
    for (name, value) in &config.headers {
        push_field(out, name, value);
    }
    delimited
}

/// Appends `name: value` and the line end.
fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    /// What `out` sends, its parts taken in order as the writer takes them.
    fn sent_bytes(out: &mut Outgoing) -> Vec<u8> {
        let mut sent = Vec::new();
        loop {
            sent.extend_from_slice(&out.bytes[out.written..]);
            out.written = out.bytes.len();
            if let Some(body) = &mut out.file {
                let mut part = vec![0; body.remaining as usize];
                body.file
                    .read_exact_at(&mut part, body.offset as u64)
                    .unwrap();
                sent.extend_from_slice(&part);
                body.remaining = 0;
            }
            if !out.advance() {
                assert!(out.is_sent());
                return sent;
            }
        }
    }

    #[test]
    fn a_spliced_window_sends_the_parts_it_covers_without_copying_the_file() {
        let dir = crate::util::test_dir::TestDir::new("splice");
        let path = dir.path().join("page");
        let page: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        std::fs::write(&path, &page).unwrap();
        let file = Rc::new(File::open(&path).unwrap());
        let (at, insert) = (20_000, &b"<INSERTED>"[..]);
        let mut whole = page.clone();
        whole.splice(at..at, insert.iter().copied());
        let splice = Splice {
            original: Content::File(file),
            at: at as u64,
            insert,
        };
        // (offset, len): all of it, around the insert, inside it, after it, before it.
        for (offset, len) in [
            (0, 40_010),
            (19_990, 30),
            (20_003, 4),
            (25_000, 15_010),
            (0, 100),
            (0, 20_005),
        ] {
            let mut out = Outgoing::default();
            out.push_spliced(&splice, offset as u64, len as u64);
            assert!(out.bytes.len() <= INLINE_FILE_MAX_BYTES as usize + insert.len());
            let sent = sent_bytes(&mut out);
            assert_eq!(sent, &whole[offset..offset + len], "{offset}+{len}");
        }
    }

    fn render_with(reply: &Reply, persistence: Persistence, config: &Config) -> String {
        let exchange = Exchange {
            log_records: false,
            head_only: true,
            http11: true,
            persistence,
            started: Instant::now(),
            date: DATE,
            config,
        };
        let mut out = Vec::new();
        write_head(&mut out, reply, &exchange);
        String::from_utf8(out).unwrap()
    }

    fn render(reply: &Reply) -> String {
        render_with(reply, Persistence::KeepAlive, &Config::default())
    }

    fn bytes(status: Status, len: usize, fields: Fields) -> Reply {
        Reply {
            status,
            fields,
            body: Body::Bytes(vec![b'x'; len]),
        }
    }

    #[test]
    fn a_file_head_carries_type_length_and_modification_time() {
        let fields = Fields {
            content_type: Some("text/css; charset=utf-8".into()),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            ..Fields::default()
        };
        let expected = format!(
            "HTTP/1.1 200 OK\r\nDate: {DATE}\r\nServer: epollo/{}\r\n\
             Content-Type: text/css; charset=utf-8\r\nContent-Length: 1432\r\n\
             Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(render(&bytes(Status::OK, 1432, fields)), expected);
    }

    #[test]
    fn the_connection_header_follows_persistence() {
        let config = Config::default();
        let reply = bytes(Status::OK, 0, Fields::default());
        let keep = render_with(&reply, Persistence::KeepAlive, &config);
        assert!(!keep.contains("Connection:"));
        let http10 = render_with(&reply, Persistence::KeepAliveHttp10, &config);
        assert!(http10.contains("\r\nConnection: keep-alive\r\n"));
        let close = render_with(
            &Reply::error(Status::BAD_REQUEST),
            Persistence::Close,
            &config,
        );
        assert!(close.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(close.contains("\r\nConnection: close\r\n"));
    }

    #[test]
    fn redirects_and_405_carry_their_headers() {
        let redirect = render(&Reply::redirect("/docs/?a=1".into()));
        assert!(redirect.contains("\r\nLocation: /docs/?a=1\r\n"));
        let refused = render(&Reply::error(Status::METHOD_NOT_ALLOWED));
        assert!(refused.contains("\r\nAllow: GET, HEAD, OPTIONS\r\n"));
    }

    #[test]
    fn file_heads_carry_validators_ranges_and_configured_headers() {
        let config = Config {
            headers: vec![("Access-Control-Allow-Origin".into(), "*".into())],
            cache_control: Some("max-age=60".into()),
            ..Config::default()
        };
        let fields = Fields {
            etag: Some("\"abc\"".into()),
            content_range: Some("bytes 0-9/100".into()),
            content_encoding: Some("gzip"),
            file_content: true,
            cacheable: true,
            ..Fields::default()
        };
        let text = render_with(
            &bytes(Status::PARTIAL_CONTENT, 10, fields),
            Persistence::KeepAlive,
            &config,
        );
        for line in [
            "HTTP/1.1 206 Partial Content\r\n",
            "\r\nETag: \"abc\"\r\n",
            "\r\nContent-Range: bytes 0-9/100\r\n",
            "\r\nContent-Encoding: gzip\r\n",
            "\r\nContent-Length: 10\r\n",
            "\r\nAccept-Ranges: bytes\r\n",
            "\r\nX-Content-Type-Options: nosniff\r\n",
            "\r\nCache-Control: max-age=60\r\n",
            "\r\nVary: Accept-Encoding\r\n",
            "\r\nAccess-Control-Allow-Origin: *\r\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from {text}");
        }
    }

    #[test]
    fn no_content_length_on_204_and_304() {
        for status in [Status::NO_CONTENT, Status::NOT_MODIFIED] {
            let text = render(&bytes(status, 1432, Fields::default()));
            assert!(!text.contains("Content-Length"), "{text}");
        }
    }

    #[test]
    fn the_head_ends_with_one_blank_line() {
        let text = render(&bytes(Status::NOT_FOUND, 10, Fields::default()));
        assert!(text.ends_with("\r\n\r\n"));
        assert_eq!(text.matches("\r\n\r\n").count(), 1);
    }

    #[test]
    fn a_time_outside_the_date_format_leaves_last_modified_out() {
        let fields = Fields {
            last_modified: Some(UNIX_EPOCH - Duration::from_secs(1)),
            ..Fields::default()
        };
        assert!(!render(&bytes(Status::OK, 0, fields)).contains("Last-Modified"));
    }

    #[test]
    fn head_drops_the_body_and_keeps_the_length() {
        let config = Config::default();
        let mut out = Outgoing::default();
        let exchange = Exchange {
            log_records: false,
            head_only: true,
            http11: true,
            persistence: Persistence::KeepAlive,
            started: Instant::now(),
            date: DATE,
            config: &config,
        };
        out.push(Reply::error(Status::NOT_FOUND), &exchange, String::new);
        let text = String::from_utf8(out.bytes).unwrap();
        let page_len = status_page(Status::NOT_FOUND).len();
        assert!(text.contains(&format!("\r\nContent-Length: {page_len}\r\n")));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
