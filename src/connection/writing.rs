//! The writing half of the state machine: sending what `Outgoing` holds, finishing a
//! response (back to `Reading`, or closing), and lingering after a refusal.
//!
//! Where this sits in the loop: `Connection::make_progress` calls [`Connection::write_pending`]
//! whenever the connection is `Writing`, right after a response was assembled (eager progress)
//! and on every writable event after the socket pushed back. The reading half, and the states
//! themselves, are in `connection.rs`.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::sendfile::sendfile;
use nix::sys::socket::{Shutdown, shutdown};

use super::outgoing::Outgoing;
use super::{CloseReason, Connection, Context, State};
use crate::limits::{LINGER_MAX_BYTES, LINGER_TIMEOUT, SENDFILE_CHUNK_BYTES};
use crate::sys;

impl<S: Read + AsFd> Connection<S> {
    /// Sends what is pending. Returns whether the response finished (and the state moved
    /// on); `false` means wait for the socket, or yield to others after a file chunk.
    pub(super) fn write_pending(&mut self, ctx: &Context) -> bool {
        loop {
            let State::Writing(out) = &mut self.state else {
                return false;
            };
            if out.is_sent() {
                return self.finish_response(ctx);
            }
            let sending_file = out.written == out.bytes.len();
            match send_some(&self.stream, out) {
                Ok(bytes_sent) => {
                    log::trace!("conn={} wrote {bytes_sent} bytes", self.id);
                    self.deadline = ctx.now + ctx.config.send_timeout;
                    if sending_file && !out.is_sent() {
                        return false; // yield: epoll reports us again next pass (level-triggered)
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    log::trace!("conn={} write would block", self.id);
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(e, ctx);
                    return false;
                }
            }
        }
    }

    /// Everything is sent: log it, then read the next request or close.
    fn finish_response(&mut self, ctx: &Context) -> bool {
        let State::Writing(out) = &self.state else {
            return false;
        };
        out.log_access(self.id, self.peer, "");
        let next = match out.close_after {
            Some(reason) => self.linger_or_close(reason),
            // A response begun before the shutdown promised keep-alive; there is no next
            // request to wait for now (but the client may be sending one: linger).
            None if ctx.shutting_down && self.inbuf.is_empty() => {
                self.linger_or_close(CloseReason::Shutdown)
            }
            None => State::Reading,
        };
        if matches!(next, State::Lingering { .. }) {
            self.deadline = ctx.now + LINGER_TIMEOUT;
        }
        if matches!(next, State::Reading) {
            log::debug!("conn={} keep-alive reuse", self.id);
            if !self.request_pending() {
                self.inbuf = Vec::new(); // an idle connection holds no buffer
                self.deadline = ctx.now + ctx.config.keep_alive_timeout;
            } else {
                // A next head, or the rest of a body to discard, is already under way.
                self.deadline = ctx.now + ctx.config.header_timeout;
            }
        }
        let keeps_going = matches!(next, State::Reading);
        self.set_state(next, ctx);
        keeps_going
    }

    /// The state after a closing answer: `Lingering` if the client may have sent (or may still
    /// send) bytes we did not read, since closing with unread data makes the kernel send a
    /// reset, which can destroy our answer in flight; `Closed` otherwise.
    fn linger_or_close(&self, reason: CloseReason) -> State {
        // A refusal leaves the rest of the request unread; an answer that ends a connection
        // the client wanted to keep may cross requests it pipelined.
        let cut_short = matches!(
            reason,
            CloseReason::Rejected(_)
                | CloseReason::Deadline(_)
                | CloseReason::RequestQuota
                | CloseReason::Shutdown
        );
        if !cut_short && !self.request_pending() {
            return State::Closed(reason);
        }
        // Half-close, so the client sees our answer end, then drain its leftovers.
        let _ = shutdown(self.stream.as_fd().as_raw_fd(), Shutdown::Write);
        State::Lingering {
            reason,
            discarded: 0,
        }
    }

    /// Reads and throws away what a client sends after our closing answer, until it closes,
    /// sends too much, or the linger deadline passes (nginx's "lingering close").
    pub(super) fn linger(&mut self, ctx: &Context, scratch: &mut [u8]) {
        let State::Lingering { reason, discarded } = &mut self.state else {
            return;
        };
        let reason = *reason;
        match self.stream.read(scratch) {
            Ok(0) => self.set_state(State::Closed(reason), ctx),
            Ok(bytes_read) => {
                *discarded += bytes_read as u64;
                if *discarded > LINGER_MAX_BYTES {
                    self.set_state(State::Closed(reason), ctx);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => self.set_state(State::Closed(reason), ctx),
        }
    }
}

/// Sends the next piece of `out`: buffered bytes if any are left, else one sendfile chunk.
///
/// The `?`s hand every error, `WouldBlock` included, to `write_pending`, which matches
/// `WouldBlock` and `Interrupted` as control flow (STYLE §8) before treating the rest as fatal.
fn send_some(stream: &impl AsFd, out: &mut Outgoing) -> io::Result<usize> {
    if out.written < out.bytes.len() {
        // MSG_MORE when a file body follows, so head and body share packets.
        let sent = sys::send(stream, &out.bytes[out.written..], out.file.is_some())?;
        out.written += sent;
        return Ok(sent);
    }
    let body = out
        .file
        .as_mut()
        .expect("invariant: is_sent() was false, so a file body remains");
    let chunk = body.remaining.min(SENDFILE_CHUNK_BYTES as u64) as usize;
    match sendfile(
        stream.as_fd(),
        body.file.as_fd(),
        Some(&mut body.offset),
        chunk,
    )? {
        0 => {
            log::warn!("a file shrank while being sent; closing its connection");
            Err(io::ErrorKind::UnexpectedEof.into())
        }
        sent => {
            body.remaining -= sent as u64;
            Ok(sent)
        }
    }
}
