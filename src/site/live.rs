//! Live reload (`--live`), the site's half: watching the whole root for changes, and the
//! small script injected into HTML pages that listens for them.
//!
//! Where this sits in the loop: [`LiveWatches`] shares the file cache's inotify descriptor
//! (one readiness source for both): at startup it watches every directory under the root,
//! and for each inotify event the cache reads it notes the changed path. The reactor collects
//! those paths, waits a moment for the burst to end (editors write several events per save),
//! then sends one event to every open `/__epollo/live` stream. [`inject`] adds the listening
//! script to HTML answers.
//!
//! # Design notes
//! - **What the page does with an event**: if every changed path is a `.css` file, it swaps
//!   the page's style sheets in place (a fresh `?epollo-live=N` on each `<link>`), as
//!   live-server does, so the page keeps its state; anything else reloads the page.
//! - **The injected bytes are the representation.** The script goes before the last
//!   `</body>` that is markup (or at the end: see `live_scan.rs`; `live_charset.rs` says which pages take it), and the answer is built
//!   from the injected bytes: its `Content-Length`, its `ETag` (the file's, marked `-live`)
//!   and any `Range` describe what is actually sent. A page with a precompressed
//!   sibling is sent uncompressed, with the script (`site::identity_page`); a page whose
//!   charset the script's bytes do not suit is sent as it is. Pages we generate (errors,
//!   redirects, listings) get the script too: every HTML page sent reloads.
//! - **Spliced, not copied.** The answer's content is the file with the script spliced in
//!   (`Content::Spliced`): the part before goes by `sendfile`, then the script, then the part
//!   after. Deciding to inject reads the first 1 KiB (for the charset); only a GET that sends
//!   the body scans the page for the place, through a 64 KiB buffer. A HEAD or a 304 reads
//!   no further, and no answer holds a copy of the page.
//! - **Noise is ignored**: names starting with `.` (`.git`, editor locks), ending in `~`, and
//!   vim's `.swp`/`.swx` and `4913` probe files never cause a reload; nor do the files
//!   epollo writes itself (the access log, stdout and stderr redirected into the root): the
//!   reactor asks the access log ([`crate::logs::AccessLog::is_own_output`]).

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::rc::Rc;

use nix::sys::inotify::{AddWatchFlags, Inotify, InotifyEvent, WatchDescriptor};

use super::files::StaticFile;
use super::live_charset::may_inject;
use super::live_scan::Scanner;
use crate::http::response::{Body, Content, Reply, Splice};
use crate::limits::{
    LIVE_MAX_INJECT_BYTES, LIVE_MAX_WATCHED_DIRS, LIVE_PRESCAN_BYTES, LIVE_SCAN_CHUNK_BYTES,
};

