//! Request target → a file under the root: decoding, traversal checks, opening, MIME type.
//!
//! Where this sits in the loop: when a GET or HEAD head is complete, `site::reply_to` calls
//! [`resolve`] and turns what it finds into a `Reply`: a file to send, a redirect, a listing,
//! or an error. No socket is touched here.
//!
//! # Design notes
//! **Nothing outside the root, twice over.** First, lexically: the target's path is
//! percent-decoded exactly once, must be UTF-8 without NUL, and its dot segments are resolved
//! as RFC 3986 §5.2.4 says (`/docs/../style.css` is `/style.css`, as nginx serves it); a `..`
//! that would climb above the root, in any encoding, is refused with 400 (decoding happens
//! before splitting, so `%2e%2e` and `..%2f` are caught, and `%252e` decodes to the harmless
//! name `%2e`). Second, in the kernel: files are opened with
//! [`openat2(2)`](https://man7.org/linux/man-pages/man2/openat2.2.html) relative to the root
//! directory's descriptor with `RESOLVE_BENEATH`, so no symlink (and no race with someone
//! replacing a directory by a symlink) can lead the lookup outside the root. One syscall does
//! what `realpath` + prefix check would do in several, and without the race.
//!
//! **Where `openat2` is missing, a walk with the same guarantees.** Kernels before 5.6,
//! container seccomp profiles that answer `ENOSYS` (or `EPERM`) and valgrind have no
//! `openat2`. [`Root::open`] probes it once; if it is missing, it logs one warning and every
//! lookup goes through the fallback resolver in `fallback_resolver.rs` instead: an `openat(O_NOFOLLOW)`
//! per path component from the root's descriptor, which resolves symlinks itself and refuses
//! exactly what `RESOLVE_BENEATH` and `RESOLVE_NO_SYMLINKS` refuse, with the same errors, so
//! the same statuses. Any other failure of the probe stops the server: it never serves with
//! weaker guarantees. The environment variable `EPOLLO_FORCE_OPENAT_FALLBACK=1` (a test-only
//! switch, not a flag) forces the fallback, so the test suite can run through both resolvers.
//!
//! **Opening files blocks, briefly.** epoll cannot watch regular files: they are always
//! "ready", and `open`, `fstat` and reading a page that is not cached wait on the disk. For a
//! static site, which lives in the page cache, that is microseconds; a server that must not
//! stall on a slow disk would need a thread pool or io_uring, which epollo leaves out.
//! What could block for ever (a FIFO with no writer) is avoided: files are opened with
//! `O_NONBLOCK` and only regular files are served.

use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use percent_encoding::{percent_decode_str, percent_encode, utf8_percent_encode};

use super::disk::{self, OpenFile};
use super::fallback_resolver::{self, Symlinks};
use super::{conditional, encoding, mime};
use crate::config::SiteOptions;
use crate::http::Status;
use crate::http::reply::Content;
use crate::util::escape;
use std::rc::Rc;

/// The environment variable that forces the fallback resolver when set to `1`: a test-only
/// switch (see the module docs), so that the tests can run every lookup through the walk.
pub const FORCE_FALLBACK_VAR: &str = "EPOLLO_FORCE_OPENAT_FALLBACK";

/// The served folder: its canonical path and an open descriptor that lookups start from.
#[derive(Debug)]
pub struct Root {
    /// The directory, opened once at startup; every file is opened relative to it.
    dir: OwnedFd,
    /// The canonical path, for messages.
    path: PathBuf,
    /// Whether symlinks may lead out of the root (`--follow-symlinks`).
    follow_symlinks: bool,
    /// How lookups beneath the root are made, chosen once at startup.
    resolver: Resolver,
}

/// How lookups beneath the root are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(2)` with `RESOLVE_BENEATH`: one system call, and the kernel keeps it inside.
    Openat2,
    /// The fallback for systems without `openat2`: a component-by-component `openat` walk
    /// (`fallback_resolver.rs`) with the same refusals.
    Walk,
}

impl Root {
    /// Canonicalises and opens `path`, which must be a directory. With `follow_symlinks`,
    /// symlinks inside the root may point anywhere (`..` in a request is still refused).
    ///
    /// # Errors
    /// The path does not exist, is not a directory, or cannot be opened; the message names it.
    pub fn open(path: &Path, follow_symlinks: bool) -> io::Result<Root> {
        let (dir, canonical) = open_dir(path)?;
        // Every request depends on how files are opened: find out now, not with 500s later.
        let resolver = choose_resolver(&dir)?;
        Ok(Root {
            dir,
            path: canonical,
            follow_symlinks,
            resolver,
        })
    }

