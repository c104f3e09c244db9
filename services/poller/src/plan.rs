//! Deciding which revisions to emit: a pure function of the persisted state and what the remote advertises.

use crate::{PollerState, RemoteState, Revision};

/// One [`Revision`] per open pull request whose head differs from the head last emitted for it (new pull requests included);
/// with `recheck_on_base_move`, also per pull request whose head is unchanged but whose base tip moved since it was emitted.
/// Pull requests in the state but not on the remote are ignored (the caller drops them with [`PollerState::retain_open`]).
/// Ordered by pull-request number.
pub fn plan(state: &PollerState, remote: &RemoteState, recheck_on_base_move: bool, repository: &str, now: f64) -> Vec<Revision> {
    remote
        .pulls
        .iter()
        .filter(|(pr, head)| match state.pulls.get(pr) {
            None => true,
            Some(last) => last.head != **head || (recheck_on_base_move && last.base != remote.base),
        })
        .map(|(pr, head)| Revision {
            repository: repository.to_string(),
            pr: *pr,
            head: head.clone(),
            base_branch: remote.base_branch.clone(),
            base: remote.base.clone(),
            priority: false,
            emitted_at: now,
        })
        .collect()
}
