//! Header value formatting: Envoy's `%COMMAND%` substitutions in
//! `request_headers_to_add` and `response_headers_to_add` values.
//!
//! A value is literal text with commands in it: `%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%`,
//! `%REQ(x-request-id)%`, `%START_TIME(%s)%`. `%%` is a literal `%`. The
//! commands a route table can answer from the request and the route
//! (`REQ`, `RESP`, `ROUTE_NAME`, `UPSTREAM_CLUSTER`) need nothing more;
//! those about the connection (addresses, protocol, SNI, start time) read a
//! [`FormatContext`] that the proxy fills in. A command with nothing to say
//! (no such header, no address given) gives the empty string, as in Envoy's
//! header formatter, and a header whose whole value comes out empty is not
//! added unless `keep_empty_value` is set.
//!
//! A command the router does not know, or a malformed one, is a load error,
//! as it is in Envoy ("Not supported field in StreamInfo").

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::request::{first_header_value, RequestView};

/// What a header value's `%COMMAND%`s read besides the request and the
/// route: Envoy's stream info, as far as a proxy built on RAUTA knows it.
/// Everything is optional; a command whose value is absent formats as the
/// empty string.
///
/// ```
/// use rauta_router::FormatContext;
///
/// let peer = "198.18.0.7:50312".parse().unwrap();
/// let ctx = FormatContext::new()
///     .downstream_remote_address(peer)
///     .protocol("HTTP/1.1");
/// # let _ = ctx;
/// ```
#[derive(Clone, Copy, Default)]
pub struct FormatContext<'a> {
    downstream_remote: Option<SocketAddr>,
    downstream_direct_remote: Option<SocketAddr>,
    downstream_local: Option<SocketAddr>,
    upstream_remote: Option<SocketAddr>,
    protocol: Option<&'a str>,
    requested_server_name: Option<&'a str>,
    hostname: Option<&'a str>,
    start_time: Option<SystemTime>,
    response_status: Option<u16>,
    request: Option<&'a (dyn RequestView + Sync)>,
}

impl std::fmt::Debug for FormatContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormatContext")
            .field("downstream_remote", &self.downstream_remote)
            .field("downstream_direct_remote", &self.downstream_direct_remote)
            .field("downstream_local", &self.downstream_local)
            .field("upstream_remote", &self.upstream_remote)
            .field("protocol", &self.protocol)
            .field("requested_server_name", &self.requested_server_name)
            .field("hostname", &self.hostname)
            .field("start_time", &self.start_time)
            .field("response_status", &self.response_status)
            .field("request", &self.request.is_some())
            .finish()
    }
}

impl<'a> FormatContext<'a> {
    /// An empty context: only the commands the request and route answer.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The client's address (`%DOWNSTREAM_REMOTE_ADDRESS%` and its
    /// `_WITHOUT_PORT` and `_PORT` forms). Envoy takes it from
    /// `x-forwarded-for` when it trusts hops; a proxy that does so passes
    /// that address here and the peer's as the direct one.
    #[must_use]
    pub fn downstream_remote_address(mut self, addr: SocketAddr) -> Self {
        self.downstream_remote = Some(addr);
        self
    }

    /// The peer of the connection (`%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%` and
    /// forms). Defaults to the remote address.
    #[must_use]
    pub fn downstream_direct_remote_address(mut self, addr: SocketAddr) -> Self {
        self.downstream_direct_remote = Some(addr);
        self
    }

    /// The address the connection came in on (`%DOWNSTREAM_LOCAL_ADDRESS%`
    /// and forms).
    #[must_use]
    pub fn downstream_local_address(mut self, addr: SocketAddr) -> Self {
        self.downstream_local = Some(addr);
        self
    }

    /// The upstream endpoint chosen (`%UPSTREAM_HOST%`,
    /// `%UPSTREAM_REMOTE_ADDRESS%` and forms); known for responses.
    #[must_use]
    pub fn upstream_remote_address(mut self, addr: SocketAddr) -> Self {
        self.upstream_remote = Some(addr);
        self
    }

    /// The response's status, which a response value reads as
    /// `%RESP(:status)%` (Envoy's response header map holds it).
    #[must_use]
    pub fn response_status(mut self, status: u16) -> Self {
        self.response_status = Some(status);
        self
    }

