//! The learners' walkthrough (`www/docs/walkthrough/`) and `docs/watching-the-loop.md` show
//! `--trace` transcripts of real exchanges. This module replays each scenario against the real
//! binary and fails when what the server prints no longer matches what the docs show, so the
//! docs stay true. `EPOLLO_WALKTHROUGH=write` (see `www/docs/walkthrough/regenerate.sh`)
//! rewrites the transcripts instead, and, when `strace` is installed, the matching `strace -f`
//! lines.
//!
//! A transcript sits between `<!-- transcript:NAME:trace -->` and `<!-- /transcript -->`.
//! Comparison ignores what varies between runs: the time column, how long a wait blocked,
//! wait timeouts, the client's port, byte counts, the hang-up flags of events (`RDHUP`, `HUP`:
//! whether they ride on an event depends on timing; the `recv n=0` after it does not), and
//! `epoll_wait` calls that timed out with nothing ready (a sweep tick on a slow machine). Scenarios whose middle depends on socket
//! buffer sizes (a slow reader) keep their first and last lines and elide the rounds between.

use crate::common::{Client, pattern};
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

/// The `strace` filter the docs use.
const STRACE_FILTER: &str = "trace=network,epoll_wait,epoll_ctl,sendfile,openat2,statx,readlink,pread64,inotify_add_watch,close";

/// The size of the slow reader's file.
const SLOW_LEN: usize = 256 * 1024;

/// How the server under test opens files.
#[derive(Clone, Copy)]
enum Resolver {
    /// With `openat2`, as the pages show, even when the suite forces the fallback walk (a
    /// nested path is several `openat` calls there, so the transcripts would differ).
    AsThePagesShow,
    /// However the suite runs (`EPOLLO_FORCE_OPENAT_FALLBACK=1` in one of CI's passes).
    AsTheSuiteRuns,
}

impl Resolver {
    /// The environment the server gets for it.
    fn env(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Resolver::AsThePagesShow => vec![("EPOLLO_FORCE_OPENAT_FALLBACK", "0")],
            Resolver::AsTheSuiteRuns => Vec::new(),
        }
    }
}

