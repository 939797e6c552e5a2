//! Envoy's Universal Header Validator path normalizer, reproduced as a pure
//! function.
//!
//! This is the newer of Envoy's two path normalizers
//! (`typed_header_validation_config`, `PathNormalizer::normalizePathUri`):
//! decode escaped unreserved characters, apply the escaped-slash action,
//! optionally turn `\` into `/`, merge slashes unless told not to, then
//! collapse dot segments, rejecting a `..` that climbs above the root. The
//! query and fragment are kept as they are.
//!
//! ```
//! use rauta_router::path::uhv::{normalize, UhvOptions, UhvOutcome};
//!
//! let opts = UhvOptions::default();
//! assert_eq!(normalize("GET", "/dir1/%2e./dir2", &opts), UhvOutcome::Accept("/dir2".into()));
//! assert_eq!(normalize("GET", "/..", &opts), UhvOutcome::Reject);
//! assert_eq!(normalize("OPTIONS", "*", &opts), UhvOutcome::Accept("*".into()));
//! ```
use std::borrow::Cow;

use super::envoy::{hex_value, into_string};
use super::EscapedSlashesAction;

/// Options of the UHV path normalizer, with Envoy's defaults from
/// [`UhvOptions::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UhvOptions {
    /// `uri_path_normalization_options.path_with_escaped_slashes_action`
    /// (default `KEEP_UNCHANGED`).
    pub escaped_slashes: EscapedSlashesAction,
    /// `uri_path_normalization_options.skip_merging_slashes` (default false).
    pub skip_merging_slashes: bool,
    /// Translate a raw `\` into `/` (Envoy does this when non-compliant path
    /// characters are allowed; default false).
    pub translate_backslash: bool,
    /// Runtime `uhv_preserve_url_encoded_case`: keep the case of the hex
    /// digits of escapes that stay encoded; when false they are upper-cased
    /// (RFC 3986 section 6.2.2.1). Default false, the normalizer's behaviour
    /// in Envoy's own tests; Envoy's runtime may turn it on.
    pub preserve_encoded_case: bool,
    /// Runtime `uhv_allow_malformed_url_encoding` (default true): a `%` that
    /// does not start a valid escape passes through; when false the request is
    /// rejected.
    pub allow_malformed_encoding: bool,
}

impl Default for UhvOptions {
    fn default() -> Self {
        UhvOptions {
            escaped_slashes: EscapedSlashesAction::KeepUnchanged,
            skip_merging_slashes: false,
            translate_backslash: false,
            preserve_encoded_case: false,
            allow_malformed_encoding: true,
        }
    }
}

impl UhvOptions {
    /// Sets the escaped-slash action.
    pub fn escaped_slashes(self, action: EscapedSlashesAction) -> Self {
        UhvOptions {
            escaped_slashes: action,
            ..self
        }
    }

    /// Sets `skip_merging_slashes`.
    pub fn skip_merging_slashes(self, on: bool) -> Self {
        UhvOptions {
            skip_merging_slashes: on,
            ..self
        }
    }

    /// Sets backslash translation.
    pub fn translate_backslash(self, on: bool) -> Self {
        UhvOptions {
            translate_backslash: on,
            ..self
        }
    }

    /// Sets `uhv_preserve_url_encoded_case`.
    pub fn preserve_encoded_case(self, on: bool) -> Self {
        UhvOptions {
            preserve_encoded_case: on,
            ..self
        }
    }

    /// Sets `uhv_allow_malformed_url_encoding`.
    pub fn allow_malformed_encoding(self, on: bool) -> Self {
        UhvOptions {
            allow_malformed_encoding: on,
            ..self
        }
    }
}

