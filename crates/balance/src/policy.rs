//! Request hash policies: how a request becomes a 64-bit hash, as Envoy
//! computes it.
use crate::endpoint::write_ip;
use crate::hash::xxh64;
use smallvec::SmallVec;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// What a hash policy may read from a request. Implement it over your
/// transport's request type; every method but headers has a default.
///
/// ```
/// use rauta_balance::HashInput;
///
/// struct Req<'a> {
///     headers: &'a [(&'a str, &'a str)],
/// }
///
/// impl HashInput for Req<'_> {
///     fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
///         for (n, v) in self.headers {
///             if n.eq_ignore_ascii_case(name) {
///                 f(v.as_bytes());
///             }
///         }
///     }
/// }
/// ```
pub trait HashInput {
    /// Calls `f` with every value of header `name` (given in lowercase;
    /// match case-insensitively), one call per header line, in order.
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8]));

    /// The query string: what follows `?` in the request target, without
    /// the `?`. Default: none.
    fn query(&self) -> Option<&str> {
        None
    }

    /// The downstream (client) address. Default: none.
    fn remote_address(&self) -> Option<SocketAddr> {
        None
    }

    /// The local address the request arrived on. Default: none.
    fn local_address(&self) -> Option<SocketAddr> {
        None
    }
}

#[derive(Debug, Clone)]
enum Rule {
    Header(Box<str>),
    Cookie { name: Box<str>, mint: bool },
    SourceIp,
    QueryParameter(Box<str>),
}

/// A list of hash rules combined as Envoy combines them: each rule that
/// yields a hash folds it in as `h = rotl(h, 1) XOR new` (the first as
/// `0 XOR new`); a *terminal* rule that yielded a hash stops the walk. No
/// rule yielding anything gives `None` (balancers then pick at random).
///
/// - header: all values of the header, sorted bytewise, hashed by xxHash64
///   seed chaining (one value: `xxh64(v, 0)`);
/// - cookie: `xxh64(value)`; with minting, an absent cookie hashes the value
///   [`HashPolicy::mint_cookie_value`] gives (which the caller should set);
/// - source IP: `xxh64` of the client IP text without port;
/// - query parameter: `xxh64` of the first value of the parameter.
///
/// Hashing allocates nothing (up to 8 values of one header are sorted on
/// the stack).
///
/// ```
/// use rauta_balance::{HashInput, HashPolicy};
/// use rauta_balance::hash::{xxh64, xxh64_chain};
///
/// struct Req(Vec<(&'static str, &'static str)>);
/// impl HashInput for Req {
///     fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
///         self.0.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).for_each(|(_, v)| f(v.as_bytes()));
///     }
/// }
///
/// let req = Req(vec![("x-user", "bob"), ("x-tag", "b"), ("x-tag", "a")]);
/// let p = HashPolicy::builder().header("x-user").build();
/// assert_eq!(p.hash(&req), Some(xxh64(b"bob", 0)));
/// // Several values are sorted, then seed-chained.
/// let p = HashPolicy::builder().header("x-tag").build();
/// assert_eq!(p.hash(&req), Some(xxh64_chain(["a", "b"], 0)));
/// // Two rules: rotate-xor.
/// let p = HashPolicy::builder().header("x-user").header("x-tag").build();
/// assert_eq!(p.hash(&req), Some(xxh64(b"bob", 0).rotate_left(1) ^ xxh64_chain(["a", "b"], 0)));
/// // Nothing matched.
/// assert_eq!(HashPolicy::builder().header("x-none").build().hash(&req), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct HashPolicy {
    rules: Box<[(Rule, bool)]>,
}

/// Builds a [`HashPolicy`] rule by rule, in order.
#[derive(Debug, Clone, Default)]
pub struct HashPolicyBuilder {
    rules: Vec<(Rule, bool)>,
}

