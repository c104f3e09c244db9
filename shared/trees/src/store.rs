//! Small documents kept under `refs/<prefix>/<key>` of a shared git remote (one commit holding one blob), so every host reads what one host wrote: how the base-results cache travels.

use std::collections::BTreeSet;
use std::path::PathBuf;

/// A store of blobs under `refs/<prefix>/<key>` in `url`, with a local bare repository as its working copy.
#[derive(Debug, Clone)]
pub struct RefStore {
    /// The local bare repository objects are fetched into and committed in.
    pub local: PathBuf,
    /// The shared remote.
    pub url: String,
    /// `refs/prci/cache/`, …: ends with `/`.
    pub prefix: String,
}

/// The one file each stored commit holds.
const ENTRY: &str = "entry.json";

impl RefStore {
    fn repo(&self) -> Result<git2::Repository, git2::Error> {
        git2::Repository::open_bare(&self.local).or_else(|_| git2::Repository::init_bare(&self.local))
    }

    /// The keys the remote holds now.
    pub fn keys(&self) -> Result<BTreeSet<String>, git2::Error> {
        let refs = crate::list_refs(&self.url)?;
        Ok(refs.into_iter().filter_map(|(name, _)| name.strip_prefix(&self.prefix).map(str::to_owned)).collect())
    }

    /// The document stored under `key`, fetched from the remote; None when it is not there or unreadable.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let repo = self.repo().ok()?;
        let refname = format!("{}{key}", self.prefix);
        crate::fetch_refspecs(&repo, &self.url, &[format!("+{refname}:{refname}")]).ok()?;
        let tree = repo.find_reference(&refname).ok()?.peel_to_commit().ok()?.tree().ok()?;
        let blob = repo.find_blob(tree.get_name(ENTRY)?.id()).ok()?;
        Some(blob.content().to_vec())
    }

    /// Store `bytes` under `key` (the commit message says what it is) and push it.
    pub fn put(&self, key: &str, message: &str, bytes: &[u8]) -> Result<(), git2::Error> {
        let repo = self.repo()?;
        let blob = repo.blob(bytes)?;
        let mut tb = repo.treebuilder(None)?;
        tb.insert(ENTRY, blob, 0o100644)?;
        let tree = repo.find_tree(tb.write()?)?;
        let sig = crate::signature(&git2::Time::new(0, 0))?;
        let commit = repo.commit(None, &sig, &sig, message, &tree, &[])?;
        let refname = format!("{}{key}", self.prefix);
        repo.reference(&refname, commit, true, "prci shared document")?;
        crate::push_ref(&repo, &self.url, &refname)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_one_host_puts_another_gets_and_lists() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let remote = tmp.path().join("shared.git");
        git2::Repository::init_bare(&remote).expect("init");
        let store =
            |host: &str| RefStore { local: tmp.path().join(host), url: remote.display().to_string(), prefix: "refs/prci/test/".into() };
        store("a").put("k1", "about k1", b"{\"x\":1}").expect("put");
        assert_eq!(store("b").get("k1").as_deref(), Some(&b"{\"x\":1}"[..]));
        assert_eq!(store("b").get("k2"), None);
        assert_eq!(store("c").keys().expect("list"), BTreeSet::from(["k1".to_string()]));
    }
}
