//! `prci check`: the pipeline's own steps (regen's [`Regen::prepare`], the checker's [`Checker::scan`], the differ's [`differ::report_of`]) chained in one process on a local repository; also the building block of `prci replay`.

use checker::step::{Checker, Checkouts};
use findings::CheckReport;
use pipeline::config::{MasterSettings, Settings};
use pipeline::messages::Revision;
use regen::{Job, Prepared, Regen, RegenError};
use std::path::PathBuf;
use std::time::Instant;
use trees::RepoWorkspace;

/// Why a check produced no report: bad input (a usage error) or the pipeline failing.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The caller's mistake: not a repository, unknown revision, missing tool.
    #[error("{0}")]
    Input(String),
    /// The host cannot run a check as configured (its tools, its sandbox): exit 64.
    #[error("bad configuration: {0}")]
    Config(String),
    /// The pipeline failed; the report (verdict `error`) says what failed.
    #[error("{}", .0.reason)]
    Pipeline(Box<CheckReport>),
}

/// What to check.
#[derive(Debug, Clone)]
pub struct CheckRequest {
    pub repo: PathBuf,
    pub base: String,
    pub head: String,
    pub pkgcheck_args: Vec<String>,
    pub masters: Vec<MasterSettings>,
}

/// Everything that stays the same across checks of one run: the stages' steps, built as the stages build them.
#[derive(Debug)]
pub struct Context {
    pub settings: Settings,
    pub regen: Regen,
    pub checker: Checker,
}

impl Context {
    pub fn new(settings: Settings) -> Result<Context, CheckError> {
        let regen = Regen::from_settings(&settings).map_err(|e| {
            if e.is_configuration() {
                CheckError::Config(format!("{}: {e}", e.key()))
            } else {
                CheckError::Input(e.to_string())
            }
        })?;
        let checker = Checker::new(&settings, regen.tools.clone(), regen.sandbox);
        Ok(Context { settings, regen, checker })
    }

    /// The checker's scanner with `extra` pkgcheck arguments (for `prci replay`'s full scans).
    pub fn scanner(&self, extra: &[String]) -> checker::scan::Scanner {
        checker::scan::Scanner::from_settings(&self.settings, &self.checker.tools, self.checker.sandbox, extra)
    }
}

/// A finished check with what `prci replay` needs besides the report.
#[derive(Debug)]
pub struct Checked {
    pub report: CheckReport,
    pub prepared: Option<Prepared>,
    pub workspace: RepoWorkspace,
    pub scratch: PathBuf,
    pub cache_hits: usize,
}

/// Validate the arguments that name pkgcheck options prci owns.
pub fn validate_args(args: &[String]) -> Result<(), CheckError> {
    let mut s = Settings::default();
    s.checker.pkgcheck_args = args.to_vec();
    s.validate().map_err(|e| CheckError::Input(format!("--pkgcheck-arg: {}", e.reason)))
}

/// Run one check. Keeps the scratch directory (the caller removes it) so replay can scan the same trees again.
pub fn run(ctx: &Context, req: &CheckRequest) -> Result<Checked, CheckError> {
    let started = Instant::now();
    validate_args(&req.pkgcheck_args)?;
    let repo = req.repo.canonicalize().map_err(|_| CheckError::Input(format!("{} does not exist", req.repo.display())))?;
    let input = |e: trees::TreesError| CheckError::Input(e.to_string());
    let base = trees::resolve(&repo, &req.base).map_err(input)?;
    let head = trees::resolve(&repo, &req.head).map_err(input)?;
    let Some(name) = ebuild::repo::repo_name(&repo) else {
        return Err(CheckError::Input(format!("{} is not an ebuild repository: profiles/repo_name is missing", repo.display())));
    };
    let url = repo.display().to_string();
    let work_dir = &ctx.settings.work.dir;
    std::fs::create_dir_all(work_dir).map_err(|e| CheckError::Input(format!("work dir {}: {e}", work_dir.display())))?;
    let ws = RepoWorkspace::new(work_dir, &name, &url);
    let failed = |reason: String| CheckError::Pipeline(Box::new(CheckReport::error(&name, &base.to_string(), &head.to_string(), reason)));
    let _lock = ws.lock().map_err(|e| failed(format!("lock: {e}")))?;
    let scratch = work_dir.join("jobs").join(format!("{}-{}", std::process::id(), nanos()));

    // regen
    let mut masters = ctx.settings.repository.masters.clone();
    masters.extend(req.masters.iter().cloned());
    let job = Job { url: &url, base, head, masters: &masters, cancel: None };
    let prepared = match ctx.regen.prepare(&ws, &job, &scratch) {
        Ok(p) => p,
        Err(RegenError::Input(msg)) => return Err(CheckError::Input(msg)),
        Err(e) => return Err(failed(e.to_string())),
    };
    let revision = Revision {
        repository: name.clone(),
        pr: 0,
        head: head.to_string(),
        base_branch: req.base.clone(),
        base: base.to_string(),
        priority: false,
        emitted_at: 0.0,
    };
    let message = regen::trees_message(&revision, &prepared, None);

    // checker, on regen's checkouts where they are
    let mirror = trees::open_mirror(&ws, &url).map_err(|e| failed(e.to_string()))?;
    let checkouts = Checkouts {
        mirror: &mirror,
        base,
        base_tree: &prepared.base_tree,
        merge_tree: &prepared.merge_tree,
        masters: &prepared.masters,
        scratch: scratch.clone(),
        cancel: None,
    };
    let (scanned, cache_hits) = ctx.checker.scan(&message, &checkouts, &req.pkgcheck_args).map_err(|e| failed(e.to_string()))?;
    if let Some(reason) = &scanned.error {
        return Err(CheckError::Input(reason.clone()));
    }

    // differ
    let mut report = differ::report_of(&name, &scanned, &ctx.settings.checker.fail_levels);
    report.timings.insert("total_seconds".into(), started.elapsed().as_secs_f64());
    Ok(Checked { report, prepared: Some(prepared), workspace: ws, scratch, cache_hits })
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}
