//! `--live`: where in an HTML page the reload script goes (whether it may go in at all is
//! `charset.rs`'s question).
//!
//! Where this sits in the loop: `inject::place_script`, only when a GET's body is sent, feeds
//! the page through a [`Scanner`] a chunk at a time and puts the script before the last
//! `</body>` it found in markup, or at the end.
//!
//! # Design notes
//! - **A tokenizer, not a search.** The last `</body>` in the bytes may sit in a comment, a
//!   `<script>` (in a JS string, say), a `<textarea>`, a `<style>`, a `<title>`, a CDATA
//!   section or an attribute value; a script put there would be shown as text or break the
//!   page. The scanner follows the states of the HTML tokenizer (WHATWG HTML §13.2.5) that
//!   decide what is markup: text, tags and their quoted attribute values, comments, bogus
//!   comments and the raw text of `script`, `style`, `textarea` and `title`, which ends only
//!   at its own end tag (so a `"</body>"` in a JS string is no end of anything).
//! - **Incremental.** The scanner keeps its state between chunks, so a large page is read
//!   through a small buffer instead of being copied whole.

/// An element whose content is text up to its own end tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Raw {
    /// `<script>`.
    Script,
    /// `<style>`.
    Style,
    /// `<textarea>`.
    Textarea,
    /// `<title>`.
    Title,
}

impl Raw {
    /// The element whose start tag is `name` (lowercase), if its content is raw text.
    fn of(name: &[u8]) -> Option<Raw> {
        match name {
            b"script" => Some(Raw::Script),
            b"style" => Some(Raw::Style),
            b"textarea" => Some(Raw::Textarea),
            b"title" => Some(Raw::Title),
            _ => None,
        }
    }

    /// The start of its end tag, which ends the raw text.
    fn end_tag(self) -> &'static [u8] {
        match self {
            Raw::Script => b"</script",
            Raw::Style => b"</style",
            Raw::Textarea => b"</textarea",
            Raw::Title => b"</title",
        }
    }
}

/// Longest tag name the scanner tells apart (`textarea`); longer ones are just "other".
const NAME_BYTES: usize = 8;

/// Where the scanner is in the markup.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Text.
    Data,
    /// After `<` (`end`: after `</`), which is at `start`.
    Open {
        /// Where the `<` is.
        start: u64,
        /// Whether a `/` followed it.
        end: bool,
    },
    /// In a tag's name.
    Name {
        /// Where the tag's `<` is.
        start: u64,
        /// An end tag.
        end: bool,
        /// The name so far, lowercase.
        name: [u8; NAME_BYTES],
        /// Its length (`NAME_BYTES + 1`: too long to matter).
        len: usize,
    },
    /// In a tag after its name, until `>`.
    Attributes {
        /// The quote of the attribute value we are in, if any.
        quote: Option<u8>,
        /// The last thing seen was `=` (so a quote starts a value).
        equals: bool,
        /// The raw-text element this start tag opens, if any.
        raw: Option<Raw>,
    },
    /// After `<!`: how much of `--` or `[CDATA[` matched.
    Bang {
        /// The prefix being matched, once its first byte chose it.
        prefix: Option<&'static [u8]>,
        /// Bytes of it matched.
        matched: usize,
    },
    /// In a comment; counts the `-` just before.
    Comment {
        /// Dashes just seen (at most 2 matter).
        dashes: u8,
    },
    /// In a CDATA section; counts the `]` just before.
    Cdata {
        /// Brackets just seen (at most 2 matter).
        brackets: u8,
    },
    /// In a bogus comment (`<?…>`, `<!DOCTYPE …>`, `</ …>`), until `>`.
    Bogus,
    /// In raw text, until its end tag; `matched` bytes of that tag seen.
    Raw {
        /// The element.
        raw: Raw,
        /// Bytes of its end tag matched so far.
        matched: usize,
    },
}

/// Finds the last `</body>` that is markup, fed a chunk at a time.
#[derive(Debug)]
pub struct Scanner {
    /// The state.
    mode: Mode,
    /// Bytes fed so far.
    position: u64,
    /// Where the last `</body>` in markup starts.
    last_body_end: Option<u64>,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            mode: Mode::Data,
            position: 0,
            last_body_end: None,
        }
    }
}

