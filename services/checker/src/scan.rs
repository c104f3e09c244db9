//! Runs `pkgcheck scan` on one tree, hermetically, and contains crashes and hangs to the targets that cause them.
//!
//! pkgcheck 0.10.37 aborts the whole scan when one check crashes on one ebuild (exit 2, a traceback,
//! partial output), and one package can take hours. A failed or timed-out run of several targets is
//! split in halves and re-run until the culprit is a single target; that target gets a
//! `PrciToolCrash` (or `PrciScanTimeout`) finding naming the check and the error, and every other
//! target's results stand.

use crate::selection::Selection;
use findings::{Finding, CRASH_CLASS, TIMEOUT_CLASS};
use sandbox::tools::Tools;
use sandbox::TreeEnv;
use sandbox::{Sandbox, ToolCommand, ToolOutput};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// What one scan covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    /// Every check on the whole repository.
    Full,
    /// Repo- and category-scope checks on the whole repository.
    RepoPass,
    /// Some of the repo pass's checks (`-c A,B`) on the whole repository.
    RepoChecks(Vec<String>),
    /// Package atoms (`cat/pkg`) and eclasses (`eclass/X.eclass`).
    Targets(Vec<String>),
    /// Packages in a plan only as reverse dependencies: scanned with the checks that read other packages
    /// ([`crate::plan::CROSS_PACKAGE_CHECKS`]) alone, on `arches` alone when there are any (`--arches`).
    Dependents { targets: Vec<String>, arches: Vec<String> },
}

impl Unit {
    /// Whether a finding is one this unit is meant to report. Each finding belongs to exactly one kind of
    /// unit: the repository pass (repository-, category- and profile-scope keywords, and those only
    /// repository-pass checks report) or the target it is about. A run can report more (configured
    /// arguments re-enable checks pkgcheck's `--scopes` had filtered out; a target scan can report on
    /// another package): those findings are dropped, so a finding is counted once per side and every
    /// scan of one tree, first or confirming, counts it the same way.
    pub fn covers(&self, f: &Finding) -> bool {
        match self {
            Unit::Full => true,
            Unit::RepoPass | Unit::RepoChecks(_) => is_repo_pass_finding(f),
            Unit::Targets(targets) | Unit::Dependents { targets, .. } => {
                !is_repo_pass_finding(f) && target_of(f).is_some_and(|t| targets.contains(&t))
            }
        }
    }

    /// The same kind of unit for other targets (a pass stays itself).
    pub fn with_targets(&self, targets: Vec<String>) -> Unit {
        match self {
            Unit::Targets(_) => Unit::Targets(targets),
            Unit::Dependents { arches, .. } => Unit::Dependents { targets, arches: arches.clone() },
            other => other.clone(),
        }
    }

    /// The targets of a target unit (none for a pass).
    pub fn targets(&self) -> &[String] {
        match self {
            Unit::Targets(targets) | Unit::Dependents { targets, .. } => targets,
            _ => &[],
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Unit::Full => "the whole repository".into(),
            Unit::RepoPass => "the repository (repo and category scopes)".into(),
            Unit::RepoChecks(c) => format!("the repository ({})", c.join(", ")),
            Unit::Targets(t) => t.join(" "),
            Unit::Dependents { targets, arches } if arches.is_empty() => format!("{} (cross-package checks)", targets.join(" ")),
            Unit::Dependents { targets, arches } => format!("{} (cross-package checks on {})", targets.join(" "), arches.join(", ")),
        }
    }
}

/// Whether a finding belongs to the repository pass: its keyword has repository, category or profile scope,
/// or only repository-pass checks report it (`ConflictingChksums`); an unknown class (prci's own) when it is
/// about no target.
pub fn is_repo_pass_finding(f: &Finding) -> bool {
    match findings::keywords().get(findings::class_of(f)) {
        Some(k) => {
            crate::repo_scope::REPO_PASS_SCOPES.contains(&k.scope)
                || (!k.checks.is_empty() && k.checks.iter().all(|c| crate::repo_scope::is_repo_pass_check(c)))
        }
        None => target_of(f).is_none(),
    }
}

