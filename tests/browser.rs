//! `--live` as a web developer meets it, in a real browser: headless Chromium driven over the
//! DevTools protocol (`common/browser.rs`). What only a browser can show: an edited script is
//! what the reloaded page runs, any number of tabs load and reload, a build burst reloads
//! once, a stylesheet saved through a temporary file is swapped without a reload, and pages
//! epollo makes itself (404, listings) and pages with a precompressed sibling reload too.
//!
//! In CI (`.ci/run` installs Chromium) these always run; elsewhere they are skipped, loudly,
//! when Chromium is missing.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::common::browser::{Browser, Tab, chromium_installed};
use crate::common::{PATIENCE, TestServer};

/// The page every test opens: a stylesheet, a script, and a count of loads in this tab.
const PAGE: &str = "<!doctype html><html><head><link rel=\"stylesheet\" href=\"style.css\">\
<script src=\"app.js\"></script></head><body><p id=\"p\">hi</p>\
<script>sessionStorage.loads = (+sessionStorage.loads || 0) + 1;</script></body></html>";

/// The site: the page, its stylesheet and script, a folder to list, a page with a
/// precompressed sibling, and a folder a build writes into.
fn site(root: &Path) {
    std::fs::write(root.join("index.html"), PAGE).unwrap();
    std::fs::write(root.join("style.css"), "p { color: rgb(1, 2, 3); }").unwrap();
    std::fs::write(root.join("app.js"), "window.appVersion = 'v1';").unwrap();
    std::fs::create_dir(root.join("folder")).unwrap();
    std::fs::write(root.join("folder/a.txt"), "a").unwrap();
    std::fs::write(root.join("zipped.html"), "<!doctype html><p>zipped</p>").unwrap();
    // Never sent under --live (the page goes uncompressed, with the script): if it were, the
    // browser could not decode it and the page would not reload.
    std::fs::write(root.join("zipped.html.gz"), "not gzip").unwrap();
    std::fs::create_dir(root.join("build")).unwrap();
}

/// A `--live` server on the site, with the statistics page (to see its open streams).
fn live_server() -> TestServer {
    TestServer::start_with(&["--live", "--stats", "/_stats"], site)
}

/// How many `--live` event streams the server has open.
fn open_streams(server: &TestServer) -> u64 {
    let stats: Value = serde_json::from_str(&server.get("/_stats/json").text()).unwrap();
    stats["connections"]["streaming"].as_u64().unwrap()
}

