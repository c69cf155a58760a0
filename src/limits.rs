//! Every default and limit epollo enforces, each with the reason for its value.
//!
//! Where this sits in the loop: nowhere and everywhere. The reactor (`reactor/`), the state
//! machine (`connection/`) and the parser (`http/request.rs`) read these constants; the flag
//! table in `config.rs` defaults from them. Keeping them in one file means docs/security.md's limits table
//! has one source, and a reader can see at a glance what a hostile client is allowed to cost.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The folder served when none is named, inside epollo's own checkout: the demo site.
pub const DEFAULT_ROOT: &str = "./www";

/// The folder served when none is named anywhere else: the current directory, as
/// `python -m http.server` and live-server do.
pub const CURRENT_DIR_ROOT: &str = ".";

/// The address we listen on by default: loopback only, so a local folder is never exposed to
/// the network unless asked (`--bind 0.0.0.0`).
pub const DEFAULT_BIND: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The default port: the customary unprivileged alternative to 80.
pub const DEFAULT_PORT: u16 = 8080;

/// The file served for a directory, as every static server does.
pub const DEFAULT_INDEX: &str = "index.html";

/// Longest method name we accept before answering `400`; the longest registered methods are
/// about a dozen letters.
pub const MAX_METHOD_BYTES: usize = 32;

/// Largest request head (request line plus headers) we buffer before answering `431`.
///
/// 16 KiB holds a request target of 8,000 octets (which RFC 9110 §4.1 says we should accept)
/// with room for ordinary headers and cookies. nginx's default buffers allow 8 KiB per line.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// Longest request target we accept before answering `414`.
///
/// RFC 9110 §4.1 recommends supporting at least 8,000 octets; 8 KiB is just above that.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// Most header fields in one request before answering `431`.
///
/// httparse parses into a fixed array of this size; real browsers send 10 to 20.
pub const MAX_HEADERS: usize = 64;

/// Upper bound for `--max-headers`: httparse parses into an array of this many slots.
pub const MAX_HEADERS_CAP: usize = 256;

/// The size limits a request must respect; each is a flag defaulting from the constants here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Largest request head in bytes (`--max-head-bytes`); past it: 431.
    pub max_head_bytes: usize,
    /// Longest request target (`--max-target-bytes`); past it: 414.
    pub max_target_bytes: usize,
    /// Most header fields (`--max-headers`, at most [`MAX_HEADERS_CAP`]); past it: 431.
    pub max_headers: usize,
    /// Largest request body we read and discard (`--max-body-bytes`); past it: 413.
    pub max_body_bytes: u64,
    /// Copy `Referer`, `User-Agent` and the forwarding fields for the access log (set when
    /// `--log-format` or `--trusted-proxy` needs them; otherwise they cost nothing).
    pub log_fields: bool,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_head_bytes: MAX_HEAD_BYTES,
            max_target_bytes: MAX_TARGET_BYTES,
            max_headers: MAX_HEADERS,
            max_body_bytes: MAX_DISCARD_BODY_BYTES,
            log_fields: false,
        }
    }
}

/// Largest request body on GET/HEAD (or on a refused method) that we read and throw away before
/// answering `413` and closing.
///
/// We never use a body, so reading one only costs time; 1 MiB is generous for a form someone
/// posted to a static site by mistake, and small enough that discarding it is cheap.
pub const MAX_DISCARD_BODY_BYTES: u64 = 1024 * 1024;

/// Most hex digits in a chunk size of a chunked request body: 16 hold any `u64`, and leading
/// zeros beyond that only waste our time.
pub const MAX_CHUNK_SIZE_DIGITS: usize = 16;

/// Most bytes of chunk extensions on one size line of a chunked request body; we ignore
/// extensions, so they only need to be short enough to skip cheaply.
pub const MAX_CHUNK_EXTENSION_BYTES: usize = 4096;

/// Size of the server's one read buffer, shared by every connection.
///
/// Each read lands here and only the bytes that arrived are copied to the connection, so an
/// idle or slow connection holds no buffer of this size. Large enough for the largest head
/// we accept in one read, and for a load tester's pipelined batch.
pub const READ_BUFFER_BYTES: usize = MAX_HEAD_BYTES;

/// A file body up to this size goes in one `sendfile` call (a 100 KiB file: one call, and
/// the client takes it in as few reads as the kernel allows).
pub const SENDFILE_CHUNK_BYTES: usize = 512 * 1024;

/// A longer body goes at most this much per call, one call per turn: the connection then
/// yields to the others (level-triggered, epoll reports the socket again on the next pass),
/// so one client downloading a large file cannot starve the rest. A call takes what the
/// send buffer has room for, so in practice it is bounded by the buffer (4 MiB at most by
/// default, `net.ipv4.tcp_wmem`), as nginx's `sendfile_max_chunk` (2 MiB) bounds its calls.
pub const SENDFILE_STEP_BYTES: usize = 2 * 1024 * 1024;

