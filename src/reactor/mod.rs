//! `Server`: the reactor. It owns the epoll set, the listener, the control descriptor, the
//! slab of connections and the ready list, and runs the loop. Its parts: `registry.rs` (every
//! `epoll_ctl` and `epoll_wait`, counted and traced), `accepting.rs` (new connections),
//! `control.rs` (signals and shutdown), `listening.rs` (the listener's states), `slab.rs`
//! (connections addressed by token), `admission.rs` (the caps), `signals.rs` (signals as an
//! fd), `workers.rs` (`--workers N`).
//!
//! Where this sits in the loop: this *is* the loop. One pass:
//! 1. wait for events, with a timeout no later than the next deadline sweep;
//! 2. take `now` once, for the whole pass (the next wait's timeout is computed from it too);
//! 3. dispatch each event by token, in this order: the file cache's inotify descriptor (a
//!    file saved before a request must not be answered from the old copy), then the control
//!    descriptor (signals, or the first worker's orders: a request that came after an order
//!    is not served before it), then the rest: the listener accepts, anything else is a
//!    connection found in the slab (a stale token is ignored);
//! 4. after each connection handler, exactly one of: it closed (free the slot), its interest
//!    changed (reregister; edge-triggered: list it as ready if it stopped early), or nothing
//!    changed;
//! 5. run the ready list (edge-triggered only) and send pending `--live` events;
//! 6. at most once per [`SWEEP_INTERVAL`], act on connections whose deadline passed; write
//!    the access log's lines.
//!
//! # Design notes
//! **Accepting under pressure.** The listener is level-triggered like everything else, so a
//! listener left registered but not accepted from (we are at the connection cap, or `accept`
//! fails with EMFILE) would make `epoll_wait` return at once, forever: a 100% CPU spin. So at
//! the cap, or on EMFILE/ENFILE, we *deregister* the listener; new clients wait in the kernel's
//! backlog. We register it again when a connection closes, or after [`ACCEPT_RETRY_DELAY`](crate::limits::ACCEPT_RETRY_DELAY)
//! (another process may be the one holding the descriptors). `Listening` (in `listening.rs`)
//! keeps the three states apart, each owning what it needs; darkhttpd's `accepting` flag does
//! the same job.
//!
//! **Two ways to be told** (`--epoll lt|et`). Level-triggered (the default), a connection
//! is registered for what its state waits on, and reregistered when that changes; epoll
//! keeps reporting a socket while it is ready, so a handler may stop after one bounded step
//! (one read, one `sendfile` chunk) and be called again next pass. Edge-triggered, a client
//! socket is registered once for both directions and never changed; epoll reports only
//! changes, so a connection that stopped before `EAGAIN` would never hear of its socket
//! again. Such a connection goes on the **ready list** instead, and the loop runs the list
//! after each batch of events, one bounded step per connection per pass, with a zero wait
//! while the list is not empty: the same fairness, kept by us rather than by epoll.
//!
//! **Deadlines by sweep.** Each connection has one deadline. Rather than a timer wheel or a
//! heap, the loop visits every connection a few times a second; that is O(n) but trivially
//! cheap next to the syscalls, and a learner can see the whole mechanism in one function.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

mod accepting;
mod admission;
mod control;
mod listening;
mod live;
mod memory;
pub mod registry;
pub mod signals;
pub mod slab;
mod tokens;
pub mod workers;

