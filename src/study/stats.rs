//! Loop statistics: counters of what the loop did, kept per worker in plain cells (a few
//! nanoseconds each, always on), published once a second to a board all workers share, and
//! shown on SIGUSR1, at exit, and with `--stats PATH` as Prometheus text, JSON, and a live page.
//!
//! Where this sits in the loop: the reactor counts wakeups, events, blocking and accepts; the
//! connection counts its reads, writes, bytes and state changes. Reading the counters never
//! locks anything on the hot path: a worker copies its counters into the shared [`Board`]
//! at most once a second (and when it answers a stats request or exits).
//!
//! # Design notes
//! Counters are an array indexed by [`Count`], described by one table ([`COUNTS`]), so the
//! three renderings (text, Prometheus, JSON) cannot disagree about names or meanings.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// One counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// `epoll_wait` returned (with events, or timed out).
    Wakeups,
    /// Connections accepted.
    Accepts,
    /// `recv` calls that returned data or EOF.
    Reads,
    /// `recv` calls that said `EAGAIN`.
    ReadsEagain,
    /// `send`/`sendfile` calls that wrote something.
    Writes,
    /// Writes that took less than they were offered (the socket buffer filled).
    WritesShort,
    /// `send`/`sendfile` calls that said `EAGAIN`.
    WritesEagain,
    /// Bytes written with `send` (copied from our memory).
    BytesCopied,
    /// Bytes written with `sendfile` (straight from the page cache).
    BytesSendfile,
    /// `epoll_ctl(EPOLL_CTL_ADD)` calls.
    CtlAdd,
    /// `epoll_ctl(EPOLL_CTL_MOD)` calls.
    CtlMod,
    /// `epoll_ctl(EPOLL_CTL_DEL)` calls.
    CtlDel,
    /// Requests answered.
    Requests,
    /// Requests answered on a connection that had answered one before (keep-alive at work).
    KeepAliveReuses,
    /// Requests answered in the same batch as an earlier one (pipelined).
    Pipelined,
    /// Idle (keep-alive or silent) deadlines that fired.
    DeadlineIdle,
    /// Header deadlines that fired (408).
    DeadlineHeader,
    /// Send deadlines that fired (a client stopped reading).
    DeadlineSend,
    /// Linger deadlines that fired.
    DeadlineLinger,
    /// Heartbeats sent on quiet `--live` event streams.
    Heartbeats,
    /// `--live` reload events sent (one per stream).
    LiveEvents,
    /// Passes of the edge-triggered ready list's entries (`--epoll et`).
    ReadyListRuns,
    /// Requests for the `--stats` pages themselves (the live page asks once a second).
    StatsRequests,
    /// File-system calls made for requests (`openat2`, `statx`, `pread64`, `close`…); a
    /// cached file costs none.
    FileCalls,
}

