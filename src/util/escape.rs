//! URL escape sets, named for what they escape, for `percent_encoding::utf8_percent_encode`.
//!
//! Where this sits in the loop: `site/files.rs` re-encodes a decoded path into the `Location`
//! of a directory redirect, and `site/listing.rs` encodes each name into a link. Non-ASCII
//! bytes are always encoded by `utf8_percent_encode`, whatever the set.

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC};

/// Everything except RFC 3986 `unreserved` (`A-Z a-z 0-9 - . _ ~`): used where one decoded
/// path segment goes back into a URL. This is the conservative choice (nginx and Apache
/// encode as much): `/`, `?`, `#`, `%`, `:`, quotes, brackets and parentheses can never change
/// how a link or `Location` is read.
pub const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What must be escaped when a raw query, still percent-encoded, is copied into a `Location`:
/// controls, space and the characters that may not appear in a header's URI (so `%` stays).
pub const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');

/// Where [`log_text`] puts the bytes of invalid UTF-8: `U+10FF00 + byte`, in a private-use
/// plane no request field has reason to use.
const RAW_BYTE_BASE: u32 = 0x10_FF00;

/// Text for the access log from bytes a client sent, which may not be UTF-8: valid text as
/// it is, and each byte of an invalid sequence as a character of its own that the log
/// formats write back as `\xHH` (as nginx logs such bytes), instead of the U+FFFD a lossy
/// conversion would leave, which says nothing of what was sent.
pub fn log_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for &byte in chunk.invalid() {
            let stand_in = char::from_u32(RAW_BYTE_BASE + u32::from(byte));
            text.push(stand_in.expect("invariant: U+10FF00..=U+10FFFF are characters"));
        }
    }
    text
}

/// A name to show (a file name in a listing), from bytes that may not be UTF-8: valid text as
/// it is, each byte of an invalid sequence as the text `\xHH`, as `ls` and nginx's listings
/// show them.
pub fn shown_name(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for &byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02X}"));
        }
    }
    text
}

/// The byte a [`log_text`] character stands for, if it stands for one.
pub fn raw_byte(ch: char) -> Option<u8> {
    u32::from(ch)
        .checked_sub(RAW_BYTE_BASE)
        .and_then(|byte| u8::try_from(byte).ok())
}

/// A JSON string literal: quotes, backslashes and control characters escaped (and the bytes
/// of invalid UTF-8 a client sent, see [`log_text`], as the text `\xHH`).
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        if let Some(byte) = raw_byte(ch) {
            out.push_str(&format!("\\\\x{byte:02X}"));
            continue;
        }
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use percent_encoding::utf8_percent_encode;

    #[test]
    fn a_segment_keeps_only_unreserved_characters() {
        let table = [
            ("plain-name_1.txt~", "plain-name_1.txt~"),
            ("a b", "a%20b"),
            ("(x)", "%28x%29"),
            ("a/b?c#d%e", "a%2Fb%3Fc%23d%25e"),
            ("javascript:x", "javascript%3Ax"),
            ("é", "%C3%A9"),
            ("'\"<>&", "%27%22%3C%3E%26"),
        ];
        for (raw, encoded) in table {
            assert_eq!(utf8_percent_encode(raw, PATH_SEGMENT).to_string(), encoded);
        }
    }

    #[test]
    fn invalid_utf8_is_kept_byte_by_byte_for_the_log() {
        let text = log_text(b"ok \xff\xfe \xc3\xa9 \xe2\x82");
        let raw: Vec<Option<u8>> = text.chars().map(raw_byte).collect();
        assert_eq!(
            raw.iter().flatten().copied().collect::<Vec<u8>>(),
            [0xff, 0xfe, 0xe2, 0x82]
        );
        assert!(text.contains("é"), "valid text stays: {text}");
        assert_eq!(json_string(&log_text(b"a\xffb")), "\"a\\\\xFFb\"");
    }

    #[test]
    fn a_query_keeps_its_percent_escapes() {
        let encoded = utf8_percent_encode("a=%20b&c d", QUERY).to_string();
        assert_eq!(encoded, "a=%20b&c%20d");
    }
}
