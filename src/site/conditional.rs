//! Validators and preconditions (RFC 9110 §13): `ETag`, `If-Match`, `If-None-Match`,
//! `If-Modified-Since`, `If-Unmodified-Since` and `If-Range`.
//!
//! Where this sits in the loop: after a GET or HEAD has been mapped to a file and the file
//! has been opened and stat'ed, the response builder derives the file's [`etag`] and takes its
//! modification time as [`Validators`], then asks [`evaluate`] whether to answer 304, 412 or
//! go on. If it goes on and the request has a `Range`, [`if_range_allows`] says whether the
//! ranges may be honoured ([`crate::site::range`]) or the whole file must be sent. No I/O is done
//! here, so every rule has a unit test below.
//!
//! # Design notes
//! - **The entity tag** is built from inode, size and modification time down to the
//!   nanosecond, like Apache's default `FileETag` (nginx uses mtime and size). It needs no
//!   hashing of the content and no state, so it survives restarts, and any ordinary write
//!   changes it. We call it strong ([RFC 9110 §8.8.3](https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3)):
//!   a rewrite that keeps the size and lands within one tick of the file system's clock goes
//!   unnoticed, a risk every metadata-based tag shares.
//! - **Evaluation order** is that of [§13.2.2](https://www.rfc-editor.org/rfc/rfc9110#section-13.2.2):
//!   `If-Match`, else `If-Unmodified-Since`; then `If-None-Match`, else `If-Modified-Since`.
//!   The entity-tag fields win over the date fields because tags are the more precise
//!   validator. `If-Match` uses the strong comparison and `If-None-Match` the weak one
//!   ([§8.8.3.2](https://www.rfc-editor.org/rfc/rfc9110#section-8.8.3.2)).
//! - **Dates compare in whole seconds**, because `Last-Modified` is an HTTP-date and has no
//!   fraction: a client that echoes our `Last-Modified` must get 304 even though the file's
//!   mtime has nanoseconds. An invalid date is ignored, as §13.1.3 and §13.1.4 require.
//! - **`If-Range`** ([§13.1.5](https://www.rfc-editor.org/rfc/rfc9110#section-13.1.5)) needs an
//!   exact, strong match; on any doubt we send the whole file, which is always correct. We do
//!   not check that a date validator is "strong" in the sense of §8.8.2.2 (it would need the
//!   response's `Date`); the entity tag, which browsers prefer, has no such gap.
//! - **Entity-tag lists** are split by a small scanner that respects quotes, because a comma
//!   is a legal character inside an opaque tag. A malformed element simply never matches.

use std::os::unix::fs::MetadataExt;
use std::time::SystemTime;

use crate::http::request::Conditions;
use crate::http::syntax::is_ows;
use crate::util::date::{parse_http_date, unix_seconds};

/// A strong entity tag for a file version, stable across restarts: derived from inode, size
/// and mtime (seconds and nanoseconds), e.g. `"1a2b-400-6563a1f0.1c9c3800"` (quoted, hex
/// fields). Never panics on odd metadata (an mtime before 1970 is fine).
pub fn etag(metadata: &std::fs::Metadata) -> String {
    etag_from(
        metadata.ino(),
        metadata.size(),
        metadata.mtime(),
        metadata.mtime_nsec(),
    )
}

/// The pure core of [`etag`]: formats the four fields in hex between double quotes.
///
/// A negative `mtime` prints as its two's-complement bit pattern, which is still unique.
pub fn etag_from(ino: u64, size: u64, mtime: i64, mtime_nsec: i64) -> String {
    format!("\"{ino:x}-{size:x}-{mtime:x}.{mtime_nsec:x}\"")
}

/// The validators of the representation being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validators<'a> {
    /// Our entity tag, quoted, as sent in the `ETag` header (see [`etag`]).
    pub etag: &'a str,
    /// The file's modification time, as sent (truncated to seconds) in `Last-Modified`;
    /// `None` when unknown.
    pub last_modified: Option<SystemTime>,
}

/// What the preconditions decide for a GET or HEAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Serve normally (ranges may still apply).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

