//! cargo-fuzz target: arbitrary bytes through a real `Connection`; see `fuzz/harness.rs`.
//! Run: `cargo fuzz run request fuzz/corpus/request` (from the repository root).
#![no_main]

#[path = "../harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

thread_local! {
    /// One served folder for every input (a site is single-threaded, like a worker).
    static SITE: harness::Site = harness::Site::new();
}

fuzz_target!(|data: &[u8]| {
    SITE.with(|site| {
        let output = harness::exchange(site, data);
        if let Err(problem) = harness::check(data, &output) {
            panic!(
                "{problem}\ninput: {:?}\noutput: {:?}",
                harness::excerpt(data, 2000),
                harness::excerpt(&output, 2000)
            );
        }
    });
});