impl Scanner {
    /// Scans the next bytes of the page.
    pub fn feed(&mut self, chunk: &[u8]) {
        for &byte in chunk {
            self.mode = self.step(byte);
            self.position += 1;
        }
    }

    /// Where the script goes in a page of `len` bytes: before the last `</body>` in
    /// markup, or at the end.
    pub fn place(&self, len: u64) -> u64 {
        self.last_body_end.unwrap_or(len)
    }

    /// The state after `byte`.
    fn step(&mut self, byte: u8) -> Mode {
        let here = self.position;
        match self.mode {
            Mode::Data => data(byte, here),
            Mode::Open { start, end } => open(byte, start, end, here),
            Mode::Name {
                start,
                end,
                name,
                len,
            } => self.tag_name(byte, (start, end), name, len),
            Mode::Attributes { quote, equals, raw } => attributes(byte, quote, equals, raw),
            Mode::Bang { prefix, matched } => bang(byte, prefix, matched),
            Mode::Comment { dashes } => match byte {
                b'-' => Mode::Comment {
                    dashes: (dashes + 1).min(2),
                },
                b'>' if dashes == 2 => Mode::Data,
                _ => Mode::Comment { dashes: 0 },
            },
            Mode::Cdata { brackets } => match byte {
                b']' => Mode::Cdata {
                    brackets: (brackets + 1).min(2),
                },
                b'>' if brackets == 2 => Mode::Data,
                _ => Mode::Cdata { brackets: 0 },
            },
            Mode::Bogus if byte == b'>' => Mode::Data,
            Mode::Bogus => Mode::Bogus,
            Mode::Raw { raw, matched } => raw_text(byte, raw, matched),
        }
    }
}

impl Scanner {
    /// In a tag's name (`tag`: where its `<` is, and whether it is an end tag): a name
    /// ends at a space, `/` or `>`, and an end tag named `body` is a place for the script.
    fn tag_name(
        &mut self,
        byte: u8,
        tag: (u64, bool),
        mut name: [u8; NAME_BYTES],
        len: usize,
    ) -> Mode {
        let (start, end) = tag;
        if !(byte.is_ascii_whitespace() || byte == b'/' || byte == b'>') {
            if len < NAME_BYTES {
                name[len] = byte.to_ascii_lowercase();
            }
            let len = (len + 1).min(NAME_BYTES + 1);
            return Mode::Name {
                start,
                end,
                name,
                len,
            };
        }
        let name = name.get(..len).unwrap_or_default();
        if end && name == b"body" {
            self.last_body_end = Some(start);
        }
        let raw = if end { None } else { Raw::of(name) };
        if byte == b'>' {
            return after_tag(raw);
        }
        Mode::Attributes {
            quote: None,
            equals: false,
            raw,
        }
    }
}

/// Text: a `<` may open markup.
fn data(byte: u8, here: u64) -> Mode {
    if byte == b'<' {
        Mode::Open {
            start: here,
            end: false,
        }
    } else {
        Mode::Data
    }
}

/// After `<` or `</`.
fn open(byte: u8, start: u64, end: bool, here: u64) -> Mode {
    match byte {
        b'!' if !end => Mode::Bang {
            prefix: None,
            matched: 0,
        },
        b'/' if !end => Mode::Open { start, end: true },
        b'?' if !end => Mode::Bogus,
        b'>' if end => Mode::Data, // `</>` is dropped
        letter if letter.is_ascii_alphabetic() => {
            let mut name = [0; NAME_BYTES];
            name[0] = letter.to_ascii_lowercase();
            Mode::Name {
                start,
                end,
                name,
                len: 1,
            }
        }
        _ if end => Mode::Bogus,
        other => data(other, here), // a `<` that opens nothing is text
    }
}

/// In a tag after its name.
fn attributes(byte: u8, quote: Option<u8>, equals: bool, raw: Option<Raw>) -> Mode {
    let next = |quote, equals| Mode::Attributes { quote, equals, raw };
    match (quote, byte) {
        (Some(open), _) if byte == open => next(None, false),
        (Some(open), _) => next(Some(open), false),
        (None, b'>') => after_tag(raw),
        (None, b'"' | b'\'') if equals => next(Some(byte), false),
        (None, b'=') => next(None, true),
        (None, space) if space.is_ascii_whitespace() => next(None, equals),
        (None, _) => next(None, false),
    }
}

