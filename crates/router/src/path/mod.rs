//! Request-target path handling, run once before any route matcher.
//!
//! An ingress router is an access-control boundary: if `/public/../admin`,
//! `/admin%2f..` or `//admin` reaches a route the operator did not intend, the
//! router is the vulnerability. [`PathPolicy`] decides, for one
//! request-target, whether the request is forwarded (and with which path),
//! redirected or rejected. Its rule is: *normalize once, before any matcher;
//! match on the bytes you forward; reject anything ambiguous.*
//!
//! ```
//! use std::borrow::Cow;
//! use rauta_router::path::{PathOutcome, PathPolicy, RejectReason};
//!
//! let policy = PathPolicy::safe_default();
//!
//! // Dot segments are resolved, and the query is forwarded byte for byte.
//! match policy.apply("/public/%2e%2e/admin?next=/../x") {
//!     PathOutcome::Forward { path, match_path } => {
//!         assert_eq!(path, "/admin?next=/../x");
//!         assert_eq!(match_path, "/admin");
//!     }
//!     other => panic!("{other:?}"),
//! }
//!
//! // An already canonical path is not copied.
//! assert!(matches!(
//!     policy.apply("/api/v1/users?id=7"),
//!     PathOutcome::Forward { path: Cow::Borrowed(_), match_path: Cow::Borrowed("/api/v1/users") }
//! ));
//!
//! // Escaped slashes are refused by default.
//! assert_eq!(
//!     policy.apply("/public%2F..%2Fadmin"),
//!     PathOutcome::Reject { status: 400, reason: RejectReason::EscapedSlash }
//! );
//! ```
//!
//! # The safe default
//!
//! A configuration that says nothing gets [`PathPolicy::safe_default`]:
//! percent-decode unreserved characters once, resolve `.` and `..` (also
//! `..;x` and `.;x`), reject a `..` that climbs above the root, merge slash
//! runs, reject escaped slashes (`%2F`, `%5C`), raw control bytes, NUL, space,
//! non-ASCII bytes, raw backslashes, malformed escapes and fragments, cap the
//! request-target at 8 KiB, and match routes on the path with `;params`
//! removed while forwarding them. [`PathPolicy::envoy`] gives Envoy's
//! defaults instead, for configurations that must behave as an Envoy one does.
//!
//! # Envoy's own transformations
//!
//! [`envoy`] and [`uhv`] reproduce Envoy's two normalizers exactly, quirks
//! included; [`remove_dot_segments`] is RFC 3986's algorithm as written.
use std::borrow::Cow;

use serde::Deserialize;
use smallvec::SmallVec;

pub mod envoy;
mod rfc3986;
pub mod uhv;

pub use rfc3986::remove_dot_segments;

use envoy::{decode_escape, hex_digit};

/// Envoy's `path_with_escaped_slashes_action`: what to do with `%2F`, `%2f`,
/// `%5C` and `%5c` in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum EscapedSlashesAction {
    /// Leave them encoded (Envoy's default). Risky behind path-based access
    /// rules when the backend decodes `%2F` itself.
    KeepUnchanged,
    /// Reject the request with 400 (RAUTA's default).
    RejectRequest,
    /// Decode them and answer 307 with the decoded path, so that browsers
    /// follow and the request is routed on what it really names.
    UnescapeAndRedirect,
    /// Decode them and continue. Never use this behind path-based access
    /// rules: the decoded slashes change the segment structure.
    UnescapeAndForward,
}

/// How `;params` in path segments (`/admin;jsessionid=x`) are handled.
/// `..;x` and `.;x` are dot segments whenever the path is normalized,
/// whatever this says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum PathParametersAction {
    /// Match and forward the path with its parameters (Envoy's default).
    Keep,
    /// Forward the parameters, but match routes on a copy of the path with
    /// the parameters of each segment removed (RAUTA's default).
    StripForMatching,
    /// Reject any path containing `;` with 400.
    RejectRequest,
}

/// Why a request-target was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RejectReason {
    /// The request-target, or what normalization made of it, is longer than
    /// `max_path_bytes` (414).
    #[error("request-target is {len} bytes, longer than the limit of {max}")]
    PathTooLong {
        /// Length of the request-target (after normalization, if that
        /// lengthened it).
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The request-target does not start with `/` (400).
    #[error("request-target is not in origin form (must start with '/')")]
    NotOriginForm,
    /// The request-target contains `#` (400).
    #[error("request-target contains a fragment ('#')")]
    Fragment,
    /// A raw control byte, space, DEL or non-ASCII byte (400). NUL, CR and LF
    /// are always refused.
    #[error("request-target contains the byte 0x{byte:02x} at offset {offset}")]
    ControlByte {
        /// The byte.
        byte: u8,
        /// Its offset in the request-target.
        offset: usize,
    },
    /// An escaped control byte (`%00`-`%1F`, `%7F`) in the path (400).
    #[error("path contains the escaped control byte %{byte:02X}")]
    EncodedControl {
        /// The decoded byte.
        byte: u8,
    },
    /// A raw `\` in the path (400).
    #[error("path contains a raw backslash")]
    Backslash,
    /// A `%` not followed by two hex digits (400).
    #[error("path contains a malformed percent-escape at offset {offset}")]
    MalformedEscape {
        /// Offset of the `%` in the request-target.
        offset: usize,
    },
    /// `%2F` or `%5C` under `REJECT_REQUEST` (400).
    #[error("path contains an escaped slash or backslash")]
    EscapedSlash,
    /// `;` under `path_parameters: REJECT_REQUEST` (400).
    #[error("path contains path parameters (';')")]
    PathParameters,
    /// A `..` segment that climbs above the root (400).
    #[error("path climbs above the root with '..'")]
    AboveRoot,
}

