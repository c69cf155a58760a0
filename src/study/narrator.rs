//! The one narrator: each system call a connection makes is reported here once, right after
//! it, and counted (the statistics) and traced (`--trace`) in that one call. So a counter and
//! a trace line can never disagree, and an I/O site cannot forget either.
//!
//! Where this sits in the loop: the connection's I/O leaves (`connection/socket.rs`) call
//! [`Study::recv`], [`Study::wrote`], [`Study::peeked`] and [`Study::shut_write`]; its one
//! state-changing function calls [`Study::moved`]. The reactor narrates its own calls
//! (`epoll_wait`, `epoll_ctl`, `accept4`) in `reactor/registry.rs` and `accepting.rs`.
//! `log` is kept for what an operator wants (debug, info, warn), never for this.

use std::io;
use std::os::fd::RawFd;

use super::Study;
use super::stats::Count;
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

    /// A `recv` with `MSG_PEEK` that looked whether the client is still there.
    pub fn peeked(&self, id: u64, fd: RawFd, gone: bool) {
        let said = if gone { "gone" } else { "there" };
        trace_conn!(self.trace, id, "recv fd={fd} conn={id} peek {said}");
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

    /// `setsockopt(TCP_CORK)` on connection `id`'s socket: `on` before a large body, off
    /// after its last byte.
    pub fn corked(&self, id: u64, fd: RawFd, on: bool, result: &io::Result<()>) {
        let value = u8::from(on);
        match result {
            Ok(()) => trace_conn!(
                self.trace,
                id,
                "setsockopt fd={fd} conn={id} TCP_CORK={value}"
            ),
            Err(e) => trace_conn!(
                self.trace,
                id,
                "setsockopt fd={fd} conn={id} TCP_CORK={value} error={}",
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
