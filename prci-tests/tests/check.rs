//! End-to-end tests of `prci check` with the real pkgcheck and pmaint on fixture repositories.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{processes_mentioning, summary, Prci};
use fixtures::{eclass_function, Ebuild, Repo};
use serde_json::Value;

/// A standalone repository (it has `sys-test/seed-1.0`, which inherits `testlib`) with a few more packages:
/// `app-misc/foo`, `dev-libs/lib`, and `app-misc/user` which depends on `dev-libs/lib`.
fn base_repo() -> Repo {
    let r = Repo::standalone("test");
    r.add_package("app-misc", "foo", "1.0", &Ebuild::default());
    r.add_package("dev-libs", "lib", "1.0", &Ebuild::default());
    r.add_package("app-misc", "user", "1.0", &Ebuild::default().with_rdepend("dev-libs/lib"));
    r.commit("Add packages");
    r
}

fn ebuild_with_license(license: &str) -> Ebuild {
    Ebuild { license: license.into(), ..Ebuild::default() }
}

/// Start a pull-request branch `pr` at master and switch to it.
fn start_pr(r: &Repo) {
    r.branch("pr");
    r.switch("pr");
}

#[test]
fn a_pr_introducing_an_error_fails_with_exactly_that_issue() {
    let r = base_repo();
    start_pr(&r);
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("NoSuchLicense"));
    r.commit("app-misc/foo: break the license");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["verdict"], "fail");
    assert_eq!(summary(&report, "new"), ["UnknownLicense@app-misc/foo-1.0"]);
    assert!(summary(&report, "fixed").is_empty());
    assert_eq!(report["new"][0]["licenses"], serde_json::json!(["NoSuchLicense"]));
    assert_eq!(report["new"][0]["level"], "error");
    assert_eq!(report["scan"]["full"], false);
    assert_eq!(report["tools"]["pkgcheck"], "0.10.37");
    assert_eq!(report["tested"], report["head"], "a fast-forward scans the head itself");
    assert_eq!(report["base"].as_str().map(str::len), Some(40));
}

#[test]
fn a_pr_fixing_an_error_passes_and_reports_the_fix() {
    let r = base_repo();
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("NoSuchLicense"));
    r.commit("app-misc/foo: broken on master");
    start_pr(&r);
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("MIT"));
    r.commit("app-misc/foo: fix the license");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["verdict"], "pass");
    assert!(summary(&report, "new").is_empty());
    assert_eq!(summary(&report, "fixed"), ["UnknownLicense@app-misc/foo-1.0"]);
}

#[test]
fn a_new_issue_in_a_package_that_already_had_one_is_new() {
    let r = base_repo();
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("NoSuchLicense"));
    r.commit("app-misc/foo: broken on master");
    start_pr(&r);
    r.add_package(
        "app-misc",
        "foo",
        "1.0",
        &Ebuild { license: "NoSuchLicense".into(), keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() },
    );
    r.commit("app-misc/foo: add a keyword");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(summary(&report, "new"), ["UnknownKeywords@app-misc/foo-1.0"]);
    assert!(summary(&report, "unchanged").contains(&"UnknownLicense@app-misc/foo-1.0".to_string()));
    assert!(summary(&report, "fixed").is_empty());
}