/// Every counter: its name (Prometheus, without `epollo_` and `_total`) and its meaning.
pub const COUNTS: [(Count, &str, &str); 24] = [
    (Count::Wakeups, "wakeups", "epoll_wait returns"),
    (Count::Accepts, "accepts", "connections accepted"),
    (
        Count::Reads,
        "reads",
        "recv calls that returned data or EOF",
    ),
    (
        Count::ReadsEagain,
        "reads_eagain",
        "recv calls that said EAGAIN",
    ),
    (
        Count::Writes,
        "writes",
        "send and sendfile calls that wrote bytes",
    ),
    (
        Count::WritesShort,
        "writes_short",
        "writes that took less than offered",
    ),
    (
        Count::WritesEagain,
        "writes_eagain",
        "send and sendfile calls that said EAGAIN",
    ),
    (
        Count::BytesCopied,
        "bytes_copied",
        "bytes written with send",
    ),
    (
        Count::BytesSendfile,
        "bytes_sendfile",
        "bytes written with sendfile",
    ),
    (Count::CtlAdd, "epoll_ctl_add", "epoll_ctl ADD calls"),
    (Count::CtlMod, "epoll_ctl_mod", "epoll_ctl MOD calls"),
    (Count::CtlDel, "epoll_ctl_del", "epoll_ctl DEL calls"),
    (Count::Requests, "requests", "requests answered"),
    (
        Count::KeepAliveReuses,
        "keep_alive_reuses",
        "requests answered on a connection that had answered one before",
    ),
    (
        Count::Pipelined,
        "pipelined",
        "requests answered in the same batch as an earlier one",
    ),
    (
        Count::DeadlineIdle,
        "deadlines_idle",
        "idle deadlines fired",
    ),
    (
        Count::DeadlineHeader,
        "deadlines_header",
        "header deadlines fired (408)",
    ),
    (
        Count::DeadlineSend,
        "deadlines_send",
        "send deadlines fired",
    ),
    (
        Count::DeadlineLinger,
        "deadlines_linger",
        "linger deadlines fired",
    ),
    (
        Count::Heartbeats,
        "live_heartbeats",
        "heartbeats sent on quiet --live event streams",
    ),
    (
        Count::LiveEvents,
        "live_events",
        "--live reload events sent (one per stream)",
    ),
    (
        Count::ReadyListRuns,
        "ready_list_runs",
        "handlers run from the edge-triggered ready list",
    ),
    (
        Count::StatsRequests,
        "stats_requests",
        "requests for the --stats pages (the live page's own)",
    ),
    (
        Count::FileCalls,
        "file_calls",
        "file-system calls made for requests (open, stat, read, close; none for a cached file)",
    ),
];

/// Upper bounds of the events-per-wakeup histogram's buckets (the last one is open).
pub const EVENT_BUCKETS: [u64; 9] = [0, 1, 2, 4, 8, 16, 64, 256, 1024];

/// Connection states counted by the "open connections by state" gauge.
pub const STATES: [&str; 5] = ["idle", "reading", "writing", "lingering", "streaming"];

/// One worker's live counters. Cells: the worker is one thread, and a `Cell` increment costs
/// the same as a plain one.
#[derive(Default)]
pub struct Counters {
    /// Indexed by `Count as usize`.
    counts: [Cell<u64>; COUNTS.len()],
    /// Wakeups by events returned, bucketed by [`EVENT_BUCKETS`] (plus one open bucket).
    events: [Cell<u64>; EVENT_BUCKETS.len() + 1],
    /// Open connections in each of [`STATES`].
    states: [Cell<u64>; STATES.len()],
    /// Time spent inside `epoll_wait`.
    blocked: Cell<Duration>,
    /// Time spent handling what it returned.
    busy: Cell<Duration>,
}

impl Counters {
    /// Adds `n` to a counter.
    #[inline]
    pub fn add(&self, count: Count, n: u64) {
        let cell = &self.counts[count as usize];
        cell.set(cell.get().wrapping_add(n));
    }

    /// Adds one to a counter.
    #[inline]
    pub fn bump(&self, count: Count) {
        self.add(count, 1);
    }

    /// One `epoll_wait` returned `events` after blocking for `blocked`.
    pub fn wakeup(&self, events: usize, blocked: Duration) {
        self.bump(Count::Wakeups);
        let bucket = EVENT_BUCKETS
            .iter()
            .position(|&bound| events as u64 <= bound)
            .unwrap_or(EVENT_BUCKETS.len());
        let cell = &self.events[bucket];
        cell.set(cell.get() + 1);
        self.blocked.set(self.blocked.get() + blocked);
    }

    /// The handling part of a pass took `busy`.
    pub fn handled(&self, busy: Duration) {
        self.busy.set(self.busy.get() + busy);
    }

    /// A connection moved from the state counted at index `from` of [`STATES`] to the one at
    /// `to` (`None`: not counted, such as closed, or not yet open).
    #[inline]
    pub fn moved(&self, from: Option<usize>, to: Option<usize>) {
        if let Some(cell) = from.and_then(|i| self.states.get(i)) {
            cell.set(cell.get().saturating_sub(1));
        }
        if let Some(cell) = to.and_then(|i| self.states.get(i)) {
            cell.set(cell.get() + 1);
        }
    }