impl HashPolicyBuilder {
    /// Hashes the values of header `name` (case-insensitive).
    pub fn header(mut self, name: &str) -> Self {
        self.rules
            .push((Rule::Header(name.to_ascii_lowercase().into()), false));
        self
    }

    /// Hashes the value of cookie `name`.
    pub fn cookie(mut self, name: &str) -> Self {
        self.rules.push((
            Rule::Cookie {
                name: name.into(),
                mint: false,
            },
            false,
        ));
        self
    }

    /// Hashes the value of cookie `name`, or when it is absent the value
    /// Envoy would mint from the connection addresses (Envoy's cookie with
    /// a `ttl`); the caller sets the cookie with
    /// [`HashPolicy::mint_cookie_value`].
    pub fn cookie_or_mint(mut self, name: &str) -> Self {
        self.rules.push((
            Rule::Cookie {
                name: name.into(),
                mint: true,
            },
            false,
        ));
        self
    }

    /// Hashes the client IP address.
    pub fn source_ip(mut self) -> Self {
        self.rules.push((Rule::SourceIp, false));
        self
    }

    /// Hashes the first value of query parameter `name`.
    pub fn query_parameter(mut self, name: &str) -> Self {
        self.rules.push((Rule::QueryParameter(name.into()), false));
        self
    }

    /// Makes the last rule terminal: if it yields a hash, later rules are skipped.
    pub fn terminal(mut self) -> Self {
        if let Some(last) = self.rules.last_mut() {
            last.1 = true;
        }
        self
    }

    /// Finishes the policy.
    pub fn build(self) -> HashPolicy {
        HashPolicy {
            rules: self.rules.into_boxed_slice(),
        }
    }
}

impl HashPolicy {
    /// A builder.
    pub fn builder() -> HashPolicyBuilder {
        HashPolicyBuilder::default()
    }

    /// The request hash, or `None` when no rule yields one.
    pub fn hash<I: HashInput + ?Sized>(&self, input: &I) -> Option<u64> {
        let mut hash: Option<u64> = None;
        for (rule, terminal) in self.rules.iter() {
            if let Some(new) = eval(rule, input) {
                hash = Some(hash.map_or(0, |h| h.rotate_left(1)) ^ new);
            }
            if *terminal && hash.is_some() {
                break;
            }
        }
        hash
    }

    /// The cookie value Envoy mints for a client without the cookie:
    /// 16 lowercase hex digits of `xxh64(remote + local)`, the addresses
    /// printed as `ip:port`.
    ///
    /// ```
    /// use rauta_balance::HashPolicy;
    /// let v = HashPolicy::mint_cookie_value("10.0.0.1:5000".parse()?, "10.0.0.2:80".parse()?);
    /// assert_eq!(v.len(), 16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mint_cookie_value(remote: SocketAddr, local: SocketAddr) -> String {
        let mut hex = [0u8; 16];
        mint(remote, local, &mut hex);
        String::from_utf8_lossy(&hex).into_owned()
    }
}

fn mint(remote: SocketAddr, local: SocketAddr, out: &mut [u8; 16]) {
    let mut buf = StackBuf::new();
    let _ = write_addr(&mut buf, remote);
    let _ = write_addr(&mut buf, local);
    let h = xxh64(buf.as_bytes(), 0);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, o) in out.iter_mut().enumerate() {
        *o = HEX[((h >> (60 - 4 * i)) & 0xf) as usize];
    }
}

fn write_addr(w: &mut StackBuf, a: SocketAddr) -> fmt::Result {
    use fmt::Write;
    match a.ip() {
        IpAddr::V4(ip) => write!(w, "{ip}:{}", a.port()),
        IpAddr::V6(_) => {
            w.write_char('[')?;
            write_ip(w, a.ip())?;
            write!(w, "]:{}", a.port())
        }
    }
}

