//! httparse glue: request bytes → an owned [`Request`], "need more bytes", or a [`Reject`].
//!
//! Where this sits in the loop: the connection calls [`parse`] on its input buffer each time
//! new bytes arrive while it is reading a head, and once more after each response (pipelining).
//! Every decision about framing and keep-alive is made here, and no I/O is done, so each rule
//! has a unit test below.
//!
//! # Design notes
//! The httparse request borrows the input buffer; we copy the few fields we need into an owned
//! [`Request`] so the buffer can be drained. A [`Reject`] always closes the connection: after a
//! malformed head, a conflicting length or an over-long field we no longer know where the next
//! request starts, and guessing is how request smuggling happens (RFC 9112 §6.3, §11.2).

use std::mem::MaybeUninit;

use super::status::Status;
use crate::limits::{MAX_HEADERS_CAP, MAX_METHOD_BYTES, RequestLimits};

/// What the `Connection` header of a response says, decided from the request.
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

/// The precondition header values of a request (raw field values; `None` when absent),
/// evaluated by `site/conditional.rs`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    /// `If-Match`: `*` or a list of entity tags.
    pub if_match: Option<String>,
    /// `If-None-Match`: `*` or a list of entity tags.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`: an HTTP-date.
    pub if_modified_since: Option<String>,
    /// `If-Unmodified-Since`: an HTTP-date.
    pub if_unmodified_since: Option<String>,
    /// `If-Range`: one entity tag or one HTTP-date.
    pub if_range: Option<String>,
}

/// The request methods we tell apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET: send the file.
    Get,
    /// HEAD: send GET's head without the body.
    Head,
    /// OPTIONS: say which methods we allow (204).
    Options,
    /// Anything else, by name; answered with 405.
    Other(String),
}

impl Method {
    /// The method as it appears on the request line.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Other(name) => name,
        }
    }
}

/// An owned, validated request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The target in origin form (`/path?query`); absolute-form targets are reduced to this.
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client lets the connection stay open after this request.
    pub persistence: Persistence,
    /// Bytes of request body that follow the head (from `Content-Length`), to be discarded.
    pub body_len: u64,
    /// A chunked request body follows the head, to be decoded and discarded.
    pub chunked: bool,
    /// The precondition fields (`If-None-Match` and friends), for `conditional.rs`.
    pub conditions: Conditions,
    /// The `Range` field, for `range.rs`.
    pub range: Option<String>,
    /// The `Accept-Encoding` field, for choosing a precompressed sibling.
    pub accept_encoding: Option<String>,
    /// `Accept` asks for `application/json` rather than HTML (listings answer in JSON).
    pub accept_json: bool,
    /// What the access log wants beyond the request line, if it wants anything.
    pub log: Option<Box<LogFields>>,
}

impl Request {
    /// The target's path, without its query (a byte search: this runs on every request).
    pub fn path(&self) -> &str {
        let end = self
            .target
            .bytes()
            .position(|b| b == b'?')
            .unwrap_or(self.target.len());
        &self.target[..end]
    }

    /// The request line, for the access log.
    pub fn line(&self) -> String {
        format!(
            "{} {} HTTP/1.{}",
            self.method.as_str(),
            self.target,
            self.minor_version
        )
    }
}

/// A head we refuse: the status to answer with, and why (for the debug log). Always closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The status to answer with.
    pub status: Status,
    /// A short reason for the debug log.
    pub why: &'static str,
}

/// The outcome of parsing the start of the input buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "returned by value and matched at once; boxing would allocate per request"
)]
pub enum Parsed {
    /// The head is not complete yet: wait for more bytes.
    Partial,
    /// A complete head of `head_len` bytes.
    Complete {
        /// The request.
        request: Request,
        /// How many bytes of the buffer the head took.
        head_len: usize,
    },
    /// A head we refuse; answer with its status and close.
    Reject(Reject),
}

/// Shorthand for a rejection.
fn reject(status: Status, why: &'static str) -> Parsed {
    Parsed::Reject(Reject { status, why })
}

/// Parses the request head at the start of `buf`.
pub fn parse(buf: &[u8], limits: &RequestLimits) -> Parsed {
    parse_reusing(buf, limits, &mut String::new())
}

