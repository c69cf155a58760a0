//! A newcomer is always served: whenever the server is at its
//! connection cap and any connection is reclaimable, a waiting newcomer gets a slot within a
//! second, in both epoll modes and with several workers (`.ci/run` runs this module so too);
//! `--live` event streams count against bounds of their own and are reclaimable.

use crate::common::{Client, TestServer};
use std::fs;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::{Duration, Instant};

/// How soon a newcomer must be served once something is reclaimable.
const SERVED_WITHIN: Duration = Duration::from_secs(1);

fn site(root: &Path) {
    fs::write(root.join("a.txt"), "aaa").unwrap();
}

/// The `n`th of four client addresses, so the per-address cap never stops the attacker.
fn address(n: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (n % 4) as u8)
}

/// Waits (bounded) until the server's log says `needle`: the server's own word that it has
/// reached a state, read from its stderr.
fn wait_for_log(server: &TestServer, needle: &str) {
    let until = Instant::now() + crate::common::PATIENCE;
    while !server.stderr().contains(needle) {
        assert!(Instant::now() < until, "the log never said {needle:?}");
        std::thread::yield_now();
    }
}

/// Sends a GET from a new address and asserts it is answered within [`SERVED_WITHIN`].
fn newcomer_is_served(server: &TestServer) {
    let start = Instant::now();
    let mut newcomer = Client::connect_from(server.addr, Ipv4Addr::new(127, 0, 0, 9));
    newcomer.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(newcomer.response().text(), "aaa");
    let waited = start.elapsed();
    assert!(waited < SERVED_WITHIN, "the newcomer waited {waited:?}");
}

#[test]
fn connections_that_fill_the_cap_silently_then_speak_are_reclaimed_for_a_newcomer() {
    // Silent connections reach the loop at once (by default the kernel holds them until they
    // speak, TCP_DEFER_ACCEPT, and they take no slot: a passed socket may not have it).
    let server = TestServer::start_with(&["--max-connections", "8", "--defer-accept", "0"], site);
    // Every slot taken before any of them speaks: the cap is reached with nothing to reclaim.
    let mut attackers: Vec<Client> = (0..8)
        .map(|n| Client::connect_from(server.addr, address(n)))
        .collect();
    // A newcomer arrives then, and waits in the backlog (the listener pauses).
    let mut newcomer = Client::connect_from(server.addr, Ipv4Addr::new(127, 0, 0, 9));
    newcomer.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    wait_for_log(&server, "accepting paused");
    // Then each attacker sends one request and becomes an idle keep-alive connection:
    // reclaimable, so the newcomer must get a slot now, not when they time out.
    for attacker in &mut attackers {
        attacker.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(attacker.response().text(), "aaa");
    }
    let start = Instant::now();
    assert_eq!(newcomer.response().text(), "aaa");
    let waited = start.elapsed();
    assert!(waited < SERVED_WITHIN, "the newcomer waited {waited:?}");
}

#[test]
fn connections_that_hold_the_cap_saying_nothing_are_reclaimed_after_a_second() {
    // Silent connections reach the loop at once, as in the test above.
    let server = TestServer::start_with(&["--max-connections", "8", "--defer-accept", "0"], site);
    let attackers: Vec<Client> = (0..8)
        .map(|n| Client::connect_from(server.addr, address(n)))
        .collect();
    // The newcomer waits at most until the silent ones are a second old, not until the
    // header timeout (5 s here) closes them.
    let start = Instant::now();
    let mut newcomer = Client::connect_from(server.addr, Ipv4Addr::new(127, 0, 0, 9));
    newcomer.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(newcomer.response().text(), "aaa");
    let waited = start.elapsed();
    assert!(waited < 2 * SERVED_WITHIN, "the newcomer waited {waited:?}");
    drop(attackers);
}

/// Opens an event stream from `source`; returns it if the server accepted it, `None` if it
/// refused it with 503.
fn open_stream(server: &TestServer, source: Ipv4Addr) -> Option<Client> {
    let mut client = Client::connect_from(server.addr, source);
    client.send(b"GET /__epollo/live HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(client.stream.read(&mut byte).unwrap(), 1, "stream head cut");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    match &head[..12] {
        "HTTP/1.1 200" => Some(client),
        "HTTP/1.1 503" => None,
        _ => panic!("{head}"),
    }
}

#[test]
fn live_streams_are_bounded_per_address_and_in_all_and_never_keep_a_page_out() {
    let server = TestServer::start_with(&["--live", "--max-connections", "8"], site);
    // Four addresses each try to hold four streams: streams may take at most a quarter of
    // the cap (2 of 8) in all; the rest are refused.
    let streams: Vec<Client> = (0..16)
        .filter_map(|n| open_stream(&server, address(n)))
        .collect();
    assert!(
        (1..=2).contains(&streams.len()),
        "{} streams",
        streams.len()
    );
    // The other slots are taken too (by connections that have said nothing yet, which are
    // not reclaimable for a second): a page request still gets a slot, a stream's.
    let silent: Vec<Client> = (0..8 - streams.len())
        .map(|n| Client::connect_from(server.addr, address(n)))
        .collect();
    newcomer_is_served(&server);
    drop(silent);
}

#[test]
fn one_address_cannot_open_more_than_sixteen_live_streams() {
    let server = TestServer::start_with(&["--live"], site);
    let streams: Vec<Client> = (0..16)
        .map(|_| open_stream(&server, address(0)).expect("within the per-address bound"))
        .collect();
    assert!(
        open_stream(&server, address(0)).is_none(),
        "the 17th is refused"
    );
    assert!(
        open_stream(&server, address(1)).is_some(),
        "another address is not"
    );
    drop(streams);
}
