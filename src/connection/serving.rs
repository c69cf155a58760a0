//! From bytes to answers: parse every complete head in the input buffer, ask the router for
//! each answer, and batch them into one [`Outgoing`]; refuse what cannot be served. Nothing
//! here changes the connection's state: [`Connection::serve_buffered`] says what it made, and
//! `mod.rs` moves on from that.
//!
//! Where this sits in the loop: `Connection::make_progress` calls it after each read and
//! after each finished answer, so that pipelined requests are answered without waiting for
//! another event.

use std::io::{self, Read};
use std::os::fd::AsFd;

use super::body::{Discard, Discarding};
use super::outgoing::{Outgoing, Record};
use super::{CloseReason, Connection, Context};
use crate::http::head::HeadOptions;
use crate::http::request::{self, Parsed, Persistence, Reject, Request};
use crate::http::{Method, Reply, Status};
use crate::limits::RequestLimits;
use crate::route::{self, Route};
use crate::study::stats::Count;

/// What a look at the input buffer made.
pub(super) enum Served {
    /// Answers to send, and why the connection ends after them, if it does.
    Batch {
        /// The answers.
        out: Box<Outgoing>,
        /// `None`: back to reading once sent.
        close_after: Option<CloseReason>,
    },
    /// No answer: wait for more bytes; or, with a reason, end (a body broke after its
    /// request was answered).
    Nothing(Option<CloseReason>),
}

impl<S: Read + AsFd> Connection<S> {
    /// Parses every complete head in the buffer and batches their answers.
    pub(super) fn serve_buffered(&mut self, ctx: &Context) -> Served {
        let limits = &ctx.config.request_limits;
        let buffers = self.buffers(ctx);
        let mut out = buffers.out.take().unwrap_or_default();
        let mut close_after = None;
        let mut answered = 0;
        while close_after.is_none() && out.has_room() {
            close_after = match self.discard_buffered_body() {
                Discarding::Waiting => break,
                Discarding::Broken(status) => Some(self.broken_body(status)),
                Discarding::Gone => match self.parse(ctx, limits) {
                    Parsed::Partial => break,
                    Parsed::Complete { request, head_len } => {
                        if answered > 0 {
                            ctx.study.counters.bump(Count::Pipelined);
                        }
                        self.buffers(ctx).inbuf.drain(..head_len);
                        self.discard = Discard::after(&request, limits);
                        let ending = self.respond(&mut out, ctx, &request);
                        self.give_back(request);
                        ending
                    }
                    Parsed::Reject(reject) => Some(self.refuse(&mut out, ctx, reject)),
                },
            };
            answered += 1;
        }
        if out.bytes.is_empty() {
            if let Some(buffers) = &mut self.buffers {
                buffers.out = Some(out); // unused: keep it for the next answer
            }
            return Served::Nothing(close_after);
        }
        if out.cut_short {
            close_after = Some(CloseReason::Io(io::ErrorKind::UnexpectedEof));
        } else if out.ends_with_close {
            close_after = close_after.or(Some(CloseReason::Done));
        }
        Served::Batch { out, close_after }
    }

    /// Parses the head at the start of the input buffer, reusing the spare target buffer.
    fn parse(&mut self, ctx: &Context, limits: &RequestLimits) -> Parsed {
        self.buffers(ctx);
        let buffers = self.buffers.as_mut().expect("invariant: just taken");
        request::parse_reusing(&buffers.inbuf, limits, &mut buffers.target)
    }

    /// Appends the answer to one parsed request; returns why the connection ends after it,
    /// if it does.
    fn respond(
        &mut self,
        out: &mut Outgoing,
        ctx: &Context,
        request: &Request,
    ) -> Option<CloseReason> {
        self.requests = self.requests.saturating_add(1);
        ctx.study.counters.bump(Count::Requests);
        if self.requests > 1 {
            ctx.study.counters.bump(Count::KeepAliveReuses); // counted per request, not batch
        }
        let (reply, ending) = match route::route(ctx, self.peer.ip, request) {
            Route::Answer(reply) => (reply, self.ending(ctx, request)),
            // The head of an event stream: nothing follows it on this connection.
            Route::EventStream(reply) => (reply, Some(CloseReason::Done)),
            Route::StreamRefused(reply) => (
                reply,
                Some(CloseReason::Rejected(Status::SERVICE_UNAVAILABLE)),
            ),
        };
        let persistence = match ending {
            Some(_) => Persistence::Close,
            None => request.persistence,
        };
        let head_only = request.method == Method::Head;
        let http11 = request.minor_version == 1;
        self.push(out, ctx, reply, (head_only, http11, persistence), || {
            request.line()
        });
        if out.event_stream {
            log::debug!("conn={} opens a live stream", self.id);
        }
        if ctx.access_log.wants_records() && request.log.is_some() {
            out.attach_log_fields(request.log.clone());
        }
        ending
    }

    /// The one close decision for an answer: shutting down, the request quota, or the
    /// client's wish ends the connection after it.
    fn ending(&self, ctx: &Context, request: &Request) -> Option<CloseReason> {
        if ctx.shutting_down {
            Some(CloseReason::Shutdown)
        } else if u64::from(self.requests) >= ctx.config.listen.max_requests_per_connection {
            Some(CloseReason::RequestQuota)
        } else if !request.persistence.keeps_alive() {
            Some(CloseReason::Done)
        } else {
            None
        }
    }

    /// Appends the answer to a refused head, which always closes the connection.
    fn refuse(&mut self, out: &mut Outgoing, ctx: &Context, reject: Reject) -> CloseReason {
        log::debug!(
            "conn={} refused head status={} why={:?}",
            self.id,
            reject.status.0,
            reject.why
        );
        self.push_refusal(out, ctx, reject.status);
        CloseReason::Rejected(reject.status)
    }

    /// A malformed or oversized request body: its request is answered already (the answer
    /// may still be queued, and goes out first), so nothing more is said; the connection
    /// ends, since we no longer know where the next request starts.
    fn broken_body(&self, status: Status) -> CloseReason {
        log::debug!(
            "conn={} broken body status={} (request already answered: closing)",
            self.id,
            status.0
        );
        CloseReason::BrokenBody(status)
    }

    /// Appends a closing error answer to a head we could not serve (refused, or late). A
    /// response to HEAD has no content (RFC 9110 §9.3.2), refusals included.
    pub(super) fn push_refusal(&self, out: &mut Outgoing, ctx: &Context, status: Status) {
        let head_only = request::names_head(self.inbuf());
        let how = (head_only, true, Persistence::Close);
        self.push(out, ctx, Reply::error(status), how, || {
            first_line_for_log(self.inbuf())
        });
    }

    /// Appends `reply` to the batch: `(head_only, http11, persistence)` say how its head is
    /// written; `line` is the access log's request line, formatted only if it is wanted.
    fn push(
        &self,
        out: &mut Outgoing,
        ctx: &Context,
        reply: Reply,
        (head_only, http11, persistence): (bool, bool, Persistence),
        line: impl FnOnce() -> String,
    ) {
        let head = HeadOptions {
            head_only,
            http11,
            persistence,
            date: ctx.date,
            added: &ctx.config.site.added_fields,
        };
        let record = Record {
            wanted: ctx.access_log.wants_records(),
            started: ctx.now,
        };
        out.push(reply, &head, record, line);
    }
}

/// The start of the first line of a refused head, for the access log.
fn first_line_for_log(buf: &[u8]) -> String {
    /// Enough of a line to recognise it without flooding the log.
    const MAX_LOGGED: usize = 200;
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
        .min(MAX_LOGGED);
    crate::util::escape::log_text(&buf[..end])
}
