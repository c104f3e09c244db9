//! `prci-bench`: times `prci check` of one-package pull requests on a generated repository (the first on
//! a base, with a cold base-results cache, and the next one) side by side with today's full-tree
//! `pkgcheck scan` (the baseline) and the bare pkgcheck runs prci makes for each (the floor), and prints a table.
//!
//! ```text
//! cargo build --release -p prci -p prci-tests && target/release/prci-bench [--packages N] [--dir D] [--runs K]
//! ```
//!
//! Layout under the benchmark directory: `repo/` (the generated repository, reused when it is already
//! there), `packages` (how many packages `repo/` was generated with), `work/` (prci's work dir).
//!
//! `--real` measures on real ebuilds instead: a Gentoo-size tree built from the real snapshot in
//! `../shared/data/` (see `bench_real/mod.rs` and `fixtures::real_tree`).

use anyhow::{bail, Context as _, Result};
use fixtures::{generated_atom, PkgcoreConfig, Repo};
use git2::{BranchType, FileMode, Repository, Signature, Time};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "bench_real/mod.rs"]
mod real;

const USAGE: &str = "\
usage: prci-bench [--packages N] [--dir D] [--runs K] [--change license|bump] [--prci PATH]
       prci-bench --real [--copies N] [--dir D] [--runs K] [--only TYPE[,TYPE]]
                  [--variant committed|uncommitted|both] [--args none|disabled|both]
                  [--tarball PATH] [--rescan] [--prci PATH]

Times `prci check` of one-package pull requests (a different one every run: the first on a base
with a cold base-results cache, then the next one) against a full-tree `pkgcheck scan` (the
baseline) and the bare pkgcheck runs prci makes for each (the floor).

  --packages N   packages in the generated repository (default 10000)
  --dir D        benchmark directory (default: a temporary directory, removed at the end);
                 a repository generated there before with the same N is reused.
                 On a slow disk, a directory under /dev/shm helps.
  --runs K       timed runs of each measurement (default 3; makes 2K pull requests)
  --change C     what the pull request does to its one package: `license` (LICENSE names a
                 licence that does not exist: one new error, so prci confirms it by rescanning)
                 or `bump` (renames pkg-1.0 to pkg-1.1: a clean pull request). Default license.
  --prci PATH    the prci binary (default: `prci` next to this program)

--real: the same comparison on real ebuilds. Builds a Gentoo-size tree from the real snapshot
(its categories repeated --copies times under new names, each copy depending on its original;
one `pmaint regen`), committed twice (md5-cache committed, and ignored as in Gentoo's git), and
times one full-tree `pkgcheck scan -j <cores> --checks=-MetadataVarCheck` of it (Gentoo CI's
method). The trees and that time are cached under the benchmark directory, so a rerun costs only
the pull requests. Building takes about 20 minutes on 2 cores for --copies 14 (the full scan
alone about 12). Then, per variant and argument set, on a fresh prci work dir: the first pull
request on a new base (cold), then --runs pull requests of each type on that base, each next to
its floor; prints a markdown table with the issue's targets marked PASS/MISS.

  --copies N     copies of the snapshot's categories (default 14: 18,645 ebuilds)
  --dir D        benchmark directory (default ~/.cache/prci-bench/real); the tree is kept in
                 D/<tarball stem>-c<N>/ and prci's work dirs in D/<...>/work/
  --runs K       pull requests of each type per case (default 1 with --real)
  --only T,...   pull request types: metadata, keyword-drop, bump, new-package, eclass (default all)
  --variant V    committed, uncommitted or both (default both)
  --args A       none (no configured pkgcheck arguments), disabled
                 (--pkgcheck-arg=--checks=-MetadataVarCheck) or both (default both)
  --tarball PATH the snapshot (default ../shared/data/portage-stable-*.tar.xz of the workspace)
  --rescan       time the full-tree scan again (its cached time was taken on a busy machine, say)
";

/// Name of the generated repository.
const REPO_NAME: &str = "bench";
/// Branches holding the pull requests: `bench-pr-1`, `bench-pr-2`, …
fn pr_branch(k: usize) -> String {
    format!("bench-pr-{k}")
}
/// The licence a `license` pull request names (not in licenses/).
const BROKEN_LICENSE: &str = "Bench-Nonexistent-1.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    License,
    Bump,
}