impl RejectReason {
    /// The HTTP status to answer with: 414 for a too long request-target,
    /// 400 for everything else.
    pub fn status(&self) -> u16 {
        match self {
            RejectReason::PathTooLong { .. } => 414,
            _ => 400,
        }
    }
}

/// What to do with a request, decided from its request-target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathOutcome<'a> {
    /// Route the request and forward it.
    Forward {
        /// What goes upstream: the normalized path followed by the original
        /// query, byte for byte.
        path: Cow<'a, str>,
        /// What route matchers compare: the normalized path without the
        /// query, with `;params` removed under `STRIP_FOR_MATCHING`.
        match_path: Cow<'a, str>,
    },
    /// Answer with a redirect to `location` (path and query).
    Redirect {
        /// The `Location` path and query.
        location: String,
        /// The status code: 307, as Envoy sends.
        status: u16,
    },
    /// Answer with an error status and do not route.
    Reject {
        /// 400 or 414.
        status: u16,
        /// Why.
        reason: RejectReason,
    },
}

impl PathOutcome<'_> {
    fn reject(reason: RejectReason) -> Self {
        PathOutcome::Reject {
            status: reason.status(),
            reason,
        }
    }
}

/// Default cap on the request-target length under the safe default.
pub const DEFAULT_MAX_PATH_BYTES: usize = 8 * 1024;

/// Envoy's `max_request_headers_kb` default (60 KiB), which also bounds the
/// request-target; used by [`PathPolicy::envoy`].
pub const ENVOY_MAX_PATH_BYTES: usize = 60 * 1024;

/// Path handling options of a route configuration or a virtual host.
///
/// Every field is an `Option` so that a virtual host's policy can be laid
/// over its route configuration's with [`PathPolicy::overlay`]; a field left
/// unset takes its value from [`PathPolicy::safe_default`]. Field names follow
/// Envoy's HTTP connection manager where Envoy has the option.
///
/// ```
/// use rauta_router::path::{PathOutcome, PathPolicy};
///
/// // A virtual host serving an API that needs opaque %2F in object names.
/// let vhost: PathPolicy = serde_json::from_str(
///     r#"{"path_with_escaped_slashes_action": "KEEP_UNCHANGED"}"#,
/// )?;
/// let policy = PathPolicy::default().overlay(&vhost);
/// assert!(matches!(policy.apply("/objects/a%2Fb"), PathOutcome::Forward { .. }));
///
/// // Unknown fields are an error, not silently ignored.
/// assert!(serde_json::from_str::<PathPolicy>(r#"{"normalise_path": true}"#).is_err());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PathPolicy {
    /// Resolve `.` and `..` segments and decode escaped unreserved
    /// characters (Envoy's `normalize_path`). Default true.
    pub normalize_path: Option<bool>,
    /// Merge runs of `/` (Envoy's `merge_slashes`). Default true.
    pub merge_slashes: Option<bool>,
    /// Envoy's `path_with_escaped_slashes_action`. Default `REJECT_REQUEST`.
    pub path_with_escaped_slashes_action: Option<EscapedSlashesAction>,
    /// Reject a request-target containing `#` (Envoy's runtime
    /// `http_reject_path_with_fragment`); when false the fragment is cut off.
    /// Default true.
    pub reject_fragment: Option<bool>,
    /// Reject raw control bytes, space, DEL and non-ASCII bytes anywhere in
    /// the request-target, and escaped control bytes (`%00`-`%1F`, `%7F`) in
    /// the path. Raw NUL, CR and LF are refused even when this is false.
    /// Default true.
    pub reject_control_bytes: Option<bool>,
    /// Reject a raw `\` in the path; when false a normalized path reads it
    /// as `/`, as Envoy does. Without normalization, a `\` decoded from `%5C`
    /// by an unescape action is refused too. Default true.
    pub reject_backslash: Option<bool>,
    /// Reject a `%` not followed by two hex digits; when false it is kept
    /// (and written `%25` by normalization, so that it can never pair up
    /// with what follows into a new escape). Default true.
    pub reject_malformed_escapes: Option<bool>,
    /// Reject a `..` that would climb above the root; when false it is
    /// dropped, as RFC 3986 and Envoy's `normalize_path` do. Default true.
    pub reject_dot_segments_above_root: Option<bool>,
    /// Upper-case the hex digits of escapes that stay encoded, so that route
    /// matchers see one spelling. Applies when `normalize_path` is on.
    /// Default true.
    pub uppercase_percent_encoding: Option<bool>,
    /// How `;params` in segments are handled. Default `STRIP_FOR_MATCHING`.
    pub path_parameters: Option<PathParametersAction>,
    /// Longest request-target accepted, in bytes; longer ones get 414. The
    /// cap applies again to the normalized result, which percent-encoding can
    /// make longer. Default 8192.
    pub max_path_bytes: Option<usize>,
}

/// A policy with every option decided.
#[derive(Debug, Clone, Copy)]
struct Resolved {
    normalize: bool,
    merge: bool,
    escaped_slashes: EscapedSlashesAction,
    reject_fragment: bool,
    reject_control: bool,
    reject_backslash: bool,
    reject_malformed: bool,
    reject_above_root: bool,
    uppercase: bool,
    params: PathParametersAction,
    max_len: usize,
}