    /// The downstream protocol as Envoy spells it (`%PROTOCOL%`):
    /// `HTTP/1.0`, `HTTP/1.1`, `HTTP/2`, `HTTP/3`.
    #[must_use]
    pub fn protocol(mut self, protocol: &'a str) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// The TLS SNI the client sent (`%REQUESTED_SERVER_NAME%`).
    #[must_use]
    pub fn requested_server_name(mut self, name: &'a str) -> Self {
        self.requested_server_name = Some(name);
        self
    }

    /// This machine's host name (`%HOSTNAME%`).
    #[must_use]
    pub fn hostname(mut self, name: &'a str) -> Self {
        self.hostname = Some(name);
        self
    }

    /// When the request's first byte arrived (`%START_TIME%`).
    #[must_use]
    pub fn start_time(mut self, at: SystemTime) -> Self {
        self.start_time = Some(at);
        self
    }

    /// The request, for `%REQ(...)%` in response header values (request
    /// header values read the headers they are editing): pass the request
    /// as it was sent upstream, after the route's mutations and rewrites,
    /// as Envoy's response values read it. Its pseudo-headers (`:path`,
    /// `:authority`, ...) are read from it too; without one they are the
    /// route decision's. `Sync`, so that a context can be kept across an
    /// `await`.
    #[must_use]
    pub fn request(mut self, request: &'a (dyn RequestView + Sync)) -> Self {
        self.request = Some(request);
        self
    }
}

/// What the route decision knows, for the commands it answers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteFacts<'e> {
    pub(crate) route_name: &'e str,
    pub(crate) cluster: Option<&'e str>,
    pub(crate) method: &'e str,
    pub(crate) path: Option<&'e str>,
    pub(crate) authority: &'e str,
    pub(crate) scheme: &'e str,
}

/// Which header map a mutation list edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

/// A header value as compiled: plain text (the common case, used as is)
/// or pieces to format per request.
#[derive(Debug, Clone)]
pub(crate) enum HeaderFormat {
    Plain(Box<str>),
    Pieces(Box<[Piece]>),
}

#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Text(Box<str>),
    Command(Command),
}

#[derive(Debug, Clone)]
pub(crate) enum Command {
    /// `REQ(name?alternative):max`
    Req(HeaderRef),
    /// `RESP(name?alternative):max`
    Resp(HeaderRef),
    Address(Endpoint, AddressPart),
    Protocol,
    RequestedServerName,
    Hostname,
    RouteName,
    UpstreamCluster,
    StartTime(Box<[TimePiece]>),
}

#[derive(Debug, Clone)]
pub(crate) struct HeaderRef {
    name: Box<str>,
    alternative: Option<Box<str>>,
    max: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Endpoint {
    DownstreamRemote,
    DownstreamDirectRemote,
    DownstreamLocal,
    UpstreamRemote,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum AddressPart {
    Full,
    Ip,
    Port,
}

/// One piece of a `START_TIME` format.
#[derive(Debug, Clone)]
pub(crate) enum TimePiece {
    Text(Box<str>),
    /// A conversion letter (`Y`, `m`, ...), or `f` with its digits.
    Field(char, u8),
}

/// Envoy's default `START_TIME` format.
const DEFAULT_TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%E3SZ";

impl HeaderFormat {
    /// Compiles a configured value; the error says what is wrong and where.
    pub(crate) fn parse(value: &str) -> Result<HeaderFormat, String> {
        if !value.contains('%') {
            return Ok(HeaderFormat::Plain(value.into()));
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let bytes = value.as_bytes();
        let mut pos = 0;
        while pos < bytes.len() {
            if bytes[pos] != b'%' {
                let next = memchr::memchr(b'%', &bytes[pos..]).map_or(bytes.len(), |i| pos + i);
                text.push_str(&value[pos..next]);
                pos = next;
                continue;
            }
            if bytes.get(pos + 1) == Some(&b'%') {
                text.push('%');
                pos += 2;
                continue;
            }
            let (command, len) = parse_command(&value[pos..]).map_err(|why| {
                format!("{why} at byte {pos} of {value:?} (a literal % is written %%)")
            })?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text).into()));
            }
            pieces.push(Piece::Command(command));
            pos += len;
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.into()));
        }
        Ok(match pieces.as_slice() {
            [] => HeaderFormat::Plain("".into()),
            [Piece::Text(t)] => HeaderFormat::Plain(t.clone()),
            _ => HeaderFormat::Pieces(pieces.into()),
        })
    }

    /// The value for one request: borrowed when plain.
    pub(crate) fn render<'s>(
        &'s self,
        own: &dyn Fn(&str) -> Option<String>,
        side: Side,
        facts: &RouteFacts<'_>,
        ctx: &FormatContext<'_>,
    ) -> std::borrow::Cow<'s, str> {
        let pieces = match self {
            HeaderFormat::Plain(p) => return std::borrow::Cow::Borrowed(p),
            HeaderFormat::Pieces(p) => p,
        };
        let mut out = String::new();
        for p in pieces.iter() {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Command(c) => c.render(own, side, facts, ctx, &mut out),
            }
        }
        // What a header value may not carry (RFC 9110 field-value: control
        // bytes but tab, and DEL) never reaches one, from a context string
        // such as the client's SNI: the value is dropped instead.
        if out.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            out.clear();
        }
        std::borrow::Cow::Owned(out)
    }
}