    /// A copy of the counters now, with the cache's hits and misses.
    pub fn snapshot(&self, cache: (u64, u64)) -> Snapshot {
        Snapshot {
            counts: self.counts.each_ref().map(Cell::get),
            events: self.events.each_ref().map(Cell::get),
            states: self.states.each_ref().map(Cell::get),
            blocked: self.blocked.get(),
            busy: self.busy.get(),
            cache_hits: cache.0,
            cache_misses: cache.1,
        }
    }
}

/// A plain copy of counters (one worker's, or the sum of all).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Indexed by `Count as usize`.
    pub counts: [u64; COUNTS.len()],
    /// The events-per-wakeup histogram.
    pub events: [u64; EVENT_BUCKETS.len() + 1],
    /// Open connections by state.
    pub states: [u64; STATES.len()],
    /// Time blocked in `epoll_wait`.
    pub blocked: Duration,
    /// Time handling events.
    pub busy: Duration,
    /// File cache hits.
    pub cache_hits: u64,
    /// File cache misses.
    pub cache_misses: u64,
}

impl Snapshot {
    /// One counter's value.
    pub fn get(&self, count: Count) -> u64 {
        self.counts[count as usize]
    }

    /// Adds another snapshot (another worker's) to this one.
    fn add(&mut self, other: &Snapshot) {
        for (a, b) in self.counts.iter_mut().zip(other.counts) {
            *a += b;
        }
        for (a, b) in self.events.iter_mut().zip(other.events) {
            *a += b;
        }
        for (a, b) in self.states.iter_mut().zip(other.states) {
            *a += b;
        }
        self.blocked += other.blocked;
        self.busy += other.busy;
        self.cache_hits += other.cache_hits;
        self.cache_misses += other.cache_misses;
    }

    /// The share of time spent handling rather than blocked, from 0 to 1.
    pub fn utilisation(&self) -> f64 {
        let total = (self.blocked + self.busy).as_secs_f64();
        if total > 0.0 {
            self.busy.as_secs_f64() / total
        } else {
            0.0
        }
    }
}

/// One second of the last minute, for the live page.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Wakeups per second.
    pub wakeups: f64,
    /// Requests per second.
    pub requests: f64,
    /// Loop utilisation (all workers together), 0 to 1.
    pub utilisation: f64,
    /// System calls on sockets and the epoll set per second (waits, accepts, reads and
    /// writes with their `EAGAIN`s, `epoll_ctl`s).
    pub syscalls: f64,
    /// Bytes sent per second (`send` and `sendfile`).
    pub bytes: f64,
    /// Requests for the `--stats` pages per second (the live page's own).
    pub stats_requests: f64,
    /// Wakeups in this second, by events returned (the buckets of `events_per_wakeup`).
    pub events: [u64; EVENT_BUCKETS.len() + 1],
}

/// Seconds of history the live page shows.
pub const HISTORY_SECONDS: usize = 60;

/// What all workers share: each one's latest snapshot, and the last minute's samples.
#[derive(Debug)]
pub struct Board {
    /// The latest snapshot of each worker, by index.
    workers: Vec<Snapshot>,
    /// The sum of all workers when the last sample was taken.
    last_total: Snapshot,
    /// When the last sample was taken.
    last_sample: Instant,
    /// One sample per second, oldest first.
    history: VecDeque<Sample>,
}

impl Board {
    /// A board for `workers` workers, starting now.
    pub fn new(workers: usize, now: Instant) -> Board {
        Board {
            workers: vec![Snapshot::default(); workers],
            last_total: Snapshot::default(),
            last_sample: now,
            history: VecDeque::with_capacity(HISTORY_SECONDS),
        }
    }

