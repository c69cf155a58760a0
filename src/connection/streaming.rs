//! `--live`: a connection that has become an event stream to a browser tab. After the
//! `text/event-stream` head is sent, the connection stays open; the reactor hands it reload
//! events ([`Connection::send_event`]), and a quiet stream gets a heartbeat comment every
//! [`crate::limits::LIVE_HEARTBEAT`] instead of an idle close.
//!
//! Where this sits in the loop: `finish_response` moves a connection whose answer was the
//! stream's head into `State::Streaming`. Readable events then only matter for noticing the
//! tab closing (EOF); writable ones for events the socket could not take at once.

use std::io::{self, Read};
use std::os::fd::AsFd;

use super::{CloseReason, Connection, Context, State};
use crate::limits::LIVE_MAX_PENDING_BYTES;
use crate::study::stats::Count;
use crate::sys;

/// What a heartbeat is: an SSE comment line, which the browser ignores.
const HEARTBEAT: &[u8] = b": heartbeat\n\n";

impl<S: Read + AsFd> Connection<S> {
    /// Queues one event for the tab and sends what the socket takes. A tab that stopped
    /// reading (more than [`LIVE_MAX_PENDING_BYTES`] waiting) is closed; it reconnects by
    /// itself when it wakes.
    pub fn send_event(&mut self, ctx: &Context, event: &[u8]) {
        let State::Streaming { pending } = &mut self.state else {
            return;
        };
        if pending.len() + event.len() > LIVE_MAX_PENDING_BYTES {
            let reason = CloseReason::Io(io::ErrorKind::WouldBlock);
            return self.set_state(State::Closed(reason), ctx);
        }
        pending.extend_from_slice(event);
        self.write_events(ctx);
    }

    /// The heartbeat deadline passed: a comment line keeps the stream (and any proxy on the
    /// way) alive, and finds out whether the tab is still there.
    pub(super) fn heartbeat(&mut self, ctx: &Context) {
        self.send_event(ctx, HEARTBEAT); // counted by the sweep, as a deadline of its kind
        if matches!(self.state, State::Streaming { .. }) {
            self.arm_deadline(ctx.now, &ctx.site.config);
        }
    }

    /// Sends pending event bytes. Returns `false`: a stream never moves on to another state
    /// by writing (only by closing).
    pub(super) fn write_events(&mut self, ctx: &Context) -> bool {
        let State::Streaming { pending } = &mut self.state else {
            return false;
        };
        while !pending.is_empty() {
            match sys::send(&self.stream, pending, false) {
                Ok(sent) => {
                    pending.drain(..sent);
                    ctx.study.counters.bump(Count::Writes);
                    ctx.study.counters.add(Count::BytesCopied, sent as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readiness.write_blocked = true;
                    return false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(e, ctx);
                    return false;
                }
            }
        }
        false
    }

    /// The stream's socket is readable: a tab sends nothing after its request, so this is
    /// the tab closing (EOF), or bytes we throw away.
    pub(super) fn watch_stream(&mut self, ctx: &Context, scratch: &mut [u8]) {
        if let Some(0) = self.recv(ctx, scratch) {
            self.set_state(State::Closed(CloseReason::PeerClosed), ctx);
        }
    }
}
