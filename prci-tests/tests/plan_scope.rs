//! What a pull request's scan plan reaches, with the real tools: a version bump scans its package and not the tree
//! (md5-cache committed or not), and a package's reverse dependencies are scanned only when what dependency
//! resolution sees of it changed.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{summary, Prci};
use fixtures::{Ebuild, Repo};
use serde_json::Value;

/// A standalone repository with `dev-libs/lib-1.0` and `app-misc/user`, which depends on it unversioned
/// (`RDEPEND="dev-libs/lib"`). With `committed_cache`, the md5-cache is committed (as overlays and Gentoo's rsync
/// tree do) and every commit of [`commit`] regenerates it first.
fn base_repo(committed_cache: bool) -> Repo {
    let r = Repo::standalone("test");
    if committed_cache {
        r.remove(".gitignore");
    }
    r.add_package("dev-libs", "lib", "1.0", &Ebuild::default());
    r.add_package("app-misc", "user", "1.0", &Ebuild::default().with_rdepend("dev-libs/lib"));
    commit(&r, committed_cache, "Add packages");
    r
}

/// Commit everything, with a freshly regenerated md5-cache when the repository commits it.
fn commit(r: &Repo, committed_cache: bool, message: &str) {
    if committed_cache {
        fixtures::regen(r.path(), &[]);
    }
    r.commit(message);
}

fn start_pr(r: &Repo) {
    r.branch("pr");
    r.switch("pr");
}

fn targets(report: &Value) -> Vec<&str> {
    report["scan"]["targets"].as_array().unwrap_or_else(|| panic!("no scan targets: {report}")).iter().filter_map(Value::as_str).collect()
}

fn log_says(log: &str, needle: &str) -> bool {
    log.lines().any(|l| l.contains(needle))
}

fn variant(committed_cache: bool) -> &'static str {
    if committed_cache {
        "md5-cache committed"
    } else {
        "md5-cache not committed"
    }
}

/// `prci check` of `pr` after a first job on `master` (so both checkouts hold a valid md5-cache, as on a host that
/// has seen the base): the report and the log of the second job.
fn check_after_warm_up(r: &Repo) -> (i32, Value, String) {
    let prci = Prci::new();
    let (_, report, log) = prci.check_logged(r.path(), "master", "master", &[]);
    assert_ne!(report["verdict"], "error", "{report}\n{log}");
    prci.check_logged(r.path(), "master", "pr", &[])
}

#[test]
fn a_version_bump_scans_its_package_and_not_the_tree() {
    for cache in [true, false] {
        let what = variant(cache);
        let r = base_repo(cache);
        start_pr(&r);
        r.add_package("dev-libs", "lib", "1.1", &Ebuild::default());
        commit(&r, cache, "dev-libs/lib: add 1.1");
        assert_eq!(r.tracked_files().contains(&"metadata/md5-cache/dev-libs/lib-1.1".to_string()), cache, "{what}");
        let (code, report, log) = check_after_warm_up(&r);
        assert_ne!(code, 2, "{what}: {report}\n{log}");
        assert_eq!(report["scan"]["full"], false, "{what}: {log}");
        assert_eq!(targets(&report), ["dev-libs/lib"], "{what}: the dependent's atom is unversioned\n{log}");
        assert!(log_says(&log, "regen merge: 1 package(s) targeted"), "{what}: {log}");
        assert!(!log_says(&log, "regen merge: full") && !log_says(&log, "regen base: full"), "{what}: {log}");
        assert!(!log_says(&log, "repository-wide"), "{what}: {log}");
        assert!(
            log_says(&log, "plan: dev-libs/lib: only versions resolving like an existing one added: lib-1.1 (as lib-1.0)"),
            "{what}: {log}"
        );
        assert!(!summary(&report, "new").iter().any(|f| f.contains("app-misc/user")), "{what}: {report}");
    }
}

#[test]
fn a_version_bump_scans_the_dependents_whose_version_operators_tell_it_from_its_twin() {
    let r = Repo::standalone("test");
    r.add_package("dev-libs", "lib", "1.0", &Ebuild::default());
    r.add_package("app-misc", "user", "1.0", &Ebuild::default().with_rdepend("dev-libs/lib"));
    r.add_package("app-misc", "vuser", "1.0", &Ebuild::default().with_rdepend(">=dev-libs/lib-1.0"));
    r.add_package("app-misc", "ouser", "1.0", &Ebuild::default().with_rdepend("<dev-libs/lib-1.1"));
    r.commit("Add packages");
    start_pr(&r);
    r.add_package("dev-libs", "lib", "1.1", &Ebuild::default());
    r.commit("dev-libs/lib: add 1.1");
    let (code, report, log) = Prci::new().check_logged(r.path(), "master", "pr", &[]);
    assert_ne!(code, 2, "{report}\n{log}");
    assert_eq!(report["scan"]["full"], false, "{log}");
    // `>=dev-libs/lib-1.0` matches 1.1 as it matches 1.0; `<dev-libs/lib-1.1` matches 1.0 only.
    assert_eq!(targets(&report), ["app-misc/ouser", "dev-libs/lib"], "{log}");
    assert!(log_says(&log, "plan: app-misc/ouser: depends on dev-libs/lib"), "{log}");
    assert!(
        log_says(
            &log,
            "plan: app-misc/vuser: its version operators on dev-libs/lib match each added version as they match its twin; not scanned"
        ),
        "{log}"
    );
}