    /// Stores worker `index`'s snapshot, and takes the second's sample if one is due.
    pub fn publish(&mut self, index: usize, snapshot: Snapshot, now: Instant) {
        if let Some(slot) = self.workers.get_mut(index) {
            *slot = snapshot;
        }
        let elapsed = now.saturating_duration_since(self.last_sample);
        if elapsed < Duration::from_secs(1) {
            return;
        }
        let total = self.total();
        let seconds = elapsed.as_secs_f64();
        let delta = |count| (total.get(count) - self.last_total.get(count)) as f64 / seconds;
        let blocked = total.blocked.saturating_sub(self.last_total.blocked);
        let busy = total.busy.saturating_sub(self.last_total.busy);
        let spent = (blocked + busy).as_secs_f64();
        let syscalls = [
            Count::Wakeups,
            Count::Accepts,
            Count::Reads,
            Count::ReadsEagain,
            Count::Writes,
            Count::WritesEagain,
            Count::CtlAdd,
            Count::CtlMod,
            Count::CtlDel,
            Count::FileCalls,
        ];
        let mut events = [0; EVENT_BUCKETS.len() + 1];
        for (bucket, (now, then)) in events
            .iter_mut()
            .zip(total.events.iter().zip(self.last_total.events))
        {
            *bucket = now.saturating_sub(then);
        }
        let sample = Sample {
            syscalls: syscalls.into_iter().map(delta).sum(),
            bytes: delta(Count::BytesCopied) + delta(Count::BytesSendfile),
            stats_requests: delta(Count::StatsRequests),
            events,
            wakeups: delta(Count::Wakeups),
            requests: delta(Count::Requests),
            utilisation: if spent > 0.0 {
                busy.as_secs_f64() / spent
            } else {
                0.0
            },
        };
        // Seconds nobody published in (every loop blocked with nothing to do) were idle.
        let idle_seconds = (elapsed.as_secs() as usize).saturating_sub(1);
        for _ in 0..idle_seconds.min(HISTORY_SECONDS) {
            self.push_sample(Sample::default());
        }
        self.push_sample(sample);
        self.last_total = total;
        self.last_sample = now;
    }

    /// Appends a sample, forgetting the oldest beyond a minute.
    fn push_sample(&mut self, sample: Sample) {
        if self.history.len() == HISTORY_SECONDS {
            self.history.pop_front();
        }
        self.history.push_back(sample);
    }

    /// The sum over all workers.
    pub fn total(&self) -> Snapshot {
        let mut total = Snapshot::default();
        for worker in &self.workers {
            total.add(worker);
        }
        total
    }

    /// How many workers publish here.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// The last minute, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Sample> {
        self.history.iter()
    }
}

/// The counters as a few human-readable lines (SIGUSR1 and the exit summary).
pub fn render_text(total: &Snapshot, workers: usize) -> String {
    let mut text = format!(
        "loop statistics (workers={workers}): utilisation={:.1}% blocked={:.3}s busy={:.3}s\n",
        total.utilisation() * 100.0,
        total.blocked.as_secs_f64(),
        total.busy.as_secs_f64()
    );
    let mut line = String::new();
    for (count, name, _) in COUNTS {
        let _ = write!(line, " {name}={}", total.get(count));
        if line.len() > 80 {
            text.push_str(&format!("  {}\n", line.trim_start()));
            line.clear();
        }
    }
    if !line.is_empty() {
        text.push_str(&format!("  {}\n", line.trim_start()));
    }
    text.push_str(&format!(
        "  cache_hits={} cache_misses={}\n  events per wakeup:",
        total.cache_hits, total.cache_misses
    ));
    for (label, n) in bucket_labels().iter().zip(total.events) {
        text.push_str(&format!(" {label}:{n}"));
    }
    text.push_str("\n  open connections:");
    for (state, n) in STATES.iter().zip(total.states) {
        text.push_str(&format!(" {state}={n}"));
    }
    text
}

/// Bucket labels: `0`, `1`, `2`, `3-4`, ..., `>1024`.
fn bucket_labels() -> Vec<String> {
    let mut labels = Vec::new();
    let mut low = 0;
    for bound in EVENT_BUCKETS {
        labels.push(if low == bound {
            bound.to_string()
        } else {
            format!("{low}-{bound}")
        });
        low = bound + 1;
    }
    labels.push(format!(">{}", EVENT_BUCKETS[EVENT_BUCKETS.len() - 1]));
    labels
}

