//! Access-log lines in the standard formats: NCSA common, combined (what nginx and Apache
//! write, and goaccess, AWStats and friends read), and JSON; and the client address to log,
//! which behind a trusted proxy comes from `X-Forwarded-For` (or, if `--real-ip-header`
//! says so, `Forwarded`).
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

/// Which request field names the client behind a trusted proxy (`--real-ip-header`): one
/// field only, the one the proxies in front are set up to write, because a field they do not
/// write passes through them exactly as the client sent it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RealIpHeader {
    /// `X-Forwarded-For: client, proxy1, …` (HAProxy's `option forwardfor`, nginx's
    /// `$proxy_add_x_forwarded_for`): the default.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl RealIpHeader {
    /// The field's name, as the flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            RealIpHeader::XForwardedFor => "x-forwarded-for",
            RealIpHeader::Forwarded => "forwarded",
        }
    }
}

/// The client to log, as nginx's realip module finds it with `real_ip_recursive on`: start
/// from the peer; while the address in hand is a trusted proxy, step to the address it
/// appended (the rightmost one not yet taken) of the configured field. So the walk ends at
/// the first untrusted address from the right (a client cannot forge it: its own entries
/// are further left), at the leftmost if every hop is trusted, and at the peer if it is not
/// trusted or the field is absent. An entry that names no address (`unknown`, an obfuscated
/// `_hidden`, garbage) stops the walk where it is: the proxy that wrote it is the last
/// address known to be true, and nothing left of it is believed.
pub fn client_address(entry: &LogEntry, trusted: &[TrustedProxy], header: RealIpHeader) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|proxy| proxy.contains(ip));
    let mut client = entry.peer.ip();
    let field = match header {
        RealIpHeader::XForwardedFor => entry.forwarded_for,
        RealIpHeader::Forwarded => entry.forwarded,
    };
    let Some(field) = field else {
        return client;
    };
    // Repeated fields arrive joined with `, ` (RFC 9110 §5.3); empty entries are skipped.
    for hop in field.rsplit(',').filter(|hop| !hop.trim().is_empty()) {
        if !is_trusted(client) {
            break;
        }
        let named = match header {
            RealIpHeader::XForwardedFor => parse_ip(hop.trim()),
            RealIpHeader::Forwarded => forwarded_element_for(hop),
        };
        let Some(ip) = named else {
            break; // names no address: believe nothing left of it
        };
        client = ip;
    }
    client
}

/// The address in the `for=` parameter of one `Forwarded` element (`for=1.2.3.4;proto=http`),
/// if it has one and it is an address (not `unknown` or an obfuscated `_name`).
fn forwarded_element_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        let value = value.trim();
        let unquoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        parse_ip(unquoted)
    })
}

