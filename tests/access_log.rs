//! The access log: standard formats a strict parser (and goaccess, when installed) reads,
//! SIGHUP reopening for logrotate, client addresses from trusted proxies only, and a log that
//! cannot be written never stopping the server.

use crate::common::{PATIENCE, TestServer};
use nix::sys::signal::Signal;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

fn site(root: &Path) {
    fs::write(root.join("a.txt"), "hello").unwrap();
}

/// A combined-format line, parsed strictly: host, time, request, status, bytes, referer, agent.
#[derive(Debug, PartialEq)]
struct Combined {
    host: String,
    request: String,
    status: u16,
    bytes: Option<u64>,
    referer: String,
    agent: String,
}

/// Parses `host - - [dd/Mon/yyyy:hh:mm:ss +zzzz] "request" status bytes "referer" "agent"`
/// (the NCSA combined format), refusing anything else.
fn parse_combined(line: &str) -> Result<Combined, String> {
    let fail = |why: &str| Err(format!("{why}: {line:?}"));
    let Some((host, rest)) = line.split_once(" - - [") else {
        return fail("no ident/user");
    };
    let Some((time, rest)) = rest.split_once("] ") else {
        return fail("no time");
    };
    let time_ok = time.len() == 26
        && time.as_bytes()[2] == b'/'
        && time.as_bytes()[6] == b'/'
        && time.as_bytes()[11] == b':'
        && time.ends_with(" +0000")
        && [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .contains(&&time[3..6]);
    if !time_ok || host.parse::<std::net::IpAddr>().is_err() {
        return fail("bad host or time");
    }
    let (request, rest) = quoted(rest).ok_or("bad request field")?;
    let mut words = rest.trim_start().splitn(3, ' ');
    let status: u16 = words
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("bad status")?;
    let bytes = match words.next() {
        Some("-") => None,
        Some(n) => Some(n.parse().map_err(|_| "bad bytes")?),
        None => return fail("no bytes"),
    };
    let rest = words.next().ok_or("no referer")?;
    let (referer, rest) = quoted(rest).ok_or("bad referer")?;
    let (agent, rest) = quoted(rest.trim_start()).ok_or("bad agent")?;
    if !rest.is_empty() {
        return fail("trailing text");
    }
    Ok(Combined {
        host: host.into(),
        request,
        status,
        bytes,
        referer,
        agent,
    })
}

/// A `"…"` field with `\xHH` escapes and no raw quote inside; returns it and what follows.
fn quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let end = body.find('"')?;
    let value = &body[..end];
    if value.chars().any(|c| c.is_control()) {
        return None;
    }
    Some((value.to_string(), &body[end + 1..]))
}

