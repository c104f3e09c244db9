//! `prci-bench --real`: `prci check` on a Gentoo-size tree of real ebuilds, side by side with one
//! full-tree `pkgcheck scan` (Gentoo CI's method, cached with the tree) and with the floor of each
//! run (the bare pkgcheck runs of its plan), for several kinds of pull request, with the md5-cache
//! committed and not, with and without configured pkgcheck arguments. Prints a markdown table with
//! the targets of issue 8 marked PASS/MISS.

use super::{
    binaries, children_cpu, classes, floor, loadavg, median, mem_total, pkgcheck_run, prci_trees,
    progress, run_prci, secs, Args, FloorRun, Pass, PrciRun, RepoWork, Side,
};
use anyhow::{bail, Context as _, Result};
use fixtures::real_tree::{self, Analysis, Change, PrKind, Spec, Variant, DISABLED_CHECK_ARG};
use fixtures::PkgcoreConfig;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The configured pkgcheck arguments of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ArgSet {
    /// No configured arguments.
    None,
    /// `--pkgcheck-arg=--checks=-MetadataVarCheck` (a check disabled, as an operator of this tree would).
    Disabled,
}

impl ArgSet {
    fn args(self) -> Vec<String> {
        match self {
            ArgSet::None => vec![],
            ArgSet::Disabled => vec![DISABLED_CHECK_ARG.to_owned()],
        }
    }

    /// For the table.
    fn label(self) -> &'static str {
        match self {
            ArgSet::None => "none",
            ArgSet::Disabled => "`--checks=-MetadataVarCheck`",
        }
    }

    /// For directory names.
    fn slug(self) -> &'static str {
        match self {
            ArgSet::None => "noargs",
            ArgSet::Disabled => "disabled",
        }
    }
}

/// The options of `--real`.
#[derive(Debug)]
pub(crate) struct Options {
    pub copies: usize,
    pub tarball: Option<PathBuf>,
    pub only: Vec<PrKind>,
    pub variants: Vec<Variant>,
    pub arg_sets: Vec<ArgSet>,
    /// Time the full-tree scan again even when the tree has a cached time (`--rescan`).
    pub rescan: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            copies: 14,
            tarball: None,
            only: PrKind::ALL.to_vec(),
            variants: Variant::ALL.to_vec(),
            arg_sets: vec![ArgSet::None, ArgSet::Disabled],
            rescan: false,
        }
    }
}

impl Options {
    pub fn set_only(&mut self, list: &str) -> Result<()> {
        let mut kinds = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let kind = PrKind::parse(name).with_context(|| {
                format!(
                    "--only: `{name}` is not one of {}",
                    PrKind::ALL.map(PrKind::name).join(", ")
                )
            })?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if kinds.is_empty() {
            bail!("--only: no pull request type given");
        }
        kinds.sort();
        self.only = kinds;
        Ok(())
    }

    pub fn set_variant(&mut self, v: &str) -> Result<()> {
        self.variants = match v {
            "committed" => vec![Variant::Committed],
            "uncommitted" => vec![Variant::Uncommitted],
            "both" => Variant::ALL.to_vec(),
            other => bail!("--variant: `{other}` is not committed, uncommitted or both"),
        };
        Ok(())
    }

    pub fn set_args(&mut self, v: &str) -> Result<()> {
        self.arg_sets = match v {
            "none" => vec![ArgSet::None],
            "disabled" => vec![ArgSet::Disabled],
            "both" => vec![ArgSet::None, ArgSet::Disabled],
            other => bail!("--args: `{other}` is not none, disabled or both"),
        };
        Ok(())
    }
}

/// The snapshot in `../shared/data/` next to the workspace (the newest `portage-stable-*.tar.xz`).
fn default_tarball() -> Result<PathBuf> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&data)
        .with_context(|| format!("read {} (pass --tarball)", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("portage-stable-") && n.ends_with(".tar.xz")
            })
        })
        .collect();
    found.sort();
    let path = found.pop().with_context(|| {
        format!(
            "no portage-stable-*.tar.xz in {} (pass --tarball)",
            data.display()
        )
    })?;
    Ok(path.canonicalize()?)
}

