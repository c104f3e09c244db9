//! Configured pkgcheck arguments never change a verdict they should not: every scenario of `check.rs`, checked with each kind of check and keyword selection, gives the verdict and new/fixed sets it gives without them.
//!
//! One fixture repository holds every scenario as a pair of branches (`<name>-base`, `<name>-pr`), and one
//! work dir serves every run, so the matrix costs only its checks. The run without arguments is the
//! reference; it is itself held to the expected classes, so a matrix of equally wrong answers fails too.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{summary, Prci};
use fixtures::{eclass_function, Ebuild, Repo};

/// One pull request of the matrix.
struct Scenario {
    name: &'static str,
    /// The checks that report its differences (the `-c` column).
    relevant: &'static str,
    /// What the run without arguments must say: exit code, and what its new and fixed lists contain.
    code: i32,
    new: &'static [&'static str],
    fixed: &'static [&'static str],
    /// The new list is exactly `new` (else: contains it).
    exact: bool,
}

const SCENARIOS: &[Scenario] = &[
    Scenario { name: "new", relevant: "LicenseCheck", code: 1, new: &["UnknownLicense@app-misc/foo-1.0"], fixed: &[], exact: true },
    Scenario { name: "fixed", relevant: "LicenseCheck", code: 0, new: &[], fixed: &["UnknownLicense@app-misc/foo-1.0"], exact: true },
    Scenario { name: "second", relevant: "KeywordsCheck", code: 1, new: &["UnknownKeywords@app-misc/foo-1.0"], fixed: &[], exact: true },
    Scenario { name: "keyword", relevant: "KeywordsCheck", code: 0, new: &[], fixed: &["BadKeywords@app-misc/kw-1.0"], exact: true },
    // Both inheritors fail to source, so the eclass is no longer used by any md5-cache entry either.
    Scenario {
        name: "eclass",
        relevant: "SourcingCheck,UnusedEclassesCheck",
        code: 1,
        new: &["SourcingError@app-misc/inheritor-1.0", "SourcingError@sys-test/seed-1.0", "UnusedEclasses@repository"],
        fixed: &[],
        exact: true,
    },
    Scenario {
        name: "license-removed",
        relevant: "LicenseCheck",
        code: 1,
        new: &["UnknownLicense@app-misc/gpl-1.0"],
        fixed: &[],
        exact: false,
    },
    Scenario {
        name: "license-added",
        relevant: "LicenseCheck",
        code: 0,
        new: &[],
        fixed: &["UnknownLicense@app-misc/nolic-1.0"],
        exact: true,
    },
    Scenario { name: "profile", relevant: "VisibilityCheck", code: 1, new: &["@app-misc/user-1.0"], fixed: &[], exact: false },
    Scenario { name: "bump", relevant: "LicenseCheck", code: 0, new: &[], fixed: &[], exact: true },
    Scenario { name: "rdeps", relevant: "VisibilityCheck", code: 1, new: &["@app-misc/user-1.0"], fixed: &[], exact: false },
    Scenario {
        name: "crash",
        relevant: "LicenseCheck,MetadataVarCheck",
        code: 1,
        new: &["PrciToolCrash@app-misc/crashy", "UnknownLicense@app-misc/foo-1.0"],
        fixed: &[],
        exact: true,
    },
    Scenario { name: "moved", relevant: "LicenseCheck", code: 1, new: &["UnknownLicense@app-misc/foo-1.0"], fixed: &[], exact: true },
];

fn license(l: &str) -> Ebuild {
    Ebuild { license: l.into(), ..Ebuild::default() }
}

