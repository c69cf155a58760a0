//! `Config`, and the one table of flags from which parsing, `--help` and the README's flag
//! table all come.
//!
//! Where this sits in the loop: before it. `main` parses the flags into a `Config`, and the
//! reactor reads it (by reference, never through a global) for the root, the bind address,
//! the timeouts and the connection cap.
//!
//! # Design notes
//! Each [`Flag`] names itself, its value, how its default is shown (read off
//! `Config::default()`, which reads `limits.rs`), its help line and an example. [`usage`]
//! prints the table, [`readme_table`] renders it as Markdown, and a unit test fails if the
//! README's table is not exactly that, so a changed limit can never leave `--help` or the
//! README behind.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::http::AddedFields;
use crate::http::syntax::is_token_char;
use crate::lab::LabBug;
use crate::limits::{self, RequestLimits};
use crate::logs::LogTarget;
use crate::logs::format::{LogFormat, RealIpHeader, TrustedProxy};
use crate::study::trace::{self, TraceFilter};
use crate::sys::epoll::Trigger;

/// Everything the server needs to know before it starts, grouped by concern.
#[derive(Clone, Debug)]
pub struct Config {
    /// The folder to serve (not yet canonicalised; the server does that at startup).
    pub root: PathBuf,
    /// Where and how connections are taken.
    pub listen: Listen,
    /// How long each wait may last.
    pub timeouts: Timeouts,
    /// Size limits on request heads and bodies (`--max-head-bytes` and friends).
    pub request_limits: RequestLimits,
    /// What the site serves, and how (the site gets these, not the whole configuration).
    pub site: SiteOptions,
    /// `--live`'s timing and what it ignores (whether it is on is `site.live`).
    pub live: LiveOptions,
    /// The file cache's bounds.
    pub cache: CacheOptions,
    /// The access log.
    pub logs: LogOptions,
    /// The study instruments.
    pub study: StudyOptions,
    /// Fault injection, for studying partial I/O (`--max-read` and friends).
    pub faults: Faults,
}

/// Where and how connections are taken.
#[derive(Clone, Debug)]
pub struct Listen {
    /// The address and port to listen on; port 0 asks the kernel for a free one.
    pub addr: SocketAddr,
    /// How many reactors (threads) serve, each with its own epoll set (`--workers`).
    pub workers: usize,
    /// How client sockets and the listener are registered (`--epoll lt|et`).
    pub trigger: Trigger,
    /// Most open client connections; `None` derives it from the open-file limit.
    pub max_connections: Option<usize>,
    /// Most open connections from one client address; `None` derives it from the cap.
    pub max_connections_per_ip: Option<usize>,
    /// Requests on one connection before it is closed (`--max-requests`).
    pub max_requests_per_connection: u64,
    /// Open the default browser once listening (`--open`).
    pub open: bool,
    /// Seconds the kernel holds a connection that has sent nothing before it reaches us
    /// (`TCP_DEFER_ACCEPT`, `--defer-accept`); 0: off.
    pub defer_accept_secs: u32,
    /// The TCP congestion control the listeners give their connections (`--congestion`);
    /// `None`: the system's (`net.ipv4.tcp_congestion_control`).
    pub congestion: Option<String>,
}

/// How long each wait may last.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// How long an idle keep-alive connection is kept (`--keep-alive-timeout`).
    pub keep_alive: Duration,
    /// How long a request head may take to arrive (`--header-timeout`).
    pub header: Duration,
    /// How long a client may stop reading its response (`--send-timeout`).
    pub send: Duration,
}

/// What the site serves, and how.
#[derive(Clone, Debug)]
pub struct SiteOptions {
    /// The file served for a directory request (`--index`).
    pub index: String,
    /// Serve through symlinks that lead out of the root (`--follow-symlinks`).
    pub follow_symlinks: bool,
    /// List directories that have no index file (off with `--no-listing`: then 403).
    pub listing: bool,
    /// List and serve names starting with `.` (`--hidden`).
    pub hidden: bool,
    /// Serve the root index for unknown paths that do not look like files (`--spa`).
    pub spa: bool,
    /// Header fields added to answers (`--header`, `--cors`, `--cache-control`).
    pub added_fields: AddedFields,
    /// Extension (lowercase, no dot) → MIME type overrides (`--mime EXT=TYPE`).
    pub mime_overrides: Vec<(String, String)>,
    /// Live reload: inject a script into HTML pages and tell them of changes (`--live`).
    pub live: bool,
}

/// `--live`'s timing and what it ignores.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// How long writes must have stopped before pages reload (`--live-wait`).
    pub wait: Duration,
    /// Paths (globs) whose changes never reload (`--live-ignore`, and defaults).
    pub ignore: Vec<String>,
}

/// The file cache's bounds.
#[derive(Clone, Copy, Debug)]
pub struct CacheOptions {
    /// Most answers in the file cache; 0 turns it off (`--cache-entries`, `--no-cache`).
    pub entries: usize,
    /// Most bytes of small-file bodies the cache holds (`--cache-bytes`).
    pub bytes: u64,
    /// Most cached files a worker keeps open: not a flag, but the descriptors the connection
    /// cap leaves for the cache, worked out at startup from the open-file limit.
    pub files: usize,
}

/// The access log.
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Where answered requests are logged (`--access-log`).
    pub access_log: LogTarget,
    /// The access log's line format (`--log-format`).
    pub format: LogFormat,
    /// Proxies whose `--real-ip-header` names the client (`--trusted-proxy`).
    pub trusted_proxies: Vec<TrustedProxy>,
    /// The one field trusted proxies name the client in (`--real-ip-header`).
    pub real_ip_header: RealIpHeader,
}

