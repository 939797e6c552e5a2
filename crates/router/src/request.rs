//! The transport-agnostic view of a request that the route table reads.
//!
//! The table never takes a request by value and never copies it: it asks a
//! [`RequestView`] for borrowed pieces. Implementations are provided for
//! [`http::Request<B>`](http::Request) (any body type), [`http::request::Parts`]
//! and [`Request`], a plain owned request for tools and tests.

use smallvec::SmallVec;

/// The values of one header, in arrival order. Two values fit inline.
pub type HeaderValues<'a> = SmallVec<[&'a [u8]; 2]>;

/// What the router needs to know about a request.
pub trait RequestView {
    /// The method (`GET`, `CONNECT`, ...).
    fn method(&self) -> &str;

    /// The scheme (`http`, `https`), Envoy's `x-forwarded-proto`. `None`
    /// when unknown: Envoy then routes nothing.
    fn scheme(&self) -> Option<&str>;

    /// The authority (`:authority` or `Host`), as received.
    fn authority(&self) -> Option<&str>;

    /// The request target's path and query (`:path`), as received. `None`
    /// when absent (CONNECT).
    fn path_and_query(&self) -> Option<&str>;

    /// Appends every value of the header `name` (lower-case, never a
    /// pseudo-header) to `out`.
    fn header_values<'a>(&'a self, name: &str, out: &mut HeaderValues<'a>);

    /// Calls `f` with every value of the header `name` (lower-case, never
    /// a pseudo-header), in arrival order. The router reads headers
    /// through this method.
    ///
    /// The provided version collects through [`Self::header_values`],
    /// which allocates for a header with more than two values. Override it
    /// to visit the values in place, as the implementations here do: then
    /// matching a header allocates nothing however often it repeats.
    fn for_each_header_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        let mut out = HeaderValues::new();
        self.header_values(name, &mut out);
        for v in out {
            f(v);
        }
    }
}

impl<T: RequestView + ?Sized> RequestView for &T {
    fn method(&self) -> &str {
        (**self).method()
    }
    fn scheme(&self) -> Option<&str> {
        (**self).scheme()
    }
    fn authority(&self) -> Option<&str> {
        (**self).authority()
    }
    fn path_and_query(&self) -> Option<&str> {
        (**self).path_and_query()
    }
    fn header_values<'a>(&'a self, name: &str, out: &mut HeaderValues<'a>) {
        (**self).header_values(name, out)
    }
    fn for_each_header_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        (**self).for_each_header_value(name, f)
    }
}

pub(crate) fn parts_scheme<'a>(
    uri: &'a http::Uri,
    headers: &'a http::HeaderMap,
) -> Option<&'a str> {
    if let Some(s) = uri.scheme_str() {
        return Some(s);
    }
    match headers.get("x-forwarded-proto").map(|v| v.to_str()) {
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => None,
        None => Some("http"),
    }
}

fn parts_authority<'a>(uri: &'a http::Uri, headers: &'a http::HeaderMap) -> Option<&'a str> {
    if let Some(a) = uri.authority() {
        return Some(a.as_str());
    }
    headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
}

fn parts_path<'a>(method: &http::Method, uri: &'a http::Uri) -> Option<&'a str> {
    if method == http::Method::CONNECT && uri.path_and_query().is_none() {
        return None;
    }
    Some(uri.path_and_query().map_or("/", |pq| pq.as_str()))
}

fn parts_headers<'a>(headers: &'a http::HeaderMap, name: &str, f: &mut dyn FnMut(&'a [u8])) {
    for v in headers.get_all(name) {
        f(v.as_bytes());
    }
}

/// The scheme is the URI's, else `x-forwarded-proto`, else `http`. The
/// authority is the URI's (absolute form), else `Host`.
impl<B> RequestView for http::Request<B> {
    fn method(&self) -> &str {
        self.method().as_str()
    }
    fn scheme(&self) -> Option<&str> {
        parts_scheme(self.uri(), self.headers())
    }
    fn authority(&self) -> Option<&str> {
        parts_authority(self.uri(), self.headers())
    }
    fn path_and_query(&self) -> Option<&str> {
        parts_path(self.method(), self.uri())
    }
    fn header_values<'a>(&'a self, name: &str, out: &mut HeaderValues<'a>) {
        parts_headers(self.headers(), name, &mut |v| out.push(v))
    }
    fn for_each_header_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        parts_headers(self.headers(), name, f)
    }
}

