//! `--live`: the script that listens for changes, and how it gets into a page: spliced
//! before the last `</body>` that is markup (or at the end), the answer built from the
//! injected bytes.

use std::io;
use std::rc::Rc;

use super::charset::may_inject;
use super::scan::Scanner;
use crate::http::reply::{Body, Content, Reply, Splice};
use crate::limits::{LIVE_MAX_INJECT_BYTES, LIVE_PRESCAN_BYTES, LIVE_SCAN_CHUNK_BYTES};
use crate::site::files::StaticFile;

/// The script added to HTML pages: listens to the event stream, swaps style sheets when
/// only CSS changed, reloads otherwise.
///
/// **One stream for all tabs.** A browser opens at most six connections to a site, and an
/// event stream holds one for as long as its tab is open: with a stream per tab, the seventh
/// tab of the site never loaded. So the tabs elect one leader with the Web Locks API (the
/// tab holding the lock `epollo-live`); only the leader opens the stream, and it passes each
/// event to the others over a `BroadcastChannel`. When the leader closes or reloads, its
/// lock is released and another tab takes it and opens the stream. (A WebSocket would not
/// count against the six, but needs a second protocol in the server; closing the streams of
/// hidden tabs still leaves six visible windows at most.) Where either API is missing (an
/// old browser, or a page opened by a LAN address, which is not a secure context), each tab
/// opens its own stream, as before.
const SCRIPT: &str = "<script>/* epollo --live */(function(){\
var c=window.BroadcastChannel&&new BroadcastChannel('epollo-live');\
function h(d){var p=d.split('\\n');\
if(p.length&&p.every(function(x){return /\\.css$/i.test(x)})){\
var n=Date.now();document.querySelectorAll('link[rel~=\"stylesheet\"]').forEach(function(l){\
var u=new URL(l.href);u.searchParams.set('epollo-live',n);l.href=u.href})}\
else{location.reload()}}\
function listen(){var s=new EventSource('/__epollo/live');\
s.addEventListener('change',function(e){if(c)c.postMessage(e.data);h(e.data)})}\
if(c)c.onmessage=function(e){h(e.data)};\
if(c&&navigator.locks){navigator.locks.request('epollo-live',function(){\
listen();return new Promise(function(){})})}else{listen()}})();</script>";

/// `reply` with the live-reload script before its `</body>`, if it is an HTML page we
/// generated (an error or redirect page): ours, so no scan is needed.
pub fn into_generated_page(mut reply: Reply) -> Reply {
    let html = reply
        .fields
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("text/html"));
    if let (true, Body::Bytes(page)) = (html, &mut reply.body) {
        add_script(page);
    }
    reply
}

/// Adds the live-reload script to a page (or a page's end) we generated: before its last
/// `</body>`, else at the end. Ours, so no scan for script or comment text is needed.
pub fn add_script(page: &mut Vec<u8>) {
    let at = page
        .windows(7)
        .rposition(|w| w == b"</body>")
        .unwrap_or(page.len());
    page.splice(at..at, SCRIPT.bytes());
}

/// `file` with the live-reload script in it, if it is an HTML page sent as it is in a
/// charset the script suits; otherwise `file` unchanged. The script sits at the end until
/// [`place_script`] finds its place (only a body that is sent needs it).
pub fn inject(file: StaticFile) -> StaticFile {
    let html = file.content_type.starts_with("text/html");
    if !html || file.encoding.is_some() || file.len > LIVE_MAX_INJECT_BYTES {
        return file;
    }
    let mut prefix = [0; LIVE_PRESCAN_BYTES];
    let Ok(read) = read_at(&file.content, &mut prefix, 0) else {
        return file;
    };
    if !may_inject(&file.content_type, &prefix[..read]) {
        return file;
    }
    let etag = match file.etag.strip_suffix('"') {
        Some(open) => format!("{open}-live\""),
        None => format!("{}-live", file.etag),
    };
    let splice = Splice {
        original: file.content.clone(),
        at: file.len,
        insert: SCRIPT.as_bytes(),
    };
    StaticFile {
        len: file.len + SCRIPT.len() as u64,
        content: Content::Spliced(Rc::new(splice)),
        etag: Rc::from(etag),
        head_fields: None, // described the page without the script
        ..file
    }
}

