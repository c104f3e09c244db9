//! The bare mirror of a source repository (local sources borrowed through alternates, remote ones fetched), resolving revisions, and listing a remote's refs without fetching.

use crate::{RepoWorkspace, TreesError};
use git2::{Oid, Repository};
use std::path::{Path, PathBuf};

/// Open the repository at `path` (not bare-only) and resolve `rev` to a commit.
pub fn resolve(path: &Path, rev: &str) -> Result<Oid, TreesError> {
    let repo = Repository::open(path).map_err(|_| TreesError::NotFound(format!("{} is not a git repository", path.display())))?;
    let obj = repo.revparse_single(rev).map_err(|_| TreesError::NotFound(format!("unknown revision {rev:?} in {}", path.display())))?;
    let commit = obj.peel_to_commit().map_err(|_| TreesError::NotFound(format!("revision {rev:?} is not a commit")))?;
    Ok(commit.id())
}

/// Open (or create) the bare mirror for `url`. A local path is borrowed through git alternates; a remote is fetched.
pub fn open_mirror(ws: &RepoWorkspace, url: &str) -> Result<Repository, TreesError> {
    let path = ws.mirror();
    let repo = match Repository::open_bare(&path) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(&path)?;
            Repository::init_bare(&path)?
        }
    };
    if let Some(objects) = local_objects_dir(url) {
        add_alternate(&path, &objects)?;
    }
    Ok(repo)
}

/// `objects/` of a local repository path (bare or not), if `url` is one.
pub fn local_objects_dir(url: &str) -> Option<PathBuf> {
    let p = Path::new(url.strip_prefix("file://").unwrap_or(url));
    if !p.is_absolute() && !p.exists() {
        return None;
    }
    let repo = Repository::open(p).ok()?;
    Some(repo.path().join("objects"))
}

/// Make the objects of `objects` visible to the repository at `git_dir` (idempotent).
pub(crate) fn add_alternate(git_dir: &Path, objects: &Path) -> std::io::Result<()> {
    let info = git_dir.join("objects").join("info");
    std::fs::create_dir_all(&info)?;
    let file = info.join("alternates");
    let line = objects.canonicalize().unwrap_or_else(|_| objects.to_path_buf()).display().to_string();
    let existing = std::fs::read_to_string(&file).unwrap_or_default();
    if !existing.lines().any(|l| l == line) {
        std::fs::write(&file, format!("{existing}{line}\n"))?;
    }
    Ok(())
}

/// Fetch `refspecs` from a remote `url` into the mirror (no-op for local sources, which are borrowed).
pub fn fetch(mirror: &Repository, url: &str, refspecs: &[&str]) -> Result<(), TreesError> {
    if local_objects_dir(url).is_some() {
        return Ok(());
    }
    let specs: Vec<String> = refspecs.iter().map(|s| s.to_string()).collect();
    crate::fetch_refspecs(mirror, url, &specs)?;
    Ok(())
}

/// Every ref `url` advertises (name, target), without fetching any object.
pub fn list_refs(url: &str) -> Result<Vec<(String, Oid)>, git2::Error> {
    crate::transport::with_remote(url, |callbacks| {
        let mut remote = git2::Remote::create_detached(url)?;
        let connection = remote.connect_auth(git2::Direction::Fetch, Some(callbacks), None)?;
        let refs = connection.list()?.iter().map(|h| (h.name().to_owned(), h.oid())).collect();
        Ok(refs)
    })
}

/// The current head of pull request `pr` on `url` (`refs/pull/<pr>/head`), without fetching anything; None when it is gone.
pub fn current_pull_head(url: &str, pr: u64) -> Result<Option<String>, TreesError> {
    let wanted = format!("refs/pull/{pr}/head");
    Ok(list_refs(url)?.into_iter().find(|(name, _)| *name == wanted).map(|(_, oid)| oid.to_string()))
}