/// The repository: master holds clean packages; each scenario branches off it.
fn matrix_repo() -> Repo {
    let r = Repo::standalone("test");
    r.add_package("app-misc", "foo", "1.0", &Ebuild::default());
    r.add_package("dev-libs", "lib", "1.0", &Ebuild::default());
    r.add_package("app-misc", "user", "1.0", &Ebuild::default().with_rdepend("dev-libs/lib"));
    r.add_package(
        "app-misc",
        "inheritor",
        "1.0",
        &Ebuild { inherit: vec!["testlib".into()], body: "src_compile() {\n\ttestlib_hello\n}\n".into(), ..Ebuild::default() },
    );
    r.add_package("app-misc", "gpl", "1.0", &license("GPL-2"));
    r.add_package("app-misc", "kw", "1.0", &Ebuild::default());
    r.add_package("app-misc", "nolic", "1.0", &Ebuild::default());
    r.commit("packages");
    let pr = |name: &str, from: &str, change: &dyn Fn(&Repo)| {
        r.switch(from);
        r.branch(&format!("{name}-pr"));
        r.switch(&format!("{name}-pr"));
        change(&r);
        r.commit(name);
    };
    let base = |name: &str, change: &dyn Fn(&Repo)| {
        r.switch("master");
        r.branch(&format!("{name}-base"));
        r.switch(&format!("{name}-base"));
        change(&r);
        r.commit(&format!("{name} base"));
    };
    for name in ["new", "eclass", "license-removed", "profile", "rdeps", "crash", "conflict"] {
        r.switch("master");
        r.branch(&format!("{name}-base"));
    }
    pr("new", "master", &|r| r.add_package("app-misc", "foo", "1.0", &license("NoSuchLicense")));
    base("fixed", &|r| r.add_package("app-misc", "foo", "1.0", &license("NoSuchLicense")));
    pr("fixed", "fixed-base", &|r| r.add_package("app-misc", "foo", "1.0", &license("MIT")));
    base("second", &|r| r.add_package("app-misc", "foo", "1.0", &license("NoSuchLicense")));
    pr("second", "second-base", &|r| {
        r.add_package(
            "app-misc",
            "foo",
            "1.0",
            &Ebuild { license: "NoSuchLicense".into(), keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() },
        )
    });
    base("keyword", &|r| r.add_package("app-misc", "kw", "1.0", &Ebuild::default().with_keywords("-*")));
    pr("keyword", "keyword-base", &|r| r.add_package("app-misc", "kw", "1.0", &Ebuild::default()));
    pr("eclass", "master", &|r| {
        r.add_eclass("testlib", &format!("{}\ndie \"testlib is broken\"\n", eclass_function("testlib_hello", "echo hello\n")))
    });
    pr("license-removed", "master", &|r| r.remove("licenses/GPL-2"));
    base("license-added", &|r| r.add_package("app-misc", "nolic", "1.0", &license("Prci-Test-Licence")));
    pr("license-added", "license-added-base", &|r| r.write("licenses/Prci-Test-Licence", "a licence\n"));
    pr("profile", "master", &|r| r.write("profiles/default/linux/amd64/package.mask", "dev-libs/lib\n"));
    base("bump", &|r| r.add_package("app-misc", "foo", "1.0", &license("NoSuchLicense")));
    pr("bump", "bump-base", &|r| {
        r.remove("app-misc/foo/foo-1.0.ebuild");
        r.add_package("app-misc", "foo", "1.1", &license("NoSuchLicense"));
    });
    pr("rdeps", "master", &|r| r.add_package("dev-libs", "lib", "1.0", &Ebuild { keywords: String::new(), ..Ebuild::default() }));
    pr("crash", "master", &|r| {
        r.add_package("app-misc", "crashy", "1.0", &Ebuild { keywords: String::new(), body: "KEYWORDS=\n".into(), ..Ebuild::default() });
        r.add_package("app-misc", "foo", "1.0", &license("NoSuchLicense"));
    });
    base("moved", &|r| r.add_package("dev-libs", "lib", "1.0", &license("NoSuchLicense")));
    pr("moved", "moved-base", &|r| r.add_package("app-misc", "foo", "1.0", &license("NoSuchLicense")));
    r.switch("moved-base");
    r.add_package("dev-libs", "lib", "1.0", &license("MIT"));
    r.add_package("app-misc", "later", "1.0", &Ebuild::default());
    r.commit("moved base: fix lib, add a package");
    pr("conflict", "master", &|r| {
        r.add_package("app-misc", "foo", "1.0", &Ebuild { description: "One description".into(), ..Ebuild::default() })
    });
    r.switch("conflict-base");
    r.add_package("app-misc", "foo", "1.0", &Ebuild { description: "Another description".into(), ..Ebuild::default() });
    r.commit("conflict base");
    r.switch("master");
    r
}

/// The argument sets of the matrix, besides none: (label, arguments) for one scenario.
fn argument_sets(s: &Scenario) -> Vec<(String, Vec<String>)> {
    vec![
        ("a default check added".into(), vec!["--pkgcheck-arg=--checks=+KeywordsCheck".into()]),
        ("an unrelated check removed".into(), vec!["--pkgcheck-arg=--checks=-RestrictTestCheck".into()]),
        ("the relevant checks only".into(), vec!["--pkgcheck-arg=-c".into(), format!("--pkgcheck-arg={}", s.relevant)]),
        ("an unrelated keyword removed".into(), vec!["--pkgcheck-arg=--keywords=-DoubleEmptyLine".into()]),
    ]
}

fn check(prci: &Prci, r: &Repo, name: &str, args: &[String]) -> (i32, serde_json::Value, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    prci.check_logged(r.path(), &format!("{name}-base"), &format!("{name}-pr"), &args)
}

