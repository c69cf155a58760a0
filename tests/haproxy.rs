//! The README's load-balancer setup, run for real when HAProxy is installed: two epollo
//! instances behind HAProxy with health checks; the log records the client HAProxy names in
//! `X-Forwarded-For` (trusted), and when one instance dies the other serves everything.

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
    if Command::new("haproxy").arg("-v").output().is_err() {
        eprintln!("haproxy not installed; skipped");
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
    let config_path = dir.path().join("haproxy.cfg");
    fs::write(&config_path, config).unwrap();
    let mut haproxy = Command::new("haproxy")
        .arg("-f")
        .arg(&config_path)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let front: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = Instant::now();
    while TcpStream::connect(front).is_err() {
        assert!(
            started.elapsed() < PATIENCE,
            "haproxy did not start listening"
        );
        std::thread::yield_now();
    }
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
    let _ = haproxy.kill();
    let _ = haproxy.wait();
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
