//! Micro-benchmarks of the request-to-response-head path: parse a head, resolve its target
//! to a file under the root, decide the `Reply`, and serialise the response head. No sockets: this is the CPU
//! cost each request pays on top of its syscalls.
//!
//! Run: `cargo bench --bench head`

use std::hint::black_box;
use std::path::PathBuf;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use epollo::http::head::{HeadOptions, write_head};
use epollo::http::request::{self, Parsed, Persistence};
use epollo::http::{Body, Fields, Reply, Status};
use epollo::limits::RequestLimits;
use epollo::site::{self, Root, Site, files};
use epollo::util::date::DateHeader;

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
    let date = DateHeader::new(SystemTime::now());
    let limits = RequestLimits::default();
    let config = epollo::Config::default();
    let exchange = HeadOptions {
        head_only: true,
        http11: true,
        persistence: Persistence::KeepAlive,
        date: date.as_str(),
        added: &config.site.added_fields,
    };

    c.bench_function("parse/browser_get", |b| {
        b.iter(|| request::parse(black_box(BROWSER_GET), &limits))
    });
    c.bench_function("parse/wrk_get", |b| {
        b.iter(|| request::parse(black_box(WRK_GET), &limits))
    });
    c.bench_function("resolve/docs_index", |b| {
        b.iter(|| files::resolve(&root, black_box("/docs/index.html"), &config.site, None))
    });
    c.bench_function("resolve/traversal_refused", |b| {
        b.iter(|| files::resolve(&root, black_box("/%2e%2e/etc/passwd"), &config.site, None))
    });
    c.bench_function("head/file_200", |b| {
        let mut out = Vec::with_capacity(512);
        let modified = SystemTime::now();
        b.iter(|| {
            out.clear();
            let reply = Reply {
                status: Status::OK,
                fields: Fields {
                    content_type: Some("text/html; charset=utf-8".into()),
                    last_modified: Some(modified),
                    ..Fields::default()
                },
                body: Body::Bytes(Vec::new()),
            };
            write_head(&mut out, black_box(&reply), &exchange);
            out.len()
        })
    });
    let site = Site::new(demo_root(), config.site.clone(), &config.cache);
    c.bench_function("request_to_head/browser_get", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            let Parsed::Complete { mut request, .. } =
                request::parse(black_box(BROWSER_GET), &limits)
            else {
                panic!("the sample head parses");
            };
            // The demo site has no precompressed siblings: skip their lookup, as wrk does.
            request.accept_encoding = None;
            let reply = site::reply_to(&site, &request, SystemTime::now());
            assert_eq!(reply.status, Status::OK, "the sample target exists");
            write_head(&mut out, &reply, &exchange);
            out.len()
        })
    });
}

criterion_group!(benches, benchmarks);
criterion_main!(benches);