#[derive(Debug)]
struct Args {
    packages: usize,
    dir: Option<PathBuf>,
    runs: usize,
    change: Change,
    prci: Option<PathBuf>,
    /// `--real` and its options.
    real: Option<real::Options>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        packages: 10_000,
        dir: None,
        runs: 3,
        change: Change::License,
        prci: None,
        real: None,
    };
    let mut real = real::Options::default();
    let (mut is_real, mut runs_given, mut synthetic_only, mut real_only) =
        (false, false, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.clone(), None),
        };
        let mut value = || -> Result<String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .with_context(|| format!("{name} needs a value\n\n{USAGE}")),
            }
        };
        if matches!(name.as_str(), "--packages" | "--change") {
            synthetic_only = Some(name.clone());
        }
        if matches!(
            name.as_str(),
            "--copies" | "--only" | "--variant" | "--args" | "--tarball"
        ) {
            real_only = Some(name.clone());
        }
        match name.as_str() {
            "--real" => is_real = true,
            "--rescan" => {
                real.rescan = true;
                real_only = Some(name.clone());
            }
            "--copies" => real.copies = value()?.parse().context("--copies: not a number")?,
            "--only" => real.set_only(&value()?)?,
            "--variant" => real.set_variant(&value()?)?,
            "--args" => real.set_args(&value()?)?,
            "--tarball" => real.tarball = Some(PathBuf::from(value()?)),
            "--packages" => args.packages = value()?.parse().context("--packages: not a number")?,
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--runs" => {
                args.runs = value()?.parse().context("--runs: not a number")?;
                runs_given = true;
            }
            "--change" => {
                args.change = match value()?.as_str() {
                    "license" => Change::License,
                    "bump" => Change::Bump,
                    other => bail!("--change: `{other}` is neither `license` nor `bump`"),
                }
            }
            "--prci" => args.prci = Some(PathBuf::from(value()?)),
            _ => bail!("unknown argument `{flag}`\n\n{USAGE}"),
        }
    }
    if is_real {
        if let Some(flag) = synthetic_only {
            bail!("{flag} is an option of the synthetic benchmark, not of --real");
        }
        if !runs_given {
            args.runs = 1;
        }
        if real.copies == 0 {
            bail!("--copies must be at least 1");
        }
        args.real = Some(real);
    } else if let Some(flag) = real_only {
        bail!("{flag} needs --real");
    }
    if args.packages < 11 {
        bail!("--packages must be at least 11 (the pull request's package needs a reverse dependency)");
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    Ok(args)
}

fn main() {
    become_subreaper();
    if let Err(e) = run() {
        eprintln!("prci-bench: {e:#}");
        std::process::exit(1);
    }
}

fn progress(msg: &str) {
    eprintln!("[prci-bench] {msg}");
}

