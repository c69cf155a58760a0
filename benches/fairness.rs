//! Fairness benchmark: while K clients list a directory of 100,000 entries in a loop, how long
//! does a small GET from another client take? Prints the victim's p50 and p99 for K = 1, 4
//! and 16, with the number of listings completed.
//!
//! Run: `cargo build --release && cargo bench --bench fairness`
//! (`EPOLLO_BIN=/path/to/epollo` benchmarks another binary; `FAIRNESS_SECS=N` sets the time
//! per round, default 8; `FAIRNESS_ENTRIES=N` the directory size, default 100000.)
//!
//! Only 127.0.0.1 is used; every client stops at the end of its round, and the server is
//! killed at the end. This measures, it asserts nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The victim's pause between requests.
const VICTIM_PAUSE: Duration = Duration::from_millis(10);

fn main() {
    let secs: u64 = env_or("FAIRNESS_SECS", 8);
    let entries: usize = env_or("FAIRNESS_ENTRIES", 100_000);
    let root = make_site(entries);
    let binary = std::env::var("EPOLLO_BIN")
        .unwrap_or_else(|_| format!("{}/target/release/epollo", env!("CARGO_MANIFEST_DIR")));
    println!("fairness: {binary}, {entries} entries, {secs} s per round");
    println!("listing clients | victim p50 | victim p99 | victim requests | listings done");
    for clients in [1, 4, 16] {
        let (mut child, addr) = start(&binary, &root);
        let result = round(addr, clients, Duration::from_secs(secs));
        let _ = child.kill();
        let _ = child.wait();
        println!(
            "{clients:>15} | {:>8.1} ms | {:>8.1} ms | {:>15} | {:>13}",
            result.p50_ms, result.p99_ms, result.victim_requests, result.listings
        );
    }
    let _ = std::fs::remove_dir_all(root.parent().unwrap_or(&root));
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A root with `small.txt` and `big/` holding `entries` empty files.
fn make_site(entries: usize) -> PathBuf {
    let base = std::env::temp_dir().join(format!("epollo-fairness-{}", std::process::id()));
    let root = base.join("root");
    let big = root.join("big");
    std::fs::create_dir_all(&big).unwrap();
    std::fs::write(root.join("small.txt"), "small").unwrap();
    for i in 0..entries {
        std::fs::write(big.join(format!("file-{i:06}.txt")), "").unwrap();
    }
    root
}

fn start(binary: &str, root: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(binary)
        .arg(root)
        .args(["--port", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start epollo (cargo build --release first, or set EPOLLO_BIN)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .and_then(|rest| rest.trim_end_matches('/').parse().ok())
        .expect("the startup line names the address");
    (child, addr)
}

struct RoundResult {
    p50_ms: f64,
    p99_ms: f64,
    victim_requests: usize,
    listings: u64,
}

fn round(addr: SocketAddr, clients: usize, length: Duration) -> RoundResult {
    let stop = Arc::new(AtomicBool::new(false));
    let listings = Arc::new(AtomicU64::new(0));
    let listers: Vec<_> = (0..clients)
        .map(|_| {
            let (stop, listings) = (stop.clone(), listings.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if get_close(addr, "/big/").is_some() {
                        listings.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500)); // let the listers get going
    let mut latencies = Vec::new();
    let end = Instant::now() + length;
    while Instant::now() < end {
        let start = Instant::now();
        if get_close(addr, "/small.txt").is_some() {
            latencies.push(start.elapsed());
        }
        thread::sleep(VICTIM_PAUSE);
    }
    stop.store(true, Ordering::Relaxed);
    for lister in listers {
        let _ = lister.join();
    }
    latencies.sort();
    let at = |q: f64| {
        let index = ((latencies.len() as f64 - 1.0) * q).round() as usize;
        latencies
            .get(index)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    RoundResult {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        victim_requests: latencies.len(),
        listings: listings.load(Ordering::Relaxed),
    }
}

/// One `Connection: close` GET, read to the end; `None` on any failure.
fn get_close(addr: SocketAddr, target: &str) -> Option<usize> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let request = format!("GET {target} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    response
        .starts_with(b"HTTP/1.1 200")
        .then_some(response.len())
}