/// The step instead, when the kernel paces the connection's sending (BBR does): a deep
/// queue of unsent data is then let out in small timed bursts, each a wakeup for us and for
/// the client. Measured on loopback, 10 MiB at `-c10` (`docs/benchmarks.md`): with BBR,
/// 64 KiB steps cost the server and the client together about a fifth less CPU per response
/// than 512 KiB or 2 MiB calls, and got 1.5 times the responses; with cubic or reno, 2 MiB
/// calls cost about a fifth less than 64 KiB steps at the same rate.
pub const SENDFILE_PACED_STEP_BYTES: usize = 64 * 1024;

/// The step for connections whose congestion control is `congestion` (a kernel name).
pub fn sendfile_step(congestion: &str) -> usize {
    match congestion.starts_with("bbr") {
        true => SENDFILE_PACED_STEP_BYTES,
        false => SENDFILE_STEP_BYTES,
    }
}

/// Files up to this size are read into the response buffer instead of going by `sendfile`.
///
/// Then a small response leaves in one `write`, and the answers to pipelined requests are
/// batched into as few writes as the socket allows. Above this, the copy costs more than the
/// extra syscall, and `sendfile` moves the body without copying it through user space.
pub const INLINE_FILE_MAX_BYTES: u64 = 16 * 1024;

/// Most bytes of batched answers to pipelined requests we hold before writing them.
///
/// Bounds the memory one pipelining client can make us hold, while letting a typical batch
/// of small answers leave in one `write`.
pub const MAX_BATCH_BYTES: usize = 64 * 1024;

/// Requests served on one keep-alive connection before we answer `Connection: close`.
///
/// Bounds how long one client can pin a slot; high enough that a load tester reconnects rarely.
pub const DEFAULT_MAX_REQUESTS_PER_CONNECTION: u64 = 10_000;

/// How long an idle keep-alive connection may wait for its next request (`--keep-alive-timeout`).
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a request head may take to arrive, from its first byte (`--header-timeout`).
///
/// Trickled bytes do not extend it, so a slowloris client cannot hold a slot past it. A new
/// connection that sends nothing at all is closed silently after the same time.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a client may refuse to read its response before we close (`--send-timeout`).
///
/// Every write that makes progress restarts it; a client that stops reading for this long
/// would otherwise pin an open file and a slot forever.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a connection closed after a refusal keeps reading (and discarding) what the client
/// still sends, so that unread data does not make the kernel reset the connection before the
/// client has read our answer (nginx's `lingering_timeout` is 5 s; ours is shorter, since a
/// static server refuses only broken or hostile requests).
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Most bytes a lingering connection discards before we close it anyway.
pub const LINGER_MAX_BYTES: u64 = 4 * 1024 * 1024;

/// How often the loop checks deadlines while any connection is open.
///
/// Deadlines are therefore late by at most this much; checking every connection four times a
/// second costs nothing measurable even with 10,000 of them.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// Most connections accepted for one readiness event of the listener before the loop goes
/// back to the others; the listener, being level-triggered, is reported again next pass.
pub const ACCEPTS_PER_EVENT: usize = 64;

/// How long after `accept` failed with EMFILE/ENFILE we try again if no connection closes first.
///
/// Another process may be holding the descriptors, so waiting for one of ours to close is not
/// enough; retrying at once would spin, since the listener stays readable.
pub const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(250);

/// How long a shutdown (SIGINT/SIGTERM) waits for responses in flight before exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The `listen(2)` backlog: connections the kernel queues while we are full or busy.
///
/// The kernel caps it at `net.core.somaxconn` (4096 on current kernels).
pub const LISTEN_BACKLOG: i32 = 4096;

/// How long the kernel holds a connection that has sent nothing before it reaches us
/// (`TCP_DEFER_ACCEPT`, `--defer-accept`).
///
/// A client that connects and sends its request at once (every load tester, most browsers)
/// is then accepted with its request already there: the kernel makes the connection and
/// queues it when the data comes, not when the handshake ends, which cut the server CPU of a
/// `Connection: close` request from 24 to 15 µs here (h2o and lwan do the same). A socket
/// that says nothing (a browser's pre-connection, a port scan) waits in the kernel, taking
/// no slot, and is accepted after about this long if it is still there. nginx's `deferred`.
pub const DEFAULT_DEFER_ACCEPT_SECS: u32 = 1;

/// The open-file limit we assume when `getrlimit` fails (the usual soft limit).
pub const FALLBACK_FD_LIMIT: u64 = 1024;

