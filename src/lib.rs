//! epollo: a small static web server on one hand-rolled, single-threaded epoll reactor.
//!
//! # Reading tour
//! epollo is meant to be read. Take the folders in this order:
//! 1. [`limits`]: every limit and default, each with the reason for its value; [`config`]
//!    turns flags into a `Config` through one table of flags.
//! 2. [`sys`]: the only `unsafe` code: [`sys::epoll::Poller`] wraps `epoll_create1`,
//!    `epoll_ctl` and `epoll_wait`; [`sys::accept4`] accepts a non-blocking socket.
//!    Its module docs explain why the loop is level-triggered.
//! 3. [`reactor`]: the loop. `Server::run` waits, takes `now` once, dispatches each event by
//!    token, reregisters or closes, and sweeps deadlines. Beside it: the listener's states,
//!    the slab (connections addressed by token, with generations against stale events) and
//!    the signalfd.
//! 4. [`connection`]: the per-connection state machine (`Idle` → `Reading` → `Writing` →
//!    back, or `Lingering` → `Closed`), its one deadline rule, and all socket I/O: `read`,
//!    `send`, `sendfile`.
//! 5. [`http`]: pure HTTP. `request` parses a head or refuses it; `response` holds the
//!    [`http::Reply`] value and turns it into bytes in the output batch.
//! 6. [`site`]: the served folder. `site::reply_to` decides the `Reply` for a request: `cache`
//!    answers a file it holds (inotify keeps it fresh: its descriptor is the second kind of
//!    readiness source in the epoll set), else `files` maps the target to a file under the
//!    root (with `openat2`, or the fallback resolver (`fallback_resolver`) where the kernel lacks it); then
//!    preconditions, ranges, listings (made in bounded steps by `listing_stream`), precompressed
//!    siblings and MIME types.
//! 7. [`study`]: the instruments for learners: `--trace` lines named after system calls,
//!    loop statistics (SIGUSR1, the exit summary, `--stats PATH`), and the live page.
//!    The reactor's `registry.rs` is where every `epoll_ctl` and `epoll_wait` is counted and
//!    traced; `--epoll et` switches client sockets to edge-triggered registration, with the
//!    ready list in `reactor/mod.rs` and the connection's side in `connection/readiness.rs`.
//! 8. [`logs`]: the access log (formats, trusted proxies, a buffered non-blocking writer that
//!    SIGHUP reopens); [`startup`]: the startup lines and `--open`.
//! 9. `--live` runs through several of these: `site/live.rs` watches the root on the file
//!    cache's inotify descriptor and injects the reload script, `reactor/live.rs` coalesces
//!    changes and sends events, `connection/streaming.rs` is the event stream's state.
//! 10. [`util`]: dates and URL escape sets, one copy each.
//!
//! # Follow one request
//! A browser connects. The listener's token comes out of `epoll_wait` in `Server::run`
//! (`reactor/mod.rs`), and `accept_all` calls `accept4` until `EAGAIN` and, for each new
//! socket, tries one read at once (the request usually came with the connection). Otherwise
//! the request bytes arrive later, the socket's token comes out of the next wait, and
//! `Connection::receive` (`connection/mod.rs`) reads them. Every request read in a pass is
//! answered at its end (`Server::serve_received`), after one look at the file cache's
//! change events, so none is answered from a copy older than it; a new socket with more to
//! do is then put in the slab and registered (`settle`). Answering parses with
//! `http::request::parse`. Once the head is
//! complete, `respond` asks `site::reply_to` (`site/mod.rs`) for a `Reply`; `files::resolve`
//! (`site/files.rs`) has opened the file beneath the root. `Outgoing::push`
//! (`http/response.rs`) serialises the head and copies a small body in; back in
//! `connection/mod.rs`, `write_pending` sends it at once. A small file leaves in that one
//! `send`; a large one continues with `sendfile`, one chunk per writable event. When
//! everything is sent the connection goes back to `Idle` (keep-alive) or to `Closed`, and the
//! reactor deregisters it and frees its slot. Run with `--trace` to watch every step (the
//! walkthrough in `www/docs/walkthrough/` does, next to `strace`).
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::missing_safety_doc)]

pub mod config;
pub mod connection;
pub mod http;
pub mod limits;
pub mod live;
pub mod logs;
pub mod reactor;
pub mod route;
pub mod site;
pub mod startup;
pub mod study;
pub mod sys;
pub mod util;

use std::io;

pub use config::Config;

/// Binds, prints the one stdout line tests and users read, and runs until shutdown.
///
/// # Errors
/// Startup failures (root, bind, epoll) and server-fatal loop failures; the message names
/// what failed.
pub fn run(config: Config) -> io::Result<()> {
    let shown_root = config.root.display().to_string();
    let open = config.listen.open;
    reactor::workers::run(config, |addr| startup::announce(&shown_root, addr, open))
}
