//! Header mutations (Envoy's `HeaderParser`): remove, then add, with Envoy's
//! append actions, applied to any header map through [`HeaderMapMut`].

use std::borrow::Cow;

use smallvec::SmallVec;

use crate::config::{AppendAction, HeaderValueOption};
use crate::format::{FormatContext, HeaderFormat, RouteFacts, Side};

/// A mutable header map the router can edit. Implemented for
/// [`http::HeaderMap`] and for a plain `Vec<(String, String)>`.
pub trait HeaderMapMut {
    /// The first value of `name` (lower-case), if present and valid UTF-8.
    fn first(&self, name: &str) -> Option<&str>;
    /// Whether `name` has at least one value.
    fn contains(&self, name: &str) -> bool;
    /// Adds one more value.
    fn append(&mut self, name: &str, value: &str);
    /// Replaces every value with `value`.
    fn set(&mut self, name: &str, value: &str);
    /// Removes every value.
    fn remove(&mut self, name: &str);
}

impl HeaderMapMut for Vec<(String, String)> {
    fn first(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn contains(&self, name: &str) -> bool {
        self.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
    fn append(&mut self, name: &str, value: &str) {
        self.push((name.to_owned(), value.to_owned()));
    }
    fn set(&mut self, name: &str, value: &str) {
        HeaderMapMut::remove(self, name);
        HeaderMapMut::append(self, name, value);
    }
    fn remove(&mut self, name: &str) {
        self.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

/// Names and values were validated when the table was built; a value the
/// `http` crate still refuses is skipped rather than panicking.
impl HeaderMapMut for http::HeaderMap {
    fn first(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
    fn contains(&self, name: &str) -> bool {
        self.contains_key(name)
    }
    fn append(&mut self, name: &str, value: &str) {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            http::HeaderMap::append(self, n, v);
        }
    }
    fn set(&mut self, name: &str, value: &str) {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(value),
        ) {
            self.insert(n, v);
        }
    }
    fn remove(&mut self, name: &str) {
        http::HeaderMap::remove(self, name);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct AddHeader {
    pub(crate) name: Box<str>,
    pub(crate) value: HeaderFormat,
    pub(crate) action: AppendAction,
    pub(crate) keep_empty: bool,
}

/// One level's mutations: removals first, then additions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mutations {
    pub(crate) remove: Box<[Box<str>]>,
    pub(crate) add: Box<[AddHeader]>,
    /// Whether a value has `%COMMAND%`s to format per request.
    pub(crate) formats: bool,
}

impl Mutations {
    /// Whether applying these changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// The mutations: `remove`, then `add`.
    pub(crate) fn new(remove: Vec<Box<str>>, add: Vec<AddHeader>) -> Mutations {
        Mutations {
            formats: add
                .iter()
                .any(|h| matches!(h.value, HeaderFormat::Pieces(_))),
            remove: remove.into(),
            add: add.into(),
        }
    }

    /// Envoy's `HeaderParser::evaluateHeaders`: removals first; then every
    /// value is formatted and every append action decided against the
    /// headers as the removals left them; then the overwrites are made, and
    /// then the appends. So `ADD_IF_ABSENT` and `OVERWRITE_IF_EXISTS` look
    /// at what came in, not at what this list added, and a `%REQ(...)%`
    /// reads the incoming value.
    pub(crate) fn apply<H: HeaderMapMut + ?Sized>(
        &self,
        headers: &mut H,
        side: Side,
        facts: &RouteFacts<'_>,
        ctx: &FormatContext<'_>,
    ) {
        for name in self.remove.iter() {
            headers.remove(name);
        }
        if self.add.is_empty() {
            return;
        }
        if !self.formats && self.add.len() <= 64 {
            return self.apply_plain(headers);
        }
        let mut overwrite: SmallVec<[(&str, Cow<'_, str>); 4]> = SmallVec::new();
        let mut append: SmallVec<[(&str, Cow<'_, str>); 4]> = SmallVec::new();
        {
            let current: &H = headers;
            let own = |name: &str| current.first(name).map(str::to_owned);
            for h in self.add.iter() {
                let value = h.value.render(&own, side, facts, ctx);
                if value.is_empty() && !h.keep_empty {
                    continue;
                }
                match decide(h.action, || current.contains(&h.name)) {
                    Some(Write::Overwrite) => overwrite.push((&h.name, value)),
                    Some(Write::Append) => append.push((&h.name, value)),
                    None => {}
                }
            }
        }
        for (name, value) in &overwrite {
            headers.set(name, value);
        }
        for (name, value) in &append {
            headers.append(name, value);
        }
    }
}

/// How one header addition writes, once decided.
enum Write {
    /// Replace every value of the header.
    Overwrite,
    /// Add one more value.
    Append,
}

/// What `action` does given whether the header is present (asked only
/// when it matters); `None`: nothing.
fn decide(action: AppendAction, present: impl FnOnce() -> bool) -> Option<Write> {
    match action {
        AppendAction::AppendIfExistsOrAdd => Some(Write::Append),
        AppendAction::AddIfAbsent => (!present()).then_some(Write::Append),
        AppendAction::OverwriteIfExistsOrAdd => Some(Write::Overwrite),
        AppendAction::OverwriteIfExists => present().then_some(Write::Overwrite),
    }
}

impl Mutations {
    /// [`Self::apply`]'s additions for a list of plain values (at most 64):
    /// the same decisions, kept as bits, so nothing is staged on the heap.
    fn apply_plain<H: HeaderMapMut + ?Sized>(&self, headers: &mut H) {
        let (mut overwrite, mut append) = (0u64, 0u64);
        for (i, h) in self.add.iter().enumerate() {
            let HeaderFormat::Plain(value) = &h.value else {
                continue;
            };
            if value.is_empty() && !h.keep_empty {
                continue;
            }
            let bit = 1u64 << i;
            match decide(h.action, || headers.contains(&h.name)) {
                Some(Write::Overwrite) => overwrite |= bit,
                Some(Write::Append) => append |= bit,
                None => {}
            }
        }
        for (bits, set) in [(overwrite, true), (append, false)] {
            for (i, h) in self.add.iter().enumerate() {
                if bits & (1u64 << i) == 0 {
                    continue;
                }
                if let HeaderFormat::Plain(value) = &h.value {
                    if set {
                        headers.set(&h.name, value);
                    } else {
                        headers.append(&h.name, value);
                    }
                }
            }
        }
    }
}

/// Why a header mutation is invalid.
pub(crate) fn check_name(name: &str, verb: &str) -> Result<Box<str>, String> {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with(':') || lower == "host" {
        return Err(format!(
            ":-prefixed or host headers may not be {verb} (got {name:?})"
        ));
    }
    if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
        return Err(format!("{name:?} is not a valid header name"));
    }
    Ok(lower.into())
}

pub(crate) fn compile_add(h: &HeaderValueOption) -> Result<AddHeader, String> {
    let (key, value) = match (&h.key, &h.value, &h.header) {
        (Some(k), v, None) => (k.as_str(), v.as_deref().unwrap_or("")),
        (None, None, Some(kv)) => (kv.key.as_str(), kv.value.as_str()),
        (None, _, None) => return Err("key is required".into()),
        _ => return Err("set either key/value or header, not both".into()),
    };
    let name = check_name(key, "modified")?;
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("value of {key:?} contains CR, LF or NUL"));
    }
    if http::HeaderValue::from_str(value).is_err() {
        return Err(format!("value of {key:?} is not a valid header value"));
    }
    let value = HeaderFormat::parse(value).map_err(|e| format!("value of {key:?}: {e}"))?;
    let action = match (h.append_action, h.append) {
        (Some(a), None) => a,
        (None, Some(true)) | (None, None) => AppendAction::AppendIfExistsOrAdd,
        (None, Some(false)) => AppendAction::OverwriteIfExistsOrAdd,
        (Some(_), Some(_)) => return Err("set either append_action or append, not both".into()),
    };
    Ok(AddHeader {
        name,
        value,
        action,
        keep_empty: h.keep_empty_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(name: &str, value: &str, action: AppendAction) -> AddHeader {
        AddHeader {
            name: name.into(),
            value: HeaderFormat::parse(value).unwrap(),
            action,
            keep_empty: false,
        }
    }

    fn run(m: &Mutations, h: &mut Vec<(String, String)>) -> Vec<String> {
        let facts = RouteFacts {
            route_name: "r",
            cluster: None,
            method: "GET",
            path: Some("/"),
            authority: "h",
            scheme: "http",
        };
        m.apply(h, Side::Request, &facts, &FormatContext::new());
        h.iter().map(|(n, v)| format!("{n}={v}")).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn append_actions() {
        let m = Mutations::new(
            vec!["gone".into()],
            vec![
                add("a", "2", AppendAction::AppendIfExistsOrAdd),
                add("b", "2", AppendAction::AddIfAbsent),
                add("c", "2", AppendAction::OverwriteIfExistsOrAdd),
                add("d", "2", AppendAction::OverwriteIfExists),
                add("e", "2", AppendAction::OverwriteIfExists),
                add("f", "", AppendAction::AppendIfExistsOrAdd),
            ],
        );
        let mut h: Vec<(String, String)> = ["a", "b", "c", "d", "gone"]
            .iter()
            .map(|n| (n.to_string(), "1".to_string()))
            .collect();
        // Overwrites first, then appends (Envoy's order).
        assert_eq!(run(&m, &mut h), ["a=1", "b=1", "c=2", "d=2", "a=2"]);
    }

    /// Plain lists (decided through bits) and lists with a formatted value
    /// (staged) give the same result, past 64 entries too.
    #[test]
    fn plain_and_formatted_lists_agree() {
        let actions = [
            AppendAction::AppendIfExistsOrAdd,
            AppendAction::AddIfAbsent,
            AppendAction::OverwriteIfExistsOrAdd,
            AppendAction::OverwriteIfExists,
        ];
        for n in [1usize, 5, 63, 70] {
            let entries = |formatted: bool| {
                let mut v: Vec<AddHeader> = (0..n)
                    .map(|i| add(&format!("h{}", i % 7), &format!("v{i}"), actions[i % 4]))
                    .collect();
                if formatted {
                    v.push(add("z", "%ROUTE_NAME%", AppendAction::AppendIfExistsOrAdd));
                } else {
                    v.push(add("z", "r", AppendAction::AppendIfExistsOrAdd));
                }
                Mutations::new(vec!["h6".into()], v)
            };
            let (plain, formatted) = (entries(false), entries(true));
            assert!(!plain.formats && formatted.formats);
            let start = headers(&[("h1", "old"), ("h3", "old"), ("h6", "old")]);
            assert_eq!(
                run(&plain, &mut start.clone()),
                run(&formatted, &mut start.clone()),
                "{n}"
            );
        }
    }

    /// Every decision and every value is taken against the headers as the
    /// removals left them, not as earlier entries of the same list changed
    /// them (Envoy's evaluateHeaders since 1.27).
    #[test]
    fn one_list_is_decided_against_the_incoming_headers() {
        let m = Mutations::new(
            vec!["r".into()],
            vec![
                add("x", "1", AppendAction::AppendIfExistsOrAdd),
                add("x", "2", AppendAction::AddIfAbsent),
                add("y", "3", AppendAction::OverwriteIfExists),
                add("z", "4", AppendAction::AppendIfExistsOrAdd),
                add("z", "5", AppendAction::OverwriteIfExistsOrAdd),
                add("copy", "%REQ(v)%", AppendAction::AppendIfExistsOrAdd),
                add("v", "new", AppendAction::OverwriteIfExistsOrAdd),
                add("r2", "%REQ(r)%", AppendAction::AppendIfExistsOrAdd),
            ],
        );
        let mut h = headers(&[("v", "old"), ("r", "gone")]);
        assert_eq!(
            run(&m, &mut h),
            // x was absent: both added. y was absent: not overwritten. z's
            // overwrite comes before its append. copy reads v as it came in;
            // r2 reads r after its removal (empty: not added).
            ["z=5", "v=new", "x=1", "x=2", "z=4", "copy=old"]
        );
    }

    #[test]
    fn pseudo_and_host_rejected() {
        assert!(check_name(":path", "removed")
            .unwrap_err()
            .contains("may not be removed"));
        assert!(check_name("Host", "modified").is_err());
        assert_eq!(&*check_name("X-A", "modified").unwrap(), "x-a");
    }
}
