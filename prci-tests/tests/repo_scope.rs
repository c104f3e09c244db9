//! Only the repository-scope checks a pull request can change are scanned (on both sides): real pkgcheck, fixture repositories.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{summary, Prci};
use fixtures::{metadata_xml, Ebuild, Repo};

const NONE_SCANNED: &str = "no input of a repository-scope check; none is scanned";

/// A standalone repository with `licenses/UNUSED` (no package uses it), a global USE flag `zzflag`
/// nobody uses, and `app-misc/foo`, `dev-libs/lib`, `app-misc/gpl` (the only GPL-2 package besides the seed).
fn base_repo() -> Repo {
    base_repo_with(|_| {})
}

/// [`base_repo`] with more files on master before the pull request starts.
fn base_repo_with(extra: impl FnOnce(&Repo)) -> Repo {
    let r = Repo::standalone("test");
    r.write("licenses/UNUSED", "a licence no package uses\n");
    r.write("profiles/use.desc", "zzflag - a global flag nobody uses\n");
    r.add_package("app-misc", "foo", "1.0", &Ebuild::default());
    r.add_package("dev-libs", "lib", "1.0", &Ebuild::default());
    r.add_package("app-misc", "gpl", "1.0", &Ebuild { license: "GPL-2".into(), ..Ebuild::default() });
    extra(&r);
    r.commit("Add packages");
    r.branch("pr");
    r.switch("pr");
    r
}

fn log_says(log: &str, needle: &str) -> bool {
    log.lines().any(|l| l.contains(needle))
}

#[test]
fn a_pr_that_changes_no_repo_scope_input_scans_no_repo_pass() {
    let r = base_repo();
    // MIT is still used by other packages, NoSuchLicense is not a licence file: the unused set is the same.
    r.add_package("app-misc", "foo", "1.0", &Ebuild { license: "NoSuchLicense".into(), ..Ebuild::default() });
    r.commit("app-misc/foo: break the license");
    let (code, report, log) = Prci::new().check_logged(r.path(), "master", "pr", &[]);
    assert_eq!(code, 1, "{report}\n{log}");
    assert_eq!(summary(&report, "new"), ["UnknownLicense@app-misc/foo-1.0"], "{report}");
    assert!(summary(&report, "fixed").is_empty(), "{report}");
    // Repository-scope results are the same on both sides, so they were not scanned: not listed either.
    let unchanged = summary(&report, "unchanged");
    assert!(!unchanged.iter().any(|f| f.starts_with("UnusedLicenses@") || f.starts_with("UnusedGlobalUse@")), "{unchanged:?}");
    assert!(log_says(&log, NONE_SCANNED), "{log}");
    assert!(!log_says(&log, "repo pass reruns"), "{log}");
}

#[test]
fn removing_the_last_user_of_a_licence_reruns_that_check_and_reports_it_unused() {
    let r = base_repo();
    // The seed package also uses GPL-2: make it and app-misc/gpl MIT only, and GPL-2 is left unused.
    r.add_package("app-misc", "gpl", "1.0", &Ebuild::default());
    let seed = r.read("sys-test/seed/seed-1.0.ebuild").replace("LICENSE=\"MIT GPL-2\"", "LICENSE=\"MIT\"");
    r.write("sys-test/seed/seed-1.0.ebuild", &seed);
    r.commit("drop GPL-2 everywhere");
    let (code, report, log) = Prci::new().check_logged(r.path(), "master", "pr", &[]);
    assert!(log_says(&log, "repo pass reruns UnusedLicensesCheck"), "{log}");
    assert!(!log_says(&log, "whole repo pass"), "only the licence check is rerun: {log}");
    let new: Vec<&serde_json::Value> = report["new"].as_array().unwrap().iter().filter(|f| f["__class__"] == "UnusedLicenses").collect();
    assert_eq!(new.len(), 1, "{report}");
    // Compared item by item: the licence the pull request left unused is new; the one unused before is unchanged.
    assert_eq!(new[0]["licenses"], serde_json::json!(["GPL-2"]), "{report}");
    assert!(summary(&report, "fixed").iter().all(|f| !f.starts_with("UnusedLicenses@")), "{report}");
    let unchanged: Vec<&serde_json::Value> =
        report["unchanged"].as_array().unwrap().iter().filter(|f| f["__class__"] == "UnusedLicenses").collect();
    assert_eq!(unchanged.len(), 1, "{report}");
    assert_eq!(unchanged[0]["licenses"], serde_json::json!(["UNUSED"]));
    assert_eq!(code, 1, "UnusedLicenses is a warning, and warnings fail by default: {report}");
}

