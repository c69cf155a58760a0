//! Access-log lines in the standard formats: NCSA common, combined (what nginx and Apache
//! write, and goaccess, AWStats and friends read), and JSON; and the client address to log,
//! which behind a trusted proxy comes from `X-Forwarded-For` or `Forwarded`.
//!
//! Where this sits in the loop: after it, in effect. When an answer is fully sent, the
//! connection hands its record to the worker's `AccessLog`, which formats it here into its
//! buffer. Pure functions: no I/O.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use crate::util::date::{clf_time, rfc3339, unix_seconds};
use crate::util::escape::json_string;

/// Which line format (`--log-format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `host - - [time] "request" status bytes`.
    Common,
    /// Common, then `"referer" "user-agent"` (the default for `--access-log`).
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
}

/// A `--trusted-proxy ADDR[/PREFIX]`: connections from these addresses may name the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedProxy {
    /// The network address.
    pub addr: IpAddr,
    /// How many leading bits must match.
    pub prefix: u8,
}

impl TrustedProxy {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    ///
    /// # Errors
    /// A message naming the problem.
    pub fn parse(text: &str) -> Result<TrustedProxy, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|e| format!("{text:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: prefix must be 0 to {max}"))?,
        };
        Ok(TrustedProxy { addr, prefix })
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// What one answered request leaves in the log.
#[derive(Debug)]
pub struct LogEntry<'a> {
    /// The connection's peer.
    pub peer: SocketAddr,
    /// When the answer was finished.
    pub time: SystemTime,
    /// The request line (or the start of a refused head).
    pub line: &'a str,
    /// The status sent.
    pub status: u16,
    /// Content bytes sent (head excluded), as `%b` counts them.
    pub body_bytes: u64,
    /// `Referer`, if sent (and copied: only when the format logs it).
    pub referer: Option<&'a str>,
    /// `User-Agent`, likewise.
    pub user_agent: Option<&'a str>,
    /// `X-Forwarded-For`, likewise (only used from a trusted proxy).
    pub forwarded_for: Option<&'a str>,
    /// `Forwarded` (RFC 7239), likewise.
    pub forwarded: Option<&'a str>,
    /// Milliseconds from the parsed head to the last byte sent.
    pub duration_ms: f64,
}

/// The client to log: the peer, or, when the peer is a trusted proxy, the address the
/// forwarding headers name: walking `X-Forwarded-For` (or `Forwarded: for=`) from the right,
/// the first address that is not itself a trusted proxy (so a client cannot forge its address
/// by sending the header itself: the proxy appends the real one last).
pub fn client_address(entry: &LogEntry, trusted: &[TrustedProxy]) -> IpAddr {
    let peer = entry.peer.ip();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|proxy| proxy.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let named: Vec<IpAddr> = match (entry.forwarded, entry.forwarded_for) {
        (Some(forwarded), _) => forwarded_for_values(forwarded),
        (None, Some(list)) => list.split(',').filter_map(|a| parse_ip(a.trim())).collect(),
        (None, None) => Vec::new(),
    };
    named
        .into_iter()
        .rev()
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

/// The `for=` addresses of a `Forwarded` field, in order.
fn forwarded_for_values(field: &str) -> Vec<IpAddr> {
    field
        .split(',')
        .flat_map(|element| element.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            name.eq_ignore_ascii_case("for")
                .then(|| parse_ip(value.trim().trim_matches('"')))?
        })
        .collect()
}

/// An address as forwarding headers write it: `1.2.3.4`, `1.2.3.4:80`, `[::1]`, `[::1]:80`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')?.split(']').next()?.parse().ok()
}

