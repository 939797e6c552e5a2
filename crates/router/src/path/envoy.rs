//! Envoy's path transformations, reproduced as pure functions.
//!
//! These are the building blocks of Envoy's HTTP connection manager
//! (`ConnectionManagerUtility::maybeNormalizePath`) with Envoy's exact
//! outputs, quirks included, so that a RAUTA deployment can reproduce an Envoy
//! deployment byte for byte. RAUTA's own pipeline is
//! [`PathPolicy`](super::PathPolicy); use these when Envoy's exact behaviour is
//! the requirement.
//!
//! Every function works on the part before the first `?` (and, where Envoy
//! does so, before the first `#`) and leaves the rest of the request-target
//! byte for byte. None of them panics, whatever the input.
//!
//! ```
//! use rauta_router::path::envoy;
//!
//! assert_eq!(envoy::canonical_path("/a/b/%2E%2E/c?x=/../y").as_deref(), Some("/a/c?x=/../y"));
//! assert_eq!(envoy::canonical_path("/xyz/.%00../abc"), None); // rejected
//! assert_eq!(envoy::merge_slashes("//a//b/?c//d"), "/a/b/?c//d");
//! assert_eq!(envoy::unescape_slashes("/a%2Fb%5cc"), ("/a/b\\c".into(), true));
//! ```
use std::borrow::Cow;

use super::EscapedSlashesAction;

/// Index of the first `?`, or the length.
fn query_start(s: &str) -> usize {
    s.find('?').unwrap_or(s.len())
}

/// Index of the first `?` or `#`, or the length.
pub(super) fn query_or_fragment_start(s: &str) -> usize {
    s.find(['?', '#']).unwrap_or(s.len())
}

/// Turns bytes that this module built from ASCII pieces and whole UTF-8 slices
/// back into a `String`. The conversion cannot fail for the callers below; the
/// lossy fallback only keeps the function total.
pub(super) fn into_string(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Value of one ASCII hex digit.
pub(super) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XY` at `i`, if the two bytes after `%` are hex digits.
pub(super) fn decode_escape(s: &[u8], i: usize) -> Option<u8> {
    if s.get(i) != Some(&b'%') {
        return None;
    }
    let hi = hex_value(*s.get(i + 1)?)?;
    let lo = hex_value(*s.get(i + 2)?)?;
    Some(hi << 4 | lo)
}

/// Upper-case hex digit of a nibble.
pub(super) fn hex_digit(n: u8) -> u8 {
    b"0123456789ABCDEF"[usize::from(n & 0xf)]
}

/// Appends `%XY` (upper-case hex) for `b`.
pub(super) fn push_escaped(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[b'%', hex_digit(b >> 4), hex_digit(b)]);
}

/// Envoy's `merge_slashes`: collapses runs of `/` in the path part; the query
/// is kept as it is.
///
/// Envoy splits the path on `/`, drops empty pieces and joins them again,
/// keeping one leading and one trailing slash if the path had them. This has
/// one quirk that is reproduced here: a path made only of slashes (`//`)
/// comes out as `//`, because the leading and the trailing slash are both
/// kept around an empty join.
pub fn merge_slashes(path_and_query: &str) -> Cow<'_, str> {
    let q = query_start(path_and_query);
    let (path, query) = path_and_query.split_at(q);
    if !path.contains("//") {
        return Cow::Borrowed(path_and_query);
    }
    let mut out = String::with_capacity(path_and_query.len());
    if path.starts_with('/') {
        out.push('/');
    }
    let mut first = true;
    for piece in path.split('/').filter(|p| !p.is_empty()) {
        if !first {
            out.push('/');
        }
        out.push_str(piece);
        first = false;
    }
    if path.ends_with('/') {
        out.push('/');
    }
    out.push_str(query);
    Cow::Owned(out)
}

