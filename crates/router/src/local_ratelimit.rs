//! Local rate limits: Envoy's `envoy.filters.http.local_ratelimit` filter,
//! configured per route, virtual host or configuration through
//! `typed_per_filter_config`, with its token buckets kept in the compiled
//! table.
//!
//! A bucket holds at most `max_tokens` and gains `tokens_per_fill` every
//! `fill_interval`, continuously (Envoy's atomic token bucket): a bucket
//! of 10 tokens refilled by 10 a second admits a burst of 10 and then one
//! request every 100 ms. Its whole state is one word, the moment the
//! bucket would be empty, moved forward by one token's time per admitted
//! request with a compare-and-swap; no lock is taken.
//!
//! The buckets belong to the table they were built with and start full;
//! a reload hands each limiter that is unchanged the old one's tokens
//! ([`RouteTable::carry_local_rate_limits`](crate::RouteTable::carry_local_rate_limits)).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::format::Side;
use crate::mutate::{HeaderMapMut, Mutations};
use crate::ratelimit::RateLimitDescriptor;
use crate::FormatContext;

/// The filter name whose `typed_per_filter_config` entries configure
/// local rate limits.
pub const LOCAL_RATE_LIMIT_FILTER: &str = "envoy.filters.http.local_ratelimit";

/// The type URL a local rate limit configuration may name.
pub(crate) const LOCAL_RATE_LIMIT_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit";

/// Bucket times are kept as units since the limiter was built plus this,
/// so that a full bucket's "empty at" lies before the start without going
/// below zero.
const BIAS: u64 = 1 << 63;
/// A bucket's refill time (and the elapsed time) is at most this many
/// units.
const SPAN: u64 = 1 << 62;

/// One token bucket.
///
/// Its time unit is `2^shift` nanoseconds, the smallest that keeps the
/// time a whole bucket takes to refill within [`SPAN`] units: a
/// nanosecond for every bucket that refills within 146 years, coarser
/// for longer ones (a "never refill" interval of years still holds its
/// `max_tokens`).
#[derive(Debug)]
pub(crate) struct Bucket {
    max_tokens: u64,
    shift: u32,
    /// Units one token takes to come back (at least 1).
    per_token: u64,
    /// `max_tokens * per_token`, at most [`SPAN`].
    capacity: u64,
    /// Tokens per second, for ordering descriptors (Envoy's fill rate).
    rate: f64,
    /// When the bucket is (or was) empty, biased; it holds
    /// `(now - empty_at) / per_token` tokens, at most `max_tokens`.
    empty_at: AtomicU64,
}

impl Bucket {
    pub(crate) fn new(max_tokens: u32, tokens_per_fill: u32, fill_interval: Duration) -> Bucket {
        let per_fill = u128::from(tokens_per_fill.max(1));
        let token_ns = ((fill_interval.as_nanos() + per_fill / 2) / per_fill).max(1);
        let max = u128::from(max_tokens.max(1));
        // Rounding adds at most one unit to a token's time.
        let mut shift = 0u32;
        while ((token_ns >> shift) + 1) * max > u128::from(SPAN) {
            shift += 1;
        }
        let half = (1u128 << shift) >> 1;
        let per_token = u64::try_from(((token_ns + half) >> shift).max(1))
            .expect("within SPAN by the loop above");
        let capacity = per_token * u64::from(max_tokens.max(1));
        Bucket {
            max_tokens: u64::from(max_tokens),
            shift,
            per_token,
            capacity,
            rate: f64::from(tokens_per_fill.max(1)) / fill_interval.as_secs_f64(),
            empty_at: AtomicU64::new(BIAS - capacity),
        }
    }

