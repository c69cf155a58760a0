//! Status codes, standard headers, error bodies, and serialising a response head into bytes.
//!
//! Where this sits in the loop: after a request is parsed and its file resolved, the
//! connection asks this module for the head bytes (and, for errors, a small HTML body) and
//! appends them to its output buffer. No I/O happens here, so every head can be unit-tested.
//!
//! # Design notes
//! Only this module assembles headers, so `Date`, `Server`, `Content-Length` and `Connection`
//! cannot drift between the file path and the error path. HEAD takes the same path as GET and
//! the caller drops the body at the very last step, so their heads are identical by
//! construction. Framing follows RFC 9110 §8.6: every response we send has a body length we
//! know in advance, so it carries `Content-Length` (we never send 1xx or 204).

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An HTTP status code we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    /// 200: here is the file.
    pub const OK: Status = Status(200);
    /// 204: no content (our answer to OPTIONS).
    pub const NO_CONTENT: Status = Status(204);
    /// 206: here are the ranges you asked for.
    pub const PARTIAL_CONTENT: Status = Status(206);
    /// 301: the directory's URL ends in `/`; go there.
    pub const MOVED_PERMANENTLY: Status = Status(301);
    /// 304: your cached copy is still good.
    pub const NOT_MODIFIED: Status = Status(304);
    /// 400: the request is malformed or its framing is ambiguous.
    pub const BAD_REQUEST: Status = Status(400);
    /// 403: the file exists but may not be served (unreadable, not a regular file, outside root).
    pub const FORBIDDEN: Status = Status(403);
    /// 404: no such file.
    pub const NOT_FOUND: Status = Status(404);
    /// 405: only GET and HEAD are served.
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    /// 408: the request head did not arrive in time.
    pub const REQUEST_TIMEOUT: Status = Status(408);
    /// 411: a chunked request body, which we do not accept.
    pub const LENGTH_REQUIRED: Status = Status(411);
    /// 412: an `If-Match` or `If-Unmodified-Since` precondition failed.
    pub const PRECONDITION_FAILED: Status = Status(412);
    /// 413: a request body larger than we are willing to discard.
    pub const CONTENT_TOO_LARGE: Status = Status(413);
    /// 414: the request target is longer than we accept.
    pub const URI_TOO_LONG: Status = Status(414);
    /// 416: none of the requested ranges is inside the file.
    pub const RANGE_NOT_SATISFIABLE: Status = Status(416);
    /// 431: the request head (or its header count) is larger than we accept.
    pub const HEADERS_TOO_LARGE: Status = Status(431);
    /// 500: something failed on our side.
    pub const INTERNAL_ERROR: Status = Status(500);
    /// 503: we are out of resources (file descriptors) for the moment.
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    /// 505: an HTTP version other than 1.0 and 1.1.
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);

    /// The reason phrase (RFC 9110 §15).
    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            204 => "No Content",
            206 => "Partial Content",
            301 => "Moved Permanently",
            304 => "Not Modified",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            412 => "Precondition Failed",
            413 => "Content Too Large",
            414 => "URI Too Long",
            416 => "Range Not Satisfiable",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "Unknown",
        }
    }

    /// Whether this is an error status (4xx or 5xx).
    pub fn is_error(self) -> bool {
        self.0 >= 400
    }
}

/// What the `Connection` header of a response says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// HTTP/1.1 keep-alive, the default: no header needed.
    KeepAlive,
    /// HTTP/1.0 keep-alive must be confirmed: `Connection: keep-alive`.
    KeepAliveHttp10,
    /// The connection ends after this response: `Connection: close`.
    Close,
}

impl Persistence {
    /// Whether the connection stays open after the response.
    pub fn keeps_alive(self) -> bool {
        self != Persistence::Close
    }
}

/// Everything that varies between the heads we send.
#[derive(Clone, Debug)]
pub struct Head<'a> {
    /// The status line's code.
    pub status: Status,
    /// Length of the body a GET would get (HEAD sends the same value, and no body). Not
    /// sent on 204 and 304, which have no body (RFC 9110 §8.6).
    pub content_length: u64,
    /// `Content-Type`, if there is a body.
    pub content_type: Option<&'a str>,
    /// `Content-Encoding` of a precompressed sibling.
    pub content_encoding: Option<&'a str>,
    /// `Content-Range` of a 206 or 416.
    pub content_range: Option<&'a str>,
    /// `ETag` of a file.
    pub etag: Option<&'a str>,
    /// `Last-Modified` of a file.
    pub last_modified: Option<SystemTime>,
    /// Whether this is a file's answer: `Accept-Ranges: bytes` and `X-Content-Type-Options:
    /// nosniff`.
    pub file: bool,
    /// `Cache-Control` of a file's answer (`--cache-control`).
    pub cache_control: Option<&'a str>,
    /// Whether to send `Vary: Accept-Encoding` (the file has precompressed siblings).
    pub vary: bool,
    /// `Location` of a redirect.
    pub location: Option<&'a str>,
    /// Whether to send `Allow: GET, HEAD, OPTIONS` (on 405 and OPTIONS).
    pub allow: bool,
    /// Headers added to every response (`--header`, `--cors`).
    pub extra: &'a [(String, String)],
    /// The `Connection` header.
    pub persistence: Persistence,
}

