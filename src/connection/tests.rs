//! Unit tests of the state machine: a `Connection` driven over a `UnixStream` pair, without
//! epoll: byte-at-a-time input, pipelined heads, body discard, keep-alive return, and each
//! close reason.

use super::*;
use crate::site::Root;
use crate::util::test_dir::TestDir;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

const BIG_LEN: usize = 2 * 1024 * 1024;

/// A temporary root with a small and a large file, and a configuration.
struct Fixture {
    _dir: TestDir,
    site: Site,
    buffers: std::cell::RefCell<BufferPool>,
    study: Study,
    access_log: crate::logs::AccessLog,
    streams: super::StreamSlots,
    config: Config,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with(Config::default())
    }

    fn with(config: Config) -> Fixture {
        let dir = TestDir::new("conn");
        std::fs::write(dir.path().join("a.txt"), "aaa").unwrap();
        std::fs::write(dir.path().join("big.bin"), vec![7u8; BIG_LEN]).unwrap();
        let root = Root::open(dir.path(), false).unwrap();
        Fixture {
            _dir: dir,
            study: Study::standalone(&config),
            access_log: crate::logs::AccessLog::open(
                Default::default(),
                Default::default(),
                Vec::new(),
                Default::default(),
            )
            .unwrap(),
            site: Site::new(root, config.site.clone(), &config.cache),
            config,
            buffers: Default::default(),
            streams: Default::default(),
        }
    }

    fn ctx(&self, now: Instant) -> Context<'_> {
        Context {
            now,
            wall_clock: SystemTime::now(),
            date: "Sun, 06 Nov 1994 08:49:37 GMT",
            config: &self.config,
            site: &self.site,
            shutting_down: false,
            buffers: &self.buffers,
            study: &self.study,
            access_log: &self.access_log,
            streams: &self.streams,
            sendfile_step: crate::limits::SENDFILE_STEP_BYTES,
        }
    }

    /// A connection over one end of a socket pair; the other end plays the client.
    fn connection(&self) -> (Connection<UnixStream>, UnixStream) {
        let (server, client) = UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        client.set_nonblocking(true).unwrap();
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        (
            Connection::new(1, server, peer, Instant::now(), &self.config),
            client,
        )
    }
}

/// Everything the client end can read right now.
fn drain(client: &mut UnixStream) -> String {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match client.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn statuses(text: &str) -> Vec<&str> {
    text.match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect()
}

const GET_A: &[u8] = b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn a_head_arriving_byte_by_byte_is_answered_once_complete() {
    let fixture = Fixture::new();
    let ctx = fixture.ctx(Instant::now());
    let (mut conn, mut client) = fixture.connection();
    let mut scratch = [0u8; 1024];
    for (i, byte) in GET_A.iter().enumerate() {
        client.write_all(&[*byte]).unwrap();
        conn.on_readable(&ctx, &mut scratch);
        let answer = drain(&mut client);
        if i + 1 < GET_A.len() {
            assert!(answer.is_empty(), "answered after {} bytes", i + 1);
        } else {
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("\r\n\r\naaa"));
        }
    }
    assert_eq!(
        conn.interest(),
        Some(Interest::Readable),
        "back to reading (keep-alive)"
    );
    assert_eq!(conn.deadline_kind(), Some(DeadlineKind::Idle));
}

#[test]
fn pipelined_heads_are_answered_in_one_pass_and_in_order() {
    let fixture = Fixture::new();
    let ctx = fixture.ctx(Instant::now());
    let (mut conn, mut client) = fixture.connection();
    client.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /missing HTTP/1.1\r\nHost: t\r\n\r\nHEAD /a.txt HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    conn.on_readable(&ctx, &mut [0u8; 4096]);
    let answer = drain(&mut client);
    assert_eq!(statuses(&answer), ["200", "404", "200"]);
    assert_eq!(conn.interest(), Some(Interest::Readable));
}

