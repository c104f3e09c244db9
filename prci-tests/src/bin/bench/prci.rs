//! Running `prci check` and reading what it did: the binaries, one timed run (wall, CPU, peak RSS,
//! report), the part of the repo pass its log names, and the checkouts it left.

use super::process::{children_cpu, reap_all_orphans, secs, RssSampler};
use super::Args;
use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The prci binary (`--prci`, else next to this program) and pkgcheck, checked to exist.
pub(crate) fn binaries(args: &Args) -> Result<(PathBuf, PathBuf)> {
    let prci = match &args.prci {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.parent().context("no parent of current exe")?.join("prci"),
    };
    if !prci.is_file() {
        bail!("{} not found: build it with `cargo build --release -p prci -p prci-tests` (or pass --prci)", prci.display());
    }
    let pkgcheck = fixtures::pkgcheck_path();
    if !fixtures::tools_available() {
        bail!("pkgcheck/pmaint not found at {} (install the pinned tools with `bash .ci/install-tools`)", pkgcheck.display());
    }
    Ok((prci, pkgcheck))
}

/// The pkgcheck jobs per side of prci (and of the floor): `PRCI__CHECKER__JOBS` when set, else prci's
/// default: base and merge scanned at once, each with half the cores.
pub(crate) fn default_prci_jobs(cores: usize) -> usize {
    match std::env::var("PRCI__CHECKER__JOBS").ok().and_then(|v| v.parse().ok()) {
        Some(j) if j > 0 => j,
        _ => (cores / 2).max(1),
    }
}

/// prci's checkouts of the base tip and the merge (the only repository under `work/repos`).
pub(crate) fn prci_trees(work: &Path) -> Result<(PathBuf, PathBuf)> {
    let repos = work.join("repos");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&repos).with_context(|| format!("read {}", repos.display()))? {
        let p = entry?.path();
        if p.join("trees").join("base").is_dir() && p.join("trees").join("merge").is_dir() {
            found.push(p);
        }
    }
    match found.as_slice() {
        [one] => Ok((one.join("trees/base"), one.join("trees/merge"))),
        _ => bail!("expected one repository with trees under {}, found {}", repos.display(), found.len()),
    }
}

#[derive(Debug)]
pub(crate) struct PrciRun {
    /// Wall-clock seconds of the whole `prci check` process.
    pub(crate) wall: f64,
    /// CPU seconds of prci and every tool it ran.
    pub(crate) cpu: f64,
    /// The JSON report.
    pub(crate) report: Value,
    /// Peak resident set of the prci process itself (VmHWM, KiB), sampled from /proc; 0 if unknown.
    pub(crate) peak_kib: u64,
    /// What prci's merge side ran of the repo pass, from its log.
    pub(crate) merge_repo: RepoWork,
}

/// The part of the repo pass one side runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RepoWork {
    /// None: no repository-scope input changed.
    Nothing,
    /// The whole pass.
    Pass,
    /// Some checks (`-c`).
    Checks(Vec<String>),
}

impl RepoWork {
    /// From prci's log (`PRCI_LOG=info`): "repo pass reruns <Check>: why", "whole repo pass: why".
    pub(crate) fn from_log(log: &str, full: bool) -> RepoWork {
        if full || log.contains("whole repo pass") {
            return RepoWork::Pass;
        }
        let mut checks: Vec<String> = log
            .lines()
            .filter_map(|l| l.split_once("repo pass reruns ").map(|(_, rest)| rest))
            .filter_map(|rest| rest.split(':').next().map(|c| c.trim().to_string()))
            .collect();
        checks.sort();
        checks.dedup();
        if checks.is_empty() {
            RepoWork::Nothing
        } else {
            RepoWork::Checks(checks)
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            RepoWork::Nothing => "none (no repository-scope input changed)".into(),
            RepoWork::Pass => "the whole pass".into(),
            RepoWork::Checks(c) => c.join(","),
        }
    }
}

/// `prci check --repo <repo> --base <base> --head <head> --json`, with `--pkgcheck-arg=<a>` for each of `pkgcheck_args`.
pub(crate) fn run_prci(prci: &Path, repo: &Path, work: &Path, base: &str, head: &str, pkgcheck_args: &[String]) -> Result<PrciRun> {
    let cpu = children_cpu();
    let t = Instant::now();
    let child = Command::new(prci)
        .args(["check", "--repo"])
        .arg(repo)
        .args(["--base", base, "--head", head, "--json"])
        .args(pkgcheck_args.iter().map(|a| format!("--pkgcheck-arg={a}")))
        .env("PRCI__WORK__DIR", work)
        .env("PRCI_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("start {}", prci.display()))?;
    let sampler = RssSampler::start(child.id());
    let out = child.wait_with_output()?;
    let wall = secs(t);
    // prci's warm tool processes die just after it: count them in its CPU time.
    reap_all_orphans();
    let cpu = children_cpu() - cpu;
    let peak_kib = sampler.stop();
    let code = out.status.code();
    // 0 pass, 1 the verdict is fail (a new issue): both are answers; anything else is not.
    if !matches!(code, Some(0) | Some(1)) {
        bail!(
            "prci check {base}..{head} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report: Value = serde_json::from_slice(&out.stdout).context("prci check --json printed no JSON")?;
    let merge_repo = RepoWork::from_log(&String::from_utf8_lossy(&out.stderr), report["scan"]["full"].as_bool() == Some(true));
    Ok(PrciRun { wall, cpu, report, peak_kib, merge_repo })
}