/// Same rules as for [`http::Request`].
impl RequestView for http::request::Parts {
    fn method(&self) -> &str {
        self.method.as_str()
    }
    fn scheme(&self) -> Option<&str> {
        parts_scheme(&self.uri, &self.headers)
    }
    fn authority(&self) -> Option<&str> {
        parts_authority(&self.uri, &self.headers)
    }
    fn path_and_query(&self) -> Option<&str> {
        parts_path(&self.method, &self.uri)
    }
    fn header_values<'a>(&'a self, name: &str, out: &mut HeaderValues<'a>) {
        parts_headers(&self.headers, name, &mut |v| out.push(v))
    }
    fn for_each_header_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        parts_headers(&self.headers, name, f)
    }
}

/// A plain owned request, for tools, tests and transports without `http`
/// types.
///
/// ```
/// use rauta_router::Request;
///
/// let req = Request::get("api.example.com", "/users?id=7").header("x-user", "42");
/// assert_eq!(req.path.as_deref(), Some("/users?id=7"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Scheme; `None` when unknown.
    pub scheme: Option<String>,
    /// Authority; `None` when absent.
    pub authority: Option<String>,
    /// Path and query; `None` when absent.
    pub path: Option<String>,
    /// Headers in arrival order; names are matched case-insensitively.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// A request with the given method, `http` scheme, authority and path.
    pub fn new(
        method: impl Into<String>,
        authority: impl Into<String>,
        path: impl Into<String>,
    ) -> Self {
        Request {
            method: method.into(),
            scheme: Some("http".into()),
            authority: Some(authority.into()),
            path: Some(path.into()),
            headers: Vec::new(),
        }
    }

    /// A GET request.
    pub fn get(authority: impl Into<String>, path: impl Into<String>) -> Self {
        Request::new("GET", authority, path)
    }

    /// Adds a header line.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the scheme.
    pub fn scheme(mut self, scheme: impl Into<String>) -> Self {
        self.scheme = Some(scheme.into());
        self
    }
}

impl RequestView for Request {
    fn method(&self) -> &str {
        &self.method
    }
    fn scheme(&self) -> Option<&str> {
        self.scheme.as_deref()
    }
    fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }
    fn path_and_query(&self) -> Option<&str> {
        self.path.as_deref()
    }
    fn header_values<'a>(&'a self, name: &str, out: &mut HeaderValues<'a>) {
        self.for_each_header_value(name, &mut |v| out.push(v))
    }
    fn for_each_header_value<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        for (n, v) in &self.headers {
            if n.eq_ignore_ascii_case(name) {
                f(v.as_bytes());
            }
        }
    }
}

/// Calls `f` with the values of `name` (lower-case), pseudo-headers
/// included, from a view; `path` stands for `:path`.
pub(crate) fn for_each_value_of<'a, R: RequestView + ?Sized>(
    req: &'a R,
    name: &str,
    path: Option<&'a str>,
    f: &mut dyn FnMut(&'a [u8]),
) {
    let one = match name {
        ":authority" | "host" => req.authority(),
        ":path" => path,
        ":method" => Some(req.method()),
        ":scheme" => req.scheme(),
        _ if name.starts_with(':') => None,
        _ => return req.for_each_header_value(name, f),
    };
    if let Some(v) = one {
        f(v.as_bytes());
    }
}

/// The first value of the header `name` (lower-case, not a pseudo-header)
/// and how many values it has.
pub(crate) fn first_header_value<'a, R: RequestView + ?Sized>(
    req: &'a R,
    name: &str,
) -> (Option<&'a [u8]>, usize) {
    let mut first = None;
    let mut count = 0;
    req.for_each_header_value(name, &mut |v| {
        if count == 0 {
            first = Some(v);
        }
        count += 1;
    });
    (first, count)
}

