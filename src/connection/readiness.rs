//! What the connection knows of its socket's readiness: whether the last read or write said
//! "no more for now" (`EAGAIN`, or a short read or write, which says the same), and whether
//! it is on the reactor's ready list.
//!
//! Where this sits in the loop: the reactor tells the connection what each event reported
//! ([`Connection::heard`]) and asks, before calling a handler and after it,
//! [`Connection::may_progress`]. Level-triggered, the answer only spares a handler call that
//! would find nothing to do. Edge-triggered, it is the whole contract: a connection that may
//! still progress will hear no new event, so the reactor lists it as ready and runs it again.
//!
//! # Design notes
//! **Short means drained.** A `recv` that returns less than it was offered has emptied the
//! socket's receive queue, and anything arriving later raises a new edge; likewise a `send`
//! that took less than offered has filled the send buffer. So a short read or write counts as
//! `EAGAIN` and saves the extra call that would only say so (tokio clears readiness the same
//! way). Two exceptions: once the peer has hung up, a short read may leave the EOF unread and
//! no edge will announce it, so only a real `EAGAIN` counts then; and a short `sendfile` may
//! mean that the file shrank rather than that the socket filled, which one `fstat` tells
//! (`writing.rs`).

use std::io::Read;
use std::os::fd::AsFd;

use super::Connection;
use crate::sys::epoll::Interest;

/// Readiness hints for one socket: five flags in one byte, so a connection stays small.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Readiness(u8);

impl Readiness {
    /// The last read said there is nothing more until the next readable event.
    pub const READ_BLOCKED: u8 = 1;
    /// The last write said the send buffer is full until the next writable event.
    pub const WRITE_BLOCKED: u8 = 1 << 1;
    /// An event reported a hang-up or an error: reads go on until a real `EAGAIN` or EOF.
    pub const HUNG_UP: u8 = 1 << 2;
    /// The connection is on the reactor's ready list.
    pub const QUEUED: u8 = 1 << 3;
    /// The connection read in this pass and waits for the pass's answers (no second read
    /// before them: an EOF read then would close it with its request unanswered).
    pub const RECEIVED: u8 = 1 << 4;

    /// Whether `flag` is set.
    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    /// Sets or clears `flag`.
    pub fn set(&mut self, flag: u8, on: bool) {
        if on {
            self.0 |= flag;
        } else {
            self.0 &= !flag;
        }
    }
}

impl<S: Read + AsFd> Connection<S> {
    /// An event reported the socket readable, writable, or hung up (or in error).
    pub fn heard(&mut self, readable: bool, writable: bool, hung_up: bool) {
        let readiness = &mut self.readiness;
        if readable || hung_up {
            readiness.set(Readiness::READ_BLOCKED, false);
        }
        if writable || hung_up {
            readiness.set(Readiness::WRITE_BLOCKED, false);
        }
        if hung_up {
            readiness.set(Readiness::HUNG_UP, true);
        }
    }

    /// Whether the handler for what the state waits on may make progress without a new
    /// event: its direction has not said `EAGAIN` since the last event for it.
    pub fn may_progress(&self) -> bool {
        match self.interest() {
            Some(Interest::Readable) => !self.readiness.has(Readiness::READ_BLOCKED),
            Some(Interest::Writable) => !self.readiness.has(Readiness::WRITE_BLOCKED),
            Some(Interest::Both) | None => false,
        }
    }

    /// Whether the connection read in this pass and awaits the pass's answers.
    pub fn awaits_answer(&self) -> bool {
        self.readiness.has(Readiness::RECEIVED)
    }

    /// Whether the connection is on the ready list.
    pub fn queued(&self) -> bool {
        self.readiness.has(Readiness::QUEUED)
    }

    /// Marks the connection as on (or off) the ready list.
    pub fn set_queued(&mut self, queued: bool) {
        self.readiness.set(Readiness::QUEUED, queued);
    }

    /// A read returned `bytes_read` of the `offered` bytes (0 is EOF, handled elsewhere).
    pub(super) fn note_read(&mut self, bytes_read: usize, offered: usize) {
        if crate::lab::on(crate::lab::LabBug::NoDrain) {
            // Any read taken as the last one: what the buffer could not hold waits for ever.
            self.readiness.set(Readiness::READ_BLOCKED, true);
            return;
        }
        if bytes_read < offered && !self.readiness.has(Readiness::HUNG_UP) {
            self.readiness.set(Readiness::READ_BLOCKED, true);
        }
    }
}
