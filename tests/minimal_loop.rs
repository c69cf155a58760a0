//! Step 0 of the tour, `examples/minimal_loop.rs`, does what its page says: it answers, it
//! finishes an answer the socket could not take at once (partial writes), and `--trace`
//! prints epollo's line format.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::common::{Client, PATIENCE};

/// The example's binary, which `cargo test` builds beside the tests (`cargo test --test
/// tests` alone does not: then this says so, rather than test an old build).
fn binary() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_epollo")).with_file_name("examples/minimal_loop");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/minimal_loop.rs");
    let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    assert!(
        modified(&path) >= modified(&source) && modified(&path).is_some(),
        "examples/minimal_loop is not built, or older than its source: run `cargo test` \
         (or `cargo build --example minimal_loop`) first"
    );
    path
}

/// The example's process, killed when dropped (a failing test must not leave it running).
struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example, running with `args`, and its address.
fn start(args: &[&str]) -> (Example, SocketAddr) {
    let mut child = crate::common::spawn(
        Command::new(binary())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("minimal_loop listening on http://")
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (Example(child), addr)
}

#[test]
fn answers_to_a_reader_that_waits_arrive_whole() {
    let (mut child, addr) = start(&["--trace"]);
    let (lines, trace) = std::sync::mpsc::channel::<String>();
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    // One request at a time (the loop answers each blank line in a read), none of the answers
    // read, through a small receive window: the answers fill the socket, and a send comes
    // back short; the rest must go out as the client reads.
    let mut client = Client::connect_with_small_window(addr);
    let mut seen = Vec::new();
    let mut asked = 0;
    while !seen
        .iter()
        .any(|l: &String| l.contains(" send ") && l.ends_with(" short"))
    {
        assert!(asked < 5000, "no short send after {asked} requests");
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        asked += 1;
        loop {
            let line = trace
                .recv_timeout(PATIENCE)
                .expect("the loop answers each request");
            let answered = line.contains(" send "); // each request read is answered at once
            seen.push(line);
            if answered {
                break;
            }
        }
    }
    client.stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let expected = asked * 1312;
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    while got.len() < expected {
        let n = client
            .stream
            .read(&mut chunk)
            .expect("the answers keep coming");
        assert!(n > 0, "closed after {} of {expected} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(got.len(), expected);
    assert_eq!(
        got.windows(15).filter(|w| *w == b"HTTP/1.1 200 OK").count(),
        asked
    );
    drop(client);
    drop(child);
    seen.extend(trace.try_iter());
    // epollo's format: SECONDS WHAT key=value ...
    let words = ["epoll_wait", "accept4", "recv", "send", "close"];
    for line in &seen {
        let mut parts = line.split_whitespace();
        let seconds = parts.next().unwrap_or_default();
        let what = parts.next().unwrap_or_default();
        assert!(
            seconds.parse::<f64>().is_ok() && words.contains(&what),
            "{line:?} in {seen:?}"
        );
    }
}

#[test]
fn pipelined_requests_in_one_write_get_one_answer_each() {
    // As wrk's pipelining script sends them: the benchmark's ceiling for pipelining counts on
    // one answer per request, not per read.
    let (_child, addr) = start(&[]);
    let mut client = Client::connect(addr);
    client.send(&b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(16));
    client.stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let expected = 16 * 1312;
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    while got.len() < expected {
        let n = client.stream.read(&mut chunk).expect("all 16 answers come");
        assert!(n > 0, "closed after {} of {expected} bytes", got.len());
        got.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(
        got.windows(15).filter(|w| *w == b"HTTP/1.1 200 OK").count(),
        16
    );
}
