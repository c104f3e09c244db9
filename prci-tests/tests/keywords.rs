//! The embedded keyword table (levels) is the one the installed, pinned pkgcheck generates.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

#[test]
fn keyword_table_matches_the_installed_pkgcheck() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = fixtures::pkgcheck_path().parent().expect("tool dir").join("python3");
    let out = std::process::Command::new(python).arg(root.join(".ci/gen-keywords.py")).output().expect("run gen-keywords.py");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        generated == findings::KEYWORDS_TSV,
        "shared/findings/src/keywords.tsv is stale: regenerate it with `.tools/venv/bin/python .ci/gen-keywords.py > shared/findings/src/keywords.tsv`"
    );
}
