//! Property tests of the path module: no input panics, every policy is
//! idempotent, the safe default never forwards an ambiguous path, and a
//! canonical path is returned without copying.
use std::borrow::Cow;

use proptest::prelude::*;
use rauta_router::authority::{
    canonical_authority, parse_request_target, Authority, AuthoritySource, RequestLimits,
};
use rauta_router::path::envoy::{self, HcmOptions};
use rauta_router::path::uhv::{self, UhvOptions};
use rauta_router::path::{
    remove_dot_segments, EscapedSlashesAction, PathOutcome, PathParametersAction, PathPolicy,
    PathScratch, RejectReason,
};

/// Pieces that exercise every branch of the normalizers.
const TOKENS: &[&str] = &[
    "/", "/", "/", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%", "%%", "%2", "%zz",
    "%00", "%01", "%7f", "%41", "%7e", "%25", "%c0%ae", ";", ";x=1", "?", "#", "\\", "a", "b",
    "admin", " ", "\u{e9}", "\0", "\r", "\n", "|", "*", "@", ":",
];

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::collection::vec(prop::sample::select(TOKENS), 0..24).prop_map(|v| v.concat()),
        1 => any::<String>(),
        1 => "/[a-z./%;?#2eEfF5cC\\\\]{0,40}",
    ]
}

fn action() -> impl Strategy<Value = EscapedSlashesAction> {
    prop::sample::select(vec![
        EscapedSlashesAction::KeepUnchanged,
        EscapedSlashesAction::RejectRequest,
        EscapedSlashesAction::UnescapeAndRedirect,
        EscapedSlashesAction::UnescapeAndForward,
    ])
}

fn params() -> impl Strategy<Value = PathParametersAction> {
    prop::sample::select(vec![
        PathParametersAction::Keep,
        PathParametersAction::StripForMatching,
        PathParametersAction::RejectRequest,
    ])
}

/// Any policy: every field unset or set to any value, small length caps
/// included.
fn policy() -> impl Strategy<Value = PathPolicy> {
    let flags = prop::collection::vec(prop::option::of(any::<bool>()), 9);
    let cap = prop::option::of(prop::sample::select(vec![8usize, 16, 64, 1 << 20]));
    (
        flags,
        prop::option::of(action()),
        prop::option::of(params()),
        cap,
    )
        .prop_map(|(f, a, p, cap)| {
            let mut policy = PathPolicy::default();
            policy.normalize_path = f[0];
            policy.merge_slashes = f[1];
            policy.reject_fragment = f[2];
            policy.reject_control_bytes = f[3];
            policy.reject_backslash = f[4];
            policy.reject_malformed_escapes = f[5];
            policy.reject_dot_segments_above_root = f[6];
            policy.uppercase_percent_encoding = f[7];
            policy.path_with_escaped_slashes_action = a;
            policy.path_parameters = p;
            policy.max_path_bytes = cap;
            policy
        })
}

