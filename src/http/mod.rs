//! Pure HTTP: bytes → a [`request::Request`] (or a refusal), and a [`response::Reply`] →
//! bytes. No sockets and no files are opened here, so every rule is unit-tested.
//!
//! Where this sits in the loop: the connection hands its input buffer to
//! [`request::parse`] when bytes arrive, asks `site::answer` for a `Reply`, and appends the
//! `Reply` to its [`response::Outgoing`] batch, which it then sends.

pub mod chunked;
pub mod request;
pub mod response;
pub mod status;
pub mod syntax;

pub use request::{Method, Parsed, Persistence, Reject, Request};
pub use response::{Body, Fields, Outgoing, Reply};
pub use status::Status;
