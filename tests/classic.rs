//! The classic teaching server (`examples/classic_epoll_server.py`) fails each way
//! www/docs/from-python.html says, and epollo holds in each: `examples/classic_probes.py` runs
//! every probe against a fresh copy of both, and this checks its every line.

use std::process::Command;

use crate::common::tool_installed;

/// The probes the page sets side by side (one row each).
const PROBES: [&str; 11] = [
    "first-disconnect",
    "bare-crlf",
    "tls-hello",
    "split-request",
    "pipelined",
    "traversal",
    "slow-reader",
    "status-line",
    "head-body",
    "content-type",
    "rst-spin",
];

#[test]
fn the_classic_server_fails_every_probe_and_epollo_holds() {
    if !tool_installed("python3", "--version") {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/classic_probes.py");
    let output = Command::new("python3")
        .args([script, "--epollo", env!("CARGO_BIN_EXE_epollo")])
        .output()
        .expect("python3 runs the probes");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for probe in PROBES {
        for (server, verdict) in [("classic", "fails"), ("epollo", "holds")] {
            let line = format!("{probe} {server}: {verdict} (");
            assert!(report.contains(&line), "expected `{line}…` in:\n{report}");
        }
    }
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/www/docs/from-python.html"
    ))
    .unwrap();
    for probe in PROBES {
        assert!(
            page.contains(&format!("id=\"{probe}\"")),
            "from-python.html has no row {probe}"
        );
    }
}

#[test]
fn the_page_shows_the_classic_server_as_it_is() {
    let root = env!("CARGO_MANIFEST_DIR");
    let source = std::fs::read_to_string(format!("{root}/examples/classic_epoll_server.py"));
    let page = std::fs::read_to_string(format!("{root}/www/docs/from-python.html")).unwrap();
    let source = source.unwrap();
    let code = &source[source.find("import re").unwrap()..];
    let escaped = code
        .trim_end()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(
        page.contains(&escaped),
        "from-python.html's listing differs from the file"
    );
}
