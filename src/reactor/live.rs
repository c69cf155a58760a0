//! `--live`, the reactor's half: changed paths collected from the file cache's inotify
//! events, a short wait for the burst to end, then one `change` event to every open event
//! stream (a connection in `State::Streaming`).
//!
//! Where this sits in the loop: after the inotify descriptor is read (first thing in a pass)
//! the changed paths are collected ([`Server::collect_live_changes`]); at the end of a pass
//! whose coalescing delay has run out, the event goes out ([`Server::send_live_events`]). The
//! wait's timeout never sleeps past that moment.

use std::time::Instant;

use super::Server;
use crate::limits::LIVE_COALESCE;
use crate::study::stats::Count;

/// Most paths named in one event (the page only needs to know whether all were CSS).
const MAX_PATHS_PER_EVENT: usize = 50;

/// Changes waiting to be announced.
#[derive(Debug, Default)]
pub(super) struct LiveReload {
    /// Changed paths below the root, in order, without repeats.
    pending: Vec<String>,
    /// When to announce them: the first change plus [`LIVE_COALESCE`].
    pub due: Option<Instant>,
}

impl Server {
    /// Takes the paths the last inotify events named and starts the coalescing delay.
    pub(super) fn collect_live_changes(&mut self, now: Instant) {
        let Some(live) = &mut self.live else {
            return;
        };
        let site = &self.pass.site;
        let changes = site.cache.borrow_mut().take_live_changes(&site.root);
        for path in changes {
            if self
                .pass
                .access_log
                .is_own_output(&site.root.path().join(&path))
            {
                // Our own log lines are not edits (and each event would log another line).
                log::trace!("live reload: ignoring {path}, written by epollo itself");
                continue;
            }
            if !live.pending.contains(&path) && live.pending.len() < MAX_PATHS_PER_EVENT {
                live.pending.push(path);
            }
        }
        if !live.pending.is_empty() && live.due.is_none() {
            live.due = Some(now + LIVE_COALESCE);
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
        let paths = std::mem::take(&mut live.pending);
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