/// The target a finding belongs to: `cat/pkg` or `eclass/X.eclass`.
pub fn target_of(f: &Finding) -> Option<String> {
    if let Some(cp) = findings::package_of(f) {
        return Some(cp);
    }
    f.get("eclass").and_then(|e| e.as_str()).map(|e| format!("eclass/{e}.eclass"))
}

/// Below this many package targets they are always named (a whole-tree run of a small tree is no saving).
const WHOLE_TREE_MIN_TARGETS: usize = 50;

/// A failure that is not contained: the pipeline's, not the pull request's.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("pkgcheck cannot load the repository: {0}")]
    Unloadable(String),
    #[error("pkgcheck: {0}")]
    Tool(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The pull request has a newer head: the runs were stopped, nothing is to be reported.
    #[error("cancelled: the pull request has a newer head")]
    Cancelled,
}

/// Everything fixed for all scans of one job: the same on both sides.
#[derive(Debug, Clone)]
pub struct Scanner {
    pub sandbox: Sandbox,
    pub tools: Tools,
    pub jobs: u32,
    pub timeout: Duration,
    /// `checker.pkgcheck_args` and `--pkgcheck-arg`: target scans get them verbatim.
    pub extra_args: Vec<String>,
    /// What they select, interpreted (the repository pass gets its checks named by prci).
    pub selection: Selection,
}

impl Scanner {
    /// The scanner `checker.*` configures, with `extra` pkgcheck arguments after the configured ones.
    pub fn from_settings(settings: &pipeline::Settings, tools: &Tools, sandbox: Sandbox, extra: &[String]) -> Scanner {
        let mut extra_args = settings.checker.pkgcheck_args.clone();
        extra_args.extend(extra.iter().cloned());
        Scanner {
            sandbox,
            tools: tools.clone(),
            jobs: settings.checker.effective_jobs(),
            timeout: Duration::from_secs(settings.checker.scan_timeout_secs),
            selection: Selection::parse(&extra_args),
            extra_args,
        }
    }

    /// Whether configured pkgcheck arguments change which checks run in a way prci does not interpret
    /// (then the repo pass is never reused in parts).
    pub fn custom_checks(&self) -> bool {
        self.selection.is_opaque()
    }

    /// How far reverse dependencies may be narrowed under the configured arguments: not at all when prci cannot
    /// interpret them, to the cross-package checks on every arch when they choose arches (`-a`, `--arches`).
    pub fn dependents_narrowing(&self) -> crate::DependentsNarrowing {
        if self.selection.is_opaque() {
            crate::DependentsNarrowing::None
        } else if self.extra_args.iter().any(|a| a.starts_with("--arches") || (a.starts_with("-a") && !a.starts_with("--"))) {
            crate::DependentsNarrowing::Checks
        } else {
            crate::DependentsNarrowing::ChecksAndArches
        }
    }

    /// The same scanner with `jobs` processes per scan.
    pub fn with_jobs(&self, jobs: u32) -> Scanner {
        Scanner { jobs: jobs.max(1), ..self.clone() }
    }

    /// The arguments that go into the base-results cache key: everything that changes what a scan reports.
    /// `results=2`: entries hold only the findings their unit covers (`Unit::covers`); entries written before
    /// that rule could hold a repository pass's copies of package findings and are never read.
    pub fn fingerprint(&self) -> String {
        format!("pkgcheck={} pkgcore={} args={:?} results=2", self.tools.pkgcheck_version, self.tools.pkgcore_version, self.extra_args)
    }

