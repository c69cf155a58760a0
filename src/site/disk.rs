//! Every file-system call a request needs, made here and narrated right after it: a `--trace`
//! line with its result (`openat2 fd=9 conn=1 at=4 path="a.txt"`) and the `file_calls`
//! counter. A file the site opens is an [`OpenFile`], whose close is narrated too.
//!
//! Where this sits in the loop: below the site. A request for a cached file makes none of
//! these calls; the first request for a file opens it (`openat2`), looks at it (`statx`),
//! checks where it really is (`readlink`), reads it if it is small (`pread64`), and closes
//! it once nothing holds it (`close`). Listings read their directory with `getdents64` and
//! look at each entry with `newfstatat`; the fallback resolver walks with `openat`.
//!
//! # Design notes
//! Each function makes exactly one system call, so each trace line pairs with one line of
//! `strace -f` (a test holds them side by side). The words are the calls' own names as
//! strace shows them. `sys::read_at` and `nix::dir::Dir` are not used here: the one loops,
//! and the other hides its `getdents64` calls behind libc's buffer.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow};
use nix::sys::stat::{FileStat, Mode};

use crate::trace_file;

/// A file or directory the site opened: its descriptor, closed (and the close narrated)
/// when the last holder lets go of it.
pub struct OpenFile {
    /// `Some` until [`Drop`] takes it to close it.
    file: Option<File>,
}

impl OpenFile {
    /// Wraps a descriptor just opened.
    fn new(fd: OwnedFd) -> OpenFile {
        OpenFile {
            file: Some(File::from(fd)),
        }
    }

    /// The open file (it is open until dropped).
    fn file(&self) -> &File {
        match &self.file {
            Some(file) => file,
            None => unreachable!("only drop takes the file, and nothing uses it after"),
        }
    }

    /// The descriptor's number, for trace lines.
    fn number(&self) -> i32 {
        self.file().as_raw_fd()
    }

    /// `statx`: the file's metadata.
    pub fn metadata(&self) -> io::Result<Metadata> {
        let result = self.file().metadata();
        let fd = self.number();
        trace_file!(conn => "statx fd={fd}{conn} {}", Stat(&result));
        result
    }

    /// `newfstatat` on the descriptor itself (`fstat`): what a path-only descriptor is.
    pub fn stat(&self) -> nix::Result<FileStat> {
        let result = nix::sys::stat::fstat(self.file().as_fd());
        let fd = self.number();
        let said = Said(result.as_ref().map(|stat| Kind::of(stat.st_mode)));
        trace_file!(conn => "newfstatat fd={fd}{conn} {said}");
        result
    }
}

impl AsFd for OpenFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file().as_fd()
    }
}

impl fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenFile({})", self.number())
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        let Some(file) = self.file.take() else {
            return;
        };
        let fd = file.as_raw_fd();
        let result = crate::sys::close(OwnedFd::from(file));
        trace_file!(conn => "close fd={fd}{conn}{}", Failed(&result));
    }
}

/// `openat2(at, path, how)`: the kernel's resolver, beneath the root.
pub fn openat2(at: BorrowedFd, path: &Path, how: OpenHow) -> Result<OpenFile, Errno> {
    let result = nix::fcntl::openat2(at, path, how);
    opened("openat2", at, path.as_os_str(), result)
}

/// `openat(at, name, flags)`: one step of the fallback resolver's walk.
pub fn openat(at: BorrowedFd, name: &OsStr, flags: OFlag) -> Result<OpenFile, Errno> {
    let result = nix::fcntl::openat(at, name, flags, Mode::empty());
    opened("openat", at, name, result)
}

/// Narrates an open just made (`call` beneath `at`), and wraps what it opened.
fn opened(
    call: &str,
    at: BorrowedFd,
    path: &OsStr,
    result: Result<OwnedFd, Errno>,
) -> Result<OpenFile, Errno> {
    let at = at.as_raw_fd();
    match &result {
        Ok(fd) => {
            let fd = fd.as_raw_fd();
            trace_file!(conn => "{call} fd={fd}{conn} at={at} path={path:?}");
        }
        Err(errno) => trace_file!(conn => "{call}{conn} at={at} path={path:?} error={errno:?}"),
    }
    result.map(OpenFile::new)
}

/// `readlinkat(at, name)`: where the symlink `name` points (the fallback resolver's walk).
pub fn readlinkat(at: BorrowedFd, name: &OsStr) -> Result<OsString, Errno> {
    let result = nix::fcntl::readlinkat(at, name);
    let at = at.as_raw_fd();
    match &result {
        Ok(target) => trace_file!(conn => "readlinkat{conn} at={at} path={name:?} -> {target:?}"),
        Err(errno) => trace_file!(conn => "readlinkat{conn} at={at} path={name:?} error={errno:?}"),
    }
    result
}

