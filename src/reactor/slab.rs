//! `Slab`: connection slots addressed by [`Token`], with a generation that guards against
//! stale events.
//!
//! Where this sits in the loop: every client event's token is looked up here to find its
//! connection. The reactor inserts on accept and removes on close.
//!
//! # Design notes
//! A token is `generation << 32 | index`. Slot generations start at 1 and go up each time a
//! slot is reused, so an event that was queued for a connection which has since been closed
//! (possibly earlier in the same batch of events) fails the lookup instead of reaching the
//! slot's next owner. mio's `Token` docs suggest a slab; the generation is our addition.
//! Reserved tokens (the listener, the signalfd) use generation 0, which no slot ever has.
//!
//! A `HashMap<u64, Connection>` would also work, but a slab is a plain `Vec`: lookups are an
//! index, freed slots are reused (so memory stays flat under connection churn), and the
//! free list makes insert O(1).

use crate::lab::{self, LabBug};
use crate::sys::epoll::Token;

/// One place in the slab.
struct Slot<T> {
    /// Bumped every time the slot is handed out; a token must match it.
    generation: u32,
    /// The occupant, or `None` while the slot is on the free list.
    value: Option<T>,
}

/// A vector of slots with a free list, addressed by generation-checked tokens.
pub struct Slab<T> {
    /// All slots ever made; freed ones are reused, never shrunk.
    slots: Vec<Slot<T>>,
    /// The highest generation of a slot freed by [`Slab::shrink`]: a slot created again
    /// starts above it, so a token of the freed one never matches its successor.
    floor: u32,
    /// Indexes of free slots, reused last-in first-out (the warmest memory first).
    free: Vec<u32>,
    /// How many slots are occupied.
    // INVARIANT: len == slots.len() - free.len()
    len: usize,
}

/// An empty slab. (Written out: a derive would demand `T: Default`.)
impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            floor: 0,
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// A token for a reserved source (listener, signals): generation 0 never matches a slot.
    pub const fn reserved_token(id: u32) -> Token {
        Token(id as u64)
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slab holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` in a free slot and returns its token.
    pub fn insert(&mut self, value: T) -> Token {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index =
                    u32::try_from(self.slots.len()).expect("invariant: fewer than 2^32 slots");
                self.slots.push(Slot {
                    generation: self.floor,
                    value: None,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        // Skip 0 on wrap-around: generation 0 belongs to the reserved tokens.
        slot.generation = slot.generation.checked_add(1).unwrap_or(1);
        let token = Token(u64::from(slot.generation) << 32 | u64::from(index));
        slot.value = Some(value);
        self.len += 1;
        token
    }

    /// The value for `token`, unless its slot was freed or reused since.
    pub fn get_mut(&mut self, token: Token) -> Option<&mut T> {
        let (index, generation) = split(token);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation && !lab::on(LabBug::NoGeneration) {
            return None;
        }
        slot.value.as_mut()
    }

    /// Takes the value for `token` out and frees its slot.
    pub fn remove(&mut self, token: Token) -> Option<T> {
        let (index, generation) = split(token);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation && !lab::on(LabBug::NoGeneration) {
            return None;
        }
        let value = slot.value.take()?;
        self.free.push(index as u32);
        self.len -= 1;
        Some(value)
    }

    /// Frees the slots after the last one in use (after a burst of connections).
    pub fn shrink(&mut self) {
        while let Some(last) = self.slots.last_mut() {
            if last.value.is_some() {
                break;
            }
            self.floor = self.floor.max(last.generation);
            self.slots.pop();
        }
        let kept = self.slots.len();
        self.free.retain(|&index| (index as usize) < kept);
        self.slots.shrink_to_fit();
        self.free.shrink_to_fit();
    }

    /// Every stored value with its token.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Token, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(index, slot)| {
                let token = Token(u64::from(slot.generation) << 32 | index as u64);
                slot.value.as_mut().map(|value| (token, value))
            })
    }
}

/// A token's slot index and generation.
pub fn split(token: Token) -> (usize, u32) {
    ((token.0 & 0xffff_ffff) as usize, (token.0 >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shrunk_slab_frees_its_empty_tail_and_never_reuses_a_token() {
        let mut slab = Slab::default();
        let tokens: Vec<Token> = (0..100).map(|n| slab.insert(n)).collect();
        let first = tokens[0];
        for &token in &tokens[1..] {
            slab.remove(token);
        }
        slab.shrink();
        assert_eq!(slab.slots.len(), 1);
        let again: Vec<Token> = (0..99).map(|n| slab.insert(n)).collect();
        for token in &tokens[1..] {
            assert!(
                !again.contains(token),
                "a freed slot's token matches its successor"
            );
            assert!(slab.get_mut(*token).is_none());
        }
        assert_eq!(slab.get_mut(first), Some(&mut 0));
    }

    #[test]
    fn a_token_finds_its_value() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.get_mut(a), Some(&mut "a"));
        assert_eq!(slab.get_mut(b), Some(&mut "b"));
        assert_eq!(slab.len(), 2);
    }

    #[test]
    fn a_stale_token_fails_after_free_and_after_reuse() {
        crate::lab::switch_on_from_env(); // `.ci/run` checks that no-generation fails this
        let mut slab = Slab::default();
        let old = slab.insert(1);
        assert_eq!(slab.remove(old), Some(1));
        assert_eq!(slab.get_mut(old), None, "freed slot");
        let new = slab.insert(2);
        assert_eq!(split(new).0, split(old).0, "the slot is reused");
        assert_eq!(slab.get_mut(old), None, "reused slot, old generation");
        assert_eq!(slab.remove(old), None);
        assert_eq!(slab.get_mut(new), Some(&mut 2));
    }

    #[test]
    fn reserved_tokens_never_match_a_slot() {
        let mut slab = Slab::default();
        slab.insert(());
        slab.insert(());
        assert!(slab.get_mut(Slab::<()>::reserved_token(0)).is_none());
        assert!(slab.get_mut(Slab::<()>::reserved_token(1)).is_none());
    }

    #[test]
    fn iter_mut_visits_only_live_values() {
        let mut slab = Slab::default();
        let a = slab.insert('a');
        let _b = slab.insert('b');
        slab.remove(a);
        let seen: Vec<char> = slab.iter_mut().map(|(_, v)| *v).collect();
        assert_eq!(seen, vec!['b']);
        assert!(!slab.is_empty());
    }
}