#[test]
fn an_eclass_change_that_breaks_its_inheritors_reports_them() {
    let r = base_repo();
    r.add_package(
        "app-misc",
        "inheritor",
        "1.0",
        &Ebuild { inherit: vec!["testlib".into()], body: "src_compile() {\n\ttestlib_hello\n}\n".into(), ..Ebuild::default() },
    );
    r.commit("app-misc/inheritor: new package");
    start_pr(&r);
    r.add_eclass("testlib", &format!("{}\nEXPORT_FUNCTIONS src_compile\n", eclass_function("testlib_hello", "echo hello\n")));
    r.write("eclass/testlib.eclass", &r.read("eclass/testlib.eclass").replace("EXPORT_FUNCTIONS src_compile", "die \"testlib is broken\""));
    r.commit("testlib.eclass: break it");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(code, 1, "{report}");
    let targets: Vec<&str> = report["scan"]["targets"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(targets.contains(&"app-misc/inheritor") && targets.contains(&"sys-test/seed"), "{targets:?}");
    assert!(!targets.contains(&"app-misc/foo"), "foo does not inherit testlib: {targets:?}");
    let new = summary(&report, "new");
    assert!(new.iter().any(|f| f.ends_with("@app-misc/inheritor-1.0")), "{report}");
    assert!(new.iter().any(|f| f.ends_with("@sys-test/seed-1.0")), "{new:?}");
    assert!(!new.iter().any(|f| f.contains("app-misc/foo")), "{new:?}");
}

#[test]
fn a_removed_license_breaks_the_packages_using_it() {
    let r = base_repo();
    r.add_package("app-misc", "gpl", "1.0", &ebuild_with_license("GPL-2"));
    r.commit("app-misc/gpl: new package");
    start_pr(&r);
    r.remove("licenses/GPL-2");
    r.commit("licenses: drop GPL-2");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["scan"]["full"], true);
    let new = summary(&report, "new");
    assert!(new.contains(&"UnknownLicense@app-misc/gpl-1.0".to_string()), "{new:?}");
    assert!(new.contains(&"UnknownLicense@sys-test/seed-1.0".to_string()), "{new:?}");
    assert!(!new.iter().any(|f| f.contains("app-misc/foo")), "{new:?}");
}

#[test]
fn a_profile_change_is_scanned_with_the_whole_repository() {
    let r = base_repo();
    start_pr(&r);
    // Masking the library in the profile makes its dependent's dependencies unsolvable.
    r.write("profiles/default/linux/amd64/package.mask", "dev-libs/lib\n");
    r.commit("profiles: mask dev-libs/lib");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(report["scan"]["full"], true, "{report}");
    let new = summary(&report, "new");
    assert!(!new.is_empty() && new.iter().all(|f| f.ends_with("@app-misc/user-1.0")), "{report}");
    assert_eq!(code, 1);
}

#[test]
fn a_version_bump_carries_its_old_issue_without_blame() {
    let r = base_repo();
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("NoSuchLicense"));
    r.commit("app-misc/foo: broken on master");
    start_pr(&r);
    r.remove("app-misc/foo/foo-1.0.ebuild");
    r.add_package("app-misc", "foo", "1.1", &ebuild_with_license("NoSuchLicense"));
    r.commit("app-misc/foo: bump to 1.1");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(code, 0, "{report}");
    assert!(summary(&report, "new").is_empty(), "{report}");
    assert!(summary(&report, "fixed").is_empty(), "{report}");
    assert!(summary(&report, "unchanged").contains(&"UnknownLicense@app-misc/foo-1.1".to_string()));
}

