//! The writing half of a request: sending what `Outgoing` holds, with `send` for bytes and
//! `sendfile` for files, counted, traced, and capped by `--max-write`; then finishing the
//! answer (back to waiting for the next request, or lingering, or closed).
//!
//! Where this sits in the loop: `Connection::make_progress` calls [`Connection::write_pending`]
//! right after an answer is assembled (eager progress) and again on each writable event (or,
//! edge-triggered, from the ready list) until it is all sent.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::sys::sendfile::sendfile;
use nix::sys::socket::{MsgFlags, recv};

use super::readiness::Readiness;
use super::{CloseReason, Connection, Context, State};
use crate::http::Outgoing;
use crate::limits::SENDFILE_CHUNK_BYTES;
use crate::study::stats::Count;
use crate::sys;
use crate::trace_conn;

impl<S: Read + AsFd> Connection<S> {
    /// Sends what is pending. Returns whether the answer finished (and the state moved
    /// on); `false` means wait for the socket, or yield to others after a file chunk.
    pub(super) fn write_pending(&mut self, ctx: &Context) -> bool {
        let mut pumped = false;
        loop {
            let State::Writing { out, close_after } = &mut self.state else {
                return false;
            };
            let closing = close_after.is_some();
            if out.advance() {
                continue; // the rest of a spliced answer, after its first file part
            }
            if out.is_sent() {
                return self.finish_response(ctx);
            }
            if out.written == out.bytes.len() && out.stream.is_some() {
                if pumped || !out.stream_may_step() {
                    // One bounded step of a stream per event, and only when its turn at the
                    // shared budget comes: the socket is still writable, so epoll reports us
                    // again next pass (edge-triggered: the ready list runs us again).
                    return false;
                }
                if peer_gone(&self.stream, self.id, ctx) {
                    // Nothing is written while a listing reads its directory, so no write
                    // error would tell us: stop working for a client that left.
                    self.set_state(State::Closed(CloseReason::PeerClosed), ctx);
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
            match send_some(&self.stream, out, max_write, closing) {
                Ok(sent) => {
                    out.sent += sent.bytes as u64;
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
                    // A short `sendfile` may also mean that the file shrank while we send
                    // (then the next call says 0 and the connection closes with a warning):
                    // one `fstat` tells, where waiting for writability would wait for ever
                    // edge-triggered.
                    let shrank = short && !done && sending_file && file_shrank(out);
                    self.arm_deadline(ctx.now, &ctx.site.config);
                    if shrank {
                        continue;
                    }
                    if short && !done {
                        // The send buffer is full: the next call would only say EAGAIN.
                        self.readiness.set(Readiness::WRITE_BLOCKED, true);
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
                    self.readiness.set(Readiness::WRITE_BLOCKED, true);
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
    pub(super) fn finish_response(&mut self, ctx: &Context) -> bool {
        let State::Writing { out, close_after } = &mut self.state else {
            return false;
        };
        super::log_answers(self.id, self.peer.addr(), ctx, out, "");
        let close_after = *close_after;
        let becomes_stream = out.event_stream && !ctx.shutting_down;
        let next = match close_after {
            // --live: the head of an event stream is sent; the stream stays open.
            Some(_) if becomes_stream => State::Streaming {
                pending: Vec::new(),
            },
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
}

/// Whether the client has gone: a peek at the socket (consuming nothing) finds its EOF or
/// an error such as a reset. A client that only shut down its sending side is taken as
/// gone too: it cannot be told apart, and HTTP clients do not half-close.
fn peer_gone(stream: &impl AsFd, id: u64, ctx: &Context) -> bool {
    let fd = stream.as_fd().as_raw_fd();
    let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
    let gone = match recv(fd, &mut [0; 1], flags) {
        Ok(0) => true,
        Ok(_) => false, // a pipelined request waits: still there
        Err(Errno::EAGAIN | Errno::EINTR) => false,
        Err(_) => true,
    };
    let said = if gone { "gone" } else { "there" };
    trace_conn!(ctx.study.trace, id, "recv fd={fd} conn={id} peek {said}");
    gone
}

/// File bodies above this size are sent corked (see [`send_some`]); smaller ones usually go
/// in one `sendfile` and would only pay the two `setsockopt` calls.
const CORK_ABOVE_BYTES: u64 = 256 * 1024;

/// Whether the file being sent is now shorter than the answer promised.
fn file_shrank(out: &Outgoing) -> bool {
    let Some(body) = &out.file else {
        return false;
    };
    let promised = u64::try_from(body.offset).unwrap_or(0) + body.remaining;
    body.file.metadata().is_ok_and(|meta| meta.len() < promised)
}

/// What one `send` or `sendfile` did.
pub(super) struct Sent {
    /// Bytes written.
    bytes: usize,
    /// Bytes offered: fewer written means the socket's send buffer filled.
    offered: usize,
}

/// Counts one write that made progress.
pub(super) fn count_write(ctx: &Context, by_sendfile: bool, bytes: usize, short: bool) {
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
/// at most `max_write` bytes (`--max-write`) if set. `closing`: the connection closes once
/// this answer is sent.
///
/// The `?`s hand every error, `WouldBlock` included, to `write_pending`, which matches
/// `WouldBlock` and `Interrupted` as control flow (STYLE §8) before treating the rest as fatal.
/// A departed peer gives `BrokenPipe` rather than killing us: `sys::send` passes
/// `MSG_NOSIGNAL`, and Rust programs ignore SIGPIPE anyway.
pub(super) fn send_some(
    stream: &impl AsFd,
    out: &mut Outgoing,
    max_write: Option<usize>,
    closing: bool,
) -> io::Result<Sent> {
    let cap = max_write.unwrap_or(usize::MAX);
    if out.written < out.bytes.len() {
        let pending = &out.bytes[out.written..];
        let offered = pending.len().min(cap);
        // MSG_MORE when more follows (a file body, or the rest of a capped write), so head
        // and body share packets; and before a close, so the last bytes and the FIN that
        // `close` or `shutdown` sends leave in one packet, as nginx's uncorked close does
        // (one packet fewer for both ends to handle). Not for an event stream's head,
        // which stays open.
        let last_before_close = closing && out.stream.is_none() && !out.event_stream;
        let more = out.file.is_some()
            || out.after.is_some()
            || offered < pending.len()
            || last_before_close;
        let bytes = sys::send(stream, &pending[..offered], more)?;
        out.written += bytes;
        return Ok(Sent { bytes, offered });
    }
    let body = out
        .file
        .as_mut()
        .expect("invariant: is_sent() was false, so a file body remains");
    let offered = (body.remaining.min(SENDFILE_CHUNK_BYTES as u64) as usize).min(cap);
    if !body.corked && body.remaining > CORK_ABOVE_BYTES {
        // A body that takes several calls: full-sized packets only until it is all handed
        // over (fewer, larger segments for the client to take in, as nginx's tcp_nopush).
        body.corked = sys::set_cork(stream, true).is_ok();
    }
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
            if body.corked && body.remaining == 0 {
                let _ = sys::set_cork(stream, false); // the last partial packet goes now
                body.corked = false;
            }
            Ok(Sent { bytes, offered })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::FileBody;
    use crate::util::test_dir::TestDir;
    use std::net::{TcpListener, TcpStream};
    use std::rc::Rc;

    #[test]
    fn a_large_body_goes_corked_and_the_cork_comes_off_with_its_last_byte() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let len = CORK_ABOVE_BYTES as usize + 4096;
        let dir = TestDir::new("cork");
        let path = dir.path().join("body");
        std::fs::write(&path, vec![b'x'; len]).unwrap();
        let reader = std::thread::spawn(move || {
            let mut client = client;
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut client, &mut got).unwrap();
            got.len()
        });
        let mut out = Outgoing::default();
        out.file = Some(FileBody {
            file: Rc::new(std::fs::File::open(&path).unwrap()),
            offset: 0,
            remaining: len as u64,
            corked: false,
        });
        let mut was_corked = false;
        while !out.is_sent() {
            // Capped, as a slow client would make it: the body takes several calls.
            match send_some(&server, &mut out, Some(64 * 1024), false) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
            was_corked |= sys::is_corked(&server).unwrap();
        }
        assert!(was_corked, "a body above the threshold is sent corked");
        assert!(
            !sys::is_corked(&server).unwrap(),
            "uncorked once all is handed over"
        );
        drop(server);
        assert_eq!(reader.join().unwrap(), len);
    }
}
