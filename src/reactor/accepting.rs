//! Accepting: take new connections from the listener until the queue is empty, within the
//! caps; try each new socket's first read at once; register it. And the listener's pause and
//! resume when the cap or the descriptors run out (see the module docs of `mod.rs`).
//!
//! Where this sits in the loop: `Server::handle_event` calls [`Server::accept_all`] when the
//! listener's token comes out of `epoll_wait` (or, edge-triggered, from the ready list).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use super::admission::Slot;
use super::listening::Listening;
use super::{Server, listener_token};
use crate::connection::Connection;
use crate::http::head::{HeadOptions, write_head};
use crate::http::{Body, Fields, Persistence, Reply, Status};
use crate::limits::{ACCEPT_RETRY_DELAY, ACCEPTS_PER_EVENT};
use crate::study::stats::Count;
use crate::sys::{self, epoll::Interest, epoll::Trigger};
use crate::{trace_conn, trace_loop};

impl Server {
    /// Accepts until the queue is empty (`EAGAIN`), the cap is reached, descriptors run out,
    /// or [`ACCEPTS_PER_EVENT`] connections were taken: a flood of new clients must not keep
    /// the loop from serving the ones it has (the level-triggered listener reports the rest
    /// on the next pass).
    pub(super) fn accept_all(&mut self, now: Instant, index: usize) {
        for _ in 0..ACCEPTS_PER_EVENT {
            // A slot is reserved before the accept, so that workers accepting at the same
            // moment can never take more slots than the cap between them. Dropped unused, it
            // is given back.
            let slot = match self.admission.reserve() {
                Some(slot) => Some(slot),
                // Room is made only for someone who is there: after the accepts above the
                // queue may be empty, and reclaiming then would close an idle connection
                // for nobody (and, with workers, ask the others to).
                None if !self.someone_waits(index) => return,
                None if self.make_room(now) > 0 => self.admission.reserve(),
                None => None,
            };
            let Some(slot) = slot else {
                // Nothing here to reclaim: the other workers may have something (they look
                // at their next sweep). Their closes do not wake this worker: look again on
                // a timer.
                if self.admission.shared {
                    self.admission.want_room();
                }
                let retry_at = self.admission.shared.then(|| now + ACCEPT_RETRY_DELAY);
                self.pause_accepting("connection cap reached", retry_at);
                return;
            };
            let Some(listener) = self.listeners.get(index).and_then(Listening::active) else {
                return;
            };
            match sys::accept4(listener) {
                Ok((stream, peer)) => self.add_connection(stream, peer, slot, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    trace_loop!(self.pass.study.trace, "accept4 EAGAIN");
                    return;
                }
                // The client gave up between connecting and our accept, or a signal arrived.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                // Out of descriptors: the file cache gives its back, or idle connections
                // do, else wait.
                Err(e) if is_out_of_descriptors(&e) && self.give_back_descriptors(now) => {}
                Err(e) => {
                    let why = format!("accept failed: {e}");
                    self.pause_accepting(&why, Some(now + ACCEPT_RETRY_DELAY));
                    return;
                }
            }
        }
        // Stopped before EAGAIN: level-triggered, epoll reports the listener again;
        // edge-triggered, it must go on the ready list or the rest would wait for a new edge.
        if self.registry.trigger == Trigger::Edge && !self.listener_queued[index] {
            self.listener_queued[index] = true;
            self.ready.push_back(listener_token(index));
        }
    }

    /// Whether a connection waits in listener `index`'s queue (a `poll` that does not wait).
    fn someone_waits(&self, index: usize) -> bool {
        let Some(listener) = self.listeners.get(index).and_then(Listening::active) else {
            return false;
        };
        let waits = sys::readable_now(listener).unwrap_or(true);
        let fd = listener.as_raw_fd();
        let ready = u8::from(waits);
        trace_loop!(
            self.pass.study.trace,
            "poll fd={fd} token=listener ready={ready}"
        );
        waits
    }

