//! The output batch: answers as bytes ready to send. [`Outgoing::push`] appends one answer
//! (its head from the one head writer, `http::head`, then its content); `writing.rs` sends
//! what the batch holds (`bytes` by `send`, then at most one `file` by `sendfile`). Answers to
//! pipelined requests are pushed into the same batch, so they leave together in as few writes
//! as the socket allows. The batch also keeps the access-log record of each answer.
//!
//! # Design notes
//! HEAD takes the same path as GET and [`Outgoing::push`] drops the content at the very last
//! step, so their heads are identical by construction. Small file content is copied into the
//! batch (one write for head and body); a large one is sent from its descriptor.

use std::io::Write;
use std::rc::Rc;
use std::time::Instant;

use std::net::SocketAddr;

use super::Context;
use crate::http::head::{HeadOptions, write_head};
use crate::http::reply::{Body, Content, Descriptor, Produce, Reply, Splice};
use crate::http::request::LogFields;
use crate::http::status::Status;
use crate::limits::{INLINE_FILE_MAX_BYTES, MAX_BATCH_BYTES};
use crate::logs::Answered;
use crate::logs::format::LogEntry;
use crate::site::disk;

/// Whether to keep an access-log record of an answer, and when its request was parsed.
#[derive(Clone, Copy, Debug)]
pub struct Record {
    /// The access log wants records (info logging is on).
    pub wanted: bool,
    /// When the request's head was parsed.
    pub started: Instant,
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
    pub file: Rc<dyn Descriptor>,
    /// Where the next `sendfile` starts.
    pub offset: i64,
    /// Bytes still to send; the `Content-Length` promised them.
    pub remaining: u64,
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
    /// record, if `record` wants one, whose `line` is only formatted then.
    pub fn push(
        &mut self,
        reply: Reply,
        head: &HeadOptions,
        record: Record,
        line: impl FnOnce() -> String,
    ) {
        let before = self.bytes.len();
        write_head(&mut self.bytes, &reply, head);
        let head_len = (self.bytes.len() - before) as u64;
        if matches!(reply.body, Body::Stream(_)) && !head.http11 {
            // The head said `Connection: close` (HEAD included): keep to it.
            self.ends_with_close = true;
        }
        if let Body::Open(_) = reply.body {
            // Once its head is sent the connection becomes a stream, whatever the method.
            self.event_stream = true;
        }
        if !head.head_only {
            self.push_content_of(reply.body, head.http11);
        }
        if record.wanted {
            self.record(record.started, line, reply.status, head_len);
        }
    }

    /// Appends the content of an answer's body.
    fn push_content_of(&mut self, body: Body, http11: bool) {
        match body {
            Body::Empty => {}
            Body::Bytes(bytes) | Body::Open(bytes) => self.bytes.extend_from_slice(&bytes),
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
                    chunked: http11,
                    piece: Vec::new(),
                });
            }
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
    fn push_file(&mut self, file: Rc<dyn Descriptor>, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        if len > INLINE_FILE_MAX_BYTES {
            let offset = i64::try_from(offset).unwrap_or(i64::MAX);
            self.file = Some(FileBody {
                file,
                offset,
                remaining: len,
            });
            return;
        }
        // Reading a regular file blocks briefly (see site/files.rs).
        let start = self.bytes.len();
        self.bytes.resize(start + len as usize, 0);
        let filled = disk::read_at(&file, &mut self.bytes[start..], offset).unwrap_or_else(|e| {
            log::warn!("reading a file failed: {e}");
            0
        });
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

/// What follows a file body in a batch: the rest of a spliced answer, after its first part
/// went by `sendfile`.
pub struct After {
    /// Bytes sent after the file body (the inserted ones).
    pub bytes: Vec<u8>,
    /// Another file body after those (the file's part after the insertion).
    pub file: Option<FileBody>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Status;
    use crate::http::head::AddedFields;
    use crate::http::request::Persistence;
    use crate::http::status::status_page;

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    /// What `out` sends, its parts taken in order as the writer takes them.
    fn sent_bytes(out: &mut Outgoing) -> Vec<u8> {
        let mut sent = Vec::new();
        loop {
            sent.extend_from_slice(&out.bytes[out.written..]);
            out.written = out.bytes.len();
            if let Some(body) = &mut out.file {
                let mut part = vec![0; body.remaining as usize];
                disk::read_exact_at(&body.file, &mut part, body.offset as u64).unwrap();
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
        let file: Rc<dyn Descriptor> = Rc::new(std::fs::File::open(&path).unwrap());
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

    #[test]
    fn head_drops_the_body_and_keeps_the_length() {
        let added = AddedFields::default();
        let mut out = Outgoing::default();
        let head = HeadOptions {
            head_only: true,
            http11: true,
            persistence: Persistence::KeepAlive,
            date: DATE,
            added: &added,
        };
        let record = Record {
            wanted: false,
            started: Instant::now(),
        };
        out.push(Reply::error(Status::NOT_FOUND), &head, record, String::new);
        let text = String::from_utf8(out.bytes).unwrap();
        let page_len = status_page(Status::NOT_FOUND).len();
        assert!(text.contains(&format!("\r\nContent-Length: {page_len}\r\n")));
        assert!(text.ends_with("\r\n\r\n"));
    }
}