/// An address as forwarding fields write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:80`; anything else (`unknown`, `_hidden`, garbage) is
/// `None`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let (inside, after) = text.strip_prefix('[')?.split_once(']')?;
    let port_ok = after.is_empty() || after.strip_prefix(':')?.parse::<u16>().is_ok();
    let ip: std::net::Ipv6Addr = inside.parse().ok()?;
    port_ok.then_some(IpAddr::V6(ip))
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
    let mut push = |byte: u8| match byte {
        b'"' | b'\\' => {
            let _ = write!(out, "\\x{byte:02X}");
        }
        0x20..=0x7e => out.push(char::from(byte)),
        _ => {
            let _ = write!(out, "\\x{byte:02X}");
        }
    };
    let mut utf8 = [0u8; 4];
    for ch in text.chars() {
        // A byte of invalid UTF-8 the client sent is written as itself (see `log_text`).
        match crate::util::escape::raw_byte(ch) {
            Some(byte) => push(byte),
            None => ch.encode_utf8(&mut utf8).bytes().for_each(&mut push),
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

    /// Where the walk ends, as nginx's realip module with `real_ip_recursive on` would:
    /// (name, peer, header, field value, expected client). Trusted: 10.0.0.0/8, 127.0.0.1
    /// and 2001:db8:ffff::/48.
    #[test]
    fn the_client_is_the_rightmost_address_no_trusted_proxy_added() {
        use RealIpHeader::{Forwarded as Fwd, XForwardedFor as Xff};
        let trusted: Vec<TrustedProxy> = ["10.0.0.0/8", "127.0.0.1", "2001:db8:ffff::/48"]
            .iter()
            .map(|t| TrustedProxy::parse(t).unwrap())
            .collect();
        let table: &[(&str, &str, RealIpHeader, Option<&str>, &str)] = &[
            (
                "untrusted peer: fields ignored",
                "198.51.100.7:1",
                Xff,
                Some("1.2.3.4"),
                "198.51.100.7",
            ),
            ("no field: the proxy", "10.1.2.3:1", Xff, None, "10.1.2.3"),
            (
                "one hop",
                "10.1.2.3:1",
                Xff,
                Some("203.0.113.9"),
                "203.0.113.9",
            ),
            (
                "forged entry left of the real one",
                "10.1.2.3:1",
                Xff,
                Some("6.6.6.6, 203.0.113.9"),
                "203.0.113.9",
            ),
            (
                "trusted chain skipped",
                "10.1.2.3:1",
                Xff,
                Some("6.6.6.6, 203.0.113.9, 10.9.9.9, 127.0.0.1"),
                "203.0.113.9",
            ),
            (
                "all trusted: the leftmost",
                "10.1.2.3:1",
                Xff,
                Some("10.0.0.1, 10.0.0.2"),
                "10.0.0.1",
            ),
            (
                "repeated fields, joined",
                "10.1.2.3:1",
                Xff,
                Some("6.6.6.6, 203.0.113.9, 10.0.0.7"),
                "203.0.113.9",
            ),
            (
                "empty entries skipped",
                "10.1.2.3:1",
                Xff,
                Some("6.6.6.6, 203.0.113.9,, ,"),
                "203.0.113.9",
            ),
            (
                "port",
                "10.1.2.3:1",
                Xff,
                Some("6.6.6.6, 203.0.113.9:5555"),
                "203.0.113.9",
            ),
            (
                "bare IPv6",
                "10.1.2.3:1",
                Xff,
                Some("2001:db8::1"),
                "2001:db8::1",
            ),
            (
                "bracketed IPv6 and port",
                "10.1.2.3:1",
                Xff,
                Some("[2001:db8::1]:443"),
                "2001:db8::1",
            ),
            (
                "trusted IPv6 hop skipped",
                "[2001:db8:ffff::2]:1",
                Xff,
                Some("[2001:db8::1], 2001:db8:ffff::9"),
                "2001:db8::1",
            ),
            (
                "IPv4-mapped peer is trusted",
                "[::ffff:10.1.2.3]:1",
                Xff,
                Some("203.0.113.9"),
                "203.0.113.9",
            ),
            (
                "garbage: the proxy",
                "10.1.2.3:1",
                Xff,
                Some("garbage"),
                "10.1.2.3",
            ),
            (
                "garbage stops the walk",
                "10.1.2.3:1",
                Xff,
                Some("203.0.113.9, junk, 10.0.0.5"),
                "10.0.0.5",
            ),
            (
                "bracket junk",
                "10.1.2.3:1",
                Xff,
                Some("[2001:db8::1]junk"),
                "10.1.2.3",
            ),
            (
                "bad port",
                "10.1.2.3:1",
                Xff,
                Some("203.0.113.9:99999"),
                "10.1.2.3",
            ),
            (
                "Forwarded ignored by default",
                "10.1.2.3:1",
                Xff,
                None,
                "10.1.2.3",
            ),
            (
                "RFC 7239 example",
                "10.1.2.3:1",
                Fwd,
                Some("for=192.0.2.60;proto=http;by=203.0.113.43"),
                "192.0.2.60",
            ),
            (
                "quoted IPv6 with port",
                "10.1.2.3:1",
                Fwd,
                Some("for=192.0.2.60, for=\"[2001:db8::1]:4711\""),
                "2001:db8::1",
            ),
            (
                "forged for= left of the real one",
                "10.1.2.3:1",
                Fwd,
                Some("for=6.6.6.6, For=203.0.113.9"),
                "203.0.113.9",
            ),
            (
                "trusted for= skipped",
                "10.1.2.3:1",
                Fwd,
                Some("for=203.0.113.9, for=10.0.0.9"),
                "203.0.113.9",
            ),
            (
                "unknown: the proxy that wrote it",
                "10.1.2.3:1",
                Fwd,
                Some("for=6.6.6.6, for=unknown"),
                "10.1.2.3",
            ),
            (
                "obfuscated stops the walk",
                "10.1.2.3:1",
                Fwd,
                Some("for=6.6.6.6, for=_hidden, for=10.0.0.4"),
                "10.0.0.4",
            ),
            (
                "element without for=",
                "10.1.2.3:1",
                Fwd,
                Some("for=6.6.6.6, proto=https"),
                "10.1.2.3",
            ),
        ];
        for (name, peer, header, field, expected) in table {
            let mut e = entry(peer, None);
            match header {
                Xff => e.forwarded_for = *field,
                Fwd => e.forwarded = *field,
            }
            // A field that is not the configured one never counts.
            let (other, decoy) = (Some("for=6.6.6.6"), Some("6.6.6.6"));
            match header {
                Xff => e.forwarded = other,
                Fwd => e.forwarded_for = decoy,
            }
            let expected: IpAddr = expected.parse().unwrap();
            assert_eq!(client_address(&e, &trusted, *header), expected, "{name}");
        }
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
