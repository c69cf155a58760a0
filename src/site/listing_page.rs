//! The HTML page of a directory listing: sorting, escaping, human sizes and UTC dates.
//!
//! Where this sits in the loop: when a GET or HEAD names a directory that has no
//! `index.html` and listings are enabled, `listing_stream.rs` reads the directory into
//! [`Entry`]s and sends the page in pieces: [`page_start`], a [`row`] per entry in
//! [`compare_entries`] order, and [`page_end`]. This module is a pure leaf: it never touches a
//! file or a socket, so every byte of the page can be unit-tested.
//!
//! # Design notes
//! **Every name is hostile.** A file name may contain `<script>`, quotes, `#`, `?`, `%` or
//! `javascript:`. Link text is HTML-escaped ([`html_escape`]). Each href is the name
//! percent-encoded as one path segment (everything but RFC 3986 `unreserved`, so `/`, `:`,
//! parentheses and every non-ASCII byte too), prefixed with `./` so that no name can ever be read as a scheme, and then
//! HTML-escaped for the attribute as well. That last step is redundant after encoding, but it
//! keeps the rule simple: everything that goes into HTML goes through [`html_escape`].
//!
//! **Relative links.** Hrefs are relative to the listed directory, so they are only right if
//! the page's URL ends with `/`; the caller redirects `/dir` to `/dir/` before listing
//! (nginx's autoindex and darkhttpd do the same). Relative links also keep the page correct
//! behind a reverse proxy that mounts the site under a prefix.
//!
//! **Dates.** The Modified column shows `YYYY-MM-DD HH:MM` in UTC for any file time (see
//! `util/date.rs` for why that one needs calendar code of its own); the exact IMF-fixdate
//! (RFC 9110 §5.6.7) goes into a `title` attribute for times in 1970..=9999.
//!
//! **No scripts, no external assets.** One small inline style sheet, light and dark through
//! `prefers-color-scheme`; the page works with scripts disabled and needs no second request.

use std::cmp::Ordering;
use std::time::SystemTime;

use crate::limits::MAX_LISTING_ENTRIES;
use crate::util::date::rfc3339;
use crate::util::date::{http_date, unix_seconds, utc_minutes};
use crate::util::escape::{self, json_string};
use percent_encoding::percent_encode;

/// One entry of a directory, as the caller found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The file name (one path segment, no `/`) as shown: bytes that are not UTF-8 as `\xHH`.
    pub name: String,
    /// The file name as a URL path segment: its bytes, percent-encoded.
    pub link: String,
    /// Whether the entry is a directory: it sorts first and links with a trailing `/`.
    pub is_dir: bool,
    /// The size in bytes; not shown for directories.
    pub size: u64,
    /// The last modification time, if the caller could read it.
    pub modified: Option<SystemTime>,
}

impl Entry {
    /// An entry for the file name `name` (its bytes: a file name need not be UTF-8).
    pub fn new(name: &[u8], is_dir: bool, size: u64, modified: Option<SystemTime>) -> Entry {
        Entry {
            name: escape::shown_name(name),
            link: percent_encode(name, escape::PATH_SEGMENT).to_string(),
            is_dir,
            size,
            modified,
        }
    }
}

/// What a listing is sorted by (`?sort=name|size|date`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    /// By name, case-insensitively (the default).
    #[default]
    Name,
    /// By size in bytes.
    Size,
    /// By modification time.
    Date,
}

/// A listing's order: directories always come first (as Apache's `FoldersFirst` and most
/// file managers do), then entries by `key`, ascending or descending, ties broken by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Order {
    /// The column sorted by.
    pub key: SortKey,
    /// `?order=desc`.
    pub descending: bool,
}

impl Order {
    /// Reads `sort=name|size|date` and `order=asc|desc` from a query string (without `?`);
    /// anything else keeps the default.
    pub fn from_query(query: &str) -> Order {
        let mut order = Order::default();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sort", "name")) => order.key = SortKey::Name,
                Some(("sort", "size")) => order.key = SortKey::Size,
                Some(("sort", "date")) => order.key = SortKey::Date,
                Some(("order", "desc")) => order.descending = true,
                Some(("order", "asc")) => order.descending = false,
                _ => {}
            }
        }
        order
    }

    /// A short name for the ETag: each order is its own representation.
    pub fn tag(self) -> &'static str {
        match (self.key, self.descending) {
            (SortKey::Name, false) => "",
            (SortKey::Name, true) => "-name-desc",
            (SortKey::Size, false) => "-size",
            (SortKey::Size, true) => "-size-desc",
            (SortKey::Date, false) => "-date",
            (SortKey::Date, true) => "-date-desc",
        }
    }
}

