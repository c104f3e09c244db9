//! Deciding which revisions to emit: a pure function of the persisted state and what the remote advertises.

use crate::{PollerState, RemoteState, Revision};
use std::collections::BTreeSet;

/// One [`Revision`] per open pull request whose head differs from the head last emitted for it (new pull requests included);
/// with `recheck_on_base_move`, also per pull request whose head is unchanged but whose base tip moved since it was emitted;
/// and per pull request in `forced` (a re-run asked for) whatever was emitted before. `priority-ci` pull requests first,
/// then by pull-request number. Pull requests in the state but not on the remote are ignored (the caller drops them with
/// [`PollerState::retain_open`]).
pub fn plan(
    state: &PollerState,
    remote: &RemoteState,
    recheck_on_base_move: bool,
    forced: &BTreeSet<u64>,
    repository: &str,
    now: f64,
) -> Vec<Revision> {
    let mut planned: Vec<Revision> = remote
        .pulls
        .iter()
        .filter(|(pr, head)| match state.pulls.get(pr) {
            _ if forced.contains(pr) => true,
            None => true,
            Some(last) => last.head != **head || (recheck_on_base_move && last.base != remote.base),
        })
        .map(|(pr, head)| Revision {
            repository: repository.to_string(),
            pr: *pr,
            head: head.clone(),
            base_branch: remote.base_branch.clone(),
            base: remote.base.clone(),
            priority: remote.priority.contains(pr),
            emitted_at: now,
        })
        .collect();
    planned.sort_by_key(|r| (!r.priority, r.pr));
    planned
}
