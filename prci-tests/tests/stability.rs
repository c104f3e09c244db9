//! Stable verdicts: pkgcheck's own non-determinism (simulated at the measured kind, on top of the real tool) never reaches a verdict.
//!
//! pkgcheck 0.10.37 flaps on real Gentoo trees (`IndirectInherits` appearing and disappearing, naming
//! another eclass or usage line; pkgcheck.md, last section) but is deterministic on small synthetic
//! trees. So this test runs the real pkgcheck through a shim that makes its `IndirectInherits`
//! findings flap the way they were measured to: each one is dropped half of the time and, when kept,
//! names another usage line half of the time.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{summary, Prci};
use fixtures::{eclass_function, Ebuild, Repo};

/// A repository where three packages get a real `IndirectInherits` from pkgcheck: they inherit `aaa`
/// and `bbb`; `bbb` inherits `zzz`; `aaa` and `zzz` both define `shared_fn`, and pkgcheck attributes
/// the call to the last one in `_eclasses_` order (`aaa zzz bbb`), the indirect `zzz`.
fn flappy_repo() -> Repo {
    let r = Repo::standalone("test");
    r.add_eclass("zzz", &eclass_function("shared_fn", "echo zzz\n"));
    r.add_eclass("aaa", &eclass_function("shared_fn", "echo aaa\n"));
    r.add_eclass("bbb", &format!("{}\ninherit zzz\n", eclass_function("bbb_fn", "echo bbb\n")));
    for pkg in ["one", "two", "three"] {
        r.add_package(
            "app-misc",
            pkg,
            "1.0",
            &Ebuild {
                inherit: vec!["aaa".into(), "bbb".into()],
                body: "src_compile() {\n\tshared_fn\n\tbbb_fn\n}\n".into(),
                ..Ebuild::default()
            },
        );
    }
    r.commit("packages using a function two eclasses provide");
    r
}

/// Write the flapping shim around the real pkgcheck and return its path.
fn flapping_pkgcheck(dir: &std::path::Path) -> String {
    let real = fixtures::pkgcheck_path();
    let python = real.parent().unwrap().join("python3");
    let shim = dir.join("pkgcheck");
    let text = format!(
        r#"#!{python}
import json, random, subprocess, sys
REAL = {real:?}
if "scan" not in sys.argv:
    sys.exit(subprocess.call([REAL] + sys.argv[1:]))
data = sys.stdin.buffer.read() if "-" in sys.argv else None
p = subprocess.run([REAL] + sys.argv[1:], input=data, capture_output=True)
out = []
for line in p.stdout.decode().splitlines():
    try:
        f = json.loads(line)
    except ValueError:
        out.append(line)
        continue
    if f.get("__class__") == "IndirectInherits":
        if random.random() < 0.5:
            continue
        if random.random() < 0.5:
            f["usage"], f["lineno"] = "shared_fn # another usage", 99
    out.append(json.dumps(f))
sys.stdout.write("".join(l + "\n" for l in out))
sys.stderr.write(p.stderr.decode())
sys.exit(p.returncode)
"#,
        python = python.display(),
        real = real.display().to_string()
    );
    std::fs::write(&shim, text).unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(&shim).unwrap().permissions(), 0o755);
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    shim.display().to_string()
}

/// The no-op pull request: a comment added to each flapping package.
fn noop_pr(r: &Repo) {
    r.branch("pr");
    r.switch("pr");
    for pkg in ["one", "two", "three"] {
        let path = format!("app-misc/{pkg}/{pkg}-1.0.ebuild");
        r.write(&path, &format!("{}# nothing to see here\n", r.read(&path)));
    }
    r.commit("comments only");
}

#[test]
fn the_fixture_really_has_the_finding_that_flaps() {
    let r = flappy_repo();
    fixtures::regen(r.path(), &[]);
    let classes = fixtures::finding_classes(&fixtures::scan_full(r.path(), &[]));
    assert_eq!(classes.iter().filter(|c| *c == "IndirectInherits").count(), 3, "{classes:?}");
}

#[test]
fn without_confirmation_the_shim_does_flap_the_verdict() {
    let r = flappy_repo();
    noop_pr(&r);
    let shim_dir = tempfile::tempdir().unwrap();
    let shim = flapping_pkgcheck(shim_dir.path());
    let prci = Prci::new()
        .with_env("PRCI__TOOLS__PKGCHECK", &shim)
        .with_env("PRCI__CHECKER__CONFIRM_RESCANS", "0")
        .with_env("PRCI__CHECKER__FLAKY_RESCANS", "0");
    let spurious = (0..6).filter(|_| {
        let (_, report) = prci.check(r.path(), "master", "pr", &[]);
        !summary(&report, "new").is_empty() || !summary(&report, "fixed").is_empty()
    });
    assert!(spurious.count() > 0, "the shim never made a difference: this test would prove nothing");
}

#[test]
fn a_noop_pr_on_flapping_packages_is_stable_20_times_in_a_row() {
    let r = flappy_repo();
    noop_pr(&r);
    let shim_dir = tempfile::tempdir().unwrap();
    let shim = flapping_pkgcheck(shim_dir.path());
    let prci = Prci::new().with_env("PRCI__TOOLS__PKGCHECK", &shim);
    for run in 1..=20 {
        let (code, report) = prci.check(r.path(), "master", "pr", &[]);
        assert_eq!(summary(&report, "new"), Vec::<String>::new(), "run {run}: {report}");
        assert_eq!(summary(&report, "fixed"), Vec::<String>::new(), "run {run}: {report}");
        assert_eq!(code, 0, "run {run}: {report}");
    }
}

#[test]
fn a_noop_pr_on_flapping_packages_is_stable_under_configured_arguments() {
    let r = flappy_repo();
    noop_pr(&r);
    let shim_dir = tempfile::tempdir().unwrap();
    let shim = flapping_pkgcheck(shim_dir.path());
    // `--checks=+InheritsCheck` names the flapping check itself (pkgcheck then runs it in the repo pass too).
    // (Through the environment a list is comma-separated, so one argument without commas.)
    let prci = Prci::new().with_env("PRCI__TOOLS__PKGCHECK", &shim).with_env("PRCI__CHECKER__PKGCHECK_ARGS", "--checks=+InheritsCheck");
    for run in 1..=20 {
        let (code, report) = prci.check(r.path(), "master", "pr", &[]);
        assert_eq!(summary(&report, "new"), Vec::<String>::new(), "run {run}: {report}");
        assert_eq!(summary(&report, "fixed"), Vec::<String>::new(), "run {run}: {report}");
        assert_eq!(code, 0, "run {run}: {report}");
    }
}
