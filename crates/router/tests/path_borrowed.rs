//! An already canonical request-target goes through `PathPolicy::apply`
//! without being copied: both the forwarded path and the match path borrow
//! from the input. (The normalizer's only allocations are the output
//! buffers of a path it rewrites, so borrowing here means allocation-free.)
use std::borrow::Cow;

use rauta_router::path::{PathOutcome, PathPolicy};

#[test]
fn canonical_paths_are_borrowed() {
    let policies = [
        PathPolicy::safe_default(),
        PathPolicy::default(),
        PathPolicy::envoy(),
    ];
    let targets = [
        "/",
        "/api/v1/users",
        "/api/v1/users/",
        "/api/v1/users?id=7&sort=-name",
        "/static/app.min.js",
        "/a-b_c~d/%C3%A9t%C3%A9",
        "/.well-known/acme-challenge/x",
        "/..a/b../.c",
        "/search?q=/../etc/passwd%2f",
    ];
    for policy in &policies {
        for target in targets {
            match policy.apply(target) {
                PathOutcome::Forward {
                    path: Cow::Borrowed(path),
                    match_path: Cow::Borrowed(match_path),
                } => {
                    assert_eq!(path, target);
                    assert!(target.starts_with(match_path));
                }
                other => panic!("{target:?} under {policy:?}: {other:?}"),
            }
        }
    }
}

#[test]
fn rewritten_paths_are_owned() {
    let safe = PathPolicy::safe_default();
    for target in ["/a/../b", "//a", "/%7euser", "/a/%c3%a9", "/a/./b"] {
        assert!(
            matches!(
                safe.apply(target),
                PathOutcome::Forward {
                    path: Cow::Owned(_),
                    ..
                }
            ),
            "{target:?}"
        );
    }
}