/// The counters in Prometheus text exposition format (version 0.0.4).
pub fn render_prometheus(total: &Snapshot, workers: usize) -> String {
    let mut out = String::new();
    for (count, name, help) in COUNTS {
        let _ = writeln!(
            out,
            "# HELP epollo_{name}_total {help}\n# TYPE epollo_{name}_total counter\nepollo_{name}_total {}",
            total.get(count)
        );
    }
    let metric = |out: &mut String, name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP epollo_{name} {help}\n# TYPE epollo_{name} {kind}\nepollo_{name} {value}"
        );
    };
    metric(
        &mut out,
        "cache_hits_total",
        "counter",
        "file cache hits",
        total.cache_hits.to_string(),
    );
    metric(
        &mut out,
        "cache_misses_total",
        "counter",
        "file cache misses",
        total.cache_misses.to_string(),
    );
    metric(
        &mut out,
        "loop_blocked_seconds_total",
        "counter",
        "time spent blocked in epoll_wait",
        format!("{:.6}", total.blocked.as_secs_f64()),
    );
    metric(
        &mut out,
        "loop_busy_seconds_total",
        "counter",
        "time spent handling events",
        format!("{:.6}", total.busy.as_secs_f64()),
    );
    metric(
        &mut out,
        "workers",
        "gauge",
        "reactors running",
        workers.to_string(),
    );
    let _ = writeln!(
        out,
        "# HELP epollo_connections open connections by state\n# TYPE epollo_connections gauge"
    );
    for (state, n) in STATES.iter().zip(total.states) {
        let _ = writeln!(out, "epollo_connections{{state=\"{state}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP epollo_events_per_wakeup events returned by one epoll_wait\n# TYPE epollo_events_per_wakeup histogram"
    );
    let mut cumulative = 0;
    let mut sum = 0;
    for (i, n) in total.events.iter().enumerate() {
        cumulative += n;
        // The sum is approximate: each wakeup counts at its bucket's upper bound.
        let bound = EVENT_BUCKETS
            .get(i)
            .copied()
            .unwrap_or(EVENT_BUCKETS[EVENT_BUCKETS.len() - 1]);
        sum += n * bound;
        let le = EVENT_BUCKETS
            .get(i)
            .map_or("+Inf".to_string(), u64::to_string);
        let _ = writeln!(
            out,
            "epollo_events_per_wakeup_bucket{{le=\"{le}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "epollo_events_per_wakeup_sum {sum}\nepollo_events_per_wakeup_count {cumulative}"
    );
    out
}

/// The counters and the last minute as JSON (for the live page and for scripts).
pub fn render_json<'a>(
    total: &Snapshot,
    workers: usize,
    history: impl Iterator<Item = &'a Sample>,
) -> String {
    let mut out = format!("{{\"workers\":{workers},\"counters\":{{");
    for (i, (count, name, _)) in COUNTS.iter().enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(out, "{comma}\"{name}\":{}", total.get(*count));
    }
    let _ = write!(
        out,
        ",\"cache_hits\":{},\"cache_misses\":{}}},\"loop\":{{\"blocked_seconds\":{:.6},\"busy_seconds\":{:.6},\"utilisation\":{:.4}}},\"events_per_wakeup\":[",
        total.cache_hits,
        total.cache_misses,
        total.blocked.as_secs_f64(),
        total.busy.as_secs_f64(),
        total.utilisation()
    );
    for (i, (label, n)) in bucket_labels().iter().zip(total.events).enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(out, "{comma}{{\"events\":\"{label}\",\"wakeups\":{n}}}");
    }
    out.push_str("],\"connections\":{");
    for (i, (state, n)) in STATES.iter().zip(total.states).enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(out, "{comma}\"{state}\":{n}");
    }
    out.push_str("},\"history\":[");
    for (i, sample) in history.enumerate() {
        let comma = if i == 0 { "" } else { "," };
        let _ = write!(
            out,
            "{comma}{{\"wakeups\":{:.1},\"requests\":{:.1},\"utilisation\":{:.4},\"syscalls\":{:.1},\"bytes\":{:.0},\"stats_requests\":{:.1},\"events\":{:?}}}",
            sample.wakeups,
            sample.requests,
            sample.utilisation,
            sample.syscalls,
            sample.bytes,
            sample.stats_requests,
            sample.events
        );
    }
    out.push_str("]}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_table_is_in_enum_order() {
        for (i, (count, _, _)) in COUNTS.iter().enumerate() {
            assert_eq!(*count as usize, i);
        }
    }

    #[test]
    fn wakeups_land_in_their_histogram_bucket() {
        let counters = Counters::default();
        counters.wakeup(0, Duration::ZERO);
        counters.wakeup(1, Duration::ZERO);
        counters.wakeup(3, Duration::ZERO);
        counters.wakeup(5000, Duration::ZERO);
        let snapshot = counters.snapshot((0, 0));
        assert_eq!(snapshot.events[0], 1);
        assert_eq!(snapshot.events[1], 1);
        assert_eq!(snapshot.events[3], 1, "3 events fall in 3-4");
        assert_eq!(snapshot.events[EVENT_BUCKETS.len()], 1);
        assert_eq!(snapshot.get(Count::Wakeups), 4);
    }

    #[test]
    fn state_gauges_follow_moves() {
        let counters = Counters::default();
        counters.moved(None, Some(0));
        counters.moved(Some(0), Some(1));
        counters.moved(Some(1), None);
        counters.moved(None, Some(0));
        assert_eq!(counters.snapshot((0, 0)).states, [1, 0, 0, 0, 0]);
    }

    #[test]
    fn the_board_sums_workers_and_samples_each_second() {
        let start = Instant::now();
        let mut board = Board::new(2, start);
        let one = Counters::default();
        one.add(Count::Requests, 10);
        board.publish(0, one.snapshot((1, 2)), start);
        board.publish(1, one.snapshot((1, 2)), start + Duration::from_secs(2));
        assert_eq!(board.total().get(Count::Requests), 20);
        assert_eq!(board.total().cache_misses, 4);
        let history: Vec<_> = board.history().collect();
        assert_eq!(history.len(), 2, "one idle second, then the sample");
        assert_eq!(history[1].requests, 10.0);
    }

    #[test]
    fn a_sample_carries_what_requests_cost_and_its_seconds_histogram() {
        let start = Instant::now();
        let mut board = Board::new(1, start);
        let counters = Counters::default();
        counters.add(Count::Requests, 4);
        counters.add(Count::Reads, 4);
        counters.add(Count::Writes, 4);
        counters.add(Count::BytesCopied, 1000);
        counters.add(Count::StatsRequests, 1);
        counters.wakeup(3, Duration::ZERO);
        counters.wakeup(1, Duration::ZERO);
        board.publish(0, counters.snapshot((0, 0)), start + Duration::from_secs(1));
        let sample = *board.history().last().unwrap();
        assert_eq!((sample.syscalls, sample.bytes), (10.0, 1000.0)); // 2 waits, 4 recv, 4 send
        assert_eq!(sample.stats_requests, 1.0);
        assert_eq!(sample.events.iter().sum::<u64>(), 2);
        let json = render_json(&board.total(), 1, board.history());
        assert!(
            json.contains("\"syscalls\":10.0,\"bytes\":1000,\"stats_requests\":1.0,\"events\":["),
            "{json}"
        );
    }

    #[test]
    fn prometheus_lines_are_well_formed() {
        let counters = Counters::default();
        counters.wakeup(2, Duration::from_millis(5));
        let text = render_prometheus(&counters.snapshot((0, 0)), 1);
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').expect("name and value");
            assert!(name.starts_with("epollo_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(text.contains("epollo_wakeups_total 1\n"));
        assert!(text.contains("epollo_events_per_wakeup_bucket{le=\"2\"} 1\n"));
        assert!(text.contains("epollo_events_per_wakeup_bucket{le=\"+Inf\"} 1\n"));
    }
}