impl<'a> Head<'a> {
    /// A head with the given status and body length and nothing else set.
    pub fn new(status: Status, content_length: u64, persistence: Persistence) -> Head<'a> {
        Head {
            status,
            content_length,
            content_type: None,
            content_encoding: None,
            content_range: None,
            etag: None,
            last_modified: None,
            file: false,
            cache_control: None,
            vary: false,
            location: None,
            allow: false,
            extra: &[],
            persistence,
        }
    }

    /// Appends the serialised head (status line, headers, blank line) to `out`.
    ///
    /// `date` is the current `Date` value from [`HttpDate`], formatted once per second.
    pub fn write_to(&self, out: &mut Vec<u8>, date: &str) {
        // Writing into a Vec cannot fail.
        let _ = self.write_fallible(out, date);
    }

    /// The body of [`Head::write_to`], with `?` for the io::Write plumbing.
    fn write_fallible(&self, out: &mut Vec<u8>, date: &str) -> std::io::Result<()> {
        write!(
            out,
            "HTTP/1.1 {} {}\r\n",
            self.status.0,
            self.status.reason()
        )?;
        write!(
            out,
            "Date: {date}\r\nServer: epollo/{}\r\n",
            env!("CARGO_PKG_VERSION")
        )?;
        let optional = [
            ("Content-Type", self.content_type),
            ("Content-Encoding", self.content_encoding),
            ("Content-Range", self.content_range),
            ("ETag", self.etag),
            ("Location", self.location),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                write!(out, "{name}: {value}\r\n")?;
            }
        }
        if !matches!(self.status, Status::NO_CONTENT | Status::NOT_MODIFIED) {
            write!(out, "Content-Length: {}\r\n", self.content_length)?;
        }
        if let Some(modified) = self.last_modified.and_then(http_date) {
            write!(out, "Last-Modified: {modified}\r\n")?;
        }
        if self.file {
            out.extend_from_slice(b"Accept-Ranges: bytes\r\nX-Content-Type-Options: nosniff\r\n");
        }
        if let Some(cache_control) = self.cache_control {
            write!(out, "Cache-Control: {cache_control}\r\n")?;
        }
        if self.vary {
            out.extend_from_slice(b"Vary: Accept-Encoding\r\n");
        }
        if self.allow {
            out.extend_from_slice(b"Allow: GET, HEAD, OPTIONS\r\n");
        }
        for (name, value) in self.extra {
            write!(out, "{name}: {value}\r\n")?;
        }
        match self.persistence {
            Persistence::KeepAlive => {}
            Persistence::KeepAliveHttp10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
            Persistence::Close => out.extend_from_slice(b"Connection: close\r\n"),
        }
        out.extend_from_slice(b"\r\n");
        Ok(())
    }
}

/// The small HTML page that is the body of every error and redirect.
pub fn status_page(status: Status) -> String {
    let code = status.0;
    let reason = status.reason();
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n\
         <body><h1>{code} {reason}</h1><hr><p>epollo/{}</p></body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Formats a time as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), or `None` for a time
/// the format cannot express (before 1970 or after 9999: a file's mtime can be anything).
pub fn http_date(time: SystemTime) -> Option<String> {
    /// 9999-12-31T23:59:59Z, the last second `httpdate` can format.
    const LAST_SECOND: Duration = Duration::from_secs(253_402_300_799);
    let since_epoch = time.duration_since(UNIX_EPOCH).ok()?;
    (since_epoch <= LAST_SECOND).then(|| httpdate::fmt_http_date(time))
}

/// The `Date` header value, formatted at most once per second.
///
/// The reactor calls [`HttpDate::update`] once per loop pass; formatting a date for every
/// response would cost more than the rest of the head.
pub struct HttpDate {
    /// The whole second `text` was made for.
    second: u64,
    /// The formatted date.
    text: String,
}

