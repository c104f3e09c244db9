//! A Gentoo-size ebuild repository built from a real one, for `prci-bench --real`: the snapshot's
//! categories repeated under new names (`app-arch` → `app-arch-c1`, …), each copied ebuild depending on
//! the package it was copied from, one `pmaint regen`, and two git repositories of the result (md5-cache
//! committed, and ignored as in Gentoo's git). Also the pull requests the benchmark checks on them.
//!
//! Layout of a built tree (`<bench dir>/<tarball stem>-c<copies>/`): `committed/` and `uncommitted/`
//! (git work trees, branch `master`, both with a complete md5-cache on disk), `tree.json` (how it was
//! built, how long each step took, and the cached full-scan time).
//!
//! Modules: `tree` (building and reusing a tree), `analysis` (what a tree holds, versions and atoms),
//! `pull_request` (the pull requests and their commits); this file holds what they share.

mod analysis;
mod pull_request;
mod tree;

pub use analysis::{cache_fields, vercmp, Analysis};
pub use pull_request::{make_pr, Change, PrKind};
pub use tree::{ensure, with_dependency, Tree};

use anyhow::{Context as _, Result};
use std::path::{Path, PathBuf};

/// The argument of the "a check disabled" runs, and of the full-scan baseline (Gentoo CI's method:
/// `MetadataVarCheck` crashes on two live ebuilds of the coreos snapshot).
pub const DISABLED_CHECK_ARG: &str = "--checks=-MetadataVarCheck";

/// Commit time of `master` (the snapshot's date, 2020-05-15); pull requests are one day later.
const SNAPSHOT_TIME: i64 = 1_589_500_800;
/// Name and e-mail of every commit made here.
const AUTHOR: (&str, &str) = ("prci-bench", "prci-bench@example.com");

/// Which tree to build: the snapshot and how many copies of its categories.
#[derive(Debug, Clone)]
pub struct Spec {
    pub tarball: PathBuf,
    pub copies: usize,
}

impl Spec {
    /// The tarball's name without its extension (`portage-stable-b46831017581`).
    pub fn stem(&self) -> String {
        let name = self.tarball.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        [".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar"].iter().find_map(|ext| name.strip_suffix(ext).map(str::to_owned)).unwrap_or(name)
    }

    /// The directory name of the built tree under the benchmark directory.
    pub fn key(&self) -> String {
        format!("{}-c{}", self.stem(), self.copies)
    }
}

/// The two ways the tree is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    /// `metadata/md5-cache` is committed (as in many overlays and Gentoo's rsync tree).
    Committed,
    /// `metadata/md5-cache` is in `.gitignore` (as in Gentoo's git).
    Uncommitted,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Committed, Variant::Uncommitted];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Committed => "committed",
            Variant::Uncommitted => "uncommitted",
        }
    }
}

fn sorted_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        out.push((entry.file_name().to_string_lossy().into_owned(), entry.path()));
    }
    out.sort();
    Ok(out)
}

/// File names of the ebuilds in a package directory, sorted.
fn ebuilds_of(pkg_dir: &Path) -> Result<Vec<String>> {
    Ok(sorted_dir(pkg_dir)?.into_iter().map(|(n, _)| n).filter(|n| n.ends_with(".ebuild")).collect())
}

#[cfg(test)]
mod tests {
    use super::analysis::{atom_package, package_name};
    use super::pull_request::cache_with;
    use super::{vercmp, with_dependency};
    use std::collections::BTreeMap;

    #[test]
    fn versions_sort_like_pms() {
        let mut v = vec!["1.10", "1.9", "1.9-r1", "1.10_rc1", "1.10_p1", "1.0a", "1.0", "9999"];
        v.sort_by(|a, b| vercmp(a, b));
        assert_eq!(v, ["1.0", "1.0a", "1.9", "1.9-r1", "1.10_rc1", "1.10", "1.10_p1", "9999"]);
    }

    #[test]
    fn dependency_is_added_in_global_scope() {
        let e = "EAPI=6\nRDEPEND=\"a/b\"\nsrc_install() {\n\t:\n}";
        let out = with_dependency(e, "cat/pkg");
        assert!(out.ends_with("RDEPEND+=\" cat/pkg\"\n"), "{out}");
        let old = "EAPI=3\nDEPEND=\"a/b\"\n";
        assert!(with_dependency(old, "cat/pkg").ends_with("RDEPEND=\"${DEPEND} cat/pkg\"\n"));
        assert!(with_dependency("DEPEND=x\n", "c/p").contains("RDEPEND=\"${DEPEND} c/p\""));
    }

    #[test]
    fn atoms_map_to_packages() {
        let known: BTreeMap<String, Vec<String>> = [("dev-libs/foo-bar".to_string(), vec![])].into();
        for t in [">=dev-libs/foo-bar-1.2-r3:0/1[x]", "!!dev-libs/foo-bar", "~dev-libs/foo-bar-2*"] {
            assert_eq!(atom_package(t, &known).as_deref(), Some("dev-libs/foo-bar"), "{t}");
        }
        assert_eq!(atom_package("dev-libs/foo", &known), None);
        assert_eq!(package_name("foo-bar-1.2-r3"), "foo-bar");
        assert_eq!(package_name("font-adobe-100dpi-1.0.3"), "font-adobe-100dpi");
        assert_eq!(package_name("python-exec-2.4.6_p1"), "python-exec");
    }

    #[test]
    fn cache_entries_keep_their_order() {
        let e = "DEFINED_PHASES=-\nLICENSE=GPL-2\nSLOT=0\n_md5_=x\n";
        assert_eq!(
            cache_with(e, &[("LICENSE", Some("MIT".into())), ("_md5_", Some("y".into()))]),
            "DEFINED_PHASES=-\nLICENSE=MIT\nSLOT=0\n_md5_=y\n"
        );
    }
}
