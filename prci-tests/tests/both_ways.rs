//! `prci check` and the pipeline run the same steps: the same pull requests (a new issue, a fix, a conflict, a pkgcheck
//! crash) checked both ways give the same report document, field by field, timings aside.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{prci_bin, Prci};
use fixtures::{Ebuild, Repo};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// An ebuild that makes pkgcheck 0.10.37's MetadataVarCheck crash (`KEYWORDS=` with no value).
fn crashing_ebuild() -> Ebuild {
    Ebuild { keywords: String::new(), body: "KEYWORDS=\n".into(), ..Ebuild::default() }
}

/// A repository whose master moves on after four pull requests branch off: a new issue (1), a fix (2), a conflict
/// (3) and a package pkgcheck crashes on (4).
fn repo_with_pulls() -> Repo {
    let r = Repo::standalone("both");
    r.add_package("app-misc", "hello", "1.0", &Ebuild::default());
    r.add_package("dev-libs", "libdemo", "1.0", &Ebuild { license: "NoSuchLicense".into(), ..Ebuild::default() });
    r.commit("base");
    let pulls: [(&str, &str, &str, Ebuild); 4] = [
        ("new-issue", "app-misc", "hello", Ebuild { keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() }),
        ("fix", "dev-libs", "libdemo", Ebuild::default()),
        ("conflict", "app-misc", "hello", Ebuild { description: "A description master changes too".into(), ..Ebuild::default() }),
        ("crash", "app-misc", "crashy", crashing_ebuild()),
    ];
    for (n, (name, cat, pkg, ebuild)) in pulls.into_iter().enumerate() {
        r.switch("master");
        r.branch(name);
        r.switch(name);
        r.add_package(cat, pkg, "1.0", &ebuild);
        let sha = r.commit(name);
        r.set_ref(&format!("refs/pull/{}/head", n + 1), &sha);
    }
    r.switch("master");
    r.add_package("app-misc", "hello", "1.0", &Ebuild { description: "Master's own description".into(), ..Ebuild::default() });
    r.add_package("app-misc", "other", "1.0", &Ebuild::default());
    r.commit("master moves on");
    r
}

/// The JSON report the pipeline published for pull request `pr`.
fn published(reports: &Path, pr: u64) -> Value {
    let dir = reports.join(pr.to_string());
    let entry = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("no reports for PR {pr}: {e}"))
        .flatten()
        .find(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.ends_with(".json") && !n.ends_with(".rev.json")
        })
        .unwrap_or_else(|| panic!("no JSON report for PR {pr}"));
    serde_json::from_slice(&std::fs::read(entry.path()).expect("read report")).expect("report JSON")
}

/// Every field but `timings`.
fn without_timings(mut report: Value) -> Value {
    report.as_object_mut().expect("report object").remove("timings");
    report
}

#[test]
fn prci_check_and_the_pipeline_give_the_same_reports() {
    let r = repo_with_pulls();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prci.toml");
    let text = format!(
        "[repository]\nname = \"both\"\nurl = \"{}\"\n\n[work]\ndir = \"{}\"\n\n[reports]\ndir = \"{}\"\n",
        r.path().display(),
        dir.path().join("work").display(),
        dir.path().join("reports").display()
    );
    std::fs::write(&config, text).expect("write config");
    let out = Command::new(prci_bin()).args(["--config", &config.display().to_string(), "run", "--until-idle"]).output().expect("run prci");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let prci = Prci::new();
    let mut verdicts = Vec::new();
    for pr in 1..=4u64 {
        let pipeline = without_timings(published(&dir.path().join("reports"), pr));
        let (_, checked) = prci.check(r.path(), "master", &format!("refs/pull/{pr}/head"), &[]);
        let checked = without_timings(checked);
        let fields: Vec<&String> = pipeline.as_object().expect("object").keys().collect();
        assert_eq!(fields, checked.as_object().expect("object").keys().collect::<Vec<_>>(), "PR {pr}: not the same fields");
        for field in fields {
            assert_eq!(pipeline[field], checked[field], "PR {pr}: field {field} differs\npipeline: {pipeline}\ncheck: {checked}");
        }
        verdicts.push((pipeline["verdict"].as_str().unwrap_or_default().to_owned(), pipeline["new"].as_array().map_or(0, Vec::len)));
    }
    // The scenarios are what they claim to be, so the comparison covers each kind of report.
    assert_eq!(verdicts[0], ("fail".to_string(), 1), "PR 1 adds one issue");
    assert_eq!(verdicts[1].0, "pass", "PR 2 fixes one");
    let conflict = without_timings(published(&dir.path().join("reports"), 3));
    assert_eq!(conflict["conflicts"], serde_json::json!(["app-misc/hello/hello-1.0.ebuild"]));
    let crash = without_timings(published(&dir.path().join("reports"), 4));
    assert!(crash["new"].as_array().expect("new").iter().any(|f| f["__class__"] == "PrciToolCrash"), "{crash}");
}
