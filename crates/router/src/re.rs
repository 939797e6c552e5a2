//! Regular expressions with Envoy's (RE2's) semantics on the `regex` crate:
//! full-match anchoring, ASCII Perl classes, bounded program size, and error
//! messages in RE2's words.

use regex::bytes::{Regex, RegexBuilder};

use crate::local::Matcher;

/// Compiled-size and pattern-length bounds for one regex.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegexLimits {
    pub(crate) max_pattern_bytes: usize,
    pub(crate) max_compiled_bytes: usize,
}

/// Compiles `pattern` so that `is_match` is a full match (RE2::FullMatch),
/// for the match path (no lock on any thread: [`Matcher`]).
pub(crate) fn full_match(pattern: &str, limits: RegexLimits) -> Result<Matcher, String> {
    check(pattern, limits)?;
    build(&format!("^(?:{})$", re2_flavour(pattern)?), limits).map(Matcher::new)
}

/// Compiles `pattern` to be searched anywhere (rewrites).
pub(crate) fn search(pattern: &str, limits: RegexLimits) -> Result<Regex, String> {
    check(pattern, limits)?;
    build(&re2_flavour(pattern)?, limits)
}

/// RE2's Perl classes and word boundaries are ASCII while its `.`, `\pL` and
/// case folding are Unicode. The regex crate's are all Unicode when Unicode is
/// on, so the ASCII ones are spelled out before compiling.
fn re2_flavour(pattern: &str) -> Result<String, String> {
    use regex_syntax::ast::{self, visit, Ast, ClassPerlKind, ClassSetItem, Visitor};

    struct Spans(Vec<(usize, usize, &'static str)>);

    fn perl(p: &ast::ClassPerl) -> &'static str {
        match (&p.kind, p.negated) {
            (ClassPerlKind::Digit, false) => "[0-9]",
            (ClassPerlKind::Digit, true) => "[^0-9]",
            (ClassPerlKind::Space, false) => "[\\t\\n\\x0C\\r ]",
            (ClassPerlKind::Space, true) => "[^\\t\\n\\x0C\\r ]",
            (ClassPerlKind::Word, false) => "[0-9A-Za-z_]",
            (ClassPerlKind::Word, true) => "[^0-9A-Za-z_]",
        }
    }

    impl Visitor for Spans {
        type Output = Vec<(usize, usize, &'static str)>;
        type Err = ();
        fn finish(self) -> Result<Self::Output, ()> {
            Ok(self.0)
        }
        fn visit_pre(&mut self, ast: &Ast) -> Result<(), ()> {
            match ast {
                Ast::ClassPerl(p) => self
                    .0
                    .push((p.span.start.offset, p.span.end.offset, perl(p))),
                Ast::Assertion(a) => {
                    let to = match a.kind {
                        ast::AssertionKind::WordBoundary => "(?-u:\\b)",
                        ast::AssertionKind::NotWordBoundary => "(?-u:\\B)",
                        _ => return Ok(()),
                    };
                    self.0.push((a.span.start.offset, a.span.end.offset, to));
                }
                _ => {}
            }
            Ok(())
        }
        fn visit_class_set_item_pre(&mut self, item: &ClassSetItem) -> Result<(), ()> {
            if let ClassSetItem::Perl(p) = item {
                self.0
                    .push((p.span.start.offset, p.span.end.offset, perl(p)));
            }
            Ok(())
        }
    }

    let ast = ast::parse::Parser::new()
        .parse(pattern)
        .map_err(|e| format!("invalid regex {pattern:?}: {}", re2_words(e.kind())))?;
    let mut spans = visit(&ast, Spans(Vec::new())).unwrap_or_default();
    spans.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut out = pattern.to_string();
    for (start, end, with) in spans {
        if out.is_char_boundary(start) && out.is_char_boundary(end) && start <= end {
            out.replace_range(start..end, with);
        }
    }
    Ok(out)
}

fn check(pattern: &str, limits: RegexLimits) -> Result<(), String> {
    if pattern.len() > limits.max_pattern_bytes {
        return Err(format!(
            "pattern is {} bytes; the limit is {} (limits.max_regex_pattern_bytes)",
            pattern.len(),
            limits.max_pattern_bytes
        ));
    }
    // Parse alone first so that errors are reported against the user's text
    // and in RE2's words.
    if let Err(e) = regex_syntax::ast::parse::Parser::new().parse(pattern) {
        return Err(format!(
            "invalid regex {pattern:?}: {}",
            re2_words(e.kind())
        ));
    }
    Ok(())
}

fn build(pattern: &str, limits: RegexLimits) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        // Unicode as RE2 has it (`.` is a code point, `\pL` works); the
        // ASCII-only Perl classes were spelled out by `re2_flavour`.
        .unicode(true)
        .size_limit(limits.max_compiled_bytes)
        .dfa_size_limit(2 * (1 << 20))
        .nest_limit(100)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(n) => {
                format!("compiled regex exceeds {n} bytes (limits.max_regex_compiled_bytes)")
            }
            other => format!("invalid regex: {}", first_line(&other.to_string())),
        })
}

fn first_line(s: &str) -> String {
    // The regex crate prints a caret diagram; keep its last line (the reason).
    s.lines()
        .rev()
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_owned())
        .unwrap_or_else(|| s.trim().to_owned())
}