#[test]
fn removing_or_dekeywording_a_library_breaks_its_dependents() {
    for (what, change) in [("remove", 0), ("dekeyword", 1)] {
        let r = base_repo();
        start_pr(&r);
        if change == 0 {
            r.remove("dev-libs/lib");
        } else {
            r.add_package("dev-libs", "lib", "1.0", &Ebuild { keywords: String::new(), ..Ebuild::default() });
        }
        r.commit("dev-libs/lib: change");
        let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
        assert_eq!(code, 1, "{what}: {report}");
        let targets: Vec<&str> = report["scan"]["targets"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(targets.contains(&"app-misc/user"), "{what}: {targets:?}");
        let new = summary(&report, "new");
        assert!(new.iter().any(|f| f.ends_with("@app-misc/user-1.0")), "{what}: the dependent is not reported: {new:?}");
    }
}

/// An ebuild that makes pkgcheck 0.10.37's MetadataVarCheck crash (`KEYWORDS=` with no value).
fn crashing_ebuild() -> Ebuild {
    Ebuild { keywords: String::new(), body: "KEYWORDS=\n".into(), ..Ebuild::default() }
}

#[test]
fn a_pkgcheck_crash_is_contained_to_its_package() {
    let r = base_repo();
    start_pr(&r);
    r.add_package("app-misc", "crashy", "1.0", &crashing_ebuild());
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("NoSuchLicense"));
    r.commit("two packages");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(code, 1, "{report}");
    let new = summary(&report, "new");
    assert!(new.contains(&"UnknownLicense@app-misc/foo-1.0".to_string()), "the rest of the verdict stands: {new:?}");
    let crash = report["new"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["__class__"] == "PrciToolCrash")
        .unwrap_or_else(|| panic!("no crash entry: {report}"));
    assert_eq!(crash["package"], "crashy");
    assert_eq!(crash["check"], "MetadataVarCheck");
    assert!(crash["error"].as_str().unwrap().starts_with("TypeError"), "{crash}");

    // The same crash already on the base is pre-existing.
    let r2 = base_repo();
    r2.add_package("app-misc", "crashy", "1.0", &crashing_ebuild());
    r2.commit("crashy on master");
    start_pr(&r2);
    r2.write("app-misc/crashy/crashy-1.0.ebuild", &format!("{}# a comment\n", r2.read("app-misc/crashy/crashy-1.0.ebuild")));
    r2.add_package("app-misc", "foo", "1.0", &ebuild_with_license("NoSuchLicense"));
    r2.commit("touch crashy, break foo");
    let (code, report) = Prci::new().check(r2.path(), "master", "pr", &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(summary(&report, "new"), ["UnknownLicense@app-misc/foo-1.0"]);
    assert!(summary(&report, "unchanged").contains(&"PrciToolCrash@app-misc/crashy".to_string()), "{report}");
}

#[test]
fn a_merge_conflict_is_a_result() {
    let r = base_repo();
    start_pr(&r);
    r.add_package("app-misc", "foo", "1.0", &Ebuild { description: "One description".into(), ..Ebuild::default() });
    r.commit("pr side");
    r.switch("master");
    r.add_package("app-misc", "foo", "1.0", &Ebuild { description: "Another description".into(), ..Ebuild::default() });
    r.commit("master side");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["conflicts"], serde_json::json!(["app-misc/foo/foo-1.0.ebuild"]));
    assert!(report["reason"].as_str().unwrap().contains("conflict"));
}

#[test]
fn a_base_that_moved_on_is_merged_and_its_own_fixes_are_not_credited() {
    let r = base_repo();
    r.add_package("dev-libs", "lib", "1.0", &ebuild_with_license("NoSuchLicense"));
    r.commit("dev-libs/lib: broken on master");
    start_pr(&r);
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("AlsoNoLicense"));
    r.commit("app-misc/foo: break it");
    r.switch("master");
    r.add_package("dev-libs", "lib", "1.0", &ebuild_with_license("MIT"));
    r.add_package("app-misc", "later", "1.0", &Ebuild::default());
    r.commit("master moves on: fix lib, add a package");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(code, 1, "{report}");
    assert_ne!(report["tested"], report["head"], "the head is merged onto the current tip");
    assert_ne!(report["tested"], report["base"]);
    assert_eq!(report["base"].as_str(), Some(r.rev_parse("master").as_str()));
    assert_eq!(summary(&report, "new"), ["UnknownLicense@app-misc/foo-1.0"]);
    assert!(summary(&report, "fixed").is_empty(), "the base's own fix is not the PR's: {report}");
}