    /// Like [`Root::open`], with the resolver chosen by the caller rather than by the probe,
    /// so that tests can run each lookup through both.
    #[cfg(test)]
    pub(crate) fn open_using(
        path: &Path,
        follow_symlinks: bool,
        resolver: Resolver,
    ) -> io::Result<Root> {
        let root = Root::open(path, follow_symlinks)?;
        Ok(Root { resolver, ..root })
    }

    /// The canonical path of the root.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How this root's lookups are made.
    pub fn resolver(&self) -> Resolver {
        self.resolver
    }
}

/// Canonicalises and opens `path`, which must be a directory.
///
/// # Errors
/// The path does not exist, is not a directory, or cannot be opened; the message names it.
fn open_dir(path: &Path) -> io::Result<(OwnedFd, PathBuf)> {
    let name = path.display();
    let canonical = path.canonicalize().map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => {
                " (give the folder to serve as the first argument: epollo PATH)"
            }
            io::ErrorKind::PermissionDenied => {
                " (the server needs to search every folder on the way: chmod +x)"
            }
            _ => "",
        };
        io::Error::new(e.kind(), format!("root {name}: {e}{hint}"))
    })?;
    if !canonical.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("root {name} is not a directory"),
        ));
    }
    let dir = File::open(&canonical).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::PermissionDenied => {
                " (the server needs read and search rights on it: chmod a+rx)"
            }
            _ => "",
        };
        io::Error::new(e.kind(), format!("root {name}: {e}{hint}"))
    })?;
    Ok((dir.into(), canonical))
}

/// Probes `openat2` once, on the root itself: the kernel's resolver where it works, the
/// fallback walk where it is missing or [`FORCE_FALLBACK_VAR`] asks for it (one warning
/// either way, so a server on the fallback never goes unnoticed).
///
/// # Errors
/// `openat2` exists but refuses the probe for another reason: we would not know what it
/// does with requests, so we do not serve.
fn choose_resolver(dir: &OwnedFd) -> io::Result<Resolver> {
    let fallback = "files are opened by the fallback resolver (an openat walk beneath the root)";
    if std::env::var_os(FORCE_FALLBACK_VAR).is_some_and(|value| value == "1") {
        log::warn!("openat2 not used ({FORCE_FALLBACK_VAR}=1, a test switch): {fallback}");
        return Ok(Resolver::Walk);
    }
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match nix::fcntl::openat2(dir.as_fd(), ".", how) {
        Ok(_) => Ok(Resolver::Openat2),
        // ENOSYS: before Linux 5.6, or under valgrind; EPERM: a seccomp profile older than it.
        Err(errno @ (Errno::ENOSYS | Errno::EPERM)) => {
            log::warn!("openat2 unavailable errno={errno:?}: {fallback}");
            Ok(Resolver::Walk)
        }
        Err(errno) => {
            let message = format!("openat2(2) refused to open the root: {errno}");
            Err(io::Error::new(io::ErrorKind::Unsupported, message))
        }
    }
}

/// A regular file, opened and described, ready to be sent.
#[derive(Clone, Debug)]
pub struct StaticFile {
    /// The file's bytes (an open file, non-blocking and close-on-exec, or the cache's copy):
    /// the original, or a precompressed sibling.
    pub content: Content,
    /// Its length when we looked; if it shrinks while we send, the connection is closed.
    pub len: u64,
    /// Its modification time, if the file system has one.
    pub modified: Option<SystemTime>,
    /// Its strong entity tag (of the representation actually sent).
    pub etag: Rc<str>,
    /// The `Content-Type` value (of the original, also when a sibling is sent).
    pub content_type: Rc<str>,
    /// `Some("br")` or `Some("gzip")` when a precompressed sibling is sent.
    pub encoding: Option<&'static str>,
    /// Its path below the root, as opened (`docs/index.html`, `app.js.br`): the cache watches
    /// the directories on it.
    pub path: Rc<str>,
    /// The serialised field lines of a 200 with the whole file (type, tag, length, dates…),
    /// made once when the file cache takes the file, so its hits format nothing.
    pub head_fields: Option<Rc<[u8]>>,
}

/// What a request target leads to.
#[derive(Debug)]
pub enum Resolved {
    /// A file to send.
    File(StaticFile),
    /// A directory asked for without its trailing slash: redirect to this `Location`.
    Redirect(String),
    /// A directory without an index file, to be listed.
    Listing(Directory),
}

/// A directory to list, opened.
#[derive(Debug)]
pub struct Directory {
    /// Its decoded URL path, starting and ending with `/`, e.g. `/docs/my files/`.
    pub url_path: String,
    /// Its path relative to the root (`.` for the root).
    pub relative: PathBuf,
    /// The open directory.
    pub dir: OpenFile,
}