/// The longest timeout a flag accepts: a day. Longer would only let a client pin a slot.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// Descriptors kept back from the open-file limit when deriving the default
/// `--max-connections`, for the listener, epoll, signalfd and stdio. What is left is halved,
/// because a connection sending a file holds two descriptors: its socket and the file.
pub const RESERVED_FDS: u64 = 32;

/// Most workers (`--workers`): far beyond any core count a static server could use; it only
/// stops a typo from starting thousands of threads.
pub const MAX_WORKERS: usize = 256;

/// Most answers the file cache holds (`--cache-entries`). Each may keep a file open, so the
/// default connection cap leaves this many descriptors for it; 1,024 covers a large site.
pub const DEFAULT_CACHE_ENTRIES: usize = 1024;

/// Most bytes of small-file bodies the cache holds in memory (`--cache-bytes`); the cache is
/// empty until used, so an idle server pays nothing for it.
pub const DEFAULT_CACHE_BYTES: u64 = 8 * 1024 * 1024;

/// Most directories the file cache watches (paths under further ones are served, not
/// cached, until a change empties the cache). Only real directories under the root are
/// watched, so this bounds a very large tree, not an attack.
pub const MAX_WATCHED_DIRS: usize = 10_000;

/// How long a cached answer is trusted without a look at the disk: after this, the next
/// request resolves the path again (and caches it anew). inotify reports every change made
/// through the file system at once; this bounds what it cannot see (a write through a kept
/// `mmap`, Linux AIO, a mount over a served folder, a network file system), as nginx's
/// `open_file_cache_valid` does (60 s there).
pub const CACHE_REVALIDATE_AFTER: Duration = Duration::from_secs(1);

/// How many `read`s of the file cache's inotify descriptor one loop pass makes at most; an
/// ordinary burst of changes takes one, and what is left waits for the next pass.
pub const MAX_EVENT_READS_PER_PASS: usize = 4;

/// Most sets of spare buffers the server keeps for busy connections (input, output, target):
/// enough for a load tester's hundreds of busy connections, while bounding what idle ones
/// can cost (they hold none).
pub const MAX_POOLED_BUFFERS: usize = 256;

/// How long the connections must stay at half their peak (or fewer) before the server gives
/// freed memory back to the kernel (`reactor/memory.rs`): long enough that a load that comes
/// and goes does not pay for it on every close, short enough that an attack's memory comes
/// back within seconds of its end.
pub const MEMORY_RETURN_DELAY: Duration = Duration::from_secs(1);

/// The fewest connections open at once that make a drop worth giving memory back for
/// ([`MEMORY_RETURN_DELAY`]): fewer hold little (a set of spare buffers each, and listings
/// stay within [`MAX_LISTING_BYTES`]), and a quiet server's idle wait stays unbounded.
pub const MEMORY_RETURN_MIN_PEAK: usize = 32;

/// The largest buffer the pool keeps for the next answer; a larger one (after a big
/// pipelined batch or a multipart answer) is freed.
pub const RETAINED_BUFFER_BYTES: usize = 16 * 1024;

/// How many idle connections are closed at once when the server is full and a new client
/// waits (nginx drains 32 reusable connections at a time, too).
pub const RECLAIM_BATCH: usize = 32;

/// How long a connection that has sent nothing must have been open before it may be closed
/// to make room for a new client at the cap (after idle keep-alive connections): any real
/// client has sent its request by then, so what is left is a preconnect or an attacker.
pub const SILENT_RECLAIM_AFTER: Duration = Duration::from_secs(1);

/// `--live`: most event streams from one client address. A browser opens at most 6
/// connections to a site (so at most 6 tabs stream at once); 16 leaves room for a few
/// browsers on one machine while one address cannot take many slots with streams.
pub const LIVE_STREAMS_PER_IP: usize = 16;

/// `--live`: most event streams in all, as a fraction of the connection cap (1/N), so
/// streams can never hold most of the slots that page requests need.
pub const LIVE_STREAMS_CAP_FRACTION: usize = 4;

/// The smallest default `--max-connections-per-ip`: room for a load tester's `wrk -c1000`
/// from 127.0.0.1 (and any browser's 6 to 8, or a download manager's 16, with room to spare).
pub const MIN_DEFAULT_CONNECTIONS_PER_IP: usize = 1024;

/// Most events one `epoll_wait` returns; more stay queued for the next pass.
pub const EVENTS_PER_WAIT: usize = 1024;

/// Most comma-separated specs in one `Range` header before we ignore it and send the whole
/// file (RFC 9110 §14.2 lets a server ignore a Range header with very many ranges).
pub const MAX_RANGE_SPECS: usize = 100;

/// Most parts of a `multipart/byteranges` answer after coalescing; more and the whole file
/// is sent instead. Each part costs a few syscalls' worth of work, so a client listing
/// hundreds of tiny ranges must not multiply our work.
pub const MAX_RANGE_PARTS: usize = 16;

