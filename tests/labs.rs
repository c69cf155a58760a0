//! The labs (`examples/lab.py`, listed in www/docs/labs/) ask questions whose answers come from
//! a run of epollo; each lab also states the answer it expects. This runs every lab and checks
//! that a fresh run still gives that answer, so the labs cannot drift from the server.

use std::process::Command;

use crate::common::tool_installed;

#[test]
fn every_lab_still_gives_its_expected_answer() {
    if !tool_installed("python3", "--version") || !tool_installed("strace", "-V") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lab.py");
    let output = Command::new("python3")
        .args([script, "--check", "--epollo", env!("CARGO_BIN_EXE_epollo")])
        .output()
        .expect("python3 runs the labs");
    let report = String::from_utf8_lossy(&output.stdout);
    let labs = [
        "one-request",
        "keep-alive",
        "max-read",
        "slow-reader",
        "lt-vs-et",
        "live-stats",
        "shutdown",
        "classic-crashes",
    ];
    for lab in labs {
        assert!(
            report.contains(&format!("lab {lab}: expected")),
            "{lab} did not run:\n{report}"
        );
    }
    assert!(
        output.status.success() && !report.contains("WRONG"),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/www/docs/labs/index.html"
    ))
    .unwrap();
    for lab in labs {
        assert!(
            page.contains(&format!("id=\"{lab}\"")),
            "labs/index.html has no entry for {lab}"
        );
    }
}