/// Byte-level facts about a path, gathered while validating it.
#[derive(Debug, Default, Clone, Copy)]
struct Scan {
    /// Some `%2F`, `%2f`, `%5C` or `%5c`.
    escaped_slash: bool,
    /// Some escape that normalization rewrites: unreserved (decoded),
    /// lower-case hex (upper-cased) or malformed (written `%25`).
    escape_work: bool,
    backslash: bool,
    /// Some segment is `.`, `..`, `.;x` or `..;x`.
    dot_segment: bool,
    double_slash: bool,
    semicolon: bool,
    needs_escape: bool,
}

impl PathPolicy {
    /// RAUTA's safe pipeline, what a configuration gets when it says
    /// nothing: every option set to its documented default.
    pub fn safe_default() -> Self {
        PathPolicy {
            normalize_path: Some(true),
            merge_slashes: Some(true),
            path_with_escaped_slashes_action: Some(EscapedSlashesAction::RejectRequest),
            reject_fragment: Some(true),
            reject_control_bytes: Some(true),
            reject_backslash: Some(true),
            reject_malformed_escapes: Some(true),
            reject_dot_segments_above_root: Some(true),
            uppercase_percent_encoding: Some(true),
            path_parameters: Some(PathParametersAction::StripForMatching),
            max_path_bytes: Some(DEFAULT_MAX_PATH_BYTES),
        }
    }

    /// Envoy's defaults: no normalization, no slash merging, escaped slashes
    /// kept, fragments rejected, parameters kept, 60 KiB cap. Only for
    /// configurations that must behave exactly as an Envoy one does; see
    /// docs/security.md for what this leaves open.
    pub fn envoy() -> Self {
        PathPolicy {
            normalize_path: Some(false),
            merge_slashes: Some(false),
            path_with_escaped_slashes_action: Some(EscapedSlashesAction::KeepUnchanged),
            reject_fragment: Some(true),
            reject_control_bytes: Some(false),
            reject_backslash: Some(false),
            reject_malformed_escapes: Some(false),
            reject_dot_segments_above_root: Some(false),
            uppercase_percent_encoding: Some(false),
            path_parameters: Some(PathParametersAction::Keep),
            max_path_bytes: Some(ENVOY_MAX_PATH_BYTES),
        }
    }

    /// Lays `more_specific` (say, a virtual host's policy) over `self` (say,
    /// the route configuration's): every field set in `more_specific` wins.
    ///
    /// ```
    /// use rauta_router::path::PathPolicy;
    ///
    /// let mut vhost = PathPolicy::default();
    /// vhost.merge_slashes = Some(false);
    /// let merged = PathPolicy::safe_default().overlay(&vhost);
    /// assert_eq!(merged.merge_slashes, Some(false));
    /// assert_eq!(merged.normalize_path, Some(true));
    /// ```
    pub fn overlay(&self, more_specific: &PathPolicy) -> PathPolicy {
        PathPolicy {
            normalize_path: more_specific.normalize_path.or(self.normalize_path),
            merge_slashes: more_specific.merge_slashes.or(self.merge_slashes),
            path_with_escaped_slashes_action: more_specific
                .path_with_escaped_slashes_action
                .or(self.path_with_escaped_slashes_action),
            reject_fragment: more_specific.reject_fragment.or(self.reject_fragment),
            reject_control_bytes: more_specific
                .reject_control_bytes
                .or(self.reject_control_bytes),
            reject_backslash: more_specific.reject_backslash.or(self.reject_backslash),
            reject_malformed_escapes: more_specific
                .reject_malformed_escapes
                .or(self.reject_malformed_escapes),
            reject_dot_segments_above_root: more_specific
                .reject_dot_segments_above_root
                .or(self.reject_dot_segments_above_root),
            uppercase_percent_encoding: more_specific
                .uppercase_percent_encoding
                .or(self.uppercase_percent_encoding),
            path_parameters: more_specific.path_parameters.or(self.path_parameters),
            max_path_bytes: more_specific.max_path_bytes.or(self.max_path_bytes),
        }
    }

    fn resolved(&self) -> Resolved {
        Resolved {
            normalize: self.normalize_path.unwrap_or(true),
            merge: self.merge_slashes.unwrap_or(true),
            escaped_slashes: self
                .path_with_escaped_slashes_action
                .unwrap_or(EscapedSlashesAction::RejectRequest),
            reject_fragment: self.reject_fragment.unwrap_or(true),
            reject_control: self.reject_control_bytes.unwrap_or(true),
            reject_backslash: self.reject_backslash.unwrap_or(true),
            reject_malformed: self.reject_malformed_escapes.unwrap_or(true),
            reject_above_root: self.reject_dot_segments_above_root.unwrap_or(true),
            uppercase: self.uppercase_percent_encoding.unwrap_or(true),
            params: self
                .path_parameters
                .unwrap_or(PathParametersAction::StripForMatching),
            max_len: self.max_path_bytes.unwrap_or(DEFAULT_MAX_PATH_BYTES),
        }
    }

