//! A request's answer as a plain value: [`Reply`] (status, the fields that vary, the
//! content). `site` and the `--stats` pages decide one per request; `head.rs` serialises its
//! head; the connection's output batch sends its content.
//!
//! Nothing here opens, reads or writes anything: a file's content is named by its open
//! descriptor ([`Content::File`]) and read by whoever sends it.

use std::fmt;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::time::SystemTime;

use super::status::{Status, status_page};

/// The answer to one request, decided before any byte is written.
#[derive(Debug)]
pub struct Reply {
    /// The status line's code.
    pub status: Status,
    /// Header fields that vary between answers (the fixed ones are added when serialising).
    pub fields: Fields,
    /// The content a GET gets (HEAD gets its length, and no content).
    pub body: Body,
}

/// The header fields that vary between answers; `None`/`false` leaves a field out.
#[derive(Debug, Default)]
pub struct Fields {
    /// `Content-Type`.
    pub content_type: Option<Text>,
    /// `Content-Encoding` of a precompressed sibling.
    pub content_encoding: Option<&'static str>,
    /// `Content-Range` of a 206 or 416.
    pub content_range: Option<String>,
    /// `ETag`.
    pub etag: Option<Text>,
    /// `Last-Modified` (left out if the date format cannot express it).
    pub last_modified: Option<SystemTime>,
    /// `Location` of a redirect.
    pub location: Option<String>,
    /// `Allow: GET, HEAD, OPTIONS` (on 405 and OPTIONS).
    pub allow: bool,
    /// `Retry-After: 1` (on a 503 for a busy moment).
    pub retry_after: bool,
    /// A file's content: `Accept-Ranges: bytes` and `X-Content-Type-Options: nosniff`.
    pub file_content: bool,
    /// `Vary: Accept`: the answer depends on `Accept` (a listing, as HTML or JSON), so no
    /// cache hands the one to a client that asked for the other.
    pub vary_accept: bool,
    /// An answer about a file (200, 206, 304): `Cache-Control` from `--cache-control`, and
    /// `Vary: Accept-Encoding`, since a sibling may be chosen (or appear) for another client.
    pub cacheable: bool,
    /// `Cache-Control: no-store` (an event stream: nothing of it may be kept).
    pub no_store: bool,
    /// The serialised field lines of all of the above for this answer, made once by the file
    /// cache for a whole file ([`super::head::content_field_lines`]); copied instead of serialising.
    pub prepared: Option<Rc<[u8]>>,
}

/// A header value: a constant, or text shared with the file cache, so that answering from
/// the cache copies no string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Text {
    /// Known at compile time.
    Static(&'static str),
    /// Shared (with the cache, or between the answers to one request).
    Shared(Rc<str>),
}

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Text::Static(text) => text,
            Text::Shared(text) => text,
        }
    }
}

impl From<&'static str> for Text {
    fn from(text: &'static str) -> Text {
        Text::Static(text)
    }
}

impl From<String> for Text {
    fn from(text: String) -> Text {
        Text::Shared(text.into())
    }
}

impl From<Rc<str>> for Text {
    fn from(text: Rc<str>) -> Text {
        Text::Shared(text)
    }
}

/// Where a file's bytes are: an open file, or a copy in memory (small files in the cache).
/// Both are shared, so a cached file serves many answers at once.
#[derive(Clone, Debug)]
pub enum Content {
    /// An open file, read (or sent with `sendfile`) at an offset; never moved. Held as a
    /// descriptor: this module reads no file, the connection and the site do.
    File(Rc<dyn Descriptor>),
    /// The whole file's bytes.
    Memory(Rc<[u8]>),
    /// A file's content with bytes inserted at one place (`--live`'s reload script), sent
    /// without copying the file: its part before, the inserted bytes, its part after.
    Spliced(Rc<Splice>),
}

/// What a file's content is held by: anything with an open descriptor (the site's
/// `disk::OpenFile`, whose close the trace shows; a plain `File` in tests).
pub trait Descriptor: AsFd + fmt::Debug {}

impl<T: AsFd + fmt::Debug> Descriptor for T {}

/// Content with bytes inserted: `original[..at]`, then `insert`, then `original[at..]`.
#[derive(Debug)]
pub struct Splice {
    /// The file's own content (never itself spliced).
    pub original: Content,
    /// Where in `original` the bytes go.
    pub at: u64,
    /// The bytes inserted.
    pub insert: &'static [u8],
}