fn run() -> Result<()> {
    let args = parse_args()?;
    if args.real.is_some() {
        return real::run(&args);
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // prci's default: base and merge scanned at once, each with half the cores.
    let prci_jobs: usize = match std::env::var("PRCI__CHECKER__JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(j) if j > 0 => j,
        _ => (cores / 2).max(1),
    };
    let baseline_jobs = cores;
    let (prci, pkgcheck) = binaries(&args)?;

    // ------------------------------------------------------------------ the repository
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
    let repo_path = dir.join("repo");
    let work = dir.join("work");
    let marker = dir.join("packages");
    progress(&format!("benchmark directory {}", dir.display()));
    let load_before = loadavg();
    let mut setup: Vec<(String, f64)> = Vec::new();
    if repo_path.join(".git").exists() {
        let have = std::fs::read_to_string(&marker).unwrap_or_default();
        if have.trim() != args.packages.to_string() {
            bail!(
                "{} holds a repository generated with {} packages, not {}: use another --dir",
                repo_path.display(),
                if have.trim().is_empty() {
                    "an unknown number of"
                } else {
                    have.trim()
                },
                args.packages
            );
        }
        progress(&format!("reusing the {}-package repository", args.packages));
    } else {
        progress(&format!("generating {} packages", args.packages));
        let t = Instant::now();
        drop(Repo::generate_at(&repo_path, REPO_NAME, args.packages));
        setup.push((
            format!(
                "generate {} packages (files + one git commit)",
                args.packages
            ),
            secs(t),
        ));
        std::fs::write(&marker, format!("{}\n", args.packages))?;
    }
    let repo_path = repo_path.canonicalize()?;

    // ------------------------------------------------------------------ the pull requests
    // One per prci run (2 per round): each run checks a pull request the previous run did not, as a
    // CI does, so the merge checkout, its regen and the base side's package targets are never reused.
    let picks = pick_packages(args.packages, 2 * args.runs);
    if picks.len() < 2 * args.runs {
        bail!("{} packages leave room for {} distinct pull requests; {} are needed (use fewer --runs)", args.packages, picks.len(), 2 * args.runs);
    }
    let mut prs: Vec<(String, String, String)> = Vec::new(); // (branch, atom, rdep)
    let mut what = String::new();
    for (k, (pr_index, rdep_index)) in picks.iter().enumerate() {
        let atom = generated_atom(args.packages, *pr_index);
        let rdep = generated_atom(args.packages, *rdep_index);
        let branch = pr_branch(k + 1);
        let (head, w) = make_pr(&repo_path, &atom, args.change, &branch)?;
        if k == 0 {
            what = w;
        }
        progress(&format!(
            "pull request {branch} {}: {atom} ({rdep} depends on it)",
            &head[..12]
        ));
        prs.push((branch, atom, rdep));
    }
    let rdep = prs[0].2.clone();
    checkout_branch(&repo_path, &prs[0].0)?;

    // ------------------------------------------------------------------ warm-up (not timed in the table)
    progress("warm-up: prci check master..master (mirror, checkouts, md5-cache of both trees)");
    let warm = run_prci(&prci, &repo_path, &work, "master", "master", &[])?;
    setup.push((
        "prci check master..master (first job: mirror, checkouts, full regen of both trees)".into(),
        warm.wall,
    ));
    let (base_tree, merge_tree) = prci_trees(&work)?;

    // The md5-cache holds no paths: seed the repository's from prci's master checkout instead of
    // regenerating 10,000 ebuilds a third time; regen then only does the pull request's package.
    let cache_rel = Path::new("metadata/md5-cache");
    if !repo_path.join(cache_rel).exists() {
        copy_dir(&merge_tree.join(cache_rel), &repo_path.join(cache_rel))?;
    }
    progress("warm-up: pmaint regen of the repository at the PR head (for the full-scan baseline)");
    let t = Instant::now();
    fixtures::regen(&repo_path, &[]);
    setup.push((
        "pmaint regen of the repository at the PR head (md5-cache seeded from master)".into(),
        secs(t),
    ));
    let t = Instant::now();
    fixtures::regen(&repo_path, &[]);
    setup.push((
        "pmaint regen of the repository again, nothing changed (a CI keeping its cache)".into(),
        secs(t),
    ));

    // ------------------------------------------------------------------ timed rounds
    let mut cold: Vec<PrciRun> = Vec::new();
    let mut hot: Vec<PrciRun> = Vec::new();
    let mut baseline: Vec<f64> = Vec::new();
    let mut baseline_cpu: Vec<f64> = Vec::new();
    let mut baseline_results = 0usize;
    let mut floor_both: Vec<FloorRun> = Vec::new();
    let mut floor_merge: Vec<FloorRun> = Vec::new();
    let base_cfg = PkgcoreConfig::new(&base_tree, &[]);
    let merge_cfg = PkgcoreConfig::new(&merge_tree, &[]);
    let repo_cfg = PkgcoreConfig::new(&repo_path, &[]);
    let mut round_load: Vec<String> = Vec::new();
    for round in 1..=args.runs {
        round_load.push(loadavg());
        progress(&format!(
            "round {round}/{}: prci check, cold base cache (first pull request on this base)",
            args.runs
        ));
        let cache = work.join("cache").join("base");
        if cache.exists() {
            std::fs::remove_dir_all(&cache)
                .with_context(|| format!("remove {}", cache.display()))?;
        }
        let (cold_pr, warm_pr) = (&prs[2 * round - 2].0, &prs[2 * round - 1].0);
        cold.push(run_prci(&prci, &repo_path, &work, "master", cold_pr, &[])?);
        let b = Side {
            tree: &base_tree,
            config: base_cfg.path(),
            extra: &[],
            failures: None,
            cache_dir: None,
        };
        let m = Side {
            tree: &merge_tree,
            config: merge_cfg.path(),
            extra: &[],
            failures: None,
            cache_dir: None,
        };
        progress(&format!(
            "round {round}/{}: floor of that run (its bare pkgcheck runs, both sides at once)",
            args.runs
        ));
        floor_both.push(floor(
            &pkgcheck,
            &b,
            &m,
            prci_jobs,
            cold.last().expect("pushed"),
            true,
        )?);

        progress(&format!(
            "round {round}/{}: prci check of the next pull request, warm base cache",
            args.runs
        ));
        hot.push(run_prci(&prci, &repo_path, &work, "master", warm_pr, &[])?);
        progress(&format!(
            "round {round}/{}: floor of that run (no base repo pass: it is cached)",
            args.runs
        ));
        floor_merge.push(floor(
            &pkgcheck,
            &b,
            &m,
            prci_jobs,
            hot.last().expect("pushed"),
            false,
        )?);

        progress(&format!(
            "round {round}/{}: full-tree pkgcheck scan -j {baseline_jobs}",
            args.runs
        ));
        let side = Side {
            tree: &repo_path,
            config: repo_cfg.path(),
            extra: &[],
            failures: None,
            cache_dir: None,
        };
        let cpu = children_cpu();
        let (scan_secs, results) = pkgcheck_run(&pkgcheck, &side, baseline_jobs, Pass::Full)?;
        baseline.push(scan_secs);
        baseline_cpu.push(children_cpu() - cpu);
        baseline_results = results;
    }

    print_results(&Results {
        args: &args,
        load: (load_before, loadavg()),
        cores,
        prci_jobs,
        baseline_jobs,
        rdep: &rdep,
        what: &what,
        setup: &setup,
        cold: &cold,
        hot: &hot,
        baseline: &baseline,
        baseline_cpu: &baseline_cpu,
        baseline_results,
        floor_both: &floor_both,
        floor_merge: &floor_merge,
        round_load: &round_load,
    });
    Ok(())
}

/// The prci binary (`--prci`, else next to this program) and pkgcheck, checked to exist.
fn binaries(args: &Args) -> Result<(PathBuf, PathBuf)> {
    let prci = match &args.prci {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no parent of current exe")?
            .join("prci"),
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

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

/// The pull requests' packages and their reverse dependencies: packages `i` with `i % 5 == 3` from
/// the middle on, so that package `i + 7` (a multiple of 5) has `RDEPEND` on it; `i` is never a
/// multiple of 10, so it has one version (`-1.0`). `count` distinct ones (fewer on a tiny repository).
fn pick_packages(n: usize, count: usize) -> Vec<(usize, usize)> {
    let mut i = n / 2;
    while i % 5 != 3 {
        i += 1;
    }
    while i + 7 >= n {
        i -= 5;
    }
    let mut out = Vec::new();
    for k in 0..count {
        // Alternate above and below the middle so small repositories still have room.
        let step = 5 * k.div_ceil(2);
        let j = if k % 2 == 1 {
            i.checked_add(step)
        } else {
            i.checked_sub(step)
        };
        match j {
            Some(j) if j + 7 < n && j >= 3 => out.push((j, j + 7)),
            _ => break,
        }
    }
    out
}

/// Create (or reset) branch `branch`: one commit on master changing `atom`. Deterministic (fixed
/// author and time), so a reused directory gets the same sha. Returns the sha and a description.
fn make_pr(repo: &Path, atom: &str, change: Change, branch: &str) -> Result<(String, String)> {
    let git = Repository::open(repo)?;
    let master = git
        .find_branch("master", BranchType::Local)?
        .get()
        .peel_to_commit()?;
    let tree = master.tree()?;
    let (_, pkg) = atom.split_once('/').context("atom without a category")?;
    let old_rel = format!("{atom}/{pkg}-1.0.ebuild");
    let entry = tree
        .get_path(Path::new(&old_rel))
        .with_context(|| format!("{old_rel} not in master"))?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    let (message, what) = match change {
        Change::License => {
            let blob = git.find_blob(entry.id())?;
            let text = std::str::from_utf8(blob.content())?;
            let mut replaced = false;
            let new: String = text
                .lines()
                .map(|l| {
                    if l.starts_with("LICENSE=") {
                        replaced = true;
                        format!("LICENSE=\"{BROKEN_LICENSE}\"\n")
                    } else {
                        format!("{l}\n")
                    }
                })
                .collect();
            if !replaced {
                bail!("{old_rel} has no LICENSE line");
            }
            update.upsert(&old_rel, git.blob(new.as_bytes())?, FileMode::Blob);
            (
                format!("{atom}: change LICENSE"),
                format!("{atom}-1.0 gets LICENSE=\"{BROKEN_LICENSE}\""),
            )
        }
        Change::Bump => {
            let new_rel = format!("{atom}/{pkg}-1.1.ebuild");
            update.remove(&old_rel);
            update.upsert(&new_rel, entry.id(), FileMode::Blob);
            (
                format!("{atom}: bump to 1.1"),
                format!("{atom}-1.0 renamed to {pkg}-1.1"),
            )
        }
    };
    let new_tree = git.find_tree(update.create_updated(&git, &tree)?)?;
    let sig = Signature::new(
        "Test",
        "test@example.com",
        &Time::new(fixtures::repo::BASE_COMMIT_TIME + 86_400, 0),
    )?;
    let oid = git.commit(None, &sig, &sig, &message, &new_tree, &[&master])?;
    git.reference(
        &format!("refs/heads/{branch}"),
        oid,
        true,
        "prci-bench: pull request",
    )?;
    Ok((oid.to_string(), what))
}

/// Force the work tree to `branch` and point HEAD at it (the md5-cache is ignored, so it stays).
fn checkout_branch(repo: &Path, branch: &str) -> Result<()> {
    let git = Repository::open(repo)?;
    let commit = git
        .find_branch(branch, BranchType::Local)?
        .get()
        .peel_to_commit()?;
    let mut co = git2::build::CheckoutBuilder::new();
    co.force();
    git.checkout_tree(commit.as_object(), Some(&mut co))?;
    git.set_head(&format!("refs/heads/{branch}"))?;
    Ok(())
}

/// Copy the directory tree `from` to `to` (regular files only; `to` must not exist).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copy to {}", target.display()))?;
        }
    }
    Ok(())
}

