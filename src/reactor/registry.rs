//! `Registry`: the epoll set as the reactor uses it. It wraps `sys::epoll::Poller` so that
//! every `epoll_ctl` and every `epoll_wait` is counted (loop statistics) and, with
//! `--trace`, shown as a line, without the syscall layer knowing about either.
//!
//! Where this sits in the loop: every registration change (listener, control descriptor,
//! inotify, clients) and the wait at the top of each pass go through it.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::study::Study;
use crate::study::stats::Count;
use crate::sys::epoll::{Events, Flags, Interest, Poller, Token, Trigger};
use crate::{trace_conn, trace_loop};

use super::tokens::TokenName;

/// The epoll set, with its instruments.
pub struct Registry {
    /// The epoll instance.
    poller: Poller,
    /// Counters and trace.
    study: Rc<Study>,
    /// How client sockets and the listener are registered (`--epoll`).
    pub trigger: Trigger,
}

/// Which of the three `epoll_ctl` operations.
#[derive(Clone, Copy)]
enum Op {
    /// `EPOLL_CTL_ADD`.
    Add,
    /// `EPOLL_CTL_MOD`.
    Mod,
    /// `EPOLL_CTL_DEL`.
    Del,
}

impl Registry {
    /// A new epoll set.
    ///
    /// # Errors
    /// Errors from `epoll_create1`.
    pub fn new(study: Rc<Study>, trigger: Trigger) -> io::Result<Registry> {
        Ok(Registry {
            poller: Poller::new()?,
            study,
            trigger,
        })
    }

    /// `EPOLL_CTL_ADD` with `interest`, reported `trigger`-wise; `conn` names the connection
    /// in trace lines.
    ///
    /// # Errors
    /// As [`Poller::register`].
    pub fn add(
        &self,
        fd: &impl AsFd,
        token: Token,
        interest: Interest,
        trigger: Trigger,
        conn: Option<u64>,
    ) -> io::Result<()> {
        let bits = interest.bits(trigger);
        let result = self.poller.register(fd, token, bits);
        self.note(Op::Add, fd.as_fd().as_raw_fd(), token, bits, conn, &result);
        result
    }

    /// `EPOLL_CTL_MOD` to `interest` (level-triggered: only level-triggered registrations
    /// change their interest).
    ///
    /// # Errors
    /// As [`Poller::reregister`].
    pub fn modify(
        &self,
        fd: &impl AsFd,
        token: Token,
        interest: Interest,
        conn: Option<u64>,
    ) -> io::Result<()> {
        let bits = interest.bits(Trigger::Level);
        let result = self.poller.reregister(fd, token, bits);
        self.note(Op::Mod, fd.as_fd().as_raw_fd(), token, bits, conn, &result);
        result
    }

    /// `EPOLL_CTL_DEL`.
    ///
    /// # Errors
    /// As [`Poller::deregister`].
    pub fn delete(&self, fd: &impl AsFd, token: Token, conn: Option<u64>) -> io::Result<()> {
        let result = self.poller.deregister(fd);
        self.note(Op::Del, fd.as_fd().as_raw_fd(), token, 0, conn, &result);
        result
    }

    /// `EPOLL_CTL_DEL` of a descriptor number already closed (`--lab-bug
    /// close-before-deregister`): the kernel answers `EBADF`.
    ///
    /// # Errors
    /// As [`Poller::deregister_number`]: here, always.
    pub fn delete_closed(&self, fd: RawFd, token: Token, conn: u64) -> io::Result<()> {
        let result = self.poller.deregister_number(fd);
        self.note(Op::Del, fd, token, 0, Some(conn), &result);
        result
    }

    /// Waits (see [`Poller::wait`]), counts the wakeup and traces it. Returns when the wait
    /// returned.
    ///
    /// # Errors
    /// As [`Poller::wait`].
    pub fn wait(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
        max_events: usize,
    ) -> io::Result<Instant> {
        let before = Instant::now();
        let waited = self.poller.wait(events, timeout, max_events);
        let after = Instant::now();
        if let Err(e) = &waited {
            let kind = e.kind();
            trace_loop!(self.study.trace, "epoll_wait error={kind}");
        }
        waited?;
        let blocked = after - before;
        self.study.counters.wakeup(events.len(), blocked);
        // Shown at once when tracing everything; with `--trace conn=N`, kept until a line
        // about that connection follows in this pass (the wait that woke it).
        self.study.trace.wait_line(format_args!(
            "epoll_wait ready={} timeout={} blocked={:.3}ms",
            events.len(),
            TimeoutMs(timeout),
            blocked.as_secs_f64() * 1e3
        ));
        Ok(after)
    }

    /// Counts and traces one `epoll_ctl`, after it, with its result.
    fn note(
        &self,
        op: Op,
        fd: RawFd,
        token: Token,
        bits: u32,
        conn: Option<u64>,
        result: &io::Result<()>,
    ) {
        let (name, count) = match op {
            Op::Add => ("ADD", Count::CtlAdd),
            Op::Mod => ("MOD", Count::CtlMod),
            Op::Del => ("DEL", Count::CtlDel),
        };
        self.study.counters.bump(count);
        let flags = Flags(bits);
        let space = if bits == 0 { "" } else { " " };
        let failed = match result {
            Ok(()) => String::new(),
            Err(e) => format!(" error={}", e.kind()),
        };
        let token = TokenName(token);
        match conn {
            Some(id) => trace_conn!(
                self.study.trace,
                id,
                "epoll_ctl {name} fd={fd} token={token} conn={id}{space}{flags}{failed}"
            ),
            None => trace_loop!(
                self.study.trace,
                "epoll_ctl {name} fd={fd} token={token}{space}{flags}{failed}"
            ),
        }
    }
}

/// A wait timeout as the syscall gets it: milliseconds, rounded up, or `-1` for none.
struct TimeoutMs(Option<Duration>);

impl fmt::Display for TimeoutMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("-1"),
            Some(duration) => write!(f, "{}", duration.as_nanos().div_ceil(1_000_000)),
        }
    }
}
