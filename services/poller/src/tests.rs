//! Tests of the poller against real git remotes: bare repositories made with git2 in temporary directories.

#![allow(clippy::unwrap_used)]

use crate::{plan, poll_once, PollError, PollerState, Revision, Source};
use forge::git::pull_number;
use git2::{Oid, Repository, Signature, Time};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A bare remote with `refs/heads/master`, `refs/pull/1/head` and `refs/pull/2/head`.
struct Remote {
    dir: TempDir,
    repo: Repository,
    counter: Cell<u32>,
}

impl Remote {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path().join("remote.git")).unwrap();
        let r = Remote { dir, repo, counter: Cell::new(0) };
        let base = r.commit(None);
        r.set("refs/heads/master", base);
        let one = r.commit(Some(base));
        r.set("refs/pull/1/head", one);
        let two = r.commit(Some(base));
        r.set("refs/pull/2/head", two);
        r
    }

    fn url(&self) -> String {
        self.repo.path().to_str().unwrap().to_string()
    }

    fn source(&self) -> Source {
        Source::new(self.url(), "master")
    }

    fn state_path(&self) -> PathBuf {
        self.dir.path().join("state/poller.json")
    }

    /// A new commit with a unique file, on top of `parent`.
    fn commit(&self, parent: Option<Oid>) -> Oid {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let blob = self.repo.blob(format!("content {n}\n").as_bytes()).unwrap();
        let mut tb = self.repo.treebuilder(None).unwrap();
        tb.insert(format!("file{n}"), blob, 0o100644).unwrap();
        let tree = self.repo.find_tree(tb.write().unwrap()).unwrap();
        let sig = Signature::new("Test", "test@example.org", &Time::new(1_700_000_000 + i64::from(n), 0)).unwrap();
        let parents: Vec<_> = parent.map(|p| self.repo.find_commit(p).unwrap()).into_iter().collect();
        let parents: Vec<_> = parents.iter().collect();
        self.repo.commit(None, &sig, &sig, &format!("commit {n}"), &tree, &parents).unwrap()
    }

    fn set(&self, name: &str, oid: Oid) {
        self.repo.reference(name, oid, true, "test").unwrap();
    }

    fn get(&self, name: &str) -> String {
        self.repo.refname_to_id(name).unwrap().to_string()
    }

    fn delete(&self, name: &str) {
        self.repo.find_reference(name).unwrap().delete().unwrap();
    }

    fn poll(&self, recheck: bool) -> Vec<Revision> {
        poll_once(&self.source(), &self.state_path(), recheck, "gentoo", |_| Ok::<(), String>(())).unwrap()
    }
}

fn prs(revisions: &[Revision]) -> Vec<u64> {
    revisions.iter().map(|r| r.pr).collect()
}

#[test]
fn list_returns_base_and_pull_heads() {
    let r = Remote::new();
    // Refs that are not pull-request heads are ignored.
    let tip = r.repo.refname_to_id("refs/heads/master").unwrap();
    r.set("refs/heads/other", tip);
    r.set("refs/pull/1/merge", tip);
    r.set("refs/pull/x/head", tip);
    r.set("refs/pull/07/head", tip);
    r.set("refs/tags/v1", tip);
    let state = r.source().list().unwrap();
    assert_eq!(state.base_branch, "master");
    assert_eq!(state.base, r.get("refs/heads/master"));
    assert_eq!(state.pulls.len(), 2, "{:?}", state.pulls);
    assert_eq!(state.pulls[&1], r.get("refs/pull/1/head"));
    assert_eq!(state.pulls[&2], r.get("refs/pull/2/head"));
}

#[test]
fn pull_numbers() {
    assert_eq!(pull_number("refs/pull/12/head"), Some(12));
    for bad in [
        "refs/pull/x/head",
        "refs/pull//head",
        "refs/pull/01/head",
        "refs/pull/0/head",
        "refs/pull/1/merge",
        "refs/pull/1/head^{}",
        "refs/pull/-1/head",
        "refs/pull/1/2/head",
        "refs/pull/99999999999999999999999/head",
    ] {
        assert_eq!(pull_number(bad), None, "{bad}");
    }
}

#[test]
fn missing_base_branch_is_an_error_naming_it() {
    let r = Remote::new();
    let e = Source::new(r.url(), "main").list().unwrap_err();
    assert!(matches!(&e, PollError::MissingBase { branch, .. } if branch == "main"), "{e:?}");
    assert!(e.to_string().contains("main"), "{e}");
    assert!(!e.is_transient());
}

#[test]
fn unreachable_remote_is_a_transient_git_error() {
    let dir = tempfile::tempdir().unwrap();
    let e = Source::new(dir.path().join("nope").to_str().unwrap(), "master").list().unwrap_err();
    assert!(matches!(e, PollError::Git { .. }), "{e:?}");
    assert!(e.is_transient());
    let cause = std::error::Error::source(&e).map(|c| c.to_string());
    assert!(cause.is_some_and(|c| !c.is_empty()), "the transport's error is kept as the cause: {e:?}");
}