fn path_part(p: &str) -> &str {
    &p[..p.find('?').unwrap_or(p.len())]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// One scratch reused over several inputs (long ones leave their bytes
    /// in the buffers) gives what `apply` gives, input by input.
    #[test]
    fn apply_in_with_a_reused_scratch_agrees_with_apply(
        policy in policy(),
        inputs in prop::collection::vec(target(), 1..6),
    ) {
        let mut scratch = PathScratch::default();
        for input in &inputs {
            let fresh = policy.apply(input);
            let reused = policy.apply_in(input, &mut scratch);
            prop_assert_eq!(&reused, &fresh, "{:?}", input);
            if let PathOutcome::Forward { path, match_path } = reused {
                // Borrowed always: from the input or from the scratch.
                prop_assert!(matches!(path, Cow::Borrowed(_)));
                prop_assert!(matches!(match_path, Cow::Borrowed(_)));
            }
        }
    }

    #[test]
    fn any_policy_is_idempotent(policy in policy(), input in target()) {
        match policy.apply(&input) {
            PathOutcome::Forward { path, match_path } => {
                prop_assert!(path.starts_with('/'));
                prop_assert!(!match_path.contains('?'));
                match policy.apply(&path) {
                    PathOutcome::Forward { path: again, match_path: again_match } => {
                        prop_assert_eq!(&again, &path);
                        prop_assert_eq!(&again_match, &match_path);
                    }
                    other => prop_assert!(false, "{:?} -> {:?} -> {:?}", input, path, other),
                }
            }
            PathOutcome::Redirect { location, status } => {
                prop_assert_eq!(status, 307);
                match policy.apply(&location) {
                    PathOutcome::Forward { path, .. } => prop_assert_eq!(&path, &location),
                    other => prop_assert!(false, "{:?} -> {:?} -> {:?}", input, location, other),
                }
            }
            PathOutcome::Reject { status, reason } => {
                prop_assert_eq!(status, reason.status());
                prop_assert!(status == 400 || status == 414);
            }
        }
    }

    #[test]
    fn safe_default_forwards_only_canonical_paths(input in target()) {
        let safe = PathPolicy::safe_default();
        if let PathOutcome::Forward { path, match_path } = safe.apply(&input) {
            let p = path_part(&path);
            for bad in ["/../", "/./", "//", "%2F", "%2f", "%5C", "%5c", "\\", "#"] {
                prop_assert!(!p.contains(bad), "{:?} forwarded as {:?}", input, path);
            }
            prop_assert!(!p.ends_with("/..") && !p.ends_with("/."), "{:?} -> {:?}", input, path);
            prop_assert!(path.bytes().all(|b| b > b' ' && b < 0x7f), "{:?} -> {:?}", input, path);
            prop_assert!(!match_path.contains(';'));
            prop_assert!(!match_path.contains("//"));
            // The query is forwarded byte for byte.
            if let Some(q) = input.find('?') {
                prop_assert!(path.ends_with(&input[q..]));
            }
            // A canonical path is not copied on the second pass.
            let again = safe.apply(&path);
            prop_assert!(
                matches!(again, PathOutcome::Forward { path: Cow::Borrowed(_), .. }),
                "{:?}",
                again
            );
        }
    }

    #[test]
    fn safe_default_rejections_have_a_reason(input in target()) {
        if let PathOutcome::Reject { reason, .. } = PathPolicy::safe_default().apply(&input) {
            if input.len() <= 8192 {
                let too_long = matches!(reason, RejectReason::PathTooLong { .. });
                prop_assert!(!too_long);
            }
            prop_assert!(!reason.to_string().is_empty());
        }
    }

    #[test]
    fn envoy_transforms_never_panic(input in target(), a in action(), n: bool, m: bool, f: bool) {
        let _ = envoy::canonical_path(&input);
        let merged = envoy::merge_slashes(&input);
        prop_assert_eq!(envoy::merge_slashes(&merged), merged.clone());
        let (unescaped, _) = envoy::unescape_slashes(&input);
        prop_assert!(!envoy::unescape_slashes(&unescaped).1);
        let _ = envoy::strip_dot_segment_params(&input);
        let _ = envoy::remove_path_params(&input);
        let _ = envoy::remove_query_and_fragment(&input);
        let opts = HcmOptions::default()
            .normalize_path(n)
            .merge_slashes(m)
            .reject_fragment(f)
            .escaped_slashes(a);
        let _ = envoy::hcm_pipeline(&input, &opts);
    }

    #[test]
    fn uhv_never_panics(input in target(), a in action(), flags in prop::collection::vec(any::<bool>(), 4)) {
        let opts = UhvOptions::default()
            .escaped_slashes(a)
            .skip_merging_slashes(flags[0])
            .translate_backslash(flags[1])
            .preserve_encoded_case(flags[2])
            .allow_malformed_encoding(flags[3]);
        for method in ["GET", "OPTIONS", "CONNECT"] {
            let _ = uhv::normalize(method, &input, &opts);
        }
    }

    #[test]
    fn remove_dot_segments_leaves_none(input in target()) {
        let out = remove_dot_segments(&input);
        prop_assert!(out.split('/').all(|s| s != "." && s != ".."), "{:?} -> {:?}", input, out);
    }

    #[test]
    fn authority_helpers_never_panic(input in target(), host in "[A-Za-z0-9.:\\[\\]@_-]{0,24}") {
        for s in [input.as_str(), host.as_str()] {
            if let Ok(a) = Authority::parse(s) {
                // Canonical form parses to itself.
                let text = a.to_string();
                prop_assert_eq!(Authority::parse(&text).map(|b| b.to_string()), Ok(text.clone()));
                prop_assert!(!a.host().bytes().any(|b| b.is_ascii_uppercase()));
                prop_assert!(!a.host().ends_with('.'));
            }
            let _ = canonical_authority(AuthoritySource::Origin, [s]);
            let _ = canonical_authority(AuthoritySource::Pseudo(s), [host.as_str()]);
            let _ = rauta_router::authority::strip_host_port(s, Some(80));
            let _ = rauta_router::authority::strip_trailing_host_dot(s);
            for method in ["GET", "CONNECT", "OPTIONS"] {
                let _ = parse_request_target(method, s, true);
            }
            let _ = RequestLimits::safe_default().check(s, [(s.as_bytes(), host.as_bytes())]);
        }
    }
}
