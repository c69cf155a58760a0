//! cargo-fuzz target: arbitrary bytes through a real `Connection`; see `fuzz/harness.rs`.
//! Run: `cargo fuzz run request fuzz/corpus/request` (from the repository root).
#![no_main]

#[path = "../harness.rs"]
mod harness;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static SITE: OnceLock<harness::Site> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let site = SITE.get_or_init(harness::Site::new);
    let output = harness::exchange(site, data);
    if let Err(problem) = harness::check(data, &output) {
        panic!("{problem}\ninput: {:?}\noutput: {:?}", harness::excerpt(data, 2000), harness::excerpt(&output, 2000));
    }
});