/// A server started with `--trace`, whose trace lines arrive over a channel as it prints them.
struct Traced {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Traced {
    fn start(
        root: &Path,
        flags: &[&str],
        strace_to: Option<(&Path, &str)>,
        resolver: Resolver,
    ) -> Traced {
        let binary = env!("CARGO_BIN_EXE_epollo");
        let mut command = match strace_to {
            Some((out, filter)) => {
                let mut strace = crate::common::without_inherited_descriptors("strace");
                strace.args(["-f", "-qq", "-s", "300", "-e", filter, "-o"]);
                strace.arg(out).arg(binary);
                strace
            }
            // The transcripts name descriptors, so the server gets none from our shell.
            None => crate::common::without_inherited_descriptors(binary),
        };
        command
            .arg(root)
            // Each connection reaches the loop the moment it is made, so that every scenario
            // can show it silent first (the pages say why: by default the kernel holds it).
            .args(["--port", "0", "--trace", "--defer-accept", "0"])
            .args(flags)
            .env("RUST_LOG", "warn")
            .envs(resolver.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = crate::common::spawn(&mut command).expect("spawn epollo");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut startup = String::new();
        stdout.read_line(&mut startup).unwrap();
        let addr = crate::common::address_in_startup_line(&startup)
            .unwrap_or_else(|| panic!("no address in {startup:?}"));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Traced {
            child,
            addr,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded) for a trace line that contains every one of `parts`.
    fn wait_for(&mut self, parts: &[&str]) {
        loop {
            let line = self
                .lines
                .recv_timeout(crate::common::PATIENCE)
                .unwrap_or_else(|_| {
                    panic!("no line with {parts:?}; so far:\n{}", self.seen.join("\n"))
                });
            let found = parts.iter().all(|part| line.contains(part));
            self.seen.push(line);
            if found {
                return;
            }
        }
    }

    /// Waits until connection `id` is registered, which happens at the end of the pass,
    /// after the accept loop has found the queue empty, so a client connecting next is
    /// accepted in a pass of its own.
    fn wait_registered(&mut self, id: u64) {
        self.wait_for(&["epoll_ctl ADD", &format!("conn={id} ")]);
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// A client whose receive buffer is small, so that it can play a slow reader.
    fn connect_slow(&self) -> Client {
        Client::connect_with_small_window(self.addr)
    }

    /// Signals epollo (under `strace`, the tracer's child rather than the tracer).
    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.id();
        let server = traced_server(pid).unwrap_or(pid);
        let pid = nix::unistd::Pid::from_raw(server as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
    }

    /// Shuts the server down (unless the scenario did) and returns every trace line.
    fn finish(mut self, already_stopping: bool) -> Vec<String> {
        if !already_stopping {
            self.signal(nix::sys::signal::Signal::SIGTERM);
        }
        while let Ok(line) = self.lines.recv_timeout(crate::common::PATIENCE) {
            self.seen.push(line);
        }
        let _ = self.child.wait();
        self.seen
            .into_iter()
            .filter(|line| is_trace_line(line))
            .collect()
    }
}

/// The server `strace` (process `pid`) runs, if it runs one: its first child.
fn traced_server(pid: u32) -> Option<u32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// Whether a stderr line is a trace line (`SECONDS WHAT ...`).
fn is_trace_line(line: &str) -> bool {
    line.split_whitespace()
        .next()
        .is_some_and(|seconds| seconds.contains('.') && seconds.parse::<f64>().is_ok())
}

const GET_HELLO: &[u8] = b"GET /hello.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// One scenario: its name, its flags, and the client's part.
struct Scenario {
    name: &'static str,
    flags: &'static [&'static str],
    play: fn(&mut Traced),
    elide: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "one-request",
        flags: &[],
        play: one_request,
        elide: false,
    },
    Scenario {
        name: "keep-alive-lt",
        flags: &["--epoll", "lt"],
        play: keep_alive,
        elide: false,
    },
    Scenario {
        name: "keep-alive-et",
        flags: &["--epoll", "et"],
        play: keep_alive,
        elide: false,
    },
    Scenario {
        name: "pipelining",
        flags: &[],
        play: pipelining,
        elide: false,
    },
    Scenario {
        name: "slow-reader-lt",
        flags: &["--epoll", "lt", "--sndbuf", "4096"],
        play: slow_reader,
        elide: true,
    },
    Scenario {
        name: "slow-reader-et",
        flags: &["--epoll", "et", "--sndbuf", "4096"],
        play: slow_reader,
        elide: true,
    },
    Scenario {
        name: "idle-socket",
        flags: &[],
        play: idle_socket,
        elide: false,
    },
    Scenario {
        name: "shutdown",
        flags: &["--sndbuf", "4096"],
        play: shutdown,
        elide: true,
    },
    Scenario {
        name: "files",
        flags: &[],
        play: files,
        elide: false,
    },
];

fn one_request(server: &mut Traced) {
    let mut client = server.connect();
    server.wait_registered(1);
    client.send(GET_HELLO);
    assert_eq!(client.response().status, 200);
    drop(client);
    server.wait_for(&["epoll_ctl DEL", "conn=1"]);
}

fn keep_alive(server: &mut Traced) {
    let mut client = server.connect();
    server.wait_registered(1);
    for _ in 0..2 {
        client.send(GET_HELLO);
        assert_eq!(client.response().status, 200);
        server.wait_for(&["state conn=1 writing -> idle"]);
    }
    drop(client);
    server.wait_for(&["epoll_ctl DEL", "conn=1"]);
}

fn pipelining(server: &mut Traced) {
    let mut client = server.connect();
    server.wait_registered(1);
    let three: Vec<u8> = [
        GET_HELLO,
        b"GET /style.css HTTP/1.1\r\nHost: localhost\r\n\r\n",
        GET_HELLO,
    ]
    .concat();
    client.send(&three);
    for _ in 0..3 {
        assert_eq!(client.response().status, 200);
    }
    drop(client);
    server.wait_for(&["epoll_ctl DEL", "conn=1"]);
}

fn slow_reader(server: &mut Traced) {
    let mut client = server.connect_slow();
    server.wait_registered(1);
    client.send(b"GET /docs/walkthrough/slow.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // The server fills the socket, and the send buffer pushes back.
    server.wait_for(&["sendfile", "conn=1", "short"]);
    assert_eq!(client.response().body.len(), SLOW_LEN);
    server.wait_for(&["state conn=1 writing -> idle"]);
    drop(client);
    server.wait_for(&["epoll_ctl DEL", "conn=1"]);
}

fn idle_socket(server: &mut Traced) {
    let idle = server.connect(); // a browser's pre-connected socket: it says nothing yet
    server.wait_registered(1);
    let mut client = server.connect();
    server.wait_registered(2);
    client.send(GET_HELLO);
    assert_eq!(client.response().status, 200);
    drop(client);
    server.wait_for(&["epoll_ctl DEL", "conn=2"]);
    drop(idle);
    server.wait_for(&["epoll_ctl DEL", "conn=1"]);
}

/// Every kind of file-system work a request can cause (not shown in the docs; the pairing
/// test holds its calls against strace): a listing, a miss, a precompressed sibling that is
/// not there, a symlink, a redirect, and a cached file changed under the cache.
fn files(server: &mut Traced) {
    let mut client = server.connect();
    server.wait_registered(1);
    let requests: [(&str, u16); 6] = [
        ("/docs/", 200),
        ("/nope.txt", 404),
        ("/hello.txt", 200),
        ("/link.txt", 200),
        ("/docs", 301),
        ("/docs/walkthrough/", 200),
    ];
    for (target, status) in requests {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n\r\n");
        client.send(request.as_bytes());
        assert_eq!(client.response().status, status, "{target}");
    }
    drop(client);
    server.wait_for(&["epoll_ctl DEL", "conn=1"]);
}

fn shutdown(server: &mut Traced) {
    let mut idle = server.connect();
    server.wait_registered(1);
    idle.send(GET_HELLO);
    assert_eq!(idle.response().status, 200);
    server.wait_for(&["state conn=1 writing -> idle"]);
    let mut downloading = server.connect_slow();
    server.wait_registered(2);
    downloading.send(b"GET /docs/walkthrough/slow.bin HTTP/1.1\r\nHost: localhost\r\n\r\n");
    server.wait_for(&["sendfile", "conn=2", "short"]);
    server.signal(nix::sys::signal::Signal::SIGTERM);
    server.wait_for(&["epoll_ctl DEL", "token=listener"]);
    let mut rest = Vec::new();
    downloading.stream.read_to_end(&mut rest).unwrap();
    assert!(rest.len() > SLOW_LEN, "the download in flight finished");
}

/// Runs a scenario on a copy of the demo site (with the slow reader's file), returning the
/// trace lines and, when asked and installed, the `strace` lines.
fn run(scenario: &Scenario, with_strace: bool) -> (Vec<String>, Option<Vec<String>>) {
    let filter = with_strace.then_some(STRACE_FILTER);
    let (trace, strace) = run_filtered(scenario, filter, Resolver::AsThePagesShow);
    // From the listening socket on: before it, the loader reads libc and the root is opened.
    let from_the_socket = |lines: Vec<String>| {
        let start = lines.iter().position(|l| l.starts_with("socket("));
        lines[start.unwrap_or(0)..].to_vec()
    };
    (trace, strace.map(from_the_socket))
}

/// [`run`], with `strace -e FILTER` when `filter` is given.
fn run_filtered(
    scenario: &Scenario,
    filter: Option<&str>,
    resolver: Resolver,
) -> (Vec<String>, Option<Vec<String>>) {
    let with_strace = filter.is_some();
    let dir = crate::common::TempDir::new("walkthrough");
    let root = dir.path().join("www");
    fs::create_dir_all(root.join("docs/walkthrough")).unwrap();
    for name in ["hello.txt", "style.css"] {
        fs::copy(site_root().join(name), root.join(name)).unwrap();
    }
    fs::write(root.join("docs/walkthrough/slow.bin"), pattern(SLOW_LEN)).unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link.txt")).unwrap();
    let strace_path = dir.path().join("strace.txt");
    let strace_to = filter.map(|filter| (strace_path.as_path(), filter));
    let mut server = Traced::start(&root, scenario.flags, strace_to, resolver);
    (scenario.play)(&mut server);
    let stopping = scenario.name == "shutdown";
    let lines = server.finish(stopping);
    // strace -f -o starts each line with the thread id: left out, as there is one thread.
    let strace = with_strace.then(|| {
        fs::read_to_string(&strace_path)
            .unwrap_or_default()
            .lines()
            .map(|line| match line.split_once(' ') {
                Some((pid, rest)) if pid.parse::<u32>().is_ok() => rest.trim_start().to_string(),
                _ => line.to_string(),
            })
            .collect()
    });
    (lines, strace)
}

fn site_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("www")
}

/// The lines as compared: no time column, what varies between runs masked, and only the
/// lines the docs show (see [`kept`]), with a slow download's rounds elided from its first
/// writable event on (how many rounds there are depends on how fast the client reads: the
/// docs show two, a loaded machine may take only one), and no elision marker.
fn normalise(lines: &[String], elide: bool) -> Vec<String> {
    let masked: Vec<String> = kept(lines)
        .into_iter()
        .map(|(_, masked)| masked)
        .filter(|line| !line.starts_with('…'))
        .collect();
    match elided(&masked, 1) {
        Some(range) if elide => {
            let mut out = masked[..range.start].to_vec();
            out.extend_from_slice(&masked[range.end..]);
            out
        }
        _ => masked,
    }
}

/// The lines worth showing and comparing, each with its masked form: without sweep ticks
/// (waits that timed out with nothing ready) and without wakeups that did nothing (a wait
/// whose one event led to no work before the next wait). Edge-triggered, a writable edge
/// that comes while nothing is being sent does that, or merges into the next event, as
/// timing has it.
fn kept(lines: &[String]) -> Vec<(String, String)> {
    let pairs: Vec<(String, String)> = lines
        .iter()
        .map(|line| (line.clone(), masked(line)))
        .filter(|(_, masked)| !masked.starts_with("epoll_wait ready=0 "))
        .collect();
    let is_wait = |i: usize| {
        pairs
            .get(i)
            .is_some_and(|(_, l)| l.starts_with("epoll_wait "))
    };
    let is_event = |i: usize| pairs.get(i).is_some_and(|(_, l)| l.starts_with("event "));
    let mut out = Vec::with_capacity(pairs.len());
    let mut i = 0;
    while i < pairs.len() {
        if is_wait(i) && is_event(i + 1) && is_wait(i + 2) {
            i += 2; // a wakeup that did nothing
        } else {
            out.push(pairs[i].clone());
            i += 1;
        }
    }
    out
}

/// One line without its time column, with the fields that vary between runs masked.
fn masked(line: &str) -> String {
    let line = line.trim();
    let without_time = match line.split_once(' ') {
        Some((first, rest)) if first.parse::<f64>().is_ok() => rest,
        _ => line,
    };
    let is_event = without_time.starts_with("event ");
    without_time
        .split(' ')
        // A hang-up is a hint whose arrival races with what comes before it: the `recv n=0`
        // that follows shows the close either way, so these flags are not compared.
        .filter(|word| !(is_event && (*word == "RDHUP" || *word == "HUP")))
        .map(mask)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Masks the value of a field that varies between runs.
fn mask(word: &str) -> String {
    for key in ["blocked=", "n="] {
        if word.starts_with(key) {
            return format!("{key}*");
        }
    }
    if let Some(ms) = word.strip_prefix("timeout=")
        && ms != "-1"
    {
        return "timeout=*".into();
    }
    if let Some(path) = word.strip_prefix("\"/") {
        // A real path (`readlink`'s answer) lies in the run's temporary directory.
        let name = path.rsplit('/').next().unwrap_or_default();
        return format!("\"…/{name}");
    }
    if let Some(peer) = word.strip_prefix("peer=") {
        let host = peer.rsplit_once(':').map_or(peer, |(host, _)| host);
        return format!("peer={host}:*");
    }
    word.to_string()
}

/// For a slow download, the lines to leave out: after the `rounds`th writable event of a
/// connection (and, for the docs, with `rounds` 2, its `sendfile`), up to the last
/// `sendfile`. The rounds between depend on socket buffer sizes, not on epollo.
fn elided(lines: &[String], rounds: usize) -> Option<std::ops::Range<usize>> {
    let last_kept_writable = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| {
            line.starts_with("event ") && line.contains("conn=") && line.contains(" OUT")
        })
        .nth(rounds - 1)?
        .0;
    let start = last_kept_writable + if rounds > 1 { 2 } else { 1 };
    let end = lines
        .iter()
        .rposition(|line| line.starts_with("sendfile "))?;
    (end > start).then_some(start..end)
}

/// Files whose transcripts this module checks (and writes).
fn documents() -> Vec<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![repo.join("docs/watching-the-loop.md")];
    let pages = site_root().join("docs/walkthrough");
    let mut html: Vec<PathBuf> = fs::read_dir(&pages)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "html"))
        .collect();
    html.sort();
    files.extend(html);
    files
}