/// The commit of prci this program measures (the workspace it was built from).
fn prci_commit() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match out(&["rev-parse", "--short", "HEAD"]) {
        Some(sha) => {
            let dirty = out(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{sha} with uncommitted changes")
            } else {
                sha
            }
        }
        None => "unknown".into(),
    }
}

/// One measured prci run and its floor.
#[derive(Debug)]
struct Measured {
    change: String,
    branch: String,
    /// The run, or why prci gave no report.
    run: std::result::Result<PrciRun, String>,
    /// The floor, unless prci planned a full scan (or failed).
    floor: Option<FloorRun>,
    /// pkgcheck runs of the floor that failed (a crash in a check): the floor is then a lower bound.
    floor_failures: u64,
    /// Whether the floor scanned the base side's repo-pass checks (they were not in prci's cache).
    floor_base_repo: bool,
}

/// One row of the table: a variant, a pull request type (or the cold first PR), an argument set.
#[derive(Debug)]
struct Case {
    variant: Variant,
    kind: PrKind,
    /// The first PR on a new base (a fresh work dir).
    cold: bool,
    args: ArgSet,
    runs: Vec<Measured>,
}

impl Case {
    fn ok_runs(&self) -> Vec<&PrciRun> {
        self.runs
            .iter()
            .filter_map(|m| m.run.as_ref().ok())
            .collect()
    }

    fn prci_secs(&self) -> f64 {
        median(&self.ok_runs().iter().map(|r| r.wall).collect::<Vec<_>>())
    }

    fn floor_secs(&self) -> f64 {
        median(
            &self
                .runs
                .iter()
                .filter_map(|m| m.floor.map(|f| f.wall))
                .collect::<Vec<_>>(),
        )
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
            let n = std::fs::File::open(file.path())
                .and_then(|mut f| f.read(&mut head))
                .unwrap_or(0);
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
        RepoWork::Checks(c) => {
            units.contains("repo-pass") || units.contains(&format!("repo-checks:{}", c.join(",")))
        }
    }
}

