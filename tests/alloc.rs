//! A keep-alive GET of a cached file allocates nothing: the real `Connection` and `Site` in
//! this process, driven over a socket pair, counted by the test crate's global allocator
//! (`epollo::sys::counting_alloc`, installed in `tests.rs`).

use epollo::Config;
use epollo::connection::{Connection, Context};
use epollo::site::{Root, Site};
use epollo::sys::counting_alloc::CountingAllocator;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::time::{Instant, SystemTime};

#[test]
fn a_keep_alive_get_of_a_cached_file_allocates_nothing() {
    let dir = crate::common::TempDir::new("alloc");
    dir.write("1k.html", crate::common::pattern(1024));
    let config = Config::default();
    let root = Root::open(dir.path(), false).unwrap();
    let site = Site::new(root, config.site.clone(), &config.cache);
    let (server, mut client) = UnixStream::pair().unwrap();
    server.set_nonblocking(true).unwrap();
    let now = Instant::now();
    let buffers = std::cell::RefCell::default();
    let study = epollo::study::Study::standalone(&config);
    let access_log = epollo::logs::AccessLog::open(
        Default::default(),
        Default::default(),
        Vec::new(),
        Default::default(),
    )
    .unwrap();
    let ctx = Context {
        now,
        wall_clock: SystemTime::now(),
        date: "Tue, 01 Dec 2026 05:00:00 GMT",
        config: &config,
        site: &site,
        shutting_down: false,
        buffers: &buffers,
        study: &study,
        access_log: &access_log,
        streams: &Default::default(),
        sendfile_step: epollo::limits::SENDFILE_STEP_BYTES,
    };
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    let mut connection = Connection::new(1, server, peer, now, &config);
    let mut scratch = vec![0u8; 16 * 1024];
    let mut answer = vec![0u8; 4096];
    let mut get = || {
        client
            .write_all(b"GET /1k.html HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        connection.on_readable(&ctx, &mut scratch);
        let n = client.read(&mut answer).unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200 OK\r\n") && n > 1024);
    };
    get(); // fills the cache
    get(); // the connection keeps its buffers from here on
    let before = CountingAllocator::allocations();
    for _ in 0..100 {
        get();
    }
    let allocations = CountingAllocator::allocations() - before;
    assert_eq!(allocations, 0, "allocations in 100 cached keep-alive GETs");
}
