//! Orders from the control descriptor: SIGINT/SIGTERM (or the first worker passing them
//! on) begin a graceful shutdown, a second one ends it; SIGUSR1 prints the loop statistics;
//! SIGHUP reopens the access log and empties the file cache.
//! And the shutdown itself: stop accepting, close idle connections, let answers in flight
//! finish, exit when none is left or the grace period is over.
//!
//! Where this sits in the loop: `Server::handle_event` calls [`Server::on_control`] when the
//! control descriptor is readable; `Server::run` asks [`Server::shutdown_complete`] at the end
//! of every pass.

use std::io::{self, Write};
use std::time::Instant;

use super::Server;
use super::signals::Asked;
use super::workers::{Order, Received};
use crate::limits::SHUTDOWN_GRACE;
use crate::study::stats;
use crate::trace_loop;
use std::os::fd::{AsFd, AsRawFd};

impl Server {
    /// Reads the pending orders; SIGINT or SIGTERM (or the first worker passing one on)
    /// begins a shutdown, a second one ends it.
    pub(super) fn on_control(&mut self, now: Instant) {
        loop {
            let next = self.control.next();
            self.trace_control_read(&next);
            match next {
                Ok(Some(Received::Signal(Asked::Statistics))) => self.print_statistics(now),
                Ok(Some(Received::Signal(Asked::Reload))) => {
                    // The others hear first, so no worker writes the new file before they
                    // all have been told.
                    self.control.pass_on(Order::ReopenLog);
                    self.reload();
                }
                Ok(Some(Received::Signal(Asked::Reap))) => self.reap_children(),
                Ok(Some(Received::Signal(Asked::Stop(name)))) if self.shutting_down() => {
                    log::warn!("received {name} again; exiting now");
                    self.control.pass_on(Order::ExitNow);
                    self.exit_by = Some(now);
                }
                Ok(Some(Received::Signal(Asked::Stop(name)))) => {
                    log::info!("received {name}; finishing responses in flight, then exiting");
                    self.control.pass_on(Order::ShutDown);
                    self.begin_shutdown(now);
                }
                Ok(Some(Received::Order(Order::ShutDown))) if !self.shutting_down() => {
                    log::info!("told to shut down; finishing responses in flight, then exiting");
                    self.begin_shutdown(now);
                }
                Ok(Some(Received::Order(Order::ShutDown))) => {}
                Ok(Some(Received::Order(Order::ReopenLog))) => self.reload(),
                Ok(Some(Received::Order(Order::ExitNow) | Received::FirstWorkerGone)) => {
                    self.exit_by = Some(now);
                    return; // the socket may stay readable (EOF); we exit this pass
                }
                Ok(None) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!("reading the control descriptor failed: {e}");
                    return;
                }
            }
        }
    }

    /// Traces one read of the control descriptor, right after it: the signalfd's `read`
    /// (the first worker) or the first worker's socket's `recv` (the others).
    fn trace_control_read(&self, next: &io::Result<Option<Received>>) {
        if !self.pass.study.trace.wants_loop() {
            return;
        }
        let fd = self.control.as_fd().as_raw_fd();
        let call = self.control.syscall();
        let said = match next {
            Ok(Some(Received::Signal(asked))) => format!("signal={}", asked.signal_name()),
            Ok(Some(Received::Order(order))) => format!("order={order:?}"),
            Ok(Some(Received::FirstWorkerGone)) => "n=0".to_string(),
            Ok(None) => "EAGAIN".to_string(),
            Err(e) => format!("error={}", e.kind()),
        };
        trace_loop!(self.pass.study.trace, "{call} fd={fd} token=control {said}");
    }

    /// SIGUSR1: the loop statistics of all workers (this one's fresh, the others' at most a
    /// second old) on stderr. Not `eprintln!`, which panics when stderr is a pipe nobody
    /// reads any more: then there is nobody to show them to, and serving goes on.
    pub(super) fn print_statistics(&self, now: Instant) {
        let (total, workers) = self.pass.study.total(self.pass.cache_counts(), now);
        let text = stats::render_text(&total, workers);
        let _ = writeln!(io::stderr().lock(), "{text}");
    }

    /// Closes the listener and idle connections; the rest finish their current request.
    pub(super) fn begin_shutdown(&mut self, now: Instant) {
        for (index, listening) in self.listeners.iter_mut().enumerate() {
            listening.close(
                &self.registry,
                super::listener_token(index),
                &self.pass.study.trace,
            );
        }
        self.exit_by = Some(now + SHUTDOWN_GRACE);
        let ctx = self.pass.context(now, true);
        let mut idle = Vec::new();
        for (token, connection) in self.connections.iter_mut() {
            let before = connection.interest();
            connection.begin_shutdown(&ctx);
            idle.push((token, before));
        }
        for (token, before) in idle {
            self.after_handler(token, before, now);
        }
    }

    /// Whether a shutdown has finished: every connection is done, or the grace period is over.
    pub(super) fn shutdown_complete(&self, now: Instant) -> bool {
        match self.exit_by {
            None => false,
            Some(_) if self.connections.is_empty() => true,
            Some(deadline) if now >= deadline => {
                log::warn!(
                    "shutdown grace over; dropping connections={}",
                    self.connections.len()
                );
                true
            }
            Some(_) => false,
        }
    }
}

impl Server {
    /// SIGHUP: reopens the access log (logrotate moved it) and empties the file cache, so
    /// every path is looked up on disk again (after a change inotify cannot see, such as a
    /// folder mounted over a served one).
    fn reload(&mut self) {
        self.pass.access_log.reopen();
        self.pass.site.cache.borrow_mut().clear();
    }
}

impl Server {
    /// SIGCHLD: reaps every child that ended (the `--open` helper is the only one), so none
    /// is left a zombie, and says when the helper could not open a browser (no display, no
    /// desktop): the user then knows to open the URL themselves.
    fn reap_children(&mut self) {
        use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, 0)) => log::debug!("--open: the browser was asked"),
                Ok(WaitStatus::Exited(_, code)) => log::warn!(
                    "--open: xdg-open failed (exit status {code}), so nothing was opened; \
                     open http://{}/ in a browser",
                    self.local_addr
                ),
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    log::warn!("--open: xdg-open was killed by {signal}")
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return, // none left (ECHILD), or not yet
                Ok(_) => {}
            }
        }
    }
}
