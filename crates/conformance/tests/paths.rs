//! Runs the `paths` suite over every vector file in
//! `<workspace>/../shared/conformance/paths`, so that CI fails when a vector
//! fails.
use std::path::{Path, PathBuf};

fn vector_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/paths");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_paths_vector_passes() {
    let files = vector_files();
    assert!(!files.is_empty(), "no vector files found");
    let mut report = rauta_conformance::Report::default();
    rauta_conformance::run_suite("paths", &files, &mut report).expect("paths is a known suite");
    print!("{}", report.summary());
    assert!(report.passed() > 0, "no vector ran");
    assert_eq!(report.failed(), 0, "\n{}", report.summary());
}

/// The runner must fail, not skip, what it cannot run, and must refuse
/// duplicate ids and unknown fields.
#[test]
fn runner_is_strict() {
    let dir = std::env::temp_dir().join(format!("rauta-paths-strict-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cases = [
        (
            "unknown-op.yaml",
            "vectors:\n- {id: a, source: s, op: frobnicate, input: /, expect: /}\n",
            0,
            1,
        ),
        (
            "dup.yaml",
            "vectors:\n- {id: a, source: s, op: merge_slashes, input: //a, expect: /a}\n\
             - {id: a, source: s, op: merge_slashes, input: //a, expect: /a}\n",
            1,
            1,
        ),
        (
            "unknown-field.yaml",
            "vectors:\n- {id: a, source: s, op: merge_slashes, input: /, expect: /, extra: 1}\n",
            0,
            1,
        ),
        (
            "unknown-config.yaml",
            "vectors:\n- {id: a, source: s, op: hcm_pipeline, input: /, expect: /, config: {nope: true}}\n",
            0,
            1,
        ),
        (
            "field-for-other-op.yaml",
            "vectors:\n- {id: a, source: s, op: normalize, input: /a, expect: /a, found: true}\n",
            0,
            1,
        ),
        (
            "wrong.yaml",
            "vectors:\n- {id: a, source: s, op: normalize, input: /a/../b, expect: /a/../b}\n",
            0,
            1,
        ),
    ];
    for (name, text, passed, failed) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write vector file");
        let mut report = rauta_conformance::Report::default();
        rauta_conformance::run_suite("paths", &[path], &mut report).expect("known suite");
        assert_eq!(
            (report.passed(), report.failed()),
            (passed, failed),
            "{name}:\n{}",
            report.summary()
        );
        assert!(report.failures().iter().all(|l| l.starts_with("FAIL ")));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
