//! `--workers N`: N copies of the reactor, one per thread, sharing nothing on the hot path.
//!
//! Where this sits in the loop: around it. [`run`] raises the open-file limit, works out the
//! connection caps, binds the first worker on the calling thread (it owns the signalfd), then
//! starts the others, each with its own epoll set, its own `SO_REUSEPORT` listener on the same
//! address, its own slab, site, file cache and buffer pool. With one worker (the default)
//! nothing of this shows: one thread, one loop.
//!
//! # Design notes
//! - **Threads, not processes.** Workers share nothing that a request touches, so either
//!   would scale the same; threads keep one pid (so signals, `/proc` and the tests see one
//!   server), let the caps be one shared count, and need no supervisor.
//! - **The kernel spreads connections**: with `SO_REUSEPORT`, each worker's listener gets a
//!   share of new connections by a hash of the 4-tuple. A connection stays on its worker.
//! - **Shared, but not per request**: the connection count (an atomic) and the per-address
//!   counts (a mutex) change once per accepted and closed connection (`Admission`).
//! - **Shutdown**: SIGINT/SIGTERM are blocked before any worker starts, so they reach the
//!   first worker's signalfd only; it passes each order on to the others over a socket pair,
//!   a second kind of readiness source in their epoll sets.
//! - **What limits it**: on a 16- or 64-core machine each worker is a core's worth of one
//!   loop; the kernel's accept hashing can leave workers unevenly loaded when connections are
//!   few and long-lived, the shared counts cost one atomic and one lock per connection, and
//!   every worker keeps its own file cache and inotify instance (N copies of what is hot).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::Instant;

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use super::Server;
use super::admission::Admission;
use super::signals::{Asked, Signals};
use crate::config::Config;
use crate::limits::{
    FALLBACK_FD_LIMIT, LIVE_STREAMS_CAP_FRACTION, LIVE_STREAMS_PER_IP,
    MIN_DEFAULT_CONNECTIONS_PER_IP, RESERVED_FDS,
};
use crate::live::stream::StreamSlots;
use crate::study::stats::{self, Board};

/// What one worker is given.
pub(super) struct Worker {
    /// 0 for the first.
    pub index: usize,
    /// How many there are.
    pub count: usize,
    /// The caps and counts, shared.
    pub admission: Arc<Admission>,
    /// `--live`: the event streams' bounds and counts, shared.
    pub streams: StreamSlots,
    /// How shutdown orders reach it.
    pub control: Control,
    /// The loop statistics all workers publish to.
    pub board: Arc<Mutex<Board>>,
    /// When the server started (trace lines count from here).
    pub start: Instant,
    /// The listening sockets a service manager passed (socket activation), if any; else the
    /// worker binds its own.
    pub inherited: Vec<TcpListener>,
}

/// How shutdown orders reach a worker.
pub(super) enum Control {
    /// The first worker: SIGINT/SIGTERM, passed on to the others' sockets.
    Signals {
        /// The signalfd.
        signals: Signals,
        /// One socket per other worker.
        others: Vec<UnixStream>,
    },
    /// Another worker: the first worker's socket.
    FirstWorker(UnixStream),
}

/// What a worker's control descriptor said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Received {
    /// A signal (the first worker).
    Signal(Asked),
    /// The first worker's order (the others).
    Order(Order),
    /// The first worker is gone: exit now (nothing would tell us to any more).
    FirstWorkerGone,
}

/// An order passed from the first worker to the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Order {
    /// Finish what is in flight, then exit.
    ShutDown,
    /// Exit now.
    ExitNow,
    /// SIGHUP: reopen the access log (logrotate moved it).
    ReopenLog,
}

