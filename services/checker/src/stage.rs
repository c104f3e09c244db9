//! The checker stage: prepared trees in (fetched by SHA from the trees remote), both sides' findings out.

use crate::cache::BaseCache;
use crate::scan::{ScanError, Scanner};
use crate::ConfirmPolicy;
use git2::Oid;
use regen::{trees, RegenError, RepoWorkspace};
use shared::messages::{self, PreparedTrees, Queue, Scanned};
use shared::sandbox::Sandbox;
use shared::stage::{Handled, Outgoing, Stage, StageError};
use shared::tools::Tools;
use shared::Settings;
use std::time::Instant;

/// The checker with its configuration and the tools found at start-up.
#[derive(Debug)]
pub struct CheckerStage {
    settings: Settings,
    tools: Tools,
    sandbox: Sandbox,
}

impl CheckerStage {
    pub fn new(settings: Settings) -> Result<CheckerStage, shared::tools::MissingTool> {
        let tools = Tools::locate(&settings.tools)?;
        let sandbox = Sandbox::new(settings.checker.sandbox);
        Ok(CheckerStage { settings, tools, sandbox })
    }

    /// Scan both sides; None when the revision is superseded.
    fn scan(&self, p: &PreparedTrees) -> Result<Option<Scanned>, StageError> {
        let mut out = Scanned {
            prepared: p.clone(),
            full: false,
            targets: vec![],
            base: vec![],
            merge: vec![],
            unstable: vec![],
            tools: vec![("pkgcheck".into(), self.tools.pkgcheck_version.clone()), ("pkgcore".into(), self.tools.pkgcore_version.clone())],
            timings: vec![],
            error: None,
        };
        if p.error.is_some() || !p.conflicts.is_empty() {
            return Ok(Some(out));
        }
        let transient = |e: RegenError| StageError::Transient(e.to_string());
        let repo = &self.settings.repository;
        // Stale work is dropped: no scan for a revision whose pull request has moved on.
        match regen::current_pull_head(&repo.url, p.revision.pr) {
            Ok(Some(head)) if head != p.revision.head => return Ok(None),
            Ok(None) => return Ok(None),
            Ok(Some(_)) => {}
            Err(e) => tracing::warn!(error = %e, "cannot ask the remote for the current head; scanning anyway"),
        }
        let ws = RepoWorkspace::new(&self.settings.work.dir, &repo.name, &repo.url);
        let _lock = ws.lock().map_err(transient)?;
        let t = Instant::now();
        let mirror = regen::open_mirror(&ws, &repo.url).map_err(transient)?;
        let oid = |s: &str| Oid::from_str(s).map_err(|_| StageError::Permanent(format!("bad tree sha {s:?}")));
        let (base_tree, merge_tree) = (oid(&p.base_tree)?, oid(&p.merge_tree)?);
        trees::fetch(&mirror, &self.settings.trees_url(), &[base_tree, merge_tree]).map_err(transient)?;
        let (base_dir, merge_dir) = (ws.root.join("checker").join("base"), ws.root.join("checker").join("merge"));
        regen::checkout(&mirror, &base_dir, base_tree).map_err(transient)?;
        regen::checkout(&mirror, &merge_dir, merge_tree).map_err(transient)?;
        let masters = regen::prepare_masters(&ws, &repo.masters).map_err(transient)?;
        out.timings.push(("fetch_trees".into(), t.elapsed().as_secs_f64()));

        let scratch = self.settings.work.dir.join("jobs").join(format!("checker-{}-{}", p.revision.pr, &p.merge_tree[..12]));
        let work = &self.settings.work.dir;
        let base_env = regen::tree_env(&self.sandbox, work, &base_dir, &masters, &scratch.join("base")).map_err(transient)?;
        let merge_env = regen::tree_env(&self.sandbox, work, &merge_dir, &masters, &scratch.join("merge")).map_err(transient)?;
        let master_paths: Vec<&std::path::Path> = masters.iter().map(|m| m.path.as_path()).collect();
        let base_id = crate::base_id(&mirror, base_tree, &master_paths).map_err(|e| StageError::Transient(e.to_string()))?;
        let policy = ConfirmPolicy::from_settings(&self.settings);
        let cache = BaseCache::shared(work, &self.settings.trees_url());
        let result = crate::check(&Scanner::from_settings(&self.settings, &self.tools, self.sandbox, &[]), &cache, &base_id, &p.changed, &base_env, &merge_env, &policy);
        let _ = std::fs::remove_dir_all(&scratch);
        match result {
            Ok(outcome) => {
                out.full = outcome.plan.full;
                out.targets = outcome.plan.targets();
                out.base = outcome.base;
                out.merge = outcome.merge;
                out.unstable = outcome.unstable.into_iter().collect();
                out.timings.extend(outcome.timings);
                Ok(Some(out))
            }
            Err(ScanError::Unloadable(reason)) => {
                out.error = Some(format!("pkgcheck cannot load the repository: {reason}"));
                Ok(Some(out))
            }
            Err(e) => Err(StageError::Transient(e.to_string())),
        }
    }
}

impl Stage for CheckerStage {
    fn name(&self) -> &'static str {
        "checker"
    }
    fn input(&self) -> Queue {
        Queue::Prepared
    }
    fn handle(&self, body: &[u8]) -> Result<Handled, StageError> {
        let prepared: PreparedTrees = messages::decode(body).map_err(|e| StageError::Permanent(e.to_string()))?;
        let Some(scanned) = self.scan(&prepared)? else {
            tracing::info!(revision = %prepared.revision.key(), "superseded or closed; dropped");
            return Ok(Handled::default());
        };
        Ok(Handled { publish: vec![Outgoing { queue: Queue::Scanned, body: messages::encode(&scanned), priority: prepared.revision.broker_priority() }] })
    }
}
