//! `Listening`: the listening socket's three states, each owning what it needs.
//!
//! Where this sits in the loop: the reactor accepts only while `Active`. At the connection
//! cap, or when `accept` fails with EMFILE/ENFILE, it pauses (the listener leaves the epoll
//! set, so a level-triggered listener cannot wake the loop for ever); when a connection
//! closes, or the retry time comes, it resumes. A shutdown closes the listener for good (the
//! server itself keeps the time by which it must exit).

use std::net::TcpListener;
use std::time::Instant;

use std::os::fd::AsRawFd;

use super::registry::Registry;
use super::tokens::TokenName;
use crate::study::trace::Tracer;
use crate::sys::epoll::{Interest, Token};
use crate::trace_loop;

/// The listener's state.
pub(super) enum Listening {
    /// Registered in the epoll set: accept whenever it is readable.
    Active(TcpListener),
    /// Out of the epoll set; new clients wait in the kernel's backlog.
    Paused {
        /// The listener, kept open.
        listener: TcpListener,
        /// When to try again even if no connection has closed (after EMFILE/ENFILE, another
        /// process may be the one holding the descriptors).
        retry_at: Option<Instant>,
    },
    /// Closed for good by a shutdown: new connections are refused by the kernel.
    Closed,
}

impl Listening {
    /// The listener to accept from, while active.
    pub fn active(&self) -> Option<&TcpListener> {
        match self {
            Listening::Active(listener) => Some(listener),
            _ => None,
        }
    }

    /// Whether the listener is paused (out of the epoll set, but open).
    pub fn is_paused(&self) -> bool {
        matches!(self, Listening::Paused { .. })
    }

    /// Whether the loop must wake up on time for a retry even with no connection open.
    pub fn retry_pending(&self) -> bool {
        matches!(
            self,
            Listening::Paused {
                retry_at: Some(_),
                ..
            }
        )
    }

    /// Whether a paused listener's retry time has come.
    pub fn retry_due(&self, now: Instant) -> bool {
        matches!(self, Listening::Paused { retry_at: Some(at), .. } if now >= *at)
    }

    /// Takes the listener out of the epoll set (or updates the retry time if already paused).
    pub fn pause(
        &mut self,
        registry: &Registry,
        token: Token,
        why: &str,
        retry_at: Option<Instant>,
        connections: usize,
    ) {
        *self = match std::mem::replace(self, Listening::Closed) {
            Listening::Active(listener) => {
                if let Err(e) = registry.delete(&listener, token, None) {
                    log::warn!("deregistering the listener failed: {e}");
                }
                log::warn!("accepting paused: {why} connections={connections}");
                Listening::Paused { listener, retry_at }
            }
            Listening::Paused { listener, .. } => Listening::Paused { listener, retry_at },
            Listening::Closed => Listening::Closed,
        };
    }

    /// Puts a paused listener back in the epoll set; if that fails, tries again at `retry_at`
    /// (otherwise, with no connection left to close, nothing would ever resume it).
    pub fn resume(
        &mut self,
        registry: &Registry,
        token: Token,
        connections: usize,
        retry_at: Instant,
    ) {
        let Listening::Paused {
            listener,
            retry_at: next_try,
        } = self
        else {
            return;
        };
        let trigger = registry.trigger;
        if let Err(e) = registry.add(listener, token, Interest::Readable, trigger, None) {
            log::warn!("re-registering the listener failed: {e}");
            *next_try = Some(retry_at);
            return;
        }
        log::info!("accepting resumed connections={connections}");
        *self = match std::mem::replace(self, Listening::Closed) {
            Listening::Paused { listener, .. } => Listening::Active(listener),
            other => other,
        };
    }

    /// Closes the listener for good, so new connections are refused.
    pub fn close(&mut self, registry: &Registry, token: Token, trace: &Tracer) {
        if let Listening::Active(listener) = self {
            let _ = registry.delete(&*listener, token, None);
        }
        let listener = match std::mem::replace(self, Listening::Closed) {
            Listening::Active(listener) | Listening::Paused { listener, .. } => listener,
            Listening::Closed => return,
        };
        let fd = listener.as_raw_fd();
        let failed = match nix::unistd::close(listener) {
            Ok(()) => String::new(),
            Err(errno) => format!(" error={errno}"),
        };
        trace_loop!(trace, "close fd={fd} token={}{failed}", TokenName(token));
    }
}
