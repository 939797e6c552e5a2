//! Compiled header, query-parameter and string conditions.

use crate::local::Matcher;

use crate::request::{first_header_value, joined_value_of, Joined, RequestView};

/// A compiled string test.
#[derive(Debug, Clone)]
pub(crate) enum StringTest {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    Suffix(Box<[u8]>),
    Contains(Box<[u8]>),
    Regex(Matcher),
}

#[derive(Debug, Clone)]
pub(crate) struct StringMatch {
    pub(crate) test: StringTest,
    pub(crate) ignore_case: bool,
}

fn eq(a: &[u8], b: &[u8], ic: bool) -> bool {
    if ic {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

impl StringMatch {
    pub(crate) fn matches(&self, v: &[u8]) -> bool {
        let ic = self.ignore_case;
        match &self.test {
            StringTest::Exact(e) => eq(v, e, ic),
            StringTest::Prefix(p) => v.len() >= p.len() && eq(&v[..p.len()], p, ic),
            StringTest::Suffix(s) => v.len() >= s.len() && eq(&v[v.len() - s.len()..], s, ic),
            StringTest::Contains(c) => c.is_empty() || v.windows(c.len()).any(|w| eq(w, c, ic)),
            StringTest::Regex(r) => r.is_match(v),
        }
    }
}

/// What a header condition tests.
#[derive(Debug, Clone)]
pub(crate) enum HeaderTest {
    /// `present_match: b`, or a name-only matcher (`true`).
    Present(bool),
    /// A value test.
    Value(StringMatch),
    /// The whole value as i64 in `[start, end)`.
    Range(i64, i64),
}

/// A compiled header condition.
#[derive(Debug, Clone)]
pub(crate) struct HeaderCond {
    /// Lower-case name (pseudo-headers keep their ':').
    pub(crate) name: Box<str>,
    pub(crate) test: HeaderTest,
    pub(crate) invert: bool,
    pub(crate) treat_missing_as_empty: bool,
}

fn parse_i64(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v)
        .ok()?
        .trim_matches(|c: char| c.is_ascii_whitespace());
    s.parse().ok()
}

impl HeaderCond {
    /// Evaluates the condition with Envoy's rules for absent headers,
    /// inversion and `treat_missing_header_as_empty`. Several values are
    /// joined in `buf` (see [`joined_value_of`]).
    pub(crate) fn matches<R: RequestView + ?Sized>(
        &self,
        req: &R,
        path: Option<&str>,
        buf: &mut Joined,
        hidden: &[Box<str>],
    ) -> bool {
        let value = if hidden.iter().any(|h| **h == *self.name) {
            None
        } else {
            joined_value_of(req, &self.name, path, buf)
        };
        let value = match value {
            None if self.treat_missing_as_empty => Some(&b""[..]),
            v => v,
        };
        self.eval(value)
    }

    pub(crate) fn eval(&self, value: Option<&[u8]>) -> bool {
        match (&self.test, value) {
            (HeaderTest::Present(want), v) => (v.is_some() == *want) != self.invert,
            (_, None) => false,
            (HeaderTest::Value(m), Some(v)) => m.matches(v) != self.invert,
            (HeaderTest::Range(start, end), Some(v)) => {
                let inside = parse_i64(v).is_some_and(|n| *start <= n && n < *end);
                inside != self.invert
            }
        }
    }
}

/// A compiled query-parameter condition.
#[derive(Debug, Clone)]
pub(crate) struct QueryCond {
    pub(crate) name: Box<str>,
    pub(crate) test: QueryTest,
}

#[derive(Debug, Clone)]
pub(crate) enum QueryTest {
    /// The parameter must be present (name-only matcher or `present_match: true`).
    Present,
    /// `present_match: false`: absent (new behaviour) or present (legacy).
    Absent { legacy: bool },
    /// A value test on the raw value (a valueless parameter tests as "").
    Value(StringMatch),
}

/// The raw value of the first occurrence of `name` in `query` (the text
/// after '?'): `Some("")` for a valueless parameter.
pub(crate) fn first_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    for pair in query.split('&') {
        let (k, v) = match pair.find('=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, ""),
        };
        if k == name {
            return Some(v);
        }
    }
    None
}

/// Envoy's `PercentEncoding::decode`: each `%XY` with two hex digits
/// becomes its byte; everything else (a `+` included) stays as it is.
pub(crate) fn percent_decode(s: &str) -> std::borrow::Cow<'_, [u8]> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return b.into();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        match (
            b[i],
            b.get(i + 1).and_then(|&c| hex(c)),
            b.get(i + 2).and_then(|&c| hex(c)),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out.into()
}

/// The decoded value of the first parameter of `query` whose decoded name
/// is `name` (Envoy's `parseAndDecodeQueryString` then `getFirstValue`).
fn first_param_decoded<'q>(query: &'q str, name: &str) -> Option<std::borrow::Cow<'q, [u8]>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (*percent_decode(k) == *name.as_bytes()).then(|| percent_decode(v))
    })
}

