//! The served folder, and the answer to each request as a plain [`Reply`] value.
//!
//! Where this sits in the loop: the router calls [`reply_to`] for every request the site answers and
//! appends the `Reply` it returns to its output batch. From here on the order follows
//! RFC 9110: the method, then the target (file, index, listing, redirect, or error: see
//! [`files::resolve`]), then the preconditions (§13.2.2: 412 or 304), then the range (§14:
//! 206, 416, or the whole file). Nothing here touches a socket; opening and reading files
//! happens here and in `files.rs` (it blocks briefly: see there).
//!
//! The leaves: [`files`] maps a target to a file under the root (with `openat2`, or through
//! the [`fallback_resolver`] where the kernel lacks it), [`listing_page`] renders a directory, [`conditional`]
//! and [`range`] read the request's validators and ranges, [`encoding`] picks a
//! precompressed sibling, [`mime`] names the content type.

pub mod cache;
pub mod conditional;
pub mod disk;
pub mod encoding;
pub mod fallback_resolver;
pub mod files;
pub mod listing_budget;
pub mod listing_page;
pub mod listing_stream;
pub mod mime;
pub mod range;
pub mod watcher;

use std::cell::RefCell;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::rc::Rc;
use std::time::SystemTime;

use crate::config::{CacheOptions, SiteOptions};
use crate::http::head::content_field_lines;
use crate::http::reply::{Content, Text, multipart_end, multipart_part_head};
use crate::http::status::status_page_saying;
use crate::http::{Body, Fields, Method, Reply, Request, Status};
use crate::limits::MAX_MULTIPART_BYTES;
use crate::live::inject;
use cache::{FileCache, Known};
use conditional::{Outcome, Validators};
use files::{Directory, Resolved, StaticFile};
use listing_budget::ListingBudget;
use listing_stream::ListingStream;
use range::{ByteRange, Ranges};
use watcher::Watcher;

pub use files::Root;

/// What answering needs of the server: the folder, the configuration, and the file cache.
pub struct Site {
    /// The served folder, opened at startup (shared with the listings in flight).
    pub root: Rc<Root>,
    /// What to serve, and how (`--index`, `--hidden`, `--live` and the rest).
    pub options: SiteOptions,
    /// The one inotify descriptor, which the cache and `--live` share.
    pub watcher: Rc<Watcher>,
    /// Open files and small bodies, kept fresh by inotify. A `RefCell` because answering
    /// otherwise only reads the site; the loop is single-threaded, so no borrow overlaps.
    pub cache: RefCell<FileCache>,
    /// The work and memory budgets all directory listings in flight share.
    pub listings: Rc<ListingBudget>,
}

impl Site {
    /// A site serving `root` as `config` says, with an empty cache.
    pub fn new(root: Root, options: SiteOptions, cache: &CacheOptions) -> Site {
        let watcher = Rc::new(Watcher::new(cache.entries > 0 || options.live));
        let cache = RefCell::new(FileCache::new(cache, Rc::clone(&watcher)));
        Site {
            root: Rc::new(root),
            watcher,
            options,
            cache,
            listings: Rc::default(),
        }
    }
}

/// The page served as the body of every 404, if the root has it.
const NOT_FOUND_PAGE: &str = "404.html";

/// Decides the answer to `request`; `now` is the wall-clock time of this loop pass. Under
/// `--live`, every HTML page sent reloads: files get the script spliced in (`file_reply`),
/// listings at their end (`listing_stream`), and pages we generate (errors, redirects) here.
pub fn reply_to(site: &Site, request: &Request, now: SystemTime) -> Reply {
    let reply = decide(site, request, now);
    match site.options.live {
        true => inject::into_generated_page(reply),
        false => reply,
    }
}

