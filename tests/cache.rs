//! The file cache is never stale: each way a file can change, made right before a request,
//! is seen by that request (new bytes, new validators). Each case first fills the cache with
//! two requests, then changes the file and asks again at once.

use crate::common::{TestServer, pattern};
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

/// Bytes of `big.bin`: over the in-memory limit, so the cache holds it as an open file.
const BIG_LEN: usize = 100_000;

fn site(root: &Path) {
    fs::write(root.join("a.txt"), "old a").unwrap();
    fs::write(root.join("b.txt"), "bee").unwrap();
    fs::write(root.join("style.css"), "body{}").unwrap();
    fs::write(root.join("big.bin"), pattern(BIG_LEN)).unwrap();
    fs::create_dir_all(root.join("dir")).unwrap();
    fs::write(root.join("dir/f.txt"), "in dir").unwrap();
    symlink("a.txt", root.join("link.txt")).unwrap();
}

/// GETs `target` twice (the second is a cache hit) and returns the second answer.
fn warm(server: &TestServer, target: &str) -> crate::common::Response {
    server.get(target);
    server.get(target)
}

/// Writes `path` through a temporary file and a rename, as editors save.
fn save_by_rename(path: &Path, contents: impl AsRef<[u8]>) {
    let temp = path.with_extension("tmp-save");
    fs::write(&temp, contents).unwrap();
    fs::rename(&temp, path).unwrap();
}

#[test]
fn a_file_written_in_place_or_replaced_by_rename_is_served_new() {
    for flags in [&[][..], &["--no-cache"][..]] {
        let server = TestServer::start_with(flags, site);
        let before = warm(&server, "/a.txt");
        assert_eq!(before.text(), "old a");
        fs::write(server.root.join("a.txt"), "new a").unwrap(); // same length, in place
        let after = server.get("/a.txt");
        assert_eq!(after.text(), "new a", "{flags:?}");
        assert_ne!(after.header("etag"), before.header("etag"));
        save_by_rename(&server.root.join("a.txt"), "saved by an editor");
        assert_eq!(server.get("/a.txt").text(), "saved by an editor");
    }
}

#[test]
fn a_deleted_or_truncated_file_is_seen_at_once() {
    let server = TestServer::start_with(&[], site);
    warm(&server, "/b.txt");
    fs::OpenOptions::new()
        .write(true)
        .open(server.root.join("b.txt"))
        .unwrap()
        .set_len(1)
        .unwrap();
    let truncated = server.get("/b.txt");
    assert_eq!(
        (
            truncated.text().as_str(),
            truncated.header("content-length")
        ),
        ("b", Some("1"))
    );
    fs::remove_file(server.root.join("b.txt")).unwrap();
    assert_eq!(server.get("/b.txt").status, 404);
}

#[test]
fn a_large_cached_file_replaced_or_truncated_is_sent_new() {
    let server = TestServer::start_with(&[], site);
    assert_eq!(warm(&server, "/big.bin").body.len(), BIG_LEN);
    save_by_rename(&server.root.join("big.bin"), pattern(BIG_LEN / 2));
    let replaced = server.get("/big.bin");
    assert!(replaced.body == pattern(BIG_LEN / 2));
    fs::write(server.root.join("big.bin"), b"short now").unwrap();
    assert_eq!(server.get("/big.bin").body, b"short now");
}

#[test]
fn a_file_made_unreadable_is_refused_at_once() {
    // As root (CI), the server runs as nobody, so permissions apply to it.
    let server = TestServer::start_unprivileged(&[], site, false);
    warm(&server, "/a.txt");
    let path = server.root.join("a.txt");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    assert_eq!(server.get("/a.txt").status, 403);
}

#[test]
fn a_precompressed_sibling_appearing_or_disappearing_is_chosen_or_dropped() {
    let server = TestServer::start_with(&[], site);
    let ask = || server.raw(b"GET /style.css HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n");
    ask();
    assert_eq!(ask().header("content-encoding"), None);
    fs::write(server.root.join("style.css.gz"), "GZ").unwrap();
    let compressed = ask();
    assert_eq!(
        (
            compressed.header("content-encoding"),
            compressed.text().as_str()
        ),
        (Some("gzip"), "GZ")
    );
    fs::remove_file(server.root.join("style.css.gz")).unwrap();
    assert_eq!(ask().text(), "body{}");
}

