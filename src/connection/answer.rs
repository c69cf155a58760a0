//! Deciding the answer to one parsed request, and appending it to the `Outgoing` batch.
//!
//! Where this sits in the loop: the connection calls [`answer`] for every complete head.
//! From here on the order follows RFC 9110: the method, then the target (file, index,
//! listing, redirect, or error), then the preconditions (§13.2.2: 412 or 304), then the
//! range (§14: 206, 416, or the whole file).

use super::Context;
use super::outgoing::Outgoing;
use crate::conditional::{self, Outcome, Validators};
use crate::files::{self, Resolved, StaticFile};
use crate::limits::MAX_MULTIPART_BYTES;
use crate::range::{self, Ranges};
use crate::request::{Method, Request};
use crate::response::{Persistence, Status};

/// The page served as the body of every 404, if the root has it.
const NOT_FOUND_PAGE: &str = "404.html";

/// Appends the answer to `request` and returns its status.
pub(super) fn answer(
    out: &mut Outgoing,
    ctx: &Context,
    request: &Request,
    persistence: Persistence,
) -> Status {
    let head_only = request.method == Method::Head;
    match request.method {
        Method::Options => out.push_options(ctx, persistence),
        Method::Other(_) => out.push_status(ctx, Status::METHOD_NOT_ALLOWED, false, persistence),
        Method::Get | Method::Head => {
            let accept_encoding = request.accept_encoding.as_deref();
            match files::resolve(ctx.root, &request.target, ctx.config, accept_encoding) {
                Ok(Resolved::File(file)) => {
                    answer_file(out, ctx, request, file, head_only, persistence)
                }
                Ok(Resolved::Redirect(location)) => {
                    out.push_redirect(ctx, &location, head_only, persistence)
                }
                Ok(Resolved::Listing(html)) => out.push_html(ctx, &html, head_only, persistence),
                Err(Status::NOT_FOUND) => not_found(out, ctx, request, head_only, persistence),
                Err(status) => out.push_status(ctx, status, head_only, persistence),
            }
        }
    }
}

/// A file: preconditions first, then ranges.
fn answer_file(
    out: &mut Outgoing,
    ctx: &Context,
    request: &Request,
    file: StaticFile,
    head_only: bool,
    persistence: Persistence,
) -> Status {
    let validators = Validators {
        etag: &file.etag,
        last_modified: file.modified,
    };
    match conditional::evaluate(&request.conditions, &validators) {
        Outcome::NotModified => return out.push_not_modified(ctx, &file, persistence),
        Outcome::PreconditionFailed => {
            return out.push_status(ctx, Status::PRECONDITION_FAILED, head_only, persistence);
        }
        Outcome::Proceed => {}
    }
    let ranges = match &request.range {
        // Range is defined for GET only (RFC 9110 §14.2): HEAD gets the whole file's head.
        Some(value)
            if !head_only && conditional::if_range_allows(&request.conditions, &validators) =>
        {
            range::parse(value, file.len)
        }
        _ => Ranges::Whole,
    };
    match ranges {
        Ranges::Whole => out.push_file(ctx, file, head_only, persistence),
        Ranges::Unsatisfiable => out.push_unsatisfiable(ctx, &file, head_only, persistence),
        Ranges::Partial(parts) => match parts.as_slice() {
            [one] => out.push_range(ctx, file, *one, head_only, persistence),
            // Parts of a precompressed sibling cannot be labelled in a multipart body (its one
            // Content-Encoding would claim the whole body is compressed): send it whole.
            many if file.encoding.is_none()
                && many.iter().map(|r| r.len()).sum::<u64>() <= MAX_MULTIPART_BYTES =>
            {
                out.push_multipart(ctx, file, many, head_only, persistence)
            }
            // Too large to assemble in memory: the whole file, which RFC 9110 §14.2 permits.
            _ => out.push_file(ctx, file, head_only, persistence),
        },
    }
}

/// 404: with `--spa`, a path that does not look like a file gets the root index; otherwise
/// the root's `404.html` if there is one, else our small status page.
fn not_found(
    out: &mut Outgoing,
    ctx: &Context,
    request: &Request,
    head_only: bool,
    persistence: Persistence,
) -> Status {
    if ctx.config.spa && !looks_like_a_file(&request.target) {
        let accept_encoding = request.accept_encoding.as_deref();
        if let Ok(Resolved::File(index)) =
            files::resolve(ctx.root, "/", ctx.config, accept_encoding)
        {
            return answer_file(out, ctx, request, index, head_only, persistence);
        }
    }
    match files::open_page(ctx.root, NOT_FOUND_PAGE, ctx.config) {
        Some(page) => out.push_error_page(ctx, page, Status::NOT_FOUND, head_only, persistence),
        None => out.push_status(ctx, Status::NOT_FOUND, head_only, persistence),
    }
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
    use super::looks_like_a_file;

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
