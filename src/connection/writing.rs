//! Sending a batch: what [`Outgoing`] holds goes out piece by piece, bytes by `send`, file
//! content by `sendfile`, made-as-sent content (a listing) one bounded step at a time, capped
//! by `--max-write`. This file decides which piece goes next and when to stop; the calls
//! themselves are `socket.rs`'s, and what follows the batch (the next state) is `mod.rs`'s.
//!
//! Where this sits in the loop: `Connection::write_pending` (in `mod.rs`) calls
//! [`Connection::send_batch`] right after an answer is assembled (eager progress) and again
//! on each writable event (or, edge-triggered, from the ready list) until it is all sent.

use std::io::{self, Read};
use std::os::fd::AsFd;

use super::readiness::Readiness;
use super::socket::{self as leaf, WriteLimit, Wrote};
use super::{Connection, Context, State};
use crate::sys::epoll::Trigger;

/// How far a call to [`Connection::send_batch`] got.
pub(super) enum Batch {
    /// Everything is sent.
    Sent,
    /// The socket is full, or it is someone else's turn: wait for the next event (or the
    /// ready list).
    Wait,
    /// The client left while its content was being made.
    PeerGone,
    /// The connection (or the file) failed.
    Failed(io::Error),
}

impl<S: Read + AsFd> Connection<S> {
    /// Sends what is pending, as far as the socket (and fairness) allows.
    pub(super) fn send_batch(&mut self, ctx: &Context) -> Batch {
        let by = self.caller(ctx);
        let faults = &ctx.config.faults;
        let limit = WriteLimit {
            cap: faults.max_write.unwrap_or(usize::MAX),
            short: faults.short_writes,
            step: ctx.sendfile_step,
        };
        let mut pumped = false;
        loop {
            let State::Writing { out, close_after } = &mut self.state else {
                return Batch::Wait;
            };
            if out.advance() {
                continue; // the rest of a spliced answer, after its first file part
            }
            if out.is_sent() {
                return Batch::Sent;
            }
            if out.written == out.bytes.len() && out.stream.is_some() {
                if pumped || !out.stream_may_step() {
                    // One bounded step of a stream per event, and only when its turn at the
                    // shared budget comes: the socket is still writable, so epoll reports us
                    // again next pass (edge-triggered: the ready list runs us again).
                    return Batch::Wait;
                }
                if leaf::peer_gone(&self.stream, &by) {
                    // Nothing is written while a listing reads its directory, so no write
                    // error would tell us: stop working for a client that left.
                    return Batch::PeerGone;
                }
                out.pump();
                pumped = true;
                // A step is progress, though nothing may be sent yet (a listing still reading
                // its directory): the send deadline is for a client that stops reading, and
                // while listings share one budget a long one can go without a byte for
                // longer than that.
                self.arm_deadline(ctx.now, ctx.config);
                continue;
            }
            let sending_file = out.written == out.bytes.len();
            let wrote = match sending_file {
                false => leaf::send_buffered(&self.stream, out, limit, close_after.is_some(), &by),
                true => leaf::sendfile_chunk(&self.stream, out, limit, &by),
            };
            let (bytes, short) = match wrote {
                Wrote::Done(bytes) => (bytes, false),
                Wrote::Partial(bytes) => (bytes, true),
                Wrote::Capped(bytes) => {
                    // `--short-writes`: as if the socket were full. Level-triggered, epoll
                    // reports it writable next pass (it is); edge-triggered, no edge will
                    // come for a socket that never filled, so the ready list runs it instead.
                    out.sent += bytes as u64;
                    self.arm_deadline(ctx.now, ctx.config);
                    let level = ctx.config.listen.trigger == Trigger::Level;
                    self.readiness.set(Readiness::WRITE_BLOCKED, level);
                    return Batch::Wait;
                }
                Wrote::WouldBlock => {
                    self.readiness.set(Readiness::WRITE_BLOCKED, true);
                    return Batch::Wait;
                }
                Wrote::Failed(e) => return Batch::Failed(e),
            };
            out.sent += bytes as u64;
            let done = out.is_sent();
            // A short `sendfile` may also mean that the file shrank while we send (then the
            // next call says 0 and the connection closes with a warning): one `fstat` tells,
            // where waiting for writability would wait for ever edge-triggered.
            let shrank = short && !done && sending_file && leaf::file_shrank(out);
            self.arm_deadline(ctx.now, ctx.config); // progress: the send timeout restarts
            if shrank {
                continue;
            }
            if short && !done {
                // The send buffer is full: the next call would only say EAGAIN.
                self.readiness.set(Readiness::WRITE_BLOCKED, true);
                return Batch::Wait;
            }
            if sending_file && !done {
                return Batch::Wait; // yield: after everyone else (epoll, or the ready list)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::leaf::{Caller, chunk_of, sendfile_chunk};
    use super::*;
    use crate::config::Config;
    use crate::connection::outgoing::FileBody;
    use crate::connection::outgoing::Outgoing;
    use crate::limits::{SENDFILE_CHUNK_BYTES, SENDFILE_PACED_STEP_BYTES, SENDFILE_STEP_BYTES};
    use crate::study::Study;
    use crate::util::test_dir::TestDir;
    use std::net::{TcpListener, TcpStream};
    use std::rc::Rc;

    #[test]
    fn a_short_body_goes_in_one_call_and_a_long_one_a_step_at_a_time() {
        for step in [SENDFILE_PACED_STEP_BYTES, SENDFILE_STEP_BYTES] {
            assert_eq!(chunk_of(100 * 1024, step), 100 * 1024);
            let chunk = SENDFILE_CHUNK_BYTES;
            assert_eq!(chunk_of(chunk as u64, step), chunk);
            let longer = chunk as u64 + 1;
            assert_eq!(chunk_of(longer, step), step.min(chunk + 1));
            assert_eq!(chunk_of((chunk.max(step) + 3) as u64, step), step);
        }
        // Never past the end: a file that grew must not send more than was promised.
        let rest = SENDFILE_CHUNK_BYTES + 5;
        assert_eq!(chunk_of(rest as u64, SENDFILE_STEP_BYTES), rest);
    }

    #[test]
    fn a_long_body_arrives_whole_a_step_per_call_then_its_short_rest_at_once() {
        for step in [SENDFILE_PACED_STEP_BYTES, SENDFILE_STEP_BYTES] {
            sends_whole_a_step_at_a_time(step);
        }
    }

    fn sends_whole_a_step_at_a_time(step: usize) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        let len = SENDFILE_CHUNK_BYTES + 3 * step + 4096;
        let dir = TestDir::new("steps");
        let path = dir.path().join("body");
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &body).unwrap();
        let reader = std::thread::spawn(move || {
            let mut client = client;
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut client, &mut got).unwrap();
            got
        });
        let mut out = Outgoing::default();
        out.file = Some(FileBody {
            file: Rc::new(std::fs::File::open(&path).unwrap()),
            offset: 0,
            remaining: len as u64,
        });
        let study = Study::standalone(&Config::default());
        let by = Caller {
            id: 1,
            study: &study,
        };
        let unlimited = WriteLimit {
            cap: usize::MAX,
            short: false,
            step,
        };
        let mut offered = Vec::new(); // what each call was offered
        while !out.is_sent() {
            let remaining = out.file.as_ref().map_or(0, |body| body.remaining);
            match sendfile_chunk(&server, &mut out, unlimited, &by) {
                Wrote::Done(_) | Wrote::Partial(_) => offered.push(chunk_of(remaining, step)),
                Wrote::Capped(_) => unreachable!("no cap"),
                Wrote::WouldBlock => std::thread::yield_now(),
                Wrote::Failed(e) => panic!("{e}"),
            }
        }
        assert!(
            offered.iter().all(|&n| n <= SENDFILE_CHUNK_BYTES.max(step)),
            "{offered:?}"
        );
        assert_eq!(offered[0], step, "a long body starts a step at a time");
        drop(server);
        assert!(
            reader.join().unwrap() == body,
            "the body arrives whole, in order"
        );
    }
}
