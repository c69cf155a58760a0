//! Reading past a chunked request body (RFC 9112 §7.1) to throw it away, byte by byte, with
//! limits on every part a client controls.
//!
//! Where this sits in the loop: a GET, HEAD or refused method may arrive with
//! `Transfer-Encoding: chunked`. The connection answers the head at once, then feeds what
//! follows to a [`ChunkedDiscard`] until it says the body is over; only then is the next head
//! parsed, so body bytes are never read as a request. No I/O here.
//!
//! # Design notes
//! A state machine over single bytes, so a body split at any point across reads decodes the
//! same way. Chunk extensions are skipped (their length is capped), trailer fields are read
//! and dropped (their total size is capped), and the decoded size counts against
//! `--max-body-bytes`. Anything malformed is a framing error: we no longer know where the
//! next request starts, so the connection answers 400 and closes (413 past the size cap).

use super::status::Status;
use crate::limits::{MAX_CHUNK_EXTENSION_BYTES, MAX_CHUNK_SIZE_DIGITS};

/// Where in the chunked coding we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// The hex digits of a chunk size; how many so far.
    Size(usize),
    /// After the size: `;` extensions (skipped) up to CRLF; bytes so far.
    Extension(usize),
    /// Expecting the LF that ends the size line.
    SizeLf,
    /// Chunk data; bytes still to skip.
    Data(u64),
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// Expecting the LF of a trailer line (`true`: the line was empty, so the body ends).
    TrailerLf(bool),
    /// The body is over.
    Done,
}

/// What feeding bytes found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The body goes on: feed more bytes.
    More,
    /// The body ended after the bytes consumed.
    Done,
    /// A malformed body (400) or one over the size cap (413): answer this and close.
    Refuse(Status),
}

/// A chunked body being read and thrown away.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkedDiscard {
    /// The state.
    part: Part,
    /// The size of the chunk whose size line is being read.
    chunk_size: u64,
    /// Decoded body bytes so far.
    body_bytes: u64,
    /// Trailer bytes so far.
    trailer_bytes: usize,
    /// `--max-body-bytes`.
    max_body_bytes: u64,
    /// The most trailer bytes we read (`--max-head-bytes`: trailers are header fields).
    max_trailer_bytes: usize,
}

impl ChunkedDiscard {
    /// A body about to start, with the connection's limits.
    pub fn new(max_body_bytes: u64, max_trailer_bytes: usize) -> ChunkedDiscard {
        ChunkedDiscard {
            part: Part::Size(0),
            chunk_size: 0,
            body_bytes: 0,
            trailer_bytes: 0,
            max_body_bytes,
            max_trailer_bytes,
        }
    }

    /// Consumes bytes from the start of `buf`; returns how many, and what they showed.
    pub fn feed(&mut self, buf: &[u8]) -> (usize, Progress) {
        let mut used = 0;
        while used < buf.len() {
            if let Part::Data(left) = self.part {
                // Skip a run of data at once instead of byte by byte.
                let run = left.min((buf.len() - used) as u64);
                used += run as usize;
                self.part = if run == left {
                    Part::DataCr
                } else {
                    Part::Data(left - run)
                };
                continue;
            }
            let byte = buf[used];
            used += 1;
            match self.step(byte) {
                Ok(()) if self.part == Part::Done => return (used, Progress::Done),
                Ok(()) => {}
                Err(status) => return (used, Progress::Refuse(status)),
            }
        }
        (used, Progress::More)
    }

