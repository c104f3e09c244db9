//! Where a path of an ebuild repository belongs: a package's files, a package's md5-cache entry, an eclass, an input of every package, or nothing the tools read per package. One classification for regen, the scan plan and the repo-scope model.
//!
//! An md5-cache entry `metadata/md5-cache/<cat>/<PF>` is the metadata of the package `<cat>/<PN>`, never a
//! repository-wide input: repositories that commit their md5-cache (overlays, Gentoo's rsync tree) change one with
//! every version bump. Every other path under `metadata/` (layout.conf, …) and everything under `profiles/` and
//! `licenses/` can change what every package means.

use std::collections::BTreeSet;
use std::path::Path;

/// What one repository path is (see [`classify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathKind {
    /// A file of a package directory, `<cat>/<pkg>/**`.
    Package { cp: String },
    /// An md5-cache entry, `metadata/md5-cache/<cat>/<PF>`: the metadata of `<cat>/<PN>`.
    Md5Cache { cp: String },
    /// `eclass/<name>.eclass`.
    Eclass { name: String },
    /// An input of every package: `profiles/**`, `licenses/**`, `metadata/**` other than a parseable md5-cache entry
    /// of a known category.
    RepoWide,
    /// A file directly in a category directory (`<cat>/metadata.xml`).
    CategoryFile { cat: String },
    /// Anything else: top-level files, other files under `eclass/`, hidden directories, directories that are no
    /// known category.
    Other,
}

/// Top-level directories that are never categories.
const SPECIAL_DIRS: [&str; 4] = ["eclass", "metadata", "profiles", "licenses"];

/// Top-level directories whose every file reaches every package.
const REPO_WIDE_DIRS: [&str; 3] = ["profiles", "licenses", "metadata"];

/// Classify a repository-relative path (`/`-separated, as git names it); `categories` are the categories the tools
/// know (`profiles/categories` of the tree and its masters).
pub fn classify(path: &str, categories: &BTreeSet<String>) -> PathKind {
    classify_with(path, |cat| categories.contains(cat))
}

/// [`classify`], also taking for a category any top-level directory that exists in one of `trees` (a category the
/// tools may know from a master repository's `profiles/categories`).
pub fn classify_in_trees(path: &str, categories: &BTreeSet<String>, trees: &[&Path]) -> PathKind {
    classify_with(path, |cat| categories.contains(cat) || trees.iter().any(|t| t.join(cat).is_dir()))
}

/// The package (`cat/pkg`) whose files or md5-cache entry `path` is, without knowing the categories: any
/// `<dir>/<pkg>/**` outside the special top-level directories and hidden directories, and any parseable md5-cache
/// entry. A caller that must know the package exists checks that itself.
pub fn package_of_path(path: &str) -> Option<String> {
    match classify_with(path, |_| true) {
        PathKind::Package { cp } | PathKind::Md5Cache { cp } => Some(cp),
        _ => None,
    }
}

/// A committed md5-cache entry of some package (`metadata/md5-cache/<cat>/<PF>`), whatever the categories.
fn is_md5_entry(path: &str) -> bool {
    path.starts_with("metadata/md5-cache/") && package_of_path(path).is_some()
}

/// Whether a change of `path` can change the md5-cache entries of packages other than its own: an eclass, or a file
/// under `metadata/` other than a package's md5-cache entry (`layout.conf`: masters, cache format).
pub fn feeds_package_metadata(path: &str) -> bool {
    !is_md5_entry(path) && (path.starts_with("eclass/") || path.starts_with("metadata/"))
}

/// Whether `path` is an input of pkgcheck's profile and eclass caches: under `profiles/`, `eclass/` or `metadata/`
/// (md5-cache entries aside).
pub fn is_tool_cache_input(path: &str) -> bool {
    !path.starts_with("metadata/md5-cache/") && ["profiles/", "eclass/", "metadata/"].iter().any(|d| path.starts_with(d))
}

fn classify_with(path: &str, is_category: impl Fn(&str) -> bool) -> PathKind {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["metadata", "md5-cache", cat, pf] if is_category(cat) && !cat.starts_with('.') => match split_pf(pf) {
            Some(pn) => PathKind::Md5Cache { cp: format!("{cat}/{pn}") },
            None => PathKind::RepoWide,
        },
        [top, _, ..] if REPO_WIDE_DIRS.contains(top) => PathKind::RepoWide,
        ["eclass", file] => match file.strip_suffix(".eclass") {
            Some(name) if !name.is_empty() => PathKind::Eclass { name: name.to_owned() },
            _ => PathKind::Other,
        },
        [top, ..] if SPECIAL_DIRS.contains(top) || top.starts_with('.') || !is_category(top) => PathKind::Other,
        [cat, _file] => PathKind::CategoryFile { cat: (*cat).to_owned() },
        [cat, pkg, _, ..] if !pkg.is_empty() && !pkg.starts_with('.') => PathKind::Package { cp: format!("{cat}/{pkg}") },
        _ => PathKind::Other,
    }
}

