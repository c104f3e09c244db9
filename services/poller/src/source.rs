//! Listing a git remote's refs: the base branch's tip and every `refs/pull/<N>/head`, without fetching objects.

use crate::PollError;
use std::collections::BTreeMap;

/// A git remote with pull-request refs (`refs/pull/<N>/head`, as GitHub and Gitea publish them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// Any git URL or a local path.
    pub url: String,
    /// The branch pull requests merge into.
    pub base_branch: String,
}

/// What the remote advertised at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteState {
    /// The branch pull requests merge into.
    pub base_branch: String,
    /// Full SHA of its tip.
    pub base: String,
    /// Open pull requests: number → full SHA of its head.
    pub pulls: BTreeMap<u64, String>,
}

impl GitSource {
    pub fn new(url: impl Into<String>, base_branch: impl Into<String>) -> Self {
        Self { url: url.into(), base_branch: base_branch.into() }
    }

    /// From the `[repository]` section of the configuration.
    pub fn from_settings(repository: &pipeline::config::RepositorySettings) -> Self {
        Self::new(repository.url.clone(), repository.base_branch.clone())
    }

    /// Connect to the remote and list its refs (the ref advertisement only; no object is fetched).
    pub fn list(&self) -> Result<RemoteState, PollError> {
        let refs = trees::list_refs(&self.url).map_err(|e| PollError::Git { url: self.url.clone(), reason: e.message().to_string() })?;
        let state = from_refs(&self.base_branch, refs.iter().map(|(name, oid)| (name.as_str(), oid.to_string())));
        state.ok_or_else(|| PollError::MissingBase { url: self.url.clone(), branch: self.base_branch.clone() })
    }
}

/// Pick the base tip and the pull-request heads out of an advertisement; `None` when the base branch is absent.
fn from_refs<'a>(base_branch: &str, refs: impl IntoIterator<Item = (&'a str, String)>) -> Option<RemoteState> {
    let base_ref = format!("refs/heads/{base_branch}");
    let mut base = None;
    let mut pulls = BTreeMap::new();
    for (name, oid) in refs {
        if name == base_ref {
            base = Some(oid);
        } else if let Some(pr) = pull_number(name) {
            pulls.insert(pr, oid);
        }
    }
    Some(RemoteState { base_branch: base_branch.to_string(), base: base?, pulls })
}

/// `refs/pull/<N>/head` → N. Anything else (`…/merge`, peeled `^{}` entries, `refs/pull/x/head`, `refs/pull/01/head`,
/// numbers that do not fit, 0) is not a pull request.
pub(crate) fn pull_number(name: &str) -> Option<u64> {
    let n = name.strip_prefix("refs/pull/")?.strip_suffix("/head")?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.starts_with('0') {
        return None;
    }
    n.parse().ok()
}
