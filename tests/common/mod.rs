//! Shared test harness: a `TestServer` guard that runs the real `epollo` binary on port 0
//! against a fresh temporary root, and a tiny HTTP client over real sockets.
//!
//! Nothing here sleeps to synchronise: we wait on the startup line, on socket reads (always
//! with a timeout, so a bug fails a test instead of hanging it), or on the child's exit.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{RwLock, RwLockWriteGuard, mpsc};
use std::time::Duration;

pub mod browser;

use epollo::site::files::FORCE_FALLBACK_VAR;

/// Held while a test leaves a descriptor inheritable (a listener passed the way a service
/// manager passes it). Every child the tests start takes it for reading, so no child started
/// by another test thread meanwhile inherits that descriptor: one more open descriptor in a
/// server shifts the numbers its own get, which the walkthrough's transcripts compare.
static INHERITABLE: RwLock<()> = RwLock::new(());

/// Starts `command` outside any moment when a descriptor of the test process is inheritable.
pub fn spawn(command: &mut Command) -> std::io::Result<Child> {
    let _no_inheritable = INHERITABLE.read().unwrap_or_else(|e| e.into_inner());
    command.spawn()
}

/// While the guard lives, no other child starts: the caller may make a descriptor
/// inheritable, start its own child with `Command::spawn`, and close it again.
pub fn passing_descriptors() -> RwLockWriteGuard<'static, ()> {
    INHERITABLE.write().unwrap_or_else(|e| e.into_inner())
}

/// A command that runs `program` with only the descriptors the test gives it: a shell closes
/// every descriptor above 2 that this process would let it inherit, then becomes `program`
/// (`exec` keeps the pid). The shell that ran `cargo test` may have left some open (an IDE's
/// terminal or a job runner may: the one on our 2-core VM leaves descriptor 10); a server that
/// inherits one numbers its own descriptors from one higher, and the walkthrough's
/// transcripts, which name them, would then say what only that shell sees.
pub fn without_inherited_descriptors(program: &str) -> Command {
    let closes: String = inheritable_descriptors()
        .iter()
        .map(|fd| format!("exec {fd}<&-; "))
        .collect();
    let mut command = Command::new("bash");
    command.args(["-c", &format!("{closes}exec \"$0\" \"$@\""), program]);
    command
}

/// This process's descriptors above 2 without `FD_CLOEXEC` (`flags:` in /proc/self/fdinfo is
/// octal; `O_CLOEXEC` is 02000000 there).
fn inheritable_descriptors() -> Vec<i32> {
    const CLOSE_ON_EXEC: u32 = 0o2000000;
    let Ok(entries) = fs::read_dir("/proc/self/fdinfo") else {
        return Vec::new();
    };
    let mut fds: Vec<i32> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .filter(|fd| {
            let info = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
            info.lines()
                .find_map(|line| line.strip_prefix("flags:"))
                .and_then(|flags| u32::from_str_radix(flags.trim(), 8).ok())
                .is_some_and(|flags| flags & CLOSE_ON_EXEC == 0)
        })
        .collect();
    fds.sort_unstable();
    fds
}

