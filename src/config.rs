//! `Config`: command-line flags, `--help`, `--version`, and validation.
//!
//! Where this sits in the loop: before it. `main` parses the flags into a `Config`, and the
//! reactor reads it (by reference, never through a global) for the root, the bind address,
//! the timeouts and the connection cap.

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::limits;
use crate::request;

/// Everything the server needs to know before it starts.
#[derive(Clone, Debug)]
pub struct Config {
    /// The folder to serve (not yet canonicalised; the server does that at startup).
    pub root: PathBuf,
    /// The address and port to listen on; port 0 asks the kernel for a free one.
    pub addr: SocketAddr,
    /// The file served for a directory request (`--index`).
    pub index: String,
    /// How long an idle keep-alive connection is kept (`--keep-alive-timeout`).
    pub keep_alive_timeout: Duration,
    /// How long a request head may take to arrive (`--header-timeout`).
    pub header_timeout: Duration,
    /// How long a client may stop reading its response (`--send-timeout`).
    pub send_timeout: Duration,
    /// Most open client connections; `None` derives it from the open-file limit.
    pub max_connections: Option<usize>,
    /// Requests on one connection before it is closed (`--max-requests`).
    pub max_requests_per_connection: u64,
    /// Size limits on request heads and bodies (`--max-head-bytes` and friends).
    pub request_limits: request::Limits,
    /// Serve through symlinks that lead out of the root (`--follow-symlinks`).
    pub follow_symlinks: bool,
    /// List directories that have no index file (off with `--no-listing`: then 403).
    pub listing: bool,
    /// List and serve names starting with `.` (`--hidden`).
    pub hidden: bool,
    /// Serve the root index for unknown paths that do not look like files (`--spa`).
    pub spa: bool,
    /// Headers added to every response (`--header`, `--cors`).
    pub headers: Vec<(String, String)>,
    /// `Cache-Control` on files (`--cache-control`).
    pub cache_control: Option<String>,
    /// Extension (lowercase, no dot) → MIME type overrides (`--mime EXT=TYPE`).
    pub mime_overrides: Vec<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: PathBuf::from("./www"),
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            index: "index.html".to_string(),
            keep_alive_timeout: limits::DEFAULT_KEEP_ALIVE_TIMEOUT,
            header_timeout: limits::DEFAULT_HEADER_TIMEOUT,
            send_timeout: limits::DEFAULT_SEND_TIMEOUT,
            max_connections: None,
            max_requests_per_connection: limits::DEFAULT_MAX_REQUESTS_PER_CONNECTION,
            request_limits: request::Limits::default(),
            follow_symlinks: false,
            listing: true,
            hidden: false,
            spa: false,
            headers: Vec::new(),
            cache_control: None,
            mime_overrides: Vec::new(),
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

/// The `--help` text.
pub const USAGE: &str = "\
usage: epollo [ROOT] [OPTIONS]

Serve the folder ROOT (default ./www) over HTTP/1.1.

options:
  -b, --bind ADDR               address to listen on (default 127.0.0.1; ::1 for IPv6)
  -p, --port N                  port to listen on, 0 for any free port (default 8080)
      --index NAME              file served for a directory (default index.html)
      --keep-alive-timeout SECS close idle keep-alive connections after SECS (default 60)
      --header-timeout SECS     answer 408 if a request head takes longer (default 15)
      --send-timeout SECS       close if a client reads nothing for SECS (default 60)
      --max-connections N       most open connections (default: from the open-file limit)
      --follow-symlinks         serve symlinks that lead outside ROOT (default: 403)
      --no-listing              answer 403 for a directory without an index (default: list it)
      --hidden                  list and serve names starting with '.' (default: 404)
      --spa                     unknown paths without a file extension get the root index
      --header 'NAME: VALUE'    add a header to every response (repeatable)
      --cors                    add 'Access-Control-Allow-Origin: *' to every response
      --cache-control VALUE     send 'Cache-Control: VALUE' with files
      --mime EXT=TYPE           serve files ending in .EXT as TYPE (repeatable)
      --max-requests N          requests per connection before closing it (default 10000)
      --max-head-bytes N        largest request head, else 431 (default 16384)
      --max-target-bytes N      longest request target, else 414 (default 8192)
      --max-headers N           most header fields, at most 256, else 431 (default 64)
      --max-body-bytes N        largest request body read and discarded, else 413 (default 1048576)
  -h, --help                    print this help
  -V, --version                 print the version

RUST_LOG=info (default) logs one line per request; RUST_LOG=trace shows the event loop.";

/// Parses the command line (without the program name).
///
/// # Errors
/// A [`UsageError`] naming the flag or value that is wrong.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    use lexopt::prelude::*;
    let mut config = Config::default();
    let mut ip: IpAddr = config.addr.ip();
    let mut port: u16 = config.addr.port();
    let mut root: Option<PathBuf> = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Short('b') | Long("bind") => ip = parse_value(&mut parser, "--bind")?,
            Short('p') | Long("port") => port = parse_value(&mut parser, "--port")?,
            Long("index") => config.index = index_name(parser.value()?)?,
            Long("keep-alive-timeout") => {
                config.keep_alive_timeout = seconds(&mut parser, "--keep-alive-timeout")?
            }
            Long("header-timeout") => {
                config.header_timeout = seconds(&mut parser, "--header-timeout")?
            }
            Long("send-timeout") => config.send_timeout = seconds(&mut parser, "--send-timeout")?,
            Long("max-connections") => {
                config.max_connections = Some(positive(&mut parser, "--max-connections")?)
            }
            Long("max-requests") => {
                config.max_requests_per_connection = positive(&mut parser, "--max-requests")? as u64
            }
            Long("follow-symlinks") => config.follow_symlinks = true,
            Long("no-listing") => config.listing = false,
            Long("hidden") => config.hidden = true,
            Long("spa") => config.spa = true,
            Long("cors") => config
                .headers
                .push(("Access-Control-Allow-Origin".into(), "*".into())),
            Long("header") => config.headers.push(header(parser.value()?)?),
            Long("cache-control") => {
                config.cache_control = Some(field_value("--cache-control", parser.value()?)?)
            }
            Long("mime") => config.mime_overrides.push(mime_override(parser.value()?)?),
            Long("max-head-bytes") => {
                config.request_limits.max_head_bytes = positive(&mut parser, "--max-head-bytes")?
            }
            Long("max-target-bytes") => {
                config.request_limits.max_target_bytes =
                    positive(&mut parser, "--max-target-bytes")?
            }
            Long("max-headers") => {
                config.request_limits.max_headers =
                    at_most(&mut parser, "--max-headers", limits::MAX_HEADERS_CAP)?
            }
            Long("max-body-bytes") => {
                config.request_limits.max_body_bytes = parse_value(&mut parser, "--max-body-bytes")?
            }
            Value(value) if root.is_none() => root = Some(PathBuf::from(value)),
            other => return Err(other.unexpected().into()),
        }
    }
    config.addr = SocketAddr::new(ip, port);
    if let Some(root) = root {
        config.root = root;
    }
    Ok(Command::Serve(Box::new(config)))
}

