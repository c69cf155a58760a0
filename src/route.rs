//! The router: which part of epollo answers a request. One function, [`route`], in the order
//! a reader would guess: the `--live` event stream, then the `--stats` pages, then the
//! served folder.
//!
//! Where this sits in the loop: the connection parses a head (`connection/serving.rs`), asks
//! `route` what the answer is, and appends it to its output batch.

use std::net::IpAddr;

use crate::connection::Context;
use crate::http::{Method, Reply, Request};
use crate::live;
use crate::site;

/// What answers a request.
#[derive(Debug)]
pub enum Route {
    /// A plain answer: a file, a listing, a redirect, an error, or a `--stats` page.
    Answer(Reply),
    /// `--live`: the head of an event stream ([`Reply::event_stream`]); once it is sent the
    /// connection becomes the stream. Its slot is taken (see `live/stream.rs`).
    EventStream(Reply),
    /// `--live`: an event stream asked for beyond the bounds: 503, then the connection closes
    /// (the page goes on without live reload).
    StreamRefused(Reply),
}

/// Decides the answer to `request`, from the client at `peer`.
pub fn route(ctx: &Context, peer: IpAddr, request: &Request) -> Route {
    let config = ctx.config;
    if config.site.live && request.method == Method::Get && request.path() == live::EVENTS_PATH {
        return match ctx.streams.try_open(peer) {
            true => Route::EventStream(Reply::event_stream()),
            false => {
                log::warn!("live stream refused: too many open");
                Route::StreamRefused(Reply::error(crate::http::Status::SERVICE_UNAVAILABLE))
            }
        };
    }
    if config.study.stats_path.is_some() {
        let cache = ctx.site.cache.borrow().counts();
        if let Some(reply) = ctx.study.reply_to(config, request, cache, ctx.now) {
            ctx.study
                .counters
                .bump(crate::study::stats::Count::StatsRequests);
            return Route::Answer(reply);
        }
    }
    Route::Answer(site::reply_to(ctx.site, request, ctx.wall_clock))
}
