//! Runs the `balance` suite over every `*.yaml` in
//! `<workspace>/../shared/conformance/balance`.
use std::path::{Path, PathBuf};

#[test]
fn balance_vectors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/balance");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.yaml in {}", dir.display());
    let mut report = rauta_conformance::Report::default();
    rauta_conformance::run_suite("balance", &files, &mut report).unwrap();
    print!("{}", report.summary());
    assert!(report.passed() > 0, "no vectors ran");
    assert_eq!(report.failed(), 0, "{}", report.summary());
}
