//! The per-tree tool environment: the path the tools see the tree at, a hermetic pkgcore configuration naming it and its masters, a scratch directory and pkgcheck's cache directory.

use crate::{pkgcore, Sandbox};
use ebuild::repo::{self as repo, RepoView};
use std::path::{Path, PathBuf};

/// Why a tool environment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The tree has no `profiles/repo_name` (nor `repo-name` in `metadata/layout.conf`): the revision is not an ebuild
    /// repository, whatever is retried.
    #[error("{} is not an ebuild repository: profiles/repo_name is missing", .0.display())]
    NotARepository(PathBuf),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// How the tools see a tree: the sandbox mount point when binds work, else its real path.
pub fn visible_path(sandbox: &Sandbox, work_dir: &Path, tree: &Path) -> PathBuf {
    if sandbox.can_bind() {
        crate::scan_mount_point(work_dir)
    } else {
        tree.to_path_buf()
    }
}

/// Everything a tool run on one tree needs.
#[derive(Debug, Clone)]
pub struct TreeEnv {
    pub tree: PathBuf,
    pub visible: PathBuf,
    pub config_dir: PathBuf,
    pub scratch: PathBuf,
    pub bind: Option<(PathBuf, PathBuf)>,
    /// pkgcheck's `--cache-dir` (its profile and eclass caches): the job's own, unless the checker gives the
    /// side a trusted one.
    pub pkgcheck_cache: PathBuf,
}

/// Prepare the pkgcore config and scratch dir for running tools on `tree`.
pub fn tree_env(sandbox: &Sandbox, work_dir: &Path, tree: &Path, masters: &[RepoView], scratch: &Path) -> Result<TreeEnv, EnvError> {
    let visible = visible_path(sandbox, work_dir, tree);
    if sandbox.can_bind() {
        std::fs::create_dir_all(&visible)?;
        // The sandbox mounts the tree read-only and this directory writable: it must exist.
        std::fs::create_dir_all(tree.join("metadata").join("md5-cache"))?;
    }
    let name = repo::repo_name(tree).ok_or_else(|| EnvError::NotARepository(tree.to_path_buf()))?;
    let main = RepoView { name, path: visible.clone() };
    let mut trees: Vec<&Path> = vec![tree];
    trees.extend(masters.iter().map(|m| m.path.as_path()));
    let profile = repo::first_profile(&trees).map(|(i, p)| {
        let root = if i == 0 { visible.clone() } else { masters[i - 1].path.clone() };
        root.join("profiles").join(p)
    });
    let config_dir = scratch.join("pkgcore");
    pkgcore::write_config(&config_dir, &main, masters, profile.as_deref())?;
    let bind = sandbox.can_bind().then(|| (tree.to_path_buf(), visible.clone()));
    let pkgcheck_cache = scratch.join("pkgcheck-cache");
    Ok(TreeEnv { tree: tree.to_path_buf(), visible, config_dir, scratch: scratch.to_path_buf(), bind, pkgcheck_cache })
}

/// A master repository is regenerated at its own path (no bind: it is the same for both sides).
pub fn tree_env_real(tree: &Path, masters: &[RepoView], scratch: &Path) -> Result<TreeEnv, EnvError> {
    let name = repo::repo_name(tree).ok_or_else(|| EnvError::NotARepository(tree.to_path_buf()))?;
    let main = RepoView { name, path: tree.to_path_buf() };
    let mut trees: Vec<&Path> = vec![tree];
    trees.extend(masters.iter().map(|m| m.path.as_path()));
    let profile = repo::first_profile(&trees).map(|(i, p)| trees[i].join("profiles").join(p));
    let config_dir = scratch.join("pkgcore");
    pkgcore::write_config(&config_dir, &main, masters, profile.as_deref())?;
    let pkgcheck_cache = scratch.join("pkgcheck-cache");
    Ok(TreeEnv {
        tree: tree.to_path_buf(),
        visible: tree.to_path_buf(),
        config_dir,
        scratch: scratch.to_path_buf(),
        bind: None,
        pkgcheck_cache,
    })
}
