//! `PeerCounts`: how many of something (connections, `--live` streams) are open per client
//! address, and in all, against a per-address cap.
//!
//! Where this sits in the loop: the reactor's admission counts connections with it, and the
//! connection's stream bounds count event streams; both keep it behind a lock shared by the
//! workers, and change it once per connection or stream opened and closed, never per request.

use std::collections::HashMap;
use std::net::IpAddr;

/// Open things per client address (no entry for zero), and their sum.
#[derive(Debug, Default)]
pub struct PeerCounts {
    /// Address → how many are open from it.
    open: HashMap<IpAddr, usize>,
    /// How many are open in all.
    total: usize,
}

impl PeerCounts {
    /// Whether `ip` may open another under `cap` from one address.
    pub fn admits(&self, ip: IpAddr, cap: usize) -> bool {
        self.open.get(&ip).copied().unwrap_or(0) < cap
    }

    /// How many are open in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// One from `ip` opened.
    pub fn opened(&mut self, ip: IpAddr) {
        *self.open.entry(ip).or_default() += 1;
        self.total += 1;
    }

    /// One from `ip` closed (nothing, if none was open).
    pub fn closed(&mut self, ip: IpAddr) {
        if let Some(count) = self.open.get_mut(&ip) {
            *count -= 1;
            self.total -= 1;
            if *count == 0 {
                self.open.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_address_and_in_all() {
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "::1".parse().unwrap());
        let mut counts = PeerCounts::default();
        counts.opened(a);
        counts.opened(a);
        counts.opened(b);
        assert!(!counts.admits(a, 2) && counts.admits(b, 2));
        assert_eq!(counts.total(), 3);
        counts.closed(a);
        counts.closed(a);
        counts.closed(a); // one too many: ignored
        assert!(counts.admits(a, 1));
        assert_eq!(counts.total(), 1);
    }
}
