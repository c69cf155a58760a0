//! What people serving a local folder meet first: the startup lines (reachable URLs when bound
//! to every interface), errors said once with what to do, and systemd socket activation.

use crate::common::{Client, TempDir, TestServer};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

/// Runs epollo with `args` until it fails to start; returns its stderr.
fn failed_start(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_epollo"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run epollo");
    assert!(!output.status.success(), "{args:?} started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn connections_get_the_congestion_control_asked_for_or_a_clear_error() {
    // reno is always built into the kernel; the listener is asked which one it gives.
    let server = TestServer::start_with(&["--congestion", "reno"], |_| {});
    assert!(
        server.stderr().contains(" congestion=reno"),
        "{}",
        server.stderr()
    );
    let system = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control").unwrap();
    let default = TestServer::start();
    let said = format!(" congestion={}", system.trim());
    assert!(default.stderr().contains(&said), "{}", default.stderr());

    let root = server.root.to_str().unwrap();
    let stderr = failed_start(&[root, "--port", "0", "--congestion", "nosuch"]);
    let lines: Vec<_> = stderr.lines().filter(|l| l.contains("nosuch")).collect();
    assert_eq!(lines.len(), 1, "once: {stderr}");
    assert!(
        lines[0].contains("the kernel offers: ") && lines[0].contains("reno"),
        "{stderr}"
    );
    let stderr = failed_start(&[root, "--port", "0", "--congestion", "no such"]);
    assert!(stderr.contains("not a congestion control name"), "{stderr}");
}

#[test]
fn startup_errors_are_said_once_and_say_what_to_do() {
    let server = TestServer::start();
    let port = server.addr.port().to_string();
    let root = server.root.to_str().unwrap().to_string();
    let stderr = failed_start(&[&root, "--port", &port]);
    assert_eq!(
        stderr.matches(&format!("port {port} is in use")).count(),
        1,
        "the port, once: {stderr}"
    );
    assert!(stderr.contains("--port 0"), "{stderr}");
    assert!(
        !stderr.contains("ERROR"),
        "no second, logged copy: {stderr}"
    );

    let dir = TempDir::new("startup-hints");
    let missing = dir.path().join("nowhere");
    let stderr = failed_start(&[missing.to_str().unwrap(), "--port", "0"]);
    assert_eq!(
        stderr.lines().filter(|l| l.contains("nowhere")).count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("first argument"), "{stderr}");
}

