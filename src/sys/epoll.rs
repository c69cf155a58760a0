//! `Poller`: a thin, safe wrapper over `epoll_create1`, `epoll_ctl` and `epoll_wait`.
//!
//! Where this sits in the loop: it *is* the wait at the top of every pass. The reactor
//! registers each file descriptor it cares about with a [`Token`] and an [`Interest`], then
//! calls [`Poller::wait`], which returns the descriptors that are ready as [`Event`]s.
//!
//! # Design notes
//! **Level-triggered, on purpose.** epoll can report readiness two ways (see
//! [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)). Edge-triggered mode reports
//! a change once; a handler must then drain the socket until `EAGAIN`, or it never hears of the
//! leftover data again (mio, which is edge-triggered throughout, explains this in its
//! ["Draining readiness"](https://docs.rs/mio/latest/mio/struct.Poll.html#draining-readiness)
//! section). Level-triggered mode keeps reporting a descriptor while it is ready. That lets a
//! handler stop early, after one `read` or one `sendfile` chunk, and be called again on the
//! next pass: fairness between connections comes for free, and a forgotten drain cannot lose a
//! wakeup. The price is that interest must be accurate: a socket registered for writability
//! with nothing to write would wake every pass, so the reactor asks for `Writable` only while
//! a response is pending.
//!
//! **Edge-triggered, on request** (`--epoll et`). Then a client socket is registered once, for
//! reading *and* writing, and never modified again: no `epoll_ctl` per response, whatever
//! the answer's size. The price is the one epoll(7) warns of: a handler must keep going
//! until `EAGAIN` (or a short read or write, which says the same), because the next event
//! comes only with the next change. The reactor keeps fairness itself, with a ready list of
//! connections that stopped early (see `reactor/mod.rs`). [`Trigger`] names the two modes.
//!
//! `epoll_event` is `packed` on x86-64, so we copy its two fields out by value and never take
//! a reference to them (a reference to a packed field is undefined behaviour).

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::check;

/// Identifies what a registered descriptor belongs to; carried through the kernel in the
/// event's `u64` and handed back with each event.
///
/// The reactor packs a slab slot index and a generation into it (see `slab.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub u64);

/// What readiness we want to hear about for a descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Data (or EOF, or a connection to accept) can be read.
    Readable,
    /// The socket's send buffer has room.
    Writable,
    /// Both: how an edge-triggered client socket is registered, once.
    Both,
}

/// How readiness is reported (epoll(7)): while it lasts, or when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Level-triggered: reported on every wait while the descriptor is ready (the default).
    Level,
    /// Edge-triggered (`EPOLLET`): reported once per change; handlers drain to `EAGAIN`.
    Edge,
}

impl Trigger {
    /// The flag value that selects it: `lt` or `et`.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Level => "lt",
            Trigger::Edge => "et",
        }
    }
}

impl Interest {
    /// The epoll flag bits for this interest. Errors and hang-ups are always reported.
    pub fn bits(self, trigger: Trigger) -> u32 {
        let readable = libc::EPOLLIN as u32 | libc::EPOLLRDHUP as u32;
        let interest = match self {
            Interest::Readable => readable,
            Interest::Writable => libc::EPOLLOUT as u32,
            Interest::Both => readable | libc::EPOLLOUT as u32,
        };
        match trigger {
            Trigger::Level => interest,
            Trigger::Edge => interest | libc::EPOLLET as u32,
        }
    }
}

/// epoll flag bits, shown by name (`IN OUT RDHUP HUP ERR ET`) in trace lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags(pub u32);

