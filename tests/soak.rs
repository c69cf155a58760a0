//! A bounded soak: good, slow, broken, abusive, listing and slot-hoarding clients at once, for `SOAK_SECS` seconds
//! (default 4, the short form CI runs; `SOAK_SECS=60 cargo test --release --test tests soak --
//! --nocapture` is the long form). It prints requests served, errors by kind, and the
//! server's descriptors and RSS before and after, and asserts that good clients never saw an
//! error and that nothing leaked.

use crate::common::{Client, TestServer, pattern};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIG_LEN: usize = 4 * 1024 * 1024;

/// Counters shared by the client threads: outcome name → count.
type Tally = Arc<Mutex<BTreeMap<String, u64>>>;

fn count(tally: &Tally, what: &str) {
    *tally.lock().unwrap().entry(what.to_string()).or_default() += 1;
}

fn soak_duration() -> Duration {
    let secs = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    Duration::from_secs(secs)
}

/// Keep-alive GETs of small and large files, checking every body.
fn good_client(addr: SocketAddr, until: Instant, tally: Tally) {
    let mut client = Client::connect(addr);
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        let (target, expected_len) = if round.is_multiple_of(10) {
            ("/big.bin", BIG_LEN)
        } else {
            ("/hello.txt", 5)
        };
        // Idle keep-alive connections may be reclaimed for the hoarder's newcomers: retry as
        // browsers do.
        let request = format!("GET {target} HTTP/1.1\r\nHost: soak\r\n\r\n");
        let response = client.request_retrying(addr, request.as_bytes());
        if response.status == 200 && response.body.len() == expected_len {
            count(&tally, "good: ok");
        } else {
            count(&tally, &format!("good: FAILED status {}", response.status));
        }
        if round.is_multiple_of(50) {
            client = Client::connect(addr); // and some reconnects
        }
    }
}

/// Slowloris: a head trickled a byte at a time; the server must answer 408 and close.
fn slow_client(addr: SocketAddr, until: Instant, tally: Tally) {
    while Instant::now() < until {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let head = b"GET /index.html HTTP/1.1\r\nHost: soak\r\nX-Slow: ";
        let mut answer = Vec::new();
        for byte in head.iter().chain(std::iter::repeat(&b'z')) {
            if Instant::now() > until + Duration::from_secs(3)
                || stream.write_all(&[*byte]).is_err()
            {
                break;
            }
            match stream.read_to_end(&mut answer) {
                Ok(_) => break, // closed by the server
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
        let outcome = if answer.starts_with(b"HTTP/1.1 408") {
            "slow: cut off with 408"
        } else {
            "slow: cut off"
        };
        count(&tally, outcome);
    }
}

/// Clients that leave at the worst moments.
fn broken_client(addr: SocketAddr, until: Instant, tally: Tally) {
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        match round % 4 {
            0 => count(&tally, "broken: connect and close"),
            1 => {
                let _ = stream.write_all(b"GET /big.bin HTTP/1.1\r\nHost: soak\r\n\r\n");
                let _ = stream.read(&mut [0u8; 8192]);
                count(&tally, "broken: reset mid-download");
            }
            2 => {
                let _ = stream.write_all(b"GET /index.html HTTP/1.1\r\nHost: soak\r\n\r\n");
                let _ = stream.shutdown(Shutdown::Write);
                let mut all = Vec::new();
                let _ = stream.read_to_end(&mut all);
                let ok = all.starts_with(b"HTTP/1.1 200");
                count(
                    &tally,
                    if ok {
                        "broken: half-close answered"
                    } else {
                        "broken: half-close UNANSWERED"
                    },
                );
            }
            _ => {
                let _ = stream.write_all(b"GET /index.html HTTP/1.1\r\nHo");
                count(&tally, "broken: left mid-head");
            }
        }
    }
}

/// Malformed, smuggling and oversized requests, each on its own connection.
fn abusive_client(addr: SocketAddr, until: Instant, tally: Tally) {
    let attacks: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: s\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec(),
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: s\r\n\r\n".to_vec(),
        b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: s\r\n\r\n".to_vec(),
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        format!(
            "GET / HTTP/1.1\r\nHost: s\r\nX: {}\r\n\r\n",
            "a".repeat(40_000)
        )
        .into_bytes(),
        pattern(3000),
        b"\r\n\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: s\r\nContent-Length: 99999999999\r\n\r\n".to_vec(),
    ];
    let mut round = 0usize;
    while Instant::now() < until {
        let attack = &attacks[round % attacks.len()];
        round += 1;
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.write_all(attack);
        let _ = stream.shutdown(Shutdown::Write);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let status = String::from_utf8_lossy(answer.get(9..12).unwrap_or(b"---")).to_string();
        count(&tally, &format!("abusive: answered {status}"));
    }
}

