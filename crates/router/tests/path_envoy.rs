//! Envoy's own test expectations that the shared vector file does not carry,
//! checked against the Envoy emulations, plus the places where RAUTA's
//! pipeline deliberately differs from them.
use rauta_router::path::envoy::{self, HcmOptions, HcmOutcome};
use rauta_router::path::uhv::{self, UhvOptions, UhvOutcome};
use rauta_router::path::{EscapedSlashesAction, PathOutcome, PathPolicy, RejectReason};

// envoy test/common/http/path_utility_test.cc (NormalizeValidPaths,
// InvalidPaths, NormalizeCasePath, MergeSlashes, RemoveQueryAndFragment).
#[test]
fn path_utility_cases() {
    let normalize = [
        ("/a/b/../../../../c", Some("/c")),
        ("/a/b/%2E./c", Some("/a/c")),
        ("/A/B/C", Some("/A/B/C")),
        ("/xyz/%00.%00./abc", None),
    ];
    for (input, want) in normalize {
        assert_eq!(envoy::canonical_path(input).as_deref(), want, "{input:?}");
    }
    assert_eq!(envoy::merge_slashes("a//b/c/"), "a/b/c/");
    assert_eq!(envoy::merge_slashes("/a///b/c"), "/a/b/c");
    for input in [
        "/abc",
        "/abc?param=value1&param=value2",
        "/abc#",
        "/abc#fragment?param=value",
        "/abc##",
        "/abc#?",
        "/abc?param=value#",
    ] {
        assert_eq!(envoy::remove_query_and_fragment(input), "/abc", "{input:?}");
    }
}

// envoy test/extensions/http/header_validators/envoy_default/path_normalizer_test.cc
#[test]
fn uhv_normalizer_cases() {
    let opts = UhvOptions::default();
    let accept = |input: &str, opts: &UhvOptions, want: &str| {
        assert_eq!(
            uhv::normalize("GET", input, opts),
            UhvOutcome::Accept(want.into()),
            "{input:?}"
        );
    };
    accept("///root///child//", &opts, "/root/child/");
    accept("/dir1/./dir2", &opts, "/dir1/dir2");
    accept("/root/child#anchor", &opts, "/root/child#anchor");
    accept("/%ff", &opts, "/%FF");
    accept("/dir1%2fdir2%5cdir3", &opts, "/dir1%2Fdir2%5Cdir3");
    let decode = opts
        .escaped_slashes(EscapedSlashesAction::UnescapeAndForward)
        .translate_backslash(true);
    accept(
        "/dir1%2fdir2%2f/dir3%5Cdeleted%5C%2F..%2F%5cdir4",
        &decode,
        "/dir1/dir2/dir3/dir4",
    );
    assert_eq!(uhv::normalize("CONNECT", "/", &opts), UhvOutcome::Reject);
}

// envoy test/common/http/conn_manager_utility_test.cc: the redirect is
// decided after the other transformations, and merge_slashes leaves
// backslashes alone.
#[test]
fn hcm_cases() {
    let opts = HcmOptions::default().escaped_slashes(EscapedSlashesAction::UnescapeAndRedirect);
    assert_eq!(
        envoy::hcm_pipeline("/a%2Fb?c=%2F", &opts),
        HcmOutcome::Redirect("/a/b?c=%2F".into())
    );
    let keep = HcmOptions::default().normalize_path(true);
    assert_eq!(
        envoy::hcm_pipeline("/a/%2F/../b", &keep),
        HcmOutcome::Continue("/a/b".into())
    );
}

/// Envoy strips `;params` from dot segments before it decodes `%2e`, so an
/// encoded `..;x` survives its normalization and reaches a backend that
/// resolves it (Tomcat, Jetty). RAUTA decodes first.
#[test]
fn encoded_dot_dot_with_params_is_a_dot_segment_in_rauta_only() {
    assert_eq!(
        envoy::canonical_path("/public/%2e%2e;x/admin").as_deref(),
        Some("/public/..;x/admin")
    );
    // Not idempotent in Envoy: the second pass resolves it.
    assert_eq!(
        envoy::canonical_path("/public/..;x/admin").as_deref(),
        Some("/admin")
    );
    match PathPolicy::safe_default().apply("/public/%2e%2e;x/admin") {
        PathOutcome::Forward { path, match_path } => {
            assert_eq!(path, "/admin");
            assert_eq!(match_path, "/admin");
        }
        other => panic!("{other:?}"),
    }
}

/// The UHV's decoder has no guard against an escape assembled from a stray
/// `%` and a decoded digit, so its output is not always a fixed point.
/// RAUTA's lenient mode writes the stray `%` as `%25`.
#[test]
fn stray_percent_cannot_build_a_new_escape() {
    let opts = UhvOptions::default();
    assert_eq!(
        uhv::normalize("GET", "/%%32e", &opts),
        UhvOutcome::Accept("/%2e".into())
    );
    assert_eq!(
        uhv::normalize("GET", "/%2e", &opts),
        UhvOutcome::Accept("/".into())
    );
    let mut lenient = PathPolicy::safe_default();
    lenient.reject_malformed_escapes = Some(false);
    match lenient.apply("/%%32e") {
        PathOutcome::Forward { path, .. } => assert_eq!(path, "/%252e"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        PathPolicy::safe_default().apply("/%%32e"),
        PathOutcome::Reject {
            status: 400,
            reason: RejectReason::MalformedEscape { offset: 1 }
        }
    );
}

/// Envoy's `merge_slashes` keeps `//` for a path made only of slashes;
/// RAUTA's merge gives `/`.
#[test]
fn all_slash_path() {
    assert_eq!(envoy::merge_slashes("///"), "//");
    let mut p = PathPolicy::envoy();
    p.merge_slashes = Some(true);
    assert!(matches!(
        p.apply("///"),
        PathOutcome::Forward { path, .. } if path == "/"
    ));
}