/// The answer to `request`, as [`reply_to`] gives it without `--live`'s generated pages.
fn decide(site: &Site, request: &Request, now: SystemTime) -> Reply {
    match request.method {
        Method::Options => Reply::options(),
        Method::Other(_) => Reply::error(Status::METHOD_NOT_ALLOWED),
        Method::Get | Method::Head => {
            let accept_encoding = negotiable_encoding(request);
            let path = request.path();
            let preference = accept_encoding.map(encoding::preference);
            let mut cache = site.cache.borrow_mut();
            match cache.get(path, preference, now) {
                Some(Known::File(cached)) => {
                    drop(cache);
                    return file_reply(site, request, cached, now);
                }
                Some(Known::Missing) => {
                    drop(cache);
                    return not_found(site, request, now);
                }
                None => {}
            }
            // Watched before it is looked up, so no change can slip in between.
            let cacheable = cache.prepare(&site.root, path);
            drop(cache);
            match files::resolve(&site.root, &request.target, &site.options, accept_encoding) {
                Ok(Resolved::File(mut file)) => {
                    if cacheable {
                        let mut cache = site.cache.borrow_mut();
                        let head = |file: &StaticFile| whole_file_head_fields(file, &site.options);
                        cache.insert(&site.root, (path, preference), &mut file, head, now);
                    }
                    file_reply(site, request, file, now)
                }
                Ok(Resolved::Redirect(location)) => Reply::redirect(location),
                Ok(Resolved::Listing(directory)) => listing_reply(site, request, directory),
                Err(Status::NOT_FOUND) => {
                    if cacheable && files::is_plainly_missing(&site.root, path) {
                        let mut cache = site.cache.borrow_mut();
                        cache.insert_missing(path, preference, now);
                    }
                    not_found(site, request, now)
                }
                Err(Status::FORBIDDEN)
                    if !site.options.follow_symlinks
                        && files::link_on_the_way(&site.root, path) =>
                {
                    log::info!("refused {path}: {LINK_REFUSED}");
                    let page = status_page_saying(Status::FORBIDDEN, LINK_REFUSED);
                    Reply::html(Status::FORBIDDEN, page, Fields::default())
                }
                Err(status) => Reply::error(status),
            }
        }
    }
}

/// Why a path with a symlink on it was refused, for the page and the log.
const LINK_REFUSED: &str = "a symbolic link on this path leads out of the served folder, \
    is absolute (even one pointing inside it), or loops; start epollo with \
    --follow-symlinks to serve links that leave the folder";

/// The `Accept-Encoding` to choose a precompressed sibling with, if any.
///
/// A GET with `Range` always gets the identity representation: RFC 9110 would let us apply
/// the range to the compressed bytes, but curl, wget, python-requests and httpie then write
/// or decode the wrong bytes, and a resumed download comes out corrupt. The compressed and
/// identity representations keep their own ETags, and every file answer says
/// `Vary: Accept-Encoding`, so no cache can confuse the two.
fn negotiable_encoding(request: &Request) -> Option<&str> {
    if request.method == Method::Get && request.range.is_some() {
        None
    } else {
        request.accept_encoding.as_deref()
    }
}

/// A directory listing. It has no validator, so it is never answered `304`: the page shows
/// each entry's size and time, which change without the directory changing (a file that
/// grows), and depends on flags (`--hidden`) that a restart may change. Only reading the
/// whole directory could tell whether the page would be the same, and a listing is made
/// piece by piece as the client reads it ([`listing_stream::ListingStream`]), so that a huge
/// directory never stalls the loop for one request. (nginx's autoindex has none either.)
fn listing_reply(site: &Site, request: &Request, directory: Directory) -> Reply {
    let query = request
        .target
        .split_once('?')
        .map_or("", |(_, query)| query);
    let order = listing_page::Order::from_query(query);
    let format = if request.accept_json {
        listing_page::Format::Json
    } else {
        listing_page::Format::Html
    };
    let mut fields = Fields {
        vary_accept: true,
        ..Fields::default()
    };
    if !site.listings.admits() {
        log::warn!("listing refused: listings in flight hold their memory budget");
        let fields = Fields {
            retry_after: true,
            ..Fields::default()
        };
        return Reply::error_with(Status::SERVICE_UNAVAILABLE, fields);
    }
    let root = Rc::clone(&site.root);
    let load = Rc::clone(&site.listings);
    let how = (site.options.hidden, order, format, site.options.live);
    let stream = ListingStream::new(directory, root, load, how);
    let body = Body::Stream(Box::new(stream));
    match format {
        listing_page::Format::Html => Reply::html_body(Status::OK, body, fields),
        listing_page::Format::Json => {
            fields.content_type = Some("application/json".into());
            Reply {
                status: Status::OK,
                fields,
                body,
            }
        }
    }
}

