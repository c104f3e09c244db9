//! The base-results cache: a base tree scanned once per target, tool version and arguments, reused by every later pull request on that base — on this host (files) and, with a shared remote, on every host (`refs/prci/cache/<key>` in the trees remote).

use findings::Finding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use trees::store::RefStore;

/// Results of one target (or the repo pass, or a full scan) on one base tree.
#[derive(Debug)]
pub struct BaseCache {
    dir: PathBuf,
    /// The shared remote's store, and the keys it had when first listed in this job (listed once, lazily).
    shared: Option<(RefStore, Mutex<Option<BTreeSet<String>>>)>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// The key's inputs, for an operator reading the file.
    about: String,
    findings: Vec<Finding>,
}

impl BaseCache {
    /// A cache on this host only.
    pub fn new(work_dir: &Path) -> BaseCache {
        BaseCache { dir: work_dir.join("cache").join("base"), shared: None }
    }

    /// A cache shared through a git remote (the trees remote, under `refs/prci/cache/`).
    pub fn shared(work_dir: &Path, remote: &str) -> BaseCache {
        let dir = work_dir.join("cache").join("base");
        let store = RefStore { local: dir.join("shared.git"), url: remote.to_owned(), prefix: "refs/prci/cache/".into() };
        BaseCache { dir, shared: Some((store, Mutex::new(None))) }
    }

    /// The key: base tree, masters, tool versions and arguments, and the unit scanned.
    pub fn key(tree_id: &str, fingerprint: &str, unit: &str) -> (String, String) {
        let about = format!("tree={tree_id} {fingerprint} unit={unit}");
        (trees::hex_sha256(&about), about)
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }

    /// Cached findings, if any: this host's file, else the shared remote's ref (an unreadable entry is a miss).
    pub fn get(&self, key: &str) -> Option<Vec<Finding>> {
        let found = self.lookup(key);
        let result = if found.is_some() { "hit" } else { "miss" };
        pipeline::metrics::get().base_cache.with_label_values(&[result]).inc();
        found
    }

    fn lookup(&self, key: &str) -> Option<Vec<Finding>> {
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
        let (store, listed) = self.shared.as_ref()?;
        let mut listed = listed.lock().unwrap_or_else(|p| p.into_inner());
        if listed.is_none() {
            *listed = Some(store.keys().unwrap_or_else(|e| {
                tracing::warn!(error = %e, "shared base cache unreachable; scanning");
                BTreeSet::new()
            }));
        }
        if !listed.as_ref().is_some_and(|l| l.contains(key)) {
            return None;
        }
        drop(listed);
        serde_json::from_slice(&store.get(key)?).ok()
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
        if let Some((store, _)) = &self.shared {
            let pushed = serde_json::to_vec(&entry)
                .map_err(|e| git2::Error::from_str(&e.to_string()))
                .and_then(|b| store.put(key, &entry.about, &b));
            if let Err(e) = pushed {
                tracing::warn!(error = %e, "could not share base results");
            }
        }
        Ok(())
    }
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
        let finding = findings::parse_line(
            r#"{"__class__": "UnknownLicense", "category": "a", "package": "b", "version": "1", "licenses": ["X"]}"#,
            "",
        )
        .unwrap();
        let (key, about) = BaseCache::key("tree", "pkgcheck=1", "a/b");
        BaseCache::shared(&tmp.path().join("host-a"), &url).put(&key, &about, std::slice::from_ref(&finding)).unwrap();
        let host_b = BaseCache::shared(&tmp.path().join("host-b"), &url);
        assert_eq!(host_b.get(&key), Some(vec![finding]));
        let (other, _) = BaseCache::key("tree", "pkgcheck=2", "a/b");
        assert_eq!(host_b.get(&other), None, "another tool version is another key");
        // A host without the shared remote does not see it.
        assert_eq!(BaseCache::new(&tmp.path().join("host-c")).get(&key), None);
    }
}