/// `newfstatat(at, name, AT_SYMLINK_NOFOLLOW)`: what the entry `name` of a directory is,
/// without following it.
pub fn stat_at(at: BorrowedFd, name: &OsStr) -> nix::Result<FileStat> {
    let result = nix::sys::stat::fstatat(at, name, AtFlags::AT_SYMLINK_NOFOLLOW);
    let fd = at.as_raw_fd();
    let said = Said(result.as_ref().map(|stat| Kind::of(stat.st_mode)));
    trace_file!(conn => "newfstatat fd={fd}{conn} path={name:?} {said}");
    result
}

/// `readlink("/proc/self/fd/N")`: the path an open descriptor really names, symlinks
/// resolved, so a lookup can check where it led.
pub fn real_path(file: &impl AsFd) -> io::Result<PathBuf> {
    let fd = file.as_fd().as_raw_fd();
    let result = std::fs::read_link(format!("/proc/self/fd/{fd}"));
    match &result {
        Ok(real) => trace_file!(conn => "readlink fd={fd}{conn} -> {real:?}"),
        Err(e) => trace_file!(conn => "readlink fd={fd}{conn} error={}", e.kind()),
    }
    result
}

/// Reads from `file` at `offset` until `buf` is full or the file ends, one `pread64` at a
/// time (each narrated). Returns the bytes read: fewer than `buf.len()` only at the end.
pub fn read_at(file: &impl AsFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let fd = file.as_fd().as_raw_fd();
    let mut filled = 0;
    while filled < buf.len() {
        let at = i64::try_from(offset + filled as u64).unwrap_or(i64::MAX);
        let result = nix::sys::uio::pread(file.as_fd(), &mut buf[filled..], at);
        match result {
            Ok(n) => trace_file!(conn => "pread64 fd={fd}{conn} offset={at} n={n}"),
            Err(errno) => trace_file!(conn => "pread64 fd={fd}{conn} offset={at} error={errno:?}"),
        }
        match result {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

/// Fills `buf` from `file` at `offset`; an error if the file ends first.
pub fn read_exact_at(file: &impl AsFd, buf: &mut [u8], offset: u64) -> io::Result<()> {
    match read_at(file, buf, offset)? {
        n if n == buf.len() => Ok(()),
        _ => Err(io::ErrorKind::UnexpectedEof.into()),
    }
}

/// The size of the open file `file` (`fstat`, which glibc makes as `newfstatat`).
pub fn file_len(file: &impl AsFd) -> io::Result<u64> {
    let fd = file.as_fd().as_raw_fd();
    let result = nix::sys::stat::fstat(file.as_fd());
    match &result {
        Ok(stat) => trace_file!(conn => "newfstatat fd={fd}{conn} size={}", stat.st_size),
        Err(errno) => trace_file!(conn => "newfstatat fd={fd}{conn} error={errno:?}"),
    }
    Ok(u64::try_from(result?.st_size).unwrap_or(0))
}

/// A directory's entries, read a buffer at a time with `getdents64`.
pub struct DirEntries {
    /// The directory.
    dir: OpenFile,
    /// What the last `getdents64` filled.
    buf: Vec<u8>,
    /// Where the next record starts in `buf`.
    at: usize,
    /// How much of `buf` the last call filled.
    filled: usize,
}

/// One directory entry: its name and what `getdents64` says it is.
pub struct DirEntry {
    /// The name's bytes (not necessarily UTF-8).
    pub name: OsString,
    /// Its type; [`Kind::Unknown`] on file systems that do not say.
    pub kind: Kind,
}

/// What an entry or a stat says a name is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A FIFO, socket or device.
    Other,
    /// Not said (`DT_UNKNOWN`).
    Unknown,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            Kind::File => "file",
            Kind::Directory => "dir",
            Kind::Symlink => "symlink",
            Kind::Other => "other",
            Kind::Unknown => "unknown",
        };
        f.write_str(word)
    }
}

impl Kind {
    /// The kind in a `stat`'s `st_mode`.
    pub fn of(mode: libc::mode_t) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Directory,
            libc::S_IFLNK => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    /// The kind in a `linux_dirent64`'s `d_type`.
    fn of_entry(d_type: u8) -> Kind {
        match d_type {
            libc::DT_REG => Kind::File,
            libc::DT_DIR => Kind::Directory,
            libc::DT_LNK => Kind::Symlink,
            libc::DT_UNKNOWN => Kind::Unknown,
            _ => Kind::Other,
        }
    }
}

/// How much one `getdents64` may fill: a few hundred entries of usual names.
const DIR_BUFFER_BYTES: usize = 16 * 1024;

