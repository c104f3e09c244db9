//! The scan plan: from the paths a pull request changes to the pkgcheck targets that can show its effect.
//!
//! Rules (ARCHITECTURE.md repeats them):
//! - `cat/pkg/**` → `cat/pkg`;
//! - `eclass/X.eclass` → the eclass itself, and every package whose md5-cache `_eclasses_` names X in either tree;
//! - every touched package → its reverse dependencies: packages whose DEPEND/RDEPEND/BDEPEND/PDEPEND/IDEPEND name it, in either tree
//!   (removing a version, a keyword or a slot breaks them though the pull request never touched them);
//! - `profiles/**`, `licenses/**`, `metadata/**` → the whole repository;
//! - always a repo- and category-scope pass: cross-package results live there;
//! - anything else (README, `.github/`, …) only reaches the repo-scope pass.

use crate::index::CacheIndex;
use std::collections::BTreeSet;
use std::path::Path;

/// What to scan, the same on both sides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Scan the whole repository.
    pub full: bool,
    /// `cat/pkg` targets.
    pub packages: BTreeSet<String>,
    /// Eclass names (scanned as `eclass/<name>.eclass`).
    pub eclasses: BTreeSet<String>,
    /// Why each package is in the plan, for the log.
    pub reasons: Vec<String>,
}

impl Plan {
    /// Targets as the report lists them.
    pub fn targets(&self) -> Vec<String> {
        let mut t: Vec<String> = self.eclasses.iter().map(|e| format!("eclass/{e}.eclass")).collect();
        t.extend(self.packages.iter().cloned());
        t
    }
    pub fn is_empty(&self) -> bool {
        !self.full && self.packages.is_empty() && self.eclasses.is_empty()
    }
}

/// Top-level directories whose change reaches every package.
const REPO_WIDE: [&str; 3] = ["profiles", "licenses", "metadata"];

/// Categories named by `profiles/categories` of a tree.
pub fn categories(tree: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(tree.join("profiles/categories"))
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Compute the plan from changed paths and both trees' md5-cache indexes.
pub fn plan(changed: &[String], base_tree: &Path, merge_tree: &Path, base: &CacheIndex, merge: &CacheIndex) -> Plan {
    let mut plan = Plan::default();
    let cats: BTreeSet<String> = categories(base_tree).into_iter().chain(categories(merge_tree)).collect();
    let mut touched = BTreeSet::new();
    for path in changed {
        let parts: Vec<&str> = path.split('/').collect();
        match parts.as_slice() {
            [top, ..] if REPO_WIDE.contains(top) => {
                if !plan.full {
                    plan.reasons.push(format!("{path}: repository-wide file, full scan"));
                }
                plan.full = true;
            }
            ["eclass", file] if file.ends_with(".eclass") => {
                plan.eclasses.insert(file.trim_end_matches(".eclass").to_owned());
            }
            [cat, pkg, _, ..] if is_package_dir(cat, pkg, &cats, base_tree, merge_tree) => {
                touched.insert(format!("{cat}/{pkg}"));
            }
            _ => {}
        }
    }
    for cp in &touched {
        plan.packages.insert(cp.clone());
    }
    for eclass in &plan.eclasses {
        for index in [base, merge] {
            for cp in index.inheritors(eclass) {
                if plan.packages.insert(cp.clone()) {
                    plan.reasons.push(format!("{cp}: inherits {eclass}"));
                }
            }
        }
    }
    for cp in &touched {
        for index in [base, merge] {
            for rdep in index.reverse_deps(cp) {
                if plan.packages.insert(rdep.clone()) {
                    plan.reasons.push(format!("{rdep}: depends on {cp}"));
                }
            }
        }
    }
    plan
}

/// `cat/pkg` is a package directory on either side (a category listed in `profiles/categories`, or a directory that exists).
fn is_package_dir(cat: &str, pkg: &str, cats: &BTreeSet<String>, a: &Path, b: &Path) -> bool {
    if cat.starts_with('.') || cat == "eclass" {
        return false;
    }
    cats.contains(cat) || a.join(cat).join(pkg).is_dir() || b.join(cat).join(pkg).is_dir()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::PackageMeta;

    fn index(entries: &[(&str, &[&str], &[&str])]) -> CacheIndex {
        let mut i = CacheIndex::default();
        for (cp, eclasses, deps) in entries {
            i.packages.insert(
                cp.to_string(),
                PackageMeta {
                    eclasses: eclasses.iter().map(|s| s.to_string()).collect(),
                    deps: deps.iter().map(|s| s.to_string()).collect(),
                    ..PackageMeta::default()
                },
            );
        }
        i
    }

    fn changed(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn package_files_map_to_their_package() {
        let dir = std::env::temp_dir();
        let p = plan(&changed(&["app-misc/foo/foo-1.ebuild", "app-misc/foo/files/x.patch"]), &dir, &dir, &index(&[]), &index(&[]));
        // No profiles/categories in temp_dir and no such directory: it is not taken for a package.
        assert!(p.packages.is_empty());
    }

    #[test]
    fn eclass_change_pulls_inheritors_from_both_trees_and_reverse_deps() {
        let tmp = std::env::temp_dir().join(format!("prci-plan-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("profiles")).unwrap();
        std::fs::write(tmp.join("profiles/categories"), "app-misc\ndev-libs\n").unwrap();
        let base = index(&[("app-misc/a", &["e"], &[]), ("app-misc/b", &[], &["dev-libs/lib"]), ("app-misc/c", &[], &[])]);
        let merge = index(&[("app-misc/d", &["e"], &[]), ("app-misc/c", &[], &["dev-libs/lib"])]);
        let p = plan(&changed(&["eclass/e.eclass", "dev-libs/lib/lib-2.ebuild", "README.md"]), &tmp, &tmp, &base, &merge);
        assert!(!p.full);
        assert_eq!(p.eclasses.iter().collect::<Vec<_>>(), ["e"]);
        assert_eq!(p.packages.iter().map(String::as_str).collect::<Vec<_>>(), ["app-misc/a", "app-misc/b", "app-misc/c", "app-misc/d", "dev-libs/lib"]);
        let p = plan(&changed(&["licenses/MIT"]), &tmp, &tmp, &base, &merge);
        assert!(p.full);
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