/// Content made a piece at a time, so that no single loop pass does unbounded work for it
/// (a listing of a huge directory). The connection asks for the next piece only once the
/// previous one has been sent, so a client that does not read pins one piece, not the page.
pub trait Produce {
    /// Does a bounded step of work and appends what it made (possibly nothing yet) to `out`.
    /// Returns `true` once the content is complete.
    fn produce(&mut self, out: &mut Vec<u8>) -> bool;

    /// Whether a step now would do work; `false`: wait for a later loop pass (a listing
    /// waits for its turn at the budget all listings share). The connection checks that its
    /// client is still there before each step it lets happen.
    fn may_step(&self) -> bool {
        true
    }
}

impl fmt::Debug for dyn Produce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Produce")
    }
}

/// The content of an answer.
#[derive(Debug)]
pub enum Body {
    /// No content (204, 304).
    Empty,
    /// Content we generated or assembled: a status page, a listing, multipart ranges.
    Bytes(Vec<u8>),
    /// `len` bytes of a file's content from `offset`: copied into the batch when small,
    /// otherwise sent with `sendfile`.
    File {
        /// The file, open or in memory.
        content: Content,
        /// Where the content starts.
        offset: u64,
        /// How many bytes; the `Content-Length` promises them.
        len: u64,
    },
    /// Content of a length not known in advance, made piece by piece: sent with the chunked
    /// coding to HTTP/1.1 clients, and delimited by closing the connection for HTTP/1.0.
    Stream(Box<dyn Produce>),
    /// Content that never ends (a `--live` event stream): these first bytes, then whatever
    /// the server sends later, until the connection closes. No length, no chunking.
    Open(Vec<u8>),
}

impl Body {
    /// The content length, if known in advance.
    pub fn known_len(&self) -> Option<u64> {
        match self {
            Body::Empty => Some(0),
            Body::Bytes(bytes) => Some(bytes.len() as u64),
            Body::File { len, .. } => Some(*len),
            Body::Stream(_) | Body::Open(_) => None,
        }
    }
}

impl Reply {
    /// An error (or any status without a resource of its own) with its small HTML page.
    pub fn error(status: Status) -> Reply {
        let fields = Fields {
            allow: status == Status::METHOD_NOT_ALLOWED,
            ..Fields::default()
        };
        Reply::error_with(status, fields)
    }

    /// A permanent redirect to `location`, with a status page for old clients.
    pub fn redirect(location: String) -> Reply {
        let fields = Fields {
            location: Some(location),
            ..Fields::default()
        };
        Reply::error_with(Status::MOVED_PERMANENTLY, fields)
    }

    /// 204 to OPTIONS, saying which methods we serve.
    pub fn options() -> Reply {
        let fields = Fields {
            allow: true,
            ..Fields::default()
        };
        Reply {
            status: Status::NO_CONTENT,
            fields,
            body: Body::Empty,
        }
    }

    /// An HTML page we generated.
    pub fn html(status: Status, html: String, fields: Fields) -> Reply {
        Reply::html_body(status, Body::Bytes(html.into_bytes()), fields)
    }

    /// An HTML page we generate, given as a body (a listing comes as a stream).
    pub fn html_body(status: Status, body: Body, mut fields: Fields) -> Reply {
        fields.content_type = Some(Text::Static(HTML));
        Reply {
            status,
            fields,
            body,
        }
    }

    /// 304: the cached copy is still good; `fields` are the validators to send along.
    pub fn not_modified(fields: Fields) -> Reply {
        Reply {
            status: Status::NOT_MODIFIED,
            fields,
            body: Body::Empty,
        }
    }

    /// `--live`: the head of a Server-Sent Events stream, and the client's retry delay; the
    /// connection then stays open for events, delimited by its close.
    pub fn event_stream() -> Reply {
        let fields = Fields {
            content_type: Some(Text::Static("text/event-stream")),
            no_store: true,
            ..Fields::default()
        };
        Reply {
            status: Status::OK,
            fields,
            body: Body::Open(b"retry: 1000\n\n".to_vec()),
        }
    }

    /// `fields` with the status page for `status` as the body.
    pub fn error_with(status: Status, fields: Fields) -> Reply {
        Reply::html(status, status_page(status), fields)
    }
}

/// The `Content-Type` of every page we generate.
const HTML: &str = "text/html; charset=utf-8";

/// The head of one part of a `multipart/byteranges` body (RFC 9110 §14.6), with the CRLF and
/// boundary line that open it.
pub fn multipart_part_head(boundary: &str, content_type: &str, content_range: &str) -> String {
    format!(
        "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {content_range}\r\n\r\n"
    )
}

/// The line that closes a `multipart/byteranges` body.
pub fn multipart_end(boundary: &str) -> String {
    format!("\r\n--{boundary}--\r\n")
}