/// Envoy's escaped-slash decoding (used by `UNESCAPE_AND_FORWARD` and
/// `UNESCAPE_AND_REDIRECT`): `%2F`/`%2f` become `/` and `%5C`/`%5c` become
/// `\` in the path part, in one left-to-right pass (`%%2f` gives `%/`). The
/// flag says whether anything was decoded.
pub fn unescape_slashes(path_and_query: &str) -> (Cow<'_, str>, bool) {
    let mut out = String::new();
    if unescape_slashes_into(path_and_query, &mut out) {
        (Cow::Owned(out), true)
    } else {
        (Cow::Borrowed(path_and_query), false)
    }
}

/// [`unescape_slashes`] appending to `out`; false (and nothing written)
/// when there was nothing to decode.
pub(super) fn unescape_slashes_into(path_and_query: &str, out: &mut String) -> bool {
    let q = query_start(path_and_query);
    let bytes = &path_and_query.as_bytes()[..q];
    // Where the next copy starts: 0, or just past an escape (ASCII), so
    // always a char boundary.
    let mut copied = 0;
    let mut i = 0;
    while i + 2 < bytes.len() {
        let decoded = if bytes[i] == b'%' {
            match [bytes[i + 1], bytes[i + 2].to_ascii_uppercase()] {
                [b'2', b'F'] => Some('/'),
                [b'5', b'C'] => Some('\\'),
                _ => None,
            }
        } else {
            None
        };
        match decoded {
            Some(d) => {
                if copied == 0 {
                    out.reserve(path_and_query.len());
                }
                out.push_str(&path_and_query[copied..i]);
                out.push(d);
                i += 3;
                copied = i;
            }
            None => i += 1,
        }
    }
    if copied == 0 {
        return false;
    }
    out.push_str(&path_and_query[copied..]);
    true
}

/// Envoy's `strip_dotdot_segments_with_parameters`: a segment `..;params`
/// becomes `..` and `.;params` becomes `.`, so that dot-segment removal sees
/// them. Only the part before the first `?` or `#` is touched; `...;x` and
/// `..x` are ordinary segments.
pub fn strip_dot_segment_params(path_and_query: &str) -> Cow<'_, str> {
    let end = query_or_fragment_start(path_and_query);
    let path = &path_and_query[..end];
    if !path.contains(".;") {
        return Cow::Borrowed(path_and_query);
    }
    let mut out = String::with_capacity(path_and_query.len());
    let mut changed = false;
    for (n, segment) in path.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        let kept = if segment.starts_with("..;") {
            ".."
        } else if segment.starts_with(".;") {
            "."
        } else {
            segment
        };
        changed |= kept.len() != segment.len();
        out.push_str(kept);
    }
    if !changed {
        return Cow::Borrowed(path_and_query);
    }
    out.push_str(&path_and_query[end..]);
    Cow::Owned(out)
}

/// Envoy's `PathUtil::removePathParameters`: removes `;params` from every
/// segment of the path part (`/abc;p=1/def` gives `/abc/def`; a segment made
/// only of parameters becomes empty). The flag says whether anything changed.
pub fn remove_path_params(path_and_query: &str) -> (Cow<'_, str>, bool) {
    let end = query_or_fragment_start(path_and_query);
    let path = &path_and_query[..end];
    if !path.contains(';') {
        return (Cow::Borrowed(path_and_query), false);
    }
    let mut out = String::with_capacity(path_and_query.len());
    for (n, segment) in path.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        out.push_str(segment.split(';').next().unwrap_or(""));
    }
    out.push_str(&path_and_query[end..]);
    (Cow::Owned(out), true)
}

/// Envoy's `PathUtil::removeQueryAndFragment`: the part route matchers compare,
/// everything before the first `?` or `#`.
pub fn remove_query_and_fragment(path_and_query: &str) -> &str {
    &path_and_query[..query_or_fragment_start(path_and_query)]
}

/// How the legacy canonicalizer treats one raw byte.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ByteClass {
    /// Copied as it is, and copied back when found escaped.
    Pass,
    /// Copied as it is; when found escaped (`%41`), decoded.
    Unescape,
    /// Percent-encoded on output.
    Escape,
    /// NUL: output escaped and the path rejected.
    Invalid,
}

