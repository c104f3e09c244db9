//! The regen stage: a pull-request revision in, prepared trees (published to the trees remote) out; a superseded revision is dropped.

use crate::{failed_message, trees_message, Job, Regen, RegenError};
use git2::{Oid, Repository};
use pipeline::messages::{self, PreparedTrees, Queue, Revision};
use pipeline::stage::{Handled, Outgoing, Stage, StageError};
use pipeline::Settings;
use std::path::Path;
use trees::RepoWorkspace;

/// The regen stage: [`Regen`] behind the queue.
#[derive(Debug)]
pub struct RegenStage {
    regen: Regen,
}

impl RegenStage {
    pub fn from_settings(settings: &Settings) -> Result<RegenStage, sandbox::SetupError> {
        Ok(RegenStage { regen: Regen::from_settings(settings)? })
    }

    /// Prepare and publish one revision's trees; None when the revision is superseded.
    fn prepare(&self, rev: &Revision) -> Result<Option<PreparedTrees>, RegenError> {
        let settings = &self.regen.settings;
        let repo = &settings.repository;
        // Registered before anything else: a newer head seen from now on stops this job wherever it is.
        let job = pipeline::cancel::register(&rev.repository, rev.pr, &rev.head);
        let ws = RepoWorkspace::new(&settings.work.dir, &repo.name, &repo.url);
        let _lock = ws.lock()?;
        if job.cancelled() {
            tracing::info!(revision = %rev.key(), "superseded while waiting; dropped");
            return Ok(None);
        }
        let mirror = trees::open_mirror(&ws, &repo.url)?;
        let (tip, current_head) = current_refs(&mirror, &repo.url, &repo.base_branch, rev.pr)?;
        if current_head != Some(rev.head.clone()) {
            tracing::info!(revision = %rev.key(), current = ?current_head, "superseded or closed; dropped");
            return Ok(None);
        }
        let head = Oid::from_str(&rev.head).map_err(|_| RegenError::Input(format!("bad head sha {:?}", rev.head)))?;
        let scratch = settings.work.dir.join("jobs").join(format!("regen-{}-{}", rev.pr, &rev.head[..12]));
        let cancel = Some(job.flag.clone());
        let prepared = self.regen.prepare(&ws, &Job { url: &repo.url, base: tip, head, masters: &repo.masters, cancel }, &scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        // The job is over: its warm tool servers go now, with anything its ebuilds left running in them.
        sandbox::warm::retire_stale();
        let prepared = prepared?;
        let trees_url = settings.trees_url();
        let published = if prepared.conflicts.is_empty() {
            let base = trees::remote::publish(&prepared.base_tree, tip, &trees_url)?;
            Some((base, trees::remote::publish(&prepared.merge_tree, prepared.tested, &trees_url)?))
        } else {
            None
        };
        Ok(Some(trees_message(rev, &prepared, published)))
    }
}

/// The base branch's tip and the pull request's current head (None when the pull request is gone).
fn current_refs(mirror: &Repository, url: &str, base_branch: &str, pr: u64) -> Result<(Oid, Option<String>), RegenError> {
    let local = Path::new(url.strip_prefix("file://").unwrap_or(url));
    let (repo, base_ref, pull_ref) = if local.exists() {
        (Repository::open(local)?, format!("refs/heads/{base_branch}"), format!("refs/pull/{pr}/head"))
    } else {
        let specs = [format!("+refs/heads/{base_branch}:refs/prci/base"), format!("+refs/pull/{pr}/head:refs/prci/pull/{pr}")];
        let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
        // A closed pull request has no ref any more: fetch the base alone then.
        if trees::fetch(mirror, url, &specs).is_err() {
            trees::fetch(mirror, url, &specs[..1])?;
            let _ = mirror.find_reference(&format!("refs/prci/pull/{pr}")).map(|mut r| r.delete());
        }
        (Repository::open(mirror.path())?, "refs/prci/base".to_string(), format!("refs/prci/pull/{pr}"))
    };
    let tip = repo.refname_to_id(&base_ref).map_err(|_| RegenError::Input(format!("{url} has no branch {base_branch}")))?;
    let head = repo.refname_to_id(&pull_ref).ok().map(|o| o.to_string());
    Ok((tip, head))
}

impl Stage for RegenStage {
    fn name(&self) -> &'static str {
        "regen"
    }
    fn input(&self) -> Queue {
        Queue::Revisions
    }
    fn handle(&self, body: &[u8]) -> Result<Handled, StageError> {
        let rev: Revision = messages::decode(body).map_err(|e| StageError::Permanent(e.to_string()))?;
        let prepared = match self.prepare(&rev) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(Handled::stale()),
            Err(RegenError::Cancelled) => {
                tracing::info!(revision = %rev.key(), "superseded while being prepared: stopped, dropped");
                return Ok(Handled::stale());
            }
            // The revision's own fault cannot get better: report it as this revision's error.
            Err(e) if e.is_revision_fault() => failed_message(&rev, e.to_string()),
            Err(e) => return Err(StageError::Transient(e.to_string())),
        };
        pipeline::metrics::observe_steps(&prepared.timings);
        Ok(Handled {
            publish: vec![Outgoing { queue: Queue::Prepared, body: messages::encode(&prepared), priority: rev.broker_priority() }],
            dropped_stale: false,
        })
    }
}
