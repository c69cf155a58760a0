//! The syscall layer: the only place in epollo allowed to say `unsafe`.
//!
//! Where this sits in the loop: underneath it. `epoll.rs` wraps the three epoll calls the
//! reactor is built on; this file holds the few other raw calls that neither std nor nix offers
//! in the shape we need (`accept4` that also returns the peer address, a listener with our own
//! backlog). Everything above this module is safe Rust.
//!
//! # Design notes
//! Each `unsafe` block wraps exactly one libc call and says why its arguments are valid. We do
//! not hide calls behind a `syscall!` macro (as mio does): the macro leaves no place for the
//! per-call `// SAFETY:` comment. One helper, `check`, turns the C convention of returning
//! `-1` and setting `errno` into an `io::Error`.
#![allow(unsafe_code)]

pub mod activation;
pub mod counting_alloc;
pub mod epoll;

use std::io;
use std::mem;
use std::net::{
    Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpListener, TcpStream,
};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use nix::sys::socket::{
    self, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, sockopt,
};

/// Turns a libc return value into `io::Result`: `-1` means "look at errno".
pub(crate) fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// Opens a non-blocking listening socket on `addr` with our own backlog and `TCP_NODELAY`.
///
/// std's `TcpListener::bind` picks the backlog itself and returns a blocking socket; we want
/// [`crate::limits::LISTEN_BACKLOG`] and `SOCK_NONBLOCK`, and nix gives us both safely.
///
/// # Errors
/// Whatever `socket`, `bind` or `listen` report: most often `AddrInUse` or `PermissionDenied`.
/// With `reuse_port`, several listeners (one per worker) may bind the same address and the
/// kernel spreads new connections over them (`SO_REUSEPORT`).
pub fn listen(
    addr: SocketAddr,
    backlog: i32,
    reuse_port: bool,
    defer_accept_secs: u32,
) -> io::Result<TcpListener> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let fd = socket::socket(family, SockType::Stream, flags, None)?;
    // A restarted server can bind at once although old connections sit in TIME_WAIT.
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if reuse_port {
        socket::setsockopt(&fd, sockopt::ReusePort, &true)?;
    }
    // Accepted sockets inherit TCP_NODELAY from the listener on Linux, which saves a
    // setsockopt per connection. We write whole responses (a head followed by a file is
    // sent with MSG_MORE), so Nagle's algorithm could only delay the last small segment.
    socket::setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    let backlog = Backlog::new(backlog).unwrap_or(Backlog::MAXCONN);
    socket::listen(&fd, backlog)?;
    if defer_accept_secs > 0 {
        set_defer_accept(&fd, defer_accept_secs)?;
    }
    Ok(TcpListener::from(fd))
}

/// Whether `fd` is readable at once, by a `poll` that does not wait: for a listener, whether
/// a connection waits in its accept queue.
pub fn readable_now(fd: &impl AsFd) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    Ok(poll(&mut fds, PollTimeout::ZERO)? > 0)
}

/// `TCP_CONGESTION` on a listener: the congestion control its accepted connections use
/// (they inherit one set this way; without it, each gets the system's at accept).
///
/// # Errors
/// `ENOENT` for a name the kernel does not know, `EPERM` for one not in
/// `net.ipv4.tcp_allowed_congestion_control` without `CAP_NET_ADMIN`.
pub fn set_congestion(listener: &impl AsFd, name: &str) -> io::Result<()> {
    let name = std::ffi::OsString::from(name);
    socket::setsockopt(listener, sockopt::TcpCongestion, &name).map_err(io::Error::from)
}

/// The congestion control of a socket (a listener's: what its connections get).
pub fn congestion(socket: &impl AsFd) -> io::Result<String> {
    let name = socket::getsockopt(socket, sockopt::TcpCongestion)?;
    Ok(name.to_string_lossy().trim_end_matches('\0').to_string())
}

