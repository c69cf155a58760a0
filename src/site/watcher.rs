//! The one inotify descriptor, and its one owner. The file cache and `--live` both subscribe:
//! each adds watches through [`Watcher::add`], and the reactor reads the events once per
//! readiness ([`Watcher::read`]) and hands them to both. The descriptor sits in the epoll set
//! beside the sockets, a second kind of readiness source.
//!
//! # Design notes
//! Two subscribers may watch the same directory; inotify gives the same watch for the same
//! directory, and both use the same mask, so neither can change what the other sees. Nobody
//! removes a watch: a watch ends when its directory goes (`IN_IGNORED`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};

use crate::limits::MAX_EVENT_READS_PER_PASS;
use crate::trace_file;

/// The inotify instance, if one is wanted and could be had.
#[derive(Debug)]
pub struct Watcher {
    /// `None`: nothing needs watching (no cache, no `--live`), or `inotify_init1` failed.
    inotify: Option<Inotify>,
}

impl Watcher {
    /// An inotify instance if `wanted` (the cache is on, or `--live`); off, with a warning,
    /// if the kernel will not give one.
    pub fn new(wanted: bool) -> Watcher {
        let inotify = match wanted {
            false => None,
            true => match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
                Ok(inotify) => Some(inotify),
                Err(e) => {
                    log::warn!("file cache and --live off: inotify_init1 failed: {e}");
                    None
                }
            },
        };
        Watcher { inotify }
    }

    /// Whether changes can be watched.
    pub fn is_on(&self) -> bool {
        self.inotify.is_some()
    }

    /// The descriptor the reactor registers.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.inotify.as_ref().map(|inotify| inotify.as_fd())
    }

    /// Watches the open directory `dir` for every way a file in it can change. inotify takes
    /// a path: it is given the descriptor's `/proc` link, which names the very directory that
    /// was opened and checked, without a second lookup that could race.
    pub fn add(&self, dir: &impl AsFd) -> Result<WatchDescriptor, Errno> {
        let by_descriptor = format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd());
        self.add_path(Path::new(&by_descriptor))
    }

    /// Watches the directory at `path` for every way a file in it can change.
    pub fn add_path(&self, path: &Path) -> Result<WatchDescriptor, Errno> {
        let Some(inotify) = &self.inotify else {
            return Err(Errno::ENOSYS);
        };
        let result = inotify.add_watch(path, WATCH_MASK);
        let fd = inotify.as_fd().as_raw_fd();
        match &result {
            Ok(wd) => {
                let wd = wd.as_raw();
                trace_file!(conn => "inotify_add_watch fd={fd}{conn} path={path:?} wd={wd}");
            }
            Err(errno) => {
                trace_file!(conn => "inotify_add_watch fd={fd}{conn} path={path:?} error={errno:?}");
            }
        }
        result
    }

    /// Reads the pending events, telling `each_read` what each `read` gave (for `--trace`).
    /// A few reads drain any ordinary burst; anything left keeps the descriptor readable, and
    /// (level-triggered) the next pass reads on. Never loop until `EAGAIN`: a log file inside
    /// a watched directory would feed the loop for ever.
    pub fn read(
        &self,
        mut each_read: impl FnMut(&Result<Vec<InotifyEvent>, Errno>),
    ) -> Vec<InotifyEvent> {
        let Some(inotify) = &self.inotify else {
            return Vec::new();
        };
        let mut events = Vec::new();
        for _ in 0..MAX_EVENT_READS_PER_PASS {
            let read = inotify.read_events();
            each_read(&read);
            match read {
                Ok(batch) if batch.is_empty() => break,
                Ok(batch) => events.extend(batch),
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    log::warn!("reading inotify events failed: {e}");
                    break;
                }
            }
        }
        events
    }
}

/// What a watch on a directory reports: every way a file in it can change.
const WATCH_MASK: AddWatchFlags = AddWatchFlags::IN_MODIFY
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR);

/// An inotify mask as trace lines show it: `IN_MODIFY`, `IN_CREATE|IN_ISDIR`.
pub fn mask_names(mask: AddWatchFlags) -> String {
    let names: Vec<&str> = mask.iter_names().map(|(name, _)| name).collect();
    names.join("|")
}
