//! The synthetic benchmark: the generated repository and its pull requests, a warm-up, then timed
//! rounds (prci with a cold and a warm base-results cache, the floor of each, the full-scan baseline).

use super::floor::{floor, FloorRun};
use super::pkgcheck::{pkgcheck_run, Pass, Side};
use super::prci::{binaries, default_prci_jobs, prci_trees, run_prci, PrciRun};
use super::process::{children_cpu, cores, loadavg, secs};
use super::progress;
use super::repo::{checkout_branch, copy_dir, make_pr, pick_packages, pr_branch, REPO_NAME};
use super::results::{print_results, Results};
use super::Args;
use anyhow::{bail, Context as _, Result};
use fixtures::{generated_atom, PkgcoreConfig, Repo};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One pull request: its branch, and a package depending on the package it changes.
struct Pr {
    branch: String,
    rdep: String,
}

/// What the timed rounds measured, one entry per round.
#[derive(Default)]
struct Rounds {
    cold: Vec<PrciRun>,
    hot: Vec<PrciRun>,
    baseline: Vec<f64>,
    baseline_cpu: Vec<f64>,
    /// Results of the (last) full scan.
    baseline_results: usize,
    floor_both: Vec<FloorRun>,
    floor_merge: Vec<FloorRun>,
    /// Load average when each round started.
    round_load: Vec<String>,
}

/// What every round runs on: the binaries, the repository, prci's work dir and checkouts.
struct Bench<'a> {
    prci: &'a Path,
    pkgcheck: &'a Path,
    repo: &'a Path,
    work: &'a Path,
    /// prci's checkouts of the base and of the merge, as floor sides.
    base: Side<'a>,
    merge: Side<'a>,
    /// The repository at the pull request's head, for the full-scan baseline.
    full: Side<'a>,
    prci_jobs: usize,
    baseline_jobs: usize,
    runs: usize,
}

pub(crate) fn run(args: &Args) -> Result<()> {
    let cores = cores();
    let prci_jobs = default_prci_jobs(cores);
    let baseline_jobs = cores;
    let (prci, pkgcheck) = binaries(args)?;

    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
            d.canonicalize()?
        }
        None => {
            tmp = tempfile::Builder::new().prefix("prci-bench-").tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let work = dir.join("work");
    progress(&format!("benchmark directory {}", dir.display()));
    let load_before = loadavg();
    let mut setup: Vec<(String, f64)> = Vec::new();
    let repo_path = repository(args, &dir, &mut setup)?;
    let (prs, what) = pull_requests(args, &repo_path)?;
    let rdep = prs[0].rdep.clone();
    checkout_branch(&repo_path, &prs[0].branch)?;
    let (base_tree, merge_tree) = warm_up(&prci, &repo_path, &work, &mut setup)?;

    let base_cfg = PkgcoreConfig::new(&base_tree, &[]);
    let merge_cfg = PkgcoreConfig::new(&merge_tree, &[]);
    let repo_cfg = PkgcoreConfig::new(&repo_path, &[]);
    let bench = Bench {
        prci: &prci,
        pkgcheck: &pkgcheck,
        repo: &repo_path,
        work: &work,
        base: Side { tree: &base_tree, config: base_cfg.path(), extra: &[], failures: None, cache_dir: None },
        merge: Side { tree: &merge_tree, config: merge_cfg.path(), extra: &[], failures: None, cache_dir: None },
        full: Side { tree: &repo_path, config: repo_cfg.path(), extra: &[], failures: None, cache_dir: None },
        prci_jobs,
        baseline_jobs,
        runs: args.runs,
    };
    let mut rounds = Rounds::default();
    for round in 1..=args.runs {
        timed_round(&bench, round, (&prs[2 * round - 2].branch, &prs[2 * round - 1].branch), &mut rounds)?;
    }

    print_results(&Results {
        args,
        load: (load_before, loadavg()),
        cores,
        prci_jobs,
        baseline_jobs,
        rdep: &rdep,
        what: &what,
        setup: &setup,
        cold: &rounds.cold,
        hot: &rounds.hot,
        baseline: &rounds.baseline,
        baseline_cpu: &rounds.baseline_cpu,
        baseline_results: rounds.baseline_results,
        floor_both: &rounds.floor_both,
        floor_merge: &rounds.floor_merge,
        round_load: &rounds.round_load,
    });
    Ok(())
}

/// The generated repository `dir/repo` (reused when it was generated with the same number of
/// packages, generated otherwise), canonical.
fn repository(args: &Args, dir: &Path, setup: &mut Vec<(String, f64)>) -> Result<PathBuf> {
    let repo_path = dir.join("repo");
    let marker = dir.join("packages");
    if repo_path.join(".git").exists() {
        let have = std::fs::read_to_string(&marker).unwrap_or_default();
        if have.trim() != args.packages.to_string() {
            bail!(
                "{} holds a repository generated with {} packages, not {}: use another --dir",
                repo_path.display(),
                if have.trim().is_empty() { "an unknown number of" } else { have.trim() },
                args.packages
            );
        }
        progress(&format!("reusing the {}-package repository", args.packages));
    } else {
        progress(&format!("generating {} packages", args.packages));
        let t = Instant::now();
        drop(Repo::generate_at(&repo_path, REPO_NAME, args.packages));
        setup.push((format!("generate {} packages (files + one git commit)", args.packages), secs(t)));
        std::fs::write(&marker, format!("{}\n", args.packages))?;
    }
    Ok(repo_path.canonicalize()?)
}

