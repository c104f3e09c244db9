//! The regen stage: a pull-request revision in; the head merged onto the current base tip, both trees checked out at stable paths with their md5-caches regenerated incrementally (nothing, the changed packages, or `pmaint regen`), and published to the trees remote; prepared trees out.
//!
//! Entry points: [`Regen::prepare`] (the step `prci check` runs too) and [`stage::RegenStage`] (the queue consumer).

pub mod incremental;
pub mod reconcile;
pub mod run;
pub mod stage;

use ebuild::repo::RepoView;
use git2::{Oid, Repository};
use incremental::{RegenKind, Stamp};
use pipeline::config::{MasterSettings, Settings};
use pipeline::messages::{PreparedTrees, Revision};
use sandbox::{EnvError, Sandbox, Tools};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use trees::{CheckoutMode, MergeOutcome, RepoWorkspace, Side, TreesError};

/// Why preparing the trees failed, by what the caller does: `Input` and `Timeout` are this revision's own fault
/// (reported as an `error` verdict, never retried); the rest is infrastructure (retried).
#[derive(Debug, thiserror::Error)]
pub enum RegenError {
    /// The revision cannot be prepared: a commit the source does not have, a tree that is no ebuild repository.
    #[error("{0}")]
    Input(String),
    /// A tool ran past its limit on this revision's trees (an ebuild that never terminates): retrying would hang again.
    #[error("{0}")]
    Timeout(String),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A regen tool failed otherwise (exit status other than 0 or 1).
    #[error("{0}")]
    Tool(String),
    /// This host's own state is wrong (a checkout prci made that is no git checkout, a master repository without a
    /// commit): not the pull request's fault, so retried and then dead-lettered, never its `error` verdict.
    #[error("{0}")]
    Internal(String),
    /// The pull request's content is refused (a path leading out of the tree, a tree that overflows the md5-cache):
    /// its `error` verdict, naming what.
    #[error("{0}")]
    Refused(String),
    /// A regen tool reached a sandbox limit (handled where regen runs: the scan names the culprit).
    #[error("{0}")]
    Limit(sandbox::LimitHit),
    /// The pull request has a newer head: the work was stopped, nothing is to be published for it.
    #[error("cancelled: the pull request has a newer head")]
    Cancelled,
}

impl RegenError {
    /// Whether this is the revision's fault (an `error` verdict) rather than the host's (a retry).
    pub fn is_revision_fault(&self) -> bool {
        matches!(self, RegenError::Input(_) | RegenError::Refused(_) | RegenError::Timeout(_) | RegenError::Limit(_))
    }
}

impl From<TreesError> for RegenError {
    fn from(e: TreesError) -> RegenError {
        match e {
            TreesError::NotFound(what) => RegenError::Input(what),
            TreesError::Refused(what) => RegenError::Refused(what),
            TreesError::Git(e) => RegenError::Git(e),
            TreesError::Io(e) => RegenError::Io(e),
        }
    }
}

impl From<EnvError> for RegenError {
    fn from(e: EnvError) -> RegenError {
        match e {
            EnvError::NotARepository(_) => RegenError::Input(e.to_string()),
            EnvError::Refused(_) => RegenError::Refused(e.to_string()),
            EnvError::Io(e) => RegenError::Io(e),
        }
    }
}

/// The result of preparing a job.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub base: Oid,
    pub head: Oid,
    /// The commit to scan: the merge, or the head on a fast-forward.
    pub tested: Oid,
    /// Paths (repository-relative) that differ between the base tip and the merge.
    pub changed: Vec<String>,
    /// Paths that conflict; when not empty nothing was checked out.
    pub conflicts: Vec<String>,
    pub base_tree: PathBuf,
    pub merge_tree: PathBuf,
    /// Master repositories, checked out, in `masters =` order.
    pub masters: Vec<RepoView>,
    /// Seconds spent per step (`fetch`, `merge`, `checkout`, `regen`).
    pub timings: Vec<(String, f64)>,
    /// What regen did per checkout (`master <name>`, `base`, `merge`), in that order; empty on a conflict.
    pub regen: Vec<(String, RegenKind)>,
}