use crate::config::Config;
use crate::connection::{BufferPool, Connection, Context};
use crate::lab::{self, LabBug};
use crate::limits::{EVENTS_PER_WAIT, LISTEN_BACKLOG, READ_BUFFER_BYTES, SWEEP_INTERVAL};
use crate::live::LiveReload;
use crate::live::burst::Burst;
use crate::live::stream::StreamSlots;
use crate::live::watch::LiveWatches;
use crate::logs::AccessLog;
use crate::site::watcher::mask_names;
use crate::site::{Root, Site};
use crate::study::Study;
use crate::study::narrator;
use crate::study::stats::Count;
use crate::sys::epoll::Trigger;
use crate::sys::{self, epoll::Event, epoll::Events, epoll::Interest, epoll::Token};
use crate::util::date::DateHeader;
use crate::{trace_conn, trace_loop};
use admission::{Admission, Slot};
use listening::Listening;
use registry::Registry;
use slab::Slab;
pub use tokens::TokenName;
use tokens::{CONTROL, Source, WATCHES, listener_token};
use workers::{Control, Worker};

/// A failed bind or listen, said so that the user knows what to do.
fn listen_error(addr: SocketAddr, error: io::Error) -> io::Error {
    let port = addr.port();
    let hint = match error.kind() {
        io::ErrorKind::AddrInUse => format!(
            ": port {port} is in use (another server?); choose another with --port N, or --port 0 for any free one"
        ),
        io::ErrorKind::PermissionDenied if port < 1024 => {
            ": ports below 1024 need privileges; use a higher port (--port 8080), or systemd socket activation (contrib/epollo.socket)".to_string()
        }
        io::ErrorKind::AddrNotAvailable => {
            ": that address is not on this machine (see --bind)".to_string()
        }
        _ => format!(": {error}"),
    };
    io::Error::new(error.kind(), format!("cannot listen on {addr}{hint}"))
}

/// Gives the listeners `--congestion`'s congestion control, if given, and says which one
/// their connections get.
///
/// # Errors
/// A name the kernel does not offer (or, without `CAP_NET_ADMIN`, does not allow).
fn congestion(config: &Config, listeners: &[std::net::TcpListener]) -> io::Result<String> {
    if let Some(name) = &config.listen.congestion {
        for listener in listeners {
            sys::set_congestion(listener, name).map_err(|e| {
                let offered = std::fs::read_to_string(AVAILABLE_CONGESTION).unwrap_or_default();
                let hint = match e.kind() {
                    io::ErrorKind::NotFound => format!("the kernel offers: {}", offered.trim()),
                    io::ErrorKind::PermissionDenied => NOT_ALLOWED_CONGESTION.to_string(),
                    _ => e.to_string(),
                };
                io::Error::new(e.kind(), format!("--congestion {name}: {hint}"))
            })?;
        }
    }
    // Asking cannot fail on a TCP listener; if it did, the step for unpaced connections is
    // the safe guess (it only costs CPU under BBR).
    Ok(sys::congestion(&listeners[0]).unwrap_or_else(|e| {
        log::warn!("cannot tell the listener's congestion control: {e}");
        "unknown".to_string()
    }))
}

/// Where the kernel lists the congestion controls it has.
const AVAILABLE_CONGESTION: &str = "/proc/sys/net/ipv4/tcp_available_congestion_control";

/// Why the kernel refused a congestion control it has (`EPERM`).
const NOT_ALLOWED_CONGESTION: &str =
    "it is not in net.ipv4.tcp_allowed_congestion_control, and only root may use others";

/// What handlers read but never change during a pass.
struct Pass {
    /// The configuration.
    config: Config,
    /// The served folder.
    site: Site,
    /// The `Date` header, reformatted once per second.
    date: DateHeader,
    /// The wall-clock time of this pass.
    wall_clock: SystemTime,
    /// Buffers for busy connections, shared by all of them.
    buffers: RefCell<BufferPool>,
    /// Counters and trace.
    study: Rc<Study>,
    /// Where answered requests are logged.
    access_log: AccessLog,
    /// `--live`: the event streams open, and their bounds.
    streams: StreamSlots,
    /// Most bytes of a long file body one `sendfile` offers.
    sendfile_step: usize,
}