#[test]
fn a_directory_renamed_or_removed_and_a_symlink_retargeted_are_followed() {
    let server = TestServer::start_with(&[], site);
    assert_eq!(warm(&server, "/dir/f.txt").text(), "in dir");
    fs::rename(server.root.join("dir"), server.root.join("moved")).unwrap();
    assert_eq!(server.get("/dir/f.txt").status, 404);
    assert_eq!(server.get("/moved/f.txt").text(), "in dir");
    fs::create_dir_all(server.root.join("dir")).unwrap();
    fs::write(server.root.join("dir/f.txt"), "a new dir").unwrap();
    assert_eq!(server.get("/dir/f.txt").text(), "a new dir");

    assert_eq!(warm(&server, "/link.txt").text(), "old a");
    let temp = server.root.join("link.tmp");
    symlink("b.txt", &temp).unwrap();
    fs::rename(&temp, server.root.join("link.txt")).unwrap();
    assert_eq!(server.get("/link.txt").text(), "bee");
}

#[test]
fn the_root_index_appearing_or_going_is_seen_at_once() {
    let server = TestServer::start_with(&[], site);
    assert!(warm(&server, "/").text().contains("Index of /"));
    fs::write(server.root.join("index.html"), "home").unwrap();
    assert_eq!(warm(&server, "/").text(), "home");
    fs::remove_file(server.root.join("index.html")).unwrap();
    assert!(server.get("/").text().contains("Index of /"));
}

#[test]
fn a_file_changed_through_a_linked_directory_is_seen() {
    let server = TestServer::start_with(&[], |root| {
        site(root);
        fs::create_dir_all(root.join("real")).unwrap();
        fs::write(root.join("real/x.txt"), "one").unwrap();
        symlink("real", root.join("alias")).unwrap();
    });
    assert_eq!(warm(&server, "/alias/x.txt").text(), "one");
    fs::write(server.root.join("real/x.txt"), "two").unwrap();
    assert_eq!(server.get("/alias/x.txt").text(), "two");
}

#[test]
fn a_file_or_a_404_page_appearing_where_there_was_none_is_served_at_once() {
    let server = TestServer::start_with(&[], site);
    assert_eq!(warm(&server, "/new.txt").status, 404);
    fs::write(server.root.join("new.txt"), "born").unwrap();
    assert_eq!(server.get("/new.txt").text(), "born");

    assert_eq!(warm(&server, "/dir/deeper/x.txt").status, 404);
    fs::create_dir_all(server.root.join("dir/deeper")).unwrap();
    fs::write(server.root.join("dir/deeper/x.txt"), "deep").unwrap();
    assert_eq!(server.get("/dir/deeper/x.txt").text(), "deep");

    assert!(!warm(&server, "/nope").text().contains("custom"));
    fs::write(server.root.join("404.html"), "custom 404").unwrap();
    let custom = server.get("/nope");
    assert_eq!((custom.status, custom.text().as_str()), (404, "custom 404"));
    fs::remove_file(server.root.join("404.html")).unwrap();
    assert!(!server.get("/nope").text().contains("custom"));
}

#[test]
fn answers_through_symlinks_follow_their_targets() {
    let server = TestServer::start_with(&[], |root| {
        site(root);
        fs::create_dir_all(root.join("sub")).unwrap();
        symlink("sub/page.html", root.join("dangling.html")).unwrap();
        fs::create_dir_all(root.join("b")).unwrap();
        fs::create_dir_all(root.join("c")).unwrap();
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("c/f.txt"), "old").unwrap();
        fs::write(root.join("d/g.txt"), "new").unwrap();
        symlink("b/l2", root.join("chain.txt")).unwrap();
        symlink("../c/f.txt", root.join("b/l2")).unwrap();
    });
    // A dangling link's target appearing.
    assert_eq!(warm(&server, "/dangling.html").status, 404);
    fs::write(server.root.join("sub/page.html"), "hello").unwrap();
    assert_eq!(server.get("/dangling.html").text(), "hello");
    // A link in the middle of a chain retargeted.
    assert_eq!(warm(&server, "/chain.txt").text(), "old");
    let temp = server.root.join("b/l2.tmp");
    symlink("../d/g.txt", &temp).unwrap();
    fs::rename(&temp, server.root.join("b/l2")).unwrap();
    assert_eq!(server.get("/chain.txt").text(), "new");
}