/// Parses `%NAME%`, `%NAME(arg)%` or `%NAME(arg):N%` at the start of `s`
/// (which starts with `%`); returns the command and its length in bytes.
fn parse_command(s: &str) -> Result<(Command, usize), String> {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() && (b[i].is_ascii_uppercase() || b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let name = &s[1..i];
    if name.is_empty() {
        return Err("no command after %".into());
    }
    let mut arg = None;
    if b.get(i) == Some(&b'(') {
        let close = memchr::memchr(b')', &b[i..])
            .map(|c| i + c)
            .ok_or_else(|| format!("unterminated argument of %{name}("))?;
        arg = Some(&s[i + 1..close]);
        i = close + 1;
    }
    let mut max = None;
    if b.get(i) == Some(&b':') {
        let start = i + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let n: usize = s[start..end]
            .parse()
            .map_err(|_| format!("%{name}: a length after ':' must be a number"))?;
        max = Some(n);
        i = end;
    }
    if b.get(i) != Some(&b'%') {
        return Err(format!("%{name} is not closed by %"));
    }
    let header = |arg: Option<&str>| -> Result<HeaderRef, String> {
        let arg = arg
            .filter(|a| !a.is_empty())
            .ok_or_else(|| format!("%{name}(...)% needs a header name"))?;
        let mut parts = arg.split('?');
        let main = parts.next().unwrap_or_default();
        let alternative = parts.next();
        if parts.next().is_some() {
            return Err(format!(
                "more than one alternative header in %{name}({arg})%"
            ));
        }
        let check = |h: &str| -> Result<Box<str>, String> {
            let lower = h.to_ascii_lowercase();
            let bare = lower.strip_prefix(':').unwrap_or(&lower);
            if bare.is_empty() || http::HeaderName::from_bytes(bare.as_bytes()).is_err() {
                return Err(format!("{h:?} in %{name}(...)% is not a header name"));
            }
            Ok(lower.into())
        };
        Ok(HeaderRef {
            name: check(main)?,
            alternative: alternative.map(check).transpose()?,
            max,
        })
    };
    let no_arg = |c: Command| -> Result<Command, String> {
        if arg.is_some() {
            return Err(format!("%{name}% takes no argument"));
        }
        Ok(c)
    };
    let address = |e: Endpoint, p: AddressPart| no_arg(Command::Address(e, p));
    use AddressPart::{Full, Ip, Port};
    use Endpoint::{DownstreamDirectRemote, DownstreamLocal, DownstreamRemote, UpstreamRemote};
    let command = match name {
        "REQ" => Command::Req(header(arg)?),
        "RESP" => Command::Resp(header(arg)?),
        _ if max.is_some() => return Err(format!("%{name}% takes no length")),
        "DOWNSTREAM_REMOTE_ADDRESS" => address(DownstreamRemote, Full)?,
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => address(DownstreamRemote, Ip)?,
        "DOWNSTREAM_REMOTE_PORT" => address(DownstreamRemote, Port)?,
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS" => address(DownstreamDirectRemote, Full)?,
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT" => address(DownstreamDirectRemote, Ip)?,
        "DOWNSTREAM_DIRECT_REMOTE_PORT" => address(DownstreamDirectRemote, Port)?,
        "DOWNSTREAM_LOCAL_ADDRESS" => address(DownstreamLocal, Full)?,
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT" => address(DownstreamLocal, Ip)?,
        "DOWNSTREAM_LOCAL_PORT" => address(DownstreamLocal, Port)?,
        "UPSTREAM_HOST" | "UPSTREAM_REMOTE_ADDRESS" => address(UpstreamRemote, Full)?,
        "UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT" => address(UpstreamRemote, Ip)?,
        "UPSTREAM_REMOTE_PORT" => address(UpstreamRemote, Port)?,
        "PROTOCOL" => no_arg(Command::Protocol)?,
        "REQUESTED_SERVER_NAME" => no_arg(Command::RequestedServerName)?,
        "HOSTNAME" => no_arg(Command::Hostname)?,
        "ROUTE_NAME" => no_arg(Command::RouteName)?,
        "UPSTREAM_CLUSTER" => no_arg(Command::UpstreamCluster)?,
        "START_TIME" => Command::StartTime(parse_time_format(
            arg.filter(|a| !a.is_empty()).unwrap_or(DEFAULT_TIME_FORMAT),
        )?),
        _ => {
            return Err(format!(
                "%{name}% is not a supported command (supported: REQ, RESP, \
                 DOWNSTREAM_REMOTE_ADDRESS, DOWNSTREAM_DIRECT_REMOTE_ADDRESS, \
                 DOWNSTREAM_LOCAL_ADDRESS (each also _WITHOUT_PORT and the _PORT forms), \
                 UPSTREAM_HOST, UPSTREAM_REMOTE_ADDRESS, PROTOCOL, REQUESTED_SERVER_NAME, \
                 HOSTNAME, ROUTE_NAME, UPSTREAM_CLUSTER, START_TIME)"
            ))
        }
    };
    Ok((command, i + 1))
}

/// Parses a `START_TIME` format: strftime conversions `%Y %y %m %d %e %H
/// %M %S %s %j %a %A %b %B %Z %z %T %F %R %%`, and Envoy's sub-second ones
/// `%E<n>S` (seconds with n decimals), `%<n>f` and `%f` (9 digits).
fn parse_time_format(f: &str) -> Result<Box<[TimePiece]>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            text.push(c);
            continue;
        }
        let bad = |spec: &str| format!("%{spec} in START_TIME({f}) is not a supported conversion");
        let field = match chars.next() {
            Some('%') => {
                text.push('%');
                continue;
            }
            Some(
                c @ ('Y' | 'y' | 'm' | 'd' | 'e' | 'H' | 'M' | 'S' | 's' | 'j' | 'a' | 'A' | 'b'
                | 'B' | 'Z' | 'z' | 'T' | 'F' | 'R'),
            ) => TimePiece::Field(c, 0),
            Some('f') => TimePiece::Field('f', 9),
            Some('E') => {
                let n = chars
                    .next()
                    .and_then(|d| d.to_digit(10))
                    .filter(|&d| d >= 1);
                match (n, chars.next()) {
                    (Some(n), Some('S')) => TimePiece::Field('S', n as u8),
                    _ => return Err(bad("E")),
                }
            }
            Some(d @ '1'..='9') => match chars.next() {
                Some('f') => TimePiece::Field('f', d.to_digit(10).unwrap_or(9) as u8),
                _ => return Err(bad(&d.to_string())),
            },
            Some(other) => return Err(bad(&other.to_string())),
            None => return Err(format!("START_TIME({f}) ends with a lone %")),
        };
        if !text.is_empty() {
            out.push(TimePiece::Text(std::mem::take(&mut text).into()));
        }
        out.push(field);
    }
    if !text.is_empty() {
        out.push(TimePiece::Text(text.into()));
    }
    Ok(out.into())
}

