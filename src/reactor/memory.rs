//! Giving memory back after a burst: when the connections have fallen to half their peak
//! (of at least [`MEMORY_RETURN_MIN_PEAK`]) or fewer and stayed there for
//! [`MEMORY_RETURN_DELAY`], the reactor frees its pooled
//! buffers and the slab's empty tail, and asks the allocator to return freed pages.
//!
//! Where this sits in the loop: the reactor tells [`MemoryKeeper::opened`] the connection
//! count after each accept, asks [`MemoryKeeper::due`] at the end of each pass, and sleeps no
//! longer than [`MemoryKeeper::deadline`] while idle.
//!
//! # Design notes
//! glibc's `free` keeps freed memory in its heaps for the next `malloc` and returns only what
//! sits at the very top of a heap: after an attack of a few thousand connections the process
//! stayed at 270-830 MB with almost nothing in use. `malloc_trim(0)` hands every free page
//! back (`madvise(MADV_DONTNEED)`). It walks the heaps, so it runs only after a real drop,
//! and only once the drop has lasted a moment: a load that comes and goes does not pay for
//! it on every close. (Lowering `M_TRIM_THRESHOLD` with `mallopt` would not help: it only
//! moves the top of the heap, which one live allocation pins.)

use std::time::Instant;

use super::Server;
use crate::limits::{MEMORY_RETURN_DELAY, MEMORY_RETURN_MIN_PEAK};
use crate::sys;

impl Server {
    /// Frees the spare buffers and the slab's empty tail, then hands the allocator's free
    /// pages back to the kernel.
    pub(super) fn give_memory_back(&mut self) {
        self.pass.buffers.borrow_mut().release();
        self.connections.shrink();
        self.ready.shrink_to_fit();
        let returned = sys::malloc_trim();
        log::debug!(
            "memory given back connections={} trimmed={returned}",
            self.connections.len()
        );
    }
}

/// When to give memory back (see the module docs).
#[derive(Debug, Default)]
pub struct MemoryKeeper {
    /// The most connections open at once since memory was last given back.
    busiest: usize,
    /// When to give it back, once the connections have fallen to half their peak or fewer.
    at: Option<Instant>,
}

impl MemoryKeeper {
    /// `open` connections are open now, one just accepted.
    pub fn opened(&mut self, open: usize) {
        self.busiest = self.busiest.max(open);
    }

    /// At the end of a pass with `open` connections: whether to give memory back now.
    pub fn due(&mut self, now: Instant, open: usize) -> bool {
        if self.busiest < MEMORY_RETURN_MIN_PEAK || open * 2 > self.busiest {
            self.at = None; // never busy enough, no drop, or busy again
            return false;
        }
        match self.at {
            None => {
                self.at = Some(now + MEMORY_RETURN_DELAY);
                false
            }
            Some(at) if now < at => false,
            Some(_) => {
                self.busiest = open;
                self.at = None;
                true
            }
        }
    }

    /// When the next check is due, if one is pending (for an idle loop's wait).
    pub fn deadline(&self) -> Option<Instant> {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_goes_back_after_a_lasting_drop_to_half_the_peak() {
        let mut keeper = MemoryKeeper::default();
        let start = Instant::now();
        assert!(!keeper.due(start, 0), "never busy");
        keeper.opened(MEMORY_RETURN_MIN_PEAK - 1);
        assert!(!keeper.due(start, 0), "never busy enough");
        assert_eq!(keeper.deadline(), None, "an idle wait stays unbounded");
        keeper.opened(100);
        assert!(!keeper.due(start, 60), "above half");
        assert!(!keeper.due(start, 50), "the drop starts the delay");
        let later = start + MEMORY_RETURN_DELAY;
        assert!(keeper.due(later, 50));
        assert!(!keeper.due(later, 50), "once per drop");
        keeper.opened(50);
        assert!(!keeper.due(later, 0));
        assert!(!keeper.due(later, 30), "busy again: the delay starts over");
        assert_eq!(keeper.deadline(), None);
    }
}