impl QueryCond {
    pub(crate) fn matches(&self, query: Option<&str>) -> bool {
        let value = query.and_then(|q| first_param(q, &self.name));
        self.test(value.map(str::as_bytes))
    }

    /// [`matches`](Self::matches) on the decoded names and values, as
    /// Envoy's rate limit action reads the query.
    pub(crate) fn matches_decoded(&self, query: Option<&str>) -> bool {
        let value = query.and_then(|q| first_param_decoded(q, &self.name));
        self.test(value.as_deref())
    }

    fn test(&self, value: Option<&[u8]>) -> bool {
        match &self.test {
            QueryTest::Present => value.is_some(),
            QueryTest::Absent { legacy: true } => value.is_some(),
            QueryTest::Absent { legacy: false } => value.is_none(),
            QueryTest::Value(m) => value.is_some_and(|v| m.matches(v)),
        }
    }
}

/// Whether a `content-type` value says gRPC, as Envoy's
/// `hasGrpcContentType` decides: `application/grpc`, alone or followed by
/// `+` (`application/grpc+proto`), and not gRPC-Web's
/// `application/grpc-web`. The route `grpc` matcher and
/// [`RouteMatch::timeouts`](crate::RouteMatch::timeouts) use it; a proxy
/// uses it to answer gRPC requests as gRPC.
///
/// ```
/// use rauta_router::is_grpc_content_type;
///
/// assert!(is_grpc_content_type(b"application/grpc"));
/// assert!(is_grpc_content_type(b"application/grpc+proto"));
/// assert!(!is_grpc_content_type(b"application/grpc-web"));
/// assert!(!is_grpc_content_type(b"application/grpc;charset=utf-8"));
/// ```
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    value
        .strip_prefix(b"application/grpc")
        .is_some_and(|rest| matches!(rest.first(), None | Some(b'+')))
}

/// gRPC content type ([`is_grpc_content_type`]) of a request's first
/// `content-type`.
pub(crate) fn is_grpc<R: RequestView + ?Sized>(req: &R, hidden: &[Box<str>]) -> bool {
    !hidden.iter().any(|h| &**h == "content-type")
        && first_header_value(req, "content-type")
            .0
            .is_some_and(is_grpc_content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(test: HeaderTest, invert: bool, tm: bool) -> HeaderCond {
        HeaderCond {
            name: "x".into(),
            test,
            invert,
            treat_missing_as_empty: tm,
        }
    }

    fn table(want: bool, invert: bool, tm: bool) -> (bool, bool) {
        let c = cond(HeaderTest::Present(want), invert, tm);
        let absent = if tm { Some(&b""[..]) } else { None };
        (c.eval(absent), c.eval(Some(b"v")))
    }

    #[test]
    fn presence_truth_table() {
        // SEMANTICS.md section 5, absent / present.
        assert_eq!(table(true, false, false), (false, true));
        assert_eq!(table(true, true, false), (true, false));
        assert_eq!(table(false, false, false), (true, false));
        assert_eq!(table(false, true, false), (false, true));
        assert_eq!(table(true, false, true), (true, true));
        assert_eq!(table(false, false, true), (false, false));
        assert_eq!(table(true, true, true), (false, false));
        assert_eq!(table(false, true, true), (true, true));
    }

    #[test]
    fn percent_decoding_is_envoys() {
        let d = |s: &str| percent_decode(s).into_owned();
        assert_eq!(d("a%20b"), b"a b");
        assert_eq!(d("a+b"), b"a+b");
        assert_eq!(d("%zz%4"), b"%zz%4");
        assert_eq!(d("%41%4a%4A"), b"AJJ");
        assert_eq!(d("%2F%00"), b"/\0");
        assert_eq!(
            first_param_decoded("x=1&us%65r=al%69ce", "user").as_deref(),
            Some(&b"alice"[..])
        );
        assert_eq!(
            first_param_decoded("user", "user").as_deref(),
            Some(&b""[..])
        );
        assert_eq!(first_param_decoded("users=1", "user"), None);
    }

    #[test]
    fn absent_value_test_is_false_even_inverted() {
        let m = StringMatch {
            test: StringTest::Exact(b"x".as_slice().into()),
            ignore_case: false,
        };
        assert!(!cond(HeaderTest::Value(m.clone()), true, false).eval(None));
        assert!(cond(HeaderTest::Value(m), true, true).eval(Some(b"")));
    }

    #[test]
    fn range_parses_whole_value() {
        let c = cond(HeaderTest::Range(1, 10), false, false);
        assert!(c.eval(Some(b"9")));
        assert!(!c.eval(Some(b"10")));
        assert!(!c.eval(Some(b"9.5")));
        assert!(!c.eval(Some(b"-1somestring")));
        assert!(!c.eval(Some(b"1,2")));
    }

    #[test]
    fn query_first_occurrence() {
        assert_eq!(first_param("k=foo&k=bar", "k"), Some("foo"));
        assert_eq!(first_param("debug", "debug"), Some(""));
        assert_eq!(first_param("a=1", "b"), None);
    }
}
