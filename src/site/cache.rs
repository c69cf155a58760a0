//! The open-file and small-file cache, kept fresh by inotify.
//!
//! Where this sits in the loop: `site::reply_to` asks [`FileCache::get`] before it resolves a
//! GET or HEAD target, and [`FileCache::insert`]s what it resolved. The cache's inotify
//! watches are on the one inotify descriptor (`watcher.rs`), which sits in the reactor's
//! epoll set; the reactor reads it after a pass's reads and before its answers, and tells
//! the cache ([`FileCache::on_change`]), so a file saved before a request was sent is never
//! answered from the old copy.
//!
//! # Design notes
//! - **What is kept**, per request path (and `Accept-Encoding`, which picks a sibling): the
//!   open file, its length, modification time, entity tag and `Content-Type`, and, for files
//!   of up to `INLINE_FILE_MAX_BYTES`, the bytes themselves, so a repeated GET of a small
//!   file is answered from memory: no `openat2`, `statx`, `pread` or `close`, just the
//!   socket's `recv` and `send`. That nothing is at a path (a 404) is kept too, with its
//!   directory watched, so that a file created there is seen.
//! - **Never stale, simply.** Every directory on a request path is watched before the path
//!   is looked up ([`FileCache::prepare`]), and only an answer reached without a symlink is
//!   kept (a link could be retargeted in a directory no watch sees; `/proc/self/fd` tells
//!   where an open file really is). *Any* event, or a queue overflow, empties the whole cache: a
//!   write, truncation, `chmod`, rename over (how editors save), deletion, a sibling or an
//!   index appearing, a symlink retargeted, a directory created, removed or renamed. Telling
//!   which entries an event touches would save refills that cost microseconds, at the price
//!   of reasoning no reader should have to check. A path whose directories cannot all be
//!   watched (the user's inotify limit) is simply not cached.
//! - **Bounded**: `--cache-entries` and `--cache-bytes` (bodies in memory); the oldest entry
//!   goes first. Large files keep only their descriptor and metadata: their bodies still go
//!   by `sendfile`. `--no-cache` turns it all off, for comparison.
//! - **What it does not see**: a write through a hard link that lives outside every watched
//!   directory, or a change on a network file system inotify does not report.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::SystemTime;

use nix::errno::Errno;

use super::watcher::Watcher;

use super::disk;
use super::files::{self, Root, StaticFile};
use crate::config::CacheOptions;
use crate::http::reply::Content;
use crate::limits::{CACHE_REVALIDATE_AFTER, INLINE_FILE_MAX_BYTES, MAX_WATCHED_DIRS};

/// What the cache knows of a request path.
pub enum Known {
    /// This file answers it.
    File(StaticFile),
    /// Nothing is there (404).
    Missing,
}

/// One cached answer: a file, or `None` for a path where nothing is.
type Entry = Option<Cached>;

/// An entry and when it was looked up on disk.
struct Stored {
    /// When the answer was resolved (it is trusted for [`CACHE_REVALIDATE_AFTER`]).
    since: SystemTime,
    /// The answer.
    entry: Entry,
}

/// One cached file.
struct Cached {
    /// The bytes: the open file, or a copy of a small one.
    content: Content,
    /// Length when cached.
    len: u64,
    /// Modification time when cached.
    modified: Option<SystemTime>,
    /// Entity tag.
    etag: Rc<str>,
    /// `Content-Type`.
    content_type: Rc<str>,
    /// The sibling's coding, if one is served.
    encoding: Option<&'static str>,
    /// The served file's path below the root.
    path: Rc<str>,
    /// The field lines of a whole-file 200 (see `StaticFile::head_fields`).
    head_fields: Option<Rc<[u8]>>,
}

