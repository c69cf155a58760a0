//! epollo: a small static web server on one hand-rolled, single-threaded epoll reactor.
//!
//! Start with `ARCHITECTURE.md` at the top of the repository: the bird's-eye view, the code
//! map folder by folder, the rules the code keeps (only `connection/mod.rs` changes a
//! connection's state; `http/` does no I/O; `unsafe` lives only in `sys/`), and the walk of
//! one GET through six files, which a test keeps true. Before that, `examples/minimal_loop.rs`
//! is the loop with nothing else: step 0.
//!
//! The modules, from the bottom up: [`sys`] (the system calls, and the only `unsafe`),
//! [`reactor`] (the loop), [`connection`] (one client's state machine), [`http`] (pure HTTP),
//! [`route`] (who answers), [`site`] (the served folder), [`live`] (live reload), [`study`]
//! (the instruments: `--trace`, the statistics), [`logs`] (the access log), [`config`] and
//! [`limits`] (flags, limits and defaults), [`startup`] (the startup lines), [`util`].
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]
#![warn(clippy::missing_safety_doc)]

pub mod config;
pub mod connection;
pub mod http;
pub mod lab;
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
    if let Some(bug) = config.faults.lab_bug {
        lab::switch_on(bug);
        // Loud, and whatever the log level: this server is broken on purpose.
        eprintln!(
            "epollo: WARNING: --lab-bug {}: a classic event-loop bug is switched on on purpose, \
             for the labs (www/docs/labs/); never serve with it",
            bug.name()
        );
    }
    let shown_root = config.root.display().to_string();
    let open = config.listen.open;
    reactor::workers::run(config, |addr| startup::announce(&shown_root, addr, open))
}