/// Under load, a request read after a file was written is never answered
/// from the cache's old copy, whatever else the loop pass was doing when the change happened.
/// Busy keep-alive clients keep every pass full of reads while one client, round after
/// round, sends a request it does not wait for, saves a new version, and asks for it: the
/// server may read both requests in one `recv`, the second sent after the save.
#[test]
fn under_load_a_request_after_a_write_never_gets_the_old_bytes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    // Enough requests per connection for the whole run (the writer does not reconnect).
    let server = TestServer::start_with(&["--max-requests", "10000000"], |root| {
        fs::write(root.join("v.txt"), "version 000000").unwrap();
        fs::write(root.join("load.txt"), "load").unwrap();
    });
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..6)
        .map(|_| {
            let (stop, addr) = (Arc::clone(&stop), server.addr);
            std::thread::spawn(move || load(addr, &stop))
        })
        .collect();
    let mut writer = server.connect();
    let (mut rounds, mut stale) = (0, Vec::new());
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        rounds += 1;
        let version = format!("version {rounds:06}");
        writer.send(b"GET /load.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        save_by_rename(&server.root.join("v.txt"), &version);
        writer.send(b"GET /v.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(writer.response().text(), "load");
        let got = writer.response().text();
        if got != version {
            stale.push((version, got));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for loader in loaders {
        loader.join().unwrap();
    }
    let shown = &stale[..stale.len().min(5)];
    assert!(
        stale.is_empty(),
        "{} of {rounds} stale: {shown:?}",
        stale.len()
    );
}

/// Keeps a keep-alive connection busy with pipelined bursts (the changing file among them,
/// so the cache holds it) until `stop`.
fn load(addr: std::net::SocketAddr, stop: &std::sync::atomic::AtomicBool) {
    let burst =
        "GET /v.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /load.txt HTTP/1.1\r\nHost: t\r\n\r\n".repeat(8);
    let mut client = crate::common::Client::connect(addr);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        client.send(burst.as_bytes());
        for _ in 0..16 {
            if client.response().header("connection") == Some("close") {
                // --max-requests reached: the rest of the burst is not answered.
                client = crate::common::Client::connect(addr);
                break;
            }
        }
    }
}

/// The inodes the server's inotify descriptors watch (from their `fdinfo`: one line
/// `inotify wd:N ino:HEX sdev:…` per watch).
fn watched_inodes(server: &TestServer) -> Vec<u64> {
    let pid = server.pid();
    let mut inodes = Vec::new();
    for fd in fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let target = fs::read_link(fd.path()).unwrap_or_default();
        if !target.to_string_lossy().contains("inotify") {
            continue;
        }
        let name = fd.file_name();
        let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", name.to_string_lossy()))
            .unwrap_or_default();
        for line in info.lines().filter(|l| l.starts_with("inotify wd:")) {
            let hex = line.split(" ino:").nth(1).and_then(|r| r.split(' ').next());
            inodes.extend(hex.and_then(|h| u64::from_str_radix(h, 16).ok()));
        }
    }
    inodes
}