/// The byte table of the canonicalizer Envoy uses for `normalize_path`
/// (Chromium's path canonicalizer, which follows what browsers send).
fn legacy_class(b: u8) -> ByteClass {
    match b {
        0 => ByteClass::Invalid,
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => ByteClass::Unescape,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'/' | b':' | b';'
        | b'=' | b'@' | b'[' | b']' | b'.' => ByteClass::Pass,
        _ => ByteClass::Escape,
    }
}

fn is_url_slash(b: u8) -> bool {
    b == b'/' || b == b'\\'
}

/// Length of a dot at `i`: 1 for `.`, 3 for `%2e`/`%2E`, 0 otherwise.
fn dot_len(s: &[u8], i: usize) -> usize {
    match s.get(i) {
        Some(b'.') => 1,
        Some(b'%') if s.get(i + 1) == Some(&b'2') && matches!(s.get(i + 2), Some(b'e' | b'E')) => 3,
        _ => 0,
    }
}

enum AfterDot {
    /// Part of a name; nothing consumed.
    Name,
    /// `.` segment; bytes consumed after the dot.
    Current(usize),
    /// `..` segment; bytes consumed after the first dot.
    Up(usize),
}

fn classify_after_dot(s: &[u8], after: usize) -> AfterDot {
    if after == s.len() {
        return AfterDot::Current(0);
    }
    if is_url_slash(s[after]) {
        return AfterDot::Current(1);
    }
    let second = dot_len(s, after);
    if second > 0 {
        let next = after + second;
        if next == s.len() {
            return AfterDot::Up(second);
        }
        if is_url_slash(s[next]) {
            return AfterDot::Up(second + 1);
        }
    }
    AfterDot::Name
}

/// Removes the last segment of `out`, which ends with `/`; stops at the
/// first slash, so a climb above the root is clamped.
fn back_up_to_previous_slash(out: &mut Vec<u8>) {
    let Some(mut i) = out.len().checked_sub(1) else {
        return;
    };
    if i == 0 {
        return;
    }
    i -= 1;
    while out[i] != b'/' && i > 0 {
        i -= 1;
    }
    out.truncate(i + 1);
}

/// After an unreserved octet was decoded close behind a `%` that did not start
/// a valid escape, makes sure the output cannot be read as a new escape on a
/// second pass (`%%30%30` must not turn into `%00`): the stray `%` becomes
/// `%25`.
fn guard_nested_escape(input: &[u8], next: usize, stray: usize, out: &mut Vec<u8>) {
    let len = out.len();
    let Some(&last) = out.last() else { return };
    let append_next = stray + 2 == len;
    if append_next {
        match input.get(next) {
            Some(&b) if b < 0x80 => out.push(b),
            _ => return,
        }
    }
    if decode_escape(out, stray).is_some() {
        if !append_next {
            let b = out[stray + 1];
            out.push(b);
        }
        out[stray + 1] = b'2';
        out[stray + 2] = b'5';
        out.push(last);
    } else if append_next {
        out.truncate(len);
    }
}

/// Result of the legacy canonicalizer on a path without query.
pub(super) struct Canonical {
    pub(super) bytes: Vec<u8>,
    /// False when the path must be rejected (NUL, raw or `%00`).
    pub(super) valid: bool,
}

