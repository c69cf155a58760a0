//! The one head writer: a [`Reply`] and the [`HeadOptions`] of its exchange become the
//! status line and header fields, as bytes. Every answer epollo sends, file or error,
//! listing, `--stats` page, event stream, or the 503 at the connection cap, gets its head
//! here.
//!
//! # Design notes
//! Only this module assembles heads, so `Date`, `Server`, `Content-Length` and `Connection`
//! cannot drift between the file path and the error path, and `--header`/`--cors` reach every
//! answer without any answer having to remember them ([`AddedFields`]). Framing follows RFC
//! 9110 §8.6: every body has a length known in advance, so every answer but 204 and 304
//! (which have no content) carries `Content-Length`, except content made piece by piece
//! (chunked for HTTP/1.1, delimited by the close for HTTP/1.0) and an event stream (delimited
//! by the close). Everything is appended as bytes: no formatting machinery on the path every
//! answer takes.

use std::io::Write;

use super::reply::{Body, Reply};
use super::request::Persistence;
use super::status::Status;
use crate::util::date::imf_fixdate;

/// How one answer's head is to be written, besides the `Reply`.
pub struct HeadOptions<'a> {
    /// A HEAD request: the head only (the connection drops the content; the head is the
    /// same as a GET's, by construction).
    pub head_only: bool,
    /// The request was HTTP/1.1, so content of unknown length can go chunked.
    pub http11: bool,
    /// The `Connection` header.
    pub persistence: Persistence,
    /// The `Date` value of this second.
    pub date: &'a str,
    /// The fields the operator adds (`--header`, `--cors`, `--cache-control`).
    pub added: &'a AddedFields,
}

/// Header fields the operator adds to answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddedFields {
    /// `Cache-Control` on answers about files (`--cache-control`; `no-cache` under `--live`).
    pub cache_control: Option<String>,
    /// Fields added to every answer (`--header`, `--cors`).
    pub headers: Vec<(String, String)>,
}

/// The `Server` field line, with the blank `Date` line's end before it.
const SERVER_LINE: &[u8] =
    concat!("\r\nServer: epollo/", env!("CARGO_PKG_VERSION"), "\r\n").as_bytes();

/// Appends the serialised head of `reply` (status line, headers, blank line) to `out`.
///
/// The field lines between `Server` and `Connection` describe the content; a cached file's
/// are made once ([`content_field_lines`]) and copied from `Fields::prepared`. Everything is
/// appended as bytes: no formatting machinery on the path every answer takes.
pub fn write_head(out: &mut Vec<u8>, reply: &Reply, head: &HeadOptions) {
    let status = reply.status;
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status.0));
    out.push(b' ');
    out.extend_from_slice(status.reason().as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(head.date.as_bytes());
    out.extend_from_slice(SERVER_LINE);
    let mut persistence = head.persistence;
    match &reply.fields.prepared {
        // That the two agree is tested in `site` (a check here would allocate).
        Some(prepared) => out.extend_from_slice(prepared),
        None => {
            let delimited = write_content_fields(out, reply, head.http11, head.added);
            if !delimited {
                // HTTP/1.0 has no chunked coding: the close of the connection ends the content.
                persistence = Persistence::Close;
            }
        }
    }
    match persistence {
        Persistence::KeepAlive => {}
        Persistence::KeepAliveHttp10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// The field lines [`write_head`] writes between `Server` and `Connection` for `reply` of a
/// known length: what the file cache keeps, per file, in `Fields::prepared`.
pub fn content_field_lines(reply: &Reply, added: &AddedFields) -> Vec<u8> {
    let mut lines = Vec::with_capacity(256);
    write_content_fields(&mut lines, reply, true, added);
    lines
}

/// Writes the field lines that describe `reply`'s content and its validators, then the
/// added ones. Returns `false` if the content can only be delimited by closing the
/// connection (unknown length, and no chunked coding for HTTP/1.0).
fn write_content_fields(
    out: &mut Vec<u8>,
    reply: &Reply,
    http11: bool,
    added: &AddedFields,
) -> bool {
    let (status, fields) = (reply.status, &reply.fields);
    let optional = [
        ("Content-Type", fields.content_type.as_deref()),
        ("Content-Encoding", fields.content_encoding),
        ("Content-Range", fields.content_range.as_deref()),
        ("ETag", fields.etag.as_deref()),
        ("Location", fields.location.as_deref()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            push_field(out, name, value);
        }
    }
    let mut delimited = true;
    match reply.body.known_len() {
        _ if matches!(status, Status::NO_CONTENT | Status::NOT_MODIFIED) => {}
        Some(len) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, len);
            out.extend_from_slice(b"\r\n");
        }
        None if matches!(reply.body, Body::Open(_)) => delimited = false,
        None if http11 => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        None => delimited = false,
    }
    if let Some(modified) = fields.last_modified.and_then(imf_fixdate) {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "Last-Modified: {modified}\r\n");
    }
    if fields.retry_after {
        out.extend_from_slice(b"Retry-After: 1\r\n");
    }
    if fields.file_content {
        out.extend_from_slice(b"Accept-Ranges: bytes\r\nX-Content-Type-Options: nosniff\r\n");
    }
    if fields.cacheable {
        if let Some(cache_control) = &added.cache_control {
            push_field(out, "Cache-Control", cache_control);
        }
        out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
    }
    if fields.no_store {
        out.extend_from_slice(b"Cache-Control: no-store\r\n");
    }
    if fields.vary_accept {
        out.extend_from_slice(b"Vary: Accept\r\n");
    }
    if fields.allow {
        out.extend_from_slice(b"Allow: GET, HEAD, OPTIONS\r\n");
    }
    for (name, value) in &added.headers {
        push_field(out, name, value);
    }
    delimited
}