/// [`parse`], building the request's target in `target`, whose allocation is reused: a
/// complete head takes it (the caller hands it back when done with the request, so a
/// keep-alive connection parses request after request without allocating).
pub fn parse_reusing(buf: &[u8], limits: &RequestLimits, target: &mut String) -> Parsed {
    // Uninitialised slots: httparse fills only as many as the head has, so a generous cap
    // costs nothing per request.
    let mut headers = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS_CAP];
    let header_slots = &mut headers[..limits.max_headers.clamp(1, MAX_HEADERS_CAP)];
    let mut parsed = httparse::Request::new(&mut []);
    match parsed.parse_with_uninit_headers(buf, header_slots) {
        Ok(httparse::Status::Partial) => partial(buf, limits),
        Ok(httparse::Status::Complete(head_len)) if head_len > limits.max_head_bytes => {
            reject(Status::HEADERS_TOO_LARGE, "request head too large")
        }
        Ok(httparse::Status::Complete(head_len)) => match validate(&parsed, limits, target) {
            Ok(request) => Parsed::Complete { request, head_len },
            Err(rejected) => Parsed::Reject(rejected),
        },
        Err(httparse::Error::TooManyHeaders) => {
            reject(Status::HEADERS_TOO_LARGE, "too many header fields")
        }
        Err(httparse::Error::Version) => match request_line_version(buf) {
            Some((b'1', minor)) if minor > b'1' => parse_as_http11(buf, limits, target),
            Some(_) => reject(Status::VERSION_NOT_SUPPORTED, "unsupported HTTP version"),
            None => reject(Status::BAD_REQUEST, "malformed request head"),
        },
        Err(_) => reject(Status::BAD_REQUEST, "malformed request head"),
    }
}

/// A head that says `HTTP/1.2` (or any higher 1.x): RFC 9110 §6.2 says to process it as the
/// highest minor version we speak, and to answer as HTTP/1.1. httparse knows only 1.0 and 1.1,
/// so we parse a copy with the version rewritten (only this rare head pays for the copy).
fn parse_as_http11(buf: &[u8], limits: &RequestLimits, target: &mut String) -> Parsed {
    let mut copy = buf.to_vec();
    let line_end = request_line_end(&copy);
    if let Some(minor) = copy.get_mut(line_end.wrapping_sub(1)) {
        *minor = b'1';
    }
    parse_reusing(&copy, limits, target)
}

/// An incomplete head is fine unless it has already outgrown the limit.
fn partial(buf: &[u8], limits: &RequestLimits) -> Parsed {
    if buf.len() < limits.max_head_bytes {
        Parsed::Partial
    } else if buf.contains(&b'\n') {
        reject(Status::HEADERS_TOO_LARGE, "request head too large")
    } else {
        reject(Status::URI_TOO_LONG, "request line too long")
    }
}

/// Whether the (possibly partial or malformed) head at the start of `buf` is a HEAD request:
/// every answer to one, a refusal included, has no content (RFC 9110 §9.3.2). Empty lines
/// before the request line are skipped, as `parse` skips them.
pub fn names_head(buf: &[u8]) -> bool {
    let mut rest = buf;
    // Empty lines (CRLF or LF) before the request line are skipped, as httparse does; a bare
    // CR makes the head malformed, so it is not a HEAD request.
    while let Some(after) = rest
        .strip_prefix(b"\r\n")
        .or_else(|| rest.strip_prefix(b"\n"))
    {
        rest = after;
    }
    rest.starts_with(b"HEAD ")
}

/// Where the request line ends (its CR or LF), or the buffer's length.
fn request_line_end(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(buf.len())
}

/// The `(major, minor)` digits of a request line shaped exactly `METHOD SP TARGET SP
/// HTTP/D.D` (single spaces, RFC 9112 §3), or `None` if it is shaped otherwise: a well-formed
/// line with another version earns a 505 (RFC 9110 §15.6.6), anything else a 400.
fn request_line_version(buf: &[u8]) -> Option<(u8, u8)> {
    let line = &buf[..request_line_end(buf)];
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if method.is_empty() || target.is_empty() || parts.next().is_some() {
        return None;
    }
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Some((*major, *minor))
        }
        [b'H', b'T', b'T', b'P', b'/', major] if major.is_ascii_digit() => Some((*major, b'0')),
        _ => None,
    }
}

