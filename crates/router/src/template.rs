//! URI templates (Envoy's `envoy.path.match.uri_template` and
//! `envoy.path.rewrite.uri_template`).
//!
//! A match template is a path of segments, each a literal, `*` (one segment),
//! `**` (zero or more segments), `{name}` / `{name=*}` (capture one segment)
//! or `{name=**}` (capture the rest). Only literal text and literal segments
//! may follow a `**` (`/**/index.html`): they become its suffix. A variable may also
//! capture several segments matched by a pattern of literals and operators
//! (`{name=projects/*/books/*}`, `{path=videos/**}`) or one literal
//! (`{v=latest}`). The last segment may carry a literal suffix after its
//! operator or variable (`/{file=**}.m3u8`). At most five variables. A
//! rewrite template is literal text with `{name}` references.

/// Most variables in one template (Envoy's limit).
pub(crate) const MAX_VARIABLES: usize = 5;

/// Longest variable name, as in Envoy.
const MAX_NAME: usize = 16;

#[derive(Debug, Clone)]
pub(crate) enum Segment {
    Literal(Box<str>),
    /// One segment: at least one character (captured into variable `var`
    /// when set), then `suffix` (`*.m4s`, `{file}.txt`; only in the last
    /// segment).
    One {
        var: Option<u8>,
        suffix: Box<str>,
    },
    /// The rest of the path (zero or more segments), then `suffix` (which
    /// may hold literal segments: `/index.html`).
    Many {
        var: Option<u8>,
        suffix: Box<str>,
    },
}

/// A variable that captures whole segments `first..=last` (of the
/// template's segment list), less the last one's `cut` suffix bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentSpan {
    var: u8,
    first: u16,
    last: u16,
    cut: u16,
}

/// A parsed match template.
#[derive(Debug, Clone)]
pub(crate) struct MatchTemplate {
    pub(crate) segments: Box<[Segment]>,
    pub(crate) names: Box<[Box<str>]>,
    /// Variables over several segments (or one literal one), in order.
    spans: Box<[SegmentSpan]>,
    source: Box<str>,
}

/// Byte ranges of the captured variables in the path.
pub(crate) type Captures = [(u32, u32); MAX_VARIABLES];

/// RFC 3986 `pchar` (unreserved, pct-encoded, sub-delims, ':' and '@').
#[inline]
pub(crate) fn is_pchar(b: u8) -> bool {
    PCHAR[usize::from(b)]
}

/// [`is_pchar`] of every byte, looked up on the match path.
const PCHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0u8;
    loop {
        t[b as usize] = pchar_rule(b);
        if b == u8::MAX {
            break;
        }
        b += 1;
    }
    t
};

