//! The base-results cache: a base tree scanned once per target, tool version and arguments, reused by every later pull request on that base.

use serde::{Deserialize, Serialize};
use shared::finding::Finding;
use std::path::{Path, PathBuf};

/// Results of one target (or the repo pass, or a full scan) on one base tree, on disk as JSON.
#[derive(Debug, Clone)]
pub struct BaseCache {
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    /// The key's inputs, for an operator reading the file.
    about: String,
    findings: Vec<Finding>,
}

impl BaseCache {
    pub fn new(work_dir: &Path) -> BaseCache {
        BaseCache { dir: work_dir.join("cache").join("base") }
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

    /// Cached findings, if any (an unreadable entry is a miss).
    pub fn get(&self, key: &str) -> Option<Vec<Finding>> {
        let text = std::fs::read(self.path(key)).ok()?;
        serde_json::from_slice::<Entry>(&text).ok().map(|e| e.findings)
    }

    /// Store findings atomically (write then rename), so a killed job never leaves half an entry.
    pub fn put(&self, key: &str, about: &str, findings: &[Finding]) -> std::io::Result<()> {
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let entry = Entry { about: about.to_owned(), findings: findings.to_vec() };
        std::fs::write(&tmp, serde_json::to_vec(&entry).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }
}
