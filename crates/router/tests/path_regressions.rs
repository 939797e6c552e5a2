//! Inputs the fuzz targets found, replayed as ordinary tests. Each file in
//! `path_regressions/` is a `path_normalize` input: four policy bytes, then
//! the request-target.
use std::borrow::Cow;

use rauta_router::path::{PathOutcome, PathPolicy, RejectReason};

/// The safe-default checks of the `path_normalize` fuzz target.
fn check_safe_default(input: &str) {
    let safe = PathPolicy::safe_default();
    if let PathOutcome::Forward { path, .. } = safe.apply(input) {
        let again = safe.apply(&path);
        assert!(
            matches!(again, PathOutcome::Forward { path: Cow::Borrowed(p), .. } if p == path),
            "{input:?} -> {path:?} -> {again:?}"
        );
    }
}

fn target_of(fuzz_input: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(fuzz_input.get(4..).unwrap_or(&[]))
}

// Found by path_normalize: raw '<' is percent-encoded by normalization, so a
// 3.9 KB request-target was forwarded as 9.2 KB, over the 8 KiB cap that the
// second pass then enforced (414). The cap now applies to the normalized
// result too.
#[test]
fn crash_babb73b9_expansion_past_the_length_cap() {
    let input = include_bytes!("path_regressions/crash-babb73b937d077b82595600e0758cac9df966823");
    let target = target_of(input);
    check_safe_default(&target);
    assert!(matches!(
        PathPolicy::safe_default().apply(&target),
        PathOutcome::Reject {
            status: 414,
            reason: RejectReason::PathTooLong { max: 8192, .. }
        }
    ));
}

#[test]
fn expansion_at_the_length_cap() {
    let mut policy = PathPolicy::safe_default();
    policy.max_path_bytes = Some(10);
    // "/<<<" becomes "/%3C%3C%3C": 10 bytes, at the cap.
    assert!(matches!(
        policy.apply("/<<<"),
        PathOutcome::Forward { path, .. } if path == "/%3C%3C%3C"
    ));
    // "/<<<?" becomes 11 bytes: over it.
    assert_eq!(
        policy.apply("/<<<?"),
        PathOutcome::Reject {
            status: 414,
            reason: RejectReason::PathTooLong { len: 11, max: 10 }
        }
    );
}