#[test]
fn a_body_is_discarded_not_parsed_as_a_request() {
    let fixture = Fixture::new();
    let ctx = fixture.ctx(Instant::now());
    let (mut conn, mut client) = fixture.connection();
    let fake = "GET /missing HTTP/1.1\r\nHost: t\r\n\r\n";
    let first = format!(
        "GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        fake.len()
    );
    client.write_all(first.as_bytes()).unwrap();
    client.write_all(&fake.as_bytes()[..10]).unwrap();
    conn.on_readable(&ctx, &mut [0u8; 4096]);
    assert_eq!(statuses(&drain(&mut client)), ["200"]);
    client.write_all(&fake.as_bytes()[10..]).unwrap();
    client.write_all(GET_A).unwrap();
    conn.on_readable(&ctx, &mut [0u8; 4096]);
    assert_eq!(
        statuses(&drain(&mut client)),
        ["200"],
        "the body's fake request was not answered"
    );
}

#[test]
fn a_body_that_breaks_after_its_answer_ends_the_connection_with_no_second_answer() {
    let fixture = Fixture::new();
    let now = Instant::now();
    let ctx = fixture.ctx(now);
    let chunked = b"GET /a.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    // Malformed, in a later read: closes (lingering), nothing more said.
    let (mut conn, mut client) = fixture.connection();
    client.write_all(chunked).unwrap();
    conn.on_readable(&ctx, &mut [0u8; 4096]);
    assert_eq!(statuses(&drain(&mut client)), ["200"]);
    client.write_all(b"zz\r\n").unwrap();
    conn.on_readable(&ctx, &mut [0u8; 4096]);
    assert_eq!(conn.deadline_kind(), Some(DeadlineKind::Linger));
    assert_eq!(drain(&mut client), "", "no second answer");
    drop(client);
    conn.on_readable(&ctx, &mut [0u8; 4096]);
    assert_eq!(
        conn.close_reason(),
        Some(CloseReason::BrokenBody(Status::BAD_REQUEST))
    );
    // Too slow: the header deadline closes it silently.
    let (mut conn, mut client) = fixture.connection();
    client.write_all(chunked).unwrap();
    client.write_all(b"5\r\nab").unwrap();
    conn.on_readable(&ctx, &mut [0u8; 4096]);
    assert_eq!(statuses(&drain(&mut client)), ["200"]);
    assert_eq!(conn.deadline_kind(), Some(DeadlineKind::Header));
    let late = fixture.ctx(conn.deadline());
    conn.on_deadline(&late);
    assert_eq!(drain(&mut client), "", "no 408 after the 200");
    assert!(conn.interest().is_none() || conn.deadline_kind() == Some(DeadlineKind::Linger));
}

#[test]
fn a_large_file_goes_out_in_chunks_as_the_socket_allows() {
    let fixture = Fixture::new();
    let ctx = fixture.ctx(Instant::now());
    let (mut conn, mut client) = fixture.connection();
    client
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    conn.on_readable(&ctx, &mut [0u8; 4096]);
    let mut received = drain(&mut client).into_bytes();
    let mut rounds = 0;
    while conn.interest() == Some(Interest::Writable) {
        conn.on_writable(&ctx);
        received.extend(drain(&mut client).into_bytes());
        rounds += 1;
        assert!(rounds < 10_000, "no progress");
    }
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(received.len() - head_end, BIG_LEN);
    assert!(received[head_end..].iter().all(|&b| b == 7));
    assert!(rounds > 0, "a 2 MB body takes several chunks");
    assert_eq!(conn.interest(), Some(Interest::Readable));
}

