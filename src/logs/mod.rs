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
//! - **Our own files are not edits.** `--live` watches the root, which may hold the log (or
//!   stdout and stderr redirected there, as in `epollo --live . > server.log 2>&1`): each line
//!   written would be a change, and each change event's own log line another one, reloading
//!   pages without end. [`AccessLog::is_own_output`] tells them apart by identity (device and
//!   inode: any name, a rotated file, the new one after SIGHUP) and by the log's configured
//!   name (gone for a moment while logrotate moves it).

pub mod format;

use std::cell::{Cell, RefCell};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use format::{LogEntry, LogFormat, RealIpHeader, TrustedProxy};

/// Lines kept while the log cannot take them (a slow pipe); beyond this, lines are dropped.
pub const MAX_PENDING_BYTES: usize = 1024 * 1024;
/// Lines are written once the buffer holds this much, even within a pass.
const WRITE_AT_BYTES: usize = 64 * 1024;
/// Log files remembered as our own after a reopen (the rotated ones): a few rotations' worth.
const REMEMBERED_FILES: usize = 8;

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
    /// `--real-ip-header`: the field a trusted proxy names the client in.
    real_ip_header: RealIpHeader,
    /// The open file or standard output (`None` for the terminal line, or after a failure).
    file: RefCell<Option<File>>,
    /// Lines not yet written.
    pending: RefCell<Vec<u8>>,
    /// Lines dropped since the last warning.
    dropped: Cell<u64>,
    /// The files epollo writes: standard output and error when they are regular files, and
    /// every file this log has had open (the current one last, at most
    /// [`REMEMBERED_FILES`] of them), so that `--live` ignores their changes.
    own_files: RefCell<Vec<FileId>>,
    /// The log file's canonical name (its folder resolved), for when the name is gone.
    own_name: Option<PathBuf>,
}

/// A file's identity: its device and inode numbers. It survives renames and is the same
/// through every name (hard link or symlink) of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    /// The device the file is on.
    device: u64,
    /// Its inode number there.
    inode: u64,
}

impl FileId {
    /// The identity of the regular file open as `fd`; `None` for a pipe, socket or terminal.
    fn of_fd(fd: impl AsFd) -> Option<FileId> {
        let stat = nix::sys::stat::fstat(fd).ok()?;
        let regular = stat.st_mode & libc::S_IFMT == libc::S_IFREG;
        regular.then_some(FileId {
            device: stat.st_dev,
            inode: stat.st_ino,
        })
    }
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
        real_ip_header: RealIpHeader,
    ) -> io::Result<AccessLog> {
        let file = open_target(&target)?;
        let own_name = match &target {
            LogTarget::File(path) => canonical_name(path),
            _ => None,
        };
        let log = AccessLog {
            target,
            format,
            trusted,
            real_ip_header,
            file: RefCell::new(None),
            pending: RefCell::new(Vec::new()),
            dropped: Cell::new(0),
            own_files: RefCell::new(Vec::new()),
            own_name,
        };
        for output in [io::stdout().as_fd(), io::stderr().as_fd()] {
            log.remember(FileId::of_fd(output));
        }
        log.use_file(file);
        Ok(log)
    }

    /// Whether `path` is a file epollo writes itself: this log (by its name, or any file it
    /// has had open), or standard output or error redirected to a file. `--live` ignores
    /// their changes (see the module docs).
    pub fn is_own_output(&self, path: &Path) -> bool {
        if self.own_name.as_deref() == Some(path) {
            return true;
        }
        let Ok(metadata) = fs::metadata(path) else {
            return false;
        };
        let id = FileId {
            device: metadata.dev(),
            inode: metadata.ino(),
        };
        self.own_files.borrow().contains(&id)
    }

    /// Starts writing to `file`, remembering it as one of ours.
    fn use_file(&self, file: Option<File>) {
        self.remember(file.as_ref().and_then(FileId::of_fd));
        *self.file.borrow_mut() = file;
    }

    /// Adds `id` to the files we write (the oldest log file is forgotten past
    /// [`REMEMBERED_FILES`]; standard output and error, first, stay).
    fn remember(&self, id: Option<FileId>) {
        let Some(id) = id else {
            return;
        };
        let mut own = self.own_files.borrow_mut();
        if own.contains(&id) {
            return;
        }
        if own.len() >= REMEMBERED_FILES + 2 {
            own.remove(2);
        }
        own.push(id);
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
                let client = format::client_address(entry, &self.trusted, self.real_ip_header);
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
                self.use_file(file);
                if let LogTarget::File(path) = &self.target {
                    log::info!("access log reopened: {}", path.display());
                }
            }
            Err(e) => log::warn!("access log: reopening failed, keeping the old file: {e}"),
        }
    }
}

/// `path` with its folder resolved to a canonical one (the file's own name kept, even if it
/// is a symlink), as the root-relative names `--live` sees are; `None` if the folder is gone.
fn canonical_name(path: &Path) -> Option<PathBuf> {
    let folder = match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder,
        _ => Path::new("."),
    };
    Some(fs::canonicalize(folder).ok()?.join(path.file_name()?))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::test_dir::TestDir;

    #[test]
    fn the_log_file_is_our_own_by_name_and_by_identity_across_a_rotation() {
        let dir = TestDir::new("own-log");
        let root = fs::canonicalize(dir.path()).unwrap();
        let path = root.join("access.log");
        let target = LogTarget::File(path.clone());
        let log = AccessLog::open(
            target,
            LogFormat::Combined,
            Vec::new(),
            RealIpHeader::default(),
        );
        let log = log.unwrap();
        let other = root.join("page.html");
        fs::write(&other, "x").unwrap();
        assert!(log.is_own_output(&path));
        assert!(!log.is_own_output(&other));
        // logrotate moves it: the moved file is still ours, and so is the name while gone.
        let rotated = root.join("access.log.1");
        fs::rename(&path, &rotated).unwrap();
        assert!(log.is_own_output(&rotated));
        assert!(log.is_own_output(&path));
        // SIGHUP reopens the name: the new file is ours, and the rotated one still is.
        log.reopen();
        assert!(log.is_own_output(&path));
        assert!(log.is_own_output(&rotated));
        // A hard link to our file is ours; a copy is not.
        fs::hard_link(&path, root.join("linked.log")).unwrap();
        assert!(log.is_own_output(&root.join("linked.log")));
        fs::copy(&path, root.join("copied.log")).unwrap();
        assert!(!log.is_own_output(&root.join("copied.log")));
    }
}
