//! The fuzz harness shared by the cargo-fuzz target (`fuzz/fuzz_targets/request.rs`) and the
//! stable replay-and-mutate test (`tests/fuzz.rs`): request bytes in, through the real
//! `Connection` state machine over a socket pair, to response heads and a close decision out.
//!
//! The invariants checked on every input:
//! - nothing panics, and the connection finishes (closes) within a bounded number of events;
//! - the output is a sequence of well-formed responses: `HTTP/1.1 NNN Reason`, a `Date`,
//!   `Server` and `Content-Length`, a status we know;
//! - a response saying `Connection: close` is the last one;
//! - a refused head (408, 411, 413, 414, 431, 505) always closes;
//! - the answer to a first request that is a HEAD has no content, even when it is a refusal.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Instant;

use epollo::Config;
use epollo::connection::{Connection, Context};
use epollo::site::{Root, Site as Served};
use epollo::sys::epoll::Interest;

/// Most bytes of input we feed (larger inputs are cut): the socket pair must hold them all.
pub const MAX_INPUT: usize = 64 * 1024;

/// A small site to serve during fuzzing; removed on drop.
pub struct Site {
    dir: PathBuf,
    served: Served,
    config: Config,
}

impl Site {
    pub fn new() -> Site {
        let dir = std::env::temp_dir().join(format!("epollo-fuzz-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("index.html"), "<h1>home</h1>").unwrap();
        std::fs::write(dir.join("a.txt"), "aaa").unwrap();
        std::fs::write(dir.join("sub/index.html"), "sub").unwrap();
        std::fs::write(dir.join("big.bin"), vec![b'x'; 100_000]).unwrap();
        std::fs::write(dir.join("style.css"), "body{}").unwrap();
        std::fs::write(dir.join("style.css.gz"), "gz").unwrap();
        std::fs::write(dir.join("404.html"), "<p>lost</p>").unwrap();
        std::fs::create_dir_all(dir.join("list/inner")).unwrap();
        std::fs::write(dir.join("list/one.txt"), "1").unwrap();
        std::fs::write(dir.join("list/.hidden"), "h").unwrap();
        let root = Root::open(&dir, false).unwrap();
        let mut config = Config::default();
        config.request_limits.max_head_bytes = 4096;
        Site {
            dir,
            served: Served::new(root, config.site.clone(), &config.cache),
            config,
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Feeds `input` to a fresh connection (split at a point chosen by its first byte, to exercise
/// partial heads), then EOF, and returns everything the server wrote.
pub fn exchange(site: &Site, input: &[u8]) -> Vec<u8> {
    let input = &input[..input.len().min(MAX_INPUT)];
    let (server, mut client) = UnixStream::pair().unwrap();
    server.set_nonblocking(true).unwrap();
    client.set_nonblocking(true).unwrap();
    let now = Instant::now();
    let buffers = std::cell::RefCell::default();
    let study = epollo::study::Study::standalone(&site.config);
    let access_log = epollo::logs::AccessLog::open(
        Default::default(),
        Default::default(),
        Vec::new(),
        Default::default(),
    )
    .unwrap();
    let ctx = Context {
        now,
        wall_clock: std::time::SystemTime::now(),
        date: "Sun, 06 Nov 1994 08:49:37 GMT",
        config: &site.config,
        site: &site.served,
        shutting_down: false,
        buffers: &buffers,
        study: &study,
        access_log: &access_log,
        streams: &Default::default(),
        sendfile_step: epollo::limits::SENDFILE_STEP_BYTES,
    };
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    let mut connection = Connection::new(1, server, peer, now, &site.config);
    let split = input.first().map_or(0, |&b| b as usize % (input.len() + 1));
    let mut output = Vec::new();
    let mut scratch = vec![0u8; 16 * 1024];
    for (round, part) in [&input[..split], &input[split..]].into_iter().enumerate() {
        client.write_all(part).unwrap();
        if round == 1 {
            client.shutdown(Shutdown::Write).unwrap();
        }
        drive(
            &mut connection,
            &ctx,
            &mut client,
            &mut scratch,
            &mut output,
            round == 1,
        );
    }
    output
}

/// Runs the connection until it closes (last round) or stops making progress.
fn drive(
    connection: &mut Connection<UnixStream>,
    ctx: &Context,
    client: &mut UnixStream,
    scratch: &mut [u8],
    output: &mut Vec<u8>,
    last_round: bool,
) {
    for _ in 0..100_000 {
        // Each round is a loop pass: listings get a fresh share of the step budget.
        ctx.site.listings.new_pass();
        match connection.interest() {
            Some(Interest::Readable) => connection.on_readable(ctx, scratch),
            Some(Interest::Writable) => connection.on_writable(ctx),
            Some(Interest::Both) | None => return,
        }
        let before = output.len();
        drain(client, output);
        if !last_round
            && output.len() == before
            && connection.interest() == Some(Interest::Readable)
        {
            return; // waiting for more input
        }
    }
    panic!("the connection neither closed nor stopped after 100000 events");
}

/// Reads whatever the server has written so far.
fn drain(client: &mut UnixStream, output: &mut Vec<u8>) {
    let mut chunk = [0u8; 65536];
    loop {
        match client.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => output.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("reading the server's output failed: {e}"),
        }
    }
}

/// The statuses epollo may send.
const KNOWN: [u16; 19] = [
    200, 204, 206, 301, 304, 400, 403, 404, 405, 408, 411, 412, 413, 414, 416, 431, 500, 503, 505,
];

/// The first `max` characters of `bytes`, for failure messages.
pub fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    if bytes.len() > max {
        format!("{text}… ({} bytes)", bytes.len())
    } else {
        text
    }
}

/// Checks the output of one exchange against the invariants in the module docs.
pub fn check(input: &[u8], output: &[u8]) -> Result<(), String> {
    let mut first_answers_head = epollo::http::request::names_head(input);
    let mut rest = output;
    while !rest.is_empty() {
        let head_end = find(rest, b"\r\n\r\n").ok_or("a response head without its blank line")? + 4;
        let head =
            std::str::from_utf8(&rest[..head_end]).map_err(|_| "a head that is not UTF-8")?;
        let status: u16 = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line in {head:?}"))?;
        if !KNOWN.contains(&status) {
            return Err(format!("unexpected status {status}"));
        }
        for name in ["\r\nDate: ", "\r\nServer: epollo/"] {
            if !head.contains(name) {
                return Err(format!("missing {name:?} in {head:?}"));
            }
        }
        // 204 and 304 have no body and no Content-Length (RFC 9110 §8.6); all others have one.
        let bodiless = status == 204 || status == 304;
        let chunked = header(head, "Transfer-Encoding") == Some("chunked");
        let closes = header(head, "Connection") == Some("close");
        if !bodiless && !chunked && closes && header(head, "Content-Length").is_none() {
            return Ok(()); // content delimited by the close (HTTP/1.0): nothing follows it
        }
        let length: usize = match header(head, "Content-Length") {
            None if bodiless || chunked => 0,
            Some(_) if bodiless => return Err(format!("Content-Length on a {status}")),
            Some(_) if chunked => return Err("Content-Length with Transfer-Encoding".into()),
            value => value
                .and_then(|v| v.parse().ok())
                .ok_or("bad or missing Content-Length")?,
        };
        rest = &rest[head_end..];
        if chunked && !rest.is_empty() && !rest.starts_with(b"HTTP/1.1 ") {
            rest = skip_chunked(rest)?;
        }
        // Every answer to a HEAD, refusals included, has no content (RFC 9110 §9.3.2).
        if std::mem::take(&mut first_answers_head)
            && !rest.is_empty()
            && !rest.starts_with(b"HTTP/1.1 ")
        {
            return Err(format!(
                "content after the head of an answer to HEAD: {head:?}"
            ));
        }
        // A HEAD answer has no body: it is followed by the next status line or by nothing
        // (the bodies we serve never start like a status line).
        if !rest.is_empty() && !rest.starts_with(b"HTTP/1.1 ") {
            rest = rest
                .get(length..)
                .ok_or("a body shorter than its Content-Length")?;
        }
        // Framing refusals always close; a 400 may also be a well-framed request for a
        // malformed path, which keeps the connection.
        let refused = [408, 411, 413, 414, 431, 505].contains(&status);
        if refused && !closes {
            return Err(format!("a refused head ({status}) did not close"));
        }
        if closes && !rest.is_empty() {
            return Err("bytes after a Connection: close response".into());
        }
    }
    Ok(())
}

/// The bytes after a chunked body at the start of `bytes`.
fn skip_chunked(mut bytes: &[u8]) -> Result<&[u8], String> {
    loop {
        let line_end = find(bytes, b"\r\n").ok_or("a chunk size line without CRLF")?;
        let size = std::str::from_utf8(&bytes[..line_end])
            .ok()
            .and_then(|size| usize::from_str_radix(size, 16).ok())
            .ok_or("a bad chunk size")?;
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return bytes
                .strip_prefix(b"\r\n")
                .ok_or_else(|| "no CRLF after the last chunk".into());
        }
        bytes = bytes
            .get(size..)
            .and_then(|after| after.strip_prefix(b"\r\n"))
            .ok_or("a chunk shorter than its size")?;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}
