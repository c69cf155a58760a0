//! What all the directory listings in flight may cost together: work per loop pass, and
//! memory.
//!
//! Where this sits in the loop: the reactor opens each pass with [`ListingBudget::new_pass`];
//! a [`super::listing_stream::ListingStream`] asks [`ListingBudget::grant`] for step units before
//! each step and reports the bytes of entries it holds ([`ListingBudget::hold`]); `site::reply_to`
//! asks [`ListingBudget::admits`] before it starts a listing. One `ListingBudget` per worker,
//! shared (`Rc`) by the site and every listing stream.
//!
//! # Design notes
//! - **One budget per pass, shared by all listings.** A budget per listing made a pass cost
//!   one step *per listing*: with 2,000 listings in flight, a request for a small file waited
//!   2,000 steps (seconds). Now every listing together gets [`LISTING_STEP_UNITS`] per pass,
//!   so another request waits at most one bounded step of listing work.
//! - **Round-robin, in rounds.** A listing that has stepped in the current round waits until
//!   every other listing that asks has had its step; a pass in which only such listings asked
//!   ends the round. A new listing joins as if it had stepped in the current round
//!   ([`ListingBudget::joining_turn`]): it takes its first step in the next round. Were it to
//!   step at once, a steady arrival of new listings (clients that ask for a listing and never
//!   read it, say) would step in every pass, so that no pass would be one in which only
//!   waiting listings asked, the round would never end, and a listing in progress would wait
//!   for ever (its client then closed at the send deadline). epoll's order alone is no guarantee (level-triggered, it rotates the
//!   ready sockets by `maxevents` per pass, so the first of each batch can come from a small
//!   subset of them), and a queue of waiting listings would need removing the ones whose
//!   client stopped reading. A lone listing steps every second pass; an empty pass costs one
//!   `epoll_wait`.
//! - **Memory: one byte budget for the entries of all listings** ([`MAX_LISTING_BYTES`]).
//!   Past it, a new listing is answered `503` with `Retry-After` (making it wait would pin
//!   its socket and still not free anything), and a listing still reading its directory
//!   stops there, its page saying it was cut, as at [`crate::limits::MAX_LISTING_ENTRIES`].
//!   The budget is checked before each step, so it is exceeded by at most one step's entries.

use std::cell::Cell;

use crate::limits::{LISTING_STEP_UNITS, MAX_LISTING_BYTES};

/// The shared budgets of every listing in flight (see the module docs).
#[derive(Debug)]
pub struct ListingBudget {
    /// Step units left in this loop pass, for all listings together.
    units_left: Cell<usize>,
    /// The current round: a listing steps at most once per round.
    round: Cell<u64>,
    /// Whether a listing stepped in this pass.
    stepped: Cell<bool>,
    /// Whether a listing that had already stepped in this round asked in this pass.
    waited: Cell<bool>,
    /// Bytes of entries that listings in flight hold.
    bytes_held: Cell<usize>,
}

impl Default for ListingBudget {
    fn default() -> Self {
        ListingBudget {
            units_left: Cell::new(LISTING_STEP_UNITS),
            round: Cell::new(1),
            stepped: Cell::new(false),
            waited: Cell::new(false),
            bytes_held: Cell::new(0),
        }
    }
}

impl ListingBudget {
    /// A new loop pass: a fresh budget; the round ends if only listings that had their step
    /// in it asked during the last pass.
    pub fn new_pass(&self) {
        if self.waited.get() && !self.stepped.get() {
            self.round.set(self.round.get() + 1);
        }
        self.waited.set(false);
        self.stepped.set(false);
        self.units_left.set(LISTING_STEP_UNITS);
    }

    /// The turn a new listing starts with: the current round, as if it had stepped in it
    /// already, so that it steps in the next one and cannot keep this one from ending.
    pub fn joining_turn(&self) -> u64 {
        self.round.get()
    }

    /// Whether a listing whose last step was in round `turn` may step now.
    pub fn may_step(&self, turn: u64) -> bool {
        if self.units_left.get() == 0 {
            return false;
        }
        if turn == self.round.get() {
            self.waited.set(true);
            return false;
        }
        true
    }

    /// The units a listing whose last step was in round `*turn` may spend now (0: wait for
    /// a later pass); a grant marks its step taken in this round. Spend with [`Self::spend`].
    pub fn grant(&self, turn: &mut u64) -> usize {
        if !self.may_step(*turn) {
            return 0;
        }
        *turn = self.round.get();
        self.stepped.set(true);
        self.units_left.get()
    }

    /// Takes `units` (at most what is left) from this pass's budget.
    pub fn spend(&self, units: usize) {
        let left = self.units_left.get();
        self.units_left.set(left.saturating_sub(units));
    }

    /// Whether a new listing may start: the entries in flight are under the byte budget.
    pub fn admits(&self) -> bool {
        self.bytes_held.get() < MAX_LISTING_BYTES
    }

    /// A listing now holds `bytes` more of entries.
    pub fn hold(&self, bytes: usize) {
        self.bytes_held.set(self.bytes_held.get() + bytes);
    }

    /// A listing let go of `bytes` of entries (it ended, or its client left).
    pub fn release(&self, bytes: usize) {
        self.bytes_held
            .set(self.bytes_held.get().saturating_sub(bytes));
    }

    /// Bytes of entries held by listings in flight.
    pub fn bytes_held(&self) -> usize {
        self.bytes_held.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_budget_per_pass_is_shared_and_every_listing_gets_its_turn() {
        let load = ListingBudget::default();
        let mut turns = [0u64; 3];
        let mut steps = [0usize; 3];
        for _ in 0..12 {
            load.new_pass();
            for (turn, steps) in turns.iter_mut().zip(&mut steps) {
                let units = load.grant(turn);
                if units > 0 {
                    *steps += 1;
                    load.spend(units); // each step takes the whole budget
                }
            }
        }
        // One step per pass in all, round-robin: 3 steps per round of 4 passes (3 steps,
        // then a pass in which everyone had had its turn).
        assert_eq!(steps, [3, 3, 3]);
    }

    #[test]
    fn listings_arriving_in_every_pass_cannot_starve_one_in_progress() {
        let load = ListingBudget::default();
        let mut old = load.joining_turn();
        let mut old_steps = 0;
        for _ in 0..10 {
            load.new_pass();
            // A new listing arrives in every pass and asks at once, then never again (its
            // client does not read).
            let mut new = load.joining_turn();
            let units = load.grant(&mut new);
            load.spend(units);
            let units = load.grant(&mut old);
            if units > 0 {
                old_steps += 1;
                load.spend(units);
            }
        }
        assert!(
            old_steps >= 4,
            "the listing in progress stepped {old_steps} times in 10 passes"
        );
    }

    #[test]
    fn the_byte_budget_admits_until_full() {
        let load = ListingBudget::default();
        assert!(load.admits());
        load.hold(MAX_LISTING_BYTES);
        assert!(!load.admits());
        load.release(1);
        assert!(load.admits());
        assert_eq!(load.bytes_held(), MAX_LISTING_BYTES - 1);
    }
}
