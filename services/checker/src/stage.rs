//! The checker stage: prepared trees in (fetched by SHA from the trees remote and checked out), both sides' findings out.

use crate::step::{Checker, Checkouts};
use git2::Oid;
use pipeline::messages::{self, PreparedTrees, Queue, Scanned};
use pipeline::stage::{Handled, Outgoing, Stage, StageError};
use pipeline::Settings;
use std::time::Instant;
use trees::{CheckoutMode, RepoWorkspace, Side};

/// The checker stage: [`Checker`] behind the queue.
#[derive(Debug)]
pub struct CheckerStage {
    checker: Checker,
}

impl CheckerStage {
    pub fn from_settings(settings: &Settings) -> Result<CheckerStage, sandbox::SetupError> {
        let checker = Checker::from_settings(settings)?;
        let tools = &checker.tools;
        let versions = [("pkgcheck".to_string(), tools.pkgcheck_version.clone()), ("pkgcore".to_string(), tools.pkgcore_version.clone())];
        pipeline::metrics::get().set_tools(&versions);
        Ok(CheckerStage { checker })
    }

    /// Fetch and check out both prepared trees, then scan them; None when the revision is superseded.
    fn scan(&self, p: &PreparedTrees) -> Result<Option<Scanned>, StageError> {
        if p.error.is_some() || !p.conflicts.is_empty() {
            return Ok(Some(self.checker.unscanned(p)));
        }
        let settings = &self.checker.settings;
        let repo = &settings.repository;
        // Registered before anything else: a newer head seen from now on stops this job wherever it is.
        let job = pipeline::cancel::register(&p.revision.repository, p.revision.pr, &p.revision.head);
        // Stale work is dropped: no scan for a revision whose pull request has moved on.
        match trees::current_pull_head(&repo.url, p.revision.pr) {
            Ok(Some(head)) if head != p.revision.head => return Ok(None),
            Ok(None) => return Ok(None),
            Ok(Some(_)) => {}
            Err(e) => tracing::warn!(error = %e, "cannot ask the remote for the current head; scanning anyway"),
        }
        let ws = RepoWorkspace::new(&settings.work.dir, &repo.name, &repo.url);
        let _lock = ws.lock().map_err(transient)?;
        if job.cancelled() {
            tracing::info!(revision = %p.revision.key(), "superseded while waiting; dropped");
            return Ok(None);
        }
        let t = Instant::now();
        let mirror = trees::open_mirror(&ws, &repo.url).map_err(transient)?;
        let oid = |s: &str| Oid::from_str(s).map_err(|_| StageError::Permanent(format!("bad tree sha {s:?}")));
        let (base_tree, merge_tree) = (oid(&p.base_tree)?, oid(&p.merge_tree)?);
        let base = oid(&p.base)?;
        trees::remote::fetch(&mirror, &settings.trees_url(), &[base_tree, merge_tree]).map_err(transient)?;
        let (base_dir, merge_dir) = (ws.prepared_tree(Side::Base), ws.prepared_tree(Side::Merge));
        // As regen's checkouts: only what changed is written where the tools see the trees read-only.
        let mode = if self.checker.sandbox.can_bind() { CheckoutMode::ChangedOnly } else { CheckoutMode::Verify };
        trees::ensure_checkout(&mirror, &base_dir, base_tree, mode, &[]).map_err(transient)?;
        trees::ensure_checkout(&mirror, &merge_dir, merge_tree, mode, &[]).map_err(transient)?;
        let masters = regen_masters(&ws, settings).map_err(transient)?;
        let fetched = t.elapsed().as_secs_f64();

        let scratch = settings.work.dir.join("jobs").join(format!("checker-{}-{}", p.revision.pr, &p.merge_tree[..12]));
        let cancel = Some(job.flag.clone());
        let checkouts =
            Checkouts { mirror: &mirror, base, base_tree: &base_dir, merge_tree: &merge_dir, masters: &masters, scratch, cancel };
        let result = self.checker.scan(p, &checkouts, &[]);
        let _ = std::fs::remove_dir_all(&checkouts.scratch);
        // The job is over: its warm tool servers go now, with anything its ebuilds left running in them.
        sandbox::warm::retire_stale();
        let (mut scanned, _) = match result {
            Err(crate::step::CheckerError::Scan(crate::scan::ScanError::Cancelled)) => {
                tracing::info!(revision = %p.revision.key(), "superseded while being scanned: stopped, dropped");
                return Ok(None);
            }
            other => other.map_err(transient)?,
        };
        scanned.timings.insert(0, ("fetch_trees".into(), fetched));
        Ok(Some(scanned))
    }
}

/// A failure of this host (git, disk, a tool): retried.
fn transient(e: impl std::fmt::Display) -> StageError {
    StageError::Transient(e.to_string())
}

/// The master repositories, checked out on this host as regen checks them out.
fn regen_masters(ws: &RepoWorkspace, settings: &Settings) -> Result<Vec<ebuild::repo::RepoView>, trees::TreesError> {
    let repo = &settings.repository;
    let wanted: Vec<trees::checkout::Master> =
        repo.masters.iter().map(|m| trees::checkout::Master { name: &m.name, url: &m.url, branch: m.branch.as_deref() }).collect();
    Ok(trees::checkout::prepare_masters(ws, &wanted)?.into_iter().map(|(name, path)| ebuild::repo::RepoView { name, path }).collect())
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
            return Ok(Handled::stale());
        };
        pipeline::metrics::observe_steps(&scanned.timings);
        Ok(Handled {
            publish: vec![Outgoing {
                queue: Queue::Scanned,
                body: messages::encode(&scanned),
                priority: prepared.revision.broker_priority(),
            }],
            dropped_stale: false,
        })
    }
}
