//! The base-results cache: a base tree scanned once per target, tool version and arguments, reused by every later pull request on that base — on this host (files) and, with a shared remote, on every host (`refs/prci/cache/<key>` in the trees remote).

use serde::{Deserialize, Serialize};
use shared::finding::Finding;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Results of one target (or the repo pass, or a full scan) on one base tree.
#[derive(Debug)]
pub struct BaseCache {
    dir: PathBuf,
    /// The shared git remote, and the keys it had when first listed in this job (listed once, lazily).
    remote: Option<(String, Mutex<Option<BTreeSet<String>>>)>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// The key's inputs, for an operator reading the file.
    about: String,
    findings: Vec<Finding>,
}

const REF_PREFIX: &str = "refs/prci/cache/";

impl BaseCache {
    /// A cache on this host only.
    pub fn new(work_dir: &Path) -> BaseCache {
        BaseCache { dir: work_dir.join("cache").join("base"), remote: None }
    }

    /// A cache shared through a git remote (the trees remote).
    pub fn shared(work_dir: &Path, remote: &str) -> BaseCache {
        BaseCache { dir: work_dir.join("cache").join("base"), remote: Some((remote.to_owned(), Mutex::new(None))) }
    }

    /// The key: base tree, masters, tool versions and arguments, and the unit scanned.
    pub fn key(tree_id: &str, fingerprint: &str, unit: &str) -> (String, String) {
        use sha2::Digest;
        let about = format!("tree={tree_id} {fingerprint} unit={unit}");
        (hex::encode(sha2::Sha256::digest(about.as_bytes())), about)
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    fn git(&self) -> Result<git2::Repository, git2::Error> {
        let path = self.dir.join("shared.git");
        git2::Repository::open_bare(&path).or_else(|_| git2::Repository::init_bare(&path))
    }

    /// Cached findings, if any: this host's file, else the shared remote's ref (an unreadable entry is a miss).
    pub fn get(&self, key: &str) -> Option<Vec<Finding>> {
        if let Ok(text) = std::fs::read(self.path(key)) {
            if let Ok(e) = serde_json::from_slice::<Entry>(&text) {
                return Some(e.findings);
            }
        }
        let entry = self.get_shared(key)?;
        // Keep a local copy for the next job on this host.
        let _ = self.write_file(key, &entry);
        tracing::info!(key, "base results from the shared cache");
        Some(entry.findings)
    }

    fn get_shared(&self, key: &str) -> Option<Entry> {
        let (url, listed) = self.remote.as_ref()?;
        let mut listed = listed.lock().unwrap_or_else(|p| p.into_inner());
        if listed.is_none() {
            *listed = Some(list_remote(url).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "shared base cache unreachable; scanning");
                BTreeSet::new()
            }));
        }
        if !listed.as_ref().is_some_and(|l| l.contains(key)) {
            return None;
        }
        drop(listed);
        let repo = self.git().ok()?;
        let refname = format!("{REF_PREFIX}{key}");
        let mut remote = repo.remote_anonymous(url).ok()?;
        remote.fetch(&[format!("+{refname}:{refname}")], None, None).ok()?;
        let tree = repo.find_reference(&refname).ok()?.peel_to_commit().ok()?.tree().ok()?;
        let blob = repo.find_blob(tree.get_name("entry.json")?.id()).ok()?;
        serde_json::from_slice(blob.content()).ok()
    }

    fn write_file(&self, key: &str, entry: &Entry) -> std::io::Result<()> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec(entry).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }

    /// Store findings: atomically on this host, then (best effort) in the shared remote.
    pub fn put(&self, key: &str, about: &str, findings: &[Finding]) -> std::io::Result<()> {
        let entry = Entry { about: about.to_owned(), findings: findings.to_vec() };
        self.write_file(key, &entry)?;
        if let Some((url, _)) = &self.remote {
            if let Err(e) = self.push(url, key, &entry) {
                tracing::warn!(error = %e, "could not share base results");
            }
        }
        Ok(())
    }

    fn push(&self, url: &str, key: &str, entry: &Entry) -> Result<(), git2::Error> {
        let repo = self.git()?;
        let blob = repo.blob(&serde_json::to_vec(entry).map_err(|e| git2::Error::from_str(&e.to_string()))?)?;
        let mut tb = repo.treebuilder(None)?;
        tb.insert("entry.json", blob, 0o100644)?;
        let tree = repo.find_tree(tb.write()?)?;
        let sig = git2::Signature::new("prci", "prci@localhost", &git2::Time::new(0, 0))?;
        let commit = repo.commit(None, &sig, &sig, &entry.about, &tree, &[])?;
        let refname = format!("{REF_PREFIX}{key}");
        repo.reference(&refname, commit, true, "prci base results")?;
        let mut remote = repo.remote_anonymous(url)?;
        remote.push(&[format!("+{refname}:{refname}")], None)
    }
}

/// Keys the shared remote holds.
fn list_remote(url: &str) -> Result<BTreeSet<String>, git2::Error> {
    let mut remote = git2::Remote::create_detached(url)?;
    remote.connect(git2::Direction::Fetch)?;
    let keys = remote.list()?.iter().filter_map(|h| h.name().strip_prefix(REF_PREFIX).map(str::to_owned)).collect();
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_host_reuses_what_one_host_scanned() {
        let tmp = tempfile::tempdir().unwrap();
        let remote = tmp.path().join("trees.git");
        git2::Repository::init_bare(&remote).unwrap();
        let url = remote.display().to_string();
        let finding = shared::finding::parse_line(r#"{"__class__": "UnknownLicense", "category": "a", "package": "b", "version": "1", "licenses": ["X"]}"#, "").unwrap();
        let (key, about) = BaseCache::key("tree", "pkgcheck=1", "a/b");
        BaseCache::shared(&tmp.path().join("host-a"), &url).put(&key, &about, &[finding.clone()]).unwrap();
        let host_b = BaseCache::shared(&tmp.path().join("host-b"), &url);
        assert_eq!(host_b.get(&key), Some(vec![finding]));
        let (other, _) = BaseCache::key("tree", "pkgcheck=2", "a/b");
        assert_eq!(host_b.get(&other), None, "another tool version is another key");
        // A host without the shared remote does not see it.
        assert_eq!(BaseCache::new(&tmp.path().join("host-c")).get(&key), None);
    }
}