impl std::fmt::Display for Flags {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const NAMES: [(libc::c_int, &str); 6] = [
            (libc::EPOLLIN, "IN"),
            (libc::EPOLLOUT, "OUT"),
            (libc::EPOLLRDHUP, "RDHUP"),
            (libc::EPOLLHUP, "HUP"),
            (libc::EPOLLERR, "ERR"),
            (libc::EPOLLET, "ET"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.0 & bit as u32 != 0 {
                if !first {
                    f.write_str(" ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

/// One readiness report, copied out of the kernel's packed `epoll_event`.
///
/// Readiness is a hint: handlers try the I/O and let its result decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The token the descriptor was registered with.
    pub token: Token,
    /// `EPOLLIN`: a read would not block.
    pub readable: bool,
    /// `EPOLLOUT`: a write would not block.
    pub writable: bool,
    /// `EPOLLERR`: the socket has a pending error.
    pub error: bool,
    /// `EPOLLHUP` or `EPOLLRDHUP`: the peer closed (at least its sending side).
    pub hangup: bool,
    /// All the bits, for trace lines.
    pub flags: Flags,
}

/// A reusable buffer that `epoll_wait` fills.
pub struct Events {
    /// The kernel's array; its length is the number of events from the last wait.
    list: Vec<libc::epoll_event>,
}

impl Events {
    /// A buffer that takes at most `capacity` events per wait.
    pub fn with_capacity(capacity: usize) -> Events {
        Events {
            list: Vec::with_capacity(capacity),
        }
    }

    /// The events from the last wait, copied out of the packed kernel struct.
    pub fn iter(&self) -> impl Iterator<Item = Event> + '_ {
        self.list.iter().map(|raw| {
            // Copy by value: never reference a field of the packed struct.
            let flags = raw.events;
            let data = raw.u64;
            Event {
                token: Token(data),
                readable: flags & libc::EPOLLIN as u32 != 0,
                writable: flags & libc::EPOLLOUT as u32 != 0,
                error: flags & libc::EPOLLERR as u32 != 0,
                hangup: flags & (libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0,
                flags: Flags(flags),
            }
        })
    }

    /// How many events the last wait returned.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether the last wait returned no events (it timed out).
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}

/// An epoll instance.
pub struct Poller {
    /// The epoll descriptor, closed on drop.
    epoll: OwnedFd,
}

impl Poller {
    /// Creates an epoll instance (close-on-exec, so no child inherits it).
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE`/`ENOMEM` from `epoll_create1`.
    pub fn new() -> io::Result<Poller> {
        // SAFETY: epoll_create1 takes no pointers; the flag is a valid constant.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: the call succeeded, so `fd` is a new descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poller { epoll })
    }

    /// Starts reporting readiness on `fd` for the epoll flag bits `flags` (from
    /// [`Interest::bits`]), tagged with `token`.
    ///
    /// # Errors
    /// `EEXIST` if `fd` is already registered, `ENOMEM`/`ENOSPC` if the kernel is out of room.
    pub fn register(&self, fd: &impl AsFd, token: Token, flags: u32) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, token, flags)
    }

    /// Changes the token or flag bits of a registered `fd`.
    ///
    /// # Errors
    /// `ENOENT` if `fd` is not registered.
    pub fn reregister(&self, fd: &impl AsFd, token: Token, flags: u32) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, token, flags)
    }

    /// Stops reporting `fd`. Call it before dropping a registered descriptor: epoll tracks the
    /// open file description, not the number, and the explicit call makes the lifecycle visible.
    ///
    /// # Errors
    /// `ENOENT` if `fd` is not registered.
    pub fn deregister(&self, fd: &impl AsFd) -> io::Result<()> {
        self.deregister_number(fd.as_fd().as_raw_fd())
    }

    /// `EPOLL_CTL_DEL` by descriptor *number*, which may already be closed (then the kernel
    /// says `EBADF`, as `--lab-bug close-before-deregister` shows).
    ///
    /// # Errors
    /// `EBADF` for a closed number; `ENOENT` if it is open but not registered.
    pub fn deregister_number(&self, raw_fd: RawFd) -> io::Result<()> {
        // SAFETY: `self.epoll` is owned; `raw_fd` is a number the kernel checks (EBADF if closed),
        // and the event pointer may be null for EPOLL_CTL_DEL since Linux 2.6.9.
        check(unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_DEL,
                raw_fd,
                std::ptr::null_mut(),
            )
        })?;
        Ok(())
    }

    /// The shared body of `register` and `reregister`.
    fn control(&self, op: libc::c_int, fd: &impl AsFd, token: Token, flags: u32) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: flags,
            u64: token.0,
        };
        let raw_fd = fd.as_fd().as_raw_fd();
        // SAFETY: both descriptors are live (owned and borrowed); `event` is a valid local
        // that the kernel only reads during the call.
        check(unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, raw_fd, &mut event) })?;
        Ok(())
    }

    /// Waits until at least one registered descriptor is ready, or `timeout` passes
    /// (`None`: wait forever), and fills `events` with at most `max_events` of them (at most
    /// its capacity).
    ///
    /// The timeout is rounded *up* to whole milliseconds, so a 0.3 ms deadline does not
    /// become a busy loop of zero-millisecond waits (mio does the same).
    ///
    /// # Errors
    /// `Interrupted` when a signal arrived first (the caller simply waits again).
    pub fn wait(
        &self,
        events: &mut Events,
        timeout: Option<Duration>,
        max_events: usize,
    ) -> io::Result<()> {
        let timeout_ms = match timeout {
            None => -1,
            Some(duration) => {
                let rounded_up = duration.as_nanos().div_ceil(1_000_000);
                libc::c_int::try_from(rounded_up).unwrap_or(libc::c_int::MAX)
            }
        };
        let capacity = max_events.clamp(1, events.list.capacity());
        let capacity = libc::c_int::try_from(capacity).unwrap_or(libc::c_int::MAX);
        events.list.clear();
        // SAFETY: the epoll descriptor is owned and live; the pointer is the Vec's allocation
        // and `capacity` is at most its capacity, so the kernel stays inside it.
        let ready = check(unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                events.list.as_mut_ptr(),
                capacity,
                timeout_ms,
            )
        })?;
        let ready =
            usize::try_from(ready).expect("invariant: epoll_wait never returns a negative count");
        // SAFETY: the kernel initialised the first `ready` entries, and `ready` is at most the
        // capacity we passed.
        unsafe { events.list.set_len(ready) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn one_written_byte_yields_one_readable_event_with_its_token() {
        let poller = Poller::new().unwrap();
        let (mut writer, reader) = UnixStream::pair().unwrap();
        poller
            .register(&reader, Token(42), Interest::Readable.bits(Trigger::Level))
            .unwrap();
        let mut events = Events::with_capacity(8);

        poller.wait(&mut events, Some(Duration::ZERO), 8).unwrap();
        assert!(events.is_empty(), "nothing written yet");

        writer.write_all(b"x").unwrap();
        poller
            .wait(&mut events, Some(Duration::from_secs(5)), 8)
            .unwrap();
        let got: Vec<Event> = events.iter().collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].token, Token(42));
        assert!(got[0].readable && !got[0].writable);
    }

    #[test]
    fn writable_interest_reports_an_empty_send_buffer_and_deregister_silences_it() {
        let poller = Poller::new().unwrap();
        let (sock, _peer) = UnixStream::pair().unwrap();
        poller
            .register(&sock, Token(7), Interest::Readable.bits(Trigger::Level))
            .unwrap();
        poller
            .reregister(&sock, Token(7), Interest::Writable.bits(Trigger::Level))
            .unwrap();
        let mut events = Events::with_capacity(8);
        poller
            .wait(&mut events, Some(Duration::from_secs(5)), 8)
            .unwrap();
        assert!(events.iter().any(|e| e.token == Token(7) && e.writable));

        poller.deregister(&sock).unwrap();
        poller.wait(&mut events, Some(Duration::ZERO), 8).unwrap();
        assert!(events.is_empty());
    }

    #[test]
    fn peer_close_is_reported_as_hangup() {
        let poller = Poller::new().unwrap();
        let (sock, peer) = UnixStream::pair().unwrap();
        poller
            .register(&sock, Token(1), Interest::Readable.bits(Trigger::Level))
            .unwrap();
        drop(peer);
        let mut events = Events::with_capacity(8);
        poller
            .wait(&mut events, Some(Duration::from_secs(5)), 8)
            .unwrap();
        assert!(events.iter().any(|e| e.hangup && e.readable));
    }

    #[test]
    fn edge_triggered_reports_a_change_once_and_level_triggered_while_it_lasts() {
        let poller = Poller::new().unwrap();
        let (mut writer, edge) = UnixStream::pair().unwrap();
        let (mut writer2, level) = UnixStream::pair().unwrap();
        poller
            .register(&edge, Token(1), Interest::Readable.bits(Trigger::Edge))
            .unwrap();
        poller
            .register(&level, Token(2), Interest::Readable.bits(Trigger::Level))
            .unwrap();
        writer.write_all(b"x").unwrap();
        writer2.write_all(b"x").unwrap();
        let mut events = Events::with_capacity(8);
        let mut seen = Vec::new();
        for _ in 0..2 {
            poller
                .wait(&mut events, Some(Duration::from_millis(50)), 8)
                .unwrap();
            seen.push(events.iter().map(|e| e.token.0).collect::<Vec<_>>());
        }
        // Nobody read: level-triggered reports again, edge-triggered does not.
        assert!(seen[0].contains(&1) && seen[0].contains(&2), "{seen:?}");
        assert_eq!(seen[1], vec![2], "{seen:?}");
    }

    #[test]
    fn flags_are_shown_by_name() {
        let bits = Interest::Both.bits(Trigger::Edge);
        assert_eq!(Flags(bits).to_string(), "IN OUT RDHUP ET");
        assert_eq!(Flags(0).to_string(), "");
    }

    #[test]
    fn max_events_caps_one_wait() {
        let poller = Poller::new().unwrap();
        let (mut a, a_peer) = UnixStream::pair().unwrap();
        let (mut b, b_peer) = UnixStream::pair().unwrap();
        let level = Interest::Readable.bits(Trigger::Level);
        poller.register(&a_peer, Token(1), level).unwrap();
        poller.register(&b_peer, Token(2), level).unwrap();
        a.write_all(b"x").unwrap();
        b.write_all(b"x").unwrap();
        let mut events = Events::with_capacity(8);
        poller
            .wait(&mut events, Some(Duration::from_secs(5)), 1)
            .unwrap();
        assert_eq!(events.len(), 1);
    }
}
