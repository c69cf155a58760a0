//! epollo: a small static web server on one hand-rolled, single-threaded epoll reactor.
//!
//! # Reading tour
//! epollo is meant to be read. Take the files in this order:
//! 1. [`limits`]: every limit and default, each with the reason for its value.
//! 2. [`sys`]: the only `unsafe` code: [`sys::epoll::Poller`] wraps `epoll_create1`,
//!    `epoll_ctl` and `epoll_wait`; [`sys::accept4`] accepts a non-blocking socket.
//!    Its module docs explain why the loop is level-triggered.
//! 3. [`server`]: the reactor. `Server::run` is the loop: wait, take `now`, dispatch each
//!    event by token, reregister or close, sweep deadlines.
//! 4. [`slab`]: connections addressed by token, with generations against stale events.
//! 5. [`connection`]: the per-connection state machine (`Reading` → `Writing` → `Reading`, or
//!    `Lingering` → `Closed`) and all socket I/O: `read`, `send`, `sendfile`. Its child modules
//!    decide the answer to a request and assemble answers into one output batch.
//! 6. [`request`], [`response`] and [`files`]: pure leaves that parse a head, format a head,
//!    and map a target to a file under the root. They never touch a socket; nor do the leaves
//!    they use: [`conditional`], [`range`], [`listing`], [`encoding`] and [`mime`].
//! 7. [`signals`] and [`config`]: SIGINT/SIGTERM as an event; flags.
//!
//! # Follow one request
//! A browser connects. The listener's token comes out of `epoll_wait`, and
//! `Server::accept_all` calls `accept4` until `EAGAIN` and, for each new socket, tries one
//! read at once (the request usually came with the connection); a socket with more to do is
//! put in the slab and registered. Otherwise the request bytes arrive later, the socket's token
//! comes out of the next wait, and `Connection::on_readable` reads them into the input buffer
//! and hands them to `request::parse`. Once the head is complete, `files::resolve` opens the
//! file beneath the root, `response::Head` formats the head, and the connection switches to `Writing` and
//! writes at once. A small file leaves in that one `send`; a large one continues with
//! `sendfile`, one chunk per writable event. When everything is sent the connection goes back
//! to `Reading` (keep-alive) or to `Closed`, and the server deregisters it and frees its slot.
//! Run with `RUST_LOG=trace` to watch every step.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::missing_safety_doc)]

pub mod conditional;
pub mod config;
pub mod connection;
pub mod encoding;
pub mod files;
pub mod limits;
pub mod listing;
pub mod mime;
pub mod range;
pub mod request;
pub mod response;
pub mod server;
pub mod signals;
pub mod slab;
pub mod sys;

use std::io::{self, Write};

pub use config::Config;

/// Binds, prints the one stdout line tests and users read, and runs until shutdown.
///
/// # Errors
/// Startup failures (root, bind, epoll) and server-fatal loop failures; the message names
/// what failed.
pub fn run(config: Config) -> io::Result<()> {
    let shown_root = config.root.display().to_string();
    let mut server = server::Server::bind(config)?;
    let mut stdout = io::stdout().lock();
    writeln!(
        stdout,
        "epollo: serving {shown_root} at http://{}/",
        server.local_addr()
    )?;
    stdout.flush()?;
    drop(stdout);
    server.run()
}