    /// Decides what happens to a request with this origin-form
    /// request-target (path and optional query, as it arrived).
    ///
    /// The order is: length cap, origin form, fragment, byte validation,
    /// escaped slashes, normalization (decode, dot segments, slash merging),
    /// redirect. An already canonical request-target is returned borrowed,
    /// without allocating. The function never panics.
    ///
    /// The asterisk form (`OPTIONS *`) and the authority form (`CONNECT
    /// host:port`) carry no path; recognise them with
    /// [`crate::authority::parse_request_target`] and do not call this.
    pub fn apply<'a>(&self, path_and_query: &'a str) -> PathOutcome<'a> {
        let mut scratch = PathScratch::default();
        match self.run(path_and_query, &mut scratch) {
            Core::Forward { path, match_path } => {
                // The match copy first: it may be a prefix of the buffer
                // that the forwarded path then takes whole. A buffer of
                // its own it takes whole too.
                let path_buf = match path {
                    Piece::Buf(b, _) => Some(b),
                    Piece::Input(_) => None,
                };
                let match_path = match match_path {
                    Piece::Input(p) => Cow::Borrowed(p),
                    Piece::Buf(b, n) if path_buf != Some(b) => {
                        let mut owned = std::mem::take(scratch.buf_mut(b));
                        owned.truncate(n);
                        Cow::Owned(owned)
                    }
                    Piece::Buf(b, n) => Cow::Owned(scratch.buf(b)[..n].to_owned()),
                };
                let path = match path {
                    Piece::Input(p) => Cow::Borrowed(p),
                    Piece::Buf(b, n) => {
                        let mut owned = std::mem::take(scratch.buf_mut(b));
                        owned.truncate(n);
                        Cow::Owned(owned)
                    }
                };
                PathOutcome::Forward { path, match_path }
            }
            Core::Redirect(location) => PathOutcome::Redirect {
                location,
                status: 307,
            },
            Core::Reject(reason) => PathOutcome::reject(reason),
        }
    }

    /// [`Self::apply`], writing a changed path into `scratch` instead of
    /// new strings: once the buffers have grown to the longest path seen,
    /// a forwarded request allocates nothing, however much normalization
    /// changed it. Both paths of a [`PathOutcome::Forward`] are then
    /// borrowed (from the request-target or from `scratch`). A redirect's
    /// `Location` is still a new string.
    ///
    /// ```
    /// use rauta_router::path::{PathOutcome, PathPolicy, PathScratch};
    ///
    /// let policy = PathPolicy::safe_default();
    /// let mut scratch = PathScratch::default();
    /// match policy.apply_in("/a//b/../c;v=1?x", &mut scratch) {
    ///     PathOutcome::Forward { path, match_path } => {
    ///         assert_eq!(path, "/a/c;v=1?x");
    ///         assert_eq!(match_path, "/a/c");
    ///     }
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn apply_in<'a>(
        &self,
        path_and_query: &'a str,
        scratch: &'a mut PathScratch,
    ) -> PathOutcome<'a> {
        match self.run(path_and_query, scratch) {
            Core::Forward { path, match_path } => {
                let scratch: &'a PathScratch = scratch;
                let text = |p: Piece<'a>| match p {
                    Piece::Input(p) => Cow::Borrowed(p),
                    Piece::Buf(b, n) => Cow::Borrowed(&scratch.buf(b)[..n]),
                };
                PathOutcome::Forward {
                    path: text(path),
                    match_path: text(match_path),
                }
            }
            Core::Redirect(location) => PathOutcome::Redirect {
                location,
                status: 307,
            },
            Core::Reject(reason) => PathOutcome::reject(reason),
        }
    }

    /// The policy's work: validation, then each change written into one of
    /// `scratch`'s buffers, the input left borrowed where nothing changes.
    fn run<'a>(&self, path_and_query: &'a str, scratch: &mut PathScratch) -> Core<'a> {
        let r = self.resolved();
        if path_and_query.len() > r.max_len {
            return Core::Reject(RejectReason::PathTooLong {
                len: path_and_query.len(),
                max: r.max_len,
            });
        }
        if !path_and_query.starts_with('/') {
            return Core::Reject(RejectReason::NotOriginForm);
        }
        // The first '?' or '#' in one pass, then a '#' in the query.
        let bytes = path_and_query.as_bytes();
        let split = crate::bytes::find_either(bytes, b'?', b'#').unwrap_or(bytes.len());
        let hash = match bytes.get(split) {
            Some(b'?') => crate::bytes::find(&bytes[split..], b'#').map(|h| split + h),
            Some(_) => Some(split),
            None => None,
        };
        let mut target = path_and_query;
        if let Some(hash) = hash {
            if r.reject_fragment {
                return Core::Reject(RejectReason::Fragment);
            }
            target = &path_and_query[..hash];
        }
        let (path, query) = target.split_at(split);

        if let Err(reason) = check_query(query, split, &r) {
            return Core::Reject(reason);
        }
        let scan = match scan_path(path, &r) {
            Ok(scan) => scan,
            Err(reason) => return Core::Reject(reason),
        };

        // Where the path is now: the input, or one of the buffers.
        let mut current: Option<Buf> = None;
        let mut redirect = false;
        if scan.escaped_slash && r.escaped_slashes != EscapedSlashesAction::KeepUnchanged {
            let out = &mut scratch.unescaped;
            out.clear();
            out.reserve(path.len() + query.len());
            if envoy::unescape_slashes_into(path, out) {
                match r.escaped_slashes {
                    EscapedSlashesAction::RejectRequest => {
                        return Core::Reject(RejectReason::EscapedSlash)
                    }
                    EscapedSlashesAction::UnescapeAndRedirect => redirect = true,
                    _ => {}
                }
                if r.reject_backslash && !r.normalize && out.contains('\\') {
                    // Without normalization the decoded backslash would be forwarded
                    // raw, which this policy refuses.
                    return Core::Reject(RejectReason::Backslash);
                }
                current = Some(Buf::Unescaped);
            }
        }

        if r.normalize {
            let needs_work = current.is_some()
                || scan.escape_work
                || scan.backslash
                || scan.dot_segment
                || scan.needs_escape
                || (r.merge && scan.double_slash);
            if needs_work {
                let outcome =
                    scratch.write_next(current, path, Buf::Normalized, |input, out, starts| {
                        // Room for the query too, which the forwarded path gets.
                        out.reserve(input.len() + query.len() + 8);
                        normalize_segments(input, &r, out, starts).map(|()| *out != *input)
                    });
                match outcome {
                    Ok(true) => current = Some(Buf::Normalized),
                    Ok(false) => {}
                    Err(reason) => return Core::Reject(reason),
                }
            }
        } else if r.merge && scratch.text(current, path).contains("//") {
            scratch.write_next(current, path, Buf::Normalized, |input, out, _| {
                out.reserve(input.len() + query.len());
                merge_slash_runs(input, out);
            });
            current = Some(Buf::Normalized);
        }

        // Normalization may lengthen a path (raw bytes are percent-encoded):
        // what is forwarded or redirected to obeys the same cap as what came
        // in, so that a second pass over it gives the same answer.
        if let Some(b) = current {
            let len = scratch.buf(b).len() + query.len();
            if len > r.max_len {
                return Core::Reject(RejectReason::PathTooLong {
                    len,
                    max: r.max_len,
                });
            }
        }

        if redirect {
            let mut location = scratch.text(current, path).to_owned();
            location.push_str(query);
            return Core::Redirect(location);
        }

        let strip_params = r.params == PathParametersAction::StripForMatching
            && scan.semicolon
            && crate::bytes::find(scratch.text(current, path).as_bytes(), b';').is_some();
        let match_path = if strip_params {
            let len = scratch.write_next(current, path, Buf::Stripped, |input, out, _| {
                out.reserve(input.len());
                strip_params_for_matching(input, r.merge, out);
                out.len()
            });
            Some(Piece::Buf(Buf::Stripped, len))
        } else {
            None
        };
        match current {
            None => Core::Forward {
                path: Piece::Input(target),
                match_path: match_path.unwrap_or(Piece::Input(path)),
            },
            Some(b) => {
                // The forwarded path is the changed one and the query: the
                // match copy, unless cut, is the buffer's start.
                let buf = scratch.buf_mut(b);
                let len = buf.len();
                buf.push_str(query);
                Core::Forward {
                    path: Piece::Buf(b, buf.len()),
                    match_path: match_path.unwrap_or(Piece::Buf(b, len)),
                }
            }
        }
    }
}

