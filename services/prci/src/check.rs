//! `prci check`: regen, checker and differ in one process on a local repository; also the building block of `prci replay`.

use checker::cache::BaseCache;
use checker::scan::{ScanError, Scanner};
use checker::ConfirmPolicy;
use regen::{Job, Prepared, RegenError, RepoWorkspace};
use shared::config::{MasterSettings, Settings};
use shared::sandbox::Sandbox;
use shared::tools::Tools;
use shared::{CheckReport, Verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Why a check produced no report: bad input (a usage error) or the pipeline failing.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The caller's mistake: not a repository, unknown revision, missing tool.
    #[error("{0}")]
    Input(String),
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

/// Everything that stays the same across checks of one run (tools found once).
pub struct Context {
    pub settings: Settings,
    pub tools: Tools,
    pub sandbox: Sandbox,
}

impl Context {
    pub fn new(settings: Settings) -> Result<Context, CheckError> {
        let tools = Tools::locate(&settings.tools).map_err(|e| CheckError::Input(e.to_string()))?;
        let sandbox = Sandbox::new(settings.checker.sandbox);
        Ok(Context { settings, tools, sandbox })
    }

    pub fn scanner(&self, extra: &[String]) -> Scanner {
        Scanner::from_settings(&self.settings, &self.tools, self.sandbox, extra)
    }
}

/// A finished check with what `prci replay` needs besides the report.
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
    let base = regen::resolve(&repo, &req.base).map_err(input)?;
    let head = regen::resolve(&repo, &req.head).map_err(input)?;
    if shared::pkgcore::repo_name(&repo).is_none() {
        return Err(CheckError::Input(format!("{} is not an ebuild repository: profiles/repo_name is missing", repo.display())));
    }
    let url = repo.display().to_string();
    let name = shared::pkgcore::repo_name(&repo).unwrap_or_else(|| ctx.settings.repository.name.clone());
    let work_dir = &ctx.settings.work.dir;
    std::fs::create_dir_all(work_dir).map_err(|e| CheckError::Input(format!("work dir {}: {e}", work_dir.display())))?;
    let ws = RepoWorkspace::new(work_dir, &name, &url);
    let _lock = ws.lock().map_err(|e| pipeline_error(&name, base, head, format!("lock: {e}")))?;
    let scratch = work_dir.join("jobs").join(format!("{}-{}", std::process::id(), nanos()));

    let mut report = CheckReport::error(&name, &base.to_string(), &head.to_string(), "");
    report.tools = BTreeMap::from([
        ("pkgcheck".to_string(), ctx.tools.pkgcheck_version.clone()),
        ("pkgcore".to_string(), ctx.tools.pkgcore_version.clone()),
    ]);
    let mut masters = ctx.settings.repository.masters.clone();
    masters.extend(req.masters.iter().cloned());
    let job = Job { url: &url, base, head, masters: &masters };
    let prepared = match regen::prepare(&ctx.settings, &ctx.sandbox, &ctx.tools, &ws, &job, &scratch) {
        Ok(p) => p,
        Err(RegenError::Input(msg)) => return Err(CheckError::Input(msg)),
        Err(e) => return Err(fail(report, e.to_string())),
    };
    for (step, secs) in &prepared.timings {
        report.timings.insert(format!("{step}_seconds"), *secs);
    }
    if !prepared.conflicts.is_empty() {
        report.timings.insert("total_seconds".into(), started.elapsed().as_secs_f64());
        let inputs = differ::ReportInputs {
            repository: &report.repository,
            base: &report.base,
            head: &report.head,
            tested: "",
            tools: report.tools.clone(),
            full: false,
            targets: vec![],
            conflicts: prepared.conflicts.clone(),
            timings: report.timings.clone(),
        };
        let report = differ::build_report(inputs, &[], &[], &Default::default(), &ctx.settings.checker.fail_levels);
        return Ok(Checked { report, prepared: Some(prepared), workspace: ws, scratch, cache_hits: 0 });
    }
    report.tested = prepared.tested.to_string();

    let base_env = regen::tree_env(&ctx.sandbox, work_dir, &prepared.base_tree, &prepared.masters, &scratch.join("scan-base")).map_err(input)?;
    let merge_env = regen::tree_env(&ctx.sandbox, work_dir, &prepared.merge_tree, &prepared.masters, &scratch.join("scan-merge")).map_err(input)?;
    let scanner = ctx.scanner(&req.pkgcheck_args);
    let cache = BaseCache::new(work_dir);
    let mirror = regen::open_mirror(&ws, &url).map_err(|e| fail(report.clone(), e.to_string()))?;
    let master_paths: Vec<&Path> = prepared.masters.iter().map(|m| m.path.as_path()).collect();
    let base_id = checker::base_id(&mirror, base, &master_paths).map_err(|e| fail(report.clone(), format!("git: {e}")))?;
    let outcome = match checker::check(&scanner, &cache, &base_id, &prepared.changed, &base_env, &merge_env, &ConfirmPolicy::from_settings(&ctx.settings)) {
        Ok(o) => o,
        Err(ScanError::Unloadable(msg)) => return Err(CheckError::Input(format!("pkgcheck cannot load the repository: {msg}"))),
        Err(e) => return Err(fail(report, e.to_string())),
    };
    for (step, secs) in &outcome.timings {
        report.timings.insert(format!("{step}_seconds"), *secs);
    }
    let inputs = differ::ReportInputs {
        repository: &report.repository,
        base: &report.base,
        head: &report.head,
        tested: &report.tested,
        tools: report.tools.clone(),
        full: outcome.plan.full,
        targets: outcome.plan.targets(),
        conflicts: vec![],
        timings: report.timings.clone(),
    };
    let mut report = differ::build_report(inputs, &outcome.base, &outcome.merge, &outcome.unstable, &ctx.settings.checker.fail_levels);
    report.timings.insert("total_seconds".into(), started.elapsed().as_secs_f64());
    Ok(Checked { report, prepared: Some(prepared), workspace: ws, scratch, cache_hits: outcome.cache_hits })
}

fn input(e: RegenError) -> CheckError {
    CheckError::Input(e.to_string())
}

fn fail(mut report: CheckReport, reason: String) -> CheckError {
    report.verdict = Verdict::Error;
    report.reason = reason;
    CheckError::Pipeline(Box::new(report))
}

fn pipeline_error(name: &str, base: git2::Oid, head: git2::Oid, reason: String) -> CheckError {
    CheckError::Pipeline(Box::new(CheckReport::error(name, &base.to_string(), &head.to_string(), reason)))
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}
