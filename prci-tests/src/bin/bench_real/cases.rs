//! The measurement of `--real`: each prci run with its floor ([`Measured`]), the rows of the table
//! ([`Case`]), and the order they are measured in: per (variant, arguments) block the first PR on a
//! new base, then each pull request type on every block, cheapest first.

use super::setup::PullRequests;
use super::{ArgSet, Options};
use crate::floor::{floor, FloorRun};
use crate::pkgcheck::Side;
use crate::prci::{prci_trees, run_prci, PrciRun, RepoWork};
use crate::progress;
use crate::results::{classes, median};
use anyhow::{bail, Context as _, Result};
use fixtures::real_tree::{Change, PrKind, Tree, Variant};
use fixtures::PkgcoreConfig;
use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The programs every measurement runs: prci, pkgcheck (for the floor), and pkgcheck's jobs per side.
pub(crate) struct Tools<'a> {
    pub(crate) prci: &'a Path,
    pub(crate) pkgcheck: &'a Path,
    pub(crate) jobs: usize,
}

/// A (variant, arguments) pair: its own prci work dir and floor cache, and where its rows start.
struct Block {
    variant: Variant,
    argset: ArgSet,
    work: PathBuf,
    floor_cache: PathBuf,
    /// Index in the cases of the block's first pull request type (after its cold row).
    first: usize,
}

/// One measured prci run and its floor.
#[derive(Debug)]
pub(crate) struct Measured {
    pub(crate) change: String,
    pub(crate) branch: String,
    /// The run, or why prci gave no report.
    pub(crate) run: std::result::Result<PrciRun, String>,
    /// The floor, unless prci planned a full scan (or failed).
    pub(crate) floor: Option<FloorRun>,
    /// pkgcheck runs of the floor that failed (a crash in a check): the floor is then a lower bound.
    pub(crate) floor_failures: u64,
    /// Whether the floor scanned the base side's repo-pass checks (they were not in prci's cache).
    pub(crate) floor_base_repo: bool,
}

/// One row of the table: a variant, a pull request type (or the cold first PR), an argument set.
#[derive(Debug)]
pub(crate) struct Case {
    pub(crate) variant: Variant,
    pub(crate) kind: PrKind,
    /// The first PR on a new base (a fresh work dir).
    pub(crate) cold: bool,
    pub(crate) args: ArgSet,
    pub(crate) runs: Vec<Measured>,
}

impl Case {
    pub(crate) fn ok_runs(&self) -> Vec<&PrciRun> {
        self.runs.iter().filter_map(|m| m.run.as_ref().ok()).collect()
    }

    pub(crate) fn prci_secs(&self) -> f64 {
        median(&self.ok_runs().iter().map(|r| r.wall).collect::<Vec<_>>())
    }

    pub(crate) fn floor_secs(&self) -> f64 {
        median(&self.runs.iter().filter_map(|m| m.floor.map(|f| f.wall)).collect::<Vec<_>>())
    }
}

/// prci's base-results cache units of the repo pass (`repo-pass`, `repo-checks:A,B`) in a work dir:
/// read before a run, to know whether that run had to scan the base side's repo-pass checks.
fn cached_repo_units(work: &Path) -> BTreeSet<String> {
    let mut units = BTreeSet::new();
    let Ok(dirs) = std::fs::read_dir(work.join("cache").join("base")) else {
        return units;
    };
    for dir in dirs.flatten() {
        let Ok(files) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for file in files.flatten() {
            let mut head = vec![0u8; 2048];
            let n = std::fs::File::open(file.path()).and_then(|mut f| f.read(&mut head)).unwrap_or(0);
            let head = String::from_utf8_lossy(&head[..n]);
            if let Some(rest) = head.split(" unit=").nth(1) {
                let unit = rest.split('"').next().unwrap_or("");
                if unit.starts_with("repo-") {
                    units.insert(unit.to_owned());
                }
            }
        }
    }
    units
}

fn repo_work_cached(work: &RepoWork, units: &BTreeSet<String>) -> bool {
    match work {
        RepoWork::Nothing => true,
        RepoWork::Pass => units.contains("repo-pass"),
        RepoWork::Checks(c) => units.contains("repo-pass") || units.contains(&format!("repo-checks:{}", c.join(","))),
    }
}

/// Run prci on one pull request of `block`, then its floor on prci's checkouts.
fn measure(tools: &Tools, repo: &Path, block: &Block, branch: &str, change: &Change, cold: bool) -> Measured {
    let work = &block.work;
    let before = if cold { BTreeSet::new() } else { cached_repo_units(work) };
    let extra = block.argset.args();
    let run = run_prci(tools.prci, repo, work, "master", branch, &extra).map_err(|e| format!("{e:#}"));
    let mut measured = Measured {
        change: change.describe(),
        branch: branch.to_owned(),
        run: Err(String::new()),
        floor: None,
        floor_failures: 0,
        floor_base_repo: false,
    };
    let run = match run {
        Ok(r) => r,
        Err(e) => {
            progress(&format!("prci failed on {branch}: {}", e.lines().next().unwrap_or("")));
            measured.run = Err(e);
            return measured;
        }
    };
    progress(&format!(
        "  prci {:.1} s: verdict {} (new: {}; fixed: {}), {} targets{}, repo pass: {}",
        run.wall,
        run.report["verdict"].as_str().unwrap_or("?"),
        classes(&run.report["new"]),
        classes(&run.report["fixed"]),
        run.report["scan"]["targets"].as_array().map_or(0, Vec::len),
        if run.report["scan"]["full"].as_bool() == Some(true) { " (full scan)" } else { "" },
        run.merge_repo.describe()
    ));
    if run.report["scan"]["full"].as_bool() != Some(true) {
        let base_repo = !repo_work_cached(&run.merge_repo, &before);
        match measure_floor(tools, block, &extra, &run, cold, base_repo) {
            Ok((f, failures)) => {
                progress(&format!("  floor {:.1} s", f.wall));
                measured.floor = Some(f);
                measured.floor_failures = failures;
                measured.floor_base_repo = base_repo;
            }
            Err(e) => progress(&format!("floor of {branch} failed: {e:#}")),
        }
    }
    measured.run = Ok(run);
    measured
}

