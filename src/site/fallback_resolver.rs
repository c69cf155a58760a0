//! The fallback resolver: a lookup beneath the root one path component at a time, for
//! systems without `openat2(2)`.
//!
//! Where this sits in the loop: underneath `files.rs`. `Root::open` probes `openat2` once at
//! startup; where it is missing (kernels before 5.6, a container's seccomp profile that
//! answers `ENOSYS` or `EPERM`, valgrind, which does not know the system call), every file a
//! request leads to is opened by [`open`] here instead, with the same answers. The hidden
//! test switch `EPOLLO_FORCE_OPENAT_FALLBACK=1` makes `Root::open` choose this walk even where
//! `openat2` works, so the test suite can run through both resolvers.
//!
//! # Design notes
//! - **The kernel never follows a link for us.** Each component is opened with `O_NOFOLLOW`
//!   relative to the directory before it (`O_PATH | O_DIRECTORY` on the way, the caller's
//!   flags for the last one), so a symlink fails the open (`ENOTDIR` or `ELOOP`; with
//!   `O_PATH` the link itself is opened, and `fstat` tells). Only then is it read with
//!   `readlinkat(2)`, and its target is put in front of the components still to walk,
//!   resolved from the directory that holds the link, as the kernel does.
//! - **The same refusals as `RESOLVE_BENEATH`**
//!   ([openat2(2)](https://man7.org/linux/man-pages/man2/openat2.2.html)): an absolute
//!   target and a `..` that would climb above the root are `EXDEV`; more than
//!   [`MAX_SYMLINKS_FOLLOWED`] links (the kernel's `MAXSYMLINKS`, see
//!   [path_resolution(7)](https://man7.org/linux/man-pages/man7/path_resolution.7.html)) are
//!   `ELOOP`; a path longer than `PATH_MAX` is `ENAMETOOLONG`. [`Symlinks::Refuse`] is
//!   `RESOLVE_NO_SYMLINKS`: the first link on the way, the last component included, is
//!   `ELOOP`. `files.rs` turns these into the same statuses whichever resolver ran.
//! - **`..` without a lookup.** The walk keeps a descriptor for each directory it has entered
//!   below the root, so `..` drops the innermost one instead of opening `..`: a directory
//!   renamed during the walk cannot carry it above the root (the kernel re-checks its own
//!   `..` under a rename lock for the same reason). Directories have one parent, so this is
//!   the `..` the kernel would take. The price is one descriptor per level, held for the
//!   lookup; a served tree is a few levels deep.
//! - **`--follow-symlinks` needs no walk.** Without `RESOLVE_BENEATH`, `openat2` resolves like
//!   `openat(2)`, so [`Symlinks::Anywhere`] hands the whole path to `openat`. The one thing
//!   plain `openat` does not refuse is a `/proc` magic link (`RESOLVE_NO_MAGICLINKS`); with
//!   `--follow-symlinks` every link may lead anywhere already. The hidden-name check's first
//!   try ([`Symlinks::Refuse`]) still walks; there the walk treats a `..` above the root as
//!   `EXDEV` where `openat2` without `RESOLVE_BENEATH` would climb, but no such `..` can
//!   reach it: request paths lose theirs when decoded, and no link is followed.
//! - **Cost.** `openat2` is one system call per lookup; the walk is one `openat` per
//!   component (plus a `readlinkat` per link, and an `fstat` for an `O_PATH` lookup), and a
//!   `close` for each directory it entered.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::disk::{Kind, OpenFile, openat, readlinkat};

use crate::limits::{MAX_PATH_BYTES, MAX_SYMLINKS_FOLLOWED};

/// What a lookup does with the symlinks it meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symlinks {
    /// Follow those that stay beneath the root, refuse the others (`RESOLVE_BENEATH`).
    Beneath,
    /// Follow them wherever they lead (`--follow-symlinks`).
    Anywhere,
    /// Refuse every one, followed or not (`RESOLVE_NO_SYMLINKS`).
    Refuse,
}