#[test]
fn first_poll_emits_both_then_nothing() {
    let r = Remote::new();
    let first = r.poll(false);
    assert_eq!(prs(&first), [1, 2]);
    let base = r.get("refs/heads/master");
    for rev in &first {
        assert_eq!(rev.repository, "gentoo");
        assert_eq!(rev.base_branch, "master");
        assert_eq!(rev.base, base);
        assert_eq!(rev.head, r.get(&format!("refs/pull/{}/head", rev.pr)));
        assert!(!rev.priority);
        assert!(rev.emitted_at > 0.0);
    }
    assert!(r.poll(false).is_empty());
    // A restart (a fresh load of the state) does not re-emit either.
    assert!(r.poll(true).is_empty());
    let state = PollerState::load(&r.state_path()).unwrap();
    assert_eq!(state.pulls[&1].head, r.get("refs/pull/1/head"));
    assert_eq!(state.pulls[&1].base, base);
}

#[test]
fn new_head_emits_only_that_pull_request() {
    let r = Remote::new();
    r.poll(false);
    let old = r.repo.refname_to_id("refs/pull/1/head").unwrap();
    let pushed = r.commit(Some(old));
    r.set("refs/pull/1/head", pushed);
    let second = r.poll(false);
    assert_eq!(prs(&second), [1]);
    assert_eq!(second[0].head, pushed.to_string());
    assert!(r.poll(false).is_empty());
}

#[test]
fn base_move_emits_only_with_recheck() {
    let r = Remote::new();
    r.poll(false);
    let tip = r.repo.refname_to_id("refs/heads/master").unwrap();
    let moved = r.commit(Some(tip));
    r.set("refs/heads/master", moved);
    assert!(r.poll(false).is_empty());
    let rechecked = r.poll(true);
    assert_eq!(prs(&rechecked), [1, 2]);
    assert!(rechecked.iter().all(|rev| rev.base == moved.to_string()));
    assert!(r.poll(true).is_empty());
}

#[test]
fn plan_is_pure_and_ordered() {
    let r = Remote::new();
    for n in [10u32, 3, 25] {
        let tip = r.repo.refname_to_id("refs/heads/master").unwrap();
        let c = r.commit(Some(tip));
        r.set(&format!("refs/pull/{n}/head"), c);
    }
    let remote = r.source().list().unwrap();
    let planned = plan(&PollerState::new(), &remote, false, &Default::default(), "gentoo", 42.0);
    assert_eq!(prs(&planned), [1, 2, 3, 10, 25]);
    assert!(planned.iter().all(|rev| rev.emitted_at == 42.0));
}

#[test]
fn closed_pull_request_is_dropped_from_the_state() {
    let r = Remote::new();
    r.poll(false);
    r.delete("refs/pull/2/head");
    assert!(r.poll(false).is_empty());
    let state = PollerState::load(&r.state_path()).unwrap();
    assert_eq!(state.pulls.keys().copied().collect::<Vec<_>>(), [1]);
}

#[test]
fn emit_failure_keeps_what_succeeded_and_retries_the_rest() {
    let r = Remote::new();
    let mut seen = vec![];
    let e = poll_once(&r.source(), &r.state_path(), false, "gentoo", |rev: &Revision| {
        seen.push(rev.pr);
        if rev.pr == 2 {
            Err("no confirm from the broker")
        } else {
            Ok(())
        }
    })
    .unwrap_err();
    assert_eq!(seen, [1, 2]);
    assert!(matches!(&e, PollError::Emit(m) if m.contains("no confirm")), "{e:?}");
    assert!(e.is_transient());
    let state = PollerState::load(&r.state_path()).unwrap();
    assert_eq!(state.pulls.keys().copied().collect::<Vec<_>>(), [1]);
    assert_eq!(prs(&r.poll(false)), [2]);
    assert!(r.poll(false).is_empty());
}

#[test]
fn emit_failure_on_the_first_stops_at_once() {
    let r = Remote::new();
    let mut calls = 0;
    let e = poll_once(&r.source(), &r.state_path(), false, "gentoo", |_: &Revision| {
        calls += 1;
        Err("down")
    });
    assert!(matches!(e, Err(PollError::Emit(_))));
    assert_eq!(calls, 1);
    assert!(PollerState::load(&r.state_path()).unwrap().pulls.is_empty());
    assert_eq!(prs(&r.poll(false)), [1, 2]);
}

#[test]
fn corrupt_state_file_is_an_error_naming_it() {
    let r = Remote::new();
    let path = r.state_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    for corrupt in ["{\"schema\": 1, \"pulls\": {\"1\": {\"head\": ", "", "{\"schema\": 2, \"pulls\": {}}", "[]"] {
        std::fs::write(&path, corrupt).unwrap();
        let e = poll_once(&r.source(), &path, false, "gentoo", |_| Ok::<(), String>(())).unwrap_err();
        assert!(matches!(&e, PollError::State { path: p, .. } if p == &path), "{e:?}");
        assert!(std::error::Error::source(&e).is_some(), "the cause is kept: {e:?}");
        assert!(e.to_string().contains(path.to_str().unwrap()), "{e}");
        assert!(!e.is_transient());
        // Never silently reset.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), corrupt);
    }
}