/// Inputs of one job.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    pub url: &'a str,
    pub base: Oid,
    pub head: Oid,
    pub masters: &'a [MasterSettings],
    /// Raised when the revision is superseded (`pipeline::cancel`): the tool runs are killed, the job ends `Cancelled`.
    pub cancel: Option<pipeline::cancel::CancelFlag>,
}

/// The regen step with its configuration and the tools found at start-up.
/// The sandbox `[sandbox]` configures.
pub fn sandbox_config(s: &pipeline::config::SandboxSettings) -> sandbox::SandboxConfig {
    const MIB: u64 = 1 << 20;
    let limits = sandbox::Limits {
        memory_bytes: s.memory_mb * MIB,
        processes: s.processes,
        cpu: std::time::Duration::from_secs(s.cpu_secs),
        file_bytes: s.file_mb * MIB,
        md5_cache_bytes: s.md5_cache_mb * MIB,
        stdout_bytes: s.stdout_mb * MIB,
        stderr_bytes: s.stderr_mb * MIB,
        tmp_bytes: s.tmp_mb * MIB,
    };
    sandbox::SandboxConfig { enabled: s.enabled, limits, cgroups: s.cgroups, bwrap: s.bwrap.clone() }
}

#[derive(Debug)]
pub struct Regen {
    pub settings: Settings,
    pub tools: Tools,
    pub sandbox: Sandbox,
}

impl Regen {
    /// Located tools and a working sandbox, or why the stage cannot start (exit 64).
    pub fn from_settings(settings: &Settings) -> Result<Regen, sandbox::SetupError> {
        let tools =
            Tools::locate(&sandbox::ToolPaths { pkgcheck: settings.tools.pkgcheck.clone(), pmaint: settings.tools.pmaint.clone() })?;
        let sandbox = Sandbox::new(&sandbox_config(&settings.sandbox))?;
        let g = &settings.git;
        let files = (g.ssh_key_file.clone(), g.ssh_known_hosts_file.clone(), g.ca_file.clone(), g.https_token_file.clone());
        let t = trees::transport::Transport::new(files.0, files.1, files.2, files.3, g.connect_timeout_secs, g.low_speed_timeout_secs);
        trees::transport::configure(&t);
        Ok(Regen { settings: settings.clone(), tools, sandbox })
    }

    /// Mirror, merge, check out and regenerate both trees (and the masters). The caller holds `ws.lock()`.
    pub fn prepare(&self, ws: &RepoWorkspace, job: &Job, scratch: &Path) -> Result<Prepared, RegenError> {
        let mut timings = Vec::new();
        let t = Instant::now();
        let mirror = trees::open_mirror(ws, job.url)?;
        for oid in [job.base, job.head] {
            if mirror.find_commit(oid).is_err() {
                return Err(RegenError::Input(format!("commit {oid} is not in {}", job.url)));
            }
        }
        let masters = prepare_masters(ws, job.masters)?;
        timings.push(("fetch".to_string(), t.elapsed().as_secs_f64()));

        let t = Instant::now();
        let merged = trees::merge(&mirror, job.base, job.head)?;
        timings.push(("merge".to_string(), t.elapsed().as_secs_f64()));
        let (base_tree, merge_tree) = (ws.tree(Side::Base), ws.tree(Side::Merge));
        let mut prepared = Prepared {
            base: job.base,
            head: job.head,
            tested: Oid::zero(),
            changed: vec![],
            conflicts: vec![],
            base_tree,
            merge_tree,
            masters,
            timings,
            regen: vec![],
        };
        match merged {
            MergeOutcome::Merged(oid) => prepared.tested = oid,
            MergeOutcome::Conflicts(paths) => {
                prepared.conflicts = paths;
                return Ok(prepared);
            }
        }
        prepared.changed = trees::changed_paths(&mirror, job.base, prepared.tested)?;
        // Nothing the pull request adds may lead the tools or this service out of the tree.
        let escaping = trees::escaping_paths(&mirror, prepared.tested, &prepared.changed)?;
        if !escaping.is_empty() {
            return Err(RegenError::Refused(format!("the pull request adds paths that lead out of the tree: {}", escaping.join(", "))));
        }
        // What each checkout's md5-cache was valid for, read before a checkout removes the stamp.
        let old = (incremental::read_stamp(&prepared.base_tree), incremental::read_stamp(&prepared.merge_tree));
        self.check_out(&mirror, &mut prepared, scratch)?;
        self.regenerate(&mirror, &mut prepared, old, scratch, job.cancel.as_ref())?;
        Ok(prepared)
    }