/// Make this process the reaper of its orphaned descendants (prci's warm tool processes outlive prci by
/// a moment, and are then reparented here instead of to init), so their CPU time is counted too.
#[allow(unsafe_code)]
fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) only sets a flag on this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
}

/// Reap every exited orphan (see [`become_subreaper`]); `cutime`/`cstime` then include them.
fn reap_orphans() {
    reap(libc::WNOHANG);
}

/// Wait for every orphan to exit and reap it: called when this program has no child of its own running.
fn reap_all_orphans() {
    reap(0);
}

#[allow(unsafe_code)]
fn reap(flags: i32) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on any child. Only called between measurements, when every child this program
        // started itself has been waited for through its `Child` handle.
        let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
        if pid <= 0 {
            break;
        }
    }
}

/// CPU seconds (user + system) of this process's reaped children so far, from /proc/self/stat
/// (`cutime` + `cstime`): the difference around a measurement is the CPU its process tree used,
/// which other work on the machine disturbs much less than wall-clock time.
fn children_cpu() -> f64 {
    reap_orphans();
    static TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let tick = *TICK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3, cutime 16, cstime 17.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, r)| r.split_whitespace().collect());
    let field = |n: usize| {
        rest.get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (field(16) + field(17)) / tick
}

/// The load average (1, 5, 15 minutes): other work on the machine skews every number.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// prci's checkouts of the base tip and the merge (the only repository under `work/repos`).
fn prci_trees(work: &Path) -> Result<(PathBuf, PathBuf)> {
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
        _ => bail!(
            "expected one repository with trees under {}, found {}",
            repos.display(),
            found.len()
        ),
    }
}

