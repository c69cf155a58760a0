//! Micro-benchmarks of the request-to-response-head path: parse a head, resolve its target
//! to a file under the root, and serialise the response head. No sockets: this is the CPU
//! cost each request pays on top of its syscalls.
//!
//! Run: `cargo bench --bench head`

use std::hint::black_box;
use std::path::PathBuf;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use epollo::files::{self, Resolved, Root};
use epollo::request::{self, Parsed};
use epollo::response::{Head, HttpDate, Persistence, Status};

/// What Firefox sends for a page.
const BROWSER_GET: &[u8] = b"GET /docs/index.html HTTP/1.1\r\n\
Host: 127.0.0.1:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: none\r\n\
Priority: u=0, i\r\n\r\n";

/// What wrk sends.
const WRK_GET: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

fn demo_root() -> Root {
    Root::open(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www"),
        false,
    )
    .expect("www exists")
}

fn benchmarks(c: &mut Criterion) {
    let root = demo_root();
    let date = HttpDate::new();
    let limits = request::Limits::default();
    let config = epollo::Config::default();

    c.bench_function("parse/browser_get", |b| {
        b.iter(|| request::parse(black_box(BROWSER_GET), &limits))
    });
    c.bench_function("parse/wrk_get", |b| {
        b.iter(|| request::parse(black_box(WRK_GET), &limits))
    });
    c.bench_function("resolve/docs_index", |b| {
        b.iter(|| files::resolve(&root, black_box("/docs/index.html"), &config, None))
    });
    c.bench_function("resolve/traversal_refused", |b| {
        b.iter(|| files::resolve(&root, black_box("/%2e%2e/etc/passwd"), &config, None))
    });
    c.bench_function("head/file_200", |b| {
        let mut out = Vec::with_capacity(512);
        let modified = SystemTime::now();
        b.iter(|| {
            out.clear();
            let mut head = Head::new(Status::OK, black_box(2846), Persistence::KeepAlive);
            head.content_type = Some("text/html; charset=utf-8");
            head.last_modified = Some(modified);
            head.write_to(&mut out, date.as_str());
            out.len()
        })
    });
    c.bench_function("request_to_head/browser_get", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            let Parsed::Complete { request, .. } = request::parse(black_box(BROWSER_GET), &limits)
            else {
                panic!("the sample head parses");
            };
            let Ok(Resolved::File(file)) = files::resolve(&root, &request.target, &config, None)
            else {
                panic!("the sample target exists");
            };
            let mut head = Head::new(Status::OK, file.len, request.persistence);
            head.content_type = Some(&file.content_type);
            head.last_modified = file.modified;
            head.write_to(&mut out, date.as_str());
            out.len()
        })
    });
}

criterion_group!(benches, benchmarks);
criterion_main!(benches);