/// Envoy's legacy path canonicalizer on a path without query: resolves `.`
/// and `..` (also written `%2e`), reads `\` as `/`, decodes escaped
/// unreserved characters, escapes bytes that may not appear raw, keeps every
/// other escape with its hex case, never merges slashes, and clamps `..` at
/// the root.
pub(super) fn canonicalize(path: &[u8]) -> Canonical {
    let mut out = Vec::with_capacity(path.len() + 1);
    let mut valid = true;
    if path.is_empty() {
        out.push(b'/');
        return Canonical { bytes: out, valid };
    }
    if !is_url_slash(path[0]) {
        out.push(b'/');
    }
    let mut stray_percent: Option<usize> = None;
    let mut i = 0;
    while i < path.len() {
        let b = path[i];
        let dots = dot_len(path, i);
        if dots > 0 {
            if out.last() == Some(&b'/') {
                match classify_after_dot(path, i + dots) {
                    AfterDot::Name => {
                        out.push(b'.');
                        i += dots;
                    }
                    AfterDot::Current(consumed) => i += dots + consumed,
                    AfterDot::Up(consumed) => {
                        back_up_to_previous_slash(&mut out);
                        i += dots + consumed;
                    }
                }
            } else {
                out.push(b'.');
                i += dots;
            }
        } else if b == b'\\' {
            out.push(b'/');
            i += 1;
        } else if b == b'%' {
            match decode_escape(path, i) {
                Some(v) if legacy_class(v) == ByteClass::Unescape => {
                    out.push(v);
                    i += 3;
                    if let Some(stray) = stray_percent {
                        if stray + 3 >= out.len() {
                            guard_nested_escape(path, i, stray, &mut out);
                        }
                    }
                }
                Some(v) => {
                    out.extend_from_slice(&path[i..i + 3]);
                    valid &= v != 0;
                    i += 3;
                }
                None => {
                    stray_percent = Some(out.len());
                    out.push(b'%');
                    i += 1;
                }
            }
        } else {
            match legacy_class(b) {
                ByteClass::Invalid => {
                    push_escaped(&mut out, b);
                    valid = false;
                }
                ByteClass::Escape => push_escaped(&mut out, b),
                ByteClass::Pass | ByteClass::Unescape => out.push(b),
            }
            i += 1;
        }
    }
    Canonical { bytes: out, valid }
}

/// Envoy's `normalize_path` (`PathUtil::canonicalPath`): strips `;params` from
/// dot segments, then canonicalizes the part before `?` (see the module
/// docs) and appends the query unchanged. `None` means Envoy rejects the
/// request with 400 (a NUL byte or `%00` in the path).
///
/// A relative input gains a leading `/`; an empty input becomes `/`.
pub fn canonical_path(path_and_query: &str) -> Option<Cow<'_, str>> {
    let q = query_start(path_and_query);
    let (path, query) = path_and_query.split_at(q);
    let stripped = strip_dot_segment_params(path);
    let canon = canonicalize(stripped.as_bytes());
    if !canon.valid {
        return None;
    }
    if canon.bytes == path.as_bytes() {
        return Some(Cow::Borrowed(path_and_query));
    }
    let mut out = canon.bytes;
    out.extend_from_slice(query.as_bytes());
    Some(Cow::Owned(into_string(out)))
}

/// Options of Envoy's connection-manager path handling, with Envoy's
/// defaults from [`HcmOptions::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HcmOptions {
    /// HCM `normalize_path` (default false).
    pub normalize_path: bool,
    /// HCM `merge_slashes` (default false).
    pub merge_slashes: bool,
    /// HCM `path_with_escaped_slashes_action` (default `KEEP_UNCHANGED`).
    pub escaped_slashes: EscapedSlashesAction,
    /// Runtime `http_reject_path_with_fragment` (default true): reject a path
    /// with `#`; when false the fragment is cut off instead.
    pub reject_fragment: bool,
}

impl Default for HcmOptions {
    fn default() -> Self {
        HcmOptions {
            normalize_path: false,
            merge_slashes: false,
            escaped_slashes: EscapedSlashesAction::KeepUnchanged,
            reject_fragment: true,
        }
    }
}

impl HcmOptions {
    /// Sets `normalize_path`.
    pub fn normalize_path(self, on: bool) -> Self {
        HcmOptions {
            normalize_path: on,
            ..self
        }
    }

    /// Sets `merge_slashes`.
    pub fn merge_slashes(self, on: bool) -> Self {
        HcmOptions {
            merge_slashes: on,
            ..self
        }
    }

    /// Sets `path_with_escaped_slashes_action`.
    pub fn escaped_slashes(self, action: EscapedSlashesAction) -> Self {
        HcmOptions {
            escaped_slashes: action,
            ..self
        }
    }

