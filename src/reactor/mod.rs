//! `Server`: the reactor. It owns the poller, the listener, the signalfd and the slab of
//! connections, and runs the loop. Its parts: `listening.rs` (the listener's states),
//! `slab.rs` (connections addressed by token), `signals.rs` (SIGINT/SIGTERM as an fd).
//!
//! Where this sits in the loop: this *is* the loop. One pass:
//! 1. wait for events, with a timeout no later than the next deadline sweep;
//! 2. take `now` once, for the whole pass (the next wait's timeout is computed from it too);
//! 3. dispatch each event by token: the listener accepts, the signalfd begins a shutdown,
//!    anything else is a connection found in the slab (a stale token is ignored);
//! 4. after each connection handler, exactly one of: it closed (free the slot), its interest
//!    changed (reregister), or nothing changed;
//! 5. at most once per [`SWEEP_INTERVAL`], act on connections whose deadline passed.
//!
//! # Design notes
//! **Accepting under pressure.** The listener is level-triggered like everything else, so a
//! listener left registered but not accepted from (we are at the connection cap, or `accept`
//! fails with EMFILE) would make `epoll_wait` return at once, forever: a 100% CPU spin. So at
//! the cap, or on EMFILE/ENFILE, we *deregister* the listener; new clients wait in the kernel's
//! backlog. We register it again when a connection closes, or after [`ACCEPT_RETRY_DELAY`]
//! (another process may be the one holding the descriptors). `Listening` (in `listening.rs`)
//! keeps the three states apart, each owning what it needs; darkhttpd's `accepting` flag does
//! the same job.
//!
//! **Deadlines by sweep.** Each connection has one deadline. Rather than a timer wheel or a
//! heap, the loop visits every connection a few times a second; that is O(n) but trivially
//! cheap next to the syscalls, and a learner can see the whole mechanism in one function.

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

mod admission;
mod listening;
pub mod signals;
pub mod slab;
pub mod workers;

use crate::config::Config;
use crate::connection::{Connection, Context, SparePool};
use crate::limits::{
    ACCEPT_RETRY_DELAY, ACCEPTS_PER_EVENT, EVENTS_PER_WAIT, LISTEN_BACKLOG, READ_BUFFER_BYTES,
    SHUTDOWN_GRACE, SWEEP_INTERVAL,
};
use crate::site::{Root, Site};
use crate::sys::{self, epoll::Event, epoll::Events, epoll::Interest, epoll::Poller, epoll::Token};
use crate::util::date::DateHeader;
use admission::Admission;
use listening::Listening;
use slab::Slab;
use workers::{Control, Order, Received, Worker};

/// The listening socket's token.
const LISTENER: Token = Slab::<()>::reserved_token(0);
/// The control descriptor's token (the signalfd, or the first worker's socket).
const CONTROL: Token = Slab::<()>::reserved_token(1);
/// The file cache's inotify descriptor's token.
const WATCHES: Token = Slab::<()>::reserved_token(2);

/// What handlers read but never change during a pass.
struct Pass {
    /// The served folder and the configuration.
    site: Site,
    /// The `Date` header, reformatted once per second.
    date: DateHeader,
    /// The wall-clock time of this pass.
    wall_clock: SystemTime,
    /// Buffers for busy connections, shared by all of them.
    spares: RefCell<SparePool>,
}

impl Pass {
    /// The handlers' view of this pass.
    fn context(&self, now: Instant, shutting_down: bool) -> Context<'_> {
        Context {
            now,
            wall_clock: self.wall_clock,
            date: self.date.as_str(),
            site: &self.site,
            shutting_down,
            spares: &self.spares,
        }
    }
}

/// The reactor.
pub struct Server {
    /// The epoll instance everything is registered in.
    poller: Poller,
    /// The listening socket and whether we accept from it.
    listening: Listening,
    /// The address the listener is bound to (with the real port when `--port 0`).
    local_addr: SocketAddr,
    /// How shutdown orders arrive: SIGINT/SIGTERM (the first worker), or the first worker's
    /// word (the others).
    control: Control,
    /// The open connections, addressed by token.
    connections: Slab<Connection<TcpStream>>,
    /// Site, configuration and date, shared with handlers.
    pass: Pass,
    /// The connection caps and counts (shared by all workers).
    admission: Arc<Admission>,
    /// The id the next connection gets in log lines.
    next_connection_id: u64,
    /// How much ids grow per connection: the number of workers, so ids stay unique.
    id_step: u64,
    /// When the next deadline sweep is due.
    next_sweep: Instant,
    /// During a shutdown, when to exit even if answers are still in flight.
    exit_by: Option<Instant>,
    /// The one buffer every socket read lands in (see `Connection::on_readable`).
    read_buffer: Box<[u8]>,
}

