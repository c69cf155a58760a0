//! The one narrator: each system call a connection makes is reported here once, right after
//! it, and counted (the statistics) and traced (`--trace`) in that one call. So a counter and
//! a trace line can never disagree, and an I/O site cannot forget either.
//!
//! Where this sits in the loop: the connection's I/O leaves (`connection/socket.rs`) call
//! [`Study::recv`], [`Study::wrote`], [`Study::peeked`] and [`Study::shut_write`]; its one
//! state-changing function calls [`Study::moved`]. The reactor narrates its own calls
//! (`epoll_wait`, `epoll_ctl`, `accept4`) in `reactor/registry.rs` and `accepting.rs`.
//! `log` is kept for what an operator wants (debug, info, warn), never for this.
//!
//! The file-system calls a request needs (`openat2`, `statx`, `pread64`, `close` and the rest,
//! all made in `site/disk.rs`) are narrated through [`file_call`]: the site sits below the
//! connection, and passing the narrator down every lookup would put the study into every
//! signature, so each worker thread hears of them through a thread-local, as `log` hears
//! through its global logger. The reactor says which connection the calls are for
//! ([`serving`]) before it hands a connection an event.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use super::Study;
use super::stats::Count;
use super::trace::Tracer;
use crate::trace_conn;

/// Which call sent bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// `send` of bytes in our buffer.
    Send,
    /// `sendfile` from an open file.
    Sendfile,
}

impl Syscall {
    /// The call's own name, as strace shows it.
    fn name(self) -> &'static str {
        match self {
            Syscall::Send => "send",
            Syscall::Sendfile => "sendfile",
        }
    }
}

impl Study {
    /// One `recv` on connection `id`'s socket `fd`, and what it gave.
    pub fn recv(&self, id: u64, fd: RawFd, result: &io::Result<usize>) {
        match result {
            Ok(bytes) => {
                self.counters.bump(Count::Reads);
                trace_conn!(self.trace, id, "recv fd={fd} conn={id} n={bytes}");
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.counters.bump(Count::ReadsEagain);
                trace_conn!(self.trace, id, "recv fd={fd} conn={id} EAGAIN");
            }
            Err(e) => trace_conn!(self.trace, id, "recv fd={fd} conn={id} error={}", e.kind()),
        }
    }

    /// One `send` or `sendfile` of `offered` bytes on connection `id`'s socket `fd`, and what
    /// it gave (fewer than offered: `short`, the send buffer is full).
    pub fn wrote(
        &self,
        id: u64,
        fd: RawFd,
        call: Syscall,
        offered: usize,
        result: &io::Result<usize>,
    ) {
        let name = call.name();
        match result {
            Ok(bytes) => {
                let counters = &self.counters;
                counters.bump(Count::Writes);
                let short = *bytes < offered;
                if short {
                    counters.bump(Count::WritesShort);
                }
                let kind = match call {
                    Syscall::Sendfile => Count::BytesSendfile,
                    Syscall::Send => Count::BytesCopied,
                };
                counters.add(kind, *bytes as u64);
                let note = if short { " short" } else { "" };
                trace_conn!(self.trace, id, "{name} fd={fd} conn={id} n={bytes}{note}");
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.counters.bump(Count::WritesEagain);
                trace_conn!(self.trace, id, "{name} fd={fd} conn={id} EAGAIN");
            }
            Err(e) => trace_conn!(
                self.trace,
                id,
                "{name} fd={fd} conn={id} error={}",
                e.kind()
            ),
        }
    }

    /// A `recv` with `MSG_PEEK`: whether the client is still there, or has sent something.
    pub fn peeked(&self, id: u64, fd: RawFd, result: &nix::Result<usize>) {
        match result {
            Ok(n) => trace_conn!(self.trace, id, "recv fd={fd} conn={id} peek n={n}"),
            Err(nix::errno::Errno::EAGAIN) => {
                trace_conn!(self.trace, id, "recv fd={fd} conn={id} peek EAGAIN")
            }
            Err(e) => trace_conn!(self.trace, id, "recv fd={fd} conn={id} peek error={e:?}"),
        }
    }

    /// `shutdown(SHUT_WR)`: our side of connection `id` is closed after its last answer.
    pub fn shut_write(&self, id: u64, fd: RawFd, result: &io::Result<()>) {
        match result {
            Ok(()) => trace_conn!(self.trace, id, "shutdown fd={fd} conn={id} SHUT_WR"),
            Err(e) => trace_conn!(
                self.trace,
                id,
                "shutdown fd={fd} conn={id} SHUT_WR error={}",
                e.kind()
            ),
        }
    }

    /// Connection `id` moved from one state to another (gauges as
    /// [`super::stats::STATES`] numbers them; `None`: closed).
    pub fn moved(&self, id: u64, (from, to): (&str, &str), gauges: (Option<usize>, Option<usize>)) {
        self.counters.moved(gauges.0, gauges.1);
        trace_conn!(self.trace, id, "state conn={id} {from} -> {to}");
    }
}

thread_local! {
    /// This thread's worker's study, told of the file-system calls its site makes.
    static FILE_CALLS_TO: RefCell<Option<Rc<Study>>> = const { RefCell::new(None) };
    /// The connection those calls are made for (0: the loop's own, e.g. a cache flush).
    static SERVING: Cell<u64> = const { Cell::new(0) };
}

/// Makes `study` hear of the file-system calls made on this thread (each worker at start).
pub fn hear_file_calls(study: &Rc<Study>) {
    FILE_CALLS_TO.with(|to| *to.borrow_mut() = Some(Rc::clone(study)));
}

/// The connection the file-system calls that follow are made for; 0 for the loop's own.
pub fn serving(id: u64) {
    SERVING.with(|serving| serving.set(id));
}

/// How a file-system call's line names the connection it was made for: ` conn=N`, or
/// nothing when the loop made it for itself.
#[derive(Clone, Copy)]
pub struct For(pub u64);

impl fmt::Display for For {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            id => write!(f, " conn={id}"),
        }
    }
}

/// One file-system call, just made: `say` writes its line if the tracer shows lines about
/// the connection it was made for, and the call is counted.
pub fn file_call(say: impl FnOnce(&Tracer, For)) {
    FILE_CALLS_TO.with(|to| {
        if let Some(study) = to.borrow().as_ref() {
            study.counters.bump(Count::FileCalls);
            let id = SERVING.with(Cell::get);
            let shown = match id {
                0 => study.trace.wants_loop(),
                id => study.trace.wants(id),
            };
            if shown {
                say(&study.trace, For(id));
            }
        }
    });
}

/// Narrates one file-system call: `trace_file!(conn => "statx fd={fd}{conn} size={n}")`,
/// where `conn` becomes ` conn=N` (see [`For`]). The line is formatted only if it is shown.
#[macro_export]
macro_rules! trace_file {
    ($conn:ident => $($arg:tt)*) => {
        $crate::study::narrator::file_call(|tracer, $conn| tracer.line(format_args!($($arg)*)))
    };
}
