//! Request smuggling and protocol abuse (RFC 9112): every ambiguous or malformed head gets a
//! clear error and a close, and a request pipelined behind it is never answered, so nothing
//! can desynchronise the connection.

use crate::common::TestServer;
use std::fs;
use std::path::Path;

/// The site these tests serve.
fn site(root: &Path) {
    fs::write(root.join("index.html"), "home").unwrap();
    fs::write(root.join("secret.txt"), "smuggled").unwrap();
}

// A chunked body that is malformed only after its head (a bad chunk size) ends the connection
// once the head is answered, with no second answer: see
// `one_request_gets_one_answer_even_when_its_body_goes_wrong` below.

/// Sends `abuse` followed by a valid pipelined request for /secret.txt; expects `status`,
/// `Connection: close`, and EOF with the second request unanswered.
fn assert_refused_without_desync(server: &TestServer, name: &str, abuse: &[u8], status: u16) {
    let mut client = server.connect();
    let mut bytes = abuse.to_vec();
    bytes.extend_from_slice(b"GET /secret.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    client.send(&bytes);
    let response = client.response();
    assert_eq!(response.status, status, "{name}");
    assert_eq!(response.header("connection"), Some("close"), "{name}");
    assert!(!response.text().contains("smuggled"), "{name}");
    client.expect_closed();
}

#[test]
fn smuggling_attempts_get_400_and_a_close() {
    let server = TestServer::start_with(&[], site);
    let table: &[(&str, &[u8], u16)] = &[
        ("CL + TE", b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE + CL", b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400),
        ("repeated CL", b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400),
        ("conflicting CL", b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd", 400),
        ("list CL", b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 4, 4\r\n\r\nabcd", 400),
        ("negative CL", b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
        ("hex CL", b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 0x4\r\n\r\nabcd", 400),
        ("TE not chunked", b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
        ("TE chunked then gzip", b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        ("TE chunked twice", b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE in HTTP/1.0", b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE chunked, CL in a later field", b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nX: y\r\nContent-Length: 0\r\n\r\n", 400),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n", 400),
        ("space before colon", b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length : 4\r\n\r\nabcd", 400),
        ("bare CR", b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400),
        ("NUL in value", b"GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n", 400),
        ("NUL in name", b"GET / HTTP/1.1\r\nHost: t\r\nX\0: b\r\n\r\n", 400),
        ("NUL in target", b"GET /\0 HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        ("bad header name", b"GET / HTTP/1.1\r\nHost: t\r\nX(Y): b\r\n\r\n", 400),
        ("over-long method", &[b"A".repeat(40).as_slice(), b" / HTTP/1.1\r\nHost: t\r\n\r\n"].concat(), 400),
        ("no Host", b"GET / HTTP/1.1\r\n\r\n", 400),
        ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ];
    for (name, abuse, status) in table {
        assert_refused_without_desync(&server, name, abuse, *status);
    }
    server.assert_alive();
}

#[test]
fn odd_request_forms_get_a_clear_status() {
    let server = TestServer::start_with(&[], site);
    let closing: &[(&str, &[u8], u16)] = &[
        ("HTTP/0.9 line", b"GET /\r\n", 400),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("HTTP/3.0", b"GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505),
        (
            "two spaces before the version",
            b"GET /  HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
        ),
        ("asterisk on GET", b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (
            "authority on GET",
            b"GET example.org:443 HTTP/1.1\r\nHost: t\r\n\r\n",
            400,
        ),
        (
            "TLS hello",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
            400,
        ),
    ];
    for (name, raw, status) in closing {
        assert_refused_without_desync(&server, name, raw, *status);
    }
    // Well-formed heads for OPTIONS (204) and CONNECT (405): the connection stays usable.
    for (raw, status) in [
        (&b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n"[..], 204),
        (b"CONNECT example.org:443 HTTP/1.1\r\nHost: t\r\n\r\n", 405),
    ] {
        let mut client = server.connect();
        client.send(raw);
        let response = client.response();
        assert_eq!(response.status, status);
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(client.response().text(), "home");
    }
    let absolute = server.raw(b"GET http://example.org/index.html HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(absolute.text(), "home");
}

#[test]
fn every_answer_to_head_has_no_content_refusals_included() {
    let server = TestServer::start_with(&[], site);
    for (name, raw, status) in [
        (
            "413",
            &b"HEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 9999999\r\n\r\n"[..],
            413,
        ),
        ("no Host", b"HEAD / HTTP/1.1\r\n\r\n", 400),
        ("bad target", b"HEAD x HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        ("two spaces", b"HEAD /  HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (
            // Its head is answered before the body breaks: that answer is the only one.
            "bad chunk",
            b"HEAD / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            200,
        ),
        (
            "after empty lines",
            b"\r\n\r\nHEAD / HTTP/1.1\r\nHost: t\r\nContent-Length: 9999999\r\n\r\n",
            413,
        ),
    ] {
        let mut client = server.connect();
        client.send(raw);
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut client.stream, &mut all).unwrap();
        let text = String::from_utf8_lossy(&all);
        let last_head = text.rfind("HTTP/1.1 ").unwrap();
        assert!(
            text[last_head..].starts_with(&format!("HTTP/1.1 {status}")),
            "{name}: {text}"
        );
        assert!(
            text.ends_with("\r\n\r\n"),
            "{name}: content after the head: {text:?}"
        );
        assert!(!text.contains("<html"), "{name}: {text}");
    }
}

/// Epollo answers a GET or HEAD before it has read (and thrown away) the
/// request's body. If that body then turns out malformed, too large or too slow, the request
/// already has its answer: the connection must close with nothing more said (a second status
/// line would answer a request nobody sent, and a proxy would pair it with the next one).
#[test]
fn one_request_gets_one_answer_even_when_its_body_goes_wrong() {
    let flags = ["--max-body-bytes", "100", "--header-timeout", "1"];
    let server = TestServer::start_with(&flags, site);
    let chunked = b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let sized = b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n";
    // (name, head, body bytes sent after the answer; none: the body stops coming)
    let table: &[(&str, &[u8], &[u8])] = &[
        ("malformed chunk size", chunked, b"zz\r\n"),
        ("chunk over --max-body-bytes", chunked, b"65\r\n"),
        ("bad chunk data end", chunked, b"3\r\nabcXY"),
        ("chunked body too slow", chunked, b""),
        ("chunked body stops mid-chunk", chunked, b"10\r\nabc"),
        ("sized body too slow", sized, b"abc"),
    ];
    for (name, head, body) in table {
        let mut client = server.connect();
        client.send(head);
        assert_eq!(client.response().text(), "home", "{name}");
        client.send(body);
        // The header timeout (1 s) ends the slow ones; PATIENCE bounds the wait.
        client.expect_closed();
    }
    // In one packet with the head: still exactly one answer, then the close.
    for (name, chunk) in [("malformed", &b"zz\r\n"[..]), ("too large", b"65\r\n")] {
        let mut client = server.connect();
        let mut bytes = chunked.to_vec();
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"GET /secret.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        client.send(&bytes);
        assert_eq!(client.response().text(), "home", "{name}");
        client.expect_closed();
    }
    server.assert_alive();
}
