//! The connection's I/O leaves: each function makes one system call on the socket, reports
//! it once to the narrator (`study/narrator.rs`: counted and traced), and returns what
//! happened as a value. None of them changes the connection's state: `mod.rs` does that,
//! from the outcome.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::sys::sendfile::sendfile;
use nix::sys::socket::{MsgFlags, Shutdown, recv, shutdown};

use super::outgoing::Outgoing;
use crate::lab::{self, LabBug};
use crate::limits::SENDFILE_CHUNK_BYTES;
use crate::site::disk;
use crate::study::Study;
use crate::study::narrator::Syscall;
use crate::sys;

/// What one `recv` gave.
#[derive(Debug)]
pub(super) enum Received {
    /// Bytes arrived (at the start of the buffer).
    Bytes(usize),
    /// The client closed its side.
    Eof,
    /// Nothing for now (`EAGAIN`).
    WouldBlock,
    /// The connection failed.
    Failed(io::Error),
}

/// What one `send` or `sendfile` gave.
#[derive(Debug)]
pub(super) enum Wrote {
    /// All the bytes offered were taken.
    Done(usize),
    /// Fewer bytes than offered were taken: the send buffer is full (or, for `sendfile`,
    /// the file may have shrunk).
    Partial(usize),
    /// `--short-writes`: the kernel took all it was given, but that was capped by
    /// `--max-write`, and the call says it was short, as a full socket's would.
    Capped(usize),
    /// Nothing was taken (`EAGAIN`).
    WouldBlock,
    /// The connection (or the file) failed.
    Failed(io::Error),
}

/// How much one write may offer (`--max-write`), and whether a capped one is reported short
/// (`--short-writes`).
#[derive(Clone, Copy, Debug)]
pub(super) struct WriteLimit {
    /// Most bytes given to the kernel in one call.
    pub cap: usize,
    /// A call capped here says it was short.
    pub short: bool,
    /// Most bytes of a long file body one call offers (`limits::sendfile_step`).
    pub step: usize,
}

impl WriteLimit {
    /// Of `wanted` bytes: how many the call says it offers, and how many it gives the kernel.
    fn split(self, wanted: usize) -> (usize, usize) {
        let given = wanted.min(self.cap);
        match self.short {
            true => (wanted, given),
            false => (given, given),
        }
    }

    /// What a call that gave `given` bytes and was said to offer `offered` reports.
    fn report(self, wrote: Wrote, given: usize, offered: usize) -> Wrote {
        match wrote {
            Wrote::Partial(bytes) if self.short && bytes == given && given < offered => {
                Wrote::Capped(bytes)
            }
            other => other,
        }
    }
}

/// Who is calling, for the narrator: the connection's number and its study.
pub(super) struct Caller<'a> {
    /// The connection's number.
    pub id: u64,
    /// The worker's counters and trace.
    pub study: &'a Study,
}

/// One `recv` into `buf` (`EINTR` is retried: the socket is still readable).
pub(super) fn receive(stream: &mut impl Read, fd: i32, buf: &mut [u8], by: &Caller) -> Received {
    loop {
        let result = stream.read(buf);
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::Interrupted) {
            continue;
        }
        by.study.recv(by.id, fd, &result);
        return match result {
            Ok(0) => Received::Eof,
            Ok(bytes) => Received::Bytes(bytes),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Received::WouldBlock,
            Err(e) => Received::Failed(e),
        };
    }
}

/// One `send` of `bytes`; `more`: more of this answer follows (`MSG_MORE`).
pub(super) fn send(stream: &impl AsFd, bytes: &[u8], more: bool, by: &Caller) -> Wrote {
    narrate(stream, Syscall::Send, bytes.len(), by, || {
        sys::send(stream, bytes, more)
    })
}

/// Sends the next piece of `out`'s buffered bytes: at most `cap` bytes. `closing`: the
/// connection closes once this answer is sent.
pub(super) fn send_buffered(
    stream: &impl AsFd,
    out: &mut Outgoing,
    limit: WriteLimit,
    closing: bool,
    by: &Caller,
) -> Wrote {
    let pending = &out.bytes[out.written..];
    let (offered, given) = limit.split(pending.len());
    // MSG_MORE when more follows (a file body, or the rest of a capped write), so head and
    // body share packets; and before a close, so the last bytes and the FIN that `close` or
    // `shutdown` sends leave in one packet, as nginx's uncorked close does (one packet fewer
    // for both ends to handle). Not for an event stream's head, which stays open.
    let last_before_close = closing && out.stream.is_none() && !out.event_stream;
    let more =
        out.file.is_some() || out.after.is_some() || given < pending.len() || last_before_close;
    let wrote = narrate(stream, Syscall::Send, offered, by, || {
        sys::send(stream, &pending[..given], more)
    });
    let wrote = limit.report(wrote, given, offered);
    if let Wrote::Done(bytes) | Wrote::Partial(bytes) | Wrote::Capped(bytes) = wrote {
        out.written += match lab::on(LabBug::IgnoreShortWrites) {
            true => given, // as if the socket had taken all of it
            false => bytes,
        };
    }
    wrote
}