/// Evaluates preconditions in RFC 9110 §13.2.2 order for a GET or HEAD (we serve no other
/// method).
pub fn evaluate(conditions: &Conditions, validators: &Validators) -> Outcome {
    let if_unmodified_since = conditions.if_unmodified_since.as_deref();
    let if_modified_since = conditions.if_modified_since.as_deref();
    // Step 1, else step 2: the client wants exactly this version.
    if let Some(if_match) = &conditions.if_match {
        if !list_matches(if_match, validators.etag, Comparison::Strong) {
            return Outcome::PreconditionFailed;
        }
    } else if modified_since(if_unmodified_since, validators) == Some(true) {
        return Outcome::PreconditionFailed;
    }
    // Step 3, else step 4: the client already has a version; is it still current?
    if let Some(if_none_match) = &conditions.if_none_match {
        if list_matches(if_none_match, validators.etag, Comparison::Weak) {
            return Outcome::NotModified;
        }
    } else if modified_since(if_modified_since, validators) == Some(false) {
        return Outcome::NotModified;
    }
    Outcome::Proceed
}

/// Whether a Range request may be honoured given If-Range (§13.1.5): true when there is no
/// If-Range; with an entity tag, strong comparison with our etag (a weak tag never matches);
/// with a date, it must equal Last-Modified exactly (to the second). Invalid value -> false
/// (send the whole representation).
pub fn if_range_allows(conditions: &Conditions, validators: &Validators) -> bool {
    let Some(value) = conditions.if_range.as_deref() else {
        return true;
    };
    let value = value.trim_matches(is_ows);
    // §13.1.5: a tag starts with DQUOTE or `W/`; anything else must be an HTTP-date.
    if value.starts_with('"') || value.starts_with("W/") {
        return matches(value, validators.etag, Comparison::Strong);
    }
    match (parse_date(value), validators.last_modified) {
        (Some(date), Some(modified)) => unix_seconds(modified) == Some(date),
        _ => false,
    }
}

/// The two ways of comparing entity tags (RFC 9110 §8.8.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    /// Both tags strong and their opaque parts equal.
    Strong,
    /// Opaque parts equal; `W/` ignored on both sides.
    Weak,
}

/// An entity tag split into its parts, borrowing the header text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    /// Whether it carried the `W/` prefix.
    weak: bool,
    /// The characters between the quotes.
    opaque: &'a str,
}

/// Parses one entity tag, `"…"` or `W/"…"` (RFC 9110 §8.8.3); `None` if malformed.
fn parse_tag(text: &str) -> Option<EntityTag<'_>> {
    let (weak, quoted) = match text.strip_prefix("W/") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let opaque = quoted.strip_prefix('"')?.strip_suffix('"')?;
    // etagc = %x21 / %x23-7E / obs-text: no quotes, spaces or controls inside.
    let valid = opaque
        .bytes()
        .all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80);
    valid.then_some(EntityTag { weak, opaque })
}

/// Whether the tag `theirs` (header text) matches `ours` under `comparison`.
fn matches(theirs: &str, ours: &str, comparison: Comparison) -> bool {
    let (Some(theirs), Some(ours)) = (parse_tag(theirs), parse_tag(ours)) else {
        return false;
    };
    let strength_ok = match comparison {
        Comparison::Strong => !theirs.weak && !ours.weak,
        Comparison::Weak => true,
    };
    strength_ok && theirs.opaque == ours.opaque
}

/// Whether an `If-Match`/`If-None-Match` value (`*` or a tag list) matches `ours`.
fn list_matches(value: &str, ours: &str, comparison: Comparison) -> bool {
    // `*` matches any current representation, and we always have one.
    value.trim_matches(is_ows) == "*"
        || ListElements { rest: value }.any(|element| matches(element, ours, comparison))
}

/// Iterates over the trimmed, non-empty elements of a comma-separated list, treating commas
/// between double quotes as part of the element.
struct ListElements<'a> {
    /// The part of the field value not yet split.
    rest: &'a str,
}

