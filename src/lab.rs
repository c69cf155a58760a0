//! `--lab-bug NAME`: put one classic event-loop bug back into epollo, on purpose, to see what
//! it does (in `--trace` and `strace`) and which test in the suite catches it. Never on by
//! default; the server says so loudly at startup. `.ci/run` switches each bug on in turn and
//! checks that its test fails.
//!
//! Where this sits in the loop: each bug is one `if lab::on(…)` where the correct code is:
//! event dispatch and the ready list (`reactor/mod.rs`), the accept (`reactor/accepting.rs`),
//! the readiness rule (`connection/readiness.rs`), the slab (`reactor/slab.rs`), the writes
//! (`connection/socket.rs`), the close (`reactor/mod.rs`).
//!
//! # Design notes
//! The switch is set once, before the loop starts (a relaxed atomic read at each site, a
//! nanosecond or so next to a system call). Unit tests read `EPOLLO_LAB_BUG` instead, so the
//! slab's own test can be run with its bug on.

use std::sync::atomic::{AtomicU8, Ordering};

/// A classic bug that can be switched back on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabBug {
    /// Dispatch on `event == EPOLLIN` (equality, not a bit test): a hang-up comes as
    /// `IN|RDHUP`, matches nothing, and the level-triggered loop spins on it.
    FlagEquality,
    /// Accepted sockets left blocking: one client that stops reading stops everyone.
    BlockingSend,
    /// Edge-triggered, a read that filled the buffer is taken as the socket drained: bytes
    /// left behind are never read (no edge announces them).
    NoDrain,
    /// Edge-triggered without a ready list: a connection that stopped early (a file chunk,
    /// for fairness) never runs again.
    NoReadyList,
    /// No generation check in the slab: an event for a closed connection reaches whatever
    /// took its slot.
    NoGeneration,
    /// A short write taken as whole: the rest of the answer is skipped, the download cut.
    IgnoreShortWrites,
    /// The socket closed before it is taken out of the epoll set: `epoll_ctl(DEL)` then
    /// fails with `EBADF` (the kernel had already removed it on close).
    CloseBeforeDeregister,
}

impl LabBug {
    /// Every bug, in the order the lab page shows them.
    pub const ALL: [LabBug; 7] = [
        LabBug::FlagEquality,
        LabBug::BlockingSend,
        LabBug::NoDrain,
        LabBug::NoReadyList,
        LabBug::NoGeneration,
        LabBug::IgnoreShortWrites,
        LabBug::CloseBeforeDeregister,
    ];

    /// The name `--lab-bug` takes.
    pub fn name(self) -> &'static str {
        match self {
            LabBug::FlagEquality => "flag-equality",
            LabBug::BlockingSend => "blocking-send",
            LabBug::NoDrain => "no-drain",
            LabBug::NoReadyList => "no-ready-list",
            LabBug::NoGeneration => "no-generation",
            LabBug::IgnoreShortWrites => "ignore-short-writes",
            LabBug::CloseBeforeDeregister => "close-before-deregister",
        }
    }

    /// The bug called `name`.
    pub fn parse(name: &str) -> Option<LabBug> {
        LabBug::ALL.into_iter().find(|bug| bug.name() == name)
    }

    /// Its number in the switch (0 is none).
    fn code(self) -> u8 {
        LabBug::ALL
            .iter()
            .position(|bug| *bug == self)
            .map_or(0, |i| i as u8 + 1)
    }
}

/// The bug switched on (its code), 0 for none.
static ON: AtomicU8 = AtomicU8::new(0);

/// Switches `bug` on for the life of the process (at startup, before the loop).
pub fn switch_on(bug: LabBug) {
    ON.store(bug.code(), Ordering::Relaxed);
}

/// Whether `bug` is switched on.
#[inline]
pub fn on(bug: LabBug) -> bool {
    let code = ON.load(Ordering::Relaxed);
    code != 0 && code == bug.code()
}

/// For unit tests: switches on the bug `EPOLLO_LAB_BUG` names, if any.
#[cfg(test)]
pub fn switch_on_from_env() {
    if let Some(bug) = std::env::var("EPOLLO_LAB_BUG")
        .ok()
        .and_then(|n| LabBug::parse(&n))
    {
        switch_on(bug);
    }
}