/// Checks a complete head and copies what we need out of the borrowed buffer.
fn validate(
    parsed: &httparse::Request,
    limits: &RequestLimits,
    target: &mut String,
) -> Result<Request, Reject> {
    let refuse = |status, why| Err(Reject { status, why });
    let method = parsed
        .method
        .expect("invariant: httparse sets the method on Complete");
    let raw_target = parsed
        .path
        .expect("invariant: httparse sets the path on Complete");
    let minor_version = parsed
        .version
        .expect("invariant: httparse sets the version on Complete");
    if method.len() > MAX_METHOD_BYTES {
        return refuse(Status::BAD_REQUEST, "method name too long");
    }
    if raw_target.len() > limits.max_target_bytes {
        return refuse(Status::URI_TOO_LONG, "request target too long");
    }
    let fields = Fields::scan(parsed.headers, limits.log_fields)?;
    if minor_version == 1 && fields.host_count != 1 {
        return refuse(Status::BAD_REQUEST, "HTTP/1.1 needs exactly one Host");
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    origin_form(raw_target, &method, target)?;
    let body_len = fields.content_length.unwrap_or(0);
    if body_len > limits.max_body_bytes {
        return refuse(Status::CONTENT_TOO_LARGE, "request body too large");
    }
    if fields.chunked && minor_version == 0 {
        // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing.
        return refuse(Status::BAD_REQUEST, "Transfer-Encoding in HTTP/1.0");
    }
    let persistence = fields.persistence(minor_version, body_len);
    Ok(Request {
        method,
        target: std::mem::take(target),
        minor_version,
        persistence,
        body_len,
        chunked: fields.chunked,
        conditions: fields.conditions,
        range: fields.range,
        accept_encoding: fields.accept_encoding,
        accept_json: fields.accept.prefers_json(),
        log: fields.log,
    })
}

/// The header fields that decide framing and persistence.
#[derive(Default)]
struct Fields {
    /// How many `Host` fields there were.
    host_count: usize,
    /// The one `Content-Length`, if any.
    content_length: Option<u64>,
    /// `Connection: close` was among the options.
    close: bool,
    /// `Connection: keep-alive` was among the options.
    keep_alive: bool,
    /// `Expect: 100-continue`: the client may hold its body back until it hears from us.
    expect_continue: bool,
    /// `Transfer-Encoding` ends in `chunked` (and there is no `Content-Length`).
    chunked: bool,
    /// `If-Match`, `If-None-Match`, `If-Modified-Since`, `If-Unmodified-Since`, `If-Range`.
    conditions: Conditions,
    /// `Range`.
    range: Option<String>,
    /// `Accept-Encoding`.
    accept_encoding: Option<String>,
    /// What `Accept` says of JSON and HTML (a listing has both).
    accept: AcceptPrefs,
    /// Fields only the access log wants (copied only when its format logs them).
    log: Option<Box<LogFields>>,
}

/// What `Accept` (RFC 9110 §12.5.1) says of the two forms a listing comes in: for each,
/// the q-value of the most specific media range that matches it, and how specific that was
/// (0: none, 1: `*/*`, 2: `type/*`, 3: the type itself).
#[derive(Clone, Copy, Debug, Default)]
struct AcceptPrefs {
    /// `application/json`.
    json: (u8, f32),
    /// `text/html`.
    html: (u8, f32),
}

impl AcceptPrefs {
    /// Takes in one `Accept` field value.
    fn take(&mut self, value: &[u8]) {
        let Ok(value) = std::str::from_utf8(value) else {
            return; // not a list of media ranges
        };
        for range in value.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let Some((kind, sub)) = media.split_once('/') else {
                continue;
            };
            let q = parts.find_map(q_value).unwrap_or(1.0);
            for (slot, (want_kind, want_sub)) in [
                (&mut self.json, ("application", "json")),
                (&mut self.html, ("text", "html")),
            ] {
                let specific = match (kind, sub) {
                    ("*", "*") => 1,
                    (k, "*") if k.eq_ignore_ascii_case(want_kind) => 2,
                    (k, s)
                        if k.eq_ignore_ascii_case(want_kind)
                            && s.eq_ignore_ascii_case(want_sub) =>
                    {
                        3
                    }
                    _ => continue,
                };
                if specific > slot.0 || (specific == slot.0 && q > slot.1) {
                    *slot = (specific, q);
                }
            }
        }
    }

    /// Whether JSON is preferred to HTML (a tie, or nothing said, is HTML: a browser).
    fn prefers_json(&self) -> bool {
        let q = |(specific, q): (u8, f32)| if specific == 0 { 0.0 } else { q };
        q(self.json) > q(self.html)
    }
}

