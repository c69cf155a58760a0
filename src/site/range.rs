//! `Range` header parsing (RFC 9110 §14): a header value and a file length → which bytes to send.
//!
//! Where this sits in the loop: once a GET or HEAD has been mapped to a file and its
//! preconditions have been checked ([`crate::site::conditional`], including `If-Range`), the response
//! is built from the file's length and the request's `Range` value. [`parse`] picks the status:
//! [`Ranges::Whole`] is a 200 with the whole file, [`Ranges::Partial`] a 206 (one part, or a
//! `multipart/byteranges` body) and [`Ranges::Unsatisfiable`] a 416 whose `Content-Range` is
//! [`unsatisfied_range`]. No I/O is done here, so every rule has a unit test below.
//!
//! # Design notes
//! - **Ignore rather than reject.** A server may ignore `Range` altogether
//!   ([RFC 9110 §14.2](https://www.rfc-editor.org/rfc/rfc9110#section-14.2)), and must ignore a
//!   unit it does not know. So an unknown unit, any malformed spec (including `first > last`,
//!   which [§14.1.1](https://www.rfc-editor.org/rfc/rfc9110#section-14.1.1) calls invalid) or
//!   a number too big for a `u64` makes us send the whole file with 200. Answering 400 or 416
//!   instead would break clients over a header they could have done without.
//! - **Bounded work.** Many small or overlapping ranges are a known denial-of-service lever
//!   ([§17.15](https://www.rfc-editor.org/rfc/rfc9110#section-17.15)). We look at no more than
//!   [`MAX_RANGE_SPECS`] specs, then sort and coalesce ranges that overlap or sit closer than
//!   [`RANGE_COALESCE_GAP_BYTES`] (which the 206 rules allow,
//!   [§15.3.7](https://www.rfc-editor.org/rfc/rfc9110#section-15.3.7)), and send the whole file
//!   if more than [`MAX_RANGE_PARTS`] parts remain. `bytes=0-0,0-0,…` therefore costs one part.
//! - **Satisfiable** follows [§14.1.2](https://www.rfc-editor.org/rfc/rfc9110#section-14.1.2):
//!   `first-last` and `first-` need `first < len` (`last` is clamped to the end), a suffix
//!   `-n` needs `n > 0` and a non-empty file. When none is satisfiable the answer is 416
//!   ([§15.5.17](https://www.rfc-editor.org/rfc/rfc9110#section-15.5.17)).

use crate::http::syntax::is_ows;
use crate::limits::{MAX_RANGE_PARTS, MAX_RANGE_SPECS, RANGE_COALESCE_GAP_BYTES};

/// An inclusive byte range of a representation: bytes `first..=last`.
// INVARIANT: `first <= last < u64::MAX` for every range `parse` returns, so `len` is exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// Offset of the first byte sent.
    pub first: u64,
    /// Offset of the last byte sent (inclusive, as in `Content-Range`).
    pub last: u64,
}

impl ByteRange {
    /// Number of bytes in the range: `last - first + 1`.
    ///
    /// Saturates instead of overflowing for a hand-built range outside the invariant.
    #[expect(
        clippy::len_without_is_empty,
        reason = "an inclusive range always holds at least one byte"
    )]
    pub fn len(&self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }

    /// The `Content-Range` value of this range in a file of `total` bytes: `bytes 0-499/1234`.
    pub fn content_range(&self, total: u64) -> String {
        format!("bytes {}-{}/{total}", self.first, self.last)
    }
}

/// What a `Range` header asks of a representation, once checked against its length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ranges {
    /// No usable Range header (absent, other unit, malformed, too many specs, too many parts):
    /// send the whole representation with 200.
    Whole,
    /// Satisfiable ranges, sorted by `first`, overlapping/adjacent ones coalesced: 206.
    Partial(Vec<ByteRange>),
    /// A valid bytes Range none of whose specs is satisfiable: 416 with
    /// `Content-Range: bytes */LEN`.
    Unsatisfiable,
}

/// One syntactically valid range spec, before it is checked against the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// `first-last`, with `first <= last`.
    Bounded {
        /// The first offset asked for.
        first: u64,
        /// The last offset asked for, possibly past the end of the file.
        last: u64,
    },
    /// `first-`: from `first` to the end.
    From(u64),
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// Interprets a `Range` header value for a representation of `len` bytes.
pub fn parse(value: &str, len: u64) -> Ranges {
    let Some((unit, set)) = value.trim_matches(is_ows).split_once('=') else {
        return Ranges::Whole;
    };
    if !unit.eq_ignore_ascii_case("bytes") {
        return Ranges::Whole;
    }
    let mut satisfiable = Vec::new();
    let mut spec_count = 0;
    // Empty list elements (`a,,b`) are allowed by the list syntax (RFC 9110 §5.6.1).
    for element in set.split(',').map(|e| e.trim_matches(is_ows)) {
        if element.is_empty() {
            continue;
        }
        spec_count += 1;
        if spec_count > MAX_RANGE_SPECS {
            return Ranges::Whole;
        }
        let Some(spec) = parse_spec(element) else {
            return Ranges::Whole;
        };
        if let Some(range) = resolve(spec, len) {
            satisfiable.push(range);
        }
    }
    if spec_count == 0 {
        // `range-set = 1#range-spec`: `bytes=` is malformed.
        return Ranges::Whole;
    }
    if satisfiable.is_empty() {
        return Ranges::Unsatisfiable;
    }
    let parts = coalesce(satisfiable);
    if parts.len() > MAX_RANGE_PARTS {
        return Ranges::Whole;
    }
    Ranges::Partial(parts)
}

