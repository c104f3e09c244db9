//! Correctness against the slow truth: `prci replay` checks each commit of a range with `prci check` and with full-tree scans of both sides, finding by finding.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::Prci;
use fixtures::{metadata_xml, Ebuild, Repo};

fn manifest(name: &str, size: u64, fill: char) -> String {
    let hash: String = std::iter::repeat_n(fill, 128).collect();
    format!("DIST {name} {size} BLAKE2B {hash} SHA512 {hash}\n")
}

#[test]
fn incremental_checks_agree_with_full_scans_commit_by_commit() {
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
    // For the repository-scope checks: a licence only app-misc/extra uses, a global flag nobody uses, a distfile.
    r.write("licenses/EXTRA", "a licence one package uses\n");
    r.write("profiles/use.desc", "zzflag - a global flag nobody uses\n");
    r.add_package("app-misc", "extra", "1.0", &Ebuild { license: "EXTRA".into(), ..Ebuild::default() });
    r.write("app-misc/extra/Manifest", &manifest("common-1.0.tar.gz", 100, 'a'));
    let start = r.commit("start");
    // 1: a new error in one package
    r.add_package("app-misc", "foo", "1.0", &Ebuild { license: "NoSuchLicense".into(), ..Ebuild::default() });
    r.commit("app-misc/foo: break the license");
    // 2: a second issue in the same package, and a new package with one
    r.add_package(
        "app-misc",
        "foo",
        "1.0",
        &Ebuild { license: "NoSuchLicense".into(), keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() },
    );
    r.add_package("app-misc", "bar", "1.0", &Ebuild { keywords: "~nosucharch".into(), ..Ebuild::default() });
    r.commit("more issues");
    // 3: a version bump carrying the issues
    r.remove("app-misc/foo/foo-1.0.ebuild");
    r.add_package(
        "app-misc",
        "foo",
        "1.1",
        &Ebuild { license: "NoSuchLicense".into(), keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() },
    );
    r.commit("app-misc/foo: bump");
    // 4: fix one of them
    r.add_package("app-misc", "foo", "1.1", &Ebuild { keywords: "~amd64 ~nosucharch".into(), ..Ebuild::default() });
    r.commit("app-misc/foo: fix the license");
    // 5: an eclass change breaking its inheritors
    r.write("eclass/testlib.eclass", &format!("{}die \"broken\"\n", r.read("eclass/testlib.eclass")));
    r.commit("testlib.eclass: break it");
    // 6: repair it, and drop the library the user depends on
    r.write("eclass/testlib.eclass", &r.read("eclass/testlib.eclass").replace("die \"broken\"\n", ""));
    r.remove("dev-libs/lib");
    r.commit("repair testlib, drop dev-libs/lib");
    // 7: a comment, nothing else (every repository-scope result stands)
    r.write("app-misc/user/user-1.0.ebuild", &format!("{}# a comment\n", r.read("app-misc/user/user-1.0.ebuild")));
    r.commit("app-misc/user: a comment");
    // 8: the only user of EXTRA moves to MIT: EXTRA becomes unused
    r.add_package("app-misc", "extra", "1.0", &Ebuild::default());
    r.commit("app-misc/extra: MIT");
    // 9: zzflag gets a user
    r.add_package("app-misc", "bar", "1.0", &Ebuild { keywords: "~nosucharch".into(), iuse: "zzflag".into(), ..Ebuild::default() });
    r.write("app-misc/bar/metadata.xml", &metadata_xml(""));
    r.commit("app-misc/bar: use zzflag");
    // 10: a distfile name another package already has, with other checksums
    r.write("app-misc/foo/Manifest", &manifest("common-1.0.tar.gz", 200, 'b'));
    r.commit("app-misc/foo: a colliding distfile");
    // 11: a license removed
    r.remove("licenses/GPL-2");
    let end = r.commit("licenses: drop GPL-2");

    let path = r.path().display().to_string();
    let out = Prci::new().run(&["replay", "--repo", &path, "--from", &start, "--to", &end]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "disagreements:\n{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(lines.len(), 11, "{stdout}");
    assert!(lines.iter().all(|l| l.contains(" agree ")), "{stdout}");
    // The repository-scope commits were not vacuous either: 7 changes nothing, 8 and 10 add a finding, 9 fixes one.
    assert!(lines[6].contains("new=0") && lines[6].contains("fixed=0"), "{stdout}");
    assert!(!lines[7].contains("new=0"), "EXTRA becomes unused: {stdout}");
    assert!(!lines[8].contains("fixed=0"), "zzflag gets a user: {stdout}");
    assert!(!lines[9].contains("new=0"), "the distfile collides: {stdout}");
    // The replay is not vacuous: the commits had new and fixed findings to agree on.
    assert!(lines.iter().any(|l| !l.contains("new=0")), "{stdout}");
    assert!(lines.iter().any(|l| !l.contains("fixed=0")), "{stdout}");
}