    /// Takes over `old`'s tokens (`old` counts time from `old_origin`,
    /// this bucket from `origin`): the same tokens, and the same part of
    /// the next one, at `now`. Only between buckets of the same shape.
    fn carry_from(&self, old: &Bucket, old_origin: Instant, origin: Instant, now: Instant) {
        if (self.shift, self.per_token, self.capacity) != (old.shift, old.per_token, old.capacity) {
            return;
        }
        let since = |o: Instant| {
            u64::try_from(now.saturating_duration_since(o).as_nanos()).unwrap_or(u64::MAX)
        };
        let old_now = old.now(since(old_origin));
        let old_base = old.base(old.empty_at.load(Ordering::Relaxed), old_now);
        let new_now = self.now(since(origin));
        // The empty moment as far from `now` as it was: before it by the
        // tokens held (at most a full bucket), or after it when a caller's
        // later clock spent tokens ahead of `now` (kept, not forgiven).
        // Both sides lie within BIAS +- 2 * SPAN: no wrap.
        let empty_at = if old_base <= old_now {
            new_now - (old_now - old_base)
        } else {
            new_now + (old_base - old_now)
        };
        self.empty_at.store(empty_at, Ordering::Relaxed);
    }

    /// `elapsed` nanoseconds since the start, in biased units.
    fn now(&self, elapsed: u64) -> u64 {
        BIAS + (elapsed >> self.shift).min(SPAN)
    }

    /// Where the bucket's empty moment lies at `now` once refilled: never
    /// further back than a full bucket's.
    fn base(&self, empty_at: u64, now: u64) -> u64 {
        empty_at.max(now - self.capacity)
    }

    /// Takes a token `elapsed` nanoseconds after the start; the tokens
    /// left, or `None` when there is none to take.
    #[cfg(test)]
    fn take(&self, elapsed: u64) -> Option<u64> {
        let now = self.now(elapsed);
        self.take_at(now).map(|next| self.left(now, next))
    }

    /// The tokens left at `now` (biased) once the bucket's empty moment is
    /// `next`.
    fn left(&self, now: u64, next: u64) -> u64 {
        now.saturating_sub(next) / self.per_token
    }

    /// Takes a token at `now` (biased): the bucket's new empty moment, or
    /// `None` when there is no token to take.
    fn take_at(&self, now: u64) -> Option<u64> {
        let mut cur = self.empty_at.load(Ordering::Relaxed);
        loop {
            let base = self.base(cur, now);
            // Another thread's later clock may have moved it past `now`.
            if now.saturating_sub(base) < self.per_token {
                return None;
            }
            let next = base + self.per_token;
            match self.empty_at.compare_exchange_weak(
                cur,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(next),
                Err(seen) => cur = seen,
            }
        }
    }

    /// The tokens it holds `elapsed` nanoseconds after the start.
    fn tokens(&self, elapsed: u64) -> u64 {
        let now = self.now(elapsed);
        let base = self.base(self.empty_at.load(Ordering::Relaxed), now);
        (now.saturating_sub(base) / self.per_token).min(self.max_tokens)
    }

    /// The `x-ratelimit-*` figures `elapsed` nanoseconds after the start,
    /// with `remaining` tokens.
    fn figures(&self, elapsed: u64, remaining: u64) -> RateLimitHeaders {
        let reset = if remaining > 0 {
            0
        } else {
            let now = self.now(elapsed);
            let base = self.base(self.empty_at.load(Ordering::Relaxed), now);
            let units = base.saturating_add(self.per_token).saturating_sub(now);
            // Whole seconds until the next token, rounded down as Envoy's
            // header has it.
            let secs = (u128::from(units) << self.shift) / 1_000_000_000;
            u64::try_from(secs).unwrap_or(u64::MAX)
        };
        RateLimitHeaders {
            limit: self.max_tokens,
            remaining,
            reset,
        }
    }
}

/// A descriptor with its own bucket.
#[derive(Debug)]
pub(crate) struct DescriptorBucket {
    pub(crate) entries: Box<[(Box<str>, Box<str>)]>,
    pub(crate) bucket: Bucket,
}

impl DescriptorBucket {
    fn matches(&self, d: &RateLimitDescriptor) -> bool {
        self.entries.len() == d.entries.len()
            && self
                .entries
                .iter()
                .zip(&d.entries)
                .all(|((k, v), (dk, dv))| **k == **dk && **v == **dv)
    }
}

