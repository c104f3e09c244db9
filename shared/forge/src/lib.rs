//! The forge a repository's pull requests live on, behind one trait: listing open pull requests with what the poller
//! needs (head, base branch, labels, draft), and publishing a verdict (a commit status, one comment edited in place).
//!
//! Two implementations: [`github::Github`] (the REST API through octocrab, with conditional requests, rate-limit
//! back-off and GitHub App authentication) and [`git::GitForge`] (plain `refs/pull/<N>/head` refs, nothing published).
//! Only the poller and the publisher use this crate; only they ever read the forge's credentials. Webhook deliveries
//! are checked and read by [`webhook`].

pub mod git;
pub mod github;
pub mod webhook;

use std::sync::Arc;

/// One open (or closed) pull request as the forge describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    pub number: u64,
    /// Full SHA of its head.
    pub head: String,
    /// The branch it merges into.
    pub base_branch: String,
    pub labels: Vec<String>,
    pub draft: bool,
    pub open: bool,
}

impl Pull {
    pub fn has_label(&self, label: &str) -> bool {
        self.labels.iter().any(|l| l.eq_ignore_ascii_case(label))
    }
}

/// The state of a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Success,
    Failure,
    /// The CI failed, not the pull request.
    Error,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Success => "success",
            State::Failure => "failure",
            State::Error => "error",
        }
    }
}

/// A commit status prci sets on a head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub state: State,
    /// One line; GitHub keeps 140 characters.
    pub description: String,
    pub target_url: Option<String>,
}

/// What a user may do in the repository (GitHub's collaborator permission).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Permission {
    pub fn parse(text: &str) -> Permission {
        match text {
            "admin" => Permission::Admin,
            "maintain" => Permission::Maintain,
            "write" | "push" => Permission::Write,
            "triage" => Permission::Triage,
            "read" | "pull" => Permission::Read,
            _ => Permission::None,
        }
    }
    /// May push to the repository: may ask for a re-run.
    pub fn can_write(self) -> bool {
        self >= Permission::Write
    }
}

/// The API budget the forge last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u64,
    pub remaining: u64,
    /// Unix seconds when it is refilled.
    pub reset: u64,
}

/// Why a forge call failed. Rate limits are not errors: the client waits them out.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// The forge answered with an error status (a 5xx is transient, a 4xx is not).
    #[error("{method} {path}: HTTP {status}: {message}")]
    Http { method: String, path: String, status: u16, message: String },
    /// No answer (connection refused, timed out, reset). Transient.
    #[error("{method} {path}: {reason}")]
    Transport { method: String, path: String, reason: String },
    /// An answer that is not what the API describes.
    #[error("{method} {path}: unexpected answer: {reason}")]
    Decode { method: String, path: String, reason: String },
    /// The forge cannot be used as configured (unreadable key, bad URL); names the key.
    #[error("{key}: {reason}")]
    Config { key: String, reason: String },
}

impl ForgeError {
    /// Whether trying again later can succeed without an operator.
    pub fn is_transient(&self) -> bool {
        match self {
            ForgeError::Http { status, .. } => *status >= 500 || *status == 408,
            ForgeError::Transport { .. } => true,
            ForgeError::Decode { .. } | ForgeError::Config { .. } => false,
        }
    }
}

