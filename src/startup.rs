//! What epollo says when it starts listening: the one stdout line tests and scripts read,
//! and, bound to every interface (`0.0.0.0` or `::`), each address it can be reached at as a
//! clickable URL, as dev servers print them; then, with `--open`, the default browser.
//!
//! Where this sits in the loop: before it. `workers::run` calls [`announce`] once every
//! worker listens, and then the loop starts.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};

/// Prints the startup line (and, for a wildcard address, the reachable URLs), then opens
/// the browser if asked.
///
/// If stdout cannot take the lines (a pipe whose reader has gone), epollo says so on stderr
/// and serves on: serving is its job and the line a courtesy, and `epollo | head -1`, which
/// reads the first line and leaves, must not stop the server depending on how fast `head`
/// exits (the reachable URLs follow that first line).
pub fn announce(shown_root: &str, addr: SocketAddr, open: bool) {
    let urls = reachable_urls(addr);
    if let Err(e) = print_lines(shown_root, addr, &urls) {
        log::warn!("stdout: {e}; the startup line was not printed, serving at http://{addr}/");
    }
    if open {
        let url = urls
            .first()
            .map_or_else(|| format!("http://{addr}/"), |(_, url)| url.clone());
        open_browser(&url);
    }
}

/// The startup line and, for a wildcard address, the reachable URLs, on stdout.
fn print_lines(shown_root: &str, addr: SocketAddr, urls: &[(&str, String)]) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "epollo: serving {shown_root} at http://{addr}/")?;
    if addr.ip().is_unspecified() {
        for (label, url) in urls {
            writeln!(stdout, "  {label:<8} {url}")?;
        }
    }
    stdout.flush()
}

/// `("Local:", "http://localhost:PORT/")` and one `("Network:", URL)` per address of this
/// machine's interfaces that the listener accepts on; for a specific address, just that one.
pub fn reachable_urls(addr: SocketAddr) -> Vec<(&'static str, String)> {
    let port = addr.port();
    if !addr.ip().is_unspecified() {
        return vec![("Local:", url(addr.ip(), port))];
    }
    let mut urls = vec![("Local:", format!("http://localhost:{port}/"))];
    let v6_listener = addr.is_ipv6(); // `::` also accepts IPv4 on Linux (IPV6_V6ONLY is off)
    for ip in interface_addresses() {
        let usable = match ip {
            IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            // Link-local IPv6 needs a zone in the URL, which browsers do not take.
            IpAddr::V6(v6) => v6_listener && !v6.is_loopback() && !v6.is_unicast_link_local(),
        };
        if usable {
            urls.push(("Network:", url(ip, port)));
        }
    }
    urls
}

/// `http://IP:PORT/`, with IPv6 in brackets.
fn url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("http://{v4}:{port}/"),
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}/"),
    }
}

/// Every IP address of this machine's interfaces (`getifaddrs(3)`), without repeats.
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut found: Vec<IpAddr> = Vec::new();
    for interface in interfaces {
        let Some(address) = interface.address else {
            continue;
        };
        let ip = if let Some(v4) = address.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = address.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if !found.contains(&ip) {
            found.push(ip);
        }
    }
    found
}

/// `--open`: asks the desktop to open `url` (`xdg-open`), without waiting for it. A missing
/// `xdg-open` (a server, a container) is a warning, not a failure.
fn open_browser(url: &str) {
    let spawned = Command::new("xdg-open")
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        // Reaped by the loop when SIGCHLD arrives (`Server::reap_children`), which also says
        // if it failed (no display): dropping the handle neither waits nor kills.
        Ok(_child) => log::info!("opening {url} in the default browser"),
        Err(e) => log::warn!("--open: could not run xdg-open: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_specific_address_is_its_own_url() {
        let urls = reachable_urls("127.0.0.1:8080".parse().unwrap());
        assert_eq!(urls, vec![("Local:", "http://127.0.0.1:8080/".to_string())]);
        let urls = reachable_urls("[::1]:8080".parse().unwrap());
        assert_eq!(urls, vec![("Local:", "http://[::1]:8080/".to_string())]);
    }

    #[test]
    fn a_wildcard_address_lists_localhost_then_the_network_addresses() {
        let urls = reachable_urls("0.0.0.0:8080".parse().unwrap());
        assert_eq!(urls[0], ("Local:", "http://localhost:8080/".to_string()));
        for (label, url) in &urls[1..] {
            assert_eq!(*label, "Network:");
            assert!(
                url.starts_with("http://") && url.ends_with(":8080/"),
                "{url}"
            );
            assert!(!url.contains("127.0.0.1"), "loopback is the Local line");
        }
    }
}
