//! Prometheus text (0.0.4) and OpenMetrics exposition.

use std::sync::Arc;

use crate::config::{Layout, QUANTILES};
use crate::histogram::HistogramSnapshot;
use crate::request::{
    RequestStats, StatsKind, StatusClass, ACTIVE, CLASS0, CODE0, CONNECT_FAILURES, REQUESTS,
    TIMEOUTS,
};

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// Prometheus text exposition format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text format (ends with `# EOF`).
    OpenMetrics,
}

impl Format {
    /// The HTTP `Content-Type` of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Appends `v` escaped for use inside a double-quoted label value: backslash,
/// double quote and line feed become `\\`, `\"` and `\n`.
pub fn escape_label_value(v: &str, out: &mut String) {
    let mut start = 0;
    for (i, b) in v.bytes().enumerate() {
        let rep = match b {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            b'\n' => "\\n",
            _ => continue,
        };
        out.push_str(&v[start..i]);
        out.push_str(rep);
        start = i + 1;
    }
    out.push_str(&v[start..]);
}

/// "00" to "99": numbers are written two digits per division.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends the decimal digits of `v`.
pub(crate) fn write_u64(v: u64, out: &mut String) {
    if v < 10 {
        // Most counts in a large exposition are small.
        out.push(char::from(b'0' + v as u8));
        return;
    }
    let mut buf = [0u8; 20];
    let i = digits_u64(v, &mut buf);
    push_ascii(&buf[i..], out);
}

/// Writes `v` right-aligned into `buf` (at least 20 bytes), returns where
/// the digits start.
#[inline]
fn digits_u64(mut v: u64, buf: &mut [u8]) -> usize {
    let mut i = buf.len();
    while v >= 100 {
        let r = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[r..r + 2]);
    }
    if v >= 10 {
        let r = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[r..r + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    i
}

/// Like [`digits_u64`] for any `u128` (at least 39 bytes).
fn digits(mut v: u128, buf: &mut [u8]) -> usize {
    let mut i = buf.len();
    // Narrow to u64 as soon as possible: u128 division is slow.
    while v > u128::from(u64::MAX) {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    digits_u64(v as u64, &mut buf[..i])
}

#[inline]
fn push_ascii(bytes: &[u8], out: &mut String) {
    // Only ASCII digits and '.' are ever passed in. Validating them as a
    // whole is cheaper than pushing them one char at a time.
    if let Ok(s) = std::str::from_utf8(bytes) {
        out.push_str(s);
    }
}

fn write_i64(v: i64, out: &mut String) {
    if v < 0 {
        out.push('-');
    }
    write_u64(v.unsigned_abs(), out);
}

/// Appends `ns` nanoseconds as decimal seconds, exactly: `0.005`, `1.0`.
pub(crate) fn write_seconds(ns: u128, out: &mut String) {
    const NS: u64 = 1_000_000_000;
    let mut buf = [0u8; 56];
    // u128 division is slow, and every value but a huge sum fits a u64.
    let (whole, mut frac) = match u64::try_from(ns) {
        Ok(ns) => (u128::from(ns / NS), ns % NS),
        Err(_) => (ns / u128::from(NS), (ns % u128::from(NS)) as u64),
    };
    // Nine fraction digits, trailing zeros dropped (one kept after the point).
    let mut end = buf.len();
    if frac == 0 {
        end -= 1;
        buf[end] = b'0';
    } else {
        let mut width = 9;
        while frac.is_multiple_of(10) {
            frac /= 10;
            width -= 1;
        }
        let start = digits_u64(frac, &mut buf[..end]);
        // Leading zeros of the fraction.
        let first = end - width;
        buf[first..start].fill(b'0');
        end = first;
    }
    end -= 1;
    buf[end] = b'.';
    let start = match u64::try_from(whole) {
        Ok(w) => digits_u64(w, &mut buf[..end]),
        Err(_) => digits(whole, &mut buf[..end]),
    };
    push_ascii(&buf[start..], out);
}

const QUANTILE_VALUES: [f64; QUANTILES.len()] = {
    let mut v = [0.0; QUANTILES.len()];
    let mut i = 0;
    while i < v.len() {
        v[i] = QUANTILES[i].0;
        i += 1;
    }
    v
};

/// Values of one histogram for every stats set, laid out flat.
#[derive(Default)]
struct HistColumn {
    cumulative: Vec<u64>,
    count: Vec<u64>,
    sum: Vec<u128>,
    quantiles: Vec<[Option<u64>; QUANTILES.len()]>,
}

impl HistColumn {
    fn push(&mut self, s: &HistogramSnapshot, layout: &Layout) {
        s.cumulative(&layout.bound_buckets, &mut self.cumulative);
        self.count.push(s.count());
        self.sum.push(s.sum());
        if layout.quantiles {
            let mut q = [None; QUANTILES.len()];
            s.quantiles_into(&QUANTILE_VALUES, &mut q);
            self.quantiles.push(q);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

/// The label text of every stats set, in one buffer.
#[derive(Default)]
struct Labels {
    text: String,
    ends: Vec<usize>,
}

impl Labels {
    fn push(&mut self, label: &str) {
        self.text.push_str(label);
        self.ends.push(self.text.len());
    }

    fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(a, b)| self.text.get(a..b).unwrap_or(""))
    }
}

struct Writer<'a> {
    out: &'a mut String,
    format: Format,
    prefix: &'static str,
    noun: &'static str,
}

impl Writer<'_> {
    /// HELP and TYPE lines; `{}` in `help` becomes the noun. `name` is the
    /// family name without `_total` for counters.
    fn header(&mut self, name: &str, ty: Type, help: &str) {
        let ty_s = match ty {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
            Type::Summary => "summary",
        };
        let suffix = if ty == Type::Counter && self.format == Format::Prometheus {
            "_total"
        } else {
            ""
        };
        let (before, after) = help.split_once("{}").unwrap_or((help, ""));
        for (line, text) in [("# HELP ", None), ("# TYPE ", Some(ty_s))] {
            self.out.push_str(line);
            self.out.push_str(self.prefix);
            self.out.push_str(name);
            self.out.push_str(suffix);
            self.out.push(' ');
            match text {
                Some(t) => self.out.push_str(t),
                None => {
                    self.out.push_str(before);
                    self.out.push_str(self.noun);
                    self.out.push_str(after);
                }
            }
            self.out.push('\n');
        }
    }

    /// `prefix name suffix {`: the fixed start of a sample line.
    fn head(&self, name: &str, suffix: &str) -> String {
        format!("{}{name}{suffix}{{", self.prefix)
    }

    #[inline]
    fn start(&mut self, head: &str, label: &str, tail: &str) {
        self.out.push_str(head);
        self.out.push_str(label);
        self.out.push_str(tail);
    }

    fn counter(
        &mut self,
        labels: &Labels,
        cells: &[u64],
        width: usize,
        name: &str,
        help: &str,
        cell: usize,
    ) {
        self.header(name, Type::Counter, help);
        let head = self.head(name, "_total");
        for (s, row) in labels.iter().zip(cells.chunks_exact(width)) {
            self.start(&head, s, "} ");
            write_u64(row[cell], self.out);
            self.out.push('\n');
        }
    }

    fn histogram(
        &mut self,
        labels: &Labels,
        layout: &Layout,
        col: &HistColumn,
        name: &str,
        help: &str,
    ) {
        self.header(name, Type::Histogram, help);
        let bucket = self.head(name, "_bucket");
        let sum = self.head(name, "_sum");
        let count = self.head(name, "_count");
        let tails: Vec<String> = layout
            .le
            .iter()
            .map(|le| format!(",le=\"{le}\"}} "))
            .collect();
        let nb = layout.bounds.len();
        let mut pre = String::new();
        for (i, s) in labels.iter().enumerate() {
            let cum = &col.cumulative[i * nb..(i + 1) * nb];
            pre.clear();
            pre.push_str(&bucket);
            pre.push_str(s);
            for (tail, &n) in tails.iter().zip(cum) {
                self.out.push_str(&pre);
                self.out.push_str(tail);
                write_u64(n, self.out);
                self.out.push('\n');
            }
            self.out.push_str(&pre);
            self.out.push_str(",le=\"+Inf\"} ");
            write_u64(col.count[i], self.out);
            self.out.push('\n');
            self.start(&sum, s, "} ");
            write_seconds(col.sum[i], self.out);
            self.out.push('\n');
            self.start(&count, s, "} ");
            write_u64(col.count[i], self.out);
            self.out.push('\n');
        }
    }

    fn summary(&mut self, labels: &Labels, col: &HistColumn, name: &str, help: &str) {
        // No _sum and _count: they would repeat the histogram family's.
        self.header(name, Type::Summary, help);
        let head = self.head(name, "");
        let tails: Vec<String> = QUANTILES
            .iter()
            .map(|(_, q)| format!(",quantile=\"{q}\"}} "))
            .collect();
        let mut pre = String::new();
        for (i, s) in labels.iter().enumerate() {
            pre.clear();
            pre.push_str(&head);
            pre.push_str(s);
            for (tail, v) in tails.iter().zip(col.quantiles[i]) {
                self.out.push_str(&pre);
                self.out.push_str(tail);
                match v {
                    Some(ns) => write_seconds(u128::from(ns), self.out),
                    None => self.out.push_str("NaN"),
                }
                self.out.push('\n');
            }
        }
    }
}

/// Buffers a render reuses: the registry keeps one, so that a scrape of many
/// routes does not fault in megabytes of fresh memory every time.
#[derive(Default)]
pub(crate) struct Scratch {
    cells: Vec<u64>,
    request: HistColumn,
    upstream: HistColumn,
    labels: Labels,
    idx: Vec<u16>,
    counts: Vec<u64>,
    ends: Vec<usize>,
    extremes: Vec<(u64, u64)>,
    sums: Vec<u128>,
    snap: HistogramSnapshot,
}

impl HistColumn {
    fn clear(&mut self) {
        self.cumulative.clear();
        self.count.clear();
        self.sum.clear();
        self.quantiles.clear();
    }
}

/// Renders the three kinds of stats (routes, virtual hosts, clusters).
pub(crate) fn render(
    layout: &Layout,
    sets: &[Vec<Arc<RequestStats>>],
    format: Format,
    out: &mut String,
    scratch: &mut Scratch,
) {
    let width = CODE0 + layout.codes.len();
    let Scratch {
        cells,
        request,
        upstream,
        labels,
        idx,
        counts,
        ends,
        extremes,
        sums,
        snap,
    } = scratch;
    for (&kind, stats) in StatsKind::ALL.iter().zip(sets) {
        if stats.is_empty() {
            continue;
        }
        // Read everything first, so that each family is one pass of writes.
        cells.clear();
        cells.resize(stats.len() * width, 0);
        request.clear();
        upstream.clear();
        // Labels copied next to each other: every family pass reads them
        // again, and scattered small allocations would miss the cache.
        labels.text.clear();
        labels.ends.clear();
        // Read in passes whose loads do not depend on each other, so that the
        // cache misses of many stats overlap: labels and the buckets in use,
        // then the bucket counts, then the counter lines.
        idx.clear();
        ends.clear();
        extremes.clear();
        let mut warm = 0;
        for s in stats {
            warm ^= s.warm();
        }
        std::hint::black_box(warm);
        for s in stats {
            labels.push(&s.label);
            for up in [false, true] {
                let core = s.core(up);
                core.used_buckets(idx);
                ends.push(idx.len());
                extremes.push(core.extremes());
            }
        }
        counts.clear();
        let mut start = 0;
        for (k, &end) in ends.iter().enumerate() {
            stats[k / 2]
                .core(k % 2 == 1)
                .load_buckets(&idx[start..end], counts);
            start = end;
        }
        sums.clear();
        for (s, row) in stats.iter().zip(cells.chunks_exact_mut(width)) {
            s.cells.sum_all(row);
            sums.push(s.latency_sum(false));
            sums.push(s.latency_sum(true));
        }
        let mut start = 0;
        for (k, (&end, &ext)) in ends.iter().zip(extremes.iter()).enumerate() {
            snap.fill(&idx[start..end], &counts[start..end], ext);
            snap.sum = sums[k];
            if k % 2 == 1 {
                upstream.push(snap, layout);
            } else {
                request.push(snap, layout);
            }
            start = end;
        }
        let (labels, cells, request, upstream) = (&*labels, &*cells, &*request, &*upstream);
        let per_line = 60 + labels.text.len() / stats.len();
        let lines = 12 + layout.codes.len() + 2 * (layout.bounds.len() + 3);
        let lines = lines
            + if layout.quantiles {
                2 * QUANTILES.len()
            } else {
                0
            };
        out.reserve(stats.len() * lines * per_line);
        let mut w = Writer {
            out: &mut *out,
            format,
            prefix: kind.prefix(),
            noun: kind.noun(),
        };
        w.counter(
            labels,
            cells,
            width,
            "requests",
            "Requests started on the {}.",
            REQUESTS,
        );
        w.header(
            "requests_active",
            Type::Gauge,
            "Requests in flight on the {}.",
        );
        let head = w.head("requests_active", "");
        for (s, row) in labels.iter().zip(cells.chunks_exact(width)) {
            w.start(&head, s, "} ");
            write_i64(row[ACTIVE] as i64, w.out);
            w.out.push('\n');
        }
        w.header(
            "responses",
            Type::Counter,
            "Responses on the {} by status class.",
        );
        let head = w.head("responses", "_total");
        let tails: Vec<String> = StatusClass::ALL
            .iter()
            .map(|c| format!(",class=\"{}\"}} ", c.label()))
            .collect();
        for (s, row) in labels.iter().zip(cells.chunks_exact(width)) {
            for (k, tail) in tails.iter().enumerate() {
                let n = row[CLASS0 + k];
                if StatusClass::ALL[k] == StatusClass::Other && n == 0 {
                    continue;
                }
                w.start(&head, s, tail);
                write_u64(n, w.out);
                w.out.push('\n');
            }
        }
        if !layout.codes.is_empty() {
            w.header(
                "responses_by_code",
                Type::Counter,
                "Responses on the {} with a tracked status code.",
            );
            let head = w.head("responses_by_code", "_total");
            let tails: Vec<String> = layout
                .code_labels
                .iter()
                .map(|c| format!(",code=\"{c}\"}} "))
                .collect();
            for (s, row) in labels.iter().zip(cells.chunks_exact(width)) {
                for (k, tail) in tails.iter().enumerate() {
                    w.start(&head, s, tail);
                    write_u64(row[CODE0 + k], w.out);
                    w.out.push('\n');
                }
            }
        }
        w.counter(
            labels,
            cells,
            width,
            "timeouts",
            "Requests on the {} that timed out.",
            TIMEOUTS,
        );
        w.counter(
            labels,
            cells,
            width,
            "upstream_connect_failures",
            "Failed upstream connection attempts for the {}.",
            CONNECT_FAILURES,
        );
        let hists = [
            (request, "request", "Request"),
            (upstream, "upstream", "Upstream"),
        ];
        for (col, base, what) in hists {
            w.histogram(
                labels,
                layout,
                col,
                &format!("{base}_duration_seconds"),
                &format!("{what} latency on the {{}} in seconds."),
            );
            if layout.quantiles {
                w.summary(
                    labels,
                    col,
                    &format!("{base}_duration_quantile_seconds"),
                    &format!(
                        "{what} latency quantiles on the {{}} in seconds (quantile 1 is the maximum)."
                    ),
                );
            }
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    // Buffers sized for many more stats than are left (routes retired for
    // good) are given back rather than kept for ever.
    let most = sets.iter().map(Vec::len).max().unwrap_or(0);
    if cells.capacity() > 4 * most * width + 1024 {
        *scratch = Scratch::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        let mut s = String::new();
        escape_label_value("a\"b\\c\nd é", &mut s);
        assert_eq!(s, "a\\\"b\\\\c\\nd é");
    }

    #[test]
    fn seconds_are_exact_decimals() {
        let f = |ns: u128| {
            let mut s = String::new();
            write_seconds(ns, &mut s);
            s
        };
        assert_eq!(f(0), "0.0");
        assert_eq!(f(5_000_000), "0.005");
        assert_eq!(f(1_000_000_000), "1.0");
        assert_eq!(f(2_500_000_001), "2.500000001");
        assert_eq!(f(u128::from(u64::MAX) * 2), "36893488147.41910323");
        let mut s = String::new();
        write_u64(u64::MAX, &mut s);
        write_i64(i64::MIN, &mut s);
        assert_eq!(s, "18446744073709551615-9223372036854775808");
    }

    #[test]
    fn scratch_is_reused_and_given_back_when_oversized() {
        let registry = crate::Registry::new(crate::StatsConfig::new()).unwrap();
        let many: Vec<_> = (0..500)
            .map(|i| registry.route(&format!("r{i}")).unwrap())
            .collect();
        let layout = &many[0].layout;
        let text = |routes: &[Arc<RequestStats>], scratch: &mut Scratch| {
            let mut out = String::new();
            let sets = [routes.to_vec(), vec![], vec![]];
            render(layout, &sets, Format::Prometheus, &mut out, scratch);
            out
        };
        let mut scratch = Scratch::default();
        let full = text(&many, &mut scratch);
        let big = scratch.cells.capacity();
        assert!(big >= 500 * (CODE0 + layout.codes.len()));
        // The same size again: the buffers are kept.
        assert_eq!(text(&many, &mut scratch), full);
        assert_eq!(scratch.cells.capacity(), big);
        // Far fewer stats: given back, and the text is unaffected by the
        // buffers' history.
        let one = text(&many[..1], &mut scratch);
        assert_eq!(scratch.cells.capacity(), 0);
        assert_eq!(one, text(&many[..1], &mut Scratch::default()));
        assert!(full.len() > 100 * one.len());
    }

    #[test]
    fn numbers_match_std_formatting() {
        // Every digit count, both sides of each power of ten, and a spread
        // of odd values, against `Display` and a plain decimal expansion.
        let mut values: Vec<u128> = vec![0, 1, 9, 10, 99, 100, u128::from(u64::MAX), u128::MAX];
        let mut p = 1u128;
        while let Some(next) = p.checked_mul(10) {
            values.extend([p - 1, p, p + 1, p * 7 + 3]);
            p = next;
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(u128::from(x >> (x % 64)));
        }
        for v in values {
            if let Ok(small) = u64::try_from(v) {
                let mut s = String::new();
                write_u64(small, &mut s);
                assert_eq!(s, small.to_string());
            }
            let mut s = String::new();
            write_seconds(v, &mut s);
            let frac = format!("{:09}", v % 1_000_000_000);
            let frac = frac.trim_end_matches('0');
            let want = format!(
                "{}.{}",
                v / 1_000_000_000,
                if frac.is_empty() { "0" } else { frac }
            );
            assert_eq!(s, want, "{v} ns");
        }
    }
}
