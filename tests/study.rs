//! The study instruments: `--trace` lines, loop statistics (SIGUSR1, exit summary, `--stats`
//! pages), the edge-triggered mode's one registration per socket, and the fault-injection
//! flags doing what they say.

use crate::common::{TestServer, pattern};
use nix::sys::signal::Signal;
use std::fs;
use std::io::Read;

fn site(root: &std::path::Path) {
    fs::write(root.join("a.txt"), "hello").unwrap();
    fs::write(root.join("big.bin"), pattern(1 << 20)).unwrap();
}

/// The value of an unlabelled Prometheus sample.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .parse::<f64>()
        .unwrap() as u64
}

/// The lines of the trace (stderr lines whose second word is a trace line's kind).
fn trace_lines(stderr: &str) -> Vec<String> {
    const KINDS: [&str; 15] = [
        "epoll_wait",
        "close",
        "shutdown",
        "setsockopt",
        "read",
        "event",
        "epoll_ctl",
        "accept4",
        "recv",
        "send",
        "sendfile",
        "state",
        "deadline",
        "inotify",
        "ready",
    ];
    stderr
        .lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            let seconds = words.next().unwrap_or_default();
            let kind = words.next().unwrap_or_default();
            seconds.parse::<f64>().is_ok() && KINDS.contains(&kind)
        })
        .map(|line| line.split_once(' ').unwrap().1.to_string())
        .collect()
}

#[test]
fn trace_shows_one_request_as_syscall_named_lines() {
    // One worker whatever the suite runs with: lines carry a worker prefix with several.
    let mut server = TestServer::start_with(&["--trace", "--workers", "1"], site);
    let response = server.get("/a.txt");
    assert_eq!(response.status, 200);
    server.signal(Signal::SIGTERM);
    server.wait_exit();
    let lines = trace_lines(&server.stderr());
    let has = |prefix: &str| lines.iter().any(|line| line.starts_with(prefix));
    for prefix in [
        "epoll_ctl ADD fd=",
        "epoll_wait ready=1 timeout=-1 blocked=",
        "event fd=",
        "accept4 fd=",
        "recv fd=",
        "state conn=1 idle -> reading",
        "state conn=1 reading -> writing",
        "send fd=",
    ] {
        assert!(
            has(prefix),
            "no line starting {prefix:?} in:\n{}",
            lines.join("\n")
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("accept4 fd=") && l.contains(" conn=1 peer=127.0.0.1:")),
        "{lines:?}"
    );
}

#[test]
fn trace_conn_keeps_to_one_connection() {
    // One worker whatever the suite runs with: connection ids interleave across workers.
    let mut server = TestServer::start_with(&["--trace", "conn=2", "--workers", "1"], site);
    for _ in 0..3 {
        assert_eq!(server.get("/a.txt").status, 200);
    }
    server.signal(Signal::SIGTERM);
    server.wait_exit();
    let lines = trace_lines(&server.stderr());
    assert!(!lines.is_empty(), "nothing traced");
    for line in &lines {
        assert!(
            line.contains(" conn=2") || line.starts_with("epoll_wait "),
            "a line about something else: {line}"
        );
    }
    // The story includes the waits that woke this connection, each just before its events.
    assert!(
        lines.iter().any(|l| l.starts_with("epoll_wait ")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("close fd=")),
        "{lines:?}"
    );
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("epoll_wait ") {
            let next = lines.get(i + 1).map_or("", String::as_str);
            assert!(
                next.contains(" conn=2"),
                "a wait with nothing after it: {lines:?}"
            );
        }
    }
}