/// Waits until the server has `n` event streams open (the tabs listen), at most `PATIENCE`.
fn wait_for_streams(server: &TestServer, n: u64) {
    let until = std::time::Instant::now() + PATIENCE;
    while open_streams(server) != n {
        assert!(
            std::time::Instant::now() < until,
            "{n} streams never opened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens `url` in a new tab and waits until the page has loaded.
fn open_loaded(browser: &mut Browser, url: &str) -> Tab {
    let tab = browser.open(url);
    // (A new tab is `about:blank`, complete, until the navigation takes over.)
    let loaded = format!("location.href === '{url}' && document.readyState === 'complete'");
    assert!(
        browser.wait_until(&tab, &loaded, PATIENCE),
        "{url} never loaded"
    );
    tab
}

/// The tab's count of loads of the page.
fn loads(browser: &mut Browser, tab: &Tab) -> Value {
    browser.eval(tab, "+sessionStorage.loads")
}

/// Saves `relative` under the root with new content (a new modification time).
fn save(server: &TestServer, relative: &str, contents: &str) {
    std::fs::write(server.root.join(relative), contents).unwrap();
}

#[test]
fn an_edited_script_is_what_the_reloaded_page_runs() {
    if !chromium_installed() {
        return;
    }
    let server = live_server();
    // A script last changed a day ago is fresh for hours by a browser's heuristics, unless
    // the answer says to revalidate.
    let day_ago = SystemTime::now() - Duration::from_secs(86_400);
    let script = std::fs::File::options()
        .write(true)
        .open(server.root.join("app.js"))
        .unwrap();
    script.set_modified(day_ago).unwrap();
    let mut browser = Browser::launch();
    let tab = open_loaded(&mut browser, &format!("http://{}/", server.addr));
    assert_eq!(browser.eval(&tab, "window.appVersion"), "v1");
    wait_for_streams(&server, 1);
    save(&server, "app.js", "window.appVersion = 'v2';");
    let reloaded = "+sessionStorage.loads === 2 && document.readyState === 'complete'";
    assert!(
        browser.wait_until(&tab, reloaded, PATIENCE),
        "the page never reloaded"
    );
    assert_eq!(
        browser.eval(&tab, "window.appVersion"),
        "v2",
        "the old script ran"
    );
}

#[test]
fn eight_tabs_all_load_and_all_reload() {
    if !chromium_installed() {
        return;
    }
    let server = live_server();
    let mut browser = Browser::launch();
    let url = format!("http://{}/", server.addr);
    // A browser keeps at most six connections per host: with a stream per tab, the seventh
    // tab would never load.
    let tabs: Vec<Tab> = (0..8).map(|_| open_loaded(&mut browser, &url)).collect();
    wait_for_streams(&server, 1); // one tab listens for all of them
    save(&server, "index.html", &format!("{PAGE}<!-- edited -->"));
    for (n, tab) in tabs.iter().enumerate() {
        let reloaded = "+sessionStorage.loads === 2 && document.readyState === 'complete'";
        assert!(
            browser.wait_until(tab, reloaded, PATIENCE),
            "tab {n} never reloaded"
        );
    }
}

#[test]
fn a_build_that_writes_a_hundred_files_reloads_once() {
    if !chromium_installed() {
        return;
    }
    let server = live_server();
    let mut browser = Browser::launch();
    let tab = open_loaded(&mut browser, &format!("http://{}/", server.addr));
    wait_for_streams(&server, 1);
    for i in 0..100 {
        save(&server, &format!("build/out-{i:03}.js"), "// built");
    }
    let reloaded = "+sessionStorage.loads >= 2 && document.readyState === 'complete'";
    assert!(
        browser.wait_until(&tab, reloaded, PATIENCE),
        "never reloaded"
    );
    // Nothing signals that no second reload is coming: give it several times the wait
    // (`--live-wait`, 100 ms) to happen.
    let again = "+sessionStorage.loads > 2";
    let reloaded_again = browser.wait_until(&tab, again, Duration::from_millis(800));
    assert!(
        !reloaded_again,
        "{} loads for one build",
        loads(&mut browser, &tab)
    );
}

#[test]
fn a_stylesheet_saved_through_a_temporary_file_is_swapped_without_a_reload() {
    if !chromium_installed() {
        return;
    }
    let server = live_server();
    let mut browser = Browser::launch();
    let tab = open_loaded(&mut browser, &format!("http://{}/", server.addr));
    wait_for_streams(&server, 1);
    // As `sed -i` and editors' safe writes do: a temporary file, renamed over the original.
    let temporary = server.root.join("sedX4kQ2p");
    std::fs::write(&temporary, "p { color: rgb(4, 5, 6); }").unwrap();
    std::fs::rename(&temporary, server.root.join("style.css")).unwrap();
    let restyled = "getComputedStyle(document.getElementById('p')).color === 'rgb(4, 5, 6)'";
    assert!(
        browser.wait_until(&tab, restyled, PATIENCE),
        "never restyled"
    );
    assert_eq!(loads(&mut browser, &tab), 1, "the page reloaded instead");
}

#[test]
fn not_found_pages_listings_and_precompressed_pages_reload_too() {
    if !chromium_installed() {
        return;
    }
    let server = live_server();
    let mut browser = Browser::launch();
    let base = format!("http://{}", server.addr);
    let mut tabs = Vec::new();
    for path in ["/missing.html", "/folder/", "/zipped.html"] {
        let tab = open_loaded(&mut browser, &format!("{base}{path}"));
        // A mark on this document: a reload makes a new one, without it.
        browser.eval(&tab, "window.mark = true");
        tabs.push((path, tab));
    }
    wait_for_streams(&server, 1);
    save(&server, "folder/b.txt", "b");
    for (path, tab) in &tabs {
        let reloaded = "window.mark === undefined && document.readyState === 'complete'";
        assert!(
            browser.wait_until(tab, reloaded, PATIENCE),
            "{path} never reloaded"
        );
    }
}