/// The cache (see the module docs).
pub struct FileCache {
    /// The inotify descriptor's owner, shared with `--live`; the cache is off without it.
    watcher: Rc<Watcher>,
    /// Request key → answer.
    entries: HashMap<String, Stored>,
    /// Keys, oldest first, for eviction.
    order: VecDeque<String>,
    /// Directories already watched, below the root (inotify dedupes too; this saves the
    /// syscalls). Only real directories reached without a symlink, at most
    /// [`MAX_WATCHED_DIRS`], so a client cannot grow it with spellings.
    watched: HashSet<PathBuf>,
    /// Bytes of bodies held in memory.
    memory_bytes: u64,
    /// Entries that hold a file open (a descriptor each).
    open_files: usize,
    /// Most entries that may hold a file open: the descriptors the connection cap leaves
    /// for the cache (see `Config::cache_files`).
    max_open_files: usize,
    /// `--cache-entries`.
    max_entries: usize,
    /// `--cache-bytes`.
    max_bytes: u64,
    /// A reused buffer for building lookup keys.
    key: String,
    /// Whether a failing watch has been reported (once is enough).
    warned: bool,
    /// Lookups answered from the cache (a file or a remembered 404), for the statistics.
    hits: u64,
    /// Lookups the cache could not answer.
    misses: u64,
}

impl FileCache {
    /// A cache as the configuration asks for, watching through `watcher` (off when the
    /// watcher is, or with `--no-cache`).
    pub fn new(options: &CacheOptions, watcher: Rc<Watcher>) -> FileCache {
        FileCache {
            watcher,
            entries: HashMap::new(),
            order: VecDeque::new(),
            watched: HashSet::new(),
            memory_bytes: 0,
            open_files: 0,
            max_open_files: options.files,
            max_entries: options.entries,
            max_bytes: options.bytes,
            key: String::new(),
            warned: false,
            hits: 0,
            misses: 0,
        }
    }

    /// Lookups answered and not answered so far (loop statistics).
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// How many answers are cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// What the cache knows of a request path (without its query) and `Accept-Encoding`, at
    /// `now`. An answer older than [`CACHE_REVALIDATE_AFTER`] is dropped, so the path is
    /// resolved again: what inotify cannot see is seen within that time.
    pub fn get(
        &mut self,
        path: &str,
        accept_encoding: Option<&str>,
        now: SystemTime,
    ) -> Option<Known> {
        if self.entries.is_empty() {
            self.misses += 1;
            return None;
        }
        build_key(&mut self.key, path, accept_encoding);
        let Some(found) = self.entries.get(self.key.as_str()) else {
            self.misses += 1;
            return None;
        };
        let age = now.duration_since(found.since);
        if age.map_or(true, |age| age >= CACHE_REVALIDATE_AFTER) {
            let key = std::mem::take(&mut self.key);
            self.forget(&key);
            self.key = key;
            self.misses += 1;
            return None;
        }
        self.hits += 1;
        let Some(cached) = &found.entry else {
            return Some(Known::Missing);
        };
        Some(Known::File(StaticFile {
            content: cached.content.clone(),
            len: cached.len,
            modified: cached.modified,
            etag: cached.etag.clone(),
            content_type: cached.content_type.clone(),
            encoding: cached.encoding,
            path: cached.path.clone(),
            head_fields: cached.head_fields.clone(),
        }))
    }

