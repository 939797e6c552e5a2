//! The `paths` suite: path-normalization vectors run against
//! `rauta_router::path`.
//!
//! Each vector names an `op` (listed in the header of
//! `paths/normalization.yaml`); the op decides which function of the path
//! module runs and which of the optional fields (`config`, `action`,
//! `found`, `changed`, `match_path`) it understands. A field or config key an
//! op does not understand makes the vector fail: it is never skipped.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use rauta_router::path::envoy::{self, HcmOptions, HcmOutcome};
use rauta_router::path::uhv::{self, UhvOptions, UhvOutcome};
use rauta_router::path::{remove_dot_segments, EscapedSlashesAction, PathOutcome, PathPolicy};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Report;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    vectors: Vec<Vector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    id: String,
    #[allow(dead_code)]
    source: String,
    op: String,
    input: String,
    expect: String,
    #[serde(default)]
    match_path: Option<String>,
    #[serde(default)]
    config: Option<Map<String, Value>>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    found: Option<bool>,
    #[serde(default)]
    changed: Option<bool>,
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    cve: Option<String>,
}

/// The outcome kinds a vector's `action` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// `continue` or `accept`: the request goes on with the output path.
    Forward,
    Redirect,
    Reject,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Forward => "continue",
            Action::Redirect => "redirect",
            Action::Reject => "reject",
        })
    }
}

/// What one op produced, in the vocabulary of the vector file.
#[derive(Debug)]
struct Observed {
    action: Action,
    /// The output path (the Location for a redirect); `None` for a reject.
    output: Option<String>,
    /// Status of a reject, when the op knows one.
    status: Option<u16>,
    found: Option<bool>,
    changed: Option<bool>,
    match_path: Option<String>,
}

impl Observed {
    fn forward(output: impl Into<String>) -> Self {
        Observed {
            action: Action::Forward,
            output: Some(output.into()),
            status: None,
            found: None,
            changed: None,
            match_path: None,
        }
    }

    fn redirect(location: impl Into<String>) -> Self {
        Observed {
            action: Action::Redirect,
            ..Observed::forward(location)
        }
    }

    fn reject(status: Option<u16>) -> Self {
        Observed {
            action: Action::Reject,
            output: None,
            status,
            ..Observed::forward("")
        }
    }
}

/// Runs the `paths` vectors of `files`.
pub(crate) fn run(files: &[PathBuf], report: &mut Report) {
    for f in files {
        let Some(text) = crate::read_file(f, report) else {
            continue;
        };
        let file: File = match serde_saphyr::from_str(&text) {
            Ok(file) => file,
            Err(e) => {
                report.fail(&f.display().to_string(), format_args!("cannot parse: {e}"));
                continue;
            }
        };
        if file.vectors.is_empty() {
            report.fail(&f.display().to_string(), "no vectors");
            continue;
        }
        let mut seen = HashSet::new();
        for v in &file.vectors {
            if !seen.insert(v.id.as_str()) {
                report.fail(&v.id, "duplicate id in this file");
                continue;
            }
            match check(v) {
                Ok(()) => report.pass(),
                Err(what) => report.fail(&v.id, what),
            }
        }
    }
}

/// Which optional vector fields an op understands.
struct Understands {
    config: bool,
    found: bool,
    changed: bool,
    match_path: bool,
}

fn understands(op: &str) -> Option<Understands> {
    let u = |config, found, changed, match_path| Understands {
        config,
        found,
        changed,
        match_path,
    };
    Some(match op {
        "normalize"
        | "merge_slashes"
        | "strip_dot_segment_params"
        | "remove_query_and_fragment"
        | "remove_dot_segments" => u(false, false, false, false),
        "unescape_slashes" => u(false, true, false, false),
        "remove_path_params" => u(false, false, true, false),
        "hcm_pipeline" | "uhv_normalize" => u(true, false, false, false),
        "rauta_default" => u(true, false, false, true),
        _ => return None,
    })
}

fn check(v: &Vector) -> Result<(), String> {
    let Some(u) = understands(&v.op) else {
        return Err(format!("unsupported op {:?}", v.op));
    };
    let unsupported = [
        ("config", v.config.is_some() && !u.config),
        ("found", v.found.is_some() && !u.found),
        ("changed", v.changed.is_some() && !u.changed),
        ("match_path", v.match_path.is_some() && !u.match_path),
    ];
    if let Some((field, _)) = unsupported.iter().find(|(_, bad)| *bad) {
        return Err(format!(
            "field {field:?} is not supported for op {:?}",
            v.op
        ));
    }
    let expected_action = match v.action.as_deref() {
        None => None,
        Some("continue" | "accept") => Some(Action::Forward),
        Some("redirect") => Some(Action::Redirect),
        Some("reject") => Some(Action::Reject),
        Some(other) => return Err(format!("unknown action {other:?}")),
    };
    let empty = Map::new();
    let config = v.config.as_ref().unwrap_or(&empty);
    let input = v.input.as_str();
    let got = match v.op.as_str() {
        "normalize" => match envoy::canonical_path(input) {
            Some(p) => Observed::forward(p),
            None => Observed::reject(Some(400)),
        },
        "merge_slashes" => Observed::forward(envoy::merge_slashes(input)),
        "unescape_slashes" => {
            let (p, found) = envoy::unescape_slashes(input);
            Observed {
                found: Some(found),
                ..Observed::forward(p)
            }
        }
        "strip_dot_segment_params" => Observed::forward(envoy::strip_dot_segment_params(input)),
        "remove_path_params" => {
            let (p, changed) = envoy::remove_path_params(input);
            Observed {
                changed: Some(changed),
                ..Observed::forward(p)
            }
        }
        "remove_query_and_fragment" => Observed::forward(envoy::remove_query_and_fragment(input)),
        "remove_dot_segments" => Observed::forward(remove_dot_segments(input)),
        "hcm_pipeline" => {
            let opts = hcm_options(config)?;
            match envoy::hcm_pipeline(input, &opts) {
                HcmOutcome::Continue(p) => Observed::forward(p),
                HcmOutcome::Redirect(l) => Observed::redirect(l),
                HcmOutcome::Reject => Observed::reject(Some(400)),
            }
        }
        "uhv_normalize" => {
            let (method, opts) = uhv_options(config)?;
            match uhv::normalize(&method, input, &opts) {
                UhvOutcome::Accept(p) => Observed::forward(p),
                UhvOutcome::Redirect(l) => Observed::redirect(l),
                UhvOutcome::Reject => Observed::reject(Some(400)),
            }
        }
        "rauta_default" => {
            let policy = rauta_policy(config)?;
            match policy.apply(input) {
                PathOutcome::Forward { path, match_path } => Observed {
                    match_path: Some(match_path.into_owned()),
                    ..Observed::forward(path)
                },
                PathOutcome::Redirect { location, .. } => Observed::redirect(location),
                PathOutcome::Reject { status, reason } => {
                    let mut o = Observed::reject(Some(status));
                    o.output = Some(format!("reject ({reason})"));
                    o
                }
            }
        }
        other => return Err(format!("unsupported op {other:?}")),
    };
    compare(v, expected_action, &got)
}