/// A listing's format: the HTML page, or JSON for scripts (`Accept: application/json`), as
/// nginx's `autoindex_format json` and Caddy's browse offer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// The page people read.
    #[default]
    Html,
    /// `{"path": …, "entries": [{"name", "type", "size", "mtime"}…], "truncated": …}` (a
    /// folder's size is `null`, as the page shows `-`).
    Json,
}

/// The inline style sheet: readable defaults, light and dark, right-aligned sizes.
const STYLE: &str = "\
:root{color-scheme:light dark;font-family:system-ui,sans-serif}\
body{max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.5}\
h1{font-size:1.25rem;overflow-wrap:anywhere}\
table{border-collapse:collapse;width:100%}\
th,td{padding:.2rem .6rem;text-align:left}\
th{border-bottom:1px solid #8886}\
td:first-child{overflow-wrap:anywhere;white-space:pre-wrap}\
td+td{white-space:nowrap}\
th:nth-child(2),td:nth-child(2){text-align:right}\
tbody tr:hover{background:#8882}\
a{color:#0550ae}\
@media(prefers-color-scheme:dark){body{background:#16181c;color:#d8dadd}a{color:#6cb6ff}}";

/// Binary units after bytes, in order; the last one takes everything up to `u64::MAX`.
const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// Renders the listing page of the directory whose decoded URL path is `url_path` (starts and
/// ends with '/', e.g. "/docs/my files/"). Sorts `entries` in place: directories first, then by
/// name (case-insensitive, then byte order as a tie-break).
///
/// The server sends a listing piece by piece ([`page_start`], a [`row`] per entry in
/// [`compare_entries`] order, [`page_end`]); this puts the pieces together at once.
#[cfg(test)]
pub fn render(url_path: &str, entries: &mut [Entry]) -> String {
    render_as(url_path, entries, Order::default(), Format::Html)
}

/// [`render`] in any order and format.
#[cfg(test)]
pub fn render_as(url_path: &str, entries: &mut [Entry], order: Order, format: Format) -> String {
    entries.sort_by(|a, b| compare_entries(order, a, b));
    let mut page = page_start(url_path, order, format);
    for (i, entry) in entries.iter().enumerate() {
        page.push_str(&row(entry, format, i == 0));
    }
    page.push_str(&page_end(false, format));
    page
}

/// The page up to the first entry: head, title, table head, and the parent link except at
/// the root. `url_path` is the decoded path of the directory, starting and ending with `/`.
pub fn page_start(url_path: &str, order: Order, format: Format) -> String {
    if format == Format::Json {
        return format!("{{\"path\":{},\"entries\":[", json_string(url_path));
    }
    let title = html_escape(url_path);
    let name = column_head("Name", SortKey::Name, order);
    let size = column_head("Size", SortKey::Size, order);
    let date = column_head("Modified", SortKey::Date, order);
    let mut page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Index of {title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>Index of {title}</h1>\n<table>\n\
         <thead><tr>{name}{size}{date}</tr></thead>\n<tbody>\n"
    );
    if url_path != "/" {
        page.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    page
}

/// A clickable column head: sorts by its column, ascending, or flips the order if the page
/// is already sorted by it; the current column shows an arrow. No script needed.
fn column_head(label: &str, key: SortKey, current: Order) -> String {
    let name = match key {
        SortKey::Name => "name",
        SortKey::Size => "size",
        SortKey::Date => "date",
    };
    let sorted_here = current.key == key;
    let next = if sorted_here && !current.descending {
        "desc"
    } else {
        "asc"
    };
    let arrow = match (sorted_here, current.descending) {
        (false, _) => "",
        (true, false) => " \u{25b2}",
        (true, true) => " \u{25bc}",
    };
    format!("<th><a href=\"?sort={name}&amp;order={next}\">{label}{arrow}</a></th>")
}

/// The page after the last entry; `truncated` says that the listing stopped at the limit.
pub fn page_end(truncated: bool, format: Format) -> String {
    if format == Format::Json {
        return format!("],\"truncated\":{truncated}}}\n");
    }
    let note = if truncated {
        format!(
            "<p>Only the first {MAX_LISTING_ENTRIES} entries of this directory are listed.</p>\n"
        )
    } else {
        String::new()
    };
    format!("</tbody>\n</table>\n{note}</body>\n</html>\n")
}

/// Escapes text for HTML element content and attribute values: & < > " ' .
pub fn html_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(ch),
        }
    }
    escaped
}