#[test]
fn sigusr1_prints_statistics_and_exit_prints_a_summary() {
    let mut server = TestServer::start_with(&[], site);
    for _ in 0..3 {
        assert_eq!(server.get("/a.txt").status, 200);
    }
    server.signal(Signal::SIGUSR1);
    server.signal(Signal::SIGTERM); // read after SIGUSR1: signalfd gives lower numbers first
    assert_eq!(server.wait_exit().code(), Some(0));
    let stderr = server.stderr();
    assert_eq!(
        stderr.matches("loop statistics (workers=").count(),
        2,
        "one on SIGUSR1, one at exit:\n{stderr}"
    );
    assert!(stderr.contains(" requests=3 "), "{stderr}");
    assert!(stderr.contains(" accepts=3 "), "{stderr}");
}

#[test]
fn stats_pages_serve_prometheus_json_and_a_live_page() {
    let server = TestServer::start_with(&["--stats", "/_stats"], site);
    for _ in 0..4 {
        assert_eq!(server.get("/a.txt").status, 200);
    }
    let metrics = server.get("/_stats/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = metrics.text();
    // Every sample line is `name{labels} value`, each family announced by HELP and TYPE.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(name.starts_with("epollo_"), "{line}");
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let family = name.split('{').next().unwrap();
        let family = family
            .strip_suffix("_bucket")
            .or_else(|| family.strip_suffix("_sum"))
            .or_else(|| family.strip_suffix("_count"))
            .unwrap_or(family);
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {line}"
        );
    }
    // Four files and this request, whichever worker answered it.
    assert!(metric(&text, "epollo_requests_total") >= 5 || crate::common::workers() > 1);
    assert!(metric(&text, "epollo_requests_total") >= 1);
    assert!(metric(&text, "epollo_wakeups_total") >= 1);

    let json = server.get("/_stats/json");
    assert_eq!(json.header("content-type"), Some("application/json"));
    let body = json.text();
    for key in [
        "\"counters\":{",
        "\"events_per_wakeup\":[",
        "\"connections\":{",
        "\"history\":[",
        "\"utilisation\":",
    ] {
        assert!(body.contains(key), "{key} missing from {body}");
    }
    let page = server.get("/_stats");
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().contains("/_stats/json"));
    assert!(
        !page.text().contains("<script src"),
        "the page loads nothing from elsewhere"
    );

    let post = server.raw(b"POST /_stats/metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(post.status, 405);
    assert_eq!(
        server.get("/_stats/other").status,
        404,
        "only the three pages"
    );
}

#[test]
fn without_stats_the_path_is_an_ordinary_404() {
    let server = TestServer::start_with(&[], site);
    assert_eq!(server.get("/_stats/metrics").status, 404);
}

#[test]
fn edge_triggered_registers_each_socket_once_even_for_large_answers() {
    // It sets the mode itself, counts short writes (so no write cap), and reads one worker's
    // counters, whatever the suite runs with.
    for (mode, expect_mods) in [("et", false), ("lt", true)] {
        let flags = ["--epoll", mode, "--stats", "/_stats", "--sndbuf", "4096"];
        let fixed = ["--max-write", "1048576", "--workers", "1"];
        let server = TestServer::start_with(&[&flags[..], &fixed[..]].concat(), site);
        let mut client = server.connect();
        for _ in 0..3 {
            client.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
            let response = client.response();
            assert_eq!(response.body.len(), 1 << 20);
        }
        let text = server.get("/_stats/metrics").text();
        let mods = metric(&text, "epollo_epoll_ctl_mod_total");
        assert_eq!(mods > 0, expect_mods, "--epoll {mode}: {mods} MODs\n{text}");
        // The small send buffer fills: short writes, then a writable event to go on.
        assert!(metric(&text, "epollo_writes_short_total") > 0, "{text}");
    }
}

