//! Incremental regen: a stamp per checkout saying which tree its md5-cache is valid for, and the choice between no regen, a targeted regen of the changed packages, and a full `pmaint regen`.
//!
//! The stamp lives in the checkout's git dir (`<tree>/.git/prci-regen.json`), never among the files the tools see.
//! It is removed before anything that changes the tree or its cache starts (a checkout, a regen) and written only
//! after a regen succeeded, so an interrupted job leaves no stamp and the next job regenerates the whole tree.

use crate::RegenError;
use ebuild::layout;
use git2::{Oid, Repository};
use sandbox::Tools;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// File name of the stamp inside a checkout's git dir.
pub const STAMP_FILE: &str = "prci-regen.json";

/// Above this many changed packages a full regen is used (it walks the tree once instead of loading pkgcore per package set).
pub const TARGETED_MAX_PACKAGES: usize = 200;

/// What the md5-cache of one checkout is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// The commit checked out when the cache was regenerated.
    pub commit: String,
    /// Its tree: what the cache really depends on.
    pub tree: String,
    pub pkgcheck_version: String,
    pub pkgcore_version: String,
    /// Master repositories (name, checked-out commit), in `masters =` order.
    pub masters: Vec<(String, String)>,
}

impl Stamp {
    /// The stamp a checkout of `commit` (in `repo`) gets after a successful regen.
    pub fn new(repo: &Repository, commit: Oid, tools: &Tools, masters: &[(String, String)]) -> Result<Stamp, RegenError> {
        let tree = repo.find_commit(commit)?.tree_id();
        Ok(Stamp {
            commit: commit.to_string(),
            tree: tree.to_string(),
            pkgcheck_version: tools.pkgcheck_version.clone(),
            pkgcore_version: tools.pkgcore_version.clone(),
            masters: masters.to_vec(),
        })
    }

    /// Same tools and masters: a cache made under `self` can be brought up to date by a targeted regen.
    pub fn same_environment(&self, other: &Stamp) -> bool {
        self.pkgcheck_version == other.pkgcheck_version && self.pkgcore_version == other.pkgcore_version && self.masters == other.masters
    }
}

/// Where the stamp of the checkout at `dir` lives (None when `dir` is no git checkout yet).
pub fn stamp_path(dir: &Path) -> Option<PathBuf> {
    Repository::open(dir).ok().map(|r| r.path().join(STAMP_FILE))
}

/// The stamp of the checkout at `dir`; None when there is none or it cannot be read (a full regen follows).
pub fn read_stamp(dir: &Path) -> Option<Stamp> {
    let text = std::fs::read_to_string(stamp_path(dir)?).ok()?;
    match serde_json::from_str(&text) {
        Ok(stamp) => Some(stamp),
        Err(e) => {
            tracing::warn!(tree = %dir.display(), error = %e, "unreadable regen stamp; ignored");
            None
        }
    }
}

/// Remove the stamp of the checkout whose git dir is `git_dir` (nothing to do when there is none).
pub fn remove_stamp_in(git_dir: &Path) -> Result<(), RegenError> {
    match std::fs::remove_file(git_dir.join(STAMP_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RegenError::Io(e)),
        _ => Ok(()),
    }
}

/// Remove the stamp of the checkout at `dir`.
pub fn remove_stamp(dir: &Path) -> Result<(), RegenError> {
    match Repository::open(dir) {
        Ok(repo) => remove_stamp_in(repo.path()),
        Err(_) => Ok(()),
    }
}

/// Write the stamp of the checkout at `dir` (atomically: a torn stamp must never look valid).
pub fn write_stamp(dir: &Path, stamp: &Stamp) -> Result<(), RegenError> {
    let path = stamp_path(dir).ok_or_else(|| RegenError::Internal(format!("{} is not a git checkout", dir.display())))?;
    let text = serde_json::to_string_pretty(stamp).map_err(|e| RegenError::Tool(format!("cannot encode the regen stamp: {e}")))?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

/// What regen did (or has to do) to one checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegenKind {
    /// The cache was already valid for this tree: no tool ran.
    Unchanged,
    /// Only these packages (`cat/pkg`) were regenerated.
    Targeted(Vec<String>),
    /// `pmaint regen` on the whole tree.
    Full,
    /// Stopped at a sandbox limit: the entries written stay, the tree is not stamped (`run::unfinished`).
    Unfinished(Box<RegenKind>),
}

