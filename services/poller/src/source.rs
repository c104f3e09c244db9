//! Where the poller learns the open pull requests: the base branch's tip from the git remote (refs only, no objects
//! fetched), and the pull requests themselves from the forge: `refs/pull/<N>/head` of the same remote (`git`), or the
//! GitHub API with labels and drafts (`github`).

use crate::PollError;
use forge::git::GitForge;
use forge::Forge;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Pull requests with this label are not checked (a pending status becomes success "checks skipped").
pub const SKIP_LABEL: &str = "noci";
/// Pull requests with this label go first through every stage.
pub const PRIORITY_LABEL: &str = "priority-ci";

/// A repository's pull requests and its base branch.
#[derive(Debug, Clone)]
pub struct Source {
    git: GitForge,
    /// `repository.url`.
    pub url: String,
    /// The branch pull requests merge into.
    pub base_branch: String,
    /// The forge pull requests are listed from; `None`: the git remote's `refs/pull/<N>/head`.
    forge: Option<Arc<dyn Forge>>,
    /// Whether draft pull requests are checked.
    drafts: bool,
}

/// What the remote and the forge said at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteState {
    /// The branch pull requests merge into.
    pub base_branch: String,
    /// Full SHA of its tip.
    pub base: String,
    /// Open pull requests to check: number → full SHA of its head.
    pub pulls: BTreeMap<u64, String>,
    /// Those of them labelled `priority-ci`.
    pub priority: BTreeSet<u64>,
    /// Open pull requests not to check: number → (head, why).
    pub skipped: BTreeMap<u64, (String, &'static str)>,
}

impl Source {
    /// A git remote whose `refs/pull/<N>/head` are the pull requests.
    pub fn new(url: impl Into<String>, base_branch: impl Into<String>) -> Self {
        let url = url.into();
        Self { git: GitForge::new(url.clone()), url, base_branch: base_branch.into(), forge: None, drafts: true }
    }

    /// Pull requests from `forge` (labels and drafts honoured); the base tip still from the git remote.
    pub fn with_forge(mut self, forge: Arc<dyn Forge>, drafts: bool) -> Self {
        if forge.kind() != "git" {
            self.forge = Some(forge);
            self.drafts = drafts;
        }
        self
    }

    /// From the configuration: `[repository]`, and the forge `source.kind` names.
    pub fn from_settings(settings: &pipeline::Settings, forge: Arc<dyn Forge>) -> Self {
        Self::new(settings.repository.url.clone(), settings.repository.base_branch.clone()).with_forge(forge, settings.github.drafts)
    }

    /// Read the base tip and the open pull requests.
    pub fn list(&self) -> Result<RemoteState, PollError> {
        let advertised = self.git.advertised().map_err(|source| PollError::Git { url: self.url.clone(), source })?;
        let base = advertised
            .branches
            .get(&self.base_branch)
            .cloned()
            .ok_or_else(|| PollError::MissingBase { url: self.url.clone(), branch: self.base_branch.clone() })?;
        let mut state = RemoteState { base_branch: self.base_branch.clone(), base, ..RemoteState::default() };
        let Some(forge) = &self.forge else {
            state.pulls = advertised.pulls;
            return Ok(state);
        };
        for pull in forge.open_pulls(&self.base_branch).map_err(PollError::forge)? {
            self.admit(&mut state, pull);
        }
        Ok(state)
    }

    /// Ask the forge for each of `missing` (pull requests the list did not show): one still open into the base branch is
    /// put back (a list read page by page can miss one that moved between pages meanwhile); the rest are closed.
    pub fn confirm(&self, state: &mut RemoteState, missing: &[u64]) -> Result<(), PollError> {
        let Some(forge) = &self.forge else { return Ok(()) };
        for number in missing {
            match forge.pull(*number).map_err(PollError::forge)? {
                Some(pull) if pull.open && pull.base_branch == self.base_branch => self.admit(state, pull),
                _ => {}
            }
        }
        Ok(())
    }

    /// An open pull request into the base branch: to check (first, with `priority-ci`), or skipped (`noci`, a draft).
    fn admit(&self, state: &mut RemoteState, pull: forge::Pull) {
        if pull.has_label(SKIP_LABEL) {
            state.skipped.insert(pull.number, (pull.head, "label noci"));
        } else if pull.draft && !self.drafts {
            state.skipped.insert(pull.number, (pull.head, "draft"));
        } else {
            if pull.has_label(PRIORITY_LABEL) {
                state.priority.insert(pull.number);
            }
            state.pulls.insert(pull.number, pull.head);
        }
    }
}
