//! The regen stage: a pull-request revision in, prepared trees (published to the trees remote) out; a superseded revision is dropped.

use crate::{trees, Job, RegenError, RepoWorkspace};
use git2::{Oid, Repository};
use shared::messages::{self, PreparedTrees, Queue, Revision};
use shared::sandbox::Sandbox;
use shared::stage::{Handled, Outgoing, Stage, StageError};
use shared::tools::Tools;
use shared::Settings;
use std::path::Path;

/// Regen with its configuration and the tools found at start-up.
#[derive(Debug)]
pub struct RegenStage {
    settings: Settings,
    tools: Tools,
    sandbox: Sandbox,
}

impl RegenStage {
    pub fn new(settings: Settings) -> Result<RegenStage, shared::tools::MissingTool> {
        let tools = Tools::locate(&settings.tools)?;
        let sandbox = Sandbox::new(settings.checker.sandbox);
        Ok(RegenStage { settings, tools, sandbox })
    }

    fn prepare(&self, rev: &Revision) -> Result<Option<PreparedTrees>, RegenError> {
        let repo = &self.settings.repository;
        let ws = RepoWorkspace::new(&self.settings.work.dir, &repo.name, &repo.url);
        let _lock = ws.lock()?;
        let mirror = crate::open_mirror(&ws, &repo.url)?;
        let (tip, current_head) = current_refs(&mirror, &repo.url, &repo.base_branch, rev.pr)?;
        if current_head != Some(rev.head.clone()) {
            tracing::info!(revision = %rev.key(), current = ?current_head, "superseded or closed; dropped");
            return Ok(None);
        }
        let head = Oid::from_str(&rev.head).map_err(|_| RegenError::Input(format!("bad head sha {:?}", rev.head)))?;
        let scratch = self.settings.work.dir.join("jobs").join(format!("regen-{}-{}", rev.pr, &rev.head[..12]));
        let job = Job { url: &repo.url, base: tip, head, masters: &repo.masters };
        let prepared = crate::prepare(&self.settings, &self.sandbox, &self.tools, &ws, &job, &scratch);
        let _ = std::fs::remove_dir_all(&scratch);
        let prepared = prepared?;
        let trees_url = self.settings.trees_url();
        let (base_tree, merge_tree) = if prepared.conflicts.is_empty() {
            (trees::publish(&prepared.base_tree, tip, &trees_url)?.to_string(), trees::publish(&prepared.merge_tree, prepared.tested, &trees_url)?.to_string())
        } else {
            (String::new(), String::new())
        };
        let masters = prepared
            .masters
            .iter()
            .filter_map(|m| Repository::open(&m.path).ok().and_then(|r| r.head().ok()?.target()).map(|oid| (m.name.clone(), oid.to_string())))
            .collect();
        Ok(Some(PreparedTrees {
            revision: rev.clone(),
            base: tip.to_string(),
            base_tree,
            merge_tree,
            tested: if prepared.conflicts.is_empty() { prepared.tested.to_string() } else { String::new() },
            changed: prepared.changed,
            conflicts: prepared.conflicts,
            masters,
            timings: prepared.timings,
            error: None,
        }))
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
        if crate::fetch(mirror, url, &specs).is_err() {
            crate::fetch(mirror, url, &specs[..1])?;
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
            Ok(None) => return Ok(Handled::default()),
            // Bad input cannot get better: report it as this revision's error.
            Err(RegenError::Input(reason) | RegenError::Timeout(reason)) => PreparedTrees {
                revision: rev.clone(),
                base: rev.base.clone(),
                base_tree: String::new(),
                merge_tree: String::new(),
                tested: String::new(),
                changed: vec![],
                conflicts: vec![],
                masters: vec![],
                timings: vec![],
                error: Some(reason),
            },
            Err(e) => return Err(StageError::Transient(e.to_string())),
        };
        Ok(Handled { publish: vec![Outgoing { queue: Queue::Prepared, body: messages::encode(&prepared), priority: rev.broker_priority() }] })
    }
}