impl RegenKind {
    /// For the log: "unchanged since last job", "2 package(s) targeted", "full".
    pub fn describe(&self) -> String {
        match self {
            RegenKind::Unchanged => "unchanged since last job".to_string(),
            RegenKind::Targeted(p) => format!("{} package(s) targeted", p.len()),
            RegenKind::Full => "full".to_string(),
            RegenKind::Unfinished(k) => format!("{}, stopped at a sandbox limit", k.describe()),
        }
    }
}

/// Decide what the checkout stamped `old` needs now that it holds `wanted` (`mirror` has both trees' objects).
/// `categories` are the categories the tools know (the tree's and its masters' `profiles/categories`).
pub fn plan(mirror: &Repository, old: Option<&Stamp>, wanted: &Stamp, categories: &BTreeSet<String>) -> RegenKind {
    let Some(old) = old else { return RegenKind::Full };
    if !old.same_environment(wanted) {
        return RegenKind::Full;
    }
    if old.tree == wanted.tree {
        return RegenKind::Unchanged;
    }
    let paths = match (Oid::from_str(&old.tree), Oid::from_str(&wanted.tree)) {
        (Ok(a), Ok(b)) => match tree_diff_paths(mirror, a, b) {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(error = %e, "the tree the cache was made for is not readable any more; full regen");
                return RegenKind::Full;
            }
        },
        _ => return RegenKind::Full,
    };
    match layout::changed_packages(&paths, categories) {
        Some(pkgs) if pkgs.is_empty() => RegenKind::Unchanged,
        Some(pkgs) if pkgs.len() <= TARGETED_MAX_PACKAGES => RegenKind::Targeted(pkgs),
        _ => RegenKind::Full,
    }
}

/// Paths that differ between two trees (both sides of renames).
fn tree_diff_paths(repo: &Repository, a: Oid, b: Oid) -> Result<Vec<String>, git2::Error> {
    trees::merge::diff_paths(repo, &repo.find_tree(a)?, &repo.find_tree(b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cats() -> BTreeSet<String> {
        ["app-misc", "dev-libs"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_stamp_is_removed_written_and_read_back() {
        let dir = tempfile::tempdir().expect("test fixture");
        assert!(read_stamp(dir.path()).is_none());
        assert!(write_stamp(dir.path(), &stamp("t")).is_err(), "not a checkout");
        Repository::init(dir.path()).expect("test fixture");
        write_stamp(dir.path(), &stamp("t")).expect("test fixture");
        assert!(dir.path().join(".git").join(STAMP_FILE).is_file());
        assert_eq!(read_stamp(dir.path()), Some(stamp("t")));
        remove_stamp(dir.path()).expect("test fixture");
        remove_stamp(dir.path()).expect("test fixture");
        assert!(read_stamp(dir.path()).is_none());
        std::fs::write(dir.path().join(".git").join(STAMP_FILE), "{").expect("test fixture");
        assert!(read_stamp(dir.path()).is_none(), "a torn stamp is no stamp");
    }

    fn stamp(tree: &str) -> Stamp {
        Stamp {
            commit: "c".into(),
            tree: tree.into(),
            pkgcheck_version: "1".into(),
            pkgcore_version: "2".into(),
            masters: vec![("gentoo".into(), "m".into())],
        }
    }

    #[test]
    fn the_plan_follows_the_stamp() {
        let dir = tempfile::tempdir().expect("test fixture");
        let repo = Repository::init(dir.path()).expect("test fixture");
        assert_eq!(plan(&repo, None, &stamp("t"), &cats()), RegenKind::Full);
        assert_eq!(plan(&repo, Some(&stamp("t")), &stamp("t"), &cats()), RegenKind::Unchanged);
        let mut other_tools = stamp("t");
        other_tools.pkgcore_version = "3".into();
        assert_eq!(plan(&repo, Some(&other_tools), &stamp("t"), &cats()), RegenKind::Full);
        let mut other_master = stamp("t");
        other_master.masters[0].1 = "n".into();
        assert_eq!(plan(&repo, Some(&other_master), &stamp("t"), &cats()), RegenKind::Full);
        // A tree that is not in the repository: full.
        let missing = Oid::from_str("0123456789012345678901234567890123456789").expect("test fixture").to_string();
        let empty = repo.treebuilder(None).expect("test fixture").write().expect("test fixture").to_string();
        assert_eq!(plan(&repo, Some(&stamp(&missing)), &stamp(&empty), &cats()), RegenKind::Full);
    }
}