/// The pull request branches, and a description of the first one's change.
fn pull_requests(args: &Args, repo_path: &Path) -> Result<(Vec<Pr>, String)> {
    // One per prci run (2 per round): each run checks a pull request the previous run did not, as a
    // CI does, so the merge checkout, its regen and the base side's package targets are never reused.
    let picks = pick_packages(args.packages, 2 * args.runs);
    if picks.len() < 2 * args.runs {
        bail!(
            "{} packages leave room for {} distinct pull requests; {} are needed (use fewer --runs)",
            args.packages,
            picks.len(),
            2 * args.runs
        );
    }
    let mut prs: Vec<Pr> = Vec::new();
    let mut what = String::new();
    for (k, (pr_index, rdep_index)) in picks.iter().enumerate() {
        let atom = generated_atom(args.packages, *pr_index);
        let rdep = generated_atom(args.packages, *rdep_index);
        let branch = pr_branch(k + 1);
        let (head, w) = make_pr(repo_path, &atom, args.change, &branch)?;
        if k == 0 {
            what = w;
        }
        progress(&format!("pull request {branch} {}: {atom} ({rdep} depends on it)", &head[..12]));
        prs.push(Pr { branch, rdep });
    }
    Ok((prs, what))
}

/// The warm-up (not timed in the table): a first prci job, and the repository's md5-cache at the PR
/// head for the full-scan baseline. Returns prci's checkouts of the base and of the merge.
fn warm_up(prci: &Path, repo_path: &Path, work: &Path, setup: &mut Vec<(String, f64)>) -> Result<(PathBuf, PathBuf)> {
    progress("warm-up: prci check master..master (mirror, checkouts, md5-cache of both trees)");
    let warm = run_prci(prci, repo_path, work, "master", "master", &[])?;
    setup.push(("prci check master..master (first job: mirror, checkouts, full regen of both trees)".into(), warm.wall));
    let (base_tree, merge_tree) = prci_trees(work)?;

    // The md5-cache holds no paths: seed the repository's from prci's master checkout instead of
    // regenerating 10,000 ebuilds a third time; regen then only does the pull request's package.
    let cache_rel = Path::new("metadata/md5-cache");
    if !repo_path.join(cache_rel).exists() {
        copy_dir(&merge_tree.join(cache_rel), &repo_path.join(cache_rel))?;
    }
    progress("warm-up: pmaint regen of the repository at the PR head (for the full-scan baseline)");
    let t = Instant::now();
    fixtures::regen(repo_path, &[]);
    setup.push(("pmaint regen of the repository at the PR head (md5-cache seeded from master)".into(), secs(t)));
    let t = Instant::now();
    fixtures::regen(repo_path, &[]);
    setup.push(("pmaint regen of the repository again, nothing changed (a CI keeping its cache)".into(), secs(t)));
    Ok((base_tree, merge_tree))
}

/// Round `round`: prci on the first pull request with a cold base cache and its floor, prci on the
/// second with a warm one and its floor, then the full-tree baseline.
fn timed_round(b: &Bench, round: usize, (cold_pr, warm_pr): (&str, &str), out: &mut Rounds) -> Result<()> {
    let runs = b.runs;
    out.round_load.push(loadavg());
    progress(&format!("round {round}/{runs}: prci check, cold base cache (first pull request on this base)"));
    let cache = b.work.join("cache").join("base");
    if cache.exists() {
        std::fs::remove_dir_all(&cache).with_context(|| format!("remove {}", cache.display()))?;
    }
    out.cold.push(run_prci(b.prci, b.repo, b.work, "master", cold_pr, &[])?);
    progress(&format!("round {round}/{runs}: floor of that run (its bare pkgcheck runs, both sides at once)"));
    out.floor_both.push(floor(b.pkgcheck, &b.base, &b.merge, b.prci_jobs, out.cold.last().expect("pushed"), true)?);

    progress(&format!("round {round}/{runs}: prci check of the next pull request, warm base cache"));
    out.hot.push(run_prci(b.prci, b.repo, b.work, "master", warm_pr, &[])?);
    progress(&format!("round {round}/{runs}: floor of that run (no base repo pass: it is cached)"));
    out.floor_merge.push(floor(b.pkgcheck, &b.base, &b.merge, b.prci_jobs, out.hot.last().expect("pushed"), false)?);

    progress(&format!("round {round}/{runs}: full-tree pkgcheck scan -j {}", b.baseline_jobs));
    let cpu = children_cpu();
    let (scan_secs, results) = pkgcheck_run(b.pkgcheck, &b.full, b.baseline_jobs, Pass::Full)?;
    out.baseline.push(scan_secs);
    out.baseline_cpu.push(children_cpu() - cpu);
    out.baseline_results = results;
    Ok(())
}