impl Control {
    /// The next thing the control descriptor says; `None` when there is nothing.
    ///
    /// # Errors
    /// A failed read of the descriptor (not `WouldBlock`).
    pub fn next(&mut self) -> io::Result<Option<Received>> {
        match self {
            Control::Signals { signals, .. } => Ok(signals.take()?.map(Received::Signal)),
            Control::FirstWorker(socket) => {
                let mut byte = [0u8; 1];
                match socket.read(&mut byte) {
                    Ok(0) => Ok(Some(Received::FirstWorkerGone)),
                    Ok(_) if byte[0] == Order::ExitNow as u8 => {
                        Ok(Some(Received::Order(Order::ExitNow)))
                    }
                    Ok(_) if byte[0] == Order::ReopenLog as u8 => {
                        Ok(Some(Received::Order(Order::ReopenLog)))
                    }
                    Ok(_) => Ok(Some(Received::Order(Order::ShutDown))),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// The system call that reads this descriptor, as trace lines name it.
    pub fn syscall(&self) -> &'static str {
        match self {
            Control::Signals { .. } => "read",
            Control::FirstWorker(_) => "recv",
        }
    }

    /// Tells the other workers (if this is the first) what this one does.
    pub fn pass_on(&mut self, order: Order) {
        if let Control::Signals { others, .. } = self {
            for socket in others {
                // A worker that has already exited cannot be told; that is fine.
                let _ = socket.write(&[order as u8]);
            }
        }
    }
}

impl AsFd for Control {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Control::Signals { signals, .. } => signals.as_fd(),
            Control::FirstWorker(socket) => socket.as_fd(),
        }
    }
}

/// Starts `config.listen.workers` workers, calls `announce` with the address once all of them
/// listen, and runs until they have shut down. With one worker (the default) that is one
/// `Server` on the calling thread and nothing else: threads, socket pairs and channels are
/// only for `--workers N`.
///
/// # Errors
/// Startup failures (root, bind, epoll) of any worker, or the first worker's loop failing.
pub fn run(config: Config, announce: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let passed = passed_listeners()?;
    let count = config.listen.workers.max(1);
    let (admission, cache_files) = admission_for(&config, count);
    let mut config = config;
    config.cache.files = cache_files;
    let shared = Shared::new(admission, count);
    // Blocked here, before any other thread exists, so every worker inherits the mask and
    // only the first worker's signalfd sees SIGINT and SIGTERM.
    let signals = Signals::new()?;
    if count == 1 {
        let control = Control::Signals {
            signals,
            others: Vec::new(),
        };
        let mut server = Server::bind(config, shared.worker(0, control, passed))?;
        announce(server.local_addr());
        let result = server.run();
        shared.summarise(&result);
        return result;
    }
    run_several(config, shared, signals, &passed, announce)
}

/// What all workers share: the caps and counts, the stream bounds, the statistics board.
struct Shared {
    /// How many workers there are.
    count: usize,
    /// The connection caps and counts.
    admission: Arc<Admission>,
    /// `--live`: the event streams' bounds and counts.
    streams: StreamSlots,
    /// The loop statistics all workers publish to.
    board: Arc<Mutex<Board>>,
    /// When the server started.
    start: Instant,
}

impl Shared {
    /// The shared parts for `count` workers under `admission`.
    fn new(admission: Admission, count: usize) -> Shared {
        let streams = StreamSlots::new(
            LIVE_STREAMS_PER_IP,
            admission.max_connections / LIVE_STREAMS_CAP_FRACTION,
        );
        let start = Instant::now();
        Shared {
            count,
            admission: Arc::new(admission),
            streams,
            board: Arc::new(Mutex::new(Board::new(count, start))),
            start,
        }
    }

    /// What worker `index` is given.
    fn worker(&self, index: usize, control: Control, inherited: Vec<TcpListener>) -> Worker {
        Worker {
            index,
            count: self.count,
            admission: Arc::clone(&self.admission),
            streams: self.streams.clone(),
            control,
            board: Arc::clone(&self.board),
            start: self.start,
            inherited,
        }
    }

