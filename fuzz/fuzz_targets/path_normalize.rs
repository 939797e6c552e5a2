//! Path normalization under every policy.
//!
//! The first four bytes choose a `PathPolicy` (each option unset, false or
//! true; each action unset or one of its values; a length cap); the rest is the
//! request-target. Checked: nothing panics; every policy is idempotent (what
//! is forwarded is forwarded unchanged the second time, a redirect target is
//! forwarded as it is); the safe default never forwards `/../`, `/./`, `//`,
//! an escaped slash, a backslash or a raw control byte, forwards the query
//! byte for byte and returns a canonical path without copying it;
//! `apply_in`, with one scratch kept across inputs, answers as `apply`
//! does. Envoy's
//! and the UHV's normalizers and RFC 3986 `remove_dot_segments` must not
//! panic either.
#![no_main]

use std::borrow::Cow;
use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use rauta_router::path::envoy::{self, HcmOptions};
use rauta_router::path::uhv::{self, UhvOptions};
use rauta_router::path::{
    remove_dot_segments, EscapedSlashesAction, PathOutcome, PathParametersAction, PathPolicy,
    PathScratch,
};

thread_local! {
    /// Reused across inputs, as a proxy reuses one per thread: whatever an
    /// earlier input left in the buffers must not show.
    static SCRATCH: RefCell<PathScratch> = RefCell::new(PathScratch::default());
}

fn check_scratch(policy: &PathPolicy, input: &str) {
    SCRATCH.with(|s| {
        let mut scratch = s.borrow_mut();
        let reused = policy.apply_in(input, &mut scratch);
        assert_eq!(reused, policy.apply(input), "{policy:?}: {input:?}");
    });
}

const ACTIONS: [EscapedSlashesAction; 4] = [
    EscapedSlashesAction::KeepUnchanged,
    EscapedSlashesAction::RejectRequest,
    EscapedSlashesAction::UnescapeAndRedirect,
    EscapedSlashesAction::UnescapeAndForward,
];

const PARAMS: [PathParametersAction; 3] = [
    PathParametersAction::Keep,
    PathParametersAction::StripForMatching,
    PathParametersAction::RejectRequest,
];

/// Two bits of `bits` at `n`: unset, false or true.
fn tri(bits: u32, n: u32) -> Option<bool> {
    match (bits >> (2 * n)) & 3 {
        0 => None,
        1 => Some(false),
        _ => Some(true),
    }
}

fn policy(bits: u32) -> PathPolicy {
    let mut p = PathPolicy::default();
    p.normalize_path = tri(bits, 0);
    p.merge_slashes = tri(bits, 1);
    p.reject_fragment = tri(bits, 2);
    p.reject_control_bytes = tri(bits, 3);
    p.reject_backslash = tri(bits, 4);
    p.reject_malformed_escapes = tri(bits, 5);
    p.reject_dot_segments_above_root = tri(bits, 6);
    p.uppercase_percent_encoding = tri(bits, 7);
    let a = ((bits >> 16) % 5) as usize;
    p.path_with_escaped_slashes_action = a.checked_sub(1).map(|i| ACTIONS[i]);
    let pp = ((bits >> 19) % 4) as usize;
    p.path_parameters = pp.checked_sub(1).map(|i| PARAMS[i]);
    p.max_path_bytes = [None, Some(16), Some(64), Some(1 << 20)][((bits >> 21) & 3) as usize];
    p
}

fn check_idempotent(policy: &PathPolicy, input: &str) {
    match policy.apply(input) {
        PathOutcome::Forward { path, match_path } => {
            assert!(path.starts_with('/'), "{input:?} -> {path:?}");
            assert!(!match_path.contains('?'), "{input:?} -> {match_path:?}");
            match policy.apply(&path) {
                PathOutcome::Forward {
                    path: again,
                    match_path: again_match,
                } => {
                    assert_eq!(again, path, "{input:?}");
                    assert_eq!(again_match, match_path, "{input:?}");
                }
                other => panic!("{policy:?}: {input:?} -> {path:?} -> {other:?}"),
            }
        }
        PathOutcome::Redirect { location, status } => {
            assert_eq!(status, 307);
            match policy.apply(&location) {
                PathOutcome::Forward { path, .. } => assert_eq!(path, location, "{input:?}"),
                other => panic!("{policy:?}: {input:?} -> {location:?} -> {other:?}"),
            }
        }
        PathOutcome::Reject { status, reason } => assert_eq!(status, reason.status()),
    }
}

fn check_safe_default(input: &str) {
    let safe = PathPolicy::safe_default();
    if let PathOutcome::Forward { path, match_path } = safe.apply(input) {
        let p = &path[..path.find('?').unwrap_or(path.len())];
        for bad in ["/../", "/./", "//", "%2F", "%2f", "%5C", "%5c", "\\", "#"] {
            assert!(!p.contains(bad), "{input:?} forwarded as {path:?}");
        }
        assert!(
            !p.ends_with("/..") && !p.ends_with("/."),
            "{input:?} -> {path:?}"
        );
        assert!(
            path.bytes().all(|b| b > b' ' && b < 0x7f),
            "{input:?} -> {path:?}"
        );
        assert!(!match_path.contains(';') && !match_path.contains("//"));
        if let Some(q) = input.find('?') {
            assert!(path.ends_with(&input[q..]), "{input:?} -> {path:?}");
        }
        let again = safe.apply(&path);
        assert!(
            matches!(
                again,
                PathOutcome::Forward {
                    path: Cow::Borrowed(_),
                    ..
                }
            ),
            "{input:?} -> {path:?} -> {again:?}"
        );
    }
}

fn exercise_envoy(bits: u32, input: &str) {
    let _ = envoy::canonical_path(input);
    let merged = envoy::merge_slashes(input);
    assert_eq!(envoy::merge_slashes(&merged), merged);
    let (unescaped, _) = envoy::unescape_slashes(input);
    assert!(!envoy::unescape_slashes(&unescaped).1);
    let _ = envoy::strip_dot_segment_params(input);
    let _ = envoy::remove_path_params(input);
    let _ = envoy::remove_query_and_fragment(input);
    let _ = remove_dot_segments(input);
    let hcm = HcmOptions::default()
        .normalize_path(bits & 1 != 0)
        .merge_slashes(bits & 2 != 0)
        .reject_fragment(bits & 4 != 0)
        .escaped_slashes(ACTIONS[((bits >> 3) & 3) as usize]);
    let _ = envoy::hcm_pipeline(input, &hcm);
    let uhv = UhvOptions::default()
        .escaped_slashes(ACTIONS[((bits >> 5) & 3) as usize])
        .skip_merging_slashes(bits & 128 != 0)
        .translate_backslash(bits & 256 != 0)
        .preserve_encoded_case(bits & 512 != 0)
        .allow_malformed_encoding(bits & 1024 != 0);
    let method = ["GET", "OPTIONS", "CONNECT"][((bits >> 11) % 3) as usize];
    let _ = uhv::normalize(method, input, &uhv);
}

fuzz_target!(|data: &[u8]| {
    let (bits, rest) = match data {
        [a, b, c, d, rest @ ..] => (u32::from_le_bytes([*a, *b, *c, *d]), rest),
        _ => (0, data),
    };
    let input = String::from_utf8_lossy(rest);
    check_idempotent(&policy(bits), &input);
    check_scratch(&policy(bits), &input);
    check_idempotent(&PathPolicy::envoy(), &input);
    check_scratch(&PathPolicy::safe_default(), &input);
    check_safe_default(&input);
    exercise_envoy(bits, &input);
});
