//! Request validation before routing.
//!
//! Input: a request line (`METHOD TARGET`), then header lines `name: value`,
//! separated by `\n`. Checked: nothing panics; a canonical authority parses
//! to itself, is lower-case and has no trailing dot; limits and header checks
//! agree with the per-header helpers; Envoy's host helpers only ever remove
//! bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rauta_router::authority::{
    canonical_authority, invalid_header_value_byte, is_valid_header_name, join_header_values,
    parse_request_target, strip_host_port, strip_trailing_host_dot, trim_ows, Authority,
    AuthoritySource, RequestLimits, RequestTarget,
};

fn check_authority(a: &Authority<'_>) {
    let text = a.to_string();
    let again = Authority::parse(&text).expect("a canonical authority parses");
    assert_eq!(again.to_string(), text);
    assert!(!a.host().bytes().any(|b| b.is_ascii_uppercase()));
    assert!(!a.host().ends_with('.'));
    assert!(a.host().is_ascii() && !a.host().contains('@'));
    assert_ne!(a.port(), Some(0));
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let request_line = lines.next().unwrap_or("");
    let (method, target) = request_line
        .split_once(' ')
        .unwrap_or(("GET", request_line));

    let mut headers: Vec<(&str, &str)> = Vec::new();
    for line in lines.take(512) {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        headers.push((name, trim_ows(value)));
    }
    let hosts: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| *v)
        .collect();

    for allow_absolute in [false, true] {
        let source = match parse_request_target(method, target, allow_absolute) {
            Ok(RequestTarget::Absolute {
                authority,
                path_and_query,
                ..
            }) => {
                assert!(path_and_query.starts_with('/'));
                AuthoritySource::AbsoluteForm(authority)
            }
            Ok(RequestTarget::Authority(a)) => {
                check_authority(&a);
                assert!(a.port().is_some());
                AuthoritySource::Origin
            }
            Ok(RequestTarget::Origin(p)) => {
                assert!(p.starts_with('/'));
                AuthoritySource::Origin
            }
            Ok(RequestTarget::Asterisk) => {
                assert_eq!((method, target), ("OPTIONS", "*"));
                AuthoritySource::Origin
            }
            Err(e) => {
                assert!(matches!(e.status(), 400 | 414 | 431));
                AuthoritySource::Origin
            }
        };
        match canonical_authority(source, hosts.iter().copied()) {
            Ok(a) => {
                check_authority(&a);
                assert!(hosts.len() <= 1);
            }
            Err(e) => assert_eq!(e.status(), 400),
        }
    }
    if let Some(h) = hosts.first() {
        if let Ok(a) = canonical_authority(AuthoritySource::Pseudo(h), hosts.iter().copied()) {
            check_authority(&a);
        }
        for port in [None, Some(80), Some(443)] {
            let stripped = strip_host_port(h, port);
            assert!(h.starts_with(stripped));
        }
        assert!(strip_trailing_host_dot(h).len() + 1 >= h.len());
    }

    let mut limits = RequestLimits::safe_default();
    limits.max_headers = Some(headers.len().max(1));
    let pairs = headers.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes()));
    if limits.check(target, pairs).is_ok() {
        for (name, value) in &headers {
            assert!(is_valid_header_name(name.as_bytes()));
            assert_eq!(invalid_header_value_byte(value.as_bytes()), None);
        }
    }
    let values: Vec<&str> = headers.iter().map(|(_, v)| *v).collect();
    let joined = join_header_values("x", &values);
    if values.len() == 1 {
        assert_eq!(joined, values[0]);
    }
});