/// Moves an injected script to its place in the page: before the last `</body>` that is
/// markup, else the end. Reads the page through a small buffer (reading a regular file
/// blocks briefly: see `files.rs`); called only when the body is sent.
pub fn place_script(file: &mut StaticFile) {
    let Content::Spliced(splice) = &file.content else {
        return;
    };
    let len = file.len - splice.insert.len() as u64;
    let mut scanner = Scanner::default();
    let mut chunk = vec![0; LIVE_SCAN_CHUNK_BYTES.min(len as usize)];
    let mut offset = 0;
    while offset < len {
        match read_at(&splice.original, &mut chunk, offset) {
            Ok(0) => break, // it shrank: the answer will be cut short anyway
            Ok(read) => {
                scanner.feed(&chunk[..read]);
                offset += read as u64;
            }
            Err(e) => {
                log::warn!("--live: reading {} failed: {e}", file.path);
                break;
            }
        }
    }
    let at = scanner.place(len);
    let placed = Splice {
        original: splice.original.clone(),
        at,
        insert: splice.insert,
    };
    file.content = Content::Spliced(Rc::new(placed));
}

/// Reads content from `offset` into `buf`; returns how many bytes (fewer at the end).
fn read_at(content: &Content, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    match content {
        Content::Memory(bytes) => {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let part = &bytes[start..];
            let read = part.len().min(buf.len());
            buf[..read].copy_from_slice(&part[..read]);
            Ok(read)
        }
        Content::File(file) => crate::site::disk::read_at(file, buf, offset),
        Content::Spliced(_) => Err(io::ErrorKind::InvalidInput.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(text: &str, encoding: Option<&'static str>) -> StaticFile {
        StaticFile {
            content: Content::Memory(Rc::from(text.as_bytes())),
            len: text.len() as u64,
            modified: None,
            etag: Rc::from("\"abc\""),
            content_type: Rc::from("text/html; charset=utf-8"),
            encoding,
            path: Rc::from("index.html"),
            head_fields: None,
        }
    }

    /// The bytes an answer with the whole of `file` sends, after `place_script`.
    fn text(file: &StaticFile) -> String {
        let mut file = file.clone();
        place_script(&mut file);
        let whole = |content: &Content| match content {
            Content::Memory(bytes) => bytes.to_vec(),
            _ => panic!("the test pages are in memory"),
        };
        let bytes = match &file.content {
            Content::Spliced(splice) => {
                let mut bytes = whole(&splice.original);
                let at = splice.at as usize;
                bytes.splice(at..at, splice.insert.iter().copied());
                bytes
            }
            content => whole(content),
        };
        assert_eq!(bytes.len() as u64, file.len);
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn the_script_goes_before_the_last_body_close_and_the_validators_follow() {
        let file = inject(page("<p>x</p></BODY><!-- </body> --></html>", None));
        let body = text(&file);
        assert!(body.starts_with("<p>x</p><script>"), "{body}");
        assert!(
            body.ends_with("</script></BODY><!-- </body> --></html>"),
            "{body}"
        );
        assert_eq!(file.len as usize, body.len());
        assert_eq!(&*file.etag, "\"abc-live\"");
    }

    #[test]
    fn without_a_body_close_the_script_goes_at_the_end_and_siblings_are_left_alone() {
        let body = text(&inject(page("<h1>hi</h1>", None)));
        assert!(body.starts_with("<h1>hi</h1><script>") && body.ends_with("</script>"));
        let compressed = inject(page("\u{1f}\u{8b}...", Some("gzip")));
        assert_eq!(text(&compressed), "\u{1f}\u{8b}...");
        assert_eq!(&*compressed.etag, "\"abc\"");
        let mut latin = page("<meta charset=iso-8859-1><p>caf\u{e9}</p>", None);
        latin.content_type = Rc::from("text/html");
        let latin = inject(latin);
        assert_eq!(
            &*latin.etag, "\"abc\"",
            "a page in another charset is sent as it is"
        );
    }
}