/// One marked block in a document.
struct Block {
    /// Scenario name.
    name: String,
    /// `trace` or `strace`.
    kind: String,
    /// Byte range of the content between the markers.
    range: std::ops::Range<usize>,
}

const OPEN: &str = "<!-- transcript:";
const CLOSE: &str = "<!-- /transcript -->";

fn blocks(text: &str) -> Vec<Block> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(start) = text[at..].find(OPEN).map(|i| i + at) {
        let head_end = text[start..].find("-->").unwrap() + start + 3;
        let label = &text[start + OPEN.len()..head_end - 3].trim();
        let (name, kind) = label.split_once(':').expect("transcript:NAME:KIND");
        let end = text[head_end..].find(CLOSE).expect("a closing marker") + head_end;
        found.push(Block {
            name: name.into(),
            kind: kind.into(),
            range: head_end..end,
        });
        at = end + CLOSE.len();
    }
    found
}

/// The lines of a block as shown (HTML unescaped, Markdown fences and elisions dropped).
fn shown_lines(content: &str) -> Vec<String> {
    content
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with("```"))
        .map(|line| {
            line.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
        })
        .collect()
}

/// A block's new content: the lines, escaped for HTML or fenced for Markdown.
fn render(lines: &[String], markdown: bool) -> String {
    if markdown {
        format!("\n```text\n{}\n```\n", lines.join("\n"))
    } else {
        let escaped: Vec<String> = lines
            .iter()
            .map(|line| {
                line.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            })
            .collect();
        escaped.join("\n") // inside <pre>: no blank first or last line
    }
}