    /// Scan `unit` on the tree of `env`, containing crashes and timeouts. Findings are sorted.
    pub fn scan(&self, env: &TreeEnv, unit: &Unit, label: &str) -> Result<Vec<Finding>, ScanError> {
        let narrowed;
        let unit = match unit {
            Unit::RepoChecks(checks) => {
                let allowed = self.allowed_checks(checks);
                if allowed.is_empty() {
                    return Ok(Vec::new());
                }
                narrowed = Unit::RepoChecks(allowed);
                &narrowed
            }
            other => other,
        };
        let mut out = match unit {
            Unit::Targets(targets) => {
                let present: Vec<String> = targets.iter().filter(|t| target_exists(&env.tree, t)).cloned().collect();
                match self.whole_tree_run(env, &present, label)? {
                    Some(findings) => findings,
                    None => self.scan_targets(env, unit, present, label)?,
                }
            }
            Unit::Dependents { targets, .. } => {
                if self.dependent_checks().is_empty() {
                    return Ok(Vec::new());
                }
                let present: Vec<String> = targets.iter().filter(|t| target_exists(&env.tree, t)).cloned().collect();
                self.scan_targets(env, unit, present, label)?
            }
            Unit::RepoPass | Unit::RepoChecks(_) | Unit::Full => match self.run(env, unit, &[], label)? {
                RunResult::Ok(findings) => findings,
                RunResult::Failed(failure) => {
                    if *unit == Unit::Full {
                        // Contain it: the full scan again as its parts, each narrowed down on failure.
                        let mut all = match self.run(env, &Unit::RepoPass, &[], label)? {
                            RunResult::Ok(f) => f,
                            RunResult::Failed(f) => vec![failure_finding(&f, None, &self.tools)],
                        };
                        all.extend(self.scan_contained(env, &Unit::Targets(vec![]), &all_targets(&env.tree), label)?);
                        all
                    } else {
                        vec![failure_finding(&failure, None, &self.tools)]
                    }
                }
            },
        };
        out.retain(|f| unit.covers(f) && self.selection.keeps(findings::class_of(f)));
        findings::sort_findings(&mut out);
        Ok(out)
    }

    /// Package targets, grouped; on a crash or timeout narrowed down to the culprit.
    fn scan_targets(&self, env: &TreeEnv, unit: &Unit, present: Vec<String>, label: &str) -> Result<Vec<Finding>, ScanError> {
        // pkgcheck 0.10.37 reports metadata errors (SourcingError, …) of a multi-target scan for
        // the last target only (its sources are shared and keep the last runner's callback), so a
        // package whose metadata failed to generate is scanned on its own.
        let (alone, grouped): (Vec<String>, Vec<String>) = present.into_iter().partition(|t| !metadata_complete(&env.tree, t));
        let mut out = Vec::new();
        if !grouped.is_empty() {
            out.extend(self.scan_contained(env, unit, &grouped, label)?);
        }
        for target in &alone {
            out.extend(self.scan_contained(env, unit, std::slice::from_ref(target), label)?);
        }
        Ok(out)
    }

    /// When the targets are most of the tree (an eclass every package inherits), one run over the whole tree
    /// costs less than naming them; the caller keeps only the targets' findings (`Unit::covers`). None when
    /// the targets are few, or when that run fails (the targets are then scanned the contained way).
    fn whole_tree_run(&self, env: &TreeEnv, targets: &[String], label: &str) -> Result<Option<Vec<Finding>>, ScanError> {
        let packages = targets.iter().filter(|t| !t.starts_with("eclass/")).count();
        if packages < WHOLE_TREE_MIN_TARGETS {
            return Ok(None);
        }
        let in_tree = all_targets(&env.tree).len();
        if packages * 3 < in_tree * 2 {
            return Ok(None);
        }
        tracing::info!(
            side = label,
            targets = packages,
            packages = in_tree,
            "most of the tree is targeted: one run over the whole tree instead"
        );
        match self.run(env, &Unit::Full, &[], label)? {
            RunResult::Ok(findings) => Ok(Some(findings)),
            RunResult::Failed(_) => Ok(None),
        }
    }

