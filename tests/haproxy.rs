//! The load-balancer setup in `docs/deployment.md`, run for real when HAProxy is installed:
//! two epollo instances behind HAProxy with health checks; the log records the client HAProxy
//! names in `X-Forwarded-For` (trusted), and when one instance dies the other serves
//! everything. And a client cannot name itself: forwarding fields it sends pass through
//! HAProxy untouched, and must not be believed.

use crate::common::{Client, PATIENCE, TempDir, TestServer};
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Instant;

/// A port nobody listens on right now (HAProxy binds it; it cannot report a port 0 choice).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET through `addr` from `source`, returning the status.
fn get_from(addr: SocketAddr, source: Ipv4Addr) -> u16 {
    let mut client = Client::connect_from(addr, source);
    client.send(b"GET /who.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    client.response().status
}

#[test]
fn two_instances_behind_haproxy_log_the_real_client_and_fail_over() {
    if !crate::common::tool_installed("haproxy", "-v") {
        return;
    }
    let dir = TempDir::new("haproxy");
    let logs = [dir.path().join("a.log"), dir.path().join("b.log")];
    let start = |log: &std::path::Path| {
        let log = log.to_str().unwrap().to_string();
        let flags = [
            "--trusted-proxy",
            "127.0.0.1",
            "--access-log",
            &log,
            "--log-format",
            "json",
        ];
        TestServer::start_with(&flags, |root| {
            fs::write(root.join("who.txt"), "hi").unwrap()
        })
    };
    let mut a = start(&logs[0]);
    let b = start(&logs[1]);
    let port = free_port();
    let config = format!(
        "global\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    \
         timeout server 5s\n    retries 3\n    option redispatch 1\n\
         frontend web\n    bind 127.0.0.1:{port}\n    default_backend epollo\n\
         backend epollo\n    option httpchk GET /who.txt\n    option forwardfor\n    balance roundrobin\n    \
         server a {} check inter 200 fall 1 rise 1\n    server b {} check inter 200 fall 1 rise 1\n",
        a.addr, b.addr
    );
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let haproxy = Haproxy::start(&dir, &config, &[front]);
    // Round robin over both; each logs the client HAProxy names, not HAProxy itself.
    let client = Ipv4Addr::new(127, 0, 0, 2);
    for _ in 0..4 {
        assert_eq!(get_from(front, client), 200);
    }
    // One instance dies: the other serves every request (retries redispatch the ones that
    // were on their way to the dead one, and the health check takes it out).
    a.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = a.wait_exit();
    for _ in 0..20 {
        assert_eq!(get_from(front, client), 200, "failover");
    }
    drop(haproxy);
    let mut b = b;
    b.signal(nix::sys::signal::Signal::SIGTERM);
    b.wait_exit();
    let b_log = fs::read_to_string(&logs[1]).unwrap();
    let served_client: Vec<&str> = b_log
        .lines()
        .filter(|l| {
            l.contains("\"request\":\"GET /who.txt HTTP/1.1\"")
                && !l.contains("\"remote_addr\":\"127.0.0.1\"")
        })
        .collect();
    assert!(
        served_client.len() >= 20,
        "b served the failover requests: {b_log}"
    );
    assert!(
        served_client
            .iter()
            .all(|l| l.contains("\"remote_addr\":\"127.0.0.2\"")),
        "{b_log}"
    );
}

/// HAProxy run on a config, killed and reaped on drop.
struct Haproxy(std::process::Child);

impl Haproxy {
    /// Starts HAProxy on `config` (written into `dir`), and waits (bounded) until each of
    /// `fronts` accepts connections.
    fn start(dir: &TempDir, config: &str, fronts: &[SocketAddr]) -> Haproxy {
        let config_path = dir.path().join("haproxy.cfg");
        fs::write(&config_path, config).unwrap();
        let child = crate::common::spawn(
            Command::new("haproxy")
                .arg("-f")
                .arg(&config_path)
                .arg("-db")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap();
        let haproxy = Haproxy(child);
        let started = Instant::now();
        for front in fronts {
            while TcpStream::connect(front).is_err() {
                assert!(started.elapsed() < PATIENCE, "haproxy did not listen");
                std::thread::yield_now();
            }
        }
        haproxy
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Behind docs/deployment.md's HAProxy (`option forwardfor`), a client at
/// 127.0.0.2 sends forwarding fields of its own: `Forwarded: for=6.6.6.6` was believed (it
/// was preferred over the `X-Forwarded-For` HAProxy wrote) and `Forwarded: for=unknown`
/// logged HAProxy itself. Only the configured field counts, walked from the right. With
/// `--real-ip-header forwarded` behind a HAProxy that appends `Forwarded: for=`, the forged
/// fields fail the same way. (The client is not 127.0.0.1: that is the trusted proxy, and a
/// trusted address is walked past, as nginx's `real_ip_recursive on` does.)
#[test]
fn a_client_cannot_name_itself_through_haproxy() {
    if !crate::common::tool_installed("haproxy", "-v") {
        return;
    }
    let dir = TempDir::new("haproxy-forged");
    let logs = [dir.path().join("xff.log"), dir.path().join("fwd.log")];
    let start = |log: &std::path::Path, header: &str| {
        let log = log.to_str().unwrap().to_string();
        let flags = [
            "--trusted-proxy",
            "127.0.0.1",
            "--real-ip-header",
            header,
            "--access-log",
            &log,
            "--log-format",
            "json",
        ];
        TestServer::start_with(&flags, |root| {
            fs::write(root.join("who.txt"), "hi").unwrap()
        })
    };
    let mut servers = [
        start(&logs[0], "x-forwarded-for"),
        start(&logs[1], "forwarded"),
    ];
    let ports = [free_port(), free_port()];
    let config = format!(
        "global\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    \
         timeout server 5s\n\
         frontend xff\n    bind 127.0.0.1:{}\n    default_backend xff\n\
         frontend fwd\n    bind 127.0.0.1:{}\n    default_backend fwd\n\
         backend xff\n    option forwardfor\n    server a {}\n\
         backend fwd\n    http-request add-header Forwarded for=%[src]\n    server b {}\n",
        ports[0], ports[1], servers[0].addr, servers[1].addr
    );
    let fronts = ports.map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
    let haproxy = Haproxy::start(&dir, &config, &fronts);
    let forged: &[&str] = &[
        "Forwarded: for=6.6.6.6\r\n",
        "X-Forwarded-For: 6.6.6.6\r\n",
        "Forwarded: for=unknown\r\n",
        "X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-For: 7.7.7.7\r\n",
        "Forwarded: for=6.6.6.6, for=\"[::1]:80\"\r\n",
    ];
    let client = Ipv4Addr::new(127, 0, 0, 2);
    for front in fronts {
        for (case, fields) in forged.iter().enumerate() {
            let mut c = Client::connect_from(front, client);
            let request = format!(
                "GET /who.txt?case={case} HTTP/1.1\r\nHost: t\r\n{fields}Connection: close\r\n\r\n"
            );
            c.send(request.as_bytes());
            assert_eq!(c.response().status, 200, "{front} case {case}");
        }
    }
    drop(haproxy);
    for (server, log) in servers.iter_mut().zip(&logs) {
        server.signal(nix::sys::signal::Signal::SIGTERM);
        server.wait_exit();
        let text = fs::read_to_string(log).unwrap();
        for (case, fields) in forged.iter().enumerate() {
            let request = format!("\"request\":\"GET /who.txt?case={case} HTTP/1.1\"");
            let line = text.lines().find(|l| l.contains(&request));
            let line = line.unwrap_or_else(|| panic!("no line for case {case}: {text}"));
            assert!(
                line.contains("\"remote_addr\":\"127.0.0.2\""),
                "{}: {:?} logged as: {line}",
                log.display(),
                fields
            );
        }
    }
}
