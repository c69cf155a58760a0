//! `--live`: how many event streams may be open. Streams never go idle, so they are counted
//! against bounds of their own, server-wide, and cannot take the slots page requests need.
//!
//! Where this sits in the loop: the router takes a slot when it answers a request for the
//! stream (`route.rs`); the connection gives it back when the stream (or its head) ends.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::util::peer_counts::PeerCounts;

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