/// Reusable buffers for [`PathPolicy::apply_in`] and
/// [`crate::RouteTable::route_in`]. Keep one per thread or per connection
/// and pass it to every call: the buffers grow to the longest path that
/// needed a change and are then reused, so normalization stops allocating.
#[derive(Debug, Clone, Default)]
pub struct PathScratch {
    /// The path with escaped slashes decoded.
    unescaped: String,
    /// The normalized (or slash-merged) path.
    normalized: String,
    /// Where each kept segment starts in `normalized`.
    starts: SmallVec<[usize; 16]>,
    /// The match copy with `;params` cut.
    stripped: String,
}

impl PathScratch {
    fn buf(&self, b: Buf) -> &str {
        match b {
            Buf::Unescaped => &self.unescaped,
            Buf::Normalized => &self.normalized,
            Buf::Stripped => &self.stripped,
        }
    }

    fn buf_mut(&mut self, b: Buf) -> &mut String {
        match b {
            Buf::Unescaped => &mut self.unescaped,
            Buf::Normalized => &mut self.normalized,
            Buf::Stripped => &mut self.stripped,
        }
    }

    /// The current path: a buffer, or the input when nothing changed yet.
    fn text<'s>(&'s self, current: Option<Buf>, input: &'s str) -> &'s str {
        current.map_or(input, |b| self.buf(b))
    }

    /// Runs `f` on the current path, the cleared buffer `out` (not the
    /// current one) and the working space. The buffers are moved out and
    /// back, which allocates nothing.
    fn write_next<T>(
        &mut self,
        current: Option<Buf>,
        input: &str,
        out: Buf,
        f: impl FnOnce(&str, &mut String, &mut SmallVec<[usize; 16]>) -> T,
    ) -> T {
        debug_assert_ne!(current, Some(out));
        let mut buf = std::mem::take(self.buf_mut(out));
        let mut starts = std::mem::take(&mut self.starts);
        buf.clear();
        let result = f(self.text(current, input), &mut buf, &mut starts);
        *self.buf_mut(out) = buf;
        self.starts = starts;
        result
    }
}

/// One of [`PathScratch`]'s output buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buf {
    Unescaped,
    Normalized,
    Stripped,
}

/// A path the policy hands back: part of the input, or the first `n`
/// bytes of a buffer.
#[derive(Debug, Clone, Copy)]
enum Piece<'a> {
    Input(&'a str),
    Buf(Buf, usize),
}

/// [`PathOutcome`] with its paths still to be taken from the buffers.
enum Core<'a> {
    Forward {
        path: Piece<'a>,
        match_path: Piece<'a>,
    },
    Redirect(String),
    Reject(RejectReason),
}

/// True for bytes the policy refuses when `reject_control_bytes` is on:
/// C0 controls, space, DEL and every non-ASCII byte.
fn is_control_or_non_ascii(b: u8) -> bool {
    b <= b' ' || b >= 0x7f
}

/// True for bytes that break HTTP/1 framing or C strings: never forwarded.
fn is_always_refused(b: u8) -> bool {
    matches!(b, 0 | b'\r' | b'\n')
}