/// The listing order: directories first; then by the order's key (for names:
/// case-insensitively, then by bytes for names equal but for case), reversed if descending;
/// ties by name, so the order never depends on the input order.
pub fn compare_entries(order: Order, a: &Entry, b: &Entry) -> Ordering {
    let by_name = || {
        lowercase(&a.name)
            .cmp(lowercase(&b.name))
            .then_with(|| a.name.cmp(&b.name))
    };
    let by_key = match order.key {
        SortKey::Name => by_name(),
        SortKey::Size => a.size.cmp(&b.size),
        SortKey::Date => a.modified.cmp(&b.modified),
    };
    let by_key = if order.descending {
        by_key.reverse()
    } else {
        by_key
    };
    b.is_dir.cmp(&a.is_dir).then(by_key).then_with(by_name)
}

/// The characters of `name` in lower case, compared lazily so sorting allocates nothing.
fn lowercase(name: &str) -> impl Iterator<Item = char> + '_ {
    name.chars().flat_map(char::to_lowercase)
}

/// One entry: a `<tr>` (link, size, modification time), or a JSON object (preceded by a
/// comma unless it is the `first`).
pub fn row(entry: &Entry, format: Format, first: bool) -> String {
    match format {
        Format::Html => html_row(entry),
        Format::Json => {
            let comma = if first { "" } else { "," };
            format!("{comma}\n{}", json_row(entry))
        }
    }
}

/// `{"name":…,"type":"file"|"directory","size":N|null,"mtime":"RFC 3339"|null}`: the same
/// facts as the HTML row, where a folder's size is `-` (its block size means nothing here).
fn json_row(entry: &Entry) -> String {
    let kind = if entry.is_dir { "directory" } else { "file" };
    let mtime = match entry.modified.and_then(unix_seconds) {
        Some(seconds) => json_string(&rfc3339(seconds)),
        None => "null".to_string(),
    };
    let size = match entry.is_dir {
        true => "null".to_string(),
        false => entry.size.to_string(),
    };
    format!(
        "{{\"name\":{},\"url\":{},\"type\":\"{kind}\",\"size\":{size},\"mtime\":{mtime}}}",
        json_string(&entry.name),
        json_string(&entry.link),
    )
}

/// The `<tr>` of one entry: link, size and modification time.
fn html_row(entry: &Entry) -> String {
    let slash = if entry.is_dir { "/" } else { "" };
    let encoded = &entry.link;
    let href = html_escape(&format!("./{encoded}{slash}"));
    let text = html_escape(&entry.name);
    let size = if entry.is_dir {
        "<td>-</td>".to_owned()
    } else {
        let bytes = entry.size;
        format!("<td title=\"{bytes} bytes\">{}</td>", human_size(bytes))
    };
    let modified = match entry.modified.and_then(unix_seconds) {
        None => "<td>-</td>".to_owned(),
        Some(seconds) => match entry.modified.and_then(http_date) {
            Some(exact) => format!("<td title=\"{exact}\">{}</td>", utc_minutes(seconds)),
            None => format!("<td>{}</td>", utc_minutes(seconds)),
        },
    };
    format!("<tr><td><a href=\"{href}\">{text}{slash}</a></td>{size}{modified}</tr>\n")
}

