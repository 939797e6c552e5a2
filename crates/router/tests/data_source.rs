//! Direct-response bodies from Envoy's `DataSource`.

use rauta_router::{ActionKind, BuildOptions, Request, RouteTable};

fn yaml(body: &str) -> String {
    format!(
        r#"
max_direct_response_body_size_bytes: 64
virtual_hosts:
  - name: v
    domains: ["*"]
    routes:
      - match: {{prefix: /}}
        action: {{direct_response: {{status: 503, body: {body}}}}}
"#
    )
}

fn body_of(table: &RouteTable) -> String {
    let req = Request::get("h", "/");
    match table.route(&req, 0).route().unwrap().action() {
        ActionKind::DirectResponse { status, body } => {
            assert_eq!(status, 503);
            body.to_owned()
        }
        other => panic!("{other:?}"),
    }
}

fn body(body: &str) -> Result<String, String> {
    RouteTable::from_yaml(&yaml(body))
        .map(|t| body_of(&t))
        .map_err(|e| e.to_string())
}

/// A file under the system's temporary directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str, bytes: &[u8]) -> TempFile {
        let p = std::env::temp_dir().join(format!(
            "rauta-router-data-source-{tag}-{}",
            std::process::id()
        ));
        std::fs::write(&p, bytes).unwrap();
        TempFile(p)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn text_and_inline_sources() {
    assert_eq!(body("\"plain\"").unwrap(), "plain");
    // Plain scalars YAML reads as numbers are text too.
    assert_eq!(body("404").unwrap(), "404");
    assert_eq!(body("-1").unwrap(), "-1");
    assert_eq!(body("{inline_string: \"down\\n\"}").unwrap(), "down\n");
    // "maintenance" in standard base64, with and without padding, and
    // bytes that differ between the two alphabets ("~~~?" -> fn-5-P).
    assert_eq!(
        body("{inline_bytes: bWFpbnRlbmFuY2U=}").unwrap(),
        "maintenance"
    );
    assert_eq!(
        body("{inline_bytes: bWFpbnRlbmFuY2U}").unwrap(),
        "maintenance"
    );
    assert_eq!(body("{inline_bytes: fn5-Pw}").unwrap(), "~~~?");
    assert_eq!(body("{inline_bytes: \"fn5+Pw==\"}").unwrap(), "~~~?");
    assert_eq!(body("{inline_bytes: \"\"}").unwrap(), "");
    // Every length mod 3.
    for (b64, text) in [
        ("YQ", "a"),
        ("YWI", "ab"),
        ("YWJj", "abc"),
        ("YWJjZA==", "abcd"),
    ] {
        assert_eq!(body(&format!("{{inline_bytes: \"{b64}\"}}")).unwrap(), text);
    }
}

#[test]
fn bad_sources_are_load_errors() {
    let cases = [
        (
            "{}",
            "set exactly one of inline_string, inline_bytes, filename or environment_variable",
        ),
        ("{inline_string: a, filename: /x}", "set exactly one of"),
        (
            "{inline_bytes: \"a\"}",
            "action.direct_response.body.inline_bytes: not valid base64",
        ),
        ("{inline_bytes: \"a*bc\"}", "not valid base64"),
        ("{inline_bytes: \"YQ===\"}", "not valid base64"),
        (
            "{inline_bytes: \"/w==\"}",
            "action.direct_response.body.inline_bytes: the body is not UTF-8",
        ),
        ("{inline_string: x, extra: 1}", "unknown field `extra`"),
        ("[1]", "the body text or a DataSource"),
        (
            "{filename: /nonexistent/rauta/body}",
            "action.direct_response.body.filename: cannot read \"/nonexistent/rauta/body\"",
        ),
        (
            "{environment_variable: RAUTA_TEST_SURELY_UNSET_VARIABLE}",
            "Environment variable doesn't exist: RAUTA_TEST_SURELY_UNSET_VARIABLE",
        ),
    ];
    for (src, expect) in cases {
        let err = body(src).expect_err(src);
        assert!(err.contains(expect), "{src}: {err}");
    }
    let long = "a".repeat(65);
    let err = body(&format!("{{inline_string: {long}}}")).unwrap_err();
    assert!(
        err.contains("response body size is 65 bytes; maximum is 64"),
        "{err}"
    );
}

#[test]
fn files_are_read_at_build_up_to_the_limit() {
    let page = TempFile::new("page", b"<h1>back soon</h1>\n");
    let src = format!("{{filename: {:?}}}", page.0.display().to_string());
    assert_eq!(body(&src).unwrap(), "<h1>back soon</h1>\n");

    let big = TempFile::new("big", &[b'x'; 65]);
    let err = body(&format!("{{filename: {:?}}}", big.0.display().to_string())).unwrap_err();
    assert!(
        err.contains("is larger than 64 bytes, the body limit"),
        "{err}"
    );

    for special in ["/dev/zero", "/tmp", "/dev/null"] {
        let err = body(&format!("{{filename: {special}}}")).unwrap_err();
        assert!(err.contains("not a regular file"), "{special}: {err}");
    }

    let binary = TempFile::new("binary", &[0xff, 0xfe]);
    let err = body(&format!(
        "{{filename: {:?}}}",
        binary.0.display().to_string()
    ))
    .unwrap_err();
    assert!(
        err.contains("body.filename: the body is not UTF-8"),
        "{err}"
    );

    // Operators building tables from configurations they did not write can
    // turn files (and environment variables) off.
    let config = rauta_router::config::RouteConfig::from_yaml(&yaml(&src)).unwrap();
    let err = RouteTable::build_with(config, &BuildOptions::default().local_data_sources(false))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("body.filename: reading files and environment variables is turned off"),
        "{err}"
    );
    let config =
        rauta_router::config::RouteConfig::from_yaml(&yaml("{environment_variable: PATH}"))
            .unwrap();
    assert!(
        RouteTable::build_with(config, &BuildOptions::default().local_data_sources(false)).is_err()
    );
}

#[test]
fn environment_variables_are_read_at_build() {
    // Any variable of this process's with a short value will do (setting
    // one would race the other tests' threads).
    let (name, value) = std::env::vars()
        .find(|(n, v)| {
            (1..=64).contains(&v.len())
                && !v.contains(['"', '\\'])
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .expect("an environment variable with a short value");
    assert_eq!(
        body(&format!("{{environment_variable: {name}}}")).unwrap(),
        value,
        "{name}"
    );
}
