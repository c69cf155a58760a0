//! The reading half of a request: one `recv` per call (at most `--max-read` bytes), counted
//! and traced, into the connection's input buffer.
//!
//! Where this sits in the loop: `Connection::on_readable` calls [`Connection::read_once`]
//! when the socket is reported readable (or, edge-triggered, from the ready list), then
//! parses what has arrived; lingering reads go through [`Connection::recv`] too.

use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};

use super::readiness::Readiness;
use super::{CloseReason, Connection, Context, State};
use crate::study::stats::Count;
use crate::trace_conn;

impl<S: Read + AsFd> Connection<S> {
    /// Reads once into the input buffer. Under level triggering one read per event is enough:
    /// if more is waiting, epoll reports the socket again next pass.
    pub(super) fn read_once(&mut self, ctx: &Context, scratch: &mut [u8]) {
        let Some(bytes_read) = self.recv(ctx, scratch) else {
            return;
        };
        match bytes_read {
            0 => self.set_state(State::Closed(CloseReason::PeerClosed), ctx),
            bytes_read => {
                log::trace!("conn={} read {bytes_read} bytes", self.id);
                let inbuf = &mut self.spares(ctx).inbuf;
                inbuf.extend_from_slice(&scratch[..bytes_read]);
                if let State::Idle = self.state {
                    // The first byte of a new head starts the header deadline.
                    self.set_state(State::Reading, ctx);
                }
            }
        }
    }

    /// One `recv` into `scratch` (at most `--max-read` bytes), counted and traced. Returns the
    /// bytes read (0: EOF), or `None` when there was nothing (`EAGAIN`, `EINTR`) or the
    /// connection failed.
    pub(super) fn recv(&mut self, ctx: &Context, scratch: &mut [u8]) -> Option<usize> {
        let offered = ctx
            .site
            .config
            .faults
            .max_read
            .map_or(scratch.len(), |cap| cap.min(scratch.len()));
        let (id, fd) = (self.id, self.stream.as_fd().as_raw_fd());
        match self.stream.read(&mut scratch[..offered]) {
            Ok(bytes_read) => {
                ctx.study.counters.bump(Count::Reads);
                trace_conn!(ctx.study.trace, id, "recv fd={fd} conn={id} n={bytes_read}");
                self.note_read(bytes_read, offered);
                Some(bytes_read)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                ctx.study.counters.bump(Count::ReadsEagain);
                trace_conn!(ctx.study.trace, id, "recv fd={fd} conn={id} EAGAIN");
                log::trace!("conn={} read would block", self.id);
                self.readiness.set(Readiness::READ_BLOCKED, true);
                None
            }
            // EINTR: the socket is still readable; the next pass (or the ready list) reads.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => None,
            Err(e) => {
                trace_conn!(
                    ctx.study.trace,
                    id,
                    "recv fd={fd} conn={id} error={}",
                    e.kind()
                );
                self.fail(e, ctx);
                None
            }
        }
    }
}