/// Appends `name: value` and the line end.
fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::reply::Fields;
    use std::time::{Duration, UNIX_EPOCH};

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn render_with(reply: &Reply, persistence: Persistence, added: &AddedFields) -> String {
        let head = HeadOptions {
            head_only: true,
            http11: true,
            persistence,
            date: DATE,
            added,
        };
        let mut out = Vec::new();
        write_head(&mut out, reply, &head);
        String::from_utf8(out).unwrap()
    }

    fn render(reply: &Reply) -> String {
        render_with(reply, Persistence::KeepAlive, &AddedFields::default())
    }

    fn bytes(status: Status, len: usize, fields: Fields) -> Reply {
        Reply {
            status,
            fields,
            body: Body::Bytes(vec![b'x'; len]),
        }
    }

    #[test]
    fn a_file_head_carries_type_length_and_modification_time() {
        let fields = Fields {
            content_type: Some("text/css; charset=utf-8".into()),
            last_modified: Some(UNIX_EPOCH + Duration::from_secs(784_111_777)),
            ..Fields::default()
        };
        let expected = format!(
            "HTTP/1.1 200 OK\r\nDate: {DATE}\r\nServer: epollo/{}\r\n\
             Content-Type: text/css; charset=utf-8\r\nContent-Length: 1432\r\n\
             Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(render(&bytes(Status::OK, 1432, fields)), expected);
    }

    #[test]
    fn the_connection_header_follows_persistence() {
        let config = AddedFields::default();
        let reply = bytes(Status::OK, 0, Fields::default());
        let keep = render_with(&reply, Persistence::KeepAlive, &config);
        assert!(!keep.contains("Connection:"));
        let http10 = render_with(&reply, Persistence::KeepAliveHttp10, &config);
        assert!(http10.contains("\r\nConnection: keep-alive\r\n"));
        let close = render_with(
            &Reply::error(Status::BAD_REQUEST),
            Persistence::Close,
            &config,
        );
        assert!(close.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(close.contains("\r\nConnection: close\r\n"));
    }

    #[test]
    fn redirects_and_405_carry_their_headers() {
        let redirect = render(&Reply::redirect("/docs/?a=1".into()));
        assert!(redirect.contains("\r\nLocation: /docs/?a=1\r\n"));
        let refused = render(&Reply::error(Status::METHOD_NOT_ALLOWED));
        assert!(refused.contains("\r\nAllow: GET, HEAD, OPTIONS\r\n"));
    }

    #[test]
    fn file_heads_carry_validators_ranges_and_configured_headers() {
        let config = AddedFields {
            headers: vec![("Access-Control-Allow-Origin".into(), "*".into())],
            cache_control: Some("max-age=60".into()),
        };
        let fields = Fields {
            etag: Some("\"abc\"".into()),
            content_range: Some("bytes 0-9/100".into()),
            content_encoding: Some("gzip"),
            file_content: true,
            cacheable: true,
            ..Fields::default()
        };
        let text = render_with(
            &bytes(Status::PARTIAL_CONTENT, 10, fields),
            Persistence::KeepAlive,
            &config,
        );
        for line in [
            "HTTP/1.1 206 Partial Content\r\n",
            "\r\nETag: \"abc\"\r\n",
            "\r\nContent-Range: bytes 0-9/100\r\n",
            "\r\nContent-Encoding: gzip\r\n",
            "\r\nContent-Length: 10\r\n",
            "\r\nAccept-Ranges: bytes\r\n",
            "\r\nX-Content-Type-Options: nosniff\r\n",
            "\r\nCache-Control: max-age=60\r\n",
            "\r\nVary: Accept-Encoding\r\n",
            "\r\nAccess-Control-Allow-Origin: *\r\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from {text}");
        }
    }

    #[test]
    fn no_content_length_on_204_and_304() {
        for status in [Status::NO_CONTENT, Status::NOT_MODIFIED] {
            let text = render(&bytes(status, 1432, Fields::default()));
            assert!(!text.contains("Content-Length"), "{text}");
        }
    }

    #[test]
    fn the_head_ends_with_one_blank_line() {
        let text = render(&bytes(Status::NOT_FOUND, 10, Fields::default()));
        assert!(text.ends_with("\r\n\r\n"));
        assert_eq!(text.matches("\r\n\r\n").count(), 1);
    }

    #[test]
    fn a_time_outside_the_date_format_leaves_last_modified_out() {
        let fields = Fields {
            last_modified: Some(UNIX_EPOCH - Duration::from_secs(1)),
            ..Fields::default()
        };
        assert!(!render(&bytes(Status::OK, 0, fields)).contains("Last-Modified"));
    }

    #[test]
    fn an_event_stream_is_delimited_by_the_close_and_never_stored() {
        let text = render_with(
            &Reply::event_stream(),
            Persistence::KeepAlive,
            &AddedFields::default(),
        );
        for line in [
            "HTTP/1.1 200 OK\r\n",
            "\r\nContent-Type: text/event-stream\r\n",
            "\r\nCache-Control: no-store\r\n",
            "\r\nConnection: close\r\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from {text}");
        }
        assert!(
            !text.contains("Content-Length") && !text.contains("chunked"),
            "{text}"
        );
    }
}