impl HttpDate {
    /// A cache holding the current time.
    pub fn new() -> HttpDate {
        let mut date = HttpDate {
            second: u64::MAX,
            text: String::new(),
        };
        date.update(SystemTime::now());
        date
    }

    /// Re-formats the date if `now` is in a different second than last time.
    pub fn update(&mut self, now: SystemTime) {
        let second = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if second != self.second {
            self.second = second;
            self.text =
                http_date(now).unwrap_or_else(|| "Thu, 01 Jan 1970 00:00:00 GMT".to_string());
        }
    }

    /// The formatted date.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Default for HttpDate {
    fn default() -> Self {
        HttpDate::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

    fn render(head: &Head) -> String {
        let mut out = Vec::new();
        head.write_to(&mut out, DATE);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_file_head_carries_type_length_and_modification_time() {
        let mut head = Head::new(Status::OK, 1432, Persistence::KeepAlive);
        head.content_type = Some("text/css; charset=utf-8");
        head.last_modified = Some(UNIX_EPOCH + Duration::from_secs(784_111_777));
        let expected = format!(
            "HTTP/1.1 200 OK\r\nDate: {DATE}\r\nServer: epollo/{}\r\n\
             Content-Type: text/css; charset=utf-8\r\nContent-Length: 1432\r\n\
             Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(render(&head), expected);
    }

    #[test]
    fn the_connection_header_follows_persistence() {
        let keep = render(&Head::new(Status::OK, 0, Persistence::KeepAlive));
        assert!(!keep.contains("Connection:"));
        let http10 = render(&Head::new(Status::OK, 0, Persistence::KeepAliveHttp10));
        assert!(http10.contains("\r\nConnection: keep-alive\r\n"));
        let close = render(&Head::new(Status::BAD_REQUEST, 0, Persistence::Close));
        assert!(close.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(close.contains("\r\nConnection: close\r\n"));
    }

    #[test]
    fn redirects_and_405_carry_their_headers() {
        let mut redirect = Head::new(Status::MOVED_PERMANENTLY, 0, Persistence::KeepAlive);
        redirect.location = Some("/docs/?a=1");
        assert!(render(&redirect).contains("\r\nLocation: /docs/?a=1\r\n"));
        let mut refused = Head::new(Status::METHOD_NOT_ALLOWED, 0, Persistence::KeepAlive);
        refused.allow = true;
        assert!(render(&refused).contains("\r\nAllow: GET, HEAD, OPTIONS\r\n"));
    }

    #[test]
    fn file_heads_carry_validators_ranges_and_configured_headers() {
        let extra = vec![("Access-Control-Allow-Origin".to_string(), "*".to_string())];
        let mut head = Head::new(Status::PARTIAL_CONTENT, 10, Persistence::KeepAlive);
        head.etag = Some("\"abc\"");
        head.content_range = Some("bytes 0-9/100");
        head.content_encoding = Some("gzip");
        head.file = true;
        head.cache_control = Some("max-age=60");
        head.vary = true;
        head.extra = &extra;
        let text = render(&head);
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
            let text = render(&Head::new(status, 1432, Persistence::KeepAlive));
            assert!(!text.contains("Content-Length"), "{text}");
        }
    }

    #[test]
    fn the_head_ends_with_one_blank_line() {
        let text = render(&Head::new(Status::NOT_FOUND, 10, Persistence::KeepAlive));
        assert!(text.ends_with("\r\n\r\n"));
        assert_eq!(text.matches("\r\n\r\n").count(), 1);
    }

    #[test]
    fn times_outside_the_date_format_are_left_out_not_panicked_on() {
        assert_eq!(http_date(UNIX_EPOCH - Duration::from_secs(1)), None);
        assert_eq!(
            http_date(UNIX_EPOCH + Duration::from_secs(300_000_000_000)),
            None
        );
        let mut head = Head::new(Status::OK, 0, Persistence::KeepAlive);
        head.last_modified = Some(UNIX_EPOCH - Duration::from_secs(1));
        assert!(!render(&head).contains("Last-Modified"));
    }

    #[test]
    fn status_pages_name_the_status() {
        let page = status_page(Status::NOT_FOUND);
        assert!(page.contains("<title>404 Not Found</title>"));
    }

    #[test]
    fn the_date_cache_changes_once_per_second() {
        let mut date = HttpDate::new();
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        date.update(t);
        assert_eq!(date.as_str(), DATE);
        date.update(t + Duration::from_millis(999));
        assert_eq!(date.as_str(), DATE);
        date.update(t + Duration::from_secs(1));
        assert_eq!(date.as_str(), "Sun, 06 Nov 1994 08:49:38 GMT");
    }
}