    /// Puts an accepted socket in the slab and registers it for reading.
    pub(super) fn add_connection(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        mut slot: Slot,
        now: Instant,
    ) {
        if !slot.admit(peer.ip()) {
            log::warn!("refused peer={peer}: --max-connections-per-ip reached");
            // Best effort: the client has not spoken yet, but may read an early answer.
            let answer = self.too_many_from_peer();
            let sent = sys::send(&stream, &answer, false);
            let fd = stream.as_raw_fd();
            match sent {
                Ok(n) => trace_loop!(self.pass.study.trace, "send fd={fd} n={n} (503)"),
                Err(e) => trace_loop!(self.pass.study.trace, "send fd={fd} error={}", e.kind()),
            }
            self.close_socket(stream, None);
            return;
        }
        let id = self.next_connection_id;
        self.next_connection_id += self.id_step;
        let study = &self.pass.study;
        study.counters.bump(Count::Accepts);
        study.counters.moved(None, Some(0)); // a new connection starts idle
        trace_conn!(
            study.trace,
            id,
            "accept4 fd={} conn={id} peer={peer}",
            stream.as_raw_fd()
        );
        if crate::lab::on(crate::lab::LabBug::BlockingSend) {
            let _ = stream.set_nonblocking(false); // as accepted sockets are, unless told
        }
        let faults = self.pass.config.faults;
        if let Some(bytes) = faults.sndbuf {
            use nix::sys::socket::{setsockopt, sockopt::SndBuf};
            if let Err(e) = setsockopt(&stream, SndBuf, &bytes) {
                log::warn!("conn={id} --sndbuf: setsockopt failed: {e}");
            }
        }
        let mut connection = Connection::new(id, stream, peer, now, &self.pass.config);
        log::debug!("conn={id} accepted peer={peer}");
        // Eager progress: a client usually sends its request right after connecting, so try
        // it now (if nothing has arrived yet, the read just says WouldBlock). It is answered
        // with the pass's other reads (`Server::serve_received`), then `settle` registers
        // it: a short request that asks to close is served and closed without ever entering
        // the epoll set.
        let ctx = self.pass.context(now, self.shutting_down());
        connection.receive(&ctx, &mut self.read_buffer);
        self.fresh.push((connection, slot));
    }

    /// Answers what a connection accepted in this pass sent with it, then, unless that
    /// closed it, puts it in the slab and registers it.
    pub(super) fn settle(
        &mut self,
        mut connection: Connection<TcpStream>,
        slot: Slot,
        now: Instant,
    ) {
        let ctx = self.pass.context(now, self.shutting_down());
        connection.serve_received(&ctx);
        let id = connection.id();
        let Some(interest) = connection.interest() else {
            // Served (or refused) and closed already, never registered.
            return self.close_socket(connection.into_stream(), Some(id));
        };
        let token = self.connections.insert(connection);
        self.memory.opened(self.connections.len());
        let connection = self
            .connections
            .get_mut(token)
            .expect("invariant: just inserted");
        let trigger = self.registry.trigger;
        // Edge-triggered, a socket is registered once for everything it will ever wait on.
        let interest = match trigger {
            Trigger::Level => interest,
            Trigger::Edge => Interest::Both,
        };
        match self
            .registry
            .add(connection.stream(), token, interest, trigger, Some(id))
        {
            Ok(()) => {
                slot.hand_over(); // from now on, `Server::close` gives it back
                self.after_handler(token, Some(interest), now);
            }
            Err(e) => {
                log::warn!("conn={id} register failed: {e}");
                if let Some(connection) = self.connections.remove(token) {
                    self.pass.study.counters.moved(connection.gauge(), None);
                    self.close_socket(connection.into_stream(), Some(id));
                }
                drop(slot); // gives the slot back
            }
        }
    }

    /// Out of descriptors: the file cache's open files go first (a cached file is opened
    /// again when asked for), then idle connections. Returns whether any were given back.
    fn give_back_descriptors(&mut self, now: Instant) -> bool {
        self.pass.site.cache.borrow_mut().release_files() > 0 || self.make_room(now) > 0
    }

    /// The answer to a client address over its connection cap, sent before its request: a
    /// 503 with no content, written by the one head writer like every other answer.
    fn too_many_from_peer(&self) -> Vec<u8> {
        let reply = Reply {
            status: Status::SERVICE_UNAVAILABLE,
            fields: Fields {
                retry_after: true,
                ..Fields::default()
            },
            body: Body::Empty,
        };
        let head = HeadOptions {
            head_only: false,
            http11: true,
            persistence: Persistence::Close,
            date: self.pass.date.as_str(),
            added: &self.pass.config.site.added_fields,
        };
        let mut bytes = Vec::with_capacity(256);
        write_head(&mut bytes, &reply, &head);
        bytes
    }

    /// Stops watching the listeners (see the module docs for why this prevents a spin).
    pub(super) fn pause_accepting(&mut self, why: &str, retry_at: Option<Instant>) {
        let connections = self.connections.len();
        for (index, listening) in self.listeners.iter_mut().enumerate() {
            let token = listener_token(index);
            listening.pause(&self.registry, token, why, retry_at, connections);
        }
    }

    /// Watches the listeners again, if they were paused.
    pub(super) fn resume_accepting(&mut self, now: Instant) {
        let connections = self.connections.len();
        let retry_at = now + ACCEPT_RETRY_DELAY;
        for (index, listening) in self.listeners.iter_mut().enumerate() {
            let token = listener_token(index);
            listening.resume(&self.registry, token, connections, retry_at);
        }
    }
}

/// Whether `accept` failed for want of descriptors (ours: EMFILE, or the system's: ENFILE).
fn is_out_of_descriptors(error: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE)
    )
}