/// How many workers the servers under test run (`EPOLLO_TEST_WORKERS`, default 1).
pub fn workers() -> usize {
    std::env::var("EPOLLO_TEST_WORKERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// Flags every server under test gets (`EPOLLO_TEST_ARGS`, e.g. `--epoll et` or
/// `--max-read 1 --max-write 7 --max-events 1`), grouped as flag and value; `.ci/run` runs
/// the whole suite this way in each epoll mode and under fault injection. A test that names
/// a flag itself keeps its own value.
pub fn extra_flags() -> Vec<Vec<String>> {
    let text = std::env::var("EPOLLO_TEST_ARGS").unwrap_or_default();
    let mut groups: Vec<Vec<String>> = Vec::new();
    for word in text.split_whitespace() {
        match groups.last_mut() {
            Some(group) if !word.starts_with("--") => group.push(word.to_string()),
            _ => groups.push(vec![word.to_string()]),
        }
    }
    groups
}

/// Whether the suite runs with this flag from `EPOLLO_TEST_ARGS` (tests whose subject the
/// flag changes, such as exact syscall counts, can say so).
pub fn runs_with(flag: &str) -> bool {
    extra_flags().iter().any(|group| group[0] == flag)
}

/// How long any single wait in a test may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A unique, empty temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("epollo-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file (creating parent folders) and returns its path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The running binary; killed and reaped on drop, with its stderr printed if the test failed.
pub struct TestServer {
    pub child: Child,
    pub addr: SocketAddr,
    /// The root the server serves (`<tmp>/root`), for tests to add files to.
    pub root: PathBuf,
    stderr_path: PathBuf,
    /// Receives one message when the child's stdout reaches EOF, i.e. when it exited.
    exited: mpsc::Receiver<()>,
    pub dir: TempDir,
}

impl TestServer {
    /// Starts epollo on a fresh temporary root with short timeouts.
    pub fn start() -> TestServer {
        TestServer::start_with(&[], |_| {})
    }

    /// Starts epollo with extra flags, after `fill` has populated the root.
    pub fn start_with(flags: &[&str], fill: impl FnOnce(&Path)) -> TestServer {
        TestServer::start_filled(flags, fill, Spawn::default())
    }

    /// Starts epollo on an existing root.
    pub fn start_on(dir: TempDir, root: PathBuf, flags: &[&str]) -> TestServer {
        TestServer::spawn(dir, root, flags, Spawn::default())
    }

    /// Starts epollo like [`TestServer::start_with`], as an unprivileged user when the tests
    /// run as root (as CI does), so that file permissions apply to it; `fallback` forces the
    /// fallback resolver too.
    pub fn start_unprivileged(
        flags: &[&str],
        fill: impl FnOnce(&Path),
        fallback: bool,
    ) -> TestServer {
        let spawn = Spawn {
            force_fallback: fallback,
            unprivileged: true,
            ..Spawn::default()
        };
        TestServer::start_filled(flags, fill, spawn)
    }

    /// Starts epollo like [`TestServer::start_with`], with its fallback resolver (an `openat`
    /// walk instead of `openat2`) forced by `EPOLLO_FORCE_OPENAT_FALLBACK=1`.
    pub fn start_forcing_fallback(flags: &[&str], fill: impl FnOnce(&Path)) -> TestServer {
        let spawn = Spawn {
            force_fallback: true,
            ..Spawn::default()
        };
        TestServer::start_filled(flags, fill, spawn)
    }

    /// Starts epollo with its open-file limit (soft and hard) set to `fd_limit` by the shell.
    pub fn start_with_fd_limit(
        fd_limit: u32,
        flags: &[&str],
        fill: impl FnOnce(&Path),
    ) -> TestServer {
        let spawn = Spawn {
            fd_limit: Some(fd_limit),
            ..Spawn::default()
        };
        TestServer::start_filled(flags, fill, spawn)
    }

    /// Makes a fresh temporary root, lets `fill` populate it, and starts epollo on it.
    fn start_filled(flags: &[&str], fill: impl FnOnce(&Path), spawn: Spawn) -> TestServer {
        let dir = TempDir::new("it");
        let root = dir.path().join("root");
        fs::create_dir_all(&root).unwrap();
        fill(&root);
        TestServer::spawn(dir, root, flags, spawn)
    }

    fn spawn(dir: TempDir, root: PathBuf, flags: &[&str], spawn: Spawn) -> TestServer {
        let Spawn {
            fd_limit,
            force_fallback,
            unprivileged,
        } = spawn;
        let stderr_path = dir.path().join("stderr.log");
        let stderr = fs::File::create(&stderr_path).unwrap();
        let binary = env!("CARGO_BIN_EXE_epollo");
        let mut command = match fd_limit {
            None => Command::new(binary),
            Some(limit) => {
                // `exec` keeps the pid, so signals and /proc reads reach epollo itself.
                let mut shell = Command::new("sh");
                shell.args([
                    "-c",
                    &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
                    binary,
                ]);
                shell
            }
        };
        command.arg(&root).args([
            "--port",
            "0",
            "--header-timeout",
            "5",
            "--keep-alive-timeout",
            "5",
        ]);
        command.args(flags);
        // EPOLLO_TEST_WORKERS=2 runs the whole suite against several reactors (.ci/run does),
        // except where a test names its own number.
        if !flags.contains(&"--workers") {
            command.args(["--workers", &workers().to_string()]);
        }
        for group in extra_flags() {
            if !flags.contains(&group[0].as_str()) {
                command.args(&group);
            }
        }
        // The child inherits the test's environment, EPOLLO_FORCE_OPENAT_FALLBACK included, so
        // `EPOLLO_FORCE_OPENAT_FALLBACK=1 cargo test --test tests` runs the whole suite through
        // the fallback resolver (.ci/run does); a test can also force it for one server.
        if force_fallback {
            command.env(FORCE_FALLBACK_VAR, "1");
        }
        if unprivileged && running_as_root() {
            use std::os::unix::process::CommandExt;
            command.uid(NOBODY).gid(NOBODY);
        }
        let mut child = crate::common::spawn(
            command
                .env("RUST_LOG", "debug")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(stderr),
        )
        .expect("spawn epollo");
        let stdout = child.stdout.take().unwrap();
        let (exited_tx, exited) = mpsc::channel();
        let addr = read_startup_line(stdout, exited_tx).unwrap_or_else(|e| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "epollo did not start: {e}\nstderr:\n{}",
                fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        });
        TestServer {
            child,
            addr,
            root,
            stderr_path,
            exited,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client connection with read/write timeouts.
    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// One GET on a fresh connection.
    pub fn get(&self, target: &str) -> Response {
        let mut client = self.connect();
        client.send(format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
        client.response()
    }

    /// Sends raw bytes on a fresh connection and reads one response.
    pub fn raw(&self, bytes: &[u8]) -> Response {
        let mut client = self.connect();
        client.send(bytes);
        client.response()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends a signal to the server.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), signal).unwrap();
    }

    /// Waits (bounded) for the server to exit and returns its status.
    /// The child's stdout closing is the readiness signal for its exit.
    pub fn wait_exit(&mut self) -> ExitStatus {
        self.exited
            .recv_timeout(PATIENCE)
            .expect("server did not exit in time");
        self.child.wait().unwrap()
    }

    /// How many descriptors the server process has open.
    pub fn fd_count(&self) -> usize {
        fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }

    /// The server's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// How many times the loop has returned from `epoll_wait` so far, in all workers: asks
    /// with SIGUSR1 and reads the statistics it prints (waiting, bounded, for them). A loop
    /// that spins shows here as thousands a second; an idle one as its four deadline
    /// sweeps. (A count of passes, not CPU time: it does not depend on the machine.)
    pub fn loop_wakeups(&self) -> u64 {
        const MARK: &str = "loop statistics (workers=";
        let printed = self.stderr().matches(MARK).count();
        self.signal(nix::sys::signal::Signal::SIGUSR1);
        let until = std::time::Instant::now() + PATIENCE;
        loop {
            let stderr = self.stderr();
            if stderr.matches(MARK).count() > printed
                && let Some(last) = stderr.rsplit(MARK).next()
                && let Some(open) = last.find("\n  open connections:")
            {
                let block = &last[..open];
                let value = block.split(" wakeups=").nth(1).expect("a wakeups count");
                let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
                return digits.parse().expect("a number");
            }
            assert!(
                std::time::Instant::now() < until,
                "no statistics after SIGUSR1"
            );
            std::thread::yield_now();
        }
    }

    /// Asserts the server still answers a simple request (it has not stalled or died).
    pub fn assert_alive(&self) {
        let path = self.root.join("alive.txt");
        fs::write(&path, "alive").unwrap();
        let response = self.get("/alive.txt");
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"alive");
    }
}

/// How a server under test is started, beyond its flags.
#[derive(Default)]
struct Spawn {
    /// The open-file limit (soft and hard) the shell sets first.
    fd_limit: Option<u32>,
    /// Whether the fallback resolver is forced.
    force_fallback: bool,
    /// Whether it runs as [`NOBODY`] when the tests run as root.
    unprivileged: bool,
}

/// The uid and gid of `nobody`.
const NOBODY: u32 = 65534;

/// Whether the tests run as root (`/proc/self` belongs to the effective user).
pub fn running_as_root() -> bool {
    std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap()) == 0
}

