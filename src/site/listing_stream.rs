//! A directory listing made piece by piece: [`ListingStream`] reads the directory, then
//! renders the page, a bounded step of work per loop pass.
//!
//! Where this sits in the loop: `site::reply_to` turns a directory without an index into a
//! `Reply` whose body is a `ListingStream`. The connection sends the head at once, then asks
//! for the next piece each time the previous one has left (`Outgoing::pump`), one piece per
//! writable event, so a directory of 100,000 entries costs every other client at most one
//! step's delay at a time.
//!
//! # Design notes
//! - **Bounded steps.** Each step examines or renders at most
//!   [`crate::limits::LISTING_STEP_UNITS`] entries (a symlink counts
//!   [`LISTING_SYMLINK_UNITS`]: following it safely costs more).
//!   An entry's type comes from `readdir`, and a file or directory costs one `fstatat` on the
//!   directory's descriptor; only symlinks are opened (through `open_visible`, so the root
//!   and the dotfile policy hold for where they lead).
//! - **Sorting without a long pause.** The page is sorted (directories first, then names), so
//!   nothing can be rendered before everything is read. Each step sorts the batch it read;
//!   rendering then merges the sorted batches through a heap, a few comparisons per row.
//! - **Bounded in total.** At most [`MAX_LISTING_ENTRIES`] entries are examined, hidden and
//!   skipped ones included; the page says when it stops there. A client that does not read
//!   pins the entries read so far and one rendered piece, never the whole page.
//! - **Shared budgets.** The step budget of a loop pass and the bytes of entries held are
//!   shared by every listing in flight ([`ListingBudget`]): a step takes what the pass has left
//!   when its turn comes, and a listing that finds the byte budget spent stops reading there.
//! - **Two descriptors.** While reading, a listing holds its socket and one descriptor of the
//!   directory (the iterator's, also used for `fstatat`); the root is shared. While rendering,
//!   only the socket: the connection cap budgets two per connection.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ffi::OsStr;
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::OFlag;
use nix::sys::stat::FileStat;

use super::disk::{self, DirEntries, Kind};
use super::files::{Directory, Root, is_hidden_name, open_visible};
use super::listing_budget::ListingBudget;
use super::listing_page::{self, Entry, Format, Order, compare_entries};
use crate::http::reply::Produce;
#[cfg(test)]
use crate::limits::LISTING_STEP_UNITS;
use crate::limits::{LISTING_SYMLINK_UNITS, MAX_LISTING_ENTRIES};

/// A listing on its way out.
pub struct ListingStream {
    /// The directory's path below the root.
    relative: PathBuf,
    /// The directory's URL path, for the page's title.
    url_path: String,
    /// Whether hidden names are listed (`--hidden`).
    hidden: bool,
    /// Whether the start of the page has been made.
    started: bool,
    /// The order asked for (`?sort=`, `?order=`).
    order: Order,
    /// HTML, or JSON.
    format: Format,
    /// `--live`: the page ends with the reload script.
    live: bool,
    /// Rows written so far (JSON puts a comma before all but the first).
    rows: usize,
    /// Where the work is.
    phase: Phase,
    /// The budgets shared by every listing in flight.
    load: Rc<ListingBudget>,
    /// The round of the shared budget in which this listing last stepped.
    turn: u64,
    /// Bytes of entries this listing counts against the shared budget (given back on drop).
    held: usize,
}

/// The three phases of a listing.
enum Phase {
    /// Reading entries, a batch per step; each batch is sorted when read.
    Reading {
        /// The root, for following symlinks among the entries (shared with the site: no
        /// descriptor of its own).
        root: Rc<Root>,
        /// The directory's entries, from `getdents64`; its descriptor also serves
        /// `newfstatat` (dropped with this phase, so a client that reads slowly holds no
        /// descriptor but its socket while rendering).
        entries: DirEntries,
        /// Entries examined so far (hidden and skipped ones too).
        examined: usize,
        /// The sorted batches read so far.
        batches: Vec<Vec<Entry>>,
    },
    /// Writing rows in order, merged from the batches.
    Rendering {
        /// The smallest unwritten entry of each batch.
        heap: BinaryHeap<Next>,
        /// The rest of each batch, in order.
        batches: Vec<std::vec::IntoIter<Entry>>,
        /// Whether reading stopped at [`MAX_LISTING_ENTRIES`].
        truncated: bool,
    },
    /// The page is complete.
    Done,
}

/// The next entry of one batch, ordered so that `BinaryHeap` (a max-heap) pops the entry that
/// comes first on the page.
struct Next {
    /// The entry.
    entry: Entry,
    /// Which batch it came from.
    batch: usize,
    /// The page's order (the same for every entry of a heap).
    order: Order,
}

impl Ord for Next {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_entries(self.order, &other.entry, &self.entry)
    }
}

