//! Who gets a connection slot: reclaiming connections when the server is full, and the
//! per-client-address cap.
//!
//! Where this sits in the loop: `Server::accept_all` asks [`Server::make_room`] when it is at
//! the connection cap (or out of descriptors) before it pauses the listener, and asks
//! [`Slot::admit`] for every accepted socket; each deadline sweep calls
//! [`Server::reconsider_room`], which resumes a paused listener once anything has become
//! reclaimable, and reclaims for another worker that asked. `Server::close` keeps the counts.
//! With `--workers N`, the workers share one `Admission`, so the caps hold for the whole
//! server.
//!
//! # Design notes
//! An idle keep-alive connection costs us a slot and a descriptor and the client nothing, so
//! one client could hold every slot and keep new clients waiting for as long as it likes.
//! nginx's answer is to treat idle keep-alive connections as *reusable*: when it runs short,
//! it closes the longest-idle ones. epollo does the same, and goes on down a list (see
//! `Connection::reclaim_rank`): then connections that have sent nothing for a second (a
//! client about to speak has spoken by then; holding slots silently is what an attacker
//! does), then `--live` event streams, oldest first (a tab reconnects by itself). Closing an
//! idle connection is always safe: HTTP/1.1 clients retry a request that meets a closed
//! keep-alive connection. But "idle" is what the loop saw last: the client's next request may
//! already wait in the socket (its event comes later in the pass), and closing it then would
//! reset the connection and lose that request. So each chosen one is peeked at first, and
//! one with bytes waiting is left alone. The per-address cap stops one address from taking
//! most of the slots in the first place; the reclaiming makes sure that even then a new
//! client is served within about a second.
//!
//! **When to look again.** A listener paused at the cap is out of the epoll set (it would
//! spin otherwise), so nothing wakes the loop when a busy connection goes idle. Rather than
//! a hook in every transition, the sweep that already visits every connection four times a
//! second checks whether any is reclaimable and, if so, puts the listener back: a waiting
//! newcomer is then accepted and a slot made for it.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::Server;
use crate::limits::RECLAIM_BATCH;
use crate::sys::epoll::Token;
use crate::util::peer_counts::PeerCounts;

/// The connection caps and counts, shared by the workers.
pub(super) struct Admission {
    /// The connection cap (from `--max-connections` or the open-file limit).
    pub max_connections: usize,
    /// The cap per client address (from `--max-connections-per-ip`, or derived).
    pub max_per_ip: usize,
    /// Whether several workers share this (then a paused worker polls for room, since
    /// another worker's close does not wake it).
    pub shared: bool,
    /// Connections open, in all workers.
    open: AtomicUsize,
    /// A worker at the cap with a newcomer waiting found nothing of its own to reclaim:
    /// the others look at their sweep.
    room_wanted: AtomicBool,
    /// Connections open per client address, in all workers. A lock per accepted and closed
    /// connection; never per request.
    peers: Mutex<PeerCounts>,
}

impl Admission {
    /// Caps for `workers` workers.
    pub fn new(max_connections: usize, max_per_ip: usize, workers: usize) -> Admission {
        Admission {
            max_connections,
            max_per_ip,
            shared: workers > 1,
            open: AtomicUsize::new(0),
            room_wanted: AtomicBool::new(false),
            peers: Mutex::default(),
        }
    }

    /// Whether the server is at its connection cap.
    pub fn full(&self) -> bool {
        self.open.load(Ordering::Relaxed) >= self.max_connections
    }

