//! `--trace`: one line per thing the loop does, in a stable format a learner can put next to
//! `strace -f` output.
//!
//! Where this sits in the loop: everywhere, and nowhere when off. Every system call the loop
//! makes on a socket, the epoll set, the signalfd, inotify or a file gets exactly one line,
//! right after it, with its result (a test holds each walkthrough scenario's `strace -f`
//! against this): the reactor's `epoll_wait`, `epoll_ctl`, `accept4`, `close`, and its `read`s of the
//! control descriptor and inotify; the connection's `recv`, `send`, `sendfile` and
//! `shutdown` (`study/narrator.rs`). Lines that are not system calls tell
//! what the loop made of them: each event, each state change, deadlines, the ready list, and
//! each inotify event. The file-system calls of a request (`openat2`, `statx`, `readlink`,
//! `pread64`, `getdents64`, `newfstatat`, `inotify_add_watch`, `close`) get their lines from
//! `site/disk.rs` and `site/watcher.rs`, through the narrator's thread-local. Each line is
//! written to stderr at once, in one `write(2, …)`: under `strace -f` it appears right after
//! the system call it describes, and it never falls out of order with log lines. (That costs a system call per line, which is why `--trace conn=N` exists
//! for tracing under load.)
//!
//! # The line format (stable; the walkthrough's tests compare against it)
//! ```text
//! SECONDS WHAT key=value ...
//! 0.000412 epoll_wait ready=1 timeout=-1 blocked=3.052ms
//! 0.000431 event fd=3 token=listener IN
//! 0.000460 accept4 fd=7 conn=1 peer=127.0.0.1:40122
//! 0.000482 recv fd=7 conn=1 n=78
//! 0.000490 state conn=1 idle -> reading
//! 0.000533 send fd=7 conn=1 n=245
//! 0.000561 epoll_ctl ADD fd=7 token=0:1 conn=1 IN RDHUP
//! 0.250702 deadline conn=1 kind=idle
//! 1.204551 inotify wd=1 mask=IN_MODIFY name=index.html
//! ```
//! With `--trace conn=N`, only lines about that connection are written, each `epoll_wait`
//! that returned one of its events just before them.
//! `SECONDS` is the time since the server started. `WHAT` is the system call's own name where
//! there is one, so `grep sendfile` finds both sides. An I/O line says `n=BYTES`, `n=0` (the
//! peer closed), `EAGAIN`, or `short` after a `send`/`sendfile` that took less than it was
//! offered. A token is `SLOT:GENERATION` (see `reactor/slab.rs`), or the name of a reserved
//! token. With `--workers N` above 1, each line starts with `wN ` (the worker's number).
//!
//! # Design notes
//! **Zero cost when off.** Every trace point is `if tracer.wants(id) { tracer.line(…) }`: the
//! format arguments are built only inside the branch, so with tracing off a request pays one
//! predictable branch per point. Built without the `trace` cargo feature, `wants` is a
//! constant `false` and the compiler removes the points entirely; `benches/wrk.sh` compares
//! the two builds.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::time::Instant;

/// What `--trace` asked to see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceFilter {
    /// No tracing (the default).
    Off,
    /// Every line.
    All,
    /// Only the lines about one connection (`--trace conn=N`), so one story stays readable
    /// under load.
    Conn(u64),
}

/// Writes trace lines for one worker.
pub struct Tracer {
    /// What to show.
    filter: TraceFilter,
    /// When the server started: lines carry the seconds since.
    start: Instant,
    /// `wN ` with several workers, else empty.
    prefix: String,
    /// The line being formatted (reused, so tracing allocates only to grow it).
    line: RefCell<String>,
    /// With `--trace conn=N`: the last `epoll_wait` line, not shown yet; shown before the
    /// first line about connection N that follows it.
    pending_wait: RefCell<Option<String>>,
}