/// What the UHV normalizer decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UhvOutcome<'a> {
    /// Accept with this `:path`.
    Accept(Cow<'a, str>),
    /// Redirect to this path (escaped slashes were decoded under
    /// `UNESCAPE_AND_REDIRECT`).
    Redirect(String),
    /// Reject with 400.
    Reject,
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Runs the UHV path normalizer on the `:path` of a request with `method`.
///
/// `*` is accepted only for `OPTIONS`; for `CONNECT` only an empty path is
/// accepted; any other path must start with `/`.
pub fn normalize<'a>(method: &str, path_and_query: &'a str, opts: &UhvOptions) -> UhvOutcome<'a> {
    if path_and_query == "*" && method == "OPTIONS" {
        return UhvOutcome::Accept(Cow::Borrowed(path_and_query));
    }
    if method == "CONNECT" {
        return if path_and_query.is_empty() {
            UhvOutcome::Accept(Cow::Borrowed(path_and_query))
        } else {
            UhvOutcome::Reject
        };
    }
    if !path_and_query.starts_with('/') {
        return UhvOutcome::Reject;
    }
    let split = path_and_query
        .find(['?', '#'])
        .unwrap_or(path_and_query.len());
    let (path, rest) = path_and_query.split_at(split);
    let bytes = path.as_bytes();

    // Pass 1: escapes. Decoded unreserved octets (and decoded slashes under
    // the unescape actions) are written out raw; other valid escapes stay
    // encoded, upper-cased unless the case is preserved.
    let mut decoded = Vec::with_capacity(bytes.len());
    decoded.push(b'/');
    let mut redirect = false;
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            decoded.push(b);
            i += 1;
            continue;
        }
        let hi = bytes.get(i + 1).copied();
        let lo = bytes.get(i + 2).copied();
        let value = match (hi.and_then(hex_value), lo.and_then(hex_value)) {
            (Some(h), Some(l)) => h << 4 | l,
            _ => {
                if !opts.allow_malformed_encoding {
                    return UhvOutcome::Reject;
                }
                decoded.push(b'%');
                i += 1;
                continue;
            }
        };
        let keep_encoded = |out: &mut Vec<u8>| {
            let (h, l) = (bytes[i + 1], bytes[i + 2]);
            if opts.preserve_encoded_case {
                out.extend_from_slice(&[b'%', h, l]);
            } else {
                out.extend_from_slice(&[b'%', h.to_ascii_uppercase(), l.to_ascii_uppercase()]);
            }
        };
        if is_unreserved(value) {
            decoded.push(value);
        } else if value == b'/' || value == b'\\' {
            match opts.escaped_slashes {
                EscapedSlashesAction::KeepUnchanged => keep_encoded(&mut decoded),
                EscapedSlashesAction::RejectRequest => return UhvOutcome::Reject,
                EscapedSlashesAction::UnescapeAndForward => decoded.push(value),
                EscapedSlashesAction::UnescapeAndRedirect => {
                    redirect = true;
                    decoded.push(value);
                }
            }
        } else {
            keep_encoded(&mut decoded);
        }
        i += 3;
    }

    if opts.translate_backslash {
        for b in decoded.iter_mut() {
            if *b == b'\\' {
                *b = b'/';
            }
        }
    }

    // Pass 2: merge slashes.
    if !opts.skip_merging_slashes {
        decoded.dedup_by(|cur, prev| *cur == b'/' && *prev == b'/');
    }

    // Pass 3: dot segments.
    let mut out: Vec<u8> = Vec::with_capacity(decoded.len());
    out.push(b'/');
    let mut r = 1;
    while r < decoded.len() {
        let b = decoded[r];
        if b != b'.' || out.last() != Some(&b'/') {
            out.push(b);
            r += 1;
            continue;
        }
        let ahead = &decoded[r..decoded.len().min(r + 3)];
        if ahead.starts_with(b"./") || ahead == b"." {
            r += ahead.len().min(2);
        } else if ahead == b"../" || ahead == b".." {
            match start_of_previous_segment(&out) {
                Some(start) => out.truncate(start),
                None => return UhvOutcome::Reject,
            }
            r += ahead.len().min(3);
        } else {
            out.push(b);
            r += 1;
        }
    }

    let changed = out != bytes;
    if !changed && !redirect {
        return UhvOutcome::Accept(Cow::Borrowed(path_and_query));
    }
    out.extend_from_slice(rest.as_bytes());
    let s = into_string(out);
    if redirect {
        UhvOutcome::Redirect(s)
    } else {
        UhvOutcome::Accept(Cow::Owned(s))
    }
}

/// Where the segment before the trailing slash of `out` starts (just after
/// its slash); `None` when there is no such segment (a climb above the root).
/// Repeated slashes are skipped over, as Envoy does.
fn start_of_previous_segment(out: &[u8]) -> Option<usize> {
    let mut seen_segment = false;
    let mut cur = out.len().checked_sub(1)?;
    while cur > 0 {
        if out[cur] == b'/' && seen_segment {
            return Some(cur + 1);
        }
        if out[cur] != b'/' {
            seen_segment = true;
        }
        cur -= 1;
    }
    seen_segment.then_some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn climbing_above_root_is_rejected() {
        let opts = UhvOptions::default();
        assert_eq!(normalize("GET", "/a/../..", &opts), UhvOutcome::Reject);
        assert_eq!(
            normalize("GET", "/a/../b", &opts),
            UhvOutcome::Accept("/b".into())
        );
    }

    #[test]
    fn connect_needs_an_empty_path() {
        let opts = UhvOptions::default();
        assert_eq!(
            normalize("CONNECT", "", &opts),
            UhvOutcome::Accept("".into())
        );
        assert_eq!(normalize("CONNECT", "/", &opts), UhvOutcome::Reject);
        assert_eq!(normalize("GET", "", &opts), UhvOutcome::Reject);
    }

    #[test]
    fn skipped_merging_keeps_empty_segments_for_dot_dot() {
        let opts = UhvOptions::default().skip_merging_slashes(true);
        assert_eq!(
            normalize("GET", "/a//..", &opts),
            UhvOutcome::Accept("/".into())
        );
        assert_eq!(normalize("GET", "//..", &opts), UhvOutcome::Reject);
    }
}