#[test]
fn missing_state_file_is_empty_and_save_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path: &Path = &dir.path().join("a/b/state.json");
    assert_eq!(PollerState::load(path).unwrap(), PollerState::new());
    let mut s = PollerState::new();
    s.record(&Revision {
        repository: "gentoo".into(),
        pr: 7,
        head: "h".repeat(40),
        base_branch: "master".into(),
        base: "b".repeat(40),
        priority: false,
        emitted_at: 1.0,
    });
    s.save(path).unwrap();
    assert_eq!(PollerState::load(path).unwrap(), s);
    // Only the state file is left behind (the temporary file was renamed over it).
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [std::ffi::OsString::from("state.json")]);
}

/// A forge whose open pull requests are whatever the test says (statuses and comments are not this test's business).
#[derive(Debug, Default)]
struct ListedForge {
    open: Vec<forge::Pull>,
    /// What `pull(n)` answers for pull requests the list leaves out.
    extra: Vec<forge::Pull>,
}

impl forge::Forge for ListedForge {
    fn kind(&self) -> &'static str {
        "github"
    }
    fn open_pulls(&self, base: &str) -> Result<Vec<forge::Pull>, forge::ForgeError> {
        Ok(self.open.iter().filter(|p| p.base_branch == base).cloned().collect())
    }
    fn pull(&self, n: u64) -> Result<Option<forge::Pull>, forge::ForgeError> {
        Ok(self.open.iter().chain(&self.extra).find(|p| p.number == n).cloned())
    }
    fn status(&self, _: &str) -> Result<Option<forge::Status>, forge::ForgeError> {
        Ok(None)
    }
    fn set_status(&self, _: &str, _: &forge::Status) -> Result<bool, forge::ForgeError> {
        Ok(false)
    }
    fn upsert_comment(&self, _: u64, _: &str) -> Result<bool, forge::ForgeError> {
        Ok(false)
    }
    fn permission(&self, _: &str) -> Result<forge::Permission, forge::ForgeError> {
        Ok(forge::Permission::None)
    }
    fn acknowledge(&self, _: u64) -> Result<(), forge::ForgeError> {
        Ok(())
    }
    fn budget(&self) -> Option<forge::Budget> {
        None
    }
}

fn pull(number: u64, labels: &[&str], draft: bool) -> forge::Pull {
    let labels = labels.iter().map(|l| l.to_string()).collect();
    forge::Pull { number, head: format!("{number:040}"), base_branch: "master".into(), labels, draft, open: true }
}

#[test]
fn a_forge_list_honours_noci_priority_ci_drafts_and_the_base_branch() {
    let r = Remote::new();
    let mut other_base = pull(6, &[], false);
    other_base.base_branch = "stable".into();
    let listed = ListedForge {
        open: vec![pull(1, &[], false), pull(2, &["noci"], false), pull(3, &["priority-ci"], false), pull(4, &[], true), other_base],
        extra: vec![],
    };
    let forge: std::sync::Arc<dyn forge::Forge> = std::sync::Arc::new(listed);
    let remote = r.source().with_forge(forge.clone(), false).list().unwrap();
    assert_eq!(remote.pulls.keys().copied().collect::<Vec<_>>(), [1, 3], "{remote:?}");
    assert_eq!(remote.priority.iter().copied().collect::<Vec<_>>(), [3]);
    assert_eq!(remote.skipped.get(&2).map(|s| s.1), Some("label noci"));
    assert_eq!(remote.skipped.get(&4).map(|s| s.1), Some("draft"));
    let with_drafts = r.source().with_forge(forge, true).list().unwrap();
    assert!(with_drafts.pulls.contains_key(&4));
    // The base tip still comes from the git remote.
    assert_eq!(remote.base, r.get("refs/heads/master"));
    let planned = plan(&PollerState::new(), &remote, false, &Default::default(), "gentoo", 1.0);
    assert_eq!(prs(&planned), [3, 1], "priority-ci first");
}

#[test]
fn a_pull_request_missing_from_a_list_is_asked_for_before_it_is_dropped() {
    let r = Remote::new();
    let forge = ListedForge { open: vec![pull(1, &[], false)], extra: vec![pull(2, &[], false)] };
    let source = r.source().with_forge(std::sync::Arc::new(forge), false);
    let path = r.state_path();
    let first = crate::poll(&source, &path, false, &Default::default(), "gentoo", |_| Ok::<(), String>(())).unwrap();
    assert_eq!(prs(&first.emitted), [1]);
    // Pull request 2 was emitted by an earlier poll; the list (read page by page) misses it now, the forge still has it open.
    let mut state = PollerState::load(&path).unwrap();
    state.record(&Revision { pr: 2, head: format!("{:040}", 2), ..first.emitted[0].clone() });
    state.save(&path).unwrap();
    let second = crate::poll(&source, &path, false, &Default::default(), "gentoo", |_| Ok::<(), String>(())).unwrap();
    assert!(second.dropped.is_empty(), "an open pull request was dropped: {:?}", second.dropped);
    assert!(PollerState::load(&path).unwrap().pulls.contains_key(&2));
}
