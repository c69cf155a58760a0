//! Persistent connections: HTTP/1.1 by default, HTTP/1.0 on request, `Connection: close`,
//! and the idle timeout.

use crate::common::TestServer;
use std::fs;
use std::path::Path;
use std::time::Instant;

/// The site these tests serve.
fn site(root: &Path) {
    fs::write(root.join("a.txt"), "aaa").unwrap();
}

#[test]
fn one_hundred_requests_share_one_connection() {
    let server = TestServer::start_with(&["--keep-alive-timeout", "1"], site);
    let mut client = server.connect();
    for i in 0..100 {
        client.send(format!("GET /a.txt?i={i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        let response = client.response();
        assert_eq!(response.status, 200, "request {i}");
        assert_eq!(response.body, b"aaa");
        assert_eq!(response.header("connection"), None);
    }
    // A 404 and a 405 keep the connection too.
    client.send(b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.response().status, 404);
    client.send(b"DELETE /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.response().status, 405);
    client.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.response().status, 200);
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked_for() {
    let server = TestServer::start_with(&["--keep-alive-timeout", "1"], site);
    let mut plain = server.connect();
    plain.send(b"GET /a.txt HTTP/1.0\r\n\r\n");
    let response = plain.response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), Some("close"));
    plain.expect_closed();

    let mut keep = server.connect();
    for _ in 0..3 {
        keep.send(b"GET /a.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let response = keep.response();
        assert_eq!(response.body, b"aaa");
        assert_eq!(response.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn connection_close_is_honoured() {
    let server = TestServer::start_with(&["--keep-alive-timeout", "1"], site);
    let mut client = server.connect();
    client.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let response = client.response();
    assert_eq!(response.body, b"aaa");
    assert_eq!(response.header("connection"), Some("close"));
    client.expect_closed();
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_timeout() {
    let server = TestServer::start_with(&["--keep-alive-timeout", "1"], site);
    let mut client = server.connect();
    client.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.response().status, 200);
    let idle_since = Instant::now();
    client.expect_closed(); // closed silently, no 408 for an idle connection
    let waited = idle_since.elapsed().as_secs_f64();
    assert!(waited >= 0.9, "closed too early: {waited}s");
}

#[test]
fn the_request_quota_closes_the_connection() {
    let server = TestServer::start_with(&["--max-requests", "3"], |root| {
        fs::write(root.join("a.txt"), "aaa").unwrap();
    });
    let mut client = server.connect();
    for i in 1..=3 {
        client.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        let response = client.response();
        let expected = if i == 3 { Some("close") } else { None };
        assert_eq!(response.header("connection"), expected, "request {i}");
    }
    client.expect_closed();
}

#[test]
fn requests_pipelined_past_the_quota_do_not_reset_the_last_answer() {
    let server = TestServer::start_with(&["--max-requests", "1"], |root| {
        fs::write(root.join("a.txt"), "aaa").unwrap();
    });
    let mut client = server.connect();
    let two = "GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n".repeat(2);
    client.send(two.as_bytes());
    let response = client.response();
    assert_eq!(
        (response.status, response.header("connection")),
        (200, Some("close"))
    );
    // The second request stays unread; the server half-closes and drains instead of closing
    // with unread data, so the client sees a clean end of stream, not a reset.
    let mut rest = [0u8; 64];
    let end = std::io::Read::read(&mut client.stream, &mut rest);
    assert_eq!(end.expect("a clean EOF, not a reset"), 0);
}