#[test]
fn an_overlay_is_checked_against_its_master() {
    let master = Repo::standalone("gentoo");
    let overlay = Repo::overlay("overlay", "gentoo");
    overlay.add_package(
        "app-misc",
        "ov",
        "1.0",
        &Ebuild {
            inherit: vec!["testlib".into()],
            body: "src_compile() {\n\ttestlib_hello\n}\n".into(),
            rdepend: "sys-test/seed".into(),
            ..Ebuild::default()
        },
    );
    overlay.commit("app-misc/ov: new package using the master's eclass and package");
    start_pr(&overlay);
    overlay.add_package(
        "app-misc",
        "ov",
        "1.0",
        &Ebuild {
            inherit: vec!["testlib".into()],
            body: "src_compile() {\n\ttestlib_hello\n}\n".into(),
            rdepend: "sys-test/seed".into(),
            license: "NoSuchLicense".into(),
            ..Ebuild::default()
        },
    );
    overlay.commit("app-misc/ov: break it");
    let master_arg = format!("gentoo={}", master.path().display());
    let (code, report) = Prci::new().check(overlay.path(), "master", "pr", &["--master", &master_arg]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(summary(&report, "new"), ["UnknownLicense@app-misc/ov-1.0"], "{report}");
    assert!(summary(&report, "unchanged").is_empty(), "the master's eclass and package resolve: {report}");
}

#[test]
fn an_ebuild_that_never_terminates_is_killed_with_everything_it_started() {
    let r = base_repo();
    start_pr(&r);
    // The loop first starts a detached sleeper (its name is the marker): once prci is done, neither may be running.
    // (pkgcore bans commands looked up on PATH in global scope; absolute paths run.)
    let marker = format!("{}.{}", 89_000 + std::process::id() % 1000, 1);
    r.add_package(
        "app-misc",
        "hang",
        "1.0",
        &Ebuild {
            body: format!("/usr/bin/setsid /usr/bin/sleep {marker} </dev/null >/dev/null 2>&1 &\nwhile :; do :; done\n"),
            ..Ebuild::default()
        },
    );
    r.commit("app-misc/hang: loops forever in global scope");
    let prci = Prci::new().with_env("PRCI__CHECKER__REGEN_TIMEOUT_SECS", "5");
    let started = std::time::Instant::now();
    let (code, report, log) = prci.check_logged(r.path(), "master", "pr", &[]);
    assert_eq!(code, 2, "{report}");
    assert_eq!(report["verdict"], "error");
    assert!(report["reason"].as_str().unwrap().contains("timed out"), "{report}");
    assert!(started.elapsed().as_secs() < 120, "the timeout did not stop it");
    assert!(log.contains("tool timed out"), "the ebuild never ran: {log}");
    let left = processes_mentioning(&marker);
    assert!(left.is_empty(), "the hung ebuild's sleeper outlived prci: {left:?}");
    let left = processes_mentioning(&prci.work.path().display().to_string());
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_input_gets_one_line_and_exit_2() {
    let r = base_repo();
    let prci = Prci::new();
    let not_repo = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--repo".into(), not_repo.path().display().to_string(), "--base".into(), "master".into(), "--head".into(), "pr".into()],
            "is not a git repository",
        ),
        (
            vec![
                "--repo".into(),
                r.path().display().to_string(),
                "--base".into(),
                "master".into(),
                "--head".into(),
                "no-such-branch".into(),
            ],
            "unknown revision",
        ),
        (vec!["--repo".into(), "/no/such/dir".into(), "--base".into(), "a".into(), "--head".into(), "b".into()], "does not exist"),
    ];
    for (args, expect) in cases {
        let mut full = vec!["check".to_string()];
        full.extend(args);
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let out = prci.run(&refs);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(expect), "{stderr}");
    }

    // A git repository that is not an ebuild repository pkgcheck can load.
    let plain = Repo::standalone("plain");
    plain.remove("profiles/repo_name");
    plain.write("metadata/layout.conf", "this is = not [a layout\n");
    plain.commit("break the layout");
    let path = plain.path().display().to_string();
    let out = prci.run(&["check", "--repo", &path, "--base", "master", "--head", "master"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not an ebuild repository"), "{stderr}");

    // A missing tool names the install command.
    let path = r.path().display().to_string();
    let out = Prci::new()
        .with_env("PRCI__TOOLS__PKGCHECK", "/no/such/pkgcheck")
        .run(&["check", "--repo", &path, "--base", "master", "--head", "master"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bash .ci/install-tools"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // Bad configuration: exit 64 with the key.
    let out = Prci::new()
        .with_env("PRCI__CHECKER__FAIL_LEVELS", "fatal")
        .run(&["check", "--repo", &path, "--base", "master", "--head", "master"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("checker.fail_levels"), "{stderr}");
}

#[test]
fn no_sandbox_refuses_to_start_unless_disabled_explicitly_and_then_every_report_says_so() {
    let r = base_repo();
    let path = r.path().display().to_string();
    let out = Prci::new()
        .with_env("PRCI__SANDBOX__BWRAP", "/no/such/bwrap")
        .run(&["check", "--repo", &path, "--base", "master", "--head", "master"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("/no/such/bwrap") && stderr.contains("sandbox.enabled = false"), "{stderr}");
    assert!(stderr.contains("bubblewrap") && stderr.contains("user namespaces"), "how to allow it: {stderr}");

    // The old switch is refused, naming the new one.
    let out =
        Prci::new().with_env("PRCI__CHECKER__SANDBOX", "false").run(&["check", "--repo", &path, "--base", "master", "--head", "master"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("checker.sandbox") && stderr.contains("sandbox.enabled"), "{stderr}");

    start_pr(&r);
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("NoSuchLicense"));
    r.commit("app-misc/foo: break the license");
    let (code, report, log) = Prci::new().with_env("PRCI__SANDBOX__ENABLED", "false").check_logged(r.path(), "master", "pr", &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(summary(&report, "new"), ["UnknownLicense@app-misc/foo-1.0"]);
    assert!(report["tools"]["sandbox"].as_str().unwrap().starts_with("UNSANDBOXED"), "{report}");
    assert!(log.contains("ERROR") && log.contains("UNSANDBOXED"), "{log}");
    let (_, sandboxed) = Prci::new().check(r.path(), "master", "pr", &[]);
    assert_eq!(sandboxed["tools"]["sandbox"], "bubblewrap");
}

#[test]
fn the_text_summary_puts_new_issues_first() {
    let r = base_repo();
    r.add_package("dev-libs", "lib", "1.0", &ebuild_with_license("NoSuchLicense"));
    r.commit("lib broken on master");
    start_pr(&r);
    r.add_package("dev-libs", "lib", "1.0", &Ebuild::default());
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("NoSuchLicense"));
    r.commit("fix lib, break foo");
    let path = r.path().display().to_string();
    let out = Prci::new().run(&["check", "--repo", &path, "--base", "master", "--head", "pr"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.starts_with("prci: FAIL"), "{text}");
    let new_at = text.find("New issues (1)").expect("new section");
    let fixed_at = text.find("Fixed issues (1)").expect("fixed section");
    assert!(new_at < fixed_at);
    assert!(text[new_at..fixed_at].contains("app-misc/foo"));
    assert!(text[fixed_at..].contains("dev-libs/lib"));
}

#[test]
fn extra_pkgcheck_arguments_apply_to_both_sides() {
    let r = base_repo();
    start_pr(&r);
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("NoSuchLicense"));
    r.commit("break foo");
    let (code, report) = Prci::new().check(r.path(), "master", "pr", &["--pkgcheck-arg=--keywords=-UnknownLicense"]);
    assert_eq!(code, 0, "{report}");
    assert!(summary(&report, "new").is_empty(), "{report}");
    let path = r.path().display().to_string();
    let out = Prci::new().run(&["check", "--repo", &path, "--base", "master", "--head", "pr", "--pkgcheck-arg=--reporter=FancyReporter"]);
    assert_eq!(out.status.code(), Some(2));
}

/// A pkgcheck that hangs on `app-misc/slow` while `flag` exists and the scanned tree's ebuild carries the
/// marker `# prci-test: slow` (only the base side's does): a host too busy to scan the base in time. A flag
/// holding `once` makes only the first such scan of a job hang: the host was busy for one scan only.
fn pkgcheck_slow_on_marked_base(dir: &std::path::Path, flag: &std::path::Path) -> String {
    let real = fixtures::pkgcheck_path();
    let python = real.parent().unwrap().join("python3");
    let shim = dir.join("pkgcheck");
    let text = format!(
        r##"#!{python}
import os, subprocess, sys, time
REAL = {real:?}
args = sys.argv[1:]
data = sys.stdin.buffer.read() if "-" in args else None
if "scan" in args and "-r" in args and os.path.exists({flag:?}) and data and b"app-misc/slow" in data:
    tree = args[args.index("-r") + 1]
    try:
        marked = "# prci-test: slow" in open(os.path.join(tree, "app-misc/slow/slow-1.0.ebuild")).read()
    except OSError:
        marked = False
    # "once": the first such scan of a job's side hangs (it leaves a marker in its own HOME, the sandbox's
    # scratch directory of that side); the flag's directory is seen read-only.
    once = os.path.join(os.environ["HOME"], ".prci-test-slowed")
    if marked and not (open({flag:?}).read() == "once" and os.path.exists(once)):
        open(once, "w").close()
        time.sleep(600)
sys.exit(subprocess.run([REAL] + args, input=data).returncode)
"##,
        python = python.display(),
        real = real.display().to_string(),
        flag = flag.display().to_string(),
    );
    std::fs::write(&shim, text).unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    shim.display().to_string()
}

/// A repository where `app-misc/slow` carries the marker on master, and pull requests `pr1` and `pr2` touch it.
fn slow_repo() -> Repo {
    let r = base_repo();
    r.add_package("app-misc", "slow", "1.0", &Ebuild { body: "# prci-test: slow\n".into(), ..Ebuild::default() });
    r.commit("app-misc/slow on master");
    for pr in ["pr1", "pr2"] {
        r.switch("master");
        r.branch(pr);
        r.switch(pr);
        r.add_package("app-misc", "slow", "1.0", &Ebuild { body: format!("# touched by {pr}\n"), ..Ebuild::default() });
        r.commit(&format!("app-misc/slow: {pr}"));
    }
    r
}

#[test]
fn a_base_scan_slowed_by_load_once_is_scanned_again_and_blames_nothing() {
    let r = slow_repo();
    let tmp = tempfile::tempdir().unwrap();
    let flag = tmp.path().join("busy");
    std::fs::write(&flag, "once").unwrap();
    let shim = pkgcheck_slow_on_marked_base(tmp.path(), &flag);
    let prci = Prci::new().with_env("PRCI__TOOLS__PKGCHECK", &shim).with_env("PRCI__CHECKER__SCAN_TIMEOUT_SECS", "30");
    let (code, report, log) = prci.check_logged(r.path(), "master", "pr1", &[]);
    assert!(log.contains("scanning the base side again"), "the base scan never hung: this test would prove nothing\n{log}");
    assert_eq!(code, 0, "{report}\n{log}");
    assert!(summary(&report, "fixed").is_empty() && summary(&report, "new").is_empty(), "{report}");
}

#[test]
fn a_timed_out_base_scan_is_never_cached() {
    let r = slow_repo();
    let tmp = tempfile::tempdir().unwrap();
    let flag = tmp.path().join("busy");
    std::fs::write(&flag, "").unwrap();
    let shim = pkgcheck_slow_on_marked_base(tmp.path(), &flag);
    let prci = Prci::new().with_env("PRCI__TOOLS__PKGCHECK", &shim).with_env("PRCI__CHECKER__SCAN_TIMEOUT_SECS", "30");
    // The first pull request on this base: the base scan of app-misc/slow runs past its limit.
    let (_, report, log) = prci.check_logged(r.path(), "master", "pr1", &[]);
    assert!(
        summary(&report, "fixed").contains(&"PrciScanTimeout@app-misc/slow".to_string()),
        "the base scan did not time out: {report}\n{log}"
    );
    assert!(log.contains("not cached"), "{log}");
    // The host is not busy any more: the next pull request on the same base scans the base again.
    std::fs::remove_file(&flag).unwrap();
    let (code, report, log) = prci.check_logged(r.path(), "master", "pr2", &[]);
    assert_eq!(code, 0, "{report}\n{log}");
    assert!(summary(&report, "fixed").is_empty(), "a timeout became cached base truth: {report}");
    assert!(summary(&report, "new").is_empty(), "{report}");
}

/// Every file under `dir` with its content, for comparing a directory before and after.
fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())).flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            } else {
                out.insert(e.path(), std::fs::read(e.path()).expect("read a cache file"));
            }
        }
    }
    out
}