/// How a virtual host's `rate_limits` combine with a route's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum VhRateLimits {
    /// Only when the route has none.
    #[default]
    Override,
    Include,
    Ignore,
}

impl VhRateLimits {
    /// Envoy's names, in the enum's order.
    pub(crate) const NAMES: [&'static str; 3] = ["OVERRIDE", "INCLUDE", "IGNORE"];

    /// The value at `i` in [`NAMES`](Self::NAMES).
    pub(crate) fn from_index(i: usize) -> VhRateLimits {
        match i {
            1 => VhRateLimits::Include,
            2 => VhRateLimits::Ignore,
            _ => VhRateLimits::Override,
        }
    }
}

/// A compiled local rate limit: its settings and its buckets.
///
/// Found for a request with
/// [`RouteMatch::local_rate_limit`](crate::RouteMatch::local_rate_limit),
/// which does the whole check; the accessors here describe the policy
/// (for statistics and tools).
#[derive(Debug)]
pub struct LocalRateLimiter {
    pub(crate) stat_prefix: Box<str>,
    pub(crate) status: u16,
    pub(crate) default: Bucket,
    pub(crate) descriptors: Box<[DescriptorBucket]>,
    pub(crate) enabled: Option<(u32, u64)>,
    pub(crate) enforced: Option<(u32, u64)>,
    pub(crate) request_headers: Mutations,
    pub(crate) response_headers: Mutations,
    pub(crate) stage: u32,
    pub(crate) x_headers: bool,
    pub(crate) vh_rate_limits: VhRateLimits,
    pub(crate) always_consume_default: bool,
    pub(crate) resource_exhausted: bool,
    /// The moment bucket times count from.
    pub(crate) origin: Instant,
    /// Where the limiter is configured (virtual host, route and field),
    /// and the configuration it was built from: a new table's limiter with
    /// both the same as an old one's takes over its buckets and counts
    /// ([`RouteTable::carry_local_rate_limits`](crate::RouteTable::carry_local_rate_limits)).
    pub(crate) place: Box<str>,
    pub(crate) source: serde_json::Value,
    /// Whether it has taken over another limiter's state.
    pub(crate) carried: std::sync::atomic::AtomicBool,
    /// Requests allowed, limited but not enforced, refused ([`OK`],
    /// [`NOT_ENFORCED`], [`ENFORCED`]).
    pub(crate) counts: [AtomicU64; 3],
    /// The descriptors by the hash of their entries.
    pub(crate) by_hash: ahash::RandomState,
    pub(crate) by_hash_index: ahash::AHashMap<u64, Box<[u32]>>,
}

/// A descriptor's entries, hashed the same way whatever holds the text.
pub(crate) struct EntriesKey<I>(pub(crate) I);

impl<'e, I: Iterator<Item = (&'e str, &'e str)> + Clone> std::hash::Hash for EntriesKey<I> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for (k, v) in self.0.clone() {
            k.hash(state);
            v.hash(state);
        }
    }
}

/// The hash index of `descriptors`.
pub(crate) fn descriptor_index(
    state: &ahash::RandomState,
    descriptors: &[DescriptorBucket],
) -> ahash::AHashMap<u64, Box<[u32]>> {
    let mut index: ahash::AHashMap<u64, Vec<u32>> = ahash::AHashMap::new();
    for (i, d) in descriptors.iter().enumerate() {
        let hash = state.hash_one(EntriesKey(d.entries.iter().map(|(k, v)| (&**k, &**v))));
        index.entry(hash).or_default().push(i as u32);
    }
    index.into_iter().map(|(h, v)| (h, v.into())).collect()
}

/// Index of [`LocalRateLimiter::counts`]' allowed requests.
const OK: usize = 0;
/// Index of the limited requests let through.
const NOT_ENFORCED: usize = 1;
/// Index of the refused requests.
const ENFORCED: usize = 2;

