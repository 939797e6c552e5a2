//! Runs the `routes` suite over every file in ../shared/conformance/routes.

use std::path::PathBuf;

fn suite_files(suite: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/conformance")
        .join(suite);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vector files in {}", dir.display());
    files
}

#[test]
fn routes_vectors_all_pass() {
    let mut report = rauta_conformance::Report::default();
    rauta_conformance::run_suite("routes", &suite_files("routes"), &mut report).unwrap();
    print!("{}", report.summary());
    assert_eq!(report.failed(), 0, "{}", report.summary());
    assert!(report.passed() > 0);
}