/// Appends one line in `format` to `out`.
pub fn write_line(out: &mut Vec<u8>, format: LogFormat, entry: &LogEntry, client: IpAddr) {
    let seconds = unix_seconds(entry.time).unwrap_or(0);
    let mut line = String::with_capacity(200);
    match format {
        LogFormat::Common | LogFormat::Combined => {
            let bytes = match entry.body_bytes {
                0 => "-".to_string(),
                n => n.to_string(),
            };
            let _ = write!(
                line,
                "{client} - - [{}] \"{}\" {} {bytes}",
                clf_time(seconds),
                clf_escape(entry.line),
                entry.status
            );
            if format == LogFormat::Combined {
                let _ = write!(
                    line,
                    " \"{}\" \"{}\"",
                    clf_escape(entry.referer.unwrap_or("-")),
                    clf_escape(entry.user_agent.unwrap_or("-"))
                );
            }
        }
        LogFormat::Json => {
            let text = |value: Option<&str>| value.map_or("null".into(), json_string);
            let _ = write!(
                line,
                "{{\"time\":\"{}\",\"remote_addr\":\"{client}\",\"request\":{},\"status\":{},\"body_bytes\":{},\"referer\":{},\"user_agent\":{},\"duration_ms\":{:.3}}}",
                rfc3339(seconds),
                json_string(entry.line),
                entry.status,
                entry.body_bytes,
                text(entry.referer),
                text(entry.user_agent),
                entry.duration_ms
            );
        }
    }
    line.push('\n');
    out.extend_from_slice(line.as_bytes());
}

/// Escapes a quoted field of the common/combined formats as nginx does: `"` and `\` and
/// any byte outside printable ASCII as `\xHH`, so a line always parses.
fn clf_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'"' | b'\\' => {
                let _ = write!(out, "\\x{byte:02X}");
            }
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\x{byte:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry<'a>(peer: &str, forwarded_for: Option<&'a str>) -> LogEntry<'a> {
        LogEntry {
            peer: peer.parse().unwrap(),
            time: UNIX_EPOCH + Duration::from_secs(1_764_569_291),
            line: "GET /a \"b\" HTTP/1.1",
            status: 200,
            body_bytes: 0,
            referer: Some("http://x/"),
            user_agent: None,
            forwarded_for,
            forwarded: None,
            duration_ms: 0.25,
        }
    }

    #[test]
    fn common_and_combined_lines_are_escaped_and_use_a_dash_for_nothing() {
        let mut out = Vec::new();
        let e = entry("127.0.0.1:5000", None);
        write_line(&mut out, LogFormat::Combined, &e, e.peer.ip());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "127.0.0.1 - - [01/Dec/2025:06:08:11 +0000] \"GET /a \\x22b\\x22 HTTP/1.1\" 200 - \"http://x/\" \"-\"\n"
        );
    }

    #[test]
    fn json_lines_are_objects() {
        let mut out = Vec::new();
        let e = entry("[::1]:5000", None);
        write_line(&mut out, LogFormat::Json, &e, e.peer.ip());
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.starts_with("{\"time\":\"2025-12-01T06:08:11Z\",\"remote_addr\":\"::1\","),
            "{line}"
        );
        assert!(
            line.contains("\"request\":\"GET /a \\\"b\\\" HTTP/1.1\""),
            "{line}"
        );
        assert!(
            line.ends_with("\"user_agent\":null,\"duration_ms\":0.250}\n"),
            "{line}"
        );
    }

    #[test]
    fn forwarding_headers_count_only_from_a_trusted_proxy() {
        let trusted = [TrustedProxy::parse("10.0.0.0/8").unwrap()];
        let from_proxy = entry("10.1.2.3:5000", Some("203.0.113.9, 10.9.9.9"));
        assert_eq!(
            client_address(&from_proxy, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let from_client = entry("198.51.100.7:5000", Some("1.2.3.4"));
        assert_eq!(
            client_address(&from_client, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // A forged first entry is skipped: the proxy appended the real address last.
        let forged = entry("10.1.2.3:5000", Some("6.6.6.6, 203.0.113.9"));
        assert_eq!(
            client_address(&forged, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        let mut rfc7239 = entry("10.1.2.3:5000", None);
        rfc7239.forwarded = Some("for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"");
        assert_eq!(
            client_address(&rfc7239, &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn trusted_networks_parse_and_match() {
        assert!(TrustedProxy::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxy::parse("nope").is_err());
        let one = TrustedProxy::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(one.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let all = TrustedProxy::parse("::/0").unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
    }
}