/// Run prci on one pull request, then its floor on prci's checkouts.
#[allow(clippy::too_many_arguments)]
fn measure(
    prci: &Path,
    pkgcheck: &Path,
    repo: &Path,
    work: &Path,
    floor_cache: &Path,
    branch: &str,
    change: &Change,
    args: ArgSet,
    cold: bool,
    jobs: usize,
) -> Measured {
    let before = if cold {
        BTreeSet::new()
    } else {
        cached_repo_units(work)
    };
    let extra = args.args();
    let run = run_prci(prci, repo, work, "master", branch, &extra).map_err(|e| format!("{e:#}"));
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
            progress(&format!(
                "prci failed on {branch}: {}",
                e.lines().next().unwrap_or("")
            ));
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
        if run.report["scan"]["full"].as_bool() == Some(true) {
            " (full scan)"
        } else {
            ""
        },
        run.merge_repo.describe()
    ));
    if run.report["scan"]["full"].as_bool() != Some(true) {
        let base_repo = !repo_work_cached(&run.merge_repo, &before);
        let (base_cache, merge_cache) = (floor_cache.join("base"), floor_cache.join("merge"));
        let result = prci_trees(work).and_then(|(base_tree, merge_tree)| {
            let base_cfg = PkgcoreConfig::new(&base_tree, &[]);
            let merge_cfg = PkgcoreConfig::new(&merge_tree, &[]);
            let failures = AtomicU64::new(0);
            let b = Side {
                tree: &base_tree,
                config: base_cfg.path(),
                extra: &extra,
                failures: Some(&failures),
                cache_dir: Some(&base_cache),
            };
            let m = Side {
                tree: &merge_tree,
                config: merge_cfg.path(),
                extra: &extra,
                failures: Some(&failures),
                cache_dir: Some(&merge_cache),
            };
            if cold {
                // The floor keeps pkgcheck's cache (profiles) between runs, as a CI host can: warm it once.
                progress("  warming the floor's pkgcheck cache (one untimed floor run)");
                floor(pkgcheck, &b, &m, jobs, &run, base_repo)?;
                failures.store(0, Ordering::Relaxed);
            }
            let f = floor(pkgcheck, &b, &m, jobs, &run, base_repo)?;
            Ok((f, failures.load(Ordering::Relaxed)))
        });
        match result {
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

pub(crate) fn run(args: &Args) -> Result<()> {
    let opts = args.real.as_ref().context("not --real")?;
    let (prci, pkgcheck) = binaries(args)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let prci_jobs: usize = match std::env::var("PRCI__CHECKER__JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(j) if j > 0 => j,
        _ => (cores / 2).max(1),
    };
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set (pass --dir)")?)
            .join(".cache/prci-bench/real"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    let tarball = match &opts.tarball {
        Some(t) => t
            .canonicalize()
            .with_context(|| format!("{}", t.display()))?,
        None => default_tarball()?,
    };
    let spec = Spec {
        tarball,
        copies: opts.copies,
    };
    progress(&format!("benchmark directory {}", dir.display()));
    let load_before = loadavg();
    // Read now: the workspace may move on while the benchmark runs.
    let commit = prci_commit();

    // ------------------------------------------------------------------ the tree (cached)
    let mut tree = real_tree::ensure(&dir, &spec, cores, &|m: &str| progress(m))?;
    let ebuilds = tree.meta["ebuilds"].as_u64().unwrap_or(0);
    if ebuilds < 18_000 {
        progress(&format!(
            "note: {ebuilds} ebuilds, smaller than Gentoo (use --copies 14 or more for ≥ 18,000)"
        ));
    }
    let base_repo = tree.repo(Variant::Committed);
    if opts.rescan || tree.meta["full_scan"]["seconds"].as_f64().is_none() {
        progress(&format!(
            "baseline: one full-tree pkgcheck scan -j {cores} {DISABLED_CHECK_ARG} of the base tree ({ebuilds} ebuilds), \
             timed once and cached with the tree: about 12 minutes on 2 cores for 18,645 ebuilds"
        ));
        let cfg = PkgcoreConfig::new(&base_repo, &[]);
        let extra = [DISABLED_CHECK_ARG.to_owned()];
        let side = Side {
            tree: &base_repo,
            config: cfg.path(),
            extra: &extra,
            failures: None,
            cache_dir: None,
        };
        let load = loadavg();
        let cpu = children_cpu();
        let (seconds, results) = pkgcheck_run(&pkgcheck, &side, cores, Pass::Full)?;
        let cpu = children_cpu() - cpu;
        progress(&format!("full scan: {seconds:.1} s, {results} results"));
        tree.set(
            "full_scan",
            json!({
                "seconds": seconds,
                "cpu_seconds": cpu,
                "results": results,
                "jobs": cores,
                "args": [DISABLED_CHECK_ARG],
                "load_before": load,
                "load_after": loadavg(),
            }),
        )?;
    }
    let full = tree.meta["full_scan"]["seconds"]
        .as_f64()
        .unwrap_or(f64::NAN);

    // ------------------------------------------------------------------ the pull requests
    let analysis = Analysis::read(&base_repo, &tree.original_categories(), opts.copies)?;
    let runs = args.runs;
    let mut changes: Vec<(PrKind, Vec<(String, Change)>)> = Vec::new();
    for kind in PrKind::ALL {
        // The metadata list also gives the cold first PR (index 0).
        let wanted = opts.only.contains(&kind);
        if !wanted && kind != PrKind::Metadata {
            continue;
        }
        let count = if kind == PrKind::Metadata {
            runs + 1
        } else {
            runs
        };
        let list = analysis.changes(&base_repo, kind, count)?;
        let named: Vec<(String, Change)> = list
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let n = if kind == PrKind::Metadata { i } else { i + 1 };
                (format!("bench-{}-{n}", kind.name()), c)
            })
            .collect();
        changes.push((kind, named));
    }
    for variant in &opts.variants {
        let repo = tree.repo(*variant);
        for (_, list) in &changes {
            for (branch, change) in list {
                real_tree::make_pr(&repo, *variant, change, branch)
                    .with_context(|| format!("{}: {branch}", variant.name()))?;
            }
        }
    }
    let list_of = |kind: PrKind| -> &[(String, Change)] {
        changes
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(&[], |(_, l)| l.as_slice())
    };
    for (kind, list) in &changes {
        for (branch, change) in list {
            progress(&format!("{} {branch}: {}", kind.name(), change.describe()));
        }
    }

    // ------------------------------------------------------------------ measurement
    // Every (variant, arguments) pair is a block with its own prci work dir. The first PR on each
    // new base comes first; then the pull request types, cheapest first, each on every block, so
    // that a run cut short still has complete rows for the cheap types.
    let started = Instant::now();
    let mut cases: Vec<Case> = Vec::new();
    let mut blocks: Vec<(Variant, ArgSet, PathBuf, PathBuf, usize)> = Vec::new();
    for variant in &opts.variants {
        for argset in &opts.arg_sets {
            let work = tree
                .dir
                .join("work")
                .join(format!("{}-{}", variant.name(), argset.slug()));
            let floor_cache = work.with_extension("floor-cache");
            for d in [&work, &floor_cache] {
                if d.exists() {
                    std::fs::remove_dir_all(d)
                        .with_context(|| format!("remove {}", d.display()))?;
                }
            }
            let Some((branch, change)) = list_of(PrKind::Metadata).first() else {
                bail!("no metadata pull request for the first PR on a new base");
            };
            progress(&format!(
                "{}, args {}: first PR on a new base ({branch}; fresh work dir: mirror, checkouts, md5-cache of both trees)",
                variant.name(),
                argset.label()
            ));
            let m = measure(
                &prci,
                &pkgcheck,
                &tree.repo(*variant),
                &work,
                &floor_cache,
                branch,
                change,
                *argset,
                true,
                prci_jobs,
            );
            cases.push(Case {
                variant: *variant,
                kind: PrKind::Metadata,
                cold: true,
                args: *argset,
                runs: vec![m],
            });
            let first = cases.len();
            for kind in &opts.only {
                cases.push(Case {
                    variant: *variant,
                    kind: *kind,
                    cold: false,
                    args: *argset,
                    runs: vec![],
                });
            }
            blocks.push((*variant, *argset, work, floor_cache, first));
        }
    }
    let mut order = opts.only.clone();
    order.sort_by_key(|k| PrKind::CHEAPEST_FIRST.iter().position(|c| c == k));
    for r in 0..runs {
        for kind in &order {
            let Some(i) = opts.only.iter().position(|k| k == kind) else {
                continue;
            };
            let list = list_of(*kind);
            let index = if *kind == PrKind::Metadata { r + 1 } else { r };
            let Some((branch, change)) = list.get(index).or_else(|| list.last()) else {
                continue;
            };
            for (variant, argset, work, floor_cache, first) in &blocks {
                progress(&format!(
                    "{}, args {}, run {}/{runs}: {} {branch} ({})",
                    variant.name(),
                    argset.label(),
                    r + 1,
                    kind.name(),
                    change.describe()
                ));
                let m = measure(
                    &prci,
                    &pkgcheck,
                    &tree.repo(*variant),
                    work,
                    floor_cache,
                    branch,
                    change,
                    *argset,
                    false,
                    prci_jobs,
                );
                cases[first + i].runs.push(m);
            }
            progress(&format!(
                "results so far (the report at the end repeats them):\n{}",
                table(&cases, full)
            ));
        }
    }
    let measure_secs = secs(started);

    print_report(&Report {
        tree: &tree.meta,
        tree_dir: &tree.dir,
        spec: &spec,
        analysis: &analysis,
        cases: &cases,
        full,
        cores,
        prci_jobs,
        runs,
        load: (load_before, loadavg()),
        measure_secs,
        commit,
    });
    Ok(())
}

struct Report<'a> {
    tree: &'a Value,
    tree_dir: &'a Path,
    spec: &'a Spec,
    analysis: &'a Analysis,
    cases: &'a [Case],
    full: f64,
    cores: usize,
    prci_jobs: usize,
    runs: usize,
    load: (String, String),
    measure_secs: f64,
    /// The workspace's commit when the benchmark started.
    commit: String,
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn fmt_secs(v: f64) -> String {
    if v.is_nan() {
        "—".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

fn fmt_ratio(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        "—".into()
    } else if v < 10.0 {
        format!("{v:.2}×")
    } else {
        format!("{v:.0}×")
    }
}

/// The targets of issue 8 that apply to a row, each marked PASS or MISS.
fn targets(case: &Case, full: f64) -> String {
    let prci = case.prci_secs();
    if prci.is_nan() {
        return "no report: MISS".into();
    }
    let speedup = full / prci;
    let floor = case.floor_secs();
    let mut out = Vec::new();
    if !case.cold {
        match case.kind {
            PrKind::Metadata => {
                out.push(format!("≥100× full: {}", mark(speedup >= 100.0)));
                if floor.is_nan() {
                    out.push("≤2× floor: MISS (no floor)".into());
                } else {
                    out.push(format!("≤2× floor: {}", mark(prci <= 2.0 * floor)));
                }
            }
            PrKind::Bump | PrKind::NewPackage => {
                out.push(format!("≥100× full: {}", mark(speedup >= 100.0)));
            }
            PrKind::KeywordDrop | PrKind::Eclass => {}
        }
        out.push(format!("< full: {}", mark(prci < full)));
    }
    out.push(format!("< 2 full: {}", mark(prci < 2.0 * full)));
    out.join("; ")
}

fn verdict(case: &Case) -> String {
    let runs = case.ok_runs();
    if runs.is_empty() {
        return "error".into();
    }
    let mut seen: Vec<String> = runs
        .iter()
        .map(|r| {
            format!(
                "{} {}/{}",
                r.report["verdict"].as_str().unwrap_or("?"),
                r.report["new"].as_array().map_or(0, Vec::len),
                r.report["fixed"].as_array().map_or(0, Vec::len)
            )
        })
        .collect();
    seen.dedup();
    seen.join(", ")
}

fn plan(case: &Case) -> String {
    let runs = case.ok_runs();
    let Some(r) = runs.first() else {
        return "—".into();
    };
    if r.report["scan"]["full"].as_bool() == Some(true) {
        return "full scan".into();
    }
    let n = r.report["scan"]["targets"].as_array().map_or(0, Vec::len);
    let repo = match &r.merge_repo {
        RepoWork::Nothing => "no repo pass".to_owned(),
        RepoWork::Pass => "whole repo pass".to_owned(),
        RepoWork::Checks(c) => c.join(","),
    };
    format!("{n} targets; {repo}")
}

/// The markdown table: one row per case.
fn table(cases: &[Case], full: f64) -> String {
    let mut out = String::new();
    out.push_str("| variant | PR | configured args | prci s | floor s | full scan s | full / prci | prci / floor | verdict new/fixed | plan (first run) | targets |\n");
    out.push_str("|---|---|---|---:|---:|---:|---:|---:|---|---|---|\n");
    for c in cases {
        let prci = c.prci_secs();
        let floor = c.floor_secs();
        let partial = c.runs.iter().any(|m| m.floor_failures > 0);
        let floor_text = if floor.is_nan() {
            if plan(c) == "full scan" {
                "full plan: not run".into()
            } else {
                "—".into()
            }
        } else if partial {
            format!("≥ {} (pkgcheck crashed)", fmt_secs(floor))
        } else {
            fmt_secs(floor)
        };
        let kind = if c.cold {
            "first PR on a new base (metadata)".to_owned()
        } else {
            c.kind.name().to_owned()
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            c.variant.name(),
            kind,
            c.args.label(),
            fmt_secs(prci),
            floor_text,
            fmt_secs(full),
            fmt_ratio(full / prci),
            fmt_ratio(prci / floor),
            verdict(c),
            plan(c),
            targets(c, full)
        ));
    }
    out
}

fn print_report(r: &Report) {
    let tools = r
        .cases
        .iter()
        .flat_map(|c| c.ok_runs())
        .next()
        .map(|run| {
            format!(
                "pkgcheck {} / pkgcore {}",
                run.report["tools"]["pkgcheck"].as_str().unwrap_or("?"),
                run.report["tools"]["pkgcore"].as_str().unwrap_or("?")
            )
        })
        .unwrap_or_else(|| "pkgcheck ?".into());
    let t = r.tree;
    let f = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
    println!();
    println!(
        "prci-bench --real: {} ebuilds ({} real ones of {}, their {} categories repeated {} times, each copy depending on its original)",
        t["ebuilds"],
        t["original_ebuilds"],
        r.spec.stem(),
        t["original_categories"].as_array().map_or(0, Vec::len),
        r.spec.copies
    );
    println!("  tree: {}", r.tree_dir.display());
    println!(
        "  built in {:.0} s: unpack {:.1}, copies {:.1}, pmaint regen -t {} {:.1} ({} md5-cache entries, regen exit {}), git {:.1}",
        f("build_seconds"),
        f("unpack_seconds"),
        f("copy_seconds"),
        r.cores,
        f("regen_seconds"),
        t["md5_cache_entries"],
        t["regen_exit"],
        f("commit_seconds")
    );
    println!(
        "  full-tree pkgcheck scan -j {} {DISABLED_CHECK_ARG} of the base tree: {:.1} s ({} results, {:.0} s CPU); Gentoo's method per PR (merge + base) = {:.1} s",
        t["full_scan"]["jobs"],
        r.full,
        t["full_scan"]["results"],
        t["full_scan"]["cpu_seconds"].as_f64().unwrap_or(f64::NAN),
        2.0 * r.full
    );
    println!(
        "  prci {}; {}; machine: {} cores, {} RAM; prci and floor pkgcheck -j {} per side",
        r.commit,
        tools,
        r.cores,
        mem_total(),
        r.prci_jobs
    );
    println!(
        "  load average at start: {}; at end: {}; measurement took {:.0} s; {} run(s) per case (median)",
        r.load.0, r.load.1, r.measure_secs, r.runs
    );
    let a = r.analysis;
    println!(
        "  pull requests on original packages (each has {} copies depending on it); the committed variant's PRs also update the md5-cache entries they affect",
        a.copies
    );
    println!();
    print!("{}", table(r.cases, r.full));
    println!();
    println!("per run (seconds; prci = checkout + regen + plan + scan + confirm + rest)");
    for c in r.cases {
        for m in &c.runs {
            let head = format!(
                "  {} {} {}{}: {}",
                c.variant.name(),
                c.args.slug(),
                m.branch,
                if c.cold { " (cold)" } else { "" },
                m.change
            );
            println!("{head}");
            match &m.run {
                Err(e) => println!(
                    "    prci failed: {}",
                    e.lines().take(3).collect::<Vec<_>>().join(" | ")
                ),
                Ok(run) => {
                    let g = |k: &str| {
                        run.report["timings"][format!("{k}_seconds")]
                            .as_f64()
                            .unwrap_or(0.0)
                    };
                    let steps = g("checkout") + g("regen") + g("plan") + g("scan") + g("confirm");
                    println!(
                        "    prci {:.2} = {:.2} + {:.2} + {:.2} + {:.2} + {:.2} + {:.2}; CPU {:.1} s; verdict {}; new: {}; fixed: {}",
                        run.wall,
                        g("checkout"),
                        g("regen"),
                        g("plan"),
                        g("scan"),
                        g("confirm"),
                        run.wall - steps,
                        run.cpu,
                        run.report["verdict"].as_str().unwrap_or("?"),
                        classes(&run.report["new"]),
                        classes(&run.report["fixed"])
                    );
                    let targets = run.report["scan"]["targets"].as_array().map_or(0, Vec::len);
                    match &m.floor {
                        Some(fl) => println!(
                            "    floor {:.2} (merge side {:.2} = repo checks {:.2} + targets {:.2}; base side {:.2}{}){}; {} targets; repo pass: {}",
                            fl.wall,
                            fl.side_wall,
                            fl.repo_pass,
                            fl.targets,
                            fl.base_wall.unwrap_or(f64::NAN),
                            if m.floor_base_repo {
                                format!(", its repo checks {:.2}", fl.base_repo_pass)
                            } else {
                                ", repo checks cached".into()
                            },
                            if m.floor_failures > 0 {
                                format!(" [{} pkgcheck runs crashed: a lower bound]", m.floor_failures)
                            } else {
                                String::new()
                            },
                            targets,
                            run.merge_repo.describe()
                        ),
                        None => println!(
                            "    no floor ({}); {} targets; repo pass: {}",
                            if run.report["scan"]["full"].as_bool() == Some(true) {
                                "prci planned a full scan"
                            } else {
                                "it failed"
                            },
                            targets,
                            run.merge_repo.describe()
                        ),
                    }
                }
            }
        }
    }
    println!();
}