/// A size for people: `123 B` under 1024 bytes, else one decimal in the smallest binary unit
/// that keeps the rounded number under 1024 (`1.5 KiB`, `12.0 MiB`, `16.0 EiB`).
fn human_size(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Tenths of a unit, rounded half up; u128 so `bytes * 10` cannot overflow.
    let mut divisor: u128 = 1;
    let mut tenths = 0;
    let mut unit = UNITS[0];
    for name in UNITS {
        divisor *= 1024;
        tenths = (u128::from(bytes) * 10 + divisor / 2) / divisor;
        unit = name;
        if tenths < 10_240 {
            break;
        }
    }
    format!("{}.{} {unit}", tenths / 10, tenths % 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn file(name: &str, size: u64) -> Entry {
        Entry::new(name.as_bytes(), false, size, None)
    }

    fn dir(name: &str) -> Entry {
        Entry {
            is_dir: true,
            ..file(name, 4096)
        }
    }

    fn at(seconds: i64) -> Option<SystemTime> {
        let magnitude = Duration::from_secs(seconds.unsigned_abs());
        if seconds >= 0 {
            UNIX_EPOCH.checked_add(magnitude)
        } else {
            UNIX_EPOCH.checked_sub(magnitude)
        }
    }

    /// The `<tr>` of the only entry, without the parent row.
    fn row_of(entry: Entry) -> String {
        let page = render("/", &mut [entry]);
        let start = page.find("<tbody>\n").expect("tbody") + "<tbody>\n".len();
        let end = page.find("</tbody>").expect("tbody end");
        page[start..end].to_owned()
    }

    #[test]
    fn sorts_directories_first_then_case_insensitive_names() {
        let mut entries = vec![
            file("b.txt", 1),
            dir("zeta"),
            file("B.txt", 1),
            file("a.txt", 1),
            dir("Alpha"),
            file("_x", 1),
            dir("beta"),
            file("A.txt", 1),
        ];
        render("/", &mut entries);
        let names: Vec<&str> = entries.iter().map(|entry| entry.name.as_str()).collect();
        let expected = [
            "Alpha", "beta", "zeta", "_x", "A.txt", "a.txt", "B.txt", "b.txt",
        ];
        assert_eq!(names, expected);
    }

    #[test]
    fn parent_link_only_below_the_root() {
        let cases = [
            ("/", false),
            ("/docs/", true),
            ("/a/b/", true),
            ("/my files/", true),
        ];
        for (url_path, has_parent) in cases {
            let page = render(url_path, &mut [file("x", 1)]);
            assert_eq!(page.contains("href=\"../\""), has_parent, "{url_path}");
            if has_parent {
                let parent = page.find("href=\"../\"").expect("parent");
                assert!(parent < page.find("href=\"./x\"").expect("x"), "{url_path}");
            }
        }
    }

    #[test]
    fn html_escape_table() {
        let cases = [
            ("plain", "plain"),
            ("", ""),
            ("<script>", "&lt;script&gt;"),
            ("a&b", "a&amp;b"),
            ("\"q\"", "&quot;q&quot;"),
            ("it's", "it&#39;s"),
            ("é&é", "é&amp;é"),
        ];
        for (input, expected) in cases {
            assert_eq!(html_escape(input), expected, "{input}");
        }
    }

    #[test]
    fn names_are_escaped_in_text_and_encoded_in_href() {
        // (name, is_dir, href, link text)
        let cases = [
            ("a.txt", false, "./a.txt", "a.txt"),
            ("my file", false, "./my%20file", "my file"),
            ("sub dir", true, "./sub%20dir/", "sub dir/"),
            ("a#b?c", false, "./a%23b%3Fc", "a#b?c"),
            ("100%", false, "./100%25", "100%"),
            ("%2e%2e", false, "./%252e%252e", "%2e%2e"),
            ("\"q\"'s", false, "./%22q%22%27s", "&quot;q&quot;&#39;s"),
            (
                "<script>alert(1)</script>",
                false,
                "./%3Cscript%3Ealert%281%29%3C%2Fscript%3E",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
            ),
            ("a&b", false, "./a%26b", "a&amp;b"),
            ("café", false, "./caf%C3%A9", "café"),
            (
                "javascript:alert(1)",
                false,
                "./javascript%3Aalert%281%29",
                "javascript:alert(1)",
            ),
            ("c:", true, "./c%3A/", "c:/"),
            ("tab\tnl\n", false, "./tab%09nl%0A", "tab\tnl\n"),
            ("`{}\\", false, "./%60%7B%7D%5C", "`{}\\"),
        ];
        for (name, is_dir, href, text) in cases {
            let entry = if is_dir { dir(name) } else { file(name, 1) };
            let row = row_of(entry);
            let link = format!("<a href=\"{href}\">{text}</a>");
            assert!(row.contains(&link), "{name:?}: {row}");
            assert!(!row.contains("<script"), "{name:?}: {row}");
        }
    }

    #[test]
    fn human_sizes_table() {
        let cases = [
            (0, "0 B"),
            (1, "1 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (1024 * 1024 - 1, "1.0 MiB"),
            (10 * 1024 * 1024, "10.0 MiB"),
            (12 * 1024 * 1024 + 1, "12.0 MiB"),
            (3_435_973_837, "3.2 GiB"),
            (1 << 40, "1.0 TiB"),
            (1 << 60, "1.0 EiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(human_size(bytes), expected, "{bytes}");
        }
    }

    #[test]
    fn size_cells_show_exact_bytes_and_directories_a_dash() {
        assert!(row_of(file("f", 1536)).contains("<td title=\"1536 bytes\">1.5 KiB</td>"));
        let max = format!("<td title=\"{} bytes\">16.0 EiB</td>", u64::MAX);
        assert!(row_of(file("f", u64::MAX)).contains(&max));
        assert!(row_of(dir("d")).contains("</a></td><td>-</td><td>-</td></tr>"));
    }

    #[test]
    fn modified_cells() {
        // (time, cell)
        let cases = [
            (None, "<td>-</td></tr>".to_owned()),
            (
                at(0),
                "<td title=\"Thu, 01 Jan 1970 00:00:00 GMT\">1970-01-01 00:00</td>".to_owned(),
            ),
            (
                at(951_782_400),
                "<td title=\"Tue, 29 Feb 2000 00:00:00 GMT\">2000-02-29 00:00</td>".to_owned(),
            ),
            (
                at(253_402_300_799),
                "<td title=\"Fri, 31 Dec 9999 23:59:59 GMT\">9999-12-31 23:59</td>".to_owned(),
            ),
            (at(253_402_300_800), "<td>10000-01-01 00:00</td>".to_owned()),
            (at(-1), "<td>1969-12-31 23:59</td>".to_owned()),
            (at(568_971_820_800), "<td>20000-01-01 00:00</td>".to_owned()),
            (
                UNIX_EPOCH.checked_sub(Duration::from_millis(500)),
                "<td>1969-12-31 23:59</td>".to_owned(),
            ),
        ];
        for (time, cell) in cases {
            let entry = Entry {
                modified: time,
                ..file("f", 1)
            };
            let row = row_of(entry);
            assert!(row.contains(&cell), "{time:?}: {row}");
        }
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let huge = Duration::from_secs(u64::MAX / 2);
        let times = [
            UNIX_EPOCH.checked_add(huge),
            UNIX_EPOCH.checked_sub(huge),
            UNIX_EPOCH.checked_sub(huge + Duration::from_nanos(1)),
            at(i64::MIN),
            at(i64::MAX),
        ];
        for time in times.into_iter().flatten() {
            let entry = Entry {
                modified: Some(time),
                ..file("f", 1)
            };
            assert!(row_of(entry).ends_with("</td></tr>\n"));
        }
    }

    #[test]
    fn page_structure_and_empty_directory() {
        let page = render("/empty/", &mut []);
        for part in [
            "<!DOCTYPE html>\n",
            "<meta charset=\"utf-8\">",
            "<meta name=\"viewport\"",
            "<title>Index of /empty/</title>",
            "<h1>Index of /empty/</h1>",
            "<th><a href=\"?sort=name&amp;order=desc\">Name \u{25b2}</a></th>\
             <th><a href=\"?sort=size&amp;order=asc\">Size</a></th>\
             <th><a href=\"?sort=date&amp;order=asc\">Modified</a></th>",
            "prefers-color-scheme:dark",
            "</html>\n",
        ] {
            assert!(page.contains(part), "{part}");
        }
        assert!(!page.contains("<script"));
        assert_eq!(page.matches("<tr>").count(), 2, "header and parent rows");
        assert!(page.len() < 2048, "{}", page.len());
    }

    #[test]
    fn url_path_is_escaped_in_title_and_heading() {
        let page = render("/<b>&\"x'/", &mut []);
        let shown = "/&lt;b&gt;&amp;&quot;x&#39;/";
        assert!(page.contains(&format!("<title>Index of {shown}</title>")));
        assert!(page.contains(&format!("<h1>Index of {shown}</h1>")));
        assert!(!page.contains("<b>"));
    }
}

#[cfg(test)]
mod order_and_format_tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(name: &str, is_dir: bool, size: u64, seconds: u64) -> Entry {
        let modified = Some(UNIX_EPOCH + Duration::from_secs(seconds));
        Entry::new(name.as_bytes(), is_dir, size, modified)
    }

    fn names(order: Order) -> Vec<String> {
        let mut entries = vec![
            entry("b.txt", false, 30, 100),
            entry("A.txt", false, 10, 300),
            entry("zdir", true, 0, 50),
            entry("c.txt", false, 20, 200),
            entry("adir", true, 0, 400),
        ];
        entries.sort_by(|a, b| compare_entries(order, a, b));
        entries.into_iter().map(|e| e.name).collect()
    }

    #[test]
    fn queries_choose_the_order_and_anything_else_keeps_the_default() {
        let table = [
            ("", Order::default()),
            (
                "sort=size",
                Order {
                    key: SortKey::Size,
                    descending: false,
                },
            ),
            (
                "sort=date&order=desc",
                Order {
                    key: SortKey::Date,
                    descending: true,
                },
            ),
            (
                "order=desc",
                Order {
                    key: SortKey::Name,
                    descending: true,
                },
            ),
            ("sort=evil&order=sideways", Order::default()),
        ];
        for (query, expected) in table {
            assert_eq!(Order::from_query(query), expected, "{query:?}");
        }
    }

    #[test]
    fn directories_come_first_in_every_order() {
        let order = |key, descending| Order { key, descending };
        assert_eq!(
            names(Order::default()),
            ["adir", "zdir", "A.txt", "b.txt", "c.txt"]
        );
        assert_eq!(
            names(order(SortKey::Name, true)),
            ["zdir", "adir", "c.txt", "b.txt", "A.txt"]
        );
        assert_eq!(
            names(order(SortKey::Size, false)),
            ["adir", "zdir", "A.txt", "c.txt", "b.txt"]
        );
        assert_eq!(
            names(order(SortKey::Size, true)),
            ["adir", "zdir", "b.txt", "c.txt", "A.txt"]
        );
        assert_eq!(
            names(order(SortKey::Date, true)),
            ["adir", "zdir", "A.txt", "c.txt", "b.txt"]
        );
    }

    #[test]
    fn column_heads_link_to_their_order_and_flip_the_current_one() {
        let page = page_start("/d/", Order::default(), Format::Html);
        assert!(
            page.contains("<a href=\"?sort=name&amp;order=desc\">Name \u{25b2}</a>"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"?sort=size&amp;order=asc\">Size</a>"),
            "{page}"
        );
        let page = page_start(
            "/d/",
            Order {
                key: SortKey::Date,
                descending: true,
            },
            Format::Html,
        );
        assert!(
            page.contains("<a href=\"?sort=date&amp;order=asc\">Modified \u{25bc}</a>"),
            "{page}"
        );
    }

    #[test]
    fn the_json_listing_escapes_names_and_dates_are_rfc_3339() {
        let mut entries = vec![
            entry("say \"hi\"\n.txt", false, 5, 1_764_569_291),
            entry("sub", true, 0, 0),
        ];
        let page = render_as("/a \"b\"/", &mut entries, Order::default(), Format::Json);
        assert_eq!(
            page,
            "{\"path\":\"/a \\\"b\\\"/\",\"entries\":[\n\
             {\"name\":\"sub\",\"url\":\"sub\",\"type\":\"directory\",\"size\":null,\"mtime\":\"1970-01-01T00:00:00Z\"},\n\
             {\"name\":\"say \\\"hi\\\"\\n.txt\",\"url\":\"say%20%22hi%22%0A.txt\",\"type\":\"file\",\"size\":5,\"mtime\":\"2025-12-01T06:08:11Z\"}],\"truncated\":false}\n"
        );
        let empty = render_as("/", &mut [], Order::default(), Format::Json);
        assert_eq!(
            empty,
            "{\"path\":\"/\",\"entries\":[],\"truncated\":false}\n"
        );
    }

    #[test]
    fn json_strings_escape_control_characters() {
        assert_eq!(json_string("a\u{1}b\\"), "\"a\\u0001b\\\\\"");
    }
}
