//! `rauta-conformance <suite> <file.yaml>...`: runs conformance vectors.
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(suite) = args.next() else {
        eprintln!("usage: rauta-conformance <routes|paths|balance> <file.yaml>...");
        return ExitCode::from(2);
    };
    let suite = suite.to_string_lossy().into_owned();
    let files: Vec<std::path::PathBuf> = args.map(Into::into).collect();
    if files.is_empty() {
        eprintln!("rauta-conformance: no vector files given for suite {suite:?}");
        return ExitCode::from(2);
    }
    let mut report = rauta_conformance::Report::default();
    if let Err(e) = rauta_conformance::run_suite(&suite, &files, &mut report) {
        eprintln!("rauta-conformance: {e}");
        return ExitCode::from(2);
    }
    print!("{}", report.summary());
    if report.failed() == 0 && report.passed() > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