/// The study instruments.
#[derive(Clone, Debug)]
pub struct StudyOptions {
    /// What `--trace` shows (off by default).
    pub trace: TraceFilter,
    /// Where the loop statistics are served (`--stats PATH`); `None`: nowhere.
    pub stats_path: Option<String>,
}

/// Fault injection: caps that force the partial reads and writes every real loop must
/// survive, so a learner (and the test suite) can watch the loop survive them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Most bytes one `recv` may return (`--max-read`).
    pub max_read: Option<usize>,
    /// Most bytes one `send` or `sendfile` may offer (`--max-write`).
    pub max_write: Option<usize>,
    /// A send capped by `max_write` reports itself short, as the kernel's does when the
    /// socket is full, so the wait for writability can be driven on demand (`--short-writes`).
    pub short_writes: bool,
    /// `SO_SNDBUF` for accepted sockets (`--sndbuf`).
    pub sndbuf: Option<usize>,
    /// A classic bug switched back on, for the labs (`--lab-bug NAME`); never by default.
    pub lab_bug: Option<LabBug>,
    /// `epoll_wait`'s `maxevents` (`--max-events`).
    pub max_events: usize,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            max_read: None,
            max_write: None,
            short_writes: false,
            sndbuf: None,
            lab_bug: None,
            max_events: limits::EVENTS_PER_WAIT,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from(limits::DEFAULT_ROOT),
            listen: Listen {
                addr: SocketAddr::from((limits::DEFAULT_BIND, limits::DEFAULT_PORT)),
                workers: 1,
                trigger: Trigger::Level,
                max_connections: None,
                max_connections_per_ip: None,
                max_requests_per_connection: limits::DEFAULT_MAX_REQUESTS_PER_CONNECTION,
                defer_accept_secs: limits::DEFAULT_DEFER_ACCEPT_SECS,
                congestion: None,
                open: false,
            },
            timeouts: Timeouts {
                keep_alive: limits::DEFAULT_KEEP_ALIVE_TIMEOUT,
                header: limits::DEFAULT_HEADER_TIMEOUT,
                send: limits::DEFAULT_SEND_TIMEOUT,
            },
            request_limits: RequestLimits::default(),
            site: SiteOptions::default(),
            live: LiveOptions {
                wait: limits::DEFAULT_LIVE_WAIT,
                ignore: limits::DEFAULT_LIVE_IGNORE.map(String::from).to_vec(),
            },
            cache: CacheOptions {
                entries: limits::DEFAULT_CACHE_ENTRIES,
                bytes: limits::DEFAULT_CACHE_BYTES,
                files: limits::DEFAULT_CACHE_ENTRIES,
            },
            logs: LogOptions {
                access_log: LogTarget::Terminal,
                format: LogFormat::Combined,
                trusted_proxies: Vec::new(),
                real_ip_header: RealIpHeader::XForwardedFor,
            },
            study: StudyOptions {
                trace: TraceFilter::Off,
                stats_path: None,
            },
            faults: Faults::default(),
        }
    }
}

