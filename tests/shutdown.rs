//! Lifecycle: a clean exit on SIGTERM/SIGINT that lets responses in flight finish, and one
//! clear line with a non-zero exit for anything unusable at startup.

use crate::common::{TestServer, pattern, runs_with};
use nix::sys::signal::Signal;
use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};

const BIG_LEN: usize = 32 * 1024 * 1024;

/// Under `--max-write 7` (fault injection) 32 MiB would take millions of `sendfile` calls,
/// longer than the shutdown grace; 1 MiB still crosses the signal.
fn big_len() -> usize {
    if runs_with("--max-write") {
        1024 * 1024
    } else {
        BIG_LEN
    }
}

#[test]
fn sigterm_finishes_the_download_in_flight_closes_idle_connections_and_exits_0() {
    let big_len = big_len();
    let mut server = TestServer::start_with(&[], |root| {
        fs::write(root.join("big.bin"), pattern(big_len)).unwrap();
        fs::write(root.join("a.txt"), "a").unwrap();
    });
    let mut idle = server.connect();
    idle.send(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(idle.response().status, 200);

    let mut downloading = server.connect();
    downloading.send(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut first = [0u8; 4096];
    downloading.stream.read_exact(&mut first).unwrap(); // the response is under way

    server.signal(Signal::SIGTERM);
    idle.expect_closed(); // the idle keep-alive connection is closed at once

    let mut rest = Vec::new();
    downloading.stream.read_to_end(&mut rest).unwrap(); // the server closes after the body
    let mut whole = first.to_vec();
    whole.extend_from_slice(&rest);
    let head_end = whole.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&whole[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    assert!(
        whole[head_end..] == pattern(big_len)[..],
        "the body in flight was cut short"
    );

    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", server.stderr());
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn sigint_exits_0() {
    let mut server = TestServer::start();
    server.signal(Signal::SIGINT);
    assert_eq!(server.wait_exit().code(), Some(0));
    assert!(server.stderr().contains("received SIGINT"));
}

fn epollo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_epollo"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run epollo")
}

/// Asserts a failed start: non-zero exit, the first stderr line is `epollo: error: …`
/// containing `needle`, and no panic or backtrace.
fn assert_start_fails(args: &[&str], needle: &str) {
    let output = epollo(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} started");
    let first = stderr
        .lines()
        .find(|l| l.starts_with("epollo: error:"))
        .unwrap_or_default();
    assert!(first.contains(needle), "{args:?}: stderr was {stderr:?}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout for a failed start"
    );
}

#[test]
fn unusable_flags_and_roots_fail_with_one_clear_line() {
    let dir = crate::common::TempDir::new("startup");
    let file = dir.write("file.txt", "x");
    let missing = dir.path().join("missing");
    assert_start_fails(&["--no-such-flag"], "--no-such-flag");
    // A typo gets a suggestion and a pointer to --help, not the help itself.
    assert_start_fails(
        &["--prot", "0"],
        "unknown flag --prot; did you mean --port?",
    );
    let typo = epollo(&["--prot", "0"]);
    let said = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(said.lines().count(), 2, "{said}");
    assert!(said.contains("epollo --help"), "{said}");
    assert_start_fails(&["--port", "http"], "--port");
    assert_start_fails(&["--port", "99999"], "--port");
    assert_start_fails(&["--bind", "not-an-ip"], "--bind");
    assert_start_fails(&[missing.to_str().unwrap(), "--port", "0"], "missing");
    assert_start_fails(&[file.to_str().unwrap(), "--port", "0"], "not a directory");
}

#[test]
fn a_port_in_use_fails_with_one_clear_line() {
    let server = TestServer::start();
    let port = server.addr.port().to_string();
    let root = server.root.to_str().unwrap().to_string();
    assert_start_fails(&[&root, "--port", &port], "cannot listen on");
}

#[test]
fn help_and_version_print_and_exit_0() {
    let help = epollo(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--keep-alive-timeout"));
    let version = epollo(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        concat!("epollo ", env!("CARGO_PKG_VERSION"))
    );
}