/// What the docs show of a run: the real lines that [`kept`] keeps, with a slow download's
/// middle rounds replaced by one line saying how many were left out.
fn shown(lines: &[String], elide: bool) -> Vec<String> {
    let pairs = kept(lines);
    let masked: Vec<String> = pairs.iter().map(|(_, m)| m.clone()).collect();
    let real: Vec<String> = pairs.into_iter().map(|(r, _)| r).collect();
    match elided(&masked, 2) {
        Some(range) if elide => {
            let mut out = real[..range.start].to_vec();
            out.push(format!(
                "… ({} lines of the same rounds left out) …",
                range.len()
            ));
            out.extend_from_slice(&real[range.end..]);
            out
        }
        _ => real,
    }
}

#[test]
fn the_walkthrough_transcripts_match_what_the_server_prints() {
    if crate::common::workers() > 1 || std::env::var_os("EPOLLO_TEST_ARGS").is_some() {
        return; // the scenarios choose their own flags; one run of them is enough
    }
    let write = std::env::var("EPOLLO_WALKTHROUGH").is_ok_and(|v| v == "write");
    let with_strace = write
        && Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|out| out.status.success());
    let mut runs: HashMap<&str, (Vec<String>, Option<Vec<String>>)> = HashMap::new();
    let mut checked = 0;
    for path in documents() {
        let text = fs::read_to_string(&path).unwrap();
        let markdown = path.extension().is_some_and(|ext| ext == "md");
        let mut rewritten = String::new();
        let mut copied_to = 0;
        for block in blocks(&text) {
            let scenario = SCENARIOS
                .iter()
                .find(|s| s.name == block.name)
                .unwrap_or_else(|| panic!("{}: no scenario {:?}", path.display(), block.name));
            let (trace, strace) = runs
                .entry(scenario.name)
                .or_insert_with(|| run(scenario, with_strace));
            let content = &text[block.range.clone()];
            let fresh = match (block.kind.as_str(), write) {
                ("trace", true) => Some(shown(trace, scenario.elide)),
                ("strace", true) => strace.clone(),
                ("trace", false) => {
                    let expected = normalise(&shown_lines(content), scenario.elide);
                    let actual = normalise(trace, scenario.elide);
                    assert_eq!(
                        expected,
                        actual,
                        "{}: transcript {:?} no longer matches the server; regenerate with \
                         www/docs/walkthrough/regenerate.sh",
                        path.display(),
                        block.name
                    );
                    checked += 1;
                    None
                }
                _ => None,
            };
            if let Some(lines) = fresh {
                rewritten.push_str(&text[copied_to..block.range.start]);
                rewritten.push_str(&render(&lines, markdown));
                copied_to = block.range.end;
            }
        }
        if write {
            rewritten.push_str(&text[copied_to..]);
            fs::write(&path, rewritten).unwrap();
        }
    }
    assert!(
        write || checked >= SCENARIOS.len(),
        "only {checked} transcripts checked"
    );
}

