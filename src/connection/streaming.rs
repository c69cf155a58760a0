//! `--live`: a connection that has become an event stream to a browser tab. After the
//! `text/event-stream` head is sent, the connection stays open; the reactor hands it reload
//! events ([`Connection::send_event`]), and a quiet stream gets a heartbeat comment every
//! [`crate::limits::LIVE_HEARTBEAT`] instead of an idle close.
//!
//! Where this sits in the loop: `finish_response` moves a connection whose answer was the
//! stream's head into `State::Streaming`. Readable events then only matter for noticing the
//! tab closing (EOF); writable ones for events the socket could not take at once.

use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard};

use super::readiness::Readiness;
use super::{CloseReason, Connection, Context, State};
use crate::limits::LIVE_MAX_PENDING_BYTES;
use crate::study::stats::Count;
use crate::sys;
use crate::util::peer_counts::PeerCounts;

/// What a heartbeat is: an SSE comment line, which the browser ignores.
const HEARTBEAT: &[u8] = b": heartbeat\n\n";

/// `--live`: the event streams open in the whole server (shared by the workers), against
/// bounds of their own, so that streams (which never go idle) cannot take the slots page
/// requests need: at most `per_ip` from one client address, at most `total` in all. A
/// stream asked for beyond either is refused with 503 (the page then does without live
/// reload); streams are also closed, oldest first, to make room for a new client at the
/// connection cap (see `Connection::reclaim_rank`). A lock per stream opened or closed,
/// never per request.
#[derive(Clone, Debug)]
pub struct StreamSlots {
    /// Most streams from one address.
    per_ip: usize,
    /// Most streams in all.
    total: usize,
    /// Open streams per address, and in all.
    open: Arc<Mutex<PeerCounts>>,
}

impl Default for StreamSlots {
    /// The per-address bound, and no bound in all (for a connection without a reactor).
    fn default() -> StreamSlots {
        StreamSlots::new(crate::limits::LIVE_STREAMS_PER_IP, usize::MAX)
    }
}

impl StreamSlots {
    /// Bounds of `per_ip` streams from one address and `total` in all (at least one).
    pub fn new(per_ip: usize, total: usize) -> StreamSlots {
        StreamSlots {
            per_ip: per_ip.max(1),
            total: total.max(1),
            open: Arc::default(),
        }
    }

    /// Counts a stream from `ip`, if the bounds allow it (one step under the lock, so
    /// workers deciding at once cannot pass a bound between them); `closed` undoes it.
    pub fn try_open(&self, ip: IpAddr) -> bool {
        let mut counts = self.counts();
        let allowed = counts.total() < self.total && counts.admits(ip, self.per_ip);
        if allowed {
            counts.opened(ip);
        }
        allowed
    }

    /// A stream from `ip` closed.
    pub fn closed(&self, ip: IpAddr) {
        self.counts().closed(ip);
    }

    /// The counts (a worker that panicked while holding the lock left them consistent:
    /// every update is a single step).
    fn counts(&self) -> MutexGuard<'_, PeerCounts> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

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
                    self.readiness.set(Readiness::WRITE_BLOCKED, true);
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