/// The directories `prci` keeps pkgcheck's caches in, beside its checkouts.
fn kept_tool_caches(work: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![work.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                if e.file_name().to_string_lossy().ends_with(".pkgcheck-cache") {
                    found.push(e.path());
                } else {
                    stack.push(e.path());
                }
            }
        }
    }
    found.sort();
    found
}

#[test]
fn the_merge_checkouts_kept_pkgcheck_cache_is_never_written_by_a_scan_of_a_pull_request() {
    let r = base_repo();
    r.add_package(
        "app-misc",
        "inheritor",
        "1.0",
        &Ebuild { inherit: vec!["testlib".into()], body: "src_compile() {\n\ttestlib_hello\n}\n".into(), ..Ebuild::default() },
    );
    r.commit("app-misc/inheritor: new package");
    let prci = Prci::new();
    // A pull request that changes no profile, eclass or repository metadata: the kept cache is brought up to date.
    r.branch("licence");
    r.switch("licence");
    r.add_package("app-misc", "foo", "1.0", &ebuild_with_license("GPL-2"));
    r.commit("app-misc/foo: GPL-2");
    let (code, report) = prci.check(r.path(), "master", "licence", &[]);
    assert_eq!(code, 0, "{report}");
    let kept = kept_tool_caches(prci.work.path());
    let merge = kept.iter().find(|p| p.ends_with("merge.pkgcheck-cache")).unwrap_or_else(|| panic!("no kept merge cache: {kept:?}"));
    let before = snapshot(merge);
    assert!(before.keys().any(|p| p.to_string_lossy().contains("eclass")), "{before:?}", before = before.keys().collect::<Vec<_>>());
    // A pull request that deprecates an eclass: its findings come from pkgcheck's eclass cache, which the
    // merge side's scan rebuilds in its own copy; the kept one stays as the base's profiles and eclasses made it.
    r.switch("master");
    r.branch("deprecate");
    r.switch("deprecate");
    let eclass = r.read("eclass/testlib.eclass");
    assert!(eclass.contains("# @ECLASS: testlib.eclass\n"), "{eclass}");
    r.write("eclass/testlib.eclass", &eclass.replace("# @ECLASS: testlib.eclass\n", "# @ECLASS: testlib.eclass\n# @DEPRECATED: none\n"));
    r.commit("testlib.eclass: deprecated");
    let (code, report) = prci.check(r.path(), "master", "deprecate", &[]);
    assert_eq!(code, 1, "warnings fail by default: {report}");
    let new = summary(&report, "new");
    assert!(new.contains(&"DeprecatedEclass@app-misc/inheritor-1.0".to_string()), "{new:?}");
    assert!(new.contains(&"DeprecatedEclass@sys-test/seed-1.0".to_string()), "{new:?}");
    assert_eq!(snapshot(merge), before, "a scan of the merge tree wrote the kept cache");
    // The first pull request again: the kept cache (base eclasses) gives the same verdict.
    let (code, again) = prci.check(r.path(), "master", "licence", &[]);
    assert_eq!(code, 0, "{again}");
    assert!(summary(&again, "new").is_empty(), "{again}");
}