#[test]
fn each_close_reason() {
    let fixture = Fixture::new();
    let ctx = fixture.ctx(Instant::now());
    let mut scratch = [0u8; 4096];

    let (mut conn, client) = fixture.connection();
    drop(client);
    conn.on_readable(&ctx, &mut scratch);
    assert_eq!(conn.close_reason(), Some(CloseReason::PeerClosed));

    let (mut conn, mut client) = fixture.connection();
    client.write_all(b"GARBAGE\r\n\r\n").unwrap();
    conn.on_readable(&ctx, &mut scratch);
    // A refusal lingers: our side is shut, and leftovers are drained until the client
    // closes (or the linger deadline passes).
    assert_eq!(conn.deadline_kind(), Some(DeadlineKind::Linger));
    assert_eq!(conn.interest(), Some(Interest::Readable));
    assert!(drain(&mut client).contains("Connection: close"));
    client.write_all(b"leftover bytes").unwrap();
    conn.on_readable(&ctx, &mut scratch);
    assert_eq!(conn.close_reason(), None, "still lingering");
    drop(client);
    conn.on_readable(&ctx, &mut scratch);
    assert_eq!(
        conn.close_reason(),
        Some(CloseReason::Rejected(Status::BAD_REQUEST))
    );

    let (mut conn, mut client) = fixture.connection();
    client
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    conn.on_readable(&ctx, &mut scratch);
    assert_eq!(conn.close_reason(), Some(CloseReason::Done));

    let (mut conn, mut client) = fixture.connection();
    client.write_all(b"GET /a.txt HTTP/1.1\r\n").unwrap();
    conn.on_readable(&ctx, &mut scratch);
    assert_eq!(conn.deadline_kind(), Some(DeadlineKind::Header));
    let later = Instant::now() + Duration::from_secs(60);
    conn.on_deadline(&fixture.ctx(later));
    assert_eq!(statuses(&drain(&mut client)), ["408"]);
    assert_eq!(conn.deadline_kind(), Some(DeadlineKind::Linger));
    conn.on_deadline(&fixture.ctx(later + Duration::from_secs(60)));
    assert_eq!(
        conn.close_reason(),
        Some(CloseReason::Deadline(DeadlineKind::Header))
    );

    let (mut conn, _client) = fixture.connection();
    conn.on_deadline(&ctx);
    assert_eq!(
        conn.close_reason(),
        Some(CloseReason::Deadline(DeadlineKind::Idle))
    );

    let (mut conn, _client) = fixture.connection();
    conn.begin_shutdown(&ctx);
    assert_eq!(conn.close_reason(), Some(CloseReason::Shutdown));
}

#[test]
fn trickled_bytes_do_not_move_the_header_deadline() {
    let fixture = Fixture::new();
    let start = Instant::now();
    let (mut conn, mut client) = fixture.connection();
    client.write_all(b"GET").unwrap();
    conn.on_readable(&fixture.ctx(start), &mut [0u8; 64]);
    let deadline = conn.deadline();
    client.write_all(b" /a.txt").unwrap();
    conn.on_readable(&fixture.ctx(start + Duration::from_secs(5)), &mut [0u8; 64]);
    assert_eq!(conn.deadline(), deadline);
}

impl<S> Connection<S> {
    /// Why the connection closed, once it has (what the reactor learns from `interest()`).
    fn close_reason(&self) -> Option<CloseReason> {
        match self.state {
            State::Closed(reason) => Some(reason),
            _ => None,
        }
    }
}

#[test]
fn an_idle_connection_is_small() {
    // Most connections of a busy server are idle: the answer being written is boxed, so
    // an idle one carries a pointer for it. 160 bytes is the budget.
    let size = std::mem::size_of::<Connection<std::net::TcpStream>>();
    assert!(size <= 160, "Connection is {size} bytes");
}

#[test]
fn an_idle_connection_gives_its_buffers_back() {
    let fixture = Fixture::new();
    let ctx = fixture.ctx(Instant::now());
    let (mut conn, mut client) = fixture.connection();
    client.write_all(GET_A).unwrap();
    conn.on_readable(&ctx, &mut [0u8; 4096]);
    assert!(drain(&mut client).ends_with("aaa"));
    assert_eq!(conn.deadline_kind(), Some(DeadlineKind::Idle));
    assert!(conn.buffers.is_none(), "buffers went back to the pool");
    assert_eq!(fixture.buffers.borrow().free.len(), 1);
}

#[test]
fn state_gauges_match_the_statistics_names() {
    use crate::study::stats::STATES;
    let out = Box::<Outgoing>::default();
    for state in [
        State::Idle,
        State::Reading,
        State::Writing {
            out,
            close_after: None,
        },
        State::Lingering {
            reason: CloseReason::Done,
            discarded: 0,
        },
    ] {
        assert_eq!(STATES[state.gauge().unwrap()], state.name());
    }
    assert_eq!(State::Closed(CloseReason::Done).gauge(), None);
}

