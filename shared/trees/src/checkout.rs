//! Checkouts at stable paths that borrow the mirror's objects: skipped when already complete at the wanted commit, and moved by writing only the paths that differ where nothing but prci writes the tracked files.

use crate::mirror::{add_alternate, fetch, local_objects_dir, open_mirror, resolve};
use crate::{RepoWorkspace, TreesError};
use git2::{Oid, Repository};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

/// Present in a checkout's git dir while a checkout is under way: a HEAD at the wanted commit alone does not prove
/// that the files match it (a later checkout may have been interrupted half-way).
const CHECKOUT_MARKER: &str = "prci-checkout-incomplete";

/// Check `commit` out at `dir` (a repository borrowing the mirror's objects), keeping untracked files such as the md5-cache.
pub fn checkout(mirror: &Repository, dir: &Path, commit: Oid) -> Result<(), TreesError> {
    ensure_checkout(mirror, dir, commit, CheckoutMode::Verify, &[]).map(|_| ())
}

/// How a checkout may move its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutMode {
    /// libgit2's forced checkout: every file is checked against the index (it also undoes changes made in the checkout).
    Verify,
    /// Write only the paths that differ between the commit checked out and the wanted one. For checkouts the tools
    /// only see read-only (`Sandbox::can_bind`: the sandbox mounts the tree read-only, its md5-cache writable), so
    /// that nothing but prci writes their tracked files. Falls back to `Verify` when the checkout is not complete.
    ChangedOnly,
}

/// Check `commit` out at `dir` in `mode`, skipped when the checkout is already complete at `commit` (HEAD detached
/// there, no checkout under way). Returns whether files were checked out. Before any file moves, the files named
/// `invalidated` in the checkout's git dir are removed (what was true of the old files, such as regen's stamp).
pub fn ensure_checkout(mirror: &Repository, dir: &Path, commit: Oid, mode: CheckoutMode, invalidated: &[&str]) -> Result<bool, TreesError> {
    let repo = match Repository::open(dir) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(dir)?;
            Repository::init(dir)?
        }
    };
    add_alternate(repo.path(), &mirror.path().join("objects"))?;
    // Reopen so the alternates are read.
    let repo = Repository::open(dir)?;
    let marker = repo.path().join(CHECKOUT_MARKER);
    let complete = !marker.exists() && repo.head_detached().unwrap_or(false);
    let current = if complete { repo.head().ok().and_then(|h| h.target()) } else { None };
    if current == Some(commit) {
        return Ok(false);
    }
    for name in invalidated {
        match std::fs::remove_file(repo.path().join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    std::fs::write(&marker, format!("{commit}\n"))?;
    match (mode, current) {
        (CheckoutMode::ChangedOnly, Some(old)) if repo.find_commit(old).is_ok() => write_changes(&repo, old, commit)?,
        _ => {
            let obj = repo.find_object(commit, None)?;
            let mut co = git2::build::CheckoutBuilder::new();
            co.force();
            repo.checkout_tree(&obj, Some(&mut co))?;
        }
    }
    repo.set_head_detached(commit)?;
    std::fs::remove_file(&marker)?;
    Ok(true)
}

/// Move a complete checkout of `old` to `new` by writing only the paths that differ, keeping its index in step.
fn write_changes(repo: &Repository, old: Oid, new: Oid) -> Result<(), TreesError> {
    use git2::{Delta, FileMode};
    let workdir = repo.workdir().ok_or_else(|| TreesError::NotFound(format!("{} has no work tree", repo.path().display())))?.to_path_buf();
    let (old_tree, new_tree) = (repo.find_commit(old)?.tree()?, repo.find_commit(new)?.tree()?);
    let diff = repo.diff_tree_to_tree(Some(&old_tree), Some(&new_tree), None)?;
    let mut index = repo.index()?;
    for delta in diff.deltas() {
        let Some(rel) = delta.new_file().path().or_else(|| delta.old_file().path()).map(Path::to_path_buf) else { continue };
        let path = workdir.join(&rel);
        if std::fs::symlink_metadata(&path).is_ok() {
            std::fs::remove_file(&path)?;
        }
        if delta.status() == Delta::Deleted {
            index.remove_path(&rel)?;
            // Directories left empty go, as libgit2's checkout removes them.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != workdir) {
                if std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            continue;
        }
        let file = delta.new_file();
        let mode = file.mode();
        if !matches!(mode, FileMode::Blob | FileMode::BlobExecutable | FileMode::Link) {
            continue; // submodules: not in ebuild repositories
        }
        let blob = repo.find_blob(file.id())?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if mode == FileMode::Link {
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(blob.content()), &path)?;
        } else {
            std::fs::write(&path, blob.content())?;
            let perms = if mode == FileMode::BlobExecutable { 0o755 } else { 0o644 };
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(perms))?;
        }
        index.add_path(&rel)?;
    }
    index.write()?;
    Ok(())
}

/// A master repository to check out: its name, URL and branch (None: the remote's HEAD).
#[derive(Debug, Clone)]
pub struct Master<'a> {
    pub name: &'a str,
    pub url: &'a str,
    pub branch: Option<&'a str>,
}

/// Mirror and check out each master at the tip of its branch.
/// Returns (name, checkout path) in the order given.
pub fn prepare_masters(ws: &RepoWorkspace, masters: &[Master]) -> Result<Vec<(String, PathBuf)>, TreesError> {
    let mut out = Vec::new();
    for m in masters {
        let mws = RepoWorkspace::new(&ws.work_dir, m.name, m.url);
        let mirror = open_mirror(&mws, m.url)?;
        let tip = match local_objects_dir(m.url) {
            Some(_) => resolve(Path::new(m.url), m.branch.unwrap_or("HEAD"))?,
            None => {
                let branch = m.branch.unwrap_or("HEAD");
                let spec =
                    if branch == "HEAD" { "+HEAD:refs/prci/master".to_string() } else { format!("+refs/heads/{branch}:refs/prci/master") };
                fetch(&mirror, m.url, &[&spec])?;
                mirror.refname_to_id("refs/prci/master")?
            }
        };
        let dir = ws.master(m.name);
        checkout(&mirror, &dir, tip)?;
        out.push((m.name.to_owned(), dir));
    }
    Ok(out)
}