/// What a [`LocalRateLimiter`] has decided since it was built (Envoy's
/// `<stat_prefix>.http_local_rate_limit.*` counters), plus what the
/// limiter it took over on a reload had decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalRateLimitCounts {
    /// Requests the filter looked at (`enabled`).
    pub enabled: u64,
    /// Requests it let through with a token (`ok`).
    pub ok: u64,
    /// Requests without a token (`rate_limited`), enforced or not.
    pub rate_limited: u64,
    /// Requests refused (`enforced`).
    pub enforced: u64,
}

/// The position in `names` of an enum value of Envoy's as its JSON reader
/// takes it: a name in any case (Envoy parses enums case-insensitively),
/// a number, or a number in a string; null is the default (0). `None`
/// for anything else.
pub(crate) fn enum_index(v: &serde_json::Value, names: &[&str]) -> Option<usize> {
    let number = |n: u64| usize::try_from(n).ok().filter(|&n| n < names.len());
    match v {
        serde_json::Value::Null => Some(0),
        serde_json::Value::Number(n) => n.as_u64().and_then(number),
        serde_json::Value::String(s) => names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .or_else(|| s.parse::<u64>().ok().and_then(number)),
        _ => None,
    }
}

/// A second random value drawn from the first (SplitMix64's finalizer):
/// Envoy draws `filter_enabled` and `filter_enforced` independently.
fn redraw(random_value: u64) -> u64 {
    let mut z = random_value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn takes(fraction: Option<(u32, u64)>, random_value: u64) -> bool {
    match fraction {
        None => false,
        // All or nothing (the usual settings) need no division.
        Some((n, d)) if u64::from(n) >= d => true,
        Some((0, _)) => false,
        Some((n, d)) => random_value % d < u64::from(n),
    }
}

impl LocalRateLimiter {
    /// Takes over what `old` (in the same place) has: its counts, and
    /// when both come from the same configuration (`buckets`), its tokens
    /// at `now`. Only once: a limiter that has taken over, or been taken
    /// over by, another is left alone (a table installed twice, or carried
    /// by hand and then installed, would count everything twice).
    pub(crate) fn carry_from(&self, old: &LocalRateLimiter, buckets: bool, now: Instant) -> bool {
        if std::ptr::eq(self, old) || self.carried.swap(true, Ordering::Relaxed) {
            return false;
        }
        if buckets {
            self.default
                .carry_from(&old.default, old.origin, self.origin, now);
            for (new, old_d) in self.descriptors.iter().zip(old.descriptors.iter()) {
                if new.entries == old_d.entries {
                    new.bucket
                        .carry_from(&old_d.bucket, old.origin, self.origin, now);
                }
            }
        }
        for (new, old_c) in self.counts.iter().zip(old.counts.iter()) {
            new.fetch_add(old_c.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        true
    }

    /// The `stat_prefix` its statistics carry.
    pub fn stat_prefix(&self) -> &str {
        &self.stat_prefix
    }

    /// The status of the answer to a refused request.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The stage of the route's `rate_limits` it reads descriptors from.
    pub fn stage(&self) -> u32 {
        self.stage
    }

    /// Whether it has descriptors of its own (without them a request's
    /// descriptors are not computed: only the default bucket counts).
    pub fn has_descriptors(&self) -> bool {
        !self.descriptors.is_empty()
    }

    /// The `grpc-status` of a refused gRPC request: `RESOURCE_EXHAUSTED`
    /// (8) with `rate_limited_as_resource_exhausted`, else `UNAVAILABLE`
    /// (14).
    pub fn grpc_status(&self) -> u8 {
        if self.resource_exhausted {
            8
        } else {
            14
        }
    }

    /// The default bucket's capacity and the tokens it holds at `now`:
    /// `(max_tokens, remaining)`.
    pub fn default_bucket(&self, now: Instant) -> (u64, u64) {
        (
            self.default.max_tokens,
            self.default.tokens(self.clock(now)),
        )
    }

    /// Whether `filter_enabled` takes the request with this random value
    /// (never when it is unset, as in Envoy).
    pub fn enabled(&self, random_value: u64) -> bool {
        takes(self.enabled, random_value)
    }

    /// Its counters. One is kept per outcome (one increment a request);
    /// `enabled` and `rate_limited` are their sums.
    pub fn counts(&self) -> LocalRateLimitCounts {
        let n = |i: usize| self.counts[i].load(Ordering::Relaxed);
        let (ok, not_enforced, enforced) = (n(OK), n(NOT_ENFORCED), n(ENFORCED));
        LocalRateLimitCounts {
            enabled: ok + not_enforced + enforced,
            ok,
            rate_limited: not_enforced + enforced,
            enforced,
        }
    }

    fn count(&self, i: usize) {
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Nanoseconds from the limiter's start to `now` (0 for earlier
    /// moments).
    fn clock(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(elapsed).unwrap_or(u64::MAX)
    }

    /// Envoy's `requestAllowed`: the buckets of the descriptors that match
    /// (the slowest-filling first) each give a token, then the default
    /// bucket does when no descriptor matched or
    /// `always_consume_default_token_bucket`. The first bucket without a
    /// token refuses the request (tokens already taken stay taken, as in
    /// Envoy). The bucket reported (with `enable_x_ratelimit_headers`) is
    /// the refusing one, else the slowest matched descriptor's, else the
    /// default.
    pub(crate) fn take(
        &self,
        descriptors: &[RateLimitDescriptor],
        now: Instant,
    ) -> (bool, Option<RateLimitHeaders>) {
        let elapsed = self.clock(now);
        // The figures of bucket `b` after a take that left its empty
        // moment at `next` (`None`: a refusal), when they are wanted.
        let report = |b: &Bucket, next: Option<u64>| {
            self.x_headers.then(|| {
                let left = next.map_or(0, |n| b.left(b.now(elapsed), n));
                b.figures(elapsed, left)
            })
        };
        if self.descriptors.is_empty() {
            let next = self.default.take_at(self.default.now(elapsed));
            return (next.is_some(), report(&self.default, next));
        }
        // Matched buckets: a few (more than eight go to the heap).
        let mut matched: smallvec::SmallVec<[&Bucket; 8]> = smallvec::SmallVec::new();
        for d in descriptors {
            let hash = self.by_hash.hash_one(EntriesKey(
                d.entries.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ));
            let found = self.by_hash_index.get(&hash).and_then(|at| {
                at.iter()
                    .map(|&i| &self.descriptors[i as usize])
                    .find(|b| b.matches(d))
            });
            if let Some(b) = found {
                matched.push(&b.bucket);
            }
        }
        matched.sort_by(|a, b| a.rate.total_cmp(&b.rate));
        let mut first: Option<(&Bucket, u64)> = None;
        for b in &matched {
            match b.take_at(b.now(elapsed)) {
                Some(next) => {
                    first.get_or_insert((b, next));
                }
                None => return (false, report(b, None)),
            }
        }
        if matched.is_empty() || self.always_consume_default {
            match self.default.take_at(self.default.now(elapsed)) {
                Some(next) => {
                    first.get_or_insert((&self.default, next));
                }
                None => return (false, report(&self.default, None)),
            }
        }
        let (b, next) = first.expect("a bucket gave a token");
        (true, report(b, Some(next)))
    }
}

/// The `x-ratelimit-*` headers of Envoy's `DRAFT_VERSION_03`: the
/// reported bucket's capacity, the tokens it had left after the check, and
/// the whole seconds until it has one again (0 while it has some).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RateLimitHeaders {
    /// `x-ratelimit-limit`.
    pub limit: u64,
    /// `x-ratelimit-remaining`.
    pub remaining: u64,
    /// `x-ratelimit-reset`, in seconds.
    pub reset: u64,
}

impl RateLimitHeaders {
    /// Adds the three headers (after any of the same names, as Envoy
    /// adds them).
    pub fn apply<H: HeaderMapMut + ?Sized>(&self, headers: &mut H) {
        let mut buf = itoa_buf();
        for (name, v) in [
            ("x-ratelimit-limit", self.limit),
            ("x-ratelimit-remaining", self.remaining),
            ("x-ratelimit-reset", self.reset),
        ] {
            headers.append(name, decimal(v, &mut buf));
        }
    }
}

fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits")
}

/// What the local rate limit filter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalRateLimitVerdict {
    /// The filter did not look at the request (`filter_enabled` did not
    /// take it).
    NotEnabled,
    /// A token was taken: forward the request.
    Allowed,
    /// No token, but `filter_enforced` did not take the request: forward
    /// it, with [`LocalRateLimitOutcome::apply_request_headers`].
    LimitedNotEnforced,
    /// No token: answer with [`LocalRateLimitOutcome::status`], the body
    /// `local_rate_limited` and
    /// [`LocalRateLimitOutcome::apply_response_headers`].
    Limited,
}

/// The outcome of [`RouteMatch::local_rate_limit`](crate::RouteMatch::local_rate_limit).
pub struct LocalRateLimitOutcome<'m> {
    pub(crate) limiter: &'m LocalRateLimiter,
    pub(crate) verdict: LocalRateLimitVerdict,
    pub(crate) headers: Option<RateLimitHeaders>,
    /// The decision, for formatting header values.
    pub(crate) route: &'m crate::RouteMatch<'m>,
}