    /// Scan `targets`; on a crash or timeout split them until the culprits are single targets.
    fn scan_contained(&self, env: &TreeEnv, kind: &Unit, targets: &[String], label: &str) -> Result<Vec<Finding>, ScanError> {
        let unit = kind.with_targets(targets.to_vec());
        match self.run(env, &unit, targets, label)? {
            RunResult::Ok(f) => Ok(f),
            RunResult::Failed(failure) if targets.len() == 1 && failure.timed_out => {
                // Rescanning a hang costs another timeout; a timeout is never cached (it depends on load).
                tracing::warn!(target = %targets[0], side = label, "pkgcheck ran past its time limit on one target; contained");
                Ok(vec![failure_finding(&failure, Some(&targets[0]), &self.tools)])
            }
            RunResult::Failed(failure) if targets.len() == 1 => {
                // A crash stands only when it recurs the same way on its own: then it is the target's, and may be cached.
                match self.run(env, &unit, targets, label)? {
                    RunResult::Ok(f) => {
                        tracing::warn!(target = %targets[0], side = label, "pkgcheck crashed once on this target and not again; the second run stands");
                        Ok(f)
                    }
                    RunResult::Failed(again) => {
                        tracing::warn!(target = %targets[0], side = label, "pkgcheck failed on one target; contained");
                        let first = failure_finding(&failure, Some(&targets[0]), &self.tools);
                        let second = failure_finding(&again, Some(&targets[0]), &self.tools);
                        Ok(vec![if findings::identity(&first) == findings::identity(&second) { first } else { second }])
                    }
                }
            }
            RunResult::Failed(_) => {
                let (a, b) = targets.split_at(targets.len() / 2);
                let mut out = self.scan_contained(env, kind, a, label)?;
                out.extend(self.scan_contained(env, kind, b, label)?);
                Ok(out)
            }
        }
    }

    /// One pkgcheck run.
    fn run(&self, env: &TreeEnv, unit: &Unit, targets: &[String], label: &str) -> Result<RunResult, ScanError> {
        let mut args = vec![
            "--config".to_string(),
            env.config_dir.display().to_string(),
            "scan".into(),
            "--config".into(),
            "no".into(),
            format!("--cache-dir={}", env.pkgcheck_cache.display()),
            "--cache=-git".into(),
            "-j".into(),
            self.jobs.to_string(),
            "-R".into(),
            "JsonStream".into(),
            "-r".into(),
            env.visible.display().to_string(),
        ];
        match unit {
            Unit::RepoPass => {
                args.push("--scopes=repo,cat,profiles".into());
                args.extend(self.repo_pass_args());
            }
            Unit::RepoChecks(checks) => {
                args.push("--scopes=repo,cat,profiles".into());
                args.push("-c".into());
                args.push(checks.join(","));
                if self.selection.is_opaque() {
                    args.extend(self.extra_args.iter().cloned());
                } else {
                    args.extend(self.selection.passthrough.iter().cloned());
                }
            }
            Unit::Dependents { arches, .. } => {
                args.push("-c".into());
                args.push(self.dependent_checks().join(","));
                if !arches.is_empty() {
                    args.push(format!("--arches={}", arches.join(",")));
                }
                args.extend(self.selection.passthrough.iter().cloned());
            }
            Unit::Targets(_) | Unit::Full => args.extend(self.extra_args.iter().cloned()),
        }
        let stdin = if targets.is_empty() {
            None
        } else {
            args.push("-".into());
            let list: String = targets.iter().map(|t| format!("{}\n", target_arg(&env.visible, t))).collect();
            Some(list.into_bytes())
        };
        tracing::debug!(side = label, unit = %unit.describe(), "pkgcheck scan");
        let out = self.sandbox.run(&self.pkgcheck(env, args, stdin))?;
        classify(out, &env.visible)
    }
}