#[test]
fn a_global_flag_that_gets_a_user_is_fixed() {
    let r = base_repo();
    r.add_package("app-misc", "foo", "1.0", &Ebuild { iuse: "zzflag".into(), ..Ebuild::default() });
    // A global flag: not described in the package's metadata.xml.
    r.write("app-misc/foo/metadata.xml", &metadata_xml(""));
    r.commit("app-misc/foo: use zzflag");
    let (code, report, log) = Prci::new().check_logged(r.path(), "master", "pr", &[]);
    assert!(log_says(&log, "repo pass reruns GlobalUseCheck"), "{log}");
    assert!(summary(&report, "fixed").iter().any(|f| f.starts_with("UnusedGlobalUse@")), "{report}");
    assert!(summary(&report, "new").iter().all(|f| !f.starts_with("UnusedGlobalUse")), "{report}");
    assert_eq!(code, 0, "{report}");
}

fn hex(c: char, n: usize) -> String {
    std::iter::repeat_n(c, n).collect()
}

fn manifest(name: &str, size: u64, fill: char) -> String {
    format!("DIST {name} {size} BLAKE2B {} SHA512 {}\n", hex(fill, 128), hex(fill, 128))
}

#[test]
fn a_distfile_colliding_with_another_packages_is_new_and_confirmed() {
    let r = base_repo_with(|r| r.write("app-misc/foo/Manifest", &manifest("common-1.0.tar.gz", 100, 'a')));
    r.write("dev-libs/lib/Manifest", &manifest("common-1.0.tar.gz", 200, 'b'));
    r.commit("dev-libs/lib: the same distfile name with other checksums");
    let (_, report, log) = Prci::new().check_logged(r.path(), "master", "pr", &[]);
    assert!(log_says(&log, "repo pass reruns ManifestCollisionCheck"), "{log}");
    let new = summary(&report, "new");
    assert!(
        new.iter().any(|f| f.starts_with("ConflictingChksums@dev-libs/lib")),
        "a repo-pass finding on a version survives confirmation: {report}"
    );
}

#[test]
fn a_distfile_of_its_own_needs_no_collision_check() {
    let r = base_repo_with(|r| r.write("app-misc/foo/Manifest", &manifest("common-1.0.tar.gz", 100, 'a')));
    r.write("dev-libs/lib/Manifest", &manifest("lib-1.0.tar.gz", 12345, 'c'));
    r.commit("dev-libs/lib: a distfile no other package has");
    let (_, _, log) = Prci::new().check_logged(r.path(), "master", "pr", &[]);
    assert!(log_says(&log, NONE_SCANNED), "{log}");
}

#[test]
fn a_bump_keeping_its_distfiles_and_lowest_version_needs_no_collision_check() {
    // foo and lib share a distfile (an existing collision): ConflictingChksums on both sides, on the lowest version.
    let r = base_repo_with(|r| {
        r.write("app-misc/foo/Manifest", &manifest("common-1.0.tar.gz", 100, 'a'));
        r.write("dev-libs/lib/Manifest", &manifest("common-1.0.tar.gz", 200, 'b'));
    });
    r.add_package("dev-libs", "lib", "1.1", &Ebuild::default());
    r.commit("dev-libs/lib: bump, same distfiles");
    let (_, report, log) = Prci::new().check_logged(r.path(), "master", "pr", &[]);
    assert!(!log_says(&log, "repo pass reruns ManifestCollisionCheck"), "{log}");
    assert!(summary(&report, "new").iter().all(|f| !f.starts_with("ConflictingChksums")), "{report}");
    // Removing the lowest version moves the finding to 1.1: rerun, and the move is neither new nor fixed.
    r.remove("dev-libs/lib/lib-1.0.ebuild");
    r.commit("dev-libs/lib: drop 1.0");
    let (_, report, log) = Prci::new().check_logged(r.path(), "master", "pr", &[]);
    assert!(log_says(&log, "repo pass reruns ManifestCollisionCheck"), "{log}");
    assert!(summary(&report, "unchanged").iter().any(|f| f.starts_with("ConflictingChksums@dev-libs/lib-1.1")), "{report}");
}