/// A file: preconditions first, then ranges.
fn file_reply(site: &Site, request: &Request, file: StaticFile, now: SystemTime) -> Reply {
    // --live: the page with the reload script is the representation (length, ETag, ranges).
    let mut file = if site.options.live {
        inject::inject(identity_page(site, request, file))
    } else {
        file
    };
    let etag = Rc::clone(&file.etag);
    let validators = Validators {
        etag: &etag,
        last_modified: file.modified,
    };
    match conditional::evaluate(&request.conditions, &validators) {
        Outcome::NotModified => return Reply::not_modified(validator_fields(&file, now)),
        Outcome::PreconditionFailed => return Reply::error(Status::PRECONDITION_FAILED),
        Outcome::Proceed => {}
    }
    if request.method == Method::Get {
        // --live: only a body that is sent needs to know where the script goes.
        inject::place_script(&mut file);
    }
    let ranges = match &request.range {
        // Range is defined for GET only (RFC 9110 §14.2): HEAD gets the whole file's head.
        Some(value)
            if request.method == Method::Get
                && conditional::if_range_allows(&request.conditions, &validators) =>
        {
            range::parse(value, file.len)
        }
        _ => Ranges::Whole,
    };
    match ranges {
        Ranges::Whole => whole_file(file, now),
        Ranges::Unsatisfiable => {
            let fields = Fields {
                content_range: Some(range::unsatisfied_range(file.len)),
                ..Fields::default()
            };
            Reply::error_with(Status::RANGE_NOT_SATISFIABLE, fields)
        }
        Ranges::Partial(parts) => match parts.as_slice() {
            [one] => {
                let mut reply = one_range(file, *one, now);
                if request.conditions.if_range.is_some() {
                    // The client holds the rest of this representation and its metadata
                    // (RFC 9110 §15.3.7): send only what a 206 requires.
                    reply.fields.content_type = None;
                    reply.fields.last_modified = None;
                }
                reply
            }
            // Parts of a precompressed sibling cannot be labelled in a multipart body (its one
            // Content-Encoding would claim the whole body is compressed): send it whole.
            many if file.encoding.is_none()
                && many.iter().map(|r| r.len()).sum::<u64>() <= MAX_MULTIPART_BYTES =>
            {
                multipart(file, many, now)
            }
            // Too large to assemble in memory: the whole file, which RFC 9110 §14.2 permits.
            _ => whole_file(file, now),
        },
    }
}

/// 200 with the whole file.
fn whole_file(file: StaticFile, now: SystemTime) -> Reply {
    let mut fields = content_fields(&file, now);
    // The prepared lines hold the file's own time, which is right unless it is in the future.
    if file.modified.is_none_or(|modified| modified <= now) {
        fields.prepared = file.head_fields.clone();
    }
    let len = file.len;
    Reply {
        status: Status::OK,
        fields,
        body: Body::File {
            content: file.content,
            offset: 0,
            len,
        },
    }
}

/// The field lines [`whole_file`] would serialise for `file`, made once for the cache.
fn whole_file_head_fields(file: &StaticFile, config: &SiteOptions) -> Rc<[u8]> {
    let reply = Reply {
        status: Status::OK,
        fields: content_fields(file, file.modified.unwrap_or(SystemTime::UNIX_EPOCH)),
        body: Body::File {
            content: file.content.clone(),
            offset: 0,
            len: file.len,
        },
    };
    content_field_lines(&reply, &config.added_fields).into()
}

/// 206 with one range of the file.
fn one_range(file: StaticFile, range: ByteRange, now: SystemTime) -> Reply {
    let mut fields = content_fields(&file, now);
    fields.content_range = Some(range.content_range(file.len));
    Reply {
        status: Status::PARTIAL_CONTENT,
        fields,
        body: Body::File {
            content: file.content,
            offset: range.first,
            len: range.len(),
        },
    }
}

/// 206 `multipart/byteranges`, assembled in memory (the caller keeps its total size under
/// `MAX_MULTIPART_BYTES`). Reading a regular file blocks briefly (see `files.rs`).
fn multipart(file: StaticFile, ranges: &[ByteRange], now: SystemTime) -> Reply {
    let boundary = boundary_for(&file.etag);
    let mut body = Vec::new();
    for range in ranges {
        let content_range = range.content_range(file.len);
        let part_head = multipart_part_head(&boundary, &file.content_type, &content_range);
        body.extend_from_slice(part_head.as_bytes());
        let start = body.len();
        body.resize(start + range.len() as usize, 0);
        if let Err(e) = read_range(&file.content, &mut body[start..], range.first) {
            log::warn!("reading ranges of a file failed: {e}");
            return Reply::error(Status::INTERNAL_ERROR);
        }
    }
    body.extend_from_slice(multipart_end(&boundary).as_bytes());
    let mut fields = content_fields(&file, now);
    fields.content_type = Some(format!("multipart/byteranges; boundary={boundary}").into());
    Reply {
        status: Status::PARTIAL_CONTENT,
        fields,
        body: Body::Bytes(body),
    }
}

