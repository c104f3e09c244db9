//! Moving prepared trees between hosts through git: a checkout plus its regenerated md5-cache becomes a commit in the trees remote (`refs/prci/trees/<sha>`), which any checker fetches by SHA.

use crate::TreesError;
use git2::{Oid, Repository};
use std::path::Path;

/// The ref a prepared tree is published under.
pub fn tree_ref(oid: Oid) -> String {
    format!("refs/prci/trees/{oid}")
}

/// Create the trees remote when it is a local path that does not exist yet (the one-host default).
pub fn ensure_local_remote(url: &str) -> Result<(), TreesError> {
    if url.contains("://") || url.contains('@') {
        return Ok(());
    }
    let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
    if Repository::open_bare(path).is_err() {
        std::fs::create_dir_all(path)?;
        Repository::init_bare(path)?;
    }
    Ok(())
}

/// Snapshot the checkout at `dir` (whose HEAD is `source`) with its md5-cache as a commit, and push it.
/// Deterministic: the same source and cache give the same SHA on every host, so re-publishing is a no-op.
pub fn publish(dir: &Path, source: Oid, trees_url: &str) -> Result<Oid, TreesError> {
    let repo = Repository::open(dir)?;
    let source_commit = repo.find_commit(source)?;
    let mut index = git2::Index::new()?;
    index.read_tree(&source_commit.tree()?)?;
    // The md5-cache is ignored by the repository's .gitignore: add it by walking it ourselves.
    let cache = dir.join("metadata").join("md5-cache");
    if std::fs::symlink_metadata(&cache).is_ok_and(|m| m.is_dir()) {
        add_dir(&repo, &mut index, dir, &cache)?;
    }
    let tree_id = index.write_tree_to(&repo)?;
    let tree = repo.find_tree(tree_id)?;
    let when = source_commit.committer().when();
    let sig = crate::signature(&when)?;
    let oid = repo.commit(None, &sig, &sig, &format!("prci: {source} with its md5-cache\n"), &tree, &[&source_commit])?;
    let refname = tree_ref(oid);
    repo.reference(&refname, oid, true, "prci prepared tree")?;
    ensure_local_remote(trees_url)?;
    crate::push_ref(&repo, trees_url, &refname)?;
    Ok(oid)
}

/// The most one md5-cache entry may hold (real ones hold a few KiB).
pub const MAX_ENTRY_BYTES: u64 = 1 << 20;

/// One md5-cache file, which the pull request's code could write (regen runs it with the md5-cache writable): only
/// a regular file, never followed through a link, at most [`MAX_ENTRY_BYTES`].
fn read_entry(path: &Path, kind: std::fs::FileType) -> Result<Vec<u8>, TreesError> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let refused = |why: &str| TreesError::Refused(format!("{}: {why}", path.display()));
    if !kind.is_file() {
        return Err(refused("not a regular file (a link or a special file) in the md5-cache"));
    }
    let file = std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)?;
    let mut data = Vec::new();
    file.take(MAX_ENTRY_BYTES + 1).read_to_end(&mut data)?;
    if data.len() as u64 > MAX_ENTRY_BYTES {
        return Err(refused(&format!("more than {MAX_ENTRY_BYTES} bytes in one md5-cache entry")));
    }
    Ok(data)
}

/// Add every file under `dir` to the index (paths relative to the work tree `root`).
fn add_dir(repo: &Repository, index: &mut git2::Index, root: &Path, dir: &Path) -> Result<(), TreesError> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            add_dir(repo, index, root, &path)?;
            continue;
        }
        let rel = path.strip_prefix(root).map_err(|_| TreesError::NotFound(format!("{} is outside {}", path.display(), root.display())))?;
        let data = read_entry(&path, entry.file_type()?)?;
        let blob = repo.blob(&data)?;
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            file_size: data.len() as u32,
            id: blob,
            flags: 0,
            flags_extended: 0,
            path: rel.to_string_lossy().into_owned().into_bytes(),
        };
        index.add(&entry)?;
    }
    Ok(())
}

