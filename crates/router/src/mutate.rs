//! Header mutations (Envoy's `HeaderParser`): remove, then add, with Envoy's
//! append actions, applied to any header map through [`HeaderMapMut`].

use crate::config::{AppendAction, HeaderValueOption};

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
    pub(crate) value: Box<str>,
    pub(crate) action: AppendAction,
    pub(crate) keep_empty: bool,
}

/// One level's mutations: removals first, then additions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Mutations {
    pub(crate) remove: Box<[Box<str>]>,
    pub(crate) add: Box<[AddHeader]>,
}

impl Mutations {
    /// Whether applying these changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    pub(crate) fn apply<H: HeaderMapMut + ?Sized>(&self, headers: &mut H) {
        for name in self.remove.iter() {
            headers.remove(name);
        }
        for h in self.add.iter() {
            if h.value.is_empty() && !h.keep_empty {
                continue;
            }
            match h.action {
                AppendAction::AppendIfExistsOrAdd => headers.append(&h.name, &h.value),
                AppendAction::AddIfAbsent => {
                    if !headers.contains(&h.name) {
                        headers.append(&h.name, &h.value)
                    }
                }
                AppendAction::OverwriteIfExistsOrAdd => headers.set(&h.name, &h.value),
                AppendAction::OverwriteIfExists => {
                    if headers.contains(&h.name) {
                        headers.set(&h.name, &h.value)
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
    let action = match (h.append_action, h.append) {
        (Some(a), None) => a,
        (None, Some(true)) | (None, None) => AppendAction::AppendIfExistsOrAdd,
        (None, Some(false)) => AppendAction::OverwriteIfExistsOrAdd,
        (Some(_), Some(_)) => return Err("set either append_action or append, not both".into()),
    };
    Ok(AddHeader {
        name,
        value: value.into(),
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
            value: value.into(),
            action,
            keep_empty: false,
        }
    }

    #[test]
    fn append_actions() {
        let m = Mutations {
            remove: vec!["gone".into()].into(),
            add: vec![
                add("a", "2", AppendAction::AppendIfExistsOrAdd),
                add("b", "2", AppendAction::AddIfAbsent),
                add("c", "2", AppendAction::OverwriteIfExistsOrAdd),
                add("d", "2", AppendAction::OverwriteIfExists),
                add("e", "2", AppendAction::OverwriteIfExists),
                add("f", "", AppendAction::AppendIfExistsOrAdd),
            ]
            .into(),
        };
        let mut h: Vec<(String, String)> = ["a", "b", "c", "d", "gone"]
            .iter()
            .map(|n| (n.to_string(), "1".to_string()))
            .collect();
        m.apply(&mut h);
        let got: Vec<String> = h.iter().map(|(n, v)| format!("{n}={v}")).collect();
        assert_eq!(got, ["a=1", "b=1", "a=2", "c=2", "d=2"]);
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
