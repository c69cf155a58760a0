//! `--live`, the reactor's glue (the feature itself is `src/live/`): changed paths go from
//! the inotify read to the burst, and the burst's event goes to every open stream.

use std::time::Instant;

use super::Server;
use crate::study::stats::Count;

impl Server {
    /// Takes the paths the last inotify events named into the burst (restarting its wait).
    pub(super) fn collect_live_changes(&mut self, now: Instant) {
        let Some(live) = &mut self.live else {
            return;
        };
        let site = &self.pass.site;
        live.watches.watch_new_dirs(&site.watcher, site.root.path());
        let changes = live.watches.take_changes();
        let access_log = &self.pass.access_log;
        // Our own log lines are not edits (and each event would log another line).
        let edits = changes
            .into_iter()
            .filter(|change| !access_log.is_own_output(&site.root.path().join(&change.path)));
        live.burst.note_all(edits, now);
    }

    /// Sends the burst's change event to every open stream, once the burst is over.
    pub(super) fn send_live_events(&mut self, now: Instant) {
        let Some(event) = self
            .live
            .as_mut()
            .and_then(|live| live.burst.take_event(now))
        else {
            return;
        };
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