/// Fetch the prepared trees `oids` from the trees remote into `repo` (skipping those already there).
pub fn fetch(repo: &Repository, trees_url: &str, oids: &[Oid]) -> Result<(), TreesError> {
    let missing: Vec<String> = oids.iter().filter(|o| repo.find_commit(**o).is_err()).map(|o| format!("+{0}:{0}", tree_ref(*o))).collect();
    if missing.is_empty() {
        return Ok(());
    }
    crate::fetch_refspecs(repo, trees_url, &missing)?;
    for oid in oids {
        if repo.find_commit(*oid).is_err() {
            return Err(TreesError::NotFound(format!("prepared tree {oid} is not in {trees_url}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A work tree with one commit, an ignored md5-cache and the HEAD checked out.
    fn checkout_with_cache(dir: &Path) -> Oid {
        let repo = Repository::init(dir).unwrap();
        std::fs::write(dir.join(".gitignore"), "/metadata/md5-cache\n").unwrap();
        std::fs::create_dir_all(dir.join("app-misc/foo")).unwrap();
        std::fs::write(dir.join("app-misc/foo/foo-1.ebuild"), "EAPI=8\n").unwrap();
        let mut index = repo.index().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::new("t", "t@t", &git2::Time::new(1_700_000_000, 0)).unwrap();
        let oid = repo.commit(Some("HEAD"), &sig, &sig, "one", &tree, &[]).unwrap();
        std::fs::create_dir_all(dir.join("metadata/md5-cache/app-misc")).unwrap();
        std::fs::write(dir.join("metadata/md5-cache/app-misc/foo-1"), "EAPI=8\n_md5_=x\n").unwrap();
        oid
    }

    #[test]
    fn a_published_tree_carries_its_md5_cache_to_another_host() {
        let tmp = tempfile::tempdir().unwrap();
        let source = checkout_with_cache(&tmp.path().join("host-a"));
        let remote = tmp.path().join("trees.git").display().to_string();
        let published = publish(&tmp.path().join("host-a"), source, &remote).unwrap();
        // Deterministic: publishing again gives the same commit.
        assert_eq!(publish(&tmp.path().join("host-a"), source, &remote).unwrap(), published);

        let other = Repository::init_bare(tmp.path().join("host-b.git")).unwrap();
        fetch(&other, &remote, &[published]).unwrap();
        let tree = other.find_commit(published).unwrap().tree().unwrap();
        let entry = tree.get_path(Path::new("metadata/md5-cache/app-misc/foo-1")).unwrap();
        let blob = other.find_blob(entry.id()).unwrap();
        assert_eq!(blob.content(), b"EAPI=8\n_md5_=x\n");
        assert!(tree.get_path(Path::new("app-misc/foo/foo-1.ebuild")).is_ok());
        // A SHA the remote does not have is an error naming it.
        let bogus = Oid::from_str(&"1".repeat(40)).unwrap();
        assert!(fetch(&other, &remote, &[bogus]).is_err());
    }

    #[test]
    fn a_link_or_an_oversized_file_in_the_md5_cache_is_refused_not_carried() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("host-a");
        let source = checkout_with_cache(&host);
        let remote = tmp.path().join("trees.git").display().to_string();
        std::os::unix::fs::symlink("/proc/self/environ", host.join("metadata/md5-cache/app-misc/foo-2")).unwrap();
        let e = publish(&host, source, &remote).expect_err("a link is carried");
        assert!(matches!(e, TreesError::Refused(_)), "{e}");
        std::fs::remove_file(host.join("metadata/md5-cache/app-misc/foo-2")).unwrap();
        std::fs::write(host.join("metadata/md5-cache/app-misc/foo-2"), vec![b'x'; MAX_ENTRY_BYTES as usize + 1]).unwrap();
        assert!(matches!(publish(&host, source, &remote), Err(TreesError::Refused(_))));
        std::fs::remove_file(host.join("metadata/md5-cache/app-misc/foo-2")).unwrap();
        publish(&host, source, &remote).expect("a plain md5-cache is carried");
    }
}
