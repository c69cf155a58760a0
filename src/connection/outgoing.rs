//! `Outgoing`: one or more responses on their way out, assembled before any byte is sent.
//!
//! Where this sits in the loop: when the connection has parsed a head, `answer.rs` decides
//! the answer and appends it here (a head, and a small body or a file to follow), then the
//! connection switches to `Writing` and sends. Answers to pipelined requests are appended to
//! the same `Outgoing`, so they leave together in as few writes as the socket allows. Only
//! `response.rs` formats headers; nothing here touches the socket.

use std::fs::File;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use super::{CloseReason, Context};
use crate::files::StaticFile;
use crate::limits::{INLINE_FILE_MAX_BYTES, MAX_BATCH_BYTES};
use crate::range::{self, ByteRange};
use crate::response::{Head, Persistence, Status, status_page};

/// Heads and small bodies in one buffer, then at most one file body sent with sendfile.
pub(super) struct Outgoing {
    /// Heads and small bodies, in order.
    pub bytes: Vec<u8>,
    /// How much of `bytes` the socket has taken.
    // INVARIANT: written <= bytes.len()
    pub written: usize,
    /// A large file body that follows `bytes`.
    pub file: Option<FileBody>,
    /// `None`: back to reading when all is sent; `Some`: close, for this reason.
    pub close_after: Option<CloseReason>,
    /// Access-log records of the responses in this batch (kept only when info is enabled).
    log: Vec<AccessRecord>,
    /// Bytes of this batch already attributed to a log record.
    logged_bytes: u64,
}

/// A file body being sent with sendfile.
pub(super) struct FileBody {
    /// The open file.
    pub file: File,
    /// Where the next sendfile starts.
    pub offset: i64,
    /// Bytes still to send; the `Content-Length` promised them.
    pub remaining: u64,
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
    pub fn new() -> Outgoing {
        Outgoing {
            bytes: Vec::new(),
            written: 0,
            file: None,
            close_after: None,
            log: Vec::new(),
            logged_bytes: 0,
        }
    }

    /// Whether another pipelined response may join this batch: not after one that closes
    /// the connection or has a file body, and not past the batch size limit.
    pub fn has_room(&self) -> bool {
        self.close_after.is_none() && self.file.is_none() && self.bytes.len() < MAX_BATCH_BYTES
    }

    /// Whether everything, file body included, has been sent.
    pub fn is_sent(&self) -> bool {
        self.written == self.bytes.len()
            && self.file.as_ref().is_none_or(|body| body.remaining == 0)
    }

    /// Appends a whole file: 200 with its validators.
    pub fn push_file(
        &mut self,
        ctx: &Context,
        file: StaticFile,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        file_head(ctx, &file, Status::OK, file.len, persistence)
            .write_to(&mut self.bytes, ctx.date);
        if !head_only {
            self.push_body(file.file, 0, file.len);
        }
        Status::OK
    }

    /// Appends a page file (the root's `404.html`) as the body of an error status. It is not
    /// a resource of its own: no validators, no ranges.
    pub fn push_error_page(
        &mut self,
        ctx: &Context,
        page: StaticFile,
        status: Status,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let mut head = Head::new(status, page.len, persistence);
        head.content_type = Some(&page.content_type);
        head.extra = &ctx.config.headers;
        head.write_to(&mut self.bytes, ctx.date);
        if !head_only {
            self.push_body(page.file, 0, page.len);
        }
        status
    }

    /// Appends a 206 with one range of the file.
    pub fn push_range(
        &mut self,
        ctx: &Context,
        file: StaticFile,
        range: ByteRange,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let content_range = range.content_range(file.len);
        let mut head = file_head(
            ctx,
            &file,
            Status::PARTIAL_CONTENT,
            range.len(),
            persistence,
        );
        head.content_range = Some(&content_range);
        head.write_to(&mut self.bytes, ctx.date);
        if !head_only {
            self.push_body(file.file, range.first, range.len());
        }
        Status::PARTIAL_CONTENT
    }

