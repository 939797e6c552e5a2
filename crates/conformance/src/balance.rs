//! The `balance` suite.
use crate::Report;
use std::path::PathBuf;

/// Runs the `balance` vectors of `files`.
pub(crate) fn run(files: &[PathBuf], report: &mut Report) {
    for f in files {
        if crate::read_file(f, report).is_some() {
            report.fail(
                &f.display().to_string(),
                "the balance suite is not implemented yet",
            );
        }
    }
}
