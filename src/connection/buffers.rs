//! Buffers from a pool: a connection takes a set of buffers (input buffer, output batch,
//! request-target buffer) when a request starts and gives it back when it goes idle, so that
//! a busy keep-alive connection allocates nothing from one request to the next and an idle
//! one holds no buffer.
//!
//! Where this sits in the loop: the reactor owns one [`BufferPool`] and lends it to handlers
//! through the `Context`; `Connection::set_state` gives buffers back on entering `Idle` or
//! `Closed`.

use std::io::Read;
use std::os::fd::AsFd;

use super::outgoing::Outgoing;
use super::{Connection, Context};
use crate::http::request::Request;
use crate::limits::{MAX_POOLED_BUFFERS, RETAINED_BUFFER_BYTES};

/// The allocations one busy connection needs: taken from a pool when a request starts and
/// given back when the connection goes idle, so that the steady state allocates nothing and
/// idle connections hold no buffers.
#[derive(Default)]
pub struct Buffers {
    /// Bytes read but not yet parsed: part of a head, or pipelined heads (see
    /// [`Connection::inbuf`]).
    pub(super) inbuf: Vec<u8>,
    /// The last output batch, emptied; boxed, so that a connection not writing carries only a
    /// pointer for it.
    pub(super) out: Option<Box<Outgoing>>,
    /// The request target's buffer.
    pub(super) target: String,
}

/// The server's spare buffers, shared by its connections (a free list; nginx keeps free
/// buffers the same way). At most [`MAX_POOLED_BUFFERS`] are kept.
#[derive(Default)]
pub struct BufferPool {
    /// Buffers ready for the next busy connection.
    #[expect(
        clippy::vec_box,
        reason = "a connection holds its buffers boxed (to stay small when idle); the pool keeps the boxes, so moving them costs no allocation"
    )]
    pub(super) free: Vec<Box<Buffers>>,
}

impl BufferPool {
    /// A set of buffers: a pooled one, or new ones.
    fn take(&mut self) -> Box<Buffers> {
        self.free.pop().unwrap_or_default()
    }

    /// Frees every pooled set (after a burst: busy connections take new ones when they come).
    pub fn release(&mut self) {
        self.free = Vec::new();
    }

    /// Keeps `buffers` for another connection, unless the pool is full or they grew large.
    fn give(&mut self, mut buffers: Box<Buffers>) {
        let out_capacity = buffers.out.as_ref().map_or(0, |out| out.bytes.capacity());
        if self.free.len() < MAX_POOLED_BUFFERS
            && out_capacity <= RETAINED_BUFFER_BYTES
            && buffers.inbuf.capacity() <= RETAINED_BUFFER_BYTES
        {
            buffers.inbuf.clear();
            self.free.push(buffers);
        }
    }
}

impl<S: Read + AsFd> Connection<S> {
    /// This connection's buffers, taken from the server's pool if it has none yet.
    pub(super) fn buffers(&mut self, ctx: &Context) -> &mut Buffers {
        self.buffers
            .get_or_insert_with(|| ctx.buffers.borrow_mut().take())
    }

    /// Takes back a request's allocations for the next one.
    pub(super) fn give_back(&mut self, request: Request) {
        if let Some(buffers) = &mut self.buffers {
            buffers.target = request.target;
        }
    }

    /// Going idle (or closing): the buffers go back to the server's pool, so that an idle
    /// connection holds none.
    pub(super) fn give_back_buffers(&mut self, ctx: &Context) {
        if let Some(buffers) = self.buffers.take() {
            ctx.buffers.borrow_mut().give(buffers);
        }
    }

    /// The bytes read but not yet parsed (none while idle: the buffer is in the pool then).
    pub(super) fn inbuf(&self) -> &[u8] {
        self.buffers.as_ref().map_or(&[], |buffers| &buffers.inbuf)
    }
}