/// Opens `relative` under the directory `root` with `flags` (which the caller has made
/// non-blocking and close-on-exec), following symlinks as `symlinks` says.
///
/// # Errors
/// What `openat2` would return for the same lookup: `EXDEV` for a way out of the root,
/// `ELOOP` for too many links (or any, with [`Symlinks::Refuse`]), `ENOTDIR` for a file used
/// as a directory, `ENOENT`, `EACCES`, `ENAMETOOLONG`, `EMFILE` and the like from the kernel.
pub fn open(
    root: BorrowedFd<'_>,
    relative: &Path,
    flags: OFlag,
    symlinks: Symlinks,
) -> Result<OpenFile, Errno> {
    if relative.as_os_str().len() > MAX_PATH_BYTES {
        return Err(Errno::ENAMETOOLONG);
    }
    if symlinks == Symlinks::Anywhere {
        return openat(root, relative.as_os_str(), flags);
    }
    let mut walk = Walk {
        root,
        dirs: Vec::new(),
        pending: Vec::new(),
        links_followed: 0,
        refuse_links: symlinks == Symlinks::Refuse,
    };
    walk.push_path(relative.as_os_str().as_bytes())?;
    walk.run(flags)
}

/// One lookup in progress.
struct Walk<'a> {
    /// The root: where the walk starts, and the floor that `..` may not go below.
    root: BorrowedFd<'a>,
    /// The directories entered below the root, innermost last.
    // INVARIANT: its length is how deep below the root the walk is.
    dirs: Vec<OpenFile>,
    /// The components still to resolve, the next one last (a link's target goes on top).
    pending: Vec<Vec<u8>>,
    /// How many symlinks this lookup has followed.
    links_followed: usize,
    /// Whether any symlink is refused (`RESOLVE_NO_SYMLINKS`).
    refuse_links: bool,
}

