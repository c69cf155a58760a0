//! Request bodies: epollo never uses one, but must read past it (by `Content-Length`, or
//! through the chunked coding) before the next request's head, so that body bytes are never
//! parsed as a request.
//!
//! Where this sits in the loop: after a head is parsed, `Discard::after` says what body
//! follows; `Connection::serve_buffered` calls `discard_buffered_body` before it parses each
//! head.
//!
//! # Design notes
//! The answer to a GET or HEAD is decided (and often sent) from its head alone, before its
//! body has been read. So a body that turns out malformed, too large or too slow belongs to
//! a request that already has its answer: it ends the connection **without** a second
//! answer (a 400, 413 or 408 there would answer a request nobody sent, and a proxy reusing
//! the connection would pair it with its next request). A `Content-Length` over
//! `--max-body-bytes` is different: the head says so, and the head is refused before any
//! answer.

use std::io::Read;
use std::os::fd::AsFd;

use super::Connection;
use crate::http::Status;
use crate::http::chunked::{ChunkedDiscard, Progress};
use crate::http::request::Request;
use crate::limits::RequestLimits;

/// A request body we read and throw away (we never use one), so that its bytes are never
/// parsed as a request.
pub(super) enum Discard {
    /// No body is pending.
    Nothing,
    /// This many bytes of a `Content-Length` body are still to come.
    Length(u64),
    /// A chunked body, decoded as it arrives.
    Chunked(Box<ChunkedDiscard>),
}

/// Where throwing away a buffered body got to.
pub(super) enum Discarding {
    /// The body is gone: the next head can be parsed.
    Gone,
    /// More body bytes are still to come.
    Waiting,
    /// The body is malformed or too large (`status` says which). Its request has already
    /// been answered, so there is nothing more to say: the connection just ends.
    Broken(Status),
}

impl<S: Read + AsFd> Connection<S> {
    /// Throws away body bytes that are already buffered (body bytes are never parsed as a
    /// request).
    pub(super) fn discard_buffered_body(&mut self) -> Discarding {
        if let Discard::Nothing = self.discard {
            return Discarding::Gone;
        }
        let Some(buffers) = &mut self.buffers else {
            return Discarding::Waiting; // nothing buffered yet
        };
        let inbuf = &mut buffers.inbuf;
        let (dropped, outcome) = match &mut self.discard {
            Discard::Nothing => return Discarding::Gone,
            Discard::Length(remaining) => {
                let dropped = (*remaining).min(inbuf.len() as u64);
                *remaining -= dropped;
                let outcome = if *remaining == 0 {
                    Discarding::Gone
                } else {
                    Discarding::Waiting
                };
                (dropped as usize, outcome)
            }
            Discard::Chunked(decoder) => match decoder.feed(inbuf) {
                (used, Progress::More) => (used, Discarding::Waiting),
                (used, Progress::Done) => (used, Discarding::Gone),
                (used, Progress::Refuse(status)) => (used, Discarding::Broken(status)),
            },
        };
        inbuf.drain(..dropped);
        if !matches!(outcome, Discarding::Waiting) {
            self.discard = Discard::Nothing;
        }
        outcome
    }
}

impl Discard {
    /// The body that follows `request`'s head.
    pub(super) fn after(request: &Request, limits: &RequestLimits) -> Discard {
        if request.chunked {
            let decoder = ChunkedDiscard::new(limits.max_body_bytes, limits.max_head_bytes);
            Discard::Chunked(Box::new(decoder))
        } else if request.body_len > 0 {
            Discard::Length(request.body_len)
        } else {
            Discard::Nothing
        }
    }
}