fn check_query(query: &str, offset: usize, r: &Resolved) -> Result<(), RejectReason> {
    for (i, &b) in query.as_bytes().iter().enumerate() {
        // Printable ASCII passes under any policy: one test for most bytes.
        if b.wrapping_sub(b'!') < 0x7f - b'!' {
            continue;
        }
        if is_always_refused(b) || (r.reject_control && is_control_or_non_ascii(b)) {
            return Err(RejectReason::ControlByte {
                byte: b,
                offset: offset + i,
            });
        }
    }
    Ok(())
}

/// Bytes that a normalized path never carries raw; normalization writes
/// them percent-encoded (Envoy's canonicalizer does the same).
const fn needs_escape(b: u8) -> bool {
    !(b >= b' ' && b < 0x7f)
        || matches!(
            b,
            b' ' | b'"' | b'#' | b'<' | b'>' | b'?' | b'^' | b'`' | b'{' | b'|' | b'}'
        )
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Validates the bytes of the path (no query) and notes what normalization
/// will have to do.
fn scan_path(path: &str, r: &Resolved) -> Result<Scan, RejectReason> {
    let bytes = path.as_bytes();
    if is_quiet(bytes) {
        return Ok(Scan::default());
    }
    scan_notes(bytes, r)
}

/// [`scan_path`]'s byte-by-byte pass.
fn scan_notes(bytes: &[u8], r: &Resolved) -> Result<Scan, RejectReason> {
    let mut scan = Scan::default();
    for (i, &b) in bytes.iter().enumerate() {
        // Most bytes of most paths: nothing to note under any policy.
        if PLAIN[usize::from(b)] {
            continue;
        }
        match b {
            b'/' => match bytes.get(i + 1) {
                Some(b'/') => scan.double_slash = true,
                Some(b'.') => scan.dot_segment |= is_dot_segment(&bytes[i + 1..]),
                _ => {}
            },
            b'%' => match decode_escape(bytes, i) {
                Some(v)
                    if (v == 0x7f || v < b' ') && (r.reject_control || (v == 0 && r.normalize)) =>
                {
                    return Err(RejectReason::EncodedControl { byte: v });
                }
                Some(v) => {
                    scan.escaped_slash |= v == b'/' || v == b'\\';
                    scan.escape_work |= is_unreserved(v)
                        || (r.uppercase
                            && (bytes[i + 1].is_ascii_lowercase()
                                || bytes[i + 2].is_ascii_lowercase()));
                }
                None if r.reject_malformed => {
                    return Err(RejectReason::MalformedEscape { offset: i })
                }
                None => scan.escape_work = true,
            },
            b'\\' => {
                if r.reject_backslash {
                    return Err(RejectReason::Backslash);
                }
                scan.backslash = true;
            }
            b';' => {
                if r.params == PathParametersAction::RejectRequest {
                    return Err(RejectReason::PathParameters);
                }
                scan.semicolon = true;
            }
            _ => {
                if is_always_refused(b) || (r.reject_control && is_control_or_non_ascii(b)) {
                    return Err(RejectReason::ControlByte { byte: b, offset: i });
                }
                scan.needs_escape |= needs_escape(b);
            }
        }
    }
    Ok(scan)
}

/// Whether `path` holds only [`PLAIN`] bytes and '/'s, with no "//" and
/// no "/." (most paths): [`scan_path`] then notes nothing, under any
/// policy. One pass without a branch per byte, where the scan's `match`
/// mispredicts at every '/'.
fn is_quiet(path: &[u8]) -> bool {
    let mut odd = false;
    let mut after_slash = false;
    for &b in path {
        let slash = b == b'/';
        odd |= !(PLAIN[usize::from(b)] || slash) | (after_slash & (slash | (b == b'.')));
        after_slash = slash;
    }
    !odd
}

/// Bytes that [`scan_path`] accepts without a note under any policy:
/// printable ASCII but for the ones it looks at (`/`, `%`, `\\`, `;`) and
/// the ones normalization escapes.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = b'!';
    while b < 0x7f {
        t[b as usize] = !matches!(b, b'/' | b'%' | b'\\' | b';') && !needs_escape(b);
        b += 1;
    }
    t
};

/// True when the segment at the start of `rest` (up to the next `/`) is a
/// dot segment; `rest` starts with `.`.
fn is_dot_segment(rest: &[u8]) -> bool {
    let end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
    classify(&rest[..end]) != Segment::Name
}

/// Kind of one decoded segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    Empty,
    Current,
    Parent,
    Name,
}

fn classify(seg: &[u8]) -> Segment {
    match seg.first() {
        None => return Segment::Empty,
        Some(b'.') => {}
        Some(_) => return Segment::Name,
    }
    if seg == b"." || seg.starts_with(b".;") {
        Segment::Current
    } else if seg == b".." || seg.starts_with(b"..;") {
        Segment::Parent
    } else {
        Segment::Name
    }
}

/// Decodes one raw segment into `out`: unreserved escapes decoded, other
/// valid escapes kept (upper-cased if asked), stray `%` written `%25`, bytes
/// that may not appear raw percent-encoded. Everything written is ASCII.
fn decode_segment(raw: &str, r: &Resolved, out: &mut String) -> Result<(), RejectReason> {
    let bytes = raw.as_bytes();
    // Bytes before `copied` are written; both indices stay on char
    // boundaries (they only ever move past ASCII bytes or whole chars).
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if SEGMENT_PLAIN[usize::from(b)] {
            i += 1;
            continue;
        }
        out.push_str(&raw[copied..i]);
        if b == b'%' {
            match decode_escape(bytes, i) {
                Some(v) if is_unreserved(v) => out.push(char::from(v)),
                Some(0) => return Err(RejectReason::EncodedControl { byte: 0 }),
                Some(v) if r.uppercase => push_escaped_str(out, v),
                // `%` and two hex digits, as they came.
                Some(_) => out.push_str(&raw[i..i + 3]),
                None => {
                    out.push_str("%25");
                    i += 1;
                    copied = i;
                    continue;
                }
            }
            i += 3;
        } else {
            // A char that may not appear raw: each of its bytes escaped.
            let len = raw[i..].chars().next().map_or(1, char::len_utf8);
            for &e in &bytes[i..i + len] {
                push_escaped_str(out, e);
            }
            i += len;
        }
        copied = i;
    }
    out.push_str(&raw[copied..]);
    Ok(())
}