    /// Empties the cache (SIGHUP, or a change event): every path is resolved again.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.memory_bytes = 0;
        self.open_files = 0;
    }

    /// Gives back every descriptor the cache holds (the process ran out): entries that keep
    /// a file open are dropped. Returns how many.
    pub fn release_files(&mut self) -> usize {
        let holding: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, stored)| holds_file(&stored.entry))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &holding {
            self.forget(key);
        }
        if !holding.is_empty() {
            log::warn!("file cache gave back descriptors={}", holding.len());
        }
        holding.len()
    }

    /// Removes one entry, keeping the counts (its key may stay in `order`; see `store`).
    fn forget(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.memory_bytes -= old.entry.as_ref().map_or(0, memory_of) + 2 * key.len() as u64;
            self.open_files -= usize::from(holds_file(&old.entry));
        }
    }

    /// Remembers that nothing answers a request path, after [`FileCache::prepare`] said yes
    /// and `files::is_plainly_missing` agreed: a file created there (or a directory on the
    /// way) is an event that empties the cache. `now` is when it was looked up.
    pub fn insert_missing(&mut self, path: &str, accept_encoding: Option<&str>, now: SystemTime) {
        if self.watcher.is_on() {
            self.store(path, accept_encoding, None, now);
        }
    }

    /// Watches the directories a request path depends on, before it is resolved, so that
    /// any change from here on is an event. Returns whether the path may be cached (the cache
    /// is on and every one of them is watched).
    pub fn prepare(&mut self, root: &Root, path: &str) -> bool {
        if !self.watcher.is_on() || self.max_entries == 0 {
            return false; // no cache (the descriptor may be there for --live only)
        }
        match super::files::dirs_of(path) {
            Some(dirs) => self.watch_chain(root, Path::new(&dirs)),
            None => false,
        }
    }

    /// Caches `file` as the answer for a request path and `Accept-Encoding`, after
    /// [`FileCache::prepare`] said yes, and only if the file is where the path says (no
    /// symlink on the way: one could be retargeted in a directory no watch sees). A small
    /// file's bytes are read once here, and `file` is switched to the copy; `head_fields`
    /// makes its prepared head (`StaticFile::head_fields`), only for a file that is kept.
    /// `now` is when the file was looked up: the entry is trusted for
    /// [`CACHE_REVALIDATE_AFTER`] from then.
    pub fn insert(
        &mut self,
        root: &Root,
        (path, accept_encoding): (&str, Option<&str>),
        file: &mut StaticFile,
        head_fields: impl FnOnce(&StaticFile) -> Rc<[u8]>,
        now: SystemTime,
    ) {
        if !self.watcher.is_on() || !is_where_it_says(root, file) {
            return;
        }
        if file.len <= INLINE_FILE_MAX_BYTES
            && file.len <= self.max_bytes
            && let Content::File(open) = &file.content
        {
            let mut bytes = vec![0; file.len as usize];
            if disk::read_exact_at(open, &mut bytes, 0).is_err() {
                return; // changed under us: the event that says so is on its way
            }
            file.content = Content::Memory(bytes.into());
        }
        file.head_fields = Some(head_fields(file));
        let cached = Cached {
            content: file.content.clone(),
            len: file.len,
            modified: file.modified,
            etag: file.etag.clone(),
            content_type: file.content_type.clone(),
            encoding: file.encoding,
            path: file.path.clone(),
            head_fields: file.head_fields.clone(),
        };
        self.store(path, accept_encoding, Some(cached), now);
    }

    /// Adds an entry, making room for it first.
    fn store(
        &mut self,
        path: &str,
        accept_encoding: Option<&str>,
        entry: Entry,
        since: SystemTime,
    ) {
        let mut key = String::new();
        build_key(&mut key, path, accept_encoding);
        // The key is held twice (map and order): it counts too, since a client chooses it.
        let memory = entry.as_ref().map_or(0, memory_of) + 2 * key.len() as u64;
        let file = holds_file(&entry);
        if memory > self.max_bytes || self.max_entries == 0 || (file && self.max_open_files == 0) {
            return; // could never fit: evict nothing for it
        }
        self.forget(&key); // a replaced entry (its key stays once in `order`, still valid)
        self.make_room(memory, file);
        self.memory_bytes += memory;
        self.open_files += usize::from(file);
        self.order.push_back(key.clone());
        self.entries.insert(key, Stored { since, entry });
        if self.order.len() > 2 * self.entries.len().max(64) {
            self.compact_order();
        }
    }

    /// Drops keys from `order` that no longer name an entry, and repeats (a key re-stored
    /// after it was forgotten), so the queue stays within twice the entries: amortised, one
    /// pass per as many stores as there are entries.
    fn compact_order(&mut self) {
        let mut seen = HashSet::new();
        let entries = &self.entries;
        self.order
            .retain(|key| entries.contains_key(key) && seen.insert(key.clone()));
    }

    /// `events` inotify events were read: if there was any, empties the cache (any change
    /// may touch any entry: see the module docs).
    pub fn on_change(&mut self, events: usize) {
        if events == 0 {
            return;
        }
        if !self.entries.is_empty() {
            // Only when something was dropped: this line, written to a log file in a watched
            // directory, is itself an event, and must not cause another line.
            log::debug!(
                "file cache emptied entries={} events={events}",
                self.entries.len()
            );
        }
        self.clear();
        // A removed directory's watch is gone (IN_IGNORED): watch afresh on next use.
        self.watched.clear();
    }

    /// Evicts the oldest entries until one more entry with `memory` bytes (holding a file
    /// open, if `file`) fits.
    fn make_room(&mut self, memory: u64, file: bool) {
        while self.entries.len() >= self.max_entries
            || self.memory_bytes + memory > self.max_bytes
            || (file && self.open_files >= self.max_open_files)
        {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.forget(&oldest);
        }
    }

    /// Watches the root and every directory down to `relative` (a path below the root),
    /// each only if it is a real directory under the root, reached without a symlink: a path
    /// with a link on the way is not cached anyway, and a watch through a link would land
    /// wherever it leads (`/usr`, or an ancestor seen again under endless spellings).
    fn watch_chain(&mut self, root: &Root, relative: &Path) -> bool {
        let mut dir = PathBuf::new();
        if !self.watch(root, &dir) {
            return false;
        }
        for segment in relative.iter().filter(|s| *s != ".") {
            dir.push(segment);
            if !self.watch(root, &dir) {
                return false;
            }
        }
        true
    }

    /// Watches one directory below the root, once.
    fn watch(&mut self, root: &Root, dir: &Path) -> bool {
        if self.watched.contains(dir) {
            return true;
        }
        if self.watched.len() >= MAX_WATCHED_DIRS {
            return false; // bounded: paths under further directories are not cached
        }
        let Some(opened) = files::open_plain_dir(root, dir) else {
            return false; // not there, not a directory, or a symlink on the way
        };
        match self.watcher.add(&opened) {
            Ok(_) => {
                self.watched.insert(dir.to_path_buf());
                true
            }
            Err(Errno::ENOENT | Errno::ENOTDIR) => false,
            Err(e) => {
                // Warn once: at the user's inotify limit, every insert would fail again.
                if !self.warned {
                    self.warned = true;
                    log::warn!(
                        "cannot watch {}: {e}; files under it are not cached \
                         (raise fs.inotify.max_user_watches to cache them)",
                        root.path().join(dir).display()
                    );
                } else {
                    log::debug!("cannot watch {}: {e}", dir.display());
                }
                false
            }
        }
    }
}