impl PartialOrd for Next {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Next {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Next {}

impl ListingStream {
    /// A listing of `directory` (beneath `root`) in `order` and `format`, not started yet,
    /// sharing `load` with the other listings; `hidden` is `--hidden`.
    pub fn new(
        directory: Directory,
        root: Rc<Root>,
        load: Rc<ListingBudget>,
        (hidden, order, format, live): (bool, Order, Format, bool),
    ) -> ListingStream {
        let turn = load.joining_turn();
        let phase = Phase::Reading {
            root,
            entries: DirEntries::new(directory.dir),
            examined: 0,
            batches: Vec::new(),
        };
        ListingStream {
            relative: directory.relative,
            url_path: directory.url_path,
            hidden,
            started: false,
            order,
            format,
            live,
            rows: 0,
            phase,
            load,
            turn,
            held: 0,
        }
    }

    /// Reads entries worth up to `granted` units; moves on to rendering at the end. Returns
    /// the units spent.
    fn read_step(&mut self, granted: usize) -> usize {
        let Phase::Reading {
            root,
            entries,
            examined,
            batches,
        } = &mut self.phase
        else {
            return 0;
        };
        let mut batch = Vec::new();
        let mut units = 0;
        let mut finished = false;
        let mut cut = false;
        if !self.load.admits() {
            log::warn!(
                "listing of {:?} cut: listings in flight hold their memory budget",
                self.relative
            );
            (finished, cut) = (true, true);
        }
        while !finished && units < granted {
            if *examined == MAX_LISTING_ENTRIES {
                // Cut only if there is more: a directory of exactly the limit is whole.
                cut = entries.next_entry().is_some();
                if cut {
                    log::warn!(
                        "listing of {:?} cut at {MAX_LISTING_ENTRIES} entries",
                        self.relative
                    );
                }
                finished = true;
                break;
            }
            // A failing readdir can fail again at once, for ever: end the listing there.
            let Some(Ok(entry)) = entries.next_entry() else {
                finished = true;
                break;
            };
            *examined += 1;
            // A name need not be UTF-8: it is listed escaped, and linked by its bytes.
            let name = entry.name.as_os_str();
            if name == "." || name == ".." || (!self.hidden && is_hidden_name(name)) {
                units += 1;
                continue;
            }
            let (found, cost) = describe(
                root,
                entries.dir(),
                &self.relative,
                name,
                entry.kind,
                self.hidden,
            );
            units += cost;
            batch.extend(found);
        }
        let order = self.order;
        batch.sort_by(|a, b| compare_entries(order, a, b));
        let bytes: usize = batch.iter().map(entry_bytes).sum();
        self.held += bytes;
        self.load.hold(bytes);
        batches.push(batch);
        if finished {
            self.phase = rendering(std::mem::take(batches), cut, self.order);
        }
        units
    }

    /// Renders up to `granted` rows into `out`; returns whether the page is done, and the
    /// units spent.
    fn render_step(&mut self, out: &mut Vec<u8>, granted: usize) -> (bool, usize) {
        let Phase::Rendering {
            heap,
            batches,
            truncated,
        } = &mut self.phase
        else {
            return (matches!(self.phase, Phase::Done), 0);
        };
        for rendered in 0..granted {
            let Some(Next { entry, batch, .. }) = heap.pop() else {
                let mut end = listing_page::page_end(*truncated, self.format).into_bytes();
                if self.live && self.format == Format::Html {
                    crate::live::inject::add_script(&mut end);
                }
                out.extend_from_slice(&end);
                self.phase = Phase::Done;
                return (true, rendered);
            };
            let first = self.rows == 0;
            out.extend_from_slice(listing_page::row(&entry, self.format, first).as_bytes());
            self.rows += 1;
            if let Some(entry) = batches[batch].next() {
                let order = self.order;
                heap.push(Next {
                    entry,
                    batch,
                    order,
                });
            }
        }
        (false, granted)
    }

    /// The whole page at once (for tests), a new loop pass before each step.
    #[cfg(test)]
    pub fn render_all(mut self) -> String {
        let mut page = Vec::new();
        loop {
            self.load.new_pass();
            if self.produce(&mut page) {
                break;
            }
        }
        String::from_utf8(page).expect("the page is UTF-8")
    }
}

impl Drop for ListingStream {
    fn drop(&mut self) {
        self.load.release(self.held);
    }
}

impl Produce for ListingStream {
    fn produce(&mut self, out: &mut Vec<u8>) -> bool {
        if !self.started {
            // The start of the page goes out with the first step, before any entry.
            let start = listing_page::page_start(&self.url_path, self.order, self.format);
            out.extend_from_slice(start.as_bytes());
            self.started = true;
        }
        let granted = self.load.grant(&mut self.turn);
        if granted == 0 {
            return false; // not this listing's turn, or the pass's budget is spent
        }
        let (done, spent) = match self.phase {
            Phase::Reading { .. } => (false, self.read_step(granted)),
            Phase::Rendering { .. } | Phase::Done => self.render_step(out, granted),
        };
        self.load.spend(spent);
        done
    }

