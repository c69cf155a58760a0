//! Tokens: the number each registered descriptor carries in the epoll set, and what it
//! names. A connection's token is its slab slot and generation (`slab.rs`); a few tokens are
//! reserved for the other descriptors. An event's token is decoded once, into a [`Source`].

use std::fmt;

use super::slab::{self, Slab};
use crate::sys::epoll::Token;

/// The (first) listening socket's token.
const LISTENER: Token = Slab::<()>::reserved_token(0);
/// Where the tokens of further listeners start (several sockets passed by systemd).
const MORE_LISTENERS: u32 = 16;
/// The control descriptor's token (the signalfd, or the first worker's socket).
pub const CONTROL: Token = Slab::<()>::reserved_token(1);
/// The inotify descriptor's token.
pub const WATCHES: Token = Slab::<()>::reserved_token(2);

/// What an event's token names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Listener number `n` (0 unless systemd passed several sockets).
    Listener(usize),
    /// The control descriptor: signals, or the first worker's orders.
    Control,
    /// The inotify descriptor: files changed.
    Watches,
    /// A client connection (its slab slot and generation; it may have closed since).
    Connection(Token),
}

impl Source {
    /// Decodes `token`, given how many listeners there are.
    pub fn of(token: Token, listeners: usize) -> Source {
        let listener = match token {
            LISTENER => Some(0),
            Token(id) if id >= u64::from(MORE_LISTENERS) && id < 1 << 32 => {
                Some((id - u64::from(MORE_LISTENERS) + 1) as usize)
            }
            _ => None,
        };
        match (listener, token) {
            (Some(index), _) if index < listeners => Source::Listener(index),
            (_, CONTROL) => Source::Control,
            (_, WATCHES) => Source::Watches,
            _ => Source::Connection(token),
        }
    }
}

/// The token of listener `index`: [`LISTENER`] for the first.
pub fn listener_token(index: usize) -> Token {
    match index {
        0 => LISTENER,
        n => Slab::<()>::reserved_token(MORE_LISTENERS - 1 + n as u32),
    }
}

/// A token as trace lines show it: a reserved token's name, or `SLOT:GENERATION`.
pub struct TokenName(pub Token);

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            LISTENER => f.write_str("listener"),
            Token(id) if id >= u64::from(MORE_LISTENERS) && id < 1 << 32 => {
                write!(f, "listener{}", id - u64::from(MORE_LISTENERS) + 2)
            }
            CONTROL => f.write_str("control"),
            WATCHES => f.write_str("inotify"),
            token => {
                let (index, generation) = slab::split(token);
                write!(f, "{index}:{generation}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_token_decodes_to_what_it_names() {
        assert_eq!(Source::of(listener_token(0), 1), Source::Listener(0));
        assert_eq!(Source::of(listener_token(2), 3), Source::Listener(2));
        assert_eq!(Source::of(CONTROL, 1), Source::Control);
        assert_eq!(Source::of(WATCHES, 1), Source::Watches);
        let slot = Token(5 << 32 | 1);
        assert_eq!(Source::of(slot, 1), Source::Connection(slot));
        assert_eq!(TokenName(listener_token(1)).to_string(), "listener2");
    }
}