#[test]
fn elision_keeps_the_first_rounds_and_the_end() {
    let lines: Vec<String> = [
        "event fd=8 token=0:1 conn=1 OUT",
        "sendfile fd=8 conn=1 n=* short",
        "event fd=8 token=0:1 conn=1 OUT",
        "sendfile fd=8 conn=1 n=* short",
        "event fd=8 token=0:1 conn=1 OUT",
        "sendfile fd=8 conn=1 n=* short",
        "event fd=8 token=0:1 conn=1 OUT",
        "sendfile fd=8 conn=1 n=*",
        "state conn=1 writing -> idle",
    ]
    .map(String::from)
    .to_vec();
    let shown = shown(&lines, true);
    assert_eq!(shown[3], "sendfile fd=8 conn=1 n=* short");
    assert!(shown[4].starts_with("… (3 lines"), "{shown:?}");
    assert_eq!(shown[5], "sendfile fd=8 conn=1 n=*");
    assert_eq!(shown.len(), 7);
    // Compared, a download that took fewer rounds (a client reading faster) still matches.
    let documented = normalise(&shown, true);
    assert_eq!(
        documented,
        normalise(
            &[lines[0].clone(), lines[7].clone(), lines[8].clone()],
            true
        )
    );
    assert_eq!(documented, normalise(&lines, true));
}