impl Command {
    fn render(
        &self,
        own: &dyn Fn(&str) -> Option<String>,
        side: Side,
        facts: &RouteFacts<'_>,
        ctx: &FormatContext<'_>,
        out: &mut String,
    ) {
        match self {
            Command::Req(h) => {
                let read = |name: &str| -> Option<String> {
                    // `host` is `:authority`, as in Envoy's header map.
                    let name = if name == "host" { ":authority" } else { name };
                    if let Some(pseudo) = name.strip_prefix(':') {
                        // A response value reads the context's request
                        // (the one sent upstream, rewrites included) when
                        // there is one, as Envoy's reads the mutated map.
                        if let (Side::Response, Some(r)) = (side, ctx.request) {
                            let v = match pseudo {
                                "method" => Some(r.method()),
                                "path" => r.path_and_query(),
                                "authority" => r.authority(),
                                "scheme" => r.scheme(),
                                _ => None,
                            };
                            return v.map(str::to_owned);
                        }
                        return match pseudo {
                            "method" => Some(facts.method.to_owned()),
                            "path" => facts.path.map(str::to_owned),
                            "authority" => Some(facts.authority.to_owned()),
                            "scheme" => Some(facts.scheme.to_owned()),
                            _ => None,
                        };
                    }
                    match side {
                        Side::Request => own(name),
                        Side::Response => ctx.request.and_then(|r| {
                            let v = first_header_value(r, name).0?;
                            std::str::from_utf8(v).ok().map(str::to_owned)
                        }),
                    }
                };
                h.render(read, out);
            }
            Command::Resp(h) => {
                if side == Side::Response {
                    let status = ctx.response_status;
                    h.render(
                        |name| match name {
                            ":status" => status.map(|s| s.to_string()),
                            _ => own(name),
                        },
                        out,
                    );
                }
            }
            Command::Address(e, part) => {
                let addr = match e {
                    Endpoint::DownstreamRemote => ctx.downstream_remote,
                    Endpoint::DownstreamDirectRemote => {
                        ctx.downstream_direct_remote.or(ctx.downstream_remote)
                    }
                    Endpoint::DownstreamLocal => ctx.downstream_local,
                    Endpoint::UpstreamRemote => ctx.upstream_remote,
                };
                if let Some(a) = addr {
                    let _ = match part {
                        AddressPart::Full => write!(out, "{a}"),
                        AddressPart::Ip => write!(out, "{}", a.ip()),
                        AddressPart::Port => write!(out, "{}", a.port()),
                    };
                }
            }
            Command::Protocol => out.push_str(ctx.protocol.unwrap_or("")),
            Command::RequestedServerName => out.push_str(ctx.requested_server_name.unwrap_or("")),
            Command::Hostname => out.push_str(ctx.hostname.unwrap_or("")),
            Command::RouteName => out.push_str(facts.route_name),
            Command::UpstreamCluster => out.push_str(facts.cluster.unwrap_or("")),
            Command::StartTime(f) => {
                if let Some(t) = ctx.start_time {
                    format_time(f, t, out);
                }
            }
        }
    }
}

