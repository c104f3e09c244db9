//! What `--real` sets up before it measures: the benchmark directory and the snapshot, the commit of
//! prci measured, the built tree's full-scan baseline (timed once, cached with the tree), and the
//! pull request branches in both variants.

use super::Options;
use crate::pkgcheck::{pkgcheck_run, Pass, Side};
use crate::process::{children_cpu, loadavg};
use crate::{progress, Args};
use anyhow::{Context as _, Result};
use fixtures::real_tree::{self, Analysis, Change, PrKind, Tree, Variant, DISABLED_CHECK_ARG};
use fixtures::PkgcoreConfig;
use serde_json::json;
use std::path::{Path, PathBuf};

/// The benchmark directory (`--dir`, default `~/.cache/prci-bench/real`), created, canonical.
pub(crate) fn bench_dir(args: &Args) -> Result<PathBuf> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => PathBuf::from(std::env::var_os("HOME").context("HOME is not set (pass --dir)")?).join(".cache/prci-bench/real"),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir.canonicalize()?)
}

/// The snapshot: `--tarball`, else the newest one in `../shared/data/`.
pub(crate) fn tarball(opts: &Options) -> Result<PathBuf> {
    Ok(match &opts.tarball {
        Some(t) => t.canonicalize().with_context(|| format!("{}", t.display()))?,
        None => default_tarball()?,
    })
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
    let path = found.pop().with_context(|| format!("no portage-stable-*.tar.xz in {} (pass --tarball)", data.display()))?;
    Ok(path.canonicalize()?)
}

/// The commit of prci this program measures (the workspace it was built from).
pub(crate) fn prci_commit() -> String {
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
            let dirty = out(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{sha} with uncommitted changes")
            } else {
                sha
            }
        }
        None => "unknown".into(),
    }
}

/// The full-tree baseline of the built tree, in seconds: its cached time, or (`--rescan`, or none
/// cached yet) one full-tree `pkgcheck scan` of the base tree, timed and cached with the tree.
pub(crate) fn full_scan(tree: &mut Tree, opts: &Options, pkgcheck: &Path, cores: usize) -> Result<f64> {
    let ebuilds = tree.meta["ebuilds"].as_u64().unwrap_or(0);
    if ebuilds < 18_000 {
        progress(&format!("note: {ebuilds} ebuilds, smaller than Gentoo (use --copies 14 or more for ≥ 18,000)"));
    }
    let base_repo = tree.repo(Variant::Committed);
    if opts.rescan || tree.meta["full_scan"]["seconds"].as_f64().is_none() {
        progress(&format!(
            "baseline: one full-tree pkgcheck scan -j {cores} {DISABLED_CHECK_ARG} of the base tree ({ebuilds} ebuilds), \
             timed once and cached with the tree: about 12 minutes on 2 cores for 18,645 ebuilds"
        ));
        let cfg = PkgcoreConfig::new(&base_repo, &[]);
        let extra = [DISABLED_CHECK_ARG.to_owned()];
        let side = Side { tree: &base_repo, config: cfg.path(), extra: &extra, failures: None, cache_dir: None };
        let load = loadavg();
        let cpu = children_cpu();
        let (seconds, results) = pkgcheck_run(pkgcheck, &side, cores, Pass::Full)?;
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
    Ok(tree.meta["full_scan"]["seconds"].as_f64().unwrap_or(f64::NAN))
}

/// The pull requests of each type: branch names and changes.
#[derive(Debug)]
pub(crate) struct PullRequests(Vec<(PrKind, Vec<(String, Change)>)>);

impl PullRequests {
    /// The pull requests of one type (none when it is not measured).
    pub(crate) fn of(&self, kind: PrKind) -> &[(String, Change)] {
        self.0.iter().find(|(k, _)| *k == kind).map_or(&[], |(_, l)| l.as_slice())
    }
}

/// Choose the pull requests (`runs` of each type of `--only`, and one more metadata one for the cold
/// first PR), and make their branches in the repository of each variant.
pub(crate) fn pull_requests(tree: &Tree, analysis: &Analysis, opts: &Options, runs: usize) -> Result<PullRequests> {
    let base_repo = tree.repo(Variant::Committed);
    let mut changes: Vec<(PrKind, Vec<(String, Change)>)> = Vec::new();
    for kind in PrKind::ALL {
        // The metadata list also gives the cold first PR (index 0).
        let wanted = opts.only.contains(&kind);
        if !wanted && kind != PrKind::Metadata {
            continue;
        }
        let count = if kind == PrKind::Metadata { runs + 1 } else { runs };
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
                real_tree::make_pr(&repo, *variant, change, branch).with_context(|| format!("{}: {branch}", variant.name()))?;
            }
        }
    }
    for (kind, list) in &changes {
        for (branch, change) in list {
            progress(&format!("{} {branch}: {}", kind.name(), change.describe()));
        }
    }
    Ok(PullRequests(changes))
}
