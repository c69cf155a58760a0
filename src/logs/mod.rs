//! The access log: where each answered request is written, in which format.
//!
//! Where this sits in the loop: when an answer is fully sent (or cut short), the connection
//! hands its records to the worker's [`AccessLog`]; lines collect in a buffer that the
//! reactor writes out once per loop pass ([`AccessLog::flush`]), and SIGHUP reopens the file
//! ([`AccessLog::reopen`]), so logrotate works.
//!
//! # Design notes
//! - **Four targets** (`--access-log`): unset keeps the readable `env_logger` line on stderr
//!   (`conn=7 peer=… "GET / HTTP/1.1" 200 1432B 0.3ms`, at `info`); `PATH` appends to a file;
//!   `-` writes to standard output; `off` writes nothing.
//! - **Never block the loop for long, never stop serving.** The file (or a new open file
//!   description of standard output, so the terminal's own flags are untouched) is opened
//!   `O_NONBLOCK | O_APPEND`; a full pipe keeps lines in the buffer for the next pass, up to
//!   [`MAX_PENDING_BYTES`], beyond which lines are dropped and counted; a full disk or a closed
//!   pipe drops the lines with one warning. Writing a regular file does not wait for the disk
//!   (it lands in the page cache); that is as blocking as the file cache's `open`.
//! - **One writer per worker.** With `--workers N` each worker opens the file itself;
//!   `O_APPEND` makes every `write` of whole lines land intact.

pub mod format;

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use format::{LogEntry, LogFormat, TrustedProxy};

/// Lines kept while the log cannot take them (a slow pipe); beyond this, lines are dropped.
pub const MAX_PENDING_BYTES: usize = 1024 * 1024;
/// Lines are written once the buffer holds this much, even within a pass.
const WRITE_AT_BYTES: usize = 64 * 1024;

/// Where access-log lines go (`--access-log`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LogTarget {
    /// The readable `env_logger` line on stderr, at `info` (the default).
    #[default]
    Terminal,
    /// Nowhere (`off`).
    Off,
    /// Standard output (`-`).
    Stdout,
    /// A file, appended to.
    File(PathBuf),
}

/// One worker's access log.
pub struct AccessLog {
    /// Where lines go.
    target: LogTarget,
    /// The line format (files and standard output).
    format: LogFormat,
    /// `--trusted-proxy`.
    trusted: Vec<TrustedProxy>,
    /// The open file or standard output (`None` for the terminal line, or after a failure).
    file: RefCell<Option<File>>,
    /// Lines not yet written.
    pending: RefCell<Vec<u8>>,
    /// Lines dropped since the last warning.
    dropped: Cell<u64>,
}

/// What the connection knows of one answered request.
pub struct Answered<'a> {
    /// The connection's number, for the terminal line.
    pub id: u64,
    /// The record: request line, status, bytes, optional request fields.
    pub entry: LogEntry<'a>,
    /// Bytes sent, head included (the terminal line shows these).
    pub total_bytes: u64,
    /// ` aborted=…` when the answer was cut short, else empty.
    pub note: &'a str,
}

impl AccessLog {
    /// Opens the log as the configuration says.
    ///
    /// # Errors
    /// The file cannot be opened for appending; the message names it.
    pub fn open(
        target: LogTarget,
        format: LogFormat,
        trusted: Vec<TrustedProxy>,
    ) -> io::Result<AccessLog> {
        let file = open_target(&target)?;
        Ok(AccessLog {
            target,
            format,
            trusted,
            file: RefCell::new(file),
            pending: RefCell::new(Vec::new()),
            dropped: Cell::new(0),
        })
    }

    /// Whether answers should keep records at all (so a disabled log costs nothing).
    pub fn wants_records(&self) -> bool {
        match self.target {
            LogTarget::Terminal => log::log_enabled!(log::Level::Info),
            LogTarget::Off => false,
            LogTarget::Stdout | LogTarget::File(_) => true,
        }
    }

    /// Records one answered request.
    pub fn write(&self, answered: &Answered) {
        let entry = &answered.entry;
        match self.target {
            LogTarget::Off => {}
            LogTarget::Terminal => log::info!(
                "conn={} peer={} {:?} {} {}B {:.1}ms{}",
                answered.id,
                entry.peer,
                entry.line,
                entry.status,
                answered.total_bytes,
                entry.duration_ms,
                answered.note
            ),
            LogTarget::Stdout | LogTarget::File(_) => {
                let mut pending = self.pending.borrow_mut();
                if pending.len() >= MAX_PENDING_BYTES {
                    self.dropped.set(self.dropped.get() + 1);
                    return;
                }
                let client = format::client_address(entry, &self.trusted);
                format::write_line(&mut pending, self.format, entry, client);
                let full = pending.len() >= WRITE_AT_BYTES;
                drop(pending);
                if full {
                    self.flush();
                }
            }
        }
    }

    /// Writes what is pending, as far as the file or pipe takes it without waiting. The
    /// reactor calls this once per loop pass.
    pub fn flush(&self) {
        let mut pending = self.pending.borrow_mut();
        if pending.is_empty() {
            return;
        }
        let mut file = self.file.borrow_mut();
        let Some(out) = file.as_mut() else {
            pending.clear();
            return;
        };
        let mut written = 0;
        while written < pending.len() {
            match out.write(&pending[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break, // next pass
                Err(e) => {
                    // A full disk or a closed pipe: drop these lines, keep serving.
                    log::warn!(
                        "access log: write failed ({e}); dropping {} bytes of lines",
                        pending.len() - written
                    );
                    written = pending.len();
                }
            }
        }
        pending.drain(..written);
        let dropped = self.dropped.replace(0);
        if dropped > 0 {
            log::warn!("access log: {dropped} lines dropped (the log did not keep up)");
        }
    }

    /// SIGHUP: writes what is pending, then reopens the file by name (logrotate moved it).
    pub fn reopen(&self) {
        self.flush();
        match open_target(&self.target) {
            Ok(file) => {
                *self.file.borrow_mut() = file;
                if let LogTarget::File(path) = &self.target {
                    log::info!("access log reopened: {}", path.display());
                }
            }
            Err(e) => log::warn!("access log: reopening failed, keeping the old file: {e}"),
        }
    }
}

/// Opens the target: a file for appending, or a fresh open file description of standard
/// output (so setting it non-blocking does not change the terminal's or the pipe's other
/// users).
fn open_target(target: &LogTarget) -> io::Result<Option<File>> {
    let path = match target {
        LogTarget::Terminal | LogTarget::Off => return Ok(None),
        LogTarget::Stdout => PathBuf::from("/proc/self/fd/1"),
        LogTarget::File(path) => path.clone(),
    };
    let opened = OpenOptions::new()
        .append(true)
        .create(matches!(target, LogTarget::File(_)))
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(&path);
    match opened {
        Ok(file) => Ok(Some(file)),
        // Standard output may be a socket (systemd's journal), which cannot be opened anew:
        // use a duplicate of it, made non-blocking (the description is this process's own).
        Err(_) if *target == LogTarget::Stdout => {
            use nix::fcntl::{FcntlArg, OFlag, fcntl};
            use std::os::fd::AsFd;
            let stdout = io::stdout().as_fd().try_clone_to_owned()?;
            let flags = OFlag::from_bits_truncate(fcntl(&stdout, FcntlArg::F_GETFL)?);
            fcntl(&stdout, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
            Ok(Some(File::from(stdout)))
        }
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("--access-log {}: {e}", path.display()),
        )),
    }
}