#[test]
fn bound_to_every_interface_it_prints_every_reachable_url() {
    let dir = TempDir::new("urls");
    std::fs::write(dir.path().join("index.html"), "hi").unwrap();
    let mut child = crate::common::spawn(
        Command::new(env!("CARGO_BIN_EXE_epollo"))
            .arg(dir.path())
            .args(["--bind", "0.0.0.0", "--port", "0"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port = first
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let local = lines.next().unwrap().unwrap();
    assert_eq!(local.trim(), format!("Local:   http://localhost:{port}/"));
    // Each Network line (if this machine has other interfaces) is a URL that answers.
    let _ = child.kill();
    let _ = child.wait();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    for line in rest
        .iter()
        .filter(|l| l.trim_start().starts_with("Network:"))
    {
        assert!(line.contains(&format!(":{port}/")), "{line}");
    }
}

#[test]
fn a_socket_passed_the_systemd_way_is_served_instead_of_binding() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Inheritable, as a service manager leaves it, while no other test starts a child.
    let passing = crate::common::passing_descriptors();
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(&listener, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    let dir = TempDir::new("activation");
    std::fs::write(dir.path().join("hello.txt"), "activated").unwrap();
    // The shell moves the socket to descriptor 3 and names its own pid, which `exec` keeps
    // (bash: dash takes only one-digit descriptors).
    let fd = listener.as_raw_fd();
    let move_to_3 = if fd == 3 {
        String::new()
    } else {
        format!("exec 3<&{fd}; exec {fd}<&-; ")
    };
    let script = format!("{move_to_3}LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$1\" --port 1");
    let mut child = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_epollo")])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(listener); // the server holds its own copy now
    drop(passing);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    if line.is_empty() {
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        panic!("epollo did not start: {stderr}");
    }
    assert!(
        line.contains(&format!("http://{addr}/")),
        "serves the passed socket: {line:?}"
    );
    let mut client = Client::connect(addr);
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.response().body, b"activated");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn systemd_socket_activate_starts_it_when_installed() {
    if !crate::common::tool_installed("systemd-socket-activate", "--help") {
        return;
    }
    // Pick a free port, then let systemd-socket-activate listen on it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("socket-activate");
    std::fs::write(dir.path().join("hello.txt"), "via systemd").unwrap();
    let mut child = crate::common::spawn(
        Command::new("systemd-socket-activate")
            .args([
                "-l",
                &format!("127.0.0.1:{port}"),
                env!("CARGO_BIN_EXE_epollo"),
            ])
            .arg(dir.path())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    )
    .unwrap();
    // It says "Listening on 127.0.0.1:PORT as 3." once the socket exists.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    stderr.read_line(&mut said).unwrap();
    assert!(said.contains("Listening on"), "{said}");
    // The socket exists before epollo does: the first connection starts it.
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut client = Client::connect(addr);
    client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.response().body, b"via systemd");
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts epollo with `--open` and a stand-in `xdg-open` (a shell `script` body) first on
/// PATH, its stderr going to `dir/stderr.log`; returns it and the URL it announced.
fn start_with_open(dir: &TempDir, script: &str) -> (std::process::Child, String) {
    let opener = dir.path().join("xdg-open");
    std::fs::write(&opener, format!("#!/bin/sh\n{script}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let root = dir.path().join("www");
    std::fs::create_dir(&root).unwrap();
    let mut child = crate::common::spawn(
        Command::new(env!("CARGO_BIN_EXE_epollo"))
            .arg(&root)
            .args(["--port", "0", "--open"])
            .env("PATH", path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap()),
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(" at ").next().unwrap().to_string();
    (child, url)
}

#[test]
fn open_asks_xdg_open_for_the_url_once_listening() {
    // A stand-in xdg-open that writes down what it was asked to open.
    let dir = TempDir::new("xdg-open");
    let asked = dir.path().join("asked.txt");
    let shown = asked.display();
    let (mut child, url) = start_with_open(
        &dir,
        &format!("echo \"$1\" > {shown}.tmp && mv {shown}.tmp {shown}"),
    );
    // xdg-open runs on its own; its file appearing (renamed into place whole) is the signal.
    let started = std::time::Instant::now();
    while !asked.exists() {
        assert!(
            started.elapsed() < crate::common::PATIENCE,
            "xdg-open was not run"
        );
        std::thread::yield_now();
    }
    assert_eq!(std::fs::read_to_string(&asked).unwrap().trim(), url);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn two_passed_sockets_are_both_served() {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let first = TcpListener::bind("127.0.0.1:0").unwrap();
    let second = TcpListener::bind("127.0.0.1:0").unwrap();
    // Inheritable, as a service manager leaves them, while no other test starts a child.
    let passing = crate::common::passing_descriptors();
    for listener in [&first, &second] {
        fcntl(listener, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    }
    let dir = TempDir::new("activation-two");
    std::fs::write(dir.path().join("hello.txt"), "both").unwrap();
    // Move them to 3 and 4 through spare numbers (100, 101), whatever they are now.
    let (a, b) = (first.as_raw_fd(), second.as_raw_fd());
    let script = format!(
        "exec 100<&{a} 101<&{b}; exec {a}<&- {b}<&-; exec 3<&100 4<&101; exec 100<&- 101<&-; \
         LISTEN_PID=$$ LISTEN_FDS=2 exec \"$0\" \"$1\""
    );
    let mut child = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_epollo")])
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addrs = [first.local_addr().unwrap(), second.local_addr().unwrap()];
    drop((first, second));
    drop(passing);
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.is_empty() {
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        panic!("epollo did not start: {stderr}");
    }
    for addr in addrs {
        let mut client = Client::connect(addr);
        client.send(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(client.response().body, b"both", "{addr}");
    }
    // Both in one loop: no thread was added for the second socket.
    let threads = std::fs::read_dir(format!("/proc/{}/task", child.id()))
        .unwrap()
        .count();
    assert_eq!(threads, 1, "one thread serves both sockets");
    let _ = child.kill();
    let _ = child.wait();
}

/// Where xdg-open cannot open anything (no display), epollo says so and
/// where to go instead, and reaps it: no zombie is left behind.
#[test]
fn open_without_a_display_says_so_and_leaves_no_zombie() {
    // A stand-in xdg-open that fails as the real one does with no display.
    let dir = TempDir::new("xdg-open-fails");
    let log = dir.path().join("stderr.log");
    let (mut child, url) = start_with_open(&dir, "exit 3");
    // The warning is written once the helper has been reaped: it is the signal.
    let started = std::time::Instant::now();
    let said = loop {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        if said.contains("nothing was opened") {
            break said;
        }
        assert!(
            started.elapsed() < crate::common::PATIENCE,
            "no word of the failed xdg-open: {said}"
        );
        std::thread::yield_now();
    };
    assert!(said.contains(&url), "the warning names the URL: {said}");
    let pid = child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    assert!(children.trim().is_empty(), "children left: {children}");
    let _ = child.kill();
    let _ = child.wait();
}

/// With no ROOT, an installed epollo serves the directory it runs in, and
/// the startup line says so; in epollo's own checkout (`cargo run --release`), the demo site.
#[test]
fn with_no_root_the_current_directory_is_served_except_in_the_checkout() {
    let serves = |cwd: &std::path::Path| {
        let mut child = crate::common::spawn(
            Command::new(env!("CARGO_BIN_EXE_epollo"))
                .args(["--port", "0"])
                .current_dir(cwd)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        )
        .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = crate::common::address_in_startup_line(&line).expect(&line);
        let mut client = crate::common::Client::connect(addr);
        client.send(b"GET /which.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        let body = client.response().text();
        let _ = child.kill();
        let _ = child.wait();
        (line, body)
    };
    let anywhere = TempDir::new("cwd");
    anywhere.write("which.txt", "the current directory");
    let (line, body) = serves(anywhere.path());
    assert_eq!(body, "the current directory");
    assert!(line.starts_with("epollo: serving . at "), "{line}");

    let checkout = TempDir::new("checkout");
    checkout.write("Cargo.toml", "[package]\nname = \"epollo\"\n");
    checkout.write("which.txt", "the checkout itself");
    checkout.write("www/which.txt", "the demo site");
    let (line, body) = serves(checkout.path());
    assert_eq!(body, "the demo site");
    assert!(line.starts_with("epollo: serving ./www at "), "{line}");
}
