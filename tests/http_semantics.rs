//! What browsers, caches and download tools rely on: validators and conditional requests,
//! ranges, directory listings, precompressed siblings, error pages, single-page apps,
//! OPTIONS, configured headers and MIME types.

use crate::common::{Client, TestServer, pattern};
use std::fs;
use std::path::Path;
use std::process::Command;

const BIG_LEN: usize = 5 * 1024 * 1024;

fn site(root: &Path) {
    fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    fs::write(root.join("a.txt"), "0123456789abcdefghij").unwrap();
    fs::write(root.join("big.bin"), pattern(BIG_LEN)).unwrap();
    fs::write(root.join("style.css"), "body { color: red }").unwrap();
    fs::write(root.join("style.css.gz"), "GZIPPED").unwrap();
    fs::write(root.join("style.css.br"), "BROTLI!").unwrap();
    fs::write(root.join("plain.css"), "p {}").unwrap();
    fs::write(root.join("long.txt"), "uncompressed").unwrap();
    fs::write(root.join("long.txt.gz"), pattern(500)).unwrap();
}

/// Sends one request with extra header lines on a fresh connection.
fn get_with(server: &TestServer, target: &str, headers: &str) -> crate::common::Response {
    server.raw(format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes())
}

#[test]
fn files_carry_a_strong_etag_that_survives_a_restart() {
    let first = TestServer::start_with(&[], site);
    let etag = first.get("/a.txt").header("etag").unwrap().to_string();
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "{etag}"
    );
    let root = first.root.clone();
    let second = TestServer::start_on(crate::common::TempDir::new("restart"), root, &[]);
    assert_eq!(second.get("/a.txt").header("etag"), Some(etag.as_str()));
    fs::write(second.root.join("a.txt"), "changed content!").unwrap();
    assert_ne!(second.get("/a.txt").header("etag"), Some(etag.as_str()));
    drop(second);
    drop(first); // owns the root
}

