//! `Accept-Encoding` negotiation (RFC 9110 §12.5.3) for precompressed siblings.
//!
//! Where this sits in the loop: when a GET or HEAD names a file and the request carries
//! `Accept-Encoding`, `files.rs` looks for `FILE.br` and `FILE.gz` beside it and asks
//! [`ranked`] which of those the client takes. No I/O here.
//!
//! # Design notes
//! We never compress on the fly (that would burn the loop's one core); we only serve what the
//! site's author compressed ahead of time, as nginx's `gzip_static` and `brotli_static` do.
//! A q-value of 0 means "not acceptable" (§12.4.2); `*` covers codings not named; `x-gzip`
//! is gzip (§8.4.1.3). On equal q-values brotli wins: it is smaller for text.

use crate::http::request::q_value;

/// The codings we can serve from siblings, best first, with the file suffix of each.
pub const SIBLINGS: [(&str, &str); 2] = [("br", ".br"), ("gzip", ".gz")];

/// The q-value `header` gives `coding`, from 0.0 (not acceptable) to 1.0.
pub fn quality(header: &str, coding: &str) -> f32 {
    let mut named = None;
    let mut wildcard = None;
    for element in header.split(',') {
        let mut parts = element.split(';');
        let name = parts.next().unwrap_or_default().trim();
        let q = parts.find_map(|param| q_value(param.trim())).unwrap_or(1.0);
        let same = name.eq_ignore_ascii_case(coding)
            || (coding == "gzip" && name.eq_ignore_ascii_case("x-gzip"));
        if same {
            named = Some(q);
        } else if name == "*" {
            wildcard = Some(q);
        }
    }
    named.or(wildcard).unwrap_or(0.0)
}

/// What an `Accept-Encoding` value means for the choice of sibling, as a short constant: the
/// codings we have siblings for that it accepts, best first (`"br,gzip"`, `"gzip"`, `""`).
/// The file cache keys on this rather than on the header, so that endless spellings of the
/// same preference are one entry.
pub fn preference(header: &str) -> &'static str {
    let (br, gzip) = (quality(header, "br"), quality(header, "gzip"));
    match (br > 0.0, gzip > 0.0) {
        (true, true) if gzip > br => "gzip,br",
        (true, true) => "br,gzip",
        (true, false) => "br",
        (false, true) => "gzip",
        (false, false) => "",
    }
}

/// The sibling codings the client accepts, best first (highest q; earlier in [`SIBLINGS`] on
/// ties), each with its file suffix.
pub fn ranked(header: &str) -> Vec<(&'static str, &'static str)> {
    let mut accepted: Vec<(&'static str, &'static str, f32)> = SIBLINGS
        .iter()
        .map(|&(coding, suffix)| (coding, suffix, quality(header, coding)))
        .filter(|&(_, _, q)| q > 0.0)
        .collect();
    // A stable sort keeps SIBLINGS order among equal q-values.
    accepted.sort_by(|a, b| b.2.total_cmp(&a.2));
    accepted
        .into_iter()
        .map(|(coding, suffix, _)| (coding, suffix))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values() {
        let table = [
            ("gzip, br", "gzip", 1.0),
            ("gzip;q=0.5, br", "gzip", 0.5),
            ("gzip;q=0", "gzip", 0.0),
            ("GZIP; Q=0.3", "gzip", 0.3),
            ("x-gzip", "gzip", 1.0),
            ("*", "br", 1.0),
            ("*;q=0.2, gzip", "br", 0.2),
            ("br;q=0, *", "br", 0.0),
            ("identity", "gzip", 0.0),
            ("", "gzip", 0.0),
            ("gzip;q=abc", "gzip", 1.0),
            ("gzip;q=2", "gzip", 1.0),
            (";;,,", "gzip", 0.0),
        ];
        for (header, coding, expected) in table {
            assert_eq!(quality(header, coding), expected, "{header:?} {coding}");
        }
    }

    #[test]
    fn ranking() {
        let names = |header: &str| {
            ranked(header)
                .into_iter()
                .map(|(c, _)| c)
                .collect::<Vec<_>>()
        };
        assert_eq!(names("gzip, deflate, br, zstd"), ["br", "gzip"]);
        assert_eq!(names("gzip, br;q=0.5"), ["gzip", "br"]);
        assert_eq!(names("gzip;q=0, br;q=0"), Vec::<&str>::new());
        assert_eq!(names("gzip"), ["gzip"]);
        assert_eq!(names("identity"), Vec::<&str>::new());
        assert_eq!(ranked("br")[0], ("br", ".br"));
    }

    #[test]
    fn preferences_are_few_whatever_the_spelling() {
        for (header, expected) in [
            ("gzip, deflate, br, zstd", "br,gzip"),
            ("br;q=0.5, gzip", "gzip,br"),
            ("GZIP", "gzip"),
            ("*", "br,gzip"),
            ("identity", ""),
            ("br;q=0", ""),
        ] {
            assert_eq!(preference(header), expected, "{header}");
        }
    }
}
