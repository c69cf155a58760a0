//! `--live`: changed paths coalesced into bursts: a wait until the writes stop, then one
//! `change` event for every open event stream (a connection in `State::Streaming`).
//!
//! Where this sits in the loop: after the inotify descriptor is read, the reactor hands the
//! changed paths to [`Burst::note`]; at the end of a pass whose wait has run out,
//! [`Burst::take_event`] gives the event it sends to every stream. The loop's timeout never
//! sleeps past [`Burst::due`].
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

use super::watch::{Change, ChangeKind};

/// Most paths named in one event (the page only needs to know whether all were CSS); past
/// it, the event says there were more, which reloads the page.
const MAX_PATHS_PER_EVENT: usize = 50;

/// Changes waiting to be announced.
#[derive(Debug)]
pub struct Burst {
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

impl Burst {
    /// Nothing pending, announcing `wait` after the last change of a burst.
    pub fn new(wait: Duration) -> Burst {
        Burst {
            pending: Vec::new(),
            overflowed: false,
            appeared: HashSet::new(),
            wait,
            due: None,
        }
    }

    /// Takes one change into the burst. Returns whether it counts (restarts the wait).
    pub fn note(&mut self, change: Change) -> bool {
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

    /// Notes the changes of one inotify read; restarts the wait if any counted.
    pub fn note_all(&mut self, changes: impl IntoIterator<Item = Change>, now: Instant) {
        let mut noted = false;
        for change in changes {
            noted |= self.note(change);
        }
        if noted {
            self.due = Some(now + self.wait);
        }
    }

    /// Once the burst is over (`now` is past [`Burst::due`]): the `change` event to send to
    /// every stream, or `None` if there is nothing to say (only temporary files came and went).
    pub fn take_event(&mut self, now: Instant) -> Option<String> {
        if self.due.is_none_or(|due| now < due) {
            return None;
        }
        self.due = None;
        self.appeared.clear();
        let mut paths = std::mem::take(&mut self.pending);
        if std::mem::take(&mut self.overflowed) {
            paths.push("(and more)".to_string()); // not CSS: the page reloads
        }
        if paths.is_empty() {
            return None;
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
        Some(event)
    }
}