/// Where a `linux_dirent64` keeps its fields: `d_ino` (8 bytes), `d_off` (8), `d_reclen` (2),
/// `d_type` (1), then the NUL-terminated name.
const RECLEN_AT: usize = 16;
/// See [`RECLEN_AT`].
const TYPE_AT: usize = 18;
/// See [`RECLEN_AT`].
const NAME_AT: usize = 19;

impl DirEntries {
    /// The entries of the open directory `dir`.
    pub fn new(dir: OpenFile) -> DirEntries {
        DirEntries {
            dir,
            buf: vec![0; DIR_BUFFER_BYTES],
            at: 0,
            filled: 0,
        }
    }

    /// The directory, for `newfstatat` on its entries.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The next entry (`.` and `..` included), `None` at the end, or the error of the read.
    pub fn next_entry(&mut self) -> Option<io::Result<DirEntry>> {
        if self.at >= self.filled {
            match self.read() {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        let record = &self.buf[self.at..self.filled];
        let length = record.get(RECLEN_AT..TYPE_AT).map_or(0, |bytes| {
            usize::from(u16::from_ne_bytes([bytes[0], bytes[1]]))
        });
        if length <= NAME_AT || length > record.len() {
            self.at = self.filled; // the kernel's records are whole; never trust a bad one
            return Some(Err(io::ErrorKind::InvalidData.into()));
        }
        let name = &record[NAME_AT..length];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        let entry = DirEntry {
            name: OsStr::from_bytes(name).to_owned(),
            kind: Kind::of_entry(record[TYPE_AT]),
        };
        self.at += length;
        Some(Ok(entry))
    }

    /// One `getdents64`: fills the buffer with the next records.
    fn read(&mut self) -> io::Result<usize> {
        let result = crate::sys::getdents(&self.dir, &mut self.buf);
        let fd = self.dir.number();
        match &result {
            Ok(n) => trace_file!(conn => "getdents64 fd={fd}{conn} n={n}"),
            Err(e) => trace_file!(conn => "getdents64 fd={fd}{conn} error={}", e.kind()),
        }
        self.at = 0;
        self.filled = *result.as_ref().unwrap_or(&0);
        result
    }
}

/// ` error=KIND` after a failed call, nothing after one that worked.
struct Failed<'a>(&'a io::Result<()>);

impl fmt::Display for Failed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(()) => Ok(()),
            Err(e) => write!(f, " error={}", e.kind()),
        }
    }
}

/// What a `statx` said: `size=N file`, or `error=KIND`.
struct Stat<'a>(&'a io::Result<Metadata>);

impl fmt::Display for Stat<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::os::unix::fs::MetadataExt;
        match self.0 {
            Ok(metadata) => write!(f, "size={} {}", metadata.len(), Kind::of(metadata.mode())),
            Err(e) => write!(f, "error={}", e.kind()),
        }
    }
}

/// What a `newfstatat` said: the kind, or `error=ERRNO`.
struct Said<'a>(Result<Kind, &'a Errno>);

impl fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(kind) => write!(f, "{kind}"),
            Err(errno) => write!(f, "error={errno:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::test_dir::TestDir;

    /// Every name `getdents64` gives, with its kind, sorted.
    fn listed(dir: &Path) -> Vec<(String, Kind)> {
        let opened = File::open(dir).unwrap();
        let mut entries = DirEntries::new(OpenFile::new(opened.into()));
        let mut names = Vec::new();
        while let Some(entry) = entries.next_entry() {
            let entry = entry.unwrap();
            names.push((entry.name.to_string_lossy().into_owned(), entry.kind));
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names
    }

    #[test]
    fn getdents_gives_every_name_with_its_kind_across_several_reads() {
        let dir = TestDir::new("getdents");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("sub", dir.path().join("link")).unwrap();
        // Long names, so that the entries take several 16 KiB reads.
        let long = |i: usize| format!("{i:04}-{}", "n".repeat(200));
        for i in 0..300 {
            std::fs::write(dir.path().join(long(i)), "").unwrap();
        }
        let names = listed(dir.path());
        assert_eq!(names.len(), 300 + 4, "300 files, sub, link, . and ..");
        assert!(names.contains(&(".".into(), Kind::Directory)));
        assert!(names.contains(&("sub".into(), Kind::Directory)));
        assert!(names.contains(&("link".into(), Kind::Symlink)));
        assert!(names.contains(&(long(299), Kind::File)));
    }

    #[test]
    fn kinds_come_from_the_mode_bits() {
        assert_eq!(Kind::of(libc::S_IFREG | 0o644), Kind::File);
        assert_eq!(Kind::of(libc::S_IFDIR | 0o755), Kind::Directory);
        assert_eq!(Kind::of(libc::S_IFLNK | 0o777), Kind::Symlink);
        assert_eq!(Kind::of(libc::S_IFIFO | 0o600), Kind::Other);
    }
}
