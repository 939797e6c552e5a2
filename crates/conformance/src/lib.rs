//! The conformance runner behind the `rauta-conformance` binary.
//!
//! It reads vector files in the formats described in
//! `../shared/conformance/README.md` and runs each vector against the RAUTA
//! crates. Every suite reports into one [`Report`]: one `FAIL` line per failing
//! vector or request, then `N passed, N failed`.
//!
//! ```no_run
//! let mut report = rauta_conformance::Report::default();
//! rauta_conformance::run_suite("routes", &["../shared/conformance/routes/envoy.yaml".into()], &mut report)?;
//! print!("{}", report.summary());
//! # Ok::<(), String>(())
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;

mod balance;
mod paths;
mod routes;

/// Outcome counters and failure lines of one run.
#[derive(Debug, Default)]
pub struct Report {
    passed: usize,
    failed: usize,
    lines: Vec<String>,
}

impl Report {
    /// Records a passing vector or request.
    pub fn pass(&mut self) {
        self.passed += 1;
    }

    /// Records a failing vector or request. `id` is `<vector id>` or
    /// `<vector id>#<request index>`.
    pub fn fail(&mut self, id: &str, what: impl std::fmt::Display) {
        self.failed += 1;
        self.lines.push(format!("FAIL {id}: {what}"));
    }

    /// Number of passes so far.
    pub fn passed(&self) -> usize {
        self.passed
    }

    /// Number of failures so far.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// The `FAIL` lines, in the order they were recorded.
    pub fn failures(&self) -> &[String] {
        &self.lines
    }

    /// All `FAIL` lines followed by the closing `N passed, N failed` line.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str(&format!("{} passed, {} failed\n", self.passed, self.failed));
        out
    }
}

/// Names of the suites this runner knows.
pub const SUITES: &[&str] = &["routes", "paths", "balance"];

/// Runs every vector of `files` in `suite`, recording into `report`.
///
/// # Errors
///
/// An unknown suite name. A file that cannot be read or parsed is recorded as
/// a failure in the report, not returned as an error, so one bad file does not
/// hide the results of the others.
pub fn run_suite(suite: &str, files: &[PathBuf], report: &mut Report) -> Result<(), String> {
    match suite {
        "routes" => routes::run(files, report),
        "paths" => paths::run(files, report),
        "balance" => balance::run(files, report),
        _ => {
            return Err(format!(
                "unknown suite {suite:?}; expected one of {}",
                SUITES.join(", ")
            ))
        }
    }
    Ok(())
}

/// Reads a file for a suite, recording an unreadable file as a failure.
pub(crate) fn read_file(path: &std::path::Path, report: &mut Report) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Some(s),
        Err(e) => {
            report.fail(
                &path.display().to_string(),
                format_args!("cannot read: {e}"),
            );
            None
        }
    }
}