#[test]
fn if_none_match_and_if_modified_since_give_304_on_a_usable_connection() {
    let server = TestServer::start_with(&[], site);
    let full = server.get("/a.txt");
    let etag = full.header("etag").unwrap().to_string();
    let modified = full.header("last-modified").unwrap().to_string();
    let weak = format!("W/{etag}");
    let cases = [
        (format!("If-None-Match: {etag}\r\n"), 304),
        (format!("If-None-Match: \"nope\", {weak}\r\n"), 304),
        ("If-None-Match: *\r\n".to_string(), 304),
        ("If-None-Match: \"nope\"\r\n".to_string(), 200),
        (format!("If-Modified-Since: {modified}\r\n"), 304),
        (
            "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n".to_string(),
            200,
        ),
        ("If-Modified-Since: garbage\r\n".to_string(), 200),
        // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
        (
            format!("If-None-Match: \"nope\"\r\nIf-Modified-Since: {modified}\r\n"),
            200,
        ),
    ];
    let mut client = server.connect();
    for (headers, status) in &cases {
        client.send(format!("GET /a.txt HTTP/1.1\r\nHost: t\r\n{headers}\r\n").as_bytes());
        let response = client.response();
        assert_eq!(response.status, *status, "{headers}");
        if *status == 304 {
            assert!(response.body.is_empty());
            assert_eq!(response.header("etag"), Some(etag.as_str()));
            assert_eq!(response.header("content-length"), None);
            assert_eq!(
                response.header("content-type"),
                None,
                "no representation metadata"
            );
        }
    }
    // HEAD gets the same answers.
    client.send(
        format!("HEAD /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes(),
    );
    assert_eq!(client.head_response().status, 304);
}

#[test]
fn failed_if_match_and_if_unmodified_since_give_412() {
    let server = TestServer::start_with(&[], site);
    let etag = server.get("/a.txt").header("etag").unwrap().to_string();
    assert_eq!(
        get_with(&server, "/a.txt", "If-Match: \"other\"\r\n").status,
        412
    );
    assert_eq!(
        get_with(&server, "/a.txt", &format!("If-Match: {etag}\r\n")).status,
        200
    );
    assert_eq!(
        get_with(&server, "/a.txt", &format!("If-Match: W/{etag}\r\n")).status,
        412,
        "strong comparison"
    );
    assert_eq!(get_with(&server, "/a.txt", "If-Match: *\r\n").status, 200);
    let old = "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
    assert_eq!(get_with(&server, "/a.txt", old).status, 412);
    let future = "If-Unmodified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n";
    assert_eq!(get_with(&server, "/a.txt", future).status, 200);
}

#[test]
fn single_ranges_give_206_with_exactly_those_bytes() {
    let server = TestServer::start_with(&[], site);
    let table = [
        ("bytes=0-4", "01234", "bytes 0-4/20"),
        ("bytes=15-", "fghij", "bytes 15-19/20"),
        ("bytes=-3", "hij", "bytes 17-19/20"),
        ("bytes=10-100", "abcdefghij", "bytes 10-19/20"),
    ];
    for (range, body, content_range) in table {
        let response = get_with(&server, "/a.txt", &format!("Range: {range}\r\n"));
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(response.text(), body, "{range}");
        assert_eq!(
            response.header("content-range"),
            Some(content_range),
            "{range}"
        );
        assert_eq!(response.header("accept-ranges"), Some("bytes"));
    }
    // A large range goes by sendfile from the offset.
    let response = get_with(&server, "/big.bin", "Range: bytes=1000000-3999999\r\n");
    assert_eq!(response.status, 206);
    assert!(response.body == pattern(BIG_LEN)[1_000_000..4_000_000]);
}

#[test]
fn unsatisfiable_ranges_give_416_and_bad_ones_are_ignored() {
    let server = TestServer::start_with(&[], site);
    let response = get_with(&server, "/a.txt", "Range: bytes=20-30\r\n");
    assert_eq!(response.status, 416);
    assert_eq!(response.header("content-range"), Some("bytes */20"));
    let mut head = Client::connect(server.addr);
    head.send(b"HEAD /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4\r\n\r\n");
    let head = head.head_response();
    assert_eq!(head.status, 200, "Range is defined for GET only");
    assert_eq!(head.header("content-length"), Some("20"));
    for ignored in ["bytes=5-2", "lines=1-2", "bytes=abc"] {
        assert_eq!(
            get_with(&server, "/a.txt", &format!("Range: {ignored}\r\n")).status,
            200,
            "{ignored}"
        );
    }
}

#[test]
fn if_range_decides_between_206_and_200() {
    let server = TestServer::start_with(&[], site);
    let full = server.get("/a.txt");
    let etag = full.header("etag").unwrap();
    let modified = full.header("last-modified").unwrap();
    let partial = |if_range: &str| {
        get_with(
            &server,
            "/a.txt",
            &format!("Range: bytes=0-1\r\nIf-Range: {if_range}\r\n"),
        )
        .status
    };
    assert_eq!(partial(etag), 206);
    assert_eq!(partial("\"stale\""), 200);
    assert_eq!(partial(modified), 206);
    assert_eq!(partial("Sun, 06 Nov 1994 08:49:37 GMT"), 200);
}

#[test]
fn several_ranges_give_multipart_byteranges() {
    let server = TestServer::start_with(&[], site);
    let response = get_with(&server, "/big.bin", "Range: bytes=0-1, 1000-1003\r\n");
    assert_eq!(response.status, 206);
    let content_type = response.header("content-type").unwrap().to_string();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .expect(&content_type);
    let data = pattern(BIG_LEN);
    let mut expected = Vec::new();
    for (first, last) in [(0, 1), (1000, 1003)] {
        let part = format!(
            "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {first}-{last}/{BIG_LEN}\r\n\r\n"
        );
        expected.extend_from_slice(part.as_bytes());
        expected.extend_from_slice(&data[first..=last]);
    }
    expected.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert!(
        response.body == expected,
        "{:?}",
        String::from_utf8_lossy(&response.body)
    );
    // Ranges close together are merged into one part.
    let merged = get_with(&server, "/a.txt", "Range: bytes=0-1, 10-11\r\n");
    assert_eq!(
        (merged.status, merged.text().as_str()),
        (206, "0123456789ab")
    );
}

#[test]
fn pathological_range_lists_do_not_amplify_work() {
    let server = TestServer::start_with(&[], site);
    let overlapping = vec!["0-5"; 100].join(",");
    let response = get_with(
        &server,
        "/a.txt",
        &format!("Range: bytes={overlapping}\r\n"),
    );
    assert_eq!(
        (response.status, response.text().as_str()),
        (206, "012345"),
        "coalesced into one part"
    );
    let many: Vec<String> = (0..1000)
        .map(|i| format!("{}-{}", i * 1000, i * 1000))
        .collect();
    let response = get_with(
        &server,
        "/big.bin",
        &format!("Range: bytes={}\r\n", many.join(",")),
    );
    assert_eq!(response.status, 200, "too many ranges: the whole file");
    assert_eq!(response.body.len(), BIG_LEN);
}

/// Writes the first `already` bytes of big.bin, lets `tool` (with `args`, then the partial
/// file's path and the URL) resume the download, and checks the result; false if `tool` is
/// not installed.
fn resume_with(tool: &str, args: &[&str], already: usize) -> Option<TestServer> {
    if !crate::common::tool_installed(tool, "--version") {
        return None;
    }
    let server = TestServer::start_with(&[], site);
    let partial = server.dir.path().join("big.bin");
    fs::write(&partial, &pattern(BIG_LEN)[..already]).unwrap();
    let status = Command::new(tool)
        .args(args)
        .arg(&partial)
        .arg(format!("http://{}/big.bin", server.addr))
        .status()
        .unwrap();
    assert!(status.success(), "{tool} failed");
    assert!(
        fs::read(&partial).unwrap() == pattern(BIG_LEN),
        "{tool}: the resumed file differs"
    );
    Some(server)
}

#[test]
fn curl_resumes_a_download_with_c_dash() {
    if let Some(server) = resume_with(
        "curl",
        &["-sS", "--max-time", "20", "-C", "-", "-o"],
        1_234_567,
    ) {
        assert!(
            server.stderr().contains("\"GET /big.bin HTTP/1.1\" 206"),
            "curl did not use a range"
        );
    }
}

#[test]
fn wget_continues_a_download() {
    if let Some(server) = resume_with("wget", &["-q", "-c", "--timeout=20", "-O"], 777_777) {
        assert!(
            server.stderr().contains("\"GET /big.bin HTTP/1.1\" 206"),
            "wget did not use a range"
        );
    }
}

#[test]
fn a_directory_without_index_is_listed_safely() {
    let server = TestServer::start_with(&[], |root| {
        let dir = root.join("files");
        fs::create_dir_all(dir.join("zeta dir")).unwrap();
        fs::create_dir_all(dir.join("alpha")).unwrap();
        fs::write(dir.join("b.txt"), "12345").unwrap();
        fs::write(dir.join("A <b>&\"q\" #1?.txt"), "x").unwrap();
        fs::write(dir.join("été.txt"), "x").unwrap();
        fs::write(dir.join(".secret"), "x").unwrap();
    });
    let page = server.get("/files/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    let position = |needle: &str| {
        html.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing from {html}"))
    };
    assert!(
        position("href=\"../\"") < position("alpha/"),
        "parent link first"
    );
    assert!(
        position("alpha/") < position("zeta%20dir/"),
        "directories sorted"
    );
    assert!(
        position("zeta%20dir/") < position("b.txt"),
        "directories before files"
    );
    assert!(
        html.contains("A &lt;b&gt;&amp;&quot;q&quot; #1?.txt"),
        "names escaped in text"
    );
    assert!(
        html.contains("A%20%3Cb%3E%26%22q%22%20%231%3F.txt"),
        "names encoded in links"
    );
    assert!(html.contains("%C3%A9t%C3%A9.txt"));
    assert!(!html.contains("secret"), "hidden names are not listed");
    assert!(
        !html.contains("<script") && !html.contains("src="),
        "no scripts or external assets"
    );
    // Following a link from the listing works.
    assert_eq!(
        server
            .get("/files/A%20%3Cb%3E&%22q%22%20%231%3F.txt")
            .text(),
        "x"
    );
    let root_listing =
        TestServer::start_with(&[], |root| fs::write(root.join("x.txt"), "x").unwrap())
            .get("/")
            .text();
    assert!(
        !root_listing.contains("href=\"../\""),
        "no parent link at the root"
    );
}

#[test]
fn listing_and_hidden_files_follow_their_flags() {
    let fill = |root: &Path| {
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join(".env"), "SECRET=1").unwrap();
        fs::create_dir_all(root.join(".well-known")).unwrap();
        fs::write(root.join(".well-known/security.txt"), "Contact: x").unwrap();
    };
    let default = TestServer::start_with(&[], fill);
    assert_eq!(default.get("/.env").status, 404);
    assert_eq!(default.get("/.well-known/security.txt").status, 200);
    let no_listing = TestServer::start_with(&["--no-listing"], fill);
    assert_eq!(no_listing.get("/d/").status, 403);
    let hidden = TestServer::start_with(&["--hidden"], fill);
    assert_eq!(hidden.get("/.env").text(), "SECRET=1");
    assert!(hidden.get("/").text().contains(".env"));
}