/// Keep-alive GETs of a listing of a few thousand entries, checking that each page is whole.
fn listing_client(addr: SocketAddr, until: Instant, tally: Tally) {
    let mut client = Client::connect(addr);
    while Instant::now() < until {
        let response = client.request_retrying(addr, b"GET /many/ HTTP/1.1\r\nHost: soak\r\n\r\n");
        let rows = response.text().matches("<a href=\"./f").count();
        if response.status == 200 && rows == LISTED && response.text().ends_with("</html>\n") {
            count(&tally, "listing: ok");
        } else {
            count(
                &tally,
                &format!("listing: FAILED status {} rows {rows}", response.status),
            );
        }
    }
}

/// Slot hoarding: keeps opening keep-alive connections, each with one request answered, and
/// holds them idle, more than the server has slots; the server reclaims the oldest.
fn hoarding_client(addr: SocketAddr, until: Instant, tally: Tally) {
    let mut held = std::collections::VecDeque::new();
    while Instant::now() < until {
        let Ok(mut stream) = TcpStream::connect(addr) else {
            count(&tally, "hoard: connect failed");
            continue;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.write_all(b"GET /index.html HTTP/1.1\r\nHost: soak\r\n\r\n");
        let mut answer = [0u8; 12];
        match stream.read_exact(&mut answer) {
            Ok(()) => count(
                &tally,
                &format!("hoard: answered {}", String::from_utf8_lossy(&answer[9..])),
            ),
            Err(_) => count(&tally, "hoard: closed unanswered"),
        }
        held.push_back(stream);
        if held.len() > HOARD {
            held.pop_front();
        }
    }
}

/// The `n`th of four loopback client addresses, so the per-address cap never stops an
/// attacker.
fn address(n: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, 0, 2 + (n % 4) as u8)
}

/// Holds up to `how_many` connections that `open` makes (the `n`th from the `n`th of four
/// addresses), replacing each one the server closes, as an attacker renews what is taken
/// from it. (Opening without bound would only queue the attacker's own connections in the
/// kernel's backlog ahead of everyone's, which no server can tell apart.)
fn hold(
    addr: SocketAddr,
    until: Instant,
    how_many: usize,
    open: impl Fn(SocketAddr, usize) -> Client,
) {
    let mut held: Vec<Client> = Vec::new();
    let mut n = 0;
    while Instant::now() < until {
        while held.len() < how_many {
            n += 1;
            held.push(open(addr, n));
        }
        held.retain(|client| still_open(&client.stream));
        thread::sleep(Duration::from_millis(20)); // pacing, not synchronisation
    }
}

/// Whether the server has not closed `stream` (nothing has arrived, or an answer has).
fn still_open(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let open = match stream.peek(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    open
}

/// Fills slots with connections that say nothing, renewing them as the
/// server reclaims them.
fn silent_client(addr: SocketAddr, until: Instant, tally: Tally) {
    hold(addr, until, HOARD, |addr, n| {
        count(&tally, "silent: opened");
        Client::connect_from(addr, address(n))
    });
}

/// Holds `--live` event streams from four addresses: they are bounded and
/// reclaimable, so they never keep a page request out.
fn streaming_client(addr: SocketAddr, until: Instant, tally: Tally) {
    hold(addr, until, HOARD / 4, |addr, n| {
        let mut stream = Client::connect_from(addr, address(n));
        stream.send(b"GET /__epollo/live HTTP/1.1\r\nHost: soak\r\n\r\n");
        count(&tally, "stream: asked");
        stream
    });
}

/// Asks for the big listing and never reads the answer, holding many such
/// connections: listings share one budget per pass, so the others are not slowed. (Under
/// fault injection, where every request already takes dozens of passes, four.)
fn listing_hog(addr: SocketAddr, until: Instant, tally: Tally) {
    let how_many = if crate::common::runs_with("--max-read") {
        4
    } else {
        HOARD / 4
    };
    hold(addr, until, how_many, |addr, n| {
        let mut client = Client::connect_from(addr, address(n));
        client.send(b"GET /many/ HTTP/1.1\r\nHost: soak\r\n\r\n");
        count(&tally, "listing hog: asked");
        client
    });
}

/// Asks for one file under ever new spellings through links to the root.
fn spelling_client(addr: SocketAddr, until: Instant, tally: Tally) {
    let mut client = Client::connect(addr);
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        // Short enough to arrive within the 1 s header timeout a byte per read (the suite
        // also runs under --max-read 1).
        let path = crate::common::spelling(n, 12);
        let request = format!("GET /{path}hello.txt HTTP/1.1\r\nHost: soak\r\n\r\n");
        match client.request_retrying(addr, request.as_bytes()).status {
            200 => count(&tally, "spelling: ok"),
            status => count(&tally, &format!("spelling: FAILED status {status}")),
        }
    }
}