impl Walk<'_> {
    /// Resolves the pending components one by one and opens the last with `flags`.
    fn run(mut self, flags: OFlag) -> Result<OpenFile, Errno> {
        while let Some(name) = self.pending.pop() {
            let last = self.pending.is_empty();
            match name.as_slice() {
                b"." | b".." => {
                    if name == b".." {
                        // Climbing above the root is what RESOLVE_BENEATH answers with EXDEV.
                        self.dirs.pop().ok_or(Errno::EXDEV)?;
                    }
                    if last {
                        return openat(self.here(), OsStr::new("."), flags);
                    }
                }
                _ if last => {
                    if let Some(file) = self.open_last(&name, flags)? {
                        return Ok(file);
                    }
                }
                _ => self.enter(&name)?,
            }
        }
        // `push_path` always leaves a component, and the last one returns above.
        Err(Errno::ENOENT)
    }

    /// The directory the walk is in.
    fn here(&self) -> BorrowedFd<'_> {
        self.dirs.last().map_or(self.root, AsFd::as_fd)
    }

    /// Puts a path's components in front of those pending. `.` and empty components go,
    /// except that a path ending in `/` or `/.` keeps a final `.`: it must name a directory.
    ///
    /// # Errors
    /// `ENOENT` for an empty path (as the kernel says of an empty link), `EXDEV` for an
    /// absolute one: it starts outside the root.
    fn push_path(&mut self, path: &[u8]) -> Result<(), Errno> {
        if path.is_empty() {
            return Err(Errno::ENOENT);
        }
        if path.starts_with(b"/") {
            return Err(Errno::EXDEV);
        }
        let segments: Vec<&[u8]> = path.split(|&byte| byte == b'/').collect();
        if let Some(b"" | b".") = segments.last().copied() {
            self.pending.push(b".".to_vec());
        }
        for segment in segments.into_iter().rev() {
            if !matches!(segment, b"" | b".") {
                self.pending.push(segment.to_vec());
            }
        }
        Ok(())
    }

    /// Enters the directory `name` on the way; a symlink there is followed instead.
    fn enter(&mut self, name: &[u8]) -> Result<(), Errno> {
        let on_the_way = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        match openat(self.here(), OsStr::from_bytes(name), on_the_way) {
            Ok(dir) => {
                self.dirs.push(dir);
                Ok(())
            }
            // With O_NOFOLLOW a symlink is not a directory, so ENOTDIR may mean a link.
            Err(Errno::ENOTDIR) => self.follow(name, Errno::ENOTDIR),
            Err(errno) => Err(errno),
        }
    }

    /// Opens the last component with `flags`: `Some` file, or `None` when it was a symlink
    /// whose target is now pending.
    fn open_last(&mut self, name: &[u8], flags: OFlag) -> Result<Option<OpenFile>, Errno> {
        match openat(
            self.here(),
            OsStr::from_bytes(name),
            flags | OFlag::O_NOFOLLOW,
        ) {
            // O_PATH with O_NOFOLLOW opens a symlink itself rather than failing: look at it.
            Ok(file) if flags.contains(OFlag::O_PATH) && is_symlink(&file)? => {
                self.follow(name, Errno::ELOOP)?;
                Ok(None)
            }
            Ok(file) => Ok(Some(file)),
            Err(Errno::ELOOP) => {
                self.follow(name, Errno::ELOOP)?;
                Ok(None)
            }
            Err(errno) => Err(errno),
        }
    }

    /// Follows the entry `name`, which an open just refused with `refusal`: if it is a
    /// symlink (and links may be followed), its target goes in front of the pending
    /// components; if it is not, `refusal` stands.
    fn follow(&mut self, name: &[u8], refusal: Errno) -> Result<(), Errno> {
        let target = match readlinkat(self.here(), OsStr::from_bytes(name)) {
            Ok(target) => target,
            Err(Errno::EINVAL) => return Err(refusal), // not a symlink
            Err(errno) => return Err(errno),
        };
        if self.refuse_links || self.links_followed == MAX_SYMLINKS_FOLLOWED {
            return Err(Errno::ELOOP);
        }
        self.links_followed += 1;
        self.push_path(&target.into_vec())
    }
}