#[test]
fn precompressed_siblings_are_negotiated() {
    let server = TestServer::start_with(&[], site);
    let plain = server.get("/style.css");
    let etag_plain = plain.header("etag").unwrap().to_string();
    let table = [
        ("gzip, deflate, br", Some("br"), "BROTLI!"),
        ("gzip", Some("gzip"), "GZIPPED"),
        ("br;q=0.5, gzip", Some("gzip"), "GZIPPED"),
        ("gzip;q=0, br;q=0", None, "body { color: red }"),
        ("identity", None, "body { color: red }"),
    ];
    for (accept, encoding, body) in table {
        let response = get_with(
            &server,
            "/style.css",
            &format!("Accept-Encoding: {accept}\r\n"),
        );
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-encoding"), encoding, "{accept}");
        assert_eq!(response.text(), body, "{accept}");
        assert_eq!(
            response.header("content-type"),
            Some("text/css; charset=utf-8")
        );
        assert_eq!(response.header("vary"), Some("Accept-Encoding"), "{accept}");
        if encoding.is_some() {
            assert_ne!(
                response.header("etag"),
                Some(etag_plain.as_str()),
                "ETag of the representation sent"
            );
        }
    }
    // A GET with Range gets the identity file, whatever Accept-Encoding says (docs/http.md:
    // download tools corrupt ranges of compressed bytes).
    let ranged = get_with(
        &server,
        "/style.css",
        "Accept-Encoding: gzip\r\nRange: bytes=0-3\r\n",
    );
    assert_eq!((ranged.status, ranged.text().as_str()), (206, "body"));
    assert_eq!(ranged.header("content-range"), Some("bytes 0-3/19"));
    assert_eq!(ranged.header("content-encoding"), None);
    assert_eq!(ranged.header("vary"), Some("Accept-Encoding"));
    // Several ranges (here coalesced into one): of the identity file too.
    let several = get_with(
        &server,
        "/long.txt",
        "Accept-Encoding: gzip\r\nRange: bytes=0-0,10-11\r\n",
    );
    assert_eq!(
        (several.status, several.text().as_str()),
        (206, "uncompressed")
    );
    assert_eq!(several.header("content-encoding"), None);
    assert_eq!(several.header("content-range"), Some("bytes 0-11/12"));
    // Every file answer says Vary (a sibling may appear at any time), even without one.
    let plain = get_with(&server, "/plain.css", "Accept-Encoding: gzip\r\n");
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        server.get("/style.css").header("vary"),
        Some("Accept-Encoding")
    );
}

