//! systemd socket activation: the listening sockets a service manager passes to us.
//!
//! Where this sits in the loop: before it. `reactor::workers::run` asks for passed sockets
//! first and binds its own only when there are none.
//!
//! # Design notes
//! The protocol ([sd_listen_fds(3)](https://man7.org/linux/man-pages/man3/sd_listen_fds.3.html))
//! is two environment variables: `LISTEN_PID` (the pid the sockets are meant for, so a child
//! that inherits the environment does not take them too) and `LISTEN_FDS` (how many; they are
//! descriptors 3, 4, …). We check that each one is a listening socket, take ownership of it,
//! make it non-blocking and close-on-exec, and remove the variables, as `sd_listen_fds(1)` does.
//! This gives zero-downtime restarts (the manager keeps the socket while epollo restarts) and
//! privileged ports without running epollo as root.

use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::socket::{getsockopt, sockopt};

/// The first descriptor a service manager passes (`SD_LISTEN_FDS_START`).
const FIRST_PASSED_FD: RawFd = 3;

/// The listening sockets passed to this process, if `LISTEN_PID` names it; empty otherwise.
///
/// # Errors
/// A passed descriptor that is not a listening stream socket, or `LISTEN_FDS` that is not a
/// number; the message says which.
pub fn passed_listeners() -> io::Result<Vec<TcpListener>> {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        == Some(std::process::id());
    if !for_us {
        return Ok(Vec::new());
    }
    let count: RawFd = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other("LISTEN_FDS is not a number (socket activation)"))?;
    forget_activation_variables();
    (FIRST_PASSED_FD..FIRST_PASSED_FD.saturating_add(count))
        .map(take_listener)
        .collect()
}

/// Takes passed descriptor `fd` as a non-blocking, close-on-exec listener.
fn take_listener(fd: RawFd) -> io::Result<TcpListener> {
    // The socket activation protocol hands descriptors 3..3+LISTEN_FDS to this process
    // (LISTEN_PID says so); a number that is not open makes the checks below fail (EBADF).
    // SAFETY: by that protocol the descriptor is ours, taken exactly once, owned by no one else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let listening = getsockopt(&owned, sockopt::AcceptConn).map_err(|e| {
        io::Error::other(format!(
            "socket activation: descriptor {fd} is not a listening socket ({e})"
        ))
    });
    let listening = match listening {
        Ok(listening) => listening,
        Err(e) => {
            std::mem::forget(owned); // not ours to close: it may not even be open
            return Err(e);
        }
    };
    if !listening {
        return Err(io::Error::other(format!(
            "socket activation: descriptor {fd} is a socket that is not listening"
        )));
    }
    fcntl(&owned, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    let flags = OFlag::from_bits_truncate(fcntl(&owned, FcntlArg::F_GETFL)?);
    fcntl(&owned, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(TcpListener::from(owned))
}

/// Removes `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES`, so no child (`--open`'s browser)
/// believes the sockets are its own.
fn forget_activation_variables() {
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        // SAFETY: called at startup, before any other thread exists (workers start later),
        // so nothing reads the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
}