    /// Takes one byte outside chunk data.
    fn step(&mut self, byte: u8) -> Result<(), Status> {
        let bad = Err(Status::BAD_REQUEST);
        self.part = match (self.part, byte) {
            (Part::Size(digits), _) if byte.is_ascii_hexdigit() => {
                if digits == MAX_CHUNK_SIZE_DIGITS {
                    return bad;
                }
                let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                self.chunk_size = self.chunk_size * 16 + digit;
                Part::Size(digits + 1)
            }
            (Part::Size(0), _) => return bad,
            (Part::Size(_), b';' | b' ' | b'\t') => Part::Extension(1),
            (Part::Size(_) | Part::Extension(_), b'\r') => Part::SizeLf,
            (Part::Extension(len), _) if len < MAX_CHUNK_EXTENSION_BYTES && byte != b'\n' => {
                Part::Extension(len + 1)
            }
            (Part::SizeLf, b'\n') => self.end_size_line()?,
            (Part::DataCr, b'\r') => Part::DataLf,
            (Part::DataLf, b'\n') => Part::Size(0),
            (Part::TrailerStart, b'\r') => Part::TrailerLf(true),
            (Part::TrailerStart | Part::Trailer, b'\n') => return bad,
            (Part::Trailer, b'\r') => Part::TrailerLf(false),
            (Part::TrailerStart | Part::Trailer, _) => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > self.max_trailer_bytes {
                    return Err(Status::HEADERS_TOO_LARGE);
                }
                Part::Trailer
            }
            (Part::TrailerLf(true), b'\n') => Part::Done,
            (Part::TrailerLf(false), b'\n') => Part::TrailerStart,
            _ => return bad,
        };
        Ok(())
    }

    /// A size line ended: the last chunk starts the trailer, any other its data.
    fn end_size_line(&mut self) -> Result<Part, Status> {
        let size = std::mem::take(&mut self.chunk_size);
        if size == 0 {
            return Ok(Part::TrailerStart);
        }
        self.body_bytes = self.body_bytes.saturating_add(size);
        if self.body_bytes > self.max_body_bytes {
            return Err(Status::CONTENT_TOO_LARGE);
        }
        Ok(Part::Data(size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes; returns the outcome and bytes consumed.
    fn run(body: &[u8], step: usize) -> (Progress, usize) {
        let mut discard = ChunkedDiscard::new(1000, 100);
        let mut used = 0;
        while used < body.len() {
            let end = (used + step).min(body.len());
            let (n, progress) = discard.feed(&body[used..end]);
            used += n;
            if progress != Progress::More {
                return (progress, used);
            }
        }
        (Progress::More, used)
    }

    #[test]
    fn bodies_end_where_the_coding_says_at_any_split() {
        let table: &[(&str, &[u8])] = &[
            ("one chunk", b"5\r\nhello\r\n0\r\n\r\n"),
            ("two chunks", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            (
                "hex and case",
                b"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
            ),
            ("extensions", b"5;name=value;x\r\nhello\r\n0;last\r\n\r\n"),
            ("trailers", b"5\r\nhello\r\n0\r\nX-Sum: 1\r\nY: 2\r\n\r\n"),
            ("empty body", b"0\r\n\r\n"),
            ("leading zeros", b"0005\r\nhello\r\n0\r\n\r\n"),
        ];
        for (name, body) in table {
            for step in [1, 2, 3, 7, body.len()] {
                let mut input = body.to_vec();
                input.extend_from_slice(b"GET / HTTP/1.1\r\n");
                let (progress, used) = run(&input, step);
                assert_eq!(progress, Progress::Done, "{name} step {step}");
                assert_eq!(
                    used,
                    body.len(),
                    "{name} step {step}: stops at the body's end"
                );
            }
        }
    }

    #[test]
    fn malformed_and_oversized_bodies_are_refused() {
        let table: &[(&str, &[u8], Status)] = &[
            ("no size", b"\r\n", Status::BAD_REQUEST),
            ("not hex", b"zz\r\n", Status::BAD_REQUEST),
            ("negative", b"-5\r\nabc\r\n", Status::BAD_REQUEST),
            ("bare LF", b"5\nhello\r\n0\r\n\r\n", Status::BAD_REQUEST),
            ("data too long", b"3\r\nhello\r\n", Status::BAD_REQUEST),
            ("17 digits", b"00000000000000005\r\n", Status::BAD_REQUEST),
            (
                "size overflow",
                b"ffffffffffffffff\r\n",
                Status::CONTENT_TOO_LARGE,
            ),
            ("over the cap", b"3e9\r\n", Status::CONTENT_TOO_LARGE),
            ("trailer bare LF", b"0\r\nX: y\n\r\n", Status::BAD_REQUEST),
        ];
        for (name, body, status) in table {
            assert_eq!(run(body, 1).0, Progress::Refuse(*status), "{name}");
        }
        let long_extension = [b"5;".as_slice(), &[b'x'; 5000]].concat();
        assert_eq!(
            run(&long_extension, 64).0,
            Progress::Refuse(Status::BAD_REQUEST)
        );
        let long_trailer = [b"0\r\nX: ".as_slice(), &[b'y'; 200]].concat();
        assert_eq!(
            run(&long_trailer, 64).0,
            Progress::Refuse(Status::HEADERS_TOO_LARGE)
        );
    }
}
