//! `Accept-Encoding` negotiation (RFC 9110 §12.5.3) for precompressed siblings.
//!
//! Where this sits in the loop: when a GET or HEAD names a file and the request carries
//! `Accept-Encoding`, `files.rs` looks for `FILE.br` and `FILE.gz` beside it and asks
//! [`preferred`] which of those the client takes. No I/O here.
//!
//! # Design notes
//! We never compress on the fly (that would burn the loop's one core); we only serve what the
//! site's author compressed ahead of time, as nginx's `gzip_static` and `brotli_static` do.
//! A q-value of 0 means "not acceptable" (§12.4.2); `*` covers codings not named; `x-gzip`
//! is gzip (§8.4.1.3). On equal q-values brotli wins: it is smaller for text.

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

/// Parses `q=0.5` (case-insensitive `q`); anything malformed counts as absent.
fn q_value(param: &str) -> Option<f32> {
    let (key, value) = param.split_once('=')?;
    if !key.trim().eq_ignore_ascii_case("q") {
        return None;
    }
    let q: f32 = value.trim().parse().ok()?;
    (0.0..=1.0).contains(&q).then_some(q)
}

/// Of the `available` codings, the one the client prefers (highest q above 0; earlier in
/// [`SIBLINGS`] on ties), if any.
pub fn preferred(header: &str, available: &[&'static str]) -> Option<&'static str> {
    let mut best: Option<(&'static str, f32)> = None;
    for (coding, _) in SIBLINGS {
        if !available.contains(&coding) {
            continue;
        }
        let q = quality(header, coding);
        if q > 0.0 && best.is_none_or(|(_, best_q)| q > best_q) {
            best = Some((coding, q));
        }
    }
    best.map(|(coding, _)| coding)
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
    fn preference() {
        let both = ["br", "gzip"];
        assert_eq!(preferred("gzip, deflate, br, zstd", &both), Some("br"));
        assert_eq!(preferred("gzip, br;q=0.5", &both), Some("gzip"));
        assert_eq!(preferred("gzip;q=0, br;q=0", &both), None);
        assert_eq!(preferred("br", &["gzip"]), None);
        assert_eq!(preferred("gzip", &["gzip"]), Some("gzip"));
        assert_eq!(preferred("identity", &both), None);
    }
}