impl Scanner {
    /// One pkgcheck run on the tree of `env`, under this scanner's limit.
    fn pkgcheck(&self, env: &TreeEnv, args: Vec<String>, stdin: Option<Vec<u8>>) -> ToolCommand {
        let mut cmd = env.command(self.tools.pkgcheck.clone(), args, &self.tools.bin_dir, self.timeout, false);
        cmd.stdin = stdin;
        cmd
    }

    /// The cross-package checks (`plan::CROSS_PACKAGE_CHECKS`) this scanner's selection lets run.
    fn dependent_checks(&self) -> Vec<String> {
        self.allowed_checks(crate::plan::CROSS_PACKAGE_CHECKS.map(String::from).iter())
    }

    /// Bring pkgcheck's profile and eclass caches in `env.pkgcheck_cache` up to date with the tree
    /// (`pkgcheck cache --update`): they only read `profiles/`, `eclass/` and the repository's metadata.
    pub fn update_tool_cache(&self, env: &TreeEnv) -> Result<(), ScanError> {
        let args = vec![
            "--config".to_string(),
            env.config_dir.display().to_string(),
            "cache".into(),
            format!("--cache-dir={}", env.pkgcheck_cache.display()),
            "--update".into(),
            "--type=profiles,eclass".into(),
            "-r".into(),
            env.visible.display().to_string(),
        ];
        let out = self.sandbox.run(&self.pkgcheck(env, args, None))?;
        match out.code {
            _ if out.cancelled => Err(ScanError::Cancelled),
            Some(0) => Ok(()),
            _ => Err(ScanError::Tool(format!("pkgcheck cache --update: {}", out.last_stderr_line()))),
        }
    }

    /// The configured arguments of a whole repository pass: the selection turned into the repository-pass
    /// checks it allows (see `selection.rs`), or everything verbatim when prci cannot interpret it.
    fn repo_pass_args(&self) -> Vec<String> {
        if self.selection.is_opaque() {
            return self.extra_args.clone();
        }
        let mut args = self.selection.passthrough.clone();
        args.extend(self.selection.repo_pass_checks_arg(&repo_pass_checks()));
        args
    }

    /// The checks of `checks` this scanner's selection lets run.
    pub fn allowed_checks<'a>(&self, checks: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        checks.into_iter().filter(|c| self.selection.is_opaque() || self.selection.allows_check(c)).cloned().collect()
    }
}

/// Every check the repository pass runs: those prci models, those it knows are inactive, and those of the
/// keyword table it does not model.
fn repo_pass_checks() -> std::collections::BTreeSet<&'static str> {
    use crate::repo_scope::{unmodelled_checks, INACTIVE, MODELLED};
    MODELLED.iter().chain(INACTIVE).copied().chain(unmodelled_checks()).collect()
}

enum RunResult {
    Ok(Vec<Finding>),
    Failed(Failure),
}

/// Why a contained run failed.
#[derive(Debug, Clone)]
pub struct Failure {
    pub timed_out: bool,
    /// The sandbox limit the run reached (`LimitHit`'s text), if that is what stopped it.
    pub limit: Option<String>,
    pub timeout_secs: u64,
    pub stderr: String,
}

/// What pkgcheck meant by an error exit, read from its stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A check crashed (a Python traceback): contained as a crash of the target.
    Crashed,
    /// The selection leaves no check for these targets: an empty result, not an error.
    NothingToRun,
    /// The repository (its layout, masters or profiles) cannot be loaded: the revision's `error` verdict.
    Unloadable(String),
    /// Anything else (a bad argument, …): the host's failure.
    Other(String),
}

