//! Pure HTTP: bytes → a [`request::Request`] (or a refusal), and a [`reply::Reply`] → the
//! bytes of its head ([`head::write_head`]). No sockets and no files are opened, read or
//! written here (nothing imports `std::fs`, `std::net` or the server's configuration: a test
//! checks), so every rule is unit-tested on plain values.
//!
//! Where this sits in the loop: the connection hands its input buffer to
//! [`request::parse`] when bytes arrive, asks the router for a `Reply`, and appends it to its
//! output batch (`connection/outgoing.rs`), which writes the head here and then sends.

pub mod chunked;
pub mod head;
pub mod reply;
pub mod request;
pub mod status;
pub mod syntax;

pub use head::{AddedFields, HeadOptions};
pub use reply::{Body, Fields, Reply};
pub use request::{Method, Parsed, Persistence, Reject, Request};
pub use status::Status;