fn compare(v: &Vector, expected_action: Option<Action>, got: &Observed) -> Result<(), String> {
    let mut diffs = Vec::new();
    let shown = got.output.as_deref().unwrap_or("reject");
    if v.expect == "reject" {
        if got.action != Action::Reject {
            diffs.push(format!("expected reject, got {} {shown:?}", got.action));
        } else if let Some(status) = got.status.filter(|&s| s != 400) {
            diffs.push(format!("expected a 400 reject, got status {status}"));
        }
    } else if got.action == Action::Reject {
        diffs.push(format!("expected {:?}, got {shown}", v.expect));
    } else if got.output.as_deref() != Some(v.expect.as_str()) {
        diffs.push(format!("expected {:?}, got {shown:?}", v.expect));
    }
    if let Some(want) = expected_action {
        if want != got.action {
            diffs.push(format!("expected action {want}, got {}", got.action));
        }
    } else if got.action == Action::Redirect {
        diffs.push("got a redirect, but the vector names no action".to_string());
    }
    if let (Some(want), Some(have)) = (v.found, got.found) {
        if want != have {
            diffs.push(format!("expected found={want}, got found={have}"));
        }
    }
    if let (Some(want), Some(have)) = (v.changed, got.changed) {
        if want != have {
            diffs.push(format!("expected changed={want}, got changed={have}"));
        }
    }
    if let Some(want) = &v.match_path {
        match &got.match_path {
            Some(have) if have == want => {}
            Some(have) => diffs.push(format!("expected match_path {want:?}, got {have:?}")),
            None => diffs.push(format!("expected match_path {want:?}, got none")),
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

fn as_bool(key: &str, v: &Value) -> Result<bool, String> {
    v.as_bool()
        .ok_or_else(|| format!("config {key:?} must be a boolean, got {v}"))
}

fn escaped_action(key: &str, v: &Value) -> Result<EscapedSlashesAction, String> {
    serde_json::from_value(v.clone()).map_err(|e| format!("config {key:?}: {e}"))
}

fn hcm_options(config: &Map<String, Value>) -> Result<HcmOptions, String> {
    let mut opts = HcmOptions::default();
    for (key, v) in config {
        opts = match key.as_str() {
            "normalize_path" => opts.normalize_path(as_bool(key, v)?),
            "merge_slashes" => opts.merge_slashes(as_bool(key, v)?),
            "path_with_escaped_slashes_action" => opts.escaped_slashes(escaped_action(key, v)?),
            "runtime.http_reject_path_with_fragment" => opts.reject_fragment(as_bool(key, v)?),
            _ => return Err(format!("unsupported config key {key:?} for hcm_pipeline")),
        };
    }
    Ok(opts)
}

fn uhv_options(config: &Map<String, Value>) -> Result<(String, UhvOptions), String> {
    let mut opts = UhvOptions::default();
    let mut method = "GET".to_string();
    for (key, v) in config {
        opts = match key.as_str() {
            "method" => {
                method = v
                    .as_str()
                    .ok_or_else(|| format!("config \"method\" must be a string, got {v}"))?
                    .to_string();
                opts
            }
            "path_with_escaped_slashes_action" => opts.escaped_slashes(escaped_action(key, v)?),
            "skip_merging_slashes" => opts.skip_merging_slashes(as_bool(key, v)?),
            "translate_backslash_to_slash" => opts.translate_backslash(as_bool(key, v)?),
            "runtime.uhv_preserve_url_encoded_case" => opts.preserve_encoded_case(as_bool(key, v)?),
            "runtime.uhv_allow_malformed_url_encoding" => {
                opts.allow_malformed_encoding(as_bool(key, v)?)
            }
            _ => return Err(format!("unsupported config key {key:?} for uhv_normalize")),
        };
    }
    Ok((method, opts))
}

/// The safe default with the vector's `config` laid over it; the keys are
/// `PathPolicy` fields, read by the same deserializer a user's config uses.
fn rauta_policy(config: &Map<String, Value>) -> Result<PathPolicy, String> {
    if config.is_empty() {
        return Ok(PathPolicy::safe_default());
    }
    let overlay: PathPolicy = serde_json::from_value(Value::Object(config.clone()))
        .map_err(|e| format!("config for rauta_default: {e}"))?;
    Ok(PathPolicy::safe_default().overlay(&overlay))
}