/// Whether `tool` can be run (`tool probe`). Outside CI a missing tool skips its test, with a
/// line on stderr; in CI (`CI` set: `.ci/run` installs every tool the suite uses) it fails
/// the test, so no test passes in CI by skipping.
pub fn tool_installed(tool: &str, probe: &str) -> bool {
    let found = Command::new(tool).arg(probe).output().is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed, and in CI every test must run"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- epollo stderr ---\n{}", self.stderr());
        }
    }
}

/// Reads `epollo: serving ROOT at http://ADDR/` from the child's stdout (bounded), then keeps
/// reading until EOF, when it reports on `exited`.
fn read_startup_line(
    stdout: std::process::ChildStdout,
    exited: mpsc::Sender<()>,
) -> Result<SocketAddr, String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let result = reader.read_line(&mut line).map(|_| line);
        let _ = tx.send(result);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
        let _ = exited.send(());
    });
    let line = rx
        .recv_timeout(PATIENCE)
        .map_err(|_| "no startup line in time".to_string())?
        .map_err(|e| e.to_string())?;
    address_in_startup_line(&line).ok_or_else(|| format!("no address in {line:?}"))
}

/// The address in epollo's first stdout line, `epollo: serving ROOT at http://ADDR/`.
pub fn address_in_startup_line(line: &str) -> Option<SocketAddr> {
    let url = line.trim().rsplit(" at ").next()?;
    let host_port = url.trim_start_matches("http://").trim_end_matches('/');
    host_port.parse().ok()
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A blocking client over a real socket, with timeouts, that can read several responses.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// A client whose receive buffer is small (4 KiB, set before connecting so the window is
    /// small from the start): it plays a slow reader, or one that reads nothing.
    pub fn connect_with_small_window(addr: SocketAddr) -> Client {
        use nix::sys::socket::{
            AddressFamily, SockFlag, SockType, SockaddrIn, connect, setsockopt, socket,
            sockopt::RcvBuf,
        };
        use std::os::fd::AsRawFd;
        let flags = SockFlag::SOCK_CLOEXEC;
        let fd = socket(AddressFamily::Inet, SockType::Stream, flags, None).expect("socket");
        setsockopt(&fd, RcvBuf, &4096).expect("SO_RCVBUF");
        let SocketAddr::V4(v4) = addr else {
            panic!("the test servers listen on IPv4")
        };
        connect(fd.as_raw_fd(), &SockaddrIn::from(v4)).expect("connect");
        Client::from_stream(TcpStream::from(fd))
    }

    /// A client connecting from another loopback address, such as 127.0.0.2.
    pub fn connect_from(addr: SocketAddr, source: std::net::Ipv4Addr) -> Client {
        Client::from_stream(connect_from(addr, source))
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads more bytes into the buffer; returns how many (0 at EOF).
    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 64 * 1024];
        let n = self
            .stream
            .read(&mut chunk)
            .expect("read (timed out or failed)");
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Sends a request and reads its response as a browser or curl would on a keep-alive
    /// connection: if the server had already closed the idle connection (so the request met a
    /// close or a reset before any byte of an answer), reconnect and send it once more
    /// (RFC 9112 §9.3.1 allows retrying an idempotent request then).
    pub fn request_retrying(&mut self, addr: SocketAddr, request: &[u8]) -> Response {
        let answered = self.stream.write_all(request).is_ok() && self.answer_started();
        if !answered {
            *self = Client::connect(addr);
            self.send(request);
        }
        self.response()
    }

    /// Waits for the first byte of an answer; false if the connection closed or was reset
    /// before one came.
    fn answer_started(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        while self.buf.is_empty() {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return false,
                Err(e) => panic!("read (timed out or failed): {e}"),
            }
        }
        true
    }

    /// Reads one response to a GET (body per Content-Length).
    pub fn response(&mut self) -> Response {
        self.read_response(false)
    }

    /// Reads one response to a HEAD (no body, whatever Content-Length says).
    pub fn head_response(&mut self) -> Response {
        self.read_response(true)
    }

    fn read_response(&mut self, head_only: bool) -> Response {
        let head_end = loop {
            if let Some(pos) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break pos + 4;
            }
            assert!(
                self.fill() > 0,
                "connection closed before a full head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("head is UTF-8");
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(
            status_line.starts_with("HTTP/1.1 "),
            "status line {status_line:?}"
        );
        let status = status_line[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, value) = l.split_once(':').expect("header has a colon");
                (name.to_string(), value.trim().to_string())
            })
            .collect();
        let field = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let body = if head_only || status == 204 || status == 304 {
            Vec::new()
        } else if let Some(length) = field("content-length") {
            self.take(length.parse().unwrap())
        } else if field("transfer-encoding").as_deref() == Some("chunked") {
            self.take_chunked()
        } else {
            // Delimited by the close of the connection.
            while self.fill() > 0 {}
            std::mem::take(&mut self.buf)
        };
        Response {
            status,
            headers,
            body,
        }
    }

    /// The next `length` bytes.
    fn take(&mut self, length: usize) -> Vec<u8> {
        while self.buf.len() < length {
            assert!(self.fill() > 0, "connection closed mid-body");
        }
        self.buf.drain(..length).collect()
    }

    /// The next line, without its CRLF.
    fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.buf[..end].to_vec()).expect("a UTF-8 line");
                self.buf.drain(..end + 2);
                return line;
            }
            assert!(self.fill() > 0, "connection closed mid-line");
        }
    }

    /// A body in the chunked coding (RFC 9112 §7.1), decoded.
    fn take_chunked(&mut self) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let size = usize::from_str_radix(&self.line(), 16).expect("a chunk size");
            if size == 0 {
                assert_eq!(self.line(), "", "no trailers expected");
                return body;
            }
            body.extend(self.take(size));
            assert_eq!(self.take(2), b"\r\n", "CRLF after chunk data");
        }
    }

    /// Asserts the server closes the connection with nothing more to say.
    pub fn expect_closed(&mut self) {
        loop {
            match self.stream.read(&mut [0u8; 1024]) {
                Ok(0) => break,
                Ok(n) => panic!("expected EOF, got {n} more bytes"),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                // A signal reached this thread (the test process has children): read again.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => panic!("expected EOF, got {e}"),
            }
        }
        assert!(
            self.buf.is_empty(),
            "unread bytes before EOF: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }
}

/// Deterministic pseudo-random bytes (so a byte-exact comparison means something).
pub fn pattern(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// A TCP connection to `addr` from the loopback address `source` (say 127.0.0.2), so a test
/// can play a second client address.
fn connect_from(addr: SocketAddr, source: std::net::Ipv4Addr) -> TcpStream {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(source, 0)),
    )
    .expect("bind");
    let SocketAddr::V4(target) = addr else {
        panic!("the test server listens on IPv4");
    };
    connect(fd.as_raw_fd(), &SockaddrIn::from(target)).expect("connect");
    TcpStream::from(fd)
}

/// Ever new spellings of the root through two links to it, `a -> .` and `b -> .`: the `n`th
/// is `segments` of them (`a/b/b/a/…/`), chosen by the bits of a pseudo-random number.
pub fn spelling(n: u64, segments: u32) -> String {
    let bits = n
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..segments)
        .map(|bit| {
            if bits >> (bit + 20) & 1 == 0 {
                "a/"
            } else {
                "b/"
            }
        })
        .collect()
}