/// `path` and `Accept-Encoding`, as one key.
fn build_key(key: &mut String, path: &str, accept_encoding: Option<&str>) {
    key.clear();
    key.push_str(path);
    if let Some(accept_encoding) = accept_encoding {
        key.push('\n'); // cannot occur in a request target
        key.push_str(accept_encoding);
    }
}

/// Whether an entry keeps a file (and so a descriptor) open.
fn holds_file(entry: &Entry) -> bool {
    matches!(
        entry,
        Some(Cached {
            content: Content::File(_),
            ..
        })
    )
}

/// Bytes of body an entry holds in memory.
fn memory_of(cached: &Cached) -> u64 {
    match cached.content {
        Content::Memory(_) => cached.len,
        Content::File(_) | Content::Spliced(_) => 0,
    }
}

/// Whether an opened file really is at the path below the root it was asked by: no symlink
/// anywhere on the way.
fn is_where_it_says(root: &Root, file: &StaticFile) -> bool {
    let Content::File(open) = &file.content else {
        return false;
    };
    let Ok(real) = disk::real_path(open) else {
        return false;
    };
    let lexical: PathBuf = Path::new(&*file.path)
        .components()
        .filter(|part| *part != std::path::Component::CurDir)
        .collect();
    real == root.path().join(lexical)
}