/// Saves a new version of a file, then asks for it: never the old bytes.
fn freshness_client(addr: SocketAddr, until: Instant, tally: Tally, root: std::path::PathBuf) {
    let mut client = Client::connect(addr);
    let mut round = 0u64;
    while Instant::now() < until {
        round += 1;
        let version = format!("v{round:08}");
        let temp = root.join("fresh.tmp");
        fs::write(&temp, &version).unwrap();
        fs::rename(&temp, root.join("fresh.txt")).unwrap();
        let response =
            client.request_retrying(addr, b"GET /fresh.txt HTTP/1.1\r\nHost: soak\r\n\r\n");
        if response.text() == version {
            count(&tally, "fresh: ok");
        } else {
            count(
                &tally,
                &format!("fresh: FAILED stale ({})", response.status),
            );
        }
    }
}

/// Entries of the listed directory.
const LISTED: usize = 3_000;

/// Connections the hoarder holds, more than `--max-connections` below.
const HOARD: usize = 150;

#[test]
fn mixed_clients_do_not_disturb_each_other_and_nothing_leaks() {
    let flags = [
        "--header-timeout",
        "1",
        "--send-timeout",
        "2",
        "--max-connections",
        "128",
        "--live",
    ];
    let server = TestServer::start_with(&flags, |root| {
        fs::write(root.join("index.html"), "hello").unwrap();
        fs::write(root.join("hello.txt"), "hello").unwrap();
        fs::write(root.join("fresh.txt"), "v00000000").unwrap();
        std::os::unix::fs::symlink(".", root.join("a")).unwrap();
        std::os::unix::fs::symlink(".", root.join("b")).unwrap();
        fs::write(root.join("big.bin"), pattern(BIG_LEN)).unwrap();
        fs::create_dir_all(root.join("many")).unwrap();
        for i in 0..LISTED {
            fs::write(root.join(format!("many/f{i:04}")), "").unwrap();
        }
    });
    let fds_before = server.fd_count();
    let rss_before = server.rss_kib();
    let tally: Tally = Arc::default();
    let until = Instant::now() + soak_duration();
    type ClientFn = fn(SocketAddr, Instant, Tally);
    let kinds: [(ClientFn, usize); 10] = [
        (good_client, 4),
        (slow_client, 4),
        (broken_client, 2),
        (abusive_client, 2),
        (listing_client, 2),
        (hoarding_client, 1),
        (silent_client, 1),
        (streaming_client, 1),
        (spelling_client, 1),
        (listing_hog, 1),
    ];
    let mut threads = Vec::new();
    for (client, how_many) in kinds {
        for _ in 0..how_many {
            let tally = tally.clone();
            let addr = server.addr;
            threads.push(thread::spawn(move || client(addr, until, tally)));
        }
    }
    let (addr, root) = (server.addr, server.root.clone());
    let fresh_tally = tally.clone();
    threads.push(thread::spawn(move || {
        freshness_client(addr, until, fresh_tally, root)
    }));
    for thread in threads {
        thread.join().expect("a client thread panicked");
    }

    // Wait (bounded) for the server to close what the clients left behind. Each worker's
    // file cache may keep big.bin (the one large file) open: no more.
    let cached = crate::common::workers();
    let settle = Instant::now() + crate::common::PATIENCE;
    while server.fd_count() > fds_before + cached && Instant::now() < settle {
        thread::sleep(Duration::from_millis(50)); // /proc has no readiness signal
    }
    let fds_after = server.fd_count();
    // Memory comes back within 10 s of the attack's end.
    let settle = Instant::now() + Duration::from_secs(10);
    while server.rss_kib() > 2 * rss_before && Instant::now() < settle {
        thread::sleep(Duration::from_millis(100)); // /proc has no readiness signal
    }
    let rss_after = server.rss_kib();
    let tally = tally.lock().unwrap();
    let served: u64 = tally
        .iter()
        .filter(|(k, _)| k.starts_with("good: ok"))
        .map(|(_, v)| v)
        .sum();
    println!(
        "soak: {:?}, requests served to good clients: {served}",
        soak_duration()
    );
    for (outcome, n) in tally.iter() {
        println!("soak:   {outcome}: {n}");
    }
    println!(
        "soak: fds before {fds_before} after {fds_after}; VmRSS before {rss_before} KiB after {rss_after} KiB"
    );

    assert!(served > 0, "no good request was served");
    let failures: Vec<_> = tally
        .keys()
        .filter(|k| k.contains("FAILED") || k.contains("UNANSWERED"))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(
        (fds_before..=fds_before + cached).contains(&fds_after),
        "descriptors leaked: {fds_before} before, {fds_after} after"
    );
    assert!(
        rss_after <= 2 * rss_before,
        "RSS grew from {rss_before} to {rss_after} KiB and stayed"
    );
    server.assert_alive();
}