fn eval<I: HashInput + ?Sized>(rule: &Rule, input: &I) -> Option<u64> {
    match rule {
        Rule::Header(name) => {
            let mut values: SmallVec<[&[u8]; 8]> = SmallVec::new();
            input.for_each_header(name, &mut |v| values.push(v));
            if values.is_empty() {
                return None;
            }
            values.sort_unstable();
            Some(values.iter().fold(0, |h, v| xxh64(v, h)))
        }
        Rule::Cookie { name, mint: m } => {
            let mut found: Option<&[u8]> = None;
            input.for_each_header("cookie", &mut |v| {
                if found.is_none() {
                    found = find_cookie(v, name.as_bytes());
                }
            });
            // An empty value counts as absent, as in Envoy.
            match found.filter(|v| !v.is_empty()) {
                Some(v) => Some(xxh64(v, 0)),
                None if *m => {
                    let (r, l) = (input.remote_address()?, input.local_address()?);
                    let mut hex = [0u8; 16];
                    mint(r, l, &mut hex);
                    Some(xxh64(&hex, 0))
                }
                None => None,
            }
        }
        Rule::SourceIp => {
            let ip = input.remote_address()?.ip();
            let mut buf = StackBuf::new();
            write_ip(&mut buf, ip).ok()?;
            Some(xxh64(buf.as_bytes(), 0))
        }
        Rule::QueryParameter(name) => {
            // Envoy splits the query on '&' and each parameter at its first
            // '=', without percent-decoding.
            input.query()?.split('&').find_map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k == &**name).then(|| xxh64(v.as_bytes(), 0))
            })
        }
    }
}

/// The value of cookie `name` in one `Cookie` header value, with
/// surrounding double quotes removed (as Envoy parses it).
fn find_cookie<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let start = pair.iter().position(|&b| b != b' ')?;
        let pair = &pair[start..];
        let eq = pair.iter().position(|&b| b == b'=')?;
        if &pair[..eq] != name {
            return None;
        }
        let mut v = &pair[eq + 1..];
        if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
            v = &v[1..v.len() - 1];
        }
        Some(v)
    })
}

/// A fixed stack buffer for address text (at most two bracketed IPv6
/// addresses with ports: well under 128 bytes).
struct StackBuf {
    buf: [u8; 128],
    len: usize,
}

impl StackBuf {
    fn new() -> Self {
        StackBuf {
            buf: [0; 128],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl fmt::Write for StackBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// [`HashInput`] over an [`http::Request`] and the connection's addresses
/// (feature `http`).
///
/// ```
/// use rauta_balance::{HashPolicy, HttpInput};
/// use rauta_balance::hash::xxh64;
///
/// let req = http::Request::get("/items?user=42").header("x-user", "bob").body(())?;
/// let input = HttpInput::new(&req).remote_address("10.1.2.3:4444".parse()?);
/// let p = HashPolicy::builder().query_parameter("user").build();
/// assert_eq!(p.hash(&input), Some(xxh64(b"42", 0)));
/// let p = HashPolicy::builder().source_ip().build();
/// assert_eq!(p.hash(&input), Some(xxh64(b"10.1.2.3", 0)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "http")]
#[derive(Debug, Clone, Copy)]
pub struct HttpInput<'r, B> {
    request: &'r http::Request<B>,
    remote: Option<SocketAddr>,
    local: Option<SocketAddr>,
}

#[cfg(feature = "http")]
impl<'r, B> HttpInput<'r, B> {
    /// Wraps `request`, without addresses.
    pub fn new(request: &'r http::Request<B>) -> Self {
        HttpInput {
            request,
            remote: None,
            local: None,
        }
    }

    /// Sets the client address (source IP and cookie minting).
    pub fn remote_address(self, addr: SocketAddr) -> Self {
        HttpInput {
            remote: Some(addr),
            ..self
        }
    }

    /// Sets the local address (cookie minting).
    pub fn local_address(self, addr: SocketAddr) -> Self {
        HttpInput {
            local: Some(addr),
            ..self
        }
    }
}

#[cfg(feature = "http")]
impl<B> HashInput for HttpInput<'_, B> {
    fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
        for v in self.request.headers().get_all(name) {
            f(v.as_bytes());
        }
    }

