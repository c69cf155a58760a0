//! The last state before a close: after an answer that ends the connection, half-close our
//! side and read (and throw away) what the client still sends, so the kernel does not reset
//! the connection, and destroy our answer in flight, because of unread data (nginx's
//! "lingering close").
//!
//! Where this sits in the loop: `Connection::finish_response` asks [`Connection::linger_or_close`]
//! for the state after a closing answer; while `Lingering`, each readable event calls
//! [`Connection::linger`], and the deadline (`LINGER_TIMEOUT`) ends it at the latest.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};

use nix::sys::socket::{Shutdown, shutdown};

use super::readiness::Readiness;
use super::{CloseReason, Connection, Context, State};
use crate::limits::LINGER_MAX_BYTES;

impl<S: Read + AsFd> Connection<S> {
    /// The state after a closing answer: `Lingering` if the client may have sent (or may still
    /// send) bytes we did not read; `Closed` otherwise.
    pub(super) fn linger_or_close(&self, reason: CloseReason) -> State {
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
        // last read that came back short (or `EAGAIN`) says the socket was empty. Closing
        // over unread bytes makes the kernel send a reset, which can destroy our answer in
        // the client's receive queue (seen with `--max-read 1`).
        let socket_drained = self.readiness.has(Readiness::READ_BLOCKED);
        if !cut_short && !self.request_pending() && socket_drained {
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
    /// sends too much, or the linger deadline passes.
    pub(super) fn linger(&mut self, ctx: &Context, scratch: &mut [u8]) {
        let State::Lingering { reason, .. } = &mut self.state else {
            return;
        };
        let reason = *reason;
        match self.recv(ctx, scratch) {
            Some(0) => self.set_state(State::Closed(reason), ctx),
            Some(bytes_read) => {
                let State::Lingering { discarded, .. } = &mut self.state else {
                    return;
                };
                *discarded += bytes_read as u64;
                if *discarded > LINGER_MAX_BYTES {
                    self.set_state(State::Closed(reason), ctx);
                }
            }
            None => {} // nothing yet, or the connection failed (and is closed)
        }
    }
}