impl Tracer {
    /// A tracer showing what `filter` asks for; `worker` is `Some(n)` when there are several.
    pub fn new(filter: TraceFilter, start: Instant, worker: Option<usize>) -> Tracer {
        let filter = if cfg!(feature = "trace") {
            filter
        } else {
            TraceFilter::Off
        };
        Tracer {
            filter,
            start,
            prefix: worker.map(|n| format!("w{n} ")).unwrap_or_default(),
            line: RefCell::new(String::new()),
            pending_wait: RefCell::new(None),
        }
    }

    /// Whether lines about the loop itself (not about one connection) are shown.
    #[inline]
    pub fn wants_loop(&self) -> bool {
        cfg!(feature = "trace") && self.filter == TraceFilter::All
    }

    /// Whether lines about connection `id` are shown.
    #[inline]
    pub fn wants(&self, id: u64) -> bool {
        cfg!(feature = "trace")
            && match self.filter {
                TraceFilter::Off => false,
                TraceFilter::All => true,
                TraceFilter::Conn(wanted) => wanted == id,
            }
    }

    /// Writes one line (the caller has checked `wants`). A failing stderr loses trace lines,
    /// never requests.
    pub fn line(&self, what: fmt::Arguments) {
        let pending = self.pending_wait.borrow_mut().take();
        let mut line = self.line.borrow_mut();
        line.clear();
        if let Some(wait) = pending {
            line.push_str(&wait); // the wait that returned this connection's event
        }
        let seconds = self.start.elapsed().as_secs_f64();
        let _ = writeln!(line, "{}{seconds:.6} {what}", self.prefix);
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    /// The line of an `epoll_wait` that returned: written now when tracing everything; with
    /// `--trace conn=N`, kept (with the time it returned) and written just before the next
    /// line about connection N, so that its story shows the wait that woke it, and waits
    /// that did not concern it stay out.
    pub fn wait_line(&self, what: fmt::Arguments) {
        match self.filter {
            TraceFilter::All if cfg!(feature = "trace") => self.line(what),
            TraceFilter::Conn(_) if cfg!(feature = "trace") => {
                let seconds = self.start.elapsed().as_secs_f64();
                let kept = format!("{}{seconds:.6} {what}\n", self.prefix);
                *self.pending_wait.borrow_mut() = Some(kept);
            }
            _ => {}
        }
    }
}

/// Writes a trace line about connection `$id` if it is wanted; the arguments are formatted
/// only then.
#[macro_export]
macro_rules! trace_conn {
    ($tracer:expr, $id:expr, $($arg:tt)*) => {
        if $tracer.wants($id) {
            $tracer.line(format_args!($($arg)*));
        }
    };
}

/// Writes a trace line about the loop itself if tracing shows everything.
#[macro_export]
macro_rules! trace_loop {
    ($tracer:expr, $($arg:tt)*) => {
        if $tracer.wants_loop() {
            $tracer.line(format_args!($($arg)*));
        }
    };
}

/// Parses the value of `--trace`: `conn=N`.
///
/// # Errors
/// A message naming the expected shape.
pub fn parse_filter(text: &str) -> Result<TraceFilter, String> {
    match text.strip_prefix("conn=").map(str::parse::<u64>) {
        Some(Ok(id)) => Ok(TraceFilter::Conn(id)),
        _ => Err(format!("expected conn=N, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_parses_conn_ids_and_nothing_else() {
        assert_eq!(parse_filter("conn=7"), Ok(TraceFilter::Conn(7)));
        assert!(parse_filter("conn=").is_err());
        assert!(parse_filter("7").is_err());
        assert!(parse_filter("conn=x").is_err());
    }

    #[test]
    fn a_connection_filter_shows_that_connection_only() {
        let tracer = Tracer::new(TraceFilter::Conn(7), Instant::now(), None);
        assert!(tracer.wants(7) || !cfg!(feature = "trace"));
        assert!(!tracer.wants(8));
        assert!(!tracer.wants_loop());
        let off = Tracer::new(TraceFilter::Off, Instant::now(), None);
        assert!(!off.wants(7) && !off.wants_loop());
    }
}