    /// After a clean exit, logs the statistics of all workers together.
    fn summarise(&self, result: &io::Result<()>) {
        if result.is_ok()
            && let Ok(board) = self.board.lock()
        {
            log::info!("{}", stats::render_text(&board.total(), board.workers()));
        }
    }
}

/// `--workers N` with N > 1: the first worker on the calling thread (it owns the signalfd
/// and passes orders on over a socket pair per worker), the others on threads of their own.
fn run_several(
    config: Config,
    shared: Shared,
    signals: Signals,
    passed: &[TcpListener],
    announce: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    // Every worker listens on every passed socket, each with its own descriptor for it.
    let inherited =
        || -> io::Result<Vec<TcpListener>> { passed.iter().map(TcpListener::try_clone).collect() };
    let mut others = Vec::new();
    let mut theirs = Vec::new();
    for _ in 1..shared.count {
        let (ours, their) = UnixStream::pair()?;
        ours.set_nonblocking(true)?;
        their.set_nonblocking(true)?;
        others.push(ours);
        theirs.push(their);
    }
    let control = Control::Signals { signals, others };
    let mut server = Server::bind(config.clone(), shared.worker(0, control, inherited()?))?;
    let addr = server.local_addr();
    let (ready, started) = mpsc::channel();
    let mut handles = Vec::new();
    for (offset, socket) in theirs.into_iter().enumerate() {
        let control = Control::FirstWorker(socket);
        let worker = shared.worker(offset + 1, control, inherited()?);
        let mut config = config.clone();
        config.listen.addr = addr;
        let ready = ready.clone();
        handles.push(thread::spawn(move || match Server::bind(config, worker) {
            Ok(mut server) => {
                let _ = ready.send(Ok(()));
                server.run()
            }
            Err(e) => {
                let _ = ready.send(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }));
    }
    drop(ready);
    for result in started.iter().take(shared.count - 1) {
        result?; // dropping `server` closes the sockets, so started workers exit too
    }
    announce(addr);
    let result = server.run();
    if result.is_err() {
        // The others would otherwise serve on, with no one left to read SIGINT or SIGTERM.
        server.control.pass_on(Order::ExitNow);
    }
    // `server` (and its sockets to the others) lives until they have finished: a worker
    // whose socket closes takes it as "exit now", which would cut its answers in flight.
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => log::error!("a worker failed: {e}"),
            Err(_) => log::error!("a worker panicked"),
        }
    }
    shared.summarise(&result);
    result
}

/// The listening sockets passed by a service manager (systemd socket activation), if any.
/// Several sockets (several `ListenStream=` lines: IPv4 and IPv6, two ports) are all in each
/// worker's epoll set, each with a token of its own.
///
/// # Errors
/// A passed descriptor that is not a listening socket.
fn passed_listeners() -> io::Result<Vec<TcpListener>> {
    let passed = crate::sys::activation::passed_listeners()?;
    for listener in &passed {
        log::info!(
            "serving the socket passed by the service manager ({}); --bind and --port do not apply",
            listener.local_addr()?
        );
    }
    Ok(passed)
}

/// The caps for the whole server, from the flags or the open-file limit (raised first), and
/// how many files each worker's cache may keep open: the descriptors the connection cap
/// leaves (two per connection: its socket and a file it sends), so the cache can never take
/// what connections need.
fn admission_for(config: &Config, workers: usize) -> (Admission, usize) {
    let fd_limit = raise_fd_limit();
    let cache_entries = config.cache.entries.saturating_mul(workers);
    let max_connections = config
        .listen
        .max_connections
        .unwrap_or_else(|| default_max_connections(fd_limit, cache_entries));
    let max_per_ip = config
        .listen
        .max_connections_per_ip
        .unwrap_or_else(|| default_max_per_ip(max_connections));
    let left = fd_limit
        .saturating_sub(RESERVED_FDS)
        .saturating_sub(2 * max_connections as u64);
    let cache_files = usize::try_from(left)
        .unwrap_or(usize::MAX)
        .min(cache_entries)
        / workers;
    log::info!("fd_limit={fd_limit} workers={workers} cache_files={cache_files}");
    let admission = Admission::new(max_connections, max_per_ip, workers);
    (admission, cache_files)
}

/// Raises the soft open-file limit to the hard limit and returns the limit now in force.
fn raise_fd_limit() -> u64 {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                log::warn!("could not raise the open-file limit from {soft} to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            log::warn!("could not read the open-file limit: {e}");
            FALLBACK_FD_LIMIT
        }
    }
}
/// The default cap per client address: a quarter of the connection cap, so no one address
/// can take most of the slots, but at least [`MIN_DEFAULT_CONNECTIONS_PER_IP`] (a local load
/// tester's `wrk -c1000`), and never more than the cap itself.
fn default_max_per_ip(max_connections: usize) -> usize {
    (max_connections / 4)
        .max(MIN_DEFAULT_CONNECTIONS_PER_IP)
        .min(max_connections)
}

/// The default connection cap: what the open-file limit leaves after our own descriptors and
/// the file cache's (at most a quarter of the rest: only large cached files keep one open),
/// halved because a connection sending a file holds two.
fn default_max_connections(fd_limit: u64, cache_entries: usize) -> usize {
    let available = fd_limit.saturating_sub(RESERVED_FDS);
    let cache = u64::try_from(cache_entries)
        .unwrap_or(u64::MAX)
        .min(available / 4);
    let usable = (available - cache) / 2;
    usize::try_from(usable).unwrap_or(usize::MAX).max(1)
}
