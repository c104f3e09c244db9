//! Round trips over a corpus of one-file changes: a pull request that provokes a keyword reports it new (never unchanged), and its revert reports it fixed.
//!
//! The corpus is `prci-tests/data/roundtrip/`: `base/` (a small standalone repository) and `cases.json` (per case:
//! the keyword, its scope and reporting check, the files to write or delete, and for aggregated keywords the list
//! item the change adds). `verify.py` there proves every case against full-tree pkgcheck scans. By default the
//! first case of each reporting check and every aggregated repository keyword run (about 50 of 93);
//! `PRCI_ROUNDTRIP_ALL=1` runs them all (all passed at the commit that added this test).

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::Prci;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Case {
    keyword: String,
    scope: String,
    check: String,
    files: Vec<(String, Option<String>)>,
    /// The list item an aggregated keyword gains, and the attribute holding it.
    item: Option<(String, String)>,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/roundtrip")
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(corpus().join("cases.json")).expect("cases.json");
    let list: Vec<Value> = serde_json::from_str(&text).expect("cases.json is a JSON array");
    list.iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_else(|| panic!("case without {k}: {c}")).to_owned();
            let files = c["files"].as_object().expect("files").iter().map(|(p, v)| (p.clone(), v.as_str().map(str::to_owned))).collect();
            let item = match (c["element"].as_str(), c["attr"].as_str()) {
                (Some(e), Some(a)) => Some((e.to_owned(), a.to_owned())),
                _ => None,
            };
            Case { keyword: s("keyword"), scope: s("scope"), check: s("check"), files, item }
        })
        .collect()
}

/// The cases this run covers: all with `PRCI_ROUNDTRIP_ALL=1`, else the first case of each reporting check and
/// every aggregated repository-scope keyword.
fn selected(all: Vec<Case>) -> Vec<Case> {
    if std::env::var("PRCI_ROUNDTRIP_ALL").is_ok_and(|v| v == "1") {
        return all;
    }
    let mut seen = std::collections::BTreeSet::new();
    all.into_iter().filter(|c| seen.insert(c.check.clone()) || (c.scope == "repo" && c.item.is_some())).collect()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "prci test")
        .env("GIT_AUTHOR_EMAIL", "test@prci.invalid")
        .env("GIT_COMMITTER_NAME", "prci test")
        .env("GIT_COMMITTER_EMAIL", "test@prci.invalid")
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn write_files(repo: &Path, files: &[(String, Option<String>)]) {
    for (path, content) in files {
        let p = repo.join(path);
        match content {
            Some(text) => {
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(&p, text).unwrap();
            }
            None => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// The repository: `master` is the base; per case `case-N` (the change) and `revert-N` (on top of it, undoing it).
fn build_repo(dir: &Path, cases: &[Case]) {
    copy_dir(&corpus().join("base"), dir);
    git(dir, &["init", "-q", "-b", "master"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "base"]);
    for (i, case) in cases.iter().enumerate() {
        git(dir, &["checkout", "-q", "-b", &format!("case-{i}"), "master"]);
        let before: Vec<(String, Option<String>)> =
            case.files.iter().map(|(p, _)| (p.clone(), std::fs::read_to_string(dir.join(p)).ok())).collect();
        write_files(dir, &case.files);
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", &format!("provoke {}", case.keyword)]);
        git(dir, &["checkout", "-q", "-b", &format!("revert-{i}")]);
        write_files(dir, &before);
        git(dir, &["add", "-A"]);
        git(dir, &["commit", "-q", "-m", &format!("revert {}", case.keyword)]);
    }
    git(dir, &["checkout", "-q", "master"]);
}

/// Whether `list` of a report holds the case's finding (for an aggregated keyword: with exactly its item).
fn holds(report: &Value, list: &str, case: &Case) -> bool {
    report[list].as_array().is_some_and(|l| {
        l.iter().any(|f| {
            f["__class__"] == case.keyword.as_str()
                && match &case.item {
                    Some((item, attr)) => f[attr.as_str()] == serde_json::json!([item]),
                    None => true,
                }
        })
    })
}

#[test]
fn every_keyword_of_the_corpus_is_new_when_provoked_and_fixed_when_reverted() {
    let all = cases();
    assert!(all.len() >= 30, "the corpus has {} cases", all.len());
    let cases = selected(all);
    let repo = tempfile::tempdir().unwrap();
    build_repo(repo.path(), &cases);
    // Two workers, each with its own work dir (so two checks run at once on the machine's two cores).
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                let (cases, repo) = (&cases, repo.path());
                s.spawn(move || {
                    let prci = Prci::new();
                    let mut failures = Vec::new();
                    for (i, case) in cases.iter().enumerate().filter(|(i, _)| i % 2 == w) {
                        let what = format!("{} ({}, {})", case.keyword, case.scope, case.check);
                        let (_, report, log) = prci.check_logged(repo, "master", &format!("case-{i}"), &[]);
                        if !holds(&report, "new", case) || holds(&report, "unchanged", case) {
                            failures.push(format!(
                                "{what}: not new when provoked: new {}, unchanged has it: {}\n{log}",
                                report["new"],
                                holds(&report, "unchanged", case)
                            ));
                            continue;
                        }
                        let (_, report, log) = prci.check_logged(repo, &format!("case-{i}"), &format!("revert-{i}"), &[]);
                        if !holds(&report, "fixed", case) || holds(&report, "new", case) {
                            failures
                                .push(format!("{what}: not fixed when reverted: fixed {}, new {}\n{log}", report["fixed"], report["new"]));
                        }
                    }
                    failures
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("worker")).collect()
    });
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n\n"));
}

#[test]
fn the_corpus_covers_every_scope_and_the_aggregated_keywords() {
    let all = cases();
    for scope in ["version", "package", "category", "repo", "profiles", "eclass"] {
        assert!(all.iter().any(|c| c.scope == scope), "no case of scope {scope}");
    }
    for kw in ["UnknownLicenses", "UnusedLicenses", "UnusedEclasses", "UnusedMirrors", "UnusedGlobalUse"] {
        let case = all.iter().find(|c| c.keyword == kw).unwrap_or_else(|| panic!("no case for {kw}"));
        assert!(case.item.is_some(), "{kw} is aggregated: the case names the item it adds");
        assert_eq!(findings::items_of(kw), case.item.as_ref().map(|(_, a)| a.as_str()), "{kw}");
    }
    let keywords: std::collections::BTreeSet<&str> = all.iter().map(|c| c.keyword.as_str()).collect();
    assert_eq!(keywords.len(), all.len(), "one case per keyword");
    for c in &all {
        let k =
            findings::keywords().get(c.keyword.as_str()).unwrap_or_else(|| panic!("{} is no keyword of the pinned pkgcheck", c.keyword));
        assert_eq!(k.scope, c.scope, "{}", c.keyword);
        assert!(k.checks.contains(&c.check.as_str()), "{} is not reported by {}", c.keyword, c.check);
    }
}
