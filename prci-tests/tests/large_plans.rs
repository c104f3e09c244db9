//! Large scan plans are scanned the cheapest correct way: one run over the whole tree when most of it is targeted (filtered to the plan), every core on the merge side when the base is cached.

#![allow(clippy::unwrap_used)] // a test harness: a panic is the failure message

mod common;

use common::{summary, Prci};
use fixtures::{eclass_function, Ebuild, Repo};

#[test]
fn an_eclass_most_packages_inherit_is_scanned_in_one_whole_tree_run_filtered_to_the_plan() {
    let r = Repo::standalone("test");
    let inheritor = Ebuild { inherit: vec!["testlib".into()], body: "src_compile() {\n\ttestlib_hello\n}\n".into(), ..Ebuild::default() };
    for i in 0..50 {
        r.add_package("app-misc", &format!("user{i:02}"), "1.0", &inheritor);
    }
    // Outside the plan, with an issue of its own: never listed, not even as unchanged.
    r.add_package("app-misc", "other", "1.0", &Ebuild { license: "NoSuchLicense".into(), ..Ebuild::default() });
    r.commit("fifty packages inherit testlib");
    for (pr, body) in [("comment", "# a comment\n"), ("comment2", "# another comment\n"), ("break", "RDEPEND=\"app-misc/nonexistent\"\n")] {
        r.switch("master");
        r.branch(pr);
        r.switch(pr);
        r.add_eclass("testlib", &format!("{}\n{body}", eclass_function("testlib_hello", "echo hello\n")));
        r.commit(pr);
    }
    let prci = Prci::new();
    // A harmless change: nothing new, nothing fixed, one whole-tree run per side.
    let (code, report, log) = prci.check_logged(r.path(), "master", "comment", &[]);
    assert_eq!(code, 0, "{report}\n{log}");
    assert!(log.contains("one run over the whole tree instead"), "{log}");
    assert!(summary(&report, "new").is_empty() && summary(&report, "fixed").is_empty(), "{report}");
    assert!(!summary(&report, "unchanged").iter().any(|f| f.contains("app-misc/other")), "outside the plan: {report}");
    // The next pull request on the same base: the base side comes from the cache, the merge side gets every core.
    let (code, report, log) = prci.check_logged(r.path(), "master", "comment2", &[]);
    assert_eq!(code, 0, "{report}\n{log}");
    assert!(log.contains("the merge side scans with every core"), "{log}");
    // A change that breaks every inheritor (its dependency does not exist): each is reported, nothing outside the plan is.
    let (code, report, log) = prci.check_logged(r.path(), "master", "break", &[]);
    assert_eq!(code, 1, "{report}\n{log}");
    let new = summary(&report, "new");
    let broken = new.iter().filter(|f| f.starts_with("NonexistentDeps@app-misc/user")).count();
    assert_eq!(broken, 50, "every inheritor depends on a package that does not exist: {new:?}");
    assert!(new.contains(&"NonexistentDeps@sys-test/seed-1.0".to_string()), "{new:?}");
    eprintln!("timings: {}", report["timings"]);
    assert!(!new.iter().chain(summary(&report, "unchanged").iter()).any(|f| f.contains("app-misc/other")), "outside the plan: {report}");
}