#[test]
fn a_404_page_in_the_root_is_the_body_of_every_404() {
    let server = TestServer::start_with(&[], |root| {
        fs::write(root.join("404.html"), "<h1>lost?</h1>").unwrap();
    });
    let response = server.get("/nowhere/at/all.png");
    assert_eq!(response.status, 404);
    assert_eq!(response.text(), "<h1>lost?</h1>");
    assert_eq!(
        response.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(response.header("etag"), None);
}

#[test]
fn spa_mode_serves_the_index_for_client_side_routes() {
    let server = TestServer::start_with(&["--spa"], site);
    assert_eq!(server.get("/users/42").text(), "<h1>home</h1>");
    assert_eq!(server.get("/users/42/").text(), "<h1>home</h1>");
    assert_eq!(server.get("/missing.js").status, 404);
    assert_eq!(server.get("/a.txt").text(), "0123456789abcdefghij");
}

#[test]
fn options_and_configured_headers() {
    let server = TestServer::start_with(
        &[
            "--header",
            "X-Frame-Options: DENY",
            "--cors",
            "--cache-control",
            "public, max-age=3600",
        ],
        site,
    );
    let options = server.raw(b"OPTIONS /a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(options.status, 204);
    assert_eq!(options.header("allow"), Some("GET, HEAD, OPTIONS"));
    assert_eq!(options.header("content-length"), None);
    let file = server.get("/a.txt");
    assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(file.header("x-frame-options"), Some("DENY"));
    assert_eq!(file.header("access-control-allow-origin"), Some("*"));
    assert_eq!(file.header("cache-control"), Some("public, max-age=3600"));
    let missing = server.get("/nope");
    assert_eq!(
        missing.header("access-control-allow-origin"),
        Some("*"),
        "on errors too"
    );
    assert_eq!(
        missing.header("cache-control"),
        None,
        "Cache-Control is for files"
    );
}

#[test]
fn mime_types_for_the_modern_web_and_overrides() {
    let names = [
        "m.wasm",
        "m.mjs",
        "i.svg",
        "i.webp",
        "i.avif",
        "f.woff2",
        "d.json",
        "app.js.map",
        "t.txt",
        "model.glb",
    ];
    let server = TestServer::start_with(&["--mime", "glb=model/gltf-binary"], |root| {
        for name in names {
            fs::write(root.join(name), "x").unwrap();
        }
    });
    let expected = [
        "application/wasm",
        "text/javascript; charset=utf-8",
        "image/svg+xml",
        "image/webp",
        "image/avif",
        "font/woff2",
        "application/json",
        "application/json",
        "text/plain; charset=utf-8",
        "model/gltf-binary",
    ];
    for (name, content_type) in names.iter().zip(expected) {
        assert_eq!(
            server.get(&format!("/{name}")).header("content-type"),
            Some(content_type),
            "{name}"
        );
    }
}

#[test]
fn a_304_keeps_the_connection_for_pipelined_requests() {
    let server = TestServer::start_with(&[], site);
    let etag = server.get("/a.txt").header("etag").unwrap().to_string();
    let mut client = Client::connect(server.addr);
    client.send(
        format!(
            "GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n\
             GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\n\r\n\
             GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(client.response().status, 304);
    assert_eq!(client.response().text(), "0");
    assert_eq!(client.response().body.len(), 20);
}

#[test]
fn a_large_listing_is_streamed_complete_and_in_order() {
    let server = TestServer::start_with(&[], |root| {
        let dir = root.join("many");
        for i in 0..2_000 {
            fs::write(dir_file(&dir, &format!("File-{i:04}.txt")), "x").unwrap();
        }
        for i in 0..300 {
            fs::create_dir_all(dir.join(format!("sub-{i:03}"))).unwrap();
        }
        fs::write(dir.join("aardvark.TXT"), "x").unwrap();
        std::os::unix::fs::symlink("File-0001.txt", dir.join("link-to-file")).unwrap();
        std::os::unix::fs::symlink("../../outside", dir.join("link-out")).unwrap();
    });
    let response = server.get("/many/");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.header("content-length"), None);
    let html = response.text();
    assert!(html.ends_with("</html>\n"), "the page is complete");
    let names: Vec<&str> = html
        .split("<a href=\"./")
        .skip(1)
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert_eq!(
        names.len(),
        2_000 + 300 + 2,
        "every entry but the link out: {}",
        names.len()
    );
    assert!(
        names[..300].iter().all(|n| n.starts_with("sub-")),
        "directories first"
    );
    assert_eq!(names[300], "aardvark.TXT", "then names, case-insensitively");
    assert_eq!(names[301], "File-0000.txt");
    assert_eq!(names.last(), Some(&"link-to-file"));
    let mut sorted = names[301..].to_vec();
    sorted.sort_by_key(|n| n.to_lowercase());
    assert_eq!(sorted, names[301..], "in order");
    // HEAD gets the same head and no content; HTTP/1.0 gets the page delimited by the close.
    let mut head = server.connect();
    head.send(b"HEAD /many/ HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = head.head_response();
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    let mut old = server.connect();
    old.send(b"GET /many/ HTTP/1.0\r\n\r\n");
    let old = old.response();
    assert_eq!(old.header("connection"), Some("close"));
    assert_eq!(old.header("transfer-encoding"), None);
    assert_eq!(old.text(), html);
}

#[test]
fn a_listing_examines_at_most_ten_thousand_entries_and_says_so() {
    let server = TestServer::start_with(&[], |root| {
        let dir = root.join("huge");
        for i in 0..10_050 {
            fs::write(dir_file(&dir, &format!("f{i:05}")), "").unwrap();
        }
    });
    let html = server.get("/huge/").text();
    // Every entry examined counts, `.` and `..` included.
    let listed = html.matches("<a href=\"./f").count();
    assert!((9_990..=10_000).contains(&listed), "{listed} listed");
    assert!(html.contains("Only the first 10000 entries of this directory are listed."));
}

/// `dir/name`, creating `dir` first.
fn dir_file(dir: &Path, name: &str) -> std::path::PathBuf {
    fs::create_dir_all(dir).unwrap();
    dir.join(name)
}
