//! `--live`, the reactor's half: changed paths collected from the file cache's inotify
//! events, a wait until the writes stop, then one `change` event to every open event stream
//! (a connection in `State::Streaming`).
//!
//! Where this sits in the loop: after the inotify descriptor is read (first thing in a pass)
//! the changed paths are collected ([`Server::collect_live_changes`]); at the end of a pass
//! whose wait has run out, the event goes out ([`Server::send_live_events`]). The loop's
//! timeout never sleeps past that moment.
//!
//! # Design notes
//! - **A trailing wait** (`--live-wait`, 100 ms): every change restarts it, so a build that
//!   writes a hundred files gives one reload, once it is done, and a single save one reload
//!   100 ms later. (A wait from the first change would reload in the middle of a build.)
//! - **Names that come and go within a burst are dropped**: a temporary file created and
//!   then renamed away or deleted (`sed -i`, JetBrains' safe write, vim's backup) is not a
//!   change; the name it was renamed to is. So a stylesheet saved through a temporary file
//!   is still only a stylesheet change, and is swapped in place.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::Server;
use crate::site::live::{Change, ChangeKind};
use crate::study::stats::Count;

/// Most paths named in one event (the page only needs to know whether all were CSS); past
/// it, the event says there were more, which reloads the page.
const MAX_PATHS_PER_EVENT: usize = 50;

/// Changes waiting to be announced.
#[derive(Debug)]
pub(super) struct LiveReload {
    /// Changed paths below the root, in order, without repeats.
    pending: Vec<String>,
    /// Whether more paths changed than `pending` names.
    overflowed: bool,
    /// Paths that appeared in this burst: if they go again before it ends, they were
    /// temporary and are dropped from `pending`.
    appeared: HashSet<String>,
    /// How long the writes must have stopped (`--live-wait`).
    wait: Duration,
    /// When to announce them: the last change plus `wait`.
    pub due: Option<Instant>,
}

impl LiveReload {
    /// Nothing pending, announcing `wait` after the last change of a burst.
    pub fn new(wait: Duration) -> LiveReload {
        LiveReload {
            pending: Vec::new(),
            overflowed: false,
            appeared: HashSet::new(),
            wait,
            due: None,
        }
    }

    /// Takes one change into the burst. Returns whether it counts (restarts the wait).
    fn note(&mut self, change: Change) -> bool {
        let Change { path, kind } = change;
        match kind {
            ChangeKind::Went if self.appeared.remove(&path) => {
                self.pending.retain(|pending| *pending != path);
                return true;
            }
            ChangeKind::Appeared => {
                self.appeared.insert(path.clone());
            }
            ChangeKind::Went | ChangeKind::Written => {}
        }
        if !self.pending.contains(&path) {
            if self.pending.len() < MAX_PATHS_PER_EVENT {
                self.pending.push(path);
            } else {
                self.overflowed = true;
            }
        }
        true
    }
}

impl Server {
    /// Takes the paths the last inotify events named and restarts the wait.
    pub(super) fn collect_live_changes(&mut self, now: Instant) {
        let Some(live) = &mut self.live else {
            return;
        };
        let site = &self.pass.site;
        let changes = site.cache.borrow_mut().take_live_changes(&site.root);
        let mut noted = false;
        for change in changes {
            let path = site.root.path().join(&change.path);
            if self.pass.access_log.is_own_output(&path) {
                // Our own log lines are not edits (and each event would log another line).
                log::trace!(
                    "live reload: ignoring {}, written by epollo itself",
                    change.path
                );
                continue;
            }
            noted |= live.note(change);
        }
        if noted {
            live.due = Some(now + live.wait);
        }
    }

    /// Sends the pending change event to every open stream, once the burst is over.
    pub(super) fn send_live_events(&mut self, now: Instant) {
        let Some(live) = &mut self.live else {
            return;
        };
        if live.due.is_none_or(|due| now < due) {
            return;
        }
        live.due = None;
        live.appeared.clear();
        let mut paths = std::mem::take(&mut live.pending);
        if std::mem::take(&mut live.overflowed) {
            paths.push("(and more)".to_string()); // not CSS: the page reloads
        }
        if paths.is_empty() {
            return; // only temporary files came and went
        }
        log::debug!("live reload: {}", paths.join(" "));
        let mut event = String::from("event: change\n");
        for path in &paths {
            // A path cannot hold a line break (inotify names are file names), but make sure.
            event.push_str("data: ");
            event.push_str(&path.replace(['\r', '\n'], " "));
            event.push('\n');
        }
        event.push('\n');
        let ctx = self.pass.context(now, self.shutting_down());
        let mut streams = Vec::new();
        for (token, connection) in self.connections.iter_mut() {
            if connection.is_streaming() {
                let before = connection.interest();
                connection.send_event(&ctx, event.as_bytes());
                ctx.study.counters.bump(Count::LiveEvents);
                streams.push((token, before));
            }
        }
        for (token, before) in streams {
            self.after_handler(token, before, now);
        }
    }
}
