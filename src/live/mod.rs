//! Live reload (`--live`), in one place: a page open in a browser reloads itself (or swaps
//! its style sheets) when a file under the root changes.
//!
//! The parts, in the order a change travels:
//! - `watch.rs`: every directory under the root is watched (on the one inotify descriptor,
//!   `site/watcher.rs`), and each event is noted as a changed path;
//! - `burst.rs`: changes are coalesced until the writes stop (`--live-wait`), then become one
//!   `change` event;
//! - `stream.rs`: the bounds on open event streams (the connection's `Streaming` state sends
//!   the events; `route.rs` opens a stream);
//! - `inject.rs`: the script that listens, added to every HTML page sent (`charset.rs` says
//!   which pages can take it, `scan.rs` finds its place).
//!
//! # Design notes
//! - **What the page does with an event**: if every changed path is a `.css` file, it swaps
//!   the page's style sheets in place (a fresh `?epollo-live=N` on each `<link>`), as
//!   live-server does, so the page keeps its state; anything else reloads the page.
//! - **The injected bytes are the representation.** The script goes before the last
//!   `</body>` that is markup (or at the end: see `scan.rs`; `charset.rs` says which pages take it), and the answer is built
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

pub mod burst;
pub mod charset;
pub mod inject;
pub mod scan;
pub mod stream;
pub mod watch;

/// The path of the event stream (reserved only with `--live`).
pub const EVENTS_PATH: &str = "/__epollo/live";

/// What `--live` keeps between loop passes: the directories watched, and the burst of
/// changes not yet announced.
#[derive(Debug)]
pub struct LiveReload {
    /// Every directory under the root.
    pub watches: watch::LiveWatches,
    /// Changes waiting for the writes to stop.
    pub burst: burst::Burst,
}
