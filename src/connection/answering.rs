//! From bytes to answers: parse every complete head in the input buffer, decide each answer
//! (`site::answer`, or the `--stats` pages), and batch them into one `Outgoing`; refuse what
//! cannot be served.
//!
//! Where this sits in the loop: `Connection::make_progress` calls
//! [`Connection::serve_buffered`] after each read and after each finished answer, so that
//! pipelined requests are answered without waiting for another event.

use std::io::{self, Read};
use std::os::fd::AsFd;

use super::body::{Discard, Discarding};
use super::{CloseReason, Connection, Context, State};
use crate::http::request::{self, Parsed, Persistence, Reject, Request};
use crate::http::response::Exchange;
use crate::http::{Method, Outgoing, Reply, Status};
use crate::limits::RequestLimits;
use crate::site;
use crate::study::stats::Count;

impl<S: Read + AsFd> Connection<S> {
    /// Parses every complete head in the buffer and batches their answers. Returns whether
    /// it switched to `Writing`.
    pub(super) fn serve_buffered(&mut self, ctx: &Context) -> bool {
        if !self.request_pending() {
            if matches!(self.state, State::Reading) {
                self.set_state(State::Idle, ctx); // a discarded body ended exactly here
            }
            return false; // nothing to parse (and no buffers taken for it)
        }
        let limits = &ctx.site.config.request_limits;
        let spares = self.spares(ctx);
        let mut out = spares.out.take().unwrap_or_default();
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
                        self.spares(ctx).inbuf.drain(..head_len);
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
            // Nothing was answered: wait for more bytes, or end after a broken body.
            return self.nothing_answered(out, close_after, ctx);
        }
        if out.cut_short {
            close_after = Some(CloseReason::Io(io::ErrorKind::UnexpectedEof));
        } else if out.ends_with_close {
            close_after = close_after.or(Some(CloseReason::Done));
        }
        self.set_state(State::Writing { out, close_after }, ctx);
        true
    }

    /// After a pass that queued no answer: keeps the unused batch and, if a body broke,
    /// ends the connection (its request is answered already); or goes idle if a discarded
    /// body ended exactly at the end of the input. Returns `false` (not writing).
    fn nothing_answered(
        &mut self,
        out: Box<Outgoing>,
        close_after: Option<CloseReason>,
        ctx: &Context,
    ) -> bool {
        if let Some(spares) = &mut self.spares {
            spares.out = Some(out); // unused: keep it for the next answer
        }
        if let Some(reason) = close_after {
            let next = self.linger_or_close(reason);
            self.set_state(next, ctx);
        } else if matches!(self.state, State::Reading) && !self.request_pending() {
            self.set_state(State::Idle, ctx); // a discarded body ended exactly here
        }
        false
    }

    /// Parses the head at the start of the input buffer, reusing the spare target buffer.
    pub(super) fn parse(&mut self, ctx: &Context, limits: &RequestLimits) -> Parsed {
        self.spares(ctx);
        let spares = self.spares.as_mut().expect("invariant: just taken");
        request::parse_reusing(&spares.inbuf, limits, &mut spares.target)
    }

    /// Appends the answer to one parsed request; returns why the connection ends after it,
    /// if it does.
    pub(super) fn respond(
        &mut self,
        out: &mut Outgoing,
        ctx: &Context,
        request: &Request,
    ) -> Option<CloseReason> {
        self.requests = self.requests.saturating_add(1);
        let ending = self.ending(ctx, request);
        let persistence = match ending {
            Some(_) => Persistence::Close,
            None => request.persistence,
        };
        ctx.study.counters.bump(Count::Requests);
        let config = &ctx.site.config;
        if config.live && request.method == Method::Get && is_event_stream(request) {
            // Counted from here; `set_state` gives it back when the stream (or its head) ends.
            if !ctx.streams.try_open(self.peer.ip) {
                log::warn!("conn={} live stream refused: too many open", self.id);
                let exchange = exchange(ctx, false, true, Persistence::Close);
                out.push(Reply::error(Status::SERVICE_UNAVAILABLE), &exchange, || {
                    request.line()
                });
                return Some(CloseReason::Rejected(Status::SERVICE_UNAVAILABLE));
            }
            // --live: the answer is the head of an event stream; nothing follows it.
            let exchange = exchange(ctx, false, true, Persistence::Close);
            out.push_event_stream(&exchange, || request.line());
            return Some(CloseReason::Done);
        }
        let reply = match config.stats_path {
            Some(_) => ctx
                .study
                .answer(config, request, ctx.site.cache.borrow().counts(), ctx.now),
            None => None,
        }
        .unwrap_or_else(|| site::answer(ctx.site, request, ctx.wall_clock));
        let head_only = request.method == Method::Head;
        let exchange = exchange(ctx, head_only, request.minor_version == 1, persistence);
        out.push(reply, &exchange, || request.line());
        if exchange.log_records && request.log.is_some() {
            out.attach_log_fields(request.log.clone());
        }
        ending
    }

    /// The one close decision for an answer: shutting down, the request quota, or the
    /// client's wish ends the connection after it.
    pub(super) fn ending(&self, ctx: &Context, request: &Request) -> Option<CloseReason> {
        if ctx.shutting_down {
            Some(CloseReason::Shutdown)
        } else if u64::from(self.requests) >= ctx.site.config.max_requests_per_connection {
            Some(CloseReason::RequestQuota)
        } else if !request.persistence.keeps_alive() {
            Some(CloseReason::Done)
        } else {
            None
        }
    }

    /// Appends the answer to a refused head, which always closes the connection.
    pub(super) fn refuse(
        &mut self,
        out: &mut Outgoing,
        ctx: &Context,
        reject: Reject,
    ) -> CloseReason {
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
    pub(super) fn broken_body(&self, status: Status) -> CloseReason {
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
        let exchange = exchange(ctx, head_only, true, Persistence::Close);
        out.push(Reply::error(status), &exchange, || {
            first_line_for_log(self.inbuf())
        });
    }
}

/// How an answer is to be serialised in this pass.
pub(super) fn exchange<'a>(
    ctx: &'a Context,
    head_only: bool,
    http11: bool,
    persistence: Persistence,
) -> Exchange<'a> {
    Exchange {
        log_records: ctx.access_log.wants_records(),
        head_only,
        http11,
        persistence,
        started: ctx.now,
        date: ctx.date,
        config: &ctx.site.config,
    }
}

/// Whether `request` asks for the `--live` event stream.
fn is_event_stream(request: &Request) -> bool {
    request.path() == site::live::EVENTS_PATH
}

/// The start of the first line of a refused head, for the access log.
pub(super) fn first_line_for_log(buf: &[u8]) -> String {
    /// Enough of a line to recognise it without flooding the log.
    const MAX_LOGGED: usize = 200;
    let end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
        .min(MAX_LOGGED);
    crate::util::escape::log_text(&buf[..end])
}
