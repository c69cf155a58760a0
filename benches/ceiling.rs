//! The ceiling: the least a server can do per keep-alive request, so `benches/wrk.sh` can
//! show, in the same run, how much of what the load generator can drive epollo reaches.
//!
//! One thread, one epoll set (epollo's own `sys::epoll`), level-triggered; every readable
//! socket gets one `recv` and, if it sent anything, one `send` of a fixed answer: the head
//! epollo sends for the bench's 1 KiB page, and 1024 bytes. No parsing, no files, no
//! deadlines, no pipelining, no partial writes: not a server, a measuring stick (the shape of
//! the "minimal epoll loop" in issue 10's table). With `--close`, each answer says
//! `Connection: close` and the socket is closed after it (the `Connection: close` scenario).
//!
//! Run: `cargo bench --bench ceiling -- --serve [--close]`; it prints
//! `ceiling listening on http://127.0.0.1:PORT/` and serves until killed. Without `--serve`
//! (as `cargo bench` runs every bench) it only says what it is.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};

use epollo::sys::epoll::{Events, Interest, Poller, Token, Trigger};
use epollo::sys::{accept4, listen, send};

/// The listener's token; connections are numbered from 1.
const LISTENER: Token = Token(0);

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|arg| arg == "--serve") {
        println!("ceiling: a reference server for benches/wrk.sh; run it with --serve");
        return Ok(());
    }
    let close = args.iter().any(|arg| arg == "--close");
    let answer = answer(close);
    let listener = listen("127.0.0.1:0".parse().expect("an address"), 4096, false)?;
    println!("ceiling listening on http://{}/", listener.local_addr()?);
    serve(&listener, &answer, close)
}

/// The fixed answer: a head like epollo's for a 1 KiB `text/html` page, and the page.
fn answer(close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let head = format!(
        "HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 10:00:00 GMT\r\nServer: ceiling\r\n\
         Content-Type: text/html; charset=utf-8\r\nETag: \"400-1764583200\"\r\n\
         Content-Length: 1024\r\nLast-Modified: Tue, 01 Dec 2026 10:00:00 GMT\r\n\
         Accept-Ranges: bytes\r\nX-Content-Type-Options: nosniff\r\n\
         Vary: Accept-Encoding\r\n{connection}\r\n"
    );
    let mut answer = head.into_bytes();
    answer.extend_from_slice(&[b'x'; 1024]);
    answer
}

/// The loop: accept what the listener has, answer what each readable socket sent.
fn serve(listener: &TcpListener, answer: &[u8], close: bool) -> io::Result<()> {
    let poller = Poller::new()?;
    let level = Interest::Readable.bits(Trigger::Level);
    poller.register(listener, LISTENER, level)?;
    let mut connections: HashMap<u64, TcpStream> = HashMap::new();
    let mut next = 1;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0; 16 * 1024];
    loop {
        match poller.wait(&mut events, None, 1024) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in events.iter() {
            if event.token == LISTENER {
                while let Ok((stream, _)) = accept4(listener) {
                    poller.register(&stream, Token(next), level)?;
                    connections.insert(next, stream);
                    next += 1;
                }
                continue;
            }
            let Some(mut stream) = connections.get(&event.token.0) else {
                continue;
            };
            let done = match stream.read(&mut buf) {
                Ok(0) => true,
                Ok(_) => send(&stream, answer, close).is_err() || close,
                Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            };
            if done {
                // Dropping the stream closes it, which also takes it out of the epoll set.
                connections.remove(&event.token.0);
            }
        }
    }
}
