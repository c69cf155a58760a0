//! The integration suite: one test crate (as ripgrep does), a module per topic, all sharing
//! `common`'s `TestServer`, which runs the real `epollo` binary on port 0 against a fresh
//! temporary root and talks to it over real sockets.

mod common;

/// Counts each thread's allocations, for `alloc`; otherwise the system allocator.
#[global_allocator]
static ALLOCATOR: epollo::sys::counting_alloc::CountingAllocator =
    epollo::sys::counting_alloc::CountingAllocator;

mod access_log;
mod alloc;
mod basic;
mod browser;
mod cache;
mod classic;
mod closed_output;
mod dev_server;
mod docs;
mod faults;
mod fuzz;
mod haproxy;
mod http_semantics;
mod interop;
mod keep_alive;
mod labs;
mod layout;
mod limits;
mod live;
mod minimal_loop;
mod paths;
mod pipelining;
mod protocol_abuse;
mod shutdown;
mod slots;
mod soak;
mod study;
mod under_attack;
mod walkthrough;