/// 404: with `--spa`, a path that does not look like a file gets the root index; otherwise
/// the root's `404.html` if there is one, else our small status page.
fn not_found(site: &Site, request: &Request, now: SystemTime) -> Reply {
    if site.options.spa && !looks_like_a_file(&request.target) {
        let accept_encoding = request.accept_encoding.as_deref();
        if let Ok(Resolved::File(index)) =
            files::resolve(&site.root, "/", &site.options, accept_encoding)
        {
            return file_reply(site, request, index, now);
        }
    }
    match not_found_page(site, now) {
        // The page is not a resource of its own: no validators, no ranges.
        Some(page) => {
            let page = live_page(site, request, page);
            Reply {
                status: Status::NOT_FOUND,
                fields: Fields {
                    content_type: Some(page.content_type.into()),
                    ..Fields::default()
                },
                body: Body::File {
                    content: page.content,
                    offset: 0,
                    len: page.len,
                },
            }
        }
        None => Reply::error(Status::NOT_FOUND),
    }
}

/// `--live`: a page chosen as its precompressed sibling (`index.html.gz`) is sent as the
/// page itself instead, so the reload script can go in (a dev server's pages are small, and
/// local). Anything else is left as it is.
fn identity_page(site: &Site, request: &Request, file: StaticFile) -> StaticFile {
    if file.encoding.is_none() || !file.content_type.starts_with("text/html") {
        return file;
    }
    match files::resolve(&site.root, &request.target, &site.options, None) {
        Ok(Resolved::File(identity)) => identity,
        _ => file,
    }
}

/// `--live`: the root's `404.html` with the reload script in its place (for a GET, whose
/// body is sent), so a page that did not exist yet reloads once it does.
fn live_page(site: &Site, request: &Request, page: StaticFile) -> StaticFile {
    if !site.options.live {
        return page;
    }
    let mut page = inject::inject(page);
    if request.method == Method::Get {
        inject::place_script(&mut page);
    }
    page
}

/// The root's `404.html`, through the cache (which also remembers that there is none).
fn not_found_page(site: &Site, now: SystemTime) -> Option<StaticFile> {
    let mut cache = site.cache.borrow_mut();
    match cache.get(NOT_FOUND_PAGE, None, now) {
        Some(Known::File(page)) => return Some(page),
        Some(Known::Missing) => return None,
        None => {}
    }
    // The key has no leading `/`, so no request path can collide with it.
    let cacheable = cache.prepare(&site.root, NOT_FOUND_PAGE);
    match files::open_page(&site.root, NOT_FOUND_PAGE, &site.options) {
        Some(mut page) => {
            if cacheable {
                let head = |page: &StaticFile| whole_file_head_fields(page, &site.options);
                cache.insert(&site.root, (NOT_FOUND_PAGE, None), &mut page, head, now);
            }
            Some(page)
        }
        None => {
            if cacheable && files::is_plainly_missing(&site.root, NOT_FOUND_PAGE) {
                cache.insert_missing(NOT_FOUND_PAGE, None, now);
            }
            None
        }
    }
}

/// Fills `buf` with the content from `offset` (reading a file blocks briefly: see
/// `files.rs`).
fn read_range(content: &Content, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    match content {
        Content::File(file) => disk::read_exact_at(file, buf, offset),
        Content::Memory(bytes) => {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let part = bytes
                .get(start..start.saturating_add(buf.len()))
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(part);
            Ok(())
        }
        Content::Spliced(splice) => {
            // The part before the inserted bytes, those, then the part after.
            let (at, inserted) = (splice.at, splice.insert.len() as u64);
            let before = at.saturating_sub(offset).min(buf.len() as u64) as usize;
            let (head, rest) = buf.split_at_mut(before);
            if !head.is_empty() {
                read_range(&splice.original, head, offset)?;
            }
            let into_insert = (offset + before as u64 - at) as usize;
            let insert = splice.insert.get(into_insert..).unwrap_or_default();
            let copied = insert.len().min(rest.len());
            rest[..copied].copy_from_slice(&insert[..copied]);
            let tail = &mut rest[copied..];
            if tail.is_empty() {
                return Ok(());
            }
            // Past the inserted bytes: the original from where they went in, or further.
            let after = (offset + (before + copied) as u64).saturating_sub(inserted);
            read_range(&splice.original, tail, after)
        }
    }
}