    fn may_step(&self) -> bool {
        self.load.may_step(self.turn)
    }
}

/// Roughly what an entry costs in memory: itself and its name.
fn entry_bytes(entry: &Entry) -> usize {
    std::mem::size_of::<Entry>() + entry.name.capacity() + entry.link.capacity()
}

/// The rendering phase over sorted `batches`.
fn rendering(batches: Vec<Vec<Entry>>, truncated: bool, order: Order) -> Phase {
    let mut batches: Vec<_> = batches.into_iter().map(Vec::into_iter).collect();
    let mut heap = BinaryHeap::with_capacity(batches.len());
    for (batch, entries) in batches.iter_mut().enumerate() {
        if let Some(entry) = entries.next() {
            heap.push(Next {
                entry,
                batch,
                order,
            });
        }
    }
    Phase::Rendering {
        heap,
        batches,
        truncated,
    }
}

/// The listing entry for `name` in the directory, if it is one we would serve, and what
/// examining it cost in step units. Files and directories cost one `fstatat`; a symlink (or
/// an entry whose type `readdir` did not say) is followed like a request would be.
fn describe(
    root: &Root,
    dir: BorrowedFd,
    relative: &Path,
    name: &OsStr,
    kind: Kind,
    hidden: bool,
) -> (Option<Entry>, usize) {
    match kind {
        Kind::File | Kind::Directory => {
            let stat = disk::stat_at(dir, name);
            return (stat.ok().and_then(|stat| entry(name, &stat)), 1);
        }
        Kind::Other => return (None, 1), // a FIFO, socket or device: never served or listed
        Kind::Symlink | Kind::Unknown => {}
    }
    let path = relative.join(name);
    let found = open_visible(root, &path, OFlag::O_PATH, hidden)
        .ok()
        .and_then(|target| target.stat().ok())
        .and_then(|stat| entry(name, &stat));
    (found, LISTING_SYMLINK_UNITS)
}

/// An entry from its metadata, if it is a regular file or a directory.
fn entry(name: &OsStr, stat: &FileStat) -> Option<Entry> {
    let kind = Kind::of(stat.st_mode);
    let is_dir = kind == Kind::Directory;
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    (is_dir || kind == Kind::File)
        .then(|| Entry::new(name.as_bytes(), is_dir, size, modified(stat)))
}

/// The modification time in a `stat`, if `SystemTime` can hold it.
fn modified(stat: &FileStat) -> Option<SystemTime> {
    let nanos = u32::try_from(stat.st_mtime_nsec).ok()?;
    match u64::try_from(stat.st_mtime) {
        Ok(secs) => UNIX_EPOCH.checked_add(Duration::new(secs, nanos)),
        Err(_) => UNIX_EPOCH
            .checked_sub(Duration::from_secs(stat.st_mtime.unsigned_abs()))?
            .checked_add(Duration::from_nanos(u64::from(nanos))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::files::{Resolved, resolve};
    use crate::util::test_dir::TestDir;

    /// A listing stream for `/d/` in a root holding `files` files in `d`.
    fn stream_of(files: usize) -> (TestDir, ListingStream) {
        stream_sharing(files, Rc::default())
    }

    /// As [`stream_of`], sharing `load`.
    fn stream_sharing(files: usize, load: Rc<ListingBudget>) -> (TestDir, ListingStream) {
        let dir = TestDir::new("dirlist");
        std::fs::create_dir_all(dir.path().join("d/sub")).unwrap();
        for i in 0..files {
            std::fs::write(dir.path().join(format!("d/F{i:05}")), "x").unwrap();
        }
        let root = Rc::new(Root::open(dir.path(), false).unwrap());
        let config = crate::config::SiteOptions::default();
        let Ok(Resolved::Listing(directory)) = resolve(&root, "/d/", &config, None) else {
            panic!("/d/ is listed");
        };
        let how = (false, Order::default(), Format::Html, false);
        (dir, ListingStream::new(directory, root, load, how))
    }

    #[test]
    fn the_streamed_page_is_the_rendered_page() {
        let (dir, stream) = stream_of(300);
        let mut entries: Vec<Entry> = (0..300)
            .map(|i| {
                let name = format!("F{i:05}");
                let path = dir.path().join(format!("d/{name}"));
                let modified = std::fs::metadata(path).unwrap().modified().ok();
                Entry::new(name.as_bytes(), false, 1, modified)
            })
            .collect();
        let sub = std::fs::metadata(dir.path().join("d/sub")).unwrap();
        entries.push(Entry::new(b"sub", true, sub.len(), sub.modified().ok()));
        assert_eq!(
            stream.render_all(),
            listing_page::render("/d/", &mut entries)
        );
    }

    #[test]
    fn each_step_does_a_bounded_amount_of_work() {
        let (_dir, mut stream) = stream_of(1_000);
        let mut steps = 0;
        loop {
            let mut piece = Vec::new();
            stream.load.new_pass();
            let done = stream.produce(&mut piece);
            let rows = String::from_utf8(piece)
                .unwrap()
                .matches("<tr><td><a")
                .count();
            assert!(rows <= LISTING_STEP_UNITS, "{rows} rows in one step");
            steps += 1;
            if done {
                break;
            }
        }
        // Reading 1,003 entries and rendering 1,001 rows takes several steps, not one.
        assert!(steps >= 2 * 1_000 / LISTING_STEP_UNITS, "{steps} steps");
    }
}