/// Resolves a request target (origin form) against the root: a file, a directory's index
/// or listing, or a redirect. With `accept_encoding`, a precompressed sibling the client
/// accepts is chosen instead of the file.
///
/// # Errors
/// The status to answer with: 400 for an undecodable or escaping path, 404 for a missing
/// (or hidden) file, 403 for one we may not serve, 503 when out of descriptors, 500 otherwise.
pub fn resolve(
    root: &Root,
    target: &str,
    config: &SiteOptions,
    accept_encoding: Option<&str>,
) -> Result<Resolved, Status> {
    let (raw_path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let DecodedPath {
        segments,
        trailing_slash,
    } = decode_segments(raw_path)?;
    if !config.hidden && segments.iter().any(|segment| is_hidden_name(segment)) {
        return Err(Status::NOT_FOUND);
    }
    let relative = joined(&segments);
    let file = open_visible(root, &relative, OFlag::O_RDONLY, config.hidden)?;
    let metadata = file.metadata().map_err(|e| status_for(&e))?;
    let lookup = Lookup {
        root,
        config,
        accept_encoding,
    };
    match (metadata.is_dir(), trailing_slash) {
        (true, false) => Ok(Resolved::Redirect(directory_location(&segments, query))),
        (true, true) => lookup.directory(&relative, &segments, (file, metadata)),
        // `/file.css/` names a directory that does not exist (the kernel would say ENOTDIR).
        (false, true) => Err(Status::NOT_FOUND),
        (false, false) => {
            let name = segments.last().map(|name| name.to_string_lossy());
            lookup.file(&relative, (file, metadata), &name.unwrap_or_default())
        }
    }
}

/// Names starting with `.` are private (`.git`, `.env`), except `.well-known`, which exists
/// to be served (RFC 8615: ACME challenges, security.txt).
pub(super) fn is_hidden(name: &str) -> bool {
    is_hidden_name(OsStr::new(name))
}

/// [`is_hidden`], for a name that may not be UTF-8.
pub(super) fn is_hidden_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(b".") && name != ".well-known"
}

/// Segments joined into a path below the root (`.` for none).
fn joined(segments: &[OsString]) -> PathBuf {
    match segments.is_empty() {
        true => PathBuf::from("."),
        false => segments.iter().collect(),
    }
}

/// What every step of one lookup needs.
struct Lookup<'a> {
    /// The served folder.
    root: &'a Root,
    /// Index name, listing, hidden names, MIME overrides.
    config: &'a SiteOptions,
    /// The request's `Accept-Encoding`, for precompressed siblings.
    accept_encoding: Option<&'a str>,
}

impl Lookup<'_> {
    /// A directory asked for with its trailing slash: its index, else its listing (or 403).
    fn directory(
        &self,
        relative: &Path,
        segments: &[OsString],
        (dir, _): (OpenFile, Metadata),
    ) -> Result<Resolved, Status> {
        let index_path = relative.join(&self.config.index);
        match open_visible(self.root, &index_path, OFlag::O_RDONLY, self.config.hidden) {
            Ok(index) => {
                let metadata = index.metadata().map_err(|e| status_for(&e))?;
                self.file(&index_path, (index, metadata), &self.config.index)
            }
            Err(Status::NOT_FOUND) if self.config.listing => {
                let shown = |s: &OsString| escape::shown_name(s.as_bytes());
                let url_path: String = segments.iter().map(|s| format!("{}/", shown(s))).collect();
                Ok(Resolved::Listing(Directory {
                    url_path: format!("/{url_path}"),
                    relative: relative.to_path_buf(),
                    dir,
                }))
            }
            Err(Status::NOT_FOUND) => Err(Status::FORBIDDEN),
            Err(status) => Err(status),
        }
    }

    /// Describes a file, swapping in a precompressed sibling if the client accepts one.
    fn file(
        &self,
        relative: &Path,
        (file, metadata): (OpenFile, Metadata),
        name: &str,
    ) -> Result<Resolved, Status> {
        let mut served = describe(file, &metadata, relative, name, self.config)?;
        // Without Accept-Encoding there is nothing to look for, so load testers pay nothing.
        if let Some(accept_encoding) = self.accept_encoding {
            self.choose_sibling(relative, accept_encoding, &mut served);
        }
        Ok(Resolved::File(served))
    }

    /// Tries `FILE.br` and `FILE.gz` in the client's order of preference, and swaps the first
    /// that exists in for the file (keeping the original's type).
    fn choose_sibling(&self, relative: &Path, accept_encoding: &str, served: &mut StaticFile) {
        for (coding, suffix) in encoding::ranked(accept_encoding) {
            let mut path = relative.as_os_str().to_owned();
            path.push(suffix);
            let path = PathBuf::from(path);
            let Ok(sibling) = open_visible(self.root, &path, OFlag::O_RDONLY, self.config.hidden)
            else {
                continue;
            };
            if let Ok(metadata) = sibling.metadata()
                && metadata.is_file()
            {
                served.content = Content::File(Rc::new(sibling));
                served.path = path.to_string_lossy().into();
                served.len = metadata.len();
                served.modified = metadata.modified().ok();
                served.etag = conditional::etag(&metadata).into();
                served.encoding = Some(coding);
                return;
            }
        }
    }
}