/// Ranges closer than this are merged into one part: a part header costs about as much.
pub const RANGE_COALESCE_GAP_BYTES: u64 = 80;

/// Largest total size of a multi-range answer, which is assembled in memory and held until
/// sent; larger multi-range requests get the whole file (single ranges have no such limit,
/// since they go by sendfile). Kept small so that many clients that ask and then stop reading
/// cannot make us hold much memory.
pub const MAX_MULTIPART_BYTES: u64 = 256 * 1024;

/// Most entries of a directory a listing examines (hidden and skipped ones count too); the
/// rest are left out, and the page says so. The work is spread over loop passes anyway
/// ([`LISTING_STEP_UNITS`]); this bounds the total per request and the memory one listing
/// holds while its client reads it.
pub const MAX_LISTING_ENTRIES: usize = 10_000;

/// The work one loop pass may spend on listings, all of them together (so any other request
/// waits at most this much listing work): entries examined, or rows rendered, with a symlink
/// counting [`LISTING_SYMLINK_UNITS`] (it costs an `openat2` or two and a `readlink` rather
/// than one `statx`). 128 units take about 0.2 ms here; 256 gave the fairness benchmark a
/// p99 of 25 ms with 16 listing clients, 128 gives 14 ms (`cargo bench --bench fairness`).
pub const LISTING_STEP_UNITS: usize = 128;

/// Most bytes of directory entries all the listings in flight hold together (per worker);
/// past it, a new listing is answered `503` and one still reading its directory is cut
/// short. An entry takes about 100 bytes, so 16 MiB holds 16 listings of
/// [`MAX_LISTING_ENTRIES`] at once, or thousands of ordinary folders; 2,000 clients asking
/// for a listing and never reading it used to pin 830 MB.
pub const MAX_LISTING_BYTES: usize = 16 * 1024 * 1024;

/// What examining a symlink counts against [`LISTING_STEP_UNITS`].
pub const LISTING_SYMLINK_UNITS: usize = 4;

/// `--live`: how long the writes must have stopped before the reload event is sent
/// (`--live-wait`): a trailing wait, restarted by every change, so an editor's save (a
/// temporary file, a rename, a chmod) or a build writing a hundred files gives one reload,
/// while a single save still feels instant.
pub const DEFAULT_LIVE_WAIT: Duration = Duration::from_millis(100);

/// `--live`: the longest `--live-wait`, in milliseconds.
pub const MAX_LIVE_WAIT_MS: u64 = 60_000;

/// `--live`: paths whose changes never reload (`--live-ignore` adds more): dependencies a
/// package manager writes by the thousand, and version control (names starting with `.` are
/// ignored anyway).
pub const DEFAULT_LIVE_IGNORE: [&str; 2] = ["node_modules", ".git"];

/// `--live`: a comment line is sent on an idle event stream this often, so proxies and
/// browsers see it alive and a vanished client is noticed.
pub const LIVE_HEARTBEAT: Duration = Duration::from_secs(15);

/// `--live`: most bytes of events waiting for one stream; a tab that stops reading beyond
/// this is closed (it reconnects by itself when it wakes).
pub const LIVE_MAX_PENDING_BYTES: usize = 64 * 1024;

/// `--live`: HTML pages larger than this are sent without the reload script.
pub const LIVE_MAX_INJECT_BYTES: u64 = 8 * 1024 * 1024;

/// `--live`: how many bytes from the start of a page are read to decide whether the script
/// may go in (a UTF-16 byte order mark, a `<meta charset>`): as far as browsers look for a
/// `<meta charset>` (WHATWG HTML §13.2.3.2). A HEAD or a 304 reads no more of the page.
pub const LIVE_PRESCAN_BYTES: usize = 1024;

/// `--live`: the buffer a GET's page is scanned through for the script's place, so that no
/// answer holds a copy of the page: large enough that an 8 MiB page takes 128 reads.
pub const LIVE_SCAN_CHUNK_BYTES: usize = 64 * 1024;

/// `--live`: most directories watched (each is one inotify watch of the user's limit).
pub const LIVE_MAX_WATCHED_DIRS: usize = 10_000;

/// Most symlinks one lookup follows in the fallback resolver (`site/fallback_resolver.rs`): the kernel's
/// own `MAXSYMLINKS`, so that a long chain or a loop of links fails the same way with either
/// resolver (`ELOOP`, answered `403`).
pub const MAX_SYMLINKS_FOLLOWED: usize = 40;

/// The longest path, in bytes, the fallback resolver takes: one less than the kernel's
/// `PATH_MAX` (which counts the NUL), so that a path too long for `openat2` is too long for
/// the walk as well (`ENAMETOOLONG`, answered `404`).
pub const MAX_PATH_BYTES: usize = 4095;