#[test]
fn elision_leaves_a_download_without_writable_rounds_alone() {
    let lines: Vec<String> = [
        "send fd=8 conn=1 n=*",
        "sendfile fd=8 conn=1 n=*",
        "state conn=1 writing -> idle",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(normalise(&lines, true), lines);
    assert_eq!(shown(&lines, true), lines);
}

/// The system calls the loop makes on sockets, epoll, the signalfd, inotify and the files of
/// a request, with the `write(2, …)` of the trace lines between them.
const EVERY_CALL: &str = "trace=epoll_wait,epoll_ctl,accept4,recvfrom,sendto,sendfile,shutdown,\
setsockopt,read,write,close,openat2,openat,statx,newfstatat,readlink,readlinkat,pread64,\
getdents64,inotify_add_watch,poll";

/// The trace line's word for a system call strace shows, if the loop traces that call.
fn traced_as(call: &str) -> Option<&'static str> {
    match call {
        "epoll_wait" => Some("epoll_wait"),
        "epoll_ctl" => Some("epoll_ctl"),
        "accept4" => Some("accept4"),
        "recvfrom" => Some("recv"),
        "sendto" => Some("send"),
        "sendfile" => Some("sendfile"),
        "shutdown" => Some("shutdown"),
        "close" => Some("close"),
        "openat2" => Some("openat2"),
        "openat" => Some("openat"),
        "statx" => Some("statx"),
        "newfstatat" => Some("newfstatat"),
        "readlink" => Some("readlink"),
        "readlinkat" => Some("readlinkat"),
        "pread64" => Some("pread64"),
        "getdents64" => Some("getdents64"),
        "inotify_add_watch" => Some("inotify_add_watch"),
        "poll" => Some("poll"),
        _ => None,
    }
}