    /// Check both sides out at their stable paths, writing only what changed when the tools see them read-only.
    fn check_out(&self, mirror: &Repository, p: &mut Prepared, scratch: &Path) -> Result<(), RegenError> {
        let t = Instant::now();
        // The merge side's tools are needed first (its regen): start them now, to overlap the checkouts; the base
        // side's (usually no regen, then the scan) after them.
        let work = &self.settings.work.dir;
        run::prestart_tools(&self.sandbox, &self.tools, work, &[(&p.merge_tree, "merge")], &p.masters, scratch);
        // The tools see the checkouts read-only when they can be bind-mounted: then only changed paths need writing.
        let mode = if self.sandbox.can_bind() { CheckoutMode::ChangedOnly } else { CheckoutMode::Verify };
        // A checkout that moves files invalidates what regen's stamp said of the md5-cache.
        trees::ensure_checkout(mirror, &p.base_tree, p.base, mode, &[incremental::STAMP_FILE])?;
        trees::ensure_checkout(mirror, &p.merge_tree, p.tested, mode, &[incremental::STAMP_FILE])?;
        p.timings.push(("checkout".to_string(), t.elapsed().as_secs_f64()));
        run::prestart_tools(&self.sandbox, &self.tools, work, &[(&p.base_tree, "base")], &p.masters, scratch);
        Ok(())
    }

    /// Bring the masters' and both sides' md5-caches up to date, the sides at once.
    fn regenerate(
        &self,
        mirror: &Repository,
        p: &mut Prepared,
        old: (Option<Stamp>, Option<Stamp>),
        scratch: &Path,
        cancel: Option<&pipeline::cancel::CancelFlag>,
    ) -> Result<(), RegenError> {
        let t = Instant::now();
        // Taken away before any of this job's code runs, put back once its reconcile is done: a job that ends
        // between the two (an error, a cancel, a crash) leaves none, and the next reconcile compares everything.
        let last_reconcile = LastReconcile::take(&p.merge_tree)?;
        let (old_base, old_merge) = old;
        let (mut done, master_commits) = self.regenerate_masters(&p.masters, scratch)?;
        let categories = |tree: &Path| {
            let mut trees: Vec<&Path> = vec![tree];
            trees.extend(p.masters.iter().map(|m| m.path.as_path()));
            ebuild::layout::categories(&trees)
        };
        let want_base = Stamp::new(mirror, p.base, &self.tools, &master_commits)?;
        let want_merge = Stamp::new(mirror, p.tested, &self.tools, &master_commits)?;
        let plan_base = incremental::plan(mirror, old_base.as_ref(), &want_base, &categories(&p.base_tree));
        let plan_merge = incremental::plan(mirror, old_merge.as_ref(), &want_merge, &categories(&p.merge_tree));
        let side = |tree: &Path, name: &str, plan: RegenKind, wanted: &Stamp| -> Result<RegenKind, RegenError> {
            let mut env =
                sandbox::tree_env(&self.sandbox, &self.settings.work.dir, tree, &p.masters, &sandbox::env::side_scratch(scratch, name))?;
            env.cancel = cancel.cloned();
            run::regen_incremental(&self.sandbox, &self.tools, &env, plan, wanted, self.jobs(), self.timeout())
        };
        let (rb, rm) = std::thread::scope(|s| {
            let b = s.spawn(|| side(&p.base_tree, "base", plan_base, &want_base));
            let m = s.spawn(|| side(&p.merge_tree, "merge", plan_merge, &want_merge));
            (join(b), join(m))
        });
        for (side, result) in [(Side::Base, rb), (Side::Merge, rm)] {
            let kind = result?;
            tracing::info!("regen {}: {}", side.name(), kind.describe());
            done.push((side.name().to_string(), kind));
        }
        let merge_kind = done.iter().find(|(side, _)| side == Side::Merge.name()).map(|(_, kind)| kind);
        self.reconcile_merge_cache(p, merge_kind, last_reconcile)?;
        p.timings.push(("regen".to_string(), t.elapsed().as_secs_f64()));
        p.regen = done;
        Ok(())
    }