impl std::fmt::Debug for LocalRateLimitOutcome<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateLimitOutcome")
            .field("stat_prefix", &self.limiter.stat_prefix)
            .field("verdict", &self.verdict)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl<'m> LocalRateLimitOutcome<'m> {
    /// What to do with the request.
    pub fn verdict(&self) -> LocalRateLimitVerdict {
        self.verdict
    }

    /// The policy that decided.
    pub fn limiter(&self) -> &'m LocalRateLimiter {
        self.limiter
    }

    /// The status to answer a [`Limited`](LocalRateLimitVerdict::Limited)
    /// request with.
    pub fn status(&self) -> u16 {
        self.limiter.status
    }

    /// The `x-ratelimit-*` headers for the answer (refusal or upstream
    /// response), when the policy enables them and the filter looked at the
    /// request.
    pub fn rate_limit_headers(&self) -> Option<RateLimitHeaders> {
        self.headers
    }

    /// Adds `request_headers_to_add_when_not_enforced` to the request of a
    /// [`LimitedNotEnforced`](LocalRateLimitVerdict::LimitedNotEnforced)
    /// verdict (nothing otherwise), formatting `%COMMAND%`s with `ctx`.
    pub fn apply_request_headers<H: HeaderMapMut + ?Sized>(
        &self,
        headers: &mut H,
        ctx: &FormatContext<'_>,
    ) {
        if self.verdict == LocalRateLimitVerdict::LimitedNotEnforced {
            self.limiter
                .request_headers
                .apply(headers, Side::Request, &self.route.facts(), ctx);
        }
    }

    /// Adds `response_headers_to_add` and the `x-ratelimit-*` headers to the
    /// answer of a [`Limited`](LocalRateLimitVerdict::Limited) verdict
    /// (nothing otherwise), formatting `%COMMAND%`s with `ctx`.
    pub fn apply_response_headers<H: HeaderMapMut + ?Sized>(
        &self,
        headers: &mut H,
        ctx: &FormatContext<'_>,
    ) {
        if self.verdict == LocalRateLimitVerdict::Limited {
            self.limiter
                .response_headers
                .apply(headers, Side::Response, &self.route.facts(), ctx);
            if let Some(h) = self.headers {
                h.apply(headers);
            }
        }
    }
}

