//! Unit tests of the fixtures: git behaviour of `Repo`, and real
//! pmaint/pkgcheck runs proving fixture repositories scan cleanly.

use std::path::Path;
use std::time::Instant;

use crate::{eclass_function, finding_classes, regen, scan_full, Ebuild, Repo};

/// Regenerate the cache and scan; panics listing the findings unless clean.
fn assert_clean(repo: &Path, masters: &[&Path]) {
    let t = Instant::now();
    regen(repo, masters);
    let findings = scan_full(repo, masters);
    eprintln!("regen+scan of {} took {:?}", repo.display(), t.elapsed());
    assert!(
        findings.is_empty(),
        "expected no findings, got {:?}:\n{}",
        finding_classes(&findings),
        findings.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn standalone_scans_clean() {
    let repo = Repo::standalone("clean");
    repo.add_package("app-misc", "foo", "1.0", &Ebuild::default());
    repo.add_package(
        "app-misc",
        "bar",
        "2.3",
        &Ebuild {
            iuse: "debug".into(),
            inherit: vec!["testlib".into()],
            rdepend: "app-misc/foo".into(),
            depend: "${RDEPEND}".into(),
            body: "src_compile() {\n\ttestlib_hello\n}\n".into(),
            ..Ebuild::default()
        },
    );
    repo.add_eclass("other", &format!("{}\n{}", eclass_function("other_a", "echo a"), eclass_function("other_b", "other_a\necho b")));
    repo.add_package(
        "dev-libs",
        "baz",
        "0.1",
        &Ebuild {
            license: "GPL-2".into(),
            inherit: vec!["other".into()],
            body: "src_install() {\n\tother_b\n}\n".into(),
            ..Ebuild::default()
        },
    );
    repo.commit("add packages");
    assert_eq!(repo.read("profiles/categories"), "app-misc\ndev-libs\nsys-test\n");
    assert_clean(repo.path(), &[]);
}

#[test]
fn bare_standalone_scans_clean() {
    let repo = Repo::standalone("bare");
    assert_clean(repo.path(), &[]);
}

#[test]
fn generated_scans_clean() {
    let repo = Repo::generate("g", 200);
    assert_eq!(repo.read("profiles/categories"), "cat-00\ncat-01\n", "200 packages -> 2 categories");
    assert!(repo.exists("cat-00/pkg00000/pkg00000-1.1.ebuild"));
    assert!(repo.exists("cat-01/pkg00199/metadata.xml"));
    assert!(!repo.exists("sys-test"));
    assert_clean(repo.path(), &[]);
}

#[test]
fn generated_tiny_scans_clean() {
    for n in [0, 1, 2] {
        let repo = Repo::generate("tiny", n);
        assert_clean(repo.path(), &[]);
    }
}

/// Paths git reports as modified/untracked (ignored files excluded).
fn dirty_paths(repo: &Repo) -> Vec<String> {
    let git = repo.git();
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(true).recurse_untracked_dirs(true);
    let statuses = git.statuses(Some(&mut opts)).expect("statuses");
    statuses.iter().map(|s| format!("{:?} {}", s.status(), s.path().unwrap_or("?"))).collect()
}

#[test]
fn work_trees_are_clean_after_commit() {
    let g = Repo::generate("st", 120);
    assert_eq!(dirty_paths(&g), Vec::<String>::new());
    let git = g.git();
    let index = git.index().expect("index");
    assert_eq!(index.len(), g.tracked_files().len());
    // a later ordinary commit on top of a generated repo
    g.add_package("cat-00", "extra", "1.0", &Ebuild::default());
    g.remove("cat-00/pkg00001");
    g.commit("more");
    assert_eq!(dirty_paths(&g), Vec::<String>::new());
    assert!(!g.tracked_files().iter().any(|f| f.starts_with("cat-00/pkg00001/")));

    let s = Repo::standalone("st");
    assert_eq!(dirty_paths(&s), Vec::<String>::new());
    s.branch("b");
    s.switch("b");
    assert_eq!(dirty_paths(&s), Vec::<String>::new());
}

#[test]
fn generated_is_deterministic() {
    let a = Repo::generate("d", 50);
    let b = Repo::generate("d", 50);
    assert_eq!(a.head(), b.head());
}

#[test]
fn overlay_scans_clean() {
    let master = Repo::standalone("mainrepo");
    let overlay = Repo::overlay("ov", "mainrepo");
    assert!(!overlay.exists("profiles/profiles.desc"));
    assert_clean(overlay.path(), &[master.path()]);
    overlay.add_package(
        "ov-cat",
        "thing",
        "1.0",
        &Ebuild {
            inherit: vec!["testlib".into()],
            rdepend: "sys-test/seed".into(),
            license: "GPL-2".into(),
            body: "src_compile() {\n\ttestlib_hello\n}\n".into(),
            ..Ebuild::default()
        },
    );
    overlay.commit("add thing");
    assert_clean(overlay.path(), &[master.path()]);
}

#[test]
fn pkgcheck_reports_problems() {
    // Sanity check that the scan helper does see findings.
    let repo = Repo::standalone("dirty");
    repo.add_package("app-misc", "foo", "1.0", &Ebuild { rdepend: "app-misc/missing".into(), ..Ebuild::default() });
    regen(repo.path(), &[]);
    let classes = finding_classes(&scan_full(repo.path(), &[]));
    assert!(classes.iter().any(|c| c == "NonexistentDeps"), "{classes:?}");
}

#[test]
fn commit_returns_sha_and_is_deterministic() {
    let a = Repo::standalone("s");
    let b = Repo::standalone("s");
    let sha = a.head();
    assert_eq!(sha.len(), 40);
    assert!(sha.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(sha, b.head());
    a.write("x.txt", "x\n");
    b.write("x.txt", "x\n");
    let s1 = a.commit("x");
    assert_eq!(s1, a.head());
    assert_ne!(s1, sha);
    assert_eq!(s1, b.commit("x"));
    let git = a.git();
    let c = git.find_commit(git2::Oid::from_str(&s1).expect("oid")).expect("commit");
    assert_eq!(c.author().name(), Some("Test"));
    assert_eq!(c.author().email(), Some("test@example.com"));
    assert_eq!(c.parent_id(0).expect("parent").to_string(), sha);
    assert!(c.time().seconds() > c.parent(0).expect("parent").time().seconds());
    assert_eq!(a.current_branch(), "master");
}

#[test]
fn commit_stages_deletions_and_respects_gitignore() {
    let repo = Repo::standalone("del");
    assert!(repo.tracked_files().contains(&"sys-test/seed/metadata.xml".to_string()));
    repo.remove("sys-test/seed");
    repo.write("metadata/md5-cache/sys-test/seed-1.0", "junk\n");
    repo.write("licenses/BSD", "bsd\n");
    repo.commit("drop seed");
    let files = repo.tracked_files();
    assert!(!files.iter().any(|f| f.starts_with("sys-test/")), "{files:?}");
    assert!(!files.iter().any(|f| f.starts_with("metadata/md5-cache")), "{files:?}");
    assert!(files.contains(&"licenses/BSD".to_string()));
    assert!(files.contains(&".gitignore".to_string()));
}

#[test]
fn branch_switch_updates_work_tree() {
    let repo = Repo::standalone("br");
    let base = repo.head();
    repo.branch("feature");
    assert_eq!(repo.current_branch(), "master", "branch() does not switch");
    repo.switch("feature");
    assert_eq!(repo.current_branch(), "feature");
    repo.add_package("app-misc", "new", "1", &Ebuild::default());
    repo.write("licenses/MIT", "changed\n");
    repo.remove("eclass/testlib.eclass");
    let feature = repo.commit("feature work");
    repo.write("untracked.txt", "u\n");

    repo.switch("master");
    assert_eq!(repo.head(), base);
    assert!(!repo.exists("app-misc/new/new-1.ebuild"));
    assert!(repo.exists("eclass/testlib.eclass"));
    assert_eq!(repo.read("licenses/MIT"), "MIT License (test fixture copy)\n");
    assert_eq!(repo.read("profiles/categories"), "sys-test\n");
    assert!(repo.exists("untracked.txt"), "untracked files are kept");
    assert_eq!(repo.rev_parse("feature"), feature);

    repo.switch("feature");
    assert_eq!(repo.head(), feature);
    assert!(repo.exists("app-misc/new/new-1.ebuild"));
    assert!(!repo.exists("eclass/testlib.eclass"));
    // index matches the branch: with the untracked file gone there is nothing
    // new to commit, so the tree is unchanged.
    repo.remove("untracked.txt");
    let again = repo.commit("empty");
    let git = repo.git();
    let tree = |s: &str| git.find_commit(git2::Oid::from_str(s).expect("oid")).expect("commit").tree_id();
    assert_eq!(tree(&again), tree(&feature));
}

#[test]
fn commit_packed_matches_commit() {
    let a = Repo::standalone("p");
    let b = Repo::standalone("p");
    for r in [&a, &b] {
        r.add_package("app-misc", "foo", "1.0", &Ebuild::default());
        r.remove("licenses/GPL-2");
    }
    let loose = a.commit("same");
    let packed = b.commit_packed("same");
    assert_eq!(loose, packed);
    assert_eq!(b.head(), packed);
    assert_eq!(dirty_paths(&b), Vec::<String>::new());
    assert!(b.tracked_files().contains(&"app-misc/foo/foo-1.0.ebuild".to_string()));
    let git = b.git();
    let blob = git.revparse_single("HEAD:app-misc/foo/foo-1.0.ebuild").expect("blob in pack").peel_to_blob().expect("blob");
    assert_eq!(blob.content(), b.read("app-misc/foo/foo-1.0.ebuild").as_bytes());
}

#[test]
fn set_ref_points_ref_at_sha() {
    let repo = Repo::standalone("refs");
    let first = repo.head();
    repo.write("a", "a\n");
    let second = repo.commit("a");
    repo.set_ref("refs/pull/3/head", &first);
    assert_eq!(repo.rev_parse("refs/pull/3/head"), first);
    repo.set_ref("refs/pull/3/head", &second);
    assert_eq!(repo.rev_parse("refs/pull/3/head"), second);
    assert_eq!(repo.head(), second);
}

#[test]
fn generate_at_keeps_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bench-repo");
    {
        let repo = Repo::generate_at(&path, "bench", 30);
        assert_eq!(repo.path(), std::fs::canonicalize(&path).expect("canon"));
    }
    assert!(path.join("cat-00/pkg00029/pkg00029-1.0.ebuild").exists());
    assert!(path.join(".git").exists());
}