#[test]
fn configured_check_and_keyword_selection_gives_the_same_verdicts() {
    let r = matrix_repo();
    let prci = Prci::new();
    // The same arguments through `checker.pkgcheck_args` (configuration) instead of the command line.
    let configured = Prci {
        work: tempfile::Builder::new().prefix("prci-work-").tempdir().expect("work dir"),
        env: vec![("PRCI__CHECKER__PKGCHECK_ARGS".into(), "--checks=+LicenseCheck".into())],
    };
    let mut failures = Vec::new();
    for s in SCENARIOS {
        let (code, reference, log) = check(&prci, &r, s.name, &[]);
        let (new, fixed) = (summary(&reference, "new"), summary(&reference, "fixed"));
        let contains = |list: &[String], want: &str| list.iter().any(|f| f.contains(want));
        let reference_ok = code == s.code
            && s.new.iter().all(|w| contains(&new, w))
            && s.fixed.iter().all(|w| contains(&fixed, w))
            && (!s.exact || (new.len() == s.new.len() && fixed.len() == s.fixed.len()));
        if !reference_ok {
            failures.push(format!("{}: without arguments: exit {code}, new {new:?}, fixed {fixed:?}\n{log}", s.name));
            continue;
        }
        let mut runs: Vec<(String, i32, serde_json::Value, String)> = argument_sets(s)
            .into_iter()
            .map(|(label, args)| {
                let (c, rep, log) = check(&prci, &r, s.name, &args);
                (label, c, rep, log)
            })
            .collect();
        let (c, rep, log) = check(&configured, &r, s.name, &[]);
        runs.push(("checker.pkgcheck_args".into(), c, rep, log));
        for (label, c, rep, log) in runs {
            let (n, f) = (summary(&rep, "new"), summary(&rep, "fixed"));
            if c != code || n != new || f != fixed || rep["verdict"] != reference["verdict"] {
                failures.push(format!("{} with {label}: exit {c}, new {n:?}, fixed {f:?}; without arguments: exit {code}, new {new:?}, fixed {fixed:?}\n{log}", s.name));
            }
        }
    }
    // The conflict is a result whatever the arguments.
    for args in [vec![], vec!["--pkgcheck-arg=--checks=+KeywordsCheck".to_string()]] {
        let (code, report, _) = check(&prci, &r, "conflict", &args);
        if code != 1 || report["conflicts"] != serde_json::json!(["app-misc/foo/foo-1.0.ebuild"]) {
            failures.push(format!("conflict with {args:?}: exit {code}: {report}"));
        }
    }
    assert!(failures.is_empty(), "{} of the matrix failed:\n{}", failures.len(), failures.join("\n\n"));
}

#[test]
fn an_overlay_keeps_its_verdict_under_configured_arguments() {
    let master = Repo::standalone("gentoo");
    let overlay = Repo::overlay("overlay", "gentoo");
    let ov = |license: &str| Ebuild {
        inherit: vec!["testlib".into()],
        body: "src_compile() {\n\ttestlib_hello\n}\n".into(),
        rdepend: "sys-test/seed".into(),
        license: license.into(),
        ..Ebuild::default()
    };
    overlay.add_package("app-misc", "ov", "1.0", &ov("MIT"));
    overlay.commit("app-misc/ov");
    overlay.branch("pr");
    overlay.switch("pr");
    overlay.add_package("app-misc", "ov", "1.0", &ov("NoSuchLicense"));
    overlay.commit("app-misc/ov: break it");
    let master_arg = format!("--master=gentoo={}", master.path().display());
    let prci = Prci::new();
    for extra in [
        &[][..],
        &["--pkgcheck-arg=--checks=+LicenseCheck"],
        &["--pkgcheck-arg=-c", "--pkgcheck-arg=LicenseCheck"],
        &["--pkgcheck-arg=--keywords=-DoubleEmptyLine"],
    ] {
        let mut args = vec![master_arg.as_str()];
        args.extend_from_slice(extra);
        let (code, report) = prci.check(overlay.path(), "master", "pr", &args);
        assert_eq!(code, 1, "{extra:?}: {report}");
        assert_eq!(summary(&report, "new"), ["UnknownLicense@app-misc/ov-1.0"], "{extra:?}: {report}");
        assert!(summary(&report, "fixed").is_empty(), "{extra:?}: {report}");
    }
}

#[test]
fn a_removed_check_still_narrows_the_repo_pass() {
    let r = matrix_repo();
    let prci = Prci::new();
    for args in
        [vec!["--pkgcheck-arg=--checks=-RestrictTestCheck".to_string()], vec!["--pkgcheck-arg=--keywords=-DoubleEmptyLine".to_string()]]
    {
        let (code, _, log) = check(&prci, &r, "new", &args);
        assert_eq!(code, 1, "{log}");
        assert!(
            log.contains("repo pass: the pull request changes no input of a repository-scope check; none is scanned"),
            "{args:?}: the repo pass was not narrowed:\n{log}"
        );
    }
}
