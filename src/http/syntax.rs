//! The character classes of HTTP's grammar (RFC 9110 §5.6) that more than one module needs.
//!
//! Where this sits in the loop: nowhere on its own; the range and precondition parsers trim
//! optional whitespace with [`is_ows`], and the flag parser checks `--header` names with
//! [`is_token_char`].

/// Optional whitespace (`OWS`, RFC 9110 §5.6.3): space or horizontal tab.
pub fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// A `tchar` (RFC 9110 §5.6.2): the characters a token, such as a field name, is made of.
pub fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_token_characters() {
        assert!(is_ows(' ') && is_ows('\t') && !is_ows('\n'));
        assert!("X-Frame-Options".chars().all(is_token_char));
        assert!(!"a b".chars().all(is_token_char) && !is_token_char(':'));
    }
}