    /// Sets the `http_reject_path_with_fragment` runtime flag.
    pub fn reject_fragment(self, on: bool) -> Self {
        HcmOptions {
            reject_fragment: on,
            ..self
        }
    }
}

/// What Envoy's connection manager does with a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HcmOutcome<'a> {
    /// Route and forward this `:path`.
    Continue(Cow<'a, str>),
    /// Answer 307 with this `Location` (path and query).
    Redirect(String),
    /// Answer 400.
    Reject,
}

/// Envoy's `ConnectionManagerUtility::maybeNormalizePath`: fragment check,
/// escaped-slash action, `normalize_path`, `merge_slashes`, then the redirect
/// decision, in that order.
///
/// ```
/// use rauta_router::path::envoy::{hcm_pipeline, HcmOptions, HcmOutcome};
/// use rauta_router::path::EscapedSlashesAction;
///
/// let opts = HcmOptions::default()
///     .normalize_path(true)
///     .merge_slashes(true)
///     .escaped_slashes(EscapedSlashesAction::UnescapeAndRedirect);
/// assert_eq!(hcm_pipeline("/xyz%2f..%5c/%2Fabc", &opts), HcmOutcome::Redirect("/abc".into()));
/// assert_eq!(hcm_pipeline("/foo#bar", &HcmOptions::default()), HcmOutcome::Reject);
/// ```
pub fn hcm_pipeline<'a>(path_and_query: &'a str, opts: &HcmOptions) -> HcmOutcome<'a> {
    let mut path: Cow<'a, str> = Cow::Borrowed(path_and_query);
    if let Some(hash) = path_and_query.find('#') {
        if opts.reject_fragment {
            return HcmOutcome::Reject;
        }
        path = Cow::Borrowed(&path_and_query[..hash]);
    }
    let mut redirect = false;
    if opts.escaped_slashes != EscapedSlashesAction::KeepUnchanged {
        let (unescaped, found) = unescape_slashes(&path);
        if found {
            match opts.escaped_slashes {
                EscapedSlashesAction::RejectRequest => return HcmOutcome::Reject,
                EscapedSlashesAction::UnescapeAndRedirect => redirect = true,
                _ => {}
            }
            path = Cow::Owned(unescaped.into_owned());
        }
    }
    if opts.normalize_path {
        match canonical_path(&path) {
            None => return HcmOutcome::Reject,
            Some(Cow::Owned(s)) => path = Cow::Owned(s),
            Some(Cow::Borrowed(_)) => {}
        }
    }
    if opts.merge_slashes {
        if let Cow::Owned(s) = merge_slashes(&path) {
            path = Cow::Owned(s);
        }
    }
    if redirect {
        HcmOutcome::Redirect(path.into_owned())
    } else {
        HcmOutcome::Continue(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_path_matches_envoy_examples() {
        let cases = [
            ("/a/b/../../../../c", Some("/c")),
            ("/a/b/%2E./c", Some("/a/c")),
            ("/A/B/C", Some("/A/B/C")),
            ("/xyz/%00.%00./abc", None),
            ("", Some("/")),
            ("/a b", Some("/a%20b")),
            ("/caf\u{e9}", Some("/caf%C3%A9")),
            ("/%%300", Some("/%2500")),
            ("/a|b", Some("/a%7Cb")),
        ];
        for (input, want) in cases {
            assert_eq!(canonical_path(input).as_deref(), want, "input {input:?}");
        }
    }

    #[test]
    fn canonical_path_borrows_when_unchanged() {
        assert!(matches!(canonical_path("/a/b?x"), Some(Cow::Borrowed(_))));
    }

    #[test]
    fn merge_slashes_keeps_envoys_all_slash_quirk() {
        assert_eq!(merge_slashes("//"), "//");
        assert_eq!(merge_slashes("a//b/c/"), "a/b/c/");
    }

    #[test]
    fn remove_path_params_reports_change() {
        assert_eq!(remove_path_params("/a;x/b;y;z"), ("/a/b".into(), true));
        assert_eq!(remove_path_params("/a?b;c"), ("/a?b;c".into(), false));
    }
}