/// Requests under a link that leads out of the root (all refused) leave
/// no watch behind on what the link leads to.
#[test]
fn requests_under_a_link_out_of_the_root_leave_no_watches_there() {
    let outside = crate::common::TempDir::new("outside");
    for n in 0..100 {
        fs::create_dir_all(outside.path().join(format!("d{n}"))).unwrap();
    }
    let target = outside.path().to_path_buf();
    let server = TestServer::start_with(&[], |root| {
        site(root);
        symlink(&target, root.join("usr")).unwrap();
    });
    let mut client = server.connect();
    for n in 0..100 {
        client.send(format!("GET /usr/d{n}/x.txt HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert!([403, 404].contains(&client.response().status));
    }
    // (Counting watches would not do: with several workers, each watches the root.)
    use std::os::unix::fs::MetadataExt;
    let watched = watched_inodes(&server);
    assert!(!watched.is_empty(), "the root is watched");
    for n in 0..100 {
        let inode = fs::metadata(outside.path().join(format!("d{n}")))
            .unwrap()
            .ino();
        assert!(
            !watched.contains(&inode),
            "d{n}, outside the root, is watched"
        );
    }
}

/// A symlink to an ancestor inside the root (a mirror's `debian -> .`)
/// gives endless spellings of one directory; the cache remembers real directories, not
/// spellings, so memory stays flat.
#[test]
fn endless_spellings_through_links_to_an_ancestor_do_not_grow_memory() {
    let server = TestServer::start_with(&[], |root| {
        site(root);
        symlink(".", root.join("a")).unwrap();
        symlink(".", root.join("b")).unwrap();
    });
    let mut client = server.connect();
    client.send(b"GET /a/b/a.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(
        client.response().text(),
        "old a",
        "links inside the root are served"
    );
    let before = server.rss_kib();
    for n in 0..3000 {
        // 40 segments, each `a` or `b`: every request a new spelling of the root.
        let path = crate::common::spelling(n, 40);
        client.send(format!("GET /{path}a.txt HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert_eq!(client.response().status, 200);
    }
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 2048, "RSS grew by {grown} KiB over 3,000 spellings");
}

/// A write inotify cannot see (here through a hard link outside every
/// watched directory) is served within the revalidation time, not never.
#[test]
fn a_write_inotify_cannot_see_is_served_within_a_second_or_so() {
    use std::time::{Duration, Instant};
    let server = TestServer::start_with(&[], site);
    let outside = server.dir.path().join("outside-link.txt");
    fs::hard_link(server.root.join("a.txt"), &outside).unwrap();
    assert_eq!(warm(&server, "/a.txt").text(), "old a");
    // In place, same length, through the link: no watched directory sees it.
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new().write(true).open(&outside).unwrap();
    file.write_all_at(b"new a", 0).unwrap();
    let start = Instant::now();
    loop {
        if server.get("/a.txt").text() == "new a" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "still the old bytes"
        );
        std::thread::yield_now();
    }
}

/// The cache never takes the descriptors connections need. With an
/// open-file limit of 256, one client asking for 300 large files (each cached with its
/// descriptor) leaves the server most of its descriptors, and a newcomer is served.
#[test]
fn the_cache_keeps_within_the_descriptors_the_cap_leaves_it() {
    let server = TestServer::start_with_fd_limit(256, &[], |root| {
        for n in 0..300 {
            fs::write(root.join(format!("f{n}.bin")), pattern(20_000)).unwrap();
        }
    });
    let mut client = server.connect();
    for n in 0..300 {
        client.send(format!("GET /f{n}.bin HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
        assert_eq!(client.response().status, 200, "f{n}.bin");
    }
    let open = server.fd_count();
    assert!(open < 128, "{open} descriptors open of 256");
    let newcomer = server.get("/f0.bin");
    assert_eq!(newcomer.status, 200);
}

/// Made deterministic: the server's wait has returned for a first request,
/// and while it is held (by `strace`'s delay injection) on its way into the `recv`, the
/// client saves a new version of a cached file and sends a second request for it. The one
/// `recv` then takes both requests; the second was sent after the save, so it must get the
/// new bytes, although the change came after the wait that reported the socket.
#[test]
fn a_request_read_in_the_same_recv_as_an_earlier_one_sees_a_change_made_between_them() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::Instant;
    // One worker (so its thread is the process's), and whole reads even when the suite runs
    // under fault injection: each recv is held 0.4 s here.
    let flags = [
        "--workers",
        "1",
        "--max-read",
        "65536",
        "--max-events",
        "1024",
    ];
    let server = TestServer::start_with(&flags, |root| {
        fs::write(root.join("v.txt"), "old version").unwrap();
        fs::write(root.join("load.txt"), "load").unwrap();
    });
    let mut client = server.connect();
    for _ in 0..2 {
        client.send(b"GET /v.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(client.response().text(), "old version"); // now cached
    }
    let pid = server.pid().to_string();
    let mut strace = crate::common::spawn(
        Command::new("strace")
            .args(["-p", &pid, "-e", "trace=recvfrom", "-o", "/dev/null"])
            .args(["-e", "inject=recvfrom:delay_enter=400000"])
            .stderr(Stdio::piped()),
    )
    .expect("strace (installed by .ci/run)");
    let mut said = String::new();
    BufReader::new(strace.stderr.take().unwrap())
        .read_line(&mut said)
        .unwrap();
    assert!(said.contains("attached"), "strace: {said}");
    client.send(b"GET /load.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    // The server's own word that it is held on its way into recvfrom (syscall 45 on
    // x86-64, `/proc/PID/syscall`) after the wait reported the first request.
    let until = Instant::now() + crate::common::PATIENCE;
    let in_recv = || {
        fs::read_to_string(format!("/proc/{pid}/syscall"))
            .is_ok_and(|now| now.split_whitespace().next() == Some(RECVFROM))
    };
    while !in_recv() {
        assert!(Instant::now() < until, "the server never reached recvfrom");
        std::thread::yield_now();
    }
    save_by_rename(&server.root.join("v.txt"), "new version");
    client.send(b"GET /v.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(client.response().text(), "load");
    let second = client.response().text();
    let _ = strace.kill();
    let _ = strace.wait();
    assert_eq!(
        second, "new version",
        "the cache's copy from before the save"
    );
}

/// `recvfrom`'s system call number, as `/proc/PID/syscall` shows it.
#[cfg(target_arch = "x86_64")]
const RECVFROM: &str = "45";
#[cfg(target_arch = "aarch64")]
const RECVFROM: &str = "207";