impl Pass {
    /// The handlers' view of this pass.
    fn context(&self, now: Instant, shutting_down: bool) -> Context<'_> {
        Context {
            now,
            wall_clock: self.wall_clock,
            date: self.date.as_str(),
            config: &self.config,
            site: &self.site,
            shutting_down,
            buffers: &self.buffers,
            study: &self.study,
            access_log: &self.access_log,
            streams: &self.streams,
            sendfile_step: self.sendfile_step,
        }
    }

    /// The file cache's hits and misses, for the statistics.
    fn cache_counts(&self) -> (u64, u64) {
        self.site.cache.borrow().counts()
    }
}

/// The reactor.
pub struct Server {
    /// The epoll instance everything is registered in, with its counters and trace.
    registry: Registry,
    /// The listening sockets (one, or each passed by systemd) and whether we accept from them.
    listeners: Vec<Listening>,
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
    /// Edge-triggered only: what stopped before `EAGAIN` and must be run again (see the
    /// module docs). Connections carry a `queued` mark so that each is listed once.
    ready: VecDeque<Token>,
    /// Whether each listener is on the ready list.
    listener_queued: Vec<bool>,
    /// `epoll_wait`'s `maxevents` (`--max-events`).
    max_events: usize,
    /// `--live`: changes waiting to be announced to the open event streams.
    live: Option<LiveReload>,
    /// Connections that read part of a request in this pass, with their interest before
    /// the read: answered together at the end of the pass (see `serve_received`).
    received: Vec<(Token, Option<Interest>)>,
    /// Connections accepted in this pass, their first read done: answered, then put in the
    /// slab and the epoll set, at the end of the pass (see `serve_received`).
    fresh: Vec<(Connection<TcpStream>, Slot)>,
    /// When to give memory back after a burst of connections.
    memory: memory::MemoryKeeper,
}

