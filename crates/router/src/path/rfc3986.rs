//! RFC 3986 section 5.2.4, `remove_dot_segments`, exactly as written.
use std::borrow::Cow;

/// RFC 3986 section 5.2.4 `remove_dot_segments`, step by step as the RFC
/// writes it: `..` above the root is dropped, a relative input stays
/// relative, `;params` are opaque, nothing is decoded and slashes are not
/// merged.
///
/// ```
/// use rauta_router::path::remove_dot_segments;
///
/// assert_eq!(remove_dot_segments("/a/b/c/./../../g"), "/a/g");
/// assert_eq!(remove_dot_segments("mid/content=5/../6"), "mid/6");
/// ```
pub fn remove_dot_segments(input: &str) -> Cow<'_, str> {
    if !has_dot_segment(input) {
        return Cow::Borrowed(input);
    }
    let mut rest: &str = input;
    let mut out = String::with_capacity(input.len());
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("../") {
            // A: a leading "../" is dropped.
            rest = r;
        } else if let Some(r) = rest.strip_prefix("./") {
            // A: a leading "./" is dropped.
            rest = r;
        } else if rest.starts_with("/./") {
            // B: "/./" becomes "/".
            rest = &rest[2..];
        } else if rest == "/." {
            // B: a final "/." becomes "/".
            rest = "/";
        } else if rest.starts_with("/../") || rest == "/.." {
            // C: "/../" (or a final "/..") becomes "/" and the last output
            // segment goes.
            rest = if rest.len() == 3 { "/" } else { &rest[3..] };
            let cut = out.rfind('/').unwrap_or(0);
            out.truncate(cut);
        } else if rest == "." || rest == ".." {
            // D: a lone dot segment goes.
            rest = "";
        } else {
            // E: move the first segment, with its leading "/", to the output.
            let start = usize::from(rest.starts_with('/'));
            let end = rest[start..].find('/').map_or(rest.len(), |p| p + start);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
        }
    }
    Cow::Owned(out)
}

/// True when some segment of `s` is `.` or `..`.
fn has_dot_segment(s: &str) -> bool {
    s.split('/').any(|seg| seg == "." || seg == "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        let cases = [
            ("/a/b/c/./../../g", "/a/g"),
            ("mid/content=5/../6", "mid/6"),
            ("/b/c/..", "/b/"),
            ("/b/c/../../../../g", "/g"),
            ("/b/c/g;x=1/../y", "/b/c/y"),
            ("..", ""),
            ("../a", "a"),
            ("/b/c/.g", "/b/c/.g"),
        ];
        for (input, want) in cases {
            assert_eq!(remove_dot_segments(input), want, "input {input:?}");
        }
    }
}
