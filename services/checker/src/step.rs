//! The checker step both paths run: the checkouts of a prepared revision in, both sides' findings (the `Scanned` message) out.

use crate::cache::BaseCache;
use crate::scan::{ScanError, Scanner};
use crate::ConfirmPolicy;
use ebuild::repo::RepoView;
use pipeline::messages::{PreparedTrees, Scanned};
use pipeline::Settings;
use sandbox::{Sandbox, Tools, TreeEnv};
use std::path::{Path, PathBuf};

/// The checkouts of one prepared revision on this host.
pub struct Checkouts<'a> {
    /// The repository's mirror (the base commit's tree id keys the base-results cache).
    pub mirror: &'a git2::Repository,
    /// The base tip the trees were prepared from.
    pub base: git2::Oid,
    pub base_tree: &'a Path,
    pub merge_tree: &'a Path,
    pub masters: &'a [RepoView],
    /// The job's scratch directory (removed by the caller).
    pub scratch: PathBuf,
    /// Raised when the revision is superseded (`pipeline::cancel`): the scans stop, `ScanError::Cancelled`.
    pub cancel: Option<pipeline::cancel::CancelFlag>,
}

/// Why a scan produced no `Scanned`: the host failed (retry). A repository pkgcheck cannot load is not an error
/// here: it is the revision's `error` verdict.
#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    #[error(transparent)]
    Scan(#[from] ScanError),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// The checker with its configuration, the tools found at start-up and the base-results cache.
#[derive(Debug)]
pub struct Checker {
    pub settings: Settings,
    pub tools: Tools,
    pub sandbox: Sandbox,
    /// Shared through the trees remote when `trees.url` is configured (several hosts), this host's files otherwise.
    pub cache: BaseCache,
}

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

impl Checker {
    /// Located tools and a working sandbox, or why the stage cannot start (exit 64).
    pub fn from_settings(settings: &Settings) -> Result<Checker, sandbox::SetupError> {
        let tools =
            Tools::locate(&sandbox::ToolPaths { pkgcheck: settings.tools.pkgcheck.clone(), pmaint: settings.tools.pmaint.clone() })?;
        Ok(Checker::new(settings, tools, Sandbox::new(&sandbox_config(&settings.sandbox))?))
    }

    /// With tools already located (`prci check` shares regen's).
    pub fn new(settings: &Settings, tools: Tools, sandbox: Sandbox) -> Checker {
        let g = &settings.git;
        let files = (g.ssh_key_file.clone(), g.ssh_known_hosts_file.clone(), g.ca_file.clone(), g.https_token_file.clone());
        let t = trees::transport::Transport::new(files.0, files.1, files.2, files.3, g.connect_timeout_secs, g.low_speed_timeout_secs);
        trees::transport::configure(&t);
        let work = &settings.work.dir;
        let cache = match &settings.trees.url {
            Some(url) => BaseCache::shared(work, url),
            None => BaseCache::new(work),
        };
        Checker { settings: settings.clone(), tools, sandbox, cache }
    }

    /// The `Scanned` message of a revision that was not scanned: a conflict or an earlier error carried on.
    pub fn unscanned(&self, p: &PreparedTrees) -> Scanned {
        Scanned {
            prepared: p.clone(),
            full: false,
            targets: vec![],
            base: vec![],
            merge: vec![],
            unstable: vec![],
            tools: vec![
                ("pkgcheck".into(), self.tools.pkgcheck_version.clone()),
                ("pkgcore".into(), self.tools.pkgcore_version.clone()),
                ("sandbox".into(), if self.sandbox.unsandboxed() { "UNSANDBOXED (sandbox.enabled = false)" } else { "bubblewrap" }.into()),
            ],
            timings: vec![],
            error: None,
        }
    }

    /// Scan both sides of a prepared revision checked out at `trees`, with `extra` pkgcheck arguments after the
    /// configured ones. Also returns how many base units the cache answered.
    pub fn scan(&self, p: &PreparedTrees, trees: &Checkouts, extra: &[String]) -> Result<(Scanned, usize), CheckerError> {
        let mut out = self.unscanned(p);
        if p.error.is_some() || !p.conflicts.is_empty() {
            return Ok((out, 0));
        }
        let work = &self.settings.work.dir;
        let base_env =
            sandbox::tree_env(&self.sandbox, work, trees.base_tree, trees.masters, &sandbox::env::side_scratch(&trees.scratch, "base"));
        let merge_env =
            sandbox::tree_env(&self.sandbox, work, trees.merge_tree, trees.masters, &sandbox::env::side_scratch(&trees.scratch, "merge"));
        let (base_env, merge_env) = match (base_env, merge_env) {
            (Ok(b), Ok(m)) => (TreeEnv { cancel: trees.cancel.clone(), ..b }, TreeEnv { cancel: trees.cancel.clone(), ..m }),
            (Err(sandbox::EnvError::Io(e)), _) | (_, Err(sandbox::EnvError::Io(e))) => return Err(e.into()),
            (Err(e), _) | (_, Err(e)) => {
                out.error = Some(e.to_string());
                return Ok((out, 0));
            }
        };
        let master_paths: Vec<&Path> = trees.masters.iter().map(|m| m.path.as_path()).collect();
        let base_id = crate::base_id(trees.mirror, trees.base, &master_paths)?;
        let scanner = Scanner::from_settings(&self.settings, &self.tools, self.sandbox, extra);
        let policy = ConfirmPolicy::from_settings(&self.settings);
        match crate::check(&scanner, &self.cache, &base_id, &p.changed, &base_env, &merge_env, &policy) {
            Ok(outcome) => {
                out.full = outcome.plan.full;
                out.targets = outcome.plan.targets();
                out.base = outcome.base;
                out.merge = outcome.merge;
                out.unstable = outcome.unstable.into_iter().collect();
                out.timings.extend(outcome.timings);
                Ok((out, outcome.cache_hits))
            }
            Err(ScanError::Unloadable(reason)) => {
                out.error = Some(format!("pkgcheck cannot load the repository: {reason}"));
                Ok((out, 0))
            }
            Err(e) => Err(e.into()),
        }
    }
}