/// Opens a page such as `404.html` in the root, if it is a readable regular file.
pub fn open_page(root: &Root, name: &str, config: &SiteOptions) -> Option<StaticFile> {
    let file = open_visible(root, Path::new(name), OFlag::O_RDONLY, config.hidden).ok()?;
    let metadata = file.metadata().ok()?;
    describe(file, &metadata, Path::new(name), name, config).ok()
}

/// The directories, below the root, whose entries decide what a request path leads to (as
/// written, before any symlink): the path's parent, or for a path ending in `/` the directory
/// itself (its index lives there). `None` if the path does not decode.
pub fn dirs_of(raw_path: &str) -> Option<PathBuf> {
    let decoded = decode_segments(raw_path).ok()?;
    let dirs = if decoded.trailing_slash {
        &decoded.segments[..]
    } else {
        decoded
            .segments
            .split_last()
            .map_or(&[][..], |(_, rest)| rest)
    };
    Some(dirs.iter().collect())
}

/// Opens a directory below the root (`""` for the root itself) as an `O_PATH` descriptor,
/// only if no symlink is on the way: what the file cache watches must be a real directory
/// under the root, never somewhere a link leads.
pub fn open_plain_dir(root: &Root, relative: &Path) -> Option<OpenFile> {
    let relative = match relative.as_os_str().is_empty() {
        true => Path::new("."),
        false => relative,
    };
    open_with(
        root,
        relative,
        OFlag::O_PATH,
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
    .ok()
}

/// Whether a symbolic link stands on a request path (the path itself or a directory on the
/// way), walked without following any: asked only after a `403`, to say why.
pub fn link_on_the_way(root: &Root, raw_path: &str) -> bool {
    let Ok(decoded) = decode_segments(raw_path) else {
        return false;
    };
    let mut prefix = PathBuf::new();
    for segment in &decoded.segments {
        prefix.push(segment);
        // Every directory before this one was checked not to be a link, so the kernel
        // follows none reaching it.
        match disk::stat_at(root.dir.as_fd(), prefix.as_os_str()) {
            Ok(stat) if disk::Kind::of(stat.st_mode) == disk::Kind::Symlink => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// Whether nothing at all is at a request path: its parent is reached without a symlink and
/// holds no entry of that name (not even a dangling symlink or a hidden file). Only such a
/// 404 may be cached: a symlink could be retargeted somewhere no watch sees.
pub fn is_plainly_missing(root: &Root, raw_path: &str) -> bool {
    let Ok(decoded) = decode_segments(raw_path) else {
        return false;
    };
    let Some((name, parent)) = decoded.segments.split_last() else {
        return false;
    };
    if decoded.trailing_slash {
        return false;
    }
    let parent = joined(parent);
    let Ok(dir) = open_with(
        root,
        &parent,
        OFlag::O_PATH,
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    ) else {
        return false;
    };
    matches!(disk::stat_at(dir.as_fd(), name), Err(Errno::ENOENT))
}

/// A request path, percent-decoded once, with its dot segments resolved.
struct DecodedPath {
    /// The segments left, none of them empty, `.` or `..`: bytes, as file names are (not
    /// necessarily UTF-8).
    segments: Vec<OsString>,
    /// Whether the path names a directory: it ends in `/`, `/.` or `/..`.
    trailing_slash: bool,
}

/// Percent-decodes the path once, then removes dot segments as RFC 3986 §5.2.4 does: `.`
/// goes, `..` removes the segment before it, and empty segments (`//`) are skipped.
///
/// The decoded bytes are a file name's bytes: they need not be UTF-8 (a Linux file name is
/// any bytes but `/` and NUL, and nginx serves them too); `..` is only ever the two bytes.
///
/// # Errors
/// 400 for a path that holds a NUL, or would climb above the root.
fn decode_segments(raw_path: &str) -> Result<DecodedPath, Status> {
    let decoded: Vec<u8> = percent_decode_str(raw_path).collect();
    if decoded.contains(&0) {
        return Err(Status::BAD_REQUEST);
    }
    let mut segments: Vec<OsString> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split(|&byte| byte == b'/') {
        trailing_slash = matches!(segment, b"" | b"." | b"..");
        match segment {
            b"" | b"." => {}
            b".." => {
                // Climbing above the root is the one traversal we refuse outright.
                segments.pop().ok_or(Status::BAD_REQUEST)?;
            }
            name => segments.push(OsStr::from_bytes(name).to_owned()),
        }
    }
    Ok(DecodedPath {
        segments,
        trailing_slash,
    })
}

/// Opens `relative` under the root like [`open_beneath`], and applies the hidden-name policy
/// to where the path really leads: a symlink to `.env` or into `.git` is as hidden as they are.
///
/// The common case pays nothing: the first try refuses symlinks in the kernel
/// (`RESOLVE_NO_SYMLINKS`); only a path that has one (`ELOOP`) is opened again, following it,
/// and checked by the real path of the descriptor.
pub(super) fn open_visible(
    root: &Root,
    relative: &Path,
    access: OFlag,
    hidden: bool,
) -> Result<OpenFile, Status> {
    if hidden {
        return open_beneath(root, relative, access);
    }
    match open_with(root, relative, access, ResolveFlag::RESOLVE_NO_SYMLINKS) {
        Ok(file) => Ok(file),
        Err(Errno::ELOOP) => {
            let file = open_beneath(root, relative, access)?;
            if leads_to_hidden(root, &file) {
                log::debug!("open path={relative:?} refused: it leads to a hidden name");
                return Err(Status::NOT_FOUND);
            }
            Ok(file)
        }
        Err(errno) => Err(status_for(&io::Error::from(errno))),
    }
}

/// Whether an opened file's real path has a hidden name below the root (or, for a symlink
/// out of the root with `--follow-symlinks`, is itself hidden). If the path cannot be read
/// we cannot tell, and say yes.
fn leads_to_hidden(root: &Root, file: &OpenFile) -> bool {
    let Ok(real) = disk::real_path(file) else {
        return true;
    };
    let hidden = |name: &std::ffi::OsStr| name.to_str().is_none_or(is_hidden);
    match real.strip_prefix(&root.path) {
        Ok(below) => below.iter().any(hidden),
        Err(_) => real.file_name().is_none_or(hidden),
    }
}

/// Opens `relative` under the root without following anything out of it. `access` is
/// `O_RDONLY` to read the file, or `O_PATH` just to stat it (which opens nothing, so even a
/// device has no side effect).
fn open_beneath(root: &Root, relative: &Path, access: OFlag) -> Result<OpenFile, Status> {
    open_with(root, relative, access, ResolveFlag::empty()).map_err(|errno| {
        log::debug!("open path={relative:?} failed: {errno}");
        status_for(&io::Error::from(errno))
    })
}

/// Opens `relative` beneath the root, with `extra` resolve flags (`RESOLVE_NO_SYMLINKS` or
/// none), through the root's resolver: `openat2`, or the walk that does what it does.
fn open_with(
    root: &Root,
    relative: &Path,
    access: OFlag,
    extra: ResolveFlag,
) -> Result<OpenFile, Errno> {
    // openat2 refuses O_PATH combined with anything but O_CLOEXEC (and a few others).
    let flags = if access == OFlag::O_PATH {
        OFlag::O_PATH | OFlag::O_CLOEXEC
    } else {
        access | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC
    };
    match root.resolver {
        Resolver::Openat2 => {
            let beneath = if root.follow_symlinks {
                ResolveFlag::empty()
            } else {
                ResolveFlag::RESOLVE_BENEATH
            };
            let how = OpenHow::new()
                .flags(flags)
                .mode(Mode::empty())
                .resolve(beneath | ResolveFlag::RESOLVE_NO_MAGICLINKS | extra);
            disk::openat2(root.dir.as_fd(), relative, how)
        }
        Resolver::Walk => {
            fallback_resolver::open(root.dir.as_fd(), relative, flags, walk_rule(root, extra))
        }
    }
}

/// The walk's rule for symlinks that matches `openat2` with these resolve flags on this root.
fn walk_rule(root: &Root, extra: ResolveFlag) -> Symlinks {
    if extra.contains(ResolveFlag::RESOLVE_NO_SYMLINKS) {
        Symlinks::Refuse
    } else if root.follow_symlinks {
        Symlinks::Anywhere
    } else {
        Symlinks::Beneath
    }
}

/// The status for a failed open or stat.
fn status_for(error: &io::Error) -> Status {
    match error.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT | Errno::ENOTDIR | Errno::ENAMETOOLONG) => Status::NOT_FOUND,
        // EXDEV: the path tried to leave the root (a symlink out); ELOOP: a symlink loop;
        // ENXIO: a socket file.
        Some(Errno::EACCES | Errno::EPERM | Errno::EXDEV | Errno::ELOOP | Errno::ENXIO) => {
            Status::FORBIDDEN
        }
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM) => Status::SERVICE_UNAVAILABLE,
        _ => {
            log::warn!("unexpected error opening a file: {error}");
            Status::INTERNAL_ERROR
        }
    }
}

/// Checks that an opened file is a regular file and gathers what its response head needs.
fn describe(
    file: OpenFile,
    metadata: &Metadata,
    relative: &Path,
    name: &str,
    config: &SiteOptions,
) -> Result<StaticFile, Status> {
    if !metadata.is_file() {
        // A directory as index, a FIFO, a device: never served.
        return Err(Status::FORBIDDEN);
    }
    Ok(StaticFile {
        content: Content::File(Rc::new(file)),
        len: metadata.len(),
        modified: metadata.modified().ok(),
        etag: conditional::etag(metadata).into(),
        content_type: mime::content_type(name, &config.mime_overrides).into(),
        encoding: None,
        path: relative.to_string_lossy().into(),
        head_fields: None,
    })
}

/// The `Location` of a directory's canonical URL: its segments re-encoded, a trailing slash,
/// and the original query. Built from the decoded segments, so it always starts with exactly
/// one `/` (a raw `//evil.example` target can never become an off-site redirect).
fn directory_location(segments: &[OsString], query: Option<&str>) -> String {
    let mut location = String::new();
    for segment in segments {
        location.push('/');
        location.extend(percent_encode(segment.as_bytes(), escape::PATH_SEGMENT));
    }
    location.push('/');
    if let Some(query) = query {
        location.push('?');
        location.extend(utf8_percent_encode(query, escape::QUERY));
    }
    location
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::site::listing_stream::ListingStream;
    use crate::util::test_dir::TestDir;
    use std::fs;
    use std::os::unix::fs::symlink;

    /// Both resolvers: every test that resolves a path runs once with each.
    const RESOLVERS: [Resolver; 2] = [Resolver::Openat2, Resolver::Walk];

    /// A fresh temporary root (`DIR/root`) with a few files, and a secret beside it.
    struct TempRoot(TestDir);

    impl TempRoot {
        fn new() -> TempRoot {
            let dir = TestDir::new("files");
            let base = dir.path();
            let root = base.join("root");
            fs::create_dir_all(root.join("sub dir")).unwrap();
            fs::write(root.join("index.html"), "home").unwrap();
            fs::write(root.join("a.css"), "body{}").unwrap();
            fs::write(root.join("sub dir/index.html"), "sub").unwrap();
            fs::write(root.join("héllo wörld.txt"), "utf8").unwrap();
            fs::write(root.join("%2e"), "literal percent name").unwrap();
            fs::create_dir_all(root.join(".hidden")).unwrap();
            fs::write(root.join(".hidden/x"), "private").unwrap();
            fs::create_dir_all(root.join(".well-known")).unwrap();
            fs::write(root.join(".well-known/x"), "acme").unwrap();
            fs::create_dir_all(root.join("plain")).unwrap();
            fs::write(root.join("plain/b.txt"), "b").unwrap();
            fs::write(root.join("plain/.secret"), "s").unwrap();
            fs::write(root.join("a.css.gz"), "gz").unwrap();
            fs::write(root.join("a.css.br"), "br").unwrap();
            fs::write(base.join("secret.txt"), "outside").unwrap();
            symlink(base.join("secret.txt"), root.join("out-link")).unwrap();
            symlink("a.css", root.join("in-link.css")).unwrap();
            symlink("../a.css", root.join("plain/up-in.css")).unwrap();
            symlink("../../secret.txt", root.join("plain/up-out")).unwrap();
            symlink("sub dir", root.join("dir-link")).unwrap();
            symlink("loop-b", root.join("loop-a")).unwrap();
            symlink("loop-a", root.join("loop-b")).unwrap();
            symlink(".hidden/x", root.join("hidden-link")).unwrap();
            symlink(".well-known/x", root.join("acme-link")).unwrap();
            TempRoot(dir)
        }

        fn base(&self) -> &Path {
            self.0.path()
        }

        /// The root, its lookups made by `resolver`.
        fn root(&self, resolver: Resolver) -> Root {
            Root::open_using(&self.base().join("root"), false, resolver).unwrap()
        }

        /// Runs `case` once with a root in each resolver mode.
        fn each_root(&self, follow_symlinks: bool, case: impl Fn(&Root)) {
            for resolver in RESOLVERS {
                let path = self.base().join("root");
                case(&Root::open_using(&path, follow_symlinks, resolver).unwrap());
            }
        }
    }

    fn body_of(root: &Root, resolved: Result<Resolved, Status>) -> Result<String, Status> {
        match resolved? {
            Resolved::File(file) => {
                let Content::File(file) = file.content else {
                    panic!("resolve opens files; only the cache holds copies");
                };
                let mut bytes = vec![0; 1 << 16];
                let read = disk::read_at(&file, &mut bytes, 0).unwrap();
                Ok(String::from_utf8(bytes[..read].to_vec()).unwrap())
            }
            Resolved::Redirect(location) => Ok(format!("redirect {location}")),
            Resolved::Listing(directory) => {
                let root = Root::open_using(root.path(), root.follow_symlinks, root.resolver);
                let (root, load) = (Rc::new(root.unwrap()), Rc::default());
                let how = (false, Default::default(), Default::default(), false);
                let stream = ListingStream::new(directory, root, load, how);
                Ok(format!("listing {}", stream.render_all()))
            }
        }
    }

    /// What a target resolves to with the default configuration.
    fn get(root: &Root, target: &str) -> Result<String, Status> {
        body_of(root, resolve(root, target, &SiteOptions::default(), None))
    }

    #[test]
    fn files_directories_and_redirects() {
        let table: &[(&str, Result<&str, Status>)] = &[
            ("/", Ok("home")),
            ("/index.html", Ok("home")),
            ("/a.css?v=3", Ok("body{}")),
            ("/sub%20dir/", Ok("sub")),
            ("/sub%20dir", Ok("redirect /sub%20dir/")),
            ("/sub%20dir?x=1&y", Ok("redirect /sub%20dir/?x=1&y")),
            ("//sub%20dir", Ok("redirect /sub%20dir/")),
            ("/h%C3%A9llo%20w%C3%B6rld.txt", Ok("utf8")),
            ("/./a.css", Ok("body{}")),
            ("/sub%20dir/../a.css", Ok("body{}")),
            ("/plain/%2e%2e/a.css", Ok("body{}")),
            ("/plain/..", Ok("home")),
            ("/plain/../", Ok("home")),
            ("//plain///..////", Ok("home")),
            ("/plain/./b.txt", Ok("b")),
            ("/sub%20dir/.", Ok("sub")),
            ("/sub%20dir/..%2fplain", Ok("redirect /plain/")),
            ("/in-link.css", Ok("body{}")),
            ("/plain/up-in.css", Ok("body{}")),
            ("/dir-link/", Ok("sub")),
            ("/dir-link/index.html", Ok("sub")),
            ("/acme-link", Ok("acme")),
            ("/missing", Err(Status::NOT_FOUND)),
            ("/a.css/", Err(Status::NOT_FOUND)),
            ("/a.css/x", Err(Status::NOT_FOUND)),
            ("/.hidden/x", Err(Status::NOT_FOUND)),
            ("/hidden-link", Err(Status::NOT_FOUND)),
            ("/.well-known/x", Ok("acme")),
        ];
        TempRoot::new().each_root(false, |root| {
            for (target, expected) in table {
                let got = get(root, target);
                let resolver = root.resolver();
                assert_eq!(
                    got.as_deref().map_err(|s| *s),
                    *expected,
                    "{target} {resolver:?}"
                );
            }
        });
    }

    #[test]
    fn the_traversal_corpus_never_leaves_the_root() {
        let long = format!("/{}", "a/".repeat(3000));
        let table: &[(&str, Status)] = &[
            ("/../secret.txt", Status::BAD_REQUEST),
            ("/sub%20dir/../../secret.txt", Status::BAD_REQUEST),
            ("/%2e%2e/secret.txt", Status::BAD_REQUEST),
            ("/%2E%2E%2fsecret.txt", Status::BAD_REQUEST),
            ("/..%2fsecret.txt", Status::BAD_REQUEST),
            ("/%252e%252e/secret.txt", Status::NOT_FOUND),
            // Overlong "..": four bytes of a name, not a dot segment; no such directory.
            ("/%c0%ae%c0%ae/secret.txt", Status::NOT_FOUND),
            ("/..\\secret.txt", Status::NOT_FOUND),
            ("/..%5csecret.txt", Status::NOT_FOUND),
            ("/a.css%00.html", Status::BAD_REQUEST),
            ("/%ff", Status::NOT_FOUND), // a name that is not UTF-8 is a name; not there
            ("/out-link", Status::FORBIDDEN),
            ("/plain/up-out", Status::FORBIDDEN),
            ("/loop-a", Status::FORBIDDEN),
            (&long, Status::NOT_FOUND),
        ];
        TempRoot::new().each_root(false, |root| {
            for (target, status) in table {
                assert_eq!(
                    get(root, target),
                    Err(*status),
                    "{target} {:?}",
                    root.resolver()
                );
            }
            // Decoded exactly once: %252e names the file literally called "%2e".
            assert_eq!(get(root, "/%252e"), Ok("literal percent name".into()));
        });
    }

    #[test]
    fn follow_symlinks_lets_links_point_outside_but_still_refuses_dot_dot() {
        TempRoot::new().each_root(true, |root| {
            assert_eq!(get(root, "/out-link"), Ok("outside".into()));
            assert_eq!(get(root, "/plain/up-out"), Ok("outside".into()));
            assert_eq!(get(root, "/loop-a"), Err(Status::FORBIDDEN));
            assert_eq!(get(root, "/hidden-link"), Err(Status::NOT_FOUND));
            assert_eq!(get(root, "/../secret.txt"), Err(Status::BAD_REQUEST));
        });
    }

    #[test]
    fn hidden_names_are_served_with_the_flag() {
        let config = SiteOptions {
            hidden: true,
            ..SiteOptions::default()
        };
        TempRoot::new().each_root(false, |root| {
            for target in ["/.hidden/x", "/hidden-link"] {
                let got = body_of(root, resolve(root, target, &config, None));
                assert_eq!(got, Ok("private".into()), "{target} {:?}", root.resolver());
            }
        });
    }

    #[test]
    fn a_directory_without_index_is_listed_or_forbidden() {
        let no_listing = SiteOptions {
            listing: false,
            ..SiteOptions::default()
        };
        TempRoot::new().each_root(false, |root| {
            let listing = get(root, "/plain/").unwrap();
            assert!(
                listing.starts_with("listing ") && listing.contains("b.txt"),
                "{listing}"
            );
            assert!(!listing.contains(".secret"), "hidden names are not listed");
            assert!(listing.contains("up-in.css"), "links inside are listed");
            assert!(!listing.contains("up-out"), "links out are not listed");
            assert_eq!(
                body_of(root, resolve(root, "/plain/", &no_listing, None)),
                Err(Status::FORBIDDEN)
            );
        });
    }

    #[test]
    fn precompressed_siblings_follow_accept_encoding() {
        let config = SiteOptions::default();
        TempRoot::new().each_root(false, |root| {
            let pick = |accept: Option<&str>| match resolve(root, "/a.css", &config, accept) {
                Ok(Resolved::File(file)) => {
                    (file.encoding, file.len, file.content_type.to_string())
                }
                other => panic!("{other:?}"),
            };
            let css = || "text/css; charset=utf-8".to_string();
            assert_eq!(pick(None), (None, 6, css()));
            assert_eq!(pick(Some("gzip, br")), (Some("br"), 2, css()));
            assert_eq!(pick(Some("gzip")), (Some("gzip"), 2, css()));
            assert_eq!(pick(Some("br;q=0, gzip;q=0")), (None, 6, css()));
            assert_eq!(pick(Some("identity")), (None, 6, css()));
        });
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let temp = TempRoot::new();
        let fifo = temp.base().join("root/pipe");
        nix::unistd::mkfifo(&fifo, Mode::S_IRWXU).unwrap();
        temp.each_root(false, |root| {
            assert_eq!(get(root, "/pipe"), Err(Status::FORBIDDEN));
        });
    }

    #[test]
    fn only_a_path_with_nothing_at_all_is_plainly_missing() {
        let temp = TempRoot::new();
        let table = [
            ("/missing", true),
            ("/plain/missing", true),
            ("/a.css", false),
            ("/loop-a", false),
            ("/.hidden/x", false),
            ("/dir-link/missing", false),
            ("/plain/", false),
        ];
        temp.each_root(false, |root| {
            for (path, missing) in table {
                let resolver = root.resolver();
                assert_eq!(
                    is_plainly_missing(root, path),
                    missing,
                    "{path} {resolver:?}"
                );
            }
        });
    }

    #[test]
    fn a_root_must_be_an_existing_directory() {
        let temp = TempRoot::new();
        assert!(Root::open(&temp.base().join("nope"), false).is_err());
        assert!(Root::open(&temp.base().join("secret.txt"), false).is_err());
        assert!(Root::open(&temp.base().join("root"), false).is_ok());
    }

    #[test]
    fn the_probe_picks_openat2_where_the_kernel_has_it() {
        let temp = TempRoot::new();
        let root = Root::open(&temp.base().join("root"), false).unwrap();
        let forced = std::env::var_os(FORCE_FALLBACK_VAR).is_some_and(|value| value == "1");
        let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_CLOEXEC);
        let kernel_has_it = nix::fcntl::openat2(root.dir.as_fd(), ".", how).is_ok();
        let expected = if kernel_has_it && !forced {
            Resolver::Openat2
        } else {
            Resolver::Walk
        };
        assert_eq!(root.resolver(), expected);
        assert_eq!(temp.root(Resolver::Walk).resolver(), Resolver::Walk);
    }
}
