//! The poller's logic: list a git remote's pull-request heads, decide which revisions to emit, and emit them at least once with a persisted record of what was emitted.
//!
//! One poll ([`poll_once`]) is:
//!
//! 1. [`Source::list`]: the tip of `refs/heads/<base_branch>` of the remote (refs only, no objects are fetched) and the
//!    open pull requests: every `refs/pull/<N>/head` (`git`), or the forge's list with labels and drafts (`github`);
//! 2. pull requests closed, or no longer to be checked (`noci`, a draft), are dropped from the [`PollerState`];
//! 3. [`plan`]: one [`Revision`] per pull request whose head differs from the one last emitted (and, with
//!    `recheck_on_base_move`, per pull request whose base tip moved since; and per re-run asked for), `priority-ci`
//!    first, then in PR order;
//! 4. each revision is handed to `emit` (the broker loop publishes it and waits for the broker's confirm); only once
//!    `emit` returned `Ok` is the revision recorded in the state, and the state is saved after every successful emit.
//!
//! A crash between a confirmed emit and the save re-emits that revision on restart (at-least-once; every downstream
//! stage is idempotent for the same revision, invariant 3); a revision is never recorded before it was confirmed, so
//! nothing in flight is lost; a restart does not re-emit revisions already recorded. A newer head is simply a new
//! revision: the stages drop work for the superseded one (invariant 7).
//!
//! The code is synchronous and knows nothing about the broker (invariant 1).

mod plan;
pub mod run;
mod source;
mod state;
pub mod webhook;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use pipeline::messages::Revision;
pub use plan::plan;
pub use source::{RemoteState, Source, PRIORITY_LABEL, SKIP_LABEL};
pub use state::{Emitted, PollerState};

/// Why a poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    /// The remote could not be listed (unreachable, refused, not a repository). Transient: retry at the next poll.
    #[error("cannot list {url}: {source}")]
    Git {
        url: String,
        #[source]
        source: forge::ForgeError,
    },
    /// The remote was listed but has no base branch. Permanent until the configuration or the remote is fixed.
    #[error("remote {url} has no branch {branch:?} (refs/heads/{branch}); check repository.base_branch")]
    MissingBase { url: String, branch: String },
    /// The state file cannot be read, parsed or written. Permanent: it is never silently reset.
    #[error("poller state {}: {what}: {source}", path.display())]
    State {
        path: PathBuf,
        /// What prci was doing, and what an operator can do about it.
        what: String,
        #[source]
        source: StateCause,
    },
    /// `emit` failed (broker unreachable, no confirm). Transient: what was emitted before is saved; the rest is emitted at the next poll.
    #[error("emit failed: {0}")]
    Emit(String),
    /// The poller cannot start as configured (an unusable forge key, an address that cannot be bound).
    #[error("bad configuration: {key}: {reason}")]
    Config { key: String, reason: String },
    /// The forge failed (unreachable, 5xx: transient; refused credentials, a bad answer: not).
    #[error("forge: {0}")]
    Forge(#[source] forge::ForgeError),
}

/// Why the poller's state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateCause {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("schema {found} is not the supported schema {supported}")]
    Schema { found: u32, supported: u32 },
}

impl PollError {
    /// Whether retrying later (the next poll) can succeed without an operator.
    pub fn is_transient(&self) -> bool {
        match self {
            PollError::Git { .. } | PollError::Emit(_) => true,
            PollError::Forge(e) => e.is_transient(),
            PollError::MissingBase { .. } | PollError::State { .. } | PollError::Config { .. } => false,
        }
    }

    pub(crate) fn forge(e: forge::ForgeError) -> PollError {
        if let forge::ForgeError::Config { key, reason } = e {
            return PollError::Config { key, reason };
        }
        PollError::Forge(e)
    }
}

/// What one poll did.
#[derive(Debug, Default)]
pub struct Polled {
    /// Revisions emitted (and recorded), in emission order.
    pub emitted: Vec<Revision>,
    /// Pull requests dropped from the state: closed, or no longer to be checked.
    pub dropped: Vec<u64>,
    /// Open pull requests not checked: number → (head, why).
    pub skipped: BTreeMap<u64, (String, &'static str)>,
    /// Set when an emit failed: the revisions after it wait for the next poll (what is above still holds).
    pub error: Option<PollError>,
}

pub use pipeline::events::now;

/// One poll: list the remote, plan, emit each revision and record it once `emit` returned `Ok`.
///
/// Returns the revisions emitted (and recorded). On an `emit` failure it stops at once: the revisions emitted before it are
/// already saved, the failing one and those after it are not recorded (so the next poll emits them), and the error is returned
/// as [`PollError::Emit`].
pub fn poll_once<E: std::fmt::Display>(
    source: &Source,
    state_path: &Path,
    recheck_on_base_move: bool,
    repository: &str,
    emit: impl FnMut(&Revision) -> Result<(), E>,
) -> Result<Vec<Revision>, PollError> {
    let polled = poll(source, state_path, recheck_on_base_move, &BTreeSet::new(), repository, emit)?;
    match polled.error {
        Some(e) => Err(e),
        None => Ok(polled.emitted),
    }
}

/// [`poll_once`], also emitting the current head of each open pull request in `forced` (a re-run asked for), and saying
/// which pull requests were dropped or skipped.
pub fn poll<E: std::fmt::Display>(
    source: &Source,
    state_path: &Path,
    recheck_on_base_move: bool,
    forced: &BTreeSet<u64>,
    repository: &str,
    mut emit: impl FnMut(&Revision) -> Result<(), E>,
) -> Result<Polled, PollError> {
    let mut state = PollerState::load(state_path)?;
    let mut remote = source.list()?;
    // A pull request missing from the list may only have moved between two of its pages while it was read: asked for.
    let missing: Vec<u64> =
        state.pulls.keys().filter(|pr| !remote.pulls.contains_key(pr) && !remote.skipped.contains_key(pr)).copied().collect();
    source.confirm(&mut remote, &missing)?;
    let dropped = state.retain_open(&remote);
    if !dropped.is_empty() {
        tracing::info!(repository, ?dropped, "pull requests closed or no longer checked; dropped from the poller state");
        state.save(state_path)?;
    }
    let planned = plan(&state, &remote, recheck_on_base_move, forced, repository, now());
    let mut polled = Polled { emitted: Vec::with_capacity(planned.len()), dropped, skipped: remote.skipped, error: None };
    for revision in planned {
        if let Err(e) = emit(&revision) {
            let reason = e.to_string();
            tracing::warn!(revision = %revision.key(), error = %reason, emitted = polled.emitted.len(), "emit failed; the rest waits for the next poll");
            polled.error = Some(PollError::Emit(format!("{}: {reason}", revision.key())));
            return Ok(polled);
        }
        state.record(&revision);
        state.save(state_path)?;
        tracing::info!(revision = %revision.key(), base = %revision.base, priority = revision.priority, "revision emitted");
        polled.emitted.push(revision);
    }
    Ok(polled)
}