impl HeaderRef {
    fn render(&self, read: impl Fn(&str) -> Option<String>, out: &mut String) {
        let value = read(&self.name)
            .or_else(|| self.alternative.as_deref().and_then(&read))
            .unwrap_or_default();
        match self.max {
            Some(n) if value.len() > n => {
                // Cut at a character boundary at or below n bytes.
                let mut end = n;
                while !value.is_char_boundary(end) {
                    end -= 1;
                }
                out.push_str(&value[..end]);
            }
            _ => out.push_str(&value),
        }
    }
}

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A UTC calendar time.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    yday: u32,
    weekday: usize,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
    epoch: i64,
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn civil(t: SystemTime) -> Civil {
    // Times further than this from 1970 (about 34,000 years) are clamped,
    // which keeps every sum below in range.
    const LIMIT: u64 = 1 << 40;
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs().min(LIMIT) as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let (s, n) = (d.as_secs().min(LIMIT) as i64, d.subsec_nanos());
            if n == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000_000 - n)
            }
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    const BEFORE: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = BEFORE[month as usize - 1] + day + u32::from(month > 2 && is_leap(year));
    Civil {
        year,
        month,
        day,
        yday,
        // 1970-01-01 was a Thursday.
        weekday: (days + 4).rem_euclid(7) as usize,
        hour: rem / 3600,
        minute: rem / 60 % 60,
        second: rem % 60,
        nanos,
        epoch: secs,
    }
}

