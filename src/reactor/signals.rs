//! Shutdown signals as an ordinary readable descriptor.
//!
//! Where this sits in the loop: the signalfd is registered in the epoll set beside the
//! listener and the clients. When SIGINT or SIGTERM arrives it becomes readable, and the
//! reactor begins a graceful shutdown in the same pass as any other event.
//!
//! # Design notes
//! A signal handler runs at an arbitrary point of the loop and may only touch async-signal-safe
//! state, which is why servers classically write a byte to a "self-pipe" from the handler.
//! `signalfd(2)` does that for us: we block the signals, so they are never delivered
//! asynchronously, and read them from a descriptor instead. The mask must be set before any
//! other thread exists (we have none) so that no thread receives them the old way.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals epollo reads from its signalfd: two ask it to shut down, SIGUSR1 asks for the
/// loop statistics, SIGHUP to reopen the access log; SIGCHLD says the `--open` helper ended.
const SIGNALS: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGHUP,
    Signal::SIGCHLD,
];

/// A non-blocking signalfd that receives the signals in `SIGNALS`.
pub struct Signals {
    /// The descriptor the reactor registers; readable once a signal is pending.
    fd: SignalFd,
}

impl Signals {
    /// Blocks the signals in `SIGNALS` for this thread and opens a signalfd for them.
    ///
    /// # Errors
    /// Errors from `sigprocmask` or `signalfd`.
    pub fn new() -> io::Result<Signals> {
        let mut mask = SigSet::empty();
        for signal in SIGNALS {
            mask.add(signal);
        }
        mask.thread_block()?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(Signals { fd })
    }

    /// Reads one pending signal, if any, and returns what it asks for.
    ///
    /// # Errors
    /// A failed `read` on the signalfd (not `WouldBlock`: that returns `Ok(None)`).
    pub fn take(&mut self) -> io::Result<Option<Asked>> {
        let info = self.fd.read_signal()?;
        Ok(
            info.map(|info| match Signal::try_from(info.ssi_signo as i32) {
                Ok(Signal::SIGUSR1) => Asked::Statistics,
                Ok(Signal::SIGHUP) => Asked::Reload,
                Ok(Signal::SIGCHLD) => Asked::Reap,
                // Only the signals in `SIGNALS` arrive here: the rest are SIGINT and SIGTERM.
                Ok(signal) => Asked::Stop(signal.as_str()),
                Err(_) => Asked::Stop("an unknown signal"),
            }),
        )
    }
}

/// What a signal asks of the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// SIGINT or SIGTERM (named, for the log): shut down gracefully; a second time, now.
    Stop(&'static str),
    /// SIGUSR1: print the loop statistics.
    Statistics,
    /// SIGHUP: reopen the access log and empty the file cache.
    Reload,
    /// SIGCHLD: a child (the `--open` helper) ended; reap it and say how it went.
    Reap,
}

impl Asked {
    /// The signal that asks this, as trace lines name it.
    pub fn signal_name(self) -> &'static str {
        match self {
            Asked::Stop(name) => name,
            Asked::Statistics => "SIGUSR1",
            Asked::Reload => "SIGHUP",
            Asked::Reap => "SIGCHLD",
        }
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
