//! The per-tree tool environment: the path the tools see the tree at, a hermetic pkgcore configuration naming it and its masters, a scratch directory and pkgcheck's cache directory.

use crate::{pkgcore, Sandbox, ToolCommand};
use ebuild::repo::{self as repo, RepoView};
use std::path::{Path, PathBuf};

/// Why a tool environment could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// The tree has no `profiles/repo_name` (nor `repo-name` in `metadata/layout.conf`): the revision is not an ebuild
    /// repository, whatever is retried.
    #[error("{} is not an ebuild repository: profiles/repo_name is missing", .0.display())]
    NotARepository(PathBuf),
    /// A path the tools would write through is not a plain directory of the tree (a symlink out of it, a file).
    #[error("{0} must be a directory of the tree, not a symlink or a file")]
    Refused(String),
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
    /// The master repositories, seen read-only at their own paths.
    pub masters: Vec<PathBuf>,
    /// pkgcheck's `--cache-dir` (its profile and eclass caches): the job's own, unless the checker gives the
    /// side a trusted one.
    pub pkgcheck_cache: PathBuf,
    /// pkgcheck's caches kept beside the checkout between jobs ([`kept_tool_cache`]); None for a master.
    pub kept_tool_cache: Option<PathBuf>,
    /// The job's cancel flag, given to every run on this tree (`ToolCommand::cancel`).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

/// The scratch directory of one side (`base`, `merge`) of a job: every run of that side (regen, pkgcheck's cache
/// update, scans) works in it, so one warm process serves them all.
pub fn side_scratch(job_scratch: &Path, side: &str) -> PathBuf {
    job_scratch.join(side)
}

/// Remove everything in `dir` (made if absent), keeping the directory itself: a warm tool process may have it
/// mounted, and a directory removed and made again would not be the one it sees.
pub fn empty_in_place(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Where pkgcheck's caches of a checkout are kept between jobs: beside it, never inside it.
pub fn kept_tool_cache(tree: &Path) -> PathBuf {
    kept_beside(tree, "pkgcheck-cache")
}

/// `<checkout>.<what>`: where something prci keeps of a checkout between jobs lives, beside it and never inside it.
pub fn kept_beside(tree: &Path, what: &str) -> PathBuf {
    let name = tree.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    tree.with_file_name(format!("{name}.{what}"))
}

/// Prepare the pkgcore config and scratch dir for running tools on `tree`.
pub fn tree_env(sandbox: &Sandbox, work_dir: &Path, tree: &Path, masters: &[RepoView], scratch: &Path) -> Result<TreeEnv, EnvError> {
    let visible = visible_path(sandbox, work_dir, tree);
    if sandbox.can_bind() {
        std::fs::create_dir_all(&visible)?;
    }
    md5_cache_dir(tree)?;
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
    let masters = masters.iter().map(|m| m.path.clone()).collect();
    // It exists before any run of the side binds it, and stays the same directory (emptied, never replaced).
    let kept = kept_tool_cache(tree);
    std::fs::create_dir_all(&kept)?;
    Ok(TreeEnv {
        tree: tree.to_path_buf(),
        visible,
        config_dir,
        scratch: scratch.to_path_buf(),
        bind,
        masters,
        pkgcheck_cache,
        kept_tool_cache: Some(kept),
        cancel: None,
    })
}

/// Make sure `metadata/md5-cache` of `tree` is a directory of its own (the sandbox mounts it writable for regen, and
/// host code reads it): a pull request that makes `metadata` or `metadata/md5-cache` a symlink or a file is refused.
fn md5_cache_dir(tree: &Path) -> Result<(), EnvError> {
    let mut dir = tree.to_path_buf();
    for part in ["metadata", "md5-cache"] {
        dir.push(part);
        match dir.symlink_metadata() {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(EnvError::Refused(dir.strip_prefix(tree).unwrap_or(&dir).display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&dir)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl TreeEnv {
    /// A run of `program` on this tree: the tree at its visible path (md5-cache writable when `regen`), the masters
    /// read-only, the side's scratch and `pkgcheck_cache` writable, `HOME` in `scratch/home`. The side's other
    /// pkgcheck caches (the job's own, the kept one) are the side's shared writable directories: not this run's.
    pub fn command(&self, program: PathBuf, args: Vec<String>, bin_dir: &Path, timeout: std::time::Duration, regen: bool) -> ToolCommand {
        let writable = vec![self.scratch.clone(), self.pkgcheck_cache.clone()];
        let side = [Some(self.scratch.join("pkgcheck-cache")), self.kept_tool_cache.clone()];
        let shared_writable = side.into_iter().flatten().filter(|d| !writable.contains(d)).collect();
        ToolCommand {
            program,
            args,
            bin_dir: bin_dir.to_path_buf(),
            scratch: self.scratch.join("home"),
            bind: self.bind.clone(),
            write_md5_cache: regen,
            md5_cache_categories: None,
            read_only: self.masters.clone(),
            writable,
            shared_writable,
            timeout,
            stdin: None,
            env: vec![],
            cancel: self.cancel.clone(),
        }
    }
}

/// A master repository is regenerated at its own path (the same for both sides).
pub fn tree_env_real(sandbox: &Sandbox, tree: &Path, masters: &[RepoView], scratch: &Path) -> Result<TreeEnv, EnvError> {
    md5_cache_dir(tree)?;
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
        bind: sandbox.can_bind().then(|| (tree.to_path_buf(), tree.to_path_buf())),
        masters: masters.iter().map(|m| m.path.clone()).collect(),
        pkgcheck_cache,
        kept_tool_cache: None,
        cancel: None,
    })
}
