//! `--live`: every directory under the root, watched for changes, and each inotify event
//! noted as a changed path below the root (noise and `--live-ignore` left out).

use std::collections::HashMap;
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InotifyEvent, WatchDescriptor};

use crate::site::watcher::Watcher;

use crate::limits::LIVE_MAX_WATCHED_DIRS;

/// Every directory under the root, watched for live reload.
#[derive(Debug, Default)]
pub struct LiveWatches {
    /// Watch → its directory below the root (`""` for the root).
    dirs: HashMap<WatchDescriptor, String>,
    /// Changes since the reactor last asked.
    changes: Vec<Change>,
    /// New directories to watch after this batch of events.
    new_dirs: Vec<String>,
    /// Globs of paths whose changes never reload (`--live-ignore`); their directories are
    /// not watched at all.
    ignore: Vec<String>,
}

/// One changed path below the root, and what happened to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The path below the root.
    pub path: String,
    /// What happened there.
    pub kind: ChangeKind,
}

/// What happened at a path: the reactor drops a name that came and went within one burst
/// (an editor's or `sed -i`'s temporary file), so a stylesheet saved through one is still
/// only a stylesheet change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created, or renamed to this name.
    Appeared,
    /// Deleted, or renamed away from this name.
    Went,
    /// Written, truncated, or its attributes changed.
    Written,
}

impl LiveWatches {
    /// Watches for live reload, never reloading for paths `ignore` matches.
    pub fn new(ignore: Vec<String>) -> LiveWatches {
        LiveWatches {
            ignore,
            ..LiveWatches::default()
        }
    }

    /// Watches `root` and every directory below it (not hidden ones, at most
    /// [`LIVE_MAX_WATCHED_DIRS`]).
    pub fn watch_tree(&mut self, watcher: &Watcher, root: &Path) {
        let mut to_visit = vec![String::new()];
        while let Some(relative) = to_visit.pop() {
            if self.dirs.len() >= LIVE_MAX_WATCHED_DIRS {
                log::warn!("--live: watching the first {LIVE_MAX_WATCHED_DIRS} directories only");
                return;
            }
            let dir = root.join(&relative);
            match watcher.add_path(&dir) {
                Ok(wd) => {
                    self.dirs.insert(wd, relative.clone());
                }
                Err(e) => {
                    log::warn!("--live: cannot watch {}: {e}", dir.display());
                    continue;
                }
            }
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                let path = join(&relative, &name);
                if is_dir && !name.starts_with('.') && !is_ignored(&path, &self.ignore) {
                    to_visit.push(path);
                }
            }
        }
    }

    /// Notes one inotify event.
    pub fn note(&mut self, event: &InotifyEvent) {
        if event.mask.contains(AddWatchFlags::IN_IGNORED) {
            self.dirs.remove(&event.wd);
            return;
        }
        let Some(dir) = self.dirs.get(&event.wd) else {
            return;
        };
        let Some(name) = event
            .name
            .as_ref()
            .map(|n| n.to_string_lossy().into_owned())
        else {
            return;
        };
        let path = join(dir, &name);
        if is_noise(&name) || is_ignored(&path, &self.ignore) {
            return;
        }
        let new_dir = event.mask.contains(AddWatchFlags::IN_ISDIR)
            && event
                .mask
                .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO);
        if new_dir {
            self.new_dirs.push(path.clone());
        }
        let kind = if event
            .mask
            .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
        {
            ChangeKind::Appeared
        } else if event
            .mask
            .intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM)
        {
            ChangeKind::Went
        } else {
            ChangeKind::Written
        };
        self.changes.push(Change { path, kind });
    }

    /// Watches directories that appeared in the last batch (and what is under them).
    pub fn watch_new_dirs(&mut self, watcher: &Watcher, root: &Path) {
        for relative in std::mem::take(&mut self.new_dirs) {
            let mut sub = LiveWatches::new(self.ignore.clone());
            sub.watch_tree(watcher, &root.join(&relative));
            for (wd, below) in sub.dirs {
                let path = if below.is_empty() {
                    relative.clone()
                } else {
                    join(&relative, &below)
                };
                self.dirs.insert(wd, path);
            }
        }
    }

    /// The changes since the last call, in order.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}

/// `dir/name`, or `name` at the root.
fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Whether `path` (below the root) matches one of the `--live-ignore` globs: a glob without
/// `/` matches any name on the path (`node_modules` ignores every such folder and all
/// below it); one with `/` matches the path from the root.
pub fn is_ignored(path: &str, globs: &[String]) -> bool {
    globs.iter().any(|glob| {
        if glob.contains('/') {
            let glob = glob.trim_start_matches('/');
            glob_matches(glob.as_bytes(), path.as_bytes())
                || glob_matches(format!("{glob}/**").as_bytes(), path.as_bytes())
        } else {
            path.split('/')
                .any(|name| glob_matches(glob.as_bytes(), name.as_bytes()))
        }
    })
}

/// Glob matching: `*` and `?` match within a name (not `/`), `**` matches across names.
fn glob_matches(glob: &[u8], text: &[u8]) -> bool {
    match glob {
        [] => text.is_empty(),
        [b'*', b'*', rest @ ..] => (0..=text.len()).any(|skip| glob_matches(rest, &text[skip..])),
        [b'*', rest @ ..] => {
            let within = text.iter().position(|&b| b == b'/').unwrap_or(text.len());
            (0..=within).any(|skip| glob_matches(rest, &text[skip..]))
        }
        [b'?', rest @ ..] => {
            matches!(text.first(), Some(&b) if b != b'/') && glob_matches(rest, &text[1..])
        }
        [first, rest @ ..] => text.first() == Some(first) && glob_matches(rest, &text[1..]),
    }
}

/// Editor and version-control files whose changes must not reload anything.
fn is_noise(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name == "4913"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_ignore_globs() {
        let globs: Vec<String> = ["node_modules", "dist/**", "*.log", "tmp?"]
            .map(String::from)
            .to_vec();
        for (path, ignored) in [
            ("node_modules/react/index.js", true),
            ("web/node_modules/x.js", true),
            ("node_modules", true),
            ("dist/app.js", true),
            ("dist/css/a.css", true),
            ("src/dist/app.js", false),
            ("server.log", true),
            ("logs/today.log", true),
            ("a.log.txt", false),
            ("tmp1", true),
            ("tmp12", false),
            ("index.html", false),
            ("style.css", false),
        ] {
            assert_eq!(is_ignored(path, &globs), ignored, "{path}");
        }
        assert!(glob_matches(b"a/**/b", b"a/x/y/b"));
        assert!(!glob_matches(b"a/*/b", b"a/x/y/b"));
    }

    #[test]
    fn editor_noise_is_ignored() {
        for name in [".index.html.swp", "index.html~", "4913", ".git", "a.swx"] {
            assert!(is_noise(name), "{name}");
        }
        assert!(!is_noise("index.html") && !is_noise("style.css"));
    }
}