/// The package name of a `PF` (`pkg-1.0-r1` → `pkg`, `foo-bar-2.0_rc1-r3` → `foo-bar`): everything before the first
/// `-` that starts a valid version. None when no version can be split off.
pub fn split_pf(pf: &str) -> Option<&str> {
    let mut search = 0;
    while let Some(i) = pf[search..].find('-').map(|i| i + search) {
        if i > 0 && is_version(&pf[i + 1..]) {
            return Some(&pf[..i]);
        }
        search = i + 1;
    }
    None
}

/// A Gentoo version: `1.2.3b_rc4_p5-r6`, optionally ending in `*` (for `=cat/pkg-1*`).
pub fn is_version(v: &str) -> bool {
    let v = v.strip_suffix('*').unwrap_or(v);
    let v = match v.rsplit_once("-r") {
        Some((a, r)) if !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()) => a,
        _ => v,
    };
    let mut parts = v.split('_');
    let Some(main) = parts.next() else { return false };
    let mut chars = main.chars().peekable();
    loop {
        let mut digits = 0;
        while chars.peek().is_some_and(char::is_ascii_digit) {
            chars.next();
            digits += 1;
        }
        if digits == 0 {
            return false;
        }
        match chars.peek() {
            Some('.') => {
                chars.next();
            }
            _ => break,
        }
    }
    if chars.peek().is_some_and(char::is_ascii_lowercase) {
        chars.next();
    }
    if chars.next().is_some() {
        return false;
    }
    parts.all(|s| {
        let name_len = s.bytes().take_while(u8::is_ascii_lowercase).count();
        ["alpha", "beta", "pre", "rc", "p"].contains(&&s[..name_len]) && s[name_len..].bytes().all(|b| b.is_ascii_digit())
    })
}

/// `PF` of every `<tree>/<cp>/*.ebuild` (empty when the package directory does not exist).
pub fn ebuild_versions(tree: &Path, cp: &str) -> BTreeSet<String> {
    crate::untrusted::read_dir(tree, cp)
        .map(|entries| {
            entries.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".ebuild")).map(str::to_owned)).collect()
        })
        .unwrap_or_default()
}

/// The packages (`cat/pkg`, sorted) the changed `paths` are in, or None when some path can affect more than its
/// package (eclasses, profiles, licences, `metadata/` other than md5-cache entries, top-level files, files of a
/// category, unknown directories). An md5-cache entry (`metadata/md5-cache/<cat>/<PF>`, committed by many
/// repositories) names its package: a targeted regen of that package rewrites or deletes it.
pub fn changed_packages(paths: &[String], categories: &BTreeSet<String>) -> Option<Vec<String>> {
    if categories.is_empty() {
        return None; // pkgcore would take every directory for a category: be conservative
    }
    let mut pkgs = BTreeSet::new();
    for path in paths {
        match classify(path, categories) {
            PathKind::Package { cp } | PathKind::Md5Cache { cp } => pkgs.insert(cp),
            _ => return None,
        };
    }
    Some(pkgs.into_iter().collect())
}