/// Whether an `O_PATH | O_NOFOLLOW` descriptor is a symlink.
fn is_symlink(file: &OpenFile) -> Result<bool, Errno> {
    Ok(Kind::of(file.stat()?.st_mode) == Kind::Symlink)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::test_dir::TestDir;
    use nix::fcntl::{OpenHow, ResolveFlag, openat2};
    use std::fs;
    use std::os::unix::fs::symlink;

    /// What a lookup found: a file's contents, `dir` for a directory, or the error.
    type Found = Result<String, Errno>;

    /// A root (`DIR/root`) with a small tree, links of every kind, and a secret beside it.
    fn tree() -> TestDir {
        let dir = TestDir::new("walk");
        let base = dir.path();
        let root = base.join("root");
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        fs::write(root.join("a/b/c/deep.txt"), "deep").unwrap();
        fs::write(root.join("top.txt"), "top").unwrap();
        fs::write(base.join("secret.txt"), "outside").unwrap();
        let links: &[(&str, &str)] = &[
            ("chain1", "chain2"), // a chain inside the root
            ("chain2", "a/chain3"),
            ("a/chain3", "b/c/deep.txt"),
            ("a/b/up", "../../top.txt"),        // `..` that stays inside
            ("a/b/out", "../../../secret.txt"), // `..` that climbs out
            ("abs", "/etc/hostname"),
            ("loop1", "loop2"),
            ("loop2", "loop1"),
            ("to-b", "a/b"),           // a directory, to use in the middle of a path
            ("a/self", "."),           // the directory that holds the link
            ("a/b-slash", "b/"),       // a directory, named as one
            ("top-slash", "top.txt/"), // a file, named as a directory
            ("dangling", "missing"),
        ];
        for (link, target) in links {
            symlink(target, root.join(link)).unwrap();
        }
        dir
    }

    /// The root's descriptor.
    fn root_of(dir: &TestDir) -> std::os::fd::OwnedFd {
        fs::File::open(dir.path().join("root")).unwrap().into()
    }

    /// What a descriptor holds: the text of a file, or `dir`.
    fn contents(file: impl AsFd) -> String {
        let stat = nix::sys::stat::fstat(file.as_fd()).unwrap();
        if Kind::of(stat.st_mode) == Kind::Directory {
            return "dir".into();
        }
        let mut bytes = vec![0; 4096];
        let read = crate::site::disk::read_at(&file, &mut bytes, 0).unwrap();
        String::from_utf8_lossy(&bytes[..read]).into_owned()
    }

    /// The walk's answer.
    fn walked(root: &std::os::fd::OwnedFd, path: &str, symlinks: Symlinks) -> Found {
        let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        open(root.as_fd(), Path::new(path), flags, symlinks).map(contents)
    }

    /// `openat2`'s answer, with the flags `files.rs` gives it.
    fn kernel(root: &std::os::fd::OwnedFd, path: &str, symlinks: Symlinks) -> Found {
        let resolve = match symlinks {
            Symlinks::Beneath => ResolveFlag::RESOLVE_BENEATH,
            Symlinks::Anywhere => ResolveFlag::empty(),
            Symlinks::Refuse => ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
        };
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)
            .resolve(resolve | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        openat2(root.as_fd(), path, how).map(contents)
    }

    /// Checks each case against its expected answer, and against `openat2` where the kernel
    /// has it (so the two resolvers are compared, not just each against the table).
    fn check(dir: &TestDir, symlinks: Symlinks, table: &[(&str, Found)]) {
        let root = root_of(dir);
        let kernel_has_openat2 = kernel(&root, ".", Symlinks::Beneath) != Err(Errno::ENOSYS);
        for (path, expected) in table {
            assert_eq!(
                walked(&root, path, symlinks),
                *expected,
                "walk {path} {symlinks:?}"
            );
            if kernel_has_openat2 {
                assert_eq!(kernel(&root, path, symlinks), *expected, "openat2 {path}");
            }
        }
    }

    /// A lookup that found `text`.
    fn ok(text: &str) -> Found {
        Ok(text.to_string())
    }

    #[test]
    fn a_chain_of_links_inside_the_root_is_followed() {
        let dir = tree();
        check(
            &dir,
            Symlinks::Beneath,
            &[
                ("top.txt", ok("top")),
                (".", ok("dir")),
                ("a/b/c/deep.txt", ok("deep")),
                ("chain1", ok("deep")),
                ("chain2", ok("deep")),
            ],
        );
    }

    #[test]
    fn dot_dot_in_a_link_may_go_up_but_never_above_the_root() {
        let dir = tree();
        check(
            &dir,
            Symlinks::Beneath,
            &[
                ("a/b/up", ok("top")),
                ("a/b/out", Err(Errno::EXDEV)),
                ("a/b/../../top.txt", ok("top")),
                ("a/../..", Err(Errno::EXDEV)),
            ],
        );
    }

    #[test]
    fn an_absolute_link_leads_outside_the_root() {
        check(&tree(), Symlinks::Beneath, &[("abs", Err(Errno::EXDEV))]);
    }

    #[test]
    fn a_loop_of_links_is_eloop() {
        check(&tree(), Symlinks::Beneath, &[("loop1", Err(Errno::ELOOP))]);
    }

    #[test]
    fn a_link_to_a_directory_works_in_the_middle_of_a_path() {
        let dir = tree();
        check(
            &dir,
            Symlinks::Beneath,
            &[
                ("to-b/c/deep.txt", ok("deep")),
                // `..` after a link goes up from where the link led (a/b), not back to the root.
                ("to-b/../top.txt", Err(Errno::ENOENT)),
                ("to-b/../b/c/deep.txt", ok("deep")),
                ("a/self/self/b/c/deep.txt", ok("deep")),
                ("a/b-slash", ok("dir")),
                ("to-b/", ok("dir")),
            ],
        );
    }

    #[test]
    fn a_file_used_as_a_directory_is_enotdir() {
        let dir = tree();
        check(
            &dir,
            Symlinks::Beneath,
            &[
                ("top.txt/x", Err(Errno::ENOTDIR)),
                ("top.txt/", Err(Errno::ENOTDIR)),
                ("top-slash", Err(Errno::ENOTDIR)),
                ("a/chain3/x", Err(Errno::ENOTDIR)),
            ],
        );
    }

    #[test]
    fn no_symlinks_refuses_every_link_on_the_way() {
        let dir = tree();
        check(
            &dir,
            Symlinks::Refuse,
            &[
                ("top.txt", ok("top")),
                ("a/b/c/deep.txt", ok("deep")),
                ("chain1", Err(Errno::ELOOP)),
                ("to-b/c/deep.txt", Err(Errno::ELOOP)),
                ("a/b/up", Err(Errno::ELOOP)),
                ("abs", Err(Errno::ELOOP)),
                ("top.txt/x", Err(Errno::ENOTDIR)),
            ],
        );
    }

    #[test]
    fn anywhere_follows_absolute_links_and_links_out() {
        let dir = tree();
        let hostname = fs::read_to_string("/etc/hostname").ok();
        let mut table = vec![("a/b/out", ok("outside")), ("chain1", ok("deep"))];
        if let Some(hostname) = &hostname {
            table.push(("abs", ok(hostname)));
        }
        check(&dir, Symlinks::Anywhere, &table);
    }

    #[test]
    fn a_chain_of_forty_links_is_followed_and_forty_one_is_a_loop() {
        let dir = tree();
        let root = dir.path().join("root");
        for i in 0..41 {
            symlink(format!("n{}", i + 1), root.join(format!("n{i}"))).unwrap();
        }
        fs::write(root.join("n41"), "end").unwrap();
        // n1 → … → n41 is 40 links; n0 → … is 41.
        check(
            &dir,
            Symlinks::Beneath,
            &[("n1", ok("end")), ("n0", Err(Errno::ELOOP))],
        );
    }

    #[test]
    fn o_path_lookups_see_through_a_final_link() {
        let dir = tree();
        let root = root_of(&dir);
        let stat_of = |path: &str, symlinks| {
            let flags = OFlag::O_PATH | OFlag::O_CLOEXEC;
            let fd = open(root.as_fd(), Path::new(path), flags, symlinks);
            fd.map(|fd| fd.stat().unwrap().st_ino)
        };
        let real = fs::metadata(dir.path().join("root/top.txt")).unwrap();
        let up = stat_of("a/b/up", Symlinks::Beneath).unwrap();
        assert_eq!(up, std::os::unix::fs::MetadataExt::ino(&real));
        assert_eq!(stat_of("a/b/up", Symlinks::Refuse), Err(Errno::ELOOP));
        assert_eq!(stat_of("a/b/out", Symlinks::Beneath), Err(Errno::EXDEV));
    }

    #[test]
    fn odd_paths_fail_as_the_kernel_fails_them() {
        let dir = tree();
        let too_long = "a/".repeat(2100);
        check(
            &dir,
            Symlinks::Beneath,
            &[
                ("", Err(Errno::ENOENT)),
                ("/top.txt", Err(Errno::EXDEV)),
                ("dangling", Err(Errno::ENOENT)),
                ("missing/x", Err(Errno::ENOENT)),
                (&too_long, Err(Errno::ENAMETOOLONG)),
            ],
        );
    }
}