    /// Appends a 206 `multipart/byteranges` answer, assembled in memory (the caller keeps
    /// its total size under `MAX_MULTIPART_BYTES`).
    pub fn push_multipart(
        &mut self,
        ctx: &Context,
        file: StaticFile,
        ranges: &[ByteRange],
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let boundary = boundary_for(&file.etag);
        let mut body = Vec::new();
        for range in ranges {
            let part_head = format!(
                "\r\n--{boundary}\r\nContent-Type: {}\r\nContent-Range: {}\r\n\r\n",
                file.content_type,
                range.content_range(file.len)
            );
            body.extend_from_slice(part_head.as_bytes());
            let start = body.len();
            body.resize(start + range.len() as usize, 0);
            if let Err(e) = file.file.read_exact_at(&mut body[start..], range.first) {
                log::warn!("reading ranges of a file failed: {e}");
                return self.push_status(ctx, Status::INTERNAL_ERROR, head_only, persistence);
            }
        }
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/byteranges; boundary={boundary}");
        let mut head = file_head(
            ctx,
            &file,
            Status::PARTIAL_CONTENT,
            body.len() as u64,
            persistence,
        );
        head.content_type = Some(&content_type);
        head.write_to(&mut self.bytes, ctx.date);
        if !head_only {
            self.bytes.extend_from_slice(&body);
        }
        Status::PARTIAL_CONTENT
    }

    /// Appends a 304: no body, but the validators (RFC 9110 §15.4.5).
    pub fn push_not_modified(
        &mut self,
        ctx: &Context,
        file: &StaticFile,
        persistence: Persistence,
    ) -> Status {
        validators_head(ctx, file, Status::NOT_MODIFIED, persistence)
            .write_to(&mut self.bytes, ctx.date);
        Status::NOT_MODIFIED
    }

    /// Appends a 416 saying how long the file is.
    pub fn push_unsatisfiable(
        &mut self,
        ctx: &Context,
        file: &StaticFile,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let content_range = range::unsatisfied_range(file.len);
        let mut head = Head::new(Status::RANGE_NOT_SATISFIABLE, 0, persistence);
        head.content_range = Some(&content_range);
        head.extra = &ctx.config.headers;
        self.push_page(ctx, head, head_only)
    }

    /// Appends a 204 answer to OPTIONS.
    pub fn push_options(&mut self, ctx: &Context, persistence: Persistence) -> Status {
        let mut head = Head::new(Status::NO_CONTENT, 0, persistence);
        head.allow = true;
        head.extra = &ctx.config.headers;
        head.write_to(&mut self.bytes, ctx.date);
        Status::NO_CONTENT
    }

    /// Appends an HTML page we generated (a directory listing).
    pub fn push_html(
        &mut self,
        ctx: &Context,
        html: &str,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let mut head = Head::new(Status::OK, html.len() as u64, persistence);
        head.content_type = Some("text/html; charset=utf-8");
        head.extra = &ctx.config.headers;
        head.write_to(&mut self.bytes, ctx.date);
        if !head_only {
            self.bytes.extend_from_slice(html.as_bytes());
        }
        Status::OK
    }

    /// Appends a redirect to `location`.
    pub fn push_redirect(
        &mut self,
        ctx: &Context,
        location: &str,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let mut head = Head::new(Status::MOVED_PERMANENTLY, 0, persistence);
        head.location = Some(location);
        head.extra = &ctx.config.headers;
        self.push_page(ctx, head, head_only)
    }

    /// Appends a status page (the small HTML body of an error).
    pub fn push_status(
        &mut self,
        ctx: &Context,
        status: Status,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let mut head = Head::new(status, 0, persistence);
        head.allow = status == Status::METHOD_NOT_ALLOWED;
        head.extra = &ctx.config.headers;
        self.push_page(ctx, head, head_only)
    }

