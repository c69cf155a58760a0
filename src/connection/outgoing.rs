//! `Outgoing`: one or more responses on their way out, assembled before any byte is sent.
//!
//! Where this sits in the loop: when the connection has parsed a head, it appends the answer
//! here (head, and a small body or a file to follow), then switches to `Writing` and sends.
//! Answers to pipelined requests are appended to the same `Outgoing`, so they leave together
//! in as few writes as the socket allows. Nothing here touches the socket.

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

use super::CloseReason;
use crate::files::StaticFile;
use crate::limits::{INLINE_FILE_MAX_BYTES, MAX_BATCH_BYTES};
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

    /// Appends a file's head and, unless HEAD, its body: a small file is copied into the
    /// buffer so its response leaves in one write; a large one follows by sendfile.
    pub fn push_file(
        &mut self,
        date: &str,
        file: StaticFile,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let mut head = Head::new(Status::OK, file.len, persistence);
        head.content_type = Some(&file.content_type);
        head.last_modified = file.modified;
        head.write_to(&mut self.bytes, date);
        if head_only || file.len == 0 {
            return Status::OK;
        }
        if file.len <= INLINE_FILE_MAX_BYTES {
            self.copy_small_file(file);
        } else {
            self.file = Some(FileBody {
                file: file.file,
                offset: 0,
                remaining: file.len,
            });
        }
        Status::OK
    }

    /// Copies a small file into the buffer. Reading a regular file blocks briefly (see
    /// `files.rs`). If it shrank since we looked, the promised length cannot be kept: the
    /// client gets what there is and the connection closes after it.
    fn copy_small_file(&mut self, mut file: StaticFile) {
        let start = self.bytes.len();
        let len = file.len as usize; // at most INLINE_FILE_MAX_BYTES
        self.bytes.resize(start + len, 0);
        let mut filled = 0;
        while filled < len {
            match file.file.read(&mut self.bytes[start + filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("reading a file failed: {e}");
                    break;
                }
            }
        }
        if filled < len {
            log::warn!("a file shrank while being read; closing after a short body");
            self.bytes.truncate(start + filled);
            self.close_after = Some(CloseReason::Io(io::ErrorKind::UnexpectedEof));
        }
    }

    /// Appends a status page (the small HTML body of an error or redirect).
    pub fn push_status(
        &mut self,
        date: &str,
        status: Status,
        head_only: bool,
        persistence: Persistence,
    ) -> Status {
        let mut head = Head::new(status, 0, persistence);
        head.allow = status == Status::METHOD_NOT_ALLOWED;
        self.push_page(date, head, head_only)
    }

    /// Appends `head` with the status page for its status as the body.
    pub fn push_page(&mut self, date: &str, mut head: Head, head_only: bool) -> Status {
        let page = status_page(head.status);
        head.content_length = page.len() as u64;
        head.content_type = Some("text/html; charset=utf-8");
        head.write_to(&mut self.bytes, date);
        if !head_only {
            self.bytes.extend_from_slice(page.as_bytes());
        }
        head.status
    }

    /// Remembers an access-log record for the response just appended (if info is enabled).
    pub fn record(&mut self, started: Instant, line: String, status: Status) {
        if log::log_enabled!(log::Level::Info) {
            let logged: u64 = self.log.iter().map(|record| record.bytes).sum();
            let file_bytes = self.file.as_ref().map_or(0, |body| body.remaining);
            let bytes = self.bytes.len() as u64 + file_bytes - logged;
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
