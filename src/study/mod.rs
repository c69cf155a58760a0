//! The study instruments: what a learner uses to watch the loop work. `trace.rs` writes one
//! line per thing the loop does (`--trace`); `stats.rs` counts it (SIGUSR1, the exit summary,
//! `--stats PATH`); `page.rs` is the live page drawn from those counts.
//!
//! Where this sits in the loop: each worker owns one [`Study`], and its handlers reach it
//! through the pass's `Context`. The fault-injection flags (`--max-read`, `--max-write`,
//! `--sndbuf`, `--max-events`) live in `config::Faults` and act where the I/O happens.

pub mod narrator;
pub mod page;
pub mod stats;
pub mod trace;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::http::reply::Body;
use crate::http::reply::{Fields, Text};
use crate::http::{Method, Reply, Request, Status};
use stats::{Board, Counters, Snapshot};
use trace::Tracer;

/// How often a worker copies its counters to the shared board.
pub const PUBLISH_INTERVAL: Duration = Duration::from_secs(1);

/// One worker's instruments.
pub struct Study {
    /// The `--trace` writer.
    pub trace: Tracer,
    /// This worker's counters.
    pub counters: Counters,
    /// What all workers share, for SIGUSR1, `--stats` and the exit summary.
    pub board: Arc<Mutex<Board>>,
    /// This worker's index on the board.
    worker: usize,
    /// When this worker next publishes.
    next_publish: std::cell::Cell<Instant>,
}

impl Study {
    /// Instruments for worker `worker` of `workers`, all sharing `board`.
    pub fn new(
        config: &Config,
        worker: usize,
        workers: usize,
        board: Arc<Mutex<Board>>,
        start: Instant,
    ) -> Study {
        let label = (workers > 1).then_some(worker + 1);
        Study {
            trace: Tracer::new(config.study.trace, start, label),
            counters: Counters::default(),
            board,
            worker,
            next_publish: std::cell::Cell::new(start),
        }
    }

    /// Instruments of their own, for driving a connection without a reactor (unit tests,
    /// the fuzz harness).
    pub fn standalone(config: &Config) -> Study {
        let now = Instant::now();
        let board = Arc::new(Mutex::new(Board::new(1, now)));
        Study::new(config, 0, 1, board, now)
    }

    /// Copies this worker's counters to the board if a second has passed (or `force`).
    pub fn publish(&self, cache: (u64, u64), now: Instant, force: bool) {
        if !force && now < self.next_publish.get() {
            return;
        }
        self.next_publish.set(now + PUBLISH_INTERVAL);
        let snapshot = self.counters.snapshot(cache);
        if let Ok(mut board) = self.board.lock() {
            board.publish(self.worker, snapshot, now);
        }
    }

    /// The sum of every worker's counters, this worker's fresh, and how many workers there are.
    pub fn total(&self, cache: (u64, u64), now: Instant) -> (Snapshot, usize) {
        self.publish(cache, now, true);
        match self.board.lock() {
            Ok(board) => (board.total(), board.workers()),
            Err(_) => (self.counters.snapshot(cache), 1),
        }
    }

    /// The answer to a request for the `--stats` pages, if `request` names one.
    pub fn reply_to(
        &self,
        config: &Config,
        request: &Request,
        cache: (u64, u64),
        now: Instant,
    ) -> Option<Reply> {
        let base = config.study.stats_path.as_deref()?;
        let path = request.path();
        let page = match path.strip_prefix(base)? {
            "" => Page::Live,
            "/metrics" => Page::Metrics,
            "/json" => Page::Json,
            _ => return None,
        };
        if !matches!(request.method, Method::Get | Method::Head) {
            return Some(Reply::error(Status::METHOD_NOT_ALLOWED));
        }
        self.publish(cache, now, true);
        let board = self.board.lock().ok()?;
        let total = board.total();
        let (body, content_type) = match page {
            Page::Live => (page::render(base), "text/html; charset=utf-8"),
            Page::Metrics => (
                stats::render_prometheus(&total, board.workers()),
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            Page::Json => (
                stats::render_json(&total, board.workers(), board.history()),
                "application/json",
            ),
        };
        let fields = Fields {
            content_type: Some(Text::Static(content_type)),
            ..Fields::default()
        };
        Some(Reply {
            status: Status::OK,
            fields,
            body: Body::Bytes(body.into_bytes()),
        })
    }
}

/// The three `--stats` pages.
enum Page {
    /// `PATH`: the live HTML page.
    Live,
    /// `PATH/metrics`: Prometheus text.
    Metrics,
    /// `PATH/json`: JSON.
    Json,
}
