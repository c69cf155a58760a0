//! Small helpers with one home each: dates, escape sets, and counts per client address.
//!
//! Where this sits in the loop: nowhere on its own. `http/` and `site/` call these leaves
//! when they format a head, compare a date, or build a link; keeping one copy of each means
//! the `Date` header, `Last-Modified`, the precondition checks and the listing page can never
//! disagree about what a second or a safe URL character is.

pub mod date;
pub mod escape;
pub mod peer_counts;
#[cfg(test)]
pub mod test_dir;
