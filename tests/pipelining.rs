//! Pipelined requests, request bodies that must be skipped, and heads split over many reads.

use crate::common::TestServer;
use std::fs;
use std::path::Path;

/// The site these tests serve.
fn site(root: &Path) {
    for i in 0..20 {
        fs::write(root.join(format!("{i}.txt")), format!("file {i}")).unwrap();
    }
    fs::write(root.join("big.bin"), crate::common::pattern(300_000)).unwrap();
}

/// Twenty GETs of /0.txt … /19.txt, to be sent in one write.
fn twenty_gets() -> String {
    (0..20)
        .map(|i| format!("GET /{i}.txt HTTP/1.1\r\nHost: t\r\n\r\n"))
        .collect()
}

#[test]
fn twenty_pipelined_requests_in_one_write_are_answered_in_order() {
    let server = TestServer::start_with(&[], site);
    let mut client = server.connect();
    client.send(twenty_gets().as_bytes());
    for i in 0..20 {
        let response = client.response();
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), format!("file {i}"));
    }
}

#[test]
fn pipelined_requests_mixing_large_files_errors_and_head_stay_in_order() {
    let server = TestServer::start_with(&[], site);
    let mut client = server.connect();
    client.send(
        b"GET /1.txt HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /missing HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /2.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n\
          GET /3.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(client.response().text(), "file 1");
    assert_eq!(client.response().body, crate::common::pattern(300_000));
    let head = client.head_response();
    assert_eq!(head.header("content-length"), Some("300000"));
    assert_eq!(client.response().status, 404);
    assert_eq!(client.response().text(), "file 2");
    client.expect_closed(); // the request after `Connection: close` is not answered
}

#[test]
fn a_get_with_a_body_is_followed_correctly_by_a_pipelined_get() {
    let server = TestServer::start_with(&[], site);
    let mut client = server.connect();
    // The body looks like a request; it must be skipped, never parsed.
    let body = "GET /5.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    let raw = format!(
        "GET /1.txt HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}GET /2.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        body.len()
    );
    client.send(raw.as_bytes());
    assert_eq!(client.response().text(), "file 1");
    assert_eq!(client.response().text(), "file 2");

    // The same with the body arriving in a later write.
    client.send(b"POST /3.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n");
    assert_eq!(client.response().status, 405);
    client.send(b"0123456789GET /4.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.response().text(), "file 4");
}

#[test]
fn a_request_trickled_one_byte_at_a_time_is_assembled() {
    let server = TestServer::start_with(&[], site);
    let mut client = server.connect();
    client.stream.set_nodelay(true).unwrap();
    for byte in b"GET /7.txt HTTP/1.1\r\nHost: t\r\n\r\n" {
        client.send(&[*byte]);
    }
    assert_eq!(client.response().text(), "file 7");
    // And the next one, trickled too, on the same connection.
    for byte in b"GET /8.txt HTTP/1.1\r\nHost: t\r\n\r\n" {
        client.send(&[*byte]);
    }
    assert_eq!(client.response().text(), "file 8");
}

#[test]
fn answers_to_pipelined_requests_leave_together() {
    // Fault injection splits every read and write on purpose; this test's subject is the
    // one read of twenty heads and the one write of their answers, so it sets caps nothing
    // here reaches, whatever the suite runs with.
    let flags = ["--max-write", "1048576", "--max-read", "65536"];
    let server = TestServer::start_with(&flags, site);
    let mut client = server.connect();
    client.send(twenty_gets().as_bytes());
    // The server batches the 20 small answers into one write (about 4 KB), which loopback
    // delivers as one segment: a single read sees all of them. Answers written one at a
    // time would usually show up here as a first read holding only the first answer.
    let mut buf = vec![0u8; 1 << 20];
    let n = std::io::Read::read(&mut client.stream, &mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert_eq!(
        text.matches("HTTP/1.1 200 OK").count(),
        20,
        "one read got: {text}"
    );
}