/// `TCP_DEFER_ACCEPT` on a listener: a connection is queued for `accept` only once data
/// arrived on it (or, silent, after about `secs`). nix has no `TCP_DEFER_ACCEPT`.
fn set_defer_accept(listener: &impl AsFd, secs: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
    // SAFETY: the listener is borrowed, so its fd is open for the call; the pointer and
    // length describe `value`, a c_int that lives across the call and that the kernel reads.
    check(unsafe {
        libc::setsockopt(
            listener.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&raw const value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Accepts one connection as a non-blocking, close-on-exec socket, with its peer address.
///
/// nix's `accept4` does not return the peer address and std's `accept` cannot set
/// `SOCK_NONBLOCK`, so this is the one raw call: it saves a `getpeername` or an `ioctl` per
/// connection.
///
/// # Errors
/// `WouldBlock` when the queue is empty (control flow, not failure); `EMFILE`/`ENFILE` when we
/// are out of descriptors; `ECONNABORTED` when a client left before we accepted it.
pub fn accept4(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    // SAFETY: sockaddr_storage is plain old data, for which all-zero bytes are a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    let address = (&raw mut storage).cast::<libc::sockaddr>();
    // SAFETY: the listener's fd is open for the call (borrowed); `address` and `len` point to
    // live locals, and `len` is the true size of `storage`, so the kernel stays inside it.
    let fd = check(unsafe { libc::accept4(listener.as_raw_fd(), address, &mut len, flags) })?;
    // SAFETY: accept4 succeeded, so `fd` is a new descriptor that nothing else owns.
    let stream = TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok((stream, peer_address(&storage)?))
}

/// Reads the address the kernel wrote into `storage` during `accept4`.
fn peer_address(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    let raw = storage as *const libc::sockaddr_storage;
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the kernel wrote a sockaddr_in; sockaddr_storage is
            // larger than it and aligned for every socket address type.
            let v4 = unsafe { &*raw.cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*raw.cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
            let port = u16::from_be(v6.sin6_port);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                ip,
                port,
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        family => Err(io::Error::other(format!(
            "unexpected address family {family}"
        ))),
    }
}

/// Writes `buf` to a socket without raising SIGPIPE, optionally telling the kernel that more
/// data follows (`MSG_MORE`), so a response head and the file body that `sendfile` sends next
/// leave in full packets instead of a small head packet first (and the last bytes before a
/// close share their packet with the FIN). nix has no `MSG_MORE`.
///
/// # Errors
/// `WouldBlock` when the send buffer is full (control flow); `BrokenPipe` or
/// `ConnectionReset` when the peer has gone.
pub fn send(socket: &impl AsFd, buf: &[u8], more_follows: bool) -> io::Result<usize> {
    let more = if more_follows { libc::MSG_MORE } else { 0 };
    // MSG_NOSIGNAL: a departed peer gives EPIPE instead of SIGPIPE. (Rust binaries ignore
    // SIGPIPE anyway; this makes us independent of that.)
    let flags = libc::MSG_NOSIGNAL | more;
    // SAFETY: the socket is borrowed, so its fd is open for the call; the pointer and length
    // describe `buf`, which the kernel only reads.
    let sent = unsafe {
        libc::send(
            socket.as_fd().as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            flags,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// Asks the allocator to hand the freed pages of its heaps back to the kernel (glibc keeps
/// them for reuse otherwise; see `reactor/memory.rs`). Returns whether any went back.
#[cfg(target_env = "gnu")]
pub fn malloc_trim() -> bool {
    // SAFETY: malloc_trim takes no pointer; it walks the allocator's own heaps under their
    // locks, so it is sound at any time from any thread.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other C libraries have no `malloc_trim`: nothing to do.
#[cfg(not(target_env = "gnu"))]
pub fn malloc_trim() -> bool {
    false
}

/// Reads directory entries from `dir` into `buf` (`getdents64`): the bytes of
/// `struct linux_dirent64` records, parsed by `site/disk.rs`. Returns how many bytes were
/// filled, 0 at the end. Called directly rather than through libc's `readdir`, whose hidden
/// buffer decides when the call happens: the trace shows each call where it is made.
pub fn getdents(dir: &impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call, and the
    // kernel writes at most that many; `dir` is an open descriptor we borrow.
    let filled = unsafe {
        libc::syscall(
            libc::SYS_getdents64,
            dir.as_fd().as_raw_fd(),
            buf.as_mut_ptr(),
            buf.len(),
        )
    };
    match filled {
        -1 => Err(io::Error::last_os_error()),
        n => Ok(usize::try_from(n).unwrap_or(0)),
    }
}

/// Closes `fd` and says how that went (dropping an `OwnedFd` closes it too, but throws the
/// result away, and the trace wants the line after the call).
pub fn close(fd: OwnedFd) -> io::Result<()> {
    let raw = fd.into_raw_fd();
    // SAFETY: `into_raw_fd` gave up ownership of `raw`, so nothing else closes or uses it;
    // it is closed exactly once, here.
    check(unsafe { libc::close(raw) }).map(drop)
}
