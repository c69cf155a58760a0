//! `--live`: the reload script injected into HTML (with a length, ETag and ranges that
//! describe the injected bytes), the event stream and its events (coalesced, CSS named as
//! such), streams closed on shutdown, and 200 idle tabs costing no CPU.

use crate::common::{Client, PATIENCE, TempDir, TestServer};
use nix::sys::signal::Signal;
use std::fs;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

const PAGE: &str = "<!doctype html><html><head><link rel=stylesheet href=s.css></head><body><p>v1</p></body></html>";

fn site(root: &Path) {
    fs::write(root.join("index.html"), PAGE).unwrap();
    fs::write(root.join("s.css"), "p{color:red}").unwrap();
    fs::create_dir(root.join("sub")).unwrap();
}

/// Opens the event stream and reads its head.
fn open_stream(server: &TestServer) -> Client {
    open_stream_from(server, std::net::Ipv4Addr::LOCALHOST)
}

/// Opens the event stream from a given loopback address and reads its head.
fn open_stream_from(server: &TestServer, source: std::net::Ipv4Addr) -> Client {
    let mut client = Client::connect_from(server.addr, source);
    client.send(b"GET /__epollo/live HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n");
    let head = read_until(&mut client, "retry: 1000\n\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("Content-Type: text/event-stream\r\n"),
        "{head}"
    );
    client
}

