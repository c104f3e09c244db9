//! `prci-bench --real`: `prci check` on a Gentoo-size tree of real ebuilds, side by side with one
//! full-tree `pkgcheck scan` (Gentoo CI's method, cached with the tree) and with the floor of each
//! run (the bare pkgcheck runs of its plan), for several kinds of pull request, with the md5-cache
//! committed and not, with and without configured pkgcheck arguments. Prints a markdown table with
//! the targets of issue 8 marked PASS/MISS.
//!
//! Layout: `options` (the options of `--real`), `setup` (directory, snapshot, full-scan baseline,
//! pull request branches), `cases` (measuring each run and its floor, in order), `report` (the table
//! and the report); this file runs them in turn.

mod cases;
mod options;
mod report;
mod setup;

pub(crate) use options::{ArgSet, Options};

use crate::prci::{binaries, default_prci_jobs};
use crate::process::{cores, loadavg, secs};
use crate::{progress, Args};
use anyhow::{Context as _, Result};
use cases::{measure_all, Tools};
use fixtures::real_tree::{self, Analysis, Spec, Variant};
use report::{print_report, Report};
use std::time::Instant;

pub(crate) fn run(args: &Args) -> Result<()> {
    let opts = args.real.as_ref().context("not --real")?;
    let (prci, pkgcheck) = binaries(args)?;
    let cores = cores();
    let prci_jobs = default_prci_jobs(cores);
    let dir = setup::bench_dir(args)?;
    let spec = Spec { tarball: setup::tarball(opts)?, copies: opts.copies };
    progress(&format!("benchmark directory {}", dir.display()));
    let load_before = loadavg();
    // Read now: the workspace may move on while the benchmark runs.
    let commit = setup::prci_commit();

    // The tree and its full-scan baseline (both cached), then the pull requests.
    let mut tree = real_tree::ensure(&dir, &spec, cores, &|m: &str| progress(m))?;
    let full = setup::full_scan(&mut tree, opts, &pkgcheck, cores)?;
    let analysis = Analysis::read(&tree.repo(Variant::Committed), &tree.original_categories(), opts.copies)?;
    let prs = setup::pull_requests(&tree, &analysis, opts, args.runs)?;

    let started = Instant::now();
    let tools = Tools { prci: &prci, pkgcheck: &pkgcheck, jobs: prci_jobs };
    let cases = measure_all(&tools, &tree, opts, &prs, args.runs, full)?;
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
        runs: args.runs,
        load: (load_before, loadavg()),
        measure_secs,
        commit,
    });
    Ok(())
}