/// Decides the verdict of a request `filter_enabled` took (see
/// [`LocalRateLimiter::enabled`]) from the buckets and the enforcement
/// draw.
pub(crate) fn decide(
    limiter: &LocalRateLimiter,
    descriptors: &[RateLimitDescriptor],
    now: Instant,
    random_value: u64,
) -> (LocalRateLimitVerdict, Option<RateLimitHeaders>) {
    let (allowed, headers) = limiter.take(descriptors, now);
    let verdict = if allowed {
        limiter.count(OK);
        LocalRateLimitVerdict::Allowed
    } else if takes(limiter.enforced, redraw(random_value)) {
        limiter.count(ENFORCED);
        LocalRateLimitVerdict::Limited
    } else {
        limiter.count(NOT_ENFORCED);
        LocalRateLimitVerdict::LimitedNotEnforced
    };
    (verdict, headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn a_bucket_takes_over_another_ones_tokens_and_part_token() {
        // 3 tokens, 1 per 100 ms; the old bucket counts from `t0`, the new
        // one from 250 ms later.
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(250);
        let old = Bucket::new(3, 1, Duration::from_millis(100));
        // All three taken at 0; at 300 ms, 3 back; take 2 and look at 340
        // ms: 1 token and 40% of the next.
        for _ in 0..3 {
            old.take(0).unwrap();
        }
        assert_eq!(old.take(3 * S / 10), Some(2));
        assert_eq!(old.take(3 * S / 10), Some(1));
        let new = Bucket::new(3, 1, Duration::from_millis(100));
        new.carry_from(&old, t0, t1, t0 + Duration::from_millis(340));
        // In the new bucket's time, 340 ms is 90 ms: one token, then the
        // next 60 ms later (at 150), not before.
        assert_eq!(new.take(90 * S / 1000), Some(0));
        assert_eq!(new.take(149 * S / 1000), None);
        assert_eq!(new.take(150 * S / 1000), Some(0));
        // A full old bucket gives a full new one (never more).
        let full = Bucket::new(3, 1, Duration::from_millis(100));
        let new = Bucket::new(3, 1, Duration::from_millis(100));
        new.carry_from(&full, t0, t1, t0 + Duration::from_secs(60));
        let taken = (0..5).filter(|_| new.take(60 * S).is_some()).count();
        assert_eq!(taken, 3);
        // An old bucket whose empty moment lies past `now` (a caller's
        // clock ahead spent its token at 10 s) keeps that debt: the next
        // token comes at 10.1 s, not 100 ms after the carry.
        let ahead = Bucket::new(1, 1, Duration::from_millis(100));
        ahead.take(10 * S).unwrap();
        let new = Bucket::new(1, 1, Duration::from_millis(100));
        new.carry_from(&ahead, t0, t0, t0 + Duration::from_secs(1));
        assert_eq!(new.take(11 * S / 10), None);
        assert_eq!(new.take(10 * S + S / 20), None);
        assert_eq!(new.take(10 * S + S / 10), Some(0));
        // Buckets of another shape are left as they are (full), even from
        // a spent one.
        let other = Bucket::new(3, 1, Duration::from_millis(200));
        for _ in 0..3 {
            other.take(0).unwrap();
        }
        let new = Bucket::new(3, 1, Duration::from_millis(100));
        new.carry_from(&other, t0, t0, t0);
        assert_eq!(new.take(0), Some(2));
    }

    #[test]
    fn a_bucket_gives_its_burst_then_one_token_per_interval() {
        // 3 tokens, 1 per 100 ms.
        let b = Bucket::new(3, 1, Duration::from_millis(100));
        assert_eq!(b.take(0), Some(2));
        assert_eq!(b.take(0), Some(1));
        assert_eq!(b.take(0), Some(0));
        assert_eq!(b.take(0), None);
        assert_eq!(b.take(S / 10 - 1), None);
        assert_eq!(b.take(S / 10), Some(0));
        assert_eq!(b.take(S / 10), None);
        // Idle time refills up to the capacity, not beyond.
        assert_eq!(b.tokens(100 * S), 3);
        assert_eq!(b.take(100 * S), Some(2));
    }

    #[test]
    fn tokens_per_fill_spreads_the_fill_over_the_interval() {
        // 10 per second: one every 100 ms.
        let b = Bucket::new(10, 10, Duration::from_secs(1));
        for left in (0..10).rev() {
            assert_eq!(b.take(0), Some(left));
        }
        assert_eq!(b.take(S / 20), None);
        assert_eq!(b.take(S / 10), Some(0));
        assert_eq!(b.figures(S / 10, 0).reset, 0);
        let slow = Bucket::new(1, 1, Duration::from_secs(60));
        assert_eq!(slow.take(0), Some(0));
        assert_eq!(slow.take(S), None);
        // 59 whole seconds to go at 1 s.
        assert_eq!(slow.figures(S, 0).reset, 59);
        assert_eq!(slow.figures(S, 0).limit, 1);
    }

    #[test]
    fn a_clock_behind_the_bucket_finds_no_token() {
        let b = Bucket::new(1, 1, Duration::from_secs(1));
        assert_eq!(b.take(5 * S), Some(0));
        // A thread whose `now` was read earlier.
        assert_eq!(b.take(S), None);
        assert_eq!(b.tokens(S), 0);
    }

    #[test]
    fn long_intervals_keep_their_capacity() {
        const DAY: u64 = 86_400;
        const YEAR: u64 = 365 * DAY;
        // Refills taking longer than 2^62 ns (146 years) use coarser units.
        for (max, interval, per_fill) in [
            (100_000, DAY, 1),
            (1000, YEAR, 1),
            (100, 10 * YEAR, 1),
            (u32::MAX, u64::from(u32::MAX), 1),
            (u32::MAX, u64::MAX / 1000, 1),
            (7, u64::MAX / 1000, u32::MAX),
        ] {
            let b = Bucket::new(max, per_fill, Duration::from_secs(interval));
            assert!(b.capacity <= SPAN && b.per_token >= 1, "{max} {interval}");
            assert_eq!(b.tokens(0), u64::from(max), "{max} {interval}");
            if max <= 100_000 {
                for left in (0..u64::from(max)).rev() {
                    assert_eq!(b.take(0), Some(left));
                }
                assert_eq!(b.take(0), None);
                // One token back after one token's time, within rounding.
                let token = Duration::from_secs(interval).as_nanos() / u128::from(per_fill);
                let at = u64::try_from(token + token / 1000).unwrap_or(u64::MAX);
                if at < u64::MAX {
                    assert_eq!(b.take(at), Some(0), "{max} {interval}");
                }
            }
            let f = b.figures(0, 0);
            assert_eq!(f.limit, u64::from(max));
        }
        // A bucket whose refill exceeds 584 years never overflows the clock.
        let b = Bucket::new(1, 1, Duration::from_secs(u64::MAX / 1000));
        assert_eq!(b.take(u64::MAX), Some(0));
        assert_eq!(b.take(u64::MAX), None);
        assert!(b.figures(u64::MAX, 0).reset > 0);
        let fast = Bucket::new(u32::MAX, u32::MAX, Duration::from_millis(50));
        assert_eq!((fast.per_token, fast.shift), (1, 0));
        assert!(fast.take(u64::MAX).is_some());
    }

    #[test]
    fn threads_never_take_more_than_the_bucket_holds() {
        let b = Bucket::new(1000, 1, Duration::from_secs(3600));
        let taken = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..500 {
                        if b.take(0).is_some() {
                            taken.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(taken.load(Ordering::Relaxed), 1000);
        assert_eq!(b.tokens(0), 0);
    }

    #[test]
    fn enums_read_as_envoys_json_reader_reads_them() {
        let names = ["OVERRIDE", "INCLUDE", "IGNORE"];
        let at = |v: serde_json::Value| enum_index(&v, &names);
        assert_eq!(at(serde_json::json!("INCLUDE")), Some(1));
        assert_eq!(at(serde_json::json!("ignore")), Some(2));
        assert_eq!(at(serde_json::json!(1)), Some(1));
        assert_eq!(at(serde_json::json!("2")), Some(2));
        assert_eq!(at(serde_json::Value::Null), Some(0));
        assert_eq!(at(serde_json::json!(3)), None);
        assert_eq!(at(serde_json::json!("3")), None);
        assert_eq!(at(serde_json::json!("SOMETIMES")), None);
        assert_eq!(at(serde_json::json!(-1)), None);
        assert_eq!(at(serde_json::json!(true)), None);
    }

    #[test]
    fn decimals() {
        let mut buf = itoa_buf();
        assert_eq!(decimal(0, &mut buf), "0");
        assert_eq!(decimal(429, &mut buf), "429");
        assert_eq!(decimal(u64::MAX, &mut buf), "18446744073709551615");
    }
}