    /// Takes a connection slot, if the cap allows (one atomic step, so workers accepting at
    /// the same moment can never take more slots than the cap between them). The [`Slot`]
    /// gives it back when dropped, unless it is handed over to an open connection.
    pub fn reserve(self: &Arc<Self>) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |open| {
                (open < self.max_connections).then_some(open + 1)
            })
            .ok()?;
        Some(Slot {
            admission: Arc::clone(self),
            peer: None,
            handed_over: false,
        })
    }

    /// A connection handed over by [`Slot::hand_over`] closed: its slot and its count for
    /// its address are given back. The one place an open connection's slot ends.
    pub fn closed(&self, ip: IpAddr) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.peers().closed(ip);
    }

    /// Asks the other workers to reclaim what they can: a newcomer waits here, and this
    /// worker has nothing to reclaim.
    pub fn want_room(&self) {
        self.room_wanted.store(true, Ordering::Relaxed);
    }

    /// Whether another worker asked for room (the request is taken: one worker answers it).
    pub fn room_requested(&self) -> bool {
        self.room_wanted.swap(false, Ordering::Relaxed)
    }

    /// The per-address counts (a worker that panicked while holding the lock left them
    /// consistent: every update is a single step).
    fn peers(&self) -> std::sync::MutexGuard<'_, PeerCounts> {
        self.peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Server {
    /// Closes up to [`RECLAIM_BATCH`] connections to make room, in the order
    /// `Connection::reclaim_rank` gives (idle keep-alive first, longest idle first), but
    /// none that has bytes waiting unread (a peek each): the next in the order takes its
    /// place. Returns how many it closed.
    pub(super) fn make_room(&mut self, now: Instant) -> usize {
        let config = &self.pass.config;
        let mut candidates: Vec<_> = self
            .connections
            .iter_mut()
            .filter_map(|(token, connection)| {
                connection
                    .reclaim_rank(now, config)
                    .map(|rank| (rank, token))
            })
            .collect();
        let mut closed = 0;
        let mut rest = &mut candidates[..];
        // Each round picks the best ranked of the rest, as many as are still wanted (no full
        // sort: a connection with bytes waiting is rare, so there is seldom a second round).
        while closed < RECLAIM_BATCH && !rest.is_empty() {
            let wanted = (RECLAIM_BATCH - closed).min(rest.len());
            if wanted < rest.len() {
                rest.select_nth_unstable_by_key(wanted - 1, |&(rank, _)| rank);
            }
            let (chosen, later) = rest.split_at_mut(wanted);
            for &mut (rank, token) in chosen {
                if self.reclaim(token, rank, now) {
                    closed += 1;
                }
            }
            rest = later;
        }
        if closed > 0 {
            log::info!("reclaimed connections={closed} to make room");
        }
        closed
    }

    /// Closes one chosen connection, unless its next request is arriving: then it is not
    /// idle, whatever the loop saw last. Returns whether it closed it.
    fn reclaim(&mut self, token: Token, rank: (u8, u64), now: Instant) -> bool {
        let study = &self.pass.study;
        let waiting = self.connections.get_mut(token);
        if waiting.is_some_and(|connection| connection.bytes_waiting(study)) {
            log::debug!("not reclaiming token={:#x}: bytes wait unread", token.0);
            return false;
        }
        log::debug!(
            "closing a connection to make room token={:#x} rank={}",
            token.0,
            rank.0
        );
        self.close(token, now);
        true
    }

    /// At each sweep: reclaims for another worker that asked (its newcomer waits, and it had
    /// nothing to reclaim), and resumes a listener paused at the cap once anything here has
    /// become reclaimable (say, connections that were busy when the cap was reached have gone
    /// idle since): a waiting newcomer then gets the slot at once.
    pub(super) fn reconsider_room(&mut self, now: Instant) {
        if self.admission.room_requested() {
            self.make_room(now);
        }
        let paused = self.listeners.iter().any(|listening| listening.is_paused());
        if paused && self.admission.full() {
            let config = &self.pass.config;
            let reclaimable = self
                .connections
                .iter_mut()
                .any(|(_, connection)| connection.reclaim_rank(now, config).is_some());
            if reclaimable {
                self.resume_accepting(now);
            }
        }
    }
}

/// A reserved connection slot and, once admitted, the count for its client's address. Both
/// are given back when the slot is dropped (the accept found nobody, the address was over its
/// cap, the connection closed before it was registered), so no path can forget one; a
/// connection that opens takes them over ([`Slot::hand_over`]) until `Server::close`.
#[must_use = "dropping a slot gives it back"]
pub(super) struct Slot {
    /// Whose slot it is.
    admission: Arc<Admission>,
    /// The address counted, once admitted.
    peer: Option<IpAddr>,
    /// Taken over by an open connection: nothing to give back on drop.
    handed_over: bool,
}

impl Slot {
    /// Counts the connection from `ip`, if the per-address cap allows it (one step under the
    /// lock, so workers accepting from one address at once cannot pass the cap between
    /// them).
    pub fn admit(&mut self, ip: IpAddr) -> bool {
        let admission = &self.admission;
        let mut peers = admission.peers();
        let admitted = peers.admits(ip, admission.max_per_ip);
        if admitted {
            peers.opened(ip);
            self.peer = Some(ip);
        }
        admitted
    }

    /// The connection is open and in the slab: its slot and count now end with
    /// [`Admission::closed`], when it closes.
    pub fn hand_over(mut self) {
        self.handed_over = true;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.handed_over {
            return;
        }
        self.admission.open.fetch_sub(1, Ordering::Relaxed);
        if let Some(ip) = self.peer {
            self.admission.peers().closed(ip);
        }
    }
}