#[test]
fn a_license_only_change_scans_no_dependent() {
    for cache in [false, true] {
        let what = variant(cache);
        let r = base_repo(cache);
        start_pr(&r);
        r.add_package("dev-libs", "lib", "1.0", &Ebuild { license: "GPL-2".into(), ..Ebuild::default() });
        commit(&r, cache, "dev-libs/lib: GPL-2");
        let (code, report, log) = Prci::new().check_logged(r.path(), "master", "pr", &[]);
        assert_eq!(code, 0, "{what}: {report}\n{log}");
        assert_eq!(report["scan"]["full"], false, "{what}: {log}");
        assert_eq!(targets(&report), ["dev-libs/lib"], "{what}: {log}");
        assert!(log_says(&log, "plan: dev-libs/lib: no change dependency resolution sees"), "{what}: {log}");
        assert!(log_says(&log, "reverse dependencies not scanned"), "{what}: {log}");
        assert!(!log_says(&log, "depends on dev-libs/lib"), "{what}: {log}");
    }
}

#[test]
fn a_change_dependency_resolution_sees_scans_the_dependents() {
    // (name, the change on the pull request, what the plan says, md5-cache committed)
    type Change = fn(&Repo);
    let cases: [(&str, Change, &str, bool); 4] = [
        (
            "keyword drop",
            |r| r.add_package("dev-libs", "lib", "1.0", &Ebuild { keywords: String::new(), ..Ebuild::default() }),
            "only KEYWORDS changed, on amd64; reverse dependencies keyworded there (and virtuals) scanned",
            true,
        ),
        (
            "slot change",
            |r| r.add_package("dev-libs", "lib", "1.0", &Ebuild { slot: "1".into(), ..Ebuild::default() }),
            "SLOT of lib-1.0 changed; reverse dependencies scanned",
            false,
        ),
        ("version removal", |r| r.remove("dev-libs/lib/lib-1.0.ebuild"), "lib-1.0 removed; reverse dependencies scanned", true),
        (
            "IUSE change",
            |r| r.add_package("dev-libs", "lib", "1.0", &Ebuild { iuse: "ssl".into(), ..Ebuild::default() }),
            "IUSE of lib-1.0 changed; reverse dependencies scanned",
            false,
        ),
    ];
    for (name, change, why, cache) in cases {
        let what = format!("{name}, {}", variant(cache));
        let r = base_repo(cache);
        if name == "version removal" {
            // Another version stays: the dependent still resolves.
            r.add_package("dev-libs", "lib", "2.0", &Ebuild { slot: "2".into(), ..Ebuild::default() });
            commit(&r, cache, "dev-libs/lib: add 2.0");
        }
        start_pr(&r);
        change(&r);
        commit(&r, cache, &format!("dev-libs/lib: {name}"));
        let (code, report, log) = Prci::new().check_logged(r.path(), "master", "pr", &[]);
        assert_ne!(code, 2, "{what}: {report}\n{log}");
        assert_eq!(report["scan"]["full"], false, "{what}: {log}");
        assert_eq!(targets(&report), ["app-misc/user", "dev-libs/lib"], "{what}: {log}");
        assert!(log_says(&log, &format!("plan: dev-libs/lib: {why}")), "{what}: {log}");
        assert!(log_says(&log, "plan: app-misc/user: depends on dev-libs/lib"), "{what}: {log}");
        // The dependent is scanned with the checks that read other packages, on the changed arch for a keyword change.
        let narrowed = "plan: 1 reverse dependencies scanned with the checks that read other packages only";
        let on_arch = format!("{narrowed}, on amd64");
        assert_eq!(log_says(&log, &on_arch), name == "keyword drop", "{what}: {log}");
        assert!(log_says(&log, narrowed), "{what}: {log}");
        if name == "keyword drop" {
            // As `removing_or_dekeywording_a_library_breaks_its_dependents` (check.rs): the dependent is broken.
            assert_eq!(code, 1, "{what}: {report}");
            let new = summary(&report, "new");
            assert!(
                new.iter().any(|f| f.starts_with("NonsolvableDeps") && f.ends_with("@app-misc/user-1.0")),
                "{what}: the dependent is not reported: {new:?}"
            );
            // Its unsolvable dependency is VisibilityCheck's, deterministic: taken from the first scans, no rescan.
            let trusted = log.lines().find(|l| l.contains("confirm: ")).unwrap_or_default();
            assert!(trusted.contains(" rescanned in 0 rounds") && !trusted.contains("confirm: 0 candidate"), "{what}: {log}");
        }
    }
}