/// The categories of `profiles/categories` in each of `trees` (a repository and its masters).
pub fn categories(trees: &[&Path]) -> BTreeSet<String> {
    trees
        .iter()
        .filter_map(|t| crate::untrusted::read_to_string(t, "profiles/categories").ok())
        .flat_map(|text| {
            text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats() -> BTreeSet<String> {
        ["app-arch", "app-misc", "dev-libs"].iter().map(|s| s.to_string()).collect()
    }

    fn cp(kind: fn(String) -> PathKind, s: &str) -> PathKind {
        kind(s.to_owned())
    }

    #[test]
    fn md5_cache_entries_are_their_packages_metadata() {
        let md5 = |cp: String| PathKind::Md5Cache { cp };
        assert_eq!(classify("metadata/md5-cache/app-arch/gzip-1.10-r1", &cats()), cp(md5, "app-arch/gzip"));
        assert_eq!(classify("metadata/md5-cache/app-misc/foo-bar-2.0_rc1-r3", &cats()), cp(md5, "app-misc/foo-bar"));
        assert_eq!(classify("metadata/md5-cache/dev-libs/libfoo-1-compat-1.0", &cats()), cp(md5, "dev-libs/libfoo-1-compat"));
        assert_eq!(classify("metadata/md5-cache/dev-libs/pkg-00012-1.1", &cats()), cp(md5, "dev-libs/pkg-00012"));
        assert_eq!(package_of_path("metadata/md5-cache/app-arch/gzip-1.10-r1").as_deref(), Some("app-arch/gzip"));
        assert_eq!(package_of_path("metadata/md5-cache/sci-misc/x-1").as_deref(), Some("sci-misc/x"), "any category without a list");
    }

    #[test]
    fn other_metadata_is_repository_wide() {
        for p in [
            "metadata/layout.conf",
            "metadata/md5-cache/app-misc/noversion",
            "metadata/md5-cache/sci-misc/foo-1.0",
            "metadata/md5-cache/app-misc/foo-1.0/x",
            "metadata/md5-cache/app-misc",
            "metadata/pkg_desc_index",
            "profiles/categories",
            "profiles/default/linux/amd64/package.mask",
            "licenses/MIT",
        ] {
            assert_eq!(classify(p, &cats()), PathKind::RepoWide, "{p}");
            if !p.contains("sci-misc") {
                assert_eq!(package_of_path(p), None, "{p}");
            }
        }
    }

    #[test]
    fn package_eclass_category_and_other_paths() {
        let pkg = |cp: String| PathKind::Package { cp };
        assert_eq!(classify("app-misc/foo/foo-1.0.ebuild", &cats()), cp(pkg, "app-misc/foo"));
        assert_eq!(classify("app-misc/foo/files/x/y.patch", &cats()), cp(pkg, "app-misc/foo"));
        assert_eq!(classify("eclass/foo.eclass", &cats()), PathKind::Eclass { name: "foo".into() });
        assert_eq!(classify("app-misc/metadata.xml", &cats()), PathKind::CategoryFile { cat: "app-misc".into() });
        for p in [
            "README.md",
            "eclass/tests/foo.sh",
            "eclass/README",
            ".github/workflows/ci.yml",
            "sci-misc/foo/foo-1.ebuild",
            "app-misc/.git/x",
            "app-misc//x",
        ] {
            assert_eq!(classify(p, &cats()), PathKind::Other, "{p}");
        }
        assert_eq!(package_of_path("sci-misc/foo/foo-1.ebuild").as_deref(), Some("sci-misc/foo"));
        let tree = std::env::temp_dir().join(format!("prci-layout-trees-{}", std::process::id()));
        std::fs::create_dir_all(tree.join("sci-misc/foo")).expect("test fixture");
        let (pkg_kind, md5_kind) = (
            classify_in_trees("sci-misc/foo/foo-1.ebuild", &cats(), &[&tree]),
            classify_in_trees("metadata/md5-cache/sci-misc/foo-1", &cats(), &[&tree]),
        );
        let unknown = classify_in_trees("sci-libs/foo/foo-1.ebuild", &cats(), &[&tree]);
        std::fs::remove_dir_all(&tree).expect("test fixture");
        assert_eq!(pkg_kind, cp(pkg, "sci-misc/foo"), "a category directory of the tree");
        assert_eq!(md5_kind, PathKind::Md5Cache { cp: "sci-misc/foo".into() });
        assert_eq!(unknown, PathKind::Other);
        for p in [
            "README.md",
            "eclass/tests/foo.sh",
            ".github/workflows/ci.yml",
            "app-misc/metadata.xml",
            "app-misc/.git/x",
            "eclass/foo.eclass",
        ] {
            assert_eq!(package_of_path(p), None, "{p}");
        }
    }

    #[test]
    fn versions_and_package_names() {
        assert!(is_version("1.0"));
        assert!(is_version("1.0-r3"));
        assert!(is_version("2.3b_pre20240101_p2"));
        assert!(is_version("9999"));
        assert!(is_version("1*"));
        assert!(!is_version("compat"));
        assert!(!is_version("1.0-foo"));
        assert!(!is_version("1.0-r"));
        assert!(!is_version(""));
        assert_eq!(split_pf("gzip-1.10-r1"), Some("gzip"));
        assert_eq!(split_pf("foo-bar-2.0_rc1-r3"), Some("foo-bar"));
        assert_eq!(split_pf("foo-bar-1.0-r1"), Some("foo-bar"));
        assert_eq!(split_pf("pkg-00012-1.1"), Some("pkg-00012"));
        assert_eq!(split_pf("gtk+-3.24.1"), Some("gtk+"));
        assert_eq!(split_pf("foo"), None);
        assert_eq!(split_pf("-1.0"), None);
    }

    #[test]
    fn ebuild_versions_of_a_package_directory() {
        let dir = std::env::temp_dir().join(format!("prci-layout-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("app-misc/foo/files")).expect("test fixture");
        for f in ["foo-1.0.ebuild", "foo-1.1-r1.ebuild", "metadata.xml", "Manifest"] {
            std::fs::write(dir.join("app-misc/foo").join(f), "").expect("test fixture");
        }
        let found = ebuild_versions(&dir, "app-misc/foo");
        let gone = ebuild_versions(&dir, "app-misc/gone");
        std::fs::remove_dir_all(&dir).expect("test fixture");
        assert_eq!(found.into_iter().collect::<Vec<_>>(), ["foo-1.0", "foo-1.1-r1"]);
        assert!(gone.is_empty());
    }
}

/// Which packages a set of changed paths is confined to, and the categories of several trees.
#[cfg(test)]
mod package_tests {
    use super::*;

    #[test]
    fn which_paths_feed_other_packages_or_pkgchecks_caches() {
        for p in ["eclass/foo.eclass", "metadata/layout.conf", "metadata/md5-cache/app-misc/noversion"] {
            assert!(feeds_package_metadata(p), "{p}");
        }
        for p in ["metadata/md5-cache/app-misc/foo-1.0", "app-misc/foo/foo-1.0.ebuild", "profiles/package.mask", "licenses/MIT"] {
            assert!(!feeds_package_metadata(p), "{p}");
        }
        for p in ["profiles/package.mask", "eclass/foo.eclass", "metadata/layout.conf"] {
            assert!(is_tool_cache_input(p), "{p}");
        }
        for p in ["metadata/md5-cache/app-misc/foo-1.0", "licenses/MIT", "app-misc/foo/metadata.xml"] {
            assert!(!is_tool_cache_input(p), "{p}");
        }
    }

    fn cats() -> BTreeSet<String> {
        ["app-misc", "dev-libs"].iter().map(|s| s.to_string()).collect()
    }

    fn paths(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn package_files_name_their_packages() {
        let got =
            changed_packages(&paths(&["app-misc/foo/foo-1.0.ebuild", "app-misc/foo/files/x.patch", "dev-libs/bar/metadata.xml"]), &cats());
        assert_eq!(got, Some(vec!["app-misc/foo".to_string(), "dev-libs/bar".to_string()]));
    }

    #[test]
    fn md5_cache_entries_name_their_packages() {
        let got = changed_packages(
            &paths(&[
                "app-misc/foo/foo-1.1.ebuild",
                "metadata/md5-cache/app-misc/foo-1.1",
                "metadata/md5-cache/dev-libs/foo-bar-2.0_rc1-r3",
            ]),
            &cats(),
        );
        assert_eq!(got, Some(vec!["app-misc/foo".to_string(), "dev-libs/foo-bar".to_string()]));
        // A deleted entry of a removed package: the targeted regen deletes what is left of it.
        assert_eq!(changed_packages(&paths(&["metadata/md5-cache/dev-libs/gone-1"]), &cats()), Some(vec!["dev-libs/gone".to_string()]));
    }

    #[test]
    fn anything_else_means_a_full_regen() {
        for p in [
            "eclass/foo.eclass",
            "metadata/layout.conf",
            "metadata/md5-cache/sci-misc/foo-1.0",
            "metadata/md5-cache/app-misc/noversion",
            "profiles/categories",
            "licenses/MIT",
            "README.md",
            "app-misc/metadata.xml",
            "sci-misc/foo/foo-1.ebuild",
            "app-misc/.git/x",
        ] {
            assert_eq!(changed_packages(&paths(&["app-misc/foo/foo-1.0.ebuild", p]), &cats()), None, "{p}");
        }
        assert_eq!(changed_packages(&paths(&["app-misc/foo/foo-1.0.ebuild"]), &BTreeSet::new()), None, "no categories known");
    }

    #[test]
    fn categories_come_from_every_tree() {
        let a = tempfile::tempdir().expect("test fixture");
        let b = tempfile::tempdir().expect("test fixture");
        for (d, text) in [(&a, "app-misc\n\n"), (&b, "# comment\ndev-libs\napp-misc\n")] {
            std::fs::create_dir_all(d.path().join("profiles")).expect("test fixture");
            std::fs::write(d.path().join("profiles/categories"), text).expect("test fixture");
        }
        assert_eq!(categories(&[a.path(), b.path()]), cats());
    }
}