/// Reads until `end` has arrived (bounded by the client's read timeout).
fn read_until(client: &mut Client, end: &str) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&got).ends_with(end) {
        match client.stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            other => panic!(
                "stream ended early ({other:?}): {}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8(got).unwrap()
}

#[test]
fn html_gets_the_script_and_its_validators_describe_the_injected_bytes() {
    let server = TestServer::start_with(&["--live"], site);
    let page = server.get("/");
    let body = page.text();
    assert!(body.contains("<p>v1</p><script>"), "before </body>: {body}");
    assert!(body.ends_with("</script></body></html>"), "{body}");
    assert!(body.contains("new EventSource('/__epollo/live')"));
    assert_eq!(
        page.header("content-length").unwrap(),
        body.len().to_string()
    );
    let etag = page.header("etag").unwrap().to_string();
    assert!(etag.ends_with("-live\""), "{etag}");
    // A range is a range of what is sent.
    let tail = server.raw(b"GET / HTTP/1.1\r\nHost: t\r\nRange: bytes=-14\r\n\r\n");
    assert_eq!(tail.status, 206);
    assert_eq!(tail.text(), "</body></html>");
    let revalidated = server
        .raw(format!("GET / HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes());
    assert_eq!(revalidated.status, 304);
    // CSS is not touched, and without --live nothing is. Under --live every file asks the
    // browser to revalidate, so a reload shows an edited script or image.
    let css = server.get("/s.css");
    assert_eq!(css.text(), "p{color:red}");
    assert_eq!(css.header("cache-control"), Some("no-cache"));
    let plain = TestServer::start_with(&[], site);
    assert_eq!(plain.get("/").text(), PAGE);
    assert_eq!(
        plain.get("/__epollo/live").status,
        404,
        "reserved only with --live"
    );
}
#[test]
fn the_script_goes_only_into_markup_and_only_into_utf8_pages() {
    let textarea = "<body><textarea></body></textarea></body><p>after</p><!-- </body> -->";
    let utf16 = b"\xFF\xFE<\0p\0>\0";
    let latin = b"<meta charset=\"windows-1252\"><body>caf\xe9</body>";
    let server = TestServer::start_with(&["--live"], |root| {
        fs::write(root.join("textarea.html"), textarea).unwrap();
        fs::write(root.join("utf16.html"), utf16).unwrap();
        fs::write(root.join("latin.html"), latin).unwrap();
    });
    let body = server.get("/textarea.html").text();
    let at = body.find("<script>").unwrap();
    assert_eq!(&body[..at], "<body><textarea></body></textarea>");
    assert!(
        body.ends_with("</script></body><p>after</p><!-- </body> -->"),
        "{body}"
    );
    for (path, bytes) in [("/utf16.html", &utf16[..]), ("/latin.html", &latin[..])] {
        let page = server.get(path);
        assert_eq!(page.body, bytes, "{path} is sent as it is");
        assert!(!page.header("etag").unwrap().contains("-live"), "{path}");
    }
}

#[test]
fn changes_become_one_event_per_burst_naming_the_paths() {
    let server = TestServer::start_with(&["--live"], site);
    let mut tab = open_stream(&server);
    // CSS alone: the page swaps its style sheets.
    fs::write(server.root.join("s.css"), "p{color:blue}").unwrap();
    assert_eq!(
        read_until(&mut tab, "\n\n"),
        "event: change\ndata: s.css\n\n"
    );
    // An editor's atomic save (temporary file, then a rename over the page), in a burst with
    // other writes: one event for all of it; the swap file is not named.
    fs::write(server.root.join(".index.html.swp"), "x").unwrap();
    fs::write(server.root.join("index.html.tmp"), PAGE.replace("v1", "v2")).unwrap();
    fs::rename(
        server.root.join("index.html.tmp"),
        server.root.join("index.html"),
    )
    .unwrap();
    fs::write(server.root.join("sub/new.html"), "new").unwrap();
    let event = read_until(&mut tab, "\n\n");
    assert!(event.starts_with("event: change\n"), "{event}");
    assert!(event.contains("data: index.html\n"), "{event}");
    assert!(!event.contains(".swp"), "{event}");
    assert_eq!(event.matches("event:").count(), 1);
    // A directory made after start is watched too.
    fs::create_dir(server.root.join("later")).unwrap();
    let _ = read_until(&mut tab, "\n\n"); // the directory itself
    fs::write(server.root.join("later/page.html"), "x").unwrap();
    let event = read_until(&mut tab, "\n\n");
    assert!(event.contains("data: later/page.html\n"), "{event}");
    // And the page sent next has the new content.
    assert!(server.get("/").text().contains("<p>v2</p>"));
}

#[test]
fn shutdown_closes_the_streams_and_exits() {
    let mut server = TestServer::start_with(&["--live"], site);
    let mut tab = open_stream(&server);
    server.signal(Signal::SIGTERM);
    let mut rest = Vec::new();
    tab.stream.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn two_hundred_idle_tabs_do_not_wake_the_loop() {
    // This measures the idle case: no fault injection, whatever the suite runs with, and
    // one worker (the others publish their counts only once a second).
    let flags = [
        "--live",
        "--max-read",
        "65536",
        "--max-write",
        "1048576",
        "--workers",
        "1",
    ];
    let server = TestServer::start_with(&flags, site);
    // From 13 addresses: one address may hold at most 16 streams.
    let tabs: Vec<Client> = (0..200)
        .map(|n| open_stream_from(&server, std::net::Ipv4Addr::new(127, 0, 1, n as u8 / 16)))
        .collect();
    let before = server.loop_wakeups();
    let started = Instant::now();
    // The measurement window (not synchronisation): nothing happens, on purpose.
    std::thread::sleep(Duration::from_secs(1));
    let wakeups = server.loop_wakeups() - before;
    assert!(started.elapsed() < PATIENCE);
    // Four deadline sweeps a second (and the SIGUSR1 that asks), whatever the tabs: no
    // wakeup per tab, no spin.
    assert!(
        wakeups <= 10,
        "the loop woke {wakeups} times in one idle second with 200 tabs"
    );
    drop(tabs);
}

/// Files epollo writes itself never reload a page. Here the root holds
/// the `--access-log` file and the server's stderr (the harness's `stderr.log`, written at
/// `RUST_LOG=debug` on every request and every event sent), as with `epollo --live . >
/// server.log 2>&1` run from the site's folder. Before, each request's log line was a change,
/// and each change event's own debug line another one: reloads without end.
#[test]
fn the_servers_own_log_files_in_the_root_are_not_changes() {
    let dir = TempDir::new("live-own-logs");
    let root = dir.path().to_path_buf(); // stderr.log is written here by the harness
    site(&root);
    let log = root.join("access.log");
    let flags = ["--live", "--access-log", log.to_str().unwrap()];
    let server = TestServer::start_on(dir, root, &flags);
    let mut tab = open_stream(&server);
    for _ in 0..5 {
        assert_eq!(server.get("/s.css").status, 200);
    }
    // The lines are in the file (the log is written once per loop pass): bounded wait on
    // the file itself, the only signal there is that the server wrote them.
    let started = Instant::now();
    while fs::read_to_string(&log).unwrap_or_default().lines().count() < 6 {
        assert!(
            started.elapsed() < PATIENCE,
            "the access log was not written"
        );
        std::thread::yield_now();
    }
    // The positive control: a real edit is the next event, and nothing came before it.
    fs::write(server.root.join("s.css"), "p{color:blue}").unwrap();
    assert_eq!(
        read_until(&mut tab, "\n\n"),
        "event: change\ndata: s.css\n\n"
    );
    // Sending that event was logged on stderr: still not a change.
    fs::write(server.root.join("index.html"), PAGE.replace("v1", "v2")).unwrap();
    assert_eq!(
        read_until(&mut tab, "\n\n"),
        "event: change\ndata: index.html\n\n"
    );
    // A rotation (rename, then SIGHUP reopens the name): the moved file, the name while it
    // is gone, and the new file are all ours.
    fs::rename(&log, server.root.join("access.log.1")).unwrap();
    server.signal(Signal::SIGHUP);
    let started = Instant::now();
    // A request answered by a worker that has not heard of the SIGHUP yet still goes to the
    // moved file: ask until one lands in the new one.
    while fs::read_to_string(&log).unwrap_or_default().is_empty() {
        assert_eq!(server.get("/s.css").status, 200);
        assert!(
            started.elapsed() < PATIENCE,
            "the access log was not reopened"
        );
        std::thread::yield_now();
    }
    fs::write(server.root.join("s.css"), "p{color:green}").unwrap();
    assert_eq!(
        read_until(&mut tab, "\n\n"),
        "event: change\ndata: s.css\n\n"
    );
}

/// A build that writes a hundred files gives one reload, after the
/// last write (a trailing wait); a stylesheet saved through a temporary file and a rename
/// (`sed -i`, JetBrains' safe write) is named as itself, so it is swapped, not reloaded;
/// node_modules (by default) and `--live-ignore` globs never reload. Each case ends with a
/// real edit whose event must be the next one: nothing else came before it.
#[test]
fn a_burst_gives_one_reload_a_temp_file_save_names_the_file_and_ignores_hold() {
    let server = TestServer::start_with(&["--live", "--live-ignore", "dist/**"], |root| {
        site(root);
        fs::create_dir(root.join("build")).unwrap();
        fs::create_dir_all(root.join("node_modules/pkg")).unwrap();
        fs::create_dir(root.join("dist")).unwrap();
    });
    let mut tab = open_stream(&server);
    // A build: 100 files, each written through a temporary name.
    for n in 0..100 {
        let temp = server.root.join(format!("build/.{n}.tmp"));
        fs::write(&temp, format!("part {n}")).unwrap();
        fs::rename(&temp, server.root.join(format!("build/part{n}.js"))).unwrap();
    }
    let event = read_until(&mut tab, "\n\n");
    assert!(event.starts_with("event: change\n"), "{event}");
    // Fifty names at most, then a line that makes the page reload; no temporary name.
    assert!(event.contains("data: build/part0.js\n"), "{event}");
    assert!(event.ends_with("data: (and more)\n\n"), "{event}");
    assert!(!event.contains(".tmp"), "{event}");
    // sed -i: a new file under a temporary name, renamed over the stylesheet.
    let temp = server.root.join("sedAbC123");
    fs::write(&temp, "p{color:green}").unwrap();
    fs::rename(&temp, server.root.join("s.css")).unwrap();
    assert_eq!(
        read_until(&mut tab, "\n\n"),
        "event: change\ndata: s.css\n\n"
    );
    // Ignored: a package manager's writes, and the --live-ignore glob.
    fs::write(server.root.join("node_modules/pkg/index.js"), "x").unwrap();
    fs::write(server.root.join("dist/app.js"), "x").unwrap();
    fs::write(server.root.join("index.html"), PAGE.replace("v1", "v3")).unwrap();
    assert_eq!(
        read_until(&mut tab, "\n\n"),
        "event: change\ndata: index.html\n\n"
    );
}

/// Every HTML page sent under --live reloads: the default 404 page, the
/// root's 404.html, a directory listing, and a page that has a precompressed sibling.
#[test]
fn every_html_page_gets_the_script_404s_listings_and_precompressed_pages_too() {
    let server = TestServer::start_with(&["--live"], |root| {
        site(root);
        fs::write(root.join("sub/a.txt"), "a").unwrap();
        fs::write(root.join("index.html.gz"), b"\x1f\x8b not really gzip").unwrap();
    });
    let has_script = |text: &str| text.contains("new EventSource('/__epollo/live')");
    let missing = server.get("/nope.html");
    assert_eq!(missing.status, 404);
    assert!(has_script(&missing.text()), "{}", missing.text());
    let listing = server.get("/sub/");
    assert_eq!(listing.status, 200);
    assert!(has_script(&listing.text()), "{}", listing.text());
    assert!(listing.text().ends_with("</script></body>\n</html>\n"));
    let gzip = server.raw(b"GET / HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!(gzip.header("content-encoding"), None);
    assert!(has_script(&gzip.text()), "{}", gzip.text());
    assert!(gzip.text().starts_with("<!doctype html>"));
    // The root's own 404 page, once it exists.
    fs::write(
        server.root.join("404.html"),
        "<html><body>lost</body></html>",
    )
    .unwrap();
    let custom = server.get("/nope.html");
    assert_eq!(custom.status, 404);
    assert!(
        custom.text().starts_with("<html><body>lost<script>"),
        "{}",
        custom.text()
    );
    assert_eq!(
        custom.header("content-length").unwrap(),
        custom.body.len().to_string()
    );
}