/// Joins several values in `buf` (heap only past 256 bytes, or never once
/// a reused buffer has grown).
pub(crate) type Joined = SmallVec<[u8; 256]>;

/// The value a header matcher tests: the only value as it is, or all the
/// values joined in arrival order, with `; ` for `cookie` (how Envoy
/// rebuilds a cookie split over several fields) and `,` for any other
/// name (CVE-2020-25017). `None` when the header is absent.
pub(crate) fn joined_value_of<'b, R: RequestView + ?Sized>(
    req: &'b R,
    name: &str,
    path: Option<&'b str>,
    buf: &'b mut Joined,
) -> Option<&'b [u8]> {
    let separator: &[u8] = if name == "cookie" { b"; " } else { b"," };
    let mut first: Option<&'b [u8]> = None;
    let mut joined = false;
    buf.clear();
    for_each_value_of(req, name, path, &mut |v| match first {
        None => first = Some(v),
        Some(one) => {
            if !joined {
                buf.extend_from_slice(one);
                joined = true;
            }
            buf.extend_from_slice(separator);
            buf.extend_from_slice(v);
        }
    });
    if joined {
        Some(buf.as_slice())
    } else {
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_values_are_what_join_header_values_gives() {
        let pool = ["", "a=1", "b", "user", " admin ", "x,y", "s=1; t=2"];
        for name in ["cookie", "x-role"] {
            // Every list of up to three values from the pool.
            for n in 0..=3u32 {
                for pick in 0..pool.len().pow(n) {
                    let mut p = pick;
                    let values: Vec<&str> = (0..n)
                        .map(|_| {
                            let v = pool[p % pool.len()];
                            p /= pool.len();
                            v
                        })
                        .collect();
                    let mut req = Request::get("h", "/");
                    // Names in any case, with other headers between.
                    for (i, v) in values.iter().enumerate() {
                        let shown = if i % 2 == 0 {
                            name.to_owned()
                        } else {
                            name.to_ascii_uppercase()
                        };
                        req = req.header(shown, *v).header("x-other", "z");
                    }
                    let mut buf = Joined::new();
                    let got = joined_value_of(&req, name, None, &mut buf);
                    let want = crate::authority::join_header_values(name, &values);
                    match n {
                        0 => assert_eq!(got, None),
                        _ => assert_eq!(got, Some(want.as_bytes()), "{name} {values:?}"),
                    }
                }
            }
        }
        // Pseudo-headers have one value, from the request line.
        let req = Request::get("h.example", "/p?q");
        let mut buf = Joined::new();
        assert_eq!(
            joined_value_of(&req, ":authority", Some("/p?q"), &mut buf),
            Some(&b"h.example"[..])
        );
        assert_eq!(
            joined_value_of(&req, ":path", Some("/n"), &mut buf),
            Some(&b"/n"[..])
        );
        assert_eq!(
            joined_value_of(&req, ":method", None, &mut buf),
            Some(&b"GET"[..])
        );
        assert_eq!(joined_value_of(&req, ":nope", None, &mut buf), None);
    }

    #[test]
    fn http_request_view() {
        let req = http::Request::builder()
            .uri("/a?b=c")
            .header("host", "example.com")
            .header("x-v", "1")
            .header("x-v", "2")
            .body(())
            .unwrap();
        assert_eq!(RequestView::method(&req), "GET");
        assert_eq!(RequestView::scheme(&req), Some("http"));
        assert_eq!(RequestView::authority(&req), Some("example.com"));
        assert_eq!(req.path_and_query(), Some("/a?b=c"));
        let mut out = HeaderValues::new();
        req.header_values("x-v", &mut out);
        assert_eq!(out.as_slice(), &[b"1".as_slice(), b"2".as_slice()]);
        drop(out);
        let (parts, ()) = req.into_parts();
        assert_eq!(RequestView::authority(&parts), Some("example.com"));
    }

    #[test]
    fn absolute_form_wins() {
        let req = http::Request::builder()
            .uri("https://inner.example/x")
            .header("host", "outer.example")
            .body(())
            .unwrap();
        assert_eq!(RequestView::authority(&req), Some("inner.example"));
        assert_eq!(RequestView::scheme(&req), Some("https"));
    }
}
