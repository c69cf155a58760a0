//! Standard output or standard error that nobody reads any more (a pipe
//! whose reader has gone, as in `epollo --help | head -1`) ends nothing with a panic: `--help`
//! and `--version` end quietly, a usage error still exits 2, and a server whose startup
//! line or log lines cannot be written serves on.

use crate::common::{Client, PATIENCE, TempDir, extra_flags, workers};
use std::io::{BufRead, BufReader, PipeReader, PipeWriter, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// The write end of a pipe whose read end is already closed: every write to it fails with
/// `EPIPE`, deterministically (no race with a reader that has not left yet).
fn broken_pipe() -> PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

/// Runs `epollo ARGS` to completion with `stdout` and `stderr` as given.
fn run_to_exit(args: &[&str], stdout: Stdio, stderr: Stdio) -> std::process::Output {
    let child = crate::common::spawn(
        Command::new(env!("CARGO_BIN_EXE_epollo"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr),
    )
    .unwrap();
    // The child cannot block: its outputs are a file-less broken pipe or pipes we read.
    child.wait_with_output().unwrap()
}

#[test]
fn help_and_version_into_a_closed_pipe_end_quietly() {
    for args in [&["--help"][..], &["-h"], &["--version"]] {
        let output = run_to_exit(args, Stdio::from(broken_pipe()), Stdio::piped());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}: nothing to say");
        assert_eq!(output.status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn a_usage_error_with_stderr_closed_still_exits_2() {
    let output = run_to_exit(
        &["--no-such-flag"],
        Stdio::piped(),
        Stdio::from(broken_pipe()),
    );
    // A panic would have exited 101 (its message lost in the closed pipe).
    assert_eq!(output.status.code(), Some(2));
}

/// A server on `root` and port 0, with `stdout` and `stderr` as given and `RUST_LOG=info`.
fn start_server(root: &std::path::Path, stdout: Stdio, stderr: Stdio) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_epollo"));
    command
        .arg(root)
        .args(["--port", "0", "--workers", &workers().to_string()]);
    for group in extra_flags() {
        command.args(group); // `EPOLLO_TEST_ARGS`, as every other server under test gets
    }
    command
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    crate::common::spawn(&mut command).unwrap()
}

/// Forwards each line read from `from` to the returned channel (until EOF).
fn lines_of(from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// The address in a `serving root=… addr=ADDR …` log line.
fn address_in_log_line(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once(" addr=")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn a_server_whose_stdout_reader_left_serves_on() {
    let dir = TempDir::new("closed-stdout");
    dir.write("hello.txt", "hello");
    let mut child = start_server(dir.path(), Stdio::from(broken_pipe()), Stdio::piped());
    let stderr = lines_of(child.stderr.take().unwrap());
    // The serving line names the address; the warning that the startup line could not be
    // printed says the server is past that point (and did not exit there).
    let (mut seen, mut addr, mut warned) = (Vec::new(), None, false);
    while addr.is_none() || !warned {
        let Ok(line) = stderr.recv_timeout(PATIENCE) else {
            let _ = child.kill();
            panic!("no serving line and warning; stderr: {seen:#?}");
        };
        addr = addr.or(address_in_log_line(&line));
        warned |= line.contains("the startup line was not printed");
        seen.push(line);
    }
    let addr = addr.expect("invariant: the loop ends with an address");
    let mut client = Client::connect(addr);
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let answered = client.response();
    let _ = child.kill();
    let _ = child.wait();
    let rest: Vec<String> = stderr.try_iter().collect();
    assert_eq!(answered.body, b"hello", "{seen:#?} {rest:#?}");
    let all = [seen, rest].concat().join("\n");
    assert!(!all.contains("panicked"), "{all}");
}

#[test]
fn a_server_whose_stderr_reader_left_serves_on_and_reports_statistics() {
    let dir = TempDir::new("closed-stderr");
    dir.write("hello.txt", "hello");
    let (stdout_reader, stdout_writer): (PipeReader, PipeWriter) = std::io::pipe().unwrap();
    let mut child = start_server(
        dir.path(),
        Stdio::from(stdout_writer),
        Stdio::from(broken_pipe()),
    );
    let stdout = lines_of(stdout_reader);
    let line = stdout.recv_timeout(PATIENCE).expect("the startup line");
    let addr = crate::common::address_in_startup_line(&line).expect("an address");
    // Log lines (the access line of every request, at info) and the SIGUSR1 statistics
    // all go to the closed stderr; the signal is queued before the requests connect.
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    for _ in 0..3 {
        let mut client = Client::connect(addr);
        client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        assert_eq!(client.response().body, b"hello");
    }
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let _ = child.kill();
    let _ = child.wait();
}