/// A forge: where pull requests come from and where verdicts go.
pub trait Forge: Send + Sync + std::fmt::Debug {
    /// `github` or `git`.
    fn kind(&self) -> &'static str;
    /// Every open pull request into `base_branch`.
    fn open_pulls(&self, base_branch: &str) -> Result<Vec<Pull>, ForgeError>;
    /// One pull request, open or closed; `None` when there is no such pull request.
    fn pull(&self, number: u64) -> Result<Option<Pull>, ForgeError>;
    /// prci's status on `sha` as the forge has it now (`None`: none, or a forge without statuses).
    fn status(&self, sha: &str) -> Result<Option<Status>, ForgeError>;
    /// Set prci's status on `sha`; `Ok(false)` when nothing was sent (the same status is already there, or the
    /// forge publishes nothing).
    fn set_status(&self, sha: &str, status: &Status) -> Result<bool, ForgeError>;
    /// Replace prci's pending status on `sha` by `status` (another pending one: a new stage, a new queue position);
    /// `Ok(false)` when nothing was sent: the status there is not pending (a final status is never overwritten, and a
    /// head without one gets none from here) or already says that.
    fn refresh_pending(&self, sha: &str, status: &Status) -> Result<bool, ForgeError> {
        match self.status(sha)? {
            Some(current) if current.state == State::Pending && current != *status => self.set_status(sha, status),
            _ => Ok(false),
        }
    }
    /// Create prci's one comment on pull request `number`, or edit it in place when it exists; `Ok(false)` when nothing
    /// was sent (the comment already says exactly that, or the forge publishes nothing).
    fn upsert_comment(&self, number: u64, body: &str) -> Result<bool, ForgeError>;
    /// What `user` may do in the repository.
    fn permission(&self, user: &str) -> Result<Permission, ForgeError>;
    /// Acknowledge a comment (a `/prci recheck`) with a reaction.
    fn acknowledge(&self, comment_id: u64) -> Result<(), ForgeError>;
    /// The API budget as last reported, when the forge has one.
    fn budget(&self) -> Option<Budget>;
}

/// The forge `source.kind` names: GitHub with the `[github]` settings, or the git remote `repository.url`.
pub fn from_settings(settings: &pipeline::Settings) -> Result<Arc<dyn Forge>, ForgeError> {
    match settings.source.kind.as_str() {
        "github" => Ok(Arc::new(github::Github::from_settings(&settings.github)?)),
        _ => Ok(Arc::new(git::GitForge::new(settings.repository.url.clone()))),
    }
}

/// The marker that starts prci's comment on a pull request; the forge signs it (`<!-- prci:report <signature> -->`),
/// and the comment edited in place is the one whose first line is the signed marker.
pub const COMMENT_MARKER: &str = "<!-- prci:report -->";

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A forge that only keeps statuses, counting what it is sent.
    #[derive(Debug, Default)]
    struct Statuses {
        now: Mutex<Option<Status>>,
        sent: Mutex<usize>,
    }

    impl Forge for Statuses {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn open_pulls(&self, _: &str) -> Result<Vec<Pull>, ForgeError> {
            Ok(vec![])
        }
        fn pull(&self, _: u64) -> Result<Option<Pull>, ForgeError> {
            Ok(None)
        }
        fn status(&self, _: &str) -> Result<Option<Status>, ForgeError> {
            Ok(self.now.lock().unwrap().clone())
        }
        fn set_status(&self, _: &str, status: &Status) -> Result<bool, ForgeError> {
            *self.now.lock().unwrap() = Some(status.clone());
            *self.sent.lock().unwrap() += 1;
            Ok(true)
        }
        fn upsert_comment(&self, _: u64, _: &str) -> Result<bool, ForgeError> {
            Ok(false)
        }
        fn permission(&self, _: &str) -> Result<Permission, ForgeError> {
            Ok(Permission::None)
        }
        fn acknowledge(&self, _: u64) -> Result<(), ForgeError> {
            Ok(())
        }
        fn budget(&self) -> Option<Budget> {
            None
        }
    }

    fn status(state: State, description: &str) -> Status {
        Status { state, description: description.into(), target_url: None }
    }

    #[test]
    fn a_pending_status_is_refreshed_and_a_final_one_never_overwritten() {
        let forge = Statuses::default();
        let queued = status(State::Pending, "queued for the pkgcheck scan: position 2 of 3");
        assert!(!forge.refresh_pending("a", &queued).unwrap(), "a head with no status gets none from a refresh");
        *forge.now.lock().unwrap() = Some(status(State::Pending, "queued for checking"));
        assert!(forge.refresh_pending("a", &queued).unwrap());
        assert!(!forge.refresh_pending("a", &queued).unwrap(), "the same pending status is not sent twice");
        *forge.now.lock().unwrap() = Some(status(State::Success, "no new issue"));
        assert!(!forge.refresh_pending("a", &status(State::Pending, "Pkgcheck scan running")).unwrap());
        assert_eq!(forge.now.lock().unwrap().as_ref().map(|s| s.state), Some(State::Success));
        assert_eq!(*forge.sent.lock().unwrap(), 1);
    }
}