/// The one place pkgcheck's stderr is read for meaning: it gives no structured output for crashes and refusals.
/// Tested against the pinned version (`refusals_of_the_pinned_pkgcheck_are_told_apart`).
pub fn refusal(stderr: &str) -> Refusal {
    if stderr.contains("Traceback (most recent call last)") {
        return Refusal::Crashed;
    }
    let last = stderr.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let line = last.trim_start_matches("pkgcheck scan: error: ").to_owned();
    if line.starts_with("no matching checks available") {
        Refusal::NothingToRun
    } else if line.contains("repo") || line.contains("profile") || line.contains("layout") {
        Refusal::Unloadable(line)
    } else {
        Refusal::Other(line)
    }
}

fn classify(out: ToolOutput, visible: &Path) -> Result<RunResult, ScanError> {
    if out.cancelled {
        return Err(ScanError::Cancelled);
    }
    if let Some(hit) = out.limit {
        pipeline::metrics::get().sandbox_limits.with_label_values(&[hit.name()]).inc();
        // Contained like a crash: narrowed down to the target that causes it, rerun once to see it recur.
        return Ok(RunResult::Failed(Failure {
            timed_out: false,
            limit: Some(hit.to_string()),
            timeout_secs: 0,
            stderr: out.stderr_text(),
        }));
    }
    if out.timed_out {
        return Ok(RunResult::Failed(Failure {
            timed_out: true,
            limit: None,
            timeout_secs: out.elapsed.as_secs(),
            stderr: out.stderr_text(),
        }));
    }
    let stderr = out.stderr_text();
    match out.code {
        Some(0) => {
            let tree = visible.display().to_string();
            let text = String::from_utf8_lossy(&out.stdout);
            Ok(RunResult::Ok(text.lines().filter_map(|l| findings::parse_line(l, &tree)).collect()))
        }
        Some(code) => match refusal(&stderr) {
            Refusal::Crashed => Ok(RunResult::Failed(Failure { timed_out: false, limit: None, timeout_secs: 0, stderr })),
            // The configured selection leaves no check for this kind of target (`-c SourcingCheck` and an
            // eclass target): nothing to report, the same on both sides.
            Refusal::NothingToRun => Ok(RunResult::Ok(Vec::new())),
            Refusal::Unloadable(line) => Err(ScanError::Unloadable(line)),
            Refusal::Other(line) => Err(ScanError::Tool(format!("exit {code}: {line}"))),
        },
        None if refusal(&stderr) == Refusal::Crashed => {
            Ok(RunResult::Failed(Failure { timed_out: false, limit: None, timeout_secs: 0, stderr }))
        }
        None => Err(ScanError::Tool(format!("killed by a signal: {}", out.last_stderr_line()))),
    }
}

/// A finding that stands for a target pkgcheck could not scan.
fn failure_finding(f: &Failure, target: Option<&str>, tools: &Tools) -> Finding {
    let mut v = json!({});
    let Value::Object(map) = &mut v else { unreachable!("json!({{}}) is an object") };
    if f.timed_out {
        map.insert("__class__".into(), json!(TIMEOUT_CLASS));
    } else {
        map.insert("__class__".into(), json!(CRASH_CLASS));
    }
    if let Some(t) = target {
        if let Some(eclass) = t.strip_prefix("eclass/").and_then(|e| e.strip_suffix(".eclass")) {
            map.insert("eclass".into(), json!(eclass));
        } else if let Some((cat, pkg)) = t.split_once('/') {
            map.insert("category".into(), json!(cat));
            map.insert("package".into(), json!(pkg));
        }
    }
    map.insert("target".into(), json!(target.unwrap_or("repository")));
    if f.timed_out {
        map.insert("timeout_secs".into(), json!(f.timeout_secs));
    } else if let Some(limit) = &f.limit {
        map.insert("check".into(), json!("sandbox"));
        map.insert("error".into(), json!(limit));
    } else {
        let (check, error) = crash_origin(&f.stderr, tools.pkgcheck_source.as_deref());
        map.insert("check".into(), json!(check));
        map.insert("error".into(), json!(error));
    }
    map.insert("level".into(), json!("error"));
    map.clone()
}