impl<'a> Iterator for ListElements<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        while !self.rest.is_empty() {
            let mut in_quotes = false;
            let end = self
                .rest
                .bytes()
                .position(|b| {
                    in_quotes ^= b == b'"';
                    b == b',' && !in_quotes
                })
                .unwrap_or(self.rest.len());
            // `end` is the index of an ASCII comma or the length, so both are char boundaries.
            let element = self.rest[..end].trim_matches(is_ows);
            self.rest = self.rest.get(end + 1..).unwrap_or("");
            if !element.is_empty() {
                return Some(element);
            }
        }
        None
    }
}

/// Whether the representation changed after the HTTP-date in `field`, in whole seconds.
/// `None` when the field is absent or not a valid date, or Last-Modified is unknown: the
/// field is then ignored (RFC 9110 §13.1.3, §13.1.4).
fn modified_since(field: Option<&str>, validators: &Validators) -> Option<bool> {
    let date = parse_date(field?)?;
    Some(unix_seconds(validators.last_modified?)? > date)
}

/// Parses an HTTP-date (any of the three formats of RFC 9110 §5.6.7) into whole Unix seconds.
fn parse_date(text: &str) -> Option<i64> {
    unix_seconds(parse_http_date(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use std::time::UNIX_EPOCH;

    /// Our tag in these tests.
    const OURS: &str = "\"abc\"";
    /// Whole seconds of our file's mtime; the file itself is 0.7 s later.
    const MTIME_SECONDS: u64 = 1_700_000_000;
    /// `MTIME_SECONDS` as an HTTP-date: what we send in `Last-Modified`.
    const SAME: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    /// One second before `SAME`.
    const EARLIER: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    /// One second after `SAME`.
    const LATER: &str = "Tue, 14 Nov 2023 22:13:21 GMT";

    /// Validators of a file modified at `MTIME_SECONDS` + 0.7 s.
    fn validators() -> Validators<'static> {
        let mtime = Duration::from_millis(MTIME_SECONDS * 1000 + 700);
        Validators {
            etag: OURS,
            last_modified: Some(UNIX_EPOCH + mtime),
        }
    }

    /// Builds `Conditions` from `(field name, value)` pairs.
    fn conditions(fields: &[(&str, &str)]) -> Conditions {
        let mut conditions = Conditions::default();
        for &(name, value) in fields {
            let slot = match name {
                "If-Match" => &mut conditions.if_match,
                "If-None-Match" => &mut conditions.if_none_match,
                "If-Modified-Since" => &mut conditions.if_modified_since,
                "If-Unmodified-Since" => &mut conditions.if_unmodified_since,
                "If-Range" => &mut conditions.if_range,
                other => panic!("unknown field {other}"),
            };
            *slot = Some(value.to_string());
        }
        conditions
    }

    #[test]
    fn test_dates_are_what_we_send() {
        let last_modified = validators().last_modified.expect("set");
        assert_eq!(
            httpdate::fmt_http_date(last_modified),
            SAME,
            "0.7 s is cut off"
        );
        let second = |offset: u64| UNIX_EPOCH + Duration::from_secs(MTIME_SECONDS + offset);
        assert_eq!(httpdate::fmt_http_date(second(1)), LATER);
        assert_eq!(
            httpdate::fmt_http_date(second(0) - Duration::from_secs(1)),
            EARLIER
        );
    }

    /// One row of `evaluate_table`: name, request fields, expected outcome.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        Outcome,
    );

    #[test]
    fn evaluate_table() {
        use Outcome::{NotModified, PreconditionFailed as Failed, Proceed};
        #[rustfmt::skip]
        let cases: &[Case] = &[
            ("no conditions", &[], Proceed),
            // Step 1: If-Match, strong comparison.
            ("if-match ours", &[("If-Match", OURS)], Proceed),
            ("if-match star", &[("If-Match", "*")], Proceed),
            ("if-match other", &[("If-Match", "\"x\"")], Failed),
            ("if-match list", &[("If-Match", "\"x\" ,\t\"abc\"")], Proceed),
            ("if-match weak never matches", &[("If-Match", "W/\"abc\"")], Failed),
            ("if-match empty", &[("If-Match", "")], Failed),
            ("if-match garbage", &[("If-Match", "abc, \"ab")], Failed),
            ("if-match beats if-unmodified-since",
                &[("If-Match", OURS), ("If-Unmodified-Since", EARLIER)], Proceed),
            ("if-match failing beats if-none-match",
                &[("If-Match", "\"x\""), ("If-None-Match", OURS)], Failed),
            ("if-match passing, then if-none-match",
                &[("If-Match", OURS), ("If-None-Match", OURS)], NotModified),
            // Step 2: If-Unmodified-Since, only without If-Match.
            ("unmodified since same second", &[("If-Unmodified-Since", SAME)], Proceed),
            ("unmodified since later", &[("If-Unmodified-Since", LATER)], Proceed),
            ("unmodified since earlier", &[("If-Unmodified-Since", EARLIER)], Failed),
            ("unmodified since invalid", &[("If-Unmodified-Since", "yesterday")], Proceed),
            ("unmodified since failing beats if-none-match",
                &[("If-Unmodified-Since", EARLIER), ("If-None-Match", OURS)], Failed),
            // Step 3: If-None-Match, weak comparison.
            ("if-none-match ours", &[("If-None-Match", OURS)], NotModified),
            ("if-none-match star", &[("If-None-Match", "*")], NotModified),
            ("if-none-match weak", &[("If-None-Match", "W/\"abc\"")], NotModified),
            ("if-none-match list", &[("If-None-Match", "W/\"x\", \"y,z\" , W/\"abc\"")], NotModified),
            ("if-none-match comma in quotes", &[("If-None-Match", "\"abc,\"")], Proceed),
            ("if-none-match other", &[("If-None-Match", "\"x\", W/\"y\"")], Proceed),
            ("if-none-match is case-sensitive", &[("If-None-Match", "\"ABC\"")], Proceed),
            ("if-none-match lowercase w/", &[("If-None-Match", "w/\"abc\"")], Proceed),
            ("if-none-match beats if-modified-since",
                &[("If-None-Match", "\"x\""), ("If-Modified-Since", SAME)], Proceed),
            ("if-none-match matching, old date",
                &[("If-None-Match", OURS), ("If-Modified-Since", EARLIER)], NotModified),
            // Step 4: If-Modified-Since, only without If-None-Match.
            ("modified since same second", &[("If-Modified-Since", SAME)], NotModified),
            ("modified since later", &[("If-Modified-Since", LATER)], NotModified),
            ("modified since earlier", &[("If-Modified-Since", EARLIER)], Proceed),
            ("modified since invalid",
                &[("If-Modified-Since", "Tue, 99 Nov 2023 22:13:20 GMT")], Proceed),
            ("modified since, rfc850 form",
                &[("If-Modified-Since", "Tuesday, 14-Nov-23 22:13:20 GMT")], NotModified),
            ("modified since, asctime form",
                &[("If-Modified-Since", "Tue Nov 14 22:13:20 2023")], NotModified),
        ];
        for (name, fields, expected) in cases {
            assert_eq!(
                evaluate(&conditions(fields), &validators()),
                *expected,
                "{name}"
            );
        }
    }

    #[test]
    fn dates_need_a_known_last_modified() {
        let unknown = Validators {
            etag: OURS,
            last_modified: None,
        };
        for field in [
            ("If-Modified-Since", SAME),
            ("If-Unmodified-Since", EARLIER),
        ] {
            let outcome = evaluate(&conditions(&[field]), &unknown);
            assert_eq!(outcome, Outcome::Proceed, "{field:?}");
        }
        assert!(!if_range_allows(
            &conditions(&[("If-Range", SAME)]),
            &unknown
        ));
    }

    #[test]
    fn seconds_round_down() {
        assert_eq!(
            unix_seconds(validators().last_modified.expect("set")),
            Some(1_700_000_000)
        );
        assert_eq!(unix_seconds(UNIX_EPOCH), Some(0));
        assert_eq!(
            unix_seconds(UNIX_EPOCH - Duration::from_millis(300)),
            Some(-1)
        );
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(2)), Some(-2));
    }

    #[test]
    fn if_range_table() {
        #[rustfmt::skip]
        let cases: &[(&str, Option<&str>, bool)] = &[
            ("absent", None, true),
            ("our tag", Some(OURS), true),
            ("our tag with spaces", Some("  \"abc\" "), true),
            ("other tag", Some("\"x\""), false),
            ("weak tag never matches", Some("W/\"abc\""), false),
            ("a list is not allowed", Some("\"x\", \"abc\""), false),
            ("same second", Some(SAME), true),
            ("earlier date", Some(EARLIER), false),
            ("later date", Some(LATER), false),
            ("garbage", Some("yesterday"), false),
            ("empty", Some(""), false),
            ("unterminated tag", Some("\"abc"), false),
            ("star", Some("*"), false),
        ];
        for (name, value, expected) in cases {
            let fields: Vec<(&str, &str)> = value.iter().map(|v| ("If-Range", *v)).collect();
            let allowed = if_range_allows(&conditions(&fields), &validators());
            assert_eq!(allowed, *expected, "{name}");
        }
    }

    #[test]
    fn etag_is_stable_and_changes_with_every_field() {
        let base = etag_from(0x1a2b, 0x400, 0x6563_a1f0, 0x1c9c_3800);
        assert_eq!(base, "\"1a2b-400-6563a1f0.1c9c3800\"");
        assert_eq!(base, etag_from(0x1a2b, 0x400, 0x6563_a1f0, 0x1c9c_3800));
        let changed = [
            etag_from(0x1a2c, 0x400, 0x6563_a1f0, 0x1c9c_3800),
            etag_from(0x1a2b, 0x401, 0x6563_a1f0, 0x1c9c_3800),
            etag_from(0x1a2b, 0x400, 0x6563_a1f1, 0x1c9c_3800),
            etag_from(0x1a2b, 0x400, 0x6563_a1f0, 0x1c9c_3801),
        ];
        for other in &changed {
            assert_ne!(&base, other);
        }
        assert_ne!(etag_from(0, 0, -1, 0), etag_from(0, 0, 1, 0));
        let odd = [
            (0, 0, -1, 0),
            (u64::MAX, u64::MAX, i64::MIN, i64::MAX),
            (1, 2, 3, -4),
        ];
        for (ino, size, mtime, mtime_nsec) in odd {
            let tag = etag_from(ino, size, mtime, mtime_nsec);
            assert!(
                matches(&tag, &tag, Comparison::Strong),
                "{tag} is a valid strong tag"
            );
        }
    }

    #[test]
    fn etag_of_a_real_file() {
        let metadata = std::fs::metadata("Cargo.toml").expect("crate root file");
        let tag = etag(&metadata);
        assert_eq!(tag, etag(&metadata));
        assert!(matches(&tag, &tag, Comparison::Strong), "{tag}");
    }

    #[test]
    fn list_elements_respect_quotes() {
        #[rustfmt::skip]
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            (" , ,", &[]),
            ("\"a\"", &["\"a\""]),
            ("\"a\",\"b\"", &["\"a\"", "\"b\""]),
            (" \"a,b\" ,\tW/\"c\" ", &["\"a,b\"", "W/\"c\""]),
            ("\"a,", &["\"a,"]),
            ("x,,y", &["x", "y"]),
            ("é,ü", &["é", "ü"]),
        ];
        for (value, expected) in cases {
            let elements: Vec<&str> = ListElements { rest: value }.collect();
            assert_eq!(&elements, expected, "{value:?}");
        }
    }

    #[test]
    fn odd_values_never_panic() {
        #[rustfmt::skip]
        let odd = [
            "", "*", "**", ",", "\"", "\"\"", "W/", "W/\"", "W/\"\"", "\"a\"\"b\"", "\u{0}",
            "é\"ü,\"", "\"ä\"", "W/W/\"a\"", "Tue, 14 Nov 2023 22:13:20", "Sun, 06 Nov 1994, x",
        ];
        let century = Duration::from_secs(86_400 * 36_525);
        let early = Validators {
            etag: "\"\"",
            last_modified: Some(UNIX_EPOCH - century),
        };
        for value in odd {
            let all = Conditions {
                if_match: Some(value.to_string()),
                if_none_match: Some(value.to_string()),
                if_modified_since: Some(value.to_string()),
                if_unmodified_since: Some(value.to_string()),
                if_range: Some(value.to_string()),
            };
            for validators in [validators(), early] {
                let _ = evaluate(&all, &validators);
                let _ = if_range_allows(&all, &validators);
            }
        }
    }
}