/// `Content-Range` value of a 416 answer: "bytes */LEN".
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// Parses one trimmed, non-empty spec; `None` if it is malformed.
fn parse_spec(element: &str) -> Option<Spec> {
    let (first, last) = element.split_once('-')?;
    if first.is_empty() {
        return Some(Spec::Suffix(parse_digits(last)?));
    }
    let first = parse_digits(first)?;
    if last.is_empty() {
        return Some(Spec::From(first));
    }
    let last = parse_digits(last)?;
    (first <= last).then_some(Spec::Bounded { first, last })
}

/// Parses `1*DIGIT` into a `u64`; `None` if empty, not all digits, or too large.
fn parse_digits(text: &str) -> Option<u64> {
    // `u64::from_str` would also accept a leading `+`, which the grammar does not.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The bytes `spec` selects in a file of `len` bytes, or `None` if it is unsatisfiable.
fn resolve(spec: Spec, len: u64) -> Option<ByteRange> {
    let end = len.checked_sub(1)?; // An empty file satisfies no range.
    match spec {
        Spec::Bounded { first, last } if first <= end => Some(ByteRange {
            first,
            last: last.min(end),
        }),
        Spec::From(first) if first <= end => Some(ByteRange { first, last: end }),
        Spec::Suffix(suffix) if suffix > 0 => Some(ByteRange {
            first: len.saturating_sub(suffix),
            last: end,
        }),
        _ => None,
    }
}

/// Sorts `ranges` by `first` and merges those that overlap or whose gap is at most
/// [`RANGE_COALESCE_GAP_BYTES`].
fn coalesce(mut ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    ranges.sort_unstable_by_key(|range| range.first);
    let mut merged: Vec<ByteRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            // `last < u64::MAX` (it is at most `len - 1`), so `+ 1` cannot overflow.
            Some(previous)
                if range.first <= (previous.last + 1).saturating_add(RANGE_COALESCE_GAP_BYTES) =>
            {
                previous.last = previous.last.max(range.last);
            }
            _ => merged.push(range),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ranges::{Unsatisfiable, Whole};

    /// A `Partial` answer from `(first, last)` pairs.
    fn partial(pairs: &[(u64, u64)]) -> Ranges {
        let parts = pairs.iter().map(|&(first, last)| ByteRange { first, last });
        Ranges::Partial(parts.collect())
    }

    /// `count` specs made by `spec(i)`, joined into a header value.
    fn header(count: u64, spec: impl Fn(u64) -> String) -> String {
        let specs: Vec<String> = (0..count).map(spec).collect();
        format!("bytes={}", specs.join(","))
    }

    #[test]
    fn parse_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, u64, Ranges)] = &[
            ("first-last", "bytes=0-499", 1234, partial(&[(0, 499)])),
            ("first-", "bytes=1000-", 1234, partial(&[(1000, 1233)])),
            ("suffix", "bytes=-100", 1234, partial(&[(1134, 1233)])),
            ("suffix longer than file", "bytes=-5000", 1234, partial(&[(0, 1233)])),
            ("last clamps to end", "bytes=1200-9999", 1234, partial(&[(1200, 1233)])),
            ("last byte only", "bytes=1233-1233", 1234, partial(&[(1233, 1233)])),
            ("first == len", "bytes=1234-1300", 1234, Unsatisfiable),
            ("first- past end", "bytes=1234-", 1234, Unsatisfiable),
            ("suffix zero", "bytes=-0", 1234, Unsatisfiable),
            ("first > last", "bytes=5-3", 1234, Whole),
            ("other unit", "items=0-1", 1234, Whole),
            ("empty set", "bytes=", 1234, Whole),
            ("only commas", "bytes= , ,", 1234, Whole),
            ("no equals", "bytes 0-1", 1234, Whole),
            ("letters", "bytes=a-b", 1234, Whole),
            ("sign", "bytes=+1-2", 1234, Whole),
            ("space inside spec", "bytes=0 -1", 1234, Whole),
            ("no dash", "bytes=5", 1234, Whole),
            ("spaces around elements", "bytes= 0-1 , 4-5", 1234, partial(&[(0, 5)])),
            ("tabs, far apart", "bytes=\t0-1 ,\t400-401 ", 1234, partial(&[(0, 1), (400, 401)])),
            ("empty elements", "bytes=,0-1,,400-401,", 1234, partial(&[(0, 1), (400, 401)])),
            ("disjoint, sorted", "bytes=900-999,0-99,400-499", 1234,
                partial(&[(0, 99), (400, 499), (900, 999)])),
            ("overlapping merge", "bytes=0-499,200-699", 1234, partial(&[(0, 699)])),
            ("contained merge", "bytes=0-699,200-299", 1234, partial(&[(0, 699)])),
            ("adjacent merge", "bytes=0-99,100-199", 1234, partial(&[(0, 199)])),
            ("gap of 80 merges", "bytes=0-99,180-199", 1234, partial(&[(0, 199)])),
            ("gap of 81 stays", "bytes=0-99,181-199", 1234, partial(&[(0, 99), (181, 199)])),
            ("one unsatisfiable", "bytes=2000-3000,0-9", 1234, partial(&[(0, 9)])),
            ("malformed after good", "bytes=0-9,x", 1234, Whole),
            ("malformed after unsatisfiable", "bytes=2000-,5-3", 1234, Whole),
            ("empty file", "bytes=0-0", 0, Unsatisfiable),
            ("empty file, suffix", "bytes=-5", 0, Unsatisfiable),
            ("empty file, open", "bytes=0-", 0, Unsatisfiable),
            ("overflow first", "bytes=18446744073709551616-", 1234, Whole),
            ("overflow last", "bytes=0-99999999999999999999", 1234, Whole),
            ("overflow suffix", "bytes=-18446744073709551616", 1234, Whole),
            ("u64::MAX last clamps", "bytes=0-18446744073709551615", 1234, partial(&[(0, 1233)])),
            ("mixed case unit", "BYTES=0-1", 1234, partial(&[(0, 1)])),
            ("odd case unit", "ByTeS=0-1", 1234, partial(&[(0, 1)])),
        ];
        for (name, value, len, expected) in cases {
            assert_eq!(
                &parse(value, *len),
                expected,
                "{name}: {value:?} on {len} bytes"
            );
        }
    }

    #[test]
    fn limits_table() {
        let same = |_| "0-0".to_string();
        let close = |i: u64| format!("{0}-{0}", i * 50);
        let far_apart = |i: u64| format!("{0}-{0}", i * 200);
        let sixteen_parts: Vec<_> = (0..16).map(|i| (i * 200, i * 200)).collect();
        #[rustfmt::skip]
        let cases: Vec<(&str, String, Ranges)> = vec![
            ("100 specs is the limit", header(100, same), partial(&[(0, 0)])),
            ("101 specs", header(101, same), Whole),
            ("101 unsatisfiable specs", header(101, |_| "-0".into()), Whole),
            ("200 tiny overlapping", header(200, same), Whole),
            ("100 tiny close ranges coalesce", header(100, close), partial(&[(0, 4950)])),
            ("16 parts is the limit", header(16, far_apart), partial(&sixteen_parts)),
            ("17 far-apart parts", header(17, far_apart), Whole),
        ];
        for (name, value, expected) in cases {
            assert_eq!(parse(&value, 10_000), expected, "{name}");
        }
    }

    #[test]
    fn byte_range_helpers() {
        let range = ByteRange {
            first: 0,
            last: 499,
        };
        assert_eq!(range.len(), 500);
        assert_eq!(range.content_range(1234), "bytes 0-499/1234");
        let single = ByteRange { first: 7, last: 7 };
        assert_eq!(single.len(), 1);
        assert_eq!(single.content_range(8), "bytes 7-7/8");
        let huge = ByteRange {
            first: 0,
            last: u64::MAX,
        };
        assert_eq!(huge.len(), u64::MAX, "saturates, never panics");
        assert_eq!(unsatisfied_range(1234), "bytes */1234");
        assert_eq!(unsatisfied_range(0), "bytes */0");
    }

    #[test]
    fn parse_never_panics() {
        #[rustfmt::skip]
        let odd = [
            "", "=", "bytes", "bytes=", "bytes=-", "bytes=--1", "bytes=1--", "bytes=1-2-3",
            "bytes=,", "bytes==0-1", "bytes=0-1=", "=0-1", "bytes=-18446744073709551615",
            "bytes=18446744073709551615-", "bytes=18446744073709551614-18446744073709551615",
            "bytes=0-0,18446744073709551614-", "bytes=é-ü", "bÿtes=0-1", "bytes=０-１",
            "bytes=0-1,\u{0}", "bytes=\r\n0-1", " bytes=0-1 ", "bytes=0x10-0x20",
        ];
        for value in odd {
            for len in [0, 1, 2, 100, u64::MAX - 1, u64::MAX] {
                if let Ranges::Partial(parts) = parse(value, len) {
                    for part in parts {
                        assert!(
                            part.first <= part.last && part.last < len,
                            "{value:?}/{len}"
                        );
                        let _ = (part.len(), part.content_range(len));
                    }
                }
            }
        }
    }
}