const fn pchar_rule(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

fn eq_case(a: &[u8], b: &[u8], case_sensitive: bool) -> bool {
    if case_sensitive {
        bytes_eq(a, b)
    } else {
        a.eq_ignore_ascii_case(b)
    }
}

/// `a == b`, in word loads: template literals and trie labels are a few
/// bytes long, and the `memcmp` call a slice compare makes (even for
/// empty slices) cost more than the compare itself (a third of a GitHub
/// route set lookup in profiles).
#[inline]
pub(crate) fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap());
    let half = |s: &[u8], at: usize| u32::from_ne_bytes(s[at..at + 4].try_into().unwrap());
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if word(a, i) != word(b, i) {
                return false;
            }
            i += 8;
        }
        // The last 8 bytes (overlapping those compared).
        word(a, n - 8) == word(b, n - 8)
    } else if n >= 4 {
        half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

fn valid_name(n: &str) -> bool {
    let mut bytes = n.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Registers variable `name` of template `t`.
fn add_var(t: &str, names: &mut Vec<Box<str>>, name: &str) -> Result<u8, String> {
    if !valid_name(name) {
        return Err(format!(
            "URI template {t:?}: invalid variable name {name:?}"
        ));
    }
    if name.len() > MAX_NAME {
        return Err(format!(
            "URI template {t:?}: variable name {name:?} is longer than {MAX_NAME} characters"
        ));
    }
    if names.iter().any(|n| &**n == name) {
        return Err(format!(
            "URI template {t:?}: duplicate variable name {name:?}"
        ));
    }
    if names.len() == MAX_VARIABLES {
        return Err(format!(
            "URI template {t:?}: Exceeded variable count limit ({MAX_VARIABLES})"
        ));
    }
    names.push(name.into());
    Ok((names.len() - 1) as u8)
}

/// `rest` split at the '/'s that are not inside `{...}`.
fn split_outside_braces(rest: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, b) in rest.bytes().enumerate() {
        match b {
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            b'/' if depth == 0 => {
                parts.push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&rest[start..]);
    parts
}

fn valid_literal(l: &str) -> bool {
    l.bytes()
        .all(|b| is_pchar(b) && b != b'*' && b != b'{' && b != b'}')
}

impl MatchTemplate {
    /// Parses a match template.
    pub(crate) fn parse(t: &str) -> Result<MatchTemplate, String> {
        let Some(rest) = t.strip_prefix('/') else {
            return Err(format!("URI template {t:?} must start with '/'"));
        };
        let mut parts = split_outside_braces(rest);
        // Literal segments after `**` (`/**/index.html`) are text its match
        // must end with, as in Envoy: they join the `**` segment's suffix.
        let mut after_many = String::new();
        if let Some(k) = parts.iter().position(|p| p.contains("**")) {
            let tail = &parts[k + 1..];
            let glob_end = parts[k].rfind("**").map_or(0, |i| i + 2);
            let after_glob = parts[k][glob_end..].trim_start_matches('}');
            if !after_glob.is_empty() && !tail.is_empty() {
                return Err(format!(
                    "URI template {t:?}: text after '**' in {:?} must end the template",
                    parts[k]
                ));
            }
            for (j, lit) in tail.iter().enumerate() {
                let trailing_slash = lit.is_empty() && j + 1 == tail.len();
                if !trailing_slash && !valid_literal(lit) {
                    return Err(format!(
                        "URI template {t:?}: only literal segments may follow '**', got {lit:?}"
                    ));
                }
                after_many.push('/');
                after_many.push_str(lit);
            }
            parts.truncate(k + 1);
        }
        let mut segments = Vec::with_capacity(parts.len());
        let mut names: Vec<Box<str>> = Vec::new();
        let mut spans: Vec<SegmentSpan> = Vec::new();
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            if !Self::parse_span(t, part, i == last, &mut names, &mut segments, &mut spans)? {
                let seg = Self::parse_segment(t, part, i == last, &mut names)?;
                segments.push(seg);
            }
        }
        if !after_many.is_empty() {
            let end = segments.len() - 1;
            if let Some(Segment::Many { suffix, .. }) = segments.last_mut() {
                *suffix = format!("{suffix}{after_many}").into();
            }
            if let Some(span) = spans.last_mut().filter(|s| usize::from(s.last) == end) {
                span.cut += after_many.len() as u16;
            }
        }
        if segments.len() > usize::from(u16::MAX) {
            return Err(format!("URI template {t:?} has too many segments"));
        }
        Ok(MatchTemplate {
            segments: segments.into(),
            names: names.into(),
            spans: spans.into(),
            source: t.into(),
        })
    }

    /// A part `{name=pattern}suffix` whose pattern is more than one `*` or
    /// `**`: literals and operators separated by '/', each a segment of its
    /// own, the variable capturing all of them. `Ok(false)` for any other
    /// part.
    fn parse_span(
        t: &str,
        part: &str,
        is_last: bool,
        names: &mut Vec<Box<str>>,
        segments: &mut Vec<Segment>,
        spans: &mut Vec<SegmentSpan>,
    ) -> Result<bool, String> {
        let Some(open) = part.find('{') else {
            return Ok(false);
        };
        let Some(close) = part[open..].find('}').map(|c| open + c) else {
            return Ok(false);
        };
        let Some((name, pattern)) = part[open + 1..close].split_once('=') else {
            return Ok(false);
        };
        if matches!(pattern, "*" | "**") || pattern.is_empty() {
            return Ok(false);
        }
        if open > 0 {
            return Err(format!(
                "URI template {t:?}: no text may come before the variable {{{name}={pattern}}}"
            ));
        }
        let suffix = &part[close + 1..];
        if !suffix.is_empty() && !is_last {
            return Err(format!(
                "URI template {t:?}: text after the variable {{{name}={pattern}}} must end the template"
            ));
        }
        if !valid_literal(suffix) {
            return Err(format!(
                "URI template {t:?}: invalid text {suffix:?} after the variable {{{name}={pattern}}}"
            ));
        }
        let var = add_var(t, names, name)?;
        let first = segments.len();
        let elements: Vec<&str> = pattern.split('/').collect();
        for (k, e) in elements.iter().enumerate() {
            let end = k + 1 == elements.len();
            let tail = if end { suffix } else { "" };
            let seg = match *e {
                "*" => Segment::One {
                    var: None,
                    suffix: tail.into(),
                },
                "**" if end && is_last => Segment::Many {
                    var: None,
                    suffix: tail.into(),
                },
                "**" => {
                    return Err(format!(
                        "URI template {t:?}: '**' may only appear in the last segment"
                    ))
                }
                lit if !lit.is_empty() && valid_literal(lit) => {
                    Segment::Literal(format!("{lit}{tail}").into())
                }
                _ => {
                    return Err(format!(
                        "URI template {t:?}: invalid variable match {pattern:?} (literals, '*' and '**' separated by '/')"
                    ))
                }
            };
            segments.push(seg);
        }
        spans.push(SegmentSpan {
            var,
            first: first as u16,
            last: (segments.len() - 1) as u16,
            cut: suffix.len() as u16,
        });
        Ok(true)
    }

    fn parse_segment(
        t: &str,
        part: &str,
        is_last: bool,
        names: &mut Vec<Box<str>>,
    ) -> Result<Segment, String> {
        let mut add_var = |name: &str| add_var(t, names, name);
        let many_not_last = || {
            Err(format!(
                "URI template {t:?}: '**' may only appear in the last segment"
            ))
        };
        // A segment is literal text, or one operator (`*`, `**`, `{name}`,
        // `{name=*}` or `{name=**}`) and, in the last segment, text after it.
        let (prefix, op, suffix) = if let Some(open) = part.find('{') {
            let Some(close) = part[open..].find('}').map(|c| open + c) else {
                return Err(format!("URI template {t:?}: unclosed '{{' in {part:?}"));
            };
            (&part[..open], &part[open..=close], &part[close + 1..])
        } else if let Some(star) = part.find('*') {
            let len = if part[star..].starts_with("**") { 2 } else { 1 };
            (&part[..star], &part[star..star + len], &part[star + len..])
        } else {
            ("", "", part)
        };
        if op.is_empty() {
            if !valid_literal(part) {
                return Err(format!(
                    "URI template {t:?}: segment {part:?} is neither a literal, '*', '**' nor a variable"
                ));
            }
            return Ok(Segment::Literal(part.into()));
        }
        // As in Envoy's parser: an operator starts its segment, and text
        // after it (`{file}.m3u8`, `**.mpd`) ends the template.
        if !prefix.is_empty() {
            return Err(format!(
                "URI template {t:?}: no text may come before the operator in {part:?}"
            ));
        }
        if !suffix.is_empty() && !is_last {
            return Err(format!(
                "URI template {t:?}: text after the operator in {part:?} must end the template"
            ));
        }
        if !valid_literal(suffix) {
            return Err(format!(
                "URI template {t:?}: invalid text {suffix:?} after the operator in {part:?}"
            ));
        }
        let (var, many) = match op {
            "*" => (None, false),
            "**" => (None, true),
            _ => {
                let inner = &op[1..op.len() - 1];
                let (name, pat) = inner.split_once('=').unwrap_or((inner, "*"));
                let many = match pat {
                    "*" => false,
                    "**" => true,
                    _ => {
                        return Err(format!(
                            "URI template {t:?}: invalid variable match {pat:?} in {part:?}"
                        ))
                    }
                };
                (Some(add_var(name)?), many)
            }
        };
        if many {
            if !is_last {
                return many_not_last();
            }
            return Ok(Segment::Many {
                var,
                suffix: suffix.into(),
            });
        }
        Ok(Segment::One {
            var,
            suffix: suffix.into(),
        })
    }

    /// The template text.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Index of a variable.
    pub(crate) fn var_index(&self, name: &str) -> Option<u8> {
        self.names
            .iter()
            .position(|n| &**n == name)
            .map(|i| i as u8)
    }

    /// Whether the route index's template trie decides this template on
    /// its own: its segments are literals and whole-segment operators
    /// (`*`, `{name}`), which the trie compares and checks as
    /// [`Self::matches`] does, so reaching its end there is a match.
    pub(crate) fn decided_by_trie(&self) -> bool {
        self.segments.iter().all(|s| match s {
            Segment::Literal(_) => true,
            Segment::One { suffix, .. } => suffix.is_empty(),
            Segment::Many { .. } => false,
        })
    }

    /// Matches `path` (no query), filling `caps`.
    pub(crate) fn matches(&self, path: &str, case_sensitive: bool, caps: &mut Captures) -> bool {
        let p = path.as_bytes();
        let mut pos = 0usize;
        // Where the next multi-segment variable starts, once its first
        // segment is reached.
        let mut span = 0usize;
        let mut span_start = 0usize;
        for (i, seg) in self.segments.iter().enumerate() {
            if p.get(pos) != Some(&b'/') {
                return false;
            }
            pos += 1;
            let at = self.spans.get(span).filter(|s| {
                if usize::from(s.first) == i {
                    span_start = pos;
                }
                usize::from(s.last) == i
            });
            match seg {
                Segment::Literal(l) => {
                    let l = l.as_bytes();
                    let Some(cand) = p.get(pos..pos + l.len()) else {
                        return false;
                    };
                    let same = if case_sensitive {
                        bytes_eq(cand, l)
                    } else {
                        cand.eq_ignore_ascii_case(l)
                    };
                    if !same {
                        return false;
                    }
                    pos += l.len();
                    if pos != p.len() && p[pos] != b'/' {
                        return false;
                    }
                }
                Segment::One { var, suffix } => {
                    let start = pos;
                    while pos < p.len() && p[pos] != b'/' {
                        if !is_pchar(p[pos]) {
                            return false;
                        }
                        pos += 1;
                    }
                    let seg = &p[start..pos];
                    let suf = suffix.as_bytes();
                    if seg.len() <= suf.len()
                        || !eq_case(&seg[seg.len() - suf.len()..], suf, case_sensitive)
                    {
                        return false;
                    }
                    if let Some(v) = var {
                        caps[usize::from(*v)] = (start as u32, (pos - suf.len()) as u32);
                    }
                }
                Segment::Many { var, suffix } => {
                    let rest = &p[pos..];
                    if !rest.iter().all(|&b| b == b'/' || is_pchar(b)) {
                        return false;
                    }
                    let s = suffix.as_bytes();
                    if rest.len() < s.len() {
                        return false;
                    }
                    let tail = &rest[rest.len() - s.len()..];
                    let same = eq_case(tail, s, case_sensitive);
                    if !same {
                        return false;
                    }
                    if let Some(v) = var {
                        caps[usize::from(*v)] = (pos as u32, (p.len() - s.len()) as u32);
                    }
                    if let Some(s) = at {
                        let end = p.len() - usize::from(s.cut);
                        caps[usize::from(s.var)] = (span_start as u32, end as u32);
                    }
                    return true;
                }
            }
            if let Some(s) = at {
                let end = pos - usize::from(s.cut);
                caps[usize::from(s.var)] = (span_start as u32, end as u32);
                span += 1;
            }
        }
        pos == p.len()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum RewritePart {
    Literal(Box<str>),
    Var(u8),
}

/// A parsed rewrite template, bound to a match template's variables.
#[derive(Debug, Clone)]
pub(crate) struct RewriteTemplate {
    parts: Box<[RewritePart]>,
}

impl RewriteTemplate {
    /// Parses `r` against the variables of `m`.
    pub(crate) fn parse(r: &str, m: &MatchTemplate) -> Result<RewriteTemplate, String> {
        if !r.starts_with('/') {
            return Err(format!("rewrite template {r:?} must start with '/'"));
        }
        let mut parts = Vec::new();
        let mut rest = r;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(RewritePart::Literal(rest[..open].into()));
            }
            let Some(close) = rest[open..].find('}') else {
                return Err(format!("rewrite template {r:?}: unclosed '{{'"));
            };
            let name = &rest[open + 1..open + close];
            match m.var_index(name) {
                Some(i) => parts.push(RewritePart::Var(i)),
                None => {
                    return Err(format!(
                        "mismatch between variables in path_match_policy {} and path_rewrite_policy {r}",
                        m.source()
                    ))
                }
            }
            rest = &rest[open + close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("rewrite template {r:?}: unmatched '}}'"));
        }
        if !rest.is_empty() {
            parts.push(RewritePart::Literal(rest.into()));
        }
        Ok(RewriteTemplate {
            parts: parts.into(),
        })
    }

    /// Writes the rewritten path into `out`.
    pub(crate) fn expand(&self, path: &str, caps: &Captures, out: &mut String) {
        for part in self.parts.iter() {
            match part {
                RewritePart::Literal(l) => out.push_str(l),
                RewritePart::Var(i) => {
                    let (s, e) = caps[usize::from(*i)];
                    out.push_str(path.get(s as usize..e as usize).unwrap_or(""));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_eq_agrees_with_slice_equality() {
        let a: Vec<u8> = (0u8..40).map(|i| b'a' + i % 26).collect();
        for len in 0..a.len() {
            let x = &a[..len];
            assert!(bytes_eq(x, x), "{len}");
            assert!(!bytes_eq(x, &a[..len + 1]), "{len} against {}", len + 1);
            // One byte off, at every position.
            for at in 0..len {
                let mut y = x.to_vec();
                y[at] ^= 0x20;
                assert!(!bytes_eq(x, &y), "{len}, byte {at}");
            }
        }
    }

    fn m(t: &str, p: &str) -> bool {
        MatchTemplate::parse(t)
            .unwrap()
            .matches(p, true, &mut [(0, 0); 5])
    }

    #[test]
    fn segments() {
        assert!(m("/rest/{lang}/{state}", "/rest/english/wa"));
        assert!(!m("/rest/{lang}/{state}", "/rest/english"));
        assert!(!m("/rest/{lang}/{state}", "/rest/english/wa/x"));
        assert!(!m("/rest/{lang}/{state}", "/rest//wa"));
        assert!(m("/a/*/c", "/a/b/c"));
        assert!(m("/a/**", "/a/"));
        assert!(m("/a/**", "/a/b/c"));
        assert!(!m("/a/**", "/a"));
        assert!(m("/v/{f=**}.ts", "/v/x/y.ts"));
        assert!(!m("/v/{f=**}.ts", "/v/x/y.tsx"));
        assert!(m("/", "/"));
        assert!(!m("/", "/a"));
        assert!(m("/videos/*/*/*.m4s", "/videos/a/b/c.m4s"));
        assert!(!m("/videos/*/*/*.m4s", "/videos/a/b/.m4s"));
        assert!(m("/img/{id}.png", "/img/7.png"));
        assert!(!m("/img/{id}.png", "/img/.png"));
        assert!(!m("/img/{id}.png", "/img/7.pn"));
    }

    /// The captures of `t` on `p`, as text.
    fn caps(t: &str, p: &str) -> Option<Vec<String>> {
        let t = MatchTemplate::parse(t).unwrap();
        let mut caps = [(0, 0); 5];
        t.matches(p, true, &mut caps).then(|| {
            caps[..t.names.len()]
                .iter()
                .map(|&(s, e)| p[s as usize..e as usize].to_owned())
                .collect()
        })
    }

    #[test]
    fn variables_over_several_segments() {
        let name = "/v1/{name=projects/*/books/*}";
        assert_eq!(
            caps(name, "/v1/projects/p1/books/b2"),
            Some(vec!["projects/p1/books/b2".into()])
        );
        assert_eq!(caps(name, "/v1/projects/p1/books"), None);
        assert_eq!(caps(name, "/v1/projects/p1/shelves/b2"), None);
        assert_eq!(caps(name, "/v1/projects//books/b2"), None);
        assert_eq!(caps(name, "/v1/projects/p1/books/b2/x"), None);
        assert_eq!(
            caps(
                "/v1/{parent=projects/*}/books/{book}:get",
                "/v1/projects/p1/books/b2:get"
            ),
            Some(vec!["projects/p1".into(), "b2".into()])
        );
        assert_eq!(
            caps(
                "/v1/{parent=projects/*}/books/{book}",
                "/v1/projects/p1/books/b2"
            ),
            Some(vec!["projects/p1".into(), "b2".into()])
        );
        assert_eq!(
            caps("/{path=videos/**}", "/videos/a/b.ts"),
            Some(vec!["videos/a/b.ts".into()])
        );
        assert_eq!(
            caps("/{path=videos/**}", "/videos/"),
            Some(vec!["videos/".into()])
        );
        assert_eq!(caps("/{path=videos/**}", "/videos"), None);
        assert_eq!(caps("/{path=videos/**}", "/audio/a"), None);
        assert_eq!(
            caps("/{v=latest}/x", "/latest/x"),
            Some(vec!["latest".into()])
        );
        assert_eq!(caps("/{v=latest}/x", "/stable/x"), None);
        assert_eq!(
            caps("/f/{name=a/*}.txt", "/f/a/notes.txt"),
            Some(vec!["a/notes".into()])
        );
        assert_eq!(caps("/f/{name=a/*}.txt", "/f/a/.txt"), None);
        assert_eq!(
            caps("/{p=v/**}.m3u8", "/v/x/y.m3u8"),
            Some(vec!["v/x/y".into()])
        );
        assert_eq!(
            caps("/{a}/{b=x/*}/{c=**}", "/1/x/2/3/4"),
            Some(vec!["1".into(), "x/2".into(), "3/4".into()])
        );
        let t = MatchTemplate::parse("/v1/{name=projects/*/books/*}:{verb}").unwrap_err();
        assert!(
            t.contains("must end the template") || t.contains("invalid text"),
            "{t}"
        );
        let t = MatchTemplate::parse("/v1/{name=shelves/*}/{name}").unwrap_err();
        assert!(t.contains("duplicate variable name"), "{t}");
        for bad in [
            "/x{v=a/*}",
            "/{v=a/*}x/y",
            "/{v=a//b}",
            "/{v=a/}",
            "/{v=/a}",
            "/{v=**/a}",
            "/**/*",
            "/**/{v}",
            "/{v=**}/a*",
            "/{v=a/b*}",
            "/{v=a/{w}}",
            "/{v=a/*}/{w=b/*}/{x=c}/{y=d}/{z=e}/{q=f}",
        ] {
            assert!(MatchTemplate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literal_segments_after_many() {
        assert!(m("/a/**/index.html", "/a/x/y/index.html"));
        assert!(m("/a/**/index.html", "/a//index.html"));
        assert!(!m("/a/**/index.html", "/a/index.html"));
        assert!(!m("/a/**/index.html", "/a/x/index.htm"));
        assert!(MatchTemplate::parse("/a/{p=**}/v/{w=**}.txt").is_err());
        assert_eq!(
            caps("/a/{p=**}/b/c", "/a/x/y/b/c"),
            Some(vec!["x/y".into()])
        );
        // Text after `**` ends the template (Envoy: "Prefix match not
        // supported").
        for t in ["/a/{p=**}.gz/b", "/a/**.gz/b", "/a/**.gz/"] {
            assert!(MatchTemplate::parse(t).is_err(), "{t}");
        }
        assert_eq!(
            caps("/{p=v/**}/end/", "/v/1/2/end/"),
            Some(vec!["v/1/2".into()])
        );
        assert_eq!(caps("/{p=v/**}/end/", "/v/1/2/end"), None);
    }

    #[test]
    fn rewrite() {
        let t = MatchTemplate::parse("/u/{user=*}/c/{cart}/{rest=**}").unwrap();
        let mut caps = [(0, 0); 5];
        let p = "/u/abc@x.com/c/F1/entries/2";
        assert!(t.matches(p, true, &mut caps));
        let r = RewriteTemplate::parse("/{user}-{cart}/{rest}", &t).unwrap();
        let mut out = String::new();
        r.expand(p, &caps, &mut out);
        assert_eq!(out, "/abc@x.com-F1/entries/2");
        let t = MatchTemplate::parse("/v1/{name=projects/*/books/*}").unwrap();
        let p = "/v1/projects/p1/books/b2";
        assert!(t.matches(p, true, &mut caps));
        let r = RewriteTemplate::parse("/books/{name}", &t).unwrap();
        let mut out = String::new();
        r.expand(p, &caps, &mut out);
        assert_eq!(out, "/books/projects/p1/books/b2");
    }

    #[test]
    fn errors() {
        let t = MatchTemplate::parse("/f/{file}.txt").unwrap();
        let mut caps = [(0, 0); 5];
        assert!(t.matches("/f/notes.txt", true, &mut caps));
        assert_eq!(caps[0], (3, 8));
        assert!(MatchTemplate::parse("/a{b").is_err());
        assert!(MatchTemplate::parse("/x**").is_err());
        let e = MatchTemplate::parse("/{a}/{b}/{c}/{d}/{e}/{f}").unwrap_err();
        assert!(e.contains("Exceeded variable count limit (5)"));
        assert!(MatchTemplate::parse("/**/a").is_ok());
        assert!(MatchTemplate::parse("/**/*").is_err());
        assert!(MatchTemplate::parse("rel").is_err());
        // Envoy's parser: an operator starts its segment, text after one
        // ends the template, and a variable name has at most 16 characters.
        for (bad, why) in [
            ("/img-{id}.png", "no text may come before"),
            ("/a/x*", "no text may come before"),
            ("/a/v{v=**}", "no text may come before"),
            ("/{v}.x/y", "must end the template"),
            ("/*.x/", "must end the template"),
            ("/a/{abcdefghijklmnopq}", "longer than 16"),
        ] {
            let e = MatchTemplate::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert!(MatchTemplate::parse("/a/{abcdefghijklmnop}").is_ok());
        assert!(MatchTemplate::parse("/a/{v}.x").is_ok());
        let t = MatchTemplate::parse("/rest/{one}/{two}").unwrap();
        let e = RewriteTemplate::parse("/rest/{one}/{two}/{missing}", &t).unwrap_err();
        assert!(e.contains("mismatch between variables"));
    }
}