/// Bytes that [`decode_segment`] copies as they are.
const SEGMENT_PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0u8;
    loop {
        t[b as usize] = b != b'%' && !needs_escape(b);
        if b == u8::MAX {
            break;
        }
        b += 1;
    }
    t
};

/// Appends `%XY` (upper-case hex) for `b`.
fn push_escaped_str(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(hex_digit(b >> 4)));
    out.push(char::from(hex_digit(b)));
}

/// RAUTA's normalizer on a path without query, into `out`: segment by
/// segment (`/` and `\` both separate segments), decode, resolve dot
/// segments (`..;x` and `.;x` included), drop empty segments when merging.
/// `starts` is working space.
fn normalize_segments(
    path: &str,
    r: &Resolved,
    out: &mut String,
    starts: &mut SmallVec<[usize; 16]>,
) -> Result<(), RejectReason> {
    // The path starts with '/' (ASCII): `get(1..)` is on a boundary.
    let mut rest = path.get(1..).unwrap_or("");
    starts.clear();
    let mut trailing_slash = false;
    loop {
        // Separators are ASCII: slicing around them stays on boundaries.
        let sep = rest.bytes().position(|b| b == b'/' || b == b'\\');
        let (raw, next) = match sep {
            Some(e) => (&rest[..e], Some(&rest[e + 1..])),
            None => (rest, None),
        };
        let last = next.is_none();
        // Each segment is decoded in place after its '/', then kept or
        // taken back (the output is ASCII: every cut is on a boundary).
        let start = out.len();
        out.push('/');
        decode_segment(raw, r, out)?;
        match classify(&out.as_bytes()[start + 1..]) {
            Segment::Name => starts.push(start),
            Segment::Empty => {
                if r.merge {
                    out.truncate(start);
                    trailing_slash = last;
                } else {
                    starts.push(start);
                }
            }
            Segment::Current => {
                out.truncate(start);
                trailing_slash = last;
            }
            Segment::Parent => {
                out.truncate(start);
                match starts.pop() {
                    Some(start) => out.truncate(start),
                    None if r.reject_above_root => return Err(RejectReason::AboveRoot),
                    None => {}
                }
                trailing_slash = last;
            }
        }
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(())
}

/// Collapses every run of `/` into one (no other change), into `out`.
fn merge_slash_runs(path: &str, out: &mut String) {
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
}

/// The match copy of a path, into `out`: each segment cut at its first
/// `;`; when merging, segments left empty by the cut disappear.
fn strip_params_for_matching(path: &str, merge: bool, out: &mut String) {
    let mut rest = path.strip_prefix('/').unwrap_or(path);
    loop {
        // '/' and ';' are ASCII: the cuts are on char boundaries.
        let (seg, next) = match rest.bytes().position(|b| b == b'/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let kept = seg
            .bytes()
            .position(|b| b == b';')
            .map_or(seg, |i| &seg[..i]);
        if !(merge && kept.is_empty() && next.is_some()) {
            out.push('/');
            out.push_str(kept);
        }
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_path_is_one_the_full_scan_notes_nothing_in() {
        // Every path of up to three bytes after the '/' over bytes each
        // branch of the scan looks at: where `is_quiet` says so, the full
        // scan finds nothing under any policy; and it says so for paths
        // of plain bytes and single slashes.
        let alphabet = [
            b'a', b'Z', b'9', b'-', b'~', b'/', b'.', b'%', b';', b'\\', b' ', b'?', b'#', b'"', 0,
            0x1f, 0x7f, 0x80, 0xff,
        ];
        let policies = [PathPolicy::safe_default(), PathPolicy::envoy()].map(|p| p.resolved());
        let mut quiet = 0;
        for len in 0..=3 {
            for n in 0..alphabet.len().pow(len) {
                let mut p = vec![b'/'];
                let mut k = n;
                for _ in 0..len {
                    p.push(alphabet[k % alphabet.len()]);
                    k /= alphabet.len();
                }
                if !is_quiet(&p) {
                    continue;
                }
                quiet += 1;
                for r in &policies {
                    let scan = scan_notes(&p, r).expect("a quiet path is accepted");
                    let noted = scan.escaped_slash
                        || scan.escape_work
                        || scan.backslash
                        || scan.dot_segment
                        || scan.double_slash
                        || scan.semicolon
                        || scan.needs_escape;
                    assert!(!noted, "{:?}: {scan:?}", String::from_utf8_lossy(&p));
                }
            }
        }
        assert!(quiet > 100, "{quiet}");
        for p in ["/", "/a/b/c", "/repos/p1/p2/issues", "/a.b/c-d_e~f/"] {
            assert!(is_quiet(p.as_bytes()), "{p}");
        }
        for p in [
            "//", "/a//b", "/./a", "/a/..", "/a/.b", "/a%41", "/a;b", "/a b", "/\\",
        ] {
            assert!(!is_quiet(p.as_bytes()), "{p}");
        }
    }

    fn forward(policy: &PathPolicy, input: &str) -> (String, String) {
        match policy.apply(input) {
            PathOutcome::Forward { path, match_path } => {
                (path.into_owned(), match_path.into_owned())
            }
            other => panic!("{input:?}: expected forward, got {other:?}"),
        }
    }

    fn reason(policy: &PathPolicy, input: &str) -> RejectReason {
        match policy.apply(input) {
            PathOutcome::Reject { reason, status } => {
                assert_eq!(status, reason.status());
                reason
            }
            other => panic!("{input:?}: expected reject, got {other:?}"),
        }
    }

    #[test]
    fn unset_fields_behave_as_the_safe_default() {
        let unset = PathPolicy::default();
        let safe = PathPolicy::safe_default();
        for input in ["/a/../b", "//x", "/a%2fb", "/a;x", "/../a", "/%41", "/x#y"] {
            assert_eq!(unset.apply(input), safe.apply(input), "{input:?}");
        }
    }

    #[test]
    fn max_path_bytes_boundary() {
        let mut p = PathPolicy::safe_default();
        p.max_path_bytes = Some(10);
        assert!(matches!(p.apply("/123456789"), PathOutcome::Forward { .. }));
        assert_eq!(
            p.apply("/1234567890"),
            PathOutcome::Reject {
                status: 414,
                reason: RejectReason::PathTooLong { len: 11, max: 10 }
            }
        );
        let default_max = "/".to_string() + &"a".repeat(DEFAULT_MAX_PATH_BYTES - 1);
        assert!(matches!(
            PathPolicy::default().apply(&default_max),
            PathOutcome::Forward { .. }
        ));
        let over = default_max + "a";
        assert_eq!(reason(&PathPolicy::default(), &over).status(), 414);
    }

    #[test]
    fn envoy_policy_forwards_unchanged() {
        let envoy = PathPolicy::envoy();
        assert_eq!(
            forward(&envoy, "/a/../b//c%2f"),
            ("/a/../b//c%2f".into(), "/a/../b//c%2f".into())
        );
        assert_eq!(reason(&envoy, "/a#b"), RejectReason::Fragment);
        assert!(matches!(
            reason(&envoy, "/a\r\nb"),
            RejectReason::ControlByte { byte: b'\r', .. }
        ));
    }

    #[test]
    fn escaped_slash_actions() {
        let mut p = PathPolicy::safe_default();
        p.path_with_escaped_slashes_action = Some(EscapedSlashesAction::UnescapeAndRedirect);
        assert_eq!(
            p.apply("/a%2Fb?q=%2F"),
            PathOutcome::Redirect {
                location: "/a/b?q=%2F".into(),
                status: 307
            }
        );
        p.path_with_escaped_slashes_action = Some(EscapedSlashesAction::UnescapeAndForward);
        assert_eq!(forward(&p, "/a%2F..%2Fb"), ("/b".into(), "/b".into()));
        p.path_with_escaped_slashes_action = Some(EscapedSlashesAction::KeepUnchanged);
        assert_eq!(forward(&p, "/a%2fb"), ("/a%2Fb".into(), "/a%2Fb".into()));
    }

    #[test]
    fn params_handling() {
        let safe = PathPolicy::safe_default();
        assert_eq!(
            forward(&safe, "/a;x/b;y?z"),
            ("/a;x/b;y?z".into(), "/a/b".into())
        );
        assert_eq!(forward(&safe, "/a/;x/b"), ("/a/;x/b".into(), "/a/b".into()));
        assert_eq!(forward(&safe, "/a/%2e%2e;x/b"), ("/b".into(), "/b".into()));
        let mut p = PathPolicy::safe_default();
        p.path_parameters = Some(PathParametersAction::RejectRequest);
        assert_eq!(reason(&p, "/a;x"), RejectReason::PathParameters);
        p.path_parameters = Some(PathParametersAction::Keep);
        assert_eq!(forward(&p, "/a;x"), ("/a;x".into(), "/a;x".into()));
    }

    #[test]
    fn lenient_options() {
        let mut p = PathPolicy::safe_default();
        p.reject_dot_segments_above_root = Some(false);
        p.reject_malformed_escapes = Some(false);
        p.reject_backslash = Some(false);
        p.reject_control_bytes = Some(false);
        p.uppercase_percent_encoding = Some(false);
        assert_eq!(forward(&p, "/../a").0, "/a");
        assert_eq!(forward(&p, "/x%zz").0, "/x%25zz");
        assert_eq!(forward(&p, "/a\\..\\b").0, "/b");
        assert_eq!(forward(&p, "/a b\u{e9}").0, "/a%20b%C3%A9");
        assert_eq!(forward(&p, "/%c0%af").0, "/%c0%af");
        assert_eq!(
            reason(&p, "/a%00"),
            RejectReason::EncodedControl { byte: 0 }
        );
        assert!(matches!(
            reason(&p, "/a\0"),
            RejectReason::ControlByte { byte: 0, .. }
        ));
    }

    #[test]
    fn merge_without_normalize() {
        let mut p = PathPolicy::envoy();
        p.merge_slashes = Some(true);
        assert_eq!(forward(&p, "//a//../b/?x//y").0, "/a/../b/?x//y");
        assert_eq!(forward(&p, "//").0, "/");
    }

    #[test]
    fn non_merging_normalization_keeps_empty_segments() {
        let mut p = PathPolicy::safe_default();
        p.merge_slashes = Some(false);
        assert_eq!(forward(&p, "/a//./b").0, "/a//b");
        assert_eq!(forward(&p, "/a//..").0, "/a/");
        assert_eq!(forward(&p, "/a//.").0, "/a//");
    }
}