    /// Appends `head` with the status page for its status as the body.
    fn push_page(&mut self, ctx: &Context, mut head: Head, head_only: bool) -> Status {
        let page = status_page(head.status);
        head.content_length = page.len() as u64;
        head.content_type = Some("text/html; charset=utf-8");
        head.write_to(&mut self.bytes, ctx.date);
        if !head_only {
            self.bytes.extend_from_slice(page.as_bytes());
        }
        head.status
    }

    /// Appends `len` bytes of `file` from `offset`: copied into the buffer when small (so
    /// the response leaves in one write), otherwise queued for sendfile.
    fn push_body(&mut self, file: File, offset: u64, len: u64) {
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
        // Reading a regular file blocks briefly (see files.rs).
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
            // The file shrank since we looked: the promised length cannot be kept, so the
            // client gets what there is and the connection closes after it.
            log::warn!("a file shrank while being read; closing after a short body");
            self.bytes.truncate(start + filled);
            self.close_after = Some(CloseReason::Io(io::ErrorKind::UnexpectedEof));
        }
    }

    /// Remembers an access-log record for the response just appended (if info is enabled).
    /// `line` is only called (and the request line only formatted) when the line is wanted.
    pub fn record(&mut self, started: Instant, line: impl FnOnce() -> String, status: Status) {
        if log::log_enabled!(log::Level::Info) {
            let line = line();
            let file_bytes = self.file.as_ref().map_or(0, |body| body.remaining);
            let total = self.bytes.len() as u64 + file_bytes;
            let bytes = total - self.logged_bytes;
            self.logged_bytes = total;
            self.log.push(AccessRecord {
                line,
                status,
                bytes,
                started,
            });
        }
    }

    /// Writes the access-log lines of this batch; `note` marks an aborted one.
    pub fn log_access(&self, id: u64, peer: SocketAddr, note: &str) {
        for record in &self.log {
            log::info!(
                "conn={id} peer={peer} {:?} {} {}B {:.1}ms{note}",
                record.line,
                record.status.0,
                record.bytes,
                record.started.elapsed().as_secs_f64() * 1000.0
            );
        }
    }
}

/// The head fields every answer about a file carries (200, 206, 416's sibling fields aside).
fn file_head<'a>(
    ctx: &'a Context,
    file: &'a StaticFile,
    status: Status,
    length: u64,
    persistence: Persistence,
) -> Head<'a> {
    let mut head = validators_head(ctx, file, status, persistence);
    head.content_length = length;
    head.content_type = Some(&file.content_type);
    head.content_encoding = file.encoding;
    head.file = true;
    head
}

/// What a 304 keeps of a file's head (RFC 9110 §15.4.5): the validators, `Vary` and
/// `Cache-Control`; no representation metadata.
fn validators_head<'a>(
    ctx: &'a Context,
    file: &'a StaticFile,
    status: Status,
    persistence: Persistence,
) -> Head<'a> {
    let mut head = Head::new(status, 0, persistence);
    head.etag = Some(&file.etag);
    // Last-Modified may not be later than Date (RFC 9110 §8.8.2.1): a file stamped in the
    // future is reported as modified now.
    head.last_modified = file.modified.map(|modified| modified.min(ctx.wall_clock));
    head.cache_control = ctx.config.cache_control.as_deref();
    // Every file answer varies by Accept-Encoding: a sibling may be chosen for a client that
    // accepts it, and may appear at any time.
    head.vary = true;
    head.extra = &ctx.config.headers;
    head
}

/// A multipart boundary: derived from the entity tag, so it is stable for one file version
/// and, being 16 hex digits after a fixed prefix, vanishingly unlikely to occur in the file.
fn boundary_for(etag: &str) -> String {
    let mut hasher = DefaultHasher::new();
    etag.hash(&mut hasher);
    format!("epollo-{:016x}", hasher.finish())
}