/// The check a traceback crashed in (the class around the outermost frame under `pkgcheck/checks/`) and its last line.
/// The class is looked up in `source`, the installed pkgcheck's own sources, never at the path the traceback prints:
/// stderr is the tool's output, which a PR's ebuild can write to.
pub fn crash_origin(stderr: &str, source: Option<&Path>) -> (String, String) {
    let error = stderr
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('^') && !l.starts_with("pkgcheck scan: error"))
        .unwrap_or("unknown error")
        .to_owned();
    let frame = stderr.lines().map(str::trim).find_map(|l| {
        let rest = l.strip_prefix("File \"")?;
        let (file, rest) = rest.split_once('"')?;
        let idx = file.find("/pkgcheck/checks/")?;
        let line: usize = rest.trim_start_matches(", line ").split(',').next()?.trim().parse().ok()?;
        Some((file[idx + "/pkgcheck/".len()..].to_owned(), line))
    });
    let check = match frame {
        Some((rel, line)) => source
            .and_then(|s| enclosing_class(s, &rel, line))
            .unwrap_or_else(|| rel.trim_start_matches("checks/").trim_end_matches(".py").to_owned()),
        None => "unknown".to_owned(),
    };
    (check, error)
}

/// Name of the top-level `class` a line of the Python file `source/rel` belongs to (read bounded and without following
/// links: `rel` comes from stderr).
fn enclosing_class(source: &Path, rel: &str, line: usize) -> Option<String> {
    let text = ebuild::untrusted::read_to_string(source, rel).ok()?;
    text.lines()
        .take(line)
        .filter_map(|l| l.strip_prefix("class "))
        .last()
        .map(|l| l.split(['(', ':']).next().unwrap_or(l).trim().to_owned())
}

/// How a target is passed to pkgcheck: atoms as they are, eclasses as absolute paths.
fn target_arg(visible: &Path, target: &str) -> String {
    if target.starts_with("eclass/") {
        visible.join(target).display().to_string()
    } else {
        target.to_owned()
    }
}

/// Whether a target exists on this side (pkgcheck is silent about missing ones).
fn target_exists(tree: &Path, target: &str) -> bool {
    tree.join(target).exists()
}

/// Whether every ebuild of a `cat/pkg` target has an md5-cache entry (after regen: it sourced).
fn metadata_complete(tree: &Path, target: &str) -> bool {
    if target.starts_with("eclass/") {
        return true;
    }
    let Some((cat, _)) = target.split_once('/') else { return true };
    let Ok(entries) = ebuild::untrusted::read_dir(tree, target) else { return true };
    entries.flatten().all(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        match name.strip_suffix(".ebuild") {
            Some(pf) => tree.join("metadata/md5-cache").join(cat).join(pf).is_file(),
            None => true,
        }
    })
}