/// Every system call of the loop gets exactly one trace line, right after it: read from
/// `strace -f` of each walkthrough scenario, where the trace lines appear as the
/// `write(2, …)` calls that print them. Reads are matched by their descriptors (sockets, the
/// control descriptor and inotify); every close is the loop's (a socket, or a file a request
/// opened).
#[test]
fn every_system_call_of_the_loop_is_followed_by_its_one_trace_line() {
    if !crate::common::tool_installed("strace", "-V") {
        return;
    }
    for scenario in SCENARIOS {
        let (_, strace) = run_filtered(scenario, Some(EVERY_CALL), Resolver::AsTheSuiteRuns);
        let strace = strace.unwrap();
        if scenario.name == "files" {
            // Not vacuous: the file calls this test is about were made (openat under
            // EPOLLO_FORCE_OPENAT_FALLBACK=1, which CI runs too).
            for call in [
                "getdents64(",
                "newfstatat(",
                "readlink(",
                "pread64(",
                "statx(",
            ] {
                assert!(strace.iter().any(|l| l.starts_with(call)), "no {call}");
            }
            assert!(
                strace
                    .iter()
                    .any(|l| l.starts_with("openat2(") || l.starts_with("openat("))
            );
        }
        let mut sockets: Vec<String> = vec!["3".into(), "7".into()]; // control, inotify
        let mut expecting: Option<(String, &str)> = None; // a call, and its word
        // From the loop's first wait to its last trace line (then the process exits, and
        // closes what it holds on its way out).
        let loop_starts = strace.iter().position(|l| l.starts_with("epoll_wait("));
        let loop_ends = strace
            .iter()
            .rposition(|l| l.starts_with("write(2, \"") && l.contains(' '));
        let (first, last) = (loop_starts.expect("the loop waited"), loop_ends.unwrap());
        for (at, line) in strace[first..=last].iter().enumerate() {
            let Some((call, rest)) = line.split_once('(') else {
                continue;
            };
            let first_arg = rest
                .split([',', ')'])
                .next()
                .unwrap_or_default()
                .to_string();
            if call == "write" && first_arg == "2" {
                let text = rest.split('"').nth(1).unwrap_or_default();
                let word = text.split_whitespace().nth(1).unwrap_or_default();
                if let Some((call_line, wanted)) = expecting.take() {
                    assert_eq!(
                        word, wanted,
                        "{}: after {call_line}, the next trace line is {text}",
                        scenario.name
                    );
                } else {
                    let syscall_words = [
                        "epoll_wait",
                        "epoll_ctl",
                        "accept4",
                        "recv",
                        "send",
                        "sendfile",
                        "shutdown",
                        "setsockopt",
                        "close",
                        "read",
                        "openat2",
                        "openat",
                        "statx",
                        "newfstatat",
                        "readlink",
                        "readlinkat",
                        "pread64",
                        "getdents64",
                        "inotify_add_watch",
                    ];
                    assert!(
                        !syscall_words.contains(&word),
                        "{}: a {word} line with no call before it: {text}",
                        scenario.name
                    );
                }
                continue;
            }
            let result = line.rsplit("= ").next().unwrap_or_default();
            if call == "accept4" && !sockets.contains(&first_arg) {
                sockets.push(first_arg.clone()); // the listener
            }
            if call == "accept4" && !result.starts_with('-') {
                sockets.push(
                    result
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            let word = match call {
                "read" if sockets.contains(&first_arg) => Some("read"),
                // The control descriptor, the root, epoll and inotify are closed on the way
                // out, after the loop.
                "close" if ["3", "4", "6", "7"].contains(&first_arg.as_str()) => None,
                _ => traced_as(call),
            };
            if call == "close" {
                sockets.retain(|fd| *fd != first_arg); // the number may name a file next
            }
            if let Some(word) = word {
                if let Some((previous, _)) = &expecting {
                    let before = strace[first + at.saturating_sub(12)..=first + at].join("\n");
                    panic!("{}: {previous} has no trace line:\n{before}", scenario.name);
                }
                expecting = Some((line.clone(), word));
            }
        }
    }
}

/// What the one-request page says a request costs, counted with every system call traced:
/// the first request for a file opens and reads it (which the page's strace filter hides), the
/// next one is `recvfrom`, one inotify `read`, `sendto`, and the wait before them.
#[test]
fn the_one_request_pages_cost_of_a_request_is_what_strace_counts() {
    if !crate::common::tool_installed("strace", "-V") {
        return;
    }
    let dir = crate::common::TempDir::new("cost");
    let root = dir.path().join("www");
    fs::create_dir_all(&root).unwrap();
    fs::copy(site_root().join("hello.txt"), root.join("hello.txt")).unwrap();
    let out = dir.path().join("strace.txt");
    let binary = env!("CARGO_BIN_EXE_epollo");
    let mut child = crate::common::spawn(
        Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&out)
            .arg(binary)
            .arg(&root)
            .args(["--port", "0", "--access-log", "off", "--workers", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let mut startup = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut startup)
        .unwrap();
    let addr = crate::common::address_in_startup_line(&startup).unwrap();
    let mut client = Client::connect(addr);
    // (A third request, so that the wait after the second is in the log.)
    for _ in 0..3 {
        client.send(GET_HELLO);
        assert_eq!(client.response().status, 200);
    }
    drop(client);
    // The server first (killing strace alone would leave it running, detached), then strace.
    if let Some(server) = traced_server(child.id()) {
        let pid = nix::unistd::Pid::from_raw(server as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let _ = child.wait();
    let calls: Vec<String> = fs::read_to_string(&out)
        .unwrap()
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .nth(1)?
                .split('(')
                .next()
                .map(String::from)
        })
        .collect();
    let requests: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i] == "recvfrom")
        .collect();
    let (first, second) = (requests[0], requests[1]);
    let first_request = &calls[first..second];
    // (openat2, or openat through the fallback resolver: .ci/run forces it in one pass.)
    let opened = ["openat2", "openat"]
        .iter()
        .any(|call| first_request.contains(&call.to_string()));
    assert!(opened, "{first_request:?}");
    for call in ["statx", "pread64", "sendto"] {
        assert!(
            first_request.contains(&call.to_string()),
            "{call} in {first_request:?}"
        );
    }
    assert_eq!(calls[second - 1], "epoll_wait", "{:?}", &calls[first..]);
    let next_wait = second
        + calls[second..]
            .iter()
            .position(|c| c == "epoll_wait")
            .unwrap();
    assert_eq!(
        calls[second..next_wait],
        ["recvfrom", "read", "sendto"],
        "{:?}",
        &calls[first..]
    );
}