impl Server {
    /// Opens the root, binds this worker's listener and registers the listener, the control
    /// descriptor and the file cache's inotify descriptor.
    ///
    /// # Errors
    /// An unusable root, an address that cannot be bound, or a failing epoll setup; each
    /// message names what failed.
    fn bind(config: Config, worker: Worker) -> io::Result<Server> {
        let root = Root::open(&config.root, config.site.follow_symlinks)?;
        let listeners = if worker.inherited.is_empty() {
            let (reuse_port, defer) = (worker.count > 1, config.listen.defer_accept_secs);
            let listener = sys::listen(config.listen.addr, LISTEN_BACKLOG, reuse_port, defer)
                .map_err(|e| listen_error(config.listen.addr, e))?;
            vec![listener]
        } else {
            worker.inherited
        };
        let local_addr = listeners[0].local_addr()?;
        let congestion = congestion(&config, &listeners)?;
        let study = Rc::new(Study::new(
            &config,
            worker.index,
            worker.count,
            worker.board,
            worker.start,
        ));
        narrator::hear_file_calls(&study);
        let trigger = config.listen.trigger;
        let registry = Registry::new(Rc::clone(&study), trigger)?;
        for (index, listener) in listeners.iter().enumerate() {
            let token = listener_token(index);
            registry.add(listener, token, Interest::Readable, trigger, None)?;
        }
        // The control and inotify descriptors are drained whole (or on purpose not: see
        // `FileCache::on_change`) and stay level-triggered in both modes.
        let level = Trigger::Level;
        registry.add(&worker.control, CONTROL, Interest::Readable, level, None)?;
        let max_events = config.faults.max_events;
        let access_log = AccessLog::open(
            config.logs.access_log.clone(),
            config.logs.format,
            config.logs.trusted_proxies.clone(),
            config.logs.real_ip_header,
        )?;
        let site = Site::new(root, config.site.clone(), &config.cache);
        let live = config.site.live.then(|| {
            let mut watches = LiveWatches::new(config.live.ignore.clone());
            watches.watch_tree(&site.watcher, site.root.path());
            LiveReload {
                watches,
                burst: Burst::new(config.live.wait),
            }
        });
        if let Some(watches) = site.watcher.fd() {
            registry.add(&watches, WATCHES, Interest::Readable, level, None)?;
        }
        let admission = worker.admission;
        log::info!(
            "serving root={} addr={local_addr} worker={}/{} max_connections={} max_per_ip={} \
             congestion={congestion}",
            site.root.path().display(),
            worker.index + 1,
            worker.count,
            admission.max_connections,
            admission.max_per_ip
        );
        Ok(Server {
            registry,
            listener_queued: vec![false; listeners.len()],
            listeners: listeners.into_iter().map(Listening::Active).collect(),
            local_addr,
            control: worker.control,
            connections: Slab::default(),
            pass: Pass {
                config,
                site,
                date: DateHeader::new(SystemTime::now()),
                wall_clock: SystemTime::now(),
                buffers: RefCell::default(),
                study,
                access_log,
                streams: worker.streams,
                sendfile_step: crate::limits::sendfile_step(&congestion),
            },
            admission,
            next_connection_id: worker.index as u64 + 1,
            id_step: worker.count as u64,
            next_sweep: Instant::now(),
            exit_by: None,
            read_buffer: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            ready: VecDeque::new(),
            max_events,
            live,
            received: Vec::new(),
            fresh: Vec::new(),
            memory: memory::MemoryKeeper::default(),
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
            now = match self.registry.wait(&mut events, timeout, self.max_events) {
                Ok(woke) => woke,
                // A signal we do not handle through the signalfd (say SIGSTOP and SIGCONT from
                // a debugger) interrupted the wait: nothing happened, wait again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.pass.site.listings.new_pass();
            self.pass.wall_clock = SystemTime::now();
            self.pass.date.update(self.pass.wall_clock);
            // File changes first: a file saved before a request arrived must not be answered
            // from the cache's old copy. (If the wait filled every slot, the change may not
            // be among them: look anyway.)
            let listeners = self.listeners.len();
            let source = |event: Event| Source::of(event.token, listeners);
            let full = events.len() >= self.max_events;
            if full || events.iter().any(|event| source(event) == Source::Watches) {
                self.on_file_change(now);
            }
            // Orders next (a signal, or the first worker's word): a request that arrived after
            // an order, such as "reopen the log", must not be served before it.
            if events.iter().any(|event| source(event) == Source::Control) {
                self.on_control_event(events.iter().find(|e| source(*e) == Source::Control), now);
            }
            for event in events.iter() {
                match source(event) {
                    Source::Listener(index) => self.on_listener_event(index, &event, now),
                    Source::Connection(token) => self.handle_connection(token, now, Some(event)),
                    Source::Watches | Source::Control => {} // done above
                }
            }
            self.run_ready_list(now);
            self.serve_received(now);
            self.send_live_events(now);
            if now >= self.next_sweep {
                self.sweep_deadlines(now);
                self.next_sweep = now + SWEEP_INTERVAL;
            }
            if self.memory.due(now, self.connections.len()) {
                self.give_memory_back();
            }
            self.pass.access_log.flush();
            let study = &self.pass.study;
            study.publish(self.pass.cache_counts(), now, false);
            study.counters.handled(now.elapsed());
            if self.shutdown_complete(now) {
                log::info!("shutdown complete; exiting");
                study.publish(self.pass.cache_counts(), now, true);
                return Ok(());
            }
        }
    }

    /// Reads the inotify events, traces each one, and hands them to their two subscribers:
    /// the file cache (which empties if there were any) and `--live`.
    fn on_file_change(&mut self, now: Instant) {
        let site = &self.pass.site;
        let trace = &self.pass.study.trace;
        let events = site.watcher.read(|read| {
            let fd = site.watcher.fd().map_or(-1, |fd| fd.as_raw_fd());
            match read {
                Ok(batch) => {
                    trace_loop!(trace, "read fd={fd} token=inotify events={}", batch.len())
                }
                Err(nix::errno::Errno::EAGAIN) => {
                    trace_loop!(trace, "read fd={fd} token=inotify EAGAIN")
                }
                Err(errno) => trace_loop!(trace, "read fd={fd} token=inotify error={errno}"),
            }
        });
        for event in &events {
            trace_loop!(
                self.pass.study.trace,
                "inotify wd={} mask={} name={}",
                event.wd.as_raw(),
                mask_names(event.mask),
                event.name.as_deref().unwrap_or_default().to_string_lossy()
            );
        }
        narrator::serving(0); // a flush closes the cache's files for no connection
        site.cache.borrow_mut().on_change(events.len());
        if let Some(live) = &mut self.live {
            for event in &events {
                live.watches.note(event);
            }
        }
        self.collect_live_changes(now);
    }

    /// How long `epoll_wait` may sleep: for ever when there is nothing to time out, otherwise
    /// until the next sweep.
    fn wait_timeout(&self, now: Instant) -> Option<Duration> {
        let idle = self.connections.is_empty()
            && self.exit_by.is_none()
            && !self.listeners.iter().any(Listening::retry_pending);
        let live_due = self.live.as_ref().and_then(|live| live.burst.due);
        // Idle, only these wake us: `--live` events to send, or memory to give back.
        let idle_due = [live_due, self.memory.deadline()]
            .into_iter()
            .flatten()
            .min();
        let until = |at: Instant| at.saturating_duration_since(now);
        if !self.ready.is_empty() {
            Some(Duration::ZERO) // the ready list has work: only look for news
        } else if idle {
            idle_due.map(until)
        } else {
            let sweep = until(self.next_sweep);
            Some(live_due.map_or(sweep, |due| sweep.min(until(due))))
        }
    }

    /// A listener is readable: trace the event, then accept.
    fn on_listener_event(&mut self, index: usize, event: &Event, now: Instant) {
        if let Some(listener) = self.listeners[index].active() {
            let fd = listener.as_raw_fd();
            let token = TokenName(event.token);
            trace_loop!(
                self.pass.study.trace,
                "event fd={fd} token={token} {}",
                event.flags
            );
        }
        self.accept_all(now, index);
    }

    /// The control descriptor is readable: trace the event, then read the orders.
    fn on_control_event(&mut self, event: Option<Event>, now: Instant) {
        if let Some(event) = event {
            let fd = self.control.as_fd().as_raw_fd();
            trace_loop!(
                self.pass.study.trace,
                "event fd={fd} token=control {}",
                event.flags
            );
        }
        self.on_control(now);
    }

    /// Calls the connection's handler for the readiness it waits on, after an event (or,
    /// edge-triggered, from the ready list: `event` is `None`). The event's flags are only a
    /// hint: the handler tries the I/O and the result decides, so a hang-up or error shows up
    /// as EOF or an error from `read`/`write`.
    fn handle_connection(&mut self, token: Token, now: Instant, event: Option<Event>) {
        let ctx = self.pass.context(now, self.shutting_down());
        let Some(connection) = self.connections.get_mut(token) else {
            if let Some(event) = event {
                trace_loop!(
                    ctx.study.trace,
                    "event token={} stale {}",
                    TokenName(token),
                    event.flags
                );
            }
            return;
        };
        let id = connection.id();
        let fd = connection.stream().as_raw_fd();
        match event {
            Some(event) => {
                trace_conn!(
                    ctx.study.trace,
                    id,
                    "event fd={fd} token={} conn={id} {}",
                    TokenName(token),
                    event.flags
                );
                if lab::on(LabBug::FlagEquality) {
                    // `if event == EPOLLIN`: a hang-up (`IN|RDHUP`) matches nothing.
                    let exactly = |bits: u32| event.flags.0 == bits;
                    let (readable, writable) = (
                        exactly(libc::EPOLLIN as u32),
                        exactly(libc::EPOLLOUT as u32),
                    );
                    connection.heard(readable, writable, false);
                } else {
                    connection.heard(event.readable, event.writable, event.hangup || event.error);
                }
            }
            None => {
                ctx.study.counters.bump(Count::ReadyListRuns);
                trace_conn!(
                    ctx.study.trace,
                    id,
                    "ready fd={fd} token={} conn={id}",
                    TokenName(token)
                );
            }
        }
        if connection.awaits_answer() {
            return; // read already in this pass (event and ready list): answered at its end
        }
        let before = connection.interest();
        if connection.may_progress() {
            match before {
                // Answered after the pass's reads (see `serve_received`).
                Some(Interest::Readable) if connection.receive(&ctx, &mut self.read_buffer) => {
                    return self.received.push((token, before));
                }
                Some(Interest::Readable) => {}
                Some(Interest::Writable) => connection.on_writable(&ctx),
                _ => {}
            }
        }
        self.after_handler(token, before, now);
    }

    /// Answers every request read in this pass, after one look at the file cache's change
    /// events. A request read now may have been sent after a file changed, even if the
    /// event that woke us for it came before the change (a `recv` takes whatever has arrived
    /// by then); reading the events after all the reads and before any answer means that a
    /// change made before a request was sent is always seen by it. One `read` of the inotify
    /// descriptor per pass, and none while the cache is empty (nothing in it can be old).
    fn serve_received(&mut self, now: Instant) {
        if self.received.is_empty() && self.fresh.is_empty() {
            return;
        }
        if !self.pass.site.cache.borrow().is_empty() {
            self.on_file_change(now);
        }
        let mut received = std::mem::take(&mut self.received);
        let ctx = self.pass.context(now, self.shutting_down());
        for &(token, _) in &received {
            if let Some(connection) = self.connections.get_mut(token) {
                connection.serve_received(&ctx);
            }
        }
        for (token, before) in received.drain(..) {
            self.after_handler(token, before, now);
        }
        self.received = received; // keeps its capacity for the next pass
        let mut fresh = std::mem::take(&mut self.fresh);
        for (connection, slot) in fresh.drain(..) {
            self.settle(connection, slot, now);
        }
        self.fresh = fresh;
    }

    /// Applies the outcome of a handler: close and free; or, level-triggered, reregister if
    /// the interest changed; or, edge-triggered, put it on the ready list if it stopped
    /// before `EAGAIN`.
    fn after_handler(&mut self, token: Token, before: Option<Interest>, now: Instant) {
        let Some(connection) = self.connections.get_mut(token) else {
            return;
        };
        let Some(interest) = connection.interest() else {
            return self.close(token, now);
        };
        match self.registry.trigger {
            Trigger::Level if Some(interest) != before => {
                let id = Some(connection.id());
                if let Err(e) = self
                    .registry
                    .modify(connection.stream(), token, interest, id)
                {
                    log::warn!("reregister failed token={:#x}: {e}", token.0);
                    self.close(token, now);
                }
            }
            Trigger::Level => {}
            Trigger::Edge => {
                if connection.may_progress()
                    && !connection.queued()
                    && !lab::on(LabBug::NoReadyList)
                {
                    connection.set_queued(true);
                    self.ready.push_back(token);
                }
            }
        }
    }

    /// Edge-triggered: runs each connection that was on the ready list when this pass began
    /// once (one bounded step); whoever still has work goes to the back, for the next pass.
    fn run_ready_list(&mut self, now: Instant) {
        for _ in 0..self.ready.len() {
            let Some(token) = self.ready.pop_front() else {
                return;
            };
            if let Source::Listener(index) = Source::of(token, self.listeners.len()) {
                self.listener_queued[index] = false;
                self.pass.study.counters.bump(Count::ReadyListRuns);
                if let Some(listener) = self.listeners[index].active() {
                    let fd = listener.as_raw_fd();
                    let token = TokenName(token);
                    trace_loop!(self.pass.study.trace, "ready fd={fd} token={token}");
                }
                self.accept_all(now, index);
                continue;
            }
            let Some(connection) = self.connections.get_mut(token) else {
                continue; // closed since it was listed
            };
            connection.set_queued(false);
            self.handle_connection(token, now, None);
        }
    }

    /// Whether a shutdown has begun.
    fn shutting_down(&self) -> bool {
        self.exit_by.is_some()
    }

    /// Deregisters a closed connection, frees its slot, and resumes accepting if we had paused.
    fn close(&mut self, token: Token, now: Instant) {
        if let Some(connection) = self.connections.remove(token) {
            narrator::serving(connection.id()); // its open files close with it
            self.admission.closed(connection.peer().ip());
            if connection.is_streaming() {
                self.pass.streams.closed(connection.peer().ip());
            }
            // A connection closed from outside its state machine (to make room) leaves its
            // state's count here; one that closed itself already left it.
            let counters = &self.pass.study.counters;
            counters.moved(connection.gauge(), None);
            let id = connection.id();
            if lab::on(LabBug::CloseBeforeDeregister) {
                let fd = connection.stream().as_raw_fd();
                self.close_socket(connection.into_stream(), Some(id));
                // The number is closed: the kernel took it out of the set already.
                if let Err(e) = self.registry.delete_closed(fd, token, id) {
                    log::warn!("deregister failed token={:#x}: {e}", token.0);
                }
            } else {
                if let Err(e) = self.registry.delete(connection.stream(), token, Some(id)) {
                    log::warn!("deregister failed token={:#x}: {e}", token.0);
                }
                self.close_socket(connection.into_stream(), Some(id));
            }
        }
        if !self.admission.full() {
            self.resume_accepting(now);
        }
    }

    /// Closes a client socket, and traces the `close` with its result (`conn`: the
    /// connection's number, if it got one).
    fn close_socket(&self, stream: TcpStream, conn: Option<u64>) {
        let fd = stream.as_raw_fd();
        let result = nix::unistd::close(stream);
        let failed = match result {
            Ok(()) => String::new(),
            Err(errno) => format!(" error={errno}"),
        };
        match conn {
            Some(id) => trace_conn!(self.pass.study.trace, id, "close fd={fd} conn={id}{failed}"),
            None => trace_loop!(self.pass.study.trace, "close fd={fd}{failed}"),
        }
    }

    /// Visits every connection whose deadline passed, and retries a paused accept.
    fn sweep_deadlines(&mut self, now: Instant) {
        self.reconsider_room(now);
        if self
            .listeners
            .iter()
            .any(|listening| listening.retry_due(now))
        {
            self.resume_accepting(now);
        }
        let ctx = self.pass.context(now, self.shutting_down());
        let mut expired = Vec::new();
        for (token, connection) in self.connections.iter_mut() {
            if now >= connection.deadline() {
                let before = connection.interest();
                if let Some(kind) = connection.deadline_kind() {
                    ctx.study.counters.bump(kind.count());
                    let id = connection.id();
                    trace_conn!(
                        ctx.study.trace,
                        id,
                        "deadline conn={id} kind={}",
                        kind.name()
                    );
                }
                connection.on_deadline(&ctx);
                expired.push((token, before));
            }
        }
        for (token, before) in expired {
            self.after_handler(token, before, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_errors_say_what_to_do() {
        let addr = |port| SocketAddr::from(([0, 0, 0, 0], port));
        let in_use = listen_error(addr(8080), io::ErrorKind::AddrInUse.into()).to_string();
        assert!(
            in_use.contains("port 8080 is in use") && in_use.contains("--port 0"),
            "{in_use}"
        );
        let low = listen_error(addr(80), io::ErrorKind::PermissionDenied.into()).to_string();
        assert!(
            low.contains("below 1024") && low.contains("socket activation"),
            "{low}"
        );
        let high = listen_error(addr(8080), io::ErrorKind::PermissionDenied.into()).to_string();
        assert!(!high.contains("below 1024"), "{high}");
    }
}