/// RE2's error text for a parse error, with the regex crate's text after it.
fn re2_words(kind: &regex_syntax::ast::ErrorKind) -> String {
    use regex_syntax::ast::ErrorKind as K;
    let re2 = match kind {
        K::RepetitionMissing => "no argument for repetition operator",
        K::RepetitionCountInvalid => "invalid repetition size",
        K::RepetitionCountUnclosed | K::RepetitionCountDecimalEmpty => "bad repetition operator",
        K::GroupUnclosed => "missing )",
        K::GroupUnopened => "unexpected )",
        K::ClassUnclosed => "missing ]",
        K::ClassRangeInvalid | K::ClassRangeLiteral => "invalid character class range",
        K::ClassEscapeInvalid => "invalid character class",
        K::EscapeUnexpectedEof => "trailing \\",
        K::EscapeUnrecognized
        | K::EscapeHexEmpty
        | K::EscapeHexInvalid
        | K::EscapeHexInvalidDigit => "invalid escape sequence",
        K::UnsupportedBackreference => "invalid escape sequence",
        K::UnsupportedLookAround => "invalid perl operator",
        K::GroupNameDuplicate { .. } => "duplicate capture group name",
        K::GroupNameEmpty | K::GroupNameInvalid | K::GroupNameUnexpectedEof => {
            "invalid named capture group"
        }
        K::FlagDanglingNegation
        | K::FlagDuplicate { .. }
        | K::FlagRepeatedNegation { .. }
        | K::FlagUnexpectedEof
        | K::FlagUnrecognized => "invalid perl operator",
        K::NestLimitExceeded(_) => "expression nests too deeply",
        _ => "invalid regex",
    };
    format!("{re2} ({kind})")
}

/// Turns an RE2 substitution (`\1`..`\9`, `\\`) into the regex crate's
/// replacement syntax (`${1}`, `$$`).
pub(crate) fn substitution(re2: &str) -> Result<String, String> {
    let mut out = String::with_capacity(re2.len() + 8);
    let mut chars = re2.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(d @ '0'..='9') => {
                    out.push_str("${");
                    out.push(d);
                    out.push('}');
                }
                Some('\\') => out.push('\\'),
                Some(other) => {
                    return Err(format!(
                        "invalid rewrite substitution {re2:?}: '\\{other}' is not \\0..\\9 or \\\\"
                    ))
                }
                None => {
                    return Err(format!(
                        "invalid rewrite substitution {re2:?}: trailing '\\'"
                    ))
                }
            },
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Checks that every `\N` in an RE2 substitution names an existing group.
pub(crate) fn check_groups(re: &Regex, re2_sub: &str) -> Result<(), String> {
    let groups = re.captures_len() - 1;
    let bytes = re2_sub.as_bytes();
    let mut i = 0;
    while i + 1 < bytes.len() {
        if bytes[i] == b'\\' {
            let d = bytes[i + 1];
            if d.is_ascii_digit() && usize::from(d - b'0') > groups {
                return Err(format!(
                    "substitution {re2_sub:?} refers to group \\{} but the pattern has {groups}",
                    d as char
                ));
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: RegexLimits = RegexLimits {
        max_pattern_bytes: 1024,
        max_compiled_bytes: 256 * 1024,
    };

    #[test]
    fn full_match_is_anchored() {
        let re = full_match("/t[io]c", L).unwrap();
        assert!(re.is_match(b"/tic"));
        assert!(!re.is_match(b"/tick"));
        assert!(!re.is_match(b"/tic/toc"));
        let alt = full_match("a|b", L).unwrap();
        assert!(!alt.is_match(b"ab"));
    }

    #[test]
    fn perl_classes_are_ascii() {
        let re = full_match(r"\d+", L).unwrap();
        assert!(re.is_match(b"123"));
        assert!(!re.is_match("١٢٣".as_bytes()));
    }

    #[test]
    fn unicode_as_re2_has_it() {
        let re = full_match(r"\pL+", L).unwrap();
        assert!(re.is_match("héllo".as_bytes()));
        let re = full_match(r"/.", L).unwrap();
        assert!(re.is_match("/é".as_bytes()));
        let re = full_match(r"[\d\s]+\b", L).unwrap();
        assert!(re.is_match(b"1 2"));
        assert!(!re.is_match("١".as_bytes()));
        let re = full_match(r"\w+", L).unwrap();
        assert!(!re.is_match("é".as_bytes()));
        let re = full_match(r"[^\W]x", L).unwrap();
        assert!(re.is_match(b"ax"));
    }

    #[test]
    fn errors_use_re2_words() {
        let e = full_match("/(+invalid)", L).unwrap_err();
        assert!(e.contains("no argument for repetition operator"), "{e}");
        let e = full_match("(a", L).unwrap_err();
        assert!(e.contains("missing )"), "{e}");
    }

    #[test]
    fn limits_are_enforced() {
        let long = "a".repeat(1025);
        assert!(full_match(&long, L).unwrap_err().contains("1025 bytes"));
        let big = RegexLimits {
            max_pattern_bytes: 1024,
            max_compiled_bytes: 1024,
        };
        assert!(full_match(r"[a-z]{100}", big).is_err());
    }

    #[test]
    fn substitution_syntax() {
        assert_eq!(substitution(r"/\1_x\2").unwrap(), "/${1}_x${2}");
        assert_eq!(substitution("$a").unwrap(), "$$a");
        assert!(substitution(r"\q").is_err());
    }
}