// ---------------------------------------------------------------------- running prci

#[derive(Debug)]
struct PrciRun {
    /// Wall-clock seconds of the whole `prci check` process.
    wall: f64,
    /// CPU seconds of prci and every tool it ran.
    cpu: f64,
    /// The JSON report.
    report: Value,
    /// Peak resident set of the prci process itself (VmHWM, KiB), sampled from /proc; 0 if unknown.
    peak_kib: u64,
    /// What prci's merge side ran of the repo pass, from its log.
    merge_repo: RepoWork,
}

/// The part of the repo pass one side runs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RepoWork {
    /// None: no repository-scope input changed.
    Nothing,
    /// The whole pass.
    Pass,
    /// Some checks (`-c`).
    Checks(Vec<String>),
}

impl RepoWork {
    /// From prci's log (`PRCI_LOG=info`): "repo pass reruns <Check>: why", "whole repo pass: why".
    fn from_log(log: &str, full: bool) -> RepoWork {
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

    fn describe(&self) -> String {
        match self {
            RepoWork::Nothing => "none (no repository-scope input changed)".into(),
            RepoWork::Pass => "the whole pass".into(),
            RepoWork::Checks(c) => c.join(","),
        }
    }
}

/// `prci check --repo <repo> --base <base> --head <head> --json`, with `--pkgcheck-arg=<a>` for each of `pkgcheck_args`.
fn run_prci(
    prci: &Path,
    repo: &Path,
    work: &Path,
    base: &str,
    head: &str,
    pkgcheck_args: &[String],
) -> Result<PrciRun> {
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
    let peak = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), child.id());
        std::thread::spawn(move || {
            let status = format!("/proc/{pid}/status");
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = std::fs::read_to_string(&status)
                    .ok()
                    .and_then(|s| vm_hwm(&s))
                {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let out = child.wait_with_output()?;
    let wall = secs(t);
    // prci's warm tool processes die just after it: count them in its CPU time.
    reap_all_orphans();
    let cpu = children_cpu() - cpu;
    done.store(true, Ordering::Relaxed);
    let _ = sampler.join();
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
    let report: Value =
        serde_json::from_slice(&out.stdout).context("prci check --json printed no JSON")?;
    let merge_repo = RepoWork::from_log(
        &String::from_utf8_lossy(&out.stderr),
        report["scan"]["full"].as_bool() == Some(true),
    );
    Ok(PrciRun {
        wall,
        cpu,
        report,
        peak_kib: peak.load(Ordering::Relaxed),
        merge_repo,
    })
}

fn vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------------- running pkgcheck directly

/// One tree and its pkgcore config directory.
struct Side<'a> {
    tree: &'a Path,
    config: &'a Path,
    /// Configured pkgcheck arguments, appended to every scan (as prci appends `checker.pkgcheck_args`).
    extra: &'a [String],
    /// When set, a pkgcheck run that fails (a crash in a check) is counted here instead of being an
    /// error; its time still counts.
    failures: Option<&'a AtomicU64>,
    /// pkgcheck's `--cache-dir`, kept between runs (a warm profiles cache); `None`: a fresh one per run.
    cache_dir: Option<&'a Path>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass<'a> {
    /// Every check on the whole repository.
    Full,
    /// Repo-, category- and profile-scope checks (`--scopes=repo,cat,profiles`, no targets), as prci runs them.
    RepoCat,
    /// Some of those checks (`-c`).
    RepoChecks(&'a [String]),
    /// These targets, read from stdin.
    Targets(&'a [String]),
}

/// One hermetic `pkgcheck scan` (pkgcheck.md's invocation; the same clean environment prci's sandbox
/// gives, minus the namespaces), with a fresh cache dir unless the side keeps one. Returns seconds
/// and the number of results.
fn pkgcheck_run(pkgcheck: &Path, side: &Side, jobs: usize, pass: Pass) -> Result<(f64, usize)> {
    let scratch = tempfile::Builder::new()
        .prefix("prci-bench-scan-")
        .tempdir()?;
    let bin_dir = pkgcheck.parent().context("pkgcheck has no parent dir")?;
    let mut cmd = Command::new(pkgcheck);
    cmd.arg("--config")
        .arg(side.config)
        .args(["scan", "--config", "no"])
        .arg(format!(
            "--cache-dir={}",
            side.cache_dir
                .map_or_else(|| scratch.path().join("pkgcheck-cache"), Path::to_path_buf)
                .display()
        ))
        .args([
            "--cache=-git",
            "-j",
            &jobs.to_string(),
            "-R",
            "JsonStream",
            "-r",
        ])
        .arg(side.tree);
    let mut stdin = None;
    match pass {
        Pass::Full => {}
        Pass::RepoCat => {
            cmd.arg("--scopes=repo,cat,profiles");
        }
        Pass::RepoChecks(checks) => {
            cmd.arg("--scopes=repo,cat,profiles")
                .arg("-c")
                .arg(checks.join(","));
        }
        Pass::Targets(targets) => {
            cmd.arg("-");
            let list: String = targets
                .iter()
                .map(|t| {
                    if t.starts_with("eclass/") {
                        format!("{}\n", side.tree.join(t).display())
                    } else {
                        format!("{t}\n")
                    }
                })
                .collect();
            stdin = Some(list);
        }
    }
    cmd.args(side.extra);
    cmd.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("HOME", scratch.path())
        .env("TMPDIR", scratch.path())
        .env("LANG", "C.UTF-8")
        .env("LC_ALL", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let t = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {}", pkgcheck.display()))?;
    if let Some(list) = stdin {
        let mut pipe = child.stdin.take().context("pkgcheck stdin")?;
        pipe.write_all(list.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let elapsed = secs(t);
    if let (false, Some(failures)) = (out.status.success(), side.failures) {
        failures.fetch_add(1, Ordering::Relaxed);
        let stderr = String::from_utf8_lossy(&out.stderr);
        progress(&format!(
            "pkgcheck failed ({}) in a floor scan; its time counts, its results are partial: {}",
            out.status,
            stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
        ));
    } else if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let results = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    Ok((elapsed, results))
}

#[derive(Debug, Clone, Copy)]
struct SideTimes {
    wall: f64,
    repo_pass: f64,
    targets: f64,
}

/// What prci's first scan of one side runs, bare: its part of the repo pass, then the eclass targets
/// (if any), then the package targets (those that exist on this side), one after the other.
fn floor_side(
    pkgcheck: &Path,
    side: &Side,
    jobs: usize,
    repo: &RepoWork,
    targets: &[String],
) -> Result<SideTimes> {
    let t = Instant::now();
    let repo_pass = match repo {
        RepoWork::Nothing => 0.0,
        RepoWork::Pass => pkgcheck_run(pkgcheck, side, jobs, Pass::RepoCat)?.0,
        RepoWork::Checks(c) => pkgcheck_run(pkgcheck, side, jobs, Pass::RepoChecks(c))?.0,
    };
    let present: Vec<String> = targets
        .iter()
        .filter(|t| side.tree.join(t).exists())
        .cloned()
        .collect();
    let (eclasses, packages): (Vec<String>, Vec<String>) =
        present.into_iter().partition(|t| t.starts_with("eclass/"));
    let mut targets_secs = 0.0;
    for group in [eclasses, packages] {
        if !group.is_empty() {
            targets_secs += pkgcheck_run(pkgcheck, side, jobs, Pass::Targets(&group))?.0;
        }
    }
    Ok(SideTimes {
        wall: secs(t),
        repo_pass,
        targets: targets_secs,
    })
}

/// The floor of one prci run: the pkgcheck runs its plan asks for, bare, both sides at once, on
/// prci's checkouts as that run left them: the repo-pass checks prci's log names (on the base side
/// only when its results were not cached, `cold`), then the targets.
fn floor(
    pkgcheck: &Path,
    b: &Side,
    m: &Side,
    jobs: usize,
    run: &PrciRun,
    cold: bool,
) -> Result<FloorRun> {
    let report = &run.report;
    if report["scan"]["full"].as_bool() == Some(true) {
        bail!(
            "prci planned a full scan for a one-package pull request: {}",
            report["scan"]
        );
    }
    let targets: Vec<String> = report["scan"]["targets"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let base_repo = if cold {
        run.merge_repo.clone()
    } else {
        RepoWork::Nothing
    };
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
struct FloorRun {
    wall: f64,
    /// CPU seconds of every pkgcheck process of the run.
    cpu: f64,
    /// The merge side's wall time and parts.
    side_wall: f64,
    repo_pass: f64,
    targets: f64,
    /// The base side's wall time, when both ran at once.
    base_wall: Option<f64>,
    /// The base side's repo pass (0 when its results were cached).
    base_repo_pass: f64,
}

// ---------------------------------------------------------------------- the table

struct Results<'a> {
    args: &'a Args,
    /// Load average at the start and at the end.
    load: (String, String),
    cores: usize,
    prci_jobs: usize,
    baseline_jobs: usize,
    rdep: &'a str,
    what: &'a str,
    setup: &'a [(String, f64)],
    cold: &'a [PrciRun],
    hot: &'a [PrciRun],
    baseline: &'a [f64],
    baseline_cpu: &'a [f64],
    baseline_results: usize,
    floor_both: &'a [FloorRun],
    floor_merge: &'a [FloorRun],
    /// Load average when each round started.
    round_load: &'a [String],
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn min(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::INFINITY, f64::min)
}

fn runs_list(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.2}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .map(|v| v.trim().to_string())
        })
        .and_then(|v| v.trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or_else(
            || "?".into(),
            |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
        )
}

fn classes(findings: &Value) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for f in findings.as_array().into_iter().flatten() {
        *counts
            .entry(f["__class__"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(c, n)| format!("{n} {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn timing(run: &PrciRun, key: &str) -> Option<f64> {
    run.report["timings"][key].as_f64()
}

fn print_results(r: &Results) {
    let k = r.args.runs;
    let row = |label: &str, v: &[f64]| {
        println!(
            "  {label:<58} {:>8.2} {:>8.2}   [{}]",
            median(v),
            min(v),
            runs_list(v)
        )
    };
    let walls = |runs: &[PrciRun]| runs.iter().map(|x| x.wall).collect::<Vec<f64>>();
    let (cold, hot) = (walls(r.cold), walls(r.hot));
    let fb: Vec<f64> = r.floor_both.iter().map(|f| f.wall).collect();
    let fm: Vec<f64> = r.floor_merge.iter().map(|f| f.wall).collect();
    let report = &r.cold[0].report;

    println!();
    println!(
        "prci-bench: one-package pull request on a generated {}-package repository",
        r.args.packages
    );
    println!(
        "  machine: {} cores, {} RAM; pkgcheck {} / pkgcore {}",
        r.cores,
        mem_total(),
        report["tools"]["pkgcheck"].as_str().unwrap_or("?"),
        report["tools"]["pkgcore"].as_str().unwrap_or("?")
    );
    println!(
        "  load average at start: {}; at end: {} (other work on the machine skews every number)",
        r.load.0, r.load.1
    );
    println!("  pull requests: one per prci run, each changing another package like this: {} ({} has RDEPEND on it)", r.what, r.rdep);
    println!(
        "  prci's plan (first run): targets [{}]; repo-pass checks on both sides: {}; verdict {}; new: {}; fixed: {}",
        report["scan"]["targets"].as_array().map(|a| a.iter().filter_map(|t| t.as_str()).collect::<Vec<_>>().join(" ")).unwrap_or_default(),
        r.cold[0].merge_repo.describe(),
        report["verdict"].as_str().unwrap_or("?"),
        classes(&report["new"]),
        classes(&report["fixed"])
    );
    println!(
        "  baseline full scan: {} results; prci/floor pkgcheck -j {} per side; baseline -j {}",
        r.baseline_results, r.prci_jobs, r.baseline_jobs
    );

    println!();
    println!("setup (once, not in the table)                                   seconds");
    for (label, s) in r.setup {
        println!("  {label:<84} {s:>8.2}");
    }

    println!();
    println!("measurement ({k} runs each; seconds of wall clock)                   median      min   [runs]");
    row(
        "a. prci check, cold base-results cache (first PR on a base)",
        &cold,
    );
    row("b. prci check of the next PR, same base (warm cache)", &hot);
    row(
        &format!(
            "c. baseline: full-tree pkgcheck scan -j {}, one tree",
            r.baseline_jobs
        ),
        r.baseline,
    );
    let doubled: Vec<f64> = r.baseline.iter().map(|v| v * 2.0).collect();
    row("   c x2: Gentoo CI scans head and base", &doubled);
    row(
        "d. floor of a: its pkgcheck runs, bare, both sides at once",
        &fb,
    );
    let parts =
        |f: &[FloorRun], pick: fn(&FloorRun) -> f64| f.iter().map(pick).collect::<Vec<f64>>();
    row(
        "      of d: base side's repo-pass checks (prci's log)",
        &parts(r.floor_both, |f| f.base_repo_pass),
    );
    row(
        "      of d: merge side's repo-pass checks (prci's log)",
        &parts(r.floor_both, |f| f.repo_pass),
    );
    row("   d': floor of b (no base repo pass: cached)", &fm);
    row(
        "      of d': merge side's repo-pass checks (prci's log)",
        &parts(r.floor_merge, |f| f.repo_pass),
    );
    row(
        "      of d': merge side's package targets (atoms on stdin)",
        &parts(r.floor_merge, |f| f.targets),
    );

    println!();
    println!("CPU time (user + system of every process the measurement ran; seconds)  median      min   [runs]");
    let cpus = |runs: &[PrciRun]| runs.iter().map(|x| x.cpu).collect::<Vec<f64>>();
    let (cc, ch) = (cpus(r.cold), cpus(r.hot));
    let fbc: Vec<f64> = r.floor_both.iter().map(|f| f.cpu).collect();
    let fmc: Vec<f64> = r.floor_merge.iter().map(|f| f.cpu).collect();
    row("a. prci check, cold base-results cache", &cc);
    row("b. prci check, warm base-results cache", &ch);
    row(
        "c. baseline: full-tree pkgcheck scan, one tree",
        r.baseline_cpu,
    );
    row("d. floor of a", &fbc);
    row("   d': floor of b", &fmc);
    let (mcc, mch, mbc) = (median(&cc), median(&ch), median(r.baseline_cpu));
    println!("  baseline / prci cold {:.2}x, baseline / prci warm {:.2}x (x2 scans: {:.2}x, {:.2}x); prci cold / floor {:.2}x, prci warm / floor' {:.2}x",
        mbc / mcc, mbc / mch, 2.0 * mbc / mcc, 2.0 * mbc / mch, mcc / median(&fbc), mch / median(&fmc));

    println!();
    println!("per round (seconds; prci as wall = regen + scan + confirm + rest)");
    let steps = |x: &PrciRun| {
        let g = |k: &str| timing(x, k).unwrap_or(f64::NAN);
        format!(
            "{:6.2} = {:5.2} + {:5.2} + {:4.2} + {:4.2}",
            x.wall,
            g("regen_seconds"),
            g("scan_seconds"),
            g("confirm_seconds"),
            x.wall - g("regen_seconds") - g("scan_seconds") - g("confirm_seconds")
        )
    };
    for i in 0..k {
        println!(
            "  round {}  load {}",
            i + 1,
            r.round_load.get(i).map_or("?", String::as_str)
        );
        println!("    a. cold   {}", steps(&r.cold[i]));
        println!("    b. warm   {}", steps(&r.hot[i]));
        println!(
            "    c. {:.2}   d. {:.2} (merge side {:.2}, base side {:.2})   d'. {:.2} (merge side {:.2} = repo checks {:.2} + targets {:.2})",
            r.baseline[i],
            r.floor_both[i].wall,
            r.floor_both[i].side_wall,
            r.floor_both[i].base_wall.unwrap_or(f64::NAN),
            r.floor_merge[i].wall,
            r.floor_merge[i].side_wall,
            r.floor_merge[i].repo_pass,
            r.floor_merge[i].targets
        );
        println!(
            "       repo-pass checks scanned: a. {}   b. {}",
            r.cold[i].merge_repo.describe(),
            r.hot[i].merge_repo.describe()
        );
    }

    println!();
    println!("ratios (of medians)");
    let (mc, mh, mb, mfb, mfm) = (
        median(&cold),
        median(&hot),
        median(r.baseline),
        median(&fb),
        median(&fm),
    );
    println!(
        "  baseline / prci cold               {:>7.2}x   (x2 scans: {:.2}x)",
        mb / mc,
        2.0 * mb / mc
    );
    println!(
        "  baseline / prci warm               {:>7.2}x   (x2 scans: {:.2}x)",
        mb / mh,
        2.0 * mb / mh
    );
    println!(
        "  prci cold / floor of a             {:>7.2}x   (overhead {:+.2} s)",
        mc / mfb,
        mc - mfb
    );
    println!(
        "  prci warm / floor of b             {:>7.2}x   (overhead {:+.2} s)",
        mh / mfm,
        mh - mfm
    );
    println!(
        "  baseline / floor of a              {:>7.2}x   (the best prci could do, cold)",
        mb / mfb
    );
    println!(
        "  baseline / floor of b              {:>7.2}x   (the best prci could do, warm)",
        mb / mfm
    );

    println!();
    println!(
        "prci's own timings (report `timings`, median of runs; seconds)           cold     warm"
    );
    // Pipeline order first, then any step this version of prci does not know.
    let mut keys: Vec<String> = [
        "fetch", "merge", "checkout", "regen", "plan", "scan", "confirm",
    ]
    .iter()
    .map(|k| format!("{k}_seconds"))
    .collect();
    for run in r.cold.iter().chain(r.hot) {
        if let Some(map) = run.report["timings"].as_object() {
            for key in map.keys() {
                if !keys.contains(key) && key != "total_seconds" {
                    keys.push(key.clone());
                }
            }
        }
    }
    keys.retain(|k| r.cold.iter().chain(r.hot).any(|x| timing(x, k).is_some()));
    let med = |runs: &[PrciRun], key: &str| {
        median(
            &runs
                .iter()
                .filter_map(|x| timing(x, key))
                .collect::<Vec<f64>>(),
        )
    };
    for key in &keys {
        println!(
            "  {:<66} {:>8.2} {:>8.2}",
            key.trim_end_matches("_seconds"),
            med(r.cold, key),
            med(r.hot, key)
        );
    }
    let inside = |runs: &[PrciRun]| {
        median(
            &runs
                .iter()
                .filter_map(|x| {
                    let total = timing(x, "total_seconds")?;
                    let steps: f64 = keys.iter().filter_map(|k| timing(x, k)).sum();
                    Some(total - steps)
                })
                .collect::<Vec<f64>>(),
        )
    };
    println!(
        "  {:<66} {:>8.2} {:>8.2}",
        "(inside total, between the steps)",
        inside(r.cold),
        inside(r.hot)
    );
    println!(
        "  {:<66} {:>8.2} {:>8.2}",
        "total",
        med(r.cold, "total_seconds"),
        med(r.hot, "total_seconds")
    );
    let outside = |runs: &[PrciRun]| {
        median(
            &runs
                .iter()
                .filter_map(|x| Some(x.wall - timing(x, "total_seconds")?))
                .collect::<Vec<f64>>(),
        )
    };
    println!(
        "  {:<66} {:>8.2} {:>8.2}",
        "process wall minus total (start-up: tool versions, config)",
        outside(r.cold),
        outside(r.hot)
    );
    let peak =
        |runs: &[PrciRun]| runs.iter().map(|x| x.peak_kib).max().unwrap_or(0) as f64 / 1024.0;
    println!(
        "  {:<66} {:>8.1} {:>8.1}",
        "peak RSS of the prci process itself, MiB (max; tools excluded)",
        peak(r.cold),
        peak(r.hot)
    );
    println!();
}
