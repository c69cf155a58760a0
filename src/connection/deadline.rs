//! Deadlines: which one a connection waits on ([`DeadlineKind`], from its state), and the
//! moment itself in 8 bytes ([`Deadline`]). The rule that picks the time allowed is
//! `Connection::time_allowed`, in `mod.rs`, beside the states it reads.

use std::cell::Cell;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::study::stats::Count;

/// Which deadline a connection is waiting on; follows from its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadlineKind {
    /// Waiting for the first byte of a request (keep-alive idle, or a fresh connection).
    Idle,
    /// A request head (or the body we discard) has started but not finished arriving.
    Header,
    /// An answer is pending and the client is not reading it.
    Send,
    /// We closed our side after a closing answer and are draining what the client sends.
    Linger,
    /// An event stream has been quiet for a while: time for a heartbeat (not a close).
    Heartbeat,
}

impl DeadlineKind {
    /// The name trace lines use.
    pub fn name(self) -> &'static str {
        match self {
            DeadlineKind::Idle => "idle",
            DeadlineKind::Header => "header",
            DeadlineKind::Send => "send",
            DeadlineKind::Linger => "linger",
            DeadlineKind::Heartbeat => "heartbeat",
        }
    }

    /// The statistics counter for this kind firing.
    pub fn count(self) -> Count {
        match self {
            DeadlineKind::Idle => Count::DeadlineIdle,
            DeadlineKind::Header => Count::DeadlineHeader,
            DeadlineKind::Send => Count::DeadlineSend,
            DeadlineKind::Linger => Count::DeadlineLinger,
            DeadlineKind::Heartbeat => Count::Heartbeats,
        }
    }
}

/// A moment as nanoseconds since the first one taken (8 bytes where `Instant` takes 16;
/// 584 years of range).
#[derive(Clone, Copy, Debug)]
pub(super) struct Deadline(pub(super) u64);

/// The moment `Deadline`s count from: a minute before it is first needed, so that a `now`
/// taken just before (the loop's first pass, a test's start) is not clamped up to it.
static DEADLINE_EPOCH: LazyLock<Instant> = LazyLock::new(|| {
    let now = Instant::now();
    now.checked_sub(Duration::from_secs(60)).unwrap_or(now)
});

thread_local! {
    /// The last moment converted, and what it gave: every transition in a loop pass arms its
    /// deadline from the same `now`, so one conversion serves the whole pass.
    static LAST_CONVERTED: Cell<Option<(Instant, Deadline)>> = const { Cell::new(None) };
}

impl Deadline {
    /// `moment`, or the epoch if it is earlier (only an already-passed deadline can be).
    pub(super) fn at(moment: Instant) -> Deadline {
        if let Some((last, deadline)) = LAST_CONVERTED.get()
            && last == moment
        {
            return deadline;
        }
        let since = moment.saturating_duration_since(*DEADLINE_EPOCH);
        let deadline = Deadline(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX));
        LAST_CONVERTED.set(Some((moment, deadline)));
        deadline
    }

    /// `allowed` later.
    pub(super) fn after(self, allowed: Duration) -> Deadline {
        let nanos = allowed
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(allowed.subsec_nanos()));
        Deadline(self.0.saturating_add(nanos))
    }

    /// As an `Instant`.
    pub(super) fn instant(self) -> Instant {
        *DEADLINE_EPOCH + Duration::from_nanos(self.0)
    }
}
