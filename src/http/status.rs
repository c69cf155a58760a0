//! Status codes, their reason phrases, and the small HTML page every error and redirect
//! carries as its body.
//!
//! Where this sits in the loop: nowhere on its own; the request parser refuses heads with a
//! [`Status`], the site module decides one for each answer, and `head.rs` writes it on the
//! status line.

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
}

/// The small HTML page that is the body of every error and redirect.
pub fn status_page(status: Status) -> String {
    status_page_saying(status, "")
}

/// [`status_page`] with a sentence of ours saying why (a constant: nothing a client sent,
/// so nothing to escape).
pub fn status_page_saying(status: Status, why: &'static str) -> String {
    let code = status.0;
    let reason = status.reason();
    let why = match why {
        "" => String::new(),
        why => format!("<p>{why}</p>"),
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n\
         <body><h1>{code} {reason}</h1>{why}<hr><p>epollo/{}</p></body></html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_pages_name_the_status() {
        let page = status_page(Status::NOT_FOUND);
        assert!(page.contains("<title>404 Not Found</title>"));
    }
}