impl Default for SiteOptions {
    fn default() -> Self {
        SiteOptions {
            index: limits::DEFAULT_INDEX.to_string(),
            follow_symlinks: false,
            listing: true,
            hidden: false,
            spa: false,
            added_fields: AddedFields::default(),
            mime_overrides: Vec::new(),
            live: false,
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    /// Serve with this configuration.
    Serve(Box<Config>),
    /// Print the usage text and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
}

/// A command line we cannot act on; `main` prints it with the usage text.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<lexopt::Error> for UsageError {
    fn from(error: lexopt::Error) -> Self {
        UsageError(error.to_string())
    }
}

/// One command-line flag.
pub struct Flag {
    /// The one-letter form, if any (`-p`).
    pub short: Option<char>,
    /// The long form, without dashes (`port`).
    pub long: &'static str,
    /// The value's name in help (`N`), or `None` for a switch.
    pub value: Option<&'static str>,
    /// The default as shown, read off `Config::default()`; empty for none.
    pub default: fn(&Config) -> String,
    /// An example use, for the README.
    pub example: &'static str,
    /// What it does, in one line.
    pub help: &'static str,
    /// What it does to the configuration.
    pub action: Action,
}

/// How a flag acts.
pub enum Action {
    /// A switch: no value.
    Switch(fn(&mut Config)),
    /// Takes a value; the function checks it and stores it, naming the flag on failure.
    Value(fn(&mut Config, OsString) -> Result<(), UsageError>),
    /// May take a value, which `accepts` recognises (`--trace` or `--trace conn=7`).
    OptionalValue {
        /// Whether the next argument is this flag's value rather than something else.
        accepts: fn(&str) -> bool,
        /// Checks and stores the value (`None`: the flag came alone).
        set: fn(&mut Config, Option<OsString>) -> Result<(), UsageError>,
    },
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// No default to show.
fn none(_: &Config) -> String {
    String::new()
}

/// Seconds of a duration, for showing a default (`60`, `2.5`).
fn secs(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    format!("{secs}")
}

/// Every flag, in the order `--help` and the README list them.
pub const FLAGS: &[Flag] = &[
    Flag {
        short: Some('b'),
        long: "bind",
        value: Some("ADDR"),
        default: |c| c.listen.addr.ip().to_string(),
        example: "--bind ::1",
        help: "address to listen on (IPv4 or IPv6; 0.0.0.0 or :: for every interface)",
        action: Action::Value(|c, v| {
            c.listen.addr.set_ip(parse_value("--bind", v)?);
            Ok(())
        }),
    },
    Flag {
        short: Some('p'),
        long: "port",
        value: Some("N"),
        default: |c| c.listen.addr.port().to_string(),
        example: "--port 0",
        help: "port to listen on; 0 picks a free one, shown in the startup line",
        action: Action::Value(|c, v| {
            c.listen.addr.set_port(parse_value("--port", v)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "live",
        value: None,
        default: none,
        example: "--live",
        help: "live reload: pages reload when a file changes (CSS is swapped in place); files go out with 'Cache-Control: no-cache' unless --cache-control says otherwise",
        action: Action::Switch(|c| c.site.live = true),
    },
    Flag {
        short: None,
        long: "live-wait",
        value: Some("MS"),
        default: |c| c.live.wait.as_millis().to_string(),
        example: "--live-wait 300",
        help: "--live: reload once writes have stopped for MS milliseconds (a build's burst gives one reload)",
        action: Action::Value(|c, v| {
            let ms: u64 = parse_value("--live-wait", v)?;
            if ms > limits::MAX_LIVE_WAIT_MS {
                let most = limits::MAX_LIVE_WAIT_MS;
                return Err(UsageError(format!("--live-wait: at most {most}")));
            }
            c.live.wait = Duration::from_millis(ms);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "live-ignore",
        value: Some("GLOB"),
        default: |c| c.live.ignore.join(", "),
        example: "--live-ignore 'dist/**'",
        help: "--live: changes to paths matching GLOB never reload (repeatable; a GLOB without '/' matches any name on the path; * and ? stay within a name, ** does not)",
        action: Action::Value(|c, v| {
            let glob = v
                .into_string()
                .map_err(|_| UsageError("--live-ignore: not valid UTF-8".into()))?;
            c.live.ignore.push(glob);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "open",
        value: None,
        default: none,
        example: "--open",
        help: "open the site in the default browser (xdg-open) once listening",
        action: Action::Switch(|c| c.listen.open = true),
    },
    Flag {
        short: None,
        long: "index",
        value: Some("NAME"),
        default: |c| c.site.index.clone(),
        example: "--index home.htm",
        help: "file served for a directory",
        action: Action::Value(|c, v| {
            c.site.index = index_name(v)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "no-listing",
        value: None,
        default: none,
        example: "--no-listing",
        help: "answer 403 for a directory without an index, instead of listing it",
        action: Action::Switch(|c| c.site.listing = false),
    },
    Flag {
        short: None,
        long: "hidden",
        value: None,
        default: none,
        example: "--hidden",
        help: "list and serve names starting with '.' (else 404; .well-known is always served)",
        action: Action::Switch(|c| c.site.hidden = true),
    },
    Flag {
        short: None,
        long: "spa",
        value: None,
        default: none,
        example: "--spa",
        help: "an unknown path whose last segment has no '.' gets the root index",
        action: Action::Switch(|c| c.site.spa = true),
    },
    Flag {
        short: None,
        long: "follow-symlinks",
        value: None,
        default: none,
        example: "--follow-symlinks",
        help: "serve symlinks that lead out of the root (else 403)",
        action: Action::Switch(|c| c.site.follow_symlinks = true),
    },
    Flag {
        short: None,
        long: "header",
        value: Some("'NAME: VALUE'"),
        default: none,
        example: "--header 'X-Frame-Options: DENY'",
        help: "add a header to every response (repeatable)",
        action: Action::Value(|c, v| {
            c.site.added_fields.headers.push(header(v)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "cors",
        value: None,
        default: none,
        example: "--cors",
        help: "add 'Access-Control-Allow-Origin: *' to every response",
        action: Action::Switch(|c| {
            c.site
                .added_fields
                .headers
                .push(("Access-Control-Allow-Origin".into(), "*".into()))
        }),
    },
    Flag {
        short: None,
        long: "cache-control",
        value: Some("VALUE"),
        default: none,
        example: "--cache-control 'public, max-age=3600'",
        help: "send 'Cache-Control: VALUE' with files",
        action: Action::Value(|c, v| {
            c.site.added_fields.cache_control = Some(field_value("--cache-control", v)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "mime",
        value: Some("EXT=TYPE"),
        default: none,
        example: "--mime glb=model/gltf-binary",
        help: "serve files ending in .EXT as TYPE (repeatable)",
        action: Action::Value(|c, v| {
            c.site.mime_overrides.push(mime_override(v)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "workers",
        value: Some("N"),
        default: |c| c.listen.workers.to_string(),
        example: "--workers 4",
        help: "run N reactors, one per thread, sharing the port (SO_REUSEPORT)",
        action: Action::Value(|c, v| {
            let n = positive("--workers", v)?;
            if n > limits::MAX_WORKERS {
                let max = limits::MAX_WORKERS;
                return Err(UsageError(format!("--workers: must be at most {max}")));
            }
            c.listen.workers = n;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "no-cache",
        value: None,
        default: none,
        example: "--no-cache",
        help: "do not cache open files and small bodies (for comparison; the cache is never stale)",
        action: Action::Switch(|c| c.cache.entries = 0),
    },
    Flag {
        short: None,
        long: "cache-entries",
        value: Some("N"),
        default: |c| c.cache.entries.to_string(),
        example: "--cache-entries 4096",
        help: "most files the cache holds open (each may hold a descriptor)",
        action: Action::Value(|c, v| {
            c.cache.entries = positive("--cache-entries", v)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "cache-bytes",
        value: Some("N"),
        default: |c| c.cache.bytes.to_string(),
        example: "--cache-bytes 67108864",
        help: "most bytes of small files the cache holds in memory",
        action: Action::Value(|c, v| {
            c.cache.bytes = parse_value("--cache-bytes", v)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "keep-alive-timeout",
        value: Some("SECS"),
        default: |c| secs(c.timeouts.keep_alive),
        example: "--keep-alive-timeout 5",
        help: "close an idle keep-alive connection after SECS",
        action: Action::Value(|c, v| {
            c.timeouts.keep_alive = seconds("--keep-alive-timeout", v)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "header-timeout",
        value: Some("SECS"),
        default: |c| secs(c.timeouts.header),
        example: "--header-timeout 2.5",
        help: "a request head must arrive within SECS of its first byte, else 408",
        action: Action::Value(|c, v| {
            c.timeouts.header = seconds("--header-timeout", v)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "send-timeout",
        value: Some("SECS"),
        default: |c| secs(c.timeouts.send),
        example: "--send-timeout 30",
        help: "close a connection whose client reads nothing for SECS",
        action: Action::Value(|c, v| {
            c.timeouts.send = seconds("--send-timeout", v)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "defer-accept",
        value: Some("SECS"),
        default: |c| c.listen.defer_accept_secs.to_string(),
        example: "--defer-accept 0",
        help: "a connection that has sent nothing waits in the kernel up to SECS before it is accepted (TCP_DEFER_ACCEPT; 0: accept at once)",
        action: Action::Value(|c, v| {
            let secs = parse_value::<u32>("--defer-accept", v)?;
            let max = limits::MAX_TIMEOUT.as_secs();
            if u64::from(secs) > max {
                return Err(UsageError(format!(
                    "--defer-accept: must be at most {max} seconds, got {secs}"
                )));
            }
            c.listen.defer_accept_secs = secs;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "congestion",
        value: Some("NAME"),
        default: |c| match &c.listen.congestion {
            Some(name) => name.clone(),
            None => "the system's, net.ipv4.tcp_congestion_control".to_string(),
        },
        example: "--congestion cubic",
        help: "the TCP congestion control for connections, one the kernel offers (reno, cubic, bbr: /proc/sys/net/ipv4/tcp_available_congestion_control)",
        action: Action::Value(|c, v| {
            // The kernel's names: at most 15 bytes of letters, digits and '_'.
            let name: String = parse_value("--congestion", v)?;
            let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
            if name.is_empty() || name.len() > 15 || !name.bytes().all(valid) {
                return Err(UsageError(format!(
                    "--congestion: not a congestion control name: {name:?}"
                )));
            }
            c.listen.congestion = Some(name);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "max-connections",
        value: Some("N"),
        default: |_| "from the open-file limit".into(),
        example: "--max-connections 5000",
        help: "most open connections; more wait in the kernel's backlog",
        action: Action::Value(|c, v| {
            c.listen.max_connections = Some(positive("--max-connections", v)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "max-connections-per-ip",
        value: Some("N"),
        default: |_| "a quarter of the cap, at least 1024".into(),
        example: "--max-connections-per-ip 64",
        help: "most open connections from one client address; more get 503",
        action: Action::Value(|c, v| {
            c.listen.max_connections_per_ip = Some(positive("--max-connections-per-ip", v)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "max-requests",
        value: Some("N"),
        default: |c| c.listen.max_requests_per_connection.to_string(),
        example: "--max-requests 100",
        help: "requests per connection before 'Connection: close'",
        action: Action::Value(|c, v| {
            c.listen.max_requests_per_connection = positive("--max-requests", v)? as u64;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "max-head-bytes",
        value: Some("N"),
        default: |c| c.request_limits.max_head_bytes.to_string(),
        example: "--max-head-bytes 32768",
        help: "largest request head, else 431",
        action: Action::Value(|c, v| {
            c.request_limits.max_head_bytes = positive("--max-head-bytes", v)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "max-target-bytes",
        value: Some("N"),
        default: |c| c.request_limits.max_target_bytes.to_string(),
        example: "--max-target-bytes 2048",
        help: "longest request target, else 414",
        action: Action::Value(|c, v| {
            c.request_limits.max_target_bytes = positive("--max-target-bytes", v)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "max-headers",
        value: Some("N"),
        default: |c| c.request_limits.max_headers.to_string(),
        example: "--max-headers 100",
        help: "most header fields (at most 256), else 431",
        action: Action::Value(|c, v| {
            let n = positive("--max-headers", v)?;
            if n > limits::MAX_HEADERS_CAP {
                let cap = limits::MAX_HEADERS_CAP;
                return Err(UsageError(format!("--max-headers: must be at most {cap}")));
            }
            c.request_limits.max_headers = n;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "max-body-bytes",
        value: Some("N"),
        default: |c| c.request_limits.max_body_bytes.to_string(),
        example: "--max-body-bytes 0",
        help: "largest request body read and discarded, else 413",
        action: Action::Value(|c, v| {
            c.request_limits.max_body_bytes = parse_value("--max-body-bytes", v)?;
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "access-log",
        value: Some("PATH|-|off"),
        default: |_| "a readable line on stderr".into(),
        example: "--access-log /var/log/epollo/access.log",
        help: "log each request to PATH (appended; SIGHUP reopens it), to stdout (-), or nowhere (off)",
        action: Action::Value(|c, v| {
            c.logs.access_log = match v.to_str() {
                Some("off") => LogTarget::Off,
                Some("-") => LogTarget::Stdout,
                Some("") => return Err(UsageError("--access-log: expected PATH, - or off".into())),
                _ => LogTarget::File(PathBuf::from(v)),
            };
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "log-format",
        value: Some("common|combined|json"),
        default: |_| "combined".into(),
        example: "--log-format json",
        help: "the --access-log line format (combined is what nginx and Apache write)",
        action: Action::Value(|c, v| {
            c.logs.format = match v.to_str() {
                Some("common") => LogFormat::Common,
                Some("combined") => LogFormat::Combined,
                Some("json") => LogFormat::Json,
                _ => {
                    return Err(UsageError(format!(
                        "--log-format: expected common, combined or json, got {v:?}"
                    )));
                }
            };
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "trusted-proxy",
        value: Some("ADDR[/PREFIX]"),
        default: none,
        example: "--trusted-proxy 10.0.0.0/8",
        help: "on connections from ADDR, log the client that --real-ip-header names (repeatable)",
        action: Action::Value(|c, v| {
            let text = v.to_string_lossy();
            let proxy = TrustedProxy::parse(&text)
                .map_err(|e| UsageError(format!("--trusted-proxy: {e}")))?;
            c.logs.trusted_proxies.push(proxy);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "real-ip-header",
        value: Some("x-forwarded-for|forwarded"),
        default: |c| c.logs.real_ip_header.name().into(),
        example: "--real-ip-header forwarded",
        help: "the one field trusted proxies name the client in; its rightmost address not itself a trusted proxy is logged",
        action: Action::Value(|c, v| {
            c.logs.real_ip_header = match v.to_str() {
                Some("x-forwarded-for") => RealIpHeader::XForwardedFor,
                Some("forwarded") => RealIpHeader::Forwarded,
                _ => {
                    return Err(UsageError(format!(
                        "--real-ip-header: expected x-forwarded-for or forwarded, got {v:?}"
                    )));
                }
            };
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "trace",
        value: Some("[conn=N]"),
        default: none,
        example: "--trace conn=7",
        help: "print one line per epoll_wait, event, epoll_ctl, syscall result and state change (only connection N's with conn=N)",
        action: Action::OptionalValue {
            accepts: |next| next.starts_with("conn="),
            set: |c, v| {
                c.study.trace = match v {
                    None => TraceFilter::All,
                    Some(raw) => {
                        let text = raw.to_string_lossy();
                        trace::parse_filter(&text)
                            .map_err(|e| UsageError(format!("--trace: {e}")))?
                    }
                };
                if !cfg!(feature = "trace") {
                    return Err(UsageError(
                        "--trace: this build was made without the 'trace' feature".into(),
                    ));
                }
                Ok(())
            },
        },
    },
    Flag {
        short: None,
        long: "epoll",
        value: Some("lt|et"),
        default: |c| c.listen.trigger.name().into(),
        example: "--epoll et",
        help: "register sockets level-triggered, or edge-triggered (drain to EAGAIN, ready list)",
        action: Action::Value(|c, v| {
            c.listen.trigger = match v.to_str() {
                Some("lt") => Trigger::Level,
                Some("et") => Trigger::Edge,
                _ => return Err(UsageError(format!("--epoll: expected lt or et, got {v:?}"))),
            };
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "stats",
        value: Some("PATH"),
        default: none,
        example: "--stats /_stats",
        help: "serve loop statistics: PATH (live page), PATH/metrics (Prometheus), PATH/json",
        action: Action::Value(|c, v| {
            c.study.stats_path = Some(stats_path(v)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "max-read",
        value: Some("N"),
        default: none,
        example: "--max-read 1",
        help: "fault injection: read at most N bytes per recv",
        action: Action::Value(|c, v| {
            c.faults.max_read = Some(positive("--max-read", v)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "max-write",
        value: Some("N"),
        default: none,
        example: "--max-write 7",
        help: "fault injection: offer at most N bytes per send or sendfile",
        action: Action::Value(|c, v| {
            c.faults.max_write = Some(positive("--max-write", v)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "short-writes",
        value: None,
        default: none,
        example: "--max-write 1000 --short-writes",
        help: "fault injection: a send capped by --max-write is short, as when the socket is full",
        action: Action::Switch(|c| c.faults.short_writes = true),
    },
    Flag {
        short: None,
        long: "lab-bug",
        value: Some("NAME"),
        default: none,
        example: "--lab-bug flag-equality",
        help: "for the labs: switch a classic event-loop bug back on (flag-equality, blocking-send, no-drain, no-ready-list, no-generation, ignore-short-writes, close-before-deregister); never to serve",
        action: Action::Value(|c, v| {
            let name = v.to_string_lossy();
            let bug = LabBug::parse(&name).ok_or_else(|| {
                let names: Vec<&str> = LabBug::ALL.iter().map(|bug| bug.name()).collect();
                UsageError(format!(
                    "--lab-bug: no bug called {name:?} (one of: {})",
                    names.join(", ")
                ))
            })?;
            c.faults.lab_bug = Some(bug);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "sndbuf",
        value: Some("BYTES"),
        default: none,
        example: "--sndbuf 4096",
        help: "fault injection: set SO_SNDBUF on accepted sockets (the kernel doubles it)",
        action: Action::Value(|c, v| {
            c.faults.sndbuf = Some(positive("--sndbuf", v)?);
            Ok(())
        }),
    },
    Flag {
        short: None,
        long: "max-events",
        value: Some("N"),
        default: |c| c.faults.max_events.to_string(),
        example: "--max-events 1",
        help: "fault injection: most events one epoll_wait returns",
        action: Action::Value(|c, v| {
            c.faults.max_events = positive("--max-events", v)?.min(limits::EVENTS_PER_WAIT);
            Ok(())
        }),
    },
    Flag {
        short: Some('h'),
        long: "help",
        value: None,
        default: none,
        example: "--help",
        help: "print this help",
        action: Action::Help,
    },
    Flag {
        short: Some('V'),
        long: "version",
        value: None,
        default: none,
        example: "--version",
        help: "print the version",
        action: Action::Version,
    },
];

impl Flag {
    /// How the flag is written in help: `-p, --port N`.
    fn synopsis(&self) -> String {
        let short = self.short.map(|c| format!("-{c}, ")).unwrap_or_default();
        let value = self.value.map(|v| format!(" {v}")).unwrap_or_default();
        format!("{short}--{}{value}", self.long)
    }
}

/// The `--help` text, from [`FLAGS`].
pub fn usage() -> String {
    let defaults = Config::default();
    let mut text = format!(
        "usage: epollo [ROOT] [OPTIONS]\n\nServe the folder ROOT over HTTP/1.1 (default: the current directory; {} in \
         epollo's own checkout).\n\noptions:\n",
        limits::DEFAULT_ROOT
    );
    for flag in FLAGS {
        let synopsis = flag.synopsis();
        let indent = if flag.short.is_some() { "  " } else { "      " };
        let default = (flag.default)(&defaults);
        let default = if default.is_empty() {
            String::new()
        } else {
            format!(" (default {default})")
        };
        let names = format!("{indent}{synopsis}");
        text.push_str(&format!("{names:<31} {}{default}\n", flag.help));
    }
    text.push_str(
        "\nRUST_LOG=info (default) logs one line per request; RUST_LOG=trace shows the event loop.",
    );
    text
}

/// The README's flag table, in Markdown, from [`FLAGS`].
pub fn readme_table() -> String {
    let defaults = Config::default();
    let mut table = String::from(
        "| flag | default | example | meaning |\n|---|---|---|---|\n\
         | `ROOT` | the current directory (`./www` in epollo's checkout) | `epollo ~/site` | the folder to serve |\n",
    );
    for flag in FLAGS {
        let names = match flag.short {
            Some(c) => format!("`-{c}`, `--{}{}`", flag.long, value_suffix(flag)),
            None => format!("`--{}{}`", flag.long, value_suffix(flag)),
        };
        let default = match (flag.default)(&defaults) {
            d if d.is_empty() => match flag.action {
                Action::Help | Action::Version => String::new(),
                Action::Switch(_) | Action::OptionalValue { .. } => "off".into(),
                Action::Value(_) => "none".into(),
            },
            d if d.contains(' ') => d, // prose, such as "from the open-file limit"
            d => format!("`{d}`"),
        };
        // A `|` splits a table cell on GitHub even inside a code span, unless escaped.
        let escape = |text: &str| text.replace('|', "\\|");
        table.push_str(&format!(
            "| {} | {} | `{}` | {} |\n",
            escape(&names),
            escape(&default),
            escape(flag.example),
            escape(flag.help)
        ));
    }
    table
}

/// ` VALUE` after a flag's name, if it takes one.
fn value_suffix(flag: &Flag) -> String {
    flag.value.map(|v| format!(" {v}")).unwrap_or_default()
}

/// Parses the command line (without the program name).
///
/// # Errors
/// A [`UsageError`] naming the flag or value that is wrong.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    use lexopt::Arg;
    let mut config = Config::default();
    let mut root: Option<PathBuf> = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        let flag = match &arg {
            Arg::Short(c) => FLAGS.iter().find(|f| f.short == Some(*c)),
            Arg::Long(name) => FLAGS.iter().find(|f| f.long == *name),
            Arg::Value(value) if root.is_none() => {
                root = Some(PathBuf::from(value));
                continue;
            }
            Arg::Value(_) => None,
        };
        let Some(flag) = flag else {
            return Err(match arg {
                Arg::Long(name) => unknown_flag(name),
                _ => arg.unexpected().into(),
            });
        };
        match flag.action {
            Action::Help => return Ok(Command::Help),
            Action::Version => return Ok(Command::Version),
            Action::Switch(set) => set(&mut config),
            Action::Value(set) => set(&mut config, parser.value()?)?,
            Action::OptionalValue { accepts, set } => {
                let value = match parser.optional_value() {
                    Some(value) => Some(value), // --trace=conn=7
                    None => parser
                        .raw_args()?
                        .next_if(|next| next.to_str().is_some_and(accepts)),
                };
                set(&mut config, value)?;
            }
        }
    }
    config.root = root.unwrap_or_else(default_root);
    if config.faults.short_writes && config.faults.max_write.is_none() {
        // Short of what? Without a cap every write is whole, and the flag would do nothing.
        return Err(UsageError("--short-writes needs --max-write N".to_string()));
    }
    // --live: the browser must ask again for every file (a 304 keeps that cheap), or a
    // reloaded page shows the scripts and images it cached before the edit. An explicit
    // --cache-control still wins.
    if config.site.live && config.site.added_fields.cache_control.is_none() {
        config.site.added_fields.cache_control = Some("no-cache".to_string());
    }
    // The parser copies Referer, User-Agent and the forwarding fields only for a log that
    // writes them (or reads them, behind a trusted proxy).
    let writes_fields = matches!(
        config.logs.access_log,
        LogTarget::File(_) | LogTarget::Stdout
    ) && config.logs.format != LogFormat::Common;
    config.request_limits.log_fields = writes_fields || !config.logs.trusted_proxies.is_empty();
    Ok(Command::Serve(Box::new(config)))
}

/// The folder to serve when none is named: the demo site (`./www`) in epollo's own checkout,
/// so that `cargo run --release` shows it; anywhere else the current directory, so that an
/// installed `epollo` serves the folder it is run in. The startup line names it.
fn default_root() -> PathBuf {
    let in_checkout = Path::new(limits::DEFAULT_ROOT).is_dir()
        && std::fs::read_to_string("Cargo.toml")
            .is_ok_and(|manifest| manifest.lines().any(|l| l.trim() == "name = \"epollo\""));
    match in_checkout {
        true => PathBuf::from(limits::DEFAULT_ROOT),
        false => PathBuf::from(limits::CURRENT_DIR_ROOT),
    }
}

/// The error for `--name`, which no flag has: with the closest flag's name when one is
/// near (a typo), as git and cargo do.
fn unknown_flag(name: &str) -> UsageError {
    let closest = FLAGS
        .iter()
        .map(|flag| (edit_distance(name, flag.long), flag.long))
        .min_by_key(|&(distance, _)| distance)
        .filter(|&(distance, long)| distance <= 2.max(long.len() / 4));
    match closest {
        Some((_, long)) => UsageError(format!("unknown flag --{name}; did you mean --{long}?")),
        None => UsageError(format!("unknown flag --{name}")),
    }
}

/// How many one-character insertions, deletions or substitutions turn `a` into `b`
/// (Levenshtein).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Parses a flag's value with `FromStr`, naming the flag on failure.
fn parse_value<T: std::str::FromStr>(flag: &str, raw: OsString) -> Result<T, UsageError>
where
    T::Err: fmt::Display,
{
    let text = raw
        .to_str()
        .ok_or_else(|| UsageError(format!("{flag}: value is not valid UTF-8")))?;
    text.parse()
        .map_err(|error| UsageError(format!("{flag}: invalid value {text:?}: {error}")))
}

/// A `--stats` path: starts with `/`, and holds only letters, digits and `/._~-`, so it
/// needs no escaping anywhere it is shown.
fn stats_path(raw: OsString) -> Result<String, UsageError> {
    let text = raw.to_string_lossy().into_owned();
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._~-".contains(c);
    if text.len() < 2 || !text.starts_with('/') || text.ends_with('/') || !text.chars().all(safe) {
        return Err(UsageError(format!(
            "--stats: expected a path such as /_stats (letters, digits, /._~-), got {text:?}"
        )));
    }
    Ok(text)
}

/// A whole number above zero.
fn positive(flag: &str, raw: OsString) -> Result<usize, UsageError> {
    match parse_value::<usize>(flag, raw)? {
        0 => Err(UsageError(format!("{flag}: must be at least 1"))),
        n => Ok(n),
    }
}

/// Splits a `NAME<sep>VALUE` flag value at the first `sep`.
fn split_flag(
    flag: &str,
    raw: OsString,
    sep: char,
    shape: &str,
) -> Result<(String, String), UsageError> {
    let text = raw
        .into_string()
        .map_err(|_| UsageError(format!("{flag}: not valid UTF-8")))?;
    let (left, right) = text
        .split_once(sep)
        .ok_or_else(|| UsageError(format!("{flag}: expected {shape}, got {text:?}")))?;
    Ok((left.to_string(), right.to_string()))
}

/// A `--header 'Name: value'` flag: a token name and a value without line breaks.
fn header(raw: OsString) -> Result<(String, String), UsageError> {
    let (name, value) = split_flag("--header", raw, ':', "'Name: value'")?;
    let name = name.as_str();
    if name.is_empty() || !name.chars().all(is_token_char) {
        return Err(UsageError(format!(
            "--header: {name:?} is not a valid header name"
        )));
    }
    /// Fields that frame the message or the connection: epollo alone decides those.
    const FRAMING: [&str; 7] = [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "trailer",
        "te",
    ];
    if FRAMING.iter().any(|field| name.eq_ignore_ascii_case(field)) {
        return Err(UsageError(format!(
            "--header: {name} is set by epollo itself"
        )));
    }
    let value = field_value("--header", OsString::from(value.trim()))?;
    Ok((name.to_string(), value))
}

/// A header value: visible characters and spaces only, so it cannot split the response.
fn field_value(flag: &str, raw: OsString) -> Result<String, UsageError> {
    let value = raw
        .into_string()
        .map_err(|_| UsageError(format!("{flag}: not valid UTF-8")))?;
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(UsageError(format!(
            "{flag}: the value may not contain control characters"
        )));
    }
    Ok(value)
}

/// A `--mime EXT=TYPE` flag.
fn mime_override(raw: OsString) -> Result<(String, String), UsageError> {
    let (ext, mime) = split_flag("--mime", raw, '=', "EXT=TYPE")?;
    let ext = ext.trim_start_matches('.').to_ascii_lowercase();
    let valid_type = mime.contains('/') && !mime.chars().any(|c| c.is_control());
    if ext.is_empty() || ext.contains('/') || !valid_type {
        return Err(UsageError(format!(
            "--mime: expected EXT=TYPE, got {ext:?}={mime:?}"
        )));
    }
    Ok((ext, mime))
}

/// A duration in seconds, fractions allowed (`0.5`), above zero and at most
/// [`limits::MAX_TIMEOUT`].
fn seconds(flag: &str, raw: OsString) -> Result<Duration, UsageError> {
    let secs: f64 = parse_value(flag, raw)?;
    let max = limits::MAX_TIMEOUT.as_secs_f64();
    if !(secs > 0.0 && secs <= max) {
        return Err(UsageError(format!(
            "{flag}: must be between 0 and {max} seconds, got {secs}"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// An index file name: one plain path segment.
fn index_name(raw: OsString) -> Result<String, UsageError> {
    let name = raw
        .into_string()
        .map_err(|_| UsageError("--index: name is not valid UTF-8".into()))?;
    if name.is_empty() || name.contains('/') || name == "." || name == ".." || name.contains('\0') {
        return Err(UsageError(format!(
            "--index: {name:?} is not a plain file name"
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, UsageError> {
        parse_args(args.iter().map(OsString::from))
    }

    fn serve(args: &[&str]) -> Config {
        match parse(args) {
            Ok(Command::Serve(config)) => *config,
            other => panic!("expected a config, got {other:?}"),
        }
    }

    #[test]
    fn defaults_serve_www_on_8080() {
        let config = serve(&[]);
        assert_eq!(config.root, PathBuf::from("./www"));
        assert_eq!(config.listen.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.site.index, "index.html");
    }

    #[test]
    fn flags_set_their_fields() {
        let config = serve(&[
            "site",
            "--bind",
            "::1",
            "-p",
            "0",
            "--index",
            "home.htm",
            "--header-timeout",
            "0.5",
        ]);
        assert_eq!(config.root, PathBuf::from("site"));
        assert_eq!(config.listen.addr.to_string(), "[::1]:0");
        assert_eq!(config.site.index, "home.htm");
        assert_eq!(config.timeouts.header, Duration::from_millis(500));
    }

    #[test]
    fn bad_command_lines_are_usage_errors() {
        for args in [
            &["--port", "70000"][..],
            &["--port"],
            &["--bind", "localhost:80"],
            &["--nope"],
            &["a", "b"],
            &["--header-timeout", "0"],
            &["--header-timeout", "NaN"],
            &["--max-connections", "0"],
            &["--index", "../x"],
            &["--max-headers", "257"],
            &["--max-head-bytes", "0"],
            &["--max-body-bytes", "-1"],
            &["--header", "NoColon"],
            &["--header", "Bad Name: x"],
            &["--header", "Content-Length: 5"],
            &["--header", "connection: close"],
            &["--header", "X: a\r\nSet-Cookie: evil"],
            &["--mime", "wasm"],
            &["--mime", "=text/plain"],
            &["--cache-control", "a\nb"],
        ] {
            assert!(parse(args).is_err(), "{args:?} should be refused");
        }
    }

    #[test]
    fn response_header_flags_accumulate() {
        let config = serve(&[
            "--header",
            "X-Frame-Options: DENY",
            "--cors",
            "--header",
            "Content-Security-Policy: default-src 'self'",
            "--cache-control",
            "max-age=60",
            "--mime",
            ".GLB=model/gltf-binary",
            "--no-listing",
            "--hidden",
            "--spa",
        ]);
        assert_eq!(
            config.site.added_fields.headers,
            vec![
                ("X-Frame-Options".to_string(), "DENY".to_string()),
                ("Access-Control-Allow-Origin".to_string(), "*".to_string()),
                (
                    "Content-Security-Policy".to_string(),
                    "default-src 'self'".to_string()
                ),
            ]
        );
        assert_eq!(
            config.site.added_fields.cache_control.as_deref(),
            Some("max-age=60")
        );
        assert_eq!(
            config.site.mime_overrides,
            vec![("glb".to_string(), "model/gltf-binary".to_string())]
        );
        assert!(!config.site.listing && config.site.hidden && config.site.spa);
    }

    #[test]
    fn short_writes_need_a_cap() {
        let error = parse_args(["--short-writes"].map(OsString::from)).unwrap_err();
        assert_eq!(error.0, "--short-writes needs --max-write N");
        let args = ["--max-write", "1000", "--short-writes"].map(OsString::from);
        assert!(parse_args(args).is_ok());
    }

    #[test]
    fn the_readme_flag_table_is_the_flag_table() {
        let readme = include_str!("../README.md");
        let table = readme_table();
        assert!(
            readme.contains(&table),
            "README.md's flag table differs from config::FLAGS; replace it with:\n{table}"
        );
    }

    #[test]
    fn every_table_row_in_the_readme_has_as_many_cells_as_its_header() {
        // GitHub splits a row at every `|` that is not escaped, code spans included.
        let cells = |row: &str| row.replace("\\|", "").matches('|').count() - 1;
        let mut header = None;
        for line in include_str!("../README.md").lines() {
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            let expected = *header.get_or_insert(cells(line));
            assert_eq!(cells(line), expected, "README row: {line}");
        }
    }

    #[test]
    fn a_mistyped_flag_is_answered_with_the_closest_one() {
        let message = |args: &[&str]| match parse(args) {
            Err(UsageError(message)) => message,
            Ok(_) => panic!("{args:?} parsed"),
        };
        for (typed, meant) in [
            ("--prot", "--port"),
            ("--lvie", "--live"),
            ("--no-cahce", "--no-cache"),
            ("--keep-alive-timout", "--keep-alive-timeout"),
        ] {
            let said = message(&[typed]);
            assert_eq!(said, format!("unknown flag {typed}; did you mean {meant}?"));
        }
        assert_eq!(message(&["--xyzzy"]), "unknown flag --xyzzy");
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn live_makes_browsers_revalidate_unless_told_otherwise() {
        let config = |args: &[&str]| match parse(args) {
            Ok(Command::Serve(config)) => config,
            _ => panic!("{args:?}"),
        };
        assert_eq!(
            config(&["--live"])
                .site
                .added_fields
                .cache_control
                .as_deref(),
            Some("no-cache")
        );
        let told = config(&["--live", "--cache-control", "max-age=5"]);
        assert_eq!(
            told.site.added_fields.cache_control.as_deref(),
            Some("max-age=5")
        );
        assert_eq!(config(&[]).site.added_fields.cache_control, None);
    }

    #[test]
    fn help_lists_every_flag_with_its_default() {
        let text = usage();
        for flag in FLAGS {
            assert!(text.contains(&flag.synopsis()), "{}", flag.long);
        }
        assert!(text.contains("--keep-alive-timeout SECS"));
        assert!(text.contains("(default 60)") && text.contains("(default 16384)"));
    }

    #[test]
    fn help_and_version_win() {
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
        assert!(matches!(parse(&["-V"]), Ok(Command::Version)));
    }
}