/// Parses a `q=0.5` parameter (case-insensitive `q`, RFC 9110 §12.4.2), of a media range or a
/// coding; anything malformed counts as absent.
pub fn q_value(param: &str) -> Option<f32> {
    let (key, value) = param.split_once('=')?;
    if !key.trim().eq_ignore_ascii_case("q") {
        return None;
    }
    let q: f32 = value.trim().parse().ok()?;
    (0.0..=1.0).contains(&q).then_some(q)
}

/// Request fields that only the access log wants: copied only when `--log-format` logs them
/// or `--trusted-proxy` is set, so an ordinary request allocates nothing for them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFields {
    /// `Referer`.
    pub referer: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// `X-Forwarded-For`.
    pub forwarded_for: Option<String>,
    /// `Forwarded` (RFC 7239).
    pub forwarded: Option<String>,
}

impl LogFields {
    /// The fields present among `headers`, if any is (repeated ones joined with `, `).
    fn copy(headers: &[httparse::Header]) -> Option<Box<LogFields>> {
        let mut fields = LogFields::default();
        for header in headers {
            let slot = match header.name.to_ascii_lowercase().as_str() {
                "referer" => &mut fields.referer,
                "user-agent" => &mut fields.user_agent,
                "x-forwarded-for" => &mut fields.forwarded_for,
                "forwarded" => &mut fields.forwarded,
                _ => continue,
            };
            append_to_list(slot, header.value);
        }
        (fields != LogFields::default()).then(|| Box::new(fields))
    }
}

/// Copies a field's value into `slot`; a repeated field joins the earlier ones as one
/// comma-separated list (RFC 9110 §5.3).
fn append_to_list(slot: &mut Option<String>, value: &[u8]) {
    let value = crate::util::escape::log_text(value);
    match slot {
        Some(existing) => {
            existing.push_str(", ");
            existing.push_str(&value);
        }
        None => *slot = Some(value),
    }
}