    /// The pull request's code ran while the merge md5-cache was writable: every entry it cannot have changed is made
    /// the base's again (`reconcile`), so nothing it forged outlives the job. A pull request that changes repository
    /// metadata (`metadata/layout.conf`, …) can change every entry: the merge checkout's cache is then not trusted by
    /// the next job, which regenerates it whole.
    fn reconcile_merge_cache(&self, p: &Prepared, merge_kind: Option<&RegenKind>, last: LastReconcile) -> Result<(), RegenError> {
        let repository_wide = p.changed.iter().any(|c| {
            ebuild::layout::feeds_package_metadata(c) && !c.starts_with("eclass/") && ebuild::layout::package_of_path(c).is_none()
        });
        if repository_wide {
            incremental::remove_stamp(&p.merge_tree)?;
            return Ok(());
        }
        // Without the record of a finished reconcile, every category and every entry is compared.
        let only = last.since.and(merge_kind.and_then(|kind| written_categories(kind, &p.changed)));
        let done = reconcile::reconcile(&p.base_tree, &p.merge_tree, &p.changed, last.since, only.as_ref())?;
        last.put_back()?;
        if done != reconcile::Reconciled::default() {
            tracing::warn!(
                restored = done.restored,
                removed = done.removed,
                "the regen of the merge side left md5-cache entries the pull request cannot have made; put back to the base's"
            );
        }
        Ok(())
    }

    /// Regenerate each master (rarely changed: unchanged or a full regen); returns what was done and their commits.
    #[allow(clippy::type_complexity)]
    fn regenerate_masters(
        &self,
        masters: &[RepoView],
        scratch: &Path,
    ) -> Result<(Vec<(String, RegenKind)>, Vec<(String, String)>), RegenError> {
        let mut done = Vec::new();
        let mut commits = Vec::new();
        for (i, m) in masters.iter().enumerate() {
            let repo = Repository::open(&m.path)?;
            let head = repo.head()?.target().ok_or_else(|| RegenError::Internal(format!("master {} has no HEAD commit", m.name)))?;
            let wanted = Stamp::new(&repo, head, &self.tools, &commits)?;
            let unchanged = incremental::read_stamp(&m.path).as_ref().is_some_and(|s| s.tree == wanted.tree && s.same_environment(&wanted));
            let kind = if unchanged { RegenKind::Unchanged } else { RegenKind::Full };
            let env = sandbox::env::tree_env_real(&self.sandbox, &m.path, &masters[..i], &scratch.join(format!("master-{}", m.name)))?;
            let kind = run::regen_incremental(&self.sandbox, &self.tools, &env, kind, &wanted, self.jobs(), self.timeout())?;
            tracing::info!("regen master {}: {}", m.name, kind.describe());
            done.push((format!("master {}", m.name), kind));
            commits.push((m.name.clone(), head.to_string()));
        }
        Ok((done, commits))
    }

    fn jobs(&self) -> u32 {
        self.settings.checker.effective_jobs()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.settings.checker.regen_timeout_secs)
    }
}