/// Parses a flag's value with `FromStr`, naming the flag on failure.
fn parse_value<T: std::str::FromStr>(
    parser: &mut lexopt::Parser,
    flag: &str,
) -> Result<T, UsageError>
where
    T::Err: fmt::Display,
{
    let raw = parser.value()?;
    let text = raw
        .to_str()
        .ok_or_else(|| UsageError(format!("{flag}: value is not valid UTF-8")))?;
    text.parse()
        .map_err(|error| UsageError(format!("{flag}: invalid value {text:?}: {error}")))
}

/// A whole number above zero.
fn positive(parser: &mut lexopt::Parser, flag: &str) -> Result<usize, UsageError> {
    match parse_value::<usize>(parser, flag)? {
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
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
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

/// A whole number from 1 to `max`.
fn at_most(parser: &mut lexopt::Parser, flag: &str, max: usize) -> Result<usize, UsageError> {
    match positive(parser, flag)? {
        n if n > max => Err(UsageError(format!("{flag}: must be at most {max}"))),
        n => Ok(n),
    }
}

/// A duration in seconds, fractions allowed (`0.5`), above zero and at most a day.
fn seconds(parser: &mut lexopt::Parser, flag: &str) -> Result<Duration, UsageError> {
    let secs: f64 = parse_value(parser, flag)?;
    if !(secs > 0.0 && secs <= 86_400.0) {
        return Err(UsageError(format!(
            "{flag}: must be between 0 and 86400 seconds, got {secs}"
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
        assert_eq!(config.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.index, "index.html");
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
        assert_eq!(config.addr.to_string(), "[::1]:0");
        assert_eq!(config.index, "home.htm");
        assert_eq!(config.header_timeout, Duration::from_millis(500));
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
            config.headers,
            vec![
                ("X-Frame-Options".to_string(), "DENY".to_string()),
                ("Access-Control-Allow-Origin".to_string(), "*".to_string()),
                (
                    "Content-Security-Policy".to_string(),
                    "default-src 'self'".to_string()
                ),
            ]
        );
        assert_eq!(config.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(
            config.mime_overrides,
            vec![("glb".to_string(), "model/gltf-binary".to_string())]
        );
        assert!(!config.listing && config.hidden && config.spa);
    }

    #[test]
    fn help_and_version_win() {
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
        assert!(matches!(parse(&["-V"]), Ok(Command::Version)));
    }
}