/// Every eclass and package of a tree, as targets (a full scan split into parts).
pub fn all_targets(tree: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = ebuild::untrusted::read_dir(tree, "eclass") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".eclass") {
                out.push(format!("eclass/{name}"));
            }
        }
    }
    for cat in ebuild::layout::categories(&[tree]) {
        if let Ok(entries) = ebuild::untrusted::read_dir(tree, &cat) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(format!("{cat}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = r#"pkgcheck scan: error: Traceback (most recent call last):
  File "/x/site-packages/pkgcheck/pipeline.py", line 191, in _run_checks
    if results := sorted(
                  ^^^^^^^
  File "/x/site-packages/pkgcheck/runners.py", line 71, in run
    yield from check.feed(item)
  File "/x/site-packages/pkgcheck/checks/codingstyle.py", line 741, in feed
    yield from self.known_variables[name](self, name, value_node, value_str, pkg)
  File "/x/site-packages/pkgcheck/checks/codingstyle.py", line 649, in _raw_text
    for var_node in bash.var_query.captures(node).get("var", ()):
                    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
TypeError: captures() argument 1 must be tree_sitter.Node, not None
"#;

    /// The pinned pkgcheck's stderr for `args` on a repository at `dir`.
    fn pkgcheck_refusal(dir: &Path, args: &[&str]) -> String {
        let pkgcheck = sandbox::tools::default_venv().join("bin").join("pkgcheck");
        assert!(pkgcheck.is_file(), "the pinned tools are not installed: run `{}`", sandbox::tools::INSTALL_HINT);
        let out = std::process::Command::new(pkgcheck)
            .args(["scan", "--config", "no", "--cache-dir"])
            .arg(dir.join("cache"))
            .arg("-r")
            .arg(dir.join("repo"))
            .args(args)
            .env_clear()
            .env("HOME", dir)
            .output()
            .expect("run pkgcheck");
        assert!(!out.status.success(), "pkgcheck accepted {args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    #[test]
    fn refusals_of_the_pinned_pkgcheck_are_told_apart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let repo = dir.path().join("repo");
        for (path, text) in [
            ("profiles/repo_name", "refusals\n"),
            ("profiles/categories", "app-misc\n"),
            ("metadata/layout.conf", "masters =\n"),
            ("app-misc/foo/foo-1.ebuild", "EAPI=8\nSLOT=0\n"),
            ("eclass/x.eclass", "# x\n"),
        ] {
            std::fs::create_dir_all(repo.join(path).parent().expect("parent")).expect("dir");
            std::fs::write(repo.join(path), text).expect("write");
        }
        let eclass = repo.join("eclass/x.eclass").display().to_string();
        let line = pkgcheck_refusal(dir.path(), &["-c", "SourcingCheck", &eclass]);
        assert_eq!(refusal(&line), Refusal::NothingToRun, "{line}");
        let line = pkgcheck_refusal(dir.path(), &["-c", "NoSuchCheck"]);
        assert!(matches!(refusal(&line), Refusal::Other(_)), "{line}");
        std::fs::write(repo.join("metadata/layout.conf"), "masters = nosuch\n").expect("write");
        let line = pkgcheck_refusal(dir.path(), &[]);
        assert!(matches!(refusal(&line), Refusal::Unloadable(_)), "{line}");
    }

    #[test]
    fn crash_origin_names_the_error_line() {
        let (check, error) = crash_origin(TRACE, None);
        assert_eq!(error, "TypeError: captures() argument 1 must be tree_sitter.Node, not None");
        // Without the sources the module name stands in for the class.
        assert_eq!(check, "codingstyle");
    }

    #[test]
    fn crash_origin_finds_the_class_in_the_sources() {
        let dir = std::env::temp_dir().join(format!("prci-crash-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("checks")).unwrap();
        let mut src = String::new();
        for i in 1..=800 {
            src.push_str(&match i {
                10 => "class Other(Check):\n".to_string(),
                700 => "class MetadataVarCheck(Check):\n".to_string(),
                _ => "    pass\n".to_string(),
            });
        }
        std::fs::write(dir.join("checks/codingstyle.py"), src).unwrap();
        let (check, _) = crash_origin(TRACE, Some(&dir));
        assert_eq!(check, "MetadataVarCheck");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_traceback_is_a_crash_and_its_paths_are_never_followed() {
        assert_eq!(refusal(TRACE), Refusal::Crashed);
        // A traceback printed by an ebuild, naming files to make the host read: only the installed sources are
        // read, and not through a link.
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("checks")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("checks/codingstyle.py")).unwrap();
        let (check, _) = crash_origin(TRACE, Some(dir.path()));
        assert_eq!(check, "codingstyle", "the link is not read");
        let forged = TRACE.replace("/x/site-packages/pkgcheck/checks/codingstyle.py", "/dev/zero/pkgcheck/checks/../../zero");
        let (check, _) = crash_origin(&forged, Some(dir.path()));
        assert!(!check.contains("class"), "{check}");
    }
}
