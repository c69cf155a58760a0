//! `--live`: whether the reload script may go into a page at all: only if the page's
//! charset is one the script's bytes suit.
//!
//! Where this sits in the loop: `inject::inject` asks [`may_inject`] with the page's declared
//! type and its first bytes (no more than [`LIVE_PRESCAN_BYTES`]) before it splices anything.
//!
//! # Design notes
//! - **Only pages the script's bytes suit.** The script is ASCII: right for UTF-8 (and
//!   ASCII) pages, wrong for a UTF-16 page (a BOM) or a page declaring another charset, in
//!   its `Content-Type` or in a `<meta>` within the first 1,024 bytes (where browsers look,
//!   WHATWG HTML §13.2.3.2). Those are sent unchanged.

use crate::limits::LIVE_PRESCAN_BYTES;

/// Whether the reload script (ASCII) may go into a page of type `content_type` that starts
/// with `prefix`: no UTF-16 byte order mark, and no declared charset other than UTF-8 or
/// ASCII.
pub fn may_inject(content_type: &str, prefix: &[u8]) -> bool {
    if prefix.starts_with(&[0xFF, 0xFE]) || prefix.starts_with(&[0xFE, 0xFF]) {
        return false;
    }
    let declared = charset_in(content_type.as_bytes());
    if declared.is_some_and(|name| !is_utf8_or_ascii(name)) {
        return false;
    }
    let prefix = &prefix[..prefix.len().min(LIVE_PRESCAN_BYTES)];
    meta_tags(prefix).all(|tag| charset_in(tag).is_none_or(is_utf8_or_ascii))
}

/// Whether a charset name is UTF-8 or ASCII (which UTF-8 contains).
fn is_utf8_or_ascii(name: &[u8]) -> bool {
    ["utf-8", "utf8", "us-ascii", "ascii"]
        .iter()
        .any(|known| name.eq_ignore_ascii_case(known.as_bytes()))
}

/// The text of each `<meta ...>` tag in `bytes`.
fn meta_tags(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let start = find_ignoring_case(rest, b"<meta")?;
        let tag = &rest[start..];
        let end = tag.iter().position(|&b| b == b'>').unwrap_or(tag.len());
        rest = &tag[end..];
        Some(&tag[..end])
    })
}

/// The value after `charset=` in `text` (a `Content-Type` value or a `<meta>` tag), without
/// quotes.
fn charset_in(text: &[u8]) -> Option<&[u8]> {
    let at = find_ignoring_case(text, b"charset")?;
    let rest = text[at + b"charset".len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b"=")?.trim_ascii_start();
    let rest = rest
        .strip_prefix(b"\"")
        .or_else(|| rest.strip_prefix(b"'"))
        .unwrap_or(rest);
    let len = rest
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
        .unwrap_or(rest.len());
    Some(&rest[..len])
}

/// Where `needle` (lowercase) first occurs in `haystack`, ignoring ASCII case.
fn find_ignoring_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_utf8_or_ascii_pages_take_the_script() {
        // (name, Content-Type, start of the page, whether the script may go in)
        let cases: [(&str, &str, &[u8], bool); 9] = [
            ("utf-8", "text/html; charset=utf-8", b"<p>", true),
            ("undeclared", "text/html", b"<p>", true),
            ("utf-8 bom", "text/html", b"\xEF\xBB\xBF<p>", true),
            ("utf-16le bom", "text/html", b"\xFF\xFE<\0p\0", false),
            ("utf-16be bom", "text/html", b"\xFE\xFF\0<\0p", false),
            (
                "latin-1 type",
                "text/html; charset=ISO-8859-1",
                b"<p>",
                false,
            ),
            (
                "quoted ascii type",
                "text/html; charset=\"US-ASCII\"",
                b"<p>",
                true,
            ),
            (
                "meta",
                "text/html",
                b"<head><META charset='shift_jis'>",
                false,
            ),
            (
                "http-equiv",
                "text/html",
                b"<meta http-equiv=content-type content=\"text/html; charset=UTF-8\">",
                true,
            ),
        ];
        for (name, content_type, prefix, expected) in cases {
            assert_eq!(may_inject(content_type, prefix), expected, "{name}");
        }
    }
}