/// After a tag's `>`: text, or the raw text of the element it opened.
fn after_tag(raw: Option<Raw>) -> Mode {
    match raw {
        Some(raw) => Mode::Raw { raw, matched: 0 },
        None => Mode::Data,
    }
}

/// After `<!`: a comment (`<!--`), a CDATA section (`<![CDATA[`), or a bogus comment.
fn bang(byte: u8, prefix: Option<&'static [u8]>, matched: usize) -> Mode {
    let prefix = prefix.unwrap_or(match byte {
        b'-' => b"--",
        b'[' => b"[CDATA[",
        _ => {
            return if byte == b'>' {
                Mode::Data
            } else {
                Mode::Bogus
            };
        }
    });
    if prefix.get(matched) != Some(&byte) {
        return if byte == b'>' {
            Mode::Data
        } else {
            Mode::Bogus
        };
    }
    match (matched + 1 == prefix.len(), prefix) {
        (true, b"--") => Mode::Comment { dashes: 2 }, // so `<!-->` closes at once, as HTML says
        (true, _) => Mode::Cdata { brackets: 0 },
        (false, _) => Mode::Bang {
            prefix: Some(prefix),
            matched: matched + 1,
        },
    }
}

/// Raw text: only the element's own end tag ends it.
fn raw_text(byte: u8, raw: Raw, matched: usize) -> Mode {
    let tag = raw.end_tag();
    if matched == tag.len() {
        return match byte {
            b'>' => Mode::Data,
            b'/' => Mode::Attributes {
                quote: None,
                equals: false,
                raw: None,
            },
            space if space.is_ascii_whitespace() => Mode::Attributes {
                quote: None,
                equals: false,
                raw: None,
            },
            b'<' => Mode::Raw { raw, matched: 1 },
            _ => Mode::Raw { raw, matched: 0 },
        };
    }
    let matched = if byte.to_ascii_lowercase() == tag[matched] {
        matched + 1
    } else if byte == b'<' {
        1
    } else {
        0
    };
    Mode::Raw { raw, matched }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the script goes in `page`, scanned in chunks of `chunk` bytes.
    fn place(page: &str, chunk: usize) -> usize {
        let mut scanner = Scanner::default();
        for piece in page.as_bytes().chunks(chunk) {
            scanner.feed(piece);
        }
        scanner.place(page.len() as u64) as usize
    }

    #[test]
    fn the_script_goes_before_the_last_body_end_tag_in_markup() {
        // (name, page, what follows the script: "" for the end)
        let cases = [
            ("plain", "<p>x</p></body></html>", "</body></html>"),
            ("upper case", "<p>x</p></BODY ></html>", "</BODY ></html>"),
            ("the last", "</body>x</body>", "</body>"),
            ("none", "<h1>hi</h1>", ""),
            (
                "in a comment",
                "<p>a</p></body><!-- </body> -->",
                "</body><!-- </body> -->",
            ),
            ("abrupt comment", "<!--></body>", "</body>"),
            (
                "in a JS string",
                "</body><script>s='</body>'</script>",
                "</body><script>s='</body>'</script>",
            ),
            ("script ends", "<script>x</script ></body>", "</body>"),
            (
                "in a textarea",
                "</body><textarea></body></textarea>",
                "</body><textarea></body></textarea>",
            ),
            ("in a style", "<style>a{}</body></style>", ""),
            ("in a title", "<title></body></title>", ""),
            ("in an attribute", "<a title=\"</body>\">x</a>", ""),
            ("single quotes", "<a b='x>'></body>", "</body>"),
            ("apostrophe in a name", "<a b=it's></body>", "</body>"),
            ("in CDATA", "<![CDATA[</body>]]>", ""),
            ("in a doctype", "<!DOCTYPE html></body>", "</body>"),
            ("not a body end", "</bodyx></body2>", ""),
            ("lone lt", "a < b </body>", "</body>"),
            (
                "textarea not scripts",
                "<textarea><script></textarea></body>",
                "</body>",
            ),
            ("script self-closed", "<script/></body></script>", ""),
        ];
        for (name, page, tail) in cases {
            for chunk in [1, 3, page.len()] {
                let at = place(page, chunk);
                assert_eq!(&page[at..], tail, "{name} (chunks of {chunk})");
            }
        }
    }
}