/// The path of the event stream (reserved only with `--live`).
pub const EVENTS_PATH: &str = "/__epollo/live";

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
    pub fn watch_tree(&mut self, inotify: &Inotify, root: &Path, mask: AddWatchFlags) {
        let mut to_visit = vec![String::new()];
        while let Some(relative) = to_visit.pop() {
            if self.dirs.len() >= LIVE_MAX_WATCHED_DIRS {
                log::warn!("--live: watching the first {LIVE_MAX_WATCHED_DIRS} directories only");
                return;
            }
            let dir = root.join(&relative);
            match inotify.add_watch(&dir, mask) {
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

    /// Notes one inotify event (from the cache's descriptor).
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
    pub fn watch_new_dirs(&mut self, inotify: &Inotify, root: &Path, mask: AddWatchFlags) {
        for relative in std::mem::take(&mut self.new_dirs) {
            let mut sub = LiveWatches::new(self.ignore.clone());
            sub.watch_tree(inotify, &root.join(&relative), mask);
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

/// The script added to HTML pages: listens to the event stream, swaps style sheets when
/// only CSS changed, reloads otherwise.
///
/// **One stream for all tabs.** A browser opens at most six connections to a site, and an
/// event stream holds one for as long as its tab is open: with a stream per tab, the seventh
/// tab of the site never loaded. So the tabs elect one leader with the Web Locks API (the
/// tab holding the lock `epollo-live`); only the leader opens the stream, and it passes each
/// event to the others over a `BroadcastChannel`. When the leader closes or reloads, its
/// lock is released and another tab takes it and opens the stream. (A WebSocket would not
/// count against the six, but needs a second protocol in the server; closing the streams of
/// hidden tabs still leaves six visible windows at most.) Where either API is missing (an
/// old browser, or a page opened by a LAN address, which is not a secure context), each tab
/// opens its own stream, as before.
const SCRIPT: &str = "<script>/* epollo --live */(function(){\
var c=window.BroadcastChannel&&new BroadcastChannel('epollo-live');\
function h(d){var p=d.split('\\n');\
if(p.length&&p.every(function(x){return /\\.css$/i.test(x)})){\
var n=Date.now();document.querySelectorAll('link[rel~=\"stylesheet\"]').forEach(function(l){\
var u=new URL(l.href);u.searchParams.set('epollo-live',n);l.href=u.href})}\
else{location.reload()}}\
function listen(){var s=new EventSource('/__epollo/live');\
s.addEventListener('change',function(e){if(c)c.postMessage(e.data);h(e.data)})}\
if(c)c.onmessage=function(e){h(e.data)};\
if(c&&navigator.locks){navigator.locks.request('epollo-live',function(){\
listen();return new Promise(function(){})})}else{listen()}})();</script>";

/// `reply` with the live-reload script before its `</body>`, if it is an HTML page we
/// generated (an error or redirect page): ours, so no scan is needed.
pub fn into_generated_page(mut reply: Reply) -> Reply {
    let html = reply
        .fields
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("text/html"));
    if let (true, Body::Bytes(page)) = (html, &mut reply.body) {
        add_script(page);
    }
    reply
}

/// Adds the live-reload script to a page (or a page's end) we generated: before its last
/// `</body>`, else at the end. Ours, so no scan for script or comment text is needed.
pub fn add_script(page: &mut Vec<u8>) {
    let at = page
        .windows(7)
        .rposition(|w| w == b"</body>")
        .unwrap_or(page.len());
    page.splice(at..at, SCRIPT.bytes());
}

/// `file` with the live-reload script in it, if it is an HTML page sent as it is in a
/// charset the script suits; otherwise `file` unchanged. The script sits at the end until
/// [`place_script`] finds its place (only a body that is sent needs it).
pub fn inject(file: StaticFile) -> StaticFile {
    let html = file.content_type.starts_with("text/html");
    if !html || file.encoding.is_some() || file.len > LIVE_MAX_INJECT_BYTES {
        return file;
    }
    let mut prefix = [0; LIVE_PRESCAN_BYTES];
    let Ok(read) = read_at(&file.content, &mut prefix, 0) else {
        return file;
    };
    if !may_inject(&file.content_type, &prefix[..read]) {
        return file;
    }
    let etag = match file.etag.strip_suffix('"') {
        Some(open) => format!("{open}-live\""),
        None => format!("{}-live", file.etag),
    };
    let splice = Splice {
        original: file.content.clone(),
        at: file.len,
        insert: SCRIPT.as_bytes(),
    };
    StaticFile {
        len: file.len + SCRIPT.len() as u64,
        content: Content::Spliced(Rc::new(splice)),
        etag: Rc::from(etag),
        head_fields: None, // described the page without the script
        ..file
    }
}

/// Moves an injected script to its place in the page: before the last `</body>` that is
/// markup, else the end. Reads the page through a small buffer (reading a regular file
/// blocks briefly: see `files.rs`); called only when the body is sent.
pub fn place_script(file: &mut StaticFile) {
    let Content::Spliced(splice) = &file.content else {
        return;
    };
    let len = file.len - splice.insert.len() as u64;
    let mut scanner = Scanner::default();
    let mut chunk = vec![0; LIVE_SCAN_CHUNK_BYTES.min(len as usize)];
    let mut offset = 0;
    while offset < len {
        match read_at(&splice.original, &mut chunk, offset) {
            Ok(0) => break, // it shrank: the answer will be cut short anyway
            Ok(read) => {
                scanner.feed(&chunk[..read]);
                offset += read as u64;
            }
            Err(e) => {
                log::warn!("--live: reading {} failed: {e}", file.path);
                break;
            }
        }
    }
    let at = scanner.place(len);
    let placed = Splice {
        original: splice.original.clone(),
        at,
        insert: splice.insert,
    };
    file.content = Content::Spliced(Rc::new(placed));
}

/// Reads content from `offset` into `buf`; returns how many bytes (fewer at the end).
fn read_at(content: &Content, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    match content {
        Content::Memory(bytes) => {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let part = &bytes[start..];
            let read = part.len().min(buf.len());
            buf[..read].copy_from_slice(&part[..read]);
            Ok(read)
        }
        Content::File(file) => {
            let mut filled = 0;
            while filled < buf.len() {
                match file.read_at(&mut buf[filled..], offset + filled as u64) {
                    Ok(0) => break,
                    Ok(read) => filled += read,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(filled)
        }
        Content::Spliced(_) => Err(io::ErrorKind::InvalidInput.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(text: &str, encoding: Option<&'static str>) -> StaticFile {
        StaticFile {
            content: Content::Memory(Rc::from(text.as_bytes())),
            len: text.len() as u64,
            modified: None,
            etag: Rc::from("\"abc\""),
            content_type: Rc::from("text/html; charset=utf-8"),
            encoding,
            path: Rc::from("index.html"),
            head_fields: None,
        }
    }

    /// The bytes an answer with the whole of `file` sends, after `place_script`.
    fn text(file: &StaticFile) -> String {
        let mut file = file.clone();
        place_script(&mut file);
        let whole = |content: &Content| match content {
            Content::Memory(bytes) => bytes.to_vec(),
            _ => panic!("the test pages are in memory"),
        };
        let bytes = match &file.content {
            Content::Spliced(splice) => {
                let mut bytes = whole(&splice.original);
                let at = splice.at as usize;
                bytes.splice(at..at, splice.insert.iter().copied());
                bytes
            }
            content => whole(content),
        };
        assert_eq!(bytes.len() as u64, file.len);
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn the_script_goes_before_the_last_body_close_and_the_validators_follow() {
        let file = inject(page("<p>x</p></BODY><!-- </body> --></html>", None));
        let body = text(&file);
        assert!(body.starts_with("<p>x</p><script>"), "{body}");
        assert!(
            body.ends_with("</script></BODY><!-- </body> --></html>"),
            "{body}"
        );
        assert_eq!(file.len as usize, body.len());
        assert_eq!(&*file.etag, "\"abc-live\"");
    }

    #[test]
    fn without_a_body_close_the_script_goes_at_the_end_and_siblings_are_left_alone() {
        let body = text(&inject(page("<h1>hi</h1>", None)));
        assert!(body.starts_with("<h1>hi</h1><script>") && body.ends_with("</script>"));
        let compressed = inject(page("\u{1f}\u{8b}...", Some("gzip")));
        assert_eq!(text(&compressed), "\u{1f}\u{8b}...");
        assert_eq!(&*compressed.etag, "\"abc\"");
        let mut latin = page("<meta charset=iso-8859-1><p>caf\u{e9}</p>", None);
        latin.content_type = Rc::from("text/html");
        let latin = inject(latin);
        assert_eq!(
            &*latin.etag, "\"abc\"",
            "a page in another charset is sent as it is"
        );
    }

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