#[test]
fn max_read_and_max_write_cap_every_call() {
    // One worker whatever the suite runs with: it reads one worker's counters.
    let server = TestServer::start_with(
        &[
            "--max-read",
            "3",
            "--max-write",
            "5",
            "--stats",
            "/_stats",
            "--workers",
            "1",
        ],
        site,
    );
    let request = b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut client = server.connect();
    client.send(request);
    let response = client.response();
    assert_eq!(response.text(), "hello");
    let text = server.get("/_stats/metrics").text();
    let reads = metric(&text, "epollo_reads_total");
    let writes = metric(&text, "epollo_writes_total");
    let copied = metric(&text, "epollo_bytes_copied_total");
    assert!(reads >= request.len() as u64 / 3, "{reads} reads");
    assert!(
        writes >= copied.div_ceil(5) - 1,
        "{writes} writes for {copied} bytes"
    );
    let mut rest = Vec::new();
    client
        .stream
        .set_read_timeout(Some(std::time::Duration::from_millis(50)))
        .unwrap();
    let _ = client.stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing beyond the answer");
}

/// `--short-writes` makes a send capped by `--max-write` report itself short, so the path
/// "socket full: wait for writability, then resume" shows in the trace on demand: level-
/// triggered through an `OUT` interest and event, edge-triggered through the ready list (no
/// edge comes for a socket that never filled). The download arrives whole either way.
#[test]
fn short_writes_drive_the_wait_for_writability_on_demand() {
    let body = crate::common::pattern(10_000);
    for (mode, resumed_by) in [("lt", "event fd="), ("et", "ready fd=")] {
        let flags = [
            "--trace",
            "--epoll",
            mode,
            "--max-write",
            "1000",
            "--short-writes",
            "--max-read",
            "16384",
            "--workers",
            "1",
        ];
        let fill = |root: &std::path::Path| std::fs::write(root.join("big.txt"), &body).unwrap();
        let mut server = TestServer::start_with(&flags, fill);
        assert_eq!(server.get("/big.txt").body, body, "{mode}");
        server.signal(Signal::SIGTERM);
        server.wait_exit();
        let lines = trace_lines(&server.stderr());
        let shorts: Vec<usize> = (0..lines.len())
            .filter(|&i| lines[i].starts_with("send ") && lines[i].ends_with(" short"))
            .collect();
        assert!(
            shorts.len() >= 9,
            "{mode}: {} short sends: {lines:?}",
            shorts.len()
        );
        let first = shorts[0];
        let resumed = lines[first..]
            .iter()
            .any(|l| l.starts_with(resumed_by) && l.contains(" conn="));
        assert!(resumed, "{mode}: never resumed by {resumed_by}: {lines:?}");
        if mode == "lt" {
            let waits_for_out = lines[first..]
                .iter()
                .any(|l| l.starts_with("epoll_ctl ") && l.ends_with(" OUT"));
            assert!(waits_for_out, "lt: no OUT interest: {lines:?}");
        }
    }
}

/// Keep-alive reuses are counted per request (three pipelined requests on one connection:
/// two reuses, where a count per batch said none), the stats pages count their own fetches,
/// and each second of history says what requests cost.
#[test]
fn reuses_are_counted_per_request_and_the_stats_count_their_own_fetches() {
    let server = TestServer::start_with(&["--stats", "/_stats", "--workers", "1"], site);
    let mut client = server.connect();
    client.send(&b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n".repeat(3));
    for _ in 0..3 {
        assert_eq!(client.response().status, 200);
    }
    let text = server.get("/_stats/metrics").text();
    assert_eq!(metric(&text, "epollo_keep_alive_reuses_total"), 2, "{text}");
    // (A stats page is counted once it is answered: this one, by the next.)
    assert_eq!(metric(&text, "epollo_stats_requests_total"), 0, "{text}");
    let json = server.get("/_stats/json").text();
    // The history's samples, once a second has passed, carry the per-request figures.
    for key in ["\"counters\":{", "\"stats_requests\":1"] {
        assert!(json.contains(key), "{key} missing from {json}");
    }
    let sample_keys = ["\"syscalls\":", "\"bytes\":", "\"events\":["];
    assert!(
        !json.contains("\"history\":[{") || sample_keys.iter().all(|key| json.contains(key)),
        "{json}"
    );
}