/// Stops the server (so everything is written) and returns the log's lines.
fn lines_after_exit(mut server: TestServer, log: &Path) -> Vec<String> {
    server.signal(Signal::SIGTERM);
    server.wait_exit();
    fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_combined_log_parses_strictly_line_by_line() {
    let dir = crate::common::TempDir::new("access-log");
    let log = dir.path().join("access.log");
    let log_arg = log.to_str().unwrap().to_string();
    let server = TestServer::start_with(&["--access-log", &log_arg], site);
    server.raw(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nReferer: http://example.com/x\"y\r\nUser-Agent: curl/8 (\\test)\r\n\r\n");
    server.get("/missing");
    let mut head = server.connect();
    head.send(b"HEAD /a.txt HTTP/1.0\r\n\r\n");
    assert_eq!(head.head_response().status, 200);
    server.raw(b"GET /\x01\xff HTTP/1.1\r\nHost: t\r\n\r\n");
    let lines = lines_after_exit(server, &log);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    let parsed: Vec<Combined> = lines.iter().map(|l| parse_combined(l).unwrap()).collect();
    // With several workers, each writes its own lines: find them by request, not by position.
    let find = |start: &str| {
        parsed
            .iter()
            .find(|c| c.request.starts_with(start))
            .unwrap_or_else(|| panic!("no {start:?} in {parsed:#?}"))
    };
    let get = find("GET /a.txt ");
    assert_eq!(get.request, "GET /a.txt HTTP/1.1");
    assert_eq!((get.status, get.bytes), (200, Some(5)));
    assert_eq!(get.referer, "http://example.com/x\\x22y");
    assert_eq!(get.agent, "curl/8 (\\x5Ctest)");
    assert_eq!(get.host, "127.0.0.1");
    assert_eq!(find("GET /missing ").status, 404);
    let head = find("HEAD ");
    assert_eq!(
        (head.status, head.bytes, head.agent.as_str()),
        (200, None, "-")
    );
    assert_eq!(find("GET /\\x01").status, 400);

    // goaccess, if installed, reads every line too.
    let goaccess = Command::new("goaccess")
        .arg(&log)
        .args(["--log-format=COMBINED", "-o", "json"])
        .stdin(Stdio::null())
        .output();
    match goaccess {
        Ok(out) if out.status.success() => {
            let report = String::from_utf8_lossy(&out.stdout);
            assert!(
                report.contains("\"total_requests\": 4") || report.contains("\"total_requests\":4"),
                "{report}"
            );
            assert!(
                report.contains("\"failed_requests\": 0")
                    || report.contains("\"failed_requests\":0"),
                "{report}"
            );
        }
        Ok(out) => panic!("goaccess failed: {}", String::from_utf8_lossy(&out.stderr)),
        Err(_) => eprintln!("goaccess not installed; the strict parser alone checked the log"),
    }
}

#[test]
fn sighup_reopens_the_log_for_logrotate() {
    let dir = crate::common::TempDir::new("logrotate");
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let log_arg = log.to_str().unwrap().to_string();
    let server =
        TestServer::start_with(&["--access-log", &log_arg, "--log-format", "common"], site);
    server.get("/a.txt");
    // logrotate: move the file, then SIGHUP. Until the reopen, lines still go to the old one.
    let before = Instant::now();
    while fs::read_to_string(&log).unwrap_or_default().is_empty() {
        assert!(
            before.elapsed() < PATIENCE,
            "the first line never reached the log"
        );
        std::thread::yield_now();
    }
    fs::rename(&log, &rotated).unwrap();
    server.signal(Signal::SIGHUP);
    while !log.exists() {
        assert!(before.elapsed() < PATIENCE, "SIGHUP did not reopen the log");
        std::thread::yield_now();
    }
    server.get("/missing");
    let new_lines = lines_after_exit(server, &log);
    let old = fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("\"GET /a.txt HTTP/1.1\" 200 5"), "{old}");
    assert_eq!(new_lines.len(), 1, "{new_lines:?}");
    assert!(
        new_lines[0].contains("\"GET /missing HTTP/1.1\" 404 "),
        "{new_lines:?}"
    );
}

#[test]
fn forwarded_addresses_are_logged_only_from_trusted_proxies() {
    let dir = crate::common::TempDir::new("proxy-log");
    let log = dir.path().join("access.log");
    let log_arg = log.to_str().unwrap().to_string();
    let request =
        b"GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.9\r\n\r\n";
    for (trusted, expected) in [(true, "203.0.113.9"), (false, "127.0.0.1")] {
        let mut flags = vec!["--access-log", &log_arg, "--log-format", "json"];
        if trusted {
            flags.extend(["--trusted-proxy", "127.0.0.0/8"]);
        }
        let server = TestServer::start_with(&flags, site);
        server.raw(request);
        let lines = lines_after_exit(server, &log);
        let last = lines.last().unwrap();
        assert!(last.starts_with('{') && last.ends_with('}'), "{last}");
        assert!(
            last.contains(&format!("\"remote_addr\":\"{expected}\"")),
            "{last}"
        );
        assert!(
            last.contains("\"request\":\"GET /a.txt HTTP/1.1\",\"status\":200,\"body_bytes\":5"),
            "{last}"
        );
    }
}

#[test]
fn a_closed_log_pipe_never_stops_serving_and_off_logs_nothing() {
    let dir = crate::common::TempDir::new("closed-pipe");
    fs::write(dir.path().join("a.txt"), "hello").unwrap();
    let mut child = crate::common::spawn(
        Command::new(env!("CARGO_BIN_EXE_epollo"))
            .arg(dir.path())
            .args(["--port", "0", "--access-log", "-"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = crate::common::address_in_startup_line(&first).unwrap();
    let get = |client: &mut crate::common::Client| {
        client.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        client.response()
    };
    let mut client = crate::common::Client::connect(addr);
    assert_eq!(get(&mut client).status, 200);
    let mut logged = String::new();
    stdout.read_line(&mut logged).unwrap();
    assert!(
        logged.starts_with("127.0.0.1 - - ["),
        "the log line on stdout: {logged:?}"
    );
    drop(stdout); // the reader goes away: every later write gets EPIPE
    for _ in 0..50 {
        assert_eq!(get(&mut client).status, 200);
    }
    assert_eq!(
        get(&mut crate::common::Client::connect(addr)).body,
        b"hello"
    );
    let _ = child.kill();
    let _ = child.wait();

    let server = TestServer::start_with(&["--access-log", "off"], site);
    server.get("/a.txt");
    let mut server = server;
    server.signal(Signal::SIGTERM);
    server.wait_exit();
    assert!(
        !server.stderr().contains("\"GET /a.txt HTTP/1.1\""),
        "{}",
        server.stderr()
    );
}

#[test]
fn standard_output_may_be_a_socket_as_under_systemd() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let dir = crate::common::TempDir::new("stdout-socket");
    fs::write(dir.path().join("a.txt"), "hello").unwrap();
    // systemd connects a service's standard output to the journal through a socket, which
    // cannot be opened again by path: the log must still work.
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut child = crate::common::spawn(
        Command::new(env!("CARGO_BIN_EXE_epollo"))
            .arg(dir.path())
            .args(["--port", "0", "--access-log", "-", "--log-format", "common"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stderr(Stdio::null()),
    )
    .unwrap();
    ours.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut reader = BufReader::new(ours);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let addr = crate::common::address_in_startup_line(&first).unwrap();
    let mut client = crate::common::Client::connect(addr);
    client.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.response().status, 200);
    let mut logged = String::new();
    reader.read_line(&mut logged).unwrap();
    assert!(
        logged.contains("\"GET /a.txt HTTP/1.1\" 200 5"),
        "{logged:?}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.get_mut().read(&mut [0u8; 1]);
}

/// The log counts the bytes that were sent, as nginx's `$body_bytes_sent`
/// does: a download the client abandoned counts what it got, not the whole file, and a
/// listing (made as it is sent) counts its page, not 0. Tools like goaccess add these up.
#[test]
fn byte_counts_are_what_was_sent() {
    const BIG: usize = 8 * 1024 * 1024;
    let dir = crate::common::TempDir::new("sent-log");
    let log = dir.path().join("access.log");
    let log_arg = log.to_str().unwrap().to_string();
    let flags = [
        "--access-log",
        &log_arg,
        "--sndbuf",
        "4096",
        "--max-write",
        "65536",
    ];
    let server = TestServer::start_with(&flags, |root| {
        site(root);
        fs::write(root.join("big.bin"), crate::common::pattern(BIG)).unwrap();
        fs::create_dir(root.join("d")).unwrap();
        for n in 0..50 {
            fs::write(root.join(format!("d/file-{n}.txt")), "x").unwrap();
        }
    });
    let listing = server.get("/d/");
    assert_eq!(listing.status, 200);
    // Ask for the big file with a small receive window, read a little, and leave.
    let mut client = server.connect();
    client.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut some = [0u8; 4096];
    std::io::Read::read_exact(&mut client.stream, &mut some).unwrap();
    drop(client);
    server.assert_alive();
    let lines = lines_after_exit(server, &log);
    let bytes_of = |request: &str| {
        let line = lines.iter().find(|l| l.contains(request)).expect(request);
        parse_combined(line).unwrap().bytes
    };
    // The page, plus the chunked coding's framing, which nginx counts too.
    let listed = bytes_of("GET /d/ ").unwrap_or(0);
    let page = listing.body.len() as u64;
    assert!(
        (page..page + 64).contains(&listed),
        "listing: {listed} for a {page}-byte page"
    );
    let big = bytes_of("GET /big.bin ").unwrap_or(0);
    assert!(
        big > 0 && big < BIG as u64,
        "an abandoned download logged {big} of {BIG}"
    );
}

/// Bytes of invalid UTF-8 in a logged field are written as `\xHH` of the
/// bytes the client sent (as nginx does), not as U+FFFD, which says nothing of them.
#[test]
fn invalid_utf8_in_a_logged_field_is_escaped_as_its_bytes() {
    let dir = crate::common::TempDir::new("utf8-log");
    let log = dir.path().join("access.log");
    let log_arg = log.to_str().unwrap().to_string();
    let server = TestServer::start_with(&["--access-log", &log_arg], site);
    let mut client = server.connect();
    client.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nUser-Agent: bot \xff\xfe \xc3\xa9\r\n\r\n");
    assert_eq!(client.response().status, 200);
    drop(client);
    let lines = lines_after_exit(server, &log);
    let line = lines.iter().find(|l| l.contains("GET /a.txt")).unwrap();
    let parsed = parse_combined(line).unwrap();
    assert_eq!(parsed.agent, "bot \\xFF\\xFE \\xC3\\xA9", "{line}");
}