/// The floor of `run` on prci's checkouts, with pkgcheck's cache kept per side under the block's
/// floor cache (warmed by one untimed floor run when `cold`), and how many of its pkgcheck runs failed.
fn measure_floor(tools: &Tools, block: &Block, extra: &[String], run: &PrciRun, cold: bool, base_repo: bool) -> Result<(FloorRun, u64)> {
    let (base_cache, merge_cache) = (block.floor_cache.join("base"), block.floor_cache.join("merge"));
    let (base_tree, merge_tree) = prci_trees(&block.work)?;
    let base_cfg = PkgcoreConfig::new(&base_tree, &[]);
    let merge_cfg = PkgcoreConfig::new(&merge_tree, &[]);
    let failures = AtomicU64::new(0);
    let b = Side { tree: &base_tree, config: base_cfg.path(), extra, failures: Some(&failures), cache_dir: Some(&base_cache) };
    let m = Side { tree: &merge_tree, config: merge_cfg.path(), extra, failures: Some(&failures), cache_dir: Some(&merge_cache) };
    if cold {
        // The floor keeps pkgcheck's cache (profiles) between runs, as a CI host can: warm it once.
        progress("  warming the floor's pkgcheck cache (one untimed floor run)");
        floor(tools.pkgcheck, &b, &m, tools.jobs, run, base_repo)?;
        failures.store(0, Ordering::Relaxed);
    }
    let f = floor(tools.pkgcheck, &b, &m, tools.jobs, run, base_repo)?;
    Ok((f, failures.load(Ordering::Relaxed)))
}

/// Measure every case: every (variant, arguments) pair is a block with its own prci work dir. The
/// first PR on each new base comes first; then the pull request types, cheapest first, each on every
/// block, so that a run cut short still has complete rows for the cheap types. `full` is the
/// full-scan time, for the table printed after each type.
pub(crate) fn measure_all(tools: &Tools, tree: &Tree, opts: &Options, prs: &PullRequests, runs: usize, full: f64) -> Result<Vec<Case>> {
    let mut cases: Vec<Case> = Vec::new();
    let mut blocks: Vec<Block> = Vec::new();
    for variant in &opts.variants {
        for argset in &opts.arg_sets {
            blocks.push(first_pr(tools, tree, opts, prs, (*variant, *argset), &mut cases)?);
        }
    }
    let mut order = opts.only.clone();
    order.sort_by_key(|k| PrKind::CHEAPEST_FIRST.iter().position(|c| c == k));
    for r in 0..runs {
        for kind in &order {
            let Some(i) = opts.only.iter().position(|k| k == kind) else {
                continue;
            };
            let list = prs.of(*kind);
            let index = if *kind == PrKind::Metadata { r + 1 } else { r };
            let Some((branch, change)) = list.get(index).or_else(|| list.last()) else {
                continue;
            };
            for block in &blocks {
                progress(&format!(
                    "{}, args {}, run {}/{runs}: {} {branch} ({})",
                    block.variant.name(),
                    block.argset.label(),
                    r + 1,
                    kind.name(),
                    change.describe()
                ));
                let m = measure(tools, &tree.repo(block.variant), block, branch, change, false);
                cases[block.first + i].runs.push(m);
            }
            progress(&format!("results so far (the report at the end repeats them):\n{}", super::report::table(&cases, full)));
        }
    }
    Ok(cases)
}

/// Start a block on a fresh work dir: measure its first PR on a new base (its cold row), and add its
/// (still empty) rows of each pull request type.
fn first_pr(
    tools: &Tools,
    tree: &Tree,
    opts: &Options,
    prs: &PullRequests,
    pair: (Variant, ArgSet),
    cases: &mut Vec<Case>,
) -> Result<Block> {
    let (variant, argset) = pair;
    let work = tree.dir.join("work").join(format!("{}-{}", variant.name(), argset.slug()));
    let floor_cache = work.with_extension("floor-cache");
    for d in [&work, &floor_cache] {
        if d.exists() {
            std::fs::remove_dir_all(d).with_context(|| format!("remove {}", d.display()))?;
        }
    }
    let Some((branch, change)) = prs.of(PrKind::Metadata).first() else {
        bail!("no metadata pull request for the first PR on a new base");
    };
    progress(&format!(
        "{}, args {}: first PR on a new base ({branch}; fresh work dir: mirror, checkouts, md5-cache of both trees)",
        variant.name(),
        argset.label()
    ));
    let block = Block { variant, argset, work, floor_cache, first: cases.len() + 1 };
    let m = measure(tools, &tree.repo(variant), &block, branch, change, true);
    cases.push(Case { variant, kind: PrKind::Metadata, cold: true, args: argset, runs: vec![m] });
    for kind in &opts.only {
        cases.push(Case { variant, kind: *kind, cold: false, args: argset, runs: vec![] });
    }
    Ok(block)
}