impl Fields {
    /// Reads the fields we care about, refusing ambiguous framing.
    fn scan(headers: &[httparse::Header], log_fields: bool) -> Result<Fields, Reject> {
        let mut fields = Fields::default();
        for header in headers {
            fields.absorb(header)?;
        }
        if log_fields {
            fields.log = LogFields::copy(headers);
        }
        // The last Transfer-Encoding field decides (a list may span several fields).
        let last_transfer_encoding = headers
            .iter()
            .rfind(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
        if let Some(last) = last_transfer_encoding {
            check_transfer_encoding(&fields, last.value)?;
            fields.chunked = true;
        }
        Ok(fields)
    }

    /// Takes in one header field.
    fn absorb(&mut self, header: &httparse::Header) -> Result<(), Reject> {
        let refuse = |why| {
            Err(Reject {
                status: Status::BAD_REQUEST,
                why,
            })
        };
        let name = header.name;
        if name.eq_ignore_ascii_case("host") {
            if !is_valid_host(header.value) {
                return refuse("invalid Host");
            }
            self.host_count += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            if self.content_length.is_some() {
                return refuse("repeated Content-Length");
            }
            match parse_length(header.value) {
                Some(length) => self.content_length = Some(length),
                None => return refuse("invalid Content-Length"),
            }
        } else if let Some(slot) = self.copied_field(name) {
            append_to_list(slot, header.value);
        } else if name.eq_ignore_ascii_case("accept") {
            // Repeated Accept fields form one list.
            self.accept.take(header.value);
        } else if name.eq_ignore_ascii_case("expect") {
            let value = header.value.trim_ascii();
            self.expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case("connection") {
            for option in header.value.split(|&b| b == b',') {
                let option = option.trim_ascii();
                self.close |= option.eq_ignore_ascii_case(b"close");
                self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        Ok(())
    }
}

/// A request with `Transfer-Encoding` is framed only by a final `chunked` (RFC 9112 §6.3),
/// which we decode and discard. With `Content-Length` too, it is a smuggling attempt or a
/// broken proxy (RFC 9112 §6.1): 400; any other final coding cannot be framed at all: 400.
fn check_transfer_encoding(fields: &Fields, last_value: &[u8]) -> Result<(), Reject> {
    let why = if fields.content_length.is_some() {
        "both Content-Length and Transfer-Encoding"
    } else if !ends_in_chunked(last_value) {
        "Transfer-Encoding without a final chunked"
    } else if last_value
        .split(|&b| b == b',')
        .filter(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        .count()
        > 1
    {
        "chunked applied more than once"
    } else {
        return Ok(());
    };
    Err(Reject {
        status: Status::BAD_REQUEST,
        why,
    })
}

impl Fields {
    /// Whether the client lets the connection stay open (RFC 9112 §9.3).
    fn persistence(&self, minor_version: u8, body_len: u64) -> Persistence {
        // A client that sent `Expect: 100-continue` and hears our final answer first may send
        // its body or may not (RFC 9110 §10.1.1); we cannot tell body bytes from a next
        // request, so such a connection closes after the answer.
        let ambiguous_body = self.expect_continue && (body_len > 0 || self.chunked);
        match (minor_version, self.close || ambiguous_body, self.keep_alive) {
            (_, true, _) => Persistence::Close,
            (1, false, _) => Persistence::KeepAlive,
            (_, false, true) => Persistence::KeepAliveHttp10,
            (_, false, false) => Persistence::Close,
        }
    }

    /// The slot for a field we copy out for later modules, if `name` is one of them.
    fn copied_field(&mut self, name: &str) -> Option<&mut Option<String>> {
        /// The fields, in the order of the match below.
        const COPIED: [&str; 7] = [
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
            "if-range",
            "range",
            "accept-encoding",
        ];
        let index = COPIED
            .iter()
            .position(|field| name.eq_ignore_ascii_case(field))?;
        let conditions = &mut self.conditions;
        Some(match index {
            0 => &mut conditions.if_match,
            1 => &mut conditions.if_none_match,
            2 => &mut conditions.if_modified_since,
            3 => &mut conditions.if_unmodified_since,
            4 => &mut conditions.if_range,
            5 => &mut self.range,
            _ => &mut self.accept_encoding,
        })
    }
}

/// Whether a `Host` value is `uri-host [":" port]` (RFC 9112 §3.2, RFC 3986 §3.2.2): an
/// IP-literal in balanced brackets holding a valid IPv6 address, or a name of letters,
/// digits, `-`, `.`, `_` and `~`; then at most one port of at most five digits, up to 65535.
/// Empty is allowed (a target without an authority).
///
/// Stricter than RFC 3986's `reg-name`, which also allows sub-delims (`,` `;` `=` …) and
/// percent-escapes: no DNS name contains them, and in a Host they only ever come from
/// attacks or broken clients (nginx refuses many of them too).
///
/// Checked on bytes: every request has a Host, so this runs on every request.
fn is_valid_host(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    let (host_ok, port) = match value.strip_prefix(b"[") {
        Some(rest) => {
            let Some((literal, after)) = split_at_byte(rest, b']') else {
                return false;
            };
            let is_ipv6 = std::str::from_utf8(literal)
                .is_ok_and(|literal| literal.parse::<core::net::Ipv6Addr>().is_ok());
            match after.strip_prefix(b":") {
                Some(port) if is_ipv6 => (true, Some(port)),
                None if is_ipv6 && after.is_empty() => (true, None),
                _ => return false,
            }
        }
        None => {
            let (host, port) = match split_at_byte(value, b':') {
                Some((host, port)) => (host, Some(port)),
                None => (value, None),
            };
            let host_ok = host
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            (host_ok, port)
        }
    };
    let port_ok = port.is_none_or(|port| {
        port.len() <= 5
            && port.iter().all(u8::is_ascii_digit)
            && port
                .iter()
                .fold(0u32, |n, &digit| n * 10 + u32::from(digit - b'0'))
                <= 65_535
    });
    host_ok && port_ok
}

/// `bytes` split around the first `separator`, if there is one.
fn split_at_byte(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == separator)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// Parses a `Content-Length` value: digits only, no sign, no list, no overflow.
fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether a `Transfer-Encoding` list ends in `chunked`.
fn ends_in_chunked(value: &[u8]) -> bool {
    let last = value.rsplit(|&b| b == b',').next().unwrap_or_default();
    last.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// Reduces the request target to origin form (`/path?query`), RFC 9112 §3.2.
fn origin_form(raw: &str, method: &Method, out: &mut String) -> Result<(), Reject> {
    out.clear();
    if raw.starts_with('/') {
        out.push_str(raw);
    } else if let Some(rest) = strip_scheme(raw) {
        // absolute-form: the path starts at the first '/' after the authority.
        let path_start = rest.find(['/', '?']).unwrap_or(rest.len());
        let path = &rest[path_start..];
        if !path.starts_with('/') {
            out.push('/');
        }
        out.push_str(path);
    } else {
        match (raw, method) {
            // asterisk-form (`OPTIONS *`) and authority-form (`CONNECT host:port`) name no
            // file; their methods are answered 405 by the caller.
            ("*", Method::Options) => out.push_str(raw),
            (_, Method::Other(name)) if name == "CONNECT" => out.push_str(raw),
            _ => {
                return Err(Reject {
                    status: Status::BAD_REQUEST,
                    why: "request target is not a path",
                });
            }
        }
    }
    Ok(())
}

/// The part after `http://` or `https://` (scheme compared case-insensitively), if present.
fn strip_scheme(raw: &str) -> Option<&str> {
    ["http://", "https://"].iter().find_map(|scheme| {
        let head = raw.get(..scheme.len())?;
        head.eq_ignore_ascii_case(scheme)
            .then(|| &raw[scheme.len()..])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{MAX_DISCARD_BODY_BYTES, MAX_HEAD_BYTES, MAX_HEADERS, MAX_TARGET_BYTES};

    #[test]
    fn accept_is_parsed_as_media_ranges_with_q_values() {
        for (fields, json) in [
            (&[][..], false),
            (&["application/json"][..], true),
            (&["application/json;q=0"][..], false),
            (&["xapplication/json"][..], false),
            (&["application/jsonx"][..], false),
            (&["*/*"][..], false), // a tie: HTML
            (&["text/html,application/xhtml+xml,*/*;q=0.8"][..], false), // a browser
            (&["text/html;q=0.5, application/json"][..], true),
            (&["application/*"][..], true),
            (&["application/json, text/html"][..], false),
            (&["application/json", "text/html;q=0.1"][..], true), // two fields, one list
            (&["text/html;q=0.1", "application/json"][..], true), // in either order
            (&["application/json;q=0.9, */*;q=1"][..], false),
            (&["application/json;q=abc"][..], true), // a bad q counts as absent
        ] {
            let mut head = String::from("GET / HTTP/1.1\r\nHost: t\r\n");
            for field in fields {
                head.push_str(&format!("Accept: {field}\r\n"));
            }
            head.push_str("\r\n");
            assert_eq!(complete(&head).accept_json, json, "{fields:?}");
        }
    }

    fn complete(raw: &str) -> Request {
        match parse(raw.as_bytes(), &RequestLimits::default()) {
            Parsed::Complete { request, head_len } => {
                assert_eq!(
                    head_len,
                    raw.find("\r\n\r\n").unwrap() + 4,
                    "head length of {raw:?}"
                );
                request
            }
            other => panic!("expected a complete head for {raw:?}, got {other:?}"),
        }
    }

    fn rejected(raw: &[u8]) -> u16 {
        match parse(raw, &RequestLimits::default()) {
            Parsed::Reject(reject) => reject.status.0,
            other => panic!(
                "expected a rejection for {:?}, got {other:?}",
                String::from_utf8_lossy(raw)
            ),
        }
    }

    const SAMPLE: &str = "GET /docs/index.html?x=1 HTTP/1.1\r\nHost: example.org\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n";

    #[test]
    fn complete_heads_are_copied_out() {
        let request = complete(SAMPLE);
        assert_eq!(request.method, Method::Get);
        assert_eq!(request.target, "/docs/index.html?x=1");
        assert_eq!(request.minor_version, 1);
        assert_eq!(request.persistence, Persistence::KeepAlive);
        assert_eq!(request.body_len, 0);
        assert_eq!(request.line(), "GET /docs/index.html?x=1 HTTP/1.1");
        assert_eq!(complete("HEAD / HTTP/1.0\r\n\r\n").method, Method::Head);
        let post = complete("POST /f HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(
            (post.method, post.body_len),
            (Method::Other("POST".into()), 5)
        );
    }

    #[test]
    fn a_head_cut_at_every_byte_boundary_is_partial() {
        for cut in 0..SAMPLE.len() {
            assert_eq!(
                parse(&SAMPLE.as_bytes()[..cut], &RequestLimits::default()),
                Parsed::Partial,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn the_head_length_excludes_following_bytes() {
        let two = format!("{SAMPLE}GET / HTTP/1.1\r\n");
        assert!(
            matches!(parse(two.as_bytes(), &RequestLimits::default()), Parsed::Complete { head_len, .. } if head_len == SAMPLE.len())
        );
    }

    #[test]
    fn absolute_form_is_reduced_to_its_path() {
        assert_eq!(
            complete("GET http://example.org/a/b?q HTTP/1.1\r\nHost: x\r\n\r\n").target,
            "/a/b?q"
        );
        assert_eq!(
            complete("GET HTTPS://example.org HTTP/1.1\r\nHost: x\r\n\r\n").target,
            "/"
        );
        assert_eq!(
            complete("GET http://example.org?q HTTP/1.1\r\nHost: x\r\n\r\n").target,
            "/?q"
        );
    }

    #[test]
    fn every_rejection_has_its_status() {
        let long_target = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "a".repeat(MAX_TARGET_BYTES)
        );
        let long_line = format!("GET /{}", "a".repeat(MAX_HEAD_BYTES));
        let big_head = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        let many_headers = format!(
            "GET / HTTP/1.1\r\nHost: a\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS)
        );
        let long_method = format!(
            "{} / HTTP/1.1\r\nHost: a\r\n\r\n",
            "A".repeat(MAX_METHOD_BYTES + 1)
        );
        let big_body = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
            MAX_DISCARD_BODY_BYTES + 1
        );
        let table: &[(&str, &[u8], u16)] = &[
            ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
            ("no version (HTTP/0.9)", b"GET /\r\n\r\n", 400),
            ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", 400),
            ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            ("Host with a path", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
            ("Host with a space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            ("Host with userinfo", b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
            ("CL and TE", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("TE and CL", b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400),
            ("conflicting CLs", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
            ("repeated CL", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400),
            ("list CL", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", 400),
            ("signed CL", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400),
            ("huge CL", b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
            ("chunked twice", b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            ("chunked in HTTP/1.0", b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            ("two spaces before the version", b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("two spaces after the method", b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("TE not ending in chunked", b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            ("space before colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
            ("bare CR", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
            ("NUL in value", b"GET / HTTP/1.1\r\nHost: a\x00b\r\n\r\n", 400),
            ("bad header name", b"GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", 400),
            ("asterisk on GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("authority on GET", b"GET example.org:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
            ("HTTP/2.1", b"GET / HTTP/2.1\r\nHost: a\r\n\r\n", 505),
            ("HTTP/3", b"GET / HTTP/3\r\nHost: a\r\n\r\n", 505),
            ("not HTTP", b"GET / HTTX/1.1\r\nHost: a\r\n\r\n", 400),
            ("target too long", long_target.as_bytes(), 414),
            ("request line too long", long_line.as_bytes(), 414),
            ("head too large", big_head.as_bytes(), 431),
            ("too many headers", many_headers.as_bytes(), 431),
            ("method too long", long_method.as_bytes(), 400),
            ("body too large", big_body.as_bytes(), 413),
        ];
        for (name, raw, status) in table {
            assert_eq!(rejected(raw), *status, "{name}");
        }
    }

    #[test]
    fn host_values_follow_uri_host_and_port() {
        let valid = [
            "example.com",
            "example.com:80",
            "example.com:",
            "127.0.0.1:8080",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]:65535",
            "xn--bcher-kva.example",
            "under_score.local",
            "",
        ];
        for host in valid {
            assert!(
                is_valid_host(host.as_bytes()),
                "{host:?} should be accepted"
            );
        }
        let invalid = [
            "example.com:80:80",
            "[::1",
            "[[[",
            "a,b",
            "a:b:c",
            "%00",
            "x:99999999999",
            "x:65536",
            "x:8o",
            "[::1]x",
            "[not-v6]",
            "[::1]:80:80",
            "a/b",
            "a b",
            "u@a",
            "a;b=c",
        ];
        for host in invalid {
            assert!(
                !is_valid_host(host.as_bytes()),
                "{host:?} should be refused"
            );
            let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            assert_eq!(rejected(head.as_bytes()), 400, "{host:?}");
        }
    }

    #[test]
    fn a_head_request_is_recognised_after_empty_lines_only() {
        assert!(names_head(b"HEAD / HTTP/1.1\r\n"));
        assert!(names_head(b"\r\n\nHEAD x"));
        assert!(!names_head(b"\r\rHEAD / HTTP/1.1\r\n"));
        assert!(!names_head(b"GET / HTTP/1.1\r\n"));
        assert!(!names_head(b"HEADX / HTTP/1.1\r\n"));
    }

    #[test]
    fn higher_http_1_minor_versions_are_served_as_http_1_1() {
        for version in ["1.2", "1.9"] {
            let head = format!("GET /a HTTP/{version}\r\nHost: a\r\n\r\n");
            let request = complete(&head);
            assert_eq!((request.minor_version, request.target.as_str()), (1, "/a"));
            assert_eq!(request.persistence, Persistence::KeepAlive);
        }
        let cut = b"GET /a HTTP/1.2\r\nHost: a\r\n";
        assert_eq!(parse(cut, &RequestLimits::default()), Parsed::Partial);
    }

    #[test]
    fn a_chunked_body_is_announced_for_discarding() {
        let request =
            complete("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
        assert!(request.chunked && request.body_len == 0);
        assert_eq!(request.persistence, Persistence::KeepAlive);
        let expecting = complete(
            "PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        );
        assert_eq!(expecting.persistence, Persistence::Close);
    }

    #[test]
    fn a_target_of_8000_octets_is_accepted() {
        let raw = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(7999));
        assert_eq!(complete(&raw).target.len(), 8000);
    }

    #[test]
    fn options_star_and_connect_reach_the_method_check() {
        assert_eq!(
            complete("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").method,
            Method::Options
        );
        assert_eq!(
            complete("CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n").target,
            "a:443"
        );
    }

    #[test]
    fn the_keep_alive_matrix() {
        let table = [
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Persistence::KeepAlive),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                Persistence::Close,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n",
                Persistence::Close,
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
                Persistence::KeepAlive,
            ),
            ("GET / HTTP/1.0\r\n\r\n", Persistence::Close),
            (
                "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                Persistence::KeepAliveHttp10,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n",
                Persistence::KeepAliveHttp10,
            ),
            (
                "GET / HTTP/1.0\r\nConnection: close\r\n\r\n",
                Persistence::Close,
            ),
        ];
        for (raw, expected) in table {
            assert_eq!(complete(raw).persistence, expected, "{raw:?}");
        }
    }

    #[test]
    fn fields_for_later_modules_are_copied_and_repeats_joined() {
        let request = complete(
            "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"a\"\r\nif-none-match: W/\"b\"\r\n\
             Range: bytes=0-1\r\nAccept-Encoding: br, gzip\r\nIf-Modified-Since: x\r\n\r\n",
        );
        assert_eq!(
            request.conditions.if_none_match.as_deref(),
            Some("\"a\", W/\"b\"")
        );
        assert_eq!(request.conditions.if_modified_since.as_deref(), Some("x"));
        assert_eq!(request.conditions.if_match, None);
        assert_eq!(request.range.as_deref(), Some("bytes=0-1"));
        assert_eq!(request.accept_encoding.as_deref(), Some("br, gzip"));
    }

    #[test]
    fn leading_empty_lines_are_ignored() {
        assert_eq!(
            complete("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").target,
            "/"
        );
    }
}