/// The message a prepared revision becomes. `published` holds the commits of both prepared trees in the trees remote
/// (the stage publishes them; `prci check` scans its checkouts where they are and has none).
pub fn trees_message(rev: &Revision, p: &Prepared, published: Option<(Oid, Oid)>) -> PreparedTrees {
    let masters = p
        .masters
        .iter()
        .filter_map(|m| Repository::open(&m.path).ok().and_then(|r| r.head().ok()?.target()).map(|oid| (m.name.clone(), oid.to_string())))
        .collect();
    let merged = p.conflicts.is_empty();
    PreparedTrees {
        revision: rev.clone(),
        base: p.base.to_string(),
        base_tree: published.map(|(b, _)| b.to_string()).unwrap_or_default(),
        merge_tree: published.map(|(_, m)| m.to_string()).unwrap_or_default(),
        tested: if merged { p.tested.to_string() } else { String::new() },
        changed: p.changed.clone(),
        conflicts: p.conflicts.clone(),
        masters,
        timings: p.timings.clone(),
        error: None,
    }
}

/// The message of a revision that could not be prepared, for a reason retrying cannot fix.
pub fn failed_message(rev: &Revision, reason: String) -> PreparedTrees {
    PreparedTrees {
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
    }
}

/// Mirror and check out each master at the tip of its branch, as the tools will see them.
pub fn prepare_masters(ws: &RepoWorkspace, masters: &[MasterSettings]) -> Result<Vec<RepoView>, RegenError> {
    let wanted: Vec<trees::checkout::Master> =
        masters.iter().map(|m| trees::checkout::Master { name: &m.name, url: &m.url, branch: m.branch.as_deref() }).collect();
    Ok(trees::checkout::prepare_masters(ws, &wanted)?.into_iter().map(|(name, path)| RepoView { name, path }).collect())
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T, RegenError>>) -> Result<T, RegenError> {
    h.join().unwrap_or_else(|_| Err(RegenError::Tool("a regen thread panicked".into())))
}

/// In the merge checkout's git directory: when the regen before its last finished reconcile began (seconds since
/// the epoch). Every entry written since then (ctime) is compared again by the next reconcile.
const RECONCILED_FILE: &str = "prci-reconciled";

/// The record of the merge checkout's last reconcile, taken away while a job runs.
struct LastReconcile {
    record: Option<PathBuf>,
    /// The regen before it began (2 s earlier: timestamp granularity); None when there is no record.
    since: Option<std::time::SystemTime>,
    /// This job's regen begins.
    now: std::time::SystemTime,
}

impl LastReconcile {
    fn take(merge_tree: &Path) -> Result<LastReconcile, RegenError> {
        let record = incremental::stamp_path(merge_tree).map(|s| s.with_file_name(RECONCILED_FILE));
        let since = record
            .as_deref()
            .and_then(|r| std::fs::read_to_string(r).ok())
            .and_then(|t| t.trim().parse::<f64>().ok())
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .map(|d| std::time::UNIX_EPOCH + d.saturating_sub(Duration::from_secs(2)));
        if let Some(r) = &record {
            match std::fs::remove_file(r) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(LastReconcile { record, since, now: std::time::SystemTime::now() })
    }

    fn put_back(self) -> Result<(), RegenError> {
        if let (Some(record), Ok(at)) = (self.record, self.now.duration_since(std::time::UNIX_EPOCH)) {
            std::fs::write(record, at.as_secs_f64().to_string())?;
        }
        Ok(())
    }
}

/// The md5-cache categories of the merge checkout this job can have written: those a targeted regen could write (it
/// sees the rest read-only) and those of md5-cache files the pull request itself changes (a repository that tracks
/// them); None when anything could have been (a full regen, a file directly in the md5-cache).
fn written_categories(kind: &RegenKind, changed: &[String]) -> Option<std::collections::BTreeSet<String>> {
    let mut categories = match kind {
        RegenKind::Unchanged => Default::default(),
        RegenKind::Targeted(packages) => run::categories_of(packages),
        RegenKind::Unfinished(inner) => return written_categories(inner, changed),
        RegenKind::Full => return None,
    };
    for path in changed.iter().filter_map(|c| c.strip_prefix("metadata/md5-cache/")) {
        match path.split_once('/') {
            Some((cat, _)) if !cat.is_empty() && cat != "." && cat != ".." => categories.insert(cat.to_owned()),
            _ => return None,
        };
    }
    Some(categories)
}