fn format_time(f: &[TimePiece], t: SystemTime, out: &mut String) {
    let c = civil(t);
    for p in f {
        let _ = match p {
            TimePiece::Text(s) => {
                out.push_str(s);
                Ok(())
            }
            TimePiece::Field(field, n) => match field {
                'Y' => write!(out, "{:04}", c.year),
                'y' => write!(out, "{:02}", c.year.rem_euclid(100)),
                'm' => write!(out, "{:02}", c.month),
                'd' => write!(out, "{:02}", c.day),
                'e' => write!(out, "{:2}", c.day),
                'H' => write!(out, "{:02}", c.hour),
                'M' => write!(out, "{:02}", c.minute),
                'S' if *n == 0 => write!(out, "{:02}", c.second),
                'S' => {
                    let digits = usize::from(*n);
                    let frac = c.nanos / 10u32.pow(9 - u32::from(*n));
                    write!(out, "{:02}.{frac:0digits$}", c.second)
                }
                'f' => {
                    let digits = usize::from(*n);
                    let frac = c.nanos / 10u32.pow(9 - u32::from(*n));
                    write!(out, "{frac:0digits$}")
                }
                's' => write!(out, "{}", c.epoch),
                'j' => write!(out, "{:03}", c.yday),
                'a' => write!(out, "{}", &DAYS[c.weekday][..3]),
                'A' => write!(out, "{}", DAYS[c.weekday]),
                'b' => write!(out, "{}", &MONTHS[c.month as usize - 1][..3]),
                'B' => write!(out, "{}", MONTHS[c.month as usize - 1]),
                'Z' => write!(out, "UTC"),
                'z' => write!(out, "+0000"),
                'T' => write!(out, "{:02}:{:02}:{:02}", c.hour, c.minute, c.second),
                'F' => write!(out, "{:04}-{:02}-{:02}", c.year, c.month, c.day),
                'R' => write!(out, "{:02}:{:02}", c.hour, c.minute),
                _ => Ok(()),
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn facts() -> RouteFacts<'static> {
        RouteFacts {
            route_name: "r1",
            cluster: Some("backend"),
            method: "GET",
            path: Some("/a?b"),
            authority: "example.com",
            scheme: "https",
        }
    }

    fn render(value: &str, side: Side, ctx: &FormatContext<'_>) -> String {
        let own = |name: &str| (name == "x-own").then(|| "mine".to_string());
        HeaderFormat::parse(value)
            .unwrap()
            .render(&own, side, &facts(), ctx)
            .into_owned()
    }

    #[test]
    fn plain_values_and_escapes() {
        assert!(
            matches!(HeaderFormat::parse("plain").unwrap(), HeaderFormat::Plain(p) if &*p == "plain")
        );
        assert!(
            matches!(HeaderFormat::parse("100%%").unwrap(), HeaderFormat::Plain(p) if &*p == "100%")
        );
        assert!(matches!(HeaderFormat::parse("").unwrap(), HeaderFormat::Plain(p) if p.is_empty()));
        let ctx = FormatContext::new();
        assert_eq!(render("a%%b%ROUTE_NAME%c", Side::Request, &ctx), "a%br1c");
    }

    #[test]
    fn commands_read_the_route_the_context_and_the_headers() {
        let peer: SocketAddr = "[2001:db8::7]:50312".parse().unwrap();
        let local: SocketAddr = "198.18.0.1:8080".parse().unwrap();
        let ctx = FormatContext::new()
            .downstream_remote_address(peer)
            .downstream_local_address(local)
            .protocol("HTTP/2")
            .requested_server_name("api.example.com")
            .hostname("edge-1");
        let r = |v| render(v, Side::Request, &ctx);
        assert_eq!(r("%DOWNSTREAM_REMOTE_ADDRESS%"), "[2001:db8::7]:50312");
        assert_eq!(r("%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"), "2001:db8::7");
        assert_eq!(r("%DOWNSTREAM_REMOTE_PORT%"), "50312");
        // The direct peer defaults to the remote address.
        assert_eq!(
            r("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%"),
            "2001:db8::7"
        );
        assert_eq!(r("%DOWNSTREAM_LOCAL_ADDRESS%"), "198.18.0.1:8080");
        assert_eq!(r("%DOWNSTREAM_LOCAL_PORT%"), "8080");
        assert_eq!(r("%UPSTREAM_HOST%"), "");
        assert_eq!(
            r("%PROTOCOL% %REQUESTED_SERVER_NAME% %HOSTNAME%"),
            "HTTP/2 api.example.com edge-1"
        );
        assert_eq!(r("%ROUTE_NAME%/%UPSTREAM_CLUSTER%"), "r1/backend");
        assert_eq!(
            r("%REQ(:METHOD)% %REQ(:PATH)% %REQ(:AUTHORITY)% %REQ(:scheme)%"),
            "GET /a?b example.com https"
        );
        assert_eq!(r("%REQ(X-OWN)%"), "mine");
        assert_eq!(r("%REQ(x-none?X-Own)%"), "mine");
        assert_eq!(r("%REQ(x-own):2%"), "mi");
        assert_eq!(r("[%REQ(x-none)%]"), "[]");
        // RESP reads nothing on the request side; on the response side it
        // reads the response, and REQ the request given in the context.
        assert_eq!(r("%RESP(x-own)%"), "");
        let req = crate::Request::get("example.com", "/").header("x-id", "abc");
        let ctx = ctx.request(&req);
        assert_eq!(render("%RESP(x-own)%", Side::Response, &ctx), "mine");
        // :status is the context's response status, when it has one.
        assert_eq!(render("[%RESP(:status)%]", Side::Response, &ctx), "[]");
        let with_status = ctx.response_status(503);
        assert_eq!(
            render(
                "%RESP(:STATUS)% %RESP(:status):1%",
                Side::Response,
                &with_status
            ),
            "503 5"
        );
        assert_eq!(
            render("[%RESP(:status)%]", Side::Request, &with_status),
            "[]"
        );
        assert_eq!(render("%REQ(x-id)%", Side::Response, &ctx), "abc");
        assert_eq!(render("%REQ(x-own)%", Side::Response, &ctx), "");
        // Pseudo-headers too come from that request on the response side
        // (the facts say "/a?b" and "example.com"); without one, from the
        // route decision.
        let sent = crate::Request::get("up.internal", "/rewritten?b");
        assert_eq!(
            render(
                "%REQ(:PATH)% %REQ(host)% %REQ(:method)%",
                Side::Response,
                &ctx.request(&sent)
            ),
            "/rewritten?b up.internal GET"
        );
        assert_eq!(
            render(
                "%REQ(:PATH)% %REQ(host)%",
                Side::Response,
                &FormatContext::new()
            ),
            "/a?b example.com"
        );
    }

    #[test]
    fn start_time_formats() {
        // 2026-11-28T23:56:27.123456789Z, a Saturday, day 332.
        let t = UNIX_EPOCH + Duration::new(1_795_910_187, 123_456_789);
        let ctx = FormatContext::new().start_time(t);
        let r = |v| render(v, Side::Request, &ctx);
        assert_eq!(r("%START_TIME%"), "2026-11-28T23:56:27.123Z");
        assert_eq!(r("%START_TIME(%s)%"), "1795910187");
        assert_eq!(
            r("%START_TIME(%a %d %b %Y %T %Z)%"),
            "Sat 28 Nov 2026 23:56:27 UTC"
        );
        assert_eq!(
            r("%START_TIME(%F %j %E6S %3f %f %%)%"),
            "2026-11-28 332 27.123456 123 123456789 %"
        );
        // Leap day and the epoch.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        let ctx = FormatContext::new().start_time(leap);
        assert_eq!(
            render("%START_TIME(%F %A %j)%", Side::Request, &ctx),
            "2000-02-29 Tuesday 060"
        );
        let ctx = FormatContext::new().start_time(UNIX_EPOCH);
        assert_eq!(
            render("%START_TIME%", Side::Request, &ctx),
            "1970-01-01T00:00:00.000Z"
        );
        // No start time: empty.
        assert_eq!(
            render("%START_TIME%", Side::Request, &FormatContext::new()),
            ""
        );
    }

    #[test]
    fn civil_dates_agree_with_a_day_by_day_count() {
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..200_000i64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let len = match m {
                2 if is_leap(y) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn bad_formats_are_errors_that_say_where() {
        for (value, says) in [
            ("%", "no command after %"),
            ("50%", "no command after % at byte 2"),
            ("%FOO%", "%FOO% is not a supported command"),
            ("%REQ%", "needs a header name"),
            ("%REQ()%", "needs a header name"),
            ("%REQ(a?b?c)%", "more than one alternative"),
            ("%REQ(bad header)%", "is not a header name"),
            ("%REQ(x", "unterminated argument"),
            ("%REQ(x)", "is not closed by %"),
            ("%ROUTE_NAME", "is not closed by %"),
            ("%ROUTE_NAME(x)%", "takes no argument"),
            ("%PROTOCOL:3%", "takes no length"),
            (
                "%START_TIME(%Q)%",
                "%Q in START_TIME(%Q) is not a supported conversion",
            ),
            ("%START_TIME(%E0S)%", "not a supported conversion"),
            ("%START_TIME(abc%)%", "ends with a lone %"),
        ] {
            let err = HeaderFormat::parse(value).unwrap_err();
            assert!(err.contains(says), "{value:?}: {err}");
        }
    }

    #[test]
    fn a_value_with_a_control_byte_is_dropped() {
        for sni in ["a\r\nx-evil: 1", "a\x01b", "a\x7fb"] {
            let ctx = FormatContext::new().requested_server_name(sni);
            assert_eq!(
                render("%REQUESTED_SERVER_NAME%", Side::Request, &ctx),
                "",
                "{sni:?}"
            );
        }
        let ctx = FormatContext::new().requested_server_name("a\tb");
        assert_eq!(
            render("%REQUESTED_SERVER_NAME%", Side::Request, &ctx),
            "a\tb"
        );
    }

    #[test]
    fn the_other_address_forms_and_host() {
        let ctx = FormatContext::new()
            .downstream_remote_address("198.18.0.2:1000".parse().unwrap())
            .downstream_direct_remote_address("198.18.0.3:2000".parse().unwrap())
            .upstream_remote_address("[2001:db8::9]:443".parse().unwrap());
        let r = |v| render(v, Side::Response, &ctx);
        assert_eq!(r("%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%"), "198.18.0.3:2000");
        assert_eq!(r("%DOWNSTREAM_DIRECT_REMOTE_PORT%"), "2000");
        assert_eq!(r("%UPSTREAM_REMOTE_ADDRESS%"), "[2001:db8::9]:443");
        assert_eq!(r("%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"), "2001:db8::9");
        assert_eq!(r("%UPSTREAM_REMOTE_PORT%"), "443");
        // `host` reads `:authority`.
        assert_eq!(r("%REQ(Host)%"), "example.com");
    }

    #[test]
    fn times_before_1970_and_far_away_do_not_overflow() {
        // 1969-12-31T23:59:59.250Z, a Wednesday.
        let t = UNIX_EPOCH - Duration::from_millis(750);
        let ctx = FormatContext::new().start_time(t);
        assert_eq!(
            render(
                "%START_TIME(%F %T %E3S %a %e %y %z %R %B %s)%",
                Side::Request,
                &ctx
            ),
            "1969-12-31 23:59:59 59.250 Wed 31 69 +0000 23:59 December -1"
        );
        // 1900-03-01, past the leap rule's century exception.
        let t = UNIX_EPOCH - Duration::from_secs(2_203_891_200);
        let ctx = FormatContext::new().start_time(t);
        assert_eq!(
            render("%START_TIME(%F %j)%", Side::Request, &ctx),
            "1900-03-01 060"
        );
        for t in [
            UNIX_EPOCH.checked_sub(Duration::from_secs(i64::MAX as u64)),
            UNIX_EPOCH.checked_add(Duration::from_secs(u64::MAX / 2)),
        ]
        .into_iter()
        .flatten()
        {
            let ctx = FormatContext::new().start_time(t);
            assert!(!render("%START_TIME%", Side::Request, &ctx).is_empty());
        }
    }
}
