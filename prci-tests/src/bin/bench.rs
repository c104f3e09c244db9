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
//!
//! This file parses the arguments and runs one mode. The synthetic benchmark lives in `bench/`:
//! `synthetic` (the run: repository, pull requests, warm-up, timed rounds), `repo` (the generated
//! repository's pull request branches), `prci` (running `prci check`), `pkgcheck` (running pkgcheck
//! directly), `floor` (the floor of a prci run), `process` (CPU time, RSS, load: measuring processes)
//! and `results` (statistics and the printed report). `--real` lives in `bench_real/`.

use anyhow::{bail, Context as _, Result};
use std::path::PathBuf;

#[path = "bench/floor.rs"]
mod floor;
#[path = "bench/pkgcheck.rs"]
mod pkgcheck;
#[path = "bench/prci.rs"]
mod prci;
#[path = "bench/process.rs"]
mod process;
#[path = "bench_real/mod.rs"]
mod real;
#[path = "bench/repo.rs"]
mod repo;
#[path = "bench/results.rs"]
mod results;
#[path = "bench/synthetic.rs"]
mod synthetic;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    License,
    Bump,
}

#[derive(Debug)]
pub(crate) struct Args {
    packages: usize,
    dir: Option<PathBuf>,
    runs: usize,
    change: Change,
    prci: Option<PathBuf>,
    /// `--real` and its options.
    real: Option<real::Options>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args { packages: 10_000, dir: None, runs: 3, change: Change::License, prci: None, real: None };
    let mut real = real::Options::default();
    let (mut is_real, mut runs_given, mut synthetic_only, mut real_only) = (false, false, None, None);
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
                None => it.next().with_context(|| format!("{name} needs a value\n\n{USAGE}")),
            }
        };
        if matches!(name.as_str(), "--packages" | "--change") {
            synthetic_only = Some(name.clone());
        }
        if matches!(name.as_str(), "--copies" | "--only" | "--variant" | "--args" | "--tarball") {
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
    process::become_subreaper();
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
    synthetic::run(&args)
}