#[test]
fn a_live_event_stream_gets_heartbeats_instead_of_an_idle_close_and_events_as_sent() {
    let mut config = Config::default();
    config.site.live = true;
    let fixture = Fixture::with(config);
    let start = Instant::now();
    let ctx = fixture.ctx(start);
    let (mut connection, mut client) = fixture.connection();
    let mut scratch = vec![0u8; 16 * 1024];
    client
        .write_all(b"GET /__epollo/live HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    connection.on_readable(&ctx, &mut scratch);
    let head = drain(&mut client);
    assert!(
        head.contains("Content-Type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(connection.is_streaming());
    assert_eq!(connection.deadline_kind(), Some(DeadlineKind::Heartbeat));
    assert_eq!(connection.deadline(), start + crate::limits::LIVE_HEARTBEAT);

    // The heartbeat deadline passes: a comment line, the stream stays, the deadline moves on.
    let later = connection.deadline();
    connection.on_deadline(&fixture.ctx(later));
    assert_eq!(drain(&mut client), ": heartbeat\n\n");
    assert!(connection.is_streaming());
    assert_eq!(connection.deadline(), later + crate::limits::LIVE_HEARTBEAT);

    connection.send_event(&ctx, b"event: change\ndata: a.css\n\n");
    assert_eq!(drain(&mut client), "event: change\ndata: a.css\n\n");

    // A shutdown closes it; so does the tab going away.
    let (mut other, other_client) = fixture.connection();
    other_client.shutdown(std::net::Shutdown::Write).unwrap();
    connection.begin_shutdown(&ctx);
    assert_eq!(connection.interest(), None);
    other.on_readable(&ctx, &mut scratch); // a fresh connection whose peer closed at once
    assert_eq!(other.interest(), None);
}

#[test]
fn a_file_that_shrinks_before_its_sendfile_closes_at_once_not_after_waiting_to_write() {
    let fixture = Fixture::new();
    let ctx = fixture.ctx(Instant::now());
    let mut scratch = vec![0u8; 16 * 1024];
    let get = b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n";
    // A first answer puts the large file (descriptor and length) in the cache.
    let (mut first, mut first_client) = fixture.connection();
    first_client.write_all(get).unwrap();
    first.on_readable(&ctx, &mut scratch);
    while first.interest() == Some(Interest::Writable) {
        drain(&mut first_client);
        first.on_writable(&ctx);
    }
    // The file shrinks; no reactor runs here, so the cache has not heard (as if the change
    // came between the inotify read and this request).
    let path = fixture._dir.path().join("big.bin");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let (mut second, mut client) = fixture.connection();
    client.write_all(get).unwrap();
    second.on_readable(&ctx, &mut scratch);
    // sendfile came back short because the file ended, with room in the socket: waiting for
    // writability (edge-triggered, no event would ever come) would hang until the send
    // deadline. The connection closes now instead.
    assert_eq!(second.interest(), None, "closed, not waiting to write");
    assert!(matches!(
        second.close_reason(),
        Some(CloseReason::Io(std::io::ErrorKind::UnexpectedEof))
    ));
}

#[test]
fn a_connection_stays_small() {
    // An idle keep-alive connection is its slab slot and nothing else (its buffers went back
    // to the pool): the budget is 160 bytes of RSS each, and benches/wrk.sh measures
    // ~150 with this at 96.
    assert!(std::mem::size_of::<Connection<std::net::TcpStream>>() <= 96);
}

#[test]
fn the_state_diagrams_name_every_state() {
    // The module docs and the README draw the machine; a state added to `State` must be
    // drawn in both.
    let docs = include_str!("mod.rs");
    let readme = include_str!("../../README.md");
    for state in [
        "Idle",
        "Reading",
        "Writing",
        "Lingering",
        "Streaming",
        "Closed",
    ] {
        assert!(
            docs.contains(&format!("    {state}")),
            "State::{state} is gone?"
        );
        for (name, text) in [("connection/mod.rs", docs), ("README.md", readme)] {
            let start = text.find("accept ──► Idle").expect("a state diagram");
            let diagram = &text[start..];
            let diagram = &diagram[..diagram.find("```").unwrap_or(diagram.len())];
            assert!(diagram.contains(state), "{name}'s diagram lacks {state}");
        }
        // The learners' page: its table of states, and its drawing of the loop.
        let page = include_str!("../../www/docs/index.html");
        let table = &page[page
            .find("<table id=\"states\">")
            .expect("the states table")..];
        let table = &table[..table.find("</table>").unwrap()];
        assert!(
            table.contains(&format!("<td>{state}</td>")),
            "index.html lacks {state}"
        );
        let drawing = include_str!("../../www/img/loop.svg");
        assert!(
            drawing.contains(&format!(">{state}<")),
            "loop.svg lacks {state}"
        );
    }
}
