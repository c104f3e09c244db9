//! The floor of a prci run: the pkgcheck runs its plan asks for, bare, on prci's checkouts, timed.

use super::pkgcheck::{pkgcheck_run, Pass, Side};
use super::prci::{PrciRun, RepoWork};
use super::process::{children_cpu, secs};
use anyhow::{bail, Result};
use std::path::Path;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct SideTimes {
    wall: f64,
    repo_pass: f64,
    targets: f64,
}

/// What prci's first scan of one side runs, bare: its part of the repo pass, then the eclass targets
/// (if any), then the package targets (those that exist on this side), one after the other.
fn floor_side(pkgcheck: &Path, side: &Side, jobs: usize, repo: &RepoWork, targets: &[String]) -> Result<SideTimes> {
    let t = Instant::now();
    let repo_pass = match repo {
        RepoWork::Nothing => 0.0,
        RepoWork::Pass => pkgcheck_run(pkgcheck, side, jobs, Pass::RepoCat)?.0,
        RepoWork::Checks(c) => pkgcheck_run(pkgcheck, side, jobs, Pass::RepoChecks(c))?.0,
    };
    let present: Vec<String> = targets.iter().filter(|t| side.tree.join(t).exists()).cloned().collect();
    let (eclasses, packages): (Vec<String>, Vec<String>) = present.into_iter().partition(|t| t.starts_with("eclass/"));
    let mut targets_secs = 0.0;
    for group in [eclasses, packages] {
        if !group.is_empty() {
            targets_secs += pkgcheck_run(pkgcheck, side, jobs, Pass::Targets(&group))?.0;
        }
    }
    Ok(SideTimes { wall: secs(t), repo_pass, targets: targets_secs })
}

/// The floor of one prci run: the pkgcheck runs its plan asks for, bare, both sides at once, on
/// prci's checkouts as that run left them: the repo-pass checks prci's log names (on the base side
/// only when its results were not cached, `cold`), then the targets.
pub(crate) fn floor(pkgcheck: &Path, b: &Side, m: &Side, jobs: usize, run: &PrciRun, cold: bool) -> Result<FloorRun> {
    let report = &run.report;
    if report["scan"]["full"].as_bool() == Some(true) {
        bail!("prci planned a full scan for a one-package pull request: {}", report["scan"]);
    }
    let targets: Vec<String> =
        report["scan"]["targets"].as_array().map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect()).unwrap_or_default();
    let base_repo = if cold { run.merge_repo.clone() } else { RepoWork::Nothing };
    let cpu = children_cpu();
    let t = Instant::now();
    let (rb, rm) = std::thread::scope(|s| {
        let hb = s.spawn(|| floor_side(pkgcheck, b, jobs, &base_repo, &targets));
        let hm = s.spawn(|| floor_side(pkgcheck, m, jobs, &run.merge_repo, &targets));
        (hb.join(), hm.join())
    });
    let wall = secs(t);
    let cpu = children_cpu() - cpu;
    let (rb, rm) = match (rb, rm) {
        (Ok(b), Ok(m)) => (b?, m?),
        _ => bail!("a floor thread panicked"),
    };
    Ok(FloorRun {
        wall,
        cpu,
        side_wall: rm.wall,
        repo_pass: rm.repo_pass,
        targets: rm.targets,
        base_wall: Some(rb.wall),
        base_repo_pass: rb.repo_pass,
    })
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct FloorRun {
    pub(crate) wall: f64,
    /// CPU seconds of every pkgcheck process of the run.
    pub(crate) cpu: f64,
    /// The merge side's wall time and parts.
    pub(crate) side_wall: f64,
    pub(crate) repo_pass: f64,
    pub(crate) targets: f64,
    /// The base side's wall time, when both ran at once.
    pub(crate) base_wall: Option<f64>,
    /// The base side's repo pass (0 when its results were cached).
    pub(crate) base_repo_pass: f64,
}