/// Sends one chunk of `out`'s file body with `sendfile`: the whole rest if it is at most
/// [`SENDFILE_CHUNK_BYTES`], else a step of the limit's size; never more than `cap`. A
/// `sendfile` that sends nothing means the file shrank under us: the promised length cannot
/// be kept, and the connection must close.
pub(super) fn sendfile_chunk(
    stream: &impl AsFd,
    out: &mut Outgoing,
    limit: WriteLimit,
    by: &Caller,
) -> Wrote {
    let body = out
        .file
        .as_mut()
        .expect("invariant: is_sent() was false, so a file body remains");
    let (offered, given) = limit.split(chunk_of(body.remaining, limit.step));
    let (file, offset) = (&body.file, &mut body.offset);
    let wrote = narrate(stream, Syscall::Sendfile, offered, by, || {
        sendfile(stream.as_fd(), file.as_fd(), Some(offset), given).map_err(io::Error::from)
    });
    match limit.report(wrote, given, offered) {
        Wrote::Done(0) | Wrote::Partial(0) | Wrote::Capped(0) => {
            log::warn!("a file shrank while being sent; closing its connection");
            Wrote::Failed(io::ErrorKind::UnexpectedEof.into())
        }
        wrote @ (Wrote::Done(bytes) | Wrote::Partial(bytes) | Wrote::Capped(bytes)) => {
            let bytes = match lab::on(LabBug::IgnoreShortWrites) {
                true => given, // as if the socket had taken all of it
                false => bytes,
            };
            body.remaining -= bytes as u64;
            wrote
        }
        other => other,
    }
}

/// How much of a body with `remaining` bytes the next `sendfile` offers, `step` at a time.
pub(super) fn chunk_of(remaining: u64, step: usize) -> usize {
    let remaining = usize::try_from(remaining).unwrap_or(usize::MAX);
    match remaining <= SENDFILE_CHUNK_BYTES {
        true => remaining,
        false => remaining.min(step),
    }
}

/// Makes one write call (retrying `EINTR`), narrates it, and says what it gave.
fn narrate(
    stream: &impl AsFd,
    call: Syscall,
    offered: usize,
    by: &Caller,
    mut write: impl FnMut() -> io::Result<usize>,
) -> Wrote {
    let fd = stream.as_fd().as_raw_fd();
    loop {
        let result = write();
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::Interrupted) {
            continue;
        }
        by.study.wrote(by.id, fd, call, offered, &result);
        return match result {
            Ok(bytes) if bytes < offered => Wrote::Partial(bytes),
            Ok(bytes) => Wrote::Done(bytes),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Wrote::WouldBlock,
            Err(e) => Wrote::Failed(e),
        };
    }
}

/// Whether the client has gone: a peek at the socket (consuming nothing) finds its EOF or an
/// error such as a reset. A client that only shut down its sending side is taken as gone
/// too: it cannot be told apart, and HTTP clients do not half-close.
pub(super) fn peer_gone(stream: &impl AsFd, by: &Caller) -> bool {
    match peek(stream, by) {
        Ok(0) => true,
        Ok(_) => false, // a pipelined request waits: still there
        Err(Errno::EAGAIN | Errno::EINTR) => false,
        Err(_) => true,
    }
}

/// Whether bytes the client sent wait unread in the socket (a peek, consuming nothing).
pub(super) fn bytes_waiting(stream: &impl AsFd, by: &Caller) -> bool {
    matches!(peek(stream, by), Ok(1))
}

/// One byte peeked at, never waiting for it: `Ok(0)` is the client's EOF.
fn peek(stream: &impl AsFd, by: &Caller) -> nix::Result<usize> {
    let fd = stream.as_fd().as_raw_fd();
    let result = recv(fd, &mut [0; 1], MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT);
    by.study.peeked(by.id, fd, &result);
    result
}

/// `shutdown(SHUT_WR)`: the client sees our answer end, and we can still read what it sends.
pub(super) fn shut_write(stream: &impl AsFd, by: &Caller) {
    let fd = stream.as_fd().as_raw_fd();
    let result = shutdown(fd, Shutdown::Write).map_err(io::Error::from);
    by.study.shut_write(by.id, fd, &result);
}

/// Whether the file being sent is now shorter than the answer promised (one `fstat`).
pub(super) fn file_shrank(out: &Outgoing) -> bool {
    let Some(body) = &out.file else {
        return false;
    };
    let promised = u64::try_from(body.offset).unwrap_or(0) + body.remaining;
    disk::file_len(&body.file).is_ok_and(|len| len < promised)
}