impl Server {
    /// Opens the root, binds this worker's listener and registers the listener, the control
    /// descriptor and the file cache's inotify descriptor.
    ///
    /// # Errors
    /// An unusable root, an address that cannot be bound, or a failing epoll setup; each
    /// message names what failed.
    fn bind(config: Config, worker: Worker) -> io::Result<Server> {
        let root = Root::open(&config.root, config.follow_symlinks)?;
        let listener = sys::listen(config.addr, LISTEN_BACKLOG, worker.count > 1).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.addr))
        })?;
        let local_addr = listener.local_addr()?;
        let poller = Poller::new()?;
        poller.register(&listener, LISTENER, Interest::Readable)?;
        poller.register(&worker.control, CONTROL, Interest::Readable)?;
        let site = Site::new(root, config);
        if let Some(watches) = site.cache.borrow().watch_fd() {
            poller.register(&watches, WATCHES, Interest::Readable)?;
        }
        let admission = worker.admission;
        log::info!(
            "serving root={} addr={local_addr} worker={}/{} max_connections={} max_per_ip={}",
            site.root.path().display(),
            worker.index + 1,
            worker.count,
            admission.max_connections,
            admission.max_per_ip
        );
        Ok(Server {
            poller,
            listening: Listening::Active(listener),
            local_addr,
            control: worker.control,
            connections: Slab::default(),
            pass: Pass {
                site,
                date: DateHeader::new(SystemTime::now()),
                wall_clock: SystemTime::now(),
                spares: RefCell::default(),
            },
            admission,
            next_connection_id: worker.index as u64 + 1,
            id_step: worker.count as u64,
            next_sweep: Instant::now(),
            exit_by: None,
            read_buffer: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
        })
    }

    /// The bound address (with the real port if `--port 0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs the loop until a shutdown completes.
    ///
    /// # Errors
    /// Only server-fatal errors: `epoll_wait` failing for a reason other than EINTR.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(EVENTS_PER_WAIT);
        let mut now = Instant::now();
        loop {
            let timeout = self.wait_timeout(now);
            let waited = self.poller.wait(&mut events, timeout);
            now = Instant::now();
            match waited {
                Ok(()) => {}
                // A signal we do not handle through the signalfd (say SIGSTOP and SIGCONT from
                // a debugger) interrupted the wait: nothing happened, wait again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            self.pass.wall_clock = SystemTime::now();
            self.pass.date.update(self.pass.wall_clock);
            log::trace!("epoll_wait returned events={}", events.len());
            // File changes first: a file saved before a request arrived must not be answered
            // from the cache's old copy. (If the wait filled every slot, the change may not
            // be among them: look anyway.)
            let full = events.len() == EVENTS_PER_WAIT;
            if full || events.iter().any(|event| event.token == WATCHES) {
                self.pass.site.cache.borrow_mut().on_change();
            }
            for event in events.iter().filter(|event| event.token != WATCHES) {
                self.handle_event(event, now);
            }
            if now >= self.next_sweep {
                self.sweep_deadlines(now);
                self.next_sweep = now + SWEEP_INTERVAL;
            }
            if self.shutdown_complete(now) {
                log::info!("shutdown complete; exiting");
                return Ok(());
            }
        }
    }

    /// How long `epoll_wait` may sleep: for ever when there is nothing to time out, otherwise
    /// until the next sweep.
    fn wait_timeout(&self, now: Instant) -> Option<Duration> {
        let idle = self.connections.is_empty()
            && self.exit_by.is_none()
            && !self.listening.retry_pending();
        if idle {
            None
        } else {
            Some(self.next_sweep.saturating_duration_since(now))
        }
    }

    /// Routes one event by its token.
    fn handle_event(&mut self, event: Event, now: Instant) {
        log::trace!(
            "event token={:#x} readable={} writable={} error={} hangup={}",
            event.token.0,
            event.readable,
            event.writable,
            event.error,
            event.hangup
        );
        match event.token {
            LISTENER => self.accept_all(now),
            CONTROL => self.on_control(now),
            token => self.handle_connection(token, now),
        }
    }

    /// Calls the connection's handler for the readiness it waits on. The event's flags are
    /// only a hint (and are logged above): the handler tries the I/O and the result decides,
    /// so a hang-up or error shows up as EOF or an error from `read`/`write`.
    fn handle_connection(&mut self, token: Token, now: Instant) {
        let ctx = self.pass.context(now, self.shutting_down());
        let Some(connection) = self.connections.get_mut(token) else {
            log::trace!("stale token={:#x} ignored", token.0);
            return;
        };
        let before = connection.interest();
        match before {
            Some(Interest::Readable) => connection.on_readable(&ctx, &mut self.read_buffer),
            Some(Interest::Writable) => connection.on_writable(&ctx),
            None => {}
        }
        self.after_handler(token, before, now);
    }

    /// Applies the outcome of a handler: close and free, reregister, or nothing.
    fn after_handler(&mut self, token: Token, before: Option<Interest>, now: Instant) {
        let Some(connection) = self.connections.get_mut(token) else {
            return;
        };
        match connection.interest() {
            None => self.close(token, now),
            Some(interest) if Some(interest) != before => {
                log::trace!("reregister token={:#x} interest={interest:?}", token.0);
                if let Err(e) = self.poller.reregister(connection.stream(), token, interest) {
                    log::warn!("reregister failed token={:#x}: {e}", token.0);
                    self.close(token, now);
                }
            }
            Some(_) => {}
        }
    }

    /// Whether a shutdown has begun.
    fn shutting_down(&self) -> bool {
        self.exit_by.is_some()
    }

    /// Deregisters a closed connection, frees its slot, and resumes accepting if we had paused.
    fn close(&mut self, token: Token, now: Instant) {
        if let Some(connection) = self.connections.remove(token) {
            self.admission.release();
            self.admission.peer_closed(connection.peer().ip());
            if let Err(e) = self.poller.deregister(connection.stream()) {
                log::warn!("deregister failed token={:#x}: {e}", token.0);
            }
            drop(connection); // closes the socket
        }
        if !self.admission.full() {
            self.resume_accepting(now);
        }
    }

    /// Accepts until the queue is empty (`EAGAIN`), the cap is reached, descriptors run out,
    /// or [`ACCEPTS_PER_EVENT`] connections were taken: a flood of new clients must not keep
    /// the loop from serving the ones it has (the level-triggered listener reports the rest
    /// on the next pass).
    fn accept_all(&mut self, now: Instant) {
        for _ in 0..ACCEPTS_PER_EVENT {
            // A slot is reserved before the accept, so that workers accepting at the same
            // moment can never take more slots than the cap between them.
            if !self.admission.reserve() && (self.make_room(now) == 0 || !self.admission.reserve())
            {
                // Another worker's close does not wake this one: look again on a timer.
                let retry_at = self.admission.shared.then(|| now + ACCEPT_RETRY_DELAY);
                self.pause_accepting("connection cap reached", retry_at);
                return;
            }
            let Some(listener) = self.listening.active() else {
                self.admission.release();
                return;
            };
            let accepted = sys::accept4(listener);
            if accepted.is_err() {
                self.admission.release(); // nothing took the slot
            }
            match accepted {
                Ok((stream, peer)) => self.add_connection(stream, peer, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // The client gave up between connecting and our accept, or a signal arrived.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                // Out of descriptors: idle connections give theirs back, else wait.
                Err(e) if is_out_of_descriptors(&e) && self.make_room(now) > 0 => {}
                Err(e) => {
                    let why = format!("accept failed: {e}");
                    self.pause_accepting(&why, Some(now + ACCEPT_RETRY_DELAY));
                    return;
                }
            }
        }
    }

    /// Puts an accepted socket in the slab and registers it for reading.
    fn add_connection(&mut self, stream: TcpStream, peer: SocketAddr, now: Instant) {
        if !self.admission.admit(peer.ip()) {
            self.admission.release();
            log::warn!("refused peer={peer}: --max-connections-per-ip reached");
            // Best effort: the client has not spoken yet, but may read an early answer.
            let _ = sys::send(&stream, TOO_MANY_FROM_PEER, false);
            return; // dropping the stream closes it
        }
        let id = self.next_connection_id;
        self.next_connection_id += self.id_step;
        let mut connection = Connection::new(id, stream, peer, now, &self.pass.site.config);
        log::debug!("conn={id} accepted peer={peer}");
        // Eager progress: a client usually sends its request right after connecting, so try
        // it now. A short request that asks to close is then served and closed without ever
        // entering the epoll set; if nothing has arrived yet, the read just says WouldBlock.
        // This connection (and its request) may be newer than this pass's wait, and so newer
        // than a file change the wait has not reported: look for one first.
        let mut cache = self.pass.site.cache.borrow_mut();
        if !cache.is_empty() {
            cache.on_change();
        }
        drop(cache);
        let ctx = self.pass.context(now, self.shutting_down());
        connection.on_readable(&ctx, &mut self.read_buffer);
        let Some(interest) = connection.interest() else {
            self.admission.release();
            self.admission.peer_closed(peer.ip());
            return; // served (or refused) and closed already; dropping it closes the socket
        };
        let token = self.connections.insert(connection);
        let connection = self
            .connections
            .get_mut(token)
            .expect("invariant: just inserted");
        match self.poller.register(connection.stream(), token, interest) {
            Ok(()) => log::trace!(
                "conn={id} registered token={:#x} interest={interest:?}",
                token.0
            ),
            Err(e) => {
                log::warn!("conn={id} register failed: {e}");
                self.connections.remove(token);
                self.admission.release();
                self.admission.peer_closed(peer.ip());
            }
        }
    }

    /// Stops watching the listener (see the module docs for why this prevents a spin).
    fn pause_accepting(&mut self, why: &str, retry_at: Option<Instant>) {
        let connections = self.connections.len();
        self.listening
            .pause(&self.poller, why, retry_at, connections);
    }

    /// Watches the listener again, if it was paused.
    fn resume_accepting(&mut self, now: Instant) {
        let connections = self.connections.len();
        let retry_at = now + ACCEPT_RETRY_DELAY;
        self.listening
            .resume(&self.poller, LISTENER, connections, retry_at);
    }

    /// Visits every connection whose deadline passed, and retries a paused accept.
    fn sweep_deadlines(&mut self, now: Instant) {
        if self.listening.retry_due(now) {
            self.resume_accepting(now);
        }
        let ctx = self.pass.context(now, self.shutting_down());
        let mut expired = Vec::new();
        for (token, connection) in self.connections.iter_mut() {
            if now >= connection.deadline() {
                let before = connection.interest();
                connection.on_deadline(&ctx);
                expired.push((token, before));
            }
        }
        for (token, before) in expired {
            self.after_handler(token, before, now);
        }
    }

    /// Reads the pending orders; SIGINT or SIGTERM (or the first worker passing one on)
    /// begins a shutdown, a second one ends it.
    fn on_control(&mut self, now: Instant) {
        loop {
            match self.control.next() {
                Ok(Some(Received::Signal(name))) if self.shutting_down() => {
                    log::warn!("received {name} again; exiting now");
                    self.control.pass_on(Order::ExitNow);
                    self.exit_by = Some(now);
                }
                Ok(Some(Received::Signal(name))) => {
                    log::info!("received {name}; finishing responses in flight, then exiting");
                    self.control.pass_on(Order::ShutDown);
                    self.begin_shutdown(now);
                }
                Ok(Some(Received::Order(Order::ShutDown))) if !self.shutting_down() => {
                    log::info!("told to shut down; finishing responses in flight, then exiting");
                    self.begin_shutdown(now);
                }
                Ok(Some(Received::Order(Order::ShutDown))) => {}
                Ok(Some(Received::Order(Order::ExitNow) | Received::FirstWorkerGone)) => {
                    self.exit_by = Some(now);
                    return; // the socket may stay readable (EOF); we exit this pass
                }
                Ok(None) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("reading the control descriptor failed: {e}");
                    return;
                }
            }
        }
    }

    /// Closes the listener and idle connections; the rest finish their current request.
    fn begin_shutdown(&mut self, now: Instant) {
        self.listening.close(&self.poller);
        self.exit_by = Some(now + SHUTDOWN_GRACE);
        let ctx = self.pass.context(now, true);
        let mut idle = Vec::new();
        for (token, connection) in self.connections.iter_mut() {
            let before = connection.interest();
            connection.begin_shutdown(&ctx);
            idle.push((token, before));
        }
        for (token, before) in idle {
            self.after_handler(token, before, now);
        }
    }

    /// Whether a shutdown has finished: every connection is done, or the grace period is over.
    fn shutdown_complete(&self, now: Instant) -> bool {
        match self.exit_by {
            None => false,
            Some(_) if self.connections.is_empty() => true,
            Some(deadline) if now >= deadline => {
                log::warn!(
                    "shutdown grace over; dropping connections={}",
                    self.connections.len()
                );
                true
            }
            Some(_) => false,
        }
    }
}

/// The answer to a client address over its connection cap (sent before its request).
const TOO_MANY_FROM_PEER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\nConnection: close\r\n\r\n";

/// Whether `accept` failed for want of descriptors (ours: EMFILE, or the system's: ENFILE).
fn is_out_of_descriptors(error: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        error.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE)
    )
}