    fn query(&self) -> Option<&str> {
        self.request.uri().query()
    }

    fn remote_address(&self) -> Option<SocketAddr> {
        self.remote
    }

    fn local_address(&self) -> Option<SocketAddr> {
        self.local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Req {
        headers: Vec<(&'static str, &'static str)>,
        query: Option<&'static str>,
        remote: Option<SocketAddr>,
        local: Option<SocketAddr>,
    }

    impl HashInput for Req {
        fn for_each_header<'a>(&'a self, name: &str, f: &mut dyn FnMut(&'a [u8])) {
            for (n, v) in &self.headers {
                if n.eq_ignore_ascii_case(name) {
                    f(v.as_bytes());
                }
            }
        }
        fn query(&self) -> Option<&str> {
            self.query
        }
        fn remote_address(&self) -> Option<SocketAddr> {
            self.remote
        }
        fn local_address(&self) -> Option<SocketAddr> {
            self.local
        }
    }

    #[test]
    fn cookie_rules() {
        let req = Req {
            headers: vec![
                ("cookie", "a=1; session=\"abc\""),
                ("Cookie", "session=zzz"),
            ],
            ..Req::default()
        };
        let p = HashPolicy::builder().cookie("session").build();
        assert_eq!(p.hash(&req), Some(xxh64(b"abc", 0)));
        assert_eq!(
            HashPolicy::builder().cookie("nope").build().hash(&req),
            None
        );
        let empty = Req {
            headers: vec![("cookie", "session=; other=1")],
            ..Req::default()
        };
        assert_eq!(p.hash(&empty), None);
        let req = Req {
            remote: Some("10.0.0.1:5000".parse().unwrap()),
            local: Some("10.0.0.2:80".parse().unwrap()),
            ..Req::default()
        };
        let minted = xxh64(b"10.0.0.1:500010.0.0.2:80", 0);
        let v = HashPolicy::mint_cookie_value(req.remote.unwrap(), req.local.unwrap());
        assert_eq!(v, format!("{minted:016x}"));
        let p = HashPolicy::builder().cookie_or_mint("session").build();
        assert_eq!(p.hash(&req), Some(xxh64(v.as_bytes(), 0)));
    }

    #[test]
    fn source_ip_and_query() {
        let req = Req {
            remote: Some("[2001:db8::1]:443".parse().unwrap()),
            query: Some("a=1&id=42&id=7"),
            ..Req::default()
        };
        let p = HashPolicy::builder().source_ip().build();
        assert_eq!(p.hash(&req), Some(xxh64(b"2001:db8::1", 0)));
        let p = HashPolicy::builder().query_parameter("id").build();
        assert_eq!(p.hash(&req), Some(xxh64(b"42", 0)));
        let p = HashPolicy::builder().query_parameter("flag").build();
        assert_eq!(
            p.hash(&Req {
                query: Some("flag"),
                ..Req::default()
            }),
            Some(xxh64(b"", 0))
        );
    }

    #[test]
    fn terminal_and_rotate_xor() {
        let req = Req {
            headers: vec![("x-a", "1"), ("x-b", "2")],
            ..Req::default()
        };
        let (a, b) = (xxh64(b"1", 0), xxh64(b"2", 0));
        let p = HashPolicy::builder()
            .header("x-a")
            .terminal()
            .header("x-b")
            .build();
        assert_eq!(p.hash(&req), Some(a));
        let p = HashPolicy::builder()
            .header("x-none")
            .terminal()
            .header("x-b")
            .build();
        assert_eq!(p.hash(&req), Some(b));
        // Duplicate rules do not cancel out.
        let p = HashPolicy::builder().header("x-a").header("x-a").build();
        assert_eq!(p.hash(&req), Some(a.rotate_left(1) ^ a));
        assert_ne!(p.hash(&req), Some(0));
    }
}
