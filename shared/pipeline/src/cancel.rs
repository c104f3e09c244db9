//! Stale work cancelled, not only dropped: each job a regen or checker instance is doing registers its pull request and head here; a `Cancel` (a newer head seen by the poller, carried to every host on a fanout exchange) raises the flag of every job of that pull request with another head, and the sandbox kills its tool runs at once.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// "Pull request `pr` of `repository` is now at `head`: whatever is being done for another head of it is stale."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    pub repository: String,
    pub pr: u64,
    pub head: String,
}

/// Raised when the job's revision is superseded; the sandbox polls it while a tool runs.
pub type CancelFlag = Arc<AtomicBool>;

struct Job {
    id: u64,
    repository: String,
    pr: u64,
    head: String,
    flag: CancelFlag,
}

fn jobs() -> &'static Mutex<Vec<Job>> {
    static JOBS: OnceLock<Mutex<Vec<Job>>> = OnceLock::new();
    JOBS.get_or_init(|| Mutex::new(Vec::new()))
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A job in progress in this process; unregistered when dropped.
#[derive(Debug)]
pub struct Registration {
    id: u64,
    pub flag: CancelFlag,
}

impl Registration {
    /// Whether a newer head was seen since the job registered.
    pub fn cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        jobs().lock().unwrap_or_else(|p| p.into_inner()).retain(|j| j.id != self.id);
    }
}

/// Register the job about `head` of pull request `pr`: its flag is raised by a [`Cancel`] naming another head.
pub fn register(repository: &str, pr: u64, head: &str) -> Registration {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let flag = CancelFlag::default();
    let job = Job { id, repository: repository.to_owned(), pr, head: head.to_owned(), flag: flag.clone() };
    jobs().lock().unwrap_or_else(|p| p.into_inner()).push(job);
    Registration { id, flag }
}

/// Raise the flag of every job of this process that `cancel` makes stale; how many there were.
pub fn apply(cancel: &Cancel) -> usize {
    let jobs = jobs().lock().unwrap_or_else(|p| p.into_inner());
    let stale: Vec<&Job> =
        jobs.iter().filter(|j| j.repository == cancel.repository && j.pr == cancel.pr && j.head != cancel.head).collect();
    for job in &stale {
        if !job.flag.swap(true, Ordering::SeqCst) {
            tracing::info!(pr = job.pr, head = %job.head, newer = %cancel.head, "cancelling the work on a superseded head");
        }
    }
    stale.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_head_raises_the_flags_of_the_other_heads_of_that_pull_request_only() {
        let old = register("cancel-test", 7, "aaa");
        let current = register("cancel-test", 7, "bbb");
        let other_pr = register("cancel-test", 8, "aaa");
        let other_repo = register("cancel-test-2", 7, "aaa");
        let cancel = Cancel { repository: "cancel-test".into(), pr: 7, head: "bbb".into() };
        assert_eq!(apply(&cancel), 1);
        assert!(old.flag.load(Ordering::SeqCst));
        for r in [&current, &other_pr, &other_repo] {
            assert!(!r.flag.load(Ordering::SeqCst));
        }
        drop(old);
        assert_eq!(apply(&cancel), 0, "a finished job is no longer registered");
    }
}