/// What a 304 keeps of a file's head (RFC 9110 §15.4.5): the validators, `Vary` and
/// `Cache-Control`; no representation metadata. The tag is shared, not copied.
fn validator_fields(file: &StaticFile, now: SystemTime) -> Fields {
    Fields {
        etag: Some(Text::Shared(file.etag.clone())),
        // Last-Modified may not be later than Date (RFC 9110 §8.8.2.1): a file stamped in
        // the future is reported as modified now.
        last_modified: file.modified.map(|modified| modified.min(now)),
        cacheable: true,
        ..Fields::default()
    }
}

/// The fields of an answer carrying (part of) a file: the validators, and its type,
/// encoding and `Accept-Ranges`. The strings are shared with `file` (and the cache).
fn content_fields(file: &StaticFile, now: SystemTime) -> Fields {
    Fields {
        content_type: Some(Text::Shared(file.content_type.clone())),
        content_encoding: file.encoding,
        file_content: true,
        ..validator_fields(file, now)
    }
}

/// A multipart boundary: derived from the entity tag, so it is stable for one file version
/// and, being 16 hex digits after a fixed prefix, vanishingly unlikely to occur in the file.
fn boundary_for(etag: &str) -> String {
    let mut hasher = DefaultHasher::new();
    etag.hash(&mut hasher);
    format!("epollo-{:016x}", hasher.finish())
}

/// Whether the last path segment has an extension (`/app.js`), as opposed to a client-side
/// route (`/users/42`), which a single-page app resolves itself.
fn looks_like_a_file(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or_default();
    path.rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{HeadOptions, write_head};
    use crate::http::request::Persistence;
    use std::time::{Duration, UNIX_EPOCH};

    fn head_of(reply: &Reply, config: &SiteOptions) -> String {
        let head = HeadOptions {
            head_only: false,
            http11: true,
            persistence: Persistence::KeepAlive,
            date: "Sun, 06 Nov 1994 08:49:37 GMT",
            added: &config.added_fields,
        };
        let mut out = Vec::new();
        write_head(&mut out, reply, &head);
        String::from_utf8(out).unwrap()
    }

    fn file(modified: Option<SystemTime>, encoding: Option<&'static str>) -> StaticFile {
        StaticFile {
            content: Content::Memory(Rc::from(&b"hello"[..])),
            len: 5,
            modified,
            etag: Rc::from("\"5-abc\""),
            content_type: Rc::from("text/plain; charset=utf-8"),
            encoding,
            path: Rc::from("a.txt"),
            head_fields: None,
        }
    }

    #[test]
    fn a_cached_files_prepared_head_is_what_serialising_its_fields_gives() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let configured = SiteOptions {
            added_fields: crate::http::AddedFields {
                cache_control: Some("max-age=60".into()),
                headers: vec![("X-Served-By".into(), "test".into())],
            },
            ..SiteOptions::default()
        };
        for config in [SiteOptions::default(), configured] {
            for modified in [None, Some(now - Duration::from_secs(5)), Some(now)] {
                for encoding in [None, Some("gzip")] {
                    let plain = file(modified, encoding);
                    let mut prepared = file(modified, encoding);
                    prepared.head_fields = Some(whole_file_head_fields(&prepared, &config));
                    let reply = whole_file(prepared, now);
                    assert!(
                        reply.fields.prepared.is_some(),
                        "the prepared lines are used"
                    );
                    assert_eq!(
                        head_of(&reply, &config),
                        head_of(&whole_file(plain, now), &config)
                    );
                }
            }
        }
    }

    #[test]
    fn a_file_stamped_in_the_future_is_not_answered_with_its_prepared_head() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let config = SiteOptions::default();
        let mut future = file(Some(now + Duration::from_secs(3600)), None);
        future.head_fields = Some(whole_file_head_fields(&future, &config));
        let reply = whole_file(future, now);
        assert!(reply.fields.prepared.is_none());
        let head = head_of(&reply, &config);
        assert!(
            head.contains("Last-Modified: Fri, 15 Jan 2027 08:00:00 GMT\r\n"),
            "{head}"
        );
    }

    #[test]
    fn routes_and_files() {
        for (target, file) in [
            ("/app.js", true),
            ("/users/42", false),
            ("/a/b/", false),
            ("/v1.2/x", false),
            ("/x?a.b", false),
        ] {
            assert_eq!(looks_like_a_file(target), file, "{target}");
        }
    }
}
