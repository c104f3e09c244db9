//! The plain git forge: pull requests are the remote's `refs/pull/<N>/head` refs (GitHub, Gitea and Forgejo publish
//! them); there are no labels, drafts or permissions, and nothing is published (reports only).

use crate::{Budget, Forge, ForgeError, Permission, Pull, Status};
use std::collections::BTreeMap;

/// A git remote with pull-request refs.
#[derive(Debug, Clone)]
pub struct GitForge {
    url: String,
}

/// What a remote advertised: branch tips and pull-request heads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertised {
    /// `refs/heads/<name>` → full SHA.
    pub branches: BTreeMap<String, String>,
    /// Pull-request number → full SHA of its head.
    pub pulls: BTreeMap<u64, String>,
}

impl GitForge {
    pub fn new(url: String) -> GitForge {
        GitForge { url }
    }

    /// List the remote's refs (the advertisement only; nothing is fetched).
    pub fn advertised(&self) -> Result<Advertised, ForgeError> {
        let refs = trees::list_refs(&self.url).map_err(|e| ForgeError::Transport {
            method: "ls-remote".into(),
            path: self.url.clone(),
            reason: e.message().to_string(),
        })?;
        Ok(from_refs(refs.iter().map(|(name, oid)| (name.as_str(), oid.to_string()))))
    }
}

/// Sort an advertisement into branches and pull-request heads.
pub fn from_refs<'a>(refs: impl IntoIterator<Item = (&'a str, String)>) -> Advertised {
    let mut out = Advertised::default();
    for (name, oid) in refs {
        if let Some(branch) = name.strip_prefix("refs/heads/") {
            out.branches.insert(branch.to_string(), oid);
        } else if let Some(pr) = pull_number(name) {
            out.pulls.insert(pr, oid);
        }
    }
    out
}

/// `refs/pull/<N>/head` → N. Anything else (`…/merge`, peeled `^{}` entries, `refs/pull/x/head`, `refs/pull/01/head`,
/// numbers that do not fit, 0) is not a pull request.
pub fn pull_number(name: &str) -> Option<u64> {
    let n = name.strip_prefix("refs/pull/")?.strip_suffix("/head")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
        return None;
    }
    n.parse().ok()
}

fn pull(number: u64, head: String, base_branch: &str) -> Pull {
    Pull { number, head, base_branch: base_branch.to_string(), labels: vec![], draft: false, open: true }
}

impl Forge for GitForge {
    fn kind(&self) -> &'static str {
        "git"
    }

    /// Every `refs/pull/<N>/head`; git does not say which branch a pull request targets, so all are taken to target
    /// `base_branch`.
    fn open_pulls(&self, base_branch: &str) -> Result<Vec<Pull>, ForgeError> {
        Ok(self.advertised()?.pulls.into_iter().map(|(n, head)| pull(n, head, base_branch)).collect())
    }

    fn pull(&self, number: u64) -> Result<Option<Pull>, ForgeError> {
        Ok(self.advertised()?.pulls.remove(&number).map(|head| pull(number, head, "")))
    }

    fn status(&self, _sha: &str) -> Result<Option<Status>, ForgeError> {
        Ok(None)
    }

    fn set_status(&self, _sha: &str, _status: &Status) -> Result<bool, ForgeError> {
        Ok(false)
    }

    fn upsert_comment(&self, _number: u64, _body: &str) -> Result<bool, ForgeError> {
        Ok(false)
    }

    fn permission(&self, _user: &str) -> Result<Permission, ForgeError> {
        Ok(Permission::None)
    }

    fn acknowledge(&self, _comment_id: u64) -> Result<(), ForgeError> {
        Ok(())
    }

    fn budget(&self) -> Option<Budget> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pull_heads_and_branches_are_kept() {
        let refs = [
            ("refs/heads/master", "a".repeat(40)),
            ("refs/pull/7/head", "b".repeat(40)),
            ("refs/pull/7/merge", "c".repeat(40)),
            ("refs/pull/07/head", "d".repeat(40)),
            ("refs/pull/x/head", "e".repeat(40)),
            ("refs/tags/v1", "f".repeat(40)),
        ];
        let ad = from_refs(refs.iter().map(|(n, o)| (*n, o.clone())));
        assert_eq!(ad.branches.get("master"), Some(&"a".repeat(40)));
        assert_eq!(ad.pulls.len(), 1);
        assert_eq!(ad.pulls.get(&7), Some(&"b".repeat(40)));
        assert_eq!(pull_number("refs/pull/0/head"), None);
        assert_eq!(pull_number("refs/pull/99999999999999999999999/head"), None);
    }
}
